//! Tests of `torchless_kernels::embeddings` (in progress).
