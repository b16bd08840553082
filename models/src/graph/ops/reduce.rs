//! Reductions: sums, means, extrema and their indices (int64), variance with `correction`,
//! `any`/`all`, softmax and log-softmax, cumulative sums, sorting and `topk`, norms.
//! Half-precision inputs are reduced in f32 and rounded once, as ATen does.

use candle_core::{DType, Tensor};

use super::super::args::Args;
use super::super::value::{norm_dim, Dt, Tv, Value};
use super::{one, OpFn, Result};

pub(super) const NAMES: &[&str] = &[
    "sum",
    "mean",
    "amax",
    "amin",
    "max",
    "min",
    "argmax",
    "argmin",
    "prod",
    "var",
    "std",
    "var_mean",
    "any",
    "all",
    "softmax",
    "_softmax",
    "log_softmax",
    "_log_softmax",
    "cumsum",
    "logsumexp",
    "topk",
    "sort",
    "argsort",
    "linalg_vector_norm",
    "norm",
];

pub(super) fn lookup(base: &str, overload: &str) -> Option<OpFn> {
    Some(match base {
        "sum" => sum,
        "mean" => mean,
        "amax" => |a| extreme_dims(a, true),
        "amin" => |a| extreme_dims(a, false),
        "max" if overload == "dim" => |a| extreme_dim(a, true),
        "min" if overload == "dim" => |a| extreme_dim(a, false),
        "max" if overload == "default" => |a| extreme_all(a, true),
        "min" if overload == "default" => |a| extreme_all(a, false),
        "argmax" => |a| arg_extreme(a, true),
        "argmin" => |a| arg_extreme(a, false),
        "prod" => prod,
        "var" => |a| var_std(a, false),
        "std" => |a| var_std(a, true),
        "var_mean" => var_mean,
        "any" => |a| any_all(a, true),
        "all" => |a| any_all(a, false),
        "softmax" | "_softmax" => |a| softmax(a, false),
        "log_softmax" | "_log_softmax" => |a| softmax(a, true),
        "cumsum" => cumsum,
        "logsumexp" => logsumexp,
        "topk" => topk,
        "sort" => sort,
        "argsort" => argsort,
        "linalg_vector_norm" | "norm" => vector_norm,
        _ => return None,
    })
}

/// The dims a reduction runs over: the list argument, or every dim when it is absent, None
/// or empty.
fn reduce_dims(a: &Args, name: &str, rank: usize) -> Result<Vec<usize>> {
    match a.opt_ints(name)? {
        Some(v) if !v.is_empty() => {
            let mut d = v
                .iter()
                .map(|x| norm_dim(*x, rank))
                .collect::<Result<Vec<_>>>()?;
            d.sort_unstable();
            d.dedup();
            Ok(d)
        }
        _ => Ok((0..rank).collect()),
    }
}

/// The dtype values are accumulated in.
fn work_dtype(dt: Dt) -> Dt {
    match dt {
        Dt::F16 | Dt::BF16 => Dt::F32,
        Dt::Bool => Dt::I64,
        d if d.is_int() => Dt::I64,
        d => d,
    }
}

/// Removes the reduced dims (they are size 1 after a keepdim reduction).
fn drop_dims(t: Tensor, dims: &[usize], keepdim: bool) -> Result<Tensor> {
    if keepdim {
        return Ok(t);
    }
    let shape: Vec<usize> = t
        .dims()
        .iter()
        .enumerate()
        .filter(|(i, _)| !dims.contains(i))
        .map(|(_, d)| *d)
        .collect();
    Ok(t.reshape(shape)?)
}

fn sum(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let dims = reduce_dims(a, "dim", x.rank())?;
    let keep = a.bool_or("keepdim", false)?;
    let out = match a.dtype("dtype")? {
        Some(d) => d,
        None if x.dt.is_float() => x.dt,
        None => Dt::I64,
    };
    let w = x.to(work_dtype(out))?;
    let t = if dims.is_empty() {
        w.t
    } else {
        w.t.sum_keepdim(dims.as_slice())?
    };
    one(Tv::new(drop_dims(t, &dims, keep)?, w.dt).to(out)?)
}

fn mean(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let out = a.dtype("dtype")?.unwrap_or(x.dt);
    if !out.is_float() {
        return Err(a.err(format!(
            "mean of a {} tensor: ATen requires a floating dtype",
            out.name()
        )));
    }
    let dims = reduce_dims(a, "dim", x.rank())?;
    let keep = a.bool_or("keepdim", false)?;
    let w = x.to(work_dtype(out))?;
    let n: usize = dims.iter().map(|d| x.dims()[*d]).product();
    let t = if dims.is_empty() {
        w.t
    } else {
        (w.t.sum_keepdim(dims.as_slice())? / n as f64)?
    };
    one(Tv::new(drop_dims(t, &dims, keep)?, w.dt).to(out)?)
}

