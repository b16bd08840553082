//! Neural-network ops: matrix products, convolutions, normalisations, pooling, interpolation,
//! padding, attention, embeddings, pixel shuffles and eval-mode dropout.
//!
//! Half-precision inputs (`float16`, `bfloat16`) are computed in `float32` and rounded once at
//! the end, as ATen's CPU kernels accumulate in their "opmath" type. Index and weight tables
//! (pooling windows, interpolation weights, padding maps) are built on the host and applied
//! with candle ops on the tensor's device.

mod attention;
mod conv;
mod einsum;
mod matmul;
mod norm;
mod pool;
#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Tensor};

use super::super::args::Args;
use super::super::value::{Dt, Tv, Value};
use super::{one, OpFn, Result};

pub(super) const NAMES: &[&str] = &[
    // matmul.rs
    "linear",
    "addmm",
    "mm",
    "bmm",
    "matmul",
    "baddbmm",
    "mv",
    "dot",
    "addmv",
    "einsum",
    // conv.rs
    "convolution",
    "_convolution",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    // norm.rs
    "batch_norm",
    "native_batch_norm",
    "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training",
    "layer_norm",
    "instance_norm",
    "native_layer_norm",
    "group_norm",
    "native_group_norm",
    "rms_norm",
    "_fused_rms_norm",
    // pool.rs
    "max_pool1d",
    "max_pool3d",
    "max_pool1d_with_indices",
    "max_pool3d_with_indices",
    "avg_pool3d",
    "adaptive_avg_pool3d",
    "_adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool3d",
    "max_pool2d",
    "max_pool2d_with_indices",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "upsample_nearest1d",
    "upsample_nearest2d",
    "_upsample_nearest_exact2d",
    "upsample_bilinear2d",
    "upsample_linear1d",
    "upsample_trilinear3d",
    "upsample_bicubic2d",
    "upsample_nearest3d",
    "_upsample_nearest_exact1d",
    "_upsample_nearest_exact3d",
    "constant_pad_nd",
    "reflection_pad1d",
    "reflection_pad2d",
    "replication_pad1d",
    "replication_pad2d",
    "pad",
    // attention.rs
    "scaled_dot_product_attention",
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_flash_attention",
    // here
    "embedding",
    "pixel_shuffle",
    "pixel_unshuffle",
    "dropout",
    "native_dropout",
    "feature_dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
];

