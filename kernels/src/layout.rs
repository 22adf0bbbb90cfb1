//! Moving between image and token layouts, and the timestep embedding.

use webdit_dsl::prelude::*;

/// An image batch `[b, c, size, size]` cut into `p × p` patches: tokens `[b, g·g, c·p·p]`
/// with `g = size / p`; token `gy·g + gx`, inside a patch the order (channel, py, px).
#[derive(Uniform)]
pub struct PatchParams {
    pub channels: u32,
    pub size: u32,
    pub patch: u32,
    /// Elements in the whole batch.
    pub total: u32,
}

/// The token-layout index of image element `o` (`[b, c, size, size]` → `[b, g·g, c·p·p]`).
#[kernel_fn]
pub fn token_index(o: u32, channels: u32, size: u32, patch: u32) -> u32 {
    let g = size / patch;
    let x = o % size;
    let y = (o / size) % size;
    let ch = (o / (size * size)) % channels;
    let b = o / (size * size * channels);
    let n = (y / patch) * g + x / patch;
    let e = (ch * patch + y % patch) * patch + x % patch;
    (b * g * g + n) * (channels * patch * patch) + e
}

/// Image → tokens; one invocation per image element (reads coalesced, writes scattered
/// within a patch row).
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn patchify<A: ScalarTy, const WG: u32>(
    image: &Array<f32>,
    tokens: &mut Array<A>,
    p: &Uniform<PatchParams>,
) {
    let o = global_id().x + global_id().y * (num_workgroups().x * WG);
    if o < p.total {
        tokens[token_index(o, p.channels, p.size, p.patch)] = image[o] as A;
    }
}

/// Tokens → image; one invocation per image element.
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn unpatchify<A: ScalarTy, const WG: u32>(
    tokens: &Array<A>,
    image: &mut Array<f32>,
    p: &Uniform<PatchParams>,
) {
    let o = global_id().x + global_id().y * (num_workgroups().x * WG);
    if o < p.total {
        image[o] = tokens[token_index(o, p.channels, p.size, p.patch)] as f32;
    }
}

/// `sinus(t, width)` for each batch item: `half = width/2` frequencies
/// `f_i = exp(-i·ln(10000)/(half-1))`, all sines first, then all cosines.
#[derive(Uniform)]
pub struct SinusParams {
    pub width: u32,
    pub total: u32,
}

/// Timestep embedding: `out[b, :] = sinus(t[b], width)`.
#[kernel(workgroup_size = [WG, 1, 1])]
pub fn timestep_embedding<const WG: u32>(
    t: &Array<f32>,
    out: &mut Array<f32>,
    p: &Uniform<SinusParams>,
) {
    let o = global_id().x;
    if o < p.total {
        let half = p.width / 2;
        let i = o % p.width;
        let b = o / p.width;
        let k = i % half;
        let f = exp((k as f32) * (-9.2103404 / ((half - 1) as f32)));
        let arg = t[b] * f;
        out[o] = select(i < half, sin(arg), cos(arg));
    }
}
