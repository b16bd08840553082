//! Tests of `torchless_kernels::attention` (in progress).
