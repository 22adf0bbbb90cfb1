//! Every kernel variant the model uses, with its parameters, in one place.

use crate::matmul::{matmul, matmul_wide, Epilogue, MatmulTiles};
use crate::matmul_coop::{CoopTiles, COOP_TILES, COOP_TILES_FILL, COOP_TILES_LARGE};
use webdit_dsl::ir::{Kernel, Limits};
use webdit_dsl::{f16, ScalarTy};

/// One compiled-to-WGSL instance of a kernel.
pub struct Variant {
    pub key: Key,
    /// Unique name (`key.name()`).
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
        // The K-step of 8 double-buffered in 16 KiB (one barrier per K-step, each
        // invocation's share of a K-step's loads in 16 registers), 16×8 outputs per
        // invocation, the K-step fully unrolled: 41.4–41.5 TFLOP/s at 4096³ on an H200
        // (cuBLAS SGEMM 51.1; `bench --sweep --sweep-only next`), and the fastest at every
        // large product of the models. f16 storage keeps 8×8 outputs at K-step 8, fully
        // unrolled (35.0 TFLOP/s): K-step 16 fully unrolled is faster (37.3) but puts the
        // build over its WGSL budget.
        (
            "128x128k8s2-16x8",
            Tiles::wide(128, 128, 8, 2)
                .per_thread(16, 8)
                .unrolled(8)
                .f16(MatmulTiles::wide(128, 128, 8, 1).unrolled(8)),
        ),
        // The previous default: K-step 16 single-buffered, 8×16 outputs, 4 K values unrolled
        // per iteration (35.3 TFLOP/s); f16 storage at 8×8, K-step 8, fully unrolled.
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

/// A matmul tier: which tiles of [`Tiles`] a product runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    Large,
    Mid,
    Small,
    Scalar,
}

impl Tier {
    /// Largest tiles first.
    pub const ALL: [Tier; 4] = [Tier::Large, Tier::Mid, Tier::Small, Tier::Scalar];

    pub fn name(self) -> &'static str {
        MATMUL_TIERS[self as usize]
    }
}

/// Storage precision of a kernel's activations and weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Store {
    F32,
    /// f16 storage, f32 accumulation (needs `shader-f16`).
    F16,
}

impl Store {
    /// The variant-name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Store::F32 => "",
            Store::F16 => "_f16",
        }
    }
}

/// The head widths attention variants are built for; a model uses the smallest that fits.
/// Heads up to 64 wide run the 128 variants (the 64 pair, 28 KB, went to
/// [`Key::AttentionRowsOut`]).
pub const ATTENTION_WIDTHS: [u32; 2] = [128, 192];
/// The head widths of `attention::attention_rows`'s (and `attention_rows_out`'s) variants:
/// no preset has short sequences of 192-wide heads, and that pair (20 KB) went to the WGSL
/// budget of [`Key::CoopPartialOfSilu`]; such a model runs attention in slices. Heads up to
/// 64 wide run the 128 variants (the 64 pair, 17 KB, went to [`Key::AttentionRowsOut`]).
pub const ATTENTION_ROWS_WIDTHS: [u32; 1] = [128];

/// The head widths of `attention_coop::attention_coop`'s variants (tensor cores; the head
/// width must match exactly).
pub const ATTENTION_COOP_WIDTHS: [u32; 1] = [192];

/// The head width of the attention variants for heads `dim_head` wide: the smallest of
/// [`ATTENTION_WIDTHS`] that fits, if any does.
pub fn attention_width(dim_head: usize) -> Option<u32> {
    smallest_fitting(&ATTENTION_WIDTHS, dim_head)
}

/// The head width of the row-attention variants for heads `dim_head` wide: the smallest of
/// [`ATTENTION_ROWS_WIDTHS`] that fits, if any does.
pub fn attention_rows_width(dim_head: usize) -> Option<u32> {
    smallest_fitting(&ATTENTION_ROWS_WIDTHS, dim_head)
}

/// The first of `widths` (ascending) that holds heads `dim_head` wide.
fn smallest_fitting(widths: &[u32], dim_head: usize) -> Option<u32> {
    widths.iter().copied().find(|w| *w as usize >= dim_head)
}

/// Partial products [`Key::CoopPartialOfSilu`] sums as it loads A: the split of favicon-s's
/// MLP-in product at batch 1 on tensor cores (64×2048×512, K/4). Another split keeps its
/// reduction (each count is a 26 KB variant of the WGSL budget).
pub const COOP_SILU_PARTS: [u32; 1] = [4];

