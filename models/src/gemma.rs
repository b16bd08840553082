//! Gemma 2 and Gemma 3 (text) decoders, mirroring Hugging Face
//! `transformers/models/gemma2/modeling_gemma2.py` and `gemma3/modeling_gemma3.py`
//! (`Gemma2RMSNorm`, `Gemma2RotaryEmbedding`, `Gemma2Attention`, `Gemma2MLP`,
//! `Gemma2DecoderLayer`, `Gemma2ForCausalLM`; `Gemma3TextModel`, `Gemma3ForCausalLM`):
//! RMSNorm scaling by `(1 + weight)` (folded into the weight at load, so the fused norm kernel
//! runs it), norms before *and* after attention and the MLP, a GeGLU MLP
//! (`gelu_pytorch_tanh(gate) * up`), embeddings scaled by `sqrt(hidden_size)`, the attention
//! scale `query_pre_attn_scalar^-0.5`, tanh soft-capping of the attention scores
//! (`attn_logit_softcapping`) and of the final logits (`final_logit_softcapping`), and layers
//! alternating sliding-window and global attention. Gemma 3 adds `q_norm` / `k_norm` and a
//! separate rotary table for the sliding layers (`rope_local_base_freq`).
//!
//! The fused attention kernels have neither soft-capping nor a window, so attention here is
//! plain candle ops over the [`KvCache`] buffers (f32 scores, GQA by grouping query heads).

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;
use torchless_kernels::activation::{bias_act, Activation};
use torchless_kernels::norm::{add_rms_norm, NormParams};
use torchless_kernels::rope::{rope_qk, RopeLayout, RopeTable};

use crate::decoder::{
    check_ids, output_head, project_logits, split_qkv, under_prefix, CausalLm, DecoderShape, Head,
    Logits,
};
use crate::error::{non_negative, nonzero, positive, shown};
use crate::llama::{check_rotary_geometry, rope_field, MAX_ROPE_POSITIONS};
use crate::{ConfigError, ConfigResult, KvCache, Linear};

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["gemma2", "gemma3_text"];

/// Where the tensors can sit: `*ForCausalLM` under `model.`, the bare model at the root.
pub const PREFIXES: &[&str] = &["model.", ""];

/// `config.json` of a Gemma 2 / Gemma 3 text model (transformers 4 or 5 rotary fields).
#[derive(Debug, Clone, Deserialize)]
pub struct RawGemmaConfig {
    /// `gemma2` or `gemma3_text`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// MLP size.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (`None`: as many as query heads).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Head dimension (default 256, as the configs have it).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// MLP activation (only `gelu_pytorch_tanh`).
    #[serde(default)]
    pub hidden_activation: Option<String>,
    /// Positions the model was trained for.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base (transformers 4; the global layers' for Gemma 3).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Gemma 3's sliding layers' rotary base (transformers 4).
    #[serde(default)]
    pub rope_local_base_freq: Option<f64>,
    /// Rotary scaling of the global layers (transformers 4).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// Rotary parameters (transformers 5: flat for Gemma 2, per layer type for Gemma 3).
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    /// The attention scale is `query_pre_attn_scalar^-0.5` (default 256).
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    /// Sliding attention window.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Gemma 3 (older configs): every `sliding_window_pattern`-th layer is global.
    #[serde(default)]
    pub sliding_window_pattern: Option<usize>,
    /// Per-layer attention kinds (`sliding_attention` / `full_attention`).
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Soft-capping of the attention scores.
    #[serde(default)]
    pub attn_logit_softcapping: Option<f64>,
    /// Soft-capping of the final logits.
    #[serde(default)]
    pub final_logit_softcapping: Option<f64>,
    /// Biases on q/k/v/o.
    #[serde(default)]
    pub attention_bias: bool,
    /// `lm_head` is `embed_tokens` (Gemma's default).
    #[serde(default = "default_tied")]
    pub tie_word_embeddings: bool,
    /// Gemma 3 encoder-style attention (refused).
    #[serde(default)]
    pub use_bidirectional_attention: Option<bool>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_tied() -> bool {
    true
}

/// One rotary table's parameters: base and linear scaling factor (1: none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    /// Rotary base.
    pub theta: f64,
    /// Linear scaling factor (every frequency divided by it).
    pub factor: f64,
}

