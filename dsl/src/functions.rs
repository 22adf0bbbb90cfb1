//! Built-in values and math functions available in kernels.

use crate::builder::AtomicPlace;
use crate::builder::{builtin, Expr, IntoExpr};
use crate::ir::{AtomicOp, Builtin, Expr as IrExpr, MathFn, SubgroupOp};
use crate::types::AtomicInt;
use crate::types::{Arith, FloatLike, ScalarTy, Ty, Vec2, Vec3, Vec4, VecTy};

/// The invocation's id in the whole dispatch.
pub fn global_id() -> Expr<Vec3<u32>> {
    builtin(Builtin::GlobalId)
}
/// The invocation's id in its workgroup.
pub fn local_id() -> Expr<Vec3<u32>> {
    builtin(Builtin::LocalId)
}
/// The invocation's linear index in its workgroup.
pub fn local_index() -> Expr<u32> {
    builtin(Builtin::LocalIndex)
}
/// The workgroup's id in the dispatch.
pub fn workgroup_id() -> Expr<Vec3<u32>> {
    builtin(Builtin::WorkgroupId)
}
/// The dispatch's size in workgroups.
pub fn num_workgroups() -> Expr<Vec3<u32>> {
    builtin(Builtin::NumWorkgroups)
}

/// Lanes per subgroup (the hardware's SIMD width: 32 on NVIDIA, 32 or 64 on AMD, ...).
/// Subgroup builtins and operations make a kernel need the adapter's subgroup support.
pub fn subgroup_size() -> Expr<u32> {
    builtin(Builtin::SubgroupSize)
}
/// The invocation's lane in its subgroup.
pub fn subgroup_invocation_id() -> Expr<u32> {
    builtin(Builtin::SubgroupInvocationId)
}
/// The subgroup's index in the workgroup.
pub fn subgroup_id() -> Expr<u32> {
    builtin(Builtin::SubgroupId)
}
/// Subgroups per workgroup.
pub fn num_subgroups() -> Expr<u32> {
    builtin(Builtin::NumSubgroups)
}

fn subgroup<T: Ty>(
    op: SubgroupOp,
    value: crate::ir::ExprId,
    lane: Option<crate::ir::ExprId>,
) -> Expr<T> {
    Expr::new(IrExpr::Subgroup { op, value, lane })
}

/// The sum of `v` over the active lanes of the subgroup, in every lane.
pub fn subgroup_add<T: Arith>(v: impl IntoExpr<T>) -> Expr<T> {
    subgroup(SubgroupOp::Add, v.into_expr().id(), None)
}
/// The maximum of `v` over the active lanes of the subgroup, in every lane.
pub fn subgroup_max<T: Arith>(v: impl IntoExpr<T>) -> Expr<T> {
    subgroup(SubgroupOp::Max, v.into_expr().id(), None)
}
/// The minimum of `v` over the active lanes of the subgroup, in every lane.
pub fn subgroup_min<T: Arith>(v: impl IntoExpr<T>) -> Expr<T> {
    subgroup(SubgroupOp::Min, v.into_expr().id(), None)
}
/// Lane `lane`'s `v` (a compile-time lane), in every lane.
pub fn subgroup_broadcast<T: Ty>(v: impl IntoExpr<T>, lane: u32) -> Expr<T> {
    let lane = lane.into_expr().id();
    subgroup(SubgroupOp::Broadcast, v.into_expr().id(), Some(lane))
}
/// Lane `lane`'s `v`, for each lane its own `lane`.
pub fn subgroup_shuffle<T: Ty>(v: impl IntoExpr<T>, lane: impl IntoExpr<u32>) -> Expr<T> {
    let lane = lane.into_expr().id();
    subgroup(SubgroupOp::Shuffle, v.into_expr().id(), Some(lane))
}
/// The `v` of lane `subgroup_invocation_id() ^ mask` (butterfly reductions).
pub fn subgroup_shuffle_xor<T: Ty>(v: impl IntoExpr<T>, mask: impl IntoExpr<u32>) -> Expr<T> {
    let mask = mask.into_expr().id();
    subgroup(SubgroupOp::ShuffleXor, v.into_expr().id(), Some(mask))
}

