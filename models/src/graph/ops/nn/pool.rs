//! Pooling, interpolation and padding on the last one or two dims.
//!
//! Windows are tables built on the host: max pooling gathers one input position per window
//! offset (index_select) and keeps the first strict maximum (NaN wins), as ATen's loops do;
//! average pooling sums the same gathers in ATen's order (rows outer, columns inner), so
//! NaN and inf stay in the windows that hold them; bilinear interpolation gathers its four
//! taps and weights them as ATen does; nearest interpolation and the reflect/replicate/
//! circular pads are index_selects.

use candle_core::{DType, Tensor};

use super::super::super::args::Args;
use super::super::super::value::{Dt, Tv, Value};
use super::super::{one, Result};
use super::{back, idx_tensor, opmath, spatial, usize_of};

/// `x` with `l` / `r` values `v` added at the ends of dim `d`.
fn pad_const(x: &Tensor, d: usize, l: usize, r: usize, v: f64) -> Result<Tensor> {
    if l == 0 && r == 0 {
        return Ok(x.clone());
    }
    let mk = |n: usize| -> Result<Tensor> {
        let mut s = x.dims().to_vec();
        s[d] = n;
        let t = match x.dtype() {
            DType::F64 => Tensor::full(v, s, x.device())?,
            DType::I64 => Tensor::full(v as i64, s, x.device())?,
            DType::U8 => Tensor::full(u8::from(v != 0.0), s, x.device())?,
            other => Tensor::full(v as f32, s, x.device())?.to_dtype(other)?,
        };
        Ok(t)
    };
    let mut parts = Vec::with_capacity(3);
    if l > 0 {
        parts.push(mk(l)?);
    }
    parts.push(x.clone());
    if r > 0 {
        parts.push(mk(r)?);
    }
    Ok(Tensor::cat(&parts, d)?)
}

/// A tensor of `shape` filled with `v`, in `like`'s dtype and device.
fn full(shape: &[usize], v: f64, like: &Tensor) -> Result<Tensor> {
    let mut s = shape.to_vec();
    let last = s.len() - 1;
    let n = s[last];
    s[last] = 0;
    let e = Tensor::zeros(s, like.dtype(), like.device())?;
    pad_const(&e, last, 0, n, v)
}

/// Lifts a 1-D op's input to 2-D (`[.., 1, L]`).
fn lift(x: &Tensor, n: usize) -> Result<Tensor> {
    Ok(if n == 1 {
        x.unsqueeze(x.rank() - 1)?
    } else {
        x.clone()
    })
}

fn lower(y: Tensor, n: usize) -> Result<Tensor> {
    Ok(if n == 1 { y.squeeze(y.rank() - 2)? } else { y })
}

struct Window {
    k: Vec<usize>,
    s: Vec<usize>,
    p: Vec<usize>,
    d: Vec<usize>,
    ceil: bool,
}

fn window(a: &Args, n: usize, dilation: bool) -> Result<Window> {
    let us = |v: Vec<i64>, w: &str| -> Result<Vec<usize>> {
        v.into_iter().map(|x| usize_of(a, w, x)).collect()
    };
    let k = us(spatial(a, "kernel_size", n, 1)?, "kernel_size")?;
    let s = if a.has("stride") && !a.ints("stride")?.is_empty() {
        us(spatial(a, "stride", n, 1)?, "stride")?
    } else {
        k.clone()
    };
    let p = us(spatial(a, "padding", n, 0)?, "padding")?;
    let d = if dilation {
        us(spatial(a, "dilation", n, 1)?, "dilation")?
    } else {
        vec![1; n]
    };
    let ceil = a.bool_or("ceil_mode", false)?;
    for i in 0..n {
        if k[i] == 0 || s[i] == 0 || d[i] == 0 {
            return Err(a.err("kernel_size, stride and dilation must be positive"));
        }
        if p[i] > k[i] / 2 {
            return Err(a.err(format!(
                "padding {:?} should be at most half of kernel_size {:?}",
                p, k
            )));
        }
    }
    // 1-D windows become [1, k] ones.
    if n == 1 {
        return Ok(Window {
            k: vec![1, k[0]],
            s: vec![1, s[0]],
            p: vec![0, p[0]],
            d: vec![1, d[0]],
            ceil,
        });
    }
    Ok(Window { k, s, p, d, ceil })
}

