//! Recording a kernel: the code a `#[kernel]` expands to calls these functions, which append
//! expressions and statements to the kernel being built on this thread.
//!
//! A thread-local recorder (rather than a context passed around) is what lets kernel code
//! use plain operators (`a + b` on [`Expr`]s) and plain helper-function calls.

use crate::ir::{
    Binding, BindingKind, Block, Builtin, Diagnostic, Expr as IrExpr, ExprId, Kernel, Loc, Local,
    Located, Place, SharedArray, Stmt, Type, UniformLayout,
};
use crate::types::{ScalarTy, Ty};
use std::cell::RefCell;
use std::marker::PhantomData;

struct Recorder {
    kernel: Kernel,
    /// Open blocks, innermost last.
    blocks: Vec<Block>,
    /// The kernel statement being recorded (set by [`at`] before each one).
    loc: Loc,
    /// The emitted function being recorded (`None`: the entry point).
    function: Option<u32>,
    /// Emitted functions by key (name and compile-time parameters).
    function_keys: std::collections::HashMap<String, u32>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut Recorder) -> R) -> R {
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let r = r
            .as_mut()
            .expect("kernel values can only be used while a #[kernel] function is being built");
        f(r)
    })
}

/// Builds a kernel: runs `body` (the expanded kernel) with a fresh recorder on this thread.
/// Called by `#[kernel]` expansions, at the kernel's name (which becomes its location).
#[track_caller]
pub fn build_kernel(name: &str, params: String, body: impl FnOnce()) -> Kernel {
    let loc = Loc::caller();
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            RECORDER.with(|r| r.borrow_mut().take());
        }
    }
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        assert!(
            r.is_none(),
            "kernel `{name}` was built while another kernel was being built"
        );
        *r = Some(Recorder {
            kernel: Kernel {
                name: name.to_string(),
                params,
                workgroup_size: [1, 1, 1],
                loc,
                workgroup_size_loc: loc,
                bindings: vec![],
                shared: vec![],
                locals: vec![],
                exprs: vec![],
                expr_locs: vec![],
                names: vec![],
                body: vec![],
                functions: vec![],
                errors: vec![],
                limits: Default::default(),
            },
            blocks: vec![vec![]],
            loc,
            function: None,
            function_keys: Default::default(),
        });
    });
    let reset = Reset;
    body();
    let rec = RECORDER
        .with(|r| r.borrow_mut().take())
        .expect("recorder vanished");
    drop(reset);
    let mut kernel = rec.kernel;
    let [body]: [Block; 1] = rec.blocks.try_into().expect("unbalanced blocks");
    kernel.body = body;
    kernel
}

/// Sets the workgroup size (called by the expansion with the `workgroup_size` argument,
/// at its location).
#[track_caller]
pub fn set_workgroup_size(size: [u32; 3]) {
    let loc = Loc::caller();
    with(|r| {
        r.kernel.workgroup_size = size;
        r.kernel.workgroup_size_loc = loc;
    });
}

/// Marks the start of a kernel statement: what it records carries the caller's location.
/// `#[kernel]` and `#[kernel_fn]` expansions call it before each statement, spanned at it.
#[track_caller]
pub fn at() {
    let loc = Loc::caller();
    with(|r| r.loc = loc);
}

/// The location of the kernel statement being recorded.
pub(crate) fn current_loc() -> Loc {
    with(|r| r.loc)
}

fn set_loc(loc: Loc) {
    with(|r| r.loc = loc);
}

/// Restores the caller's statement location when a helper returns, so that what the calling
/// statement records after the call is located at the caller (`#[kernel_fn]` expansions hold
/// one for their body).
pub struct LocGuard(Loc);

impl LocGuard {
    pub fn enter() -> LocGuard {
        LocGuard(current_loc())
    }
}

impl Drop for LocGuard {
    fn drop(&mut self) {
        // Only while a kernel is being built (a helper called outside one already panicked).
        RECORDER.with(|r| {
            if let Some(r) = r.borrow_mut().as_mut() {
                r.loc = self.0;
            }
        });
    }
}

/// Records an error at the current kernel statement; the kernel keeps building so that
/// every error is reported at once, and it is never lowered.
pub(crate) fn error(message: impl Into<String>) {
    with(|r| {
        let loc = r.loc;
        r.kernel.errors.push(Diagnostic::new(loc, message))
    });
}

