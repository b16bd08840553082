//! DistilBERT encoders (distilbert-base, the `msmarco-distilbert-*` / `distiluse-*`
//! sentence-transformers models), mirroring Hugging Face
//! `transformers/models/distilbert/modeling_distilbert.py` (`Embeddings`,
//! `DistilBertSelfAttention`, `FFN`, `TransformerBlock`, `Transformer`, `DistilBertModel`).
//! The math is BERT's post-norm layer under other names (`q_lin`/`k_lin`/`v_lin`/`out_lin`,
//! `sa_layer_norm`, `ffn.lin1`/`lin2`, `output_layer_norm`) and embeddings without token types,
//! so the weights are loaded into [`BertModel`]'s fused structures: Q/K/V fused at load, flash
//! attention, add+LayerNorm, bias+activation, and the BERT embedding kernel with a one-row zero
//! token-type table (token type ids are ignored, as `DistilBertModel` has none). LayerNorm eps is
//! fixed at 1e-12 upstream. `DistilBertModel` sits at the root, `DistilBertFor*` under
//! `distilbert.`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use torchless_kernels::embeddings::BertEmbeddingTables;

use crate::bert::{BertConfig, BertModel, Layer};
use crate::error::{fits, nonzero, ConfigError, ConfigResult};
use crate::family::{layer_norm, LoadContext, Result2, TextEncoder};
use crate::{hf_activation, Linear};

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["distilbert"];

/// Where the tensors can sit: `DistilBertModel` at the root, `DistilBertFor*` under
/// `distilbert.`.
pub const PREFIXES: &[&str] = &["", "distilbert."];

/// DistilBERT's LayerNorm epsilon (hard-coded in `modeling_distilbert.py`, not in the config).
const EPS: f64 = 1e-12;

/// `config.json` of a DistilBERT model, as Hugging Face writes it (defaults: `DistilBertConfig`).
#[derive(Debug, Clone, Deserialize)]
pub struct RawDistilBertConfig {
    /// Vocabulary size.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Hidden size.
    #[serde(default = "default_dim")]
    pub dim: usize,
    /// Number of layers.
    #[serde(default = "default_layers")]
    pub n_layers: usize,
    /// Attention heads.
    #[serde(default = "default_heads")]
    pub n_heads: usize,
    /// FFN size.
    #[serde(default = "default_hidden_dim")]
    pub hidden_dim: usize,
    /// FFN activation (`gelu`, `relu`, ...).
    #[serde(default = "default_act")]
    pub activation: String,
    /// Position table size.
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// Whether the position table was initialised with sinusoids. The table is a saved
    /// parameter either way (`Embeddings.position_embeddings.weight`), so it is read as is.
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
}

fn default_vocab() -> usize {
    30522
}
fn default_dim() -> usize {
    768
}
fn default_layers() -> usize {
    6
}
fn default_heads() -> usize {
    12
}
fn default_hidden_dim() -> usize {
    3072
}
fn default_act() -> String {
    "gelu".into()
}
fn default_positions() -> usize {
    512
}

impl RawDistilBertConfig {
    /// Checks the configuration, naming the field at fault.
    pub fn into_config(self) -> ConfigResult<BertConfig> {
        let vocab_size = nonzero("vocab_size", self.vocab_size)?;
        let hidden = nonzero("dim", self.dim)?;
        let heads = nonzero("n_heads", self.n_heads)?;
        let intermediate = nonzero("hidden_dim", self.hidden_dim)?;
        let max_positions = nonzero("max_position_embeddings", self.max_position_embeddings)?;
        if hidden % heads != 0 {
            return Err(ConfigError::Unsupported(format!(
                "dim {hidden} is not a multiple of n_heads {heads}"
            )));
        }
        fits("vocab_size", vocab_size, &[vocab_size, hidden])?;
        fits(
            "max_position_embeddings",
            max_positions,
            &[max_positions, hidden],
        )?;
        fits("hidden_dim", intermediate, &[intermediate, hidden])?;
        let act = hf_activation(&self.activation)?;
        Ok(BertConfig {
            vocab_size,
            hidden,
            layers: self.n_layers,
            heads,
            intermediate,
            act,
            max_positions,
            type_vocab: 1,
            eps: EPS,
        })
    }
}

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_encoder(ctx: &LoadContext) -> Result2<Box<dyn TextEncoder>> {
    let config = ctx
        .config::<RawDistilBertConfig>("DistilBERT")?
        .into_config()?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.word_embeddings.weight", "DistilBERT")?;
    Ok(Box::new(DistilBertModel::load(ctx.under(prefix), config)?))
}

