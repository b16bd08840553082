//! Tests of `torchless_kernels::rope` (in progress).
