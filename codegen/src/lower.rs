//! Lowering of a DSL kernel to a `naga::Module` with one compute entry point.
//!
//! Every DSL expression that needs an evaluation point was recorded with one
//! ([`ir::Stmt::Eval`]); here each becomes the naga expressions it stands for, covered by a
//! `Statement::Emit` of exactly those. Expressions naga treats as pre-emitted (literals,
//! globals, locals, arguments) are appended outside any emit range.

use naga::{
    AddressSpace, Arena, BinaryOperator, Block, EntryPoint, Expression, Function, FunctionArgument,
    GlobalVariable, Handle, LocalVariable, MathFunction, Module, ResourceBinding, ShaderStage,
    Span, Statement, StorageAccess, StructMember, TypeInner, UnaryOperator, VectorSize,
};
use std::collections::HashMap;
use std::num::NonZeroU32;
use webdit_dsl::ir::{
    self, BinOp, BindingKind, Builtin, Diagnostic, ExprId, Kernel, Loc, MathFn, Place, UnOp,
};

/// Why a kernel could not be lowered (a kernel the DSL accepted but naga cannot express).
pub(crate) type LowerError = Diagnostic;

/// The kernel locations that naga spans stand for: span `i+1..i+2` is `locs[i]`, so naga's
/// validation errors can be reported at the kernel's lines.
#[derive(Default)]
pub(crate) struct Spans {
    pub locs: Vec<Loc>,
    index: HashMap<Loc, u32>,
}

impl Spans {
    fn span(&mut self, loc: Loc) -> Span {
        let i = *self.index.entry(loc).or_insert_with(|| {
            self.locs.push(loc);
            self.locs.len() as u32 - 1
        });
        Span::new(i + 1, i + 2)
    }

    /// The kernel location of a span that [`Spans::span`] made.
    pub fn loc(&self, span: Span) -> Option<Loc> {
        let r = span.to_range()?;
        self.locs.get(r.start.checked_sub(1)?).copied()
    }
}

pub(crate) fn lower(k: &Kernel) -> Result<(Module, Spans), LowerError> {
    let mut spans = Spans::default();
    let here = spans.span(k.loc);
    let mut l = Lowerer {
        k,
        spans,
        here,
        loc: k.loc,
        module: Module::default(),
        exprs: Arena::new(),
        lowered: vec![None; k.exprs.len()],
        bindings: vec![],
        shared: vec![],
        locals: Arena::new(),
        local_handles: HashMap::new(),
        args: vec![],
        arg_of: HashMap::new(),
        pre: HashMap::new(),
        functions: vec![],
        owner: None,
    };
    l.declare()?;
    // Emitted helpers first (callees before callers), then the entry point.
    for (i, f) in k.functions.iter().enumerate() {
        l.loc = f.loc;
        l.here = l.spans.span(f.loc);
        let here = l.here;
        l.begin(Some(i as u32))?;
        for (a, name) in f.args.iter().zip(&f.arg_names) {
            let ty = l.ty(k.ty(*a));
            l.args.push(FunctionArgument {
                name: Some(name.clone()),
                ty,
                binding: None,
            });
        }
        let mut body = l.block(&f.body)?;
        let value = l.operand(f.result)?;
        body.push(Statement::Return { value: Some(value) }, here);
        let ty = l.ty(k.ty(f.result));
        let mut function = l.finish(&f.name, body);
        function.result = Some(naga::FunctionResult { ty, binding: None });
        let h = l.module.functions.append(function, here);
        l.functions.push(h);
    }
    l.loc = k.loc;
    l.here = l.spans.span(k.loc);
    l.begin(None)?;
    let body = l.block(&k.body)?;
    let function = l.finish(&k.name, body);
    l.module.entry_points.push(EntryPoint {
        name: k.name.clone(),
        stage: ShaderStage::Compute,
        early_depth_test: None,
        workgroup_size: k.workgroup_size,
        workgroup_size_overrides: None,
        function,
        mesh_info: None,
        task_payload: None,
        incoming_ray_payload: None,
    });
    Ok((l.module, l.spans))
}

