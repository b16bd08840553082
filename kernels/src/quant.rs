//! int8 weights for the decoders' linear layers (`--quantize int8`): an [`Int8Matrix`] holds an
//! `nn.Linear` weight `[N, K]` quantized symmetrically per output channel (row `n` is
//! `q[n, :] · scale[n]` with `q ∈ [-127, 127]` and `scale[n] = max|W[n, :]| / 127`), and
//! [`Int8Matrix::matmul`] computes `y[M, N] = x[M, K] · Wᵀ` with f32 activations and f32 results.
//!
//! A decode step (`M == 1`) streams every weight once: the output rows are split into bands
//! over the rayon threads, each band computes four rows at a time (one read of the activation
//! chunk for four weight rows). A prompt (`M > 1`) runs the same loop with every activation row
//! inside each band of four weight rows, so the weights are still read from memory once and the
//! activations come from the cache. One of four kernels does the arithmetic ([`Kernel`]):
//!
//! - [`Kernel::Vnni`] (AVX-512 VNNI, `vpdpbusd`): each activation row quantized symmetrically to
//!   i8 and offset by 128 to u8 (`vpdpbusd` multiplies u8 by i8), 64 products per instruction
//!   accumulated exactly in i32; `Σ_k (xq + 128)·q = Σ_k xq·q + 128·Σ_k q` is corrected with
//!   the row sums kept at load. Adds the activation's rounding error (one part in 254 of the
//!   row's largest magnitude) to the weights'.
//! - [`Kernel::Avx512`]: the int8 weights widened to f32 in registers (`vpmovsxbd`,
//!   `vcvtdq2ps`) and multiplied with the f32 activations (FMA); only the weights are rounded.
//! - [`Kernel::Avx2`]: the same with AVX2+FMA, eight lanes.
//! - [`Kernel::Portable`]: plain Rust, f32 accumulation.
//!
//! [`Kernel::auto`] picks from [`crate::isa::isa`] (so `TORCHLESS_CPU=avx2|portable` forces the
//! older paths): on [`Isa::Avx512`] with VNNI it takes [`Kernel::Vnni`], 2–4x faster than
//! widening the weights on AVX-512 (which is bound by the conversions, not by memory) on a Zen 4
//! at the decode shapes (docs/quantization.md); without VNNI the widening kernel. The tests call
//! every kernel the CPU has through [`Int8Matrix::matmul_with`].

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

use crate::isa::{has_avx512_vnni, isa, Isa};

/// `K` is padded with zeros to a multiple of this (one 512-bit register of bytes).
const K_ALIGN: usize = 64;
/// Weight rows computed together (one activation read for all of them).
const ROWS: usize = 4;
/// Below this many weights the product runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;
/// The largest padded `K` for [`Kernel::Vnni`]: `255 · 127 · K` must fit an i32 accumulator.
const VNNI_MAX_K: usize = 65_536;

/// Which arithmetic computes an [`Int8Matrix`] product (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// AVX-512 VNNI on activations quantized per row to u8.
    Vnni,
    /// AVX-512: int8 weights widened to f32, f32 activations.
    Avx512,
    /// AVX2+FMA: int8 weights widened to f32, f32 activations.
    Avx2,
    /// Plain Rust.
    Portable,
}

impl Kernel {
    /// The kernel for the process's [`isa`] level.
    pub fn auto() -> Kernel {
        Kernel::for_isa(isa())
    }

    /// The kernel used at an instruction-set level (VNNI where the CPU has it).
    pub fn for_isa(level: Isa) -> Kernel {
        match level {
            Isa::Avx512 if has_avx512_vnni() => Kernel::Vnni,
            Isa::Avx512 => Kernel::Avx512,
            Isa::Avx2 => Kernel::Avx2,
            Isa::Portable => Kernel::Portable,
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Kernel::Vnni => has_avx512_vnni(),
            Kernel::Avx512 => crate::isa::detected() >= Isa::Avx512,
            Kernel::Avx2 => crate::isa::detected() >= Isa::Avx2,
            Kernel::Portable => true,
        }
    }
}

