//! From DSL kernels to validated WGSL: the kernel's build errors and WebGPU's rules are
//! checked on the DSL's IR ([`check`]), [`lower`](compile) builds a `naga::Module` whose
//! spans point at the kernel's Rust lines, naga's validator checks it with WebGPU's
//! capabilities (plus f16 where the kernel uses it), and naga's WGSL backend writes the text.
//! Every error is reported at the kernel's file:line:column ([`report`]). Used by
//! `model/build.rs` at build time and by the `webdit-emit` command of `webdit-kernels`.

mod check;
mod lower;
pub mod report;
pub mod source_map;

use webdit_dsl::ir::{Diagnostic, Kernel};

/// A fingerprint of this compiler's source text: WGSL compiled from the same IR by a compiler
/// with the same fingerprint (and the same dependencies) is the same.
pub const FINGERPRINT: &str = env!("WEBDIT_CODEGEN_FINGERPRINT");

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
    /// Which kernel line each part of `wgsl` comes from.
    pub source_map: source_map::SourceMap,
}

/// The naga capabilities a kernel needs beyond WebGPU's baseline.
pub fn capabilities(kernel: &Kernel) -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    let mut c = C::empty();
    c.set(C::SHADER_FLOAT16, kernel.uses_f16());
    c.set(C::SUBGROUP, kernel.uses_subgroups());
    c.set(C::COOPERATIVE_MATRIX, kernel.uses_coop());
    c
}

fn validator(kernel: &Kernel) -> naga::valid::Validator {
    let mut v =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(kernel));
    if kernel.uses_subgroups() {
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
    }
    v
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
    let info = validator(kernel).validate(&module).map_err(|e| {
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
    let source_map = source_map::build(&module, &spans, &wgsl);
    Ok(Compiled {
        module,
        info,
        wgsl,
        source_map,
    })
}

/// Compiles `variants` (name, kernel) into `dir`: `<name>.wgsl`, `<name>.wgsl.map` (one
/// `wgsl-line file:line:column` per line: the kernel statement each WGSL line comes from)
/// and `manifest.json` (name, entry point, whether it needs `shader-f16`, the map), which
/// `web/tests/wgsl.mjs` reads to compile them in a browser. Stops at the first kernel that
/// does not compile.
pub fn emit(
    dir: &std::path::Path,
    variants: impl IntoIterator<Item = (String, Kernel)>,
) -> Result<Vec<std::path::PathBuf>, Box<dyn std::error::Error>> {
    use std::fmt::Write;
    std::fs::create_dir_all(dir)?;
    let mut written = vec![];
    let mut manifest = vec![];
    for (name, kernel) in variants {
        let c = compile(&kernel)?;
        let path = dir.join(format!("{name}.wgsl"));
        std::fs::write(&path, &c.wgsl)?;
        let mut map = String::new();
        let mut json = vec![];
        for (line, loc) in &c.source_map {
            writeln!(map, "{line} {loc}")?;
            json.push(format!("[{line},\"{loc}\"]"));
        }
        std::fs::write(dir.join(format!("{name}.wgsl.map")), map)?;
        manifest.push(format!(
            "{{\"name\":\"{name}\",\"entry\":\"{}\",\"f16\":{},\"portable\":{},\"map\":[{}]}}",
            kernel.name,
            kernel.uses_f16(),
            kernel.is_portable(),
            json.join(",")
        ));
        written.push(path);
    }
    std::fs::write(
        dir.join("manifest.json"),
        format!("[\n{}\n]\n", manifest.join(",\n")),
    )?;
    Ok(written)
}
