//! Matrix products with `torch.matmul`'s broadcasting rules; `linear`, `addmm`, `baddbmm`.
//!
//! Half inputs multiply in f32 on the CPU (ATen accumulates in f32) and round once; integer
//! inputs multiply in f64 (exact below 2^53) and come back as integers.

use candle_core::{DType, Tensor};

use super::super::super::args::Args;
use super::super::super::value::{promote, Dt, Scalar, Tv, Value};
use super::super::pointwise::broadcast_shape;
use super::super::{one, Result};

/// The dtype two operands multiply in, and the result dtype.
fn work_dtype(x: &Tv, y: &Tv) -> (DType, Dt) {
    let dt = promote(x.dt, y.dt);
    let dt = if dt == Dt::Bool { Dt::I64 } else { dt };
    let work = match dt {
        Dt::F16 | Dt::BF16 if x.t.device().is_cpu() => DType::F32,
        d if d.is_float() => d.storage(),
        _ => DType::F64,
    };
    (work, dt)
}

fn fin(t: Tensor, dt: Dt) -> Result<Tv> {
    Ok(Tv::new(t.to_dtype(dt.storage())?, dt))
}

/// `torch.matmul` on tensors already in one dtype.
pub(super) fn matmul_t(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (rx, ry) = (x.rank(), y.rank());
    if rx == 0 || ry == 0 {
        return Err(super::super::super::GraphError::msg(
            "matmul: both arguments need at least one dimension",
        ));
    }
    if rx == 1 && ry == 1 {
        let k = x.dims()[0];
        let r = x.reshape((1, k))?.matmul(&y.reshape((k, 1))?)?;
        return Ok(r.reshape(())?);
    }
    // [..., m, k] @ [k, n]: one 2-D product.
    if ry == 2 && rx >= 2 {
        let d = x.dims();
        let (k, n) = (y.dims()[0], y.dims()[1]);
        let rows: usize = d[..rx - 1].iter().product();
        if d[rx - 1] != k {
            return Err(super::super::super::GraphError::msg(format!(
                "matmul: shapes {:?} and {:?} cannot be multiplied",
                x.dims(),
                y.dims()
            )));
        }
        // A transposed weight (`linear`) multiplies as it is: no copy.
        let y = if y.is_contiguous() || y.t()?.is_contiguous() {
            y.clone()
        } else {
            y.contiguous()?
        };
        let r = x.contiguous()?.reshape((rows, k))?.matmul(&y)?;
        let mut shape = d[..rx - 1].to_vec();
        shape.push(n);
        return Ok(r.reshape(shape)?);
    }
    let x2 = if rx == 1 { x.unsqueeze(0)? } else { x.clone() };
    let y2 = if ry == 1 { y.unsqueeze(1)? } else { y.clone() };
    let (xd, yd) = (x2.dims().to_vec(), y2.dims().to_vec());
    let (m, k) = (xd[xd.len() - 2], xd[xd.len() - 1]);
    let (k2, n) = (yd[yd.len() - 2], yd[yd.len() - 1]);
    if k != k2 {
        return Err(super::super::super::GraphError::msg(format!(
            "matmul: shapes {:?} and {:?} cannot be multiplied",
            x.dims(),
            y.dims()
        )));
    }
    let batch = broadcast_shape(&[&xd[..xd.len() - 2], &yd[..yd.len() - 2]])?;
    let b: usize = batch.iter().product();
    let mut xs = batch.clone();
    xs.extend([m, k]);
    let mut ys = batch.clone();
    ys.extend([k, n]);
    let xb = x2.broadcast_as(xs)?.contiguous()?.reshape((b, m, k))?;
    let yb = y2.broadcast_as(ys)?.contiguous()?.reshape((b, k, n))?;
    let r = xb.matmul(&yb)?;
    let mut shape = batch;
    if rx > 1 {
        shape.push(m);
    }
    if ry > 1 {
        shape.push(n);
    }
    Ok(r.reshape(shape)?)
}

