//! Which matmul kernel runs a product of a given shape: the tier of tiles, and whether K is
//! split across workgroups. Shared by the runtime and the benchmark, so the benchmark times
//! what the model runs.

use webdit_kernels::matmul::{Epilogue, MatmulParams, MatmulTiles, SplitParams};
use webdit_kernels::matmul_coop::{COOP_TILES, COOP_TILES_SPLIT};
use webdit_kernels::{CoopTile, Tiles};

/// The most slices a split-K cuts K into.
pub const MAX_SPLITS: u32 = 16;
/// Size cap (f32s) of the buffer holding split-K partial products.
pub const SCRATCH_FLOATS: usize = 1 << 22;
/// Workgroups a product should fill: about three per multiprocessor of a large GPU (132 on
/// an H100/H200). Chosen with `bench --plans` on an H200 (of the thresholds 64–512, 384 came
/// closest to the fastest plans); there it picks the fastest plan for 19 of the model's 24
/// products and is within 8% on the rest (BENCHMARKS.md).
pub const MIN_GROUPS: u32 = 384;
/// Workgroups attention should fill before its keys are cut into slices (each slice adds
/// merging work; 256 measured best on an H200).
pub const ATTENTION_GROUPS: u32 = 256;
/// Slices of K are at least this long, so that a partial product outweighs its share of
/// the reduction.
const MIN_SLICE: usize = 64;

/// How one `m × n × k` product runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulPlan {
    /// Variant name prefix, one of [`TIERS`].
    pub tier: &'static str,
    pub tiles: MatmulTiles,
    /// Workgroups of one (partial) product.
    pub groups: [u32; 3],
    /// Slices of K (1: no split-K; else `{tier}_partial` products, then a reduction).
    pub splits: u32,
    /// The product, `(m, n, k)`.
    pub shape: (usize, usize, usize),
}

impl MatmulPlan {
    /// The plan's tier (`None` for a tile outside the registry's, as a sweep's).
    pub fn tier_key(&self) -> Option<webdit_kernels::Tier> {
        webdit_kernels::Tier::ALL
            .into_iter()
            .find(|t| t.name() == self.tier)
    }

    /// Uniforms of the split-K's partial products: slice `z` (`workgroup_id().z`) reads
    /// its stretch of K ([`slice_len`] long, the last one what is left) and writes its own
    /// `m × n` block of the partials.
    pub fn partial_params(&self) -> MatmulParams {
        let (m, n, k) = self.shape;
        let part = slice_len(k, self.splits) as u32;
        MatmulParams {
            a_batch_stride: part,
            w_batch_stride: part,
            c_batch_stride: (m * n) as u32,
            k_stride: k as u32,
            k_total: k as u32,
            ..MatmulParams::new(m as u32, n as u32, part)
        }
    }

    /// Uniforms of the split-K's reduction (`rows_period` as in [`MatmulParams`]).
    pub fn reduce_params(&self, rows_period: u32) -> SplitParams {
        let (m, n, _) = self.shape;
        SplitParams {
            mn: (m * n) as u32,
            n: n as u32,
            splits: self.splits,
            rows_period,
        }
    }
}

/// Variant name prefixes of the tiers, largest tiles first.
pub use webdit_kernels::MATMUL_TIERS as TIERS;

/// Per tier (in [`TIERS`] order): the most slices of K, and what K must be a multiple of
/// (the wide kernels read `vec4`s along K; the scalar tier takes any K).
const SPLITS_AND_QUANTUM: [(u32, usize); 4] = [(1, 4), (8, 4), (MAX_SPLITS, 4), (MAX_SPLITS, 1)];

