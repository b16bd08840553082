//! The object behind a `TorchlessModel *` handle: one loaded model of any kind, chosen from the
//! folder's `config.json`, plus the strings `torchless_model_info` hands out.

use std::ffi::CString;
use std::path::Path;

use crate::error::Result;
use crate::registry::{self, LoadOptions};

/// What a loaded model computes; decides which of embed / classify / generate / rerank /
/// classify_text it accepts.
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
}

/// The loaded model, one variant per task ([`registry::AnyModel`]): a new family needs nothing
/// here (the registry resolves it); a new task is a variant there and its call in `ffi.rs`.
pub(crate) use crate::registry::AnyModel as Loaded;

/// An opaque handle to a loaded model: created by `torchless_model_load`, released by
/// `torchless_model_free`. `Send + Sync`: any number of threads may call it at once.
pub struct TorchlessModel {
    pub(crate) model: Loaded,
    pub(crate) architecture: CString,
    pub(crate) name: CString,
    /// Label names by index: `id2label` of text classifiers, the labels of image classifiers
    /// that have them (ViT's `id2label`); empty for the other kinds.
    pub(crate) labels: Vec<CString>,
}

impl Loaded {
    pub(crate) fn kind(&self) -> TorchlessModelKind {
        match self {
            Loaded::Encoder(_) => TorchlessModelKind::Encoder,
            Loaded::Classifier(_) => TorchlessModelKind::Classifier,
            Loaded::Generator(_) => TorchlessModelKind::Generator,
            Loaded::TextClassifier(_) => TorchlessModelKind::TextClassifier,
            Loaded::ImageText(_) => TorchlessModelKind::ImageTextEmbedder,
        }
    }

    /// The size of one output row: embedding size, number of classes, vocabulary size or
    /// number of labels, or the size of the shared image-text space.
    pub(crate) fn output_dim(&self) -> usize {
        match self {
            Loaded::Encoder(e) => e.dim(),
            Loaded::Classifier(c) => c.num_classes(),
            Loaded::Generator(g) => g.model().shape().vocab_size,
            Loaded::TextClassifier(t) => t.num_labels(),
            Loaded::ImageText(c) => c.dim(),
        }
    }

    fn name(&self) -> &str {
        match self {
            Loaded::Encoder(e) => e.name(),
            Loaded::Classifier(c) => c.name(),
            Loaded::Generator(g) => g.name(),
            Loaded::TextClassifier(t) => t.name(),
            Loaded::ImageText(c) => c.name(),
        }
    }
}

impl TorchlessModel {
    pub(crate) fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let resolved = registry::resolve(dir)?;
        let model = Loaded::load(dir, resolved.family.task, opts)?;
        // A bare weights file is a torchvision ResNet state_dict: its architecture is the
        // depth read from its blocks.
        let arch = match &model {
            Loaded::Classifier(c) => c.architecture().to_string(),
            _ => resolved.model_type.to_string(),
        };
        let c = |s: &str| CString::new(s.replace('\0', "")).unwrap_or_default();
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
            model,
        })
    }
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
