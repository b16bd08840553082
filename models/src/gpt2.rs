//! GPT-2, mirroring Hugging Face `transformers/models/gpt2/modeling_gpt2.py` (`GPT2Attention`,
//! `GPT2MLP`, `GPT2Block`, `GPT2Model`, `GPT2LMHeadModel`). State-dict names load unchanged, with
//! or without the `transformer.` prefix. GPT-2's `Conv1D` stores weights as `[in, out]`, which
//! is already the layout the matmuls want, so they are used as stored. `lm_head.weight` is tied
//! to `wte.weight`: the checkpoint may hold both names for one storage or only one of them.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use torchless_kernels::activation::Activation;
use torchless_kernels::norm::NormParams;

use crate::decoder::{
    advance_all, batched_decode_attention, cached_attention, check_batch, check_ids, output_head,
    pre_norm_stack, project_batch_logits, project_logits, split_qkv, under_prefix, CausalLm,
    DecoderShape, Head, Logits, PreNormBlock,
};
use crate::error::{fits, non_negative, nonzero};
use crate::family::{layer_norm, LoadContext, Result2};
use crate::{hf_activation, ConfigError, ConfigResult, KvCache, Linear};

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["gpt2"];

/// `config.json` of a GPT-2 model, as Hugging Face writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RawGpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Learned position table size.
    pub n_positions: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Layers.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP size (`None`: `4 · n_embd`).
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// MLP activation (`gelu_new` for GPT-2).
    #[serde(default = "default_act")]
    pub activation_function: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Scale attention scores by `1/sqrt(head_dim)` (GPT-2: true).
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    /// Also divide by `layer_idx + 1` (not supported).
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Tie `lm_head` to `wte` (GPT-2: true).
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
    /// Cross-attention layers (encoder-decoder use; not supported).
    #[serde(default)]
    pub add_cross_attention: bool,
}

fn default_act() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// A checked GPT-2 configuration.
#[derive(Debug, Clone)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Learned positions.
    pub max_positions: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Heads.
    pub heads: usize,
    /// MLP size.
    pub inner: usize,
    /// MLP activation.
    pub act: Activation,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// Attention score scale.
    pub scale: f32,
    /// Whether `lm_head` is `wte`.
    pub tied: bool,
}

impl RawGpt2Config {
    /// Checks the configuration: sizes are at least 1, `n_embd` is a multiple of `n_head`,
    /// the products of the sizes fit, the LayerNorm epsilon is finite and not negative. A
    /// refusal names the field and its value.
    pub fn into_config(self) -> ConfigResult<Gpt2Config> {
        let vocab_size = nonzero("vocab_size", self.vocab_size)?;
        let max_positions = nonzero("n_positions", self.n_positions)?;
        let hidden = nonzero("n_embd", self.n_embd)?;
        let heads = nonzero("n_head", self.n_head)?;
        if hidden % heads != 0 {
            return Err(ConfigError::Unsupported(format!(
                "n_embd {hidden} is not a multiple of n_head {heads}"
            )));
        }
        if self.scale_attn_by_inverse_layer_idx {
            return Err(ConfigError::Unsupported(
                "scale_attn_by_inverse_layer_idx = true is not supported".into(),
            ));
        }
        if self.add_cross_attention {
            return Err(ConfigError::Unsupported(
                "add_cross_attention = true (an encoder-decoder GPT-2) is not supported".into(),
            ));
        }
        let inner = match self.n_inner {
            Some(n) => nonzero("n_inner", n)?,
            None => fits("n_embd", hidden, &[4, hidden])?,
        };
        // c_attn is [n_embd, 3·n_embd], c_fc [n_embd, n_inner], wte and wpe [*, n_embd].
        fits("n_embd", hidden, &[3, hidden, hidden])?;
        fits("n_inner", inner, &[inner, hidden])?;
        fits("vocab_size", vocab_size, &[vocab_size, hidden])?;
        fits("n_positions", max_positions, &[max_positions, hidden])?;
        let eps = non_negative("layer_norm_epsilon", self.layer_norm_epsilon)?;
        let act = hf_activation(&self.activation_function)?;
        let head_dim = hidden / heads;
        Ok(Gpt2Config {
            vocab_size,
            max_positions,
            hidden,
            layers: self.n_layer,
            heads,
            inner,
            act,
            eps,
            scale: if self.scale_attn_weights {
                1.0 / (head_dim as f32).sqrt()
            } else {
                1.0
            },
            tied: self.tie_word_embeddings,
        })
    }
}

