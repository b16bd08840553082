//! What a model file gives the runtime's registry: a loader with one signature per task
//! ([`EncoderLoader`], [`DecoderLoader`], [`ClassifierLoader`]), the task traits the loaders
//! return ([`TextEncoder`] and [`SequenceClassifier`] here, [`CausalLm`](crate::CausalLm) in
//! `decoder.rs`), and the loading helpers every family shares (the state-dict prefix decided
//! from the keys, LayerNorm parameters). A new family is a
//! model file exporting `MODEL_TYPES` and a loader, plus one line in the runtime's table.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::de::DeserializeOwned;
use torchless_kernels::norm::NormParams;

use crate::error::ConfigError;
use crate::CausalLm;

/// Why a family could not be loaded from a folder.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `config.json` does not describe a working model of the family (field and value named).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `config.json` does not have the family's fields (serde's message, file values left out).
    #[error("config.json is not a valid {family} configuration: {reason}")]
    BadConfig {
        /// The family.
        family: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The weights do not have the family's key layout.
    #[error("{0}")]
    Layout(String),
    /// A tensor is missing, misshapen, or an operation failed while loading.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// What a loader reads: the parsed `config.json`, the weights (names as the checkpoint has
/// them) and a way to ask which tensor names exist.
pub struct LoadContext<'a> {
    /// `config.json` as JSON.
    pub config: &'a serde_json::Value,
    /// The weights at their root (no prefix), in the requested dtype and device.
    pub vb: VarBuilder<'a>,
    /// Whether a tensor of this name exists.
    pub has: &'a dyn Fn(&str) -> bool,
}

