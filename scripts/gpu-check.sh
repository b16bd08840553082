#!/usr/bin/env bash
# The GPU check, in one call, on a GPU machine (H100/H200, driver 580 = CUDA 13.0, PyTorch, no
# network, no Rust), from the repository root with gpu-bundle.tar.xz (scripts/gpu-bundle.sh):
#   bash scripts/gpu-check.sh
# Kernel section:
# 1. every kernel test on CUDA (TORCHLESS_REQUIRE_GPU=1: a skipped GPU test is a failure),
#    including the nvcc compile of every .cu for sm_80/sm_90;
# 2. the PyTorch eager baseline of every kernel benchmark case on the same card
#    (scripts/gpu_torch_baseline.py), then the fused kernels, the unfused candle path and the
#    card's copy bandwidth.
# Model section (docs/gpu-check.md):
# 3. scripts/gpu_models.py (the machine's own torch) writes random-weight BERT-base, MiniLM,
#    GPT-2-small, ~1B Llama and ResNet-50 folders under $GPU_CHECK_WORK (default
#    /tmp/torchless-gpu-check: gigabytes, kept out of $OUT), PyTorch's outputs in f32/f16/bf16
#    on the card and PyTorch eager timings, and exports BERT-base and ResNet-50 as
#    `torch.export` programs (.pt2, f32) with PyTorch's outputs on the card;
# 4. scripts/gpu_compare.py runs the bundled release `torchless` CLI (--device cuda; `torchless
#    run` for the programs and tests/fixtures/graph), the committed fixtures, libtorchless.so
#    and bench-models (graph mode for the programs), compares, and prints one summary
#    table last (also $OUT/RESULTS-gpu.md, for benches/RESULTS.md). A CPU fallback fails.
# `--dry-run` runs every step on a machine without a GPU: `--device cpu`, tiny model sizes,
# GPU columns empty; it takes the bundle when there is one (its binaries load with the stub
# driver libraries of scripts/cuda-env.sh), else debug CPU binaries built with cargo (CI). Its
# PyTorch parts run when $PYTHON imports torch and are reported as "no torch" otherwise.
# Logs go to $OUT (default ./gpu-out); PYTHON picks the interpreter with torch (default python3).
# Exit status is non-zero if any test or tolerance fails.
set -uo pipefail
dry=0
[ "${1:-}" = "--dry-run" ] && dry=1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-out}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
WORK=${GPU_CHECK_WORK:-/tmp/torchless-gpu-check}
PY=${PYTHON:-python3}
start=$(date +%s)
status=0
has_torch=0
"$PY" -c 'import torch' 2>/dev/null && has_torch=1

bundle=0
if [ -f gpu-bundle.tar.xz ]; then
  rm -rf gpu-bundle && tar -xJf gpu-bundle.tar.xz || { echo "error: cannot unpack gpu-bundle.tar.xz"; exit 1; }
  bundle=1
  BIN=$root/gpu-bundle/bin
elif [ $dry = 0 ]; then
  echo "error: no gpu-bundle.tar.xz (run scripts/gpu-bundle.sh on the CPU machine)"; exit 1
fi

if [ $dry = 1 ]; then
  device=cpu; size=tiny
  export TORCHLESS_REQUIRE_GPU=0
  if [ $bundle = 1 ]; then
    . scripts/cuda-env.sh   # stub driver libraries so the CUDA binaries load
  else
    # CI: the debug CPU binaries `cargo test --workspace` and the C ABI step already built.
    BIN=$OUT/bin
    mkdir -p "$BIN"
    echo "== building the debug CPU binaries for the dry run"
    touch runtime/src/bin/torchless/main.rs   # relinked, so that its copy is this checkout's
    {
      cargo build -q -p torchless --bin torchless --message-format=json
      cargo build -q -p torchless-capi --message-format=json
      cargo build -q -p torchless-benches --bench models --message-format=json
    } | python3 scripts/cargo_artifacts.py "$BIN" || { echo "error: cargo build failed"; exit 1; }
    ls "$BIN/torchless" "$BIN/bench-models" "$BIN/libtorchless.so" >/dev/null || exit 1
  fi
