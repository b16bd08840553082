//! Writes the C header of `torchless::capi` with cbindgen (settings in `bindings/c/cbindgen.toml`):
//! `cargo run -p torchless-capi --example gen-header -- bindings/c/torchless.h`.
//! `.ci/run` writes it to a temporary file and fails when it differs from the checked-in one.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: gen-header OUT.h")?;
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(here.join("cbindgen.toml"))?;
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(here.join("../../runtime/src/capi/mod.rs"))
        .generate()?;
    bindings.write_to_file(&out);
    Ok(())
}