/// ATen's `pooling_output_shape`.
fn out_size(
    a: &Args,
    input: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    ceil: bool,
) -> Result<usize> {
    let num = (input + 2 * p) as i64 - (d * (k - 1)) as i64 - 1;
    let (num, s64) = (num, s as i64);
    let mut o = if ceil {
        (num + s64 - 1).div_euclid(s64)
    } else {
        num.div_euclid(s64)
    } + 1;
    if ceil && (o - 1) * s64 >= (input + p) as i64 {
        o -= 1;
    }
    if o <= 0 {
        return Err(a.err(format!(
            "output size {o} is too small (input {input}, kernel {k}, stride {s}, padding {p}, dilation {d})"
        )));
    }
    Ok(o as usize)
}

/// Per dim: for each window offset, the input position per output (None: padding).
type Table = Vec<Vec<Option<usize>>>;

fn sliding_table(input: usize, out: usize, k: usize, s: usize, p: usize, d: usize) -> Table {
    (0..k)
        .map(|ki| {
            (0..out)
                .map(|o| {
                    let pos = (o * s + ki * d) as i64 - p as i64;
                    (pos >= 0 && pos < input as i64).then_some(pos as usize)
                })
                .collect()
        })
        .collect()
}

/// Max over windows given by tables on the last two dims; values and flat `h * W + w`
/// indices (I64).
fn max_by_tables(x: &Tensor, th: &Table, tw: &Table) -> Result<(Tensor, Tensor)> {
    let r = x.rank();
    let (h, w) = (x.dims()[r - 2], x.dims()[r - 1]);
    let (oh, ow) = (
        th.first().map_or(0, Vec::len),
        tw.first().map_or(0, Vec::len),
    );
    let dev = x.device();
    // One -inf row / column at the end stands for every padding position.
    let xp = pad_const(
        &pad_const(x, r - 2, 0, 1, f64::NEG_INFINITY)?,
        r - 1,
        0,
        1,
        f64::NEG_INFINITY,
    )?;
    let mut out_shape = x.dims()[..r - 2].to_vec();
    out_shape.extend([oh, ow]);
    let first = |t: &Table, o: usize| t.iter().find_map(|row| row[o]).unwrap_or(0);
    let init_idx: Vec<i64> = (0..oh)
        .flat_map(|i| (0..ow).map(move |j| (i, j)))
        .map(|(i, j)| (first(th, i) * w + first(tw, j)) as i64)
        .collect();
    let mut best_idx = Tensor::from_vec(init_idx, (oh, ow), dev)?
        .broadcast_as(out_shape.as_slice())?
        .contiguous()?;
    let mut best = full(&out_shape, f64::NEG_INFINITY, x)?;
    for rows in th {
        let ri: Vec<i64> = rows.iter().map(|p| p.unwrap_or(h) as i64).collect();
        let xr = xp.index_select(&idx_tensor(ri, dev)?, r - 2)?;
        for cols in tw {
            let ci: Vec<i64> = cols.iter().map(|p| p.unwrap_or(w) as i64).collect();
            let v = xr.index_select(&idx_tensor(ci, dev)?, r - 1)?;
            let flat: Vec<i64> = rows
                .iter()
                .flat_map(|ph| {
                    cols.iter()
                        .map(move |pw| (ph.unwrap_or(0) * w + pw.unwrap_or(0)) as i64)
                })
                .collect();
            let flat = Tensor::from_vec(flat, (oh, ow), dev)?.broadcast_as(out_shape.as_slice())?;
            let cond = v.gt(&best)?.maximum(&v.ne(&v)?)?;
            best = cond.where_cond(&v, &best)?;
            best_idx = cond.where_cond(&flat, &best_idx)?;
        }
    }
    Ok((best, best_idx))
}

