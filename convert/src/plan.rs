//! From a checkpoint's entries to the list of tensors to write: `--key` selection,
//! `--strip-prefix`, `--rename`, `--dtype`, unsupported tensors (refused or skipped), and
//! aliases (identical views written once).

use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, Dropped, EntryKind};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::TensorSpec;

/// The `--dtype` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetDType {
    /// Keep every tensor's dtype.
    #[default]
    Keep,
    /// Cast floating tensors (F64/F32/F16/BF16) to F32.
    F32,
    /// Cast floating tensors to F16.
    F16,
    /// Cast floating tensors to BF16.
    BF16,
}

impl std::str::FromStr for TargetDType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "keep" => Ok(TargetDType::Keep),
            "f32" | "float32" | "fp32" => Ok(TargetDType::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(TargetDType::F16),
            "bf16" | "bfloat16" => Ok(TargetDType::BF16),
            other => Err(format!(
                "unknown dtype {other:?} (expected keep, f32, f16 or bf16)"
            )),
        }
    }
}

impl TargetDType {
    /// The dtype a tensor of `from` is written as.
    pub fn apply(self, from: DType) -> DType {
        if !from.is_castable_float() {
            return from;
        }
        match self {
            TargetDType::Keep => from,
            TargetDType::F32 => DType::F32,
            TargetDType::F16 => DType::F16,
            TargetDType::BF16 => DType::BF16,
        }
    }
}

/// One `--rename REGEX=REPL` rule.
#[derive(Debug, Clone)]
pub struct Rename {
    /// The pattern (the regex crate's syntax).
    pub pattern: Regex,
    /// The replacement (`$1`, `${name}` refer to groups).
    pub replacement: String,
}

impl Rename {
    /// Parses `REGEX=REPL` (split at the first `=`).
    pub fn parse(rule: &str) -> Result<Rename> {
        let (re, rep) = rule.split_once('=').ok_or_else(|| {
            Error::Option(format!("--rename {rule:?}: expected REGEX=REPLACEMENT"))
        })?;
        let pattern = Regex::new(re)
            .map_err(|e| Error::Option(format!("--rename {rule:?}: bad regex: {e}")))?;
        Ok(Rename {
            pattern,
            replacement: rep.to_string(),
        })
    }

    /// The rule as written.
    pub fn to_rule(&self) -> String {
        format!("{}={}", self.pattern.as_str(), self.replacement)
    }
}

/// What to convert and how.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Select the sub-tree at this dotted path and drop its prefix.
    pub key: Option<String>,
    /// Remove this prefix from names that start with it.
    pub strip_prefix: Option<String>,
    /// Regex renames, applied in order after `key` and `strip_prefix`.
    pub renames: Vec<Rename>,
    /// Floating-point cast.
    pub dtype: TargetDType,
    /// Convert the rest and list tensors safetensors cannot hold, instead of refusing.
    pub skip_unsupported: bool,
    /// Write every alias as its own copy instead of once plus a metadata record.
    pub keep_aliases: bool,
    /// Split the output into shards of at most this many bytes.
    pub max_shard_size: Option<u64>,
}

/// The options as recorded in the output's metadata, so `verify` can replay them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RecordedOptions {
    /// `--key`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `--strip-prefix`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// `--rename` rules as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rename: Vec<String>,
    /// `--dtype`
    #[serde(default)]
    pub dtype: TargetDType,
    /// `--skip-unsupported`
    #[serde(default)]
    pub skip_unsupported: bool,
}

impl ConvertOptions {
    /// What is recorded in the output.
    pub fn recorded(&self) -> RecordedOptions {
        RecordedOptions {
            key: self.key.clone(),
            strip_prefix: self.strip_prefix.clone(),
            rename: self.renames.iter().map(Rename::to_rule).collect(),
            dtype: self.dtype,
            skip_unsupported: self.skip_unsupported,
        }
    }

    /// Options rebuilt from a record.
    pub fn from_recorded(r: &RecordedOptions) -> Result<ConvertOptions> {
        Ok(ConvertOptions {
            key: r.key.clone(),
            strip_prefix: r.strip_prefix.clone(),
            renames: r
                .rename
                .iter()
                .map(|s| Rename::parse(s))
                .collect::<Result<_>>()?,
            dtype: r.dtype,
            skip_unsupported: r.skip_unsupported,
            keep_aliases: true,
            max_shard_size: None,
        })
    }
}

/// A tensor to write.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    /// Output name.
    pub name: String,
    /// Name in the checkpoint.
    pub source: String,
    /// The view to read.
    pub spec: TensorSpec,
    /// Output dtype.
    pub dtype: DType,
}

impl PlannedTensor {
    /// Output size in bytes.
    pub fn nbytes(&self) -> usize {
        self.spec.numel().unwrap_or(0) * self.dtype.size()
    }
}

/// A name written once under another name.
#[derive(Debug, Clone, Serialize)]
pub struct Alias {
    /// The name not written.
    pub removed: String,
    /// The name written, holding the same values.
    pub kept: String,
}

/// A tensor left out by `--skip-unsupported`.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Its name.
    pub name: String,
    /// Why it cannot be stored.
    pub kind: String,
}

/// The resolved conversion.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Tensors to write.
    pub tensors: Vec<PlannedTensor>,
    /// Aliases recorded in metadata instead of written.
    pub aliases: Vec<Alias>,
    /// Unsupported tensors skipped.
    pub skipped: Vec<Skipped>,
    /// Non-tensor values under the selection, listed.
    pub dropped: Vec<Dropped>,
}