/// Tier `tier` (an index into [`TIERS`]) with `splits` slices of K, if the
/// shape allows it: K a multiple of the tier's quantum per slice, slices at least
/// [`MIN_SLICE`] long (unless unsplit), partial outputs within `scratch`.
pub fn plan_tier(
    tiles: &Tiles,
    tier: usize,
    splits: u32,
    (m, n, k): (usize, usize, usize),
    scratch: usize,
) -> Option<MatmulPlan> {
    let (name, (t, _)) = (TIERS[tier], tiles.tiers()[tier]);
    let (max_splits, quantum) = SPLITS_AND_QUANTUM[tier];
    let s = splits as usize;
    let fits = splits == 1 || (k / s >= MIN_SLICE && m * n * s <= scratch);
    (splits <= max_splits && k.is_multiple_of(s * quantum) && fits).then(|| MatmulPlan {
        tier: name,
        tiles: t,
        groups: [(n as u32).div_ceil(t.bn), (m as u32).div_ceil(t.bm), 1],
        splits,
        shape: (m, n, k),
    })
}

/// Every plan [`plan_tier`] allows for a shape (splits in powers of 2).
pub fn all_plans(tiles: &Tiles, shape: (usize, usize, usize), scratch: usize) -> Vec<MatmulPlan> {
    (0..TIERS.len())
        .flat_map(|tier| {
            (0..=MAX_SPLITS.ilog2())
                .filter_map(move |e| plan_tier(tiles, tier, 1 << e, shape, scratch))
        })
        .collect()
}

/// The largest tiles that fill the GPU with at most a few slices of K: the 128-wide tiles
/// unsplit, the mid tiles with up to 8 slices, else the small tiles with up to
/// [`MAX_SPLITS`] (as many as it takes to reach [`MIN_GROUPS`]), within [`plan_tier`]'s
/// limits (so a K that is not a multiple of 4 takes the scalar tier).
pub fn plan_matmul(tiles: &Tiles, shape: (usize, usize, usize), scratch: usize) -> MatmulPlan {
    let fill = |tier: usize| {
        let mut plan = plan_tier(tiles, tier, 1, shape, scratch)?;
        while plan.groups[0] * plan.groups[1] * plan.splits < MIN_GROUPS {
            match plan_tier(tiles, tier, 2 * plan.splits, shape, scratch) {
                Some(p) => plan = p,
                None => break,
            }
        }
        Some(plan)
    };
    // The scalar tier only runs what the wide kernels cannot.
    (0..3)
        .filter_map(fill)
        .find(|p| p.groups[0] * p.groups[1] * p.splits >= MIN_GROUPS)
        .or_else(|| fill(2))
        .or_else(|| fill(3))
        .expect("the scalar tier takes any shape")
}

/// The plan for a software adapter (SwiftShader, lavapipe: the "GPU" is a few CPU threads,
/// each dispatch costs about a millisecond and workgroup barriers are slow) where its f32
/// products cannot run barrier-free (`matmul_direct`: f16 storage, K not a multiple of 4):
/// K unsplit, on the mid tiles (64×64), else the scalar tier. Native SwiftShader without subgroups,
/// favicon-s batch 1 (`bench --plans`, this 2-core machine): the mid tiles unsplit are the
/// fastest plan of 5 of the 6 products and within 8% on the last; a step takes 1.49 s
/// against 2.35 s with the GPU plan (split-K on the small tiles to fill 384 workgroups).
pub fn plan_matmul_software(tiles: &Tiles, shape: (usize, usize, usize)) -> MatmulPlan {
    plan_tier(tiles, 1, 1, shape, 0)
        .or_else(|| plan_tier(tiles, 3, 1, shape, 0))
        .expect("the scalar tier takes any shape")
}

/// Workgroups a tensor-core product must have to replace the plan of [`plan_matmul`]: with
/// fewer (the batch-1 products: 64 or 256 rows) each workgroup walks all of K alone and the
/// split-K plans of the f16 kernels are faster (`bench` on an H200: favicon-s batch 1 took
/// 23.8 ms on tensor cores for every product against 10.6 ms without). At 48 (an H200,
/// favicon-b batch 1, `WEBDIT_COOP_MIN_GROUPS=48`) MLP in runs unsplit with its SiLU, no
/// reduction, in 30.4 µs against 17.5 + 4.4 µs, and MLP out in 4 slices in 28.6 against
/// 17.5 µs in 8: generations 54.4–54.7 ms against 42.4–42.9.
pub const COOP_MIN_GROUPS: u32 = 64;