/// An `nn.Linear` weight `[N, K]` in int8, one f32 scale per output row (module docs).
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    /// Output features `N`.
    n: usize,
    /// Input features `K`.
    k: usize,
    /// `K` padded to [`K_ALIGN`].
    kp: usize,
    /// `q`, `[N padded to ROWS, kp]` row-major, zero in the padding.
    q: Vec<i8>,
    /// `scale[n]` (0 for the padding rows).
    scales: Vec<f32>,
    /// `Σ_k q[n, k]` (the VNNI kernel's u8 offset correction).
    sums: Vec<i32>,
}

impl Int8Matrix {
    /// Quantizes a row-major `[n, k]` f32 weight (`nn.Linear.weight` as PyTorch stores it).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Result<Self> {
        if w.len() != n * k {
            candle_core::bail!("int8: a weight of {} values is not [{n}, {k}]", w.len());
        }
        let kp = k.div_ceil(K_ALIGN).max(1) * K_ALIGN;
        let np = n.div_ceil(ROWS) * ROWS;
        let mut q = vec![0i8; np * kp];
        let mut scales = vec![0f32; np];
        let mut sums = vec![0i32; np];
        if k > 0 {
            // Row `i`'s int8 values, scale and sum (the zero-filled padding rows stay zero).
            let row = |(i, ((qr, s), sum)): (usize, ((&mut [i8], &mut f32), &mut i32))| {
                (*s, *sum) = quantize_row(&w[i * k..(i + 1) * k], &mut qr[..k]);
            };
            let (qn, sn, un) = (&mut q[..n * kp], &mut scales[..n], &mut sums[..n]);
            if n * k < PARALLEL_MIN {
                qn.chunks_exact_mut(kp)
                    .zip(sn.iter_mut())
                    .zip(un.iter_mut())
                    .enumerate()
                    .for_each(row);
            } else {
                qn.par_chunks_exact_mut(kp)
                    .zip(sn.par_iter_mut())
                    .zip(un.par_iter_mut())
                    .enumerate()
                    .for_each(row);
            }
        }
        Ok(Int8Matrix {
            n,
            k,
            kp,
            q,
            scales,
            sums,
        })
    }

    /// Quantizes a CPU weight tensor laid out `[N, K]` (`nn.Linear.weight`), any float dtype.
    pub fn from_out_in(w: &Tensor) -> Result<Self> {
        let (n, k) = w.dims2()?;
        let v = w.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Self::quantize(&v, n, k)
    }

    /// Quantizes a CPU weight tensor laid out `[K, N]` (a transposed `nn.Linear` weight, GPT-2's
    /// `Conv1D`), any float dtype.
    pub fn from_in_out(w: &Tensor) -> Result<Self> {
        Self::from_out_in(&w.t()?.contiguous()?)
    }

    /// Output features `N`.
    pub fn out_dim(&self) -> usize {
        self.n
    }

    /// Input features `K`.
    pub fn in_dim(&self) -> usize {
        self.k
    }

    /// Bytes held (weights with their padding, scales and row sums).
    pub fn nbytes(&self) -> usize {
        self.q.len() + 8 * self.scales.len()
    }

    /// The weight as the f32 values the kernels multiply by, row-major `[N, K]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.n * self.k);
        for (row, &s) in self.q.chunks_exact(self.kp).zip(&self.scales).take(self.n) {
            out.extend(row[..self.k].iter().map(|&v| f32::from(v) * s));
        }
        out
    }

    /// [`Self::dequantize`] as a `[N, K]` f32 tensor on the CPU.
    pub fn dequantize_tensor(&self) -> Result<Tensor> {
        Tensor::from_vec(
            self.dequantize(),
            (self.n, self.k),
            &candle_core::Device::Cpu,
        )
    }

    /// `x · Wᵀ` for `x` `[M, K]` on the CPU (f32, bf16 or f16; computed in f32), in `x`'s dtype,
    /// with [`Kernel::auto`].
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        if !x.device().is_cpu() {
            candle_core::bail!(
                "int8 weights run on the CPU only, the input is on {:?}",
                x.device()
            );
        }
        let (m, k) = x.dims2()?;
        if k != self.k {
            candle_core::bail!(
                "int8 matmul: input [{m}, {k}] for a [{}, {}] weight",
                self.n,
                self.k
            );
        }
        let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let y = self.matmul_with(Kernel::auto(), &xs, m)?;
        Tensor::from_vec(y, (m, self.n), x.device())?.to_dtype(x.dtype())
    }

    /// `x · Wᵀ` for `x` row-major `[m, K]`, with `kernel` (an error if the CPU lacks it).
    pub fn matmul_with(&self, kernel: Kernel, x: &[f32], m: usize) -> Result<Vec<f32>> {
        if x.len() != m * self.k {
            candle_core::bail!("int8 matmul: {} inputs are not [{m}, {}]", x.len(), self.k);
        }
        if !kernel.supported() {
            candle_core::bail!("int8 matmul: this CPU cannot run the {kernel:?} kernel");
        }
        let kernel = if kernel == Kernel::Vnni && self.kp > VNNI_MAX_K {
            Kernel::Avx512
        } else {
            kernel
        };
        let np = self.scales.len();
        if m == 0 || np == 0 {
            return Ok(vec![0f32; m * self.n]);
        }
        let act = Activations::new(kernel, x, m, self.k, self.kp);
        // Bands of whole row groups, about four per thread so uneven finishing evens out.
        let threads = rayon::current_num_threads().max(1);
        let band = np.div_ceil(4 * threads).div_ceil(ROWS).max(1) * ROWS;
        let mut yt = vec![0f32; np * m];
        let run = |(b, out): (usize, &mut [f32])| self.band(kernel, &act, b * band, out);
        if np * self.kp < PARALLEL_MIN || threads == 1 {
            yt.chunks_mut(band * m).enumerate().for_each(run);
        } else {
            yt.par_chunks_mut(band * m).enumerate().for_each(run);
        }
        if m == 1 {
            yt.truncate(self.n);
            return Ok(yt);
        }
        let mut y = vec![0f32; m * self.n];
        for (i, row) in yt.chunks_exact(m).take(self.n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                y[j * self.n + i] = v;
            }
        }
        Ok(y)
    }

    /// Rows `r0..` of `yᵀ` (`out` is `[rows, m]`, rows a multiple of [`ROWS`]).
    fn band(&self, kernel: Kernel, act: &Activations, r0: usize, out: &mut [f32]) {
        let (kp, m) = (self.kp, act.rows());
        for (g, out) in out.chunks_exact_mut(ROWS * m).enumerate() {
            let r = r0 + g * ROWS;
            let w = &self.q[r * kp..(r + ROWS) * kp];
            let scales = &self.scales[r..r + ROWS];
            for i in 0..m {
                let dots: [f32; ROWS] = match (kernel, act) {
                    (Kernel::Vnni, Activations::U8 { q, scales: xs, .. }) => {
                        let (xq, xs) = (&q[i * kp..(i + 1) * kp], xs[i]);
                        // SAFETY: `Kernel::supported` checked the CPU has AVX-512 VNNI; `w` is
                        // ROWS rows of `kp` bytes and `xq` is `kp` bytes, `kp % 64 == 0`.
                        let d = unsafe { x86::dots_vnni(w, xq, kp) };
                        let sums = &self.sums[r..r + ROWS];
                        std::array::from_fn(|j| (d[j] - 128 * sums[j]) as f32 * xs)
                    }
                    (Kernel::Avx512, Activations::F32 { x, .. }) => {
                        // SAFETY: `Kernel::supported` checked the CPU has AVX-512 F/BW/VL, AVX2
                        // and FMA; `w` is ROWS rows of `kp` bytes, `x` is `kp` values.
                        unsafe { x86::dots_avx512(w, &x[i * kp..(i + 1) * kp], kp) }
                    }
                    (Kernel::Avx2, Activations::F32 { x, .. }) => {
                        // SAFETY: `Kernel::supported` checked the CPU has AVX2 and FMA; `w` is
                        // ROWS rows of `kp` bytes, `x` is `kp` values.
                        unsafe { x86::dots_avx2(w, &x[i * kp..(i + 1) * kp], kp) }
                    }
                    (_, Activations::F32 { x, .. }) => {
                        dots_portable(w, &x[i * kp..(i + 1) * kp], kp)
                    }
                    (_, Activations::U8 { .. }) => {
                        unreachable!("u8 activations are built for VNNI only")
                    }
                };
                for j in 0..ROWS {
                    out[j * m + i] = dots[j] * scales[j];
                }
            }
        }
    }
}

