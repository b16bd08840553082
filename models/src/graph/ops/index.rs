//! Indexing: `gather`, `index_select`, advanced indexing (`index.Tensor`, with `None` for
//! skipped dims, broadcast index tensors, bool masks, negative indices), `index_put`,
//! `scatter`, `one_hot`. Every index is bounds-checked before use: an out-of-range index is
//! an error naming it, as in ATen.

use candle_core::{DType, Tensor};

use super::super::args::Args;
use super::super::value::{norm_dim, Dt, Operand, Tv, Value};
use super::pointwise::broadcast_shape;
use super::{one, OpFn, Result};

pub(super) const NAMES: &[&str] = &[
    "gather",
    "index_select",
    "index",
    "index_put",
    "index_put_",
    "_unsafe_index",
    "_unsafe_index_put",
    "scatter",
    "scatter_",
    "scatter_add",
    "one_hot",
    "index_fill",
    "index_fill_",
];

pub(super) fn lookup(base: &str, _overload: &str) -> Option<OpFn> {
    Some(match base {
        "gather" => gather,
        "index_select" => index_select,
        "index" | "_unsafe_index" => index,
        "index_put" | "index_put_" | "_unsafe_index_put" => index_put,
        "scatter" | "scatter_" => |a| scatter(a, false),
        "scatter_add" => |a| scatter(a, true),
        "one_hot" => one_hot,
        "index_fill" | "index_fill_" => index_fill,
        _ => return None,
    })
}

/// The indices as i64 values on the host, checked against `n` and wrapped when negative.
fn checked(a: &Args, idx: &Tensor, n: usize, negative_ok: bool) -> Result<Vec<i64>> {
    let v: Vec<i64> = idx.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let n = n as i64;
    v.into_iter()
        .map(|i| {
            let j = if i < 0 && negative_ok { i + n } else { i };
            if j < 0 || j >= n {
                Err(a.err(format!("index {i} is out of bounds for a dim of size {n}")))
            } else {
                Ok(j)
            }
        })
        .collect()
}

fn gather(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let idx = a.tensor("index")?;
    if idx.rank() != x.rank() {
        return Err(a.err("index and self must have the same number of dims"));
    }
    checked(a, &idx.t, x.dims()[d], false)?;
    let t = x.t.contiguous()?.gather(&idx.t.contiguous()?, d)?;
    one(Tv::new(t, x.dt))
}

fn index_select(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let idx = a.tensor("index")?;
    let n = x.dims().get(d).copied().unwrap_or(1);
    let v = checked(a, &idx.t, n, false)?;
    let len = v.len();
    let ids = Tensor::from_vec(v, len, x.t.device())?;
    let t = x.t.contiguous()?.index_select(&ids, d)?;
    let t = if idx.rank() == 0 { t.squeeze(d)? } else { t };
    one(Tv::new(t, x.dt))
}

/// Advanced indexing resolved: the indexed dims (in order), their broadcast index tensors
/// as i64, and the broadcast shape.
struct Indexing {
    dims: Vec<usize>,
    idx: Vec<Tensor>,
    shape: Vec<usize>,
    adjacent: bool,
}

fn resolve_indices(a: &Args, x: &Tv, indices: &[Option<Tv>]) -> Result<Indexing> {
    let mut dims = Vec::new();
    let mut idx = Vec::new();
    let mut d = 0usize;
    for i in indices {
        match i {
            None => d += 1,
            Some(t) if t.dt == Dt::Bool => {
                // A mask over `t.rank()` dims: its nonzero positions, one index per dim.
                let k = t.rank();
                if x.dims().get(d..d + k) != Some(t.dims()) {
                    return Err(a.err(format!(
                        "mask of shape {:?} does not match dims {d}.. of {:?}",
                        t.dims(),
                        x.dims()
                    )));
                }
                let m: Vec<u8> = t.t.flatten_all()?.to_vec1()?;
                let pos: Vec<usize> = m
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0)
                    .map(|(i, _)| i)
                    .collect();
                let mut strides = vec![1usize; k];
                for j in (0..k.saturating_sub(1)).rev() {
                    strides[j] = strides[j + 1] * t.dims()[j + 1];
                }
                for (j, s) in strides.iter().enumerate() {
                    let v: Vec<i64> = pos.iter().map(|p| ((p / s) % t.dims()[j]) as i64).collect();
                    let len = v.len();
                    idx.push(Tensor::from_vec(v, len, x.t.device())?);
                    dims.push(d + j);
                }
                d += k;
            }
            Some(t) if t.dt.is_int() => {
                if d >= x.rank() {
                    return Err(a.err("too many indices"));
                }
                let v = checked(a, &t.t, x.dims()[d], true)?;
                idx.push(Tensor::from_vec(v, t.dims(), x.t.device())?);
                dims.push(d);
                d += 1;
            }
            Some(t) => {
                return Err(a.err(format!(
                    "tensors used as indices must be long or bool, got {}",
                    t.dt.name()
                )))
            }
        }
    }
    let shapes: Vec<&[usize]> = idx.iter().map(|t| t.dims()).collect();
    let shape = broadcast_shape(&shapes)?;
    let idx = idx
        .iter()
        .map(|t| Ok(t.broadcast_as(shape.as_slice())?.contiguous()?))
        .collect::<Result<Vec<_>>>()?;
    let adjacent = dims.windows(2).all(|w| w[1] == w[0] + 1);
    Ok(Indexing {
        dims,
        idx,
        shape,
        adjacent,
    })
}

