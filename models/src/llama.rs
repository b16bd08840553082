//! Llama-style decoders, mirroring Hugging Face `transformers/models/llama/modeling_llama.py`
//! (`LlamaRMSNorm`, `LlamaRotaryEmbedding`, `LlamaAttention`, `LlamaMLP`, `LlamaDecoderLayer`,
//! `LlamaModel`, `LlamaForCausalLM`): RMSNorm, rotary embeddings in the half-split layout,
//! grouped-query attention, SwiGLU MLP, optional tied embeddings. The same math loads
//! `mistral` (no biases; a sliding window bounds the positions) and `qwen2` (biases on the
//! q/k/v projections) configurations. State-dict names load unchanged, with or without the
//! `model.` prefix. Load-time transforms: q/k/v fused into one projection, gate/up fused into
//! one projection, weights transposed.

use candle_core::{bail, DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;
use torchless_kernels::activation::swiglu_packed;
use torchless_kernels::norm::NormParams;
use torchless_kernels::rope::{rope_qk, RopeLayout, RopeTable};

use crate::decoder::{
    cached_attention, check_ids, pre_norm_stack, project_logits, split_qkv, CausalLm, DecoderShape,
    Logits, PreNormBlock,
};
use crate::{KvCache, Linear};

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["llama", "mistral", "qwen2"];

/// The most positions a rotary table is built for at load (`cos`/`sin` in f32); a config
/// allowing more is capped here, and a longer sequence is refused with an error.
pub const MAX_ROPE_POSITIONS: usize = 8192;

/// `config.json` of a Llama-style model, as Hugging Face writes it (transformers 4's
/// `rope_theta` + `rope_scaling`, or transformers 5's `rope_parameters`).
#[derive(Debug, Clone, Deserialize)]
pub struct RawLlamaConfig {
    /// `llama`, `mistral` or `qwen2`.
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
    /// Head dimension (`None`: `hidden_size / num_attention_heads`).
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
    /// Whether qwen2 uses its sliding window.
    #[serde(default)]
    pub use_sliding_window: bool,
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
}

fn field_f64(v: &Value, key: &str) -> Result<f64> {
    match v.get(key).and_then(Value::as_f64) {
        Some(x) => Ok(x),
        None => bail!("rope scaling: `{key}` is missing or not a number"),
    }
}

fn parse_rope(params: Option<&Value>) -> Result<RopeScaling> {
    let Some(p) = params.filter(|p| !p.is_null()) else {
        return Ok(RopeScaling::None);
    };
    let kind = p
        .get("rope_type")
        .or_else(|| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: field_f64(p, "factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: field_f64(p, "factor")?,
            low_freq_factor: field_f64(p, "low_freq_factor")?,
            high_freq_factor: field_f64(p, "high_freq_factor")?,
            original_max_positions: field_f64(p, "original_max_position_embeddings")?,
        },
        other => bail!("rope_type {other:?} is not supported (supported: default, linear, llama3)"),
    })
}

