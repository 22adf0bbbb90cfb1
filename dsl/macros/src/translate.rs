//! Rewrites a kernel body into Rust that records IR when run.
//!
//! Most of the body stays as written: arithmetic uses operator traits on `Expr`, calls are
//! calls. What changes: `let mut` becomes a kernel variable, indexing becomes loads and
//! stores, comparisons and `&&`/`||` become calls, and control flow becomes calls that take
//! closures. Anything outside the supported subset is a spanned compile error.

use crate::is_value_type;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{BinOp, Error, Expr, Ident, Pat, Stmt, UnOp};

#[derive(Clone, Copy, PartialEq)]
enum Binding {
    /// A Rust binding: a kernel value, an array handle or a compile-time value.
    Plain,
    /// A kernel variable (`let mut x = ...`): read with `.get()`, written with `.set()`.
    Var,
    /// A helper's `&mut T` parameter: the caller's variable, read and written as `*x`.
    Ref,
}

#[derive(Default, Clone)]
pub(crate) struct Scope {
    frames: Vec<Vec<(String, Binding)>>,
}

impl Scope {
    fn push(&mut self) {
        self.frames.push(vec![]);
    }
    fn pop(&mut self) {
        self.frames.pop();
    }
    fn bind(&mut self, id: &Ident, b: Binding) {
        if self.frames.is_empty() {
            self.push();
        }
        self.frames.last_mut().unwrap().push((id.to_string(), b));
    }
    pub(crate) fn plain(&mut self, id: &Ident) {
        self.bind(id, Binding::Plain);
    }
    pub(crate) fn reference(&mut self, id: &Ident) {
        self.bind(id, Binding::Ref);
    }
    fn lookup(&self, id: &Ident) -> Option<Binding> {
        let name = id.to_string();
        self.frames
            .iter()
            .rev()
            .flat_map(|f| f.iter().rev())
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
    }
}

/// What kind of loop encloses the code being translated (for `break`/`continue`).
#[derive(Clone, Copy, PartialEq)]
enum LoopKind {
    Gpu,
    Unrolled,
}

pub(crate) struct Translator {
    scope: Scope,
    loops: Vec<LoopKind>,
    helper: bool,
}

fn err<T>(node: impl ToTokens, msg: &str) -> syn::Result<T> {
    Err(Error::new_spanned(node, msg))
}

impl Translator {
    pub(crate) fn new(scope: Scope, helper: bool) -> Self {
        Translator {
            scope,
            loops: vec![],
            helper,
        }
    }

