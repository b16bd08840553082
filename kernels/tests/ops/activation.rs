//! Tests of `torchless_kernels::activation` (in progress).