/// `x` with the indexed dims moved first and flattened into one, the flat index into it.
fn flatten_indexed(x: &Tensor, ix: &Indexing) -> Result<(Tensor, Tensor, Vec<usize>)> {
    let rank = x.rank();
    let rest: Vec<usize> = (0..rank).filter(|d| !ix.dims.contains(d)).collect();
    let mut order = ix.dims.clone();
    order.extend_from_slice(&rest);
    let p = x.permute(order)?.contiguous()?;
    let sizes: Vec<usize> = ix.dims.iter().map(|d| x.dims()[*d]).collect();
    let rest_shape: Vec<usize> = rest.iter().map(|d| x.dims()[*d]).collect();
    let mut flat_shape = vec![sizes.iter().product::<usize>()];
    flat_shape.extend_from_slice(&rest_shape);
    let p = p.reshape(flat_shape)?;
    let mut lin: Option<Tensor> = None;
    let mut stride = 1i64;
    for (t, s) in ix.idx.iter().zip(&sizes).rev() {
        let term = (t * stride as f64)?;
        lin = Some(match lin {
            None => term,
            Some(l) => (l + term)?,
        });
        stride *= *s as i64;
    }
    let lin = match lin {
        Some(l) => l.flatten_all()?,
        None => Tensor::zeros(1, DType::I64, x.device())?,
    };
    Ok((p, lin, rest_shape))
}

fn index(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let indices = a.opt_tensors("indices")?;
    let ix = resolve_indices(a, &x, &indices)?;
    if ix.dims.is_empty() {
        return one(x);
    }
    let (p, lin, rest) = flatten_indexed(&x.t, &ix)?;
    let g = p.index_select(&lin, 0)?;
    let mut shape = ix.shape.clone();
    shape.extend_from_slice(&rest);
    let mut t = g.reshape(shape)?;
    // Adjacent indexed dims keep their place; otherwise the broadcast dims lead.
    let first = ix.dims[0];
    if ix.adjacent && first > 0 {
        let nb = ix.shape.len();
        let r = t.rank();
        let mut order: Vec<usize> = (nb..nb + first).collect();
        order.extend(0..nb);
        order.extend(nb + first..r);
        t = t.permute(order)?.contiguous()?;
    }
    one(Tv::new(t, x.dt))
}

fn index_put(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let indices = a.opt_tensors("indices")?;
    let values = match a.operand("values")? {
        Operand::T(t) => t.to(x.dt)?,
        Operand::S(s) => s.tensor(x.dt, a.device)?,
    };
    let acc = a.bool_or("accumulate", false)?;
    let ix = resolve_indices(a, &x, &indices)?;
    if ix.dims.is_empty() {
        return Err(a.err("index_put without index tensors"));
    }
    let (p, lin, rest) = flatten_indexed(&x.t, &ix)?;
    // Values broadcast to the shape `index` would return, then laid out as (index shape,
    // rest) like the permuted tensor.
    let nb = ix.shape.len();
    let first = ix.dims[0];
    let vals = if ix.adjacent && first > 0 {
        let mut natural = rest[..first].to_vec();
        natural.extend_from_slice(&ix.shape);
        natural.extend_from_slice(&rest[first..]);
        let r = natural.len();
        let mut order: Vec<usize> = (first..first + nb).collect();
        order.extend(0..first);
        order.extend(first + nb..r);
        values
            .t
            .broadcast_as(natural.as_slice())?
            .permute(order)?
            .contiguous()?
    } else {
        let mut vshape = ix.shape.clone();
        vshape.extend_from_slice(&rest);
        values.t.broadcast_as(vshape.as_slice())?.contiguous()?
    };
    let inner: usize = rest.iter().product();
    let lin: Vec<i64> = lin.to_vec1()?;
    let work = if x.dt.is_float() {
        DType::F64
    } else {
        DType::I64
    };
    let mut buf: Vec<f64> = p.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let src: Vec<f64> = vals.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    for (k, &row) in lin.iter().enumerate() {
        let (dst, from) = (row as usize * inner, k * inner);
        for j in 0..inner {
            if acc {
                buf[dst + j] += src[from + j];
            } else {
                buf[dst + j] = src[from + j];
            }
        }
    }
    let flat = Tensor::from_vec(buf, p.dims(), x.t.device())?.to_dtype(work)?;
    // Undo the permutation.
    let rank = x.rank();
    let restd: Vec<usize> = (0..rank).filter(|d| !ix.dims.contains(d)).collect();
    let mut order = ix.dims.clone();
    order.extend_from_slice(&restd);
    let mut permuted_shape: Vec<usize> = ix.dims.iter().map(|d| x.dims()[*d]).collect();
    permuted_shape.extend_from_slice(&rest);
    let mut inv = vec![0usize; rank];
    for (i, o) in order.iter().enumerate() {
        inv[*o] = i;
    }
    let t = flat.reshape(permuted_shape)?.permute(inv)?.contiguous()?;
    let t = t.to_dtype(x.dt.storage())?;
    one(Tv::new(t, x.dt))
}

