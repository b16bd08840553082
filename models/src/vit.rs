//! Vision Transformers for image classification, mirroring Hugging Face
//! `transformers/models/vit/modeling_vit.py` (`ViTPatchEmbeddings`, `ViTEmbeddings`,
//! `ViTSelfAttention`, `ViTSelfOutput`, `ViTIntermediate`, `ViTOutput`, `ViTLayer`,
//! `ViTForImageClassification`). State-dict names load unchanged, with or without the `vit.`
//! prefix. Load-time transforms: the patch convolution (kernel = stride = patch size) becomes
//! one matmul over flattened patches, Q/K/V are fused into one projection, LayerNorm parameters
//! packed for the fused kernels. Position embeddings are used at the config's `image_size` only:
//! another input size is refused (no `interpolate_pos_encoding`).

use candle_core::{bail, Result, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use torchless_kernels::activation::Activation;
use torchless_kernels::attention::{flash_attention, AttentionOptions};
use torchless_kernels::norm::{add_layer_norm, NormParams};

use crate::error::{nonzero, positive, ConfigError, ConfigResult};
use crate::family::{layer_norm, num_labels, ImageClassifier, LoadContext, Result2};
use crate::{hf_activation, Linear};

/// `config.json` of a ViT model, as Hugging Face writes it (`ViTConfig`).
#[derive(Debug, Clone, Deserialize)]
pub struct RawViTConfig {
    /// Hidden size.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// Number of layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// FFN size.
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    /// FFN activation.
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// Input image side (square).
    #[serde(default = "d_image")]
    pub image_size: usize,
    /// Patch side.
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    /// Input channels.
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    /// Whether Q/K/V have biases.
    #[serde(default = "d_true")]
    pub qkv_bias: bool,
}

fn d_hidden() -> usize {
    768
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_inter() -> usize {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_eps() -> f64 {
    1e-12
}
fn d_image() -> usize {
    224
}
fn d_patch() -> usize {
    16
}
fn d_channels() -> usize {
    3
}
fn d_true() -> bool {
    true
}

/// A checked ViT configuration.
#[derive(Debug, Clone)]
pub struct ViTConfig {
    /// Hidden size.
    pub hidden: usize,
    /// Layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN size.
    pub intermediate: usize,
    /// FFN activation.
    pub act: Activation,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// Input image side.
    pub image_size: usize,
    /// Patch side.
    pub patch: usize,
    /// Whether Q/K/V have biases.
    pub qkv_bias: bool,
    /// Output classes.
    pub num_labels: usize,
}

impl ViTConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch
    }
}

impl RawViTConfig {
    /// Checks the configuration; `num_labels` comes from the config's `num_labels`/`id2label`.
    pub fn into_config(self, num_labels: usize) -> ConfigResult<ViTConfig> {
        let hidden = nonzero("hidden_size", self.hidden_size)?;
        let heads = nonzero("num_attention_heads", self.num_attention_heads)?;
        if hidden % heads != 0 {
            return Err(ConfigError::Unsupported(format!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
            )));
        }
        let image_size = nonzero("image_size", self.image_size)?;
        let patch = nonzero("patch_size", self.patch_size)?;
        if image_size % patch != 0 {
            return Err(ConfigError::Unsupported(format!(
                "image_size {image_size} is not a multiple of patch_size {patch}"
            )));
        }
        if self.num_channels != 3 {
            return Err(ConfigError::Unsupported(format!(
                "num_channels {} is not supported (RGB images: 3)",
                self.num_channels
            )));
        }
        let eps = positive("layer_norm_eps", self.layer_norm_eps)?;
        Ok(ViTConfig {
            hidden,
            layers: self.num_hidden_layers,
            heads,
            intermediate: nonzero("intermediate_size", self.intermediate_size)?,
            act: hf_activation(&self.hidden_act)?,
            eps,
            image_size,
            patch,
            qkv_bias: self.qkv_bias,
            num_labels,
        })
    }
}

/// `model_type`s this file loads.
pub const MODEL_TYPES: &[&str] = &["vit"];

/// Where a ViT's tensors can sit: `ViTForImageClassification` under `vit.`, `ViTModel` at the
/// root.
pub const PREFIXES: &[&str] = &["vit.", ""];

/// The registry's loader: `config.json` checked, the prefix decided from the keys.
pub fn load_image_classifier(ctx: &LoadContext) -> Result2<Box<dyn ImageClassifier>> {
    let n = num_labels(ctx.config)?;
    let config = ctx.config::<RawViTConfig>("ViT")?.into_config(n)?;
    let prefix = ctx.prefix(PREFIXES, "embeddings.cls_token", "ViT")?;
    Ok(Box::new(ViTForImageClassification::load(
        ctx.under(prefix),
        ctx.vb.pp("classifier"),
        config,
    )?))
}

