//! Phi-3 decoders, mirroring Hugging Face `transformers/models/phi3/modeling_phi3.py`
//! (`Phi3RotaryEmbedding`, `Phi3Attention`, `Phi3MLP`, `Phi3RMSNorm`, `Phi3DecoderLayer`,
//! `Phi3Model`, `Phi3ForCausalLM`): the Llama math (RMSNorm, half-split rotary embeddings,
//! grouped-query attention, SwiGLU) with the checkpoint storing the projections fused —
//! `self_attn.qkv_proj` (q, k, v stacked) and `mlp.gate_up_proj` (gate, then up: `silu(gate) *
//! up`) — which load as they are (transposed), and the `longrope` rotary scaling of
//! `modeling_rope_utils.py` (`_compute_longrope_parameters`, `longrope_frequency_update`).
//!
//! Long RoPE: two frequency sets, `inv_freq[i] = 1 / (factor[i] · theta^(2i/D))` with the
//! `short_factor` and the `long_factor` lists, and `cos`/`sin` multiplied by the attention
//! factor (`rope_parameters.attention_factor`, else `sqrt(1 + ln(f) / ln(original_max))` with
//! `f = rope_parameters.factor`, else `max_position_embeddings / original_max`; 1 when `f ≤ 1`).
//! Which set rotates a forward pass's positions follows transformers 5.24's rotary rule
//! (`longrope_frequency_update`): the long set when the sequence length after the pass
//! (`cache.len() + T`, transformers' `max(position_ids) + 1`) exceeds
//! `original_max_position_embeddings`, the short set otherwise. A prompt longer than the
//! original length is therefore rotated with the long factors throughout, and a generation that
//! stays within it with the short ones, as `model.generate(..., use_cache=True)` does.
//! When a generation crosses the original length, transformers'
//! `Phi3ForCausalLM.prepare_inputs_for_generation` drops its cache and runs the whole sequence
//! again with the long factors; [`CausalLm::recompute_past`] tells the generation loop to do
//! the same (it keeps the token ids), so continuations match across the crossing too.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use serde_json::Value;
use torchless_kernels::activation::swiglu_packed;
use torchless_kernels::norm::NormParams;
use torchless_kernels::rope::{rope_qk, RopeLayout, RopeTable};

use crate::decoder::{
    cached_attention, check_ids, output_head, pre_norm_stack, project_logits, split_qkv,
    under_prefix, CausalLm, DecoderShape, Head, Logits, PreNormBlock,
};
use crate::error::{non_negative, nonzero, positive, shown};
use crate::family::{rms_norm, LoadContext, Result2};
use crate::llama::{check_rotary_geometry, rope_field, MAX_ROPE_POSITIONS};
use crate::{ConfigError, ConfigResult, KvCache, Linear};

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["phi3"];

/// Where a Phi-3 decoder's tensors can sit: `Phi3ForCausalLM` under `model.`, the bare model
/// at the root.
pub const PREFIXES: &[&str] = &["model.", ""];

/// `config.json` of a Phi-3 model (transformers 4's `rope_theta` + `rope_scaling`, or
/// transformers 5's `rope_parameters`).
#[derive(Debug, Clone, Deserialize)]
pub struct RawPhi3Config {
    /// `phi3`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// MLP size (`gate_up_proj` has twice as many outputs).
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
    /// Positions the model was extended to.
    pub max_position_embeddings: usize,
    /// Positions the model was pretrained for (transformers 4 keeps it here; 5 also in
    /// `rope_parameters`).
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Rotary base (transformers 4).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Rotary scaling (transformers 4: `{"type": "longrope" | "su", ...}`).
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// Rotary parameters (transformers 5).
    #[serde(default)]
    pub rope_parameters: Option<Value>,
    /// Fraction of each head that is rotated (transformers 4 top level); only 1 is supported.
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
    /// `lm_head` is `embed_tokens`.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Sliding attention window (`None`: full causal attention).
    #[serde(default)]
    pub sliding_window: Option<usize>,
}

fn default_act() -> String {
    "silu".into()
}
fn default_eps() -> f64 {
    1e-6
}