fn extreme_keepdim(t: &Tensor, d: usize, max: bool) -> Result<Tensor> {
    Ok(if max {
        t.max_keepdim(d)?
    } else {
        t.min_keepdim(d)?
    })
}

fn extreme_dims(a: &Args, max: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let dims = reduce_dims(a, "dim", x.rank())?;
    let keep = a.bool_or("keepdim", false)?;
    let mut t = x.t.clone();
    for d in &dims {
        t = extreme_keepdim(&t, *d, max)?;
    }
    one(Tv::new(drop_dims(t, &dims, keep)?, x.dt))
}

fn extreme_all(a: &Args, max: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.t.elem_count() == 0 {
        return Err(a.err("max/min of an empty tensor"));
    }
    let t = extreme_keepdim(&x.t.flatten_all()?, 0, max)?.squeeze(0)?;
    one(Tv::new(t, x.dt))
}

fn arg_keepdim(t: &Tensor, d: usize, max: bool) -> Result<Tensor> {
    let t = if t.dtype() == DType::U8 {
        t.to_dtype(DType::I64)?
    } else {
        t.clone()
    };
    let i = if max {
        t.argmax_keepdim(d)?
    } else {
        t.argmin_keepdim(d)?
    };
    Ok(i.to_dtype(DType::I64)?)
}

fn extreme_dim(a: &Args, max: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let keep = a.bool_or("keepdim", false)?;
    let v = extreme_keepdim(&x.t, d, max)?;
    let i = arg_keepdim(&x.t, d, max)?;
    Ok(vec![
        Value::Tensor(Tv::new(drop_dims(v, &[d], keep)?, x.dt)),
        Value::Tensor(Tv::new(drop_dims(i, &[d], keep)?, Dt::I64)),
    ])
}

fn arg_extreme(a: &Args, max: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let keep = a.bool_or("keepdim", false)?;
    match a.opt_int("dim")? {
        None => {
            let i = arg_keepdim(&x.t.flatten_all()?, 0, max)?;
            let i = if keep {
                i.reshape(vec![1usize; x.rank()])?
            } else {
                i.squeeze(0)?
            };
            one(Tv::new(i, Dt::I64))
        }
        Some(d) => {
            let d = norm_dim(d, x.rank())?;
            let i = arg_keepdim(&x.t, d, max)?;
            one(Tv::new(drop_dims(i, &[d], keep)?, Dt::I64))
        }
    }
}

fn prod(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let out = match a.dtype("dtype")? {
        Some(d) => d,
        None if x.dt.is_float() => x.dt,
        None => Dt::I64,
    };
    let keep = a.bool_or("keepdim", false)?;
    let dims: Vec<usize> = match a.opt_int("dim")? {
        Some(d) => vec![norm_dim(d, x.rank())?],
        None => (0..x.rank()).collect(),
    };
    // Host product along the dims, moved last.
    let w = x.to(work_dtype(out))?;
    let (moved, inner) = move_last(&w.t, &dims)?;
    let outer = moved.elem_count() / inner.max(1);
    let t = if w.dt.is_float() {
        let v: Vec<f64> = moved.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let r: Vec<f64> = (0..outer)
            .map(|o| v[o * inner..(o + 1) * inner].iter().product())
            .collect();
        Tensor::from_vec(r, outer, a.device)?.to_dtype(w.dt.storage())?
    } else {
        let v: Vec<i64> = moved.flatten_all()?.to_vec1()?;
        let r: Vec<i64> = (0..outer)
            .map(|o| {
                v[o * inner..(o + 1) * inner]
                    .iter()
                    .fold(1i64, |p, x| p.wrapping_mul(*x))
            })
            .collect();
        Tensor::from_vec(r, outer, a.device)?
    };
    let mut shape = x.dims().to_vec();
    for d in &dims {
        shape[*d] = 1;
    }
    let t = t.reshape(shape)?;
    one(Tv::new(drop_dims(t, &dims, keep)?, w.dt).to(out)?)
}

/// Permutes `dims` to the end and makes the result contiguous; returns it and the product of
/// the moved sizes.
fn move_last(t: &Tensor, dims: &[usize]) -> Result<(Tensor, usize)> {
    let rank = t.rank();
    let mut order: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).collect();
    order.extend_from_slice(dims);
    let inner = dims.iter().map(|d| t.dims()[*d]).product();
    let p = if rank == 0 {
        t.clone()
    } else {
        t.permute(order)?.contiguous()?
    };
    Ok((p, inner))
}

/// The correction of `var`/`std`: `correction` (core ATen) or `unbiased` (training IR).
fn correction(a: &Args) -> Result<f64> {
    if a.has("correction") {
        return a.float_or("correction", 1.0);
    }
    Ok(if a.bool_or("unbiased", true)? {
        1.0
    } else {
        0.0
    })
}

