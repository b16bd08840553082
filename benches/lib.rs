//! Shared pieces of the benchmark targets: the benchmark cases of every fused op (shapes,
//! byte counts, the fused call, the unfused candle composition it replaces, the f32
//! reference), used by the CPU criterion benches (`kernels/`) and the GPU harness (`gpu/`).

pub mod cases;