struct Lowerer<'k> {
    k: &'k Kernel,
    spans: Spans,
    /// The span and location of the statement being lowered.
    here: Span,
    loc: Loc,
    module: Module,
    exprs: Arena<Expression>,
    /// The naga expression holding each DSL expression's value, once lowered.
    lowered: Vec<Option<Handle<Expression>>>,
    bindings: Vec<Handle<GlobalVariable>>,
    shared: Vec<Handle<GlobalVariable>>,
    locals: Arena<LocalVariable>,
    /// The naga locals of the function being lowered, by kernel local.
    local_handles: HashMap<u32, Handle<LocalVariable>>,
    args: Vec<FunctionArgument>,
    arg_of: HashMap<Builtin, u32>,
    /// Pre-emitted pointer expressions of globals and locals, made once.
    pre: HashMap<Place, Handle<Expression>>,
    /// The naga functions of the kernel's emitted helpers, by index.
    functions: Vec<Handle<naga::Function>>,
    /// The emitted helper being lowered (`None`: the entry point).
    owner: Option<u32>,
}

fn scalar(s: ir::Scalar) -> naga::Scalar {
    match s {
        ir::Scalar::Bool => naga::Scalar::BOOL,
        ir::Scalar::I32 => naga::Scalar::I32,
        ir::Scalar::U32 => naga::Scalar::U32,
        ir::Scalar::F32 => naga::Scalar::F32,
        ir::Scalar::F16 => naga::Scalar::F16,
    }
}

/// naga's builtin for a DSL builtin, and the DSL's name for it.
fn builtin(b: Builtin) -> (naga::BuiltIn, &'static str) {
    match b {
        Builtin::GlobalId => (naga::BuiltIn::GlobalInvocationId, "global_id"),
        Builtin::LocalId => (naga::BuiltIn::LocalInvocationId, "local_id"),
        Builtin::WorkgroupId => (naga::BuiltIn::WorkGroupId, "workgroup_id"),
        Builtin::NumWorkgroups => (naga::BuiltIn::NumWorkGroups, "num_workgroups"),
        Builtin::LocalIndex => (naga::BuiltIn::LocalInvocationIndex, "local_index"),
        Builtin::SubgroupSize => (naga::BuiltIn::SubgroupSize, "subgroup_size"),
        Builtin::SubgroupInvocationId => (
            naga::BuiltIn::SubgroupInvocationId,
            "subgroup_invocation_id",
        ),
        Builtin::SubgroupId => (naga::BuiltIn::SubgroupId, "subgroup_id"),
        Builtin::NumSubgroups => (naga::BuiltIn::NumSubgroups, "num_subgroups"),
    }
}

fn coop_size(n: u8) -> naga::CooperativeSize {
    if n == 8 {
        naga::CooperativeSize::Eight
    } else {
        naga::CooperativeSize::Sixteen
    }
}

fn vector_size(n: u8) -> VectorSize {
    match n {
        2 => VectorSize::Bi,
        3 => VectorSize::Tri,
        _ => VectorSize::Quad,
    }
}