/// A checked Gemma configuration.
#[derive(Debug, Clone)]
pub struct GemmaConfig {
    /// Gemma 3 (`q_norm` / `k_norm`, two rotary tables).
    pub gemma3: bool,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden: usize,
    /// MLP size.
    pub intermediate: usize,
    /// Layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Positions usable.
    pub max_positions: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Global layers' rotary parameters.
    pub rope_global: Rope,
    /// Sliding layers' rotary parameters.
    pub rope_local: Rope,
    /// Attention scale.
    pub scale: f64,
    /// Sliding window (positions a query sees, itself included) per layer; `None`: global.
    pub windows: Vec<Option<usize>>,
    /// Attention-score soft-cap.
    pub attn_softcap: Option<f64>,
    /// Final-logit soft-cap.
    pub final_softcap: Option<f64>,
    /// Biases on q/k/v/o.
    pub attention_bias: bool,
    /// `lm_head` is `embed_tokens`.
    pub tied: bool,
}

/// `default` or `linear` rotary parameters of the object `p` named `at`; `theta` when it has none.
fn parse_rope(p: Option<&Value>, at: &str, theta: f64) -> ConfigResult<Rope> {
    let Some(p) = p.filter(|p| !p.is_null()) else {
        return Ok(Rope { theta, factor: 1.0 });
    };
    let theta = match p.get("rope_theta") {
        None | Some(Value::Null) => theta,
        Some(_) => rope_field(p, at, "rope_theta")?,
    };
    let kind = match p.get("rope_type").or_else(|| p.get("type")) {
        None | Some(Value::Null) => "default",
        Some(Value::String(k)) => k.as_str(),
        Some(_) => {
            return Err(ConfigError::Unsupported(format!(
                "`{at}.rope_type` is not a string"
            )))
        }
    };
    let factor = match kind {
        "default" => 1.0,
        "linear" => rope_field(p, at, "factor")?,
        other => {
            return Err(ConfigError::Unsupported(format!(
                "{at}: rope_type {} is not supported (supported: default, linear)",
                shown(other)
            )))
        }
    };
    Ok(Rope { theta, factor })
}

fn softcap(field: &str, v: Option<f64>) -> ConfigResult<Option<f64>> {
    v.map(|c| positive(field, c)).transpose()
}

