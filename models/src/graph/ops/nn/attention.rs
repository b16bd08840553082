//! Scaled dot-product attention (the math path, in f32 for half inputs): bool masks (True
//! attends) or additive float masks, top-left causal masks, grouped-query heads. A row with
//! every position masked gives zeros (ATen's `_safe_softmax`), and its logsumexp 0.

use candle_core::{DType, Tensor, D};

use super::super::super::args::Args;
use super::super::super::value::{Dt, Tv, Value};
use super::super::Result;
use super::matmul::matmul_t;
use super::{back, float_in};

struct Out {
    y: Tv,
    /// `[..., L]` in f32 (f64 for f64 inputs).
    lse: Tv,
}

fn attend(a: &Args, mask_name: &str, gqa: bool) -> Result<Out> {
    let (q, dt) = float_in(a, "query")?;
    let (k, _) = float_in(a, "key")?;
    let (v, _) = float_in(a, "value")?;
    let work = q.dtype();
    let (k, v) = (k.to_dtype(work)?, v.to_dtype(work)?);
    if q.rank() < 2 || k.rank() < 2 || v.rank() < 2 {
        return Err(a.err("query, key and value need at least 2 dims"));
    }
    let (l, e) = (q.dims()[q.rank() - 2], q.dims()[q.rank() - 1]);
    let s = k.dims()[k.rank() - 2];
    let (k, v) = if gqa && q.rank() >= 3 && k.rank() >= 3 {
        let hq = q.dims()[q.rank() - 3];
        let hk = k.dims()[k.rank() - 3];
        if hk == 0 || hq % hk != 0 {
            return Err(a.err(format!(
                "query heads {hq} are not a multiple of key heads {hk}"
            )));
        }
        (repeat_heads(&k, hq / hk)?, repeat_heads(&v, hq / hk)?)
    } else {
        (k, v)
    };
    let scale = a.opt_float("scale")?.unwrap_or(1.0 / (e as f64).sqrt());
    let mut scores = matmul_t(&q, &k.transpose(k.rank() - 2, k.rank() - 1)?)
        .map_err(|er| a.err(er))?
        .affine(scale, 0.0)?;
    let ninf = |like: &Tensor| -> Result<Tensor> {
        Ok(Tensor::full(f32::NEG_INFINITY, like.dims(), like.device())?.to_dtype(like.dtype())?)
    };
    if a.bool_or("is_causal", false)? {
        let keep: Vec<u8> = (0..l)
            .flat_map(|i| (0..s).map(move |j| u8::from(j <= i)))
            .collect();
        let keep = Tensor::from_vec(keep, (l, s), q.device())?.broadcast_as(scores.dims())?;
        scores = keep.where_cond(&scores, &ninf(&scores)?)?;
    }
    if let Some(m) = a.opt_tensor(mask_name)? {
        if m.dt == Dt::Bool {
            let shape = super::super::pointwise::broadcast_shape(&[scores.dims(), m.dims()])?;
            let sc = scores.broadcast_as(shape.as_slice())?;
            scores =
                m.t.broadcast_as(shape.as_slice())?
                    .where_cond(&sc, &ninf(&sc)?)?;
        } else {
            scores = scores.broadcast_add(&m.t.to_dtype(work)?)?;
        }
    }
    // Safe softmax: rows whose maximum is -inf give 0.
    let max = scores.max_keepdim(D::Minus1)?;
    let dead = max.eq(&ninf(&max)?)?;
    let zero = max.zeros_like()?;
    let max = dead.where_cond(&zero, &max)?;
    let ex = scores.broadcast_sub(&max)?.exp()?;
    let sum = ex.sum_keepdim(D::Minus1)?;
    let ones = sum.ones_like()?;
    let safe_sum = dead.where_cond(&ones, &sum)?;
    let p = ex.broadcast_div(&safe_sum)?;
    let y = matmul_t(&p, &v).map_err(|er| a.err(er))?;
    let lse = dead
        .where_cond(&zero, &(max + safe_sum.log()?)?)?
        .squeeze(D::Minus1)?;
    let ldt = if work == DType::F64 { Dt::F64 } else { Dt::F32 };
    Ok(Out {
        y: back(y, dt)?,
        lse: Tv::new(lse.to_dtype(ldt.storage())?, ldt),
    })
}

