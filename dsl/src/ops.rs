//! Operators on kernel values. Arithmetic uses Rust's operator traits, so `a + 1.0` works on
//! an `Expr<f32>` and `WG / 2` stays a compile-time `u32`. Comparisons and `&&`/`||` cannot
//! be overloaded in Rust, so `#[kernel]` rewrites them into calls of [`lt`], [`and_then`], ....

use crate::builder::{expr_of, literal_of, record_block, splice, Expr, IntoExpr, Var};
use crate::control::Branch;
use crate::ir::{BinOp, Expr as IrExpr, Literal, Stmt, UnOp};
use crate::types::{f16, Arith, Integer, ScalarTy, Signed, Ty, VecTy};
use std::ops;

fn binary<T: Ty, A, B>(op: BinOp, a: impl IntoExpr<A>, b: impl IntoExpr<B>) -> Expr<T> {
    let a = a.into_expr().id;
    let b = b.into_expr().id;
    match fold(op, literal_of(a), literal_of(b)) {
        Some(Folded::Left) => Expr::from_id(a),
        Some(Folded::Right) => Expr::from_id(b),
        Some(Folded::Value(l)) => Expr::new(IrExpr::Literal(l)),
        None => Expr::new(IrExpr::Binary(op, a, b)),
    }
}

/// What integer arithmetic on compile-time values comes to.
#[derive(Debug, PartialEq)]
enum Folded {
    /// The left operand (`a + 0`, `a - 0`, `a * 1`, `a / 1`).
    Left,
    /// The right operand (`0 + b`, `1 * b`).
    Right,
    /// A constant (`2u * 3u`), computed as WGSL does (wrapping).
    Value(Literal),
}

/// Folds `+ - * / %` on `u32`/`i32` literals and their identities, so that kernel code such
/// as `tid + l * threads` with `l = 0` emits `tid`. Nothing else is folded (floats keep their
/// exact WGSL evaluation; division by zero is left to the validator).
fn fold(op: BinOp, a: Option<Literal>, b: Option<Literal>) -> Option<Folded> {
    use Literal::{I32, U32};
    let one = |l: Option<Literal>| matches!(l, Some(U32(1)) | Some(I32(1)));
    let zero = |l: Option<Literal>| matches!(l, Some(U32(0)) | Some(I32(0)));
    match (op, a, b) {
        (BinOp::Add, Some(U32(x)), Some(U32(y))) => Some(Folded::Value(U32(x.wrapping_add(y)))),
        (BinOp::Sub, Some(U32(x)), Some(U32(y))) => Some(Folded::Value(U32(x.wrapping_sub(y)))),
        (BinOp::Mul, Some(U32(x)), Some(U32(y))) => Some(Folded::Value(U32(x.wrapping_mul(y)))),
        (BinOp::Div, Some(U32(x)), Some(U32(y))) if y != 0 => Some(Folded::Value(U32(x / y))),
        (BinOp::Rem, Some(U32(x)), Some(U32(y))) if y != 0 => Some(Folded::Value(U32(x % y))),
        (BinOp::Add, Some(I32(x)), Some(I32(y))) => Some(Folded::Value(I32(x.wrapping_add(y)))),
        (BinOp::Sub, Some(I32(x)), Some(I32(y))) => Some(Folded::Value(I32(x.wrapping_sub(y)))),
        (BinOp::Mul, Some(I32(x)), Some(I32(y))) => Some(Folded::Value(I32(x.wrapping_mul(y)))),
        (BinOp::Add | BinOp::Sub, _, b) if zero(b) => Some(Folded::Left),
        (BinOp::Add, a, _) if zero(a) => Some(Folded::Right),
        (BinOp::Mul | BinOp::Div, _, b) if one(b) => Some(Folded::Left),
        (BinOp::Mul, a, _) if one(a) => Some(Folded::Right),
        _ => None,
    }
}

