//! The object behind a `TorchlessModel *` handle: one loaded model of any kind, chosen from the
//! folder's `config.json` (or a `torch.export` program, from a `.pt2` path), plus the strings
//! `torchless_model_info` hands out.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::Path;
use std::sync::Mutex;
use std::thread::ThreadId;

use crate::error::Result;
use crate::registry::{self, AnyModel, LoadOptions};

/// What a loaded model computes; decides which of embed / classify / generate / rerank /
/// classify_text / run it accepts.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchlessModelKind {
    /// A sentence encoder: `torchless_embed`.
    Encoder = 1,
    /// An image classifier: `torchless_classify`.
    Classifier = 2,
    /// A text generator (decoder-only language model): `torchless_generate`.
    Generator = 3,
    /// A sequence classifier (`*ForSequenceClassification`: cross-encoder reranker or text
    /// classifier): `torchless_rerank`, `torchless_classify_text`, `torchless_model_label`.
    TextClassifier = 4,
    /// An image-text embedder (CLIP): `torchless_embed` for texts and `torchless_embed_images`
    /// for images, both into one space.
    ImageTextEmbedder = 5,
    /// A `torch.export` program (a `.pt2` file): `torchless_run` with typed tensors.
    Program = 6,
}

/// The loaded model: one variant per task of [`registry::AnyModel`] (a new family needs nothing
/// here, the registry resolves it; a new task is a variant there, here, and its call in
/// `ffi.rs`), plus a `torch.export` program, which the C ABI loads from a `.pt2` path.
pub(crate) enum Loaded {
    Encoder(crate::SentenceEncoder),
    Classifier(crate::Classifier),
    Generator(crate::TextGenerator),
    TextClassifier(crate::TextClassifier),
    ImageText(crate::ClipEmbedder),
    Program(crate::Program),
}

impl From<AnyModel> for Loaded {
    fn from(m: AnyModel) -> Loaded {
        match m {
            AnyModel::Encoder(e) => Loaded::Encoder(e),
            AnyModel::Classifier(c) => Loaded::Classifier(c),
            AnyModel::Generator(g) => Loaded::Generator(g),
            AnyModel::TextClassifier(t) => Loaded::TextClassifier(t),
            AnyModel::ImageText(c) => Loaded::ImageText(c),
            AnyModel::Program(p) => Loaded::Program(p),
        }
    }
}

/// The outputs of a `torchless_run` that returned `BUFFER_TOO_SMALL`, kept for the same
/// thread's next call with the same inputs (the two-call pattern then runs the program once).
pub(crate) struct PendingRun {
    /// The inputs it ran on: dtype code, shape and bytes of each.
    pub inputs: Vec<(i32, Vec<i64>, Vec<u8>)>,
    /// Each output's dtype code, shape and little-endian C-order bytes.
    pub outputs: Vec<(i32, Vec<i64>, Vec<u8>)>,
}

/// An opaque handle to a loaded model: created by `torchless_model_load`, released by
/// `torchless_model_free`. `Send + Sync`: any number of threads may call it at once.
pub struct TorchlessModel {
    pub(crate) model: Loaded,
    pub(crate) architecture: CString,
    pub(crate) name: CString,
    /// Label names by index: `id2label` of text classifiers, the labels of image classifiers
    /// that have them (ViT's `id2label`); empty for the other kinds.
    pub(crate) labels: Vec<CString>,
    /// Programs only: per calling thread, the result of its last `torchless_run` that returned
    /// `BUFFER_TOO_SMALL` (taken by that thread's next run; freed with the model).
    pub(crate) pending: Mutex<HashMap<ThreadId, PendingRun>>,
}

impl Loaded {
    pub(crate) fn kind(&self) -> TorchlessModelKind {
        match self {
            Loaded::Encoder(_) => TorchlessModelKind::Encoder,
            Loaded::Classifier(_) => TorchlessModelKind::Classifier,
            Loaded::Generator(_) => TorchlessModelKind::Generator,
            Loaded::TextClassifier(_) => TorchlessModelKind::TextClassifier,
            Loaded::ImageText(_) => TorchlessModelKind::ImageTextEmbedder,
            Loaded::Program(_) => TorchlessModelKind::Program,
        }
    }

    /// The size of one output row: embedding size, number of classes, vocabulary size or
    /// number of labels, the size of the shared image-text space, or a program's number of
    /// outputs.
    pub(crate) fn output_dim(&self) -> usize {
        match self {
            Loaded::Encoder(e) => e.dim(),
            Loaded::Classifier(c) => c.num_classes(),
            Loaded::Generator(g) => g.model().shape().vocab_size,
            Loaded::TextClassifier(t) => t.num_labels(),
            Loaded::ImageText(c) => c.dim(),
            Loaded::Program(p) => p.output_names().len(),
        }
    }

    fn name(&self) -> &str {
        match self {
            Loaded::Encoder(e) => e.name(),
            Loaded::Classifier(c) => c.name(),
            Loaded::Generator(g) => g.name(),
            Loaded::TextClassifier(t) => t.name(),
            Loaded::ImageText(c) => c.name(),
            // Named by its file in `TorchlessModel::load`.
            Loaded::Program(_) => "",
        }
    }
}

impl TorchlessModel {
    pub(crate) fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
        if is_program(dir) {
            let program = crate::Program::load(dir, opts)?;
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
            return Ok(TorchlessModel {
                architecture: c("torch.export"),
                name: c(name.as_deref().unwrap_or_default()),
                labels: Vec::new(),
                pending: Mutex::default(),
                model: Loaded::Program(program),
            });
        }
        let resolved = registry::resolve(dir)?;
        let model = Loaded::from(AnyModel::load(dir, resolved.family.task, opts)?);
        // A bare weights file is a torchvision ResNet state_dict: its architecture is the
        // depth read from its blocks.
        let arch = match &model {
            Loaded::Classifier(c) => c.architecture().to_string(),
            _ => resolved.model_type.to_string(),
        };
        let labels = match &model {
            Loaded::TextClassifier(t) => t.id2label().iter().map(|l| c(l)).collect(),
            Loaded::Classifier(k) => k
                .labels()
                .map(|ls| ls.iter().map(|l| c(l)).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Ok(TorchlessModel {
            architecture: c(&arch),
            name: c(model.name()),
            labels,
            pending: Mutex::default(),
            model,
        })
    }
}

/// A path ending in `.pt2` (any case) is a `torch.export` archive: it loads as a program.
fn is_program(path: &Path) -> bool {
    registry::is_program(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handle_is_send_and_sync() {
        assert_send_sync::<TorchlessModel>();
    }
}
