//! Every kernel variant the model uses, with its parameters, in one place.

use crate::matmul::MatmulTiles;
use webdit_dsl::ir::Kernel;

/// One compiled-to-WGSL instance of a kernel.
pub struct Variant {
    /// Unique name; the runtime looks kernels up by it.
    pub name: &'static str,
    pub kernel: Kernel,
}

/// Tile sizes picked at build time (Cargo features of `webdit-model`, see its README).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub matmul: MatmulTiles,
}

impl Tiles {
    /// The named tile configurations; the first is the default.
    pub const CHOICES: &'static [(&'static str, Tiles)] = &[
        ("64x64", Tiles::matmul(64, 64, 16, 4, 4)),
        ("128x64", Tiles::matmul(128, 64, 16, 8, 4)),
        ("128x128", Tiles::matmul(128, 128, 16, 8, 8)),
        ("32x32", Tiles::matmul(32, 32, 16, 2, 2)),
    ];

    const fn matmul(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Tiles {
        Tiles {
            matmul: MatmulTiles { bm, bn, bk, tm, tn },
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

/// Builds every registered variant with the given tiles.
pub fn registry(tiles: &Tiles) -> Vec<Variant> {
    use crate::{elementwise::*, matmul::*, norm::*};
    vec![
        Variant {
            name: "matmul",
            kernel: matmul(tiles.matmul),
        },
        Variant {
            name: "adaln",
            kernel: adaln::<256>(),
        },
        Variant {
            name: "silu",
            kernel: silu_map::<256>(),
        },
    ]
}
