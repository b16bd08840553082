#!/usr/bin/env bash
# Type-checks and lints the `cuda` feature in about a minute: candle's own kernels are compiled
# by a stand-in nvcc (scripts/fake-nvcc), ours by the real pinned nvcc (TORCHLESS_NVCC), in a target folder of
# their own. The binaries of this build must never run on a GPU (candle's kernels are empty).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/cuda-env.sh"
set -euo pipefail
export TORCHLESS_NVCC=$(command -v nvcc)
export PATH=$here/fake-nvcc:$PATH
export CARGO_TARGET_DIR=${TORCHLESS_CUDA_CHECK_TARGET:-$TL_CACHE/cuda-check-target}
cd "$here/.."
cargo clippy -p torchless-kernels -p torchless-benches --features torchless-kernels/cuda --all-targets -- -D warnings
