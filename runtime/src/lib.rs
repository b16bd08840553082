//! torchless: run PyTorch-trained models with no Python and no LibTorch.
//!
//! - [`convert`]: read any PyTorch checkpoint safely, write safetensors.
//! - [`Weights`]: memory-mapped weights (safetensors, or a `.bin` converted in memory) behind
//!   candle's `VarBuilder`, with typed errors for missing tensors and wrong shapes.
//! - [`DeviceSpec`] and [`parse_dtype`]: where and in what precision a model runs.
//! - [`SentenceEncoder`]: BERT-family sentence embeddings, as sentence-transformers computes them.
//! - [`TextGenerator`]: GPT-2 and Llama-style text generation with a preallocated KV cache,
//!   greedy or seeded sampling, tokens streamed to a callback.
//! - [`Classifier`]: torchvision ResNet image classifiers, with [`preprocess`] (torchvision's
//!   ImageNet transform, exact) and [`npy`] (f32 `.npy` inputs).
//! - [`TextClassifier`]: `*ForSequenceClassification` models (BERT, XLM-RoBERTa): cross-encoder
//!   reranking as sentence-transformers' `CrossEncoder.predict`, and text classification.
//! - [`ClipEmbedder`]: CLIP image and text embeddings in one space (L2-normalised, as
//!   `CLIPModel.forward`'s `image_embeds` / `text_embeds`).
//! - [`Program`]: any model exported with `torch.export` (`.pt2`), run by the graph
//!   interpreter of `torchless-models` (`torchless run`).
//! - [`registry`]: the table from `model_type` (or a state_dict's key layout) to the family
//!   that loads it, per [`Task`]; every loader above goes through it.
//! - [`batching`]: a bounded queue that runs many callers' generations on one
//!   [`TextGenerator`] with continuous batching (one decode step for every running sequence),
//!   each caller hearing only about its own sequence.
//! - [`chat`]: chat templates (`apply_chat_template`) and streamed text for decoders.
//! - `serve` (feature `serve`): the HTTP server of `torchless serve` (OpenAI- and
//!   TEI-compatible routes, dynamic batching, Prometheus metrics, graceful drain).
//! - `worker` (feature `worker`): the Redis stream worker behind `torchless worker`.
//! - `capi` (feature `capi`): the C ABI that `bindings/c` builds into `libtorchless.so`.
#![deny(missing_docs)]

pub mod batching;
#[cfg(feature = "capi")]
pub mod capi;
pub mod chat;
mod classifier;
mod clip;
mod device;
mod encoder;
mod error;
mod folder;
mod generator;
pub mod npy;
pub mod preprocess;
mod program;
pub mod registry;
mod sampling;
#[cfg(feature = "serve")]
pub mod serve;
mod text_classifier;
mod weights;
#[cfg(feature = "worker")]
pub mod worker;

pub use classifier::{top_k, Classifier, TopK};
pub use clip::{ClipEmbedder, ClipImageProcessor};
pub use device::{parse_dtype, parse_quantize, DeviceSpec};
pub use encoder::{l2_normalize, pool, Batch, SentenceEncoder};
pub use error::{Error, Result};
pub use folder::{pipeline, PipelineConfig, PoolingMode};
pub use generator::{model_types, GenerateOptions, Generation, StopReason, TextGenerator};
pub use program::{describe_program, Program, ProgramInput, ProgramReport, TypedTensor};
pub use registry::{LoadOptions, Task};
pub use sampling::{Sampler, SamplerConfig, Sampling};
pub use text_classifier::{softmax, ScoreActivation, TextClassifier};
pub use torchless_convert as convert;
pub use torchless_models::resnet::ResNetArch;
pub use torchless_models::Quantize;
pub use weights::Weights;
