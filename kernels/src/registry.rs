//! Every kernel variant the model uses, with its parameters, in one place.

use crate::matmul::{matmul, matmul_wide, Epilogue, MatmulTiles};
use webdit_dsl::ir::{Kernel, Limits};
use webdit_dsl::{f16, ScalarTy};

/// One compiled-to-WGSL instance of a kernel.
pub struct Variant {
    /// Unique name; the runtime looks kernels up by it.
    pub name: String,
    pub kernel: Kernel,
}

/// Tile sizes. `matmul` (picked at build time by a Cargo feature of `webdit-model`, see the
/// README) is the wide kernel's tile for large products, `matmul_f16` its tile for f16
/// storage (the same BM×BN, so both share one plan); products too small to fill the GPU
/// with it use `mid` (the wide kernel at 64×64) or `small` (the wide kernel at 32×32).
/// `scalar` (the scalar kernel at 32×32) runs what the wide kernel cannot: K not a multiple
/// of 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub matmul: MatmulTiles,
    pub matmul_f16: MatmulTiles,
    pub mid: MatmulTiles,
    pub small: MatmulTiles,
    pub scalar: MatmulTiles,
    /// The limits the large-product kernels need: WebGPU's defaults, or more for a
    /// native-only configuration (the runtime refuses it where the adapter lacks them).
    pub limits: Limits,
}

impl Tiles {
    /// The named tile configurations; the first is the default (the best of the sweep in
    /// BENCHMARKS.md).
    pub const CHOICES: &'static [(&'static str, Tiles)] = &[
        // f16 storage is fastest at 8×8 outputs and K-step 8 (BENCHMARKS.md). The K-step
        // loop unrolls 4 values per iteration at 8×16 (`bench --sweep-unroll` on an H200:
        // as fast as 8 at 4096³ and 4% slower at 4096×3072×768 for 28% less WGSL; full
        // unrolling slower still; none 14% slower) and fully at f16's K-step of 8.
        (
            "128x128k16-8x16",
            Tiles::wide(128, 128, 16, 1)
                .per_thread(8, 16)
                .unrolled(4)
                .f16(MatmulTiles::wide(128, 128, 8, 1).unrolled(8)),
        ),
        ("128x128k8", Tiles::wide(128, 128, 8, 1)),
        ("128x128", Tiles::wide(128, 128, 16, 1)),
        // Double-buffered 128×128 f32 tiles need 32 KiB of workgroup memory: native only.
        (
            "128x128s2",
            Tiles::wide(128, 128, 16, 2).native(Limits {
                max_workgroup_storage_bytes: 32768,
                ..Limits::WEBGPU
            }),
        ),
        ("128x64", Tiles::wide(128, 64, 8, 1)),
        ("64x64", Tiles::wide(64, 64, 8, 1)),
    ];

    /// Each matmul tier's tiles for f32 and for f16 storage, in [`MATMUL_TIERS`] order.
    pub fn tiers(&self) -> [(MatmulTiles, MatmulTiles); 4] {
        [
            (self.matmul, self.matmul_f16),
            (self.mid, self.mid),
            (self.small, self.small),
            (self.scalar, self.scalar),
        ]
    }

    /// These tiles with `tm × tn` outputs per invocation for large products.
    const fn per_thread(self, tm: u32, tn: u32) -> Tiles {
        Tiles {
            matmul: self.matmul.per_thread(tm, tn),
            ..self
        }
    }

    /// These tiles with `k` values of the K-step unrolled for large products.
    const fn unrolled(self, k: u32) -> Tiles {
        Tiles {
            matmul: self.matmul.unrolled(k),
            ..self
        }
    }

    /// These tiles with `t` for large products in f16 storage (`t` must cover the same
    /// BM×BN as the f32 tile).
    const fn f16(self, t: MatmulTiles) -> Tiles {
        Tiles {
            matmul_f16: t,
            ..self
        }
    }

    /// These tiles, declared native-only: their large-product kernels need `limits`.
    const fn native(self, limits: Limits) -> Tiles {
        Tiles { limits, ..self }
    }

    const fn wide(bm: u32, bn: u32, bk: u32, stages: u32) -> Tiles {
        let large = MatmulTiles::wide(bm, bn, bk, stages).unrolled(8);
        Tiles {
            matmul: large,
            matmul_f16: large,
            // Unrolling pays on the mid tile (4: 6% faster than none, 8 another 2% for 35%
            // more WGSL) but not on the small one, whose products are dispatch-bound
            // (`bench --sweep-unroll`).
            mid: MatmulTiles::wide(64, 64, 16, 1).unrolled(4),
            small: MatmulTiles::wide(32, 32, 16, 1).per_thread(4, 4),
            scalar: MatmulTiles::scalar(32, 32, 16, 2, 2),
            limits: Limits::WEBGPU,
        }
    }

    /// The configuration called `name` (e.g. `"128x64"`).
    pub fn named(name: &str) -> Option<Tiles> {
        Self::CHOICES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }
}

impl Default for Tiles {
    fn default() -> Self {
        Self::CHOICES[0].1
    }
}

/// Variant-name prefixes of the matmul tiers, largest tiles first. All but the last run the
/// wide kernel; `matmul_scalar` runs the scalar one (any K).
pub const MATMUL_TIERS: [&str; 4] = ["matmul", "matmul_mid", "matmul_small", "matmul_scalar"];

