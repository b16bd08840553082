//! Residual add fused with LayerNorm or RMSNorm: `s = x + residual`, then
//! `y = (s - mean(s)) / sqrt(var(s) + eps) * weight + bias` (LayerNorm) or
//! `y = s / sqrt(mean(s²) + eps) * weight` (RMSNorm), optionally returning `s` too (pre-norm
//! blocks carry it as the next residual). One pass over the row in f32.
//!
//! Mirrors `torch.nn.functional.layer_norm` / `rms_norm` applied to `x + residual`.

use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Tensor, D};

use crate::cpu;
use crate::op::{apply, fused_op, same_float_dtype};
use crate::Elem;

/// Longest row the CUDA kernel keeps in shared memory (f32, within the default 48 KiB per
/// block with the 128-byte reduction scratch); longer rows use the reference.
pub const CUDA_MAX_COLS: usize = 12_000;

/// Which normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// LayerNorm: subtract the mean, divide by the standard deviation.
    LayerNorm,
    /// RMSNorm: divide by the root mean square.
    RmsNorm,
}

/// Affine parameters prepared once at load: weight and bias stacked into one `[k, hidden]`
/// tensor so the fused op takes at most three inputs.
#[derive(Debug, Clone)]
pub struct NormParams {
    kind: NormKind,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    packed: Option<Tensor>,
}