macro_rules! arith {
    ($Trait:ident, $method:ident, $op:ident) => {
        impl<T: Arith> ops::$Trait<Expr<T>> for Expr<T> {
            type Output = Expr<T>;
            fn $method(self, rhs: Expr<T>) -> Expr<T> {
                binary::<T, _, _>(BinOp::$op, self, rhs)
            }
        }
        arith!(@scalars $Trait, $method, $op, f32, u32, i32, f16);
    };
    (@scalars $Trait:ident, $method:ident, $op:ident, $($s:ty),*) => {$(
        impl ops::$Trait<$s> for Expr<$s> {
            type Output = Expr<$s>;
            fn $method(self, rhs: $s) -> Expr<$s> {
                binary::<$s, _, _>(BinOp::$op, self, rhs)
            }
        }
        impl ops::$Trait<Expr<$s>> for $s {
            type Output = Expr<$s>;
            fn $method(self, rhs: Expr<$s>) -> Expr<$s> {
                binary::<$s, _, _>(BinOp::$op, self, rhs)
            }
        }
    )*};
}
arith!(Add, add, Add);
arith!(Sub, sub, Sub);
arith!(Mul, mul, Mul);
arith!(Div, div, Div);
arith!(Rem, rem, Rem);

/// Vector times or divided by a scalar of its component type.
macro_rules! vec_scalar {
    ($Trait:ident, $method:ident, $op:ident, $($v:ident),*) => {$(
        impl<S: ScalarTy + Arith> ops::$Trait<Expr<S>> for Expr<crate::types::$v<S>>
        where crate::types::$v<S>: Arith
        {
            type Output = Self;
            fn $method(self, rhs: Expr<S>) -> Self {
                let s: Expr<crate::types::$v<S>> = splat(rhs);
                binary(BinOp::$op, self, s)
            }
        }
    )*};
}
vec_scalar!(Mul, mul, Mul, Vec2, Vec3, Vec4);
vec_scalar!(Div, div, Div, Vec2, Vec3, Vec4);

/// A vector with every component equal to `v`.
pub fn splat<V: VecTy>(v: impl IntoExpr<V::Elem>) -> Expr<V> {
    let v = v.into_expr().id;
    Expr::new(IrExpr::Splat(v))
}

macro_rules! bits {
    ($Trait:ident, $method:ident, $op:ident) => {
        impl<T: Integer> ops::$Trait<Expr<T>> for Expr<T> {
            type Output = Expr<T>;
            fn $method(self, rhs: Expr<T>) -> Expr<T> {
                binary::<T, _, _>(BinOp::$op, self, rhs)
            }
        }
        bits!(@scalars $Trait, $method, $op, u32, i32);
    };
    (@scalars $Trait:ident, $method:ident, $op:ident, $($s:ty),*) => {$(
        impl ops::$Trait<$s> for Expr<$s> {
            type Output = Expr<$s>;
            fn $method(self, rhs: $s) -> Expr<$s> {
                binary::<$s, _, _>(BinOp::$op, self, rhs)
            }
        }
        impl ops::$Trait<Expr<$s>> for $s {
            type Output = Expr<$s>;
            fn $method(self, rhs: Expr<$s>) -> Expr<$s> {
                binary::<$s, _, _>(BinOp::$op, self, rhs)
            }
        }
    )*};
}
bits!(BitAnd, bitand, And);
bits!(BitOr, bitor, Or);
bits!(BitXor, bitxor, Xor);

macro_rules! shift {
    ($Trait:ident, $method:ident, $op:ident) => {
        impl<T: Integer> ops::$Trait<Expr<u32>> for Expr<T> {
            type Output = Expr<T>;
            fn $method(self, rhs: Expr<u32>) -> Expr<T> {
                binary::<T, _, _>(BinOp::$op, self, rhs)
            }
        }
        impl<T: Integer> ops::$Trait<u32> for Expr<T> {
            type Output = Expr<T>;
            fn $method(self, rhs: u32) -> Expr<T> {
                binary::<T, _, _>(BinOp::$op, self, rhs)
            }
        }
    };
}
shift!(Shl, shl, Shl);
shift!(Shr, shr, Shr);

impl<T: Signed> ops::Neg for Expr<T> {
    type Output = Expr<T>;
    fn neg(self) -> Expr<T> {
        Expr::new(IrExpr::Unary(UnOp::Neg, self.id))
    }
}

