//! Rust-side types of kernel values: which Rust types stand for which IR types, and which
//! operations each allows. Rust's type checker does the kernel's type checking, so a
//! mismatch is an ordinary compile error at the user's code.

use crate::ir::{Literal, Scalar, Type};
use std::marker::PhantomData;

/// A type a kernel value can have.
pub trait Ty: 'static {
    const TYPE: Type;
}

/// A scalar type; its Rust values are compile-time constants of the kernel.
pub trait ScalarTy: Ty + Copy {
    const SCALAR: Scalar;
    fn literal(self) -> Literal;
}

/// Types with arithmetic (`+ - * /`, `%`): numeric scalars and vectors of them.
pub trait Arith: Ty {}
/// Numeric scalars.
pub trait Numeric: ScalarTy + Arith {}
/// Floating-point scalars and vectors (the transcendental functions take these).
pub trait FloatLike: Arith {}
/// Signed types (negation).
pub trait Signed: Arith {}
/// Integer scalars (bit operations).
pub trait Integer: Numeric {}

/// A half-precision float. As a type it marks f16 arrays and values (the device needs
/// `shader-f16`); as a value, `f16(0.5)` is an f16 constant.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct f16(pub f32);

macro_rules! scalar {
    ($t:ty, $s:ident, |$v:ident| $lit:expr) => {
        impl Ty for $t {
            const TYPE: Type = Type::Scalar(Scalar::$s);
        }
        impl ScalarTy for $t {
            const SCALAR: Scalar = Scalar::$s;
            fn literal(self) -> Literal {
                let $v = self;
                $lit
            }
        }
    };
}
scalar!(bool, Bool, |v| Literal::Bool(v));
scalar!(i32, I32, |v| Literal::I32(v));
scalar!(u32, U32, |v| Literal::U32(v));
scalar!(f32, F32, |v| Literal::F32(v));
scalar!(f16, F16, |v| Literal::F16(v.0));

impl Arith for i32 {}
impl Arith for u32 {}
impl Arith for f32 {}
impl Arith for f16 {}
impl Numeric for i32 {}
impl Numeric for u32 {}
impl Numeric for f32 {}
impl Numeric for f16 {}
impl Integer for i32 {}
impl Integer for u32 {}
impl FloatLike for f32 {}
impl FloatLike for f16 {}
impl Signed for i32 {}
impl Signed for f32 {}
impl Signed for f16 {}

/// A vector type with its component type and count.
pub trait VecTy: Ty {
    type Elem: ScalarTy;
    const SIZE: u8;
}

macro_rules! vector {
    ($name:ident, $n:literal) => {
        #[doc = concat!("A ", stringify!($n), "-component vector type.")]
        #[derive(Clone, Copy, Debug)]
        pub struct $name<T>(PhantomData<T>);
        impl<T: ScalarTy> Ty for $name<T> {
            const TYPE: Type = Type::Vector {
                size: $n,
                scalar: T::SCALAR,
            };
        }
        impl<T: ScalarTy> VecTy for $name<T> {
            type Elem = T;
            const SIZE: u8 = $n;
        }
        impl<T: Numeric> Arith for $name<T> {}
        impl<T: Numeric + FloatLike> FloatLike for $name<T> {}
        impl<T: Numeric + Signed> Signed for $name<T> {}
    };
}
vector!(Vec2, 2);
vector!(Vec3, 3);
vector!(Vec4, 4);

/// An atomic `u32` or `i32`: the element type of arrays that invocations update together
/// (`&mut Array<Atomic<u32>>`, `Shared::<Atomic<u32>>::new(n)`), through
/// [`atomic_add`](crate::atomic_add) and its siblings.
#[derive(Clone, Copy, Debug)]
pub struct Atomic<T>(PhantomData<T>);

/// The integer types atomics hold.
pub trait AtomicInt: Integer {}
impl AtomicInt for u32 {}
impl AtomicInt for i32 {}

impl<T: AtomicInt> Ty for Atomic<T> {
    const TYPE: Type = Type::Atomic(T::SCALAR);
}