impl NormParams {
    /// LayerNorm parameters (both optional: `elementwise_affine=False` has neither).
    pub fn layer_norm(weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Self> {
        Self::new(NormKind::LayerNorm, weight, bias)
    }

    /// RMSNorm parameters.
    pub fn rms_norm(weight: Option<&Tensor>) -> Result<Self> {
        Self::new(NormKind::RmsNorm, weight, None)
    }

    fn new(kind: NormKind, weight: Option<&Tensor>, bias: Option<&Tensor>) -> Result<Self> {
        if bias.is_some() && weight.is_none() {
            bail!("norm: a bias without a weight is not supported");
        }
        for t in weight.iter().chain(bias.iter()) {
            if t.rank() != 1 {
                bail!("norm: parameters must be 1-D, got {:?}", t.dims());
            }
        }
        let packed = match (weight, bias) {
            (Some(w), Some(b)) => Some(Tensor::stack(&[w, b], 0)?),
            (Some(w), None) => Some(w.unsqueeze(0)?),
            _ => None,
        };
        Ok(NormParams {
            kind,
            weight: weight.cloned(),
            bias: bias.cloned(),
            packed,
        })
    }

    /// Which normalisation these parameters are for.
    pub fn kind(&self) -> NormKind {
        self.kind
    }
}

/// The normalised rows and, when asked, the sum `x + residual` (in the input dtype).
#[derive(Debug, Clone)]
pub struct NormOutput {
    /// The normalised (and scaled, shifted) output.
    pub normed: Tensor,
    /// `x + residual`, when asked for.
    pub sum: Option<Tensor>,
}

/// Reference: plain candle ops in f32, results cast to `x`'s dtype.
pub fn add_norm_reference(
    x: &Tensor,
    residual: Option<&Tensor>,
    params: &NormParams,
    eps: f64,
    return_sum: bool,
) -> Result<NormOutput> {
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let s = match residual {
        Some(r) => (f(x)? + f(r)?)?,
        None => f(x)?,
    };
    let y = match params.kind {
        NormKind::LayerNorm => {
            let mean = s.mean_keepdim(D::Minus1)?;
            let c = s.broadcast_sub(&mean)?;
            let var = c.sqr()?.mean_keepdim(D::Minus1)?;
            c.broadcast_div(&(var + eps)?.sqrt()?)?
        }
        NormKind::RmsNorm => {
            let ms = s.sqr()?.mean_keepdim(D::Minus1)?;
            s.broadcast_div(&(ms + eps)?.sqrt()?)?
        }
    };
    let y = match &params.weight {
        Some(w) => y.broadcast_mul(&f(w)?)?,
        None => y,
    };
    let y = match &params.bias {
        Some(b) => y.broadcast_add(&f(b)?)?,
        None => y,
    };
    Ok(NormOutput {
        normed: y.to_dtype(x.dtype())?,
        sum: if return_sum {
            Some(s.to_dtype(x.dtype())?)
        } else {
            None
        },
    })
}

/// Fused residual add + LayerNorm/RMSNorm over the last dimension.
pub fn add_norm(
    x: &Tensor,
    residual: Option<&Tensor>,
    params: &NormParams,
    eps: f64,
    return_sum: bool,
) -> Result<NormOutput> {
    let cols = x.dim(D::Minus1)?;
    if let Some(r) = residual {
        if r.dims() != x.dims() {
            bail!("add_norm: residual {:?} vs input {:?}", r.dims(), x.dims());
        }
    }
    if let Some(p) = &params.packed {
        if p.dim(1)? != cols {
            bail!(
                "add_norm: parameters of size {} for rows of {cols}",
                p.dim(1)?
            );
        }
    }
    let mut inputs = vec![x];
    inputs.extend(residual);
    inputs.extend(params.packed.as_ref());
    let fast = same_float_dtype(&inputs)
        && x.elem_count() > 0
        && (x.device().is_cpu() || cols <= CUDA_MAX_COLS);
    if !fast {
        return add_norm_reference(x, residual, params, eps, return_sum);
    }
    let op = AddNorm {
        kind: params.kind,
        eps: eps as f32,
        residual: residual.is_some(),
        weight: params.weight.is_some(),
        bias: params.bias.is_some(),
        return_sum,
    };
    let out = apply(&op, &inputs)?;
    if return_sum {
        Ok(NormOutput {
            normed: out.get(0)?,
            sum: Some(out.get(1)?),
        })
    } else {
        Ok(NormOutput {
            normed: out,
            sum: None,
        })
    }
}

/// Fused `LayerNorm(x + residual)`; see [`add_norm`].
pub fn add_layer_norm(
    x: &Tensor,
    residual: Option<&Tensor>,
    params: &NormParams,
    eps: f64,
) -> Result<Tensor> {
    Ok(add_norm(x, residual, params, eps, false)?.normed)
}

/// Fused `RMSNorm(x + residual)`; see [`add_norm`].
pub fn add_rms_norm(
    x: &Tensor,
    residual: Option<&Tensor>,
    params: &NormParams,
    eps: f64,
) -> Result<Tensor> {
    Ok(add_norm(x, residual, params, eps, false)?.normed)
}

struct AddNorm {
    kind: NormKind,
    eps: f32,
    residual: bool,
    weight: bool,
    bias: bool,
    return_sum: bool,
}

impl AddNorm {
    fn out_shape(&self, x: &Shape) -> Shape {
        if self.return_sum {
            let mut d = vec![2];
            d.extend_from_slice(x.dims());
            Shape::from(d)
        } else {
            x.clone()
        }
    }

    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let (xs, xl) = ins[0];
        let x = cpu::slice::<T>(xs, xl, "x")?;
        let mut next = 1;
        let r = if self.residual {
            next += 1;
            Some(cpu::slice::<T>(ins[1].0, ins[1].1, "residual")?)
        } else {
            None
        };
        let p = if self.weight {
            Some(cpu::slice::<T>(ins[next].0, ins[next].1, "params")?)
        } else {
            None
        };
        let cols = xl.shape().dims().last().copied().unwrap_or(1);
        let n = x.len();
        let w = p.map(|p| &p[..cols]);
        let b = if self.bias {
            p.map(|p| &p[cols..2 * cols])
        } else {
            None
        };
        let parts = if self.return_sum { 2 } else { 1 };
        let mut out = vec![T::from_f32(0.0); n * parts];
        let (normed, sums) = out.split_at_mut(n);
        let eps = self.eps;
        let kind = self.kind;
        // Weight and bias widened once; each row widened into an f32 buffer, then normalised by
        // a loop the compiler vectorises (see `normalize_row`).
        let wf: Option<Vec<f32>> = w.map(|w| w.iter().map(|v| v.to_f32()).collect());
        let bf: Option<Vec<f32>> = b.map(|b| b.iter().map(|v| v.to_f32()).collect());
        let rms = kind == NormKind::RmsNorm;
        let row = |i: usize, y: &mut [T]| {
            let xr = &x[i * cols..(i + 1) * cols];
            let mut buf: Vec<f32> = match r {
                Some(r) => xr
                    .iter()
                    .zip(&r[i * cols..(i + 1) * cols])
                    .map(|(a, b)| a.to_f32() + b.to_f32())
                    .collect(),
                None => xr.iter().map(|a| a.to_f32()).collect(),
            };
            normalize_row(&mut buf, rms, eps, wf.as_deref(), bf.as_deref());
            for (y, v) in y.iter_mut().zip(&buf) {
                *y = T::from_f32(*v);
            }
        };
        cpu::rows_mut(normed, cols, row);
        if self.return_sum {
            cpu::rows_mut(sums, cols, |i, out| {
                for (j, o) in out.iter_mut().enumerate() {
                    let v = x[i * cols + j].to_f32() + r.map_or(0.0, |r| r[i * cols + j].to_f32());
                    *o = T::from_f32(v);
                }
            });
        }
        Ok((cpu::storage(out), self.out_shape(xl.shape())))
    }
}

