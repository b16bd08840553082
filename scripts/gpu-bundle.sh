#!/usr/bin/env bash
# Runs on the CPU machine. Builds the release GPU test target (kernels/tests/ops) and the GPU
# bench target (benches/gpu) with `--features cuda` — real pinned nvcc, stub driver libraries
# (scripts/cuda-env.sh) — strips them and packs them into gpu-bundle.tar.xz (kept under 40 MiB)
# for scripts/gpu-check.sh on a GPU machine. The source tree travels next to it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/cuda-env.sh
set -euo pipefail
rm -rf gpu-bundle gpu-bundle.tar.xz
mkdir -p gpu-bundle/bin
{
  cargo test --release -p torchless-kernels --features cuda --test ops --no-run --message-format=json
  cargo bench -p torchless-benches --features cuda --bench gpu_kernels --no-run --message-format=json
} | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        dst = "gpu-bundle/bin/%s-%s" % (m["target"]["kind"][0], m["target"]["name"])
        shutil.copy(m["executable"], dst)
        print("bundled", dst, file=sys.stderr)
'
strip gpu-bundle/bin/*
ls gpu-bundle/bin/test-ops gpu-bundle/bin/bench-gpu_kernels >/dev/null
git rev-parse HEAD > gpu-bundle/COMMIT 2>/dev/null || true
tar -cJf gpu-bundle.tar.xz gpu-bundle
rm -rf gpu-bundle
size=$(stat -c %s gpu-bundle.tar.xz)
echo "gpu-bundle.tar.xz: $((size / 1024 / 1024)) MiB"
if [ "$size" -gt $((40 * 1024 * 1024)) ]; then
  echo "error: the bundle is over 40 MiB" >&2
  exit 1
fi
