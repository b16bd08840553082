//! `verify IN OUT`: re-reads the checkpoint, replays the conversion options recorded in the
//! output, and compares every tensor's dtype, shape and bytes (bit for bit, so NaNs compare by
//! payload) with the safetensors output. Any difference, missing or extra tensor is a mismatch.

use std::collections::HashMap;
use std::path::Path;

use crate::checkpoint::{Checkpoint, EntryKind};
use crate::error::{Error, Result};
use crate::plan::{plan, ConvertOptions, RecordedOptions};
use crate::write::{index_path, OPTIONS_KEY, SHA_KEY};
use crate::{open, OpenOptions};

/// What `verify` checked.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Tensors compared.
    pub tensors: usize,
    /// Bytes compared.
    pub bytes: u64,
    /// Unsupported tensors the conversion skipped (and the output must not hold).
    pub skipped: usize,
    /// Remarks (for instance a source hash that differs from the recorded one).
    pub notes: Vec<String>,
}

/// Opens a conversion output: a safetensors file, or the index written next to it when sharded.
pub fn open_output(output: &Path, options: &OpenOptions) -> Result<Checkpoint> {
    let idx = index_path(output);
    let target = if !output.exists() && idx.exists() {
        idx
    } else {
        output.to_path_buf()
    };
    open(&target, options)
}

/// Compares a checkpoint with its conversion. `options` overrides the recorded options.
pub fn verify(
    input: &Path,
    output: &Path,
    options: Option<ConvertOptions>,
    open_options: &OpenOptions,
) -> Result<VerifyReport> {
    let out = open_output(output, open_options)?;
    if !matches!(
        out.format,
        crate::Format::Safetensors | crate::Format::HfFolder
    ) || out
        .files
        .iter()
        .any(|f| f.format != crate::Format::Safetensors)
    {
        return Err(Error::Option(format!(
            "{} is not a safetensors output",
            output.display()
        )));
    }
    let mut opts = match options {
        Some(o) => o,
        None => match out.metadata.get(OPTIONS_KEY) {
            Some(json) => {
                let r: RecordedOptions = serde_json::from_str(json).map_err(|e| {
                    Error::format(
                        output.display().to_string(),
                        format!("bad {OPTIONS_KEY}: {e}"),
                    )
                })?;
                ConvertOptions::from_recorded(&r)?
            }
            None => ConvertOptions::default(),
        },
    };
    opts.keep_aliases = true;
    let inp = open(input, open_options)?;
    let p = plan(&inp, &opts)?;
    let mut report = VerifyReport {
        skipped: p.skipped.len(),
        ..Default::default()
    };
    let outs: HashMap<&str, &crate::tensor::TensorSpec> = out
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Tensor(s) => Some((e.name.as_str(), s)),
            EntryKind::Unsupported(_) => None,
        })
        .collect();
    let mut problems: Vec<String> = Vec::new();
    for t in &p.tensors {
        let Some(o) = outs.get(t.name.as_str()) else {
            problems.push(format!("`{}` is missing from the output", t.name));
            continue;
        };
        if o.dtype != t.dtype || o.shape != t.spec.shape {
            problems.push(format!(
                "`{}`: expected {} {:?}, output has {} {:?}",
                t.name, t.dtype, t.spec.shape, o.dtype, o.shape
            ));
            continue;
        }
        let ob = out.storage_bytes(o.storage.id)?;
        let ob = &ob[o.contiguous_range().unwrap_or(0..0)];
        let mut at = 0usize;
        let mut first_diff: Option<usize> = None;
        inp.read_tensor(&t.spec, t.dtype, &mut |chunk| {
            if first_diff.is_none() {
                let theirs = ob.get(at..at + chunk.len()).unwrap_or(&[]);
                if theirs != chunk {
                    let i = chunk
                        .iter()
                        .zip(theirs.iter().chain(std::iter::repeat(&0)))
                        .position(|(a, b)| a != b)
                        .unwrap_or(0);
                    first_diff = Some(at + i);
                }
            }
            at += chunk.len();
            Ok(())
        })?;
        if let Some(b) = first_diff {
            problems.push(format!(
                "`{}`: values differ (first at element {})",
                t.name,
                b / t.dtype.size()
            ));
        } else if at != ob.len() {
            problems.push(format!(
                "`{}`: output holds {} bytes, expected {at}",
                t.name,
                ob.len()
            ));
        }
        report.tensors += 1;
        report.bytes += at as u64;
    }
    let expected: std::collections::HashSet<&str> =
        p.tensors.iter().map(|t| t.name.as_str()).collect();
    let mut extra: Vec<&str> = outs
        .keys()
        .copied()
        .filter(|n| !expected.contains(n))
        .collect();
    extra.sort();
    for n in extra {
        problems.push(format!("the output has `{n}`, which the input does not"));
    }
    if let Some(recorded) = out.metadata.get(SHA_KEY) {
        let actual = crate::write::sha256_of(&inp.files);
        if &actual != recorded {
            report.notes.push(format!(
                "the input's SHA-256 differs from the one recorded at conversion ({recorded}); the tensors were compared anyway"
            ));
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(10);
        return Err(Error::Mismatch(format!(
            "{n} difference(s) between {} and {}: {}",
            input.display(),
            output.display(),
            problems.join("; ")
        )));
    }
    Ok(report)
}