/// The kernel of tier `tier` (an index into [`MATMUL_TIERS`]) at tiles `t`.
fn tier_kernel<A: ScalarTy, W: ScalarTy, C: ScalarTy>(
    tiles: &Tiles,
    tier: usize,
    t: MatmulTiles,
    e: Epilogue,
) -> Kernel {
    let k = if tier + 1 == MATMUL_TIERS.len() {
        matmul::<A, W, C>(t, e)
    } else {
        matmul_wide::<A, W, C>(t, e)
    };
    if tier == 0 {
        k.needs(tiles.limits)
    } else {
        k
    }
}

/// The variant computing the f32 partial products of a split-K at tier `tier` (a
/// [`MATMUL_TIERS`] name) for data with variant suffix `sfx` (`""` or `"_f16"`): for f32
/// data that is the tier's plain product.
pub fn partial_variant(tier: &str, sfx: &str) -> String {
    if sfx.is_empty() {
        tier.to_string()
    } else {
        format!("{tier}_partial{sfx}")
    }
}

/// The head widths attention variants are built for; a model uses the smallest that fits.
pub const ATTENTION_WIDTHS: [u32; 3] = [64, 128, 192];

/// Epilogues and their variant-name suffixes (a bias is `_addrows` with one row).
pub const EPILOGUES: [(Epilogue, &str); 4] = [
    (Epilogue::None, ""),
    (Epilogue::Silu, "_silu"),
    (Epilogue::Accumulate, "_acc"),
    (Epilogue::AddRows, "_addrows"),
];

/// Builds every registered variant with the given tiles. f32 variants are named plainly;
/// `_f16` variants keep weights and activations in f16 (accumulating in f32) and need
/// `shader-f16`.
pub fn registry(tiles: &Tiles) -> Vec<Variant> {
    use crate::sampler::*;
    use crate::{attention::*, layout::*, matmul::*, matmul_coop::*, matvec::*, norm::*};
    let mut v = vec![];
    let mut add = |name: String, kernel: Kernel| v.push(Variant { name, kernel });
    let tiers = MATMUL_TIERS.into_iter().zip(tiles.tiers()).enumerate();
    for (e, suffix) in EPILOGUES {
        for (i, (name, (t, t16))) in tiers.clone() {
            add(
                format!("{name}{suffix}"),
                tier_kernel::<f32, f32, f32>(tiles, i, t, e),
            );
            add(
                format!("{name}{suffix}_f16"),
                tier_kernel::<f16, f16, f16>(tiles, i, t16, e),
            );
        }
        add(format!("splitk_reduce{suffix}"), splitk_reduce::<f32>(e));
        add(
            format!("splitk_reduce{suffix}_f16"),
            splitk_reduce::<f16>(e),
        );
    }
    // Partial products of a split-K of f16 data (every tier but the largest) write f32;
    // those of f32 data are the tier's plain variant (see [`partial_variant`]).
    for (i, (name, (t, _))) in tiers.skip(1) {
        add(
            format!("{name}_partial_f16"),
            tier_kernel::<f16, f16, f32>(tiles, i, t, Epilogue::None),
        );
    }
    // Tensor cores (native-only: the runtime uses them where the adapter has cooperative
    // matrices; the web build leaves them out).
    for (e, suffix) in EPILOGUES {
        for (name, t) in [
            ("matmul_coop", COOP_TILES),
            ("matmul_coop_large", COOP_TILES_LARGE),
        ] {
            add(
                format!("{name}{suffix}_f16"),
                matmul_coop::<f16>(t, e).needs(t.limits()),
            );
        }
    }
    for (silu, suffix) in [(false, ""), (true, "_silu")] {
        add(format!("matvec{suffix}"), matvec::<f32, f32>(silu));
        add(format!("matvec{suffix}_w16"), matvec::<f32, f16>(silu));
    }
    add("attention_d64".into(), attention::<f32, 64>());
    add("attention_d128".into(), attention::<f32, 128>());
    add("attention_d192".into(), attention::<f32, 192>());
    add("attention_d64_f16".into(), attention::<f16, 64>());
    add("attention_d128_f16".into(), attention::<f16, 128>());
    add("attention_d192_f16".into(), attention::<f16, 192>());
    add("attention_split_d64".into(), attention_split::<f32, 64>());
    add("attention_split_d128".into(), attention_split::<f32, 128>());
    add("attention_split_d192".into(), attention_split::<f32, 192>());
    add(
        "attention_split_d64_f16".into(),
        attention_split::<f16, 64>(),
    );
    add(
        "attention_split_d128_f16".into(),
        attention_split::<f16, 128>(),
    );
    add(
        "attention_split_d192_f16".into(),
        attention_split::<f16, 192>(),
    );
    add("attention_combine".into(), attention_combine::<f32>());
    add("attention_combine_f16".into(), attention_combine::<f16>());
    add("adaln".into(), adaln::<f32, 256>(false));
    add("adaln_f16".into(), adaln::<f16, 256>(false));
    // With subgroup sums: native-only; the runtime picks them where the adapter has subgroups.
    add("adaln_sg".into(), adaln::<f32, 256>(true));
    add("adaln_sg_f16".into(), adaln::<f16, 256>(true));
    add("patchify".into(), patchify::<f32, 256>());
    add("patchify_f16".into(), patchify::<f16, 256>());
    add("unpatchify".into(), unpatchify::<f32, 256>());
    add("unpatchify_f16".into(), unpatchify::<f16, 256>());
    add("timestep_embedding".into(), timestep_embedding::<256>());
    add("sampler_step".into(), sampler_step::<256>());
    add("silu".into(), crate::elementwise::silu_map::<256>());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_tiles_share_the_plan() {
        for (name, t) in Tiles::CHOICES {
            assert_eq!(
                (t.matmul.bm, t.matmul.bn),
                (t.matmul_f16.bm, t.matmul_f16.bn),
                "{name}"
            );
        }
    }
}