/// The tile a whole product on tensor cores runs on ([`Key::Coop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoopTile {
    /// 128×128 ([`COOP_TILES`]): products too small for the others, every epilogue.
    Base,
    /// 256×128 ([`COOP_TILES_LARGE`]): large products, the epilogues of
    /// [`COOP_LARGE_EPILOGUES`].
    Large,
    /// 192×128 ([`COOP_TILES_FILL`]): large products the 256-row tile leaves short of a
    /// wave, the epilogues of [`COOP_FILL_EPILOGUES`].
    Fill,
}

impl CoopTile {
    pub const ALL: [CoopTile; 3] = [CoopTile::Base, CoopTile::Large, CoopTile::Fill];

    pub const fn tiles(self) -> CoopTiles {
        match self {
            CoopTile::Base => COOP_TILES,
            CoopTile::Large => COOP_TILES_LARGE,
            CoopTile::Fill => COOP_TILES_FILL,
        }
    }

    /// The epilogues the build has a variant of this tile for.
    pub fn epilogues(self) -> &'static [Epilogue] {
        match self {
            CoopTile::Base => &Epilogue::ALL,
            CoopTile::Large => &COOP_LARGE_EPILOGUES,
            CoopTile::Fill => &COOP_FILL_EPILOGUES,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            CoopTile::Base => "",
            CoopTile::Large => "_large",
            CoopTile::Fill => "_m192",
        }
    }
}

/// The epilogues of the 256×128 tensor-core variants: those of an MLP's products, the only
/// ones of the presets large enough for that tile (favicon-b batch 16); a large product
/// with another epilogue runs on the 128×128 tile (each large variant is 22 KB of WGSL).
pub const COOP_LARGE_EPILOGUES: [Epilogue; 2] = [Epilogue::Silu, Epilogue::Accumulate];

/// The epilogues of the 192×128 tensor-core variants: MLP out's, the one product of the
/// presets the 256-row tile leaves short of a wave (favicon-b batch 16: 96 workgroups);
/// another such product runs on the 256-row tile (each variant is ~24 KB of WGSL).
pub const COOP_FILL_EPILOGUES: [Epilogue; 1] = [Epilogue::Accumulate];

/// An epilogue's variant-name suffix (a bias is `_addrows` with one row).
fn epilogue_suffix(e: Epilogue) -> &'static str {
    match e {
        Epilogue::None => "",
        Epilogue::Silu => "_silu",
        Epilogue::Accumulate => "_acc",
        Epilogue::AddRows => "_addrows",
    }
}

