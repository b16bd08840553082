//! Llama-style decoders, mirroring Hugging Face `transformers/models/llama/modeling_llama.py`
//! (`LlamaRMSNorm`, `LlamaRotaryEmbedding`, `LlamaAttention`, `LlamaMLP`, `LlamaDecoderLayer`,
//! `LlamaModel`, `LlamaForCausalLM`): RMSNorm, rotary embeddings in the half-split layout,
//! grouped-query attention, SwiGLU MLP, optional tied embeddings. The same math loads
//! `mistral` (no biases; a sliding window bounds the positions), `qwen2` (biases on the
//! q/k/v projections) and `qwen3` configurations (`modeling_qwen3.py`: an explicit `head_dim`,
//! and `q_norm` / `k_norm`, an RMSNorm over each head's query and key before the rotation).
//! State-dict names load unchanged, with or without the `model.` prefix. Load-time
//! transforms: q/k/v fused into one projection, gate/up fused into one projection, weights
//! transposed.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;
use torchless_kernels::activation::swiglu_packed;
use torchless_kernels::norm::{add_rms_norm, NormParams};
use torchless_kernels::rope::{rope_qk, RopeLayout, RopeTable};

use crate::decoder::{
    advance_all, batched_decode_attention, cached_attention, check_batch, check_ids, output_head,
    pre_norm_stack, project_batch_logits, project_logits, split_qkv, under_prefix, CausalLm,
    DecoderShape, Head, Logits, PreNormBlock,
};
use crate::error::{fits, non_negative, nonzero, positive, shown};
use crate::family::{rms_norm, LoadContext, Result2};
use crate::{ConfigError, ConfigResult, KvCache, Linear};

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["llama", "mistral", "qwen2", "qwen3"];

/// The most positions a rotary table is built for at load (`cos`/`sin` in f32); a config
/// allowing more is capped here, and a longer sequence is refused with an error.
pub const MAX_ROPE_POSITIONS: usize = 8192;

/// The size checks every rotary decoder's config shares: an even `head_dim`, and the fused
/// q/k/v and gate/up projections, the embedding table and the rotary table without overflow.
pub(crate) fn check_rotary_geometry(
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    vocab_size: usize,
) -> ConfigResult<()> {
    if !head_dim.is_multiple_of(2) {
        return Err(ConfigError::Unsupported(format!(
            "head_dim {head_dim} must be even for rotary embeddings"
        )));
    }
    let qkv_heads = kv_heads
        .checked_mul(2)
        .and_then(|k| k.checked_add(heads))
        .ok_or(ConfigError::TooLarge {
            field: "num_key_value_heads".into(),
            value: kv_heads,
        })?;
    let qkv = fits("head_dim", head_dim, &[qkv_heads, head_dim])?;
    fits("hidden_size", hidden, &[qkv, hidden])?;
    fits(
        "intermediate_size",
        intermediate,
        &[2, intermediate, hidden],
    )?;
    fits("vocab_size", vocab_size, &[vocab_size, hidden])?;
    fits("head_dim", head_dim, &[MAX_ROPE_POSITIONS, head_dim])?;
    Ok(())
}

/// `config.json` of a Llama-style model, as Hugging Face writes it (transformers 4's
/// `rope_theta` + `rope_scaling`, or transformers 5's `rope_parameters`).
#[derive(Debug, Clone, Deserialize)]
pub struct RawLlamaConfig {
    /// `llama`, `mistral`, `qwen2` or `qwen3`.
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
    /// Head dimension (`None`: `hidden_size / num_attention_heads`; 128 for qwen3, as
    /// `Qwen3Config` defaults it).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// MLP activation; only `silu` (SwiGLU) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Positions the model was trained for.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base (transformers 4).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Rotary scaling (transformers 4).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// Rotary parameters (transformers 5: `rope_type`, `rope_theta`, scaling fields).
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    /// Biases on q/k/v/o (llama, mistral).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// Biases on gate/up/down.
    #[serde(default)]
    pub mlp_bias: Option<bool>,
    /// `lm_head` is `embed_tokens`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Sliding attention window (mistral; qwen2 when `use_sliding_window`).
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Whether qwen2 uses its sliding window (qwen3: refused when true).
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Per-layer attention kinds (transformers 5 qwen3: `full_attention` or
    /// `sliding_attention`; only the former is supported).
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

fn default_act() -> String {
    "silu".into()
}
fn default_eps() -> f64 {
    1e-6
}

/// How rotary frequencies are scaled (`rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// `default`: `inv_freq[i] = 1 / theta^(2i/D)`.
    None,
    /// `linear`: every frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// `llama3`: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 {
        /// The divisor of low frequencies.
        factor: f64,
        /// `low_freq_factor`.
        low_freq_factor: f64,
        /// `high_freq_factor`.
        high_freq_factor: f64,
        /// `original_max_position_embeddings`.
        original_max_positions: f64,
    },
}

