//! Every fused op against its f32 reference, at several shapes (odd widths, rows longer than a
//! CUDA block, non-contiguous inputs), for f32, f16 and bf16, on the CPU and — when built with
//! `cuda` and a GPU is present — on CUDA. One test binary, so the GPU bundle carries one file.

mod activation;
mod attention;
mod embeddings;
mod norm;
#[cfg(feature = "cuda")]
mod ptx;
mod rope;
mod softmax;