/// Sum over windows given by tables on the last two dims, in ATen's order (rows outer,
/// columns inner); padding positions add 0.
fn sum_by_tables(x: &Tensor, th: &Table, tw: &Table) -> Result<Tensor> {
    let r = x.rank();
    let (h, w) = (x.dims()[r - 2], x.dims()[r - 1]);
    let dev = x.device();
    let xp = pad_const(&pad_const(x, r - 2, 0, 1, 0.0)?, r - 1, 0, 1, 0.0)?;
    let mut acc: Option<Tensor> = None;
    for rows in th {
        let ri: Vec<i64> = rows.iter().map(|p| p.unwrap_or(h) as i64).collect();
        let xr = xp.index_select(&idx_tensor(ri, dev)?, r - 2)?;
        for cols in tw {
            let ci: Vec<i64> = cols.iter().map(|p| p.unwrap_or(w) as i64).collect();
            let v = xr.index_select(&idx_tensor(ci, dev)?, r - 1)?;
            acc = Some(match acc {
                None => v,
                Some(a) => (a + v)?,
            });
        }
    }
    acc.ok_or_else(|| super::super::super::GraphError::msg("empty pooling window"))
}

/// A `[rows, cols]` table of divisors on `like`'s device and dtype.
fn divisors(v: Vec<f64>, rows: usize, cols: usize, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, (rows, cols), like.device())?.to_dtype(like.dtype())?)
}

/// `max_pool1d` / `max_pool2d` / `max_pool2d_with_indices`.
pub(super) fn max_pool(a: &Args, n: usize, with_indices: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if x.rank() < n + 1 {
        return Err(a.err(format!("input {:?} has too few dims", x.dims())));
    }
    let win = window(a, n, true)?;
    let xt = lift(&x.t, n)?;
    let r = xt.rank();
    let mut tables = Vec::new();
    for i in 0..2 {
        let input = xt.dims()[r - 2 + i];
        let o = out_size(a, input, win.k[i], win.s[i], win.p[i], win.d[i], win.ceil)?;
        tables.push(sliding_table(
            input, o, win.k[i], win.s[i], win.p[i], win.d[i],
        ));
    }
    let (v, idx) = max_by_tables(&xt, &tables[0], &tables[1])?;
    let v = Value::Tensor(Tv::new(lower(v, n)?, x.dt));
    if with_indices {
        Ok(vec![v, Value::Tensor(Tv::new(lower(idx, n)?, Dt::I64))])
    } else {
        Ok(vec![v])
    }
}

/// ATen's adaptive window `[floor(o*in/out), ceil((o+1)*in/out))`.
fn adaptive_bounds(input: usize, out: usize, o: usize) -> (usize, usize) {
    let start = (o * input) / out;
    let end = ((o + 1) * input).div_ceil(out);
    (start, end)
}

fn adaptive_sizes(a: &Args, x: &Tensor, n: usize) -> Result<Vec<usize>> {
    let v = a.ints("output_size")?;
    let r = x.rank();
    if v.len() != n || r < n + 1 {
        return Err(a.err(format!("output_size {v:?} / input {:?} mismatch", x.dims())));
    }
    v.iter()
        .enumerate()
        .map(|(i, &o)| match o {
            o if o > 0 => Ok(o as usize),
            // None in a list comes through as the input size.
            _ => Ok(x.dims()[r - n + i]),
        })
        .collect()
}

