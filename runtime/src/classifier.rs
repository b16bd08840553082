//! Image classification: a torchvision ResNet loaded from its `state_dict` (safetensors, or a
//! `.pt`/`.pth`/`.bin` converted in memory), BatchNorm folded at load, strict about names (a
//! tensor the architecture lacks or misses is an error naming it); or a Hugging Face model folder
//! of an image-classification family of the registry (ViT), with its `id2label` and its
//! `preprocessor_config.json`. Loaded once, `Send + Sync`.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use torchless_models::resnet::{ResNet, ResNetArch};
use torchless_models::ImageClassifier;

use crate::error::{Error, Result};
use crate::preprocess::ImageProcessor;
use crate::registry::{LoadOptions, Source, Task};
use crate::weights::Weights;

/// A loaded image classifier.
pub struct Classifier {
    model: Box<dyn ImageClassifier>,
    /// The ResNet depth (`None` for a model folder).
    arch: Option<ResNetArch>,
    /// `resnet50`, or the folder's `model_type`.
    architecture: String,
    /// `id2label` of a model folder.
    labels: Option<Vec<String>>,
    /// `preprocessor_config.json` of a model folder.
    processor: Option<ImageProcessor>,
    device: Device,
    dtype: DType,
    name: String,
}

/// One of the best classes of an input.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TopK {
    /// The class index.
    pub index: usize,
    /// Its softmax probability.
    pub score: f32,
}

impl Classifier {
    /// Loads a torchvision ResNet `state_dict` of depth `arch` (names unchanged, as
    /// `torch.save(model.state_dict())` writes them); `num_classes` is read from `fc.weight`.
    /// Every tensor of the file must belong to `arch` and every tensor of `arch` must be in the
    /// file with its shape: the first that does not is the error.
    pub fn load(path: &Path, arch: ResNetArch, opts: &LoadOptions) -> Result<Self> {
        opts.refuse_quantize("a ResNet state_dict")?;
        let weights = Arc::new(Weights::open(path)?);
        let mismatch = |reason: String| Error::Config {
            file: path.to_path_buf(),
            reason: format!("not a torchvision {arch} state_dict: {reason}"),
        };
        let num_classes = match weights.shape("fc.weight") {
            Some([n, _]) => *n,
            Some(s) => {
                return Err(mismatch(format!(
                    "tensor `fc.weight` has shape {s:?}, expected [num_classes, {}]",
                    arch.features()
                )))
            }
            None => {
                return Err(mismatch(format!(
                    "missing tensor `fc.weight` in {}",
                    weights.label()
                )))
            }
        };
        let expected = arch.state_dict_shapes(num_classes);
        // The first architecture tensor that is missing or misshapen, in state_dict order.
        for (name, shape) in &expected {
            if name.ends_with(".num_batches_tracked") {
                continue;
            }
            match weights.shape(name) {
                None => {
                    return Err(mismatch(format!(
                        "missing tensor `{name}` in {}",
                        weights.label()
                    )))
                }
                Some(found) if found != shape.as_slice() => {
                    return Err(mismatch(format!(
                        "tensor `{name}` has shape {found:?}, {arch} expects {shape:?}"
                    )))
                }
                Some(_) => {}
            }
        }
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        let extra: Vec<&str> = weights.names().filter(|n| !known.contains(n)).collect();
        if let Some(first) = extra.first() {
            return Err(mismatch(format!(
                "unexpected tensor `{first}` ({} tensor(s) in {} are not part of {arch})",
                extra.len(),
                weights.label()
            )));
        }
        let device = opts.device.open()?;
        if device.is_cpu() && opts.dtype == DType::BF16 {
            return Err(Error::Option(
                "bf16 convolutions are not supported on the CPU (candle's CPU matmul has no bf16): use f32 or f16".into(),
            ));
        }
        let vb = weights.var_builder(opts.dtype, &device);
        let model = ResNet::load(vb, arch, num_classes)?;
        Ok(Classifier {
            model: Box::new(model),
            arch: Some(arch),
            architecture: arch.name().to_string(),
            labels: None,
            processor: None,
            device,
            dtype: opts.dtype,
            name: path.file_stem().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        })
    }

    /// Loads an image-classification model folder (`config.json` of a registry family of
    /// [`Task::Classify`], e.g. `model_type: "vit"`), its labels from `id2label` and its
    /// preprocessing from `preprocessor_config.json`.
    pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let processor = ImageProcessor::from_dir(dir)?;
        let source = Source::open(dir, Task::Classify, opts)?;
        let model = source.image_classifier()?;
        let labels = crate::text_classifier::labels(&source.config, model.num_classes());
        Ok(Classifier {
            model,
            arch: None,
            architecture: source.resolved.model_type.to_string(),
            labels: Some(labels),
            processor: Some(processor),
            device: source.device.clone(),
            dtype: source.dtype,
            name: dir.file_name().map_or_else(
                || dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        })
    }