/// A kernel variant, typed: the one list the registry, the build script and the runtime
/// derive from. [`Key::name`] is the variant's name (its WGSL file, its pipeline label);
/// [`Key::all`] is every variant a build compiles; [`Key::kernel`] builds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `out = a · wᵀ` through an epilogue, at a tier's tiles.
    Matmul {
        tier: Tier,
        epilogue: Epilogue,
        store: Store,
    },
    /// `out = a · wᵀ` through an epilogue without workgroup memory or barriers, for
    /// software adapters (f32; K a multiple of 4).
    MatmulDirect {
        epilogue: Epilogue,
    },
    /// The f32 partial products of a split-K over f16 data (tiers below the largest).
    MatmulPartialF16 {
        tier: Tier,
    },
    /// Sums a split-K's partial products through an epilogue.
    SplitkReduce {
        epilogue: Epilogue,
        store: Store,
    },
    /// Tensor cores (f16 data; native-only) on one of the whole-product tiles.
    Coop {
        tile: CoopTile,
        epilogue: Epilogue,
    },
    /// The f32 partial products of a split-K on tensor cores (f16 data): 128×128 tiles, or
    /// with `small` 64×128 (`matmul_coop::COOP_TILES_SPLIT`, products of ≤ 64 rows).
    CoopPartial {
        small: bool,
    },
    /// [`Key::CoopPartial`] (64×128 tiles) whose A operand is `silu` of the sum of another
    /// split-K's `parts` partial products ([`COOP_SILU_PARTS`]): that split-K's reduction
    /// moved into this product's loads.
    CoopPartialOfSilu {
        parts: u32,
    },
    /// `out = x · wᵀ` for a few rows (the timestep path, f32), optionally through SiLU.
    Matvec {
        silu: bool,
    },
    /// Attention for head widths up to `width`: the output, or with the keys in slices
    /// each slice's partial outputs and statistics.
    Attention {
        width: u32,
        store: Store,
    },
    /// Attention for short sequences, a few query rows per workgroup (see
    /// `attention::attention_rows`).
    AttentionRows {
        width: u32,
        store: Store,
    },
    /// Attention on tensor cores (f16 data; native-only) for heads exactly `width` wide and
    /// sequences of 16 to 256 tokens (see `attention_coop::attention_coop`).
    AttentionCoop {
        width: u32,
    },
    /// [`Key::AttentionRows`] for one head, with the output projection, the residual and the
    /// next AdaLN in the same dispatch (see `attention::attention_rows_out`).
    AttentionRowsOut {
        width: u32,
        store: Store,
    },
    /// Combines [`Key::Attention`]'s slices.
    AttentionCombine {
        store: Store,
    },
    /// Adaptive layer norm, its row sums through subgroups (native-only) or workgroup memory.
    AdaLn {
        subgroups: bool,
        store: Store,
    },
    /// Adaptive layer norm by one invocation per row, without barriers, for software
    /// adapters (f32).
    AdaLnSerial,
    /// A split-K reduction through an epilogue (accumulate, or add rows), then the AdaLN of
    /// every stored row, in one dispatch.
    SplitkReduceAdaLn {
        epilogue: Epilogue,
        subgroups: bool,
        store: Store,
    },
    /// [`Key::SplitkReduceAdaLn`] (with subgroups) and the product of its rows by the next
    /// weights, for products of too few rows to tile (see `norm::splitk_reduce_adaln_linear`).
    SplitkReduceAdaLnLinear {
        epilogue: Epilogue,
        store: Store,
    },
    Patchify {
        store: Store,
    },
    Unpatchify {
        store: Store,
    },
    TimestepEmbedding,
    /// The sampler's update of the image, reading eps and writing the next patch
    /// embedding's input in token layout.
    SamplerStep {
        store: Store,
    },
    /// [`Key::SamplerStep`] of f16 data reading eps as f32: the last product's f32 partial
    /// products, or their f32 sum (f32 data's plain variant reads those as they are).
    SamplerStepOfParts,
}

impl Key {
    /// The variant computing the f32 partial products of a split-K at `tier` over data
    /// stored as `store`: for f32 data that is the tier's plain product.
    pub fn partial(tier: Tier, store: Store) -> Key {
        match store {
            Store::F32 => Key::Matmul {
                tier,
                epilogue: Epilogue::None,
                store,
            },
            Store::F16 => Key::MatmulPartialF16 { tier },
        }
    }

    /// The variant's name.
    pub fn name(&self) -> String {
        match *self {
            Key::Matmul {
                tier,
                epilogue,
                store,
            } => format!(
                "{}{}{}",
                tier.name(),
                epilogue_suffix(epilogue),
                store.suffix()
            ),
            Key::MatmulPartialF16 { tier } => format!("{}_partial_f16", tier.name()),
            Key::MatmulDirect { epilogue } => format!("matmul_direct{}", epilogue_suffix(epilogue)),
            Key::SplitkReduce { epilogue, store } => format!(
                "splitk_reduce{}{}",
                epilogue_suffix(epilogue),
                store.suffix()
            ),
            Key::Coop { tile, epilogue } => format!(
                "matmul_coop{}{}_f16",
                tile.suffix(),
                epilogue_suffix(epilogue)
            ),
            Key::CoopPartial { small } => {
                format!("matmul_coop_partial{}_f16", if small { "_m64" } else { "" })
            }
            Key::CoopPartialOfSilu { parts } => format!("matmul_coop_partial_of_silu{parts}_f16"),
            Key::Matvec { silu } => format!("matvec{}", if silu { "_silu" } else { "" }),
            Key::Attention { width, store } => format!("attention_d{width}{}", store.suffix()),
            Key::AttentionRows { width, store } => {
                format!("attention_rows_d{width}{}", store.suffix())
            }
            Key::AttentionRowsOut { width, store } => {
                format!("attention_rows_out_d{width}{}", store.suffix())
            }
            Key::AttentionCoop { width } => format!("attention_coop_d{width}_f16"),
            Key::AttentionCombine { store } => format!("attention_combine{}", store.suffix()),
            Key::AdaLn { subgroups, store } => format!(
                "adaln{}{}",
                if subgroups { "_sg" } else { "" },
                store.suffix()
            ),
            Key::AdaLnSerial => "adaln_serial".into(),
            Key::Patchify { store } => format!("patchify{}", store.suffix()),
            Key::Unpatchify { store } => format!("unpatchify{}", store.suffix()),
            Key::TimestepEmbedding => "timestep_embedding".into(),
            Key::SplitkReduceAdaLn {
                epilogue,
                subgroups,
                store,
            } => format!(
                "splitk_reduce{}_adaln{}{}",
                epilogue_suffix(epilogue),
                if subgroups { "_sg" } else { "" },
                store.suffix()
            ),
            Key::SplitkReduceAdaLnLinear { epilogue, store } => format!(
                "splitk_reduce{}_adaln_linear{}",
                epilogue_suffix(epilogue),
                store.suffix()
            ),
            Key::SamplerStep { store } => format!("sampler_step{}", store.suffix()),
            Key::SamplerStepOfParts => "sampler_step_of_parts_f16".into(),
        }
    }

