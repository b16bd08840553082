//! Sequence classification: a `*ForSequenceClassification` model folder (BERT, RoBERTa,
//! XLM-RoBERTa) and its `tokenizer.json` — cross-encoder reranking of (query, document) pairs as
//! sentence-transformers' `CrossEncoder.predict` computes it, and single-text classification
//! with the labels of `config.json`'s `id2label`. Loaded once, `Send + Sync`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use tokenizers::{EncodeInput, Tokenizer};
use torchless_models::SequenceClassifier;

use crate::encoder::{load_tokenizer, padded, Batch};
use crate::error::{shown, Error, Result};
use crate::folder::{self, read_json};
use crate::registry::{LoadOptions, Source, Task};

/// Inputs per forward pass.
const BATCH: usize = 32;

/// What [`TextClassifier::score_pairs`] / [`TextClassifier::classify`] apply to the logits: the
/// `CrossEncoder`'s `activation_fn`, read from the folder as sentence-transformers does
/// (`config_sentence_transformers.json` `activation_fn`, else `config.json`
/// `sentence_transformers.activation_fn` or `sbert_ce_default_activation_function`), by default
/// `Sigmoid` with one label and `Identity` with several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreActivation {
    /// `torch.nn.Identity`: the raw logits.
    Identity,
    /// `torch.nn.Sigmoid`.
    Sigmoid,
    /// `torch.nn.Tanh`.
    Tanh,
}

impl ScoreActivation {
    /// Applies it to one logit.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            ScoreActivation::Identity => x,
            ScoreActivation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ScoreActivation::Tanh => x.tanh(),
        }
    }

    /// Its `torch.nn` name (`Sigmoid`).
    pub fn name(self) -> &'static str {
        match self {
            ScoreActivation::Identity => "Identity",
            ScoreActivation::Sigmoid => "Sigmoid",
            ScoreActivation::Tanh => "Tanh",
        }
    }
}

/// A `*ForSequenceClassification` model: a cross-encoder reranker (one label) or a text
/// classifier (several).
pub struct TextClassifier {
    model: Box<dyn SequenceClassifier>,
    tokenizer: Tokenizer,
    id2label: Vec<String>,
    activation: ScoreActivation,
    name: String,
    device: Device,
}

#[derive(Deserialize, Default)]
struct StConfig {
    #[serde(default)]
    activation_fn: Option<String>,
    #[serde(default)]
    max_seq_length: Option<usize>,
}

#[derive(Deserialize, Default)]
struct TokenizerConfig {
    #[serde(default)]
    model_max_length: Option<f64>,
}

fn optional<T: Default + for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Result<T> {
    match folder::member(dir, name)? {
        Some(p) => read_json(&p),
        None => Ok(T::default()),
    }
}

