//! Cooperative matrices: `N`×`N` tiles held collectively by the invocations of a subgroup,
//! multiplied and accumulated by the hardware's matrix units (tensor cores on NVIDIA,
//! simdgroup matrices on Apple). Native only: a kernel using them needs the adapter's
//! cooperative-matrix support (wgpu's `EXPERIMENTAL_COOPERATIVE_MATRIX`), and every
//! invocation of a subgroup must execute each operation together.
//!
//! ```
//! use webdit_dsl::prelude::*;
//! use webdit_dsl::coop::*;
//!
//! /// One 16×16 tile of `c = a · b` per workgroup of one subgroup (row-major, K = 16).
//! #[kernel(workgroup_size = [32, 1, 1])]
//! fn tile(a: &Array<f16>, b: &Array<f16>, c: &mut Array<f32>) {
//!     let x = coop_load::<CoopMat<f16, MatA, 16>>(a, 0u32, 16u32, true);
//!     let y = coop_load::<CoopMat<f16, MatB, 16>>(b, 0u32, 16u32, true);
//!     let z = coop_mul_add(x, y, coop_zero::<CoopMat<f32, MatC, 16>>());
//!     coop_store(z, c, 0u32, 16u32, true);
//! }
//! assert!(tile().uses_coop());
//! ```

use crate::builder::{push_stmt, Expr, IntoExpr, MemoryPlace};
use crate::ir::{CoopRole, Expr as IrExpr, Stmt, Type};
use crate::types::{FloatLike, ScalarTy, Ty};
use std::marker::PhantomData;

/// The role of a cooperative matrix in `c + a * b`.
pub trait Role: 'static {
    const ROLE: CoopRole;
}
/// The left operand (`N` rows of the product, `N` values of K).
pub struct MatA;
/// The right operand (`N` values of K, `N` columns of the product).
pub struct MatB;
/// The accumulator and result.
pub struct MatC;
impl Role for MatA {
    const ROLE: CoopRole = CoopRole::A;
}
impl Role for MatB {
    const ROLE: CoopRole = CoopRole::B;
}
impl Role for MatC {
    const ROLE: CoopRole = CoopRole::C;
}

/// An `N`×`N` cooperative matrix of `T` (`f16` or `f32`) in role `R`; `N` is 8 or 16.
pub struct CoopMat<T, R, const N: u32>(PhantomData<(T, R)>);

impl<T: ScalarTy + FloatLike, R: Role, const N: u32> Ty for CoopMat<T, R, N> {
    const TYPE: Type = Type::Coop {
        size: N as u8,
        scalar: T::SCALAR,
        role: R::ROLE,
    };
}

/// What [`coop_load`] and [`coop_store`] need of a matrix type.
pub trait CoopTy: Ty {
    type Elem: ScalarTy;
}
impl<T: ScalarTy + FloatLike, R: Role, const N: u32> CoopTy for CoopMat<T, R, N> {
    type Elem = T;
}

/// Loads a cooperative matrix from `from[offset..]` (a storage or workgroup array of its
/// element type): rows `stride` elements apart if `row_major`, else columns.
pub fn coop_load<M: CoopTy>(
    from: impl MemoryPlace<M::Elem>,
    offset: impl IntoExpr<u32>,
    stride: impl IntoExpr<u32>,
    row_major: bool,
) -> Expr<M> {
    let (offset, stride) = (offset.into_expr().id(), stride.into_expr().id());
    Expr::new(IrExpr::CoopLoad {
        place: from.place(),
        offset,
        stride,
        row_major,
    })
}

/// Stores a cooperative matrix to `to[offset..]` (layout as in [`coop_load`]).
pub fn coop_store<M: CoopTy>(
    value: Expr<M>,
    to: impl MemoryPlace<M::Elem>,
    offset: impl IntoExpr<u32>,
    stride: impl IntoExpr<u32>,
    row_major: bool,
) {
    let (offset, stride) = (offset.into_expr().id(), stride.into_expr().id());
    push_stmt(Stmt::CoopStore {
        value: value.id(),
        place: to.place(),
        offset,
        stride,
        row_major,
    });
}

/// `a * b + c`: inputs of `TA` (f16 on NVIDIA's tensor cores), accumulation in `TC`.
pub fn coop_mul_add<TA, TC, const N: u32>(
    a: Expr<CoopMat<TA, MatA, N>>,
    b: Expr<CoopMat<TA, MatB, N>>,
    c: Expr<CoopMat<TC, MatC, N>>,
) -> Expr<CoopMat<TC, MatC, N>>
where
    CoopMat<TA, MatA, N>: Ty,
    CoopMat<TA, MatB, N>: Ty,
    CoopMat<TC, MatC, N>: Ty,
{
    Expr::new(IrExpr::CoopMulAdd(a.id(), b.id(), c.id()))
}

/// A cooperative matrix of zeros (an accumulator's start).
pub fn coop_zero<M: CoopTy>() -> Expr<M> {
    Expr::new(IrExpr::Zero)
}
