//! What naga accepts but a WebGPU browser rejects, checked on the DSL's IR before lowering:
//! the kernel's limits (workgroup size and memory, buffers per stage) against WebGPU's
//! defaults or the limits a native-only kernel declares, storage element types, and WGSL's
//! uniformity rule for barriers (naga 30 does not enforce it; Chromium does).

use webdit_dsl::ir::{
    Barrier, BindingKind, Block, Builtin, Diagnostic, Expr, ExprId, Kernel, Limits, Loc, Place,
    Scalar, Stmt, Type,
};

/// Every problem of the kernel, each at the kernel code that causes it.
pub(crate) fn check(k: &Kernel) -> Vec<Diagnostic> {
    let mut out = limits(k);
    out.extend(uniformity(k));
    for f in &k.functions {
        barriers(&f.body, &mut |loc| {
            out.push(Diagnostic::new(
                loc,
                format!(
                    "barriers are not supported inside `#[kernel_fn(function)]` helpers (`{}`); use an inlined helper",
                    f.name
                ),
            ))
        });
    }
    out
}

/// Calls `found` with the location of every barrier in `b`.
fn barriers(b: &Block, found: &mut impl FnMut(Loc)) {
    for s in b {
        match &s.stmt {
            Stmt::Barrier(_) => found(s.loc),
            Stmt::If { accept, reject, .. } => {
                barriers(accept, found);
                barriers(reject, found);
            }
            Stmt::Loop { body, continuing } => {
                barriers(body, found);
                barriers(continuing, found);
            }
            _ => {}
        }
    }
}

fn limits(k: &Kernel) -> Vec<Diagnostic> {
    let l: Limits = k.limits;
    let guaranteed = if k.limits == Limits::WEBGPU {
        "WebGPU guarantees"
    } else {
        "the kernel's declared limits allow"
    };
    let mut out = vec![];
    let [x, y, z] = k.workgroup_size;
    let invocations = x as u64 * y as u64 * z as u64;
    for ((dim, max), axis) in k
        .workgroup_size
        .iter()
        .zip(l.max_workgroup_size)
        .zip("xyz".chars())
    {
        if *dim == 0 || *dim > max {
            out.push(Diagnostic::new(
                k.workgroup_size_loc,
                format!("the workgroup's {axis} size is {dim}; {guaranteed} 1 to {max}"),
            ));
        }
    }
    if invocations > l.max_invocations_per_workgroup as u64 {
        out.push(Diagnostic::new(
            k.workgroup_size_loc,
            format!(
                "a workgroup of {x}x{y}x{z} = {invocations} invocations; {guaranteed} at most {}",
                l.max_invocations_per_workgroup
            ),
        ));
    }
    let bytes = k.workgroup_storage_bytes();
    if bytes > l.max_workgroup_storage_bytes {
        let mut d = Diagnostic::new(
            k.loc,
            format!(
                "the kernel declares {bytes} bytes of workgroup memory; {guaranteed} {}{}",
                l.max_workgroup_storage_bytes,
                if k.limits == Limits::WEBGPU {
                    " (declare the kernel native-only with `Kernel::needs` to use more)"
                } else {
                    ""
                }
            ),
        );
        for s in &k.shared {
            d.notes.push((
                s.loc,
                format!("{} bytes: `{}`, {} x {}", s.bytes(), s.name, s.len, s.elem),
            ));
        }
        out.push(d);
    }
    for (uniform, what, max) in [
        (false, "storage arrays", l.max_storage_buffers_per_stage),
        (true, "uniform structs", l.max_uniform_buffers_per_stage),
    ] {
        let n = k
            .bindings
            .iter()
            .filter(|b| matches!(b.kind, BindingKind::Uniform(_)) == uniform)
            .count();
        if n > max as usize {
            out.push(Diagnostic::new(
                k.loc,
                format!("the kernel binds {n} {what}; {guaranteed} {max} per shader stage"),
            ));
        }
    }
    let atomic = |p: &Place| match p {
        Place::Storage(b) => matches!(
            k.bindings[*b as usize].kind,
            BindingKind::Storage {
                elem: Type::Atomic(_),
                ..
            }
        ),
        Place::Shared(s) => matches!(k.shared[*s as usize].elem, Type::Atomic(_)),
        Place::Local(_) | Place::Field(..) => false,
    };
    for (i, (e, _)) in k.exprs.iter().enumerate() {
        if let Expr::Load { place, .. } = e {
            if atomic(place) {
                out.push(Diagnostic::new(
                    k.expr_locs[i],
                    "an array of atomics is read with `atomic_load(array, index)`, not indexing",
                ));
            }
        }
    }
    for b in &k.bindings {
        if let BindingKind::Storage { elem, .. } = &b.kind {
            if elem.has_scalar(Scalar::Bool) {
                let what = match elem {
                    Type::Struct(st) => format!(
                        "its struct `{}` has a `bool` field, which storage arrays cannot hold",
                        st.name
                    ),
                    _ => "storage arrays cannot hold `bool`".into(),
                };
                out.push(Diagnostic::new(
                    b.loc,
                    format!(
                        "parameter `{}`: {what} (it has no memory layout in WGSL); use `u32`",
                        b.name
                    ),
                ));
            }
        }
    }
    out
}