impl Lowerer<'_> {
    fn ty_inner(&mut self, inner: TypeInner) -> Handle<naga::Type> {
        self.module
            .types
            .insert(naga::Type { name: None, inner }, Span::UNDEFINED)
    }

    fn ty(&mut self, t: ir::Type) -> Handle<naga::Type> {
        if let ir::Type::Struct(st) = t {
            let members = st
                .fields
                .iter()
                .zip(st.offsets())
                .map(|(&(name, ty), offset)| naga::StructMember {
                    name: Some(name.to_string()),
                    ty: self.ty(ty),
                    binding: None,
                    offset,
                })
                .collect();
            let inner = TypeInner::Struct {
                members,
                span: st.size(),
            };
            let name = Some(st.name.to_string());
            return self
                .module
                .types
                .insert(naga::Type { name, inner }, Span::UNDEFINED);
        }
        self.ty_inner(match t {
            ir::Type::Scalar(s) => TypeInner::Scalar(scalar(s)),
            ir::Type::Vector { size, scalar: s } => TypeInner::Vector {
                size: vector_size(size),
                scalar: scalar(s),
            },
            ir::Type::Atomic(s) => TypeInner::Atomic(scalar(s)),
            ir::Type::Coop {
                size,
                scalar: s,
                role,
            } => {
                let n = coop_size(size);
                TypeInner::CooperativeMatrix {
                    columns: n,
                    rows: n,
                    scalar: scalar(s),
                    role: match role {
                        ir::CoopRole::A => naga::CooperativeRole::A,
                        ir::CoopRole::B => naga::CooperativeRole::B,
                        ir::CoopRole::C => naga::CooperativeRole::C,
                    },
                }
            }
            ir::Type::Struct(_) => unreachable!("handled above"),
        })
    }

    fn array_ty(
        &mut self,
        elem: ir::Type,
        len: Option<u32>,
    ) -> Result<Handle<naga::Type>, LowerError> {
        let base = self.ty(elem);
        let size = match len {
            None => naga::ArraySize::Dynamic,
            Some(n) => naga::ArraySize::Constant(
                NonZeroU32::new(n).ok_or_else(|| self.error("array of length 0".into()))?,
            ),
        };
        Ok(self.ty_inner(TypeInner::Array {
            base,
            size,
            stride: elem.stride(),
        }))
    }

    /// Globals for bindings and workgroup arrays, locals, and builtin arguments.
    fn declare(&mut self) -> Result<(), LowerError> {
        let k = self.k;
        for (i, b) in k.bindings.iter().enumerate() {
            let (space, ty) = match &b.kind {
                BindingKind::Storage { elem, writable } => {
                    let access = if *writable {
                        StorageAccess::LOAD | StorageAccess::STORE
                    } else {
                        StorageAccess::LOAD
                    };
                    (
                        AddressSpace::Storage { access },
                        self.array_ty(*elem, None)?,
                    )
                }
                BindingKind::Uniform(u) => {
                    let mut members = vec![];
                    for (j, (name, s)) in u.fields.iter().enumerate() {
                        let ty = self.ty(ir::Type::Scalar(*s));
                        members.push(StructMember {
                            name: Some(name.clone()),
                            ty,
                            binding: None,
                            offset: 4 * j as u32,
                        });
                    }
                    let span = (4 * u.fields.len() as u32).div_ceil(16).max(1) * 16;
                    let ty = self.module.types.insert(
                        naga::Type {
                            name: Some(u.name.clone()),
                            inner: TypeInner::Struct { members, span },
                        },
                        Span::UNDEFINED,
                    );
                    (AddressSpace::Uniform, ty)
                }
            };
            let g = self.module.global_variables.append(
                GlobalVariable {
                    name: Some(b.name.clone()),
                    space,
                    binding: Some(ResourceBinding {
                        group: 0,
                        binding: i as u32,
                    }),
                    ty,
                    init: None,
                    memory_decorations: Default::default(),
                },
                Span::UNDEFINED,
            );
            self.bindings.push(g);
        }
        for s in &k.shared {
            let ty = self.array_ty(s.elem, Some(s.len))?;
            let span = self.spans.span(s.loc);
            let g = self.module.global_variables.append(
                GlobalVariable {
                    name: Some(s.name.clone()),
                    space: AddressSpace::WorkGroup,
                    binding: None,
                    ty,
                    init: None,
                    memory_decorations: Default::default(),
                },
                span,
            );
            self.shared.push(g);
        }
        Ok(())
    }

    /// Starts lowering the body of `owner` (an emitted helper, or the entry point): fresh
    /// expressions, locals and arguments.
    fn begin(&mut self, owner: Option<u32>) -> Result<(), LowerError> {
        let k = self.k;
        self.owner = owner;
        self.exprs = Arena::new();
        self.lowered = vec![None; k.exprs.len()];
        self.locals = Arena::new();
        self.local_handles.clear();
        self.args.clear();
        self.arg_of.clear();
        self.pre.clear();
        for (i, l) in k.locals.iter().enumerate() {
            if l.owner != owner {
                continue;
            }
            let ty = match l.len {
                None => self.ty(l.ty),
                Some(n) => self.array_ty(l.ty, Some(n))?,
            };
            let h = self.locals.append(
                LocalVariable {
                    name: Some(l.name.clone()),
                    ty,
                    init: None,
                },
                Span::UNDEFINED,
            );
            self.local_handles.insert(i as u32, h);
        }
        // The entry point takes the builtins as arguments (emitted helpers take values).
        for (e, _) in k.exprs.iter().filter(|_| owner.is_none()) {
            if let ir::Expr::Builtin(b) = e {
                if !self.arg_of.contains_key(b) {
                    let ty = self.ty(b.ty());
                    let (builtin, name) = builtin(*b);
                    self.arg_of.insert(*b, self.args.len() as u32);
                    self.args.push(FunctionArgument {
                        name: Some(name.into()),
                        ty,
                        binding: Some(naga::Binding::BuiltIn(builtin)),
                    });
                }
            }
        }
        Ok(())
    }

    /// The naga function of the body lowered since [`Lowerer::begin`].
    fn finish(&mut self, name: &str, body: Block) -> Function {
        let mut function = Function {
            name: Some(name.to_string()),
            arguments: std::mem::take(&mut self.args),
            result: None,
            local_variables: std::mem::take(&mut self.locals),
            expressions: std::mem::take(&mut self.exprs),
            named_expressions: Default::default(),
            body,
            diagnostic_filter_leaf: None,
        };
        for (id, name) in &self.k.names {
            if let Some(h) = self.lowered[id.0 as usize] {
                if !function.expressions[h].needs_pre_emit() {
                    function.named_expressions.insert(h, name.clone());
                }
            }
        }
        function
    }

    fn append(&mut self, e: Expression) -> Handle<Expression> {
        self.exprs.append(e, self.here)
    }

    fn error(&self, message: String) -> LowerError {
        Diagnostic::new(self.loc, message)
    }

    /// The pointer expression of a place (pre-emitted, so usable anywhere).
    fn place_ptr(&mut self, p: Place) -> Handle<Expression> {
        if let Some(h) = self.pre.get(&p) {
            return *h;
        }
        let e = match p {
            Place::Storage(b) | Place::Field(b, _) => {
                Expression::GlobalVariable(self.bindings[b as usize])
            }
            Place::Shared(s) => Expression::GlobalVariable(self.shared[s as usize]),
            Place::Local(l) => Expression::LocalVariable(self.local_handles[&l]),
        };
        let h = self.append(e);
        self.pre.insert(p, h);
        h
    }

    /// Whether `id` is a zero of its type: a zero literal, `Zero`, or a vector of zeros (so
    /// that filling an array with it lowers to the array's zero value).
    fn is_zero(&self, id: ExprId) -> bool {
        match self.k.expr(id) {
            ir::Expr::Literal(lit) => lit.is_zero(),
            ir::Expr::Zero => true,
            ir::Expr::Splat(v) => self.is_zero(*v),
            ir::Expr::Compose(parts) => parts.iter().all(|p| self.is_zero(*p)),
            _ => false,
        }
    }

    /// The handle of an operand: a value computed earlier, or a literal/builtin made now.
    fn operand(&mut self, id: ExprId) -> Result<Handle<Expression>, LowerError> {
        if let Some(h) = self.lowered[id.0 as usize] {
            return Ok(h);
        }
        let h = match self.k.expr(id) {
            ir::Expr::Literal(lit) => {
                let lit = match *lit {
                    ir::Literal::Bool(b) => naga::Literal::Bool(b),
                    ir::Literal::I32(v) => naga::Literal::I32(v),
                    ir::Literal::U32(v) => naga::Literal::U32(v),
                    ir::Literal::F32(v) => naga::Literal::F32(v),
                    ir::Literal::F16(v) => naga::Literal::F16(half::f16::from_f32(v)),
                };
                let finite = match lit {
                    naga::Literal::F32(v) => v.is_finite(),
                    naga::Literal::F16(v) => v.is_finite(),
                    _ => true,
                };
                if !finite {
                    return Err(self.error(format!(
                        "the constant {lit:?} is not finite; WGSL has no infinities or NaNs (use e.g. -3.0e38 for -inf)"
                    )));
                }
                self.append(Expression::Literal(lit))
            }
            ir::Expr::Builtin(b) => {
                let Some(&arg) = self.arg_of.get(b) else {
                    return Err(self.error(format!(
                        "`{}()` is not available inside a `#[kernel_fn(function)]` helper; pass it as a parameter",
                        builtin(*b).1
                    )));
                };
                self.append(Expression::FunctionArgument(arg))
            }
            ir::Expr::Arg(i) => self.append(Expression::FunctionArgument(*i)),
            ir::Expr::Zero => {
                let ty = self.ty(self.k.ty(id));
                self.append(Expression::ZeroValue(ty))
            }
            other => {
                return Err(self.error(format!(
                    "a value ({other:?}) is used outside the block that computed it (e.g. a value computed inside an `if` used after it; use a `let mut` variable)"
                )))
            }
        };
        self.lowered[id.0 as usize] = Some(h);
        Ok(h)
    }

    /// A pointer to `place[index]` (emitted into `out`) or to the whole place.
    fn pointer(
        &mut self,
        place: Place,
        index: Option<ExprId>,
        out: &mut Block,
    ) -> Result<Handle<Expression>, LowerError> {
        let base = self.place_ptr(place);
        match (index, place) {
            (None, _) => Ok(base),
            (Some(i), Place::Field(_, field)) => {
                let index = self.operand(i)?;
                self.emit(out, |l| {
                    let element = l.append(Expression::Access { base, index });
                    Ok(l.append(Expression::AccessIndex {
                        base: element,
                        index: field,
                    }))
                })
            }
            (Some(i), _) => {
                let index = self.operand(i)?;
                self.emit(out, |l| Ok(l.append(Expression::Access { base, index })))
            }
        }
    }

    /// Runs `f`, which appends expressions that need emitting, and covers them with an Emit.
    fn emit(
        &mut self,
        out: &mut Block,
        f: impl FnOnce(&mut Self) -> Result<Handle<Expression>, LowerError>,
    ) -> Result<Handle<Expression>, LowerError> {
        let start = self.exprs.len();
        let h = f(self)?;
        let range = self.exprs.range_from(start);
        out.push(Statement::Emit(range), self.here);
        Ok(h)
    }

    fn eval(&mut self, id: ExprId, out: &mut Block) -> Result<(), LowerError> {
        let k = self.k;
        let h = match k.expr(id).clone() {
            ir::Expr::Literal(_) | ir::Expr::Builtin(_) | ir::Expr::Zero | ir::Expr::Arg(_) => {
                return Ok(())
            }
            ir::Expr::Uniform { binding, field } => {
                let base = self.place_ptr(Place::Storage(binding));
                self.emit(out, |l| {
                    let p = l.append(Expression::AccessIndex { base, index: field });
                    Ok(l.append(Expression::Load { pointer: p }))
                })?
            }
            ir::Expr::Load { place, index } => {
                let pointer = self.pointer(place, index, out)?;
                self.emit(out, |l| Ok(l.append(Expression::Load { pointer })))?
            }
            ir::Expr::Binary(op, a, b) => {
                let left = self.operand(a)?;
                let right = self.operand(b)?;
                let op = binary_op(op, k.ty(a).scalar());
                self.emit(out, |l| {
                    Ok(l.append(Expression::Binary { op, left, right }))
                })?
            }
            ir::Expr::Unary(op, a) => {
                let expr = self.operand(a)?;
                let op = match op {
                    UnOp::Neg => UnaryOperator::Negate,
                    UnOp::Not if k.ty(a).scalar() == ir::Scalar::Bool => UnaryOperator::LogicalNot,
                    UnOp::Not => UnaryOperator::BitwiseNot,
                };
                self.emit(out, |l| Ok(l.append(Expression::Unary { op, expr })))?
            }
            ir::Expr::Math(f, args) => {
                let args: Vec<_> = args
                    .iter()
                    .map(|a| self.operand(*a))
                    .collect::<Result<_, _>>()?;
                let fun = math_fn(f);
                self.emit(out, |l| {
                    Ok(l.append(Expression::Math {
                        fun,
                        arg: args[0],
                        arg1: args.get(1).copied(),
                        arg2: args.get(2).copied(),
                        arg3: args.get(3).copied(),
                    }))
                })?
            }
            ir::Expr::Cast(s, a) => {
                let expr = self.operand(a)?;
                let s = scalar(s);
                self.emit(out, |l| {
                    Ok(l.append(Expression::As {
                        expr,
                        kind: s.kind,
                        convert: Some(s.width),
                    }))
                })?
            }
            ir::Expr::Select {
                cond,
                accept,
                reject,
            } => {
                let condition = self.operand(cond)?;
                let accept = self.operand(accept)?;
                let reject = self.operand(reject)?;
                self.emit(out, |l| {
                    Ok(l.append(Expression::Select {
                        condition,
                        accept,
                        reject,
                    }))
                })?
            }
            ir::Expr::Compose(parts) => {
                let components: Vec<_> = parts
                    .iter()
                    .map(|a| self.operand(*a))
                    .collect::<Result<_, _>>()?;
                let ty = self.ty(k.ty(id));
                self.emit(
                    out,
                    |l| Ok(l.append(Expression::Compose { ty, components })),
                )?
            }
            ir::Expr::Splat(v) => {
                let value = self.operand(v)?;
                let ir::Type::Vector { size, .. } = k.ty(id) else {
                    return Err(self.error("splat to a non-vector type".into()));
                };
                let size = vector_size(size);
                self.emit(out, |l| Ok(l.append(Expression::Splat { size, value })))?
            }
            ir::Expr::CoopLoad {
                place,
                offset,
                stride,
                row_major,
            } => {
                let pointer = self.pointer(place, Some(offset), out)?;
                let stride = self.operand(stride)?;
                let ir::Type::Coop { size, role, .. } = k.ty(id) else {
                    return Err(self.error("a cooperative load of a non-matrix type".into()));
                };
                let n = coop_size(size);
                let role = match role {
                    ir::CoopRole::A => naga::CooperativeRole::A,
                    ir::CoopRole::B => naga::CooperativeRole::B,
                    ir::CoopRole::C => naga::CooperativeRole::C,
                };
                self.emit(out, |l| {
                    Ok(l.append(Expression::CooperativeLoad {
                        columns: n,
                        rows: n,
                        role,
                        data: naga::CooperativeData {
                            pointer,
                            stride,
                            row_major,
                        },
                    }))
                })?
            }
            ir::Expr::Call { function, args } => {
                let arguments: Vec<_> = args
                    .iter()
                    .map(|a| self.operand(*a))
                    .collect::<Result<_, _>>()?;
                let function = self.functions[function as usize];
                // The result is made by the call, outside any emit range.
                let result = self.append(Expression::CallResult(function));
                out.push(
                    Statement::Call {
                        function,
                        arguments,
                        result: Some(result),
                    },
                    self.here,
                );
                result
            }
            ir::Expr::CoopMulAdd(a, b, c) => {
                let (a, b, c) = (self.operand(a)?, self.operand(b)?, self.operand(c)?);
                self.emit(out, |l| {
                    Ok(l.append(Expression::CooperativeMultiplyAdd { a, b, c }))
                })?
            }
            ir::Expr::Atomic {
                op,
                place,
                index,
                value,
            } => {
                let pointer = self.pointer(place, Some(index), out)?;
                if op == ir::AtomicOp::Load {
                    self.emit(out, |l| Ok(l.append(Expression::Load { pointer })))?
                } else {
                    let value = match value {
                        Some(v) => self.operand(v)?,
                        None => return Err(self.error("an atomic operation needs a value".into())),
                    };
                    let ty = self.ty(k.ty(id));
                    // The result is made by the statement, outside any emit range.
                    let result = self.append(Expression::AtomicResult {
                        ty,
                        comparison: false,
                    });
                    let fun = match op {
                        ir::AtomicOp::Add => naga::AtomicFunction::Add,
                        ir::AtomicOp::Sub => naga::AtomicFunction::Subtract,
                        ir::AtomicOp::Min => naga::AtomicFunction::Min,
                        ir::AtomicOp::Max => naga::AtomicFunction::Max,
                        ir::AtomicOp::And => naga::AtomicFunction::And,
                        ir::AtomicOp::Or => naga::AtomicFunction::InclusiveOr,
                        ir::AtomicOp::Xor => naga::AtomicFunction::ExclusiveOr,
                        ir::AtomicOp::Exchange | ir::AtomicOp::Load => {
                            naga::AtomicFunction::Exchange { compare: None }
                        }
                    };
                    out.push(
                        Statement::Atomic {
                            pointer,
                            fun,
                            value,
                            result: Some(result),
                        },
                        self.here,
                    );
                    result
                }
            }
            ir::Expr::Subgroup { op, value, lane } => {
                let argument = self.operand(value)?;
                let lane = lane.map(|l| self.operand(l)).transpose()?;
                let ty = self.ty(k.ty(id));
                // The result is made by the statement, outside any emit range.
                let result = self.append(Expression::SubgroupOperationResult { ty });
                let collective = |op| Statement::SubgroupCollectiveOperation {
                    op,
                    collective_op: naga::CollectiveOperation::Reduce,
                    argument,
                    result,
                };
                let gather = |mode| Statement::SubgroupGather {
                    mode,
                    argument,
                    result,
                };
                let lane = || lane.ok_or_else(|| self.error("a shuffle needs a lane".into()));
                let stmt = match op {
                    ir::SubgroupOp::Add => collective(naga::SubgroupOperation::Add),
                    ir::SubgroupOp::Min => collective(naga::SubgroupOperation::Min),
                    ir::SubgroupOp::Max => collective(naga::SubgroupOperation::Max),
                    ir::SubgroupOp::Broadcast => gather(naga::GatherMode::Broadcast(lane()?)),
                    ir::SubgroupOp::Shuffle => gather(naga::GatherMode::Shuffle(lane()?)),
                    ir::SubgroupOp::ShuffleXor => gather(naga::GatherMode::ShuffleXor(lane()?)),
                };
                out.push(stmt, self.here);
                result
            }
            ir::Expr::Component(v, i) => {
                let base = self.operand(v)?;
                self.emit(out, |l| {
                    Ok(l.append(Expression::AccessIndex { base, index: i }))
                })?
            }
        };
        self.lowered[id.0 as usize] = Some(h);
        Ok(())
    }

    fn block(&mut self, stmts: &[ir::Located]) -> Result<Block, LowerError> {
        let mut out = Block::new();
        for s in stmts {
            self.loc = s.loc;
            self.here = self.spans.span(s.loc);
            let here = self.here;
            match &s.stmt {
                ir::Stmt::Eval(id) => self.eval(*id, &mut out)?,
                ir::Stmt::Store {
                    place,
                    index,
                    value,
                } => {
                    let pointer = self.pointer(*place, *index, &mut out)?;
                    let value = self.operand(*value)?;
                    out.push(Statement::Store { pointer, value }, here);
                }
                ir::Stmt::Fill { local, value } => {
                    let l = &self.k.locals[*local as usize];
                    let (elem, len) = (l.ty, l.len.unwrap_or(1));
                    let ty = self.array_ty(elem, Some(len))?;
                    let pointer = self.place_ptr(Place::Local(*local));
                    let is_zero = self.is_zero(*value);
                    let value = if is_zero {
                        self.append(Expression::ZeroValue(ty))
                    } else {
                        let v = self.operand(*value)?;
                        self.emit(&mut out, |l| {
                            Ok(l.append(Expression::Compose {
                                ty,
                                components: vec![v; len as usize],
                            }))
                        })?
                    };
                    out.push(Statement::Store { pointer, value }, here);
                }
                ir::Stmt::If {
                    cond,
                    accept,
                    reject,
                } => {
                    let condition = self.operand(*cond)?;
                    let accept = self.block(accept)?;
                    let reject = self.block(reject)?;
                    out.push(
                        Statement::If {
                            condition,
                            accept,
                            reject,
                        },
                        here,
                    );
                }
                ir::Stmt::Loop { body, continuing } => {
                    let body = self.block(body)?;
                    let continuing = self.block(continuing)?;
                    out.push(
                        Statement::Loop {
                            body,
                            continuing,
                            break_if: None,
                        },
                        here,
                    );
                }
                ir::Stmt::Break => out.push(Statement::Break, here),
                ir::Stmt::Continue => out.push(Statement::Continue, here),
                ir::Stmt::Return => out.push(Statement::Return { value: None }, here),
                ir::Stmt::CoopStore {
                    value,
                    place,
                    offset,
                    stride,
                    row_major,
                } => {
                    let pointer = self.pointer(*place, Some(*offset), &mut out)?;
                    let target = self.operand(*value)?;
                    let stride = self.operand(*stride)?;
                    out.push(
                        Statement::CooperativeStore {
                            target,
                            data: naga::CooperativeData {
                                pointer,
                                stride,
                                row_major: *row_major,
                            },
                        },
                        here,
                    );
                }
                ir::Stmt::Barrier(b) => {
                    let flags = match b {
                        ir::Barrier::Workgroup => naga::Barrier::WORK_GROUP,
                        ir::Barrier::Storage => naga::Barrier::STORAGE,
                    };
                    out.push(Statement::ControlBarrier(flags), here);
                }
            }
        }
        Ok(out)
    }
}