/// A checked Llama-style configuration.
#[derive(Debug, Clone)]
pub struct LlamaConfig {
    /// The `model_type` it was loaded as.
    pub model_type: String,
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
    /// Positions usable (the trained length, capped by the sliding window and
    /// [`MAX_ROPE_POSITIONS`]).
    pub max_positions: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary scaling.
    pub rope_scaling: RopeScaling,
    /// Biases on q/k/v.
    pub qkv_bias: bool,
    /// Bias on o_proj.
    pub o_bias: bool,
    /// Biases on the MLP.
    pub mlp_bias: bool,
    /// `lm_head` is `embed_tokens`.
    pub tied: bool,
    /// qwen3's `q_norm` / `k_norm`: RMSNorm over `head_dim` on each head's query and key,
    /// before the rotation.
    pub qk_norm: bool,
}

/// A real field of a rotary-parameters object, checked finite and > 0; `at` is the object's
/// name in `config.json` (`rope_scaling` or `rope_parameters`).
pub(crate) fn rope_field(p: &Value, at: &str, key: &str) -> ConfigResult<f64> {
    let field = format!("{at}.{key}");
    match p.get(key).and_then(Value::as_f64) {
        Some(x) => positive(&field, x),
        None => Err(ConfigError::NotANumber { field }),
    }
}

fn parse_rope(params: Option<&Value>, at: &str) -> ConfigResult<RopeScaling> {
    let Some(p) = params.filter(|p| !p.is_null()) else {
        return Ok(RopeScaling::None);
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
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: rope_field(p, at, "factor")?,
        },
        "llama3" => {
            let low_freq_factor = rope_field(p, at, "low_freq_factor")?;
            let high_freq_factor = rope_field(p, at, "high_freq_factor")?;
            // modeling_rope_utils.py divides by their difference (and warns when it is not > 0).
            if high_freq_factor <= low_freq_factor {
                return Err(ConfigError::Unsupported(format!(
                    "`{at}.high_freq_factor` {high_freq_factor} must be greater than \
                     `{at}.low_freq_factor` {low_freq_factor}"
                )));
            }
            RopeScaling::Llama3 {
                factor: rope_field(p, at, "factor")?,
                low_freq_factor,
                high_freq_factor,
                original_max_positions: rope_field(p, at, "original_max_position_embeddings")?,
            }
        }
        other => {
            return Err(ConfigError::Unsupported(format!(
                "rope_type {} is not supported (supported: default, linear, llama3)",
                shown(other)
            )))
        }
    })
}

