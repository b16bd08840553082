//! ModernBERT encoders (`answerdotai/ModernBERT-*`, `nomic-ai/modernbert-embed-*`,
//! `Alibaba-NLP/gte-modernbert-*`), mirroring Hugging Face
//! `transformers/models/modernbert/modeling_modernbert.py` (`ModernBertEmbeddings`,
//! `ModernBertAttention`, `ModernBertMLP`, `ModernBertEncoderLayer`, `ModernBertModel`).
//! A pre-norm encoder: token embeddings + LayerNorm (no position table), rotary embeddings
//! (`global_rope_theta` on global layers, `local_rope_theta` on local ones), every
//! `global_attn_every_n_layers`-th layer global and the others seeing keys within
//! `local_attention / 2` positions either side, a GeGLU MLP (`Wi` = input ‖ gate,
//! `act(input) * gate`), `final_norm`; no biases by default, LayerNorms without bias, and the
//! first layer's `attn_norm` the identity. The fused attention kernels have no window, so
//! attention is unfused candle ops (as `gemma.rs`): f32 scores, padding and window mask,
//! softmax, values. Right-padded keys are masked, so real tokens match transformers' unpadded
//! run. `ModernBertModel` sits at the root, `ModernBertFor*` under `model.`.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;
use torchless_kernels::activation::{bias_act, Activation};
use torchless_kernels::norm::{add_layer_norm, add_norm, NormParams};
use torchless_kernels::rope::{rope_qk, RopeLayout, RopeTable};

use crate::error::{fits, nonzero, positive, shown, ConfigError, ConfigResult};
use crate::family::{LoadContext, Result2, SequenceClassifier, TextEncoder};
use crate::{hf_activation, Linear};

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["modernbert"];

/// Where the tensors can sit: `ModernBertModel` at the root, `ModernBertFor*` under `model.`.
pub const PREFIXES: &[&str] = &["", "model."];

/// `config.json` of a ModernBERT model, as the hub's checkpoints (`global_rope_theta`, ...) or
/// transformers 5's `save_pretrained` (`layer_types`, `rope_parameters`) write it (defaults:
/// `ModernBertConfig`).
#[derive(Debug, Clone, Deserialize)]
pub struct RawModernBertConfig {
    /// Vocabulary size.
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Hidden size.
    #[serde(default = "default_hidden")]
    pub hidden_size: usize,
    /// GeGLU size (`Wi` is twice this).
    #[serde(default = "default_intermediate")]
    pub intermediate_size: usize,
    /// Number of layers.
    #[serde(default = "default_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "default_heads")]
    pub num_attention_heads: usize,
    /// MLP activation.
    #[serde(default = "default_act")]
    pub hidden_activation: String,
    /// Longest input (the rotary table's size).
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    /// Whether the LayerNorms have a bias.
    #[serde(default)]
    pub norm_bias: bool,
    /// Whether `Wqkv` / attention `Wo` have a bias.
    #[serde(default)]
    pub attention_bias: bool,
    /// Whether `Wi` / MLP `Wo` have a bias.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Every n-th layer (from 0) is global, the others local (when `layer_types` is absent).
    #[serde(default = "default_every")]
    pub global_attn_every_n_layers: usize,
    /// The local window's total width: keys within `local_attention / 2` either side.
    #[serde(default = "default_local")]
    pub local_attention: usize,
    /// RoPE base of the global layers (when `rope_parameters` is absent).
    pub global_rope_theta: Option<f64>,
    /// RoPE base of the local layers (when `rope_parameters` is absent).
    pub local_rope_theta: Option<f64>,
    /// Per layer `full_attention` / `sliding_attention` (transformers 5).
    pub layer_types: Option<Vec<String>>,
    /// Per layer type `{rope_type, rope_theta}` (transformers 5).
    pub rope_parameters: Option<Value>,
    /// `ModernBertForSequenceClassification`'s pooling: `cls` (the first token) or `mean`.
    #[serde(default = "default_pooling")]
    pub classifier_pooling: String,
    /// Whether the classification head's `dense` has a bias.
    #[serde(default)]
    pub classifier_bias: bool,
    /// The classification head's activation.
    #[serde(default = "default_act")]
    pub classifier_activation: String,
}

fn default_pooling() -> String {
    "cls".into()
}

