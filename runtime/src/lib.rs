//! torchless: run PyTorch-trained models with no Python and no LibTorch.
//!
//! Today this crate re-exports the checkpoint converter ([`convert`]); model loading and
//! sessions build on it.
#![deny(missing_docs)]

pub use torchless_convert as convert;
