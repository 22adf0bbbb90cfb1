use webdit_dsl::prelude::*;

#[kernel(workgroup_size = [64, 1, 1])]
fn twice(y: &mut Array<f32>) {
    let i = global_id().x;
    let f = |v: f32| v * 2.0;
    y[i] = 0.0;
}

fn main() {}