fn default_vocab() -> usize {
    50368
}
fn default_hidden() -> usize {
    768
}
fn default_intermediate() -> usize {
    1152
}
fn default_layers() -> usize {
    22
}
fn default_heads() -> usize {
    12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_positions() -> usize {
    8192
}
fn default_eps() -> f64 {
    1e-5
}
fn default_every() -> usize {
    3
}
fn default_local() -> usize {
    128
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct ModernBertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden: usize,
    /// GeGLU size.
    pub intermediate: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP activation.
    pub act: Activation,
    /// Longest input.
    pub max_positions: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// LayerNorm bias.
    pub norm_bias: bool,
    /// Attention biases.
    pub attention_bias: bool,
    /// MLP biases.
    pub mlp_bias: bool,
    /// Per layer: `Some(half_window)` (keys with `|i - j| <= half_window`) or `None` (global).
    pub windows: Vec<Option<usize>>,
    /// RoPE base of the global layers.
    pub global_theta: f64,
    /// RoPE base of the local layers.
    pub local_theta: f64,
}

/// `rope_parameters[kind].rope_theta` (default rotary only), else `fallback`.
fn rope_theta(p: Option<&Value>, kind: &str, fallback: f64) -> ConfigResult<f64> {
    let Some(entry) = p.and_then(|p| p.get(kind)) else {
        return Ok(fallback);
    };
    let field = format!("rope_parameters.{kind}");
    if let Some(t) = entry.get("rope_type") {
        if t.as_str() != Some("default") {
            return Err(ConfigError::Unsupported(format!(
                "{field}.rope_type {} is not supported (only \"default\")",
                shown(&t.to_string())
            )));
        }
    }
    match entry.get("rope_theta") {
        None => Ok(fallback),
        Some(v) => match v.as_f64() {
            Some(x) => positive(&format!("{field}.rope_theta"), x),
            None => Err(ConfigError::Unsupported(format!(
                "{field}.rope_theta is not a number"
            ))),
        },
    }
}

impl RawModernBertConfig {
    /// Checks the configuration, naming the field at fault.
    pub fn into_config(self) -> ConfigResult<ModernBertConfig> {
        let vocab_size = nonzero("vocab_size", self.vocab_size)?;
        let hidden = nonzero("hidden_size", self.hidden_size)?;
        let heads = nonzero("num_attention_heads", self.num_attention_heads)?;
        let intermediate = nonzero("intermediate_size", self.intermediate_size)?;
        let max_positions = nonzero("max_position_embeddings", self.max_position_embeddings)?;
        if hidden % heads != 0 {
            return Err(ConfigError::Unsupported(format!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
            )));
        }
        if (hidden / heads) % 2 != 0 {
            return Err(ConfigError::Unsupported(format!(
                "head size {} (hidden_size / num_attention_heads) is odd: rotary needs it even",
                hidden / heads
            )));
        }
        fits("vocab_size", vocab_size, &[vocab_size, hidden])?;
        fits(
            "intermediate_size",
            intermediate,
            &[intermediate, 2, hidden],
        )?;
        fits(
            "max_position_embeddings",
            max_positions,
            &[max_positions, max_positions, heads],
        )?;
        let eps = positive("norm_eps", self.norm_eps)?;
        let act = hf_activation(&self.hidden_activation)?;
        let half = nonzero("local_attention", self.local_attention)? / 2;
        let windows = match &self.layer_types {
            Some(types) => {
                if types.len() != self.num_hidden_layers {
                    return Err(ConfigError::Unsupported(format!(
                        "layer_types has {} entries for num_hidden_layers {}",
                        types.len(),
                        self.num_hidden_layers
                    )));
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        "full_attention" => Ok(None),
                        "sliding_attention" => Ok(Some(half)),
                        other => Err(ConfigError::Unsupported(format!(
                            "layer_types entry {} is not supported",
                            shown(other)
                        ))),
                    })
                    .collect::<ConfigResult<Vec<_>>>()?
            }
            None => {
                let every = nonzero(
                    "global_attn_every_n_layers",
                    self.global_attn_every_n_layers,
                )?;
                (0..self.num_hidden_layers)
                    .map(|i| (i % every != 0).then_some(half))
                    .collect()
            }
        };
        let global = positive(
            "global_rope_theta",
            self.global_rope_theta.unwrap_or(160_000.0),
        )?;
        let local = positive(
            "local_rope_theta",
            self.local_rope_theta.unwrap_or(10_000.0),
        )?;
        let p = self.rope_parameters.as_ref();
        Ok(ModernBertConfig {
            vocab_size,
            hidden,
            intermediate,
            heads,
            act,
            max_positions,
            eps,
            norm_bias: self.norm_bias,
            attention_bias: self.attention_bias,
            mlp_bias: self.mlp_bias,
            windows,
            global_theta: rope_theta(p, "full_attention", global)?,
            local_theta: rope_theta(p, "sliding_attention", local)?,
        })
    }
}

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_encoder(ctx: &LoadContext) -> Result2<Box<dyn TextEncoder>> {
    let config = ctx
        .config::<RawModernBertConfig>("ModernBERT")?
        .into_config()?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.tok_embeddings.weight", "ModernBERT")?;
    Ok(Box::new(ModernBertModel::load(ctx.under(prefix), config)?))
}