/// The activations in the form a kernel reads, each row padded to `kp`.
enum Activations {
    /// f32 rows, zero-padded.
    F32 { x: Vec<f32>, m: usize },
    /// Rows quantized symmetrically to i8 (`x ≈ xq · scale`), offset by 128 to u8.
    U8 {
        q: Vec<u8>,
        scales: Vec<f32>,
        m: usize,
    },
}

impl Activations {
    fn new(kernel: Kernel, x: &[f32], m: usize, k: usize, kp: usize) -> Self {
        if kernel != Kernel::Vnni {
            let mut p = vec![0f32; m * kp];
            for (d, s) in p.chunks_exact_mut(kp).zip(x.chunks_exact(k.max(1))) {
                d[..k].copy_from_slice(s);
            }
            return Activations::F32 { x: p, m };
        }
        let mut q = vec![128u8; m * kp];
        let mut scales = vec![0f32; m];
        for ((d, s), sc) in q
            .chunks_exact_mut(kp)
            .zip(x.chunks_exact(k.max(1)))
            .zip(scales.iter_mut())
        {
            let amax = max_abs(s);
            if !amax.is_finite() {
                // The row's products are NaN, as the f32 product would be (or ±∞).
                *sc = f32::NAN;
                continue;
            }
            if amax == 0.0 {
                continue;
            }
            *sc = amax / 127.0;
            let inv = 127.0 / amax;
            for (d, &v) in d.iter_mut().zip(s) {
                *d = ((v * inv).round_ties_even().clamp(-127.0, 127.0) + 128.0) as u8;
            }
        }
        Activations::U8 { q, scales, m }
    }

