use webdit_dsl::prelude::*;

#[derive(Uniform)]
pub struct Len {
    pub n: u32,
}

/// y = x * 2 + 1
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn affine<const WG: u32>(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
    let i = global_id().x;
    if i < p.n {
        let mut s = 0.0;
        for j in 0..4u32 {
            s += x[i] * (j as f32);
        }
        y[i] = s * 2.0 + 1.0;
    }
}
