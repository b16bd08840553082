//! Matrix-vector products for one-row inputs on the CPU: the decode step of a language model
//! multiplies a single token's activations by every weight matrix, which is pure memory
//! streaming. The general matmul (gemm) is built for many rows and streams a single row's
//! weights at a fraction of the memory bandwidth; these read every weight exactly once in
//! address order, split across the rayon threads:
//!
//! - [`vec_mat`]: `x · W` with `W` `[K, N]` row-major (a transposed `nn.Linear` weight, GPT-2's
//!   `Conv1D`). Split over `K`: each thread streams a contiguous band of rows into its own
//!   `N`-wide partial sum (`y += x[k] · W[k, :]`), the partials are added at the end.
//! - [`vec_mat_t`]: `x · Wᵀ` with `W` `[N, K]` row-major (an `nn.Linear` weight as PyTorch
//!   stores it, a tied embedding table as output projection). Split over `N`: one dot product
//!   per row.
//!
//! f32 and bf16 (weights widened to f32 as they are read, f32 accumulation, one rounding of the
//! result). Anything else (more than one row, f16, non-CPU, non-contiguous weights) goes to
//! candle's matmul, the reference these are tested against.

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};
use half::bf16;
use rayon::prelude::*;

use crate::vmath::multiversion;

/// Below this many weights the product runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

/// Reference: candle's matmul, `x` `[1, K]` · `w` `[K, N]`.
pub fn vec_mat_reference(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.matmul(w)
}

/// Reference: candle's matmul, `x` `[1, K]` · `wᵀ` for `w` `[N, K]`.
pub fn vec_mat_t_reference(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.matmul(&w.t()?)
}

/// Whether the fast path takes `x` `[1, K]` and the weight `w`.
fn fast(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::BF16)
        && w.dtype() == x.dtype()
        && x.rank() == 2
        && x.dims()[0] == 1
        && w.rank() == 2
        && w.is_contiguous()
}

/// `x · w` for `x` `[M, K]` and `w` `[K, N]`: the streaming product when `M == 1` (f32, CPU,
/// contiguous `w`), candle's matmul otherwise.
pub fn vec_mat(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !fast(x, w) {
        return vec_mat_reference(x, w);
    }
    let (k, n) = w.dims2()?;
    if x.dims()[1] != k {
        return vec_mat_reference(x, w);
    }
    let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let y = with_weights(w, k * n, |wv| match wv {
        Weights::F32(wv) => vec_mat_f32(&xs, n, |acc, k0, k1| {
            axpy_rows(acc, &wv[k0 * n..k1 * n], &xs[k0..k1], n)
        }),
        Weights::BF16(wv) => vec_mat_f32(&xs, n, |acc, k0, k1| {
            axpy_rows_bf16(acc, &wv[k0 * n..k1 * n], &xs[k0..k1], n)
        }),
    })?;
    Tensor::from_vec(y, (1, n), x.device())?.to_dtype(x.dtype())
}

/// `x · wᵀ` for `x` `[M, K]` and `w` `[N, K]`: one dot product per row of `w` when `M == 1`
/// (f32 or bf16, CPU, contiguous `w`), candle's matmul otherwise.
pub fn vec_mat_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !fast(x, w) {
        return vec_mat_t_reference(x, w);
    }
    let (n, k) = w.dims2()?;
    if x.dims()[1] != k {
        return vec_mat_t_reference(x, w);
    }
    let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let y = with_weights(w, k * n, |wv| {
        let mut y = vec![0f32; n];
        // Rows per task: about 64 KiB of weights each.
        let rows = (16_384 / k.max(1)).max(1);
        let serial = k * n < PARALLEL_MIN;
        match wv {
            Weights::F32(wv) if serial => dot_rows(&mut y, wv, &xs),
            Weights::BF16(wv) if serial => dot_rows_bf16(&mut y, wv, &xs),
            Weights::F32(wv) => y
                .par_chunks_mut(rows)
                .zip(wv.par_chunks(rows * k))
                .for_each(|(out, w)| dot_rows(out, w, &xs)),
            Weights::BF16(wv) => y
                .par_chunks_mut(rows)
                .zip(wv.par_chunks(rows * k))
                .for_each(|(out, w)| dot_rows_bf16(out, w, &xs)),
        }
        y
    })?;
    Tensor::from_vec(y, (1, n), x.device())?.to_dtype(x.dtype())
}