fn variance(a: &Args) -> Result<(Tv, Tensor, Vec<usize>, bool, Dt)> {
    let x = a.tensor("self")?;
    if !x.dt.is_float() {
        return Err(a.err("var/std need a floating tensor"));
    }
    let dims = reduce_dims(a, "dim", x.rank())?;
    let keep = a.bool_or("keepdim", false)?;
    let c = correction(a)?;
    let w = x.to(work_dtype(x.dt))?;
    let n: usize = dims.iter().map(|d| x.dims()[*d]).product();
    let mean = (w.t.sum_keepdim(dims.as_slice())? / n as f64)?;
    let dev =
        w.t.broadcast_sub(&mean)?
            .sqr()?
            .sum_keepdim(dims.as_slice())?;
    let denom = (n as f64 - c).max(0.0);
    let var = (dev / denom)?;
    Ok((Tv::new(var, w.dt), mean, dims, keep, x.dt))
}

fn var_std(a: &Args, std: bool) -> Result<Vec<Value>> {
    let (var, _, dims, keep, out) = variance(a)?;
    let t = if std { var.t.sqrt()? } else { var.t };
    one(Tv::new(drop_dims(t, &dims, keep)?, var.dt).to(out)?)
}

fn var_mean(a: &Args) -> Result<Vec<Value>> {
    let (var, mean, dims, keep, out) = variance(a)?;
    Ok(vec![
        Value::Tensor(Tv::new(drop_dims(var.t, &dims, keep)?, var.dt).to(out)?),
        Value::Tensor(Tv::new(drop_dims(mean, &dims, keep)?, var.dt).to(out)?),
    ])
}

fn any_all(a: &Args, any: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?.to(Dt::Bool)?;
    let keep = a.bool_or("keepdim", false)?;
    let dims = match a.opt_ints("dim")? {
        Some(v) => v
            .iter()
            .map(|d| norm_dim(*d, x.rank()))
            .collect::<Result<Vec<_>>>()?,
        None => (0..x.rank()).collect(),
    };
    let mut t = x.t.clone();
    for d in &dims {
        t = extreme_keepdim(&t, *d, any)?;
    }
    one(Tv::new(drop_dims(t, &dims, keep)?, Dt::Bool))
}

fn softmax(a: &Args, log: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let out = if a.bool_or("half_to_float", false)? {
        Dt::F32
    } else {
        a.dtype("dtype")?.unwrap_or(x.dt)
    };
    let out = if out.is_float() { out } else { Dt::F32 };
    let w = x.to(work_dtype(out))?.to(if out == Dt::F64 {
        Dt::F64
    } else {
        work_dtype(out)
    })?;
    let m = w.t.max_keepdim(d)?;
    let z = w.t.broadcast_sub(&m)?;
    let e = z.exp()?;
    let s = e.sum_keepdim(d)?;
    let t = if log {
        z.broadcast_sub(&s.log()?)?
    } else {
        e.broadcast_div(&s)?
    };
    one(Tv::new(t, w.dt).to(out)?)
}

fn logsumexp(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let out = if x.dt.is_float() { x.dt } else { Dt::F32 };
    let dims = reduce_dims(a, "dim", x.rank())?;
    let keep = a.bool_or("keepdim", false)?;
    let w = x.to(work_dtype(out))?;
    let mut m = w.t.clone();
    for d in &dims {
        m = m.max_keepdim(*d)?;
    }
    // An all -inf slice gives -inf, not NaN: subtract 0 there instead of -inf.
    let finite_m = super::pointwise::host_map_t(&m, |v| if v.is_finite() { v } else { 0.0 })?;
    let s =
        w.t.broadcast_sub(&finite_m)?
            .exp()?
            .sum_keepdim(dims.as_slice())?;
    let t = s.log()?.broadcast_add(&finite_m)?;
    one(Tv::new(drop_dims(t, &dims, keep)?, w.dt).to(out)?)
}

fn cumsum(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let out = match a.dtype("dtype")? {
        Some(dt) => dt,
        None if x.dt.is_float() => x.dt,
        None => Dt::I64,
    };
    let w = x.to(work_dtype(out))?;
    let (moved, inner) = move_last(&w.t, &[d])?;
    let outer = moved.elem_count() / inner.max(1);
    let t = if w.dt.is_float() {
        let v: Vec<f64> = moved.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let mut r = Vec::with_capacity(v.len());
        for o in 0..outer {
            // Accumulate in the work dtype's precision, as ATen does for f32.
            let mut acc = 0f32;
            let mut acc64 = 0f64;
            for x in &v[o * inner..(o + 1) * inner] {
                if w.dt == Dt::F64 {
                    acc64 += x;
                    r.push(acc64);
                } else {
                    acc += *x as f32;
                    r.push(f64::from(acc));
                }
            }
        }
        Tensor::from_vec(r, moved.dims(), a.device)?.to_dtype(w.dt.storage())?
    } else {
        let v: Vec<i64> = moved.flatten_all()?.to_vec1()?;
        let mut r = Vec::with_capacity(v.len());
        for o in 0..outer {
            let mut acc = 0i64;
            for x in &v[o * inner..(o + 1) * inner] {
                acc = acc.wrapping_add(*x);
                r.push(acc);
            }
        }
        Tensor::from_vec(r, moved.dims(), a.device)?
    };
    let t = move_back(t, d, x.rank())?;
    one(Tv::new(t, w.dt).to(out)?)
}