pub(crate) fn push_expr(e: IrExpr, ty: Type) -> ExprId {
    with(|r| {
        let id = ExprId(r.kernel.exprs.len() as u32);
        let eval = e.needs_eval();
        r.kernel.exprs.push((e, ty));
        r.kernel.expr_locs.push(r.loc);
        if eval {
            let loc = r.loc;
            r.blocks.last_mut().unwrap().push(Located {
                stmt: Stmt::Eval(id),
                loc,
            });
        }
        id
    })
}

pub(crate) fn push_stmt(s: Stmt) {
    push_stmt_at(s, current_loc());
}

pub(crate) fn push_stmt_at(stmt: Stmt, loc: Loc) {
    with(|r| r.blocks.last_mut().unwrap().push(Located { stmt, loc }));
}

/// Records what `f` emits into a new block and returns it; afterwards the statement
/// location is the one before `f` ran.
pub(crate) fn record_block(f: impl FnOnce()) -> Block {
    let loc = current_loc();
    with(|r| r.blocks.push(vec![]));
    f();
    set_loc(loc);
    with(|r| r.blocks.pop().unwrap())
}

/// Appends recorded statements to the block being recorded.
pub(crate) fn splice(block: Block) {
    with(|r| r.blocks.last_mut().unwrap().extend(block));
}

/// The IR of an expression.
pub(crate) fn expr_of(id: ExprId) -> IrExpr {
    with(|r| r.kernel.exprs[id.0 as usize].0.clone())
}

/// The constant value of an expression, if it is a literal.
pub(crate) fn literal_of(id: ExprId) -> Option<crate::ir::Literal> {
    with(|r| match &r.kernel.exprs[id.0 as usize].0 {
        IrExpr::Literal(l) => Some(*l),
        _ => None,
    })
}

fn add_local(name: &str, ty: Type, len: Option<u32>) -> u32 {
    with(|r| {
        let owner = r.function;
        r.kernel.locals.push(Local {
            name: name.to_string(),
            ty,
            len,
            owner,
        });
        r.kernel.locals.len() as u32 - 1
    })
}

/// A kernel value of type `T`: a handle to an expression of the kernel being built.
pub struct Expr<T> {
    pub(crate) id: ExprId,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Expr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Expr<T> {}

impl<T: Ty> Expr<T> {
    pub(crate) fn new(e: IrExpr) -> Self {
        Expr::from_id(push_expr(e, T::TYPE))
    }

    pub(crate) fn from_id(id: ExprId) -> Self {
        Expr {
            id,
            _t: PhantomData,
        }
    }

