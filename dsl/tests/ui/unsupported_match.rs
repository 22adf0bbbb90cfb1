use webdit_dsl::prelude::*;

#[kernel(workgroup_size = [64, 1, 1])]
fn pick(x: &Array<u32>, y: &mut Array<u32>) {
    let i = global_id().x;
    y[i] = match 3 {
        3 => x[i],
        _ => 0,
    };
}

fn main() {}
