// Attention without the score matrix (torch.nn.functional.scaled_dot_product_attention):
//
// * flash_attn_fwd_d<D>_<dtype>: prefill. One block of 128 threads (4 warps) per tile of BQ
//   queries of one (batch, head); it loops over tiles of 32 keys staged in shared memory (as f32)
//   and keeps an online softmax per query row: running maximum m, running sum l, and the output
//   accumulator rescaled by exp2(m_old - m_new) whenever the maximum grows. Scores live in the
//   log2 domain (q is pre-multiplied by scale·log2 e, so exp2 replaces exp).
//   Score phase (S = Q·Kᵀ): warp w owns rows [w·RW, w·RW + RW); lane (a = lane / 8, c = lane % 8)
//   computes rows a·RPL .. a·RPL + RPL of them against keys c, c + 8, c + 16, c + 24, reading
//   float4s of the Q and K tiles (rows padded to D + 4 floats: conflict-free). Row maxima and
//   sums are reduced over the 8 lanes sharing a row with shuffles. P goes to shared memory.
//   PV phase (O += P·V): lane owns output columns lane + 32·j of the warp's RW rows, in
//   registers. K and V share one shared buffer (loaded in turn), which keeps the largest
//   configuration (D = 96, BQ = 64) under the 48 KiB of static shared memory.
//   Padding (per-batch key lengths) and the causal mask both keep a prefix of the keys, so
//   each row has one bound `end`: key j is valid iff j < end. Rows with end == 0 output zeros.
// * decode_attn_d<D>_<dtype>: one new token per (batch, head) against the first `len` rows of a
//   [B, Hk, T_max, D] cache read in place. Grid: (batch·head) × splits; each block (8 warps)
//   takes a contiguous chunk of the keys, each warp every 8th group of 4 keys of the chunk, lanes
//   split the head dimension (one warp-sum per key). Warps are merged in shared memory; with one
//   split the block writes the output, otherwise (m, l, acc[D]) go to a f32 workspace that
//   decode_combine_<dtype> merges.
//
// f32 accumulation throughout; instantiated for float, __half and __nv_bfloat16 and for
// D in {32, 64, 80, 96, 128}. Parameters come in one struct each (explicit strides, in
// elements, for batch, head and row; the last dimension is contiguous), mirrored by
// #[repr(C)] structs in kernels/src/attention.rs.
#include "common.cuh"