/// Workgroups below which a large product leaves the GPU short of one wave, and the most a
/// split-K on tensor cores takes ([`coop_splits`]): an H100 or H200 has 132 SMs, each
/// running one workgroup of the tensor-core tiles. 132 itself measured the same in whole
/// generations (favicon-b batch 1, BENCHMARKS.md).
pub const COOP_WAVE: u32 = 128;

/// The tensor-core tile and workgroups of an `m × n × k` product through `epilogue`, if it
/// has [`COOP_MIN_GROUPS`]: for products of at least 2³² multiply-adds (1.3–1.6× faster on
/// an H200) with an epilogue it is built for, the 256×128 tile, or the 192×128 one where
/// that gives more workgroups and the 256-row tile fewer than [`COOP_WAVE`] (favicon-b
/// batch 16's MLP out: 132 against 96, 1.4× faster on an H100); else the 128×128 tile.
pub fn plan_coop(
    (m, n, k): (usize, usize, usize),
    epilogue: Epilogue,
    min_groups: u32,
) -> Option<(CoopTile, [u32; 3])> {
    let groups = |tile: CoopTile| {
        let t = tile.tiles();
        [(n as u32).div_ceil(t.bn), (m as u32).div_ceil(t.bm), 1]
    };
    let count = |g: [u32; 3]| g[0] * g[1];
    let built = |tile: CoopTile| tile.epilogues().contains(&epilogue);
    let (large, fill) = (groups(CoopTile::Large), groups(CoopTile::Fill));
    let tile = if (m as u64 * n as u64 * k as u64) < 1 << 32 {
        CoopTile::Base
    } else if built(CoopTile::Fill) && count(large) < COOP_WAVE && count(fill) > count(large) {
        CoopTile::Fill
    } else if built(CoopTile::Large) {
        CoopTile::Large
    } else {
        CoopTile::Base
    };
    let g = groups(tile);
    (count(g) >= min_groups).then_some((tile, g))
}

/// The length of each slice of K (the last one: what is left) of a split into `splits`:
/// `k / splits` where that is a multiple of 4, else whole K-steps of the tensor-core tiles
/// ([`COOP_STEP`]); K then splits into `splits` slices only where
/// `k.div_ceil(slice_len(k, splits)) == splits`.
pub fn slice_len(k: usize, splits: u32) -> usize {
    let s = splits as usize;
    if k.is_multiple_of(4 * s) {
        k / s
    } else {
        k.div_ceil(s).next_multiple_of(COOP_STEP)
    }
}

/// The length of the slices (but the last) if K splits into `splits` slices on tensor
/// cores: K a multiple of 4, `splits` slices of [`slice_len`] (the last one not empty), each
/// at least [`COOP_MIN_SLICE`] long.
pub fn coop_slice(k: usize, splits: u32) -> Option<usize> {
    let part = slice_len(k, splits);
    let fits = k.is_multiple_of(4) && k.div_ceil(part) == splits as usize;
    (fits && part >= COOP_MIN_SLICE).then_some(part)
}

/// The K-step of the tensor-core tiles: an uneven split's slices are multiples of it.
pub const COOP_STEP: usize = COOP_TILES.bk as usize;

/// One split-K over tensor cores: slices of K, workgroups of one slice, and whether on the
/// 64×128 tile ([`COOP_TILES_SPLIT`]) rather than the 128×128 one ([`COOP_TILES`]).
pub type CoopSplit = (u32, [u32; 3], bool);

