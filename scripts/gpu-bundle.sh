#!/usr/bin/env bash
# Runs on the CPU machine. Builds with `--features cuda` in release — real pinned nvcc, stub
# driver libraries (scripts/cuda-env.sh) — the GPU kernel test target (kernels/tests/ops), the
# GPU kernel bench (benches/gpu), the end-to-end model bench (benches/models), the `torchless`
# CLI and libtorchless.so (bindings/c), strips them and packs them into gpu-bundle.tar.xz (kept
# under 40 MiB: with the ~20 MiB source tree it stays under the 64 MiB a GPU call can carry)
# for scripts/gpu-check.sh on a GPU machine. The source tree travels next to it, with the
# committed graph programs (tests/fixtures/graph, checked below). Model folders and the
# BERT-base / ResNet-50 programs are not bundled: scripts/gpu_models.py writes them on the GPU
# machine. `torchless run` and `bench-models graph` (the graph runtime) are in the binaries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/cuda-env.sh
set -euo pipefail
for case in bert_tiny resnet_small llama_tiny unet_tiny; do
  git ls-files --error-unmatch "tests/fixtures/graph/$case/program.pt2" >/dev/null 2>&1 || {
    echo "error: tests/fixtures/graph/$case/program.pt2 is not tracked (scripts/graph_fixtures.py)" >&2; exit 1; }
done
rm -rf gpu-bundle gpu-bundle.tar.xz
mkdir -p gpu-bundle/bin
touch runtime/src/bin/torchless/main.rs   # relinked, so that its copy is this checkout's
{
  cargo test --release -p torchless-kernels --features cuda --test ops --no-run --message-format=json
  cargo bench -p torchless-benches --features cuda --bench gpu_kernels --bench models --no-run --message-format=json
  cargo build --release -p torchless --features cuda --bin torchless --message-format=json
  cargo build --release -p torchless-capi --features cuda --message-format=json
} | python3 scripts/cargo_artifacts.py gpu-bundle/bin
strip gpu-bundle/bin/*
ls -l gpu-bundle/bin/test-ops gpu-bundle/bin/bench-gpu_kernels gpu-bundle/bin/bench-models \
  gpu-bundle/bin/torchless gpu-bundle/bin/libtorchless.so || exit 1
git rev-parse HEAD > gpu-bundle/COMMIT 2>/dev/null || true
tar -cJf gpu-bundle.tar.xz gpu-bundle
rm -rf gpu-bundle
size=$(stat -c %s gpu-bundle.tar.xz)
echo "gpu-bundle.tar.xz: $((size / 1024 / 1024)) MiB"
if [ "$size" -gt $((40 * 1024 * 1024)) ]; then
  echo "error: the bundle is over 40 MiB" >&2
  exit 1
fi
