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
    /// Elements between rows of A and W (`k` unless the product covers a slice of K, as the
    /// partial products of a split-K do).
    pub k_stride: u32,
    /// Where K ends for the slices of a split-K: its partial products multiply slices `k`
    /// long from `z·k`, the last one cut here (so K need not divide evenly). `u32::MAX` for
    /// other products, whose batches all multiply `k`.
    pub k_total: u32,
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
            k_stride: k,
            k_total: u32::MAX,
        }
    }
}

/// How much of K workgroup batch `workgroup_id().z` multiplies: `p.k`, or what is left of
/// it before `p.k_total` where that is less (the last slice of an uneven split-K).
#[kernel_fn]
pub(crate) fn slice_k(p: MatmulParamsView) -> u32 {
    min(p.k, p.k_total - workgroup_id().z * p.k)
}

/// What happens to each output before it is stored; chosen at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `C = A·Wᵀ`
    None,
    /// `C = silu(A·Wᵀ)`
    Silu,
    /// `C += A·Wᵀ` (a residual connection, in place).
    Accumulate,
    /// `C = A·Wᵀ + extra[row % rows_period, col]` (e.g. a position embedding; a bias is
    /// one row, `rows_period = 1`).
    AddRows,
}

impl Epilogue {
    /// Every epilogue, in the registry's order.
    pub const ALL: [Epilogue; 4] = [
        Epilogue::None,
        Epilogue::Silu,
        Epilogue::Accumulate,
        Epilogue::AddRows,
    ];
}

/// Tile parameters of [`matmul`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulTiles {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
    /// Copies of the workgroup-memory tiles (wide kernel): 2 double-buffers them, so a
    /// K-step needs one barrier instead of two, at twice the workgroup memory.
    pub stages: u32,
    /// Iterations of the loop over a K-step's `bk` values unrolled in the WGSL (a divisor
    /// of `bk`; `bk` unrolls it fully). More unrolling is more WGSL and pipeline-creation
    /// time; what pays is measured per tile with `bench --sweep-unroll`.
    pub k_unroll: u32,
    /// K-steps whose global loads are in flight while one is multiplied (wide kernel): 1,
    /// or 2 (two sets of registers; an odd number of K-steps multiplies one step of zeros).
    pub prefetch: u32,
}

impl MatmulTiles {
    /// Tiles of the wide kernel (8×8 outputs per invocation).
    pub const fn wide(bm: u32, bn: u32, bk: u32, stages: u32) -> Self {
        MatmulTiles {
            bm,
            bn,
            bk,
            tm: 8,
            tn: 8,
            stages,
            k_unroll: 1,
            prefetch: 1,
        }
    }

    /// These tiles with `tm × tn` outputs per invocation (the wide kernel takes multiples
    /// of 4).
    pub const fn per_thread(self, tm: u32, tn: u32) -> Self {
        MatmulTiles { tm, tn, ..self }
    }

    /// These tiles with `k` iterations of the K-step's inner loop unrolled.
    pub const fn unrolled(self, k: u32) -> Self {
        MatmulTiles {
            k_unroll: k,
            ..self
        }
    }

    /// These tiles with each K-step's global loads issued `k` multiplies ahead (1 or 2).
    pub const fn ahead(self, k: u32) -> Self {
        MatmulTiles {
            prefetch: k,
            ..self
        }
    }

    /// Tiles of the scalar kernel (single-buffered).
    pub const fn scalar(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Self {
        MatmulTiles {
            bm,
            bn,
            bk,
            tm,
            tn,
            stages: 1,
            k_unroll: 1,
            prefetch: 1,
        }
    }

    /// Invocations per workgroup.
    pub fn threads(&self) -> u32 {
        (self.bm / self.tm) * (self.bn / self.tn)
    }

    /// 4×4 blocks (4 rows × 4 k) of the wide kernel's A tile per K-step.
    pub fn a_blocks(&self) -> u32 {
        self.bm / 4 * (self.bk / 4)
    }

    /// 4×4 blocks of the A and W tiles together per K-step.
    pub fn blocks(&self) -> u32 {
        (self.bm + self.bn) / 4 * (self.bk / 4)
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
    stride: u32,
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
                tile[kk * rows + r] = src[base + gr * stride + gk] as f32;
            } else {
                tile[kk * rows + r] = 0.0;
            }
        }
    }
}