impl RawGemmaConfig {
    /// Checks the configuration; a refusal names the field and its value.
    pub fn into_config(self) -> ConfigResult<GemmaConfig> {
        let gemma3 = match self.model_type.as_str() {
            "gemma2" => false,
            "gemma3_text" => true,
            other => {
                return Err(ConfigError::Unsupported(format!(
                    "model_type {} is not a supported Gemma decoder (supported: {})",
                    shown(other),
                    MODEL_TYPES.join(", ")
                )))
            }
        };
        let act = self
            .hidden_activation
            .as_deref()
            .unwrap_or("gelu_pytorch_tanh");
        if act != "gelu_pytorch_tanh" {
            return Err(ConfigError::Unsupported(format!(
                "hidden_activation {} is not supported (only \"gelu_pytorch_tanh\")",
                shown(act)
            )));
        }
        if self.use_bidirectional_attention == Some(true) {
            return Err(ConfigError::Unsupported(
                "use_bidirectional_attention: true is not supported (causal decoding only)".into(),
            ));
        }
        let vocab_size = nonzero("vocab_size", self.vocab_size)?;
        let hidden = nonzero("hidden_size", self.hidden_size)?;
        let intermediate = nonzero("intermediate_size", self.intermediate_size)?;
        let heads = nonzero("num_attention_heads", self.num_attention_heads)?;
        let kv_heads = nonzero(
            "num_key_value_heads",
            self.num_key_value_heads.unwrap_or(heads),
        )?;
        if heads % kv_heads != 0 {
            return Err(ConfigError::Unsupported(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
            )));
        }
        let head_dim = nonzero("head_dim", self.head_dim.unwrap_or(256))?;
        // The fused q/k/v and gate/up projections, the embedding table and the rotary table.
        check_rotary_geometry(hidden, heads, kv_heads, head_dim, intermediate, vocab_size)?;
        let eps = non_negative("rms_norm_eps", self.rms_norm_eps)?;
        let scale = positive(
            "query_pre_attn_scalar",
            self.query_pre_attn_scalar.unwrap_or(256.0),
        )?
        .powf(-0.5);
        let window = nonzero("sliding_window", self.sliding_window.unwrap_or(4096))?;
        let layers = self.num_hidden_layers;
        let kinds: Vec<bool> = match &self.layer_types {
            Some(t) => {
                if t.len() != layers {
                    return Err(ConfigError::Unsupported(format!(
                        "`layer_types` has {} entries for num_hidden_layers {layers}",
                        t.len()
                    )));
                }
                t.iter()
                    .map(|k| match k.as_str() {
                        "sliding_attention" => Ok(true),
                        "full_attention" => Ok(false),
                        other => Err(ConfigError::Unsupported(format!(
                            "`layer_types` entry {} is not supported (sliding_attention, \
                             full_attention)",
                            shown(other)
                        ))),
                    })
                    .collect::<ConfigResult<_>>()?
            }
            // Gemma2Config: even layers slide; Gemma3TextConfig: every `pattern`-th is global.
            None if !gemma3 => (0..layers).map(|i| i % 2 == 0).collect(),
            None => {
                let pattern = nonzero(
                    "sliding_window_pattern",
                    self.sliding_window_pattern.unwrap_or(6),
                )?;
                (0..layers).map(|i| (i + 1) % pattern != 0).collect()
            }
        };
        let windows = kinds.iter().map(|&s| s.then_some(window)).collect();
        // transformers 5: Gemma 2 a flat object, Gemma 3 one per layer type;
        // transformers 4: rope_theta (+ rope_local_base_freq, rope_scaling).
        let (global, local) = match &self.rope_parameters {
            Some(p) if !p.is_null() && gemma3 => {
                let g = parse_rope(
                    p.get("full_attention"),
                    "rope_parameters.full_attention",
                    1_000_000.0,
                )?;
                let l = parse_rope(
                    p.get("sliding_attention"),
                    "rope_parameters.sliding_attention",
                    10_000.0,
                )?;
                (g, l)
            }
            Some(p) if !p.is_null() => {
                let r = parse_rope(Some(p), "rope_parameters", 10_000.0)?;
                (r, r)
            }
            _ => {
                let theta = self
                    .rope_theta
                    .map(|t| positive("rope_theta", t))
                    .transpose()?
                    .unwrap_or(if gemma3 { 1_000_000.0 } else { 10_000.0 });
                let g = parse_rope(self.rope_scaling.as_ref(), "rope_scaling", theta)?;
                let l = if gemma3 {
                    let t = self
                        .rope_local_base_freq
                        .map(|t| positive("rope_local_base_freq", t))
                        .transpose()?
                        .unwrap_or(10_000.0);
                    Rope {
                        theta: t,
                        factor: 1.0,
                    }
                } else {
                    g
                };
                (g, l)
            }
        };
        let max_positions = nonzero("max_position_embeddings", self.max_position_embeddings)?
            .min(MAX_ROPE_POSITIONS);
        Ok(GemmaConfig {
            gemma3,
            vocab_size,
            hidden,
            intermediate,
            layers,
            heads,
            kv_heads,
            head_dim,
            max_positions,
            eps,
            rope_global: global,
            rope_local: local,
            scale,
            windows,
            attn_softcap: softcap("attn_logit_softcapping", self.attn_logit_softcapping)?,
            final_softcap: softcap("final_logit_softcapping", self.final_logit_softcapping)?,
            attention_bias: self.attention_bias,
            tied: self.tie_word_embeddings,
        })
    }
}

/// The `cos`/`sin` table of `r` (f32, as `Gemma2RotaryEmbedding` computes it).
fn rope_table(r: Rope, head_dim: usize, n: usize, device: &Device) -> Result<RopeTable> {
    let (base, factor) = (r.theta as f32, r.factor as f32);
    let freqs: Vec<f32> = (0..head_dim / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32) / factor)
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

