//! Views and layout: `view`/`reshape` (with `-1`), `permute`, `transpose`, `expand`, `slice`
//! (Python clamping, `INT64_MAX` ends, steps), `select`, `squeeze`/`unsqueeze`, `flatten`,
//! `cat`/`stack`/`split`/`chunk`/`unbind`, `repeat`, `flip`; identities (`clone`, `detach`,
//! `alias`, `lift_fresh_copy`); and the symbolic-integer nodes (`sym_size`, `_operator.*`,
//! `torch.sym_max`, ...), which compute plain `i64`s.

use candle_core::{DType, Tensor};

use super::super::args::Args;
use super::super::value::{norm_dim, promote, Dt, Tv, Value};
use super::{one, OpFn, Result};

pub(super) const NAMES: &[&str] = &[
    "view",
    "_unsafe_view",
    "reshape",
    "view_copy",
    "view_as",
    "reshape_as",
    "permute",
    "transpose",
    "swapaxes",
    "t",
    "mT",
    "mH",
    "expand",
    "expand_as",
    "expand_copy",
    "slice",
    "slice_copy",
    "select",
    "narrow",
    "squeeze",
    "unsqueeze",
    "flatten",
    "unflatten",
    "cat",
    "concat",
    "concatenate",
    "stack",
    "split",
    "split_with_sizes",
    "chunk",
    "unbind",
    "repeat",
    "flip",
    "roll",
    "movedim",
    "clone",
    "contiguous",
    "alias",
    "detach",
    "detach_",
    "lift_fresh_copy",
    "lift_fresh",
    "copy",
    "copy_",
    "sym_size",
    "sym_numel",
    "sym_storage_offset",
    "_assert_scalar",
    "_assert_async",
    "sym_constrain_range",
    "sym_constrain_range_for_size",
    "item",
    "_local_scalar_dense",
];

pub(super) fn lookup(base: &str, overload: &str) -> Option<OpFn> {
    Some(match base {
        "view" | "_unsafe_view" | "reshape" | "view_copy" => view,
        "view_as" | "reshape_as" => |a| {
            let x = a.tensor("self")?;
            let o = a.tensor("other")?;
            one(Tv::new(x.t.reshape(o.dims())?, x.dt))
        },
        "permute" => permute,
        "transpose" | "swapaxes" => transpose,
        "mT" | "mH" => |a| {
            let x = a.tensor("self")?;
            if x.rank() < 2 {
                return Err(a.err("mT needs at least 2 dims"));
            }
            one(Tv::new(x.t.transpose(x.rank() - 2, x.rank() - 1)?, x.dt))
        },
        "t" => |a| {
            let x = a.tensor("self")?;
            if x.rank() < 2 {
                return one(x);
            }
            one(Tv::new(x.t.t()?, x.dt))
        },
        "expand" | "expand_copy" => expand,
        "expand_as" => |a| {
            let x = a.tensor("self")?;
            let o = a.tensor("other")?;
            one(Tv::new(x.t.broadcast_as(o.dims())?, x.dt))
        },
        "slice" | "slice_copy" => slice,
        "select" => select,
        "narrow" => narrow,
        "squeeze" => squeeze,
        "unsqueeze" => unsqueeze,
        "flatten" => flatten,
        "unflatten" => unflatten,
        "cat" | "concat" | "concatenate" => cat,
        "stack" => stack,
        "split" if overload == "sizes" => split_with_sizes,
        "split" => split,
        "split_with_sizes" => split_with_sizes,
        "chunk" => chunk,
        "unbind" => unbind,
        "repeat" => repeat,
        "flip" => flip,
        "roll" => roll,
        "movedim" => movedim,
        "clone" | "contiguous" | "alias" | "detach" | "detach_" | "lift_fresh_copy"
        | "lift_fresh" => |a| one(a.tensor("self")?),
        "copy" | "copy_" => |a| {
            let x = a.tensor("self")?;
            let src = a.tensor("src")?.to(x.dt)?;
            one(Tv::new(src.t.broadcast_as(x.dims())?.contiguous()?, x.dt))
        },
        "sym_size" => |a| {
            let x = a.tensor("self")?;
            Ok(vec![Value::Int(x.size(a.int("dim")?)? as i64)])
        },
        "sym_numel" => |a| Ok(vec![Value::Int(a.tensor("self")?.t.elem_count() as i64)]),
        "sym_storage_offset" => |_| Ok(vec![Value::Int(0)]),
        "_assert_scalar" => |a| match a.value("self")? {
            Value::Bool(false) | Value::Int(0) => Err(a.err(format!(
                "the program's runtime assertion failed: {}",
                a.str_or("assert_msg", "")?
            ))),
            _ => Ok(vec![Value::None]),
        },
        "_assert_async" | "sym_constrain_range" | "sym_constrain_range_for_size" => {
            |_| Ok(vec![Value::None])
        }
        "item" | "_local_scalar_dense" => item,
        _ => return None,
    })
}

