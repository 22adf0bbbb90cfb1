use webdit_dsl::prelude::*;

#[kernel(workgroup_size = [64, 1, 1])]
fn overwrite(x: &Array<f32>) {
    let i = global_id().x;
    x[i] = 1.0;
}

fn main() {}
