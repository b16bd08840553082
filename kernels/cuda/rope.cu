// Rotary position embeddings on queries and keys in one launch (see kernels/src/rope.rs).
// The output is [B, Hq + Hk, T, D]: for each batch, the rows of q's heads, then k's. Row
// `offset + t` of the f32 table holds cos[0 .. D/2] then sin[0 .. D/2].
//
// One thread per chunk of a row: HalfSplit — `w` consecutive pairs (i, i + D/2); Interleaved —
// `w` consecutive elements, i.e. w/2 pairs (2i, 2i + 1). With `vec` (chosen by the host when
// D/2, resp. D, is a multiple of the 16-byte vector width) a chunk is one 16-byte vector, moved
// with vector loads when the base pointers are 16-byte aligned and element by element otherwise.
#include "common.cuh"

template <typename T, bool INTERLEAVED>
__device__ __forceinline__ void rope_qk(const T* __restrict__ q, const T* __restrict__ k,
                                        const float* __restrict__ table, T* __restrict__ out,
                                        int hq, int hk, int seq, int d, int offset, int vec,
                                        long long rows) {
  using V = tl::Vec16<T>;
  const int half = d >> 1;
  const int w = vec ? V::N : (INTERLEAVED ? 2 : 1);
  const int chunks = (INTERLEAVED ? d : half) / w;
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (chunks <= 0 || idx >= rows * chunks) return;
  const long long row = idx / chunks;
  const int c = static_cast<int>(idx - row * chunks);
  const int heads = hq + hk;
  const int t = static_cast<int>(row % seq);
  const long long bh = row / seq;
  const int h = static_cast<int>(bh % heads);
  const long long b = bh / heads;
  const T* src = h < hq ? q + ((b * hq + h) * seq + t) * d
                        : k + ((b * hk + (h - hq)) * seq + t) * d;
  T* dst = out + row * d;
  const float* cosr = table + static_cast<long long>(offset + t) * d;
  const float* sinr = cosr + half;
  // With `vec`, every row, half-row and chunk offset is a multiple of V::N elements, so the
  // base pointers decide the alignment of every access.
  const bool aligned =
      vec && ((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k) |
               reinterpret_cast<uintptr_t>(out)) % 16 == 0);
  if (INTERLEAVED) {
    const int e0 = c * w;
    if (aligned) {
      V x, y;
      x.raw = *reinterpret_cast<const uint4*>(src + e0);
#pragma unroll
      for (int m = 0; m < V::N; m += 2) {
        const int j = (e0 + m) >> 1;
        const float x0 = tl::to_f32(x.v[m]), x1 = tl::to_f32(x.v[m + 1]);
        const float cs = cosr[j], sn = sinr[j];
        y.v[m] = tl::from_f32<T>(x0 * cs - x1 * sn);
        y.v[m + 1] = tl::from_f32<T>(x0 * sn + x1 * cs);
      }
      *reinterpret_cast<uint4*>(dst + e0) = y.raw;
    } else {
      for (int e = e0; e < e0 + w; e += 2) {
        const int j = e >> 1;
        const float x0 = tl::to_f32(src[e]), x1 = tl::to_f32(src[e + 1]);
        const float cs = cosr[j], sn = sinr[j];
        dst[e] = tl::from_f32<T>(x0 * cs - x1 * sn);
        dst[e + 1] = tl::from_f32<T>(x0 * sn + x1 * cs);
      }
    }
  } else {
    const int i0 = c * w;
    if (aligned) {
      V a, bv, ya, yb;
      a.raw = *reinterpret_cast<const uint4*>(src + i0);
      bv.raw = *reinterpret_cast<const uint4*>(src + half + i0);
#pragma unroll
      for (int m = 0; m < V::N; ++m) {
        const float x0 = tl::to_f32(a.v[m]), x1 = tl::to_f32(bv.v[m]);
        const float cs = cosr[i0 + m], sn = sinr[i0 + m];
        ya.v[m] = tl::from_f32<T>(x0 * cs - x1 * sn);
        yb.v[m] = tl::from_f32<T>(x1 * cs + x0 * sn);
      }
      *reinterpret_cast<uint4*>(dst + i0) = ya.raw;
      *reinterpret_cast<uint4*>(dst + half + i0) = yb.raw;
    } else {
      for (int i = i0; i < i0 + w; ++i) {
        const float x0 = tl::to_f32(src[i]), x1 = tl::to_f32(src[half + i]);
        const float cs = cosr[i], sn = sinr[i];
        dst[i] = tl::from_f32<T>(x0 * cs - x1 * sn);
        dst[half + i] = tl::from_f32<T>(x1 * cs + x0 * sn);
      }
    }
  }
}

#define ROPE_OPS(T, SUFFIX)                                                                    \
  extern "C" __global__ void rope_qk_half_##SUFFIX(const T* q, const T* k, const float* table,   \
                                                   T* out, int hq, int hk, int seq, int d,       \
                                                   int offset, int vec, long long rows) {        \
    rope_qk<T, false>(q, k, table, out, hq, hk, seq, d, offset, vec, rows);                      \
  }                                                                                              \
  extern "C" __global__ void rope_qk_interleaved_##SUFFIX(                                       \
      const T* q, const T* k, const float* table, T* out, int hq, int hk, int seq, int d,        \
      int offset, int vec, long long rows) {                                                     \
    rope_qk<T, true>(q, k, table, out, hq, hk, seq, d, offset, vec, rows);                       \
  }

ROPE_OPS(float, f32)
ROPE_OPS(__half, f16)
ROPE_OPS(__nv_bfloat16, bf16)