/// Every split-K over tensor cores of an `m × n × k` product within one wave: the 64×128
/// tile, and for more than [`COOP_SPLIT_SMALL_M`] rows the 128×128 one, in 2 to
/// [`MAX_SPLITS`] slices of K ([`slice_len`]: even where K divides into multiples of 4,
/// else whole K-steps and a shorter last one) at least [`COOP_MIN_SLICE`] long, partial
/// outputs within `scratch` floats, at most [`COOP_WAVE`] workgroups in all.
pub fn coop_splits(
    (m, n, k): (usize, usize, usize),
    scratch: usize,
) -> impl Iterator<Item = CoopSplit> {
    let tiles = [(COOP_TILES_SPLIT, true), (COOP_TILES, false)];
    tiles
        .into_iter()
        .filter(move |(_, small)| *small || m > COOP_SPLIT_SMALL_M)
        .flat_map(move |(t, small)| {
            let groups = [(n as u32).div_ceil(t.bn), (m as u32).div_ceil(t.bm), 1];
            (2..=MAX_SPLITS)
                .filter(move |s| coop_slice(k, *s).is_some() && m * n * *s as usize <= scratch)
                .filter(move |s| groups[0] * groups[1] * s <= COOP_WAVE)
                .map(move |s| (s, groups, small))
        })
}

/// The split-K over tensor cores of a product [`plan_coop`] leaves short of workgroups: of
/// [`coop_splits`], the one with the most workgroups; of two with as many, the 128×128
/// tile where its slices are at least [`COOP_LONG_SLICE`] long, else the 64×128 one.
/// Measured on an H200 (`bench --coop-splits`, BENCHMARKS.md): over the model's split
/// products at batch 1, 4 and 16 this picks the fastest split or one within 1 µs of it,
/// where the fewest slices that reached 64 workgroups (the rule before) left favicon-s
/// batch 16's MLP out at 37.9 µs against 24.4 and sent the small products (under 64
/// workgroups) to the slower f16 kernels. None: no split fits.
pub fn plan_coop_split(shape: (usize, usize, usize), scratch: usize) -> Option<CoopSplit> {
    pick_coop_split(shape, coop_splits(shape, scratch))
}

/// The best of `splits` of the product `(m, n, k)` by [`plan_coop_split`]'s rule.
pub fn pick_coop_split(
    (_, _, k): (usize, usize, usize),
    splits: impl Iterator<Item = CoopSplit>,
) -> Option<CoopSplit> {
    splits.max_by_key(|&(s, g, small)| {
        let rank = match small {
            true => 1,
            false if slice_len(k, s) >= COOP_LONG_SLICE => 2,
            false => 0,
        };
        (g[0] * g[1] * s, rank)
    })
}

/// The most rows a split-K on tensor cores takes only the 64×128 tile for (H100: 64 rows
/// 23% faster on it than on the 128×128 one, which multiplies half zeros there).
pub const COOP_SPLIT_SMALL_M: usize = 64;

/// The shortest slice of K of a split on tensor cores: one K-step of its tiles (H200: 64
/// rows × 384 × 512 in 16 slices of 32, 4.7 µs, against 5.6 in 8 slices).
pub const COOP_MIN_SLICE: usize = 32;

/// Slices of K at least this long do enough work between a K-step's barriers for the
/// 128×128 tile to beat the 64×128 one at the same workgroups (H200: favicon-s batch 16's
/// MLP out, slices of 512, 24.4 against 35.5 µs; its attention out, slices of 32, 11.2
/// against 9.6 µs).
pub const COOP_LONG_SLICE: usize = 128;

/// The longest sequence attention runs a few rows per workgroup for
/// ([`attention_by_rows`]). Measured on an H200 (BENCHMARKS.md): 64 tokens 5.8 µs by rows
/// against 10.6 µs in the best slices at batch 1 (7.9 against 11.3 at batch 16); 256 tokens
/// 22.7 against 15.6 µs (batch 1) and 110.9 against 57.4 µs (batch 16), where each
/// workgroup's serial walk over the keys dominates.
pub const ATTENTION_ROWS_MAX_N: usize = 64;
const _: () = assert!(ATTENTION_ROWS_MAX_N <= webdit_kernels::attention::ROWS_MAX_N as usize);

