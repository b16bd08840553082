//! CLIP (`model_type: "clip"`, `CLIPModel`) image and text embeddings, mirroring Hugging Face
//! `transformers/models/clip/modeling_clip.py` (`CLIPTextEmbeddings`, `CLIPVisionEmbeddings`,
//! `CLIPAttention`, `CLIPMLP`, `CLIPEncoderLayer`, `CLIPTextTransformer`,
//! `CLIPVisionTransformer`, `CLIPModel.get_text_features` / `get_image_features`). State-dict
//! names load unchanged. Load-time transforms: the patch convolution (kernel = stride = patch,
//! no bias) becomes one matmul over flattened patches, Q/K/V are fused into one projection.
//! `quick_gelu` (`x · sigmoid(1.702 x)`) is unfused (the fused kernels lack it). The outputs are
//! the projected features, *not* normalised: the runtime's `ClipEmbedder` L2-normalises them as
//! `CLIPModel.forward`'s `text_embeds` / `image_embeds` are.

use candle_core::{bail, DType, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use torchless_kernels::activation::Activation;
use torchless_kernels::attention::{flash_attention, AttentionOptions};
use torchless_kernels::norm::{add_layer_norm, NormParams};

use crate::error::{nonzero, positive, ConfigError, ConfigResult};
use crate::family::{layer_norm, LoadContext, Result2};
use crate::{hf_activation, Linear};

/// One tower of `config.json` (`text_config` / `vision_config`), as transformers writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct RawTowerConfig {
    /// Hidden size.
    pub hidden_size: usize,
    /// FFN size.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN activation (`quick_gelu` by default).
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// Text: vocabulary size.
    #[serde(default)]
    pub vocab_size: usize,
    /// Text: positions.
    #[serde(default)]
    pub max_position_embeddings: usize,
    /// Text: the end-of-text id (2 selects transformers' legacy argmax rule).
    #[serde(default = "d_eos")]
    pub eos_token_id: u32,
    /// Vision: input side.
    #[serde(default)]
    pub image_size: usize,
    /// Vision: patch side.
    #[serde(default)]
    pub patch_size: usize,
    /// Vision: channels.
    #[serde(default = "d_channels")]
    pub num_channels: usize,
}

fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}
fn d_eos() -> u32 {
    2
}
fn d_channels() -> usize {
    3
}

/// `config.json` of a `CLIPModel`.
#[derive(Debug, Clone, Deserialize)]
pub struct RawClipConfig {
    /// The text tower.
    pub text_config: RawTowerConfig,
    /// The vision tower.
    pub vision_config: RawTowerConfig,
    /// Size of the shared embedding space.
    #[serde(default = "d_proj")]
    pub projection_dim: usize,
}

fn d_proj() -> usize {
    512
}

/// The MLP activation: a fused one, or quick_gelu (unfused).
#[derive(Debug, Clone, Copy)]
pub enum ClipAct {
    /// A fused activation.
    Fused(Activation),
    /// `x · sigmoid(1.702 x)`.
    QuickGelu,
}

/// One checked tower.
#[derive(Debug, Clone)]
pub struct TowerConfig {
    /// Hidden size.
    pub hidden: usize,
    /// FFN size.
    pub intermediate: usize,
    /// Layers.
    pub layers: usize,
    /// Heads.
    pub heads: usize,
    /// Activation.
    pub act: ClipAct,
    /// LayerNorm epsilon.
    pub eps: f64,
}

/// A checked CLIP configuration.
#[derive(Debug, Clone)]
pub struct ClipConfig {
    /// Text tower.
    pub text: TowerConfig,
    /// Vision tower.
    pub vision: TowerConfig,
    /// Vocabulary size.
    pub vocab: usize,
    /// Text positions.
    pub max_positions: usize,
    /// End-of-text id.
    pub eos_token_id: u32,
    /// Image side.
    pub image_size: usize,
    /// Patch side.
    pub patch: usize,
    /// Embedding size.
    pub projection_dim: usize,
}

fn tower(r: &RawTowerConfig, which: &str) -> ConfigResult<TowerConfig> {
    let hidden = nonzero("hidden_size", r.hidden_size)?;
    let heads = nonzero("num_attention_heads", r.num_attention_heads)?;
    if hidden % heads != 0 {
        return Err(ConfigError::Unsupported(format!(
            "{which}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
        )));
    }
    let act = if r.hidden_act == "quick_gelu" {
        ClipAct::QuickGelu
    } else {
        ClipAct::Fused(hf_activation(&r.hidden_act)?)
    };
    Ok(TowerConfig {
        hidden,
        intermediate: nonzero("intermediate_size", r.intermediate_size)?,
        layers: r.num_hidden_layers,
        heads,
        act,
        eps: positive("layer_norm_eps", r.layer_norm_eps)?,
    })
}