/// Phi-3's rotary scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum Phi3Rope {
    /// `default`: `inv_freq[i] = 1 / theta^(2i/D)`.
    Default,
    /// `longrope` (formerly `su`).
    LongRope {
        /// `short_factor`, one per rotary frequency.
        short_factor: Vec<f32>,
        /// `long_factor`, one per rotary frequency.
        long_factor: Vec<f32>,
        /// `original_max_position_embeddings`: longer sequences use the long factors.
        original_max_positions: usize,
        /// The factor `cos` and `sin` are multiplied by.
        attention_factor: f64,
    },
}

/// A checked Phi-3 configuration.
#[derive(Debug, Clone)]
pub struct Phi3Config {
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
    /// Positions usable (`max_position_embeddings`, capped by the sliding window and
    /// [`MAX_ROPE_POSITIONS`]).
    pub max_positions: usize,
    /// RMSNorm epsilon.
    pub eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary scaling.
    pub rope: Phi3Rope,
    /// `lm_head` is `embed_tokens`.
    pub tied: bool,
}

/// A list of one positive finite number per rotary frequency (`short_factor`, `long_factor`).
fn factor_list(p: &Value, at: &str, key: &str, half: usize) -> ConfigResult<Vec<f32>> {
    let field = format!("{at}.{key}");
    let Some(list) = p.get(key).and_then(Value::as_array) else {
        return Err(ConfigError::Unsupported(format!(
            "`{field}` must be a list of numbers (longrope)"
        )));
    };
    if list.len() != half {
        return Err(ConfigError::Unsupported(format!(
            "`{field}` has {} entries; head_dim / 2 = {half} are needed",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("{field}[{i}]");
            match v.as_f64() {
                Some(x) => positive(&field, x).map(|x| x as f32),
                None => Err(ConfigError::NotANumber { field }),
            }
        })
        .collect()
}

impl RawPhi3Config {
    /// Checks the configuration: sizes are at least 1 and their products fit, the rotary base
    /// and every scaling number are finite and positive, the factor lists have one entry per
    /// rotary frequency, the norm epsilon is finite and not negative. Partial rotary embeddings
    /// and rope types other than `default` / `longrope` are refused by name.
    pub fn into_config(self) -> ConfigResult<Phi3Config> {
        if !MODEL_TYPES.contains(&self.model_type.as_str()) {
            return Err(ConfigError::Unsupported(format!(
                "model_type {} is not a Phi-3 decoder (supported: {})",
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
        let head_dim = match self.head_dim {
            Some(d) => nonzero("head_dim", d)?,
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
        let max_position_embeddings =
            nonzero("max_position_embeddings", self.max_position_embeddings)?;
        if let Some(w) = self.sliding_window {
            nonzero("sliding_window", w)?;
        }

        // transformers 5 keeps theta and the scaling in `rope_parameters`; 4 in two fields.
        let (p, at) = match (&self.rope_parameters, &self.rope_scaling) {
            (Some(p), _) if !p.is_null() => (Some(p), "rope_parameters"),
            (_, Some(p)) if !p.is_null() => (Some(p), "rope_scaling"),
            _ => (None, "rope_parameters"),
        };
        let theta = match p.and_then(|p| p.get("rope_theta")) {
            None | Some(Value::Null) => match self.rope_theta {
                Some(t) => positive("rope_theta", t)?,
                None => 10_000.0,
            },
            Some(v) => positive(
                &format!("{at}.rope_theta"),
                v.as_f64().ok_or_else(|| ConfigError::NotANumber {
                    field: format!("{at}.rope_theta"),
                })?,
            )?,
        };
        let partial = match p.and_then(|p| p.get("partial_rotary_factor")) {
            None | Some(Value::Null) => self
                .partial_rotary_factor
                .map(|f| ("partial_rotary_factor".to_string(), f)),
            Some(v) => {
                let field = format!("{at}.partial_rotary_factor");
                let f = v.as_f64().ok_or_else(|| ConfigError::NotANumber {
                    field: field.clone(),
                })?;
                Some((field, f))
            }
        };
        if let Some((field, f)) = partial {
            if f != 1.0 {
                return Err(ConfigError::Unsupported(format!(
                    "`{field}` {f} is not supported (only full rotary embeddings, 1.0)"
                )));
            }
        }
        let kind = match p.map(|p| p.get("rope_type").or_else(|| p.get("type"))) {
            None | Some(None) | Some(Some(Value::Null)) => "default",
            Some(Some(Value::String(k))) => k.as_str(),
            Some(Some(_)) => {
                return Err(ConfigError::Unsupported(format!(
                    "`{at}.rope_type` is not a string"
                )))
            }
        };
        let rope = match (kind, p) {
            ("default", _) | (_, None) => Phi3Rope::Default,
            // Phi3Config renames the older "su" (and "yarn") to "longrope".
            ("longrope" | "su" | "yarn", Some(p)) => {
                let half = head_dim / 2;
                let short_factor = factor_list(p, at, "short_factor", half)?;
                let long_factor = factor_list(p, at, "long_factor", half)?;
                let original = match p.get("original_max_position_embeddings") {
                    None | Some(Value::Null) => match self.original_max_position_embeddings {
                        Some(n) => nonzero("original_max_position_embeddings", n)?,
                        None => {
                            return Err(ConfigError::NotANumber {
                                field: format!("{at}.original_max_position_embeddings"),
                            })
                        }
                    },
                    Some(_) => {
                        let field = format!("{at}.original_max_position_embeddings");
                        let x = rope_field(p, at, "original_max_position_embeddings")?;
                        if x.fract() != 0.0 {
                            return Err(ConfigError::Unsupported(format!(
                                "`{field}` {x} is not a whole number of positions"
                            )));
                        }
                        x as usize
                    }
                };
                let factor = match p.get("factor") {
                    None | Some(Value::Null) => max_position_embeddings as f64 / original as f64,
                    Some(_) => rope_field(p, at, "factor")?,
                };
                let attention_factor = match p.get("attention_factor") {
                    None | Some(Value::Null) if factor <= 1.0 => 1.0,
                    None | Some(Value::Null) => (1.0 + factor.ln() / (original as f64).ln()).sqrt(),
                    Some(_) => rope_field(p, at, "attention_factor")?,
                };
                if !attention_factor.is_finite() {
                    return Err(ConfigError::Unsupported(format!(
                        "`{at}.original_max_position_embeddings` {original} gives no finite \
                         attention factor (sqrt(1 + ln({factor}) / ln({original})))"
                    )));
                }
                Phi3Rope::LongRope {
                    short_factor,
                    long_factor,
                    original_max_positions: original,
                    attention_factor,
                }
            }
            (other, _) => {
                return Err(ConfigError::Unsupported(format!(
                    "rope_type {} is not supported for phi3 (supported: default, longrope)",
                    shown(other)
                )))
            }
        };
        let max_positions = max_position_embeddings
            .min(self.sliding_window.unwrap_or(usize::MAX))
            .min(MAX_ROPE_POSITIONS);
        Ok(Phi3Config {
            vocab_size,
            hidden,
            intermediate,
            layers: self.num_hidden_layers,
            heads,
            kv_heads,
            head_dim,
            max_positions,
            eps,
            rope_theta: theta,
            rope,
            tied: self.tie_word_embeddings,
        })
    }
}

/// The `cos`/`sin` table for every usable position (f32), for the frequencies
/// `1 / (factor[i] · theta^(2i/D))` (`factors` `None`: all 1), both multiplied by `scale`;
/// f32 arithmetic as `_compute_longrope_parameters` and `Phi3RotaryEmbedding.forward`.
fn rope_table(
    c: &Phi3Config,
    factors: Option<&[f32]>,
    scale: f64,
    device: &Device,
) -> Result<RopeTable> {
    let d = c.head_dim;
    let base = c.rope_theta as f32;
    let freqs: Vec<f32> = (0..d / 2)
        .map(|i| {
            let ext = factors.map_or(1.0, |f| f[i]);
            1.0 / (ext * base.powf((2 * i) as f32 / d as f32))
        })
        .collect();
    let half = freqs.len();
    let n = c.max_positions;
    let scale = scale as f32;
    let mut cos = Vec::with_capacity(n * half);
    let mut sin = Vec::with_capacity(n * half);
    for p in 0..n {
        for &f in &freqs {
            let a = p as f32 * f;
            cos.push(a.cos() * scale);
            sin.push(a.sin() * scale);
        }
    }
    let cos = Tensor::from_vec(cos, (n, half), device)?;
    let sin = Tensor::from_vec(sin, (n, half), device)?;
    RopeTable::new(&cos, &sin)
}

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_decoder(ctx: &LoadContext) -> Result2<Box<dyn CausalLm>> {
    let config = ctx.config::<RawPhi3Config>("Phi-3")?.into_config()?;
    let prefix = ctx.prefix(PREFIXES, "embed_tokens.weight", "Phi-3")?;
    Ok(Box::new(Phi3::load(ctx.vb.clone(), prefix, config)?))
}

// modeling_phi3.py: Phi3DecoderLayer (Phi3Attention + Phi3MLP).
struct Layer {
    input_norm: NormParams,
    /// `self_attn.qkv_proj`: `[Hq·D | Hk·D | Hk·D]` outputs.
    qkv: Linear,
    o_proj: Linear,
    post_norm: NormParams,
    /// `mlp.gate_up_proj`: `[gate | up]` outputs, as `swiglu_packed` takes them.
    gate_up: Linear,
    down: Linear,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Phi3Config) -> Result<Self> {
        let (h, d) = (c.hidden, c.head_dim);
        let sa = vb.pp("self_attn");
        let mlp = vb.pp("mlp");
        Ok(Layer {
            input_norm: rms_norm(vb.pp("input_layernorm"), h)?,
            qkv: Linear::load(sa.pp("qkv_proj"), h, (c.heads + 2 * c.kv_heads) * d, false)?,
            o_proj: Linear::load(sa.pp("o_proj"), c.heads * d, h, false)?,
            post_norm: rms_norm(vb.pp("post_attention_layernorm"), h)?,
            gate_up: Linear::load(mlp.pp("gate_up_proj"), h, 2 * c.intermediate, false)?,
            down: Linear::load(mlp.pp("down_proj"), c.intermediate, h, false)?,
        })
    }
}

/// `Phi3ForCausalLM`.
pub struct Phi3 {
    embed: Tensor,
    layers: Vec<Layer>,
    norm: NormParams,
    lm_head: Head,
    /// The default table, or longrope's short-factor table.
    rope_short: RopeTable,
    /// longrope's long-factor table and `original_max_position_embeddings`.
    rope_long: Option<(RopeTable, usize)>,
    shape: DecoderShape,
    /// The checked configuration.
    pub config: Phi3Config,
}

impl Phi3 {
    /// Loads from `vb` positioned at the checkpoint's root; `prefix` is what
    /// [`load_decoder`] found.
    pub fn load(vb: VarBuilder, prefix: &str, config: Phi3Config) -> Result<Self> {
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
        let dev = embed.device();
        let (rope_short, rope_long) = match &c.rope {
            Phi3Rope::Default => (rope_table(c, None, 1.0, dev)?, None),
            Phi3Rope::LongRope {
                short_factor,
                long_factor,
                original_max_positions,
                attention_factor,
            } => (
                rope_table(c, Some(short_factor), *attention_factor, dev)?,
                Some((
                    rope_table(c, Some(long_factor), *attention_factor, dev)?,
                    *original_max_positions,
                )),
            ),
        };
        let shape = DecoderShape {
            layers: c.layers,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            vocab_size: c.vocab_size,
            max_positions: c.max_positions,
        };
        Ok(Phi3 {
            embed,
            layers,
            norm,
            lm_head,
            rope_short,
            rope_long,
            shape,
            config,
        })
    }

    /// The table rotating a pass whose sequence is `len` long after it (module docs).
    fn rope_for(&self, len: usize) -> &RopeTable {
        match &self.rope_long {
            Some((long, original)) if len > *original => long,
            _ => &self.rope_short,
        }
    }
}

impl CausalLm for Phi3 {
    fn shape(&self) -> &DecoderShape {
        &self.shape
    }

    // modeling_phi3.py: Phi3ForCausalLM.prepare_inputs_for_generation drops the cache when the
    // input first reaches `original_max_position_embeddings + 1` tokens.
    fn recompute_past(&self) -> Option<usize> {
        self.rope_long.as_ref().map(|(_, original)| *original)
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

    // modeling_phi3.py: Phi3Model.forward, then Phi3ForCausalLM's lm_head.
    fn forward(&self, ids: &[u32], cache: &mut KvCache, which: Logits) -> Result<Tensor> {
        let c = &self.config;
        let ids_t = check_ids(ids, cache, &self.shape, self.device())?;
        let t = ids.len();
        let past = cache.len();
        let rope = self.rope_for(past + t);
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
                let (q, k) = rope_qk(&q, &k, rope, past, RopeLayout::HalfSplit)?;
                l.o_proj
                    .forward(&cached_attention(cache, i, &q, &k, &v, scale)?)
            },
            |l, x| l.down.forward(&swiglu_packed(&l.gate_up.forward(x)?)?),
        )?;
        cache.advance(t)?;
        project_logits(&h, &self.lm_head, which)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "model_type": "phi3", "vocab_size": 384, "hidden_size": 64,
            "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 64,
            "original_max_position_embeddings": 16, "rms_norm_eps": 1e-5,
            "rope_parameters": {
                "rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 1.0,
                "original_max_position_embeddings": 16,
                "short_factor": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                "long_factor": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
            }
        })
    }

    fn check(v: Value) -> ConfigResult<Phi3Config> {
        serde_json::from_value::<RawPhi3Config>(v)
            .expect("the test config deserializes")
            .into_config()
    }

    #[test]
    fn longrope_reads_factors_and_the_attention_factor() {
        let c = check(base()).unwrap();
        let Phi3Rope::LongRope {
            long_factor,
            original_max_positions,
            attention_factor,
            ..
        } = &c.rope
        else {
            panic!("{:?}", c.rope)
        };
        assert_eq!((long_factor[7], *original_max_positions), (8.0, 16));
        // factor = 64 / 16 = 4: sqrt(1 + ln 4 / ln 16) = sqrt(1.5).
        assert!((attention_factor - 1.5f64.sqrt()).abs() < 1e-12);
        assert_eq!((c.head_dim, c.max_positions, c.kv_heads), (16, 64, 2));
        // transformers 4 layout: `rope_scaling` with `type: su`, the original length on top.
        let mut v = base();
        let mut p = v
            .as_object_mut()
            .unwrap()
            .remove("rope_parameters")
            .unwrap();
        p.as_object_mut()
            .unwrap()
            .remove("original_max_position_embeddings");
        p["type"] = json!("su");
        p.as_object_mut().unwrap().remove("rope_type");
        v["rope_scaling"] = p;
        assert_eq!(check(v).unwrap().rope, c.rope);
        // No scaling at all (Phi-3-mini-4k), and a sliding window bounding the positions.
        let mut v = base();
        v["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 10000.0});
        v["sliding_window"] = json!(32);
        let c = check(v).unwrap();
        assert_eq!((c.rope.clone(), c.max_positions), (Phi3Rope::Default, 32));
    }

    #[test]
    fn bad_rope_settings_are_refused_by_name() {
        let mut v = base();
        v["rope_parameters"]["partial_rotary_factor"] = json!(0.75);
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("partial_rotary_factor"), "{e}");
        let mut v = base();
        v["rope_parameters"]["long_factor"] = json!([1.0, 2.0]);
        let e = check(v).unwrap_err().to_string();
        assert!(
            e.contains("rope_parameters.long_factor") && e.contains('8'),
            "{e}"
        );
        let mut v = base();
        v["rope_parameters"]["short_factor"][3] = json!(0.0);
        assert_eq!(
            check(v).unwrap_err(),
            ConfigError::NotPositive {
                field: "rope_parameters.short_factor[3]".into(),
                value: 0.0
            }
        );
        let mut v = base();
        v["rope_parameters"]["short_factor"][1] = json!("x");
        assert_eq!(
            check(v).unwrap_err(),
            ConfigError::NotANumber {
                field: "rope_parameters.short_factor[1]".into()
            }
        );
        let mut v = base();
        v["rope_parameters"]["rope_type"] = json!("dynamic");
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("dynamic"), "{e}");
        for key in ["rope_theta", "original_max_position_embeddings"] {
            let mut v = base();
            v["rope_parameters"][key] = json!(-1.0);
            assert_eq!(
                check(v).unwrap_err(),
                ConfigError::NotPositive {
                    field: format!("rope_parameters.{key}"),
                    value: -1.0
                }
            );
        }
        let mut v = base();
        v["rope_parameters"]
            .as_object_mut()
            .unwrap()
            .remove("original_max_position_embeddings");
        v.as_object_mut()
            .unwrap()
            .remove("original_max_position_embeddings");
        let e = check(v).unwrap_err().to_string();
        assert!(e.contains("original_max_position_embeddings"), "{e}");
        for key in [
            "vocab_size",
            "hidden_size",
            "num_key_value_heads",
            "sliding_window",
        ] {
            let mut v = base();
            v[key] = json!(0);
            assert_eq!(
                check(v).unwrap_err(),
                ConfigError::Zero { field: key.into() }
            );
        }
    }
}