pub(super) fn lookup(base: &str, overload: &str) -> Option<OpFn> {
    Some(match (base, overload) {
        ("linear", _) => matmul::linear,
        ("addmm", _) => matmul::addmm,
        ("mm", _) | ("bmm", _) | ("matmul", _) => matmul::matmul,
        ("baddbmm", _) => matmul::baddbmm,
        ("mv", _) => matmul::mv,
        ("dot", _) => matmul::dot,
        ("addmv", _) => matmul::addmv,
        ("einsum", _) => einsum::einsum,
        ("convolution", _) | ("_convolution", _) => conv::convolution,
        ("conv1d", _) => |a| conv::conv_nd(a, 1),
        ("conv2d", _) => |a| conv::conv_nd(a, 2),
        ("conv3d", _) => |a| conv::conv_nd(a, 3),
        ("conv_transpose1d", _) => |a| conv::conv_transpose_nd(a, 1),
        ("conv_transpose2d", _) => |a| conv::conv_transpose_nd(a, 2),
        ("conv_transpose3d", _) => |a| conv::conv_transpose_nd(a, 3),
        ("batch_norm", _) => norm::batch_norm,
        ("native_batch_norm", _) | ("_native_batch_norm_legit", _) => norm::native_batch_norm,
        ("_native_batch_norm_legit_no_training", _) => norm::batch_norm_no_training,
        ("layer_norm", _) => norm::layer_norm,
        ("instance_norm", _) => norm::instance_norm,
        ("native_layer_norm", _) => norm::native_layer_norm,
        ("group_norm", _) => norm::group_norm,
        ("native_group_norm", _) => norm::native_group_norm,
        ("rms_norm", _) => norm::rms_norm,
        ("_fused_rms_norm", _) => norm::fused_rms_norm,
        ("max_pool1d", _) => |a| pool::max_pool(a, 1, false),
        ("max_pool2d", _) => |a| pool::max_pool(a, 2, false),
        ("max_pool3d", _) => |a| pool::max_pool(a, 3, false),
        ("max_pool1d_with_indices", _) => |a| pool::max_pool(a, 1, true),
        ("max_pool2d_with_indices", _) => |a| pool::max_pool(a, 2, true),
        ("max_pool3d_with_indices", _) => |a| pool::max_pool(a, 3, true),
        ("avg_pool1d", _) => |a| pool::avg_pool(a, 1),
        ("avg_pool2d", _) => |a| pool::avg_pool(a, 2),
        ("avg_pool3d", _) => |a| pool::avg_pool(a, 3),
        ("adaptive_avg_pool1d", _) => |a| pool::adaptive_avg_pool(a, 1),
        ("adaptive_avg_pool3d", _) | ("_adaptive_avg_pool3d", _) => {
            |a| pool::adaptive_avg_pool(a, 3)
        }
        ("adaptive_max_pool1d", _) => |a| pool::adaptive_max_pool(a, 1),
        ("adaptive_max_pool3d", _) => |a| pool::adaptive_max_pool(a, 3),
        ("adaptive_avg_pool2d", _) | ("_adaptive_avg_pool2d", _) => {
            |a| pool::adaptive_avg_pool(a, 2)
        }
        ("adaptive_max_pool2d", _) => |a| pool::adaptive_max_pool(a, 2),
        ("upsample_nearest1d", _) => |a| pool::upsample_nearest(a, 1, false),
        ("upsample_nearest2d", _) => |a| pool::upsample_nearest(a, 2, false),
        ("_upsample_nearest_exact2d", _) => |a| pool::upsample_nearest(a, 2, true),
        ("upsample_linear1d", _) => |a| pool::upsample_interp(a, 1, pool::Interp::Linear),
        ("upsample_bilinear2d", _) => |a| pool::upsample_interp(a, 2, pool::Interp::Linear),
        ("upsample_trilinear3d", _) => |a| pool::upsample_interp(a, 3, pool::Interp::Linear),
        ("upsample_bicubic2d", _) => |a| pool::upsample_interp(a, 2, pool::Interp::Cubic),
        ("upsample_nearest3d", _) => |a| pool::upsample_nearest(a, 3, false),
        ("_upsample_nearest_exact1d", _) => |a| pool::upsample_nearest(a, 1, true),
        ("_upsample_nearest_exact3d", _) => |a| pool::upsample_nearest(a, 3, true),
        ("constant_pad_nd", _) => pool::constant_pad_nd,
        ("reflection_pad1d", _) => |a| pool::index_pad(a, 1, pool::PadMode::Reflect),
        ("reflection_pad2d", _) => |a| pool::index_pad(a, 2, pool::PadMode::Reflect),
        ("replication_pad1d", _) => |a| pool::index_pad(a, 1, pool::PadMode::Replicate),
        ("replication_pad2d", _) => |a| pool::index_pad(a, 2, pool::PadMode::Replicate),
        ("pad", _) => pool::pad,
        ("scaled_dot_product_attention", _) => attention::sdpa,
        ("_scaled_dot_product_flash_attention_for_cpu", _) => attention::flash_for_cpu,
        ("_scaled_dot_product_efficient_attention", _) => attention::efficient,
        ("_scaled_dot_product_flash_attention", _) => attention::flash,
        ("embedding", _) => embedding,
        ("pixel_shuffle", _) => |a| pixel_shuffle(a, true),
        ("pixel_unshuffle", _) => |a| pixel_shuffle(a, false),
        ("dropout", _)
        | ("feature_dropout", _)
        | ("alpha_dropout", _)
        | ("feature_alpha_dropout", _) => dropout,
        ("native_dropout", _) => native_dropout,
        _ => return None,
    })
}

/// The dtype a float tensor is computed in: half types in f32, others as they are.
fn opmath(dt: Dt) -> DType {
    match dt {
        Dt::F16 | Dt::BF16 | Dt::F32 => DType::F32,
        _ => DType::F64,
    }
}

/// A floating input in its compute dtype (integer inputs refused, naming the argument).
fn float_in(a: &Args, name: &str) -> Result<(Tensor, Dt)> {
    let x = a.tensor(name)?;
    if !x.dt.is_float() {
        return Err(a.err(format!(
            "argument `{name}` should be a floating tensor, got {}",
            x.dt.name()
        )));
    }
    Ok((x.t.to_dtype(opmath(x.dt))?, x.dt))
}

/// Rounds a compute-dtype result back to `dt`.
fn back(t: Tensor, dt: Dt) -> Result<Tv> {
    Ok(Tv::new(t.to_dtype(dt.storage())?, dt))
}

/// An optional tensor in the compute dtype `like`.
fn opt_as(a: &Args, name: &str, like: DType) -> Result<Option<Tensor>> {
    Ok(match a.opt_tensor(name)? {
        Some(t) => Some(t.t.to_dtype(like)?),
        None => None,
    })
}