impl RawClipConfig {
    /// Checks the configuration.
    pub fn into_config(self) -> ConfigResult<ClipConfig> {
        let (t, v) = (&self.text_config, &self.vision_config);
        let image_size = nonzero("vision_config.image_size", v.image_size)?;
        let patch = nonzero("vision_config.patch_size", v.patch_size)?;
        if image_size % patch != 0 {
            return Err(ConfigError::Unsupported(format!(
                "image_size {image_size} is not a multiple of patch_size {patch}"
            )));
        }
        if v.num_channels != 3 {
            return Err(ConfigError::Unsupported(format!(
                "num_channels {} is not supported (RGB images: 3)",
                v.num_channels
            )));
        }
        Ok(ClipConfig {
            text: tower(t, "text_config")?,
            vision: tower(v, "vision_config")?,
            vocab: nonzero("text_config.vocab_size", t.vocab_size)?,
            max_positions: nonzero(
                "text_config.max_position_embeddings",
                t.max_position_embeddings,
            )?,
            eos_token_id: t.eos_token_id,
            image_size,
            patch,
            projection_dim: nonzero("projection_dim", self.projection_dim)?,
        })
    }
}

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["clip"];

/// The registry's loader.
pub fn load_clip(ctx: &LoadContext) -> Result2<Box<ClipModel>> {
    let config = ctx.config::<RawClipConfig>("CLIP")?.into_config()?;
    ctx.prefix(&[""], "text_projection.weight", "CLIP")?;
    Ok(Box::new(ClipModel::load(ctx.vb.clone(), config)?))
}

// modeling_clip.py: CLIPEncoderLayer (layer_norm1 → CLIPAttention → residual, layer_norm2 →
// CLIPMLP → residual)
struct Layer {
    ln1: NormParams,
    qkv: Linear,
    out: Linear,
    ln2: NormParams,
    fc1: Linear,
    fc2: Linear,
}

impl Layer {
    fn load(vb: VarBuilder, c: &TowerConfig) -> Result<Self> {
        let h = c.hidden;
        let sa = vb.pp("self_attn");
        Ok(Layer {
            ln1: layer_norm(vb.pp("layer_norm1"), h)?,
            qkv: Linear::load_fused(
                &[
                    (sa.pp("q_proj"), h),
                    (sa.pp("k_proj"), h),
                    (sa.pp("v_proj"), h),
                ],
                h,
                true,
            )?,
            out: Linear::load(sa.pp("out_proj"), h, h, true)?,
            ln2: layer_norm(vb.pp("layer_norm2"), h)?,
            fc1: Linear::load(vb.pp("mlp").pp("fc1"), h, c.intermediate, true)?,
            fc2: Linear::load(vb.pp("mlp").pp("fc2"), c.intermediate, h, true)?,
        })
    }

    fn forward(&self, x: &Tensor, c: &TowerConfig, opts: &AttentionOptions) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let dh = h / c.heads;
        let n = add_layer_norm(x, None, &self.ln1, c.eps)?;
        let qkv = self
            .qkv
            .forward(&n)?
            .reshape((b, t, 3, c.heads, dh))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let ctx = flash_attention(&qkv.get(0)?, &qkv.get(1)?, &qkv.get(2)?, opts)?;
        let ctx = ctx.transpose(1, 2)?.contiguous()?.reshape((b, t, h))?;
        let x = (self.out.forward(&ctx)? + x)?;
        let n = add_layer_norm(&x, None, &self.ln2, c.eps)?;
        let i = match c.act {
            ClipAct::Fused(a) => self.fc1.forward_act(&n, a)?,
            ClipAct::QuickGelu => {
                let y = self.fc1.forward(&n)?;
                (&y * candle_nn::ops::sigmoid(&(&y * 1.702)?)?)?
            }
        };
        self.fc2.forward(&i)? + x
    }
}

fn layers(vb: VarBuilder, c: &TowerConfig) -> Result<Vec<Layer>> {
    (0..c.layers)
        .map(|i| Layer::load(vb.pp("encoder").pp("layers").pp(i), c))
        .collect()
}

/// `CLIPModel` without `logit_scale`: both towers and their projections.
pub struct ClipModel {
    token_embedding: Tensor,
    text_pos: Tensor,
    text_layers: Vec<Layer>,
    final_ln: NormParams,
    text_projection: Linear,
    patch: Linear,
    class_embedding: Tensor,
    vision_pos: Tensor,
    pre_ln: NormParams,
    vision_layers: Vec<Layer>,
    post_ln: NormParams,
    visual_projection: Linear,
    /// The checked configuration.
    pub config: ClipConfig,
}

