//! The kernel IR: what a `#[kernel]` function builds when it is called.
//!
//! It is deliberately close to naga's IR (an expression arena plus a statement tree with
//! explicit evaluation points) so that lowering is a direct walk, but it is typed by the
//! DSL's own small type system and carries no naga types, so the DSL builds without naga.

use std::fmt;

/// Where in a kernel's Rust source something was written (`file!()`-style path, 1-based
/// line and column). Every expression and statement carries the location of the kernel
/// statement that built it, so errors and naga spans point at the kernel, not the DSL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: &'static str,
    pub line: u32,
    pub column: u32,
}

impl Loc {
    #[track_caller]
    pub fn caller() -> Loc {
        let l = std::panic::Location::caller();
        Loc {
            file: l.file(),
            line: l.line(),
            column: l.column(),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A problem found while building a kernel, at the kernel code that caused it.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub loc: Loc,
    pub message: String,
    /// Other kernel code that explains the error (e.g. the condition that makes a barrier's
    /// control flow non-uniform).
    pub notes: Vec<(Loc, String)>,
}

impl Diagnostic {
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            loc,
            message: message.into(),
            notes: vec![],
        }
    }
}

/// Scalar types a kernel can compute with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    Bool,
    I32,
    U32,
    F32,
    F16,
}

impl Scalar {
    /// Size in bytes when stored in a buffer (bools are never stored).
    pub fn size(self) -> u32 {
        match self {
            Scalar::F16 => 2,
            _ => 4,
        }
    }
}

/// Value types: scalars, 2/3/4-component vectors, and cooperative matrices; and, as the
/// element type of storage arrays only, atomics and structs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Scalar(Scalar),
    Vector {
        size: u8,
        scalar: Scalar,
    },
    /// An atomic integer: only the element type of storage and workgroup arrays, used
    /// through the atomic operations ([`Expr::Atomic`]).
    Atomic(Scalar),
    /// A `size`×`size` tile held collectively by a subgroup (tensor cores), in the role of
    /// the left operand, the right operand or the accumulator of a multiply-add.
    Coop {
        size: u8,
        scalar: Scalar,
        role: CoopRole,
    },
    /// A `#[kernel_struct]` as the element type of a storage array: read and written one
    /// field at a time ([`Place::Field`]), laid out by WGSL's rules ([`StructType::offsets`]).
    Struct(&'static StructType),
}

/// A struct of scalars and vectors stored in a buffer.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StructType {
    pub name: &'static str,
    pub fields: &'static [(&'static str, Type)],
}

impl StructType {
    /// Each field's byte offset, by WGSL's memory layout rules (what the host writes).
    pub fn offsets(&self) -> Vec<u32> {
        let mut end = 0u32;
        self.fields
            .iter()
            .map(|(_, t)| {
                let at = end.next_multiple_of(t.align());
                end = at + t.size();
                at
            })
            .collect()
    }

    /// The struct's alignment: its most aligned field's.
    pub fn align(&self) -> u32 {
        self.fields
            .iter()
            .map(|(_, t)| t.align())
            .max()
            .unwrap_or(4)
    }

    /// The struct's size: past its last field, rounded up to its alignment (the stride of an
    /// array of it).
    pub fn size(&self) -> u32 {
        let end = self.fields.iter().fold(0, |end: u32, (_, t)| {
            end.next_multiple_of(t.align()) + t.size()
        });
        end.next_multiple_of(self.align())
    }
}

/// The role of a cooperative matrix in `c + a * b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoopRole {
    A,
    B,
    C,
}

impl Type {
    /// The scalar type of a value (of its components). Values are never structs: a struct
    /// is only ever an array element, read a field at a time.
    pub fn scalar(self) -> Scalar {
        match self {
            Type::Scalar(s)
            | Type::Atomic(s)
            | Type::Vector { scalar: s, .. }
            | Type::Coop { scalar: s, .. } => s,
            Type::Struct(s) => panic!("struct `{}` has no single scalar type", s.name),
        }
    }

    /// The scalar type of a storage array's elements (of its vectors' components); `None`
    /// for structs, whose fields may differ.
    pub fn element_scalar(self) -> Option<Scalar> {
        match self {
            Type::Struct(_) => None,
            t => Some(t.scalar()),
        }
    }

    /// Whether the type is or contains `s` (a struct: in any field).
    pub fn has_scalar(self, s: Scalar) -> bool {
        match self {
            Type::Struct(st) => st.fields.iter().any(|(_, t)| t.has_scalar(s)),
            t => t.scalar() == s,
        }
    }

