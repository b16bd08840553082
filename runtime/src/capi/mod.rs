//! The C ABI (feature `capi`): opaque model handles, status codes, a per-thread error message,
//! and caller-owned buffers. `bindings/c` builds it into `libtorchless.so` with the generated
//! `torchless.h`; `docs/capi.md` states the contract (ownership, threads, panics, callbacks).
//!
//! Every exported function runs under one guard that catches panics and records the message;
//! arguments are checked (NULL, UTF-8, sizes, alignment) before anything is read or written.

mod args;
mod ffi;
mod guard;
mod model;
mod program;
mod status;

pub use ffi::{
    torchless_classify, torchless_classify_text, torchless_embed, torchless_embed_images,
    torchless_generate, torchless_generate_options_default, torchless_last_error,
    torchless_model_free, torchless_model_info, torchless_model_label, torchless_model_load,
    torchless_rerank, torchless_version, TorchlessGenerateOptions, TorchlessModelInfo,
    TorchlessTokenCallback,
};
pub use model::{TorchlessModel, TorchlessModelKind};
pub use program::{
    torchless_program_signature, torchless_run, TorchlessDtype, TorchlessTensor, TorchlessTensorOut,
};
pub use status::TorchlessStatus;