/// `_operator.*`, `torch.sym_*`, `math.*`: arithmetic on symbolic ints.
pub(super) fn lookup_symbolic(op: &str) -> Option<OpFn> {
    Some(match op {
        "_operator.getitem" => getitem,
        "_operator.add" => |a| int_op(a, |x, y| x.checked_add(y)),
        "_operator.sub" => |a| int_op(a, |x, y| x.checked_sub(y)),
        "_operator.mul" => |a| int_op(a, |x, y| x.checked_mul(y)),
        "_operator.floordiv" => |a| {
            int_op(a, |x, y| {
                if y == 0 {
                    None
                } else {
                    let q = x.wrapping_div(y);
                    Some(if x % y != 0 && ((x < 0) != (y < 0)) {
                        q - 1
                    } else {
                        q
                    })
                }
            })
        },
        "_operator.mod" => |a| {
            int_op(a, |x, y| {
                if y == 0 {
                    None
                } else {
                    let r = x % y;
                    Some(if r != 0 && ((r < 0) != (y < 0)) {
                        r + y
                    } else {
                        r
                    })
                }
            })
        },
        "_operator.pow" => |a| int_op(a, |x, y| x.checked_pow(u32::try_from(y).ok()?)),
        "_operator.truediv" => |a| {
            let (x, y) = (num(a, "a")?, num(a, "b")?);
            Ok(vec![Value::Float(x / y)])
        },
        "_operator.neg" => |a| Ok(vec![Value::Int(-sym_int(a, "a")?)]),
        "_operator.eq" => |a| int_cmp(a, |x, y| x == y),
        "_operator.ne" => |a| int_cmp(a, |x, y| x != y),
        "_operator.lt" => |a| int_cmp(a, |x, y| x < y),
        "_operator.le" => |a| int_cmp(a, |x, y| x <= y),
        "_operator.gt" => |a| int_cmp(a, |x, y| x > y),
        "_operator.ge" => |a| int_cmp(a, |x, y| x >= y),
        "_operator.and_" => |a| int_cmp(a, |x, y| x != 0 && y != 0),
        "_operator.or_" => |a| int_cmp(a, |x, y| x != 0 || y != 0),
        "_operator.not_" => |a| Ok(vec![Value::Bool(sym_int(a, "a")? == 0)]),
        "torch.sym_max" => |a| int_op(a, |x, y| Some(x.max(y))),
        "torch.sym_min" => |a| int_op(a, |x, y| Some(x.min(y))),
        "torch.sym_not" => |a| Ok(vec![Value::Bool(sym_int(a, "a")? == 0)]),
        "torch.sym_float" => |a| Ok(vec![Value::Float(num(a, "a")?)]),
        "torch.sym_int" => |a| Ok(vec![Value::Int(num(a, "a")?.trunc() as i64)]),
        "math.ceil" => |a| Ok(vec![Value::Int(num(a, "a")?.ceil() as i64)]),
        "math.floor" => |a| Ok(vec![Value::Int(num(a, "a")?.floor() as i64)]),
        "math.trunc" => |a| Ok(vec![Value::Int(num(a, "a")?.trunc() as i64)]),
        "torch.sym_sqrt" | "math.sqrt" => |a| Ok(vec![Value::Float(num(a, "a")?.sqrt())]),
        _ => return None,
    })
}

/// The first argument of a symbolic op by name, or its first positional one.
fn sym_arg<'a>(a: &'a Args, name: &str) -> Result<&'a Value> {
    if let Ok(v) = a.value(name) {
        return Ok(v);
    }
    let pos = if name == "a" { 0 } else { 1 };
    a.vals
        .get(pos)
        .map(|(_, v)| v)
        .ok_or_else(|| a.err(format!("argument `{name}` is missing")))
}