/// Why a value or the control flow may differ between invocations: a chain of kernel code,
/// from the nearest cause to the root (e.g. a condition, then the load it reads).
type Reason = Option<Vec<(Loc, String)>>;

fn because(loc: Loc, why: &str) -> Reason {
    Some(vec![(loc, why.to_string())])
}

/// `reason` with `(loc, why)` in front.
fn chain(loc: Loc, why: String, reason: &[(Loc, String)]) -> Vec<(Loc, String)> {
    let mut out = vec![(loc, why)];
    out.extend(reason.iter().take(6).cloned());
    out
}

/// WGSL's uniformity analysis, conservatively: a barrier must not run under a condition that
/// may differ between invocations, nor after a `break`, `continue` or `return` taken under
/// one. Values differ between invocations when they derive from `local_id`, `global_id`,
/// `local_index`, workgroup memory, read-write storage, or a variable assigned such a value
/// or assigned under such a condition.
fn uniformity(k: &Kernel) -> Vec<Diagnostic> {
    let mut a = Uniformity {
        k,
        tainted: vec![None; k.locals.len()],
        values: vec![],
        errors: vec![],
        changed: true,
    };
    // Variables' taint feeds conditions, which taint more variables: iterate to a fixpoint,
    // then report from the last walk (one error per barrier).
    while a.changed {
        a.changed = false;
        a.values = a.values_now();
        a.errors.clear();
        a.block(&k.body, None);
    }
    let mut seen = std::collections::HashSet::new();
    a.errors.retain(|d| seen.insert(d.loc));
    a.errors
}

struct Uniformity<'k> {
    k: &'k Kernel,
    /// Per local variable: why it may hold a non-uniform value.
    tainted: Vec<Reason>,
    /// Per expression: why its value may be non-uniform.
    values: Vec<Reason>,
    errors: Vec<Diagnostic>,
    changed: bool,
}

/// How a block left the uniform path: a `break`/`continue` (ends at the loop) or a
/// `return` (lasts for the rest of the kernel) taken under a non-uniform condition.
#[derive(Default)]
struct Exits {
    loop_exit: Reason,
    ret: Reason,
}