impl ClipModel {
    /// Loads a `CLIPModel` state dict (names at the root).
    pub fn load(vb: VarBuilder, config: ClipConfig) -> Result<Self> {
        let (t, v, c) = (vb.pp("text_model"), vb.pp("vision_model"), &config);
        let te = t.pp("embeddings");
        let ve = v.pp("embeddings");
        let (h, p) = (c.vision.hidden, c.patch);
        let w = ve.get((h, 3, p, p), "patch_embedding.weight")?;
        let grid = c.image_size / p;
        Ok(ClipModel {
            token_embedding: te.get((c.vocab, c.text.hidden), "token_embedding.weight")?,
            text_pos: te.get(
                (c.max_positions, c.text.hidden),
                "position_embedding.weight",
            )?,
            text_layers: layers(t.clone(), &c.text)?,
            final_ln: layer_norm(t.pp("final_layer_norm"), c.text.hidden)?,
            text_projection: Linear::load(
                vb.pp("text_projection"),
                c.text.hidden,
                c.projection_dim,
                false,
            )?,
            patch: Linear::from_parts(&w.reshape((h, 3 * p * p))?, None)?,
            class_embedding: ve.get(h, "class_embedding")?,
            vision_pos: ve.get((grid * grid + 1, h), "position_embedding.weight")?,
            pre_ln: layer_norm(v.pp("pre_layrnorm"), h)?,
            vision_layers: layers(v.clone(), &c.vision)?,
            post_ln: layer_norm(v.pp("post_layernorm"), h)?,
            visual_projection: Linear::load(
                vb.pp("visual_projection"),
                h,
                c.projection_dim,
                false,
            )?,
            config,
        })
    }

    /// The weights' dtype.
    pub fn dtype(&self) -> DType {
        self.token_embedding.dtype()
    }

    /// `get_text_features`: `[B, projection_dim]` for right-padded `input_ids` `[B, T]` whose
    /// rows have `lengths` real tokens (each ending with the tokenizer's end-of-text token).
    pub fn text_features(&self, input_ids: &Tensor, lengths: &[u32]) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = input_ids.dims2()?;
        if t > c.max_positions {
            bail!(
                "{t} tokens: this CLIP text tower takes at most {}",
                c.max_positions
            );
        }
        let e = self.token_embedding.embedding(&input_ids.flatten_all()?)?;
        let e = e.reshape((b, t, c.text.hidden))?;
        let mut x = e.broadcast_add(&self.text_pos.narrow(0, 0, t)?.unsqueeze(0)?)?;
        let mut opts = AttentionOptions::for_head_dim(c.text.hidden / c.text.heads);
        opts.causal = true;
        opts.key_lengths = Some(lengths.to_vec());
        for layer in &self.text_layers {
            x = layer.forward(&x, &c.text, &opts)?;
        }
        let x = add_layer_norm(&x, None, &self.final_ln, c.text.eps)?;
        // modeling_clip.py: the legacy config (eos_token_id 2) pools at the highest id, else at
        // the first eos_token_id (the last real token when there is none).
        let ids = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let mut rows = Vec::with_capacity(b);
        for (i, row) in ids.iter().enumerate() {
            let len = (lengths[i] as usize).clamp(1, t);
            let real = &row[..len];
            let pos = if c.eos_token_id == 2 {
                let max = real.iter().copied().max().unwrap_or(0);
                real.iter().position(|&x| x == max).unwrap_or(0)
            } else {
                real.iter()
                    .position(|&x| x == c.eos_token_id)
                    .unwrap_or(len - 1)
            };
            rows.push(x.get(i)?.get(pos)?.unsqueeze(0)?);
        }
        let pooled = Tensor::cat(&rows, 0)?;
        self.text_projection.forward(&pooled)
    }

    /// `get_image_features`: `[B, projection_dim]` for `[B, 3, S, S]` preprocessed pixels.
    pub fn image_features(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (b, ch, hh, ww) = x.dims4()?;
        if ch != 3 || hh != c.image_size || ww != c.image_size {
            bail!(
                "input of {ch} × {hh} × {ww} pixels: this CLIP takes 3 × {s} × {s}",
                s = c.image_size
            );
        }
        let (g, p, h) = (c.image_size / c.patch, c.patch, c.vision.hidden);
        let patches = x
            .reshape((b, 3, g, p, g, p))?
            .permute(vec![0, 2, 4, 1, 3, 5])?
            .contiguous()?
            .reshape((b, g * g, 3 * p * p))?;
        let e = self.patch.forward(&patches)?;
        let cls = self
            .class_embedding
            .to_dtype(e.dtype())?
            .reshape((1, 1, h))?
            .expand((b, 1, h))?;
        let x = Tensor::cat(&[&cls, &e], 1)?.broadcast_add(&self.vision_pos.unsqueeze(0)?)?;
        let mut x = add_layer_norm(&x, None, &self.pre_ln, c.vision.eps)?;
        let opts = AttentionOptions::for_head_dim(h / c.vision.heads);
        for layer in &self.vision_layers {
            x = layer.forward(&x, &c.vision, &opts)?;
        }
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        let pooled = add_layer_norm(&cls, None, &self.post_ln, c.vision.eps)?;
        self.visual_projection.forward(&pooled)
    }
}