/// Whether attention over `n` tokens of heads `dim_head` wide runs
/// [`webdit_kernels::attention::attention_rows`] (`ROWS` query rows per workgroup, the exact
/// softmax in workgroup memory) instead of 32-row blocks (in key slices where those are
/// few): short sequences, of heads a row variant is built for.
pub fn attention_by_rows(n: usize, dim_head: usize) -> bool {
    n <= ATTENTION_ROWS_MAX_N && webdit_kernels::attention_rows_width(dim_head).is_some()
}

/// Whether a model's attention can take its output projection, residual and AdaLN into the
/// same dispatch ([`webdit_kernels::attention::attention_rows_out`]): attention by rows,
/// one head a multiple of `4 · ROWS_OUT_GROUPS` (16) wide, rows of quads. Such a model's GPU
/// weights include each block's projection transposed (`blocks.i.to_out_t`).
pub fn attention_out_fusable(c: &crate::config::Config) -> bool {
    c.heads == 1
        && c.dim_head
            .is_multiple_of(4 * webdit_kernels::attention::ROWS_OUT_GROUPS as usize)
        && c.dim.is_multiple_of(4)
        && attention_by_rows(c.tokens(), c.dim_head)
}

/// Whether attention over `n` tokens, `heads` heads of `dim_head` and `batch` items runs on
/// tensor cores ([`webdit_kernels::attention_coop::attention_coop`]: 16 to 256 tokens, one of
/// [`webdit_kernels::ATTENTION_COOP_WIDTHS`] exactly) instead of in key slices: where its
/// 16-row blocks give at least [`ATTENTION_COOP_MIN_GROUPS`] workgroups.
pub fn attention_on_tensor_cores(n: usize, dim_head: usize, heads: usize, batch: usize) -> bool {
    use webdit_kernels::attention_coop::{COOP_BQ, COOP_MAX_N, COOP_MIN_N};
    (COOP_MIN_N as usize..=COOP_MAX_N as usize).contains(&n)
        && webdit_kernels::ATTENTION_COOP_WIDTHS.contains(&(dim_head as u32))
        && n.div_ceil(COOP_BQ as usize) * heads * batch >= ATTENTION_COOP_MIN_GROUPS
}

/// The fewest workgroups attention on tensor cores takes. On an H200 at favicon-b's 256
/// tokens: batch 16 (256 workgroups) 26.4 µs against 57 µs in two key slices and their
/// combine, whole generations 185–188 against 195–198 ms; batch 1 (16 workgroups) 13.9 µs
/// against 15.6 µs in eight slices and their combine, generations a tie (43.0 against
/// 43.4 ms, means of four and three; BENCHMARKS.md) with 12 dispatches a step fewer.
/// Fewer workgroups are not measured and keep the slices.
pub const ATTENTION_COOP_MIN_GROUPS: usize = 16;

/// Slices of the keys for attention over `n` tokens, `heads` heads and `batch` items: the
/// fewest (a power of 2, at most 16, each at least a key tile long) that give
/// [`ATTENTION_GROUPS`] workgroups; 1 runs the unsplit kernel.
pub fn attention_chunks(n: usize, heads: usize, batch: usize) -> u32 {
    use webdit_kernels::attention::{BKV, BQ};
    let groups = n.div_ceil(BQ as usize) * heads * batch;
    let mut chunks = 1u32;
    while groups * (chunks as usize) < ATTENTION_GROUPS as usize
        && chunks < 16
        && n / (2 * chunks as usize) >= BKV as usize
    {
        chunks *= 2;
    }
    chunks
}

/// Workgroups per row of [`webdit_kernels::norm::splitk_reduce_adaln_linear`], each taking
/// an eighth of the product's outputs (`bench --row-products` on an H200, favicon-s batch
/// 1's qkv alone: 20.7 µs with one workgroup a row, 7.5 with 4, 6.8–7.0 with 8).
pub const LINEAR_GROUPS: u32 = 8;

/// The most rows a reduction with its AdaLN also multiplies by the next product's weights
/// (`bench --row-products`, H200: 64×384×512 in 6.8–7.0 µs, about its split-K and
/// reduction; 256×576×768 in 28.6 µs, 2.7× theirs).
pub const LINEAR_ROWS_MAX: usize = 64;

