//! Scaled, masked softmax over the last dimension of attention scores `[B, H, Tq, Tk]` in one
//! pass: `softmax(scores·scale + mask)`, with an additive mask broadcast over heads (BERT's key
//! padding mask, or a full `[B, Tq, Tk]` mask) and an optional causal mask that hides key `j`
//! from query `i` when `j > i + (Tk - Tq)` (so a decoding step over a KV cache, `Tq < Tk`,
//! sees every cached key). Arithmetic in f32.
//!
//! Mirrors `torch.softmax(scores * scale + mask, dim=-1)` with the causal positions filled
//! with `-inf` (as `scaled_dot_product_attention(is_causal=True)` masks them), with one
//! deliberate difference: a row whose keys are all masked (every value `-inf`, from the
//! mask or the causal rule) is all zeros here, where PyTorch returns NaN. Finite mask values
//! (`-1e4`, `finfo.min`) are added like any other value, so such a row stays a (uniform)
//! softmax, as in PyTorch.
//!
//! candle-nn already has `softmax_last_dim`; this adds the scale, the mask and the causal rule
//! without materialising `scores·scale + mask`.

use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Tensor, D};

use crate::cpu;
use crate::op::{apply, fused_op};
use crate::vmath;
use crate::Elem;

/// Longest row the CUDA kernel keeps in shared memory (f32, 48 KiB); longer rows are read from
/// global memory three times instead (still on the GPU, no fallback).
pub const CUDA_CACHED_MAX_COLS: usize = 12_288;

/// How the mask is laid out relative to the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MaskGeometry {
    /// Elements between the masks of consecutive batch entries (0: one mask for the batch).
    batch_stride: usize,
    /// Elements between the mask rows of consecutive queries (0: one row for every query).
    row_stride: usize,
}

/// The scores' `(B, H, Tq, Tk)`.
fn dims4(scores: &Tensor) -> Result<(usize, usize, usize, usize)> {
    match scores.dims() {
        &[b, h, q, k] => Ok((b, h, q, k)),
        d => bail!("masked_softmax: scores must be [B, H, Tq, Tk], got {d:?}"),
    }
}

/// Checks the mask's shape against the scores' and returns how to index it. Accepted shapes
/// (every one broadcast over heads): `[B, Tk]` (key padding), `[B, Tq, Tk]` or `[B, 1, Tk]`,
/// and the 4-D `[B, 1, Tq, Tk]` / `[B, 1, 1, Tk]` that Hugging Face models build; `B` may be 1
/// to share one mask over the batch.
fn mask_geometry(scores: &Tensor, mask: &Tensor) -> Result<MaskGeometry> {
    let (b, _, tq, tk) = dims4(scores)?;
    if !matches!(mask.dtype(), DType::F32 | DType::F16 | DType::BF16) {
        bail!(
            "masked_softmax: the mask is additive (0 to keep, -inf to hide) and must be f32, f16 or bf16, got {:?}",
            mask.dtype()
        );
    }
    let (mb, mq, mk) = match *mask.dims() {
        [mb, mk] => (mb, 1, mk),
        [mb, mq, mk] => (mb, mq, mk),
        [mb, 1, mq, mk] => (mb, mq, mk),
        _ => (0, 0, 0),
    };
    if (mb != b && mb != 1) || (mq != tq && mq != 1) || mk != tk {
        bail!(
            "masked_softmax: mask {:?} does not broadcast to scores {:?} (expected [B, Tk], [B, Tq, Tk] or [B, 1, Tq, Tk])",
            mask.dims(),
            scores.dims()
        );
    }
    Ok(MaskGeometry {
        batch_stride: if mb == 1 { 0 } else { mq * tk },
        row_stride: if mq == 1 { 0 } else { tk },
    })
}

/// Number of keys query `i` may see: keys `0..visible(i)` (all `tk` when not causal).
#[inline]
fn visible(i: usize, tq: usize, tk: usize, causal: bool) -> usize {
    if causal {
        // j <= i + (tk - tq), computed without going negative.
        (i + tk + 1).saturating_sub(tq).min(tk)
    } else {
        tk
    }
}