    /// Every variant of a build, in the registry's order.
    pub fn all() -> Vec<Key> {
        let stores = [Store::F32, Store::F16];
        let mut v = vec![];
        for epilogue in Epilogue::ALL {
            for tier in Tier::ALL {
                for store in stores {
                    v.push(Key::Matmul {
                        tier,
                        epilogue,
                        store,
                    });
                }
            }
            for store in stores {
                v.push(Key::SplitkReduce { epilogue, store });
            }
        }
        for tier in &Tier::ALL[1..] {
            v.push(Key::MatmulPartialF16 { tier: *tier });
        }
        for epilogue in Epilogue::ALL {
            v.push(Key::MatmulDirect { epilogue });
        }
        for tile in CoopTile::ALL {
            for &epilogue in tile.epilogues() {
                v.push(Key::Coop { tile, epilogue });
            }
        }
        for small in [false, true] {
            v.push(Key::CoopPartial { small });
        }
        for parts in COOP_SILU_PARTS {
            v.push(Key::CoopPartialOfSilu { parts });
        }
        for silu in [false, true] {
            v.push(Key::Matvec { silu });
        }
        for store in stores {
            for width in ATTENTION_WIDTHS {
                v.push(Key::Attention { width, store });
            }
        }
        for store in stores {
            v.push(Key::AttentionCombine { store });
        }
        for width in ATTENTION_COOP_WIDTHS {
            v.push(Key::AttentionCoop { width });
        }
        for store in stores {
            for width in ATTENTION_ROWS_WIDTHS {
                v.push(Key::AttentionRows { width, store });
            }
        }
        for store in stores {
            for width in ATTENTION_ROWS_WIDTHS {
                v.push(Key::AttentionRowsOut { width, store });
            }
        }
        for subgroups in [false, true] {
            for store in stores {
                v.push(Key::AdaLn { subgroups, store });
            }
        }
        v.push(Key::AdaLnSerial);
        for epilogue in [Epilogue::Accumulate, Epilogue::AddRows] {
            for subgroups in [false, true] {
                for store in stores {
                    v.push(Key::SplitkReduceAdaLn {
                        epilogue,
                        subgroups,
                        store,
                    });
                }
            }
            // f16 storage only: the fusion pays there (`forward::Options::norm_linear_fused`).
            v.push(Key::SplitkReduceAdaLnLinear {
                epilogue,
                store: Store::F16,
            });
        }
        for store in stores {
            v.push(Key::Patchify { store });
        }
        for store in stores {
            v.push(Key::Unpatchify { store });
        }
        v.push(Key::TimestepEmbedding);
        for store in stores {
            v.push(Key::SamplerStep { store });
        }
        v.push(Key::SamplerStepOfParts);
        v
    }

