//! torchless-models: one file per architecture, one struct per PyTorch module, each with
//! `load(vb, cfg)` and `forward`; `vb.pp(...)` chains rebuild the PyTorch state_dict names, so a
//! converted checkpoint loads with no renaming. Hot paths use the fused ops of
//! `torchless-kernels`.
#![deny(missing_docs)]

pub mod bert;
pub mod fold;
mod linear;
pub mod resnet;

pub use linear::Linear;