/// `repeat_interleave(n, dim=-3)`.
fn repeat_heads(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let r = x.rank();
    let mut shape = x.dims().to_vec();
    let mut b = shape.clone();
    b.insert(r - 2, n);
    shape[r - 3] *= n;
    Ok(x.unsqueeze(r - 2)?
        .broadcast_as(b)?
        .contiguous()?
        .reshape(shape)?)
}

/// `scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale,
/// enable_gqa)`.
pub(super) fn sdpa(a: &Args) -> Result<Vec<Value>> {
    check_dropout(a)?;
    if a.has("attn_mask") && a.bool_or("is_causal", false)? {
        return Err(a.err("an explicit attn_mask should not be set when is_causal=True"));
    }
    let gqa = a.bool_or("enable_gqa", false)?;
    if let Some(y) = flash_path(a, gqa)? {
        return Ok(vec![Value::Tensor(y)]);
    }
    Ok(vec![Value::Tensor(attend(a, "attn_mask", gqa)?.y)])
}

/// The fused flash kernel (`torchless_kernels::attention`) for the calls it computes as the
/// math path does: 4-D query/key/value of one float dtype, grouped heads only with
/// `enable_gqa`, no mask or a key-padding mask (per batch one prefix of valid keys, the same
/// for every head and query row: what BERT-style encoders build), causal only when L == S
/// (ATen's top-left alignment and the kernel's bottom-right one agree there). Anything else
/// takes the math path.
fn flash_path(a: &Args, gqa: bool) -> Result<Option<Tv>> {
    use torchless_kernels::attention::{flash_attention, AttentionOptions};
    let (q, k, v) = (a.tensor("query")?, a.tensor("key")?, a.tensor("value")?);
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 || !q.dt.is_float() {
        return Ok(None);
    }
    if k.dt != q.dt || v.dt != q.dt || q.dt == Dt::F64 {
        return Ok(None);
    }
    let (qd, kd, vd) = (q.dims(), k.dims(), v.dims());
    let (b, hq, l, d) = (qd[0], qd[1], qd[2], qd[3]);
    let (hk, s) = (kd[1], kd[2]);
    if kd[0] != b || vd[0] != b || vd[1] != hk || vd[2] != s || kd[3] != d || vd[3] != d {
        return Ok(None);
    }
    if hk != hq && !(gqa && hk > 0 && hq % hk == 0) {
        return Ok(None);
    }
    let causal = a.bool_or("is_causal", false)?;
    if causal && l != s {
        return Ok(None);
    }
    let key_lengths = match a.opt_tensor("attn_mask")? {
        None => None,
        Some(m) => match key_padding_lengths(&m, b, l, s)? {
            Some(v) => Some(v),
            None => return Ok(None),
        },
    };
    let scale = match a.opt_float("scale")? {
        Some(x) => x as f32,
        None => 1.0 / (d.max(1) as f32).sqrt(),
    };
    let opts = AttentionOptions {
        scale,
        causal,
        key_lengths,
    };
    let y = flash_attention(
        &q.t.contiguous()?,
        &k.t.contiguous()?,
        &v.t.contiguous()?,
        &opts,
    )?;
    Ok(Some(Tv::new(y, q.dt)))
}

/// Per batch, the number of leading valid keys when `mask` (bool: True attends; float: 0
/// attends, -inf masks) is a key-padding mask broadcastable to `[b, 1, l, s]`; `None` for any
/// other mask (per-head, per-query, left padding, finite biases, a row with no valid key).
fn key_padding_lengths(mask: &Tv, b: usize, l: usize, s: usize) -> Result<Option<Vec<u32>>> {
    if mask.rank() > 4 || mask.rank() < 1 {
        return Ok(None);
    }
    let mut shape = vec![1usize; 4 - mask.rank()];
    shape.extend_from_slice(mask.dims());
    if shape[1] != 1 || (shape[0] != 1 && shape[0] != b) {
        return Ok(None);
    }
    if (shape[2] != 1 && shape[2] != l) || shape[3] != s {
        return Ok(None);
    }
    let valid: Vec<u8> = if mask.dt == Dt::Bool {
        mask.t
            .reshape(shape.as_slice())?
            .broadcast_as((b, 1, l, s))?
            .contiguous()?
            .flatten_all()?
            .to_vec1()?
    } else if mask.dt.is_float() {
        let f: Vec<f32> = mask
            .t
            .reshape(shape.as_slice())?
            .broadcast_as((b, 1, l, s))?
            .to_dtype(DType::F32)?
            .contiguous()?
            .flatten_all()?
            .to_vec1()?;
        let mut v = Vec::with_capacity(f.len());
        for x in f {
            if x == 0.0 {
                v.push(1);
            } else if x == f32::NEG_INFINITY {
                v.push(0);
            } else {
                return Ok(None);
            }
        }
        v
    } else {
        return Ok(None);
    };
    let mut lengths = Vec::with_capacity(b);
    for bi in 0..b {
        let rows = &valid[bi * l * s..(bi + 1) * l * s];
        let first = &rows[..s];
        let len = first.iter().take_while(|x| **x != 0).count();
        if len == 0 || first[len..].iter().any(|x| *x != 0) {
            return Ok(None);
        }
        if rows.chunks(s).any(|r| r != first) {
            return Ok(None);
        }
        lengths.push(len as u32);
    }
    Ok(Some(lengths))
}