    /// Activation rows.
    fn rows(&self) -> usize {
        match self {
            Activations::F32 { m, .. } | Activations::U8 { m, .. } => *m,
        }
    }
}

/// Rounds `row` to `q` (same length): returns the scale and `Σ q`. A zero row stays zero
/// (scale 0); a row with ±∞ or NaN gets a NaN scale, so its outputs are NaN.
fn quantize_row(row: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = max_abs(row);
    if amax == 0.0 {
        return (0.0, 0);
    }
    if !amax.is_finite() {
        return (f32::NAN, 0);
    }
    let inv = 127.0 / amax;
    let mut total = 0i32;
    for (d, &v) in q.iter_mut().zip(row) {
        let r = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
        total += i32::from(r);
        *d = r;
    }
    (amax / 127.0, total)
}

/// `max |v|` over `v`, NaN if any value is NaN (`f32::max` would skip it).
fn max_abs(v: &[f32]) -> f32 {
    let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if v.iter().any(|x| x.is_nan()) {
        f32::NAN
    } else {
        m
    }
}

/// Four rows of `w` (each `kp` bytes) dotted with `x` (`kp` values), f32 accumulation.
fn dots_portable(w: &[i8], x: &[f32], kp: usize) -> [f32; ROWS] {
    std::array::from_fn(|j| {
        let row = &w[j * kp..(j + 1) * kp];
        let mut acc = [0f32; 16];
        for (a, b) in row.chunks_exact(16).zip(x.chunks_exact(16)) {
            for t in 0..16 {
                acc[t] += f32::from(a[t]) * b[t];
            }
        }
        acc.iter().sum()
    })
}