/// A 1-D I64 index tensor on `dev`.
fn idx_tensor(v: Vec<i64>, dev: &Device) -> Result<Tensor> {
    let n = v.len();
    Ok(Tensor::from_vec(v, n, dev)?)
}

/// An empty (shape `[0]`) tensor of `dt`.
fn empty(dt: Dt, dev: &Device) -> Result<Tv> {
    Ok(Tv::new(Tensor::zeros(0, dt.storage(), dev)?, dt))
}

/// Converts a non-negative size/int argument.
fn usize_of(a: &Args, what: &str, v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| a.err(format!("{what} must be non-negative, got {v}")))
}

/// An int-list argument expanded to `n` spatial dims (a single value repeats, as ATen's
/// `int[2]` does); `default` when absent or empty.
fn spatial(a: &Args, name: &str, n: usize, default: i64) -> Result<Vec<i64>> {
    let v = if a.has(name) {
        a.ints(name)?
    } else {
        Vec::new()
    };
    match v.len() {
        0 => Ok(vec![default; n]),
        1 => Ok(vec![v[0]; n]),
        k if k == n => Ok(v),
        k => Err(a.err(format!("`{name}` has {k} values for {n} spatial dims"))),
    }
}

fn embedding(a: &Args) -> Result<Vec<Value>> {
    let w = a.tensor("weight")?;
    let idx = a.tensor("indices")?;
    if !idx.dt.is_int() {
        return Err(a.err(format!("indices should be integers, got {}", idx.dt.name())));
    }
    if w.rank() != 2 {
        return Err(a.err(format!("weight should be 2-D, got {:?}", w.dims())));
    }
    let n = w.dims()[0] as i64;
    let flat = idx.t.flatten_all()?;
    let v: Vec<i64> = flat.to_vec1()?;
    if let Some(bad) = v.iter().find(|&&i| i < 0 || i >= n) {
        return Err(a.err(format!("index {bad} is out of range for {n} embeddings")));
    }
    let rows = w.t.contiguous()?.index_select(&flat, 0)?;
    let mut shape = idx.dims().to_vec();
    shape.push(w.dims()[1]);
    one(Tv::new(rows.reshape(shape)?, w.dt))
}

fn pixel_shuffle(a: &Args, up: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let r = if up {
        a.int("upscale_factor")?
    } else {
        a.int("downscale_factor")?
    };
    let r = usize_of(a, "the factor", r)?;
    let d = x.dims().to_vec();
    if d.len() < 3 || r == 0 {
        return Err(a.err(format!(
            "needs a [.., C, H, W] input and a positive factor, got {d:?}"
        )));
    }
    let k = d.len();
    let lead = &d[..k - 3];
    let (c, h, w) = (d[k - 3], d[k - 2], d[k - 1]);
    let b: usize = lead.iter().product();
    let t = x.t.contiguous()?;
    let (t, out) = if up {
        if c % (r * r) != 0 {
            return Err(a.err(format!("channels {c} not divisible by {r}^2")));
        }
        let oc = c / (r * r);
        let t = t.reshape((b * oc, r, r, h, w))?.permute((0, 3, 1, 4, 2))?;
        (t, [oc, h * r, w * r])
    } else {
        if h % r != 0 || w % r != 0 {
            return Err(a.err(format!("H {h} and W {w} must be divisible by {r}")));
        }
        let (oh, ow) = (h / r, w / r);
        let t = t.reshape((b * c, oh, r, ow, r))?.permute((0, 2, 4, 1, 3))?;
        (t, [c * r * r, oh, ow])
    };
    let mut shape = lead.to_vec();
    shape.extend_from_slice(&out);
    one(Tv::new(t.contiguous()?.reshape(shape)?, x.dt))
}

fn dropout_train(a: &Args) -> Result<bool> {
    let p = a.float_or("p", 0.5)?;
    let train = match a.value("train").ok() {
        Some(Value::None) | None => true,
        Some(_) => a.bool_or("train", true)?,
    };
    Ok(train && p > 0.0)
}

fn dropout(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("input")?;
    if dropout_train(a)? {
        return Err(
            a.err("dropout in training mode (random) is not supported: export in eval mode")
        );
    }
    one(x)
}

fn native_dropout(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("input")?;
    if dropout_train(a)? {
        return Err(
            a.err("dropout in training mode (random) is not supported: export in eval mode")
        );
    }
    let mask = Tv::new(Tensor::ones(x.dims(), DType::U8, x.t.device())?, Dt::Bool);
    Ok(vec![Value::Tensor(x), Value::Tensor(mask)])
}