impl RawLlamaConfig {
    /// Checks the configuration: sizes are at least 1 and their products fit, the rotary base
    /// and every scaling factor are finite and positive, the norm epsilon is finite and not
    /// negative. A refusal names the field and its value.
    pub fn into_config(self) -> ConfigResult<LlamaConfig> {
        if !MODEL_TYPES.contains(&self.model_type.as_str()) {
            return Err(ConfigError::Unsupported(format!(
                "model_type {} is not a supported Llama-style decoder (supported: {})",
                shown(&self.model_type),
                MODEL_TYPES.join(", ")
            )));
        }
        if self.hidden_act != "silu" {
            return Err(ConfigError::Unsupported(format!(
                "hidden_act {} is not supported (the SwiGLU MLP needs \"silu\")",
                shown(&self.hidden_act)
            )));
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
        let qwen3 = self.model_type == "qwen3";
        if qwen3 && self.use_sliding_window {
            // Qwen3Config: sliding attention on the layers from `max_window_layers` on.
            return Err(ConfigError::Unsupported(
                "qwen3 `use_sliding_window: true` is not supported (sliding-window attention \
                 on the layers from `max_window_layers` on); only full attention is"
                    .into(),
            ));
        }
        if let Some(bad) = self
            .layer_types
            .iter()
            .flatten()
            .find(|t| qwen3 && t.as_str() != "full_attention")
        {
            return Err(ConfigError::Unsupported(format!(
                "`layer_types` entry {} is not supported (only \"full_attention\")",
                shown(bad)
            )));
        }
        let head_dim = match self.head_dim {
            Some(d) => nonzero("head_dim", d)?,
            // Qwen3Config's default, used whatever hidden_size / heads is.
            None if qwen3 => 128,
            None if hidden % heads == 0 => hidden / heads,
            None => {
                return Err(ConfigError::Unsupported(format!(
                    "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
                )))
            }
        };
        // The fused q/k/v and gate/up projections, the embedding table and the rotary table.
        check_rotary_geometry(hidden, heads, kv_heads, head_dim, intermediate, vocab_size)?;
        let eps = non_negative("rms_norm_eps", self.rms_norm_eps)?;
        // transformers 5 keeps theta and the scaling in `rope_parameters`; 4 in two fields.
        let (theta, scaling) = match &self.rope_parameters {
            Some(p) if !p.is_null() => {
                let theta = match p.get("rope_theta") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_f64().ok_or_else(|| ConfigError::NotANumber {
                        field: "rope_parameters.rope_theta".into(),
                    })?),
                };
                let theta = theta
                    .map(|t| positive("rope_parameters.rope_theta", t))
                    .transpose()?;
                (theta, parse_rope(Some(p), "rope_parameters")?)
            }
            _ => (
                self.rope_theta
                    .map(|t| positive("rope_theta", t))
                    .transpose()?,
                parse_rope(self.rope_scaling.as_ref(), "rope_scaling")?,
            ),
        };
        let window = match self.model_type.as_str() {
            "mistral" => self.sliding_window,
            "qwen2" if self.use_sliding_window => self.sliding_window,
            _ => None,
        };
        if let Some(w) = window {
            nonzero("sliding_window", w)?;
        }
        let max_positions = nonzero("max_position_embeddings", self.max_position_embeddings)?
            .min(window.unwrap_or(usize::MAX))
            .min(MAX_ROPE_POSITIONS);
        let qwen2 = self.model_type == "qwen2";
        let attention_bias = self.attention_bias.unwrap_or(false);
        Ok(LlamaConfig {
            vocab_size,
            hidden,
            intermediate,
            layers: self.num_hidden_layers,
            heads,
            kv_heads,
            head_dim,
            max_positions,
            eps,
            rope_theta: theta.unwrap_or(10_000.0),
            rope_scaling: scaling,
            // modeling_qwen2.py: q/k/v always carry a bias, o_proj never; modeling_qwen3.py
            // (as llama): all four follow `attention_bias`.
            qkv_bias: qwen2 || attention_bias,
            o_bias: !qwen2 && attention_bias,
            mlp_bias: self.mlp_bias.unwrap_or(false),
            tied: self.tie_word_embeddings,
            qk_norm: qwen3,
            model_type: self.model_type,
        })
    }
}

/// The rotary inverse frequencies, as `LlamaRotaryEmbedding` computes them (f32 arithmetic,
/// `rope_init_fn` of `modeling_rope_utils.py` for `default`, `linear` and `llama3`).
pub fn inv_freq(c: &LlamaConfig) -> Vec<f32> {
    let d = c.head_dim;
    let base = c.rope_theta as f32;
    let mut f: Vec<f32> = (0..d / 2)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / d as f32))
        .collect();
    match c.rope_scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => f.iter_mut().for_each(|x| *x /= factor as f32),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_positions,
        } => {
            let (factor, low, high, old) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                original_max_positions as f32,
            );
            let low_wavelen = old / low;
            let high_wavelen = old / high;
            for x in f.iter_mut() {
                let wavelen = 2.0 * std::f32::consts::PI / *x;
                let scaled = if wavelen > low_wavelen {
                    *x / factor
                } else {
                    *x
                };
                // wavelen is finite and positive, so this is `~(w < high) * ~(w > low)`.
                let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                *x = if medium {
                    let smooth = (old / wavelen - low) / (high - low);
                    (1.0 - smooth) * scaled / factor + smooth * scaled
                } else {
                    scaled
                };
            }
        }
    }
    f
}