    /// Size in bytes of one element of a storage array of this type (WGSL layout rules).
    pub fn stride(self) -> u32 {
        match self {
            Type::Vector { size: 3, scalar } => 4 * scalar.size(),
            Type::Struct(s) => s.size(),
            t => t.size(),
        }
    }

    /// Size in bytes of a value of this type in memory (WGSL: `vec3` takes 3 components).
    pub fn size(self) -> u32 {
        match self {
            Type::Scalar(s) | Type::Atomic(s) => s.size(),
            Type::Vector { size, scalar } => size as u32 * scalar.size(),
            Type::Coop { size, scalar, .. } => size as u32 * size as u32 * scalar.size(),
            Type::Struct(s) => s.size(),
        }
    }

    /// Alignment in bytes of this type in memory (WGSL: `vec3` aligns like `vec4`).
    pub fn align(self) -> u32 {
        match self {
            Type::Vector { size: 2, scalar } => 2 * scalar.size(),
            Type::Vector { scalar, .. } => 4 * scalar.size(),
            Type::Struct(s) => s.align(),
            t => t.scalar().size(),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scalar::Bool => "bool",
            Scalar::I32 => "i32",
            Scalar::U32 => "u32",
            Scalar::F32 => "f32",
            Scalar::F16 => "f16",
        })
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Scalar(s) => write!(f, "{s}"),
            Type::Atomic(s) => write!(f, "Atomic<{s}>"),
            Type::Vector { size, scalar } => write!(f, "Vec{size}<{scalar}>"),
            Type::Coop { size, scalar, role } => write!(f, "CoopMat<{scalar}, {role:?}, {size}>"),
            Type::Struct(s) => f.write_str(s.name),
        }
    }
}

/// Index of an expression in [`Kernel::exprs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Literal {
    Bool(bool),
    I32(i32),
    U32(u32),
    F32(f32),
    /// An f16 constant, kept as the f32 it was written as.
    F16(f32),
}