fn sym_int(a: &Args, name: &str) -> Result<i64> {
    match sym_arg(a, name)? {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(a.err(format!("`{name}` is {}, not an int", other.kind()))),
    }
}

fn num(a: &Args, name: &str) -> Result<f64> {
    match sym_arg(a, name)? {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        other => Err(a.err(format!("`{name}` is {}, not a number", other.kind()))),
    }
}

fn int_op(a: &Args, f: fn(i64, i64) -> Option<i64>) -> Result<Vec<Value>> {
    match (sym_arg(a, "a")?, sym_arg(a, "b")?) {
        (Value::Float(_), _) | (_, Value::Float(_)) => {
            let (x, y) = (num(a, "a")?, num(a, "b")?);
            let r = match a.op {
                "_operator.add" => x + y,
                "_operator.sub" => x - y,
                "_operator.mul" => x * y,
                "torch.sym_max" => x.max(y),
                "torch.sym_min" => x.min(y),
                _ => return Err(a.err("float operands are not supported here")),
            };
            Ok(vec![Value::Float(r)])
        }
        _ => {
            let (x, y) = (sym_int(a, "a")?, sym_int(a, "b")?);
            let r = f(x, y)
                .ok_or_else(|| a.err(format!("{x} and {y}: overflow or division by zero")))?;
            Ok(vec![Value::Int(r)])
        }
    }
}

fn int_cmp(a: &Args, f: fn(i64, i64) -> bool) -> Result<Vec<Value>> {
    let (x, y) = (num(a, "a")?, num(a, "b")?);
    // Compare as f64 only when a float is involved; ints compare exactly.
    let r = match (sym_arg(a, "a")?, sym_arg(a, "b")?) {
        (Value::Float(_), _) | (_, Value::Float(_)) => {
            f(x.partial_cmp(&y).map_or(0, |o| o as i64), 0)
        }
        _ => f(sym_int(a, "a")?, sym_int(a, "b")?),
    };
    Ok(vec![Value::Bool(r)])
}

fn getitem(a: &Args) -> Result<Vec<Value>> {
    let i = sym_int(a, "b")?;
    let idx = |n: usize| -> Result<usize> {
        let j = if i < 0 { i + n as i64 } else { i };
        usize::try_from(j)
            .ok()
            .filter(|j| *j < n)
            .ok_or_else(|| a.err(format!("index {i} out of range for {n} items")))
    };
    match sym_arg(a, "a")? {
        Value::Tensors(v) => one(v[idx(v.len())?].clone()),
        Value::OptTensors(v) => match &v[idx(v.len())?] {
            Some(t) => one(t.clone()),
            None => Ok(vec![Value::None]),
        },
        Value::Ints(v) => Ok(vec![Value::Int(v[idx(v.len())?])]),
        other => Err(a.err(format!("getitem of {}", other.kind()))),
    }
}

fn item(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.t.elem_count() != 1 {
        return Err(a.err(format!("item() of a tensor of shape {:?}", x.dims())));
    }
    let flat = x.t.flatten_all()?;
    Ok(vec![match x.dt {
        Dt::Bool => Value::Bool(flat.to_vec1::<u8>()?[0] != 0),
        d if d.is_int() => Value::Int(flat.to_vec1::<i64>()?[0]),
        _ => Value::Float(flat.to_dtype(DType::F64)?.to_vec1::<f64>()?[0]),
    }])
}

/// Resolves a size list with at most one `-1` against `numel`.
fn infer_shape(a: &Args, size: &[i64], numel: usize) -> Result<Vec<usize>> {
    let mut infer = None;
    let mut known = 1usize;
    for (i, &s) in size.iter().enumerate() {
        if s == -1 {
            if infer.replace(i).is_some() {
                return Err(a.err("only one dimension can be -1"));
            }
        } else {
            let s = usize::try_from(s).map_err(|_| a.err(format!("invalid size {s}")))?;
            known = known
                .checked_mul(s)
                .ok_or_else(|| a.err("size overflows"))?;
        }
    }
    let mut out: Vec<usize> = size.iter().map(|s| (*s).max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(a.err(format!("shape {size:?} is invalid for {numel} elements")));
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(a.err(format!("shape {size:?} is invalid for {numel} elements")));
    }
    Ok(out)
}

