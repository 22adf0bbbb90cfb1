//! Procedural macros of `webdit-dsl`.
//!
//! `#[kernel]` parses a Rust function with syn and expands it into a function that *builds*
//! the kernel's IR when called. Parsing and checking the supported subset happens here, with
//! spanned errors; the generated code keeps the user's spans, so a type mismatch inside a
//! kernel is reported by rustc at the user's expression.

mod translate;
mod uniform;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{parse_macro_input, Error, FnArg, GenericParam, ItemFn, Pat, ReturnType, Token, Type};
use translate::{Scope, Translator};

/// Defines a compute kernel. Calling the function builds the kernel's IR
/// (`webdit_dsl::ir::Kernel`) with the given compile-time parameters.
///
/// Parameters are storage arrays (`&Array<T>`, `&mut Array<T>`), uniform structs
/// (`&Uniform<S>`, `S: #[derive(Uniform)]`) or `#[comptime]` Rust values; const generics are
/// compile-time parameters too. `workgroup_size = [x, y, z]` (or one value) may use them.
#[proc_macro_attribute]
pub fn kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as KernelArgs);
    let func = parse_macro_input!(item as ItemFn);
    kernel_impl(args, func)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// Defines a helper usable inside kernels (inlined at each call). Value parameters and the
/// return value are kernel values (`f32`, `Vec4<f32>`, ..., or a type parameter
/// `E: ScalarTy`, so that one helper serves f32 and f16); `&Shared<T>` and `&Array<T>` pass
/// arrays; `#[comptime]` parameters and const generics are compile-time values.
#[proc_macro_attribute]
pub fn kernel_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = Tokens::from(attr);
    let emit = match attr.to_string().as_str() {
        "" => false,
        "function" => true,
        _ => return Error::new_spanned(
            attr,
            "#[kernel_fn] takes no arguments, or `function` to emit the helper as a WGSL function",
        )
        .into_compile_error()
        .into(),
    };
    let func = parse_macro_input!(item as ItemFn);
    let result = if emit {
        emitted_fn_impl(func)
    } else {
        kernel_fn_impl(func)
    };
    result.unwrap_or_else(Error::into_compile_error).into()
}

/// A helper's parameter: its name, type, and whether it is `#[comptime]`.
fn helper_param(arg: &FnArg) -> syn::Result<(&syn::Ident, &Type, bool)> {
    let FnArg::Typed(pt) = arg else {
        return Err(Error::new_spanned(arg, "kernel helpers take no `self`"));
    };
    let Pat::Ident(pi) = &*pt.pat else {
        return Err(Error::new_spanned(
            &pt.pat,
            "helper parameters must be plain names",
        ));
    };
    Ok((&pi.ident, &pt.ty, has_attr(&pt.attrs, "comptime")))
}