crate::vmath::multiversion! {
    /// LayerNorm (or RMSNorm when `rms`) of one f32 row in place, then `* w + b`.
    fn normalize_row(v: &mut [f32], rms: bool, eps: f32, w: Option<&[f32]>, b: Option<&[f32]>) {
        let inv = 1.0 / v.len().max(1) as f32;
        // Eight partial sums so the reductions vectorise.
        let mut acc = [0f32; 8];
        let mut tail = 0f32;
        if !rms {
            let chunks = v.chunks_exact(8);
            tail = chunks.remainder().iter().sum();
            for c in chunks {
                for k in 0..8 {
                    acc[k] += c[k];
                }
            }
        }
        let mean = (acc.iter().sum::<f32>() + tail) * inv;
        let mut acc = [0f32; 8];
        let chunks = v.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|x| (x - mean) * (x - mean)).sum();
        for c in chunks {
            for k in 0..8 {
                acc[k] += (c[k] - mean) * (c[k] - mean);
            }
        }
        let var = (acc.iter().sum::<f32>() + tail) * inv;
        let rstd = 1.0 / (var + eps).sqrt();
        match (w, b) {
            (Some(w), Some(b)) => {
                for ((x, w), b) in v.iter_mut().zip(w).zip(b) {
                    *x = (*x - mean) * rstd * w + b;
                }
            }
            (Some(w), None) => {
                for (x, w) in v.iter_mut().zip(w) {
                    *x = (*x - mean) * rstd * w;
                }
            }
            _ => {
                for x in v.iter_mut() {
                    *x = (*x - mean) * rstd;
                }
            }
        }
    }
}

fused_op!(AddNorm, "add-norm", input = 0, cpu = cpu_t);

#[cfg(feature = "cuda")]
impl AddNorm {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

        let (xs, xl) = ins[0];
        let dev = &xs.device;
        let x = cuda::view::<T>(xs, xl, "x")?;
        let mut next = 1;
        let r = if self.residual {
            next += 1;
            Some(cuda::view::<T>(ins[1].0, ins[1].1, "residual")?)
        } else {
            None
        };
        let p = if self.weight {
            Some(cuda::view::<T>(ins[next].0, ins[next].1, "params")?)
        } else {
            None
        };
        let cols = xl.shape().dims().last().copied().unwrap_or(1);
        let n = xl.shape().elem_count();
        let rows = n / cols;
        let parts = if self.return_sum { 2 } else { 1 };
        let out = cuda::alloc::<T>(dev, n * parts)?;
        let root = match self.kind {
            NormKind::LayerNorm => "add_layernorm",
            NormKind::RmsNorm => "add_rmsnorm",
        };
        let func = cuda::function(dev, "norm", crate::ptx::NORM, root, T::DTYPE)?;
        let null = 0u64;
        let w = p.as_ref().map(|p| p.slice(..cols));
        let b = if self.bias {
            p.as_ref().map(|p| p.slice(cols..2 * cols))
        } else {
            None
        };
        let normed = out.slice(..n);
        let sums = if self.return_sum {
            Some(out.slice(n..2 * n))
        } else {
            None
        };
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&x);
        match &r {
            Some(r) => builder.arg(r),
            None => builder.arg(&null),
        };
        match &w {
            Some(w) => builder.arg(w),
            None => builder.arg(&null),
        };
        match &b {
            Some(b) => builder.arg(b),
            None => builder.arg(&null),
        };
        builder.arg(&normed);
        match &sums {
            Some(s) => builder.arg(s),
            None => builder.arg(&null),
        };
        let cols_i = cols as i32;
        builder.arg(&cols_i);
        builder.arg(&self.eps);
        let threads = 256u32.min((cols as u32).div_ceil(32) * 32).max(32);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: (cols * 4) as u32,
        };
        // SAFETY: one block per row reads `cols` elements of x/residual and the `cols`-element
        // parameter rows, and writes `cols` elements of each output row; all buffers hold
        // `rows * cols` elements (checked by the shapes above); shared memory is `cols` floats.
        cuda::launch(&mut builder, cfg)?;
        drop(builder);
        Ok((cuda::storage(out, dev), self.out_shape(xl.shape())))
    }
}