    /// The ResNet depth; `None` for a model folder (ViT).
    pub fn arch(&self) -> Option<ResNetArch> {
        self.arch
    }

    /// `resnet50` for a ResNet, the folder's `model_type` (`vit`) otherwise.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Class names by index (`id2label`) of a model folder; `None` for a ResNet state_dict.
    pub fn labels(&self) -> Option<&[String]> {
        self.labels.as_deref()
    }

    /// The preprocessing of a model folder (`preprocessor_config.json`); `None` for a ResNet
    /// state_dict (torchvision's ImageNet transform, [`Preprocess`](crate::preprocess::Preprocess)).
    pub fn processor(&self) -> Option<&ImageProcessor> {
        self.processor.as_ref()
    }

    /// The `(height, width)` inputs must have, or `None` when any size works.
    pub fn image_size(&self) -> Option<(usize, usize)> {
        self.model.image_size()
    }

    /// The weights file's name without its extension.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Output classes (`fc.weight`'s first dimension; the folder's `num_labels`).
    pub fn num_classes(&self) -> usize {
        self.model.num_classes()
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Loads a torchvision ResNet `state_dict` whose depth is read from its block layout
    /// ([`ResNetArch::detect`]); an error names the file when no depth fits. A folder is
    /// loaded with [`Classifier::load_dir`].
    pub fn load_detected(path: &Path, opts: &LoadOptions) -> Result<Self> {
        if path.is_dir() {
            return Classifier::load_dir(path, opts);
        }
        let weights = Weights::open(path)?;
        let arch = ResNetArch::detect(|n| weights.contains(n)).ok_or_else(|| Error::Config {
            file: path.to_path_buf(),
            reason: format!(
                "not a torchvision ResNet state_dict: its `layerN.M` blocks fit none of {}",
                ResNetArch::ALL.map(ResNetArch::name).join(", ")
            ),
        })?;
        drop(weights);
        Classifier::load(path, arch, opts)
    }

    /// Logits for `batch` images stored NCHW in `input` (`batch × 3 × height × width` f32
    /// values, already preprocessed; 224 × 224 for ImageNet models, any size of at least 32
    /// works): `batch` rows of `num_classes()` values.
    pub fn classify_hw(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let want = batch
            .checked_mul(3 * height)
            .and_then(|n| n.checked_mul(width));
        if want != Some(input.len()) {
            return Err(Error::Option(format!(
                "input has {} values, a batch of {batch} × 3 × {height} × {width} needs {}",
                input.len(),
                want.map_or("more than usize::MAX".into(), |n| n.to_string())
            )));
        }
        if let Some((mh, mw)) = self.model.image_size() {
            if (height, width) != (mh, mw) {
                return Err(Error::Option(format!(
                    "input images are {height} × {width}: model {} ({}) takes {mh} × {mw} \
                     only (its config's image_size; position embeddings are not interpolated)",
                    self.name, self.architecture
                )));
            }
        }
        if batch == 0 {
            return Ok(Vec::new());
        }
        let x = Tensor::from_slice(input, (batch, 3, height, width), &Device::Cpu)?
            .to_dtype(self.dtype)?
            .to_device(&self.device)?;
        let logits = self.model.forward(&x)?;
        Ok(logits
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2()?)
    }

    /// [`Classifier::classify_hw`] for 224 × 224 inputs.
    pub fn classify(&self, input: &[f32], batch: usize) -> Result<Vec<Vec<f32>>> {
        self.classify_hw(input, batch, 224, 224)
    }
}

/// The `k` most probable classes of one row of logits, best first (ties: lower index first),
/// each with its softmax probability.
pub fn top_k(logits: &[f32], k: usize) -> Vec<TopK> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| ((l - max) as f64).exp()).collect();
    let sum: f64 = exps.iter().sum();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| TopK {
            index: i,
            score: (exps[i] / sum) as f32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn classifier_is_send_and_sync() {
        assert_send_sync::<Classifier>();
    }

    #[test]
    fn top_k_orders_by_probability() {
        let t = top_k(&[1.0, 3.0, 2.0, 3.0], 3);
        assert_eq!(t.iter().map(|t| t.index).collect::<Vec<_>>(), vec![1, 3, 2]);
        let e = [1f64.exp(), 3f64.exp(), 2f64.exp(), 3f64.exp()];
        let s: f64 = e.iter().sum();
        assert!((t[0].score as f64 - e[1] / s).abs() < 1e-6);
        assert!((t[2].score as f64 - e[2] / s).abs() < 1e-6);
        assert_eq!(top_k(&[0.5], 5).len(), 1);
    }
}
