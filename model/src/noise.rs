//! The sampler's Gaussian noise on the CPU, bit for bit the definition of the GPU kernel
//! (`webdit_kernels::sampler`) and of `model/train/noise.py`: Philox 4x32-10 keyed by the
//! seed, counter `(i / 4, stream, 0, 0)`, 24-bit uniforms, Box-Muller.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox 4x32 with 10 rounds.
pub fn philox(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = ctr;
    let [mut k0, mut k1] = key;
    for r in 0..10 {
        if r > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = M0 as u64 * c0 as u64;
        let p1 = M1 as u64 * c2 as u64;
        (c0, c1, c2, c3) = (
            (p1 >> 32) as u32 ^ c1 ^ k0,
            p1 as u32,
            (p0 >> 32) as u32 ^ c3 ^ k1,
            p0 as u32,
        );
    }
    [c0, c1, c2, c3]
}

/// The seed as Philox's key.
pub fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

fn unit(r: u32) -> f32 {
    (r >> 8) as f32 * 5.960_464_5e-8 + 2.980_232_2e-8
}

/// Standard normal number `i` of noise stream `stream` under `seed` (f32 math, like the GPU).
pub fn gaussian(seed: u64, stream: u32, i: u32) -> f32 {
    let r = philox([i / 4, stream, 0, 0], key(seed));
    let j = i % 4;
    let (a, b) = if j < 2 { (r[0], r[1]) } else { (r[2], r[3]) };
    let rad = (-2.0 * unit(a).ln()).sqrt();
    let ang = 6.283_185_5 * unit(b);
    if j.is_multiple_of(2) {
        rad * ang.cos()
    } else {
        rad * ang.sin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known-answer vectors for philox4x32_10.
    #[test]
    fn philox_known_answers() {
        assert_eq!(
            philox([0; 4], [0; 2]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn gaussian_moments() {
        let n = 1 << 16;
        let z: Vec<f64> = (0..n).map(|i| gaussian(7, 3, i) as f64).collect();
        let mean = z.iter().sum::<f64>() / n as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "mean {mean} var {var}"
        );
    }
}