/// `adaptive_max_pool2d(self, output_size)` → (values, indices).
pub(super) fn adaptive_max_pool2d(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let outs = adaptive_sizes(a, &x.t, 2)?;
    let r = x.rank();
    let mut tables = Vec::new();
    for (i, &o) in outs.iter().enumerate() {
        let input = x.dims()[r - 2 + i];
        let b: Vec<(usize, usize)> = (0..o).map(|j| adaptive_bounds(input, o, j)).collect();
        let kmax = b.iter().map(|(s, e)| e - s).max().unwrap_or(1);
        // Offsets past a window's end repeat its last element (no change to the max).
        tables.push(
            (0..kmax)
                .map(|k| b.iter().map(|&(s, e)| Some((s + k).min(e - 1))).collect())
                .collect::<Table>(),
        );
    }
    let (v, idx) = max_by_tables(&x.t, &tables[0], &tables[1])?;
    Ok(vec![
        Value::Tensor(Tv::new(v, x.dt)),
        Value::Tensor(Tv::new(idx, Dt::I64)),
    ])
}

/// `adaptive_avg_pool1d` / `adaptive_avg_pool2d` / `_adaptive_avg_pool2d`.
pub(super) fn adaptive_avg_pool(a: &Args, n: usize) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if !x.dt.is_float() {
        return Err(a.err("adaptive_avg_pool takes floating tensors"));
    }
    let outs = adaptive_sizes(a, &x.t, n)?;
    let xt = lift(&x.t.to_dtype(opmath(x.dt))?, n)?;
    let outs = if n == 1 { vec![1, outs[0]] } else { outs };
    let r = xt.rank();
    let mut tables = Vec::new();
    let mut counts = Vec::new();
    for (i, &o) in outs.iter().enumerate() {
        let input = xt.dims()[r - 2 + i];
        let b: Vec<(usize, usize)> = (0..o).map(|j| adaptive_bounds(input, o, j)).collect();
        let kmax = b.iter().map(|(s, e)| e - s).max().unwrap_or(1);
        tables.push(
            (0..kmax)
                .map(|k| {
                    b.iter()
                        .map(|&(s, e)| (s + k < e).then_some(s + k))
                        .collect()
                })
                .collect::<Table>(),
        );
        counts.push(b.iter().map(|(s, e)| (e - s) as f64).collect::<Vec<_>>());
    }
    let sum = sum_by_tables(&xt, &tables[0], &tables[1])?;
    let div: Vec<f64> = counts[0]
        .iter()
        .flat_map(|h| counts[1].iter().map(move |w| h * w))
        .collect();
    let div = divisors(div, outs[0], outs[1], &xt)?;
    one(back(lower(sum.broadcast_div(&div)?, n)?, x.dt)?)
}

/// `avg_pool1d` / `avg_pool2d` (`count_include_pad`, `ceil_mode`, `divisor_override`).
pub(super) fn avg_pool(a: &Args, n: usize) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if !x.dt.is_float() {
        return Err(a.err("avg_pool takes floating tensors"));
    }
    let win = window(a, n, false)?;
    let include_pad = a.bool_or("count_include_pad", true)?;
    let divisor = match a.opt_int("divisor_override")? {
        Some(0) => return Err(a.err("divisor_override must be non-zero")),
        d => d,
    };
    let xt = lift(&x.t.to_dtype(opmath(x.dt))?, n)?;
    let r = xt.rank();
    let mut tables = Vec::new();
    // Per dim, per output: (window size with padding, window size inside the input).
    let mut sizes = Vec::new();
    for i in 0..2 {
        let input = xt.dims()[r - 2 + i];
        let (k, s, p) = (win.k[i], win.s[i], win.p[i]);
        let o = out_size(a, input, k, s, p, 1, win.ceil)?;
        tables.push(sliding_table(input, o, k, s, p, 1));
        let sz: Vec<(f64, f64)> = (0..o)
            .map(|j| {
                let start = (j * s) as i64 - p as i64;
                let end = (start + k as i64).min((input + p) as i64);
                let (cs, ce) = (start.max(0), end.min(input as i64));
                ((end - start) as f64, (ce - cs).max(0) as f64)
            })
            .collect();
        sizes.push(sz);
    }
    let sum = sum_by_tables(&xt, &tables[0], &tables[1])?;
    let div: Vec<f64> = sizes[0]
        .iter()
        .flat_map(|h| sizes[1].iter().map(move |w| (h, w)))
        .map(|(h, w)| match divisor {
            Some(d) => d as f64,
            None if include_pad => h.0 * w.0,
            None => h.1 * w.1,
        })
        .collect();
    let div = divisors(div, sizes[0].len(), sizes[1].len(), &xt)?;
    one(back(lower(sum.broadcast_div(&div)?, n)?, x.dt)?)
}