/// bf16 → f32: the bits shifted into the high half (exact; a plain shift so the loops
/// vectorise, where `half`'s conversion also quiets NaNs).
#[inline(always)]
fn widen(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// A CPU weight matrix's elements, borrowed from its storage.
enum Weights<'a> {
    F32(&'a [f32]),
    BF16(&'a [bf16]),
}

/// Runs `f` on the `len` elements of the contiguous CPU tensor `w`.
fn with_weights<R>(w: &Tensor, len: usize, f: impl FnOnce(Weights) -> R) -> Result<R> {
    let (storage, layout) = w.storage_and_layout();
    let candle_core::Storage::Cpu(cs) = &*storage else {
        candle_core::bail!("gemv: weights are not on the CPU");
    };
    let range = |l: &Layout| l.start_offset()..l.start_offset() + len;
    Ok(match cs {
        CpuStorage::F32(v) => f(Weights::F32(&v[range(layout)])),
        CpuStorage::BF16(v) => f(Weights::BF16(&v[range(layout)])),
        _ => candle_core::bail!("gemv: weights are {:?}", w.dtype()),
    })
}

/// `x · W` over `K = x.len()` rows: on the calling thread when small, else split into one
/// band of rows per rayon thread, each band summed into its own partial by `band(acc, k0, k1)`.
fn vec_mat_f32(x: &[f32], n: usize, band: impl Fn(&mut [f32], usize, usize) + Sync) -> Vec<f32> {
    let k = x.len();
    let threads = rayon::current_num_threads().max(1);
    let mut y = vec![0f32; n];
    if k * n < PARALLEL_MIN || threads == 1 || k < 2 * threads {
        band(&mut y, 0, k);
        return y;
    }
    // Bands of about 1 MiB of f32 weights, their count a multiple of the threads so the work
    // splits evenly, interleaved over the threads (several streams in flight per thread keep the
    // memory system busier than one long band each); each rayon split folds its bands into its
    // own partial sum.
    let bands = (k * n).div_ceil(262_144).div_ceil(threads).max(1) * threads;
    let rows = k.div_ceil(bands).max(4);
    let partials: Vec<Vec<f32>> = (0..k.div_ceil(rows))
        .into_par_iter()
        .fold(
            || vec![0f32; n],
            |mut acc, b| {
                band(&mut acc, b * rows, ((b + 1) * rows).min(k));
                acc
            },
        )
        .collect();
    for p in &partials {
        add_into(&mut y, p);
    }
    y
}

/// `acc += Σ_k x[k] · f(w[k, :])` over the rows of `w` (`x.len()` rows of `n`), eight rows per
/// pass so `acc` is read and written once per eight rows, sixteen lanes at a time with
/// fixed-size chunks (no bounds checks in the loop). Inlined into each compiled variant.
#[inline(always)]
fn axpy_rows_with<T: Copy>(acc: &mut [f32], w: &[T], x: &[f32], n: usize, f: impl Fn(T) -> f32) {
    let mut k = 0;
    while k + 8 <= x.len() {
        let a: [f32; 8] = std::array::from_fn(|i| x[k + i]);
        let r: [&[T]; 8] = std::array::from_fn(|i| &w[(k + i) * n..(k + i + 1) * n]);
        let mut j = 0;
        while j + 16 <= n {
            let y: &mut [f32; 16] = (&mut acc[j..j + 16])
                .try_into()
                .unwrap_or_else(|_| unreachable!());
            let wr: [&[T; 16]; 8] = std::array::from_fn(|i| {
                r[i][j..j + 16]
                    .try_into()
                    .unwrap_or_else(|_| unreachable!())
            });
            for t in 0..16 {
                y[t] += a[0] * f(wr[0][t])
                    + a[1] * f(wr[1][t])
                    + a[2] * f(wr[2][t])
                    + a[3] * f(wr[3][t])
                    + a[4] * f(wr[4][t])
                    + a[5] * f(wr[5][t])
                    + a[6] * f(wr[6][t])
                    + a[7] * f(wr[7][t]);
            }
            j += 16;
        }
        for t in j..n {
            acc[t] += (0..8).map(|i| a[i] * f(r[i][t])).sum::<f32>();
        }
        k += 8;
    }
    while k < x.len() {
        let a = x[k];
        for (y, &v) in acc.iter_mut().zip(&w[k * n..(k + 1) * n]) {
            *y += a * f(v);
        }
        k += 1;
    }
}

/// `out[i] = f(w[i, :]) · x` for the `out.len()` rows of `w` (each `x.len()` long), sixteen
/// independent partial sums per row so the reduction vectorises. Inlined into each variant.
#[inline(always)]
fn dot_rows_with<T: Copy>(out: &mut [f32], w: &[T], x: &[f32], f: impl Fn(T) -> f32) {
    let k = x.len();
    for (i, o) in out.iter_mut().enumerate() {
        let row = &w[i * k..(i + 1) * k];
        let mut acc = [0f32; 16];
        let (rc, xc) = (row.chunks_exact(16), x.chunks_exact(16));
        let tail: f32 = rc
            .remainder()
            .iter()
            .zip(xc.remainder())
            .map(|(&a, b)| f(a) * b)
            .sum();
        for (a, b) in rc.zip(xc) {
            for j in 0..16 {
                acc[j] += f(a[j]) * b[j];
            }
        }
        *o = acc.iter().sum::<f32>() + tail;
    }
}

multiversion! {
    /// [`axpy_rows_with`] over f32 weights.
    fn axpy_rows(acc: &mut [f32], w: &[f32], x: &[f32], n: usize) {
        axpy_rows_with(acc, w, x, n, |v| v)
    }
}

multiversion! {
    /// [`axpy_rows_with`] over bf16 weights, widened to f32 as they are read.
    fn axpy_rows_bf16(acc: &mut [f32], w: &[bf16], x: &[f32], n: usize) {
        axpy_rows_with(acc, w, x, n, widen)
    }
}

multiversion! {
    /// [`dot_rows_with`] over f32 weights.
    fn dot_rows(out: &mut [f32], w: &[f32], x: &[f32]) {
        dot_rows_with(out, w, x, |v| v)
    }
}

multiversion! {
    /// [`dot_rows_with`] over bf16 weights, widened to f32 as they are read.
    fn dot_rows_bf16(out: &mut [f32], w: &[bf16], x: &[f32]) {
        dot_rows_with(out, w, x, widen)
    }
}

multiversion! {
    /// `y += p`.
    fn add_into(y: &mut [f32], p: &[f32]) {
        for (a, &b) in y.iter_mut().zip(p) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::seeded;
    use candle_core::{DType, Device};

    fn rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
        let n = b.sqr().unwrap().sum_all().unwrap();
        (d.to_scalar::<f32>().unwrap() / n.to_scalar::<f32>().unwrap().max(1e-30)).sqrt()
    }

    #[test]
    fn matches_candle_matmul_at_odd_sizes() -> Result<()> {
        let dev = Device::Cpu;
        for (k, n) in [
            (1, 1),
            (3, 5),
            (7, 130),
            (129, 17),
            (768, 2304),
            (1030, 333),
        ] {
            let x = seeded(&[1, k], 1, -1.0, 1.0, DType::F32, &dev)?;
            let w = seeded(&[k, n], 2, -1.0, 1.0, DType::F32, &dev)?;
            let e = rel(&vec_mat(&x, &w)?, &vec_mat_reference(&x, &w)?);
            assert!(e < 1e-5, "vec_mat {k}x{n}: {e}");
            let wt = seeded(&[n, k], 3, -1.0, 1.0, DType::F32, &dev)?;
            let e = rel(&vec_mat_t(&x, &wt)?, &vec_mat_t_reference(&x, &wt)?);
            assert!(e < 1e-5, "vec_mat_t {n}x{k}: {e}");
            // bf16: f32 accumulation of the same bf16 values, rounded once at the end.
            let (xb, wb, wtb) = (
                x.to_dtype(DType::BF16)?,
                w.to_dtype(DType::BF16)?,
                wt.to_dtype(DType::BF16)?,
            );
            let f = |t: &Tensor| t.to_dtype(DType::F32);
            let e = rel(&f(&vec_mat(&xb, &wb)?)?, &f(&xb)?.matmul(&f(&wb)?)?);
            assert!(e < 4e-3, "vec_mat bf16 {k}x{n}: {e}");
            let e = rel(
                &f(&vec_mat_t(&xb, &wtb)?)?,
                &f(&xb)?.matmul(&f(&wtb)?.t()?)?,
            );
            assert!(e < 4e-3, "vec_mat_t bf16 {n}x{k}: {e}");
        }
        Ok(())
    }

    #[test]
    fn other_inputs_use_the_reference() -> Result<()> {
        let dev = Device::Cpu;
        // Two rows, a non-contiguous weight, bf16: same values as candle's matmul.
        let x = seeded(&[2, 64], 1, -1.0, 1.0, DType::F32, &dev)?;
        let w = seeded(&[64, 40], 2, -1.0, 1.0, DType::F32, &dev)?;
        assert!(rel(&vec_mat(&x, &w)?, &x.matmul(&w)?) < 1e-6);
        let x1 = x.narrow(0, 0, 1)?;
        let wt = w.t()?;
        assert!(rel(&vec_mat(&x1, &wt.t()?)?, &x1.matmul(&w)?) < 1e-6);
        // f16 is not taken by the fast path.
        let xh = x1.to_dtype(DType::F16)?;
        let wh = w.to_dtype(DType::F16)?;
        let got = vec_mat(&xh, &wh)?.to_dtype(DType::F32)?;
        let want = xh.matmul(&wh)?.to_dtype(DType::F32)?;
        assert!(rel(&got, &want) < 1e-6);
        Ok(())
    }
}