fn atomic<T: AtomicInt>(
    op: AtomicOp,
    array: impl AtomicPlace<T>,
    index: impl IntoExpr<u32>,
    value: Option<crate::ir::ExprId>,
) -> Expr<T> {
    let index = index.into_expr().id();
    Expr::new(IrExpr::Atomic {
        op,
        place: array.place(),
        index,
        value,
    })
}

/// Reads `array[index]` atomically.
pub fn atomic_load<T: AtomicInt>(array: impl AtomicPlace<T>, index: impl IntoExpr<u32>) -> Expr<T> {
    atomic(AtomicOp::Load, array, index, None)
}

macro_rules! atomic_rmw {
    ($($name:ident => $op:ident: $doc:literal),*) => {$(
        #[doc = $doc]
        #[doc = "Returns the element's previous value."]
        pub fn $name<T: AtomicInt>(
            array: impl AtomicPlace<T>,
            index: impl IntoExpr<u32>,
            value: impl IntoExpr<T>,
        ) -> Expr<T> {
            let value = value.into_expr().id();
            atomic(AtomicOp::$op, array, index, Some(value))
        }
    )*};
}
atomic_rmw!(
    atomic_add => Add: "Adds `value` to `array[index]` atomically.",
    atomic_sub => Sub: "Subtracts `value` from `array[index]` atomically.",
    atomic_min => Min: "Keeps the smaller of `array[index]` and `value`, atomically.",
    atomic_max => Max: "Keeps the larger of `array[index]` and `value`, atomically.",
    atomic_and => And: "Bitwise-ands `array[index]` with `value` atomically.",
    atomic_or => Or: "Bitwise-ors `array[index]` with `value` atomically.",
    atomic_xor => Xor: "Bitwise-xors `array[index]` with `value` atomically.",
    atomic_exchange => Exchange: "Replaces `array[index]` with `value` atomically."
);

fn math<T: Ty>(f: MathFn, args: &[crate::ir::ExprId]) -> Expr<T> {
    Expr::new(IrExpr::Math(f, args.to_vec()))
}

macro_rules! unary_float {
    ($($name:ident => $f:ident: $doc:literal),*) => {$(
        #[doc = $doc]
        pub fn $name<T: FloatLike>(x: impl IntoExpr<T>) -> Expr<T> {
            math(MathFn::$f, &[x.into_expr().id()])
        }
    )*};
}
unary_float!(
    exp => Exp: "e^x.",
    exp2 => Exp2: "2^x.",
    log => Log: "Natural logarithm.",
    log2 => Log2: "Base-2 logarithm.",
    sqrt => Sqrt: "Square root.",
    inverse_sqrt => InverseSqrt: "1 / sqrt(x).",
    tanh => Tanh: "Hyperbolic tangent.",
    sin => Sin: "Sine.",
    cos => Cos: "Cosine.",
    floor => Floor: "Round down.",
    ceil => Ceil: "Round up.",
    round => Round: "Round to nearest, ties to even."
);

