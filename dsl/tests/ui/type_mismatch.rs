use webdit_dsl::prelude::*;

#[kernel(workgroup_size = [64, 1, 1])]
fn mixed(x: &Array<f32>, y: &mut Array<f32>) {
    let i = global_id().x;
    y[i] = x[i] + i;
}

fn main() {}
