//! Elementwise kernels and helpers shared by other kernels.

use webdit_dsl::prelude::*;

/// The number of elements an elementwise kernel covers.
#[derive(Uniform)]
pub struct Len {
    pub n: u32,
}

/// x * sigmoid(x), written so that large |x| neither overflows nor loses the sign.
#[kernel_fn]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// y = silu(x), one invocation per element.
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn silu_map<const WG: u32>(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let i = global_id().x;
    if i < p.n {
        y[i] = silu(x[i]);
    }
}