/// `Gemma2RMSNorm`'s parameters: `1 + weight`, folded once and kept in f32.
fn gemma_norm(vb: VarBuilder, size: usize) -> Result<NormParams> {
    let folded = (vb.get(size, "weight")?.to_dtype(DType::F32)? + 1.0)?;
    NormParams::rms_norm(Some(&folded))
}

/// `Gemma2RMSNorm.forward`: `norm(x.float()) * (1 + weight.float())`, cast back to x's dtype
/// (the fused kernel, in f32).
fn norm(x: &Tensor, p: &NormParams, eps: f64) -> Result<Tensor> {
    if x.dtype() == DType::F32 {
        add_rms_norm(x, None, p, eps)
    } else {
        add_rms_norm(&x.to_dtype(DType::F32)?, None, p, eps)?.to_dtype(x.dtype())
    }
}

/// `tanh(x / cap) * cap`.
fn soft_cap(x: &Tensor, cap: Option<f64>) -> Result<Tensor> {
    match cap {
        Some(c) => (x / c)?.tanh()? * c,
        None => Ok(x.clone()),
    }
}

// modeling_gemma2.py: Gemma2DecoderLayer (Gemma2Attention + Gemma2MLP); gemma3 adds q/k norms.
struct Layer {
    input_norm: NormParams,
    qkv: Linear,
    qk_norm: Option<(NormParams, NormParams)>,
    o_proj: Linear,
    post_attn_norm: NormParams,
    pre_ff_norm: NormParams,
    post_ff_norm: NormParams,
    gate_up: Linear,
    down: Linear,
    window: Option<usize>,
}

impl Layer {
    fn load(vb: VarBuilder, c: &GemmaConfig, window: Option<usize>) -> Result<Self> {
        let (h, d) = (c.hidden, c.head_dim);
        let sa = vb.pp("self_attn");
        let qkv = Linear::load_fused(
            &[
                (sa.pp("q_proj"), c.heads * d),
                (sa.pp("k_proj"), c.kv_heads * d),
                (sa.pp("v_proj"), c.kv_heads * d),
            ],
            h,
            c.attention_bias,
        )?;
        let mlp = vb.pp("mlp");
        let gate_up = Linear::load_fused(
            &[
                (mlp.pp("gate_proj"), c.intermediate),
                (mlp.pp("up_proj"), c.intermediate),
            ],
            h,
            false,
        )?;
        let qk_norm = if c.gemma3 {
            Some((
                gemma_norm(sa.pp("q_norm"), d)?,
                gemma_norm(sa.pp("k_norm"), d)?,
            ))
        } else {
            None
        };
        Ok(Layer {
            input_norm: gemma_norm(vb.pp("input_layernorm"), h)?,
            qkv,
            qk_norm,
            o_proj: Linear::load(sa.pp("o_proj"), c.heads * d, h, c.attention_bias)?,
            post_attn_norm: gemma_norm(vb.pp("post_attention_layernorm"), h)?,
            pre_ff_norm: gemma_norm(vb.pp("pre_feedforward_layernorm"), h)?,
            post_ff_norm: gemma_norm(vb.pp("post_feedforward_layernorm"), h)?,
            gate_up,
            down: Linear::load(mlp.pp("down_proj"), c.intermediate, h, false)?,
            window,
        })
    }
}

/// `Gemma2ForCausalLM` / `Gemma3ForCausalLM`.
pub struct Gemma {
    embed: Tensor,
    embed_scale: f64,
    layers: Vec<Layer>,
    norm: NormParams,
    lm_head: Head,
    rope_global: RopeTable,
    rope_local: RopeTable,
    shape: DecoderShape,
    /// The checked configuration.
    pub config: GemmaConfig,
}

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_decoder(ctx: &crate::LoadContext) -> crate::family::Result2<Box<dyn CausalLm>> {
    let config = ctx.config::<RawGemmaConfig>("Gemma")?.into_config()?;
    let prefix = ctx.prefix(PREFIXES, "embed_tokens.weight", "Gemma")?;
    Ok(Box::new(Gemma::load(ctx.vb.clone(), prefix, config)?))
}

