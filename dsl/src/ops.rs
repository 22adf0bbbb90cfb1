//! Operators on kernel values. Arithmetic uses Rust's operator traits, so `a + 1.0` works on
//! an `Expr<f32>` and `WG / 2` stays a compile-time `u32`. Comparisons and `&&`/`||` cannot
//! be overloaded in Rust, so `#[kernel]` rewrites them into calls of [`lt`], [`and`], ....

use crate::builder::{Expr, IntoExpr};
use crate::ir::{BinOp, Expr as IrExpr, UnOp};
use crate::types::{f16, Arith, Integer, ScalarTy, Signed, Ty, VecTy};
use std::ops;

fn binary<T: Ty, A, B>(op: BinOp, a: impl IntoExpr<A>, b: impl IntoExpr<B>) -> Expr<T> {
    let a = a.into_expr().id;
    let b = b.into_expr().id;
    Expr::new(IrExpr::Binary(op, a, b))
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

/// `a && b` in a kernel (both sides are evaluated).
pub fn and<A: Logic<B>, B>(a: A, b: B) -> A::Output {
    a.logic(BinOp::LogicalAnd, b)
}

/// `a || b` in a kernel (both sides are evaluated).
pub fn or<A: Logic<B>, B>(a: A, b: B) -> A::Output {
    a.logic(BinOp::LogicalOr, b)
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
