#!/usr/bin/env bash
# Source this to build the `cuda` feature on a machine without a GPU or a CUDA install:
#   . scripts/cuda-env.sh
# It installs the pinned CUDA 13.0 compiler wheels (nvcc, NVVM, NVRTC, headers; PTX ISA 9.0,
# which the driver 580 of our GPU machines accepts) into a cache outside the clone, writes stub
# driver libraries with the right SONAMEs for linking (every call fails with "no device", so GPU
# tests skip), and exports PATH, LIBRARY_PATH, LD_LIBRARY_PATH, CUDA_COMPUTE_CAP and a
# CARGO_TARGET_DIR outside the clone (TORCHLESS_TARGET) so warm runs reuse the slow
# candle-kernels build.
set -euo pipefail
TL_CACHE=${TORCHLESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/torchless}
TL_CUDA=$TL_CACHE/cuda13
NV=$TL_CUDA/nvidia/cu13
if [ ! -x "$NV/bin/nvcc" ]; then
  echo "installing the CUDA 13.0 compiler wheels into $TL_CUDA" >&2
  python3 -m pip install -q --no-deps --target "$TL_CUDA" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 >&2
fi
export PATH=$NV/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-2}
export CARGO_TARGET_DIR=${TORCHLESS_TARGET:-$TL_CACHE/target}
TL_STUBS=$TL_CACHE/cuda-stubs
if [ ! -e "$TL_STUBS/libcuda.so.1" ]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  cargo fetch --manifest-path "$here/../Cargo.toml" >/dev/null 2>&1 || true
  cudarc_src=$(cargo metadata --format-version 1 --manifest-path "$here/../Cargo.toml" --features torchless-kernels/cuda 2>/dev/null |
    python3 -c 'import json,sys,os; m=json.load(sys.stdin); print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"]=="cudarc"))')
  bash "$here/cuda-stubs.sh" "$cudarc_src" "$TL_STUBS" "$NV/lib" >&2
fi
export LIBRARY_PATH=$TL_STUBS${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$NV/lib:$TL_STUBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
set +euo pipefail