/// A kernel-value parameter `id: ty`: the signature takes anything convertible, and the body
/// sees an `Expr<ty>`.
fn value_param(id: &syn::Ident, ty: &Type) -> (Tokens, Tokens) {
    let tmp = format_ident!("__{}", id);
    (
        quote_spanned!(ty.span()=> #tmp: impl ::webdit_dsl::IntoExpr<#ty>),
        quote_spanned!(ty.span()=>
            let #id: ::webdit_dsl::Expr<#ty> = ::webdit_dsl::IntoExpr::into_expr(#tmp);),
    )
}

/// `#[kernel_fn(function)]`: the helper becomes one WGSL function per distinct compile-time
/// parameters (recorded the first time a kernel calls it), called where it is used.
fn emitted_fn_impl(func: ItemFn) -> syn::Result<Tokens> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = &sig.ident;
    let name_str = name.to_string();
    let mut params = vec![];
    let mut convert = vec![];
    let mut values = vec![];
    let mut describe = vec![];
    let mut scope = Scope::default();
    for g in sig.generics.type_params() {
        let id = &g.ident;
        describe.push(quote!(::std::any::type_name::<#id>().to_string()));
    }
    for arg in &sig.inputs {
        let (id, ty, comptime) = helper_param(arg)?;
        scope.plain(id);
        let generic = matches!(ty, Type::Path(p) if sig.generics.type_params().any(|g| p.path.is_ident(&g.ident)));
        if comptime {
            params.push(quote!(#id: #ty));
            describe.push(quote!(format!("{:?}", #id)));
        } else if is_value_type(ty) || generic {
            let (param, conv) = value_param(id, ty);
            params.push(param);
            convert.push(conv);
            values.push((id.clone(), ty.clone()));
        } else {
            return Err(Error::new_spanned(
                ty,
                "a `#[kernel_fn(function)]` helper takes kernel values (f32, u32, Vec4<f32>, ...) and `#[comptime]` values; arrays and variables are for inlined helpers",
            ));
        }
    }
    let ret = match &sig.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => {
            return Err(Error::new_spanned(
                &sig.ident,
                "a `#[kernel_fn(function)]` helper returns a kernel value",
            ))
        }
    };
    let mut tr = Translator::new(scope, true);
    let body = tr.block_inner(&block)?;
    let types: Vec<&Type> = values.iter().map(|(_, t)| t).collect();
    let ids: Vec<&syn::Ident> = values.iter().map(|(i, _)| i).collect();
    let index = 0..values.len();
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let record = quote_spanned!(name.span()=>
        ::webdit_dsl::emitted_function(&__key, #name_str, &[#((stringify!(#ids), <#types as ::webdit_dsl::Ty>::TYPE)),*], |__args| {
            #(let #ids: ::webdit_dsl::Expr<#types> = ::webdit_dsl::function_arg::<#types>(__args, #index);)*
            ::webdit_dsl::IntoExpr::<#ret>::into_expr({ #body }).id()
        })
    );
    Ok(quote! {
        #(#attrs)*
        #[allow(unused_variables, unused_braces, unused_parens, clippy::unit_arg, clippy::let_unit_value, clippy::unnecessary_cast, clippy::too_many_arguments)]
        #vis fn #name #generics (#(#params),*) -> ::webdit_dsl::Expr<#ret> #where_clause {
            let __webdit_caller = ::webdit_dsl::LocGuard::enter();
            #(#convert)*
            let __parts: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#describe),*];
            let __key = format!("{}({})", #name_str, __parts.join(", "));
            let __f = #record;
            ::webdit_dsl::call::<#ret>(__f, &[#(#ids.id()),*])
        }
    })
}

/// A struct of kernel values, for kernels and helpers to pass around together (locals,
/// helper parameters and results): `#[kernel_struct] struct Block { row0: u32, m: u32 }`
/// becomes a `Copy` struct of `Expr`s, built in kernels with `Block { row0, m: p.m }`
/// (constants convert) and read with `b.row0`. It costs nothing in the WGSL: its fields are
/// the values themselves. A struct without generic parameters is also a storage array's
/// element type (`&Array<Block>`: `let b = blocks[i];` reads its fields, `out[i] = b;`
/// writes them; laid out by WGSL's rules, `ir::StructType::offsets`).
#[proc_macro_attribute]
pub fn kernel_struct(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = Tokens::from(attr);
        return Error::new_spanned(attr, "#[kernel_struct] takes no arguments")
            .into_compile_error()
            .into();
    }
    let item = parse_macro_input!(item as syn::ItemStruct);
    kernel_struct_impl(item)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

fn kernel_struct_impl(mut item: syn::ItemStruct) -> syn::Result<Tokens> {
    let syn::Fields::Named(fields) = &mut item.fields else {
        return Err(Error::new_spanned(
            &item.ident,
            "#[kernel_struct] works on structs with named fields",
        ));
    };
    let mut names = vec![];
    let mut types = vec![];
    for f in fields.named.iter_mut() {
        let id = f.ident.clone().unwrap();
        if ["x", "y", "z", "w"].contains(&id.to_string().as_str()) {
            return Err(Error::new_spanned(
                &id,
                "kernel struct fields cannot be named x, y, z or w (those read vector components in kernels)",
            ));
        }
        let ty = f.ty.clone();
        if !is_value_type(&ty) {
            return Err(Error::new_spanned(
                &ty,
                "kernel struct fields are kernel values (f32, u32, Vec4<f32>, ...)",
            ));
        }
        f.ty = syn::parse_quote_spanned!(ty.span()=> ::webdit_dsl::Expr<#ty>);
        names.push(id);
        types.push(ty);
    }
    let name = &item.ident;
    let (imp, ty_generics, where_clause) = item.generics.split_for_impl();
    let labels: Vec<String> = names.iter().map(|n| format!("_{n}")).collect();
    // A struct without generic parameters can also be the element type of storage arrays.
    let storage = item.generics.params.is_empty().then(|| {
        let name_str = name.to_string();
        let field_strs: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let index: Vec<u32> = (0..names.len() as u32).collect();
        quote! {
            impl ::webdit_dsl::Element for #name {
                const TYPE: ::webdit_dsl::ir::Type =
                    ::webdit_dsl::ir::Type::Struct(&::webdit_dsl::ir::StructType {
                        name: #name_str,
                        fields: &[#((#field_strs, <#types as ::webdit_dsl::Ty>::TYPE)),*],
                    });
                type Value = #name;
                fn load<A>(array: &::webdit_dsl::Array<#name, A>, index: ::webdit_dsl::Expr<u32>) -> #name {
                    #name { #(#names: ::webdit_dsl::load_field(array, #index, index),)* }
                }
            }
            impl ::webdit_dsl::Store<#name> for ::webdit_dsl::Array<#name, ::webdit_dsl::ReadWrite> {
                fn store(&self, index: impl ::webdit_dsl::IntoExpr<u32>, value: #name) {
                    let index = ::webdit_dsl::IntoExpr::into_expr(index);
                    #(::webdit_dsl::store_field(self, #index, index, value.#names);)*
                }
            }
        }
    });
    Ok(quote! {
        #[derive(Clone, Copy)]
        #item
        impl #imp ::webdit_dsl::Named for #name #ty_generics #where_clause {
            fn named(self, name: &str) -> Self {
                #name {
                    #(#names: ::webdit_dsl::Named::named(self.#names, &format!("{}{}", name, #labels)),)*
                }
            }
        }
        #storage
    })
}

/// Makes a struct of `u32`/`i32`/`f32` fields usable as a kernel's uniform parameter.
#[proc_macro_derive(Uniform)]
pub fn derive_uniform(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    uniform::derive(input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

struct KernelArgs {
    workgroup_size: Option<syn::Expr>,
}

impl Parse for KernelArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut workgroup_size = None;
        let items = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated(input)?;
        for item in items {
            if item.path.is_ident("workgroup_size") {
                workgroup_size = Some(item.value);
            } else {
                return Err(Error::new_spanned(
                    item.path,
                    "unknown kernel argument; expected `workgroup_size = [x, y, z]`",
                ));
            }
        }
        Ok(KernelArgs { workgroup_size })
    }
}

fn workgroup_size(e: &Option<syn::Expr>) -> syn::Result<Tokens> {
    let Some(e) = e else {
        return Ok(quote!(::webdit_dsl::set_workgroup_size([1u32, 1u32, 1u32])));
    };
    let dims: Vec<&syn::Expr> = match e {
        syn::Expr::Array(a) => a.elems.iter().collect(),
        other => vec![other],
    };
    if dims.is_empty() || dims.len() > 3 {
        return Err(Error::new_spanned(
            e,
            "a workgroup size has 1 to 3 dimensions",
        ));
    }
    let mut out: Vec<Tokens> = dims
        .iter()
        .map(|d| quote_spanned!(d.span()=> ((#d) as u32)))
        .collect();
    while out.len() < 3 {
        out.push(quote!(1u32));
    }
    Ok(quote_spanned!(e.span()=> ::webdit_dsl::set_workgroup_size([#(#out),*])))
}

fn has_attr(attrs: &[syn::Attribute], name: &str) -> bool {
    attrs.iter().any(|a| a.path().is_ident(name))
}

/// The element type and access of `&Array<T>` / `&mut Array<T>`, or the struct of `&Uniform<S>`.
enum ParamKind {
    Array { elem: Type, writable: bool },
    Shared { elem: Type },
    Local { elem: Type },
    Uniform(Type),
}

fn single_generic(ty: &Type, name: &str) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

fn param_kind(ty: &Type) -> Option<ParamKind> {
    let Type::Reference(r) = ty else { return None };
    let writable = r.mutability.is_some();
    if let Some(elem) = single_generic(&r.elem, "Array") {
        return Some(ParamKind::Array { elem, writable });
    }
    if let Some(elem) = single_generic(&r.elem, "Shared") {
        return (!writable).then_some(ParamKind::Shared { elem });
    }
    if let Some(elem) = single_generic(&r.elem, "LocalArray") {
        return Some(ParamKind::Local { elem });
    }
    if let Some(s) = single_generic(&r.elem, "Uniform") {
        return (!writable).then_some(ParamKind::Uniform(s));
    }
    None
}

fn array_type(elem: &Type, writable: bool) -> Tokens {
    if writable {
        quote!(::webdit_dsl::Array<#elem, ::webdit_dsl::ReadWrite>)
    } else {
        quote!(::webdit_dsl::Array<#elem, ::webdit_dsl::ReadOnly>)
    }
}

fn kernel_impl(args: KernelArgs, func: ItemFn) -> syn::Result<Tokens> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    if let ReturnType::Type(_, ty) = &sig.output {
        return Err(Error::new_spanned(
            ty,
            "kernels return nothing; write results to a `&mut Array`",
        ));
    }
    if let Some(a) = &sig.asyncness {
        return Err(Error::new_spanned(a, "kernels cannot be async"));
    }
    let name = &sig.ident;
    let name_str = name.to_string();
    let mut comptime_params = vec![];
    let mut describe = vec![];
    let mut declare = vec![];
    let mut scope = Scope::default();
    for g in &sig.generics.params {
        match g {
            GenericParam::Const(c) => {
                let id = &c.ident;
                describe.push(quote!(format!("{} = {:?}", stringify!(#id), #id)));
            }
            GenericParam::Type(t) => {
                let id = &t.ident;
                describe.push(quote!(
                    format!("{} = {}", stringify!(#id), ::std::any::type_name::<#id>())
                ));
            }
            GenericParam::Lifetime(_) => {}
        }
    }
    for arg in &sig.inputs {
        let FnArg::Typed(pt) = arg else {
            return Err(Error::new_spanned(arg, "kernels take no `self`"));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(Error::new_spanned(
                &pt.pat,
                "kernel parameters must be plain names",
            ));
        };
        let id = &pi.ident;
        let id_str = id.to_string();
        let ty = &pt.ty;
        if has_attr(&pt.attrs, "comptime") {
            comptime_params.push(quote!(#id: #ty));
            describe.push(quote!(format!("{} = {:?}", #id_str, #id)));
            scope.plain(id);
            continue;
        }
        let decl = match param_kind(ty) {
            Some(ParamKind::Array { elem, writable }) => {
                let aty = array_type(&elem, writable);
                quote_spanned!(ty.span()=> let #id: #aty = ::webdit_dsl::storage(#id_str);)
            }
            Some(ParamKind::Uniform(s)) => {
                quote_spanned!(ty.span()=> let #id = ::webdit_dsl::uniform::<#s>(#id_str);)
            }
            _ => {
                return Err(Error::new_spanned(
                    ty,
                    "kernel parameters are `&Array<T>`, `&mut Array<T>`, `&Uniform<S>` or `#[comptime]` values",
                ))
            }
        };
        declare.push(decl);
        scope.plain(id);
    }
    let ws = workgroup_size(&args.workgroup_size)?;
    let mut tr = Translator::new(scope, false);
    let body = tr.block_inner(&block)?;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    // Called at the kernel's name, which becomes the kernel's location.
    let build = quote_spanned!(name.span()=>
        ::webdit_dsl::build_kernel(#name_str, __params.join(", "), || {
            #ws;
            #(#declare)*
            #body
        })
    );
    let doc_attrs: Vec<_> = attrs
        .iter()
        .filter(|a| !a.path().is_ident("kernel"))
        .collect();
    Ok(quote! {
        #(#doc_attrs)*
        #[allow(unused_variables, unused_braces, unused_parens, clippy::unit_arg, clippy::let_unit_value, clippy::unnecessary_cast, clippy::too_many_arguments)]
        #vis fn #name #generics (#(#comptime_params),*) -> ::webdit_dsl::ir::Kernel #where_clause {
            let __params: ::std::vec::Vec<::std::string::String> = ::std::vec![#(#describe),*];
            #build
        }
    })
}

/// Kernel value types as written in signatures and `let` annotations.
pub(crate) fn is_value_type(ty: &Type) -> bool {
    let Type::Path(p) = ty else { return false };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let n = last.ident.to_string();
    matches!(
        n.as_str(),
        "f32" | "u32" | "i32" | "bool" | "f16" | "Vec2" | "Vec3" | "Vec4"
    )
}

fn kernel_fn_impl(func: ItemFn) -> syn::Result<Tokens> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = &sig.ident;
    // Type parameters (`fn f<E: ScalarTy>(v: E) -> E`) stand for kernel value types, so one
    // helper serves f32 and f16.
    let generic: Vec<&syn::Ident> = sig.generics.type_params().map(|t| &t.ident).collect();
    let is_value = |ty: &Type| {
        is_value_type(ty)
            || matches!(ty, Type::Path(p) if p.qself.is_none() && generic.iter().any(|g| p.path.is_ident(*g)))
    };
    let mut params = vec![];
    let mut convert = vec![];
    let mut scope = Scope::default();
    for arg in &sig.inputs {
        let (id, ty, comptime) = helper_param(arg)?;
        scope.plain(id);
        let value_ref = match ty {
            Type::Reference(r) if r.mutability.is_some() && is_value(&r.elem) => Some(&r.elem),
            _ => None,
        };
        if comptime {
            params.push(quote!(#id: #ty));
        } else if let Some(elem) = value_ref {
            // The caller's variable: `*x` reads and writes it.
            scope.reference(id);
            params.push(quote_spanned!(ty.span()=> #id: ::webdit_dsl::Var<#elem>));
        } else if is_value(ty) {
            let (param, conv) = value_param(id, ty);
            params.push(param);
            convert.push(conv);
        } else {
            match param_kind(ty) {
                Some(ParamKind::Array { elem, writable }) => {
                    let aty = array_type(&elem, writable);
                    params.push(quote!(#id: #aty));
                }
                Some(ParamKind::Shared { elem }) => {
                    params.push(quote!(#id: ::webdit_dsl::Shared<#elem>));
                }
                Some(ParamKind::Local { elem }) => {
                    params.push(quote!(#id: ::webdit_dsl::LocalArray<#elem>));
                }
                // A `#[kernel_struct]` (rustc checks the type), passed by value.
                _ if matches!(ty, Type::Path(_)) => params.push(quote!(#id: #ty)),
                _ => {
                    return Err(Error::new_spanned(
                        ty,
                        "helper parameters are kernel values (f32, u32, Vec4<f32>, ...), `#[kernel_struct]`s, `&mut` kernel values (the caller's variable), `&Shared<T>`, `&Array<T>`, `&mut LocalArray<T>` or `#[comptime]` values",
                    ))
                }
            }
        }
    }
    let mut tr = Translator::new(scope, true);
    let body = tr.block_inner(&block)?;
    let (ret, body) = match &sig.output {
        ReturnType::Default => (quote!(), body),
        ReturnType::Type(_, ty) if is_value(ty) => (
            quote!(-> ::webdit_dsl::Expr<#ty>),
            quote_spanned!(ty.span()=> ::webdit_dsl::IntoExpr::<#ty>::into_expr({ #body })),
        ),
        // A `#[kernel_struct]`, returned as built.
        ReturnType::Type(_, ty) if matches!(&**ty, Type::Path(_)) => (quote!(-> #ty), body),
        ReturnType::Type(_, ty) => {
            return Err(Error::new_spanned(
                ty,
                "helpers return a kernel value (f32, u32, Vec4<f32>, ...), a `#[kernel_struct]` or nothing",
            ))
        }
    };
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    Ok(quote! {
        #(#attrs)*
        #[allow(unused_variables, unused_braces, unused_parens, clippy::unit_arg, clippy::let_unit_value, clippy::unnecessary_cast, clippy::too_many_arguments)]
        #vis fn #name #generics (#(#params),*) #ret #where_clause {
            let __webdit_caller = ::webdit_dsl::LocGuard::enter();
            #(#convert)*
            #body
        }
    })
}
