//! RoBERTa and XLM-RoBERTa encoders (multilingual-e5, bge-m3, the XLM-R sentence-transformers
//! models), mirroring Hugging Face `transformers/models/roberta/modeling_roberta.py` and
//! `transformers/models/xlm_roberta/modeling_xlm_roberta.py`. The layers and weight names are
//! BERT's (`RobertaLayer` = `BertLayer`), so the encoder is [`BertModel`]; the one difference is
//! in `RobertaEmbeddings`: position ids are `padding_idx + 1 + cumsum(mask)`
//! (`create_position_ids_from_input_ids`), so for right-padded rows the real tokens take the
//! positions `pad_token_id + 1 ..= pad_token_id + T` of the table. Padded positions (which
//! PyTorch gives `padding_idx`) are masked out of attention and pooling, so the fused embedding
//! kernel reads the table from offset `pad_token_id + 1`, and the usable length is
//! `max_position_embeddings - pad_token_id - 1` (514 - 2 = 512 for XLM-R base).
//! `RobertaModel` sits at the root, `RobertaFor*` / `XLMRobertaFor*` under `roberta.`.

use candle_core::{Result, Tensor};
use serde::Deserialize;

use crate::bert::{BertConfig, BertModel, TanhHead};
use crate::error::{fits, non_negative, nonzero, ConfigError, ConfigResult};
use crate::family::{LoadContext, Result2, SequenceClassifier, TextEncoder};
use crate::hf_activation;

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["roberta", "xlm-roberta"];

/// Where the tensors can sit: `RobertaModel` at the root, `RobertaFor*` / `XLMRobertaFor*`
/// under `roberta.`, some sentence-transformers exports under `model.` or `encoder.`.
pub const PREFIXES: &[&str] = &["", "roberta.", "model.", "encoder."];

/// `config.json` of a (XLM-)RoBERTa model, as Hugging Face writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RawRobertaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN size.
    pub intermediate_size: usize,
    /// FFN activation (`gelu`, ...).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Position table size, the `pad_token_id + 1` offset included.
    pub max_position_embeddings: usize,
    /// Token type table size (1 for RoBERTa checkpoints).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// The padding id: real tokens' positions start at `pad_token_id + 1`.
    #[serde(default = "default_pad")]
    pub pad_token_id: usize,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_pad() -> usize {
    1
}

/// A checked (XLM-)RoBERTa configuration: the BERT encoder's, plus the position offset.
#[derive(Debug, Clone)]
pub struct RobertaConfig {
    /// The encoder (layers as BERT's).
    pub bert: BertConfig,
    /// Where real tokens' positions start in the position table (`pad_token_id + 1`).
    pub position_offset: usize,
}

impl RawRobertaConfig {
    /// Checks the configuration, naming the field at fault.
    pub fn into_config(self) -> ConfigResult<RobertaConfig> {
        let vocab_size = nonzero("vocab_size", self.vocab_size)?;
        let hidden = nonzero("hidden_size", self.hidden_size)?;
        let heads = nonzero("num_attention_heads", self.num_attention_heads)?;
        let intermediate = nonzero("intermediate_size", self.intermediate_size)?;
        let type_vocab = nonzero("type_vocab_size", self.type_vocab_size)?;
        let max_positions = nonzero("max_position_embeddings", self.max_position_embeddings)?;
        if hidden % heads != 0 {
            return Err(ConfigError::Unsupported(format!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
            )));
        }
        fits("vocab_size", vocab_size, &[vocab_size, hidden])?;
        fits(
            "max_position_embeddings",
            max_positions,
            &[max_positions, hidden],
        )?;
        fits("intermediate_size", intermediate, &[intermediate, hidden])?;
        let position_offset = self
            .pad_token_id
            .checked_add(1)
            .ok_or(ConfigError::TooLarge {
                field: "pad_token_id".into(),
                value: self.pad_token_id,
            })?;
        if max_positions <= position_offset {
            return Err(ConfigError::Unsupported(format!(
                "max_position_embeddings {max_positions} leaves no position after the \
                 pad_token_id + 1 = {position_offset} offset"
            )));
        }
        if let Some(p) = self.position_embedding_type.as_deref() {
            if p != "absolute" {
                return Err(ConfigError::Unsupported(format!(
                    "position_embedding_type {} is not supported (only \"absolute\")",
                    crate::error::shown(p)
                )));
            }
        }
        let act = hf_activation(&self.hidden_act)?;
        let eps = non_negative("layer_norm_eps", self.layer_norm_eps)?;
        Ok(RobertaConfig {
            bert: BertConfig {
                vocab_size,
                hidden,
                layers: self.num_hidden_layers,
                heads,
                intermediate,
                act,
                max_positions,
                type_vocab,
                eps,
            },
            position_offset,
        })
    }
}

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_encoder(ctx: &LoadContext) -> Result2<Box<dyn TextEncoder>> {
    let config = ctx.config::<RawRobertaConfig>("RoBERTa")?.into_config()?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.word_embeddings.weight", "RoBERTa")?;
    Ok(Box::new(RobertaModel::load(ctx.under(prefix), config)?))
}