impl Gemma {
    /// Loads from `vb` positioned at the checkpoint's root; `prefix` is what [`load_decoder`]
    /// found.
    pub fn load(vb: VarBuilder, prefix: &str, config: GemmaConfig) -> Result<Self> {
        let mvb = under_prefix(&vb, prefix);
        let c = &config;
        let embed = mvb
            .pp("embed_tokens")
            .get((c.vocab_size, c.hidden), "weight")?;
        let layers = c
            .windows
            .iter()
            .enumerate()
            .map(|(i, &w)| Layer::load(mvb.pp("layers").pp(i), c, w))
            .collect::<Result<Vec<_>>>()?;
        let norm = gemma_norm(mvb.pp("norm"), c.hidden)?;
        let lm_head = output_head(&vb, &embed, c.tied, c.vocab_size, c.hidden)?;
        let dev = embed.device();
        let rope_global = rope_table(c.rope_global, c.head_dim, c.max_positions, dev)?;
        let rope_local = rope_table(c.rope_local, c.head_dim, c.max_positions, dev)?;
        // Gemma2Model: `hidden_size ** 0.5` as a tensor of the model's dtype.
        let embed_scale = Tensor::new(&[(c.hidden as f32).sqrt()], dev)?
            .to_dtype(embed.dtype())?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?[0] as f64;
        let shape = DecoderShape {
            layers: c.layers,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            vocab_size: c.vocab_size,
            max_positions: c.max_positions,
        };
        Ok(Gemma {
            embed,
            embed_scale,
            layers,
            norm,
            lm_head,
            rope_global,
            rope_local,
            shape,
            config,
        })
    }

    /// One layer's attention (`eager_attention_forward` of modeling_gemma2.py): writes `k`/`v`
    /// to the cache, then f32 scores over every cached position, soft-capped, masked causally
    /// (and to the window), softmaxed and applied to the values. Returns `[1, T, Hq·D]`.
    fn attention(
        &self,
        cache: &KvCache,
        i: usize,
        l: &Layer,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (_, hq, t, d) = q.dims4()?;
        let hk = c.kv_heads;
        let rep = hq / hk;
        let past = cache.len();
        cache.write(i, k, v)?;
        let (kc, vc) = cache.buffers(i)?;
        let s = past + t;
        let kk = kc
            .narrow(2, 0, s)?
            .to_dtype(DType::F32)?
            .reshape((hk, s, d))?;
        let vv = vc
            .narrow(2, 0, s)?
            .to_dtype(DType::F32)?
            .reshape((hk, s, d))?;
        // Query head h reads key/value head h / rep: group the heads' rows per kv head.
        let qq = q.to_dtype(DType::F32)?.reshape((hk, rep * t, d))?;
        let scores = (qq.matmul(&kk.t()?)? * c.scale)?;
        let scores = soft_cap(&scores, c.attn_softcap)?;
        let mut mask = Vec::with_capacity(rep * t * s);
        for _ in 0..rep {
            for r in 0..t {
                let pos = past + r;
                for j in 0..s {
                    let visible = j <= pos && l.window.is_none_or(|w| pos - j < w);
                    mask.push(if visible { 0f32 } else { f32::NEG_INFINITY });
                }
            }
        }
        let mask = Tensor::from_vec(mask, (1, rep * t, s), q.device())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
        let ctx = probs
            .matmul(&vv)?
            .to_dtype(q.dtype())?
            .reshape((1, hq, t, d))?;
        ctx.transpose(1, 2)?.contiguous()?.reshape((1, t, hq * d))
    }
}

impl CausalLm for Gemma {
    fn shape(&self) -> &DecoderShape {
        &self.shape
    }

    fn quantize(&mut self, q: crate::decoder::Quantize) -> Result<()> {
        crate::decoder::quantize_linears(
            q,
            self.layers
                .iter_mut()
                .flat_map(|l| [&mut l.qkv, &mut l.o_proj, &mut l.gate_up, &mut l.down]),
            &mut self.lm_head,
        )
    }

    fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    fn device(&self) -> &Device {
        self.embed.device()
    }