impl ops::Not for Expr<bool> {
    type Output = Expr<bool>;
    fn not(self) -> Expr<bool> {
        Expr::new(IrExpr::Unary(UnOp::Not, self.id))
    }
}

impl ops::Not for Expr<u32> {
    type Output = Expr<u32>;
    fn not(self) -> Expr<u32> {
        Expr::new(IrExpr::Unary(UnOp::Not, self.id))
    }
}

/// `==` and `!=`: `bool` for two compile-time values (numbers, enums, ...), `Expr<bool>`
/// when a kernel value is involved.
pub trait CompareEq<Rhs> {
    type Output;
    fn compare_eq(self, op: BinOp, rhs: Rhs) -> Self::Output;
}

/// `<`, `<=`, `>`, `>=`, likewise.
pub trait CompareOrd<Rhs> {
    type Output;
    fn compare_ord(self, op: BinOp, rhs: Rhs) -> Self::Output;
}

impl<T: PartialEq> CompareEq<T> for T {
    type Output = bool;
    fn compare_eq(self, op: BinOp, rhs: T) -> bool {
        match op {
            BinOp::Eq => self == rhs,
            _ => self != rhs,
        }
    }
}

impl<T: PartialOrd> CompareOrd<T> for T {
    type Output = bool;
    fn compare_ord(self, op: BinOp, rhs: T) -> bool {
        match op {
            BinOp::Lt => self < rhs,
            BinOp::Le => self <= rhs,
            BinOp::Gt => self > rhs,
            _ => self >= rhs,
        }
    }
}

macro_rules! compare_exprs {
    ($Trait:ident, $method:ident) => {
        impl<T: ScalarTy> $Trait<Expr<T>> for Expr<T> {
            type Output = Expr<bool>;
            fn $method(self, op: BinOp, rhs: Expr<T>) -> Expr<bool> {
                binary(op, self, rhs)
            }
        }
        compare_exprs!(@scalars $Trait, $method, f32, u32, i32, f16, bool);
    };
    (@scalars $Trait:ident, $method:ident, $($s:ty),*) => {$(
        impl $Trait<$s> for Expr<$s> {
            type Output = Expr<bool>;
            fn $method(self, op: BinOp, rhs: $s) -> Expr<bool> {
                binary(op, self, rhs)
            }
        }
        impl $Trait<Expr<$s>> for $s {
            type Output = Expr<bool>;
            fn $method(self, op: BinOp, rhs: Expr<$s>) -> Expr<bool> {
                binary(op, self, rhs)
            }
        }
    )*};
}
compare_exprs!(CompareEq, compare_eq);
compare_exprs!(CompareOrd, compare_ord);

macro_rules! compare_fns {
    ($Trait:ident, $method:ident, $($name:ident => $op:ident),*) => {$(
        #[doc = concat!("`", stringify!($name), "` comparison (what `#[kernel]` turns the operator into).")]
        pub fn $name<A: $Trait<B>, B>(a: A, b: B) -> A::Output {
            a.$method(BinOp::$op, b)
        }
    )*};
}
compare_fns!(CompareEq, compare_eq, eq => Eq, ne => Ne);
compare_fns!(CompareOrd, compare_ord, lt => Lt, le => Le, gt => Gt, ge => Ge);

/// `&&` and `||`: `bool` for two constants, `Expr<bool>` otherwise.
pub trait Logic<Rhs> {
    type Output;
    fn logic(self, op: BinOp, rhs: Rhs) -> Self::Output;
}

impl Logic<bool> for bool {
    type Output = bool;
    fn logic(self, op: BinOp, rhs: bool) -> bool {
        match op {
            BinOp::LogicalAnd => self && rhs,
            _ => self || rhs,
        }
    }
}
impl Logic<Expr<bool>> for Expr<bool> {
    type Output = Expr<bool>;
    fn logic(self, op: BinOp, rhs: Expr<bool>) -> Expr<bool> {
        binary(op, self, rhs)
    }
}
impl Logic<bool> for Expr<bool> {
    type Output = Expr<bool>;
    fn logic(self, op: BinOp, rhs: bool) -> Expr<bool> {
        rhs.logic(op, self)
    }
}
/// A constant operand decides `&&`/`||` while the kernel is built.
impl Logic<Expr<bool>> for bool {
    type Output = Expr<bool>;
    fn logic(self, op: BinOp, rhs: Expr<bool>) -> Expr<bool> {
        match (op, self) {
            (BinOp::LogicalAnd, true) | (BinOp::LogicalOr, false) => rhs,
            _ => self.into_expr(),
        }
    }
}