/// Inverse of `move_last` for one dim.
fn move_back(t: Tensor, d: usize, rank: usize) -> Result<Tensor> {
    if rank == 0 {
        return Ok(t);
    }
    let mut order: Vec<usize> = (0..rank).filter(|x| *x != d).collect();
    order.push(d);
    let mut inv = vec![0usize; rank];
    for (i, o) in order.iter().enumerate() {
        inv[*o] = i;
    }
    Ok(t.permute(inv)?.contiguous()?)
}

/// Sorted rows along `d`: values and int64 indices (stable, NaN last ascending as ATen).
fn sorted(x: &Tv, d: usize, descending: bool) -> Result<(Tensor, Tensor)> {
    let (moved, inner) = move_last(&x.t, &[d])?;
    let outer = moved.elem_count() / inner.max(1);
    let v: Vec<f64> = moved.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let mut vals = Vec::with_capacity(v.len());
    let mut idx = Vec::with_capacity(v.len());
    for o in 0..outer {
        let row = &v[o * inner..(o + 1) * inner];
        let mut order: Vec<usize> = (0..inner).collect();
        order.sort_by(|&i, &j| {
            let (p, q) = (row[i], row[j]);
            let c = p
                .partial_cmp(&q)
                .unwrap_or_else(|| p.is_nan().cmp(&q.is_nan()));
            if descending {
                c.reverse()
            } else {
                c
            }
        });
        for i in order {
            vals.push(row[i]);
            idx.push(i as i64);
        }
    }
    let vt = Tensor::from_vec(vals, moved.dims(), x.t.device())?.to_dtype(x.t.dtype())?;
    let it = Tensor::from_vec(idx, moved.dims(), x.t.device())?;
    Ok((move_back(vt, d, x.rank())?, move_back(it, d, x.rank())?))
}

fn sort(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", -1)?, x.rank())?;
    let (v, i) = sorted(&x, d, a.bool_or("descending", false)?)?;
    Ok(vec![
        Value::Tensor(Tv::new(v, x.dt)),
        Value::Tensor(Tv::new(i, Dt::I64)),
    ])
}

fn argsort(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", -1)?, x.rank())?;
    let (_, i) = sorted(&x, d, a.bool_or("descending", false)?)?;
    one(Tv::new(i, Dt::I64))
}

fn topk(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", -1)?, x.rank())?;
    let k = usize::try_from(a.int("k")?).map_err(|_| a.err("k is negative"))?;
    if k > x.dims().get(d).copied().unwrap_or(1) {
        return Err(a.err(format!("k = {k} is larger than dim {d}")));
    }
    let (v, i) = sorted(&x, d, a.bool_or("largest", true)?)?;
    Ok(vec![
        Value::Tensor(Tv::new(v.narrow(d, 0, k)?.contiguous()?, x.dt)),
        Value::Tensor(Tv::new(i.narrow(d, 0, k)?.contiguous()?, Dt::I64)),
    ])
}

fn vector_norm(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let out = a.dtype("dtype")?.unwrap_or(x.dt);
    let ord = a.float_or(if a.has("ord") { "ord" } else { "p" }, 2.0)?;
    let dims = reduce_dims(a, "dim", x.rank())?;
    let keep = a.bool_or("keepdim", false)?;
    let w = x.to(work_dtype(out))?;
    let abs = w.t.abs()?;
    let t = if ord == 2.0 {
        abs.sqr()?.sum_keepdim(dims.as_slice())?.sqrt()?
    } else if ord == 1.0 {
        abs.sum_keepdim(dims.as_slice())?
    } else if ord.is_infinite() && ord > 0.0 {
        let mut m = abs;
        for d in &dims {
            m = m.max_keepdim(*d)?;
        }
        m
    } else {
        let p = super::pointwise::host_map_t(&abs, move |v| v.powf(ord))?;
        super::pointwise::host_map_t(&p.sum_keepdim(dims.as_slice())?, move |v| v.powf(1.0 / ord))?
    };
    one(Tv::new(drop_dims(t, &dims, keep)?, w.dt).to(out)?)
}