/// `RobertaModel` / `XLMRobertaModel` without the pooler: the encoder's last hidden state.
pub struct RobertaModel {
    encoder: BertModel,
    position_offset: usize,
}

impl RobertaModel {
    /// Loads from `vb` (already positioned at the checkpoint's prefix).
    pub fn load(vb: candle_nn::VarBuilder, config: RobertaConfig) -> Result<Self> {
        Ok(RobertaModel {
            encoder: BertModel::load(vb, config.bert)?,
            position_offset: config.position_offset,
        })
    }

    /// Runs the encoder on right-padded `input_ids` `[B, T]` (u32) whose rows have `lengths`
    /// real tokens; returns `[B, T, H]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        self.encoder
            .forward_at(input_ids, token_type_ids, lengths, self.position_offset)
    }
}

impl TextEncoder for RobertaModel {
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        RobertaModel::forward(self, input_ids, token_type_ids, lengths)
    }

    fn runs_packed(&self) -> bool {
        self.encoder.runs_packed()
    }

    /// Each sequence's positions start at `pad_token_id + 1`, as for a right-padded row.
    fn forward_packed(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        cu_seqlens: &[u32],
    ) -> Result<Tensor> {
        self.encoder
            .forward_packed_at(input_ids, token_type_ids, cu_seqlens, self.position_offset)
    }

    fn hidden_size(&self) -> usize {
        self.encoder.config.hidden
    }

    fn max_positions(&self) -> usize {
        self.encoder.config.max_positions - self.position_offset
    }
}

/// `RobertaForSequenceClassification` / `XLMRobertaForSequenceClassification` (bge-reranker,
/// mxbai-rerank, XLM-R text classifiers): [`RobertaModel`] under `roberta.` (no pooler), then
/// `RobertaClassificationHead` at the root: `classifier.dense` + tanh on `<s>`, then
/// `classifier.out_proj`.
pub struct RobertaForSequenceClassification {
    roberta: RobertaModel,
    head: TanhHead,
}

impl RobertaForSequenceClassification {
    /// Loads from the checkpoint root `vb`, the encoder under `prefix`.
    pub fn load(
        vb: candle_nn::VarBuilder,
        prefix: &str,
        config: RobertaConfig,
        num_labels: usize,
    ) -> Result<Self> {
        let p = prefix.trim_end_matches('.');
        let enc = if p.is_empty() { vb.clone() } else { vb.pp(p) };
        let cls = vb.pp("classifier");
        let head = TanhHead::load(
            cls.pp("dense"),
            cls.pp("out_proj"),
            config.bert.hidden,
            num_labels,
        )?;
        Ok(RobertaForSequenceClassification {
            roberta: RobertaModel::load(enc, config)?,
            head,
        })
    }
}

impl SequenceClassifier for RobertaForSequenceClassification {
    fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        self.head
            .forward(&self.roberta.forward(input_ids, token_type_ids, lengths)?)
    }

    fn num_labels(&self) -> usize {
        self.head.num_labels()
    }

    fn max_positions(&self) -> usize {
        TextEncoder::max_positions(&self.roberta)
    }
}

/// The registry's loader for `(XLM)RobertaForSequenceClassification` folders: the encoder's
/// prefix decided from the keys (`roberta.`), the label count from `config.json`.
pub fn load_sequence_classifier(ctx: &LoadContext) -> Result2<Box<dyn SequenceClassifier>> {
    let config = ctx.config::<RawRobertaConfig>("RoBERTa")?.into_config()?;
    let num_labels = crate::family::num_labels(ctx.config)?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.word_embeddings.weight", "RoBERTa")?;
    Ok(Box::new(RobertaForSequenceClassification::load(
        ctx.vb.clone(),
        prefix,
        config,
        num_labels,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawRobertaConfig {
        serde_json::from_str(
            r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 12, "type_vocab_size": 1, "pad_token_id": 1,
                "layer_norm_eps": 1e-5, "model_type": "xlm-roberta"}"#,
        )
        .unwrap()
    }

    #[test]
    fn position_offset_is_pad_plus_one() {
        let c = raw().into_config().unwrap();
        assert_eq!(c.position_offset, 2);
        assert_eq!(c.bert.max_positions, 12);
    }

    #[test]
    fn bad_configs_are_refused_by_field() {
        let mut r = raw();
        r.max_position_embeddings = 2;
        let e = r.into_config().unwrap_err().to_string();
        assert!(e.contains("leaves no position"), "{e}");
        let mut r = raw();
        r.num_attention_heads = 0;
        let e = r.into_config().unwrap_err().to_string();
        assert!(e.contains("num_attention_heads"), "{e}");
        let mut r = raw();
        r.layer_norm_eps = -1.0;
        assert!(r.into_config().is_err());
        let mut r = raw();
        r.pad_token_id = usize::MAX;
        assert!(r.into_config().is_err());
    }
}