/// Both sides evaluated, `a && b` ([`and_then`] is what a kernel's `&&` means).
pub fn and<A: Logic<B>, B>(a: A, b: B) -> A::Output {
    a.logic(BinOp::LogicalAnd, b)
}

/// Both sides evaluated, `a || b` ([`or_else`] is what a kernel's `||` means).
pub fn or<A: Logic<B>, B>(a: A, b: B) -> A::Output {
    a.logic(BinOp::LogicalOr, b)
}

/// `&&` and `||` as Rust means them: the right side runs only where the left one does not
/// decide, so `i < n && x[i] > 0.0` never reads `x` out of range.
pub trait ShortCircuit<Rhs> {
    type Output;
    fn short_circuit(self, op: BinOp, rhs: impl FnOnce() -> Rhs) -> Self::Output;
}

impl ShortCircuit<bool> for bool {
    type Output = bool;
    fn short_circuit(self, op: BinOp, rhs: impl FnOnce() -> bool) -> bool {
        match op {
            BinOp::LogicalAnd => self && rhs(),
            _ => self || rhs(),
        }
    }
}

/// A constant left side decides while the kernel is built.
impl ShortCircuit<Expr<bool>> for bool {
    type Output = Expr<bool>;
    fn short_circuit(self, op: BinOp, rhs: impl FnOnce() -> Expr<bool>) -> Expr<bool> {
        match (op, self) {
            (BinOp::LogicalAnd, true) | (BinOp::LogicalOr, false) => rhs(),
            _ => self.into_expr(),
        }
    }
}

/// A constant right side is computed while the kernel is built: no GPU work to skip.
impl ShortCircuit<bool> for Expr<bool> {
    type Output = Expr<bool>;
    fn short_circuit(self, op: BinOp, rhs: impl FnOnce() -> bool) -> Expr<bool> {
        self.logic(op, rhs())
    }
}

impl ShortCircuit<Expr<bool>> for Expr<bool> {
    type Output = Expr<bool>;
    fn short_circuit(self, op: BinOp, rhs: impl FnOnce() -> Expr<bool>) -> Expr<bool> {
        if let Some(Literal::Bool(b)) = literal_of(self.id) {
            return b.short_circuit(op, rhs);
        }
        let mut value = None;
        let work = record_block(|| value = Some(rhs()));
        let value = value.expect("the right side ran");
        // Arithmetic and comparisons are safe to compute for every invocation (WGSL's `&&`
        // then decides); only memory reads must not run where the left side decides.
        let reads = work.iter().any(|s| match &s.stmt {
            Stmt::Eval(id) => matches!(expr_of(*id), IrExpr::Load { .. }),
            _ => true,
        });
        if !reads {
            splice(work);
            return binary(op, self, value);
        }
        let name = if op == BinOp::LogicalAnd {
            "both"
        } else {
            "either"
        };
        let result = Var::new(name, self);
        let run_rhs = if op == BinOp::LogicalAnd { self } else { !self };
        run_rhs.branch(
            || {
                splice(work);
                result.set(value);
            },
            || {},
        );
        result.get()
    }
}

/// A kernel's `a && b`: `b` is evaluated only where `a` holds.
pub fn and_then<A: ShortCircuit<B>, B>(a: A, b: impl FnOnce() -> B) -> A::Output {
    a.short_circuit(BinOp::LogicalAnd, b)
}

/// A kernel's `a || b`: `b` is evaluated only where `a` does not hold.
pub fn or_else<A: ShortCircuit<B>, B>(a: A, b: impl FnOnce() -> B) -> A::Output {
    a.short_circuit(BinOp::LogicalOr, b)
}