    pub fn id(self) -> ExprId {
        self.id
    }
}

/// Anything usable where a kernel value of type `T` is expected: an [`Expr<T>`], or a Rust
/// constant of the scalar type (which becomes a literal).
pub trait IntoExpr<T> {
    fn into_expr(self) -> Expr<T>;
}

impl<T> IntoExpr<T> for Expr<T> {
    fn into_expr(self) -> Expr<T> {
        self
    }
}

impl<T: ScalarTy> IntoExpr<T> for T {
    fn into_expr(self) -> Expr<T> {
        Expr::new(IrExpr::Literal(self.literal()))
    }
}

pub(crate) fn builtin<T: Ty>(b: Builtin) -> Expr<T> {
    Expr::new(IrExpr::Builtin(b))
}

/// Gives a value the name of the `let` that bound it, so the generated code reads like the
/// kernel. Compile-time values are left alone.
pub trait Named: Sized {
    fn named(self, _name: &str) -> Self {
        self
    }
}

impl<T> Named for Expr<T> {
    fn named(self, name: &str) -> Self {
        with(|r| {
            // A value keeps its first name (`let b = a;`, or a `let` of a folded `a + 0`).
            if r.kernel.exprs[self.id.0 as usize].0.needs_eval()
                && !r.kernel.names.iter().any(|(id, _)| *id == self.id)
            {
                r.kernel.names.push((self.id, name.to_string()));
            }
        });
        self
    }
}

impl<T> Named for Shared<T> {
    fn named(self, name: &str) -> Self {
        with(|r| r.kernel.shared[self.index as usize].name = name.to_string());
        self
    }
}

macro_rules! plain_named {
    ($($t:ty),*) => { $(impl Named for $t {})* };
}
plain_named!(
    bool,
    u8,
    u16,
    u32,
    u64,
    usize,
    i8,
    i16,
    i32,
    i64,
    isize,
    f32,
    f64,
    crate::f16,
    &str,
    String
);
impl<T, const N: usize> Named for [T; N] {}
impl<T> Named for Vec<T> {}
impl<T> Named for Option<T> {}
impl<T> Named for std::ops::Range<T> {}
impl<A, B> Named for (A, B) {}
impl<A, B, C> Named for (A, B, C) {}

/// Access-mode markers of storage arrays.
#[derive(Clone, Copy, Debug)]
pub struct ReadOnly;
#[derive(Clone, Copy, Debug)]
pub struct ReadWrite;

/// A storage buffer binding holding an array of `T` (`&Array<T>` read-only,
/// `&mut Array<T>` read-write in a kernel's parameters).
pub struct Array<T, A = ReadOnly> {
    binding: u32,
    _t: PhantomData<fn() -> (T, A)>,
}

impl<T, A> Clone for Array<T, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, A> Copy for Array<T, A> {}

/// Declares the next storage binding (called by `#[kernel]` expansions, in parameter order,
/// at the parameter's type).
#[track_caller]
pub fn storage<T: Element, A: AccessMode>(name: &str) -> Array<T, A> {
    let binding = add_binding(
        name,
        BindingKind::Storage {
            elem: T::TYPE,
            writable: A::WRITABLE,
        },
    );
    Array {
        binding,
        _t: PhantomData,
    }
}

pub trait AccessMode {
    const WRITABLE: bool;
}
impl AccessMode for ReadOnly {
    const WRITABLE: bool = false;
}
impl AccessMode for ReadWrite {
    const WRITABLE: bool = true;
}

#[track_caller]
fn add_binding(name: &str, kind: BindingKind) -> u32 {
    let loc = Loc::caller();
    with(|r| {
        r.kernel.bindings.push(Binding {
            name: name.to_string(),
            kind,
            loc,
        });
        r.kernel.bindings.len() as u32 - 1
    })
}

/// A struct of 4-byte scalars passed to kernels as a uniform buffer
/// (implemented by `#[derive(Uniform)]`).
pub trait UniformStruct {
    /// The struct as seen inside a kernel: the same fields, as kernel values.
    type View;
    fn layout() -> UniformLayout;
    fn view(binding: u32) -> Self::View;
    /// The bytes to upload (little-endian fields, padded to 16 bytes).
    fn to_bytes(&self) -> Vec<u8>;
}

/// Declares the next binding as a uniform struct and returns its fields as kernel values.
#[track_caller]
pub fn uniform<S: UniformStruct>(name: &str) -> S::View {
    let layout = S::layout();
    let fields: Vec<String> = layout
        .fields
        .iter()
        .map(|(f, _)| format!("{name}_{f}"))
        .collect();
    let binding = add_binding(name, BindingKind::Uniform(layout));
    let first = with(|r| r.kernel.exprs.len());
    let view = S::view(binding);
    // The view loaded one value per field, in order: name them after the field.
    with(|r| {
        for (i, f) in fields.into_iter().enumerate() {
            r.kernel.names.push((ExprId((first + i) as u32), f));
        }
    });
    view
}

/// Field `field` of the uniform at `binding` (used by `#[derive(Uniform)]`).
pub fn uniform_field<T: ScalarTy>(binding: u32, field: u32) -> Expr<T> {
    Expr::new(IrExpr::Uniform { binding, field })
}

/// An array in workgroup memory, shared by the invocations of a workgroup. Its length is a
/// compile-time value, so the generated array has a constant size.
pub struct Shared<T> {
    index: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}

impl<T: Ty> Shared<T> {
    pub fn new(len: u32) -> Self {
        if len == 0 {
            error("workgroup arrays need a length of at least 1");
        }
        let index = with(|r| {
            let index = r.kernel.shared.len() as u32;
            let loc = r.loc;
            r.kernel.shared.push(SharedArray {
                name: format!("shared{index}"),
                elem: T::TYPE,
                len: len.max(1),
                loc,
            });
            index
        });
        Shared {
            index,
            _t: PhantomData,
        }
    }
}

/// A mutable kernel variable (`let mut` in a kernel).
pub struct Var<T> {
    local: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Var<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Var<T> {}

impl<T: Ty> Var<T> {
    /// A variable without a value yet (every path must store one before reading it).
    pub(crate) fn declare(name: &str) -> Self {
        Var {
            local: add_local(name, T::TYPE, None),
            _t: PhantomData,
        }
    }

    pub fn new(name: &str, init: impl IntoExpr<T>) -> Self {
        let init = init.into_expr();
        let local = add_local(name, T::TYPE, None);
        let v = Var {
            local,
            _t: PhantomData,
        };
        v.set(init);
        v
    }

    pub fn get(self) -> Expr<T> {
        Expr::new(IrExpr::Load {
            place: Place::Local(self.local),
            index: None,
        })
    }