/// `C = A·Wᵀ` with the chosen epilogue; inputs of type `A`, weights of type `W`, outputs
/// (C, extra) of type `C` (f32 or f16 each), accumulation in f32. With `C = f32` and
/// `K` split across `workgroup_id().z` (batch strides along K, `k_stride` the full row), it
/// computes the partial products of a split-K, which [`splitk_reduce`] sums.
#[kernel(workgroup_size = [t.bn / t.tn, t.bm / t.tm, 1])]
pub fn matmul<A: ScalarTy, W: ScalarTy, C: ScalarTy>(
    #[comptime] t: MatmulTiles,
    #[comptime] epilogue: Epilogue,
    a: &Array<A>,
    w: &Array<W>,
    c: &mut Array<C>,
    extra: &Array<C>,
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
    let k = slice_k(p);
    for k0 in (0..k).step_by(t.bk) {
        stage_tile(
            &a, &a_tile, t.bm, t.bk, threads, tid, a_base, row0, p.m, k0, k, p.k_stride,
        );
        stage_tile(
            &w, &w_tile, t.bn, t.bk, threads, tid, w_base, col0, p.n, k0, k, p.k_stride,
        );
        workgroup_barrier();
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
        if r < p.m {
            let at = c_base + r * p.n;
            #[unroll]
            for j in 0..t.tn {
                let col = col0 + tx + j * cols;
                if col < p.n {
                    store(
                        &c,
                        &extra,
                        epilogue,
                        at + col,
                        r,
                        col,
                        p.rows_period,
                        p.n,
                        acc[i * t.tn + j],
                    );
                }
            }
        }
    }
}

/// Loads rows `row..row+4` × columns `gk..gk+4` of a row-major matrix of `len` rows (rows
/// `stride` quads apart, `k` columns, a nonzero multiple of 4) into `regs[at..at+16]` row
/// by row, as f32: one `vec4` load per row, none of them in a branch, so that nothing
/// waits for them until [`store_blocks`] stages them. Rows past `len` repeat the last row
/// (they only reach outputs that are never stored) and columns past `k` repeat the last
/// quad ([`store_blocks`] zeroes them).
#[kernel_fn]
fn fetch_block<E: ScalarTy>(
    src: &Array<Vec4<E>>,
    regs: &mut LocalArray<f32>,
    #[comptime] at: u32,
    base: u32,
    row: u32,
    len: u32,
    gk: u32,
    k: u32,
    stride: u32,
) {
    let quad = min(gk, k - 4) / 4;
    #[unroll]
    for e in 0..4u32 {
        let q = src[base + min(row + e, len - 1) * stride + quad];
        regs[at + 4 * e] = q.x as f32;
        regs[at + 4 * e + 1] = q.y as f32;
        regs[at + 4 * e + 2] = q.z as f32;
        regs[at + 4 * e + 3] = q.w as f32;
    }
}

/// Where a workgroup's operands start and how far they reach: quad offsets of its batch's
/// A and W, its first row and column of C, the problem's size and the quads between rows
/// (see [`operands`]).
#[kernel_struct]
pub struct Operands {
    pub a_at: u32,
    pub w_at: u32,
    pub row0: u32,
    pub col0: u32,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub stride: u32,
}

/// The [`Operands`] of the workgroup whose block of C starts at (`row0`, `col0`), in batch
/// `workgroup_id().z` (A and W read as `Vec4`s: the batch strides and `k_stride` are
/// multiples of 4).
#[kernel_fn]
pub(crate) fn operands(p: MatmulParamsView, row0: u32, col0: u32) -> Operands {
    let batch = workgroup_id().z;
    Operands {
        a_at: batch * p.a_batch_stride / 4,
        w_at: batch * p.w_batch_stride / 4,
        row0,
        col0,
        m: p.m,
        n: p.n,
        k: slice_k(p),
        stride: p.k_stride / 4,
    }
}

