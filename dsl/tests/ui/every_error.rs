use webdit_dsl::prelude::*;

// A kernel reports all its errors at once, each at its own line.
#[kernel(workgroup_size = [64, 1, 1])]
fn several(x: &Array<f32>, y: &mut Array<f32>) {
    let i = global_id().x;
    let v = match 1 {
        _ => x[i],
    };
    let f = |a: f32| a * 2.0;
    if i > 0u32 {
        let s = format!("{i}");
    }
    y[i] = v;
}

fn main() {}
