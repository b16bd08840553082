//! `torchless inspect`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use torchless::convert as tc;

use crate::output::{human_bytes, print_json, ReadArgs};

/// List a checkpoint's format, tensors, aliases and dropped objects without converting.
///
/// Shows the format detected, every tensor (dtype, shape, storage, offset and strides when not
/// contiguous), tied names, unsupported tensors, non-tensor objects and the element count.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint file, folder or `*.index.json`.
    input: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let ckpt = tc::open(&a.input, &a.read.open_options())
        .with_context(|| format!("cannot inspect {}", a.input.display()))?;
    let r = tc::inspect(&ckpt);
    if a.json {
        return print_json(&r);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "format: {}", r.format_name)?;
    for f in &r.files {
        writeln!(out, "file: {} ({})", f.path, human_bytes(f.bytes))?;
    }
    writeln!(
        out,
        "tensors: {} ({} elements, {})",
        r.tensors.len(),
        r.parameters,
        human_bytes(r.tensor_bytes)
    )?;
    let w = r
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for t in &r.tensors {
        let mut line = format!(
            "  {:w$}  {:7} {:18} {}",
            t.name,
            t.dtype,
            format!("{:?}", t.shape),
            t.storage
        );
        if let Some(o) = t.offset {
            line.push_str(&format!(" offset={o}"));
        }
        if let Some(s) = &t.strides {
            line.push_str(&format!(" strides={s:?}"));
        }
        if let Some(l) = t.lazy {
            line.push_str(&format!(" lazy={l}"));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    if !r.aliases.is_empty() {
        writeln!(out, "aliases (the same view under several names):")?;
        for g in &r.aliases {
            writeln!(out, "  {}", g.join(" = "))?;
        }
    }
    if !r.unsupported.is_empty() {
        writeln!(out, "unsupported (safetensors cannot store these):")?;
        for u in &r.unsupported {
            writeln!(out, "  {}: {}", u.name, u.kind)?;
        }
    }
    if !r.dropped.is_empty() {
        writeln!(out, "not tensors (dropped on conversion):")?;
        for d in &r.dropped {
            writeln!(out, "  {}: {}", d.path, d.what)?;
        }
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    Ok(())
}
