//! Which matmul kernel runs a product of a given shape: the tier of tiles, and whether K is
//! split across workgroups. Shared by the runtime and the benchmark, so the benchmark times
//! what the model runs.

use webdit_kernels::matmul::MatmulTiles;
use webdit_kernels::Tiles;

/// The most slices a split-K cuts K into.
pub const MAX_SPLITS: u32 = 16;
/// Size cap (f32s) of the buffer holding split-K partial products.
pub const SCRATCH_FLOATS: usize = 1 << 22;
/// Workgroups a matmul tier must fill before it is used: about two per multiprocessor of a
/// large GPU (132 on an H100/H200); smaller products step down to smaller tiles.
pub const TIER_MIN_GROUPS: u32 = 264;

/// How one `m × n × k` product runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulPlan {
    /// Variant name prefix: `matmul`, `matmul_mid` or `matmul_small`.
    pub tier: &'static str,
    pub tiles: MatmulTiles,
    /// Workgroups of one (partial) product.
    pub groups: [u32; 3],
    /// Slices of K (1: no split-K; else partial products on the small tiles, then a
    /// reduction).
    pub splits: u32,
}

/// The largest tiles that still give every multiprocessor work, else the small ones with K
/// split until they do (slices of at least 64 that divide K, within `scratch` partial
/// outputs). The wide kernels read `vec4`s along K, so a K that is not a multiple of 4
/// takes the small (scalar) tier.
pub fn plan_matmul(tiles: &Tiles, (m, n, k): (usize, usize, usize), scratch: usize) -> MatmulPlan {
    let groups = |t: MatmulTiles| [(n as u32).div_ceil(t.bn), (m as u32).div_ceil(t.bm), 1];
    let tiers = [
        ("matmul", tiles.matmul),
        ("matmul_mid", tiles.mid),
        ("matmul_small", tiles.small),
    ];
    let (tier, t) = *tiers
        .iter()
        .filter(|_| k.is_multiple_of(4))
        .find(|(_, t)| groups(*t)[0] * groups(*t)[1] >= TIER_MIN_GROUPS)
        .unwrap_or(&tiers[2]);
    let g = groups(t);
    let mut splits = 1u32;
    while tier == "matmul_small" && g[0] * g[1] * splits < TIER_MIN_GROUPS && splits < MAX_SPLITS {
        let next = 2 * splits as usize;
        if !k.is_multiple_of(next) || k / next < 64 || m * n * next > scratch {
            break;
        }
        splits *= 2;
    }
    MatmulPlan {
        tier,
        tiles: t,
        groups: g,
        splits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_by_shape() {
        let t = Tiles::default();
        let big = plan_matmul(&t, (4096, 3072, 768), SCRATCH_FLOATS);
        assert_eq!((big.tier, big.splits), ("matmul", 1));
        let b1 = plan_matmul(&t, (64, 512, 2048), SCRATCH_FLOATS);
        assert_eq!((b1.tier, b1.splits), ("matmul_small", 16));
        // K not a multiple of 4: never the wide kernels.
        let odd = plan_matmul(&t, (4096, 3072, 767), SCRATCH_FLOATS);
        assert_eq!((odd.tier, odd.splits), ("matmul_small", 1));
        // No scratch: no split.
        assert_eq!(plan_matmul(&t, (64, 512, 2048), 0).splits, 1);
    }
}