impl TextClassifier {
    /// Loads a model folder whose `config.json` names a `*ForSequenceClassification`
    /// architecture of a supported `model_type`: the weights, `tokenizer.json` (inputs longer
    /// than `sentence_bert_config.json`'s `max_seq_length`, else `tokenizer_config.json`'s
    /// `model_max_length`, else the model's positions, are truncated longest-first), the
    /// labels (`id2label`) and the score activation ([`ScoreActivation`]).
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let source = Source::open(dir, Task::SequenceClassify, opts)?;
        let model = source.sequence_classifier()?;
        let st: StConfig = optional(dir, "config_sentence_transformers.json")?;
        let sb: StConfig = optional(dir, "sentence_bert_config.json")?;
        let tc: TokenizerConfig = optional(dir, "tokenizer_config.json")?;
        let max = model.max_positions();
        let limit = sb
            .max_seq_length
            .or_else(|| {
                tc.model_max_length
                    .filter(|m| (1.0..1e12).contains(m))
                    .map(|m| m as usize)
            })
            .unwrap_or(max)
            .min(max);
        let tokenizer = load_tokenizer(dir, limit)?;
        let n = model.num_labels();
        let id2label = labels(&source.config, n);
        let activation = activation(&source, st.activation_fn.as_deref(), n)?;
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(TextClassifier {
            model,
            tokenizer,
            id2label,
            activation,
            name,
            device: source.device.clone(),
        })
    }

    /// The folder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logits per input (1 for a reranker).
    pub fn num_labels(&self) -> usize {
        self.model.num_labels()
    }

    /// The label names, by index (`config.json`'s `id2label`; `LABEL_i` where it has none).
    pub fn id2label(&self) -> &[String] {
        &self.id2label
    }

    /// The activation [`score_pairs`](Self::score_pairs) and [`classify`](Self::classify) apply.
    pub fn activation(&self) -> ScoreActivation {
        self.activation
    }

    /// The longest input in tokens (longer ones are truncated, longest segment first).
    pub fn max_tokens(&self) -> usize {
        self.tokenizer
            .get_truncation()
            .map_or(self.model.max_positions(), |t| t.max_length)
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Tokenizes (query, document) pairs as one right-padded batch (`[CLS] q [SEP] d [SEP]`,
    /// `<s> q </s></s> d </s>`: the tokenizer's pair template), truncated.
    pub fn tokenize_pairs(&self, pairs: &[(&str, &str)]) -> Result<Batch> {
        self.encode(pairs.iter().map(|&p| EncodeInput::from(p)).collect())
    }

    /// Tokenizes single texts as one right-padded batch, truncated.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Batch> {
        self.encode(texts.iter().map(|&t| EncodeInput::from(t)).collect())
    }

    /// Raw logits `[N][num_labels]` of (query, document) pairs, in input order.
    pub fn logits_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(BATCH) {
            out.extend(self.logits_of(&self.tokenize_pairs(chunk)?)?);
        }
        Ok(out)
    }

    /// `CrossEncoder.predict(pairs)`: the logits of each pair with the folder's
    /// [`activation`](Self::activation) applied (a sigmoid relevance in (0, 1) for a one-label
    /// reranker), in input order.
    pub fn score_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Vec<f32>>> {
        Ok(self.activate(self.logits_pairs(pairs)?))
    }

    /// Raw logits `[N][num_labels]` of single texts, in input order.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.logits_of(&self.tokenize(chunk)?)?);
        }
        Ok(out)
    }

    /// Scores of single texts with the folder's [`activation`](Self::activation) applied, as
    /// `CrossEncoder.predict(texts)`; [`softmax`] and [`id2label`](Self::id2label) name the
    /// classes.
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self.activate(self.logits(texts)?))
    }

    fn activate(&self, mut rows: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        for x in rows.iter_mut().flatten() {
            *x = self.activation.apply(*x);
        }
        rows
    }

    fn encode(&self, inputs: Vec<EncodeInput>) -> Result<Batch> {
        let encs = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(padded(&encs.iter().collect::<Vec<_>>()))
    }

    fn logits_of(&self, batch: &Batch) -> Result<Vec<Vec<f32>>> {
        let b = batch.input_ids.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let t = batch.input_ids[0].len();
        let flat = |v: &[Vec<u32>]| v.iter().flatten().copied().collect::<Vec<u32>>();
        let ids = Tensor::from_vec(flat(&batch.input_ids), (b, t), &self.device)?;
        let types = Tensor::from_vec(flat(&batch.token_type_ids), (b, t), &self.device)?;
        let logits = self.model.forward(&ids, Some(&types), &batch.lengths)?;
        Ok(logits
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2()?)
    }
}

/// Softmax over one row of logits (the class probabilities of a multi-label classifier).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|x| (x - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// `id2label` as a list of `n` names (`LABEL_i` for any index it lacks).
pub(crate) fn labels(config: &serde_json::Value, n: usize) -> Vec<String> {
    let map = config.get("id2label").and_then(|v| v.as_object());
    (0..n)
        .map(|i| {
            map.and_then(|m| m.get(&i.to_string()))
                .and_then(|v| v.as_str())
                .map_or_else(|| format!("LABEL_{i}"), str::to_string)
        })
        .collect()
}

/// The `CrossEncoder` activation: the first `torch.`-path among the folder's declarations
/// (sentence-transformers ignores other paths without `trust_remote_code`), else its default.
fn activation(
    source: &Source,
    st_config: Option<&str>,
    num_labels: usize,
) -> Result<ScoreActivation> {
    let config_json = source
        .config
        .get("sentence_transformers")
        .and_then(|v| v.get("activation_fn"))
        .and_then(|v| v.as_str());
    let legacy = source
        .config
        .get("sbert_ce_default_activation_function")
        .and_then(|v| v.as_str());
    let declared = [st_config, config_json, legacy]
        .into_iter()
        .flatten()
        .find(|p| p.starts_with("torch."));
    let Some(path) = declared else {
        return Ok(if num_labels == 1 {
            ScoreActivation::Sigmoid
        } else {
            ScoreActivation::Identity
        });
    };
    match path.rsplit('.').next() {
        Some("Sigmoid") => Ok(ScoreActivation::Sigmoid),
        Some("Identity") => Ok(ScoreActivation::Identity),
        Some("Tanh") => Ok(ScoreActivation::Tanh),
        _ => Err(Error::Config {
            file: source.config_path.clone(),
            reason: format!(
                "activation_fn {} is not supported (supported: torch.nn Sigmoid, Identity, Tanh)",
                shown(path)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn text_classifier_is_send_and_sync() {
        assert_send_sync::<TextClassifier>();
    }

    #[test]
    fn labels_and_activations() {
        let c = serde_json::json!({"id2label": {"0": "neg", "2": "pos"}});
        assert_eq!(labels(&c, 3), ["neg", "LABEL_1", "pos"]);
        assert!((ScoreActivation::Sigmoid.apply(0.0) - 0.5).abs() < 1e-7);
        let p = softmax(&[1.0, 1.0]);
        assert!((p[0] - 0.5).abs() < 1e-7);
    }
}
