//! torchless-models: one file per architecture, one struct per PyTorch module, each with
//! `load(vb, cfg)` and `forward`; `vb.pp(...)` chains rebuild the PyTorch state_dict names, so a
//! converted checkpoint loads with no renaming. Hot paths use the fused ops of
//! `torchless-kernels`.
#![deny(missing_docs)]

pub mod bert;
pub mod clip;
mod columns;
pub mod decoder;
pub mod distilbert;
mod error;
pub mod family;
pub mod fold;
pub mod gemma;
pub mod gpt2;
pub mod graph;
mod kv_cache;
mod linear;
pub mod llama;
pub mod modernbert;
pub mod phi3;
pub mod resnet;
pub mod roberta;
pub mod vit;

pub use decoder::{CausalLm, DecoderShape, Logits, Quantize};
pub use error::{ConfigError, ConfigResult};
pub use family::{
    layer_norm, num_labels, rms_norm, ClassifierLoader, ClipLoader, DecoderLoader, EncoderLoader,
    ImageClassifier, ImageLoader, LoadContext, LoadError, SequenceClassifier, TextEncoder,
};
pub use kv_cache::KvCache;
pub use linear::Linear;

use torchless_kernels::activation::Activation;

/// The fused activation for a Hugging Face `hidden_act` / `activation_function` name.
pub(crate) fn hf_activation(name: &str) -> ConfigResult<Activation> {
    Ok(match name {
        "gelu" => Activation::GeluErf,
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        "silu" | "swish" => Activation::Silu,
        other => {
            return Err(ConfigError::Unsupported(format!(
                "activation {} is not supported",
                error::shown(other)
            )))
        }
    })
}