/// How `ModernBertForSequenceClassification` pools the last hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifierPooling {
    /// The first token (`[CLS]`).
    Cls,
    /// The mean over the real tokens.
    Mean,
}

/// `ModernBertForSequenceClassification` (cross-encoder rerankers such as
/// `Alibaba-NLP/gte-reranker-modernbert-base`, text classifiers): [`ModernBertModel`] under
/// `model.`, the pooled last hidden state (`classifier_pooling`), then `head` (`dense`, the
/// `classifier_activation`, `norm`) and the `classifier` linear layer
/// (modeling_modernbert.py: `ModernBertPredictionHead`, `ModernBertForSequenceClassification`).
pub struct ModernBertForSequenceClassification {
    model: ModernBertModel,
    dense: Linear,
    act: Activation,
    norm: NormParams,
    classifier: Linear,
    pooling: ClassifierPooling,
    num_labels: usize,
}

/// The checked head settings of `ModernBertForSequenceClassification`.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierHead {
    /// How the last hidden state is pooled.
    pub pooling: ClassifierPooling,
    /// `classifier_activation`.
    pub act: Activation,
    /// Whether `head.dense` has a bias (`classifier_bias`).
    pub bias: bool,
}

impl RawModernBertConfig {
    /// The classification head's settings, naming the field at fault.
    pub fn classifier_head(&self) -> ConfigResult<ClassifierHead> {
        let pooling = match self.classifier_pooling.as_str() {
            "cls" => ClassifierPooling::Cls,
            "mean" => ClassifierPooling::Mean,
            other => {
                return Err(ConfigError::Unsupported(format!(
                    "classifier_pooling {} is not supported (cls, mean)",
                    shown(other)
                )))
            }
        };
        Ok(ClassifierHead {
            pooling,
            act: hf_activation(&self.classifier_activation)?,
            bias: self.classifier_bias,
        })
    }
}

impl ModernBertForSequenceClassification {
    /// Loads from the checkpoint root `vb`, the encoder under `prefix`.
    pub fn load(
        vb: VarBuilder,
        prefix: &str,
        config: ModernBertConfig,
        head: ClassifierHead,
        num_labels: usize,
    ) -> Result<Self> {
        let h = config.hidden;
        let p = prefix.trim_end_matches('.');
        let enc = if p.is_empty() { vb.clone() } else { vb.pp(p) };
        Ok(ModernBertForSequenceClassification {
            dense: Linear::load(vb.pp("head").pp("dense"), h, h, head.bias)?,
            act: head.act,
            norm: norm(vb.pp("head").pp("norm"), &config)?,
            classifier: Linear::load(vb.pp("classifier"), h, num_labels, true)?,
            pooling: head.pooling,
            num_labels,
            model: ModernBertModel::load(enc, config)?,
        })
    }
}

impl SequenceClassifier for ModernBertForSequenceClassification {
    /// Token type ids are ignored: ModernBERT has none (a pair is `[CLS] a [SEP] b [SEP]`).
    fn forward(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        let hidden = self.model.forward(input_ids, lengths)?;
        let (b, t, h) = hidden.dims3()?;
        let pooled = match self.pooling {
            ClassifierPooling::Cls => hidden.narrow(1, 0, 1)?,
            ClassifierPooling::Mean => {
                // The padding mask's weights 1/len on real tokens, 0 on padding: [B, 1, T].
                let mut w = vec![0f32; b * t];
                for (row, &len) in w.chunks_exact_mut(t).zip(lengths) {
                    let len = (len as usize).clamp(1, t);
                    row[..len].fill(1.0 / len as f32);
                }
                let w = Tensor::from_vec(w, (b, 1, t), hidden.device())?;
                w.matmul(&hidden.to_dtype(DType::F32)?)?
                    .to_dtype(hidden.dtype())?
            }
        };
        let x = self
            .dense
            .forward(&pooled.reshape((b, 1, h))?.contiguous()?)?;
        let x = bias_act(&x, None, self.act)?;
        let x = add_layer_norm(&x, None, &self.norm, self.model.config.eps)?;
        self.classifier.forward(&x)?.reshape((b, self.num_labels))
    }