/// Loads this invocation's share of the K-step at `k0` into registers, so that the loads
/// are in flight while the current step is computed: the A and W tiles cut into 4×4
/// blocks (4 rows × 4 consecutive k), the A tile's blocks first. `a_at`, `w_at` and
/// `stride` count quads.
#[kernel_fn]
fn fetch_blocks<A: ScalarTy, W: ScalarTy>(
    a: &Array<Vec4<A>>,
    w: &Array<Vec4<W>>,
    regs: &mut LocalArray<f32>,
    #[comptime] t: MatmulTiles,
    #[comptime] threads: u32,
    tid: u32,
    at: Operands,
    k0: u32,
) {
    #[comptime]
    let kq = t.bk / 4;
    #[unroll]
    for l in 0..t.blocks().div_ceil(threads) {
        let idx = tid + l * threads;
        let gk = k0 + 4 * (idx % kq);
        if holds_a(t, threads, l) || (!holds_w(t, threads, l) && idx < t.a_blocks()) {
            let row = at.row0 + 4 * (idx / kq);
            fetch_block(&a, &regs, 16 * l, at.a_at, row, at.m, gk, at.k, at.stride);
        } else if holds_w(t, threads, l) || idx < t.blocks() {
            let q = (idx - t.a_blocks()) / kq;
            let col = at.col0 + 4 * q;
            fetch_block(&w, &regs, 16 * l, at.w_at, col, at.n, gk, at.k, at.stride);
        }
    }
}

/// Whether pass `l` of [`fetch_blocks`] and [`store_blocks`] moves only blocks of the A tile
/// for every invocation, known when the kernel is expanded (so the WGSL has no branch).
fn holds_a(t: MatmulTiles, threads: u32, l: u32) -> bool {
    (l + 1) * threads <= t.a_blocks()
}

/// Whether pass `l` moves only blocks of the W tile for every invocation.
fn holds_w(t: MatmulTiles, threads: u32, l: u32) -> bool {
    l * threads >= t.a_blocks() && (l + 1) * threads <= t.blocks()
}

/// Stores what [`fetch_blocks`] loaded for the K-step at `k0` into the tiles (at quad
/// offsets `a_off`, `w_off`), transposed to `[bk][rows/4]` quads of 4 rows at one k, with
/// zeros at columns past `k`.
#[kernel_fn]
fn store_blocks(
    regs: &mut LocalArray<f32>,
    a_tile: &Shared<Vec4<f32>>,
    w_tile: &Shared<Vec4<f32>>,
    #[comptime] t: MatmulTiles,
    #[comptime] threads: u32,
    tid: u32,
    a_off: u32,
    w_off: u32,
    k0: u32,
    k: u32,
) {
    #[comptime]
    let kq = t.bk / 4;
    #[unroll]
    for l in 0..t.blocks().div_ceil(threads) {
        let idx = tid + l * threads;
        let kk = 4 * (idx % kq);
        let inside = k0 + kk < k;
        #[unroll]
        for j in 0..4u32 {
            let v = select(
                inside,
                vec4(
                    regs[16 * l + j],
                    regs[16 * l + 4 + j],
                    regs[16 * l + 8 + j],
                    regs[16 * l + 12 + j],
                ),
                vec4(0.0, 0.0, 0.0, 0.0),
            );
            if holds_a(t, threads, l) || (!holds_w(t, threads, l) && idx < t.a_blocks()) {
                a_tile[a_off + (kk + j) * (t.bm / 4) + idx / kq] = v;
            } else if holds_w(t, threads, l) || idx < t.blocks() {
                w_tile[w_off + (kk + j) * (t.bn / 4) + (idx - t.a_blocks()) / kq] = v;
            }
        }
    }
}

