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

use crate::elementwise::silu;
use webdit_dsl::prelude::*;

/// Problem size: `C[m, n] = A[m, k] · W[n, k]ᵀ`, for `batch` (`workgroup_id().z`) problems
/// whose operands start `*_batch_stride` elements apart (0 to share an operand).
#[derive(Uniform)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub a_batch_stride: u32,
    pub w_batch_stride: u32,
    pub c_batch_stride: u32,
    /// [`Epilogue::AddRows`]: row `r` adds row `r % rows_period` of `extra`.
    pub rows_period: u32,
}

impl MatmulParams {
    /// One unbatched product.
    pub fn new(m: u32, n: u32, k: u32) -> Self {
        MatmulParams {
            m,
            n,
            k,
            a_batch_stride: 0,
            w_batch_stride: 0,
            c_batch_stride: 0,
            rows_period: 1,
        }
    }
}

/// What happens to each output before it is stored; chosen at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    /// `C = A·Wᵀ`
    None,
    /// `C = A·Wᵀ + extra[col]` (a bias).
    Bias,
    /// `C = silu(A·Wᵀ)`
    Silu,
    /// `C += A·Wᵀ` (a residual connection, in place).
    Accumulate,
    /// `C = A·Wᵀ + extra[row % rows_period, col]` (e.g. a position embedding).
    AddRows,
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

/// Stages rows `row0..row0+rows` × columns `k0..k0+bk` of a row-major `[len, k]` matrix
/// into `tile` as `[bk][rows]`, with zeros outside the matrix.
#[kernel_fn]
fn stage_tile<E: ScalarTy>(
    src: &Array<E>,
    tile: &Shared<f32>,
    #[comptime] rows: u32,
    #[comptime] bk: u32,
    #[comptime] threads: u32,
    tid: u32,
    base: u32,
    row0: u32,
    len: u32,
    k0: u32,
    k: u32,
) {
    #[unroll]
    for l in 0..(rows * bk).div_ceil(threads) {
        let idx = tid + l * threads;
        let r = idx / bk;
        let kk = idx % bk;
        // Only the last pass can run past the tile, and only when threads do not divide it.
        if (l + 1) * threads <= rows * bk || r < rows {
            let gr = row0 + r;
            let gk = k0 + kk;
            if gr < len && gk < k {
                tile[kk * rows + r] = src[base + gr * k + gk] as f32;
            } else {
                tile[kk * rows + r] = 0.0;
            }
        }
    }
}

/// `C = A·Wᵀ` with the chosen epilogue; activations (A, C, extra) of type `A`, weights of
/// type `W` (f32 or f16), accumulation in f32.
#[kernel(workgroup_size = [t.bn / t.tn, t.bm / t.tm, 1])]
pub fn matmul<A: ScalarTy, W: ScalarTy>(
    #[comptime] t: MatmulTiles,
    #[comptime] epilogue: Epilogue,
    a: &Array<A>,
    w: &Array<W>,
    c: &mut Array<A>,
    extra: &Array<A>,
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
    let batch = workgroup_id().z;
    let a_base = batch * p.a_batch_stride;
    let w_base = batch * p.w_batch_stride;
    let c_base = batch * p.c_batch_stride;
    let mut acc = [0.0; t.tm * t.tn];
    let mut ar = [0.0; t.tm];
    let mut wr = [0.0; t.tn];
    for k0 in (0..p.k).step_by(t.bk) {
        stage_tile(
            &a, &a_tile, t.bm, t.bk, threads, tid, a_base, row0, p.m, k0, p.k,
        );
        stage_tile(
            &w, &w_tile, t.bn, t.bk, threads, tid, w_base, col0, p.n, k0, p.k,
        );
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
                let at = c_base + r * p.n + col;
                let v = acc[i * t.tn + j];
                if epilogue == Epilogue::None {
                    c[at] = v as A;
                }
                if epilogue == Epilogue::Bias {
                    c[at] = (v + extra[col] as f32) as A;
                }
                if epilogue == Epilogue::Silu {
                    c[at] = silu(v) as A;
                }
                if epilogue == Epilogue::Accumulate {
                    c[at] = (c[at] as f32 + v) as A;
                }
                if epilogue == Epilogue::AddRows {
                    c[at] = (v + extra[(r % p.rows_period) * p.n + col] as f32) as A;
                }
            }
        }
    }
}
