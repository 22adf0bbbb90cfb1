use webdit_dsl::prelude::*;

#[kernel_fn]
fn twice(v: f32) -> f32 {
    *v * 2.0
}

#[kernel(workgroup_size = [64, 1, 1])]
fn pass_expression(x: &Array<f32>, y: &mut Array<f32>) {
    let i = global_id().x;
    let mut acc = 0.0f32;
    bump(&mut (acc + 1.0));
    y[i] = twice(x[i]) + acc;
}

#[kernel_fn]
fn bump(acc: &mut f32) {
    *acc += 1.0;
}

fn main() {}