/// `_scaled_dot_product_flash_attention_for_cpu` → (output, logsumexp).
pub(super) fn flash_for_cpu(a: &Args) -> Result<Vec<Value>> {
    check_dropout(a)?;
    let o = attend(a, "attn_mask", false)?;
    Ok(vec![Value::Tensor(o.y), Value::Tensor(o.lse)])
}

/// `_scaled_dot_product_efficient_attention` → (output, log_sumexp, philox_seed,
/// philox_offset). As the CUDA kernel's, log_sumexp is float32 `[B, H, ceil(L/32)*32]`
/// (`[B, H, 0]` without `compute_log_sumexp`); the padding columns here hold 0 (the kernel
/// leaves them unspecified). The seeds are 0-dim int64 zeros (no dropout).
pub(super) fn efficient(a: &Args) -> Result<Vec<Value>> {
    check_dropout(a)?;
    let o = attend(a, "attn_bias", false)?;
    let dev = o.y.t.device().clone();
    let lse = o.lse.t.to_dtype(DType::F32)?;
    let r = lse.rank();
    let l = lse.dims()[r - 1];
    let lse = if a.bool_or("compute_log_sumexp", false)? {
        lse.pad_with_zeros(r - 1, 0, l.div_ceil(32) * 32 - l)?
    } else {
        lse.narrow(r - 1, 0, 0)?
    };
    let zero = || -> Result<Value> {
        Ok(Value::Tensor(Tv::new(
            Tensor::zeros((), DType::I64, &dev)?,
            Dt::I64,
        )))
    };
    Ok(vec![
        Value::Tensor(o.y),
        Value::Tensor(Tv::new(lse, Dt::F32)),
        zero()?,
        zero()?,
    ])
}

/// `_scaled_dot_product_flash_attention` (the CUDA kernel's op) → (output, logsumexp,
/// cum_seq_q = None, cum_seq_k = None, max_q, max_k, philox_seed, philox_offset,
/// debug_attn_mask): logsumexp float32 `[B, H, L]`, the seeds int64 zeros (no dropout), the
/// debug mask empty (`return_debug_mask` is refused).
pub(super) fn flash(a: &Args) -> Result<Vec<Value>> {
    check_dropout(a)?;
    if a.bool_or("return_debug_mask", false)? {
        return Err(a.err("return_debug_mask=True is not supported"));
    }
    let q = a.tensor("query")?;
    let k = a.tensor("key")?;
    if q.rank() != 4 || k.rank() != 4 {
        return Err(a.err("query and key should be [B, H, L, E]"));
    }
    let (l, s) = (q.dims()[2] as i64, k.dims()[2] as i64);
    let o = attend(a, "attn_mask", false)?;
    let dev = o.y.t.device().clone();
    let lse = Tv::new(o.lse.t.to_dtype(DType::F32)?, Dt::F32);
    let debug = Tv::new(Tensor::zeros(0, q.dt.storage(), &dev)?, q.dt);
    Ok(vec![
        Value::Tensor(o.y),
        Value::Tensor(lse),
        Value::None,
        Value::None,
        Value::Int(l),
        Value::Int(s),
        Value::Tensor(Tv::new(Tensor::zeros(2, DType::I64, &dev)?, Dt::I64)),
        Value::Tensor(Tv::new(Tensor::zeros((), DType::I64, &dev)?, Dt::I64)),
        Value::Tensor(debug),
    ])
}

fn check_dropout(a: &Args) -> Result<()> {
    let p = a.float_or("dropout_p", 0.0)?;
    if p > 0.0 {
        return Err(a.err(format!(
            "dropout_p={p} (random attention dropout) is not supported: export in eval mode"
        )));
    }
    Ok(())
}
