//! From DSL kernels to validated WGSL: [`lower`](compile) builds a `naga::Module`, naga's
//! validator checks it with WebGPU's capabilities (plus f16 where the kernel uses it), and
//! naga's WGSL backend writes the text. Used by `model/build.rs` at build time and by the
//! `codegen emit` command.

mod lower;

use webdit_dsl::ir::Kernel;

/// A kernel that could not be turned into WGSL, with the kernel and its parameters named.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kernel `{kernel}` ({params}) cannot be lowered to naga: {message}")]
    Lower {
        kernel: String,
        params: String,
        message: String,
    },
    #[error("kernel `{kernel}` ({params}) failed naga validation: {message}")]
    Validate {
        kernel: String,
        params: String,
        message: String,
    },
    #[error("kernel `{kernel}` ({params}): the WGSL writer failed: {message}")]
    Write {
        kernel: String,
        params: String,
        message: String,
    },
}

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
    let named = |message: String| (kernel.name.clone(), kernel.params.clone(), message);
    let module = lower::lower(kernel).map_err(|e| {
        let (kernel, params, message) = named(e.0);
        Error::Lower {
            kernel,
            params,
            message,
        }
    })?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(kernel));
    let info = validator.validate(&module).map_err(|e| {
        let (kernel, params, message) = named(message(e.as_inner()));
        Error::Validate {
            kernel,
            params,
            message,
        }
    })?;
    let wgsl =
        naga::back::wgsl::write_string(&module, &info, naga::back::wgsl::WriterFlags::empty())
            .map_err(|e| {
                let (kernel, params, message) = named(message(&e));
                Error::Write {
                    kernel,
                    params,
                    message,
                }
            })?;
    Ok(Compiled { module, info, wgsl })
}