fn view(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let size = if a.has("size") {
        a.ints("size")?
    } else {
        a.ints("shape")?
    };
    let shape = infer_shape(a, &size, x.t.elem_count())?;
    one(Tv::new(x.t.reshape(shape)?, x.dt))
}

fn permute(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let dims = a
        .ints("dims")?
        .iter()
        .map(|d| norm_dim(*d, x.rank()))
        .collect::<Result<Vec<_>>>()?;
    if x.rank() == 0 {
        return one(x);
    }
    one(Tv::new(x.t.permute(dims)?, x.dt))
}

fn transpose(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.rank() == 0 {
        return one(x);
    }
    let d0 = norm_dim(a.int("dim0")?, x.rank())?;
    let d1 = norm_dim(a.int("dim1")?, x.rank())?;
    one(Tv::new(x.t.transpose(d0, d1)?, x.dt))
}

fn expand(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let size = a.ints("size")?;
    if size.len() < x.rank() {
        return Err(a.err(format!(
            "expand to {size:?} has fewer dims than the tensor {:?}",
            x.dims()
        )));
    }
    let lead = size.len() - x.rank();
    let mut shape = Vec::with_capacity(size.len());
    for (i, &s) in size.iter().enumerate() {
        shape.push(if s == -1 {
            if i < lead {
                return Err(a.err("-1 is not allowed in a new leading dim of expand"));
            }
            x.dims()[i - lead]
        } else {
            usize::try_from(s).map_err(|_| a.err(format!("invalid size {s}")))?
        });
    }
    one(Tv::new(x.t.broadcast_as(shape)?, x.dt))
}

/// Python slice bounds clamped to `[0, n]`.
fn clamp_index(i: i64, n: usize) -> usize {
    let n = n as i64;
    let i = if i < 0 { i + n } else { i };
    i.clamp(0, n) as usize
}

/// Every `step`-th index of `dim` from `start` (exclusive `end`).
pub(crate) fn strided(
    t: &Tensor,
    d: usize,
    start: usize,
    end: usize,
    step: usize,
) -> Result<Tensor> {
    let len = end.saturating_sub(start);
    if step == 1 {
        return Ok(t.narrow(d, start, len)?);
    }
    let n = len.div_ceil(step);
    let idx: Vec<i64> = (0..n).map(|i| (start + i * step) as i64).collect();
    let idx = Tensor::from_vec(idx, n, t.device())?;
    Ok(t.contiguous()?.index_select(&idx, d)?)
}

fn slice(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", 0)?, x.rank())?;
    let n = x.dims()[d];
    let start = clamp_index(a.int_or("start", 0)?, n);
    let end = clamp_index(a.int_or("end", i64::MAX)?.min(n as i64), n).max(start);
    let step = a.int_or("step", 1)?;
    let step = usize::try_from(step)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| a.err(format!("slice step must be positive, got {step}")))?;
    one(Tv::new(strided(&x.t, d, start, end, step)?, x.dt))
}

fn select(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let n = x.dims()[d] as i64;
    let i = a.int("index")?;
    let j = if i < 0 { i + n } else { i };
    if j < 0 || j >= n {
        return Err(a.err(format!("index {i} is out of range for dim {d} of size {n}")));
    }
    one(Tv::new(x.t.narrow(d, j as usize, 1)?.squeeze(d)?, x.dt))
}

fn narrow(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let n = x.dims()[d];
    let start = a.int("start")?;
    let start = if start < 0 { start + n as i64 } else { start };
    let len = a.int("length")?;
    if start < 0 || len < 0 || (start + len) as usize > n {
        return Err(a.err(format!(
            "narrow({start}, {len}) is out of range for size {n}"
        )));
    }
    one(Tv::new(x.t.narrow(d, start as usize, len as usize)?, x.dt))
}

fn squeeze(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let dims: Vec<usize> = match a.opt_ints("dim")?.or(a.opt_ints("dims")?) {
        None => (0..x.rank()).collect(),
        Some(v) => v
            .iter()
            .map(|d| norm_dim(*d, x.rank()))
            .collect::<Result<_>>()?,
    };
    let shape: Vec<usize> = x
        .dims()
        .iter()
        .enumerate()
        .filter(|(i, s)| !(dims.contains(i) && **s == 1))
        .map(|(_, s)| *s)
        .collect();
    one(Tv::new(x.t.reshape(shape)?, x.dt))
}