impl RawLlamaConfig {
    /// Checks the configuration.
    pub fn into_config(self) -> Result<LlamaConfig> {
        if !MODEL_TYPES.contains(&self.model_type.as_str()) {
            bail!(
                "model_type {:?} is not a supported Llama-style decoder (supported: {})",
                self.model_type,
                MODEL_TYPES.join(", ")
            );
        }
        if self.hidden_act != "silu" {
            bail!(
                "hidden_act {:?} is not supported (the SwiGLU MLP needs \"silu\")",
                self.hidden_act
            );
        }
        let heads = self.num_attention_heads;
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            bail!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
            );
        }
        let head_dim = match self.head_dim {
            Some(d) => d,
            None if self.hidden_size % heads == 0 => self.hidden_size / heads,
            None => bail!(
                "hidden_size {} is not a multiple of num_attention_heads {heads}",
                self.hidden_size
            ),
        };
        if head_dim == 0 || head_dim % 2 != 0 {
            bail!("head_dim {head_dim} must be even for rotary embeddings");
        }
        // transformers 5 keeps theta and the scaling in `rope_parameters`; 4 in two fields.
        let (theta, scaling) = match &self.rope_parameters {
            Some(p) if !p.is_null() => (
                p.get("rope_theta").and_then(Value::as_f64),
                parse_rope(Some(p))?,
            ),
            _ => (self.rope_theta, parse_rope(self.rope_scaling.as_ref())?),
        };
        let window = match self.model_type.as_str() {
            "mistral" => self.sliding_window,
            "qwen2" if self.use_sliding_window => self.sliding_window,
            _ => None,
        };
        let max_positions = self
            .max_position_embeddings
            .min(window.unwrap_or(usize::MAX))
            .min(MAX_ROPE_POSITIONS);
        let qwen2 = self.model_type == "qwen2";
        let attention_bias = self.attention_bias.unwrap_or(false);
        Ok(LlamaConfig {
            vocab_size: self.vocab_size,
            hidden: self.hidden_size,
            intermediate: self.intermediate_size,
            layers: self.num_hidden_layers,
            heads,
            kv_heads,
            head_dim,
            max_positions,
            eps: self.rms_norm_eps,
            rope_theta: theta.unwrap_or(10_000.0),
            rope_scaling: scaling,
            // modeling_qwen2.py: q/k/v always carry a bias, o_proj never.
            qkv_bias: qwen2 || attention_bias,
            o_bias: !qwen2 && attention_bias,
            mlp_bias: self.mlp_bias.unwrap_or(false),
            tied: self.tie_word_embeddings,
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

/// The state-dict prefix of the decoder stack: `"model."` for `*ForCausalLM` checkpoints,
/// `""` for bare `LlamaModel` ones — decided from the keys.
pub fn detect_prefix(has: impl Fn(&str) -> bool) -> Result<&'static str> {
    for p in ["model.", ""] {
        if has(&format!("{p}embed_tokens.weight")) {
            return Ok(p);
        }
    }
    bail!("no `embed_tokens.weight` (with or without a `model.` prefix): not a Llama-style checkpoint")
}

fn rms_norm(vb: VarBuilder, hidden: usize) -> Result<NormParams> {
    NormParams::rms_norm(Some(&vb.get(hidden, "weight")?))
}

// modeling_llama.py: LlamaDecoderLayer (LlamaAttention + LlamaMLP)
struct Layer {
    input_norm: NormParams,
    qkv: Linear,
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
        Ok(Layer {
            input_norm: rms_norm(vb.pp("input_layernorm"), h)?,
            qkv,
            o_proj: Linear::load(sa.pp("o_proj"), c.heads * d, h, c.o_bias)?,
            post_norm: rms_norm(vb.pp("post_attention_layernorm"), h)?,
            gate_up,
            down: Linear::load(mlp.pp("down_proj"), c.intermediate, h, c.mlp_bias)?,
        })
    }
}

/// `LlamaForCausalLM` (and the Mistral / Qwen2 equivalents).
pub struct Llama {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: NormParams,
    lm_head: Tensor,
    rope: RopeTable,
    shape: DecoderShape,
    /// The checked configuration.
    pub config: LlamaConfig,
}

impl Llama {
    /// Loads from `vb` positioned at the checkpoint's root; `prefix` is what
    /// [`detect_prefix`] found.
    pub fn load(vb: VarBuilder, prefix: &str, config: LlamaConfig) -> Result<Self> {
        let mvb = if prefix.is_empty() {
            vb.clone()
        } else {
            vb.pp(prefix.trim_end_matches('.'))
        };
        let c = &config;
        let embed = mvb
            .pp("embed_tokens")
            .get((c.vocab_size, c.hidden), "weight")?;
        let layers = (0..c.layers)
            .map(|i| Layer::load(mvb.pp("layers").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        let norm = rms_norm(mvb.pp("norm"), c.hidden)?;
        let lm_head = if c.tied {
            embed.clone()
        } else if vb.contains_tensor("lm_head.weight") {
            vb.pp("lm_head").get((c.vocab_size, c.hidden), "weight")?
        } else {
            bail!("tie_word_embeddings is false but the checkpoint has no `lm_head.weight`");
        };
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
                let qkv = l.qkv.forward(x)?;
                let (q, k, v) = split_qkv(&qkv, c.heads, c.kv_heads, c.head_dim)?;
                let (q, k) = rope_qk(&q, &k, &self.rope, past, RopeLayout::HalfSplit)?;
                l.o_proj
                    .forward(&cached_attention(cache, i, &q, &k, &v, scale)?)
            },
            |l, x| l.down.forward(&swiglu_packed(&l.gate_up.forward(x)?)?),
        )?;
        cache.advance(t)?;
        project_logits(&h, &self.lm_head, which)
    }
}