/// The wide variant of [`matmul`] for large products: `TM × TN` outputs per invocation
/// (multiples of 4), taken as 4-row by 4-column blocks spread evenly over the tile, so
/// that workgroup memory is read as `vec4`s (a quarter of the load instructions of the
/// scalar kernel) without bank conflicts. Global memory is read as `vec4`s too (so K,
/// `k_stride` and the batch strides must be multiples of 4), into registers one K-step
/// ahead of the math. With `t.stages == 2` the tiles are double-buffered, leaving one
/// barrier per K-step. Types and split-K partial products as in [`matmul`].
#[kernel(workgroup_size = [t.bn / t.tn, t.bm / t.tm, 1])]
pub fn matmul_wide<A: ScalarTy, W: ScalarTy, C: ScalarTy>(
    #[comptime] t: MatmulTiles,
    #[comptime] epilogue: Epilogue,
    a: &Array<Vec4<A>>,
    w: &Array<Vec4<W>>,
    c: &mut Array<C>,
    extra: &Array<C>,
    p: &Uniform<MatmulParams>,
) {
    #[comptime]
    let cols = t.bn / t.tn;
    #[comptime]
    let rows = t.bm / t.tm;
    #[comptime]
    let threads = cols * rows;
    #[comptime]
    let a_size = t.bk * t.bm / 4;
    #[comptime]
    let w_size = t.bk * t.bn / 4;
    #[comptime]
    let blocks = t.blocks();
    let a_tile = Shared::<Vec4<f32>>::new(t.stages * a_size);
    let w_tile = Shared::<Vec4<f32>>::new(t.stages * w_size);
    let tx = local_id().x;
    let ty = local_id().y;
    let tid = ty * cols + tx;
    let row0 = workgroup_id().y * t.bm;
    let col0 = workgroup_id().x * t.bn;
    let c_base = workgroup_id().z * p.c_batch_stride;
    // Outputs `(i, 4h..4h+4)` of this invocation in `acc[i·TN/4 + h]`.
    let mut acc = [vec4(0.0, 0.0, 0.0, 0.0); t.tm * t.tn / 4];
    let mut regs = [0.0; 16 * blocks.div_ceil(threads)];
    // Iteration `i` loads K-step `i` into registers, multiplies K-step `i - 1` (staged by the
    // previous iteration) while those loads are in flight, then stages K-step `i`: one copy
    // of each piece of code, the first and last iterations doing only their half.
    let at = operands(p, row0, col0);
    let k_steps = (at.k + t.bk - 1) / t.bk;
    if t.prefetch == 1 {
        for i in 0..k_steps + 1 {
            let fill = i < k_steps;
            if fill {
                fetch_blocks(&a, &w, &regs, t, threads, tid, at, i * t.bk);
            }
            if i > 0 {
                let s = (i - 1) % t.stages;
                multiply_tiles(&a_tile, &w_tile, &acc, t, s * a_size, s * w_size, tx, ty);
                if t.stages == 1 {
                    // Everyone has read the tiles before they are overwritten.
                    workgroup_barrier();
                }
            }
            if fill {
                let s = i % t.stages;
                store_blocks(
                    &regs,
                    &a_tile,
                    &w_tile,
                    t,
                    threads,
                    tid,
                    s * a_size,
                    s * w_size,
                    i * t.bk,
                    at.k,
                );
                workgroup_barrier();
            }
        }
    }
    // Two sets of registers: K-step `i` is staged from set `i % 2`, which is then refilled
    // with K-step `i + 2`, so each K-step's loads have two multiplies to arrive. Steps past
    // K stage as zeros: the barriers keep the loop's control flow uniform, so an odd count
    // multiplies one step of zeros.
    // Each set has its own branch, not a `select`: reading the other set would wait for
    // the loads still in flight into it.
    if t.prefetch == 2 {
        let mut regs2 = [0.0; 16 * blocks.div_ceil(threads)];
        fetch_blocks(&a, &w, &regs, t, threads, tid, at, 0);
        fetch_blocks(&a, &w, &regs2, t, threads, tid, at, t.bk);
        for i in (0..k_steps).step_by(2) {
            for h in 0..2u32 {
                let step = i + h;
                let s = step % t.stages;
                if h == 0 {
                    store_blocks(
                        &regs,
                        &a_tile,
                        &w_tile,
                        t,
                        threads,
                        tid,
                        s * a_size,
                        s * w_size,
                        step * t.bk,
                        at.k,
                    );
                } else {
                    store_blocks(
                        &regs2,
                        &a_tile,
                        &w_tile,
                        t,
                        threads,
                        tid,
                        s * a_size,
                        s * w_size,
                        step * t.bk,
                        at.k,
                    );
                }
                workgroup_barrier();
                if h == 0 {
                    fetch_blocks(&a, &w, &regs, t, threads, tid, at, (step + 2) * t.bk);
                } else {
                    fetch_blocks(&a, &w, &regs2, t, threads, tid, at, (step + 2) * t.bk);
                }
                multiply_tiles(&a_tile, &w_tile, &acc, t, s * a_size, s * w_size, tx, ty);
                if t.stages == 1 {
                    workgroup_barrier();
                }
            }
        }
    }
    #[unroll]
    for i in 0..t.tm {
        let r = row0 + (i / 4) * (4 * rows) + ty * 4 + i % 4;
        if r < p.m {
            let at = c_base + r * p.n;
            #[unroll]
            for h in 0..t.tn / 4 {
                let q = acc[i * (t.tn / 4) + h];
                let lanes = [q.x, q.y, q.z, q.w];
                #[unroll]
                for e in 0..4u32 {
                    let col = col0 + h * (4 * cols) + tx * 4 + e;
                    if col < p.n {
                        store(
                            &c,
                            &extra,
                            epilogue,
                            at + col,
                            r,
                            col,
                            p.rows_period,
                            p.n,
                            lanes[e],
                        );
                    }
                }
            }
        }
    }
}

