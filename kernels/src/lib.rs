//! torchless-kernels: fused inference ops as candle custom ops.
//!
//! Every op has four parts side by side: a `*_reference` composition of plain candle ops in f32
//! (the ground truth), a custom op with a real parallel CPU path and, behind the `cuda` feature,
//! a CUDA path (`kernels/cuda/*.cu`, one templated kernel per family instantiated for f32, f16
//! and bf16 with f32 accumulation), tests against the reference at several shapes, and a
//! criterion benchmark against the unfused composition (`benches/`). Inputs a fast path does not
//! cover fall back to the reference, never to a wrong answer.
#![deny(missing_docs)]

pub mod activation;
pub mod attention;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod elem;
pub mod embeddings;
pub mod gemm;
pub mod gemv;
pub mod isa;
pub mod layout;
pub mod norm;
mod op;
pub mod quant;
pub mod rope;
pub mod softmax;
pub mod testing;
mod vmath;

pub use elem::Elem;

/// PTX of every CUDA module, embedded at build time (for checks and the GPU harness).
#[cfg(feature = "cuda")]
pub mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}
