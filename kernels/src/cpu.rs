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