/// Output sizes and scales of an upsample op (`.vec`: output_size or scale_factors;
/// `.default`: output_size with optional `scales_h`/`scales_w`/`scales`).
fn upsample_sizes(a: &Args, x: &Tensor, n: usize) -> Result<(Vec<usize>, Vec<Option<f64>>)> {
    let r = x.rank();
    if r < n + 1 {
        return Err(a.err(format!("input {:?} has too few dims", x.dims())));
    }
    let ins = &x.dims()[r - n..];
    let scales_given = a.floats("scale_factors")?;
    if a.has("output_size") {
        let o = a.ints("output_size")?;
        if o.len() != n {
            return Err(a.err(format!("output_size {o:?} should have {n} values")));
        }
        let sizes = o
            .iter()
            .map(|&v| usize_of(a, "output_size", v))
            .collect::<Result<Vec<_>>>()?;
        let scales = if a.has("scale_factors") {
            vec![None; n]
        } else if n == 1 {
            vec![a.opt_float("scales")?]
        } else {
            vec![a.opt_float("scales_h")?, a.opt_float("scales_w")?]
        };
        return Ok((sizes, scales));
    }
    match scales_given {
        Some(s) if s.len() == n => {
            let sizes = ins
                .iter()
                .zip(&s)
                .map(|(&i, &f)| (i as f64 * f).floor() as usize)
                .collect();
            Ok((sizes, s.into_iter().map(Some).collect()))
        }
        _ => Err(a.err("needs output_size or scale_factors (one per spatial dim)")),
    }
}

/// ATen's `compute_scales_value` in f32.
fn scale_value(scale: Option<f64>, input: usize, out: usize) -> f32 {
    match scale {
        Some(s) if s > 0.0 => (1.0 / s) as f32,
        _ => input as f32 / out as f32,
    }
}

/// `upsample_nearest1d/2d` (`.vec` and `.default`) and `_upsample_nearest_exact2d`.
pub(super) fn upsample_nearest(a: &Args, n: usize, exact: bool) -> Result<Vec<Value>> {
    let x = if a.has("input") {
        a.tensor("input")?
    } else {
        a.tensor("self")?
    };
    let (sizes, scales) = upsample_sizes(a, &x.t, n)?;
    let r = x.rank();
    let mut y = x.t.clone();
    for i in 0..n {
        let d = r - n + i;
        let (input, out) = (x.dims()[d], sizes[i]);
        let sc = scale_value(scales[i], input, out);
        let idx: Vec<i64> = (0..out)
            .map(|o| {
                let src = if exact {
                    ((o as f32 + 0.5) * sc).floor() as usize
                } else if out == input {
                    o
                } else if out == 2 * input {
                    o >> 1
                } else {
                    (o as f32 * sc).floor() as usize
                };
                src.min(input.saturating_sub(1)) as i64
            })
            .collect();
        y = y.index_select(&idx_tensor(idx, y.device())?, d)?;
    }
    one(Tv::new(y, x.dt))
}