namespace tl_attn {

struct FlashParams {
  long long q_b, q_h, q_t;
  long long k_b, k_h, k_t;
  long long v_b, v_h, v_t;
  long long o_b, o_h, o_t;
  int batch, hq, hk, tq, tk;
  int causal;
  float scale_log2;  // scale · log2(e)
  int pad_;
};
static_assert(sizeof(FlashParams) == 128, "FlashParams must match the Rust struct");

struct DecodeParams {
  long long q_b, q_h;
  long long k_b, k_h, k_t;
  long long v_b, v_h, v_t;
  long long o_b, o_h;
  int batch, hq, hk, len;
  int splits, chunk, head_dim;
  float scale_log2;  // scale · log2(e)
};
static_assert(sizeof(DecodeParams) == 112, "DecodeParams must match the Rust struct");

constexpr unsigned FULL = 0xffffffffu;

// ---------------------------------------------------------------------------------------------
// Prefill
// ---------------------------------------------------------------------------------------------

constexpr int FLASH_THREADS = 128;  // 4 warps
constexpr int FLASH_WARPS = FLASH_THREADS / 32;
constexpr int FLASH_BK = 32;  // keys per tile

template <int D>
struct FlashTile {
  static constexpr int RW = D <= 96 ? 16 : 8;        // query rows per warp
  static constexpr int BQ = FLASH_WARPS * RW;        // query rows per block (Rust: flash_block_q)
  static constexpr int RPL = RW / 4;                 // rows per lane in the score phase
  static constexpr int NC = (D + 31) / 32;           // output columns per lane
  static constexpr int LD = D + 4;                   // row stride of the Q and K/V tiles (floats)
  static constexpr int PLD = FLASH_BK + 4;           // row stride of the P tile (floats)
  static constexpr int SMEM = (BQ * LD + FLASH_BK * LD + BQ * PLD + 2 * BQ) * 4;
  static_assert(D % 8 == 0, "head_dim must be a multiple of 8 (16-byte rows of 16-bit types)");
  static_assert(SMEM <= 48 * 1024, "static shared memory over 48 KiB");
};

// Copies `rows` rows of D elements from `src` (row stride `stride`) into the f32 tile `dst`
// (row stride LD), times `mul`; rows >= `valid` are zero-filled and not read. 16-byte loads
// when the block's pointer and the row stride allow (a block-uniform condition).
template <typename T, int D, int LD>
__device__ __forceinline__ void load_rows(float* __restrict__ dst, const T* __restrict__ src,
                                          long long stride, int valid, int rows, float mul) {
  using V = tl::Vec16<T>;
  constexpr int N = V::N;
  constexpr int CH = D / N;
  static_assert(D % N == 0 && N % 4 == 0, "rows split into 16-byte words of whole float4s");
  const bool vec = (reinterpret_cast<uintptr_t>(src) % 16 == 0) && (stride % N == 0);
  if (vec) {
    for (int idx = threadIdx.x; idx < rows * CH; idx += blockDim.x) {
      const int r = idx / CH, c = (idx - r * CH) * N;
      float f[N];
      if (r < valid) {
        V x;
        x.raw = *reinterpret_cast<const uint4*>(src + r * stride + c);
#pragma unroll
        for (int e = 0; e < N; ++e) f[e] = tl::to_f32(x.v[e]) * mul;
      } else {
#pragma unroll
        for (int e = 0; e < N; ++e) f[e] = 0.f;
      }
#pragma unroll
      for (int e = 0; e < N; e += 4)
        *reinterpret_cast<float4*>(dst + r * LD + c + e) =
            make_float4(f[e], f[e + 1], f[e + 2], f[e + 3]);
    }
  } else {
    for (int idx = threadIdx.x; idx < rows * D; idx += blockDim.x) {
      const int r = idx / D, c = idx - r * D;
      dst[r * LD + c] = r < valid ? tl::to_f32(src[r * stride + c]) * mul : 0.f;
    }
  }
}

// The number of leading keys query i may attend to (see the file comment).
__device__ __forceinline__ int row_end(int i, int tq, int tk, int causal, int key_len) {
  if (!causal) return key_len;
  const long long lim = static_cast<long long>(i) + tk - tq + 1;
  return static_cast<int>(min(static_cast<long long>(key_len), max(lim, 0LL)));
}

template <typename T, int D>
__device__ void flash_fwd(const T* __restrict__ q, const T* __restrict__ k,
                          const T* __restrict__ v, T* __restrict__ o,
                          const int* __restrict__ key_lengths, const FlashParams& p) {
  using C = FlashTile<D>;
  constexpr int BQ = C::BQ, RW = C::RW, RPL = C::RPL, NC = C::NC, LD = C::LD, PLD = C::PLD;
  constexpr int BK = FLASH_BK;
  __shared__ __align__(16) float q_s[BQ * LD];
  __shared__ __align__(16) float kv_s[BK * LD];
  __shared__ __align__(16) float p_s[BQ * PLD];
  __shared__ float alpha_s[BQ];
  __shared__ float l_s[BQ];

  // The launch must match this instantiation (block size, BQ): a mismatch is a host bug.
  const long long q_tiles = (p.tq + BQ - 1) / BQ;
  if (blockDim.x != FLASH_THREADS ||
      static_cast<long long>(gridDim.x) != static_cast<long long>(p.batch) * p.hq * q_tiles)
    __trap();

  const long long blk = blockIdx.x;
  // Query tiles of one (batch, head) are adjacent (K/V reuse in L2), heaviest causal tile first.
  const int tile = static_cast<int>(q_tiles - 1 - blk % q_tiles);
  const long long bh = blk / q_tiles;
  const int h = static_cast<int>(bh % p.hq), b = static_cast<int>(bh / p.hq);
  const int kvh = h / (p.hq / p.hk);
  const int q0 = tile * BQ;
  const int rows = min(BQ, p.tq - q0);
  const int key_len = key_lengths ? min(max(key_lengths[b], 0), p.tk) : p.tk;
  // row_end is non-decreasing in i: the block's last row needs the most keys.
  const int kend = row_end(q0 + rows - 1, p.tq, p.tk, p.causal, key_len);

  const T* qp = q + b * p.q_b + h * p.q_h + static_cast<long long>(q0) * p.q_t;
  const T* kp = k + b * p.k_b + kvh * p.k_h;
  const T* vp = v + b * p.v_b + kvh * p.v_h;
  load_rows<T, D, LD>(q_s, qp, p.q_t, rows, BQ, p.scale_log2);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int ga = lane >> 3, gc = lane & 7;
  const int r_base = warp * RW + ga * RPL;  // this lane's first score-phase row (in the tile)
  int end[RPL];
  float m[RPL], l[RPL];
#pragma unroll
  for (int i = 0; i < RPL; ++i) {
    const int r = r_base + i;
    end[i] = r < rows ? row_end(q0 + r, p.tq, p.tk, p.causal, key_len) : 0;
    m[i] = -INFINITY;
    l[i] = 0.f;
  }
  float acc[RW][NC];
#pragma unroll
  for (int r = 0; r < RW; ++r)
#pragma unroll
    for (int j = 0; j < NC; ++j) acc[r][j] = 0.f;

  for (int k0 = 0; k0 < kend; k0 += BK) {
    const int kn = min(BK, kend - k0);
    __syncthreads();  // the previous tile's PV phase is done with kv_s, p_s, alpha_s
    load_rows<T, D, LD>(kv_s, kp + static_cast<long long>(k0) * p.k_t, p.k_t, kn, BK, 1.f);
    __syncthreads();

    // S = Q·Kᵀ for this lane's RPL rows × 4 keys.
    float s[RPL][4];
#pragma unroll
    for (int i = 0; i < RPL; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = 0.f;
#pragma unroll 2
    for (int d = 0; d < D; d += 4) {
      float4 kk[4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
        kk[j] = *reinterpret_cast<const float4*>(kv_s + (gc + 8 * j) * LD + d);
#pragma unroll
      for (int i = 0; i < RPL; ++i) {
        const float4 qq = *reinterpret_cast<const float4*>(q_s + (r_base + i) * LD + d);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          s[i][j] = fmaf(qq.x, kk[j].x, s[i][j]);
          s[i][j] = fmaf(qq.y, kk[j].y, s[i][j]);
          s[i][j] = fmaf(qq.z, kk[j].z, s[i][j]);
          s[i][j] = fmaf(qq.w, kk[j].w, s[i][j]);
        }
      }
    }

    // Online softmax per row; the 8 lanes of a row group hold identical m, l.
#pragma unroll
    for (int i = 0; i < RPL; ++i) {
      float mt = -INFINITY;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if (k0 + gc + 8 * j >= end[i]) s[i][j] = -INFINITY;
        mt = fmaxf(mt, s[i][j]);
      }
      mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 1));
      mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 2));
      mt = fmaxf(mt, __shfl_xor_sync(FULL, mt, 4));
      const float mn = fmaxf(m[i], mt);
      float alpha = 1.f, sum = 0.f;
      if (mn != -INFINITY) {  // uniform over the row group
        alpha = exp2f(m[i] - mn);  // 0 while m is still -inf
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          s[i][j] = exp2f(s[i][j] - mn);  // masked: exp2(-inf) = 0
          sum += s[i][j];
        }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) s[i][j] = 0.f;
      }
      sum += __shfl_xor_sync(FULL, sum, 1);
      sum += __shfl_xor_sync(FULL, sum, 2);
      sum += __shfl_xor_sync(FULL, sum, 4);
      l[i] = l[i] * alpha + sum;
      m[i] = mn;
      const int r = r_base + i;