impl Uniformity<'_> {
    fn values_now(&self) -> Vec<Reason> {
        let k = self.k;
        let mut v: Vec<Reason> = Vec::with_capacity(k.exprs.len());
        for (i, (e, _)) in k.exprs.iter().enumerate() {
            let loc = k.expr_locs[i];
            let of = |ids: &[ExprId]| ids.iter().find_map(|id| v[id.0 as usize].clone());
            let r = match e {
                Expr::Literal(_) | Expr::Uniform { .. } | Expr::Zero | Expr::Arg(_) => None,
                Expr::Call { args, .. } => of(args),
                Expr::CoopLoad { place, offset, .. } => match place {
                    Place::Shared(s) => because(
                        loc,
                        &format!(
                            "it reads workgroup memory (`{}`)",
                            k.shared[*s as usize].name
                        ),
                    ),
                    _ => v[offset.0 as usize].clone(),
                },
                Expr::CoopMulAdd(a, b, c) => of(&[*a, *b, *c]),
                Expr::Atomic { .. } => because(loc, "it is an atomic operation's result"),
                Expr::Builtin(Builtin::GlobalId) => because(loc, "it depends on `global_id()`"),
                Expr::Builtin(Builtin::LocalId) => because(loc, "it depends on `local_id()`"),
                Expr::Builtin(Builtin::LocalIndex) => because(loc, "it depends on `local_index()`"),
                Expr::Builtin(Builtin::SubgroupInvocationId) => {
                    because(loc, "it depends on `subgroup_invocation_id()`")
                }
                Expr::Builtin(Builtin::SubgroupId) => because(loc, "it depends on `subgroup_id()`"),
                Expr::Subgroup { .. } => because(
                    loc,
                    "it is a subgroup operation's result (the same only within a subgroup)",
                ),
                Expr::Builtin(
                    Builtin::WorkgroupId
                    | Builtin::NumWorkgroups
                    | Builtin::SubgroupSize
                    | Builtin::NumSubgroups,
                ) => None,
                Expr::Load { place, index } => {
                    let from_place = match place {
                        Place::Shared(s) => because(
                            loc,
                            &format!(
                                "it reads workgroup memory (`{}`)",
                                k.shared[*s as usize].name
                            ),
                        ),
                        Place::Storage(b) | Place::Field(b, _) => {
                            match &k.bindings[*b as usize].kind {
                                BindingKind::Storage { writable: true, .. } => because(
                                    loc,
                                    &format!(
                                        "it reads the read-write storage array `{}`",
                                        k.bindings[*b as usize].name
                                    ),
                                ),
                                _ => None,
                            }
                        }
                        Place::Local(l) => self.tainted[*l as usize].clone(),
                    };
                    from_place.or_else(|| index.and_then(|i| v[i.0 as usize].clone()))
                }
                Expr::Binary(_, a, b) => of(&[*a, *b]),
                Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Splat(a) | Expr::Component(a, _) => {
                    v[a.0 as usize].clone()
                }
                Expr::Math(_, args) | Expr::Compose(args) => of(args),
                Expr::Select {
                    cond,
                    accept,
                    reject,
                } => of(&[*cond, *accept, *reject]),
            };
            v.push(r);
        }
        v
    }

    /// Local `local` is assigned at `loc`, with a value that differs for `value` or under
    /// control flow that differs for `ctx`.
    fn assign(&mut self, local: u32, loc: Loc, value: Reason, ctx: &Reason) {
        if self.tainted[local as usize].is_some() {
            return;
        }
        let name = &self.k.locals[local as usize].name;
        let why = match (value, ctx) {
            (Some(v), _) => Some(v),
            (None, Some(c)) => Some(chain(
                loc,
                format!(
                    "`{name}` is assigned here, where control flow may differ between invocations"
                ),
                c,
            )),
            (None, None) => None,
        };
        if why.is_some() {
            self.tainted[local as usize] = why;
            self.changed = true;
        }
    }

    fn value(&self, id: ExprId) -> Reason {
        self.values[id.0 as usize].clone()
    }

    /// Walks a block whose control flow is non-uniform for `ctx` (or uniform).
    fn block(&mut self, b: &Block, mut ctx: Reason) -> Exits {
        let mut exits = Exits::default();
        for s in b {
            let here = self.stmt(&s.stmt, s.loc, &ctx);
            // After a non-uniform exit, the rest runs on a non-uniform path.
            if let Some(r) = here.ret.clone().or(here.loop_exit.clone()) {
                ctx = ctx.or(Some(r));
            }
            exits.ret = exits.ret.or(here.ret);
            exits.loop_exit = exits.loop_exit.or(here.loop_exit);
        }
        exits
    }

    fn stmt(&mut self, s: &Stmt, loc: Loc, ctx: &Reason) -> Exits {
        let exit = |what: &str| {
            ctx.as_ref().map(|c| {
                chain(
                    loc,
                    format!("some invocations `{what}` here and others do not"),
                    c,
                )
            })
        };
        match s {
            Stmt::Store {
                place: Place::Local(l),
                index,
                value,
            } => {
                let why = self
                    .value(*value)
                    .or_else(|| index.and_then(|i| self.value(i)));
                self.assign(*l, loc, why, ctx);
                Exits::default()
            }
            Stmt::Fill { local, value } => {
                let why = self.value(*value);
                self.assign(*local, loc, why, ctx);
                Exits::default()
            }
            Stmt::If {
                cond,
                accept,
                reject,
            } => {
                let inner = ctx.clone().or_else(|| {
                    self.value(*cond).map(|why| {
                        chain(
                            loc,
                            "this condition may differ between invocations".into(),
                            &why,
                        )
                    })
                });
                let a = self.block(accept, inner.clone());
                let r = self.block(reject, inner);
                Exits {
                    loop_exit: a.loop_exit.or(r.loop_exit),
                    ret: a.ret.or(r.ret),
                }
            }
            Stmt::Loop { body, continuing } => {
                let mut exits = self.block(body, ctx.clone());
                exits.ret = exits.ret.or(self.block(continuing, ctx.clone()).ret);
                // A loop some invocations leave early runs non-uniformly throughout.
                if let Some(r) = exits.loop_exit.clone().or(exits.ret.clone()) {
                    let inner = ctx.clone().or(Some(r));
                    let again = self.block(body, inner.clone());
                    self.block(continuing, inner);
                    exits.ret = exits.ret.or(again.ret);
                }
                Exits {
                    loop_exit: None,
                    ret: exits.ret,
                }
            }
            Stmt::Break => Exits {
                loop_exit: exit("break"),
                ret: None,
            },
            Stmt::Continue => Exits {
                loop_exit: exit("continue"),
                ret: None,
            },
            Stmt::Return => Exits {
                loop_exit: None,
                ret: exit("return"),
            },
            Stmt::Barrier(b) => {
                if let Some(reason) = ctx {
                    let name = match b {
                        Barrier::Workgroup => "workgroup_barrier()",
                        Barrier::Storage => "storage_barrier()",
                    };
                    let mut d = Diagnostic::new(
                        loc,
                        format!(
                            "{name} must only be called from uniform control flow (WGSL's uniformity rule; browsers reject this kernel)"
                        ),
                    );
                    // Notes from the cause nearest to the barrier to the root; one per line.
                    for (l, why) in reason {
                        match d.notes.last_mut() {
                            Some((last, text)) if last.line == l.line && last.file == l.file => {
                                text.push_str(": ");
                                text.push_str(why);
                            }
                            _ => d.notes.push((*l, why.clone())),
                        }
                    }
                    self.errors.push(d);
                }
                Exits::default()
            }
            Stmt::Eval(_) | Stmt::Store { .. } | Stmt::CoopStore { .. } => Exits::default(),
        }
    }
}
