//! torchless: run PyTorch-trained models with no Python and no LibTorch.
//!
//! - [`convert`]: read any PyTorch checkpoint safely, write safetensors.
//! - [`Weights`]: memory-mapped weights (safetensors, or a `.bin` converted in memory) behind
//!   candle's `VarBuilder`, with typed errors for missing tensors and wrong shapes.
//! - [`DeviceSpec`] and [`parse_dtype`]: where and in what precision a model runs.
//! - [`SentenceEncoder`]: BERT-family sentence embeddings, as sentence-transformers computes them.
//! - [`Classifier`]: torchvision ResNet image classifiers, with [`preprocess`] (torchvision's
//!   ImageNet transform, exact) and [`npy`] (f32 `.npy` inputs).
#![deny(missing_docs)]

mod classifier;
mod device;
mod encoder;
mod error;
mod folder;
pub mod npy;
pub mod preprocess;
mod weights;

pub use classifier::{top_k, Classifier, TopK};
pub use device::{parse_dtype, DeviceSpec};
pub use encoder::{l2_normalize, pool, Batch, LoadOptions, SentenceEncoder};
pub use error::{Error, Result};
pub use folder::{pipeline, PipelineConfig, PoolingMode};
pub use torchless_convert as convert;
pub use torchless_models::resnet::ResNetArch;
pub use weights::Weights;