// modeling_vit.py: ViTEmbeddings (ViTPatchEmbeddings' Conv2d as a matmul over patches)
struct Embeddings {
    /// `[3·p·p] -> [H]`, input ordered (channel, row, column) as the conv weight is.
    patch: Linear,
    /// `[1, 1, H]`.
    cls: Tensor,
    /// `[1, 1 + grid², H]`.
    pos: Tensor,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &ViTConfig) -> Result<Self> {
        let p = c.patch;
        let proj = vb.pp("patch_embeddings").pp("projection");
        let w = proj.get((c.hidden, 3, p, p), "weight")?;
        let b = proj.get(c.hidden, "bias")?;
        let patch = Linear::from_parts(&w.reshape((c.hidden, 3 * p * p))?, Some(b))?;
        let n = c.grid() * c.grid();
        Ok(Embeddings {
            patch,
            cls: vb.get((1, 1, c.hidden), "cls_token")?,
            pos: vb.get((1, n + 1, c.hidden), "position_embeddings")?,
        })
    }

    fn forward(&self, x: &Tensor, c: &ViTConfig) -> Result<Tensor> {
        let (b, _, _, _) = x.dims4()?;
        let (g, p) = (c.grid(), c.patch);
        // [B, 3, g·p, g·p] -> [B, g, g, 3, p, p] -> [B, g², 3·p·p]
        let patches = x
            .reshape((b, 3, g, p, g, p))?
            .permute(vec![0, 2, 4, 1, 3, 5])?
            .contiguous()?
            .reshape((b, g * g, 3 * p * p))?;
        let e = self.patch.forward(&patches)?;
        let cls = self.cls.to_dtype(e.dtype())?.expand((b, 1, c.hidden))?;
        Tensor::cat(&[&cls, &e], 1)?.broadcast_add(&self.pos)
    }
}

// modeling_vit.py: ViTLayer (pre-norm: layernorm_before → attention → residual,
// layernorm_after → ViTIntermediate → ViTOutput → residual)
struct Layer {
    ln_before: NormParams,
    qkv: Linear,
    attn_out: Linear,
    ln_after: NormParams,
    inter: Linear,
    out: Linear,
}

impl Layer {
    fn load(vb: VarBuilder, c: &ViTConfig) -> Result<Self> {
        let h = c.hidden;
        let sa = vb.pp("attention").pp("attention");
        Ok(Layer {
            ln_before: layer_norm(vb.pp("layernorm_before"), h)?,
            qkv: Linear::load_fused(
                &[(sa.pp("query"), h), (sa.pp("key"), h), (sa.pp("value"), h)],
                h,
                c.qkv_bias,
            )?,
            attn_out: Linear::load(vb.pp("attention").pp("output").pp("dense"), h, h, true)?,
            ln_after: layer_norm(vb.pp("layernorm_after"), h)?,
            inter: Linear::load(vb.pp("intermediate").pp("dense"), h, c.intermediate, true)?,
            out: Linear::load(vb.pp("output").pp("dense"), c.intermediate, h, true)?,
        })
    }

    fn forward(&self, x: &Tensor, c: &ViTConfig, opts: &AttentionOptions) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let dh = h / c.heads;
        let n = add_layer_norm(x, None, &self.ln_before, c.eps)?;
        // [B, T, 3H] -> [3, B, heads, T, dh]
        let qkv = self
            .qkv
            .forward(&n)?
            .reshape((b, t, 3, c.heads, dh))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let ctx = flash_attention(&qkv.get(0)?, &qkv.get(1)?, &qkv.get(2)?, opts)?;
        let ctx = ctx.transpose(1, 2)?.contiguous()?.reshape((b, t, h))?;
        let x = (self.attn_out.forward(&ctx)? + x)?;
        let n = add_layer_norm(&x, None, &self.ln_after, c.eps)?;
        let i = self.inter.forward_act(&n, c.act)?;
        self.out.forward(&i)? + x
    }
}

/// `ViTForImageClassification`: `ViTModel` without the pooler, its final LayerNorm, and the
/// `classifier` on the CLS token.
pub struct ViTForImageClassification {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    final_ln: NormParams,
    classifier: Linear,
    /// The checked configuration.
    pub config: ViTConfig,
}

impl ViTForImageClassification {
    /// Loads the encoder from `vb` (at the checkpoint's `vit.` prefix) and the head from `head`
    /// (`classifier`).
    pub fn load(vb: VarBuilder, head: VarBuilder, config: ViTConfig) -> Result<Self> {
        let layers = (0..config.layers)
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), &config))
            .collect::<Result<Vec<_>>>()?;
        Ok(ViTForImageClassification {
            embeddings: Embeddings::load(vb.pp("embeddings"), &config)?,
            layers,
            final_ln: layer_norm(vb.pp("layernorm"), config.hidden)?,
            classifier: Linear::load(head, config.hidden, config.num_labels, true)?,
            config,
        })
    }

    /// Logits `[B, num_labels]` for `[B, 3, image_size, image_size]` preprocessed pixels.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let (_, ch, h, w) = x.dims4()?;
        if ch != 3 || h != c.image_size || w != c.image_size {
            bail!(
                "input of {ch} × {h} × {w} pixels: this ViT takes 3 × {s} × {s} (its config's \
                 image_size {s}; position embeddings are not interpolated)",
                s = c.image_size
            );
        }
        let mut x = self.embeddings.forward(x, c)?;
        let opts = AttentionOptions::for_head_dim(c.hidden / c.heads);
        for layer in &self.layers {
            x = layer.forward(&x, c, &opts)?;
        }
        let x = add_layer_norm(&x, None, &self.final_ln, c.eps)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        self.classifier.forward(&cls)
    }
}

impl ImageClassifier for ViTForImageClassification {
    fn forward(&self, nchw: &Tensor) -> Result<Tensor> {
        ViTForImageClassification::forward(self, nchw)
    }

    fn num_classes(&self) -> usize {
        self.config.num_labels
    }

    fn image_size(&self) -> Option<(usize, usize)> {
        Some((self.config.image_size, self.config.image_size))
    }
}
