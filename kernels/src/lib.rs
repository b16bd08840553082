//! torchless-kernels: fused inference ops (candle custom ops with CPU and CUDA paths).
//!
//! The ops land with the kernels work; this crate exists so the workspace layout is complete.
#![deny(missing_docs)]
