fn main() {
    let k = webdit_kernels::affine::<64>();
    match webdit_codegen::compile(&k) {
        Ok(c) => println!("{}", c.wgsl),
        Err(e) => { eprintln!("{e}"); std::process::exit(1) }
    }
}