    fn num_labels(&self) -> usize {
        self.num_labels
    }

    fn max_positions(&self) -> usize {
        self.model.config.max_positions
    }
}

/// The registry's loader for `ModernBertForSequenceClassification` folders.
pub fn load_sequence_classifier(ctx: &LoadContext) -> Result2<Box<dyn SequenceClassifier>> {
    let raw = ctx.config::<RawModernBertConfig>("ModernBERT")?;
    let head = raw.classifier_head()?;
    let config = raw.into_config()?;
    let num_labels = crate::family::num_labels(ctx.config)?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.tok_embeddings.weight", "ModernBERT")?;
    Ok(Box::new(ModernBertForSequenceClassification::load(
        ctx.vb.clone(),
        prefix,
        config,
        head,
        num_labels,
    )?))
}

/// `nn.LayerNorm(hidden, bias=norm_bias)`.
fn norm(vb: VarBuilder, c: &ModernBertConfig) -> Result<NormParams> {
    let w = vb.get(c.hidden, "weight")?;
    let b = if c.norm_bias {
        Some(vb.get(c.hidden, "bias")?)
    } else {
        None
    };
    NormParams::layer_norm(Some(&w), b.as_ref())
}

/// `ModernBertRotaryEmbedding` (default rotary): `cos`/`sin` of `p / theta^(2i/D)`, f32.
fn rope_table(theta: f64, head_dim: usize, n: usize, device: &Device) -> Result<RopeTable> {
    let freqs: Vec<f32> = (0..head_dim / 2)
        .map(|i| (1.0 / theta.powf((2 * i) as f64 / head_dim as f64)) as f32)
        .collect();
    let half = freqs.len();
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in 0..n {
        for &f in &freqs {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    RopeTable::new(
        &Tensor::from_vec(cos, (n, half), device)?,
        &Tensor::from_vec(sin, (n, half), device)?,
    )
}

// modeling_modernbert.py: ModernBertEncoderLayer (attn_norm, ModernBertAttention, mlp_norm,
// ModernBertMLP).
struct Layer {
    attn_norm: Option<NormParams>,
    wqkv: Linear,
    attn_out: Linear,
    mlp_norm: NormParams,
    wi: Linear,
    mlp_out: Linear,
    window: Option<usize>,
}

impl Layer {
    fn load(vb: VarBuilder, c: &ModernBertConfig, i: usize) -> Result<Self> {
        let h = c.hidden;
        let attn = vb.pp("attn");
        let mlp = vb.pp("mlp");
        Ok(Layer {
            attn_norm: if i == 0 {
                None
            } else {
                Some(norm(vb.pp("attn_norm"), c)?)
            },
            wqkv: Linear::load(attn.pp("Wqkv"), h, 3 * h, c.attention_bias)?,
            attn_out: Linear::load(attn.pp("Wo"), h, h, c.attention_bias)?,
            mlp_norm: norm(vb.pp("mlp_norm"), c)?,
            wi: Linear::load(mlp.pp("Wi"), h, 2 * c.intermediate, c.mlp_bias)?,
            mlp_out: Linear::load(mlp.pp("Wo"), c.intermediate, h, c.mlp_bias)?,
            window: c.windows.get(i).copied().flatten(),
        })
    }
}

/// `ModernBertModel`: the encoder's last hidden state (after `final_norm`).
pub struct ModernBertModel {
    tok_embeddings: Tensor,
    embed_norm: NormParams,
    layers: Vec<Layer>,
    final_norm: NormParams,
    rope_global: RopeTable,
    rope_local: RopeTable,
    /// The configuration.
    pub config: ModernBertConfig,
}

impl ModernBertModel {
    /// Loads from `vb` (already positioned at the checkpoint's prefix).
    pub fn load(vb: VarBuilder, config: ModernBertConfig) -> Result<Self> {
        let c = &config;
        let emb = vb.pp("embeddings");
        let tok_embeddings = emb
            .pp("tok_embeddings")
            .get((c.vocab_size, c.hidden), "weight")?;
        let layers = (0..c.windows.len())
            .map(|i| Layer::load(vb.pp("layers").pp(i), c, i))
            .collect::<Result<Vec<_>>>()?;
        let d = c.hidden / c.heads;
        let device = tok_embeddings.device().clone();
        Ok(ModernBertModel {
            embed_norm: norm(emb.pp("norm"), c)?,
            final_norm: norm(vb.pp("final_norm"), c)?,
            layers,
            rope_global: rope_table(c.global_theta, d, c.max_positions, &device)?,
            rope_local: rope_table(c.local_theta, d, c.max_positions, &device)?,
            tok_embeddings,
            config,
        })
    }

    /// The additive mask `[B, 1, T, T]`: key `j` of row `b` is seen by query `i` when
    /// `j < lengths[b]` and, on a local layer, `|i - j| <= half`. A padded query sees the row's
    /// real keys (its output is not used, but must stay finite).
    fn mask(lengths: &[u32], t: usize, half: Option<usize>, device: &Device) -> Result<Tensor> {
        let mut m = Vec::with_capacity(lengths.len() * t * t);
        for &len in lengths {
            let len = (len as usize).max(1);
            for i in 0..t {
                for j in 0..t {
                    let visible = j < len && (i >= len || half.is_none_or(|w| i.abs_diff(j) <= w));
                    m.push(if visible { 0f32 } else { f32::NEG_INFINITY });
                }
            }
        }
        Tensor::from_vec(m, (lengths.len(), 1, t, t), device)
    }

    /// `eager_attention_forward` on `q`/`k`/`v` `[B, H, T, D]` (f32 scores, mask, softmax);
    /// returns `[B, T, H·D]` in `q`'s dtype.
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, h, t, d) = q.dims4()?;
        let scale = 1.0 / (d as f64).sqrt();
        let qf = q.to_dtype(DType::F32)?.contiguous()?;
        let kf = k.to_dtype(DType::F32)?.contiguous()?;
        let vf = v.to_dtype(DType::F32)?.contiguous()?;
        let scores = (qf.matmul(&kf.t()?)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask)?)?;
        let ctx = probs.matmul(&vf)?.to_dtype(q.dtype())?;
        ctx.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))
    }

    /// Runs the encoder on right-padded `input_ids` `[B, T]` (u32) whose rows have `lengths`
    /// real tokens; returns `[B, T, H]`.
    pub fn forward(&self, input_ids: &Tensor, lengths: &[u32]) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = input_ids.dims2()?;
        if lengths.len() != b || lengths.iter().any(|&l| l as usize > t) {
            bail!("lengths {lengths:?} do not fit a batch of {b} rows of {t} tokens");
        }
        if t > c.max_positions {
            bail!(
                "{t} tokens exceed the model's {} positions",
                c.max_positions
            );
        }
        let ids = input_ids.to_dtype(DType::U32)?.flatten_all()?;
        if let Some(&bad) = ids
            .to_vec1::<u32>()?
            .iter()
            .find(|&&i| i as usize >= c.vocab_size)
        {
            bail!(
                "token id {bad} is outside the vocabulary of {}",
                c.vocab_size
            );
        }
        // modeling_modernbert.py: ModernBertEmbeddings (tok_embeddings, norm).
        let x = self
            .tok_embeddings
            .index_select(&ids, 0)?
            .reshape((b, t, c.hidden))?;
        let mut x = add_layer_norm(&x, None, &self.embed_norm, c.eps)?;
        let device = x.device().clone();
        let global_mask = Self::mask(lengths, t, None, &device)?;
        let local_mask = self.layers.iter().find_map(|l| l.window).map_or_else(
            || Ok(None),
            |w| Self::mask(lengths, t, Some(w), &device).map(Some),
        )?;
        let (h, d) = (c.heads, c.hidden / c.heads);
        for l in &self.layers {
            let normed = match &l.attn_norm {
                Some(p) => add_layer_norm(&x, None, p, c.eps)?,
                None => x.clone(),
            };
            // Wqkv's rows are q ‖ k ‖ v, each heads × head_dim.
            let qkv = l.wqkv.forward(&normed)?.reshape((b, t, 3, h, d))?;
            let part = |i: usize| -> Result<Tensor> {
                qkv.narrow(2, i, 1)?
                    .squeeze(2)?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (part(0)?, part(1)?, part(2)?);
            let (table, mask) = match (l.window, &local_mask) {
                (Some(_), Some(m)) => (&self.rope_local, m),
                _ => (&self.rope_global, &global_mask),
            };
            let (q, k) = rope_qk(&q, &k, table, 0, RopeLayout::HalfSplit)?;
            let a = l.attn_out.forward(&self.attention(&q, &k, &v, mask)?)?;
            let out = add_norm(&a, Some(&x), &l.mlp_norm, c.eps, true)?;
            let Some(sum) = out.sum else {
                bail!("add_norm returned no sum");
            };
            // ModernBertMLP: Wi → (input, gate), Wo(act(input) * gate).
            let io = l.wi.forward(&out.normed)?;
            let input = io.narrow(2, 0, c.intermediate)?.contiguous()?;
            let gate = io.narrow(2, c.intermediate, c.intermediate)?;
            let m = (bias_act(&input, None, c.act)? * gate)?;
            x = (sum + l.mlp_out.forward(&m)?)?;
        }
        add_layer_norm(&x, None, &self.final_norm, c.eps)
    }
}

