//! Normalisations: batch norm (eval, and training statistics), layer norm, group norm, RMS
//! norm, with the statistics outputs of their `native_*` forms.

use candle_core::{DType, Tensor};

use super::super::super::args::Args;
use super::super::super::value::{Dt, Tv, Value};
use super::super::{one, Result};
use super::{back, empty, float_in, opt_as, usize_of};

fn t(v: Tv) -> Value {
    Value::Tensor(v)
}

/// `[M, N]` view of `x` normalised over its last `k` dims.
fn split_last(a: &Args, x: &Tensor, shape: &[i64]) -> Result<(usize, usize)> {
    let d = x.dims();
    let k = shape.len();
    let tail: Vec<usize> = shape.iter().map(|&v| v.max(0) as usize).collect();
    if k > d.len() || d[d.len() - k..] != tail[..] {
        return Err(a.err(format!(
            "normalized_shape {shape:?} does not match the end of the input shape {d:?}"
        )));
    }
    let n: usize = tail.iter().product();
    Ok((x.elem_count() / n.max(1), n))
}

/// Mean and `1/sqrt(var + eps)` over dim 1 of `[M, N]`, keepdim.
fn moments(x: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let mean = x.mean_keepdim(1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(1)?;
    let rstd = (var + eps)?.sqrt()?.recip()?;
    Ok((xc, mean, rstd))
}

fn affine(y: Tensor, w: Option<Tensor>, b: Option<Tensor>) -> Result<Tensor> {
    let y = match w {
        Some(w) => y.broadcast_mul(&w)?,
        None => y,
    };
    Ok(match b {
        Some(b) => y.broadcast_add(&b)?,
        None => y,
    })
}

fn layer_norm_all(a: &Args) -> Result<(Tv, Tv, Tv)> {
    let (x, dt) = float_in(a, "input")?;
    let ns = a.ints("normalized_shape")?;
    let eps = a.float_or("eps", 1e-5)?;
    let (m, n) = split_last(a, &x, &ns)?;
    let (xc, mean, rstd) = moments(&x.reshape((m, n))?, eps)?;
    let w = opt_as(a, "weight", x.dtype())?
        .map(|w| w.reshape(n))
        .transpose()?;
    let b = opt_as(a, "bias", x.dtype())?
        .map(|b| b.reshape(n))
        .transpose()?;
    let y = affine(xc.broadcast_mul(&rstd)?, w, b)?.reshape(x.dims())?;
    let mut sshape = x.dims()[..x.rank() - ns.len()].to_vec();
    sshape.extend(std::iter::repeat_n(1, ns.len()));
    Ok((
        back(y, dt)?,
        back(mean.reshape(sshape.as_slice())?, dt)?,
        back(rstd.reshape(sshape)?, dt)?,
    ))
}

/// `layer_norm(input, normalized_shape, weight, bias, eps=1e-5, cudnn_enable)`.
pub(super) fn layer_norm(a: &Args) -> Result<Vec<Value>> {
    one(layer_norm_all(a)?.0)
}

/// `native_layer_norm` → (out, mean, rstd), stats shaped `[.., 1, ..]` in the input dtype.
pub(super) fn native_layer_norm(a: &Args) -> Result<Vec<Value>> {
    let (y, m, r) = layer_norm_all(a)?;
    Ok(vec![t(y), t(m), t(r)])
}

fn group_norm_all(a: &Args, groups: usize, eps: f64) -> Result<(Tv, Tv, Tv)> {
    let (x, dt) = float_in(a, "input")?;
    let d = x.dims().to_vec();
    if d.len() < 2 || groups == 0 || d[1] % groups != 0 {
        return Err(a.err(format!("input {d:?} cannot be split into {groups} groups")));
    }
    let (nb, c) = (d[0], d[1]);
    let hw: usize = d[2..].iter().product();
    let (xc, mean, rstd) = moments(&x.reshape((nb * groups, (c / groups) * hw))?, eps)?;
    let y = xc.broadcast_mul(&rstd)?.reshape((nb, c, hw))?;
    let w = opt_as(a, "weight", x.dtype())?
        .map(|w| w.reshape((1, c, 1)))
        .transpose()?;
    let b = opt_as(a, "bias", x.dtype())?
        .map(|b| b.reshape((1, c, 1)))
        .transpose()?;
    let y = affine(y, w, b)?.reshape(d)?;
    Ok((
        back(y, dt)?,
        back(mean.reshape((nb, groups))?, dt)?,
        back(rstd.reshape((nb, groups))?, dt)?,
    ))
}

/// `group_norm(input, num_groups, weight, bias, eps=1e-5, cudnn_enabled)`.
pub(super) fn group_norm(a: &Args) -> Result<Vec<Value>> {
    let g = usize_of(a, "num_groups", a.int("num_groups")?)?;
    one(group_norm_all(a, g, a.float_or("eps", 1e-5)?)?.0)
}

/// `native_group_norm(input, weight, bias, N, C, HxW, group, eps)` → (out, mean, rstd),
/// stats `[N, group]`.
pub(super) fn native_group_norm(a: &Args) -> Result<Vec<Value>> {
    let g = usize_of(a, "group", a.int("group")?)?;
    let (y, m, r) = group_norm_all(a, g, a.float_or("eps", 1e-5)?)?;
    Ok(vec![t(y), t(m), t(r)])
}

/// Batch norm over dim 1. Running statistics are used unless `training` (or absent), in
/// which case the batch's own (biased variance) are; returns (out, save_mean, save_invstd)
/// with empty statistics when running ones were used, as ATen's CPU kernel does.
fn batch_norm_all(a: &Args, training: bool) -> Result<(Tv, Tv, Tv)> {
    let (x, dt) = float_in(a, "input")?;
    let d = x.dims().to_vec();
    if d.len() < 2 {
        return Err(a.err(format!("input {d:?} has no channel dim")));
    }
    let c = d[1];
    let mut cshape = vec![1usize; d.len()];
    cshape[1] = c;
    let eps = a.float_or("eps", 1e-5)?;
    let rm = opt_as(a, "running_mean", x.dtype())?;
    let rv = opt_as(a, "running_var", x.dtype())?;
    let (mean, invstd, batch_stats) = match (rm, rv) {
        (Some(m), Some(v)) if !training => {
            let inv = (v + eps)?.sqrt()?.recip()?;
            (m, inv, false)
        }
        _ => {
            // [C, rest]
            let xt = x.transpose(0, 1)?.contiguous()?.reshape((c, ()))?;
            let (_, mean, rstd) = moments(&xt, eps)?;
            (mean.reshape(c)?, rstd.reshape(c)?, true)
        }
    };
    let w = opt_as(a, "weight", x.dtype())?
        .map(|w| w.reshape(cshape.as_slice()))
        .transpose()?;
    let b = opt_as(a, "bias", x.dtype())?
        .map(|b| b.reshape(cshape.as_slice()))
        .transpose()?;
    let y = x
        .broadcast_sub(&mean.reshape(cshape.as_slice())?)?
        .broadcast_mul(&invstd.reshape(cshape.as_slice())?)?;
    let y = back(affine(y, w, b)?, dt)?;
    if batch_stats {
        Ok((y, back(mean, dt)?, back(invstd, dt)?))
    } else {
        Ok((y, empty(dt, x.device())?, empty(dt, x.device())?))
    }
}

/// `batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps,
/// cudnn_enabled)`.
pub(super) fn batch_norm(a: &Args) -> Result<Vec<Value>> {
    let training = a.bool_or("training", false)?;
    one(batch_norm_all(a, training)?.0)
}

/// `native_batch_norm` / `_native_batch_norm_legit` (and `.no_stats`).
pub(super) fn native_batch_norm(a: &Args) -> Result<Vec<Value>> {
    let training = a.bool_or("training", false)?;
    let (y, m, r) = batch_norm_all(a, training)?;
    Ok(vec![t(y), t(m), t(r)])
}

/// `_native_batch_norm_legit_no_training(input, weight, bias, running_mean, running_var,
/// momentum, eps)`.
pub(super) fn batch_norm_no_training(a: &Args) -> Result<Vec<Value>> {
    let (y, m, r) = batch_norm_all(a, false)?;
    Ok(vec![t(y), t(m), t(r)])
}

/// The default eps: `torch.finfo` of the compute dtype (float32 for half inputs, as ATen's
/// kernels and decomposition use).
fn default_eps(dt: Dt) -> f64 {
    match dt {
        Dt::F64 => f64::EPSILON,
        _ => f64::from(f32::EPSILON),
    }
}

fn rms_all(a: &Args) -> Result<(Tv, Tensor, Dt)> {
    let (x, dt) = float_in(a, "input")?;
    let ns = a.ints("normalized_shape")?;
    let eps = a.opt_float("eps")?.unwrap_or_else(|| default_eps(dt));
    let (m, n) = split_last(a, &x, &ns)?;
    let x2 = x.reshape((m, n))?;
    let rstd = (x2.sqr()?.mean_keepdim(1)? + eps)?.sqrt()?.recip()?;
    let w = opt_as(a, "weight", x.dtype())?
        .map(|w| w.reshape(n))
        .transpose()?;
    let y = affine(x2.broadcast_mul(&rstd)?, w, None)?.reshape(x.dims())?;
    let mut sshape = x.dims()[..x.rank() - ns.len()].to_vec();
    sshape.extend(std::iter::repeat_n(1, ns.len()));
    Ok((back(y, dt)?, rstd.reshape(sshape)?, dt))
}

/// `rms_norm(input, normalized_shape, weight=None, eps=None)`; eps None is
/// `torch.finfo(float32).eps` (float64's for float64 inputs).
pub(super) fn rms_norm(a: &Args) -> Result<Vec<Value>> {
    one(rms_all(a)?.0)
}

/// `_fused_rms_norm(input, normalized_shape, weight, eps)` → (out, rstd); rstd is float32
/// for half inputs (as ATen returns it).
pub(super) fn fused_rms_norm(a: &Args) -> Result<Vec<Value>> {
    let (y, rstd, dt) = rms_all(a)?;
    let rdt = if dt == Dt::F64 { Dt::F64 } else { Dt::F32 };
    let rstd = Tv::new(
        rstd.to_dtype(if rdt == Dt::F64 {
            DType::F64
        } else {
            DType::F32
        })?,
        rdt,
    );
    Ok(vec![t(y), t(rstd)])
}

/// `instance_norm(input, weight, bias, running_mean, running_var, use_input_stats,
/// momentum, eps, cudnn_enabled)`: per-sample, per-channel statistics (a group norm with one
/// channel per group), or the running statistics when `use_input_stats` is false.
pub(super) fn instance_norm(a: &Args) -> Result<Vec<Value>> {
    let eps = a.float_or("eps", 1e-5)?;
    if !a.bool_or("use_input_stats", true)? {
        return one(batch_norm_all(a, false)?.0);
    }
    let x = a.tensor("input")?;
    if x.rank() < 3 {
        return Err(a.err(format!(
            "expects a batched input [N, C, ...], got {:?}",
            x.dims()
        )));
    }
    let c = x.dims()[1];
    one(group_norm_all(a, c, eps)?.0)
}