/// Absolute value.
pub fn abs<T: Arith>(x: impl IntoExpr<T>) -> Expr<T> {
    math(MathFn::Abs, &[x.into_expr().id()])
}
/// The smaller of two values.
pub fn min<T: Arith>(a: impl IntoExpr<T>, b: impl IntoExpr<T>) -> Expr<T> {
    math(MathFn::Min, &[a.into_expr().id(), b.into_expr().id()])
}
/// The larger of two values.
pub fn max<T: Arith>(a: impl IntoExpr<T>, b: impl IntoExpr<T>) -> Expr<T> {
    math(MathFn::Max, &[a.into_expr().id(), b.into_expr().id()])
}
/// `x` limited to `lo..=hi`.
pub fn clamp<T: Arith>(x: impl IntoExpr<T>, lo: impl IntoExpr<T>, hi: impl IntoExpr<T>) -> Expr<T> {
    let args = [x.into_expr().id(), lo.into_expr().id(), hi.into_expr().id()];
    math(MathFn::Clamp, &args)
}
/// `x^y`.
pub fn pow<T: FloatLike>(x: impl IntoExpr<T>, y: impl IntoExpr<T>) -> Expr<T> {
    math(MathFn::Pow, &[x.into_expr().id(), y.into_expr().id()])
}
/// `a * b + c` (fused where the GPU can).
pub fn fma<T: FloatLike>(a: impl IntoExpr<T>, b: impl IntoExpr<T>, c: impl IntoExpr<T>) -> Expr<T> {
    let args = [a.into_expr().id(), b.into_expr().id(), c.into_expr().id()];
    math(MathFn::Fma, &args)
}
/// Dot product of two vectors.
pub fn dot<V: VecTy>(a: impl IntoExpr<V>, b: impl IntoExpr<V>) -> Expr<V::Elem> {
    math(MathFn::Dot, &[a.into_expr().id(), b.into_expr().id()])
}

/// `if cond { accept } else { reject }` as a value, without branching (both are evaluated).
pub fn select<T: Ty>(
    cond: impl IntoExpr<bool>,
    accept: impl IntoExpr<T>,
    reject: impl IntoExpr<T>,
) -> Expr<T> {
    let cond = cond.into_expr().id();
    let accept = accept.into_expr().id();
    let reject = reject.into_expr().id();
    Expr::new(IrExpr::Select {
        cond,
        accept,
        reject,
    })
}

/// A 2-component vector.
pub fn vec2<T: ScalarTy>(x: impl IntoExpr<T>, y: impl IntoExpr<T>) -> Expr<Vec2<T>> {
    Expr::new(IrExpr::Compose(vec![
        x.into_expr().id(),
        y.into_expr().id(),
    ]))
}
/// A 3-component vector.
pub fn vec3<T: ScalarTy>(
    x: impl IntoExpr<T>,
    y: impl IntoExpr<T>,
    z: impl IntoExpr<T>,
) -> Expr<Vec3<T>> {
    let c = vec![x.into_expr().id(), y.into_expr().id(), z.into_expr().id()];
    Expr::new(IrExpr::Compose(c))
}
/// A 4-component vector.
pub fn vec4<T: ScalarTy>(
    x: impl IntoExpr<T>,
    y: impl IntoExpr<T>,
    z: impl IntoExpr<T>,
    w: impl IntoExpr<T>,
) -> Expr<Vec4<T>> {
    let c = vec![
        x.into_expr().id(),
        y.into_expr().id(),
        z.into_expr().id(),
        w.into_expr().id(),
    ];
    Expr::new(IrExpr::Compose(c))
}

/// Vector components (`v.x`, ... in a kernel). One trait per component, so that `.z` on a
/// 2-vector is a compile error.
pub mod swizzle {
    use super::*;

    fn component<V: VecTy>(v: Expr<V>, i: u32) -> Expr<V::Elem> {
        Expr::new(IrExpr::Component(v.id(), i))
    }

    macro_rules! component {
        ($Trait:ident, $m:ident, $i:literal, $($v:ident),*) => {
            pub trait $Trait {
                type Elem;
                fn $m(&self) -> Expr<Self::Elem>;
            }
            $(impl<T: ScalarTy> $Trait for Expr<$v<T>> {
                type Elem = T;
                fn $m(&self) -> Expr<T> {
                    component(*self, $i)
                }
            })*
        };
    }
    component!(X, x, 0, Vec2, Vec3, Vec4);
    component!(Y, y, 1, Vec2, Vec3, Vec4);
    component!(Z, z, 2, Vec3, Vec4);
    component!(W, w, 3, Vec4);
}
