//! From DSL kernels to validated WGSL: the kernel's build errors and WebGPU's rules are
//! checked on the DSL's IR ([`check`]), [`lower`](compile) builds a `naga::Module` whose
//! spans point at the kernel's Rust lines, naga's validator checks it with WebGPU's
//! capabilities (plus f16 where the kernel uses it), and naga's WGSL backend writes the text.
//! Every error is reported at the kernel's file:line:column ([`report`]). Used by
//! `model/build.rs` at build time and by the `codegen emit` command.

mod check;
mod lower;
pub mod report;

use webdit_dsl::ir::{Diagnostic, Kernel};

/// A kernel that could not be turned into WGSL: every problem found, each at the kernel code
/// that causes it. Displays like rustc's errors.
#[derive(Debug)]
pub struct Error {
    pub kernel: String,
    pub params: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.diagnostics {
            write!(f, "{}", report::render(d, &self.kernel, &self.params))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// A kernel lowered, validated and written out.
pub struct Compiled {
    pub module: naga::Module,
    pub info: naga::valid::ModuleInfo,
    pub wgsl: String,
}

/// The naga capabilities a kernel needs beyond WebGPU's baseline.
pub fn capabilities(kernel: &Kernel) -> naga::valid::Capabilities {
    if kernel.uses_f16() {
        naga::valid::Capabilities::SHADER_FLOAT16
    } else {
        naga::valid::Capabilities::empty()
    }
}

fn message(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Lowers, validates and writes one kernel.
pub fn compile(kernel: &Kernel) -> Result<Compiled, Error> {
    let fail = |diagnostics: Vec<Diagnostic>| Error {
        kernel: kernel.name.clone(),
        params: kernel.params.clone(),
        diagnostics,
    };
    let mut problems = kernel.errors.clone();
    problems.extend(check::check(kernel));
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    let (module, spans) = lower::lower(kernel).map_err(|d| fail(vec![d]))?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(kernel));
    let info = validator.validate(&module).map_err(|e| {
        // naga's spans are the kernel's statements (see `lower::Spans`).
        let loc = e
            .spans()
            .find_map(|(span, _)| spans.loc(*span))
            .unwrap_or(kernel.loc);
        let text = message(e.as_inner());
        fail(vec![Diagnostic::new(
            loc,
            format!("naga rejects the lowered kernel: {text}"),
        )])
    })?;
    let wgsl =
        naga::back::wgsl::write_string(&module, &info, naga::back::wgsl::WriterFlags::empty())
            .map_err(|e| {
                fail(vec![Diagnostic::new(
                    kernel.loc,
                    format!("naga's WGSL writer failed: {}", message(&e)),
                )])
            })?;
    Ok(Compiled { module, info, wgsl })
}
