//! `torchless verify`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use torchless::convert as tc;

use crate::output::{human_bytes, print_json, ReadArgs};

/// Compare a checkpoint with its safetensors conversion, bit for bit.
///
/// The conversion options (--key, --strip-prefix, --rename, --dtype) are read back from
/// OUTPUT's metadata and replayed on INPUT; every tensor must then match in name, dtype, shape
/// and bytes, and OUTPUT may hold nothing else. Exits non-zero on any difference.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The original checkpoint (file, folder or index).
    input: PathBuf,
    /// The safetensors file (or the name it was sharded from, or its `.index.json`).
    output: PathBuf,
    /// Print one JSON report on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let report =
        tc::verify(&a.input, &a.output, None, &a.read.open_options()).with_context(|| {
            format!(
                "verify {} against {}",
                a.input.display(),
                a.output.display()
            )
        })?;
    if a.json {
        return print_json(&report);
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    writeln!(
        std::io::stdout().lock(),
        "identical: {} tensors, {} compared bit for bit{}",
        report.tensors,
        human_bytes(report.bytes),
        if report.skipped > 0 {
            format!(
                " ({} unsupported tensors were skipped at conversion)",
                report.skipped
            )
        } else {
            String::new()
        }
    )?;
    Ok(())
}
