#!/usr/bin/env bash
# The GPU check, in one call, on a GPU machine (H100/H200, driver 580 = CUDA 13.0, PyTorch, no
# network, no Rust), from the repository root with gpu-bundle.tar.xz (scripts/gpu-bundle.sh):
#   bash scripts/gpu-check.sh
# 1. every kernel test on CUDA (TORCHLESS_REQUIRE_GPU=1: a skipped GPU test is a failure),
#    including the nvcc compile of every .cu for sm_80/sm_90;
# 2. the PyTorch eager baseline of every benchmark case on the same card (scripts/gpu_torch_baseline.py);
# 3. the fused kernels, the unfused candle path and the card's copy bandwidth, printing one
#    summary table last.
# `--dry-run` runs the same steps on a machine without a GPU (tests skip, GPU columns empty).
# Logs go to $OUT (default ./gpu-out); PYTHON picks the interpreter with torch (default python3).
# Exit status is non-zero if any test or tolerance fails.
set -uo pipefail
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
start=$(date +%s)
rm -rf gpu-bundle && tar -xJf gpu-bundle.tar.xz || { echo "error: no gpu-bundle.tar.xz (run scripts/gpu-bundle.sh)"; exit 1; }
if [ $dry = 1 ]; then
  . scripts/cuda-env.sh   # stub driver libraries so the binaries load
  export TORCHLESS_REQUIRE_GPU=0
else
  NVLIB=$("${PYTHON:-python3}" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
  TORCHLIB=$("${PYTHON:-python3}" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${NVLIB}:${TORCHLIB}:${LD_LIBRARY_PATH:-}
  export TORCHLESS_REQUIRE_GPU=1
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
fi
status=0
{
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  echo "bundle commit: $(cat gpu-bundle/COMMIT 2>/dev/null)"
  ldd gpu-bundle/bin/test-ops | grep -E 'not found|libcuda|cublas|curand' || true
} 2>&1 | tee "$OUT/machine.txt"

echo "== kernel tests" | tee "$OUT/tests.log"
gpu-bundle/bin/test-ops --test-threads=1 --nocapture > >(tee -a "$OUT/tests.log") 2>&1 || status=1
tests_summary=$(grep -E '^test result:' "$OUT/tests.log" | tail -1)

echo "== PyTorch baseline" | tee "$OUT/torch.log"
gpu-bundle/bin/bench-gpu_kernels --list > "$OUT/cases.json" 2>>"$OUT/torch.log" || status=1
"${PYTHON:-python3}" scripts/gpu_torch_baseline.py "$OUT/cases.json" > "$OUT/torch.json" 2>>"$OUT/torch.log" || status=1

echo "== fused kernels" | tee "$OUT/bench.log"
TORCHLESS_TORCH_TIMINGS="$OUT/torch.json" gpu-bundle/bin/bench-gpu_kernels > "$OUT/bench.out" 2>>"$OUT/bench.log" || status=1
grep '^{' "$OUT/bench.out" > "$OUT/bench.jsonl" || true

echo
echo "== summary ($(( $(date +%s) - start )) s)"
head -2 "$OUT/machine.txt"
echo "kernel tests: ${tests_summary:-no result (see tests.log)}"
grep -v '^{' "$OUT/bench.out" | sed '/^$/d'
[ $status = 0 ] && echo "GPU check: PASS" || echo "GPU check: FAIL (see $OUT)"
exit $status