fn binary_op(op: BinOp, operand: ir::Scalar) -> BinaryOperator {
    use BinaryOperator as B;
    match op {
        BinOp::Add => B::Add,
        BinOp::Sub => B::Subtract,
        BinOp::Mul => B::Multiply,
        BinOp::Div => B::Divide,
        BinOp::Rem => B::Modulo,
        BinOp::And => B::And,
        BinOp::Or => B::InclusiveOr,
        BinOp::Xor => B::ExclusiveOr,
        BinOp::Shl => B::ShiftLeft,
        BinOp::Shr => B::ShiftRight,
        BinOp::Eq => B::Equal,
        BinOp::Ne => B::NotEqual,
        BinOp::Lt => B::Less,
        BinOp::Le => B::LessEqual,
        BinOp::Gt => B::Greater,
        BinOp::Ge => B::GreaterEqual,
        BinOp::LogicalAnd if operand == ir::Scalar::Bool => B::LogicalAnd,
        BinOp::LogicalOr if operand == ir::Scalar::Bool => B::LogicalOr,
        BinOp::LogicalAnd => B::And,
        BinOp::LogicalOr => B::InclusiveOr,
    }
}

fn math_fn(f: MathFn) -> MathFunction {
    use MathFunction as M;
    match f {
        MathFn::Abs => M::Abs,
        MathFn::Min => M::Min,
        MathFn::Max => M::Max,
        MathFn::Clamp => M::Clamp,
        MathFn::Exp => M::Exp,
        MathFn::Exp2 => M::Exp2,
        MathFn::Log => M::Log,
        MathFn::Log2 => M::Log2,
        MathFn::Pow => M::Pow,
        MathFn::Sqrt => M::Sqrt,
        MathFn::InverseSqrt => M::InverseSqrt,
        MathFn::Fma => M::Fma,
        MathFn::Tanh => M::Tanh,
        MathFn::Sin => M::Sin,
        MathFn::Cos => M::Cos,
        MathFn::Floor => M::Floor,
        MathFn::Ceil => M::Ceil,
        MathFn::Round => M::Round,
        MathFn::Dot => M::Dot,
    }
}