impl LoadContext<'_> {
    /// `config.json` as the family's serde mirror.
    pub fn config<T: DeserializeOwned>(&self, family: &'static str) -> Result2<T> {
        T::deserialize(self.config).map_err(|e| LoadError::BadConfig {
            family,
            reason: without_values(&e.to_string()),
        })
    }

    /// The state-dict prefix under which `probe` exists: the first of `candidates` that has it,
    /// decided once from the keys (`"bert."` for a `BertFor*` checkpoint, `""` for `BertModel`).
    pub fn prefix(
        &self,
        candidates: &[&'static str],
        probe: &str,
        family: &str,
    ) -> Result2<&'static str> {
        candidates
            .iter()
            .copied()
            .find(|p| (self.has)(&format!("{p}{probe}")))
            .ok_or_else(|| {
                LoadError::Layout(format!(
                    "no `{probe}` (under any of the prefixes {}): not a {family} checkpoint",
                    candidates
                        .iter()
                        .map(|p| format!("{:?}", p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The weights under `prefix` (`"bert."` → `vb.pp("bert")`).
    pub fn under(&self, prefix: &str) -> VarBuilder<'_> {
        let p = prefix.trim_end_matches('.');
        if p.is_empty() {
            self.vb.clone()
        } else {
            self.vb.pp(p)
        }
    }
}

/// Shorthand for loader results.
pub type Result2<T> = std::result::Result<T, LoadError>;

/// A serde message with the quoted values of the file left out (`invalid type: string "…"`).
fn without_values(msg: &str) -> String {
    match msg.find('"') {
        Some(i) => format!("{}…", &msg[..i]),
        None => msg.to_string(),
    }
}

/// A text encoder: token ids in, the last hidden state out, for the sentence-embedding and
/// cross-encoder pipelines. Immutable and `Send + Sync`.
pub trait TextEncoder: Send + Sync {
    /// Hidden states `[B, T, H]` for right-padded `input_ids` `[B, T]` whose rows have
    /// `lengths` real tokens (token types where the family has them).
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor>;

    /// Whether [`forward_packed`](Self::forward_packed) runs unpadded and is the route to take
    /// (a family with a varlen path, on a device whose kernels run it). `false`: use
    /// [`forward`](Self::forward).
    fn runs_packed(&self) -> bool {
        false
    }

    /// Hidden states `[N, H]` for a packed batch: `input_ids` `[N]` holds the sequences back to
    /// back with no padding, sequence `i` in rows `cu_seqlens[i]..cu_seqlens[i + 1]` (token
    /// types likewise). Families without a varlen path refuse it.
    fn forward_packed(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        cu_seqlens: &[u32],
    ) -> Result<Tensor> {
        let _ = (input_ids, token_type_ids, cu_seqlens);
        candle_core::bail!("this encoder family has no unpadded (packed) forward; use forward")
    }

    /// The hidden size `H`.
    fn hidden_size(&self) -> usize;

    /// The most tokens one input may have.
    fn max_positions(&self) -> usize;
}

/// A sequence classifier (`*ForSequenceClassification`: a cross-encoder reranker with one
/// label, a text classifier with several): token ids in, one row of logits per input out.
/// Immutable and `Send + Sync`.
pub trait SequenceClassifier: Send + Sync {
    /// Logits `[B, num_labels]` for right-padded `input_ids` `[B, T]` whose rows have `lengths`
    /// real tokens (token types where the family has them: the pair's second segment).
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor>;

    /// The number of labels (logits per input).
    fn num_labels(&self) -> usize;

    /// The most tokens one input may have.
    fn max_positions(&self) -> usize;
}

/// An image classifier: a preprocessed NCHW batch in, one row of logits per image out
/// (torchvision ResNets, ViT). Immutable and `Send + Sync`.
pub trait ImageClassifier: Send + Sync {
    /// Logits `[B, num_classes]` for preprocessed pixels `[B, 3, H, W]` in the model's dtype.
    fn forward(&self, nchw: &Tensor) -> Result<Tensor>;

    /// The number of classes (logits per image).
    fn num_classes(&self) -> usize;

    /// The `(height, width)` the model takes, or `None` when any size works (a ResNet's
    /// adaptive pooling).
    fn image_size(&self) -> Option<(usize, usize)>;
}

/// `config.json`'s label count as transformers' `PretrainedConfig` reads it: `num_labels`
/// when present, else the size of `id2label`, else 2.
pub fn num_labels(config: &serde_json::Value) -> Result2<usize> {
    let n = match (config.get("num_labels"), config.get("id2label")) {
        (Some(v), _) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| LoadError::BadConfig {
                family: "sequence-classification",
                reason: "num_labels is not a non-negative integer".into(),
            })?,
        (None, Some(serde_json::Value::Object(m))) => m.len(),
        (None, _) => 2,
    };
    if n == 0 {
        return Err(ConfigError::Unsupported(
            "num_labels is 0 (id2label is empty): a classifier needs at least one label".into(),
        )
        .into());
    }
    Ok(n)
}

/// Loads a text encoder family.
pub type EncoderLoader = fn(&LoadContext) -> Result2<Box<dyn TextEncoder>>;
/// Loads a sequence-classification head and its encoder.
pub type ClassifierLoader = fn(&LoadContext) -> Result2<Box<dyn SequenceClassifier>>;
/// Loads an image classifier from a model folder.
pub type ImageLoader = fn(&LoadContext) -> Result2<Box<dyn ImageClassifier>>;
/// Loads a CLIP model (both towers and projections).
pub type ClipLoader = fn(&LoadContext) -> Result2<Box<crate::clip::ClipModel>>;
/// Loads a causal language model family.
pub type DecoderLoader = fn(&LoadContext) -> Result2<Box<dyn CausalLm>>;

/// LayerNorm `weight` and `bias` of size `hidden` under `vb`.
pub fn layer_norm(vb: VarBuilder, hidden: usize) -> Result<NormParams> {
    let w = vb.get(hidden, "weight")?;
    let b = vb.get(hidden, "bias")?;
    NormParams::layer_norm(Some(&w), Some(&b))
}

/// RMSNorm `weight` of size `hidden` under `vb`.
pub fn rms_norm(vb: VarBuilder, hidden: usize) -> Result<NormParams> {
    NormParams::rms_norm(Some(&vb.get(hidden, "weight")?))
}