fn scatter(a: &Args, add: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let idx = a.tensor("index")?;
    if a.has("reduce") {
        return Err(a.err("scatter with `reduce` is not supported"));
    }
    let src: Option<Tv> = if a.has("src") {
        Some(a.tensor("src")?.to(x.dt)?)
    } else {
        None
    };
    let value = if src.is_none() {
        a.scalar("value")?.f64()
    } else {
        0.0
    };
    let iv = checked(a, &idx.t, x.dims()[d], false)?;
    let shape = x.dims().to_vec();
    let ishape = idx.dims().to_vec();
    let mut buf: Vec<f64> = x.t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let sv: Option<(Vec<f64>, Vec<usize>)> = match &src {
        Some(s) => Some((
            s.t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?,
            s.dims().to_vec(),
        )),
        None => None,
    };
    let strides = |s: &[usize]| {
        let mut st = vec![1usize; s.len()];
        for j in (0..s.len().saturating_sub(1)).rev() {
            st[j] = st[j + 1] * s[j + 1];
        }
        st
    };
    let (xs, is) = (strides(&shape), strides(&ishape));
    for (k, &target) in iv.iter().enumerate() {
        let mut pos = vec![0usize; ishape.len()];
        for j in 0..ishape.len() {
            pos[j] = (k / is[j]) % ishape[j];
        }
        let mut off = 0usize;
        for j in 0..shape.len() {
            off += if j == d { target as usize } else { pos[j] } * xs[j];
        }
        let v = match &sv {
            Some((s, sshape)) => {
                let ss = strides(sshape);
                s[pos.iter().zip(&ss).map(|(p, s)| p * s).sum::<usize>()]
            }
            None => value,
        };
        if add {
            buf[off] += v;
        } else {
            buf[off] = v;
        }
    }
    let t = Tensor::from_vec(buf, shape, x.t.device())?.to_dtype(x.dt.storage())?;
    one(Tv::new(t, x.dt))
}

fn one_hot(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let v: Vec<i64> = x.t.flatten_all()?.to_vec1()?;
    let n = a.int_or("num_classes", -1)?;
    let n = if n < 0 {
        v.iter().copied().max().unwrap_or(-1) + 1
    } else {
        n
    };
    let n = usize::try_from(n).map_err(|_| a.err("num_classes is negative"))?;
    let mut out = vec![0i64; v.len() * n];
    for (i, c) in v.iter().enumerate() {
        let c = usize::try_from(*c)
            .ok()
            .filter(|c| *c < n)
            .ok_or_else(|| a.err(format!("class {c} is out of range for {n} classes")))?;
        out[i * n + c] = 1;
    }
    let mut shape = x.dims().to_vec();
    shape.push(n);
    one(Tv::new(
        Tensor::from_vec(out, shape, x.t.device())?,
        Dt::I64,
    ))
}

fn index_fill(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let d = norm_dim(a.int("dim")?, x.rank())?;
    let idx = a.tensor("index")?;
    let n = x.dims().get(d).copied().unwrap_or(1);
    let v = checked(a, &idx.t, n, true)?;
    let value = match a.operand("value")? {
        Operand::T(t) => t.to(x.dt)?,
        Operand::S(s) => s.tensor(x.dt, a.device)?,
    };
    let mut mask = vec![0u8; n];
    for i in v {
        mask[i as usize] = 1;
    }
    let mut shape = vec![1usize; x.rank().max(1)];
    shape[d] = n;
    let m = Tv::new(Tensor::from_vec(mask, shape, x.t.device())?, Dt::Bool);
    let t = super::pointwise::select_where(&m, &value, &x)?;
    one(Tv::new(t, x.dt))
}