impl Literal {
    pub fn is_zero(self) -> bool {
        match self {
            Literal::Bool(b) => !b,
            Literal::I32(v) => v == 0,
            Literal::U32(v) => v == 0,
            Literal::F32(v) | Literal::F16(v) => v == 0.0 && v.is_sign_positive(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    GlobalId,
    LocalId,
    WorkgroupId,
    NumWorkgroups,
    LocalIndex,
    /// Lanes per subgroup (needs subgroups).
    SubgroupSize,
    /// The invocation's lane in its subgroup.
    SubgroupInvocationId,
    /// The subgroup's index in the workgroup.
    SubgroupId,
    /// Subgroups per workgroup.
    NumSubgroups,
}

impl Builtin {
    pub fn ty(self) -> Type {
        match self {
            Builtin::LocalIndex
            | Builtin::SubgroupSize
            | Builtin::SubgroupInvocationId
            | Builtin::SubgroupId
            | Builtin::NumSubgroups => Type::Scalar(Scalar::U32),
            _ => Type::Vector {
                size: 3,
                scalar: Scalar::U32,
            },
        }
    }
}

/// Memory a kernel can load from and store to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    /// A storage buffer binding (index into [`Kernel::bindings`]), indexed.
    Storage(u32),
    /// A workgroup array (index into [`Kernel::shared`]), indexed.
    Shared(u32),
    /// A function-local variable or array (index into [`Kernel::locals`]).
    Local(u32),
    /// Field `field` of the struct elements of a storage buffer binding, indexed.
    Field(u32, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LogicalAnd,
    LogicalOr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    /// Logical not on bools, bitwise not on integers.
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathFn {
    Abs,
    Min,
    Max,
    Clamp,
    Exp,
    Exp2,
    Log,
    Log2,
    Pow,
    Sqrt,
    InverseSqrt,
    Fma,
    Tanh,
    Sin,
    Cos,
    Floor,
    Ceil,
    Round,
    Dot,
}

/// An expression. Which ones need an evaluation point is decided by [`Expr::needs_eval`].
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Builtin(Builtin),
    /// Field `field` of the uniform struct bound at `binding`.
    Uniform {
        binding: u32,
        field: u32,
    },
    /// Load from a place; `index` is set for arrays.
    Load {
        place: Place,
        index: Option<ExprId>,
    },
    Binary(BinOp, ExprId, ExprId),
    Unary(UnOp, ExprId),
    Math(MathFn, Vec<ExprId>),
    /// Numeric conversion to another scalar kind (component-wise on vectors).
    Cast(Scalar, ExprId),
    /// `if cond { accept } else { reject }` without branching.
    Select {
        cond: ExprId,
        accept: ExprId,
        reject: ExprId,
    },
    Compose(Vec<ExprId>),
    Splat(ExprId),
    Component(ExprId, u32),
    /// The zero value of the expression's type (a cooperative matrix's initial accumulator).
    Zero,
    /// Argument `i` of the emitted function being built (see [`Function`]).
    Arg(u32),
    /// A call of emitted function `function` (an index into [`Kernel::functions`]).
    Call {
        function: u32,
        args: Vec<ExprId>,
    },
    /// Loads a cooperative matrix from `place[offset..]`, rows (or columns, if not
    /// `row_major`) `stride` elements apart.
    CoopLoad {
        place: Place,
        offset: ExprId,
        stride: ExprId,
        row_major: bool,
    },
    /// `a * b + c` on cooperative matrices.
    CoopMulAdd(ExprId, ExprId, ExprId),
    /// An atomic read-modify-write of `place[index]` (an array of atomics) with `value`,
    /// yielding the element's previous value (`Load` reads it atomically, without `value`).
    Atomic {
        op: AtomicOp,
        place: Place,
        index: ExprId,
        value: Option<ExprId>,
    },
    /// A subgroup operation on `value` across the lanes of the subgroup (`lane`: the lane,
    /// mask or offset of a broadcast or shuffle).
    Subgroup {
        op: SubgroupOp,
        value: ExprId,
        lane: Option<ExprId>,
    },
}

/// Atomic operations on an element of an array of atomics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Load,
    Add,
    Sub,
    Min,
    Max,
    And,
    Or,
    Xor,
    Exchange,
}

/// Operations across the lanes of a subgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubgroupOp {
    Add,
    Min,
    Max,
    /// Every lane gets lane `lane`'s value (`lane` a constant).
    Broadcast,
    /// Each lane gets lane `lane`'s value.
    Shuffle,
    /// Each lane gets the value of its lane xor `lane`.
    ShuffleXor,
}

impl Expr {
    /// Literals and builtins are values everywhere; everything else is evaluated at the point
    /// where the kernel created it (this is what makes loads see the right memory state).
    pub fn needs_eval(&self) -> bool {
        !matches!(
            self,
            Expr::Literal(_) | Expr::Builtin(_) | Expr::Zero | Expr::Arg(_)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Barrier {
    Workgroup,
    Storage,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// The expression is evaluated here (its value is fixed from this point on).
    Eval(ExprId),
    Store {
        place: Place,
        index: Option<ExprId>,
        value: ExprId,
    },
    /// Overwrite a whole local array with `value` in every element.
    Fill {
        local: u32,
        value: ExprId,
    },
    If {
        cond: ExprId,
        accept: Block,
        reject: Block,
    },
    /// `loop { body; continuing }`: `continue` jumps to `continuing`.
    Loop {
        body: Block,
        continuing: Block,
    },
    Break,
    Continue,
    Return,
    Barrier(Barrier),
    /// Stores cooperative matrix `value` to `place[offset..]` (layout as in
    /// [`Expr::CoopLoad`]).
    CoopStore {
        value: ExprId,
        place: Place,
        offset: ExprId,
        stride: ExprId,
        row_major: bool,
    },
}

/// A statement with the location of the kernel code that wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct Located {
    pub stmt: Stmt,
    pub loc: Loc,
}

pub type Block = Vec<Located>;

/// A uniform struct: every field is a 4-byte scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct UniformLayout {
    pub name: String,
    pub fields: Vec<(String, Scalar)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum BindingKind {
    Storage { elem: Type, writable: bool },
    Uniform(UniformLayout),
}

/// One `@group(0) @binding(i)` resource, in the kernel's parameter order.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub name: String,
    pub kind: BindingKind,
    /// Where the kernel's parameter is declared.
    pub loc: Loc,
}

/// A workgroup array with a size fixed when the kernel was built.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedArray {
    pub name: String,
    pub elem: Type,
    pub len: u32,
    /// Where the kernel declared it.
    pub loc: Loc,
}

impl SharedArray {
    pub fn bytes(&self) -> u32 {
        self.elem.stride() * self.len
    }
}

/// A function-local variable (`len: None`) or array.
#[derive(Clone, Debug, PartialEq)]
pub struct Local {
    pub name: String,
    pub ty: Type,
    pub len: Option<u32>,
    /// The emitted function it belongs to (`None`: the kernel's entry point).
    pub owner: Option<u32>,
}

/// A `#[kernel_fn(function)]` helper emitted as a WGSL function (instead of inlined), once
/// per distinct compile-time parameters. Its expressions live in [`Kernel::exprs`] like the
/// entry point's; its arguments are [`Expr::Arg`]s.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    pub args: Vec<ExprId>,
    /// The helper's parameter names, for the WGSL.
    pub arg_names: Vec<String>,
    pub result: ExprId,
    pub body: Block,
    /// Where the helper is defined.
    pub loc: Loc,
}