// modeling_distilbert.py: Embeddings (word + position, LayerNorm; no token types)
fn load_embeddings(vb: VarBuilder, c: &BertConfig) -> Result<BertEmbeddingTables> {
    let word = vb
        .pp("word_embeddings")
        .get((c.vocab_size, c.hidden), "weight")?;
    let pos = vb
        .pp("position_embeddings")
        .get((c.max_positions, c.hidden), "weight")?;
    let typ = Tensor::zeros((1, c.hidden), word.dtype(), word.device())?;
    let ln = vb.pp("LayerNorm");
    let w = ln.get(c.hidden, "weight")?;
    let b = ln.get(c.hidden, "bias")?;
    BertEmbeddingTables::new(&word, &pos, &typ, &w, &b, c.eps)
}

// modeling_distilbert.py: TransformerBlock (DistilBertSelfAttention + sa_layer_norm, FFN +
// output_layer_norm): BERT's post-norm layer.
fn load_layer(vb: VarBuilder, c: &BertConfig) -> Result<Layer> {
    let h = c.hidden;
    let sa = vb.pp("attention");
    let ffn = vb.pp("ffn");
    Ok(Layer {
        qkv: Linear::load_fused(
            &[
                (sa.pp("q_lin"), h),
                (sa.pp("k_lin"), h),
                (sa.pp("v_lin"), h),
            ],
            h,
            true,
        )?,
        attn_out: Linear::load(sa.pp("out_lin"), h, h, true)?,
        attn_ln: layer_norm(vb.pp("sa_layer_norm"), h)?,
        inter: Linear::load(ffn.pp("lin1"), h, c.intermediate, true)?,
        out: Linear::load(ffn.pp("lin2"), c.intermediate, h, true)?,
        out_ln: layer_norm(vb.pp("output_layer_norm"), h)?,
    })
}

/// `DistilBertModel`: the encoder's last hidden state.
pub struct DistilBertModel {
    encoder: BertModel,
}

impl DistilBertModel {
    /// Loads from `vb` (already positioned at the checkpoint's prefix).
    pub fn load(vb: VarBuilder, config: BertConfig) -> Result<Self> {
        let tables = load_embeddings(vb.pp("embeddings"), &config)?;
        let layers = (0..config.layers)
            .map(|i| load_layer(vb.pp("transformer").pp("layer").pp(i), &config))
            .collect::<Result<Vec<_>>>()?;
        Ok(DistilBertModel {
            encoder: BertModel::from_parts(tables, layers, config),
        })
    }

    /// Runs the encoder on right-padded `input_ids` `[B, T]` (u32) whose rows have `lengths`
    /// real tokens; returns `[B, T, H]`.
    pub fn forward(&self, input_ids: &Tensor, lengths: &[u32]) -> Result<Tensor> {
        self.encoder.forward(input_ids, None, lengths)
    }
}

impl TextEncoder for DistilBertModel {
    /// Token type ids are ignored: DistilBERT has no token-type embeddings.
    fn forward(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        DistilBertModel::forward(self, input_ids, lengths)
    }

    fn runs_packed(&self) -> bool {
        self.encoder.runs_packed()
    }

    /// Token type ids are ignored, as in [`forward`](TextEncoder::forward).
    fn forward_packed(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        cu_seqlens: &[u32],
    ) -> Result<Tensor> {
        self.encoder.forward_packed(input_ids, None, cu_seqlens)
    }

    fn hidden_size(&self) -> usize {
        self.encoder.config.hidden
    }

    fn max_positions(&self) -> usize {
        self.encoder.config.max_positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawDistilBertConfig {
        serde_json::from_str(
            r#"{"vocab_size": 10, "dim": 8, "n_layers": 1, "n_heads": 2, "hidden_dim": 16,
                "max_position_embeddings": 12, "activation": "gelu",
                "sinusoidal_pos_embds": false, "model_type": "distilbert"}"#,
        )
        .unwrap()
    }

    #[test]
    fn config_maps_onto_bert() {
        let c = raw().into_config().unwrap();
        assert_eq!((c.hidden, c.heads, c.intermediate), (8, 2, 16));
        assert_eq!((c.max_positions, c.type_vocab, c.eps), (12, 1, 1e-12));
        let d: RawDistilBertConfig = serde_json::from_str("{}").unwrap();
        let d = d.into_config().unwrap();
        assert_eq!((d.hidden, d.layers, d.max_positions), (768, 6, 512));
    }

    #[test]
    fn bad_configs_are_refused_by_field() {
        let mut r = raw();
        r.n_heads = 0;
        let e = r.into_config().unwrap_err().to_string();
        assert!(e.contains("n_heads"), "{e}");
        let mut r = raw();
        r.n_heads = 3;
        let e = r.into_config().unwrap_err().to_string();
        assert!(e.contains("not a multiple of n_heads"), "{e}");
        let mut r = raw();
        r.hidden_dim = 0;
        let e = r.into_config().unwrap_err().to_string();
        assert!(e.contains("hidden_dim"), "{e}");
        let mut r = raw();
        r.activation = "mish".into();
        let e = r.into_config().unwrap_err().to_string();
        assert!(e.contains("mish"), "{e}");
        let mut r = raw();
        r.vocab_size = usize::MAX;
        assert!(r.into_config().is_err());
    }
}