    pub fn set(self, value: impl IntoExpr<T>) {
        push_stmt(Stmt::Store {
            place: Place::Local(self.local),
            index: None,
            value: value.into_expr().id,
        });
    }
}

/// A function-local array (`let mut a = [0.0; N]` in a kernel); registers, when indexed
/// with compile-time indices.
pub struct LocalArray<T> {
    local: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for LocalArray<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for LocalArray<T> {}

impl<T: Ty> LocalArray<T> {
    pub fn new(name: &str, init: impl IntoExpr<T>, len: u32) -> Self {
        if len == 0 {
            error("local arrays need a length of at least 1");
        }
        let init = init.into_expr();
        let local = add_local(name, T::TYPE, Some(len.max(1)));
        push_stmt(Stmt::Fill {
            local,
            value: init.id,
        });
        LocalArray {
            local,
            _t: PhantomData,
        }
    }
}

/// Indexed loads (`a[i]` in a kernel).
pub trait Load {
    /// What an element reads as: a kernel value, or a `#[kernel_struct]` of them.
    type Value;
    fn load(&self, index: impl IntoExpr<u32>) -> Self::Value;
}

/// Indexed stores of `V` (`a[i] = v` in a kernel); read-only storage arrays do not have them.
#[diagnostic::on_unimplemented(
    message = "cannot store into `{Self}`: it is read-only",
    label = "declare this parameter `&mut Array<_>` to write to it"
)]
pub trait Store<V>: Load {
    fn store(&self, index: impl IntoExpr<u32>, value: V);
}

/// What a storage array can hold: kernel values (scalars, vectors, atomics), or a
/// `#[kernel_struct]` of scalars and vectors, which the macro implements this for (its
/// fields are read and written one at a time: `a[i].field` in WGSL).
pub trait Element: 'static {
    const TYPE: Type;
    /// What `a[i]` reads as.
    type Value;
    fn load<A>(array: &Array<Self, A>, index: Expr<u32>) -> Self::Value
    where
        Self: Sized;
}

impl<T: Ty> Element for T {
    const TYPE: Type = T::TYPE;
    type Value = Expr<T>;
    fn load<A>(array: &Array<T, A>, index: Expr<u32>) -> Expr<T> {
        load_at(Place::Storage(array.binding), index)
    }
}

/// Field `field` (declaration order) of element `index` of a storage array of structs (used
/// by `#[kernel_struct]` expansions).
pub fn load_field<S, A, T: Ty>(array: &Array<S, A>, field: u32, index: Expr<u32>) -> Expr<T> {
    load_at(Place::Field(array.binding, field), index)
}

/// Writes field `field` of element `index` of a storage array of structs (used by
/// `#[kernel_struct]` expansions).
pub fn store_field<S, T: Ty>(
    array: &Array<S, ReadWrite>,
    field: u32,
    index: Expr<u32>,
    value: Expr<T>,
) {
    store_at(Place::Field(array.binding, field), index, value)
}

fn load_at<T: Ty>(place: Place, index: impl IntoExpr<u32>) -> Expr<T> {
    let index = index.into_expr().id;
    Expr::new(IrExpr::Load {
        place,
        index: Some(index),
    })
}

fn store_at<T>(place: Place, index: impl IntoExpr<u32>, value: impl IntoExpr<T>) {
    let index = index.into_expr().id;
    let value = value.into_expr().id;
    push_stmt(Stmt::Store {
        place,
        index: Some(index),
        value,
    });
}

impl<T: Element, A> Load for Array<T, A> {
    type Value = T::Value;
    fn load(&self, index: impl IntoExpr<u32>) -> T::Value {
        T::load(self, index.into_expr())
    }
}

impl<T: Ty, V: IntoExpr<T>> Store<V> for Array<T, ReadWrite> {
    fn store(&self, index: impl IntoExpr<u32>, value: V) {
        store_at(Place::Storage(self.binding), index, value)
    }
}

/// Rust arrays of kernel values (`let v = [a.x, a.y, b.x, b.y];`), indexed with
/// compile-time indices (e.g. an `#[unroll]` loop's variable).
impl<T: Ty, const N: usize> Load for [Expr<T>; N] {
    type Value = Expr<T>;
    fn load(&self, index: impl IntoExpr<u32>) -> Expr<T> {
        match literal_of(index.into_expr().id) {
            Some(crate::ir::Literal::U32(i)) if (i as usize) < N => self[i as usize],
            Some(crate::ir::Literal::U32(i)) => {
                error(format!(
                    "index {i} is out of bounds of a Rust array of {N} kernel values"
                ));
                self[0]
            }
            _ => {
                error("Rust arrays of kernel values need compile-time indices; use a `let mut a = [v; N]` array for indices computed on the GPU");
                self[0]
            }
        }
    }
}

