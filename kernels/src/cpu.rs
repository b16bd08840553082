//! Helpers shared by the CPU paths: typed views of contiguous storages, output storages, and
//! row-parallel loops.

use candle_core::{bail, CpuStorage, Layout, Result};
use rayon::prelude::*;

use crate::Elem;

/// Rows below this many elements in total run on the calling thread (rayon's overhead wins).
const PARALLEL_MIN_ELEMS: usize = 1 << 14;

/// The elements of a contiguous tensor (its layout may start at an offset).
pub(crate) fn slice<'a, T: Elem>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [T]> {
    let all = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&all[a..b]),
        None => bail!("{what} must be contiguous"),
    }
}

/// Runs `f(row_index, out_row)` over the rows of `out` (rows of `width` elements), in parallel
/// when there is enough work.
pub(crate) fn rows_mut<T: Send>(out: &mut [T], width: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if width == 0 {
        return;
    }
    if out.len() < PARALLEL_MIN_ELEMS {
        out.chunks_mut(width).enumerate().for_each(|(i, r)| f(i, r));
    } else {
        out.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    }
}

/// Wraps an owned vector as a storage.
pub(crate) fn storage<T: Elem>(v: Vec<T>) -> CpuStorage {
    T::to_cpu_storage_owned(v)
}

/// Dispatches a generic CPU body on the float dtype of the first storage; every storage must
/// have that dtype.
macro_rules! dispatch_float {
    ($first:expr, $name:expr, |$t:ident| $body:expr) => {{
        match $first {
            candle_core::CpuStorage::F32(_) => {
                type $t = f32;
                $body
            }
            candle_core::CpuStorage::F16(_) => {
                type $t = half::f16;
                $body
            }
            candle_core::CpuStorage::BF16(_) => {
                type $t = half::bf16;
                $body
            }
            other => candle_core::bail!(
                "{}: unsupported dtype {:?}",
                $name,
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
    }};
}
pub(crate) use dispatch_float;

/// `c = a·b` (f32, overwriting `c`) with candle's own pure-Rust GEMM (AVX-512/AVX2 kernels
/// picked at run time), single-threaded: callers parallelise over independent tiles.
/// `a` is `m×k` with row/column strides `(a_rs, a_cs)`, `b` is `k×n` with `(b_rs, b_cs)`, `c` is
/// `m×n` row-major.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_rs: usize,
    a_cs: usize,
    b: &[f32],
    b_rs: usize,
    b_cs: usize,
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, k, a_rs, a_cs) < a.len(), "sgemm: lhs out of bounds");
    assert!(last(k, n, b_rs, b_cs) < b.len(), "sgemm: rhs out of bounds");
    assert!(m * n <= c.len(), "sgemm: dst out of bounds");
    // SAFETY: the asserts above bound every index the multiply reads (`a` m×k, `b` k×n with
    // the given strides) and writes (`c` m×n row-major); the slices do not overlap (`c` is
    // borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The elements as f32: borrowed when `T` is f32, widened into `buf` otherwise.
pub(crate) fn as_f32<'a, T: Elem>(src: &'a [T], buf: &'a mut Vec<f32>) -> &'a [f32] {
    if T::DTYPE == candle_core::DType::F32 {
        // SAFETY: `T` is f32 (its candle dtype says so, and `Elem` is only implemented for
        // f32, f16 and bf16), so the slice has f32's layout.
        return unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len()) };
    }
    buf.clear();
    buf.extend(src.iter().map(|x| x.to_f32()));
    buf
}

/// The elements as f32, mutably, when `T` is f32.
pub(crate) fn as_f32_mut<T: Elem>(dst: &mut [T]) -> Option<&mut [f32]> {
    if T::DTYPE != candle_core::DType::F32 {
        return None;
    }
    // SAFETY: `T` is f32 (its candle dtype says so, and `Elem` is only implemented for f32,
    // f16 and bf16), so the slice has f32's layout; the borrow is handed on unchanged.
    Some(unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<f32>(), dst.len()) })
}
