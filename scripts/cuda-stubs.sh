#!/usr/bin/env bash
# cuda-stubs.sh CUDARC_SRC_DIR OUTDIR [CUDA_PIP_LIB_DIR] (from shared/cuda/mkstubs.sh)
# Link-time stub .so files (right SONAMEs) for what cudarc's `dynamic-linking`
# (forced by candle-core's `cuda` feature) and candle-kernels pass to the linker:
# -lcuda -lcublas -lcublasLt -lcurand -lnvrtc -lcudart.
# Symbol names come from cudarc's generated bindings (load::<_F>("name")).
# Every stub returns an error code, so a binary run on a GPU-less box fails cleanly
# (cuInit -> CUDA_ERROR_NO_DEVICE). On the GPU machine the real libs (same SONAMEs) are used.
# If CUDA_PIP_LIB_DIR (…/site-packages/nvidia/cu13/lib) is given, the real libcudart.so.13 /
# libnvrtc.so.13 from the pip wheels are symlinked instead of stubbed.
set -euo pipefail
src=$1; out=$2; pip=${3:-}
mkdir -p "$out"; cd "$out"
gen() { # name soname sys-module retcode
  local name=$1 soname=$2 mod=$3 rc=$4
  { echo "/* link stub for $soname */"
    grep -ho 'load::<_F>("[A-Za-z0-9_]*")' "$src/src/$mod/sys/mod.rs" | sed 's/.*("\(.*\)")/\1/' | sort -u |
      sed "s/.*/int &(void) { return $rc; }/"
    [ "$name" = cudart ] && grep -ho 'load::<_F>("[A-Za-z0-9_]*")' "$src/src/$mod/sys/mod.rs" | sed 's/.*("\(.*\)")/\1/' | sort -u |
      sed "s/.*/int &_ptsz(void) { return $rc; } int &_ptds(void) { return $rc; }/"
    [ "$name" = cudart ] && for s in __cudaGetKernel __cudaLaunchKernel __cudaLaunchKernel_ptsz __cudaRegisterFatBinary __cudaRegisterFatBinaryEnd __cudaUnregisterFatBinary \
        __cudaRegisterFunction __cudaRegisterVar __cudaRegisterManagedVar __cudaPushCallConfiguration \
        __cudaPopCallConfiguration __cudaInitModule __cudaRegisterTexture __cudaRegisterSurface; do
        echo "int $s(void) { return 0; }"; done
    true; } > "$name.c"
  gcc -shared -fPIC -O0 -w -Wl,-soname,"$soname" -o "$soname" "$name.c"
  ln -sf "$soname" "lib$name.so"
}
gen cuda     libcuda.so.1      driver   100  # CUDA_ERROR_NO_DEVICE
gen cublas   libcublas.so.13   cublas   1    # CUBLAS_STATUS_NOT_INITIALIZED
gen cublasLt libcublasLt.so.13 cublaslt 1
gen curand   libcurand.so.10   curand   203  # CURAND_STATUS_INITIALIZATION_FAILED
if [ -n "$pip" ] && [ -e "$pip/libcudart.so.13" ]; then ln -sf "$pip/libcudart.so.13" libcudart.so.13; ln -sf libcudart.so.13 libcudart.so
else gen cudart libcudart.so.13 runtime 100; fi
if [ -n "$pip" ] && [ -e "$pip/libnvrtc.so.13" ]; then ln -sf "$pip/libnvrtc.so.13" libnvrtc.so.13; ln -sf libnvrtc.so.13 libnvrtc.so
else gen nvrtc libnvrtc.so.13 nvrtc 7; fi
rm -f ./*.c
