// Elementwise activation epilogues, grid-stride and memory-bound:
//   bias_<act>_<sfx>(x, bias, out, n, cols): out[e] = act(x[e] + bias[e % cols]) over n
//     elements (bias may be null), act in {gelu_erf, gelu_tanh, relu, silu};
//   swiglu_<sfx>(gate, up, out, rows, cols, gate_stride, up_stride):
//     out[r*cols + c] = silu(gate[r*gate_stride + c]) * up[r*up_stride + c], so the packed
//     [gate | up] layout is gate = base, up = base + cols, both strides 2*cols.
// f32 arithmetic; 16-byte vectors when every row and pointer allows, scalars otherwise.
// The column is tracked incrementally across grid-stride steps (no division in the loop).
#include "common.cuh"

namespace {

struct GeluErf {
  __device__ __forceinline__ float operator()(float x) const {
    return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
  }
};

struct GeluTanh {
  __device__ __forceinline__ float operator()(float x) const {
    return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * (x * x * x))));
  }
};

struct Relu {
  // `x < 0` rather than fmaxf: NaN stays NaN, as in torch.relu.
  __device__ __forceinline__ float operator()(float x) const { return x < 0.f ? 0.f : x; }
};

__device__ __forceinline__ float silu(float x) { return x / (1.f + expf(-x)); }

struct Silu {
  __device__ __forceinline__ float operator()(float x) const { return silu(x); }
};

// N consecutive elements at p (one 16-byte access when N > 1; p is then 16-byte aligned).
template <typename T, int N>
__device__ __forceinline__ void load(const T* p, float (&v)[N]) {
  if constexpr (N == 1) {
    v[0] = tl::to_f32(*p);
  } else {
    tl::Vec16<T> u;
    u.raw = *reinterpret_cast<const uint4*>(p);
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = tl::to_f32(u.v[k]);
  }
}

template <typename T, int N>
__device__ __forceinline__ void store(T* p, const float (&v)[N]) {
  if constexpr (N == 1) {
    *p = tl::from_f32<T>(v[0]);
  } else {
    tl::Vec16<T> u;
#pragma unroll
    for (int k = 0; k < N; ++k) u.v[k] = tl::from_f32<T>(v[k]);
    *reinterpret_cast<uint4*>(p) = u.raw;
  }
}

// out[e] = f(x[e] + bias[e % cols]) for e < n, N elements per step. With N > 1 and a bias,
// cols % N == 0, so a vector never straddles two rows. Elements past the last full vector
// (n % N, only without a bias) are done one by one.
template <typename T, int N, typename F>
__device__ void bias_map(const T* __restrict__ x, const T* __restrict__ bias, T* __restrict__ out,
                         size_t n, unsigned cols, F f) {
  const size_t units = n / N;
  const size_t start = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t step = static_cast<size_t>(gridDim.x) * blockDim.x;
  unsigned col = static_cast<unsigned>((start * N) % cols);
  const unsigned col_step = static_cast<unsigned>((step * N) % cols);
  for (size_t u = start; u < units; u += step) {
    float v[N];
    load<T, N>(x + u * N, v);
    if (bias) {
      float b[N];
      load<T, N>(bias + col, b);
#pragma unroll
      for (int k = 0; k < N; ++k) v[k] += b[k];
    }
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] = f(v[k]);
    store<T, N>(out + u * N, v);
    col += col_step;  // both < cols, so one subtraction brings it back below cols
    if (col >= cols) col -= cols;
  }
  if (N > 1) {
    for (size_t e = units * N + start; e < n; e += step) {
      const float b = bias ? tl::to_f32(bias[e % cols]) : 0.f;
      out[e] = tl::from_f32<T>(f(tl::to_f32(x[e]) + b));
    }
  }
}

template <typename T, typename F>
__device__ void bias_act(const T* x, const T* bias, T* out, unsigned long long n, int cols, F f) {
  constexpr int N = tl::Vec16<T>::N;
  const unsigned c = cols > 0 ? static_cast<unsigned>(cols) : 1u;
  // Without a bias, rows do not matter: only the pointers' alignment does.
  if (tl::vec16_ok<T>(bias ? cols : N, x, bias, out)) {
    bias_map<T, N>(x, bias, out, n, c, f);
  } else {
    bias_map<T, 1>(x, bias, out, n, c, f);
  }
}

// out[r*cols + c] = silu(gate[r*gs + c]) * up[r*us + c], N elements per step; with N > 1,
// cols, gs and us are multiples of N.
template <typename T, int N>
__device__ void swiglu_map(const T* __restrict__ gate, const T* __restrict__ up,
                           T* __restrict__ out, size_t rows, unsigned cols, size_t gs,
                           size_t us) {
  const unsigned per_row = cols / N;  // vectors per row
  const size_t units = rows * per_row;
  const size_t start = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t step = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t row = start / per_row;
  unsigned uc = static_cast<unsigned>(start % per_row);
  const size_t row_step = step / per_row;
  const unsigned uc_step = static_cast<unsigned>(step % per_row);
  for (size_t u = start; u < units; u += step) {
    const size_t c = static_cast<size_t>(uc) * N;
    float g[N], v[N];
    load<T, N>(gate + row * gs + c, g);
    load<T, N>(up + row * us + c, v);
#pragma unroll
    for (int k = 0; k < N; ++k) v[k] *= silu(g[k]);
    store<T, N>(out + u * N, v);  // u * N == row * cols + c
    row += row_step;
    uc += uc_step;
    if (uc >= per_row) {
      uc -= per_row;
      ++row;
    }
  }
}

template <typename T>
__device__ void swiglu(const T* gate, const T* up, T* out, unsigned long long rows, int cols,
                       unsigned long long gs, unsigned long long us) {
  constexpr int N = tl::Vec16<T>::N;
  if (cols <= 0) return;
  const unsigned c = static_cast<unsigned>(cols);
  if (tl::vec16_ok<T>(cols, gate, up, out) && gs % N == 0 && us % N == 0) {
    swiglu_map<T, N>(gate, up, out, rows, c, gs, us);
  } else {
    swiglu_map<T, 1>(gate, up, out, rows, c, gs, us);
  }
}

}  // namespace

#define BIAS_ACT_OP(T, SFX, NAME, F)                                                        \
  extern "C" __global__ void bias_##NAME##_##SFX(const T* x, const T* bias, T* out,          \
                                                 unsigned long long n, int cols) {           \
    bias_act<T>(x, bias, out, n, cols, F());                                               \
  }

#define ACTIVATION_OPS(T, SFX)                                                                \
  BIAS_ACT_OP(T, SFX, gelu_erf, GeluErf)                                                      \
  BIAS_ACT_OP(T, SFX, gelu_tanh, GeluTanh)                                                    \
  BIAS_ACT_OP(T, SFX, relu, Relu)                                                             \
  BIAS_ACT_OP(T, SFX, silu, Silu)                                                             \
  extern "C" __global__ void swiglu_##SFX(const T* gate, const T* up, T* out,                 \
                                          unsigned long long rows, int cols,                 \
                                          unsigned long long gate_stride,                    \
                                          unsigned long long up_stride) {                    \
    swiglu<T>(gate, up, out, rows, cols, gate_stride, up_stride);                             \
  }

ACTIVATION_OPS(float, f32)
ACTIVATION_OPS(__half, f16)
ACTIVATION_OPS(__nv_bfloat16, bf16)
