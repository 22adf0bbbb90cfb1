//! Register-tiled matrix multiplication `C = A · Wᵀ` for weights in PyTorch's `[out, in]`
//! layout.
//!
//! A workgroup computes a `BM × BN` tile of C; each invocation owns `TM × TN` outputs held
//! in registers. Per K-step of `BK`, the workgroup stages an A tile and a W tile in
//! workgroup memory (transposed to `[BK][BM]` / `[BK][BN]` so the inner loop reads rows),
//! then every invocation does `TM·TN·BK` multiply-adds from registers. An invocation's
//! outputs are interleaved (`row = ty + i·BM/TM`), which keeps workgroup-memory reads
//! conflict-free and global stores coalesced. Edges (M, N, K not multiples of the tile)
//! load zeros and skip stores.

use webdit_dsl::prelude::*;

/// Problem size: `C[m, n] = A[m, k] · W[n, k]ᵀ`.
#[derive(Uniform)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
}

/// Tile parameters of [`matmul`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulTiles {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
}

impl MatmulTiles {
    /// Invocations per workgroup.
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }
}

#[kernel(workgroup_size = [t.bn / t.tn, t.bm / t.tm, 1])]
pub fn matmul(
    #[comptime] t: MatmulTiles,
    a: &Array<f32>,
    w: &Array<f32>,
    c: &mut Array<f32>,
    p: &Uniform<MatmulParams>,
) {
    #[comptime]
    let threads = t.threads();
    #[comptime]
    let cols = t.bn / t.tn;
    #[comptime]
    let rows = t.bm / t.tm;
    let a_tile = Shared::<f32>::new(t.bk * t.bm);
    let w_tile = Shared::<f32>::new(t.bk * t.bn);
    let tx = local_id().x;
    let ty = local_id().y;
    let tid = ty * cols + tx;
    let row0 = workgroup_id().y * t.bm;
    let col0 = workgroup_id().x * t.bn;
    let mut acc = [0.0; t.tm * t.tn];
    let mut ar = [0.0; t.tm];
    let mut wr = [0.0; t.tn];
    for k0 in (0..p.k).step_by(t.bk) {
        #[unroll]
        for l in 0..(t.bm * t.bk).div_ceil(threads) {
            let idx = tid + l * threads;
            let r = idx / t.bk;
            let kk = idx % t.bk;
            if r < t.bm {
                let gr = row0 + r;
                let gk = k0 + kk;
                if gr < p.m && gk < p.k {
                    a_tile[kk * t.bm + r] = a[gr * p.k + gk];
                } else {
                    a_tile[kk * t.bm + r] = 0.0;
                }
            }
        }
        #[unroll]
        for l in 0..(t.bn * t.bk).div_ceil(threads) {
            let idx = tid + l * threads;
            let r = idx / t.bk;
            let kk = idx % t.bk;
            if r < t.bn {
                let gr = col0 + r;
                let gk = k0 + kk;
                if gr < p.n && gk < p.k {
                    w_tile[kk * t.bn + r] = w[gr * p.k + gk];
                } else {
                    w_tile[kk * t.bn + r] = 0.0;
                }
            }
        }
        workgroup_barrier();
        #[unroll]
        for kk in 0..t.bk {
            #[unroll]
            for i in 0..t.tm {
                ar[i] = a_tile[kk * t.bm + ty + i * rows];
            }
            #[unroll]
            for j in 0..t.tn {
                wr[j] = w_tile[kk * t.bn + tx + j * cols];
            }
            #[unroll]
            for i in 0..t.tm {
                #[unroll]
                for j in 0..t.tn {
                    acc[i * t.tn + j] = fma(ar[i], wr[j], acc[i * t.tn + j]);
                }
            }
        }
        workgroup_barrier();
    }
    #[unroll]
    for i in 0..t.tm {
        let r = row0 + ty + i * rows;
        #[unroll]
        for j in 0..t.tn {
            let col = col0 + tx + j * cols;
            if r < p.m && col < p.n {
                c[r * p.n + col] = acc[i * t.tn + j];
            }
        }
    }
}
