//! `torchless convert`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use torchless::convert::{self as tc, ConvertOptions, Rename, TargetDType};

use crate::output::{human_bytes, print_json, ReadArgs};

/// Conversions writing more than this get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 100_000_000;

/// Convert a PyTorch checkpoint to safetensors.
///
/// INPUT may be a `torch.save` file (zip or legacy), a TorchScript archive, a `torch.export`
/// `.pt2` archive, a safetensors file, a Hugging Face folder, or a shard index. The format is
/// detected from the content. OUTPUT is written only when complete; on any error nothing is left
/// behind and the exit status is non-zero.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint file, folder or `*.index.json`.
    input: PathBuf,
    /// Output `.safetensors` file (with --max-shard-size: the name shards and index derive from).
    output: PathBuf,
    /// Convert only the sub-tree at this dotted path (e.g. `model` or `state_dict`) and drop
    /// its prefix from the names.
    #[arg(long, value_name = "DOTTED.KEY")]
    key: Option<String>,
    /// Remove this prefix from names that start with it (e.g. `module.`).
    #[arg(long, value_name = "PREFIX")]
    strip_prefix: Option<String>,
    /// Rename tensors: a regex and its replacement (`$1` for groups), applied in order after
    /// --key and --strip-prefix. Repeatable.
    #[arg(long = "rename", value_name = "REGEX=REPL")]
    renames: Vec<String>,
    /// Cast floating tensors (F64/F32/F16/BF16; not FP8 or complex) as PyTorch's `.to()` does.
    #[arg(long, default_value = "keep", value_name = "keep|f32|f16|bf16")]
    dtype: TargetDType,
    /// Split the output into shards of at most this size (e.g. 5GB, 500MB, 2GiB), with
    /// Hugging Face names and a `<OUTPUT>.index.json`.
    #[arg(long, value_name = "SIZE")]
    max_shard_size: Option<String>,
    /// Convert everything else when the checkpoint holds tensors safetensors cannot store
    /// (quantized, sparse, nested, complex128), and list them.
    #[arg(long)]
    skip_unsupported: bool,
    /// Write tied weights and other identical views under every name instead of once plus a
    /// `{"removed": "kept"}` metadata record.
    #[arg(long)]
    keep_aliases: bool,
    /// Print one JSON report on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadArgs,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let options = ConvertOptions {
        key: a.key.clone(),
        strip_prefix: a.strip_prefix.clone(),
        renames: a
            .renames
            .iter()
            .map(|r| Rename::parse(r))
            .collect::<Result<_, _>>()?,
        dtype: a.dtype,
        skip_unsupported: a.skip_unsupported,
        keep_aliases: a.keep_aliases,
        max_shard_size: a
            .max_shard_size
            .as_deref()
            .map(tc::parse_size)
            .transpose()?,
    };
    let ckpt = tc::open(&a.input, &a.read.open_options())
        .with_context(|| format!("cannot convert {}", a.input.display()))?;
    let size: u64 = ckpt.files.iter().map(|f| f.bytes().len() as u64).sum();
    let bar =
        (!a.json && size > PROGRESS_THRESHOLD && std::io::stderr().is_terminal()).then(|| {
            let pb = indicatif::ProgressBar::new(size);
            pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} converting [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
            pb
        });
    let result = tc::convert_checkpoint(&ckpt, &a.input, &a.output, &options, &mut |n| {
        if let Some(pb) = &bar {
            pb.inc(n);
        }
    });
    if let Some(pb) = &bar {
        pb.finish_and_clear();
    }
    let report = result.with_context(|| format!("cannot convert {}", a.input.display()))?;
    if a.json {
        return print_json(&report);
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    let mut out = std::io::stdout().lock();
    let targets: Vec<String> = report
        .written
        .index
        .iter()
        .chain(report.written.files.iter().take(1))
        .map(|p| p.display().to_string())
        .collect();
    writeln!(
        out,
        "converted {} tensors ({}) from a {} into {}{}",
        report.tensors,
        human_bytes(report.written.bytes),
        report.format.describe(),
        targets.join(" + "),
        if report.written.files.len() > 1 {
            format!(" ({} shards)", report.written.files.len())
        } else {
            String::new()
        }
    )?;
    if !report.aliases.is_empty() {
        writeln!(
            out,
            "{} tied name(s) written once and recorded in metadata:",
            report.aliases.len()
        )?;
        for al in &report.aliases {
            writeln!(out, "  {} = {}", al.removed, al.kept)?;
        }
    }
    if !report.skipped.is_empty() {
        writeln!(
            out,
            "skipped {} unsupported tensor(s):",
            report.skipped.len()
        )?;
        for s in &report.skipped {
            writeln!(out, "  {}: {}", s.name, s.kind)?;
        }
    }
    if !report.dropped.is_empty() {
        writeln!(
            out,
            "{} non-tensor value(s) not written (see `torchless inspect` for all):",
            report.dropped.len()
        )?;
        for d in report.dropped.iter().take(10) {
            writeln!(out, "  {}: {}", d.path, d.what)?;
        }
        if report.dropped.len() > 10 {
            writeln!(out, "  … and {} more", report.dropped.len() - 10)?;
        }
    }
    Ok(())
}