    // modeling_gemma2.py: Gemma2Model.forward, then Gemma2ForCausalLM's lm_head and soft-cap.
    fn forward(&self, ids: &[u32], cache: &mut KvCache, which: Logits) -> Result<Tensor> {
        let c = &self.config;
        let ids_t = check_ids(ids, cache, &self.shape, self.device())?;
        let t = ids.len();
        let past = cache.len();
        let mut x = (self
            .embed
            .index_select(&ids_t, 0)?
            .reshape((1, t, c.hidden))?
            * self.embed_scale)?;
        for (i, l) in self.layers.iter().enumerate() {
            let h = norm(&x, &l.input_norm, c.eps)?;
            let qkv = l.qkv.forward(&h)?;
            let (q, k, v) = split_qkv(&qkv, c.heads, c.kv_heads, c.head_dim)?;
            let (q, k) = match &l.qk_norm {
                Some((qn, kn)) => (norm(&q, qn, c.eps)?, norm(&k, kn, c.eps)?),
                None => (q, k),
            };
            let table = if l.window.is_some() {
                &self.rope_local
            } else {
                &self.rope_global
            };
            let (q, k) = rope_qk(&q, &k, table, past, RopeLayout::HalfSplit)?;
            let a = l
                .o_proj
                .forward(&self.attention(cache, i, l, &q, &k.contiguous()?, &v)?)?;
            let sum = (norm(&a, &l.post_attn_norm, c.eps)? + &x)?;
            let gu = l.gate_up.forward(&norm(&sum, &l.pre_ff_norm, c.eps)?)?;
            let gate = gu.narrow(2, 0, c.intermediate)?.contiguous()?;
            let up = gu.narrow(2, c.intermediate, c.intermediate)?;
            let m = (bias_act(&gate, None, Activation::GeluTanh)? * up)?;
            let m = norm(&l.down.forward(&m)?, &l.post_ff_norm, c.eps)?;
            x = (sum + m)?;
        }
        let h = norm(&x, &self.norm, c.eps)?;
        cache.advance(t)?;
        soft_cap(&project_logits(&h, &self.lm_head, which)?, c.final_softcap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "model_type": "gemma3_text", "vocab_size": 384, "hidden_size": 64,
            "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 96,
            "query_pre_attn_scalar": 24, "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
            "rope_parameters": {
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6}
            }
        })
    }

    fn check(v: Value) -> ConfigResult<GemmaConfig> {
        serde_json::from_value::<RawGemmaConfig>(v)
            .expect("the test config deserializes")
            .into_config()
    }

    #[test]
    fn the_base_config_loads() {
        let c = check(base()).unwrap();
        assert_eq!(c.windows, vec![Some(8), None, Some(8)]);
        assert_eq!(
            (c.rope_global, c.rope_local),
            (
                Rope {
                    theta: 1e6,
                    factor: 2.0
                },
                Rope {
                    theta: 10000.0,
                    factor: 1.0
                }
            )
        );
        assert!(c.tied && c.gemma3);
        let mut v = base();
        v["model_type"] = json!("gemma2");
        v.as_object_mut().unwrap().remove("layer_types");
        v["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 10000.0});
        let c = check(v).unwrap();
        assert_eq!(c.windows, vec![Some(8), None, Some(8)]);
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        for key in [
            "sliding_window",
            "head_dim",
            "vocab_size",
            "num_key_value_heads",
        ] {
            let mut v = base();
            v[key] = json!(0);
            assert_eq!(
                check(v).unwrap_err(),
                ConfigError::Zero { field: key.into() }
            );
        }
        for key in [
            "query_pre_attn_scalar",
            "attn_logit_softcapping",
            "final_logit_softcapping",
        ] {
            let mut v = base();
            v[key] = json!(-1.0);
            let e = check(v).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
        let mut v = base();
        v["rope_parameters"]["full_attention"]["factor"] = json!(0.0);
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("rope_parameters.full_attention.factor"), "{e}");
        let mut v = base();
        v["layer_types"] = json!(["sliding_attention"]);
        assert!(check(v).unwrap_err().to_string().contains("layer_types"));
        let mut v = base();
        v["hidden_activation"] = json!("relu");
        assert!(check(v)
            .unwrap_err()
            .to_string()
            .contains("hidden_activation"));
    }
}
