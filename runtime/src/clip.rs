//! [`ClipEmbedder`]: CLIP (`CLIPModel`) image and text embeddings in one space, as
//! `CLIPModel.forward` returns them in `image_embeds` / `text_embeds`: `get_image_features` /
//! `get_text_features` (the pooled tower output through `visual_projection` /
//! `text_projection`), then L2-normalised. (sentence-transformers' CLIP wrapper does not
//! normalise by default; torchless follows transformers' `forward`.) Images are preprocessed as
//! [`ClipImageProcessor`] reads `preprocessor_config.json`.

use std::path::Path;

use candle_core::{Device, Tensor};
use torchless_models::clip::ClipModel;

use crate::encoder::{l2_normalize, load_tokenizer};
use crate::error::{Error, Result};
use crate::preprocess::{load_image, pil_resize, Resample, RgbImage};
use crate::registry::{LoadOptions, Source, Task};

/// Hugging Face's `CLIPImageProcessor` (its PIL backend) as `preprocessor_config.json`
/// configures it: resize the shortest edge to `size.shortest_edge` (the longer side
/// `int(edge · long / short)`), center crop to `crop_size` (offsets `(size − crop) // 2`), rescale
/// and normalise. `resample` 3 (Pillow bicubic, the hub's default) and 2 (bilinear) are
/// reproduced bit for bit; the other filters are refused by name.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    /// The shortest edge after resizing.
    pub shortest_edge: usize,
    /// The resize filter.
    pub resample: Resample,
    /// `(height, width)` of the center crop.
    pub crop: (usize, usize),
    /// Multiplies the 8-bit values.
    pub rescale: f32,
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

#[derive(serde::Deserialize)]
struct RawClipProcessor {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<serde_json::Value>,
    #[serde(default = "bicubic")]
    resample: u64,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<serde_json::Value>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "inv255")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: Option<Vec<f32>>,
    image_std: Option<Vec<f32>>,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u64 {
    3
}
fn inv255() -> f64 {
    1.0 / 255.0
}

/// OpenAI CLIP's channel means.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// OpenAI CLIP's channel standard deviations.
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

impl ClipImageProcessor {
    /// Reads `preprocessor_config.json` of a CLIP model folder (required).
    pub fn from_dir(dir: &Path) -> Result<ClipImageProcessor> {
        let path = dir.join("preprocessor_config.json");
        let text = std::fs::read_to_string(&path).map_err(|cause| Error::Io {
            path: path.clone(),
            cause,
        })?;
        let bad = |reason: String| Error::Config {
            file: path.clone(),
            reason,
        };
        let raw: RawClipProcessor = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a CLIPImageProcessor configuration: {e}")))?;
        if !raw.do_resize || !raw.do_center_crop {
            return Err(bad(
                "do_resize and do_center_crop must be true (a CLIP model takes a fixed size)"
                    .into(),
            ));
        }
        let resample = Resample::from_pil(raw.resample).map_err(bad)?;
        let get = |v: &Option<serde_json::Value>, k: &str| {
            v.as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .filter(|&v| v > 0)
        };
        let shortest_edge = get(&raw.size, "shortest_edge")
            .ok_or_else(|| bad("size must be {\"shortest_edge\": N} with N > 0".into()))?;
        let crop = match (get(&raw.crop_size, "height"), get(&raw.crop_size, "width")) {
            (Some(h), Some(w)) => (h, w),
            _ => {
                return Err(bad(
                    "crop_size must be {\"height\": H, \"width\": W} with H, W > 0".into(),
                ))
            }
        };
        if !raw.rescale_factor.is_finite() {
            return Err(bad("rescale_factor is not finite".into()));
        }
        let three = |v: Option<Vec<f32>>, d: [f32; 3], field: &str| -> Result<[f32; 3]> {
            match v {
                None => Ok(d),
                Some(v) => <[f32; 3]>::try_from(v.as_slice())
                    .map_err(|_| bad(format!("{field} must have 3 values (RGB)"))),
            }
        };
        let (mean, std) = if raw.do_normalize {
            let mean = three(raw.image_mean, CLIP_MEAN, "image_mean")?;
            let std = three(raw.image_std, CLIP_STD, "image_std")?;
            if std.iter().any(|s| !s.is_finite() || *s == 0.0) {
                return Err(bad("image_std has a zero or non-finite value".into()));
            }
            (mean, std)
        } else {
            ([0.0; 3], [1.0; 3])
        };
        Ok(ClipImageProcessor {
            shortest_edge,
            resample,
            crop,
            rescale: if raw.do_rescale {
                raw.rescale_factor as f32
            } else {
                1.0
            },
            mean,
            std,
        })
    }