/// Per output position of one dim: (i0, i1, w0, w1) as ATen's linear kernels compute them.
fn linear_taps(
    input: usize,
    out: usize,
    align: bool,
    scale: Option<f64>,
) -> Vec<(usize, usize, f32, f32)> {
    let sc = if align {
        if out > 1 {
            (input as f32 - 1.0) / (out as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        scale_value(scale, input, out)
    };
    (0..out)
        .map(|o| {
            let real = if align {
                sc * o as f32
            } else {
                (sc * (o as f32 + 0.5) - 0.5).max(0.0)
            };
            let i0 = (real.floor() as usize).min(input - 1);
            let lambda = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - lambda, lambda)
        })
        .collect()
}

/// `upsample_bilinear2d` (`.vec` and `.default`), `align_corners` either way:
/// `h0w * (w0w * x[h0, w0] + w1w * x[h0, w1]) + h1w * (w0w * x[h1, w0] + w1w * x[h1, w1])`.
pub(super) fn upsample_bilinear2d(a: &Args) -> Result<Vec<Value>> {
    let x = if a.has("input") {
        a.tensor("input")?
    } else {
        a.tensor("self")?
    };
    if !x.dt.is_float() {
        return Err(a.err("bilinear interpolation takes floating tensors"));
    }
    let align = a.bool_or("align_corners", false)?;
    let (sizes, scales) = upsample_sizes(a, &x.t, 2)?;
    let xt = x.t.to_dtype(opmath(x.dt))?;
    let r = xt.rank();
    let (h, w) = (xt.dims()[r - 2], xt.dims()[r - 1]);
    if h == 0 || w == 0 {
        return Err(a.err("input has an empty spatial dim"));
    }
    let dev = xt.device();
    let th = linear_taps(h, sizes[0], align, scales[0]);
    let tw = linear_taps(w, sizes[1], align, scales[1]);
    let col = |v: Vec<f32>, shape: (usize, usize)| -> Result<Tensor> {
        Ok(Tensor::from_vec(v, shape, dev)?.to_dtype(xt.dtype())?)
    };
    let (oh, ow) = (sizes[0], sizes[1]);
    let ww0 = col(tw.iter().map(|t| t.2).collect(), (1, ow))?;
    let ww1 = col(tw.iter().map(|t| t.3).collect(), (1, ow))?;
    let wh0 = col(th.iter().map(|t| t.2).collect(), (oh, 1))?;
    let wh1 = col(th.iter().map(|t| t.3).collect(), (oh, 1))?;
    let sel = |t: &Tensor, idx: Vec<i64>, d: usize| -> Result<Tensor> {
        Ok(t.index_select(&idx_tensor(idx, dev)?, d)?)
    };
    let w0: Vec<i64> = tw.iter().map(|t| t.0 as i64).collect();
    let w1: Vec<i64> = tw.iter().map(|t| t.1 as i64).collect();
    let mut rows = Vec::with_capacity(2);
    for idx in [
        th.iter().map(|t| t.0 as i64).collect::<Vec<_>>(),
        th.iter().map(|t| t.1 as i64).collect(),
    ] {
        let xr = sel(&xt, idx, r - 2)?;
        let a0 = sel(&xr, w0.clone(), r - 1)?.broadcast_mul(&ww0)?;
        let a1 = sel(&xr, w1.clone(), r - 1)?.broadcast_mul(&ww1)?;
        rows.push((a0 + a1)?);
    }
    let y = rows[0]
        .broadcast_mul(&wh0)?
        .add(&rows[1].broadcast_mul(&wh1)?)?;
    one(back(y, x.dt)?)
}

/// `constant_pad_nd(self, pad, value=0)`: pairs from the last dim back; negative pads crop.
fn constant_pad(a: &Args, x: &Tv, pad: &[i64], value: f64) -> Result<Tv> {
    if pad.len() % 2 != 0 || pad.len() / 2 > x.rank() {
        return Err(a.err(format!(
            "pad {pad:?} does not fit a tensor of rank {}",
            x.rank()
        )));
    }
    let mut t = x.t.clone();
    let r = x.rank();
    for (i, pair) in pad.chunks(2).enumerate() {
        let d = r - 1 - i;
        let (l, rt) = (pair[0], pair[1]);
        let size = t.dims()[d] as i64;
        // Crop first.
        let (cl, cr) = ((-l).max(0), (-rt).max(0));
        if cl + cr > size {
            return Err(a.err(format!("pad {pad:?} crops more than dim {d} has ({size})")));
        }
        if cl + cr > 0 {
            t = t.narrow(d, cl as usize, (size - cl - cr) as usize)?;
        }
        t = pad_const(&t, d, l.max(0) as usize, rt.max(0) as usize, value)?;
    }
    Ok(Tv::new(t, x.dt))
}

/// `constant_pad_nd`.
pub(super) fn constant_pad_nd(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let pad = a.ints("pad")?;
    let v = a.float_or("value", 0.0)?;
    one(constant_pad(a, &x, &pad, v)?)
}

/// How positions outside a dim are mapped inside.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum PadMode {
    Reflect,
    Replicate,
    Circular,
}

