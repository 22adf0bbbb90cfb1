//! `#[derive(Uniform)]`: a struct of 4-byte scalars as a kernel's uniform parameter.

use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Error, Fields};

pub(crate) fn derive(input: DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let vis = &input.vis;
    let Data::Struct(s) = &input.data else {
        return Err(Error::new_spanned(
            name,
            "#[derive(Uniform)] works on structs with named fields",
        ));
    };
    let Fields::Named(fields) = &s.fields else {
        return Err(Error::new_spanned(
            name,
            "#[derive(Uniform)] works on structs with named fields",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "uniform structs cannot be generic",
        ));
    }
    let view = format_ident!("{}View", name);
    let mut view_fields = vec![];
    let mut layout = vec![];
    let mut init = vec![];
    let mut bytes = vec![];
    for (i, f) in fields.named.iter().enumerate() {
        let id = f.ident.as_ref().unwrap();
        let ty = &f.ty;
        let ok = matches!(ty, syn::Type::Path(p) if ["u32", "i32", "f32"].iter().any(|t| p.path.is_ident(t)));
        if !ok {
            return Err(Error::new_spanned(
                ty,
                "uniform fields are `u32`, `i32` or `f32`",
            ));
        }
        if ["x", "y", "z", "w"].contains(&id.to_string().as_str()) {
            return Err(Error::new_spanned(
                id,
                "`x`, `y`, `z`, `w` name vector components in kernels; pick another field name",
            ));
        }
        let fvis = &f.vis;
        let i = i as u32;
        view_fields.push(quote!(#fvis #id: ::webdit_dsl::Expr<#ty>));
        layout.push(quote!((stringify!(#id).to_string(), <#ty as ::webdit_dsl::ScalarTy>::SCALAR)));
        init.push(quote!(#id: ::webdit_dsl::uniform_field::<#ty>(binding, #i)));
        bytes.push(quote!(out.extend_from_slice(&self.#id.to_le_bytes());));
    }
    let doc = format!("The fields of [`{name}`] as kernel values.");
    Ok(quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        #[derive(Clone, Copy)]
        #vis struct #view { #(#view_fields),* }

        impl ::webdit_dsl::UniformStruct for #name {
            type View = #view;
            fn layout() -> ::webdit_dsl::ir::UniformLayout {
                ::webdit_dsl::ir::UniformLayout {
                    name: stringify!(#name).to_string(),
                    fields: ::std::vec![#(#layout),*],
                }
            }
            fn view(binding: u32) -> #view {
                #view { #(#init),* }
            }
            fn to_bytes(&self) -> ::std::vec::Vec<u8> {
                let mut out = ::std::vec::Vec::new();
                #(#bytes)*
                out.resize(out.len().div_ceil(16).max(1) * 16, 0);
                out
            }
        }
    })
}
