//! Tensor factories: `arange` (every overload; int64 unless a bound is a float), `full`,
//! `ones`, `zeros`, `empty` (zero-filled), their `_like` and `new_` forms, `scalar_tensor`,
//! `linspace`, and `triu`/`tril` with a diagonal offset.

use candle_core::{DType, Tensor};

use super::super::args::Args;
use super::super::value::{Dt, Scalar, Tv, Value};
use super::{one, OpFn, Result};

pub(super) const NAMES: &[&str] = &[
    "arange",
    "full",
    "full_like",
    "ones",
    "ones_like",
    "zeros",
    "zeros_like",
    "empty",
    "empty_like",
    "empty_strided",
    "new_ones",
    "new_zeros",
    "new_full",
    "new_empty",
    "scalar_tensor",
    "linspace",
    "eye",
    "triu",
    "tril",
    "fill",
    "fill_",
    "zero_",
];

pub(super) fn lookup(base: &str, _overload: &str) -> Option<OpFn> {
    Some(match base {
        "arange" => arange,
        "full" => |a| {
            let fill = a.scalar("fill_value")?;
            let dt = a.dtype("dtype")?.unwrap_or(default_dt(fill));
            filled(a, &sizes(a, "size")?, fill, dt)
        },
        "ones" | "zeros" | "empty" | "empty_strided" => |a| {
            let dt = a.dtype("dtype")?.unwrap_or(Dt::F32);
            let v = if a.op.contains("ones") { 1 } else { 0 };
            let size = if a.has("size") {
                sizes(a, "size")?
            } else {
                sizes(a, "stride")?
            };
            filled(a, &size, Scalar::Int(v), dt)
        },
        "full_like" => |a| {
            let x = a.tensor("self")?;
            let dt = a.dtype("dtype")?.unwrap_or(x.dt);
            filled(a, x.dims(), a.scalar("fill_value")?, dt)
        },
        "ones_like" | "zeros_like" | "empty_like" => |a| {
            let x = a.tensor("self")?;
            let dt = a.dtype("dtype")?.unwrap_or(x.dt);
            let v = if a.op.contains("ones") { 1 } else { 0 };
            filled(a, x.dims(), Scalar::Int(v), dt)
        },
        "fill" | "fill_" => |a| {
            let x = a.tensor("self")?;
            let v = match a.value("value")? {
                Value::Tensor(t) => {
                    let f: Vec<f64> = t.t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
                    Scalar::Float(*f.first().ok_or_else(|| a.err("empty fill value"))?)
                }
                _ => a.scalar("value")?,
            };
            filled(a, x.dims(), v, x.dt)
        },
        "zero_" => |a| {
            let x = a.tensor("self")?;
            filled(a, x.dims(), Scalar::Int(0), x.dt)
        },
        "new_ones" | "new_zeros" | "new_empty" => |a| {
            let x = a.tensor("self")?;
            let dt = a.dtype("dtype")?.unwrap_or(x.dt);
            let v = if a.op.contains("ones") { 1 } else { 0 };
            filled(a, &sizes(a, "size")?, Scalar::Int(v), dt)
        },
        "new_full" => |a| {
            let x = a.tensor("self")?;
            let dt = a.dtype("dtype")?.unwrap_or(x.dt);
            filled(a, &sizes(a, "size")?, a.scalar("fill_value")?, dt)
        },
        "scalar_tensor" => |a| {
            let s = a.scalar("s")?;
            let dt = a.dtype("dtype")?.unwrap_or(Dt::F32);
            filled(a, &[], s, dt)
        },
        "linspace" => linspace,
        "eye" => |a| {
            let n = a.int("n")?;
            let m = a.int_or("m", n)?;
            let (n, m) = (
                usize::try_from(n).map_err(|_| a.err("n is negative"))?,
                usize::try_from(m).map_err(|_| a.err("m is negative"))?,
            );
            let dt = a.dtype("dtype")?.unwrap_or(Dt::F32);
            let v: Vec<f64> = (0..n * m)
                .map(|i| f64::from(u8::from(i / m == i % m)))
                .collect();
            let t = Tv::new(Tensor::from_vec(v, (n, m), a.device)?, Dt::F64);
            one(t.to(dt)?)
        },
        "triu" => |a| tri(a, true),
        "tril" => |a| tri(a, false),
        _ => return None,
    })
}

