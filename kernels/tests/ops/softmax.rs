//! Tests of `torchless_kernels::softmax` (in progress).