/// The x86 kernels: four weight rows against one activation row (AVX-512 intrinsics: stable
/// since Rust 1.89, the workspace's rust-version).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::ROWS;

    /// `Σ_k x[k] · w[j, k]` for the four rows `j`, `x` in u8 and `w` in i8, exact in i32.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI; `w` holds `4 · kp` bytes, `x` `kp`, `kp % 64 == 0`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn dots_vnni(w: &[i8], x: &[u8], kp: usize) -> [i32; ROWS] {
        debug_assert!(w.len() >= ROWS * kp && x.len() >= kp && kp.is_multiple_of(64));
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm512_setzero_si512(); ROWS];
        let mut k = 0;
        while k < kp {
            // SAFETY: `k + 64 <= kp`, so every 64-byte load is inside `x` and inside row `j`
            // of `w` (the caller's sizes).
            unsafe {
                let xv = _mm512_loadu_si512(xp.add(k).cast());
                for (j, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_loadu_si512(wp.add(j * kp + k).cast());
                    *a = _mm512_dpbusd_epi32(*a, xv, wv);
                }
            }
            k += 64;
        }
        acc.map(|a| _mm512_reduce_add_epi32(a))
    }

    /// `Σ_k x[k] · w[j, k]` for the four rows `j`, `w` widened from i8 to f32.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL, AVX2 and FMA; `w` holds `4 · kp` bytes, `x` `kp` values,
    /// `kp % 32 == 0`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn dots_avx512(w: &[i8], x: &[f32], kp: usize) -> [f32; ROWS] {
        debug_assert!(w.len() >= ROWS * kp && x.len() >= kp && kp.is_multiple_of(32));
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        // Two accumulators per row: eight independent FMA chains.
        let mut lo = [_mm512_setzero_ps(); ROWS];
        let mut hi = [_mm512_setzero_ps(); ROWS];
        let mut k = 0;
        while k < kp {
            // SAFETY: `k + 32 <= kp`: the 32 values of `x` and the 32 bytes of each row are in
            // bounds (the caller's sizes).
            unsafe {
                let x0 = _mm512_loadu_ps(xp.add(k));
                let x1 = _mm512_loadu_ps(xp.add(k + 16));
                for j in 0..ROWS {
                    let b = _mm256_loadu_si256(wp.add(j * kp + k).cast());
                    let w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(b)));
                    let w1 =
                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(b, 1)));
                    lo[j] = _mm512_fmadd_ps(w0, x0, lo[j]);
                    hi[j] = _mm512_fmadd_ps(w1, x1, hi[j]);
                }
            }
            k += 32;
        }
        std::array::from_fn(|j| _mm512_reduce_add_ps(_mm512_add_ps(lo[j], hi[j])))
    }

    /// `Σ_k x[k] · w[j, k]` for the four rows `j`, `w` widened from i8 to f32, eight lanes.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `w` holds `4 · kp` bytes, `x` `kp` values, `kp % 16 == 0`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dots_avx2(w: &[i8], x: &[f32], kp: usize) -> [f32; ROWS] {
        debug_assert!(w.len() >= ROWS * kp && x.len() >= kp && kp.is_multiple_of(16));
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut lo = [_mm256_setzero_ps(); ROWS];
        let mut hi = [_mm256_setzero_ps(); ROWS];
        let mut k = 0;
        while k < kp {
            // SAFETY: `k + 16 <= kp`: the 16 values of `x` and the 16 bytes of each row are in
            // bounds (the caller's sizes).
            unsafe {
                let x0 = _mm256_loadu_ps(xp.add(k));
                let x1 = _mm256_loadu_ps(xp.add(k + 8));
                for j in 0..ROWS {
                    let b = _mm_loadu_si128(wp.add(j * kp + k).cast());
                    let w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
                    let w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)));
                    lo[j] = _mm256_fmadd_ps(w0, x0, lo[j]);
                    hi[j] = _mm256_fmadd_ps(w1, x1, hi[j]);
                }
            }
            k += 16;
        }
        std::array::from_fn(|j| {
            let s = _mm256_add_ps(lo[j], hi[j]);
            let q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
            let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
            _mm_cvtss_f32(q)
        })
    }
}