    /// The variant's kernel at `tiles`.
    pub fn kernel(&self, tiles: &Tiles) -> Kernel {
        use crate::sampler::*;
        use crate::{attention::*, attention_coop::*, layout::*, matmul::*, matmul_coop::*};
        use crate::{matvec::*, norm::*};
        /// Builds a kernel generic over the storage type.
        macro_rules! by_store {
            ($store:expr, $f:ident $(::<$($g:tt),*>)? ($($arg:expr),*)) => {
                match $store {
                    Store::F32 => $f::<f32 $($(, $g)*)?>($($arg),*),
                    Store::F16 => $f::<f16 $($(, $g)*)?>($($arg),*),
                }
            };
        }
        match *self {
            Key::Matmul {
                tier,
                epilogue,
                store,
            } => {
                let (t, t16) = tiles.tiers()[tier as usize];
                match store {
                    Store::F32 => tier_kernel::<f32, f32, f32>(tiles, tier, t, epilogue),
                    Store::F16 => tier_kernel::<f16, f16, f16>(tiles, tier, t16, epilogue),
                }
            }
            Key::MatmulPartialF16 { tier } => {
                let (t, _) = tiles.tiers()[tier as usize];
                tier_kernel::<f16, f16, f32>(tiles, tier, t, Epilogue::None)
            }
            Key::MatmulDirect { epilogue } => matmul_direct(DIRECT.0, DIRECT.1, epilogue),
            Key::SplitkReduce { epilogue, store } => by_store!(store, splitk_reduce(epilogue)),
            Key::Coop { tile, epilogue } => {
                let t = tile.tiles();
                matmul_coop::<f16, f16>(t, epilogue, 0).needs(t.limits())
            }
            Key::CoopPartial { small } => {
                let t = if small { COOP_TILES_SPLIT } else { COOP_TILES };
                matmul_coop::<f16, f32>(t, Epilogue::None, 0).needs(t.limits())
            }
            Key::CoopPartialOfSilu { parts } => {
                let t = COOP_TILES_SPLIT;
                matmul_coop::<f32, f32>(t, Epilogue::None, parts).needs(t.limits())
            }
            Key::Matvec { silu } => matvec::<f32, f32>(silu),
            Key::Attention { width, store } => match width {
                128 => by_store!(store, attention::<128>()),
                _ => by_store!(store, attention::<192>()),
            },
            Key::AttentionCoop { width } => match width {
                192 => attention_coop::<192>().needs(coop_attention_limits(width)),
                _ => panic!("no attention_coop variant is built for width {width}"),
            },
            Key::AttentionCombine { store } => by_store!(store, attention_combine()),
            Key::AttentionRows { width, store } => match width {
                128 => by_store!(store, attention_rows::<128>()),
                _ => panic!("no attention_rows variant is built for width {width}"),
            },
            Key::AttentionRowsOut { width, store } => match width {
                128 => by_store!(store, attention_rows_out::<128>(ROWS_OUT_GROUPS)),
                _ => panic!("no attention_rows_out variant is built for width {width}"),
            },
            Key::AdaLn { subgroups, store } => by_store!(store, adaln::<256>(subgroups)),
            Key::AdaLnSerial => adaln::<f32, 1>(false),
            Key::Patchify { store } => by_store!(store, patchify::<256>()),
            Key::Unpatchify { store } => by_store!(store, unpatchify::<256>()),
            Key::TimestepEmbedding => timestep_embedding::<256>(),
            Key::SplitkReduceAdaLn {
                epilogue,
                subgroups,
                store,
            } => by_store!(store, splitk_reduce_adaln::<256>(epilogue, subgroups)),
            Key::SplitkReduceAdaLnLinear { epilogue, store } => {
                by_store!(store, splitk_reduce_adaln_linear::<256>(epilogue))
            }
            Key::SamplerStep { store } => match store {
                Store::F32 => sampler_step::<f32, f32, 256>(),
                Store::F16 => sampler_step::<f16, f16, 256>(),
            },
            Key::SamplerStepOfParts => sampler_step::<f16, f32, 256>(),
        }
    }
}

/// The kernel of `tier` at tiles `t`.
fn tier_kernel<A: ScalarTy, W: ScalarTy, C: ScalarTy>(
    tiles: &Tiles,
    tier: Tier,
    t: MatmulTiles,
    e: Epilogue,
) -> Kernel {
    match tier {
        Tier::Scalar => matmul::<A, W, C>(t, e),
        Tier::Large => matmul_wide::<A, W, C>(t, e).needs(tiles.limits),
        Tier::Mid | Tier::Small => matmul_wide::<A, W, C>(t, e),
    }
}

/// Builds every registered variant with the given tiles. f32 variants are named plainly;
/// `_f16` variants keep weights and activations in f16 (accumulating in f32) and need
/// `shader-f16`; the tensor-core, subgroup and (with such tiles) large-tile variants are
/// native-only (the web build leaves them out; the runtime uses them where the adapter
/// grants what they need).
pub fn registry(tiles: &Tiles) -> Vec<Variant> {
    Key::all()
        .into_iter()
        .map(|key| Variant {
            name: key.name(),
            kernel: key.kernel(tiles),
            key,
        })
        .collect()
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

    #[test]
    fn names_are_unique() {
        let names: std::collections::HashSet<String> = Key::all().iter().map(Key::name).collect();
        assert_eq!(names.len(), Key::all().len());
    }
}
