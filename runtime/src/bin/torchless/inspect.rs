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
///
/// A `torch.export` archive (`.pt2`) also shows its program: the signature (user inputs with
/// dtypes and symbolic sizes, the size ranges, outputs), the op histogram, the fusions
/// `torchless run` applies at load, and every op it cannot run (JSON: `"program"`).
///   torchless inspect tests/fixtures/graph/bert_tiny/program.pt2
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
    let program = if ckpt.format == tc::Format::Pt2 {
        Some(torchless::describe_program(&a.input)?)
    } else {
        None
    };
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let (Some(p), Some(o)) = (&program, v.as_object_mut()) {
            o.insert("program".into(), serde_json::to_value(p)?);
        }
        return print_json(&v);
    }
    let mut out = std::io::stdout().lock();
    if let Some(p) = &program {
        print_program(&mut out, p)?;
    }
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

fn print_program(out: &mut impl Write, p: &torchless::ProgramReport) -> anyhow::Result<()> {
    writeln!(
        out,
        "program: {} (torch {}, schema {}, {})",
        p.name,
        p.torch_version,
        p.schema_version,
        p.verifiers.join(", ")
    )?;
    for i in &p.inputs {
        writeln!(
            out,
            "  input  {}: {} [{}]",
            i.name,
            i.dtype,
            i.sizes.join(", ")
        )?;
    }
    for (s, r) in &p.ranges {
        writeln!(out, "  range  {s} in {r}")?;
    }
    for o in &p.outputs {
        writeln!(out, "  output {o}")?;
    }
    writeln!(out, "ops ({} nodes):", p.ops.values().sum::<usize>())?;
    for (op, n) in &p.ops {
        writeln!(out, "  {n:5}  {op}")?;
    }
    if p.unsupported.is_empty() {
        writeln!(out, "fusions at load ({} steps left):", p.steps)?;
        for (f, n) in &p.fusions {
            writeln!(out, "  {n:5}  {f}")?;
        }
    } else {
        writeln!(
            out,
            "unsupported ({}), so `torchless run` refuses it:",
            p.unsupported.len()
        )?;
        for u in &p.unsupported {
            writeln!(out, "  {u}")?;
        }
    }
    if let Some(e) = &p.load_error {
        writeln!(out, "load error: {e}")?;
    }
    Ok(())
}