/// `v as T` in a kernel: a conversion of kernel values, or a plain Rust cast of constants.
pub trait Cast<T> {
    type Output;
    fn cast(self) -> Self::Output;
}

impl<S: ScalarTy, T: ScalarTy> Cast<T> for Expr<S> {
    type Output = Expr<T>;
    fn cast(self) -> Expr<T> {
        if S::SCALAR == T::SCALAR {
            return Expr::from_id(self.id);
        }
        Expr::new(IrExpr::Cast(T::SCALAR, self.id))
    }
}

/// A vector converted component by component (`v as Vec4<f16>`); nothing between equal
/// component types, so generic code can convert unconditionally.
macro_rules! cast_vectors {
    ($($v:ident),*) => {$(
        impl<S: ScalarTy, T: ScalarTy> Cast<crate::types::$v<T>> for Expr<crate::types::$v<S>> {
            type Output = Expr<crate::types::$v<T>>;
            fn cast(self) -> Expr<crate::types::$v<T>> {
                if S::SCALAR == T::SCALAR {
                    return Expr::from_id(self.id);
                }
                Expr::new(IrExpr::Cast(T::SCALAR, self.id))
            }
        }
    )*};
}
cast_vectors!(Vec2, Vec3, Vec4);

macro_rules! cast_consts {
    ($($s:ty),*) => {
        cast_consts!(@each [$($s),*] [$($s),*]);
    };
    (@each [$($s:ty),*] $all:tt) => {$(
        cast_consts!(@to $s $all);
    )*};
    (@to $s:ty [$($t:ty),*]) => {$(
        impl Cast<$t> for $s {
            type Output = $t;
            #[allow(clippy::unnecessary_cast)]
            fn cast(self) -> $t {
                self as $t
            }
        }
    )*};
}
cast_consts!(f32, u32, i32, usize);

/// What `#[kernel]` turns `v as T` into.
pub fn cast<T, S: Cast<T>>(v: S) -> S::Output {
    v.cast()
}

#[cfg(test)]
mod fold_tests {
    use super::*;
    use Literal::{F32, I32, U32};

    #[test]
    fn integer_constants_and_identities_fold() {
        let v = |l| Some(Folded::Value(l));
        assert_eq!(fold(BinOp::Add, Some(U32(2)), Some(U32(3))), v(U32(5)));
        assert_eq!(
            fold(BinOp::Sub, Some(U32(0)), Some(U32(1))),
            v(U32(u32::MAX))
        );
        assert_eq!(fold(BinOp::Mul, Some(I32(-4)), Some(I32(3))), v(I32(-12)));
        assert_eq!(fold(BinOp::Div, Some(U32(7)), Some(U32(2))), v(U32(3)));
        assert_eq!(fold(BinOp::Rem, Some(U32(7)), Some(U32(4))), v(U32(3)));
        assert_eq!(fold(BinOp::Add, None, Some(U32(0))), Some(Folded::Left));
        assert_eq!(fold(BinOp::Add, Some(I32(0)), None), Some(Folded::Right));
        assert_eq!(fold(BinOp::Sub, None, Some(U32(0))), Some(Folded::Left));
        assert_eq!(fold(BinOp::Mul, None, Some(U32(1))), Some(Folded::Left));
        assert_eq!(fold(BinOp::Mul, Some(U32(1)), None), Some(Folded::Right));
        assert_eq!(fold(BinOp::Div, None, Some(U32(1))), Some(Folded::Left));
        // Left alone: 0 - b, b / 0, floats, comparisons.
        assert_eq!(fold(BinOp::Sub, Some(U32(0)), None), None);
        assert_eq!(fold(BinOp::Div, Some(U32(1)), Some(U32(0))), None);
        assert_eq!(fold(BinOp::Add, Some(F32(1.0)), Some(F32(2.0))), None);
        assert_eq!(fold(BinOp::Add, None, Some(F32(0.0))), None);
        assert_eq!(fold(BinOp::Lt, Some(U32(1)), Some(U32(2))), None);
    }
}