/// Device limits a kernel needs. [`Limits::WEBGPU`] are WebGPU's defaults, which every
/// WebGPU adapter grants; a kernel needing more is native-only and says so with
/// [`Kernel::needs`] (the runtime then uses it only where the adapter grants them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_workgroup_storage_bytes: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_workgroup_size: [u32; 3],
    pub max_storage_buffers_per_stage: u32,
    pub max_uniform_buffers_per_stage: u32,
}

impl Limits {
    pub const WEBGPU: Limits = Limits {
        max_workgroup_storage_bytes: 16384,
        max_invocations_per_workgroup: 256,
        max_workgroup_size: [256, 256, 64],
        max_storage_buffers_per_stage: 8,
        max_uniform_buffers_per_stage: 12,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::WEBGPU
    }
}

/// A kernel as built by one call of a `#[kernel]` function with concrete parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    /// The Rust function's name; also the entry point's name.
    pub name: String,
    /// The compile-time parameters it was built with, for messages (`WG = 256, ...`).
    pub params: String,
    pub workgroup_size: [u32; 3],
    pub bindings: Vec<Binding>,
    pub shared: Vec<SharedArray>,
    pub locals: Vec<Local>,
    /// Where the `#[kernel]` function is defined.
    pub loc: Loc,
    /// Where the workgroup size is written (the `#[kernel]` attribute).
    pub workgroup_size_loc: Loc,
    /// Every expression with its type, in creation order.
    pub exprs: Vec<(Expr, Type)>,
    /// The location of each expression (parallel to `exprs`).
    pub expr_locs: Vec<Loc>,
    /// Names the kernel's author gave to values (`let row = ...`).
    pub names: Vec<(ExprId, String)>,
    pub body: Block,
    /// Helpers emitted as functions, callees before callers.
    pub functions: Vec<Function>,
    /// What went wrong while the kernel was built (e.g. a zero-length array); a kernel with
    /// errors is not lowered.
    pub errors: Vec<Diagnostic>,
    /// The limits it may use: WebGPU's unless declared native-only with [`Kernel::needs`].
    pub limits: Limits,
}

impl Kernel {
    pub fn expr(&self, id: ExprId) -> &Expr {
        &self.exprs[id.0 as usize].0
    }

    pub fn ty(&self, id: ExprId) -> Type {
        self.exprs[id.0 as usize].1
    }

    /// Declares the kernel native-only: it needs `limits` beyond WebGPU's defaults.
    pub fn needs(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether it runs in every WebGPU browser: within WebGPU's default limits, without
    /// cooperative matrices (a wgpu extension) and without subgroups (naga 30's WGSL cannot
    /// carry the `enable subgroups;` browsers require, so subgroup kernels are native-only
    /// for now).
    pub fn is_portable(&self) -> bool {
        self.limits == Limits::WEBGPU && !self.uses_subgroups() && !self.uses_coop()
    }

    /// Bytes of workgroup memory it declares.
    pub fn workgroup_storage_bytes(&self) -> u32 {
        self.shared.iter().map(SharedArray::bytes).sum()
    }

    pub fn expr_loc(&self, id: ExprId) -> Loc {
        self.expr_locs[id.0 as usize]
    }

    /// Whether it uses subgroup builtins or operations (it then needs subgroups).
    pub fn uses_subgroups(&self) -> bool {
        self.exprs.iter().any(|(e, _)| {
            matches!(
                e,
                Expr::Subgroup { .. }
                    | Expr::Builtin(
                        Builtin::SubgroupSize
                            | Builtin::SubgroupInvocationId
                            | Builtin::SubgroupId
                            | Builtin::NumSubgroups
                    )
            )
        })
    }

    /// Whether it uses cooperative matrices (it then needs the adapter's cooperative-matrix
    /// support: native only).
    pub fn uses_coop(&self) -> bool {
        self.exprs
            .iter()
            .any(|(_, t)| matches!(t, Type::Coop { .. }))
    }

    /// Whether any value or binding of the kernel is f16 (it then needs `shader-f16`).
    pub fn uses_f16(&self) -> bool {
        let f16 = |t: Type| t.has_scalar(Scalar::F16);
        self.exprs.iter().any(|(_, t)| f16(*t))
            || self.shared.iter().any(|s| f16(s.elem))
            || self.locals.iter().any(|l| f16(l.ty))
            || self.bindings.iter().any(|b| match &b.kind {
                BindingKind::Storage { elem, .. } => f16(*elem),
                BindingKind::Uniform(u) => u.fields.iter().any(|(_, s)| *s == Scalar::F16),
            })
    }
}