/// The ceiling of [`matmul_wide`]'s inner product, for `bench --sweep --sweep-only
/// ceiling`: as many K-steps multiplied, but every one from the first K-step's tiles,
/// staged once, so there are no global loads or barriers after it. Its sums are not A·Wᵀ;
/// it stores them (C is f32, `extra` unused) so that the compiler keeps the math. Not in
/// the build.
#[kernel(workgroup_size = [t.bn / t.tn, t.bm / t.tm, 1])]
pub fn matmul_wide_ceiling<A: ScalarTy, W: ScalarTy>(
    #[comptime] t: MatmulTiles,
    a: &Array<Vec4<A>>,
    w: &Array<Vec4<W>>,
    c: &mut Array<f32>,
    extra: &Array<f32>,
    p: &Uniform<MatmulParams>,
) {
    #[comptime]
    let cols = t.bn / t.tn;
    #[comptime]
    let rows = t.bm / t.tm;
    #[comptime]
    let threads = cols * rows;
    let a_tile = Shared::<Vec4<f32>>::new(t.bk * t.bm / 4);
    let w_tile = Shared::<Vec4<f32>>::new(t.bk * t.bn / 4);
    let tx = local_id().x;
    let ty = local_id().y;
    let tid = ty * cols + tx;
    let row0 = workgroup_id().y * t.bm;
    let col0 = workgroup_id().x * t.bn;
    let mut acc = [vec4(0.0, 0.0, 0.0, 0.0); t.tm * t.tn / 4];
    let mut regs = [0.0; 16 * t.blocks().div_ceil(threads)];
    let at = operands(p, row0, col0);
    let k_steps = (at.k + t.bk - 1) / t.bk;
    fetch_blocks(&a, &w, &regs, t, threads, tid, at, 0);
    store_blocks(&regs, &a_tile, &w_tile, t, threads, tid, 0, 0, 0, at.k);
    workgroup_barrier();
    for i in 0..k_steps {
        multiply_tiles(&a_tile, &w_tile, &acc, t, 0, 0, tx, ty);
    }
    #[unroll]
    for i in 0..t.tm {
        let r = row0 + (i / 4) * (4 * rows) + ty * 4 + i % 4;
        #[unroll]
        for h in 0..t.tn / 4 {
            let q = acc[i * (t.tn / 4) + h];
            let col = col0 + h * (4 * cols) + tx * 4;
            if r < p.m && col < p.n {
                c[r * p.n + col] = q.x + q.y + q.z + q.w;
            }
        }
    }
}