impl Plan {
    /// Total bytes of tensor data to write.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.nbytes() as u64).sum()
    }
}

/// Metadata keys the converter owns; alias records may not use them.
pub(crate) fn reserved(name: &str) -> bool {
    name == "format" || name.starts_with("torchless.")
}

fn select<'a>(name: &'a str, key: Option<&str>) -> Option<&'a str> {
    match key {
        None => Some(name),
        Some(k) if name == k => Some(name.rsplit('.').next().unwrap_or(name)),
        Some(k) => name.strip_prefix(k)?.strip_prefix('.'),
    }
}

/// Resolves names, dtypes, skips and aliases.
pub fn plan(ckpt: &Checkpoint, opts: &ConvertOptions) -> Result<Plan> {
    let key = opts.key.as_deref().map(|k| k.trim_matches('.'));
    let mut out = Plan::default();
    let mut by_name: HashMap<String, String> = HashMap::new();
    let mut any_selected = false;
    for e in &ckpt.entries {
        let Some(selected) = select(&e.name, key) else {
            continue;
        };
        any_selected = true;
        let mut name = selected.to_string();
        if let Some(p) = opts.strip_prefix.as_deref() {
            if let Some(rest) = name.strip_prefix(p) {
                name = rest.to_string();
            }
        }
        for r in &opts.renames {
            name = r
                .pattern
                .replace_all(&name, r.replacement.as_str())
                .into_owned();
            if name.len() > MAX_NAME_BYTES {
                return Err(Error::Option(format!(
                    "--rename {:?} makes the name of tensor `{}` {} bytes long, over the {MAX_NAME_BYTES}-byte name limit",
                    r.to_rule(),
                    shorten(&e.name),
                    name.len()
                )));
            }
        }
        if name.is_empty() {
            return Err(Error::Option(if e.name.is_empty() {
                "a tensor has an empty name (an empty dict key), which safetensors cannot hold; \
                 name it with --rename '^$=NEW_NAME'"
                    .to_string()
            } else {
                format!("tensor `{}` would be written with an empty name", e.name)
            }));
        }
        if name == "__metadata__" {
            return Err(Error::Option(format!(
                "tensor `{}` would be written as `__metadata__`, the key safetensors reserves \
                 for its header; rename it with --rename '^__metadata__$=NEW_NAME'",
                shorten(&e.name)
            )));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(Error::Option(format!(
                "tensor `{}` has a {}-byte name, over the {MAX_NAME_BYTES}-byte name limit",
                shorten(&e.name),
                name.len()
            )));
        }
        if let Some(other) = by_name.insert(name.clone(), e.name.clone()) {
            return Err(Error::Option(format!(
                "tensors `{other}` and `{}` would both be written as `{name}`",
                e.name
            )));
        }
        match &e.kind {
            EntryKind::Unsupported(kind) if opts.skip_unsupported => out.skipped.push(Skipped {
                name: e.name.clone(),
                kind: kind.clone(),
            }),
            EntryKind::Unsupported(kind) => {
                return Err(Error::Unsupported {
                    tensor: e.name.clone(),
                    kind: kind.clone(),
                })
            }
            EntryKind::Tensor(spec) => out.tensors.push(PlannedTensor {
                name,
                source: e.name.clone(),
                dtype: opts.dtype.apply(spec.dtype),
                spec: spec.clone(),
            }),
        }
    }
    if let Some(k) = key {
        if !any_selected {
            let mut tops = ckpt.top_keys.clone();
            tops.truncate(12);
            return Err(Error::Option(format!(
                "--key {k}: no tensor lies under that path{}",
                if tops.is_empty() {
                    String::new()
                } else {
                    format!(" (top-level keys: {})", tops.join(", "))
                }
            )));
        }
    }
    out.dropped = ckpt
        .dropped
        .iter()
        .filter_map(|d| {
            select(&d.path, key).map(|p| Dropped {
                path: p.to_string(),
                what: d.what.clone(),
            })
        })
        .collect();
    if !opts.keep_aliases {
        let mut first: HashMap<(&TensorSpec, DType), usize> = HashMap::new();
        let mut keep = vec![true; out.tensors.len()];
        for (i, t) in out.tensors.iter().enumerate() {
            match first.get(&(&t.spec, t.dtype)) {
                Some(&k) if !reserved(&t.name) => {
                    keep[i] = false;
                    out.aliases.push(Alias {
                        removed: t.name.clone(),
                        kept: out.tensors[k].name.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    first.insert((&t.spec, t.dtype), i);
                }
            }
        }
        let mut i = 0;
        out.tensors.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
    let total = out.tensors.iter().fold(0u64, |acc, t| {
        let n = t
            .spec
            .numel()
            .and_then(|n| n.checked_mul(t.dtype.size()))
            .map_or(u64::MAX, |n| n as u64);
        acc.saturating_add(n)
    });
    if total > ckpt.byte_budget {
        return Err(Error::Budget {
            file: ckpt
                .files
                .first()
                .map(|f| f.path.display().to_string())
                .unwrap_or_default(),
            what: "bytes of tensor data to write".into(),
            needed: total,
            limit: ckpt.byte_budget,
        });
    }
    Ok(out)
}

/// Longest tensor name written (safetensors' whole header is capped at 100 MB).
pub const MAX_NAME_BYTES: usize = 64 << 10;

/// A name cut to 200 bytes for messages.
fn shorten(name: &str) -> String {
    if name.len() <= 200 {
        return name.to_string();
    }
    let mut end = 200;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &name[..end], name.len())
}