impl TextEncoder for ModernBertModel {
    /// Token type ids are ignored: ModernBERT has none.
    fn forward(
        &self,
        input_ids: &Tensor,
        _token_type_ids: Option<&Tensor>,
        lengths: &[u32],
    ) -> Result<Tensor> {
        ModernBertModel::forward(self, input_ids, lengths)
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden
    }

    fn max_positions(&self) -> usize {
        self.config.max_positions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small config with the fields of `extra` (`, "field": value, ...`) set over it.
    fn raw(extra: &str) -> RawModernBertConfig {
        let mut base: Value = serde_json::from_str(
            r#"{"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 4,
                "num_attention_heads": 2, "intermediate_size": 12,
                "max_position_embeddings": 16, "global_attn_every_n_layers": 3,
                "local_attention": 8, "model_type": "modernbert"}"#,
        )
        .unwrap();
        let over: Value =
            serde_json::from_str(&format!("{{{}}}", extra.trim_start_matches(','))).unwrap();
        for (k, v) in over.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn hub_and_transformers5_configs_agree() {
        let c = raw("").into_config().unwrap();
        assert_eq!(c.windows, vec![None, Some(4), Some(4), None]);
        assert_eq!((c.global_theta, c.local_theta), (160_000.0, 10_000.0));
        assert!(!c.norm_bias && !c.attention_bias && !c.mlp_bias);
        let c = raw(
            r#", "layer_types": ["full_attention", "sliding_attention", "full_attention",
                "full_attention"], "rope_parameters": {"full_attention": {"rope_type": "default",
                "rope_theta": 5.0}, "sliding_attention": {"rope_theta": 7.0}}"#,
        )
        .into_config()
        .unwrap();
        assert_eq!(c.windows, vec![None, Some(4), None, None]);
        assert_eq!((c.global_theta, c.local_theta), (5.0, 7.0));
    }