/// One K-step of [`matmul_wide`]: `acc += A tile · W tileᵀ` for this invocation's outputs,
/// from the tiles at quad offsets `a_off`, `w_off`. W is read and accumulated as `vec4`s
/// (four output columns per `fma`).
#[kernel_fn]
fn multiply_tiles(
    a_tile: &Shared<Vec4<f32>>,
    w_tile: &Shared<Vec4<f32>>,
    acc: &mut LocalArray<Vec4<f32>>,
    #[comptime] t: MatmulTiles,
    a_off: u32,
    w_off: u32,
    tx: u32,
    ty: u32,
) {
    #[comptime]
    let cols = t.bn / t.tn;
    #[comptime]
    let rows = t.bm / t.tm;
    let mut av = [0.0; t.tm];
    let mut wv = [vec4(0.0, 0.0, 0.0, 0.0); t.tn / 4];
    // A GPU loop over the K-step, `k_unroll` values per iteration.
    for k0 in (0..t.bk).step_by(t.k_unroll) {
        #[unroll]
        for u in 0..t.k_unroll {
            let kk = k0 + u;
            read_quads(&a_tile, &av, t.tm / 4, rows, a_off + kk * (t.bm / 4) + ty);
            #[unroll]
            for h in 0..t.tn / 4 {
                wv[h] = w_tile[w_off + kk * (t.bn / 4) + tx + h * cols];
            }
            #[unroll]
            for i in 0..t.tm {
                let a = splat(av[i]);
                #[unroll]
                for h in 0..t.tn / 4 {
                    acc[i * (t.tn / 4) + h] = fma(a, wv[h], acc[i * (t.tn / 4) + h]);
                }
            }
        }
    }
}

/// Reads `quads` `vec4`s `stride` apart, from `tile[at]` on, into `regs[0..4·quads]`.
#[kernel_fn]
fn read_quads(
    tile: &Shared<Vec4<f32>>,
    regs: &mut LocalArray<f32>,
    #[comptime] quads: u32,
    #[comptime] stride: u32,
    at: u32,
) {
    #[unroll]
    for h in 0..quads {
        let q = tile[at + h * stride];
        regs[4 * h] = q.x;
        regs[4 * h + 1] = q.y;
        regs[4 * h + 2] = q.z;
        regs[4 * h + 3] = q.w;
    }
}

/// Stores one output through the epilogue.
#[kernel_fn]
pub(crate) fn store<A: ScalarTy>(
    c: &mut Array<A>,
    extra: &Array<A>,
    #[comptime] epilogue: Epilogue,
    at: u32,
    r: u32,
    col: u32,
    rows_period: u32,
    n: u32,
    v: f32,
) {
    if epilogue == Epilogue::None {
        c[at] = v as A;
    }
    if epilogue == Epilogue::Silu {
        c[at] = silu(v) as A;
    }
    if epilogue == Epilogue::Accumulate {
        c[at] = (c[at] as f32 + v) as A;
    }
    if epilogue == Epilogue::AddRows {
        c[at] = (v + extra[(r % rows_period) * n + col] as f32) as A;
    }
}

/// Stores output (`r`, `col`) of the C at `c_base` through the epilogue, if it lies inside
/// the `p.m × p.n` product.
#[kernel_fn]
pub(crate) fn store_inside<A: ScalarTy>(
    c: &mut Array<A>,
    extra: &Array<A>,
    #[comptime] epilogue: Epilogue,
    p: MatmulParamsView,
    c_base: u32,
    r: u32,
    col: u32,
    v: f32,
) {
    if r < p.m && col < p.n {
        let at = c_base + r * p.n + col;
        store(&c, &extra, epilogue, at, r, col, p.rows_period, p.n, v);
    }
}

/// The sum, from zero and in order, of the `splits` values `src[z·stride + at]` (one
/// output's partial products of a split-K): four loads at a time, each group issued before
/// it is added, so their latencies overlap where a loop of one load and one add would wait
/// for each. The order of the additions is the reduction's everywhere, so every kernel that
/// sums partial products this way gets the same bits.
#[kernel_fn]
pub(crate) fn sum_parts<E: ScalarTy>(src: &Array<E>, splits: u32, stride: u32, at: u32) -> f32 {
    let mut s = 0.0;
    let fours = splits / 4 * 4;
    for z in (0..fours).step_by(4) {
        let v0 = src[z * stride + at] as f32;
        let v1 = src[(z + 1) * stride + at] as f32;
        let v2 = src[(z + 2) * stride + at] as f32;
        let v3 = src[(z + 3) * stride + at] as f32;
        s += v0;
        s += v1;
        s += v2;
        s += v3;
    }
    for z in fours..splits {
        s += src[z * stride + at] as f32;
    }
    s
}

/// Shape of a split-K reduction: `splits` partial products of `mn` outputs each.
#[derive(Uniform)]
pub struct SplitParams {
    pub mn: u32,
    pub n: u32,
    pub splits: u32,
    pub rows_period: u32,
}

