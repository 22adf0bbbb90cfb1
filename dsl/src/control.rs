//! Control flow. `#[kernel]` turns `if`, `for`, `while`, `loop`, `break`, `continue` and
//! `return` into these calls; a condition that is a compile-time `bool` picks a branch while
//! the kernel is built, a kernel value branches on the GPU.

use crate::builder::{
    current_loc, literal_of, push_stmt, push_stmt_at, record_block, Expr, IntoExpr, Var,
};
use crate::ir::{Barrier, Literal, Stmt};
use crate::ops::lt;
use crate::types::{Integer, ScalarTy, Ty};

/// `if cond { accept } else { reject }`, as a statement or as an expression. A compile-time
/// `bool` picks a branch while the kernel is built (any Rust values); a kernel `bool`
/// branches on the GPU, and where the branches yield kernel values (or constants of the
/// same scalar type) the `if` is a kernel value too.
pub trait Branch<A, B> {
    type Output;
    fn branch(self, accept: impl FnOnce() -> A, reject: impl FnOnce() -> B) -> Self::Output;
}

impl<A> Branch<A, A> for bool {
    type Output = A;
    fn branch(self, accept: impl FnOnce() -> A, reject: impl FnOnce() -> A) -> A {
        if self {
            accept()
        } else {
            reject()
        }
    }
}

impl<A: Arms<B>, B> Branch<A, B> for Expr<bool> {
    type Output = A::Output;
    fn branch(self, accept: impl FnOnce() -> A, reject: impl FnOnce() -> B) -> A::Output {
        A::branch(self, accept, reject)
    }
}

/// What the two arms of a GPU `if` yield: nothing, or one kernel value type.
pub trait Arms<B>: Sized {
    type Output;
    fn branch(
        cond: Expr<bool>,
        accept: impl FnOnce() -> Self,
        reject: impl FnOnce() -> B,
    ) -> Self::Output;
}

impl Arms<()> for () {
    type Output = ();
    fn branch(cond: Expr<bool>, accept: impl FnOnce(), reject: impl FnOnce()) {
        // A condition that folded to a constant picks its branch now.
        if let Some(Literal::Bool(b)) = literal_of(cond.id) {
            return b.branch(accept, reject);
        }
        let loc = current_loc();
        let accept = record_block(accept);
        let reject = record_block(reject);
        push_stmt_at(
            Stmt::If {
                cond: cond.id,
                accept,
                reject,
            },
            loc,
        );
    }
}

/// An `if` yielding a value: each arm stores its value into a variable read after the `if`.
fn branch_value<T: Ty>(
    cond: Expr<bool>,
    accept: impl FnOnce() -> Expr<T>,
    reject: impl FnOnce() -> Expr<T>,
) -> Expr<T> {
    if let Some(Literal::Bool(b)) = literal_of(cond.id) {
        return if b { accept() } else { reject() };
    }
    let value = Var::<T>::declare("if_value");
    Arms::branch(cond, || value.set(accept()), || value.set(reject()));
    value.get()
}

macro_rules! value_arms {
    ($($a:ty, $b:ty;)*) => {$(
        impl<T: ScalarTy> Arms<$b> for $a {
            type Output = Expr<T>;
            fn branch(
                cond: Expr<bool>,
                accept: impl FnOnce() -> $a,
                reject: impl FnOnce() -> $b,
            ) -> Expr<T> {
                branch_value(cond, || accept().into_expr(), || reject().into_expr())
            }
        }
    )*};
}
value_arms! {
    Expr<T>, T;
    T, Expr<T>;
    T, T;
}

impl<T: Ty> Arms<Expr<T>> for Expr<T> {
    type Output = Expr<T>;
    fn branch(
        cond: Expr<bool>,
        accept: impl FnOnce() -> Expr<T>,
        reject: impl FnOnce() -> Expr<T>,
    ) -> Expr<T> {
        branch_value(cond, accept, reject)
    }
}

/// A loop on the GPU: `body` runs until a `break` (or `return`).
pub fn loop_(body: impl FnOnce()) {
    let body = record_block(body);
    push_stmt(Stmt::Loop {
        body,
        continuing: vec![],
    });
}

/// `while cond { body }` on the GPU; `cond` is re-evaluated before every iteration.
pub fn while_(cond: impl FnOnce() -> Expr<bool>, body: impl FnOnce()) {
    loop_(|| {
        let c = cond();
        (!c).branch(brk, || {});
        body();
    });
}

/// `for i in (start..end).step_by(step)` on the GPU, with an integer counter named `name`.
pub fn for_range<T: Integer>(
    name: &str,
    start: impl IntoExpr<T>,
    end: impl IntoExpr<T>,
    step: impl IntoExpr<T>,
    body: impl FnOnce(Expr<T>),
) where
    Expr<T>: std::ops::Add<Expr<T>, Output = Expr<T>>,
{
    let end = end.into_expr();
    let step = step.into_expr();
    let counter = Var::new(name, start);
    let body = record_block(|| {
        (!lt(counter.get(), end)).branch(brk, || {});
        body(counter.get());
    });
    let continuing = record_block(|| counter.set(counter.get() + step));
    push_stmt(Stmt::Loop { body, continuing });
}

/// `break` out of the innermost GPU loop.
pub fn brk() {
    push_stmt(Stmt::Break);
}

/// `continue` with the next iteration of the innermost GPU loop.
pub fn cont() {
    push_stmt(Stmt::Continue);
}

/// `return` from the kernel (this invocation stops).
pub fn ret() {
    push_stmt(Stmt::Return);
}

/// Waits for every invocation of the workgroup and makes their workgroup-memory writes visible.
pub fn workgroup_barrier() {
    push_stmt(Stmt::Barrier(Barrier::Workgroup));
}

/// Makes storage-buffer writes of the workgroup visible to the workgroup.
pub fn storage_barrier() {
    push_stmt(Stmt::Barrier(Barrier::Storage));
}

/// The values `n/2, n/4, ..., 1` (for tree reductions over `n` lanes, `n` a power of two),
/// computed while the kernel is built, for `#[unroll]` loops.
pub fn halvings(n: u32) -> impl Iterator<Item = u32> {
    std::iter::successors(Some(n / 2), |s| Some(s / 2)).take_while(|s| *s > 0)
}