else
  device=cuda; size=full
  NVLIB=$("$PY" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null || true)
  TORCHLIB=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null || true)
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${NVLIB}:${TORCHLIB}:${LD_LIBRARY_PATH:-}
  export TORCHLESS_REQUIRE_GPU=1
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
fi
{
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  echo "bundle commit: $(cat gpu-bundle/COMMIT 2>/dev/null || echo 'no bundle')"
  echo "torch: $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null || echo 'no torch')"
  echo "transformers: $("$PY" -c 'import transformers; print(transformers.__version__)' 2>/dev/null || echo 'no (pure-torch reference)')"
  [ -f "$BIN/torchless" ] && ldd "$BIN/torchless" | grep -E 'not found|libcuda|cublas|curand' || true
} 2>&1 | tee "$OUT/machine.txt"

# ---------------------------------------------------------------- kernel section
tests_summary="not run (no bundle: the CI step \`cargo test -p torchless-kernels --features cuda\` covers it)"
if [ -x "$BIN/test-ops" ]; then
  echo "== kernel tests" | tee "$OUT/tests.log"
  "$BIN/test-ops" --test-threads=1 --nocapture > >(tee -a "$OUT/tests.log") 2>&1 || status=1
  tests_summary=$(grep -E '^test result:' "$OUT/tests.log" | tail -1)

  echo "== PyTorch kernel baseline" | tee "$OUT/torch.log"
  "$BIN/bench-gpu_kernels" --list > "$OUT/cases.json" 2>>"$OUT/torch.log" || status=1
  if [ $has_torch = 1 ]; then
    "$PY" scripts/gpu_torch_baseline.py "$OUT/cases.json" > "$OUT/torch.json" 2>>"$OUT/torch.log" || status=1
  elif [ $dry = 1 ]; then
    echo "no torch: kernel baseline not run" | tee -a "$OUT/torch.log"; echo '{}' > "$OUT/torch.json"
  else
    echo "error: no torch in $PY" | tee -a "$OUT/torch.log"; status=1
  fi

  echo "== fused kernels" | tee "$OUT/bench.log"
  TORCHLESS_TORCH_TIMINGS="$OUT/torch.json" "$BIN/bench-gpu_kernels" > "$OUT/bench.out" 2>>"$OUT/bench.log" || status=1
  grep '^{' "$OUT/bench.out" > "$OUT/bench.jsonl" || true
fi

# ---------------------------------------------------------------- model section
echo "== models: PyTorch side (scripts/gpu_models.py, --device $device, sizes $size)"
rm -rf "$WORK" && mkdir -p "$WORK"
if [ $has_torch = 0 ] && [ $dry = 0 ]; then
  echo "error: no torch in $PY (set PYTHON)"; status=1
else
  "$PY" scripts/gpu_models.py --out "$WORK" --device $device --size $size 2>&1 | tee "$OUT/models-torch.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
cp "$WORK/manifest.json" "$WORK/torch-timings.json" "$OUT/" 2>/dev/null
cp -r "$WORK/refs" "$OUT/" 2>/dev/null

echo "== models: torchless side (scripts/gpu_compare.py)"
dryflag=()
[ $dry = 1 ] && dryflag=(--dry-run)
cp gpu-bundle/COMMIT "$BIN/" 2>/dev/null || git rev-parse HEAD > "$BIN/COMMIT" 2>/dev/null
if [ -f "$WORK/manifest.json" ]; then
  "$PY" scripts/gpu_compare.py --work "$WORK" --bin "$BIN" --out "$OUT" --device $device "${dryflag[@]}" \
    2>&1 | tee "$OUT/models.out"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
else
  echo "model section: FAIL (no $WORK/manifest.json)" | tee "$OUT/models.out"; status=1
fi

echo
echo "== summary ($(( $(date +%s) - start )) s)"
head -2 "$OUT/machine.txt"
echo "kernel tests: ${tests_summary:-no result (see tests.log)}"
[ -f "$OUT/bench.out" ] && grep -v '^{' "$OUT/bench.out" | sed '/^$/d'
echo
cat "$OUT/RESULTS-gpu.md" 2>/dev/null || echo "no model table (see $OUT/models.out)"
grep '^model section' "$OUT/models.out" || true
[ $status = 0 ] && echo "GPU check: PASS" || echo "GPU check: FAIL (see $OUT)"
exit $status