/// Whether the AdaLN of `rows` rows of `d` values, planned in a split-K's reduction, also
/// runs the product of those rows ([`webdit_kernels::Key::SplitkReduceAdaLnLinear`]).
pub fn reduce_linear_fusable(rows: usize, d: usize) -> bool {
    rows <= LINEAR_ROWS_MAX && d <= webdit_kernels::matvec::MAX_K as usize && d.is_multiple_of(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_by_shape() {
        let t = Tiles::default();
        let p = |shape| {
            let p = plan_matmul(&t, shape, SCRATCH_FLOATS);
            (p.tier, p.splits)
        };
        assert_eq!(p((4096, 3072, 768)), ("matmul", 1));
        assert_eq!(p((4096, 768, 3072)), ("matmul_mid", 1));
        // Mid tiles with K split before the small tiles.
        assert_eq!(p((1024, 512, 2048)), ("matmul_mid", 4));
        assert_eq!(p((256, 3072, 768)), ("matmul_mid", 2));
        // Too small for anything else: small tiles, K split as far as it goes.
        assert_eq!(p((64, 512, 2048)), ("matmul_small", 16));
        assert_eq!(p((64, 384, 192)), ("matmul_small", 2));
        // K not a multiple of 4: never the wide kernels.
        assert_eq!(p((4096, 3072, 767)), ("matmul_scalar", 1));
        assert_eq!(p((64, 512, 2046)), ("matmul_scalar", 2));
        // No scratch: no split.
        assert_eq!(plan_matmul(&t, (64, 512, 2048), 0).splits, 1);
    }

    #[test]
    fn plans_are_valid_and_include_the_choice() {
        let t = Tiles::default();
        for shape in [
            (64, 384, 512),
            (1024, 512, 192),
            (4096, 3072, 768),
            (37, 70, 45),
        ] {
            let all = all_plans(&t, shape, SCRATCH_FLOATS);
            let (m, n, k) = shape;
            for p in &all {
                let slice = k / p.splits as usize;
                assert_eq!(slice * p.splits as usize, k, "{p:?}");
                assert!(p.splits == 1 || slice >= MIN_SLICE, "{p:?}");
                // The wide tiers read vec4s along K.
                assert!(p.tier == TIERS[3] || slice.is_multiple_of(4), "{p:?}");
                assert!(
                    p.groups[0] * p.tiles.bn >= n as u32 && p.groups[1] * p.tiles.bm >= m as u32
                );
            }
            assert!(
                all.contains(&plan_matmul(&t, shape, SCRATCH_FLOATS)),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn tensor_core_tiles_by_shape() {
        use Epilogue::*;
        let tile = |shape, e| plan_coop(shape, e, COOP_MIN_GROUPS).map(|(t, g)| (t, g[0] * g[1]));
        // favicon-b batch 16: MLP in fills the GPU on the 256-row tile (384 workgroups); MLP
        // out has 96 there and 132 on the 192-row tile.
        assert_eq!(tile((4096, 3072, 768), Silu), Some((CoopTile::Large, 384)));
        assert_eq!(
            tile((4096, 768, 3072), Accumulate),
            Some((CoopTile::Fill, 132))
        );
        // A batch twice as large: 192 on the 256-row tile, past a wave.
        assert_eq!(
            tile((8192, 768, 3072), Accumulate),
            Some((CoopTile::Large, 192))
        );
        // No 192-row variant of that epilogue: the 256-row tile.
        assert_eq!(tile((4096, 768, 3072), Silu), Some((CoopTile::Large, 96)));
        // An epilogue without large variants, and products under 2³² multiply-adds.
        assert_eq!(
            tile((4096, 768, 3072), AddRows),
            Some((CoopTile::Base, 192))
        );
        assert_eq!(tile((1024, 2048, 512), None), Some((CoopTile::Base, 128)));
        // Too few workgroups for tensor cores at all (favicon-s batch 1's MLP in).
        assert_eq!(tile((64, 2048, 512), None), Option::None);
    }

    #[test]
    fn tensor_core_splits_by_shape() {
        let split = |shape| {
            plan_coop_split(shape, SCRATCH_FLOATS).map(|(s, g, small)| (s, g[0] * g[1] * s, small))
        };
        // Every candidate: slices that divide K into multiples of 4 of at least one K-step,
        // within the scratch and one wave; 64 rows only on the 64-row tile.
        for shape in [
            (64, 384, 512),
            (256, 768, 3072),
            (1024, 512, 2048),
            (100, 70, 36),
        ] {
            let (m, n, k) = shape;
            for (s, g, small) in coop_splits(shape, SCRATCH_FLOATS) {
                let part = slice_len(k, s);
                let s = s as usize;
                assert!(
                    s >= 2 && part.is_multiple_of(4) && part >= COOP_MIN_SLICE,
                    "{shape:?}"
                );
                // s slices, the last one not empty.
                assert!((s - 1) * part < k && s * part >= k, "{shape:?} {s}");
                assert!(m * n * s <= SCRATCH_FLOATS && g[0] * g[1] * s as u32 <= COOP_WAVE);
                assert!(small || m > COOP_SPLIT_SMALL_M, "{shape:?}");
            }
        }
        // favicon-s batch 1: the 64-row tile, K down to slices of 32 (QKV) even where that
        // leaves fewer than 64 workgroups; MLP out fills 64.
        assert_eq!(split((64, 384, 512)), Some((16, 48, true)));
        assert_eq!(split((64, 512, 128)), Some((4, 16, true)));
        assert_eq!(split((64, 512, 2048)), Some((16, 64, true)));
        // favicon-b batch 1: MLP out on the 128×128 tile in 10 slices, 9 of 320 and one of
        // 192 (120 workgroups; 12 even slices would be 144, past a wave), QKV on the 64×128
        // one where the 128×128 tile would take slices of 64 for as many workgroups (120),
        // attention out in 4 slices.
        assert_eq!(split((256, 768, 3072)), Some((10, 120, false)));
        assert_eq!(slice_len(3072, 10), 320);
        assert_eq!(split((256, 576, 768)), Some((6, 120, true)));
        assert_eq!(split((256, 768, 192)), Some((4, 96, true)));
        // favicon-s batch 16: MLP out in 4 slices of 512 (128 workgroups).
        assert_eq!(split((1024, 512, 2048)), Some((4, 128, false)));
        // K too short to split into slices of 32: none.
        assert_eq!(split((256, 768, 48)), Option::None);
    }

    #[test]
    fn attention_slices() {
        // favicon-s batch 1: 2 query blocks × 1 head; 64 keys give at most 2 tiles of keys.
        assert_eq!(attention_chunks(64, 1, 1), 2);
        // favicon-b batch 1 and 16: 8 query blocks (× 16 items).
        assert_eq!(attention_chunks(256, 1, 1), 8);
        assert_eq!(attention_chunks(256, 1, 16), 2);
        // Large batches fill the GPU unsplit.
        assert_eq!(attention_chunks(256, 4, 16), 1);
        assert_eq!(attention_chunks(5, 1, 1), 1);
    }

    #[test]
    fn attention_on_tensor_cores_by_shape() {
        // favicon-b: 256 tokens of one 192-wide head, 16 workgroups an item.
        assert!(attention_on_tensor_cores(256, 192, 1, 16));
        assert!(attention_on_tensor_cores(256, 192, 1, 1));
        assert!(attention_on_tensor_cores(250, 192, 2, 4));
        // Too few workgroups: 8 for 128 tokens of one head and item.
        assert!(!attention_on_tensor_cores(128, 192, 1, 1));
        assert!(attention_on_tensor_cores(128, 192, 1, 2));
        // Widths without a variant, sequences out of range.
        assert!(!attention_on_tensor_cores(256, 128, 1, 16));
        assert!(!attention_on_tensor_cores(257, 192, 1, 16));
        assert!(!attention_on_tensor_cores(15, 192, 64, 16));
    }
}
