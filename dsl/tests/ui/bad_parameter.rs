use webdit_dsl::prelude::*;

#[kernel(workgroup_size = [64, 1, 1])]
fn scaled(x: &Array<f32>, factor: f32) {
    let i = global_id().x;
}

fn main() {}