macro_rules! load_store {
    ($ty:ident, $place:ident, $field:ident) => {
        impl<T: Ty> Load for $ty<T> {
            type Value = Expr<T>;
            fn load(&self, index: impl IntoExpr<u32>) -> Expr<T> {
                load_at(Place::$place(self.$field), index)
            }
        }
        impl<T: Ty, V: IntoExpr<T>> Store<V> for $ty<T> {
            fn store(&self, index: impl IntoExpr<u32>, value: V) {
                store_at(Place::$place(self.$field), index, value)
            }
        }
    };
}
load_store!(Shared, Shared, index);
load_store!(LocalArray, Local, local);

/// Memory a cooperative matrix can be loaded from or stored to: storage and workgroup arrays
/// of the matrix's element type.
pub trait MemoryPlace<T> {
    fn place(&self) -> Place;
}

impl<T, A> MemoryPlace<T> for Array<T, A> {
    fn place(&self) -> Place {
        Place::Storage(self.binding)
    }
}

impl<T> MemoryPlace<T> for Shared<T> {
    fn place(&self) -> Place {
        Place::Shared(self.index)
    }
}

/// Arrays of atomics that atomic operations can update: read-write storage arrays and
/// workgroup arrays.
pub trait AtomicPlace<T> {
    fn place(&self) -> Place;
}

impl<T> AtomicPlace<T> for Array<crate::types::Atomic<T>, ReadWrite> {
    fn place(&self) -> Place {
        Place::Storage(self.binding)
    }
}

impl<T> AtomicPlace<T> for Shared<crate::types::Atomic<T>> {
    fn place(&self) -> Place {
        Place::Shared(self.index)
    }
}

/// The emitted function for `key` (a `#[kernel_fn(function)]` helper with its compile-time
/// parameters), recording it first if this kernel has not yet: `body` gets the arguments
/// (one per `(name, type)` of `params`) and returns the result. Called by `#[kernel_fn(function)]`
/// expansions, at the helper's name.
#[track_caller]
pub fn emitted_function(
    key: &str,
    name: &str,
    params: &[(&str, Type)],
    body: impl FnOnce(&[ExprId]) -> ExprId,
) -> u32 {
    let loc = Loc::caller();
    if let Some(f) = with(|r| r.function_keys.get(key).copied()) {
        return f;
    }
    let (outer_blocks, outer_function, outer_loc) = with(|r| {
        let blocks = std::mem::replace(&mut r.blocks, vec![vec![]]);
        // The function's index is only known once it is complete (callees come first).
        let outer = r
            .function
            .replace(u32::MAX - r.kernel.functions.len() as u32);
        (blocks, outer, r.loc)
    });
    let args: Vec<ExprId> = params
        .iter()
        .enumerate()
        .map(|(i, (_, t))| push_expr(IrExpr::Arg(i as u32), *t))
        .collect();
    let result = body(&args);
    with(|r| {
        let blocks = std::mem::replace(&mut r.blocks, outer_blocks);
        let provisional = r.function.take();
        r.function = outer_function;
        r.loc = outer_loc;
        let index = r.kernel.functions.len() as u32;
        // Locals recorded under the provisional owner belong to this function.
        for l in &mut r.kernel.locals {
            if l.owner.is_some() && l.owner == provisional {
                l.owner = Some(index);
            }
        }
        let [body]: [Block; 1] = blocks.try_into().expect("unbalanced blocks");
        let unique = r
            .kernel
            .functions
            .iter()
            .filter(|f| f.name == name || f.name.starts_with(&format!("{name}_")))
            .count();
        let name = if unique == 0 {
            name.to_string()
        } else {
            format!("{name}_{unique}")
        };
        r.kernel.functions.push(crate::ir::Function {
            name,
            args,
            arg_names: params.iter().map(|(n, _)| n.to_string()).collect(),
            result,
            body,
            loc,
        });
        r.function_keys.insert(key.to_string(), index);
        index
    })
}

/// Argument `i` of the emitted function being recorded, as a kernel value.
pub fn function_arg<T: Ty>(args: &[ExprId], i: usize) -> Expr<T> {
    Expr::from_id(args[i])
}

/// A call of emitted function `function` with `args`, yielding its result.
pub fn call<T: Ty>(function: u32, args: &[ExprId]) -> Expr<T> {
    Expr::new(IrExpr::Call {
        function,
        args: args.to_vec(),
    })
}
