// Residual add + LayerNorm / RMSNorm, one block per row. The row (x + residual, in f32) is
// kept in dynamic shared memory (cols floats), so global memory is read once and written once
// (twice with the sum output). 16-byte accesses when the row length and pointers allow.
// Any of residual, weight, bias, sum_out may be null.
#include "common.cuh"

template <typename T, bool RMS>
__device__ void add_norm(const T* __restrict__ x, const T* __restrict__ res,
                         const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ out,
                         T* __restrict__ sum_out, int cols, float eps) {
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const size_t base = static_cast<size_t>(blockIdx.x) * cols;
  x += base;
  out += base;
  if (res) res += base;
  if (sum_out) sum_out += base;

  float acc = 0.f;
  using V = tl::Vec16<T>;
  const bool vec = tl::vec16_ok<T>(cols, x, res, out, sum_out);
  if (vec) {
    for (int i = threadIdx.x * V::N; i < cols; i += blockDim.x * V::N) {
      V xv, rv, sv;
      xv.raw = *reinterpret_cast<const uint4*>(x + i);
      if (res) rv.raw = *reinterpret_cast<const uint4*>(res + i);
#pragma unroll
      for (int k = 0; k < V::N; ++k) {
        float s = tl::to_f32(xv.v[k]) + (res ? tl::to_f32(rv.v[k]) : 0.f);
        row[i + k] = s;
        acc += RMS ? s * s : s;
        sv.v[k] = tl::from_f32<T>(s);
      }
      if (sum_out) *reinterpret_cast<uint4*>(sum_out + i) = sv.raw;
    }
  } else {
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      float s = tl::to_f32(x[i]) + (res ? tl::to_f32(res[i]) : 0.f);
      row[i] = s;
      acc += RMS ? s * s : s;
      if (sum_out) sum_out[i] = tl::from_f32<T>(s);
    }
  }
  const float inv = 1.f / cols;
  float mean = 0.f, var;
  if (RMS) {
    var = tl::block_sum(acc, scratch) * inv;
  } else {
    mean = tl::block_sum(acc, scratch) * inv;
    float sq = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      const float d = row[i] - mean;
      sq += d * d;
    }
    var = tl::block_sum(sq, scratch) * inv;
  }
  const float rstd = rsqrtf(var + eps);
  if (vec) {
    for (int i = threadIdx.x * V::N; i < cols; i += blockDim.x * V::N) {
      V o;
#pragma unroll
      for (int k = 0; k < V::N; ++k) {
        float v = (row[i + k] - mean) * rstd;
        if (w) v *= tl::to_f32(w[i + k]);
        if (b) v += tl::to_f32(b[i + k]);
        o.v[k] = tl::from_f32<T>(v);
      }
      *reinterpret_cast<uint4*>(out + i) = o.raw;
    }
  } else {
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
      float v = (row[i] - mean) * rstd;
      if (w) v *= tl::to_f32(w[i]);
      if (b) v += tl::to_f32(b[i]);
      out[i] = tl::from_f32<T>(v);
    }
  }
}

#define ADD_NORM_OPS(T, SUFFIX)                                                               \
  extern "C" __global__ void add_layernorm_##SUFFIX(const T* x, const T* res, const T* w,     \
                                                    const T* b, T* out, T* sum_out, int cols, \
                                                    float eps) {                              \
    add_norm<T, false>(x, res, w, b, out, sum_out, cols, eps);                                \
  }                                                                                           \
  extern "C" __global__ void add_rmsnorm_##SUFFIX(const T* x, const T* res, const T* w,       \
                                                  const T* b, T* out, T* sum_out, int cols,   \
                                                  float eps) {                                \
    add_norm<T, true>(x, res, w, b, out, sum_out, cols, eps);                                 \
  }

ADD_NORM_OPS(float, f32)
ADD_NORM_OPS(__half, f16)
ADD_NORM_OPS(__nv_bfloat16, bf16)