    /// The statements of a block, without braces (the caller supplies the scope).
    pub(crate) fn block_inner(&mut self, block: &syn::Block) -> syn::Result<Tokens> {
        self.scope.push();
        let last = block.stmts.len().saturating_sub(1);
        let mut out = vec![];
        let mut errors: Option<Error> = None;
        for (i, s) in block.stmts.iter().enumerate() {
            // Every statement is translated, so that a kernel reports all its errors at once.
            match self.stmt(s) {
                Ok(t) => {
                    // Block-like expressions need no `;` in Rust, but the calls they become do.
                    let bare = matches!(s, Stmt::Expr(_, None)) && i != last;
                    let t = if bare { quote!(#t;) } else { t };
                    // What the statement records is located at it.
                    out.push(quote_spanned!(s.span()=> ::webdit_dsl::at(); #t));
                }
                Err(e) => match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                },
            }
        }
        self.scope.pop();
        match errors {
            Some(e) => Err(e),
            None => Ok(quote!(#(#out)*)),
        }
    }

    fn block(&mut self, block: &syn::Block) -> syn::Result<Tokens> {
        let inner = self.block_inner(block)?;
        Ok(quote_spanned!(block.brace_token.span.join()=> { #inner }))
    }

    fn stmt(&mut self, s: &Stmt) -> syn::Result<Tokens> {
        match s {
            Stmt::Local(l) => self.local(l),
            Stmt::Expr(e, semi) => {
                let e = self.expr(e)?;
                Ok(quote!(#e #semi))
            }
            Stmt::Item(i) => err(
                i,
                "items (fn, struct, use, ...) are not allowed inside kernels; define them outside",
            ),
            Stmt::Macro(m) => err(m, "macros are not supported inside kernels"),
        }
    }

    fn local(&mut self, l: &syn::Local) -> syn::Result<Tokens> {
        let Some(init) = &l.init else {
            return err(l, "kernel `let`s need a value");
        };
        if let Some((_, e)) = &init.diverge {
            return err(e, "`let ... else` is not supported in kernels");
        }
        let comptime = l.attrs.iter().any(|a| a.path().is_ident("comptime"));
        let (pat, ty) = match &l.pat {
            Pat::Type(pt) => (&*pt.pat, Some(&*pt.ty)),
            p => (p, None),
        };
        let Pat::Ident(pi) = pat else {
            return err(pat, "kernel `let`s bind a single name");
        };
        if pi.by_ref.is_some() || pi.subpat.is_some() {
            return err(pat, "kernel `let`s bind a single name");
        }
        let id = &pi.ident;
        let name = id.to_string();
        let span = l.span();
        if comptime {
            if pi.mutability.is_some() {
                return err(pat, "`#[comptime] let` values are immutable");
            }
            let value = self.expr(&init.expr)?;
            self.scope.plain(id);
            let ty = ty.map(|t| quote!(: #t));
            return Ok(quote_spanned!(span=> let #id #ty = #value;));
        }
        if pi.mutability.is_some() {
            if let Expr::Repeat(r) = &*init.expr {
                let value = self.expr(&r.expr)?;
                let len = self.expr(&r.len)?;
                let elem = match ty {
                    Some(syn::Type::Array(a)) => {
                        let e = &a.elem;
                        quote!(::<#e>)
                    }
                    Some(t) => return err(t, "an array variable's type is `[T; N]`"),
                    None => quote!(),
                };
                self.scope.plain(id);
                return Ok(quote_spanned!(span=>
                    let #id = ::webdit_dsl::LocalArray #elem ::new(#name, #value, (#len) as u32);));
            }
            let value = self.expr(&init.expr)?;
            let turbofish = match ty {
                Some(t) if is_value_type(t) => quote!(::<#t>),
                Some(t) => return err(t, "kernel variables hold kernel values (f32, u32, Vec4<f32>, ...); mark compile-time values `#[comptime]`"),
                None => quote!(),
            };
            self.scope.bind(id, Binding::Var);
            return Ok(quote_spanned!(span=>
                let #id = ::webdit_dsl::Var #turbofish ::new(#name, #value);));
        }
        let value = self.expr(&init.expr)?;
        self.scope.plain(id);
        match ty {
            Some(t) if is_value_type(t) => Ok(quote_spanned!(span=>
                let #id: ::webdit_dsl::Expr<#t> = ::webdit_dsl::Named::named(
                    ::webdit_dsl::IntoExpr::<#t>::into_expr(#value), #name);)),
            Some(t) => err(t, "annotated `let`s hold kernel values (f32, u32, Vec4<f32>, ...); mark compile-time values `#[comptime]`"),
            None => Ok(quote_spanned!(span=>
                let #id = ::webdit_dsl::Named::named(#value, #name);)),
        }
    }

    /// The variable handle behind `x` (a `let mut`) or `*x` (a `&mut` helper parameter).
    fn var_of(&self, e: &Expr) -> Option<Ident> {
        let (e, want) = match e {
            Expr::Unary(u) if matches!(u.op, UnOp::Deref(_)) => (&*u.expr, Binding::Ref),
            e => (e, Binding::Var),
        };
        let Expr::Path(p) = e else { return None };
        let id = p.path.get_ident()?;
        (self.scope.lookup(id) == Some(want)).then(|| id.clone())
    }

    /// `&mut x` passes the handle of variable (or `&mut` parameter, or array) `x`.
    fn handle_of(&self, e: &Expr) -> Option<Ident> {
        let Expr::Path(p) = e else { return None };
        let id = p.path.get_ident()?;
        self.scope.lookup(id).map(|_| id.clone())
    }

    /// `lhs = value` where `value` is already translated.
    fn assign(&mut self, lhs: &Expr, value: Tokens, span: Span) -> syn::Result<Tokens> {
        if let Some(v) = self.var_of(lhs) {
            return Ok(quote_spanned!(span=> #v.set(#value)));
        }
        if let Expr::Index(ix) = lhs {
            let base = self.expr(&ix.expr)?;
            let index = self.expr(&ix.index)?;
            return Ok(quote_spanned!(span=> ::webdit_dsl::Store::store(&#base, #index, #value)));
        }
        err(
            lhs,
            "only kernel variables (`let mut`) and array elements can be assigned to",
        )
    }

    fn compound(&mut self, lhs: &Expr, op: &BinOp, rhs: &Expr, span: Span) -> syn::Result<Tokens> {
        let arith = match op {
            BinOp::AddAssign(t) => quote_spanned!(t.span()=> +),
            BinOp::SubAssign(t) => quote_spanned!(t.span()=> -),
            BinOp::MulAssign(t) => quote_spanned!(t.span()=> *),
            BinOp::DivAssign(t) => quote_spanned!(t.span()=> /),
            BinOp::RemAssign(t) => quote_spanned!(t.span()=> %),
            BinOp::BitAndAssign(t) => quote_spanned!(t.span()=> &),
            BinOp::BitOrAssign(t) => quote_spanned!(t.span()=> |),
            BinOp::BitXorAssign(t) => quote_spanned!(t.span()=> ^),
            BinOp::ShlAssign(t) => quote_spanned!(t.span()=> <<),
            BinOp::ShrAssign(t) => quote_spanned!(t.span()=> >>),
            _ => unreachable!(),
        };
        let rhs = self.expr(rhs)?;
        if let Some(v) = self.var_of(lhs) {
            return Ok(quote_spanned!(span=> #v.set(#v.get() #arith (#rhs))));
        }
        if let Expr::Index(ix) = lhs {
            let base = self.expr(&ix.expr)?;
            let index = self.expr(&ix.index)?;
            return Ok(quote_spanned!(span=> {
                let __index = #index;
                ::webdit_dsl::Store::store(&#base, __index,
                    ::webdit_dsl::Load::load(&#base, __index) #arith (#rhs))
            }));
        }
        err(
            lhs,
            "only kernel variables (`let mut`) and array elements can be assigned to",
        )
    }

    fn in_loop(&self, node: &impl ToTokens, what: &str) -> syn::Result<()> {
        match self.loops.last() {
            Some(LoopKind::Gpu) => Ok(()),
            Some(LoopKind::Unrolled) => err(node, &format!("`{what}` is not allowed directly in an `#[unroll]` loop (it is unrolled while the kernel is built)")),
            None => err(node, &format!("`{what}` outside of a loop")),
        }
    }

    /// A closure `|| { ... }` whose body is a translated block, in a loop context.
    fn closure_block(&mut self, b: &syn::Block, kind: Option<LoopKind>) -> syn::Result<Tokens> {
        if let Some(k) = kind {
            self.loops.push(k);
        }
        let body = self.block(b);
        if kind.is_some() {
            self.loops.pop();
        }
        let body = body?;
        Ok(quote!(|| #body))
    }

    pub(crate) fn expr(&mut self, e: &Expr) -> syn::Result<Tokens> {
        let span = e.span();
        Ok(match e {
            Expr::Lit(l) => l.to_token_stream(),
            Expr::Path(p) => match self.var_of(e) {
                Some(v) => quote_spanned!(span=> #v.get()),
                None => p.to_token_stream(),
            },
            Expr::Paren(p) => {
                let inner = self.expr(&p.expr)?;
                quote_spanned!(span=> (#inner))
            }
            Expr::Group(g) => self.expr(&g.expr)?,
            Expr::Binary(b) => self.binary(b)?,
            Expr::Assign(a) => {
                let value = self.expr(&a.right)?;
                self.assign(&a.left, value, span)?
            }
            Expr::Unary(u) if matches!(u.op, UnOp::Deref(_)) => match self.var_of(e) {
                Some(v) => quote_spanned!(span=> #v.get()),
                None => {
                    return err(
                        u,
                        "only a helper's `&mut` parameters are dereferenced (`*x`) in kernels",
                    )
                }
            },
            Expr::Unary(u) => {
                let inner = self.expr(&u.expr)?;
                match u.op {
                    UnOp::Neg(t) => quote_spanned!(t.span=> (-#inner)),
                    UnOp::Not(t) => quote_spanned!(t.span=> (!#inner)),
                    _ => return err(u, "pointers do not exist in kernels"),
                }
            }
            Expr::Index(ix) => {
                let base = self.expr(&ix.expr)?;
                let index = self.expr(&ix.index)?;
                quote_spanned!(span=> ::webdit_dsl::Load::load(&#base, #index))
            }
            Expr::Field(f) => {
                let base = self.expr(&f.base)?;
                match &f.member {
                    syn::Member::Named(m)
                        if ["x", "y", "z", "w"].contains(&m.to_string().as_str()) =>
                    {
                        let tr = Ident::new(&m.to_string().to_uppercase(), m.span());
                        quote_spanned!(m.span()=> ::webdit_dsl::swizzle::#tr::#m(&#base))
                    }
                    m => quote_spanned!(span=> #base.#m),
                }
            }
            Expr::Call(c) => {
                let func = match &*c.func {
                    Expr::Path(p) => p.to_token_stream(),
                    f => return err(f, "only named functions can be called in kernels"),
                };
                let args = self.exprs(c.args.iter())?;
                quote_spanned!(span=> #func(#(#args),*))
            }
            Expr::MethodCall(m) => {
                let recv = self.expr(&m.receiver)?;
                let args = self.exprs(m.args.iter())?;
                let method = &m.method;
                let turbofish = &m.turbofish;
                quote_spanned!(span=> #recv.#method #turbofish(#(#args),*))
            }
            Expr::Cast(c) => {
                let inner = self.expr(&c.expr)?;
                let ty = &c.ty;
                quote_spanned!(span=> ::webdit_dsl::cast::<#ty, _>(#inner))
            }
            Expr::If(i) => self.if_(i)?,
            Expr::Block(b) => {
                if let Some(l) = &b.label {
                    return err(l, "labels are not supported in kernels");
                }
                self.block(&b.block)?
            }
            Expr::ForLoop(f) => self.for_(f)?,
            Expr::While(w) => {
                if let Some(l) = &w.label {
                    return err(l, "labels are not supported in kernels");
                }
                if let Expr::Let(l) = &*w.cond {
                    return err(l, "`while let` is not supported in kernels");
                }
                let cond = self.expr(&w.cond)?;
                let body = self.closure_block(&w.body, Some(LoopKind::Gpu))?;
                quote_spanned!(span=> ::webdit_dsl::while_(|| #cond, #body))
            }
            Expr::Loop(l) => {
                if let Some(l) = &l.label {
                    return err(l, "labels are not supported in kernels");
                }
                let body = self.closure_block(&l.body, Some(LoopKind::Gpu))?;
                quote_spanned!(span=> ::webdit_dsl::loop_(#body))
            }
            Expr::Break(b) => {
                if b.label.is_some() || b.expr.is_some() {
                    return err(b, "`break` takes no label or value in kernels");
                }
                self.in_loop(b, "break")?;
                quote_spanned!(span=> ::webdit_dsl::brk())
            }
            Expr::Continue(c) => {
                if c.label.is_some() {
                    return err(c, "`continue` takes no label in kernels");
                }
                self.in_loop(c, "continue")?;
                quote_spanned!(span=> ::webdit_dsl::cont())
            }
            Expr::Return(r) => {
                if self.helper {
                    return err(r, "helpers return their value as the tail expression; `return` is not supported");
                }
                if r.expr.is_some() {
                    return err(r, "kernels return nothing");
                }
                quote_spanned!(span=> ::webdit_dsl::ret())
            }
            Expr::Array(a) => {
                let elems = self.exprs(a.elems.iter())?;
                quote_spanned!(span=> [#(#elems),*])
            }
            Expr::Tuple(t) => {
                let elems = self.exprs(t.elems.iter())?;
                quote_spanned!(span=> (#(#elems,)*))
            }
            Expr::Range(r) => {
                let start = r.start.as_deref().map(|s| self.expr(s)).transpose()?;
                let end = r.end.as_deref().map(|s| self.expr(s)).transpose()?;
                let limits = &r.limits;
                quote_spanned!(span=> #start #limits #end)
            }
            Expr::Repeat(r) => {
                return err(
                    r,
                    "array literals `[v; n]` only initialize `let mut` arrays",
                )
            }
            Expr::Match(m) => {
                return err(
                    m.match_token,
                    "`match` is not supported in kernels; use `if`/`else`",
                )
            }
            Expr::Closure(c) => {
                return err(
                    c,
                    "closures are not supported in kernels; use a #[kernel_fn] helper",
                )
            }
            Expr::Macro(m) => return err(m, "macros are not supported inside kernels"),
            // Arrays are handles, passed by value: `&tile` to a helper is `tile`.
            Expr::Reference(r) if r.mutability.is_none() && matches!(&*r.expr, Expr::Path(_)) => {
                self.expr(&r.expr)?
            }
            // `&mut x` hands a helper the variable itself (or the array, or a `&mut` param).
            Expr::Reference(r) if r.mutability.is_some() && self.handle_of(&r.expr).is_some() => {
                let id = self.handle_of(&r.expr).unwrap();
                quote_spanned!(span=> #id)
            }
            Expr::Reference(r) => {
                return err(
                    r,
                    "references only pass arrays (`&name`) and variables (`&mut name`) to helpers",
                )
            }
            // A `#[kernel_struct]`: each field's value converts to its kernel type.
            Expr::Struct(st) => {
                let path = &st.path;
                let mut fields = vec![];
                for f in &st.fields {
                    let member = &f.member;
                    let value = self.expr(&f.expr)?;
                    fields.push(quote_spanned!(f.span()=>
                        #member: ::webdit_dsl::IntoExpr::into_expr(#value)));
                }
                let rest = match &st.rest {
                    Some(r) => {
                        let r = self.expr(r)?;
                        quote!(..#r)
                    }
                    None => quote!(),
                };
                quote_spanned!(span=> #path { #(#fields,)* #rest })
            }
            Expr::Let(l) => {
                return err(
                    l,
                    "`if let` / `let` conditions are not supported in kernels",
                )
            }
            other => return err(other, "this expression is not supported in kernels"),
        })
    }

    fn exprs<'a>(&mut self, es: impl Iterator<Item = &'a Expr>) -> syn::Result<Vec<Tokens>> {
        es.map(|e| self.expr(e)).collect()
    }

    fn binary(&mut self, b: &syn::ExprBinary) -> syn::Result<Tokens> {
        let span = b.span();
        let call = |name: &str| Ident::new(name, b.op.span());
        let f = match b.op {
            BinOp::Eq(_) => Some(call("eq")),
            BinOp::Ne(_) => Some(call("ne")),
            BinOp::Lt(_) => Some(call("lt")),
            BinOp::Le(_) => Some(call("le")),
            BinOp::Gt(_) => Some(call("gt")),
            BinOp::Ge(_) => Some(call("ge")),
            BinOp::And(_) | BinOp::Or(_) => {
                // Short-circuit, as in Rust: the right side is recorded in a closure.
                let f = call(if matches!(b.op, BinOp::And(_)) {
                    "and_then"
                } else {
                    "or_else"
                });
                let l = self.expr(&b.left)?;
                let r = self.expr(&b.right)?;
                return Ok(quote_spanned!(span=> ::webdit_dsl::#f(#l, || #r)));
            }
            BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_) => return self.compound(&b.left, &b.op, &b.right, span),
            _ => None,
        };
        let l = self.expr(&b.left)?;
        let r = self.expr(&b.right)?;
        Ok(match f {
            Some(f) => quote_spanned!(span=> ::webdit_dsl::#f(#l, #r)),
            None => {
                let op = &b.op;
                quote_spanned!(span=> (#l #op #r))
            }
        })
    }

    fn if_(&mut self, i: &syn::ExprIf) -> syn::Result<Tokens> {
        if let Expr::Let(l) = &*i.cond {
            return err(l, "`if let` is not supported in kernels");
        }
        let cond = self.expr(&i.cond)?;
        let accept = self.closure_block(&i.then_branch, None)?;
        let reject = match &i.else_branch {
            None => quote!(|| {}),
            Some((_, e)) => {
                let e = self.expr(e)?;
                quote!(|| #e)
            }
        };
        let span = i.if_token.span;
        Ok(quote_spanned!(span=> ::webdit_dsl::Branch::branch(#cond, #accept, #reject)))
    }

    fn for_(&mut self, f: &syn::ExprForLoop) -> syn::Result<Tokens> {
        if let Some(l) = &f.label {
            return err(l, "labels are not supported in kernels");
        }
        let var = match &*f.pat {
            Pat::Ident(pi) if pi.mutability.is_none() && pi.by_ref.is_none() => pi.ident.clone(),
            Pat::Wild(w) => Ident::new("_", w.underscore_token.span),
            p => return err(p, "a kernel `for` binds a single name"),
        };
        let unroll = f.attrs.iter().any(|a| a.path().is_ident("unroll"));
        if let Some(a) = f.attrs.iter().find(|a| !a.path().is_ident("unroll")) {
            return err(a, "the only attribute of kernel loops is `#[unroll]`");
        }
        self.scope.push();
        self.scope.plain(&var);
        let result = if unroll {
            self.unrolled(f, &var)
        } else {
            self.gpu_for(f, &var)
        };
        self.scope.pop();
        result
    }

    /// `#[unroll] for v in ITER`: a Rust loop while the kernel is built; each iteration
    /// records the body again with `v` a compile-time value.
    fn unrolled(&mut self, f: &syn::ExprForLoop, var: &Ident) -> syn::Result<Tokens> {
        let iter = self.expr(&f.expr)?;
        self.loops.push(LoopKind::Unrolled);
        let body = self.block(&f.body);
        self.loops.pop();
        let body = body?;
        Ok(quote_spanned!(f.for_token.span=> for #var in #iter #body))
    }

    /// `for v in a..b` or `for v in (a..b).step_by(s)` as a loop on the GPU.
    fn gpu_for(&mut self, f: &syn::ExprForLoop, var: &Ident) -> syn::Result<Tokens> {
        let unparen = |e: &Expr| -> Expr {
            match e {
                Expr::Paren(p) => (*p.expr).clone(),
                e => e.clone(),
            }
        };
        let (range, step) = match &*f.expr {
            Expr::MethodCall(m) if m.method == "step_by" && m.args.len() == 1 => {
                (unparen(&m.receiver), Some(m.args[0].clone()))
            }
            e => (unparen(e), None),
        };
        let Expr::Range(r) = &range else {
            return err(&f.expr, "GPU loops run over `a..b` or `(a..b).step_by(s)`; put `#[unroll]` on loops over other compile-time iterators");
        };
        let (Some(start), Some(end), syn::RangeLimits::HalfOpen(_)) = (&r.start, &r.end, &r.limits)
        else {
            return err(r, "GPU loops run over a half-open range `a..b`");
        };
        let start = self.expr(start)?;
        let end = self.expr(end)?;
        let step = match step {
            Some(s) => self.expr(&s)?,
            None => quote!(1),
        };
        self.loops.push(LoopKind::Gpu);
        let body = self.block(&f.body);
        self.loops.pop();
        let body = body?;
        let name = var.to_string();
        Ok(quote_spanned!(f.for_token.span=>
            ::webdit_dsl::for_range(#name, #start, #end, #step, |#var| #body)))
    }
}
