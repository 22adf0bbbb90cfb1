use webdit_dsl::prelude::*;

#[kernel(workgroup_size = [64, 1, 1])]
fn early(y: &mut Array<f32>) {
    let i = global_id().x;
    if i > 3 {
        break;
    }
    y[i] = 0.0;
}

fn main() {}