/// The dtype `torch.full` infers from its fill value.
fn default_dt(s: Scalar) -> Dt {
    match s {
        Scalar::Bool(_) => Dt::Bool,
        Scalar::Int(_) => Dt::I64,
        Scalar::Float(_) => Dt::F32,
    }
}

fn sizes(a: &Args, name: &str) -> Result<Vec<usize>> {
    a.ints(name)?
        .iter()
        .map(|s| usize::try_from(*s).map_err(|_| a.err(format!("invalid size {s}"))))
        .collect()
}

fn filled(a: &Args, shape: &[usize], v: Scalar, dt: Dt) -> Result<Vec<Value>> {
    let s = v.tensor(dt, a.device)?;
    one(Tv::new(s.t.broadcast_as(shape)?.contiguous()?, dt))
}

fn arange(a: &Args) -> Result<Vec<Value>> {
    let (start, end) = if a.has("start") {
        (a.scalar("start")?, a.scalar("end")?)
    } else {
        (Scalar::Int(0), a.scalar("end")?)
    };
    let step = a.scalar_or("step", Scalar::Int(1))?;
    let any_float = [start, end, step]
        .iter()
        .any(|s| matches!(s, Scalar::Float(_)));
    let dt = a
        .dtype("dtype")?
        .unwrap_or(if any_float { Dt::F32 } else { Dt::I64 });
    let (s, e, st) = (start.f64(), end.f64(), step.f64());
    if st == 0.0 || !st.is_finite() || !s.is_finite() || !e.is_finite() {
        return Err(a.err(format!("invalid arange({s}, {e}, {st})")));
    }
    let n = ((e - s) / st).ceil().max(0.0);
    if n > 1e9 {
        return Err(a.err(format!("arange({s}, {e}, {st}) has {n} elements")));
    }
    let n = n as usize;
    let t = if dt.is_float() {
        // ATen computes start + i * step in double for accuracy, then casts.
        let v: Vec<f64> = (0..n).map(|i| s + i as f64 * st).collect();
        Tensor::from_vec(v, n, a.device)?.to_dtype(dt.storage())?
    } else {
        let (si, sti) = (s as i64, st as i64);
        let v: Vec<i64> = (0..n as i64).map(|i| si + i * sti).collect();
        Tensor::from_vec(v, n, a.device)?
    };
    one(Tv::new(t, dt).to(dt)?)
}

fn linspace(a: &Args) -> Result<Vec<Value>> {
    let s = a.scalar("start")?.f64();
    let e = a.scalar("end")?.f64();
    let n = usize::try_from(a.int("steps")?).map_err(|_| a.err("steps is negative"))?;
    let dt = a.dtype("dtype")?.unwrap_or(Dt::F32);
    let step = if n > 1 { (e - s) / (n - 1) as f64 } else { 0.0 };
    // ATen fills the first half from the start and the second half from the end.
    let half = n / 2;
    let v: Vec<f64> = (0..n)
        .map(|i| {
            if i < half {
                s + step * i as f64
            } else {
                e - step * (n - 1 - i) as f64
            }
        })
        .collect();
    let t = Tensor::from_vec(v, n, a.device)?.to_dtype(dt.storage())?;
    one(Tv::new(t, dt))
}

fn tri(a: &Args, upper: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.rank() < 2 {
        return Err(a.err("triu/tril need at least 2 dims"));
    }
    let k = a.int_or("diagonal", 0)?;
    let (r, c) = (x.dims()[x.rank() - 2], x.dims()[x.rank() - 1]);
    let mask: Vec<u8> = (0..r as i64)
        .flat_map(|i| {
            (0..c as i64).map(move |j| u8::from(if upper { j - i >= k } else { j - i <= k }))
        })
        .collect();
    let m = Tensor::from_vec(mask, (r, c), x.t.device())?.broadcast_as(x.dims())?;
    let zeros = x.t.zeros_like()?;
    one(Tv::new(m.where_cond(&x.t, &zeros)?, x.dt))
}