fn unsqueeze(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank() + 1)?;
    one(Tv::new(x.t.unsqueeze(d)?, x.dt))
}

fn flatten(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.rank() == 0 {
        return one(Tv::new(x.t.reshape(1)?, x.dt));
    }
    let s = norm_dim(a.int_or("start_dim", 0)?, x.rank())?;
    let e = norm_dim(a.int_or("end_dim", -1)?, x.rank())?;
    if s > e {
        return Err(a.err("flatten: start_dim is after end_dim"));
    }
    let dims = x.dims();
    let mut shape = dims[..s].to_vec();
    shape.push(dims[s..=e].iter().product());
    shape.extend_from_slice(&dims[e + 1..]);
    one(Tv::new(x.t.reshape(shape)?, x.dt))
}

fn unflatten(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let sizes = infer_shape(a, &a.ints("sizes")?, x.dims()[d])?;
    let mut shape = x.dims()[..d].to_vec();
    shape.extend(sizes);
    shape.extend_from_slice(&x.dims()[d + 1..]);
    one(Tv::new(x.t.reshape(shape)?, x.dt))
}

/// Tensors cast to their promoted dtype; legacy empty 1-D tensors dropped as ATen's `cat`.
fn promoted_list(ts: &[Tv]) -> Result<(Vec<Tv>, Dt)> {
    let dt = ts.iter().map(|t| t.dt).reduce(promote).unwrap_or(Dt::F32);
    let v = ts
        .iter()
        .filter(|t| !(t.rank() == 1 && t.dims()[0] == 0))
        .map(|t| t.to(dt))
        .collect::<Result<Vec<_>>>()?;
    Ok((v, dt))
}

fn cat(a: &Args) -> Result<Vec<Value>> {
    let ts = a.tensors("tensors")?;
    let (ts, dt) = promoted_list(&ts)?;
    let Some(first) = ts.first() else {
        return Err(a.err("cat of no non-empty tensors"));
    };
    let d = norm_dim(a.int_or("dim", 0)?, first.rank())?;
    let refs: Vec<&Tensor> = ts.iter().map(|t| &t.t).collect();
    one(Tv::new(Tensor::cat(&refs, d)?, dt))
}

fn stack(a: &Args) -> Result<Vec<Value>> {
    let ts = a.tensors("tensors")?;
    let dt = ts.iter().map(|t| t.dt).reduce(promote).unwrap_or(Dt::F32);
    let ts = ts.iter().map(|t| t.to(dt)).collect::<Result<Vec<_>>>()?;
    let Some(first) = ts.first() else {
        return Err(a.err("stack of no tensors"));
    };
    let d = norm_dim(a.int_or("dim", 0)?, first.rank() + 1)?;
    let refs: Vec<&Tensor> = ts.iter().map(|t| &t.t).collect();
    one(Tv::new(Tensor::stack(&refs, d)?, dt))
}

fn pieces(x: &Tv, d: usize, sizes: &[usize]) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for &s in sizes {
        out.push(Tv::new(x.t.narrow(d, start, s)?, x.dt));
        start += s;
    }
    Ok(vec![Value::Tensors(out)])
}

fn split(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", 0)?, x.rank())?;
    let n = x.dims()[d];
    let s = usize::try_from(a.int("split_size")?)
        .ok()
        .filter(|s| *s > 0 || n == 0)
        .ok_or_else(|| a.err("split_size must be positive"))?;
    let mut sizes = Vec::new();
    let mut left = n;
    while left > 0 {
        sizes.push(left.min(s));
        left -= left.min(s);
    }
    if sizes.is_empty() {
        sizes.push(0);
    }
    pieces(&x, d, &sizes)
}

fn split_with_sizes(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", 0)?, x.rank())?;
    let sizes: Vec<usize> = a
        .ints(if a.has("split_sizes") {
            "split_sizes"
        } else {
            "split_size"
        })?
        .iter()
        .map(|s| usize::try_from(*s).map_err(|_| a.err(format!("invalid size {s}"))))
        .collect::<Result<_>>()?;
    if sizes.iter().sum::<usize>() != x.dims()[d] {
        return Err(a.err(format!(
            "split sizes {sizes:?} do not sum to {}",
            x.dims()[d]
        )));
    }
    pieces(&x, d, &sizes)
}

