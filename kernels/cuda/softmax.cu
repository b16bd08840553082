// Scaled, masked (additive mask and/or causal) softmax over the last dimension of scores
// [B, H, Tq, Tk], one block per row r = (b·H + h)·Tq + i:
//   v_j = scores[r, j]·scale + mask[b·mask_batch_stride + i·mask_row_stride + j]   (j visible)
//   visible: j < limit, limit = min(Tk, max(0, i + Tk - Tq + 1)) when causal, else Tk
//   out[r, j] = exp(v_j - max v) / sum exp(v - max v) for visible j, 0 otherwise;
//   a row with max v = -inf (every key hidden) is all zeros.
// Pass 1 computes v (the scores past `limit` are never read) and the row max, pass 2 the
// exponentials and their sum, pass 3 writes. With `cache`, v and then exp(v - max) live in
// dynamic shared memory (Tk floats), so global memory is read once; without it (rows longer
// than the host's shared-memory limit) each pass re-reads the scores. f32 arithmetic;
// 16-byte global accesses when Tk and the pointers allow. `mask` may be null; it has the
// scores' type (masked_softmax_<sfx>) or float (masked_softmax_f32mask_<sfx>).
#include "common.cuh"

// Mirrored by `SoftmaxParams` in kernels/src/softmax.rs (same order and types).
struct SoftmaxParams {
  long long mask_batch_stride;  // elements; 0: one mask for the whole batch
  long long mask_row_stride;    // elements; 0: one mask row for every query
  int rows_per_batch;           // H·Tq
  int tq;
  int tk;
  float scale;
  int causal;
  int cache;  // 1: Tk floats of dynamic shared memory
};

namespace {

template <typename T, typename M>
__device__ void masked_softmax(const T* __restrict__ scores, const M* __restrict__ mask,
                               T* __restrict__ out, const SoftmaxParams p) {
  extern __shared__ float4 smem[];  // float4: 16-byte aligned for the vector accesses
  float* row = reinterpret_cast<float*>(smem);
  __shared__ float scratch[32];
  const int tk = p.tk;
  const size_t r = blockIdx.x;
  const int i = static_cast<int>(r % static_cast<size_t>(p.tq));
  const size_t b = r / static_cast<size_t>(p.rows_per_batch);
  const T* s = scores + r * tk;
  T* o = out + r * tk;
  const M* m = mask ? mask + b * p.mask_batch_stride + i * p.mask_row_stride : nullptr;
  int limit = tk;
  if (p.causal) {
    const long long l = static_cast<long long>(i) + tk - p.tq + 1;
    limit = l < 0 ? 0 : (l > tk ? tk : static_cast<int>(l));
  }
  const bool cache = p.cache != 0;
  // v_j for a visible j whose score is x.
  auto value = [&](int j, float x) { return x * p.scale + (m ? tl::to_f32(m[j]) : 0.f); };

  using V = tl::Vec16<T>;
  constexpr int N = V::N;  // 4 or 8: whole float4s of the cached row
  const bool vec = tl::vec16_ok<T>(tk, s, o);

  // Pass 1: v and its max.
  float mx = -INFINITY;
  if (vec) {
    for (int j0 = threadIdx.x * N; j0 < limit; j0 += blockDim.x * N) {
      V x;
      x.raw = *reinterpret_cast<const uint4*>(s + j0);  // j0 + N <= tk
      float v[N];
#pragma unroll
      for (int k = 0; k < N; ++k) {
        v[k] = j0 + k < limit ? value(j0 + k, tl::to_f32(x.v[k])) : -INFINITY;
        mx = fmaxf(mx, v[k]);
      }
      if (cache) {
#pragma unroll
        for (int q = 0; q < N / 4; ++q)
          reinterpret_cast<float4*>(row + j0)[q] =
              make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
      }
    }
  } else {
    for (int j = threadIdx.x; j < limit; j += blockDim.x) {
      const float v = value(j, tl::to_f32(s[j]));
      if (cache) row[j] = v;
      mx = fmaxf(mx, v);
    }
  }
  mx = tl::block_max(mx, scratch);  // same value in every thread, so the branch is uniform
  if (mx == -INFINITY) {
    const T zero = tl::from_f32<T>(0.f);
    for (int j = threadIdx.x; j < tk; j += blockDim.x) o[j] = zero;
    return;
  }

  // Pass 2: exp(v - max) and the sum (row[j] for j < limit was written in pass 1; the block
  // reduction above synchronised the block).
  float sum = 0.f;
  for (int j = threadIdx.x; j < limit; j += blockDim.x) {
    const float v = cache ? row[j] : value(j, tl::to_f32(s[j]));
    const float e = expf(v - mx);
    if (cache) row[j] = e;
    sum += e;
  }
  sum = tl::block_sum(sum, scratch);  // >= 1: the max element contributes exp(0)
  const float inv = 1.f / sum;

  // Pass 3: write; hidden keys get 0.
  if (vec) {
    for (int j0 = threadIdx.x * N; j0 < tk; j0 += blockDim.x * N) {
      float e[N] = {};
      if (cache && j0 < limit) {
#pragma unroll
        for (int q = 0; q < N / 4; ++q) {
          const float4 f = reinterpret_cast<const float4*>(row + j0)[q];
          e[4 * q] = f.x;
          e[4 * q + 1] = f.y;
          e[4 * q + 2] = f.z;
          e[4 * q + 3] = f.w;
        }
      } else if (j0 < limit) {
        V x;
        x.raw = *reinterpret_cast<const uint4*>(s + j0);
#pragma unroll
        for (int k = 0; k < N; ++k) e[k] = expf(value(j0 + k, tl::to_f32(x.v[k])) - mx);
      }
      V y;
#pragma unroll
      for (int k = 0; k < N; ++k) y.v[k] = tl::from_f32<T>(j0 + k < limit ? e[k] * inv : 0.f);
      *reinterpret_cast<uint4*>(o + j0) = y.raw;
    }
  } else {
    for (int j = threadIdx.x; j < tk; j += blockDim.x) {
      float e = 0.f;
      if (j < limit) e = cache ? row[j] : expf(value(j, tl::to_f32(s[j])) - mx);
      o[j] = tl::from_f32<T>(e * inv);
    }
  }
}

}  // namespace

#define SOFTMAX_OPS(T, SFX)                                                                  \
  extern "C" __global__ void __launch_bounds__(512)                                          \
      masked_softmax_##SFX(const T* scores, const T* mask, T* out, SoftmaxParams p) {        \
    masked_softmax<T, T>(scores, mask, out, p);                                              \
  }                                                                                          \
  extern "C" __global__ void __launch_bounds__(512) masked_softmax_f32mask_##SFX(            \
      const T* scores, const float* mask, T* out, SoftmaxParams p) {                         \
    masked_softmax<T, float>(scores, mask, out, p);                                          \
  }

SOFTMAX_OPS(float, f32)
SOFTMAX_OPS(__half, f16)
SOFTMAX_OPS(__nv_bfloat16, bf16)