/// The `cos`/`sin` table for every usable position (f32).
fn rope_table(c: &LlamaConfig, device: &Device) -> Result<RopeTable> {
    let freqs = inv_freq(c);
    let half = freqs.len();
    let n = c.max_positions;
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in 0..n {
        for &f in &freqs {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    let cos = Tensor::from_vec(cos, (n, half), device)?;
    let sin = Tensor::from_vec(sin, (n, half), device)?;
    RopeTable::new(&cos, &sin)
}

/// Where a Llama-style decoder's tensors can sit: `*ForCausalLM` under `model.`, the bare
/// model at the root.
pub const PREFIXES: &[&str] = &["model.", ""];

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_decoder(ctx: &LoadContext) -> Result2<Box<dyn CausalLm>> {
    let config = ctx.config::<RawLlamaConfig>("Llama-style")?.into_config()?;
    let prefix = ctx.prefix(PREFIXES, "embed_tokens.weight", "Llama-style")?;
    Ok(Box::new(Llama::load(ctx.vb.clone(), prefix, config)?))
}

// modeling_llama.py: LlamaDecoderLayer (LlamaAttention + LlamaMLP); modeling_qwen3.py's
// Qwen3Attention adds `q_norm` / `k_norm`.
struct Layer {
    input_norm: NormParams,
    qkv: Linear,
    /// qwen3's `self_attn.q_norm` and `self_attn.k_norm` (`[head_dim]` each).
    qk_norm: Option<(NormParams, NormParams)>,
    o_proj: Linear,
    post_norm: NormParams,
    gate_up: Linear,
    down: Linear,
}

impl Layer {
    fn load(vb: VarBuilder, c: &LlamaConfig) -> Result<Self> {
        let (h, d) = (c.hidden, c.head_dim);
        let sa = vb.pp("self_attn");
        let qkv = Linear::load_fused(
            &[
                (sa.pp("q_proj"), c.heads * d),
                (sa.pp("k_proj"), c.kv_heads * d),
                (sa.pp("v_proj"), c.kv_heads * d),
            ],
            h,
            c.qkv_bias,
        )?;
        let mlp = vb.pp("mlp");
        let gate_up = Linear::load_fused(
            &[
                (mlp.pp("gate_proj"), c.intermediate),
                (mlp.pp("up_proj"), c.intermediate),
            ],
            h,
            c.mlp_bias,
        )?;
        let qk_norm = if c.qk_norm {
            Some((rms_norm(sa.pp("q_norm"), d)?, rms_norm(sa.pp("k_norm"), d)?))
        } else {
            None
        };
        Ok(Layer {
            input_norm: rms_norm(vb.pp("input_layernorm"), h)?,
            qkv,
            qk_norm,
            o_proj: Linear::load(sa.pp("o_proj"), c.heads * d, h, c.o_bias)?,
            post_norm: rms_norm(vb.pp("post_attention_layernorm"), h)?,
            gate_up,
            down: Linear::load(mlp.pp("down_proj"), c.intermediate, h, c.mlp_bias)?,
        })
    }
}

/// `LlamaForCausalLM` (and the Mistral / Qwen2 / Qwen3 equivalents).
pub struct Llama {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: NormParams,
    lm_head: Head,
    rope: RopeTable,
    shape: DecoderShape,
    /// The checked configuration.
    pub config: LlamaConfig,
}

impl Llama {
    /// Loads from `vb` positioned at the checkpoint's root; `prefix` is what
    /// [`load_decoder`] found.
    pub fn load(vb: VarBuilder, prefix: &str, config: LlamaConfig) -> Result<Self> {
        let mvb = under_prefix(&vb, prefix);
        let c = &config;
        let embed = mvb
            .pp("embed_tokens")
            .get((c.vocab_size, c.hidden), "weight")?;
        let layers = (0..c.layers)
            .map(|i| Layer::load(mvb.pp("layers").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        let norm = rms_norm(mvb.pp("norm"), c.hidden)?;
        let lm_head = output_head(&vb, &embed, c.tied, c.vocab_size, c.hidden)?;
        let rope = rope_table(c, embed.device())?;
        let shape = DecoderShape {
            layers: c.layers,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            vocab_size: c.vocab_size,
            max_positions: c.max_positions,
        };
        Ok(Llama {
            embed,
            layers,
            norm,
            lm_head,
            rope,
            shape,
            config,
        })
    }
}

impl CausalLm for Llama {
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

    // modeling_llama.py: LlamaModel.forward, then LlamaForCausalLM's lm_head.
    fn forward(&self, ids: &[u32], cache: &mut KvCache, which: Logits) -> Result<Tensor> {
        let c = &self.config;
        let ids_t = check_ids(ids, cache, &self.shape, self.device())?;
        let t = ids.len();
        let past = cache.len();
        let x = self
            .embed
            .index_select(&ids_t, 0)?
            .reshape((1, t, c.hidden))?;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let h = pre_norm_stack(
            x,
            &self.layers,
            c.eps,
            &self.norm,
            |l| PreNormBlock {
                norm1: &l.input_norm,
                norm2: &l.post_norm,
            },
            |i, l, x| {
                let (q, k, v) = self.qkv_normed(l, x)?;
                let (q, k) = rope_qk(&q, &k, &self.rope, past, RopeLayout::HalfSplit)?;
                l.o_proj
                    .forward(&cached_attention(cache, i, &q, &k, &v, scale)?)
            },
            |l, x| l.down.forward(&swiglu_packed(&l.gate_up.forward(x)?)?),
        )?;
        cache.advance(t)?;
        project_logits(&h, &self.lm_head, which)
    }

    // The same stack for one new token of each of B sequences: q/k/v, o, gate/up, down and the
    // head as one matmul over B rows; the rotation (each row at its own position) and attention
    // over each sequence's own cache per row.
    fn decode_batch(&self, ids: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let c = &self.config;
        check_batch(ids, caches, &self.shape)?;
        let b = ids.len();
        let x = self
            .embed
            .index_select(&Tensor::new(ids, self.device())?, 0)?
            .reshape((b, 1, c.hidden))?;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let h = pre_norm_stack(
            x,
            &self.layers,
            c.eps,
            &self.norm,
            |l| PreNormBlock {
                norm1: &l.input_norm,
                norm2: &l.post_norm,
            },
            |i, l, x| {
                let (q, k, v) = self.qkv_normed(l, x)?;
                let ctx = batched_decode_attention(caches, i, (&q, &k, &v), scale, |q, k, pos| {
                    rope_qk(q, k, &self.rope, pos, RopeLayout::HalfSplit)
                })?;
                l.o_proj.forward(&ctx)
            },
            |l, x| l.down.forward(&swiglu_packed(&l.gate_up.forward(x)?)?),
        )?;
        advance_all(caches)?;
        project_batch_logits(&h, &self.lm_head)
    }
}

impl Llama {
    /// One layer's q, k, v (`[B, H, T, D]`) from its normed input, qwen3's per-head q/k norms
    /// applied (modeling_qwen3.py: `q_norm` / `k_norm` over each head, before the rotation).
    fn qkv_normed(&self, l: &Layer, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let c = &self.config;
        let qkv = l.qkv.forward(x)?;
        let (q, k, v) = split_qkv(&qkv, c.heads, c.kv_heads, c.head_dim)?;
        Ok(match &l.qk_norm {
            Some((qn, kn)) => (
                add_rms_norm(&q, None, qn, c.eps)?,
                add_rms_norm(&k, None, kn, c.eps)?,
                v,
            ),
            None => (q, k, v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "model_type": "llama", "vocab_size": 384, "hidden_size": 64,
            "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 96, "rms_norm_eps": 1e-5,
            "rope_parameters": {
                "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16
            }
        })
    }

    fn check(v: Value) -> ConfigResult<LlamaConfig> {
        serde_json::from_value::<RawLlamaConfig>(v)
            .expect("the test config deserializes")
            .into_config()
    }

    #[test]
    fn the_base_config_loads() {
        let c = check(base()).unwrap();
        assert_eq!(
            (c.rope_theta, c.head_dim, c.max_positions),
            (500000.0, 16, 96)
        );
        assert_eq!(
            c.rope_scaling,
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_positions: 16.0
            }
        );
    }

    #[test]
    fn zero_negative_and_infinite_rope_numbers_are_refused_by_name() {
        for key in [
            "rope_theta",
            "factor",
            "low_freq_factor",
            "high_freq_factor",
            "original_max_position_embeddings",
        ] {
            for bad in [0.0, -2.0] {
                let mut v = base();
                v["rope_parameters"][key] = json!(bad);
                let e = check(v).unwrap_err();
                assert_eq!(
                    e,
                    ConfigError::NotPositive {
                        field: format!("rope_parameters.{key}"),
                        value: bad
                    },
                    "{key} = {bad}"
                );
                assert!(e.to_string().contains(&format!("rope_parameters.{key}")));
            }
        }
        // transformers 4 layout: `rope_theta` and `rope_scaling` at the top level.
        let mut v = base();
        v.as_object_mut().unwrap().remove("rope_parameters");
        v["rope_theta"] = json!(0.0);
        assert_eq!(
            check(v.clone()).unwrap_err(),
            ConfigError::NotPositive {
                field: "rope_theta".into(),
                value: 0.0
            }
        );
        v["rope_theta"] = json!(10000.0);
        v["rope_scaling"] = json!({"type": "linear", "factor": -4.0});
        assert_eq!(
            check(v.clone()).unwrap_err(),
            ConfigError::NotPositive {
                field: "rope_scaling.factor".into(),
                value: -4.0
            }
        );
        v["rope_scaling"] = json!({"type": "linear", "factor": "4"});
        assert_eq!(
            check(v).unwrap_err(),
            ConfigError::NotANumber {
                field: "rope_scaling.factor".into()
            }
        );
        // Not finite: the check itself (strict JSON cannot spell infinity; 1e400 does not parse).
        assert!(positive("rope_theta", f64::INFINITY).is_err());
        assert!(serde_json::from_str::<Value>(r#"{"rope_theta": 1e400}"#).is_err());
        // llama3 divides by high_freq_factor - low_freq_factor.
        let mut v = base();
        v["rope_parameters"]["high_freq_factor"] = json!(1.0);
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("high_freq_factor"), "{e}");
        let mut v = base();
        v["rope_parameters"]["rope_theta"] = json!("big");
        assert_eq!(
            check(v).unwrap_err(),
            ConfigError::NotANumber {
                field: "rope_parameters.rope_theta".into()
            }
        );
    }

    #[test]
    fn zero_sizes_bad_epsilons_and_overflowing_sizes_are_refused() {
        for key in [
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
            "head_dim",
        ] {
            let mut v = base();
            v[key] = json!(0);
            assert_eq!(
                check(v).unwrap_err(),
                ConfigError::Zero { field: key.into() }
            );
        }
        let mut v = base();
        v["model_type"] = json!("mistral");
        v["sliding_window"] = json!(0);
        assert_eq!(
            check(v).unwrap_err(),
            ConfigError::Zero {
                field: "sliding_window".into()
            }
        );
        let mut v = base();
        v["rms_norm_eps"] = json!(-1e-6);
        assert_eq!(
            check(v).unwrap_err(),
            ConfigError::Negative {
                field: "rms_norm_eps".into(),
                value: -1e-6
            }
        );
        let mut v = base();
        v["head_dim"] = json!(1u64 << 62);
        assert!(matches!(
            check(v).unwrap_err(),
            ConfigError::TooLarge { field, .. } if field == "head_dim"
        ));
        let mut v = base();
        v["vocab_size"] = json!(u64::MAX);
        assert!(matches!(
            check(v).unwrap_err(),
            ConfigError::TooLarge { field, .. } if field == "vocab_size"
        ));
        let mut v = base();
        v["hidden_act"] = json!(format!("\u{1b}[2J{}", "x".repeat(500)));
        let e = check(v).unwrap_err().to_string();
        assert!(!e.contains('\u{1b}') && e.len() < 200, "{e}");
    }

    fn qwen3() -> Value {
        json!({
            "model_type": "qwen3", "vocab_size": 384, "hidden_size": 64,
            "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 24, "max_position_embeddings": 80,
            "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "use_sliding_window": false,
            "sliding_window": null, "max_window_layers": 28,
            "layer_types": ["full_attention", "full_attention"],
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}
        })
    }

    #[test]
    fn qwen3_reads_head_dim_and_norms_queries_and_keys() {
        let c = check(qwen3()).unwrap();
        assert_eq!((c.head_dim, c.heads, c.kv_heads), (24, 4, 2));
        assert!(c.qk_norm && c.tied && !c.qkv_bias && !c.o_bias);
        assert!(!check(base()).unwrap().qk_norm);
        // Qwen3Config's default head_dim is 128, not hidden_size / heads.
        let mut v = qwen3();
        v.as_object_mut().unwrap().remove("head_dim");
        assert_eq!(check(v).unwrap().head_dim, 128);
        let mut v = qwen3();
        v["attention_bias"] = json!(true);
        let c = check(v).unwrap();
        assert!(c.qkv_bias && c.o_bias);
    }

    #[test]
    fn qwen3_sliding_window_attention_is_refused_by_name() {
        let mut v = qwen3();
        v["use_sliding_window"] = json!(true);
        v["sliding_window"] = json!(16);
        let e = check(v).unwrap_err().to_string();
        assert!(
            e.contains("qwen3") && e.contains("use_sliding_window"),
            "{e}"
        );
        let mut v = qwen3();
        v["layer_types"] = json!(["full_attention", "sliding_attention"]);
        let e = check(v).unwrap_err().to_string();
        assert!(
            e.contains("layer_types") && e.contains("sliding_attention"),
            "{e}"
        );
    }
}
