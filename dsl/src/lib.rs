//! An embedded Rust DSL for GPU compute kernels.
//!
//! A kernel is a Rust function under [`kernel`]; calling it *builds* the kernel's IR
//! ([`ir::Kernel`]) with its compile-time parameters (const generics, `#[comptime]`
//! arguments) as plain Rust values, so `#[unroll]` loops unroll and workgroup arrays get
//! constant sizes. `webdit-codegen` lowers the IR to naga and WGSL.
//!
//! ```
//! use webdit_dsl::prelude::*;
//!
//! #[derive(Uniform)]
//! pub struct Len { n: u32 }
//!
//! /// y = 2x, one invocation per element.
//! #[kernel(workgroup_size = [WG, 1, 1])]
//! pub fn double<const WG: u32>(x: &Array<f32>, y: &mut Array<f32>, p: &Uniform<Len>) {
//!     let i = global_id().x;
//!     if i < p.n {
//!         y[i] = x[i] * 2.0;
//!     }
//! }
//!
//! let k = double::<64>();
//! assert_eq!(k.workgroup_size, [64, 1, 1]);
//! assert_eq!(k.bindings.len(), 3);
//! ```

mod builder;
mod control;
pub mod coop;
mod functions;
pub mod ir;
mod ops;
mod types;

pub use builder::{
    at, build_kernel, call, emitted_function, function_arg, load_field, set_workgroup_size,
    storage, store_field, uniform, uniform_field, Array, AtomicPlace, Element, Expr, IntoExpr,
    Load, LocGuard, LocalArray, MemoryPlace, Named, ReadOnly, ReadWrite, Shared, Store,
    UniformStruct, Var,
};
pub use control::*;
pub use functions::*;
pub use ops::{
    and, and_then, cast, eq, ge, gt, le, lt, ne, or, or_else, splat, Cast, CompareEq, CompareOrd,
    Logic, ShortCircuit,
};
pub use types::{
    f16, Arith, Atomic, AtomicInt, FloatLike, Integer, Numeric, ScalarTy, Signed, Ty, Vec2, Vec3,
    Vec4, VecTy,
};
pub use webdit_dsl_macros::{kernel, kernel_fn, kernel_struct, Uniform};

/// The parameter type of uniform bindings in kernel signatures (`p: &Uniform<Params>`).
pub type Uniform<S> = S;

/// What kernel code needs in scope.
pub mod prelude {
    pub use crate::{
        abs, atomic_add, atomic_and, atomic_exchange, atomic_load, atomic_max, atomic_min,
        atomic_or, atomic_sub, atomic_xor, ceil, clamp, cos, dot, exp, exp2, f16, floor, fma,
        global_id, halvings, inverse_sqrt, kernel, kernel_fn, kernel_struct, local_id, local_index,
        log, log2, max, min, num_subgroups, num_workgroups, pow, round, select, sin, splat, sqrt,
        storage_barrier, subgroup_add, subgroup_broadcast, subgroup_id, subgroup_invocation_id,
        subgroup_max, subgroup_min, subgroup_shuffle, subgroup_shuffle_xor, subgroup_size, tanh,
        vec2, vec3, vec4, workgroup_barrier, workgroup_id, Array, Atomic, Expr, LocalArray,
        ScalarTy, Shared, Uniform, Vec2, Vec3, Vec4,
    };
}