/// Reference for [`masked_softmax`]: plain candle ops in f32, cast back to the scores' dtype.
pub fn masked_softmax_reference(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
    causal: bool,
) -> Result<Tensor> {
    let (b, _, tq, tk) = dims4(scores)?;
    let mut s = scores.to_dtype(DType::F32)?.affine(scale as f64, 0.0)?;
    if let Some(m) = mask {
        let g = mask_geometry(scores, m)?;
        let mb = if g.batch_stride == 0 { 1 } else { b };
        let mq = if g.row_stride == 0 { 1 } else { tq };
        let m = m.to_dtype(DType::F32)?.reshape((mb, 1, mq, tk))?;
        s = s.broadcast_add(&m)?;
    }
    if causal {
        let hide: Vec<f32> = (0..tq)
            .flat_map(|i| {
                let v = visible(i, tq, tk, true);
                (0..tk).map(move |j| if j < v { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let hide = Tensor::from_vec(hide, (1, 1, tq, tk), scores.device())?;
        s = s.broadcast_add(&hide)?;
    }
    let max = s.max_keepdim(D::Minus1)?;
    // A row with every value -inf has max -inf: subtract 0 there, so its exps are all 0.
    let finite = max.ge(f32::MIN)?;
    let max = finite.where_cond(&max, &max.zeros_like()?)?;
    let e = s.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    // ... and divide by 1 there, so the row is zeros.
    let sum = sum.gt(0f32)?.where_cond(&sum, &sum.ones_like()?)?;
    e.broadcast_div(&sum)?.to_dtype(scores.dtype())
}

/// Fused `softmax(scores·scale + mask)` over the last dimension of `scores` `[B, H, Tq, Tk]`,
/// with keys `j > i + (Tk - Tq)` hidden from query `i` when `causal`.
///
/// `mask` is additive (0 to keep, `-inf` or a large negative number to hide), f32 or the
/// scores' dtype, broadcast over heads: `[B, Tk]`, `[B, Tq, Tk]` (or `[B, 1, Tk]`,
/// `[B, 1, Tq, Tk]`, `[B, 1, 1, Tk]`; `B` may be 1). Rows with every key hidden are zeros.
/// Scores in f32, f16 or bf16 take the fused path; other dtypes, or a float mask of a third
/// dtype, use [`masked_softmax_reference`].
pub fn masked_softmax(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
    causal: bool,
) -> Result<Tensor> {
    let (b, h, tq, tk) = dims4(scores)?;
    let geometry = mask.map(|m| mask_geometry(scores, m)).transpose()?;
    let sdt = scores.dtype();
    let fast = matches!(sdt, DType::F32 | DType::F16 | DType::BF16)
        && scores.elem_count() > 0
        && mask.is_none_or(|m| {
            (m.dtype() == DType::F32 || m.dtype() == sdt) && m.device().same_device(scores.device())
        })
        && i32::try_from(h * tq).is_ok()
        && i32::try_from(tk).is_ok()
        && u32::try_from(b * h * tq).is_ok();
    if !fast {
        return masked_softmax_reference(scores, mask, scale, causal);
    }
    let op = MaskedSoftmax {
        heads: h,
        scale,
        causal,
        mask: mask.map(|m| m.dtype()).zip(geometry),
    };
    let mut inputs = vec![scores];
    inputs.extend(mask);
    apply(&op, &inputs)
}

struct MaskedSoftmax {
    heads: usize,
    scale: f32,
    causal: bool,
    /// The mask's dtype and layout, when there is one (the second input).
    mask: Option<(DType, MaskGeometry)>,
}

impl MaskedSoftmax {
    fn cpu_t<T: Elem, M: Elem>(
        &self,
        ins: &[(&CpuStorage, &Layout)],
    ) -> Result<(CpuStorage, Shape)> {
        let (ss, sl) = ins[0];
        let s = cpu::slice::<T>(ss, sl, "scores")?;
        let (_, _, tq, tk) = sl.shape().dims4()?;
        let mask = match self.mask {
            Some((_, g)) => Some((cpu::slice::<M>(ins[1].0, ins[1].1, "mask")?, g)),
            None => None,
        };
        let per_batch = self.heads * tq;
        let (scale, causal) = (self.scale, self.causal);
        let mut out = vec![T::from_f32(0.0); s.len()];
        cpu::rows_mut(&mut out, tk, |r, y| {
            let (b, i) = (r / per_batch, r % tq);
            let x = &s[r * tk..(r + 1) * tk];
            let m = mask.map(|(m, g)| {
                let at = b * g.batch_stride + i * g.row_stride;
                &m[at..at + tk]
            });
            let n = visible(i, tq, tk, causal);
            let mut v: Vec<f32> = match m {
                Some(m) => x[..n]
                    .iter()
                    .zip(m)
                    .map(|(x, m)| x.to_f32() * scale + m.to_f32())
                    .collect(),
                None => x[..n].iter().map(|x| x.to_f32() * scale).collect(),
            };
            // Normalised in place; an all-masked row comes back as zeros.
            vmath::softmax_row(&mut v);
            for (y, e) in y.iter_mut().zip(&v) {
                *y = T::from_f32(*e);
            }
            y[n..].fill(T::from_f32(0.0));
        });
        Ok((cpu::storage(out), sl.shape().clone()))
    }

    fn cpu_mask<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        match self.mask {
            Some((DType::F32, _)) => self.cpu_t::<T, f32>(ins),
            _ => self.cpu_t::<T, T>(ins),
        }
    }
}

fused_op!(MaskedSoftmax, "masked-softmax", input = 0, cpu = cpu_mask);

/// The scalar parameters of `masked_softmax_*` in `kernels/cuda/softmax.cu` (`SoftmaxParams`
/// there, same field order and types).
#[cfg(feature = "cuda")]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SoftmaxParams {
    mask_batch_stride: i64,
    mask_row_stride: i64,
    rows_per_batch: i32,
    tq: i32,
    tk: i32,
    scale: f32,
    causal: i32,
    cache: i32,
}

// SAFETY: a `#[repr(C)]` struct of plain integers and floats with no padding-dependent
// invariants, laid out exactly as the C struct `SoftmaxParams` the kernels take by value
// (two 64-bit fields, then six 32-bit ones: 40 bytes, 8-byte aligned on both sides).
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for SoftmaxParams {}

#[cfg(feature = "cuda")]
impl MaskedSoftmax {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

        let (ss, sl) = ins[0];
        let dev = &ss.device;
        let s = cuda::view::<T>(ss, sl, "scores")?;
        let (b, _, tq, tk) = sl.shape().dims4()?;
        let n = sl.shape().elem_count();
        let rows = n / tk;
        let per_batch = self.heads * tq;
        let (Ok(rows_u32), Ok(per_batch_i), Ok(tq_i), Ok(tk_i)) = (
            u32::try_from(rows),
            i32::try_from(per_batch),
            i32::try_from(tq),
            i32::try_from(tk),
        ) else {
            bail!(
                "masked_softmax: shape {:?} too large for the CUDA kernel",
                sl.shape()
            );
        };
        // The mask: f32 (kernel `masked_softmax_f32mask_*`) or the scores' dtype.
        let geometry = self.mask.map(|(_, g)| g);
        let (mask_f32, mask_t) = match self.mask {
            Some((DType::F32, _)) => (Some(cuda::view::<f32>(ins[1].0, ins[1].1, "mask")?), None),
            Some(_) => (None, Some(cuda::view::<T>(ins[1].0, ins[1].1, "mask")?)),
            None => (None, None),
        };
        if let Some(g) = geometry {
            let len = mask_f32
                .as_ref()
                .map(|m| m.len())
                .or(mask_t.as_ref().map(|m| m.len()));
            let last = (b - 1) * g.batch_stride + (tq - 1) * g.row_stride + tk;
            if len.is_none_or(|l| l < last) {
                bail!("masked_softmax: mask of {len:?} elements, {last} needed");
            }
        }
        let cache = tk <= CUDA_CACHED_MAX_COLS;
        let params = SoftmaxParams {
            mask_batch_stride: geometry.map_or(0, |g| g.batch_stride as i64),
            mask_row_stride: geometry.map_or(0, |g| g.row_stride as i64),
            rows_per_batch: per_batch_i,
            tq: tq_i,
            tk: tk_i,
            scale: self.scale,
            causal: i32::from(self.causal),
            cache: i32::from(cache),
        };
        let root = if mask_f32.is_some() {
            "masked_softmax_f32mask"
        } else {
            "masked_softmax"
        };
        let func = cuda::function(dev, "softmax", crate::ptx::SOFTMAX, root, T::DTYPE)?;
        let mut out = cuda::alloc::<T>(dev, n)?;
        let null = 0u64;
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&s);
        match (&mask_f32, &mask_t) {
            (Some(m), _) => builder.arg(m),
            (None, Some(m)) => builder.arg(m),
            (None, None) => builder.arg(&null),
        };
        builder.arg(&mut out);
        builder.arg(&params);
        // One thread per 16-byte vector of the row, 32 to 512 threads.
        let per_vec = 16 / std::mem::size_of::<T>();
        let threads = (tk.div_ceil(per_vec).div_ceil(32) * 32).clamp(32, 512) as u32;
        let cfg = LaunchConfig {
            grid_dim: (rows_u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: if cache { (tk * 4) as u32 } else { 0 },
        };
        // SAFETY: block r handles row r < rows = B·H·Tq: it reads `tk` scores and writes `tk`
        // outputs at `r·tk` (both buffers hold `rows·tk` elements), and reads `tk` mask
        // elements at `b·batch_stride + i·row_stride` (b < B, i < Tq), inside the mask
        // (length checked above; no mask: a null pointer the kernel never reads). With
        // `cache`, the dynamic shared memory holds the `tk` floats the kernel indexes.
        cuda::launch(&mut builder, cfg)?;
        drop(builder);
        Ok((cuda::storage(out, dev), sl.shape().clone()))
    }
}