#pragma unroll
      for (int j = 0; j < 4; ++j) p_s[r * PLD + gc + 8 * j] = s[i][j];
      if (gc == 0) alpha_s[r] = alpha;
    }

    __syncthreads();  // everyone is done reading K; P and alpha are written
    load_rows<T, D, LD>(kv_s, vp + static_cast<long long>(k0) * p.v_t, p.v_t, kn, BK, 1.f);
    __syncthreads();

    // O = O·alpha + P·V for this warp's RW rows, this lane's columns.
#pragma unroll
    for (int r = 0; r < RW; ++r) {
      const float al = alpha_s[warp * RW + r];
#pragma unroll
      for (int j = 0; j < NC; ++j) acc[r][j] *= al;
    }
#pragma unroll 2
    for (int kk = 0; kk < BK; kk += 4) {
      float vv[4][NC];
#pragma unroll
      for (int u = 0; u < 4; ++u)
#pragma unroll
        for (int j = 0; j < NC; ++j) {
          const int c = lane + 32 * j;
          vv[u][j] = c < D ? kv_s[(kk + u) * LD + c] : 0.f;
        }
#pragma unroll
      for (int r = 0; r < RW; ++r) {
        const float4 pp = *reinterpret_cast<const float4*>(p_s + (warp * RW + r) * PLD + kk);
#pragma unroll
        for (int j = 0; j < NC; ++j) {
          acc[r][j] = fmaf(pp.x, vv[0][j], acc[r][j]);
          acc[r][j] = fmaf(pp.y, vv[1][j], acc[r][j]);
          acc[r][j] = fmaf(pp.z, vv[2][j], acc[r][j]);
          acc[r][j] = fmaf(pp.w, vv[3][j], acc[r][j]);
        }
      }
    }
  }

  if (gc == 0) {
#pragma unroll
    for (int i = 0; i < RPL; ++i) l_s[r_base + i] = l[i];
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < RW; ++r) {
    const int rt = warp * RW + r;
    if (rt < rows) {
      const float lr = l_s[rt];
      const float inv = lr > 0.f ? 1.f / lr : 0.f;  // no valid key: zeros
      T* orow = o + b * p.o_b + h * p.o_h + static_cast<long long>(q0 + rt) * p.o_t;
#pragma unroll
      for (int j = 0; j < NC; ++j) {
        const int c = lane + 32 * j;
        if (c < D) orow[c] = tl::from_f32<T>(acc[r][j] * inv);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decode
// ---------------------------------------------------------------------------------------------

constexpr int DEC_THREADS = 256;  // 8 warps
constexpr int DEC_WARPS = DEC_THREADS / 32;
constexpr int DEC_U = 4;  // keys per warp step

template <typename T, int D>
__device__ void decode_split(const T* __restrict__ q, const T* __restrict__ k,
                             const T* __restrict__ v, T* __restrict__ o,
                             float* __restrict__ part, const DecodeParams& p) {
  constexpr int NC = (D + 31) / 32;
  __shared__ float m_s[DEC_WARPS], l_s[DEC_WARPS];
  __shared__ float acc_s[DEC_WARPS][D];

  if (blockDim.x != DEC_THREADS || p.head_dim != D ||
      static_cast<long long>(gridDim.x) != static_cast<long long>(p.batch) * p.hq * p.splits ||
      (p.splits > 1 && part == nullptr))
    __trap();

  const long long blk = blockIdx.x;
  const int split = static_cast<int>(blk % p.splits);
  const long long bh = blk / p.splits;
  const int h = static_cast<int>(bh % p.hq), b = static_cast<int>(bh / p.hq);
  const int kvh = h / (p.hq / p.hk);
  const long long j0l = static_cast<long long>(split) * p.chunk;
  const int j0 = static_cast<int>(min(j0l, static_cast<long long>(p.len)));
  const int j1 = static_cast<int>(min(j0l + p.chunk, static_cast<long long>(p.len)));

  const T* qp = q + b * p.q_b + h * p.q_h;
  const T* kp = k + b * p.k_b + kvh * p.k_h;
  const T* vp = v + b * p.v_b + kvh * p.v_h;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  float qr[NC], acc[NC];
#pragma unroll
  for (int j = 0; j < NC; ++j) {
    const int c = lane + 32 * j;
    qr[j] = c < D ? tl::to_f32(qp[c]) * p.scale_log2 : 0.f;
    acc[j] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int jb = j0 + warp * DEC_U; jb < j1; jb += DEC_WARPS * DEC_U) {
    float s[DEC_U];
#pragma unroll
    for (int u = 0; u < DEC_U; ++u) {
      float part_dot = 0.f;
      if (jb + u < j1) {
        const T* kr = kp + static_cast<long long>(jb + u) * p.k_t;
#pragma unroll
        for (int j = 0; j < NC; ++j) {
          const int c = lane + 32 * j;
          if (c < D) part_dot = fmaf(qr[j], tl::to_f32(kr[c]), part_dot);
        }
      }
      s[u] = part_dot;
    }
    float mt = -INFINITY;
#pragma unroll
    for (int u = 0; u < DEC_U; ++u) {
      s[u] = tl::warp_sum(s[u]);
      if (jb + u >= j1) s[u] = -INFINITY;
      mt = fmaxf(mt, s[u]);
    }
    const float mn = fmaxf(m, mt);  // finite: key jb < j1 is valid
    const float alpha = exp2f(m - mn);
    l *= alpha;
#pragma unroll
    for (int j = 0; j < NC; ++j) acc[j] *= alpha;
#pragma unroll
    for (int u = 0; u < DEC_U; ++u) {
      if (jb + u < j1) {
        const float pu = exp2f(s[u] - mn);
        l += pu;
        const T* vr = vp + static_cast<long long>(jb + u) * p.v_t;
#pragma unroll
        for (int j = 0; j < NC; ++j) {
          const int c = lane + 32 * j;
          if (c < D) acc[j] = fmaf(pu, tl::to_f32(vr[c]), acc[j]);
        }
      }
    }
    m = mn;
  }

  if (lane == 0) {
    m_s[warp] = m;
    l_s[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < NC; ++j) {
    const int c = lane + 32 * j;
    if (c < D) acc_s[warp][c] = acc[j];
  }
  __syncthreads();

  // Merge the warps (a warp that got no key has m = -inf and weight 0).
  float mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < DEC_WARPS; ++w) mx = fmaxf(mx, m_s[w]);
  float wt[DEC_WARPS];
  float lsum = 0.f;
#pragma unroll
  for (int w = 0; w < DEC_WARPS; ++w) {
    wt[w] = m_s[w] == -INFINITY ? 0.f : exp2f(m_s[w] - mx);
    lsum += l_s[w] * wt[w];
  }
  float* pr = p.splits > 1 ? part + blk * (D + 2) : nullptr;  // checked non-null above
  for (int c = threadIdx.x; c < D; c += DEC_THREADS) {
    float a = 0.f;
#pragma unroll
    for (int w = 0; w < DEC_WARPS; ++w) a += acc_s[w][c] * wt[w];
    if (p.splits == 1) {
      o[b * p.o_b + h * p.o_h + c] = tl::from_f32<T>(lsum > 0.f ? a / lsum : 0.f);
    } else {
      pr[2 + c] = a;
    }
  }
  if (p.splits > 1 && threadIdx.x == 0) {
    pr[0] = mx;  // -inf when this split got no key
    pr[1] = lsum;
  }
}

// Merges the `splits` partial results of each (batch, head): one block per (batch, head).
template <typename T>
__device__ void decode_combine(const float* __restrict__ part, T* __restrict__ o,
                               const DecodeParams& p) {
  if (static_cast<long long>(gridDim.x) != static_cast<long long>(p.batch) * p.hq) __trap();
  const long long bh = blockIdx.x;
  const int h = static_cast<int>(bh % p.hq), b = static_cast<int>(bh / p.hq);
  const int d = p.head_dim, w = d + 2;
  const float* pr = part + bh * p.splits * w;
  float mx = -INFINITY;
  for (int s = 0; s < p.splits; ++s) mx = fmaxf(mx, pr[s * w]);
  float lsum = 0.f;
  for (int s = 0; s < p.splits; ++s) {
    const float ms = pr[s * w];
    lsum += ms == -INFINITY ? 0.f : pr[s * w + 1] * exp2f(ms - mx);
  }
  const float inv = lsum > 0.f ? 1.f / lsum : 0.f;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float a = 0.f;
    for (int s = 0; s < p.splits; ++s) {
      const float ms = pr[s * w];
      if (ms != -INFINITY) a += pr[s * w + 2 + c] * exp2f(ms - mx);
    }
    o[b * p.o_b + h * p.o_h + c] = tl::from_f32<T>(a * inv);
  }
}

}  // namespace tl_attn

#define ATTN_D(T, SUFFIX, D)                                                                  \
  extern "C" __global__ void __launch_bounds__(tl_attn::FLASH_THREADS)                        \
      flash_attn_fwd_d##D##_##SUFFIX(const T* q, const T* k, const T* v, T* o,                \
                                     const int* key_lengths, const tl_attn::FlashParams p) {  \
    tl_attn::flash_fwd<T, D>(q, k, v, o, key_lengths, p);                                     \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(tl_attn::DEC_THREADS)                          \
      decode_attn_d##D##_##SUFFIX(const T* q, const T* k, const T* v, T* o, float* part,      \
                                  const tl_attn::DecodeParams p) {                            \
    tl_attn::decode_split<T, D>(q, k, v, o, part, p);                                         \
  }

#define ATTN_OPS(T, SUFFIX)                                                                   \
  ATTN_D(T, SUFFIX, 32)                                                                       \
  ATTN_D(T, SUFFIX, 64)                                                                       \
  ATTN_D(T, SUFFIX, 80)                                                                       \
  ATTN_D(T, SUFFIX, 96)                                                                       \
  ATTN_D(T, SUFFIX, 128)                                                                      \
  extern "C" __global__ void decode_combine_##SUFFIX(const float* part, T* o,                 \
                                                     const tl_attn::DecodeParams p) {         \
    tl_attn::decode_combine<T>(part, o, p);                                                   \
  }

ATTN_OPS(float, f32)
ATTN_OPS(__half, f16)
ATTN_OPS(__nv_bfloat16, bf16)