    #[test]
    fn bad_configs_are_refused_by_field() {
        let cases = [
            (r#", "num_attention_heads": 0"#, "num_attention_heads"),
            (r#", "num_attention_heads": 3"#, "not a multiple"),
            (r#", "intermediate_size": 0"#, "intermediate_size"),
            (r#", "local_attention": 0"#, "local_attention"),
            (
                r#", "global_attn_every_n_layers": 0"#,
                "global_attn_every_n_layers",
            ),
            (r#", "global_rope_theta": -1.0"#, "global_rope_theta"),
            (r#", "norm_eps": 0.0"#, "norm_eps"),
            (r#", "hidden_activation": "mish""#, "mish"),
            (r#", "layer_types": ["full_attention"]"#, "layer_types"),
            (
                r#", "rope_parameters": {"sliding_attention": {"rope_type": "yarn"}}"#,
                "rope_type",
            ),
        ];
        for (extra, want) in cases {
            let e = raw(extra).into_config().unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn classifier_heads_are_read_and_checked() {
        let h = raw("").classifier_head().unwrap();
        assert_eq!(h.pooling, ClassifierPooling::Cls);
        assert!(!h.bias);
        let h = raw(r#", "classifier_pooling": "mean", "classifier_bias": true"#)
            .classifier_head()
            .unwrap();
        assert_eq!((h.pooling, h.bias), (ClassifierPooling::Mean, true));
        for (extra, want) in [
            (r#", "classifier_pooling": "max""#, "classifier_pooling"),
            (r#", "classifier_activation": "mish""#, "mish"),
        ] {
            let e = raw(extra).classifier_head().unwrap_err().to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
}
