// BERT embeddings (see kernels/src/embeddings.rs): one block per token row gathers the word,
// token-type and position rows from the packed table [vocab + positions + types, h], adds them
// in f32 into the row kept in dynamic shared memory (h floats), then applies LayerNorm with the
// packed parameters [2, h] (weight, then bias). 16-byte accesses when h and the pointers allow.
// ids2 is [2, ntok]: the input ids, then the token-type ids (checked on the host; a row with an
// id out of range is written as NaN without reading the tables).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void bert_embeddings(const uint32_t* __restrict__ ids2,
                                                const T* __restrict__ table,
                                                const T* __restrict__ ln, T* __restrict__ out,
                                                int ntok, int seq, int h, int vocab, int npos,
                                                int ntype, int offset, float eps) {
  extern __shared__ float row[];
  __shared__ float scratch[32];
  const int r = blockIdx.x;
  if (r >= ntok) return;
  const uint32_t id = ids2[r];
  const uint32_t tt = ids2[ntok + r];
  const int pos = offset + r % seq;
  out += static_cast<size_t>(r) * h;
  // Uniform over the block (depends on blockIdx only), so no thread skips a barrier.
  if (id >= static_cast<uint32_t>(vocab) || tt >= static_cast<uint32_t>(ntype) || pos < 0 ||
      pos >= npos) {
    for (int i = threadIdx.x; i < h; i += blockDim.x) out[i] = tl::from_f32<T>(NAN);
    return;
  }
  const T* word = table + static_cast<size_t>(id) * h;
  const T* posr = table + (static_cast<size_t>(vocab) + pos) * h;
  const T* type = table + (static_cast<size_t>(vocab) + npos + tt) * h;
  const T* w = ln;
  const T* b = ln + h;

  using V = tl::Vec16<T>;
  // Row offsets are multiples of h, so with h % V::N == 0 the bases decide the alignment.
  const bool vec = tl::vec16_ok<T>(h, table, ln, out);
  float acc = 0.f;
  if (vec) {
    for (int i = threadIdx.x * V::N; i < h; i += blockDim.x * V::N) {
      V a, p, t;
      a.raw = *reinterpret_cast<const uint4*>(word + i);
      t.raw = *reinterpret_cast<const uint4*>(type + i);
      p.raw = *reinterpret_cast<const uint4*>(posr + i);
#pragma unroll
      for (int k = 0; k < V::N; ++k) {
        const float s = tl::to_f32(a.v[k]) + tl::to_f32(t.v[k]) + tl::to_f32(p.v[k]);
        row[i + k] = s;
        acc += s;
      }
    }
  } else {
    for (int i = threadIdx.x; i < h; i += blockDim.x) {
      const float s = tl::to_f32(word[i]) + tl::to_f32(type[i]) + tl::to_f32(posr[i]);
      row[i] = s;
      acc += s;
    }
  }
  const float inv = 1.f / h;
  const float mean = tl::block_sum(acc, scratch) * inv;
  float sq = 0.f;
  for (int i = threadIdx.x; i < h; i += blockDim.x) {
    const float d = row[i] - mean;
    sq += d * d;
  }
  const float rstd = rsqrtf(tl::block_sum(sq, scratch) * inv + eps);
  if (vec) {
    for (int i = threadIdx.x * V::N; i < h; i += blockDim.x * V::N) {
      V wv, bv, o;
      wv.raw = *reinterpret_cast<const uint4*>(w + i);
      bv.raw = *reinterpret_cast<const uint4*>(b + i);
#pragma unroll
      for (int k = 0; k < V::N; ++k) {
        o.v[k] = tl::from_f32<T>((row[i + k] - mean) * rstd * tl::to_f32(wv.v[k]) +
                                 tl::to_f32(bv.v[k]));
      }
      *reinterpret_cast<uint4*>(out + i) = o.raw;
    }
  } else {
    for (int i = threadIdx.x; i < h; i += blockDim.x) {
      out[i] = tl::from_f32<T>((row[i] - mean) * rstd * tl::to_f32(w[i]) + tl::to_f32(b[i]));
    }
  }
}

#define BERT_EMBEDDINGS_OPS(T, SUFFIX)                                                        \
  extern "C" __global__ void bert_embeddings_##SUFFIX(                                        \
      const uint32_t* ids2, const T* table, const T* ln, T* out, int ntok, int seq, int h,    \
      int vocab, int npos, int ntype, int offset, float eps) {                                \
    bert_embeddings<T>(ids2, table, ln, out, ntok, seq, h, vocab, npos, ntype, offset, eps);  \
  }

BERT_EMBEDDINGS_OPS(float, f32)
BERT_EMBEDDINGS_OPS(__half, f16)
BERT_EMBEDDINGS_OPS(__nv_bfloat16, bf16)