/// Stand-ins on other architectures: [`Kernel::supported`] is false for every x86 kernel, so
/// these are never called.
#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    use super::ROWS;

    pub(super) unsafe fn dots_vnni(_: &[i8], _: &[u8], _: usize) -> [i32; ROWS] {
        unreachable!("no VNNI off x86-64")
    }
    pub(super) unsafe fn dots_avx512(w: &[i8], x: &[f32], kp: usize) -> [f32; ROWS] {
        super::dots_portable(w, x, kp)
    }
    pub(super) unsafe fn dots_avx2(w: &[i8], x: &[f32], kp: usize) -> [f32; ROWS] {
        super::dots_portable(w, x, kp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in `[-1, 1)` (a 64-bit LCG), with a few large ones so rows have
    /// different scales.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..len)
            .map(|i| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let v = ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                if i % 97 == 3 {
                    v * 8.0
                } else {
                    v
                }
            })
            .collect()
    }

    /// `x · Dᵀ` in f64 for the dequantized weight `D` `[n, k]`.
    fn reference(x: &[f32], d: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut y = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k)
                    .map(|t| f64::from(x[i * k + t]) * f64::from(d[j * k + t]))
                    .sum();
            }
        }
        y
    }

    /// `max |got − want| / max(max |want|, tiny)`.
    fn err(got: &[f32], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
        got.iter()
            .zip(want)
            .map(|(&g, &w)| (f64::from(g) - w).abs())
            .fold(0.0, f64::max)
            / scale
    }

    const SIZES: [usize; 5] = [1, 7, 17, 255, 1025];

    #[test]
    fn quantization_rounds_each_weight_to_its_rows_grid() -> Result<()> {
        let (n, k) = (17, 255);
        let w = values(n * k, 1);
        let q = Int8Matrix::quantize(&w, n, k)?;
        let d = q.dequantize();
        for (j, (row, drow)) in w.chunks_exact(k).zip(d.chunks_exact(k)).enumerate() {
            let amax = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            let step = amax / 127.0;
            for (a, b) in row.iter().zip(drow) {
                assert!(
                    (a - b).abs() <= 0.5 * step * (1.0 + 1e-5),
                    "row {j}: {a} vs {b}"
                );
            }
            // The largest magnitude is exact (it is ±127 steps).
            assert!(drow.iter().any(|v| (v.abs() - amax).abs() <= amax * 1e-6));
        }
        // From `[K, N]` (a transposed weight): the same matrix.
        let t = Tensor::from_vec(w.clone(), (n, k), &candle_core::Device::Cpu)?;
        let qt = Int8Matrix::from_in_out(&t.t()?.contiguous()?)?;
        assert_eq!(qt.dequantize(), d);
        Ok(())
    }

    #[test]
    fn every_kernel_matches_the_dequantized_reference_at_odd_shapes() -> Result<()> {
        let kernels = [Kernel::Portable, Kernel::Avx2, Kernel::Avx512, Kernel::Vnni];
        let mut ran = 0;
        for &k in &SIZES {
            for &n in &SIZES {
                let w = values(n * k, (k * 31 + n) as u64);
                let q = Int8Matrix::quantize(&w, n, k)?;
                let d = q.dequantize();
                for m in [1, 5] {
                    let x = values(m * k, (m * 7 + k) as u64);
                    let want = reference(&x, &d, m, n, k);
                    for kernel in kernels.into_iter().filter(|k| k.supported()) {
                        let got = q.matmul_with(kernel, &x, m)?;
                        let e = err(&got, &want);
                        // Widening kernels: f32 rounding of the same products. VNNI adds the
                        // activations' rounding (half a step of 1/127 of the row maximum per
                        // value, errors of random sign).
                        let tol = if kernel == Kernel::Vnni { 5e-2 } else { 1e-5 };
                        assert!(e <= tol, "{kernel:?} m={m} n={n} k={k}: {e}");
                        ran += 1;
                    }
                }
            }
        }
        assert!(ran >= 50, "only {ran} kernel runs");
        Ok(())
    }

    #[test]
    fn vnni_is_exact_on_the_quantized_activations() -> Result<()> {
        if !Kernel::Vnni.supported() {
            return Ok(());
        }
        let (m, n, k) = (3, 33, 1025);
        let w = values(n * k, 5);
        let q = Int8Matrix::quantize(&w, n, k)?;
        let d = q.dequantize();
        let x = values(m * k, 6);
        // The activations as the kernel sees them: each row rounded to 255 levels.
        let xq: Vec<f32> = x
            .chunks_exact(k)
            .flat_map(|r| {
                let s = r.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
                r.iter()
                    .map(move |v| (v / s).round_ties_even().clamp(-127.0, 127.0) * s)
                    .collect::<Vec<_>>()
            })
            .collect();
        let got = q.matmul_with(Kernel::Vnni, &x, m)?;
        let e = err(&got, &reference(&xq, &d, m, n, k));
        assert!(e <= 1e-5, "{e}");
        Ok(())
    }

    #[test]
    fn edge_inputs() -> Result<()> {
        // A zero row, a zero activation row, and K = 0.
        let (n, k) = (5, 40);
        let mut w = values(n * k, 9);
        w[k..2 * k].iter_mut().for_each(|v| *v = 0.0);
        let q = Int8Matrix::quantize(&w, n, k)?;
        let mut x = values(2 * k, 10);
        x[..k].iter_mut().for_each(|v| *v = 0.0);
        for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512, Kernel::Vnni] {
            if !kernel.supported() {
                continue;
            }
            let y = q.matmul_with(kernel, &x, 2)?;
            assert!(y[..n].iter().all(|&v| v == 0.0), "{kernel:?}: {y:?}");
            assert_eq!(y[n + 1], 0.0);
            assert!(y.iter().all(|v| v.is_finite()));
            // A non-finite activation gives non-finite outputs, never a silent number.
            let mut bad = x.clone();
            bad[k + 3] = f32::NAN;
            let y = q.matmul_with(kernel, &bad, 2)?;
            assert!(y[n..].iter().filter(|&&v| v != 0.0).all(|v| v.is_nan()));
        }
        let empty = Int8Matrix::quantize(&[], 3, 0)?;
        assert_eq!(empty.matmul_with(Kernel::Portable, &[], 2)?, vec![0.0; 6]);
        assert!(Int8Matrix::quantize(&[1.0; 5], 2, 3).is_err());
        assert!(q.matmul_with(Kernel::Portable, &x[..k - 1], 1).is_err());
        Ok(())
    }

    #[test]
    fn tensor_product_keeps_the_dtype() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let (m, n, k) = (2, 9, 70);
        let w = values(n * k, 11);
        let q = Int8Matrix::quantize(&w, n, k)?;
        let x = Tensor::from_vec(values(m * k, 12), (m, k), &dev)?;
        let want = x.matmul(&q.dequantize_tensor()?.t()?)?;
        let got = q.matmul(&x)?;
        // `matmul` runs `Kernel::auto` (VNNI rounds the activations too: a looser bound).
        let e = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = want.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(e <= 3e-2 * scale, "{e} of {scale}");
        let gb = q.matmul(&x.to_dtype(DType::BF16)?)?;
        assert_eq!(gb.dtype(), DType::BF16);
        assert!(q.matmul(&x.narrow(1, 0, k - 1)?).is_err());
        Ok(())
    }
}
