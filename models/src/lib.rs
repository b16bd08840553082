//! torchless-models: one file per architecture, each struct mirroring a PyTorch module.
//!
//! Architectures land with the runtime work; this crate exists so the workspace layout is
//! complete.
#![deny(missing_docs)]