fn product(a: &Args, xn: &str, yn: &str) -> Result<(Tensor, DType, Dt)> {
    let x = a.tensor(xn)?;
    let y = a.tensor(yn)?;
    let (work, dt) = work_dtype(&x, &y);
    let r = matmul_t(&x.t.to_dtype(work)?, &y.t.to_dtype(work)?).map_err(|e| a.err(e))?;
    Ok((r, work, dt))
}

/// `mm`, `bmm`, `matmul`.
pub(super) fn matmul(a: &Args) -> Result<Vec<Value>> {
    let (xn, yn) = if a.has("mat2") {
        ("self", "mat2")
    } else {
        ("self", "other")
    };
    let x = a.tensor(xn)?;
    let y = a.tensor(yn)?;
    let name = a.op.split('.').nth(1).unwrap_or("");
    let want = match name {
        "mm" => Some(2),
        "bmm" => Some(3),
        _ => None,
    };
    if let Some(r) = want {
        if x.rank() != r || y.rank() != r {
            return Err(a.err(format!(
                "expects {r}-D tensors, got {:?} and {:?}",
                x.dims(),
                y.dims()
            )));
        }
        if r == 3 && x.dims()[0] != y.dims()[0] {
            return Err(a.err(format!(
                "batch sizes differ: {:?} and {:?}",
                x.dims(),
                y.dims()
            )));
        }
    }
    let (r, _, dt) = product(a, xn, yn)?;
    one(fin(r, dt)?)
}

/// `mv`.
pub(super) fn mv(a: &Args) -> Result<Vec<Value>> {
    let (r, _, dt) = product(a, "self", "vec")?;
    one(fin(r, dt)?)
}

/// `dot`.
pub(super) fn dot(a: &Args) -> Result<Vec<Value>> {
    let (r, _, dt) = product(a, "self", "tensor")?;
    one(fin(r, dt)?)
}

/// `beta * self + alpha * product`, with ATen's rule that `beta == 0` ignores `self`.
fn scaled_sum(a: &Args, prod: Tensor, work: DType, dt: Dt) -> Result<Vec<Value>> {
    let beta = a.scalar_or("beta", Scalar::Int(1))?.f64();
    let alpha = a.scalar_or("alpha", Scalar::Int(1))?.f64();
    let prod = if alpha == 1.0 {
        prod
    } else {
        prod.affine(alpha, 0.0)?
    };
    let r = if beta == 0.0 {
        prod
    } else {
        let s = a.tensor("self")?.t.to_dtype(work)?;
        let s = if beta == 1.0 { s } else { s.affine(beta, 0.0)? };
        s.broadcast_add(&prod)?
    };
    one(fin(r, dt)?)
}

/// `addmm(self, mat1, mat2, beta, alpha)`.
pub(super) fn addmm(a: &Args) -> Result<Vec<Value>> {
    let (p, work, dt) = product(a, "mat1", "mat2")?;
    let dt = promote(dt, a.tensor("self")?.dt);
    scaled_sum(a, p, work, dt)
}

/// `addmv(self, mat, vec, beta, alpha)`.
pub(super) fn addmv(a: &Args) -> Result<Vec<Value>> {
    let (p, work, dt) = product(a, "mat", "vec")?;
    scaled_sum(a, p, work, dt)
}

/// `baddbmm(self, batch1, batch2, beta, alpha)`.
pub(super) fn baddbmm(a: &Args) -> Result<Vec<Value>> {
    let (p, work, dt) = product(a, "batch1", "batch2")?;
    scaled_sum(a, p, work, dt)
}

/// `linear(input, weight, bias)`: `input @ weight.T + bias`.
pub(super) fn linear(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("input")?;
    let w = a.tensor("weight")?;
    let (work, dt) = work_dtype(&x, &w);
    let wt = w.t.to_dtype(work)?;
    let wt = if wt.rank() == 2 { wt.t()? } else { wt };
    let mut r = matmul_t(&x.t.to_dtype(work)?, &wt).map_err(|e| a.err(e))?;
    if let Some(b) = a.opt_tensor("bias")? {
        r = r.broadcast_add(&b.t.to_dtype(work)?)?;
    }
    one(fin(r, dt)?)
}
