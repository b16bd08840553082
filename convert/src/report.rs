//! `inspect`: a serialisable description of a checkpoint — format, files, every tensor (with
//! storage, offset and strides when the view is not contiguous), unsupported tensors, aliases,
//! dropped objects and the element count.

use std::collections::HashMap;

use serde::Serialize;

use crate::checkpoint::{Checkpoint, Dropped, EntryKind, Format};
use crate::tensor::TensorSpec;

/// One input file.
#[derive(Debug, Serialize)]
pub struct FileReport {
    /// Path.
    pub path: String,
    /// Detected format.
    pub format: Format,
    /// Size in bytes.
    pub bytes: u64,
}

/// One tensor.
#[derive(Debug, Serialize)]
pub struct TensorReport {
    /// Dotted name.
    pub name: String,
    /// dtype (safetensors spelling).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// The storage it views.
    pub storage: String,
    /// Element offset into the storage, when not contiguous from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Strides, when not contiguous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strides: Option<Vec<usize>>,
    /// Set when PyTorch's lazy negation/conjugation bit is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lazy: Option<&'static str>,
}

/// A tensor that cannot be stored.
#[derive(Debug, Serialize)]
pub struct UnsupportedReport {
    /// Dotted name.
    pub name: String,
    /// Why.
    pub kind: String,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct InspectReport {
    /// Detected format.
    pub format: Format,
    /// Human format name.
    pub format_name: &'static str,
    /// Input files.
    pub files: Vec<FileReport>,
    /// Tensors in checkpoint order.
    pub tensors: Vec<TensorReport>,
    /// Tensors safetensors cannot hold.
    pub unsupported: Vec<UnsupportedReport>,
    /// Groups of names that are the very same view (tied weights).
    pub aliases: Vec<Vec<String>>,
    /// Non-tensor values.
    pub dropped: Vec<Dropped>,
    /// Elements over distinct tensors.
    pub parameters: u128,
    /// Bytes over distinct tensors.
    pub tensor_bytes: u64,
    /// Hints.
    pub notes: Vec<String>,
}

/// Describes a checkpoint.
pub fn inspect(ckpt: &Checkpoint) -> InspectReport {
    let mut tensors = Vec::new();
    let mut unsupported = Vec::new();
    let mut groups: HashMap<&TensorSpec, Vec<String>> = HashMap::new();
    let mut order: Vec<&TensorSpec> = Vec::new();
    for e in &ckpt.entries {
        match &e.kind {
            EntryKind::Tensor(spec) => {
                let plain = spec.is_contiguous() && spec.offset == 0;
                tensors.push(TensorReport {
                    name: e.name.clone(),
                    dtype: spec.dtype.name(),
                    shape: spec.shape.clone(),
                    storage: ckpt.storages[spec.storage.id].name.clone(),
                    offset: (!plain).then_some(spec.offset),
                    strides: (!spec.is_contiguous()).then(|| spec.strides.clone()),
                    lazy: match (spec.neg, spec.conj) {
                        (true, true) => Some("neg+conj"),
                        (true, false) => Some("neg"),
                        (false, true) => Some("conj"),
                        _ => None,
                    },
                });
                let g = groups.entry(spec).or_default();
                if g.is_empty() {
                    order.push(spec);
                }
                g.push(e.name.clone());
            }
            EntryKind::Unsupported(kind) => unsupported.push(UnsupportedReport {
                name: e.name.clone(),
                kind: kind.clone(),
            }),
        }
    }
    let tensor_bytes = order.iter().map(|s| s.nbytes() as u64).sum();
    let aliases = order
        .iter()
        .filter_map(|s| groups.get(s).filter(|g| g.len() > 1).cloned())
        .collect();
    InspectReport {
        format: ckpt.format,
        format_name: ckpt.format.describe(),
        files: ckpt
            .files
            .iter()
            .map(|f| FileReport {
                path: f.path.display().to_string(),
                format: f.format,
                bytes: f.bytes().len() as u64,
            })
            .collect(),
        tensors,
        unsupported,
        aliases,
        dropped: ckpt.dropped.clone(),
        parameters: ckpt.element_count(),
        tensor_bytes,
        notes: ckpt.notes.clone(),
    }
}