fn mapped_pad(a: &Args, x: &Tv, pad: &[i64], mode: PadMode) -> Result<Tv> {
    if pad.len() % 2 != 0 || pad.len() / 2 > x.rank() {
        return Err(a.err(format!(
            "pad {pad:?} does not fit a tensor of rank {}",
            x.rank()
        )));
    }
    let r = x.rank();
    let mut t = x.t.clone();
    for (i, pair) in pad.chunks(2).enumerate() {
        let d = r - 1 - i;
        let n = t.dims()[d] as i64;
        let (l, rt) = (pair[0], pair[1]);
        if n == 0 {
            return Err(a.err(format!("cannot pad the empty dim {d}")));
        }
        if mode == PadMode::Reflect && (l >= n || rt >= n) {
            return Err(a.err(format!(
                "reflection padding {pad:?} must be smaller than the dim size {n}"
            )));
        }
        if mode == PadMode::Circular && (l > n || rt > n) {
            return Err(a.err(format!(
                "circular padding {pad:?} must be at most the dim size {n}"
            )));
        }
        let idx: Vec<i64> = (-l..n + rt)
            .map(|j| match mode {
                PadMode::Reflect => {
                    if j < 0 {
                        -j
                    } else if j >= n {
                        2 * (n - 1) - j
                    } else {
                        j
                    }
                }
                PadMode::Replicate => j.clamp(0, n - 1),
                PadMode::Circular => j.rem_euclid(n),
            })
            .collect();
        t = t.index_select(&idx_tensor(idx, t.device())?, d)?;
    }
    Ok(Tv::new(t, x.dt))
}

/// `reflection_padNd` / `replication_padNd(self, padding)`.
pub(super) fn index_pad(a: &Args, n: usize, mode: PadMode) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let pad = a.ints("padding")?;
    if pad.len() != 2 * n {
        return Err(a.err(format!("padding {pad:?} should have {} values", 2 * n)));
    }
    one(mapped_pad(a, &x, &pad, mode)?)
}

/// `pad(self, pad, mode="constant", value=None)`.
pub(super) fn pad(a: &Args) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let p = a.ints("pad")?;
    let mode = match a.str_or("mode", "constant")? {
        "constant" => return one(constant_pad(a, &x, &p, a.float_or("value", 0.0)?)?),
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        "circular" => PadMode::Circular,
        other => return Err(a.err(format!("pad mode {other:?} is not supported"))),
    };
    // ATen pads the last 1-3 dims of a batched or unbatched input in these modes.
    let k = p.len() / 2;
    if !(1..=3).contains(&k) || !(x.rank() == k + 1 || x.rank() == k + 2) {
        return Err(a.err(format!(
            "padding size {} is not supported for a {}-D input in this mode",
            p.len(),
            x.rank()
        )));
    }
    one(mapped_pad(a, &x, &p, mode)?)
}
