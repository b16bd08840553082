//! Load-time layout changes. [`transpose_cat`] turns `[R_i, C]` weights (the `nn.Linear`
//! weights of q/k/v, or gate/up) into one contiguous `[C, ΣR_i]` matrix in a single pass and a
//! single allocation; [`transpose`] is the one-part case. candle's strided copy moves one element
//! at a time with a divide per index (about 0.4 GB/s, over 10 s for a 1B-parameter model, plus
//! one more full copy for each concatenation); this copies 32×32 tiles in parallel.

use candle_core::{bail, CpuStorage, DType, Result, Storage, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

/// Tile side: a 32×32 tile of 4-byte elements is 4 KiB in and 4 KiB out.
const TILE: usize = 32;

/// Reference: `cat(parts, 0).t().contiguous()`.
pub fn transpose_cat_reference(parts: &[&Tensor]) -> Result<Tensor> {
    Tensor::cat(parts, 0)?.t()?.contiguous()
}

/// `[R, C]` → contiguous `[C, R]` (the values of `w.t()`); see [`transpose_cat`].
pub fn transpose(w: &Tensor) -> Result<Tensor> {
    transpose_cat(&[w])
}

/// `[R_i, C]` parts → contiguous `[C, ΣR_i]`, the values of `cat(parts, 0).t()`. CPU parts of
/// one 2- or 4-byte dtype use the tiled parallel copy; anything else uses
/// [`transpose_cat_reference`].
pub fn transpose_cat(parts: &[&Tensor]) -> Result<Tensor> {
    let Some(first) = parts.first() else {
        bail!("transpose_cat: no parts");
    };
    let (_, c) = first.dims2()?;
    let mut rows = Vec::with_capacity(parts.len());
    for p in parts {
        let (r, pc) = p.dims2()?;
        if pc != c {
            bail!("transpose_cat: parts of {c} and {pc} columns cannot be concatenated");
        }
        rows.push(r);
    }
    let fast = parts
        .iter()
        .all(|p| p.device().is_cpu() && p.is_contiguous() && p.dtype() == first.dtype())
        && matches!(
            first.dtype(),
            DType::F32 | DType::BF16 | DType::F16 | DType::U32
        );
    if !fast {
        return transpose_cat_reference(parts);
    }
    let total: usize = rows.iter().sum();
    let guards: Vec<_> = parts.iter().map(|p| p.storage_and_layout()).collect();
    macro_rules! run {
        ($variant:ident, $t:ty) => {{
            let mut srcs: Vec<&[$t]> = Vec::with_capacity(parts.len());
            for ((g, l), &r) in guards.iter().zip(&rows) {
                let Storage::Cpu(CpuStorage::$variant(v)) = &**g else {
                    bail!("transpose_cat: unexpected storage");
                };
                srcs.push(&v[l.start_offset()..l.start_offset() + r * c]);
            }
            Tensor::from_vec(tiled::<$t>(&srcs, &rows, c), (c, total), first.device())
        }};
    }
    match first.dtype() {
        DType::F32 => run!(F32, f32),
        DType::BF16 => run!(BF16, bf16),
        DType::F16 => run!(F16, f16),
        _ => run!(U32, u32),
    }
}

/// The row-major `[c, Σr]` transpose of the row-major `[r_i, c]` sources placed side by side.
/// Each rayon task writes a band of `TILE` output rows, reading `TILE` source columns tile by
/// tile.
fn tiled<T: Copy + Default + Send + Sync>(srcs: &[&[T]], rows: &[usize], c: usize) -> Vec<T> {
    let ld: usize = rows.iter().sum();
    let mut out = vec![T::default(); ld * c];
    if ld == 0 || c == 0 {
        return out;
    }
    out.par_chunks_mut(TILE * ld)
        .enumerate()
        .for_each(|(band, dst)| {
            let j0 = band * TILE;
            let jn = dst.len() / ld; // output rows here: source columns j0..j0 + jn
            let mut off = 0;
            for (src, &r) in srcs.iter().zip(rows) {
                for i0 in (0..r).step_by(TILE) {
                    let i1 = (i0 + TILE).min(r);
                    for dj in 0..jn {
                        let row = &mut dst[dj * ld + off..dj * ld + off + r];
                        for i in i0..i1 {
                            row[i] = src[i * c + j0 + dj];
                        }
                    }
                }
                off += r;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::seeded;
    use candle_core::Device;

    fn same(a: &Tensor, b: &Tensor) -> Result<bool> {
        Ok(a.dims() == b.dims()
            && a.eq(b)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()? as usize
                == a.elem_count())
    }

    #[test]
    fn equals_candle_cat_and_transpose() -> Result<()> {
        let dev = Device::Cpu;
        for (r, c) in [(1, 1), (1, 7), (33, 65), (64, 32), (100, 3), (257, 129)] {
            for dt in [DType::F32, DType::BF16, DType::F16, DType::U32, DType::F64] {
                let make = |seed, rows| -> Result<Tensor> {
                    let w = seeded(&[rows, c], seed, -1.0, 1.0, DType::F32, &dev)?;
                    if dt == DType::U32 {
                        ((w + 1.0)? * 1000.0)?.to_dtype(dt)
                    } else {
                        w.to_dtype(dt)
                    }
                };
                let (a, b, d) = (make(1, r)?, make(2, r + 3)?, make(3, 1)?);
                let got = transpose(&a)?;
                assert!(got.is_contiguous());
                assert!(same(&got, &a.t()?.contiguous()?)?, "{r}x{c} {dt:?}");
                let got = transpose_cat(&[&a, &b, &d])?;
                assert!(got.is_contiguous());
                let want = transpose_cat_reference(&[&a, &b, &d])?;
                assert!(same(&got, &want)?, "cat {r}x{c} {dt:?}");
            }
        }
        // A narrowed (offset) input, and parts that do not fit together.
        let w = seeded(&[10, 6], 1, -1.0, 1.0, DType::F32, &dev)?.narrow(0, 3, 4)?;
        assert!(same(&transpose(&w)?, &w.t()?.contiguous()?)?);
        let other = seeded(&[2, 5], 1, -1.0, 1.0, DType::F32, &dev)?;
        assert!(transpose_cat(&[&w, &other]).is_err());
        Ok(())
    }
}