    /// Applies the processor: `[3, crop_h, crop_w]` CHW f32.
    pub fn apply(&self, img: &RgbImage) -> std::result::Result<Vec<f32>, String> {
        let (w, h) = (img.width, img.height);
        if w == 0 || h == 0 || img.data.len() != w * h * 3 {
            return Err(format!("an empty or inconsistent {w}x{h} image"));
        }
        let s = self.shortest_edge;
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = (s as f64 * long as f64 / short as f64) as usize;
        let (nw, nh) = if w <= h { (s, new_long) } else { (new_long, s) };
        let resized;
        let img = if (nw, nh) != (w, h) {
            resized = pil_resize(img, nw, nh, self.resample);
            &resized
        } else {
            img
        };
        let (ch, cw) = self.crop;
        if img.width < cw || img.height < ch {
            return Err(format!(
                "a {}x{} image is smaller than the {cw}x{ch} crop",
                img.width, img.height
            ));
        }
        let (top, left) = ((img.height - ch) / 2, (img.width - cw) / 2);
        let hw = ch * cw;
        let mut out = vec![0f32; 3 * hw];
        for y in 0..ch {
            for x in 0..cw {
                let p = ((top + y) * img.width + left + x) * 3;
                for c in 0..3 {
                    out[c * hw + y * cw + x] =
                        (img.data[p + c] as f32 * self.rescale - self.mean[c]) / self.std[c];
                }
            }
        }
        Ok(out)
    }

    /// Decodes `path` and applies the processor.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        let img = load_image(path)?;
        self.apply(&img).map_err(|reason| Error::Input {
            path: path.to_path_buf(),
            reason,
        })
    }
}

/// A CLIP model folder loaded for embeddings: `config.json` (`model_type: "clip"`), the weights,
/// `tokenizer.json` and `preprocessor_config.json`. Immutable and `Send + Sync`.
pub struct ClipEmbedder {
    model: Box<ClipModel>,
    tokenizer: tokenizers::Tokenizer,
    processor: ClipImageProcessor,
    name: String,
    device: Device,
}

impl ClipEmbedder {
    /// Loads a CLIP model folder.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let source = Source::open(dir, Task::ImageTextEmbed, opts)?;
        let model = source.clip()?;
        let tokenizer = load_tokenizer(dir, model.config.max_positions)?;
        let processor = ClipImageProcessor::from_dir(dir)?;
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(ClipEmbedder {
            model,
            tokenizer,
            processor,
            name,
            device: source.device.clone(),
        })
    }

    /// The folder's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Embedding size (`projection_dim`).
    pub fn dim(&self) -> usize {
        self.model.config.projection_dim
    }

    /// The image processor of the folder.
    pub fn processor(&self) -> &ClipImageProcessor {
        &self.processor
    }

    /// L2-normalised text embeddings (`text_embeds`), one per text, in order. Texts longer than
    /// the text tower's positions are truncated.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let t = enc
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(1)
            .max(1);
        let mut ids = vec![0u32; texts.len() * t];
        let mut lengths = Vec::with_capacity(texts.len());
        for (i, e) in enc.iter().enumerate() {
            let row = e.get_ids();
            ids[i * t..i * t + row.len()].copy_from_slice(row);
            lengths.push(row.len() as u32);
        }
        let ids = Tensor::from_vec(ids, (texts.len(), t), &self.device)?;
        let f = self.model.text_features(&ids, &lengths)?;
        Ok(normalized_rows(&f)?)
    }

    /// The side of the square images [`ClipEmbedder::embed_images`] takes (the config's
    /// `image_size`).
    pub fn image_size(&self) -> usize {
        self.model.config.image_size
    }

    /// L2-normalised image embeddings (`image_embeds`) of preprocessed pixels: `n` CHW images
    /// of `3 × S × S` (the config's `image_size`), concatenated.
    pub fn embed_images(&self, pixels: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let s = self.model.config.image_size;
        if pixels.len() != n * 3 * s * s {
            return Err(Error::Input {
                path: "<pixels>".into(),
                reason: format!(
                    "{} values are not {n} images of 3 × {s} × {s}",
                    pixels.len()
                ),
            });
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let dtype = self.model_dtype();
        let x = Tensor::from_slice(pixels, (n, 3, s, s), &self.device)?.to_dtype(dtype)?;
        let f = self.model.image_features(&x)?;
        Ok(normalized_rows(&f)?)
    }

    /// Decodes, preprocesses and embeds image files.
    pub fn embed_image_files(&self, paths: &[&Path]) -> Result<Vec<Vec<f32>>> {
        let mut pixels = Vec::new();
        for p in paths {
            pixels.extend(self.processor.load(p)?);
        }
        self.embed_images(&pixels, paths.len())
    }

    fn model_dtype(&self) -> candle_core::DType {
        self.model.dtype()
    }
}

fn normalized_rows(f: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mut rows = f.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    rows.iter_mut().for_each(|r| l2_normalize(r));
    Ok(rows)
}