/// Where GPT-2's tensors can sit: `GPT2LMHeadModel` under `transformer.`, `GPT2Model` at the
/// root.
pub const PREFIXES: &[&str] = &["transformer.", ""];

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_decoder(ctx: &LoadContext) -> Result2<Box<dyn CausalLm>> {
    let config = ctx.config::<RawGpt2Config>("GPT-2")?.into_config()?;
    let prefix = ctx.prefix(PREFIXES, "wte.weight", "GPT-2")?;
    Ok(Box::new(Gpt2::load(ctx.vb.clone(), prefix, config)?))
}

/// `Conv1D`: `weight` `[in, out]`, `bias` `[out]`, used as stored.
fn conv1d(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Linear> {
    let w = vb.get((in_dim, out_dim), "weight")?;
    let b = vb.get(out_dim, "bias")?;
    Ok(Linear::from_transposed(w, Some(b)))
}

// modeling_gpt2.py: GPT2Block (GPT2Attention + GPT2MLP)
struct Block {
    ln_1: NormParams,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: NormParams,
    c_fc: Linear,
    mlp_proj: Linear,
}

impl Block {
    fn load(vb: VarBuilder, c: &Gpt2Config) -> Result<Self> {
        let h = c.hidden;
        let attn = vb.pp("attn");
        let mlp = vb.pp("mlp");
        Ok(Block {
            ln_1: layer_norm(vb.pp("ln_1"), h)?,
            c_attn: conv1d(attn.pp("c_attn"), h, 3 * h)?,
            attn_proj: conv1d(attn.pp("c_proj"), h, h)?,
            ln_2: layer_norm(vb.pp("ln_2"), h)?,
            c_fc: conv1d(mlp.pp("c_fc"), h, c.inner)?,
            mlp_proj: conv1d(mlp.pp("c_proj"), c.inner, h)?,
        })
    }
}

/// `GPT2LMHeadModel`: the transformer and the (tied) language-model head.
pub struct Gpt2 {
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: NormParams,
    lm_head: Head,
    shape: DecoderShape,
    /// The checked configuration.
    pub config: Gpt2Config,
}

impl Gpt2 {
    /// Loads from `vb` positioned at the checkpoint's root; `prefix` is what
    /// [`load_decoder`] found. `lm_head.weight` is used when present and not tied, else `wte`.
    pub fn load(vb: VarBuilder, prefix: &str, config: Gpt2Config) -> Result<Self> {
        let tvb = under_prefix(&vb, prefix);
        let c = &config;
        let wte = tvb.pp("wte").get((c.vocab_size, c.hidden), "weight")?;
        let wpe = tvb.pp("wpe").get((c.max_positions, c.hidden), "weight")?;
        let blocks = (0..c.layers)
            .map(|i| Block::load(tvb.pp("h").pp(i), c))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = layer_norm(tvb.pp("ln_f"), c.hidden)?;
        let lm_head = output_head(&vb, &wte, c.tied, c.vocab_size, c.hidden)?;
        let shape = DecoderShape {
            layers: c.layers,
            kv_heads: c.heads,
            head_dim: c.hidden / c.heads,
            vocab_size: c.vocab_size,
            max_positions: c.max_positions,
        };
        Ok(Gpt2 {
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head,
            shape,
            config,
        })
    }
}

impl CausalLm for Gpt2 {
    fn shape(&self) -> &DecoderShape {
        &self.shape
    }

    fn quantize(&mut self, q: crate::decoder::Quantize) -> Result<()> {
        crate::decoder::quantize_linears(
            q,
            self.blocks.iter_mut().flat_map(|l| {
                [
                    &mut l.c_attn,
                    &mut l.attn_proj,
                    &mut l.c_fc,
                    &mut l.mlp_proj,
                ]
            }),
            &mut self.lm_head,
        )
    }

    fn dtype(&self) -> DType {
        self.wte.dtype()
    }

    fn device(&self) -> &Device {
        self.wte.device()
    }

    // modeling_gpt2.py: GPT2Model.forward, then GPT2LMHeadModel's lm_head.
    fn forward(&self, ids: &[u32], cache: &mut KvCache, which: Logits) -> Result<Tensor> {
        let c = &self.config;
        let ids_t = check_ids(ids, cache, &self.shape, self.device())?;
        let t = ids.len();
        let past = cache.len();
        let x = self
            .wte
            .index_select(&ids_t, 0)?
            .add(&self.wpe.narrow(0, past, t)?)?
            .reshape((1, t, c.hidden))?;
        let hd = c.hidden / c.heads;
        let h = pre_norm_stack(
            x,
            &self.blocks,
            c.eps,
            &self.ln_f,
            |b| PreNormBlock {
                norm1: &b.ln_1,
                norm2: &b.ln_2,
            },
            |i, b, x| {
                let (q, k, v) = split_qkv(&b.c_attn.forward(x)?, c.heads, c.heads, hd)?;
                b.attn_proj
                    .forward(&cached_attention(cache, i, &q, &k, &v, c.scale)?)
            },
            |b, x| b.mlp_proj.forward(&b.c_fc.forward_act(x, c.act)?),
        )?;
        cache.advance(t)?;
        project_logits(&h, &self.lm_head, which)
    }

    // The same stack for one new token of each of B sequences: every Conv1D and the head as
    // one matmul over B rows, each row's position embedding and attention its own.
    fn decode_batch(&self, ids: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let c = &self.config;
        check_batch(ids, caches, &self.shape)?;
        let b = ids.len();
        let dev = self.device();
        let positions = caches
            .iter()
            .map(|cache| u32::try_from(cache.len()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| candle_core::Error::Msg("a position beyond u32".into()))?;
        let x = self
            .wte
            .index_select(&Tensor::new(ids, dev)?, 0)?
            .add(&self.wpe.index_select(&Tensor::new(positions, dev)?, 0)?)?
            .reshape((b, 1, c.hidden))?;
        let hd = c.hidden / c.heads;
        let h = pre_norm_stack(
            x,
            &self.blocks,
            c.eps,
            &self.ln_f,
            |b| PreNormBlock {
                norm1: &b.ln_1,
                norm2: &b.ln_2,
            },
            |i, b, x| {
                let (q, k, v) = split_qkv(&b.c_attn.forward(x)?, c.heads, c.heads, hd)?;
                let ctx = batched_decode_attention(caches, i, (&q, &k, &v), c.scale, |q, k, _| {
                    Ok((q.clone(), k.clone()))
                })?;
                b.attn_proj.forward(&ctx)
            },
            |b, x| b.mlp_proj.forward(&b.c_fc.forward_act(x, c.act)?),
        )?;
        advance_all(caches)?;
        project_batch_logits(&h, &self.lm_head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn base() -> Value {
        json!({
            "vocab_size": 384, "n_positions": 64, "n_embd": 64, "n_layer": 2, "n_head": 4,
            "layer_norm_epsilon": 1e-5
        })
    }

    fn check(v: Value) -> ConfigResult<Gpt2Config> {
        serde_json::from_value::<RawGpt2Config>(v)
            .expect("the test config deserializes")
            .into_config()
    }

    #[test]
    fn the_base_config_loads() {
        let c = check(base()).unwrap();
        assert_eq!((c.max_positions, c.heads, c.inner), (64, 4, 256));
        assert_eq!(c.scale, 0.25);
    }

    #[test]
    fn zero_sizes_bad_epsilons_and_overflow_are_refused_by_name() {
        for key in ["vocab_size", "n_positions", "n_embd", "n_head", "n_inner"] {
            let mut v = base();
            v[key] = json!(0);
            assert_eq!(
                check(v).unwrap_err(),
                ConfigError::Zero { field: key.into() },
                "{key}"
            );
        }
        let mut v = base();
        v["n_head"] = json!(5);
        assert!(check(v).unwrap_err().to_string().contains("n_head 5"));
        for bad in [-1e-5, -1.0] {
            let mut v = base();
            v["layer_norm_epsilon"] = json!(bad);
            assert_eq!(
                check(v).unwrap_err(),
                ConfigError::Negative {
                    field: "layer_norm_epsilon".into(),
                    value: bad
                }
            );
        }
        let mut v = base();
        v["n_embd"] = json!(1u64 << 40);
        v["n_head"] = json!(1);
        assert!(matches!(
            check(v).unwrap_err(),
            ConfigError::TooLarge { field, .. } if field == "n_embd"
        ));
        let mut v = base();
        v["n_positions"] = json!(u64::MAX);
        assert!(matches!(
            check(v).unwrap_err(),
            ConfigError::TooLarge { field, .. } if field == "n_positions"
        ));
        let mut v = base();
        v["activation_function"] = json!("swiglu");
        assert_eq!(
            check(v).unwrap_err().to_string(),
            "activation \"swiglu\" is not supported"
        );
    }
}