fn chunk(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", 0)?, x.rank())?;
    let chunks = usize::try_from(a.int("chunks")?)
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| a.err("chunks must be positive"))?;
    let n = x.dims()[d];
    let s = n.div_ceil(chunks).max(1);
    let mut sizes = Vec::new();
    let mut left = n;
    while left > 0 {
        sizes.push(left.min(s));
        left -= left.min(s);
    }
    pieces(&x, d, &sizes)
}

fn unbind(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int_or("dim", 0)?, x.rank())?;
    let out = (0..x.dims()[d])
        .map(|i| Ok(Tv::new(x.t.narrow(d, i, 1)?.squeeze(d)?, x.dt)))
        .collect::<Result<Vec<_>>>()?;
    Ok(vec![Value::Tensors(out)])
}

fn repeat(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let reps: Vec<usize> = a
        .ints("repeats")?
        .iter()
        .map(|r| usize::try_from(*r).map_err(|_| a.err(format!("invalid repeat {r}"))))
        .collect::<Result<_>>()?;
    if reps.len() < x.rank() {
        return Err(a.err("repeat needs at least as many repeats as dims"));
    }
    let mut shape = vec![1usize; reps.len() - x.rank()];
    shape.extend_from_slice(x.dims());
    let t = x.t.reshape(shape)?.repeat(reps)?;
    one(Tv::new(t, x.dt))
}

fn flip(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let dims = a
        .ints("dims")?
        .iter()
        .map(|d| norm_dim(*d, x.rank()))
        .collect::<Result<Vec<_>>>()?;
    let mut t = x.t.clone();
    for d in dims {
        let n = t.dims()[d];
        let idx: Vec<i64> = (0..n as i64).rev().collect();
        t = t
            .contiguous()?
            .index_select(&Tensor::from_vec(idx, n, t.device())?, d)?;
    }
    one(Tv::new(t, x.dt))
}

fn roll(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let shifts = a.ints("shifts")?;
    let dims = a.opt_ints("dims")?.unwrap_or_default();
    if dims.is_empty() {
        let flat = x.t.flatten_all()?;
        let n = flat.elem_count() as i64;
        let s = shifts.first().copied().unwrap_or(0).rem_euclid(n.max(1));
        let idx: Vec<i64> = (0..n).map(|i| (i - s).rem_euclid(n)).collect();
        let t = flat.index_select(&Tensor::from_vec(idx, n as usize, x.t.device())?, 0)?;
        return one(Tv::new(t.reshape(x.dims())?, x.dt));
    }
    if shifts.len() != dims.len() {
        return Err(a.err("shifts and dims differ in length"));
    }
    let mut t = x.t.clone();
    for (s, d) in shifts.iter().zip(&dims) {
        let d = norm_dim(*d, x.rank())?;
        let n = t.dims()[d] as i64;
        let s = s.rem_euclid(n.max(1));
        let idx: Vec<i64> = (0..n).map(|i| (i - s).rem_euclid(n)).collect();
        t = t
            .contiguous()?
            .index_select(&Tensor::from_vec(idx, n as usize, x.t.device())?, d)?;
    }
    one(Tv::new(t, x.dt))
}

fn movedim(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let r = x.rank();
    let src: Vec<usize> = a
        .ints("source")?
        .iter()
        .map(|d| norm_dim(*d, r))
        .collect::<Result<_>>()?;
    let dst: Vec<usize> = a
        .ints("destination")?
        .iter()
        .map(|d| norm_dim(*d, r))
        .collect::<Result<_>>()?;
    if src.len() != dst.len() {
        return Err(a.err("source and destination differ in length"));
    }
    let mut order = vec![usize::MAX; r];
    for (s, d) in src.iter().zip(&dst) {
        order[*d] = *s;
    }
    let mut rest = (0..r).filter(|d| !src.contains(d));
    for o in order.iter_mut() {
        if *o == usize::MAX {
            *o = rest.next().ok_or_else(|| a.err("invalid movedim"))?;
        }
    }
    one(Tv::new(x.t.permute(order)?, x.dt))
}
