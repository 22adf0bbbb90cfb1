//! Images as the model produces them (`[n, c, s, s]` floats in [-1, 1]) to 8-bit pixels.

use crate::config::Config;

/// Image `img` of a batch `x` as RGBA bytes, row-major (`s·s·4`); one-channel models come
/// out grey, values outside [-1, 1] are clamped, alpha is opaque.
pub fn to_rgba8(c: &Config, x: &[f32], img: usize) -> Vec<u8> {
    let (s, ch) = (c.input, c.channels);
    let base = img * c.image_len();
    let mut out = Vec::with_capacity(s * s * 4);
    for p in 0..s * s {
        for k in 0..3 {
            let f = x[base + k.min(ch - 1) * s * s + p];
            out.push((((f + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).round() as u8);
        }
        out.push(255);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_and_range() {
        let c = Config {
            input: 2,
            channels: 3,
            ..Config::favicon_s()
        };
        // Two images; the second: R ramps -1..1, G = 2 (clamped), B = -1.
        let mut x = vec![0.0; 2 * 12];
        x[12..16].copy_from_slice(&[-1.0, -0.5, 0.5, 1.0]);
        x[16..20].fill(2.0);
        x[20..24].fill(-1.0);
        let px = to_rgba8(&c, &x, 1);
        assert_eq!(px.len(), 16);
        assert_eq!(&px[..4], &[0, 255, 0, 255]);
        assert_eq!(&px[4..8], &[64, 255, 0, 255]);
        assert_eq!(&px[12..16], &[255, 255, 0, 255]);
        assert!(to_rgba8(&c, &x, 0)
            .chunks(4)
            .all(|p| p == [128, 128, 128, 255]));
    }
}