/// Sums the partial products of a split-K (`parts[z·mn + i]`) and stores each output
/// through the epilogue, one invocation per output.
#[kernel(workgroup_size = [256, 1, 1])]
pub fn splitk_reduce<A: ScalarTy>(
    #[comptime] epilogue: Epilogue,
    parts: &Array<f32>,
    c: &mut Array<A>,
    extra: &Array<A>,
    p: &Uniform<SplitParams>,
) {
    let i = global_id().x + global_id().y * (num_workgroups().x * 256);
    if i < p.mn {
        let s = sum_parts(&parts, p.splits, p.mn, i);
        store(
            &c,
            &extra,
            epilogue,
            i,
            i / p.n,
            i % p.n,
            p.rows_period,
            p.n,
            s,
        );
    }
}

/// The first quad of row `row` (the last row where `row` is past `len`) of a matrix whose
/// rows are `stride` quads apart, from quad `base`.
#[kernel_fn]
fn row_quad(base: u32, row: u32, len: u32, stride: u32) -> u32 {
    base + min(row, len - 1) * stride
}

/// The workgroup of the registry's [`matmul_direct`] variants: 16 rows × 4 columns of
/// invocations, a 64×16 block of C. `bench --software` on SwiftShader (favicon-s batch 1,
/// two runs): a block's four products took 8–16% less time than with 8×8 invocations, 2×32
/// and 4×16 in between; 4×8 outputs per invocation (W's row offsets in a local array) were
/// slower than 4×4.
pub const DIRECT: (u32, u32) = (16, 4);

/// The product without workgroup memory or barriers, for software adapters (SwiftShader,
/// lavapipe), which run a workgroup's invocations as SIMD lanes of one CPU thread and
/// switch coroutines at every barrier: each invocation computes a 4×4 block of C straight
/// from storage, 4 rows of A and 4 rows of W read as `vec4`s along K per step (K a multiple
/// of 4), 16 dot products into registers. A workgroup covers `4·rows × 4·cols` of C; rows
/// and columns past the edge read the last one and store nothing. f32 only (software
/// adapters have no `shader-f16`).
#[kernel(workgroup_size = [cols, rows, 1])]
pub fn matmul_direct(
    #[comptime] rows: u32,
    #[comptime] cols: u32,
    #[comptime] epilogue: Epilogue,
    a: &Array<Vec4<f32>>,
    w: &Array<Vec4<f32>>,
    c: &mut Array<f32>,
    extra: &Array<f32>,
    p: &Uniform<MatmulParams>,
) {
    let r0 = workgroup_id().y * (4 * rows) + 4 * local_id().y;
    let c0 = workgroup_id().x * (4 * cols) + 4 * local_id().x;
    let at = operands(p, r0, c0);
    // Each operand row's first quad, fixed before the loop (the edge rows read the last).
    let a0 = row_quad(at.a_at, r0, p.m, at.stride);
    let a1 = row_quad(at.a_at, r0 + 1, p.m, at.stride);
    let a2 = row_quad(at.a_at, r0 + 2, p.m, at.stride);
    let a3 = row_quad(at.a_at, r0 + 3, p.m, at.stride);
    let w0 = row_quad(at.w_at, c0, p.n, at.stride);
    let w1 = row_quad(at.w_at, c0 + 1, p.n, at.stride);
    let w2 = row_quad(at.w_at, c0 + 2, p.n, at.stride);
    let w3 = row_quad(at.w_at, c0 + 3, p.n, at.stride);
    let mut acc = [0.0f32; 16];
    for q in 0..p.k / 4 {
        let xs = [a[a0 + q], a[a1 + q], a[a2 + q], a[a3 + q]];
        let ws = [w[w0 + q], w[w1 + q], w[w2 + q], w[w3 + q]];
        #[unroll]
        for i in 0..4u32 {
            #[unroll]
            for j in 0..4u32 {
                acc[4 * i + j] += dot(xs[i], ws[j]);
            }
        }
    }
    let c_base = workgroup_id().z * p.c_batch_stride;
    for i in 0..4u32 {
        for j in 0..4u32 {
            store_inside(
                &c,
                &extra,
                epilogue,
                p,
                c_base,
                r0 + i,
                c0 + j,
                acc[4 * i + j],
            );
        }
    }
}
