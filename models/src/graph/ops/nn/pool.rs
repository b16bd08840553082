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
    if s.is_empty() {
        return pad_const(&Tensor::zeros(0, like.dtype(), like.device())?, 0, 0, 1, v)?
            .reshape(())
            .map_err(Into::into);
    }
    let last = s.len() - 1;
    let n = s[last];
    s[last] = 0;
    let e = Tensor::zeros(s, like.dtype(), like.device())?;
    pad_const(&e, last, 0, n, v)
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
                "padding {p:?} should be at most half of kernel_size {k:?}"
            )));
        }
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
    let s64 = s as i64;
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

/// Every window offset (one index per dim), in row-major order.
fn offsets(tables: &[Table]) -> Vec<Vec<usize>> {
    let mut combos = vec![Vec::new()];
    for t in tables {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                (0..t.len()).map(move |k| {
                    let mut c = c.clone();
                    c.push(k);
                    c
                })
            })
            .collect();
    }
    combos
}

/// `x` with one `v` row at the end of each of its last `n` dims: the padding position.
fn pad_ends(x: &Tensor, n: usize, v: f64) -> Result<Tensor> {
    let r = x.rank();
    let mut t = x.clone();
    for d in r - n..r {
        t = pad_const(&t, d, 0, 1, v)?;
    }
    Ok(t)
}

/// The values at one window offset: `[..., O1, .., On]`.
fn gather(xp: &Tensor, sizes: &[usize], tables: &[Table], combo: &[usize]) -> Result<Tensor> {
    let r = xp.rank();
    let n = tables.len();
    let mut v = xp.clone();
    for i in 0..n {
        let idx: Vec<i64> = tables[i][combo[i]]
            .iter()
            .map(|p| p.unwrap_or(sizes[i]) as i64)
            .collect();
        v = v
            .contiguous()?
            .index_select(&idx_tensor(idx, xp.device())?, r - n + i)?;
    }
    Ok(v)
}

/// Row-major flat index of an output grid `[O1, .., On]` from per-dim positions.
fn flat_grid(per_dim: &[Vec<usize>], sizes: &[usize]) -> Vec<i64> {
    let mut flat = vec![0i64];
    for (pos, &size) in per_dim.iter().zip(sizes) {
        flat = flat
            .iter()
            .flat_map(|&f| pos.iter().map(move |&p| f * size as i64 + p as i64))
            .collect();
    }
    flat
}

/// Max over windows given by per-dim tables on the last `n` dims; values and flat input
/// indices (I64). The first strict maximum wins, NaN beats everything (ATen's loop).
fn max_by_tables(x: &Tensor, tables: &[Table]) -> Result<(Tensor, Tensor)> {
    let r = x.rank();
    let n = tables.len();
    let sizes = x.dims()[r - n..].to_vec();
    let outs: Vec<usize> = tables
        .iter()
        .map(|t| t.first().map_or(0, Vec::len))
        .collect();
    let dev = x.device();
    let xp = pad_ends(x, n, f64::NEG_INFINITY)?;
    let mut out_shape = x.dims()[..r - n].to_vec();
    out_shape.extend(&outs);
    // Before any offset: the first valid position of each window.
    let first: Vec<Vec<usize>> = tables
        .iter()
        .zip(&outs)
        .map(|(t, &o)| {
            (0..o)
                .map(|j| t.iter().find_map(|row| row[j]).unwrap_or(0))
                .collect()
        })
        .collect();
    let init = Tensor::from_vec(flat_grid(&first, &sizes), outs.as_slice(), dev)?;
    let mut best_idx = init.broadcast_as(out_shape.as_slice())?.contiguous()?;
    let mut best = full(&out_shape, f64::NEG_INFINITY, x)?;
    for combo in offsets(tables) {
        let v = gather(&xp, &sizes, tables, &combo)?;
        let pos: Vec<Vec<usize>> = tables
            .iter()
            .zip(&combo)
            .map(|(t, &k)| t[k].iter().map(|p| p.unwrap_or(0)).collect())
            .collect();
        let flat = Tensor::from_vec(flat_grid(&pos, &sizes), outs.as_slice(), dev)?
            .broadcast_as(out_shape.as_slice())?;
        let cond = v.gt(&best)?.maximum(&v.ne(&v)?)?;
        best = cond.where_cond(&v, &best)?;
        best_idx = cond.where_cond(&flat, &best_idx)?;
    }
    Ok((best, best_idx))
}

/// Sum over windows given by per-dim tables, in ATen's order (outer dims first); padding
/// positions add 0.
fn sum_by_tables(x: &Tensor, tables: &[Table]) -> Result<Tensor> {
    let r = x.rank();
    let n = tables.len();
    let sizes = x.dims()[r - n..].to_vec();
    let xp = pad_ends(x, n, 0.0)?;
    let mut acc: Option<Tensor> = None;
    for combo in offsets(tables) {
        let v = gather(&xp, &sizes, tables, &combo)?;
        acc = Some(match acc {
            None => v,
            Some(a) => (a + v)?,
        });
    }
    acc.ok_or_else(|| super::super::super::GraphError::msg("empty pooling window"))
}

/// A table of divisors shaped `outs` on `like`'s device and dtype.
fn divisors(v: Vec<f64>, outs: &[usize], like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, outs, like.device())?.to_dtype(like.dtype())?)
}

/// The row-major product grid of per-dim factors.
fn product_grid(per_dim: &[Vec<f64>]) -> Vec<f64> {
    let mut g = vec![1f64];
    for f in per_dim {
        g = g
            .iter()
            .flat_map(|&a| f.iter().map(move |&b| a * b))
            .collect();
    }
    g
}

fn check_rank(a: &Args, x: &Tv, n: usize) -> Result<()> {
    if x.rank() != n + 1 && x.rank() != n + 2 {
        return Err(a.err(format!(
            "expects a {}-D or {}-D input, got {:?}",
            n + 1,
            n + 2,
            x.dims()
        )));
    }
    Ok(())
}

/// `max_pool{1,2,3}d` and `max_pool{2,3}d_with_indices` (indices flat over the spatial dims).
pub(super) fn max_pool(a: &Args, n: usize, with_indices: bool) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    check_rank(a, &x, n)?;
    let win = window(a, n, true)?;
    let r = x.rank();
    if let Some(v) = max_pool2d_fast(&x, n, with_indices, &win)? {
        return Ok(vec![Value::Tensor(Tv::new(v, x.dt))]);
    }
    let mut tables = Vec::new();
    for i in 0..n {
        let input = x.dims()[r - n + i];
        let o = out_size(a, input, win.k[i], win.s[i], win.p[i], win.d[i], win.ceil)?;
        tables.push(sliding_table(
            input, o, win.k[i], win.s[i], win.p[i], win.d[i],
        ));
    }
    let (v, idx) = max_by_tables(&x.t, &tables)?;
    let v = Value::Tensor(Tv::new(v, x.dt));
    if with_indices {
        Ok(vec![v, Value::Tensor(Tv::new(idx, Dt::I64))])
    } else {
        Ok(vec![v])
    }
}

/// The common 2-D case (float NCHW input, no dilation, floor mode, no indices wanted) as
/// candle's strided max pool over an input padded with -inf: what torchvision's stems use.
fn max_pool2d_fast(x: &Tv, n: usize, with_indices: bool, win: &Window) -> Result<Option<Tensor>> {
    if n != 2 || with_indices || x.rank() != 4 || !x.dt.is_float() || win.ceil {
        return Ok(None);
    }
    if win.d.iter().any(|d| *d != 1) || win.p.iter().zip(&win.k).any(|(p, k)| 2 * p > *k) {
        return Ok(None);
    }
    let mut t = x.t.clone();
    for (i, &p) in win.p.iter().enumerate() {
        if p == 0 {
            continue;
        }
        let d = 2 + i;
        let mut shape = t.dims().to_vec();
        shape[d] = p;
        let pad =
            Tensor::full(f32::NEG_INFINITY, shape.as_slice(), t.device())?.to_dtype(t.dtype())?;
        t = Tensor::cat(&[&pad, &t, &pad], d)?;
    }
    Ok(Some(t.max_pool2d_with_stride(
        (win.k[0], win.k[1]),
        (win.s[0], win.s[1]),
    )?))
}

/// ATen's adaptive window `[floor(o*in/out), ceil((o+1)*in/out))`.
fn adaptive_bounds(input: usize, out: usize, o: usize) -> (usize, usize) {
    let start = (o * input) / out;
    let end = ((o + 1) * input).div_ceil(out);
    (start, end)
}

fn adaptive_sizes(a: &Args, x: &Tv, n: usize) -> Result<Vec<usize>> {
    check_rank(a, x, n)?;
    let v = a.ints("output_size")?;
    let r = x.rank();
    if v.len() != n {
        return Err(a.err(format!("output_size {v:?} should have {n} values")));
    }
    v.iter()
        .enumerate()
        .map(|(i, &o)| match o {
            o if o > 0 => Ok(o as usize),
            0 => Err(a.err("output_size 0 is not supported")),
            // -1 (None in a Python list) keeps the input size.
            _ => Ok(x.dims()[r - n + i]),
        })
        .collect()
}

/// Per dim: adaptive window tables, padded by `None` (`clamp`: repeating the last element)
/// up to the longest window, and the window sizes.
fn adaptive_tables(x: &Tv, outs: &[usize], clamp: bool) -> (Vec<Table>, Vec<Vec<f64>>) {
    let r = x.rank();
    let n = outs.len();
    let mut tables = Vec::new();
    let mut counts = Vec::new();
    for (i, &o) in outs.iter().enumerate() {
        let input = x.dims()[r - n + i];
        let b: Vec<(usize, usize)> = (0..o).map(|j| adaptive_bounds(input, o, j)).collect();
        let kmax = b.iter().map(|(s, e)| e - s).max().unwrap_or(1);
        tables.push(
            (0..kmax)
                .map(|k| {
                    b.iter()
                        .map(|&(s, e)| match (s + k < e, clamp) {
                            (true, _) => Some(s + k),
                            (false, true) => Some(e - 1),
                            (false, false) => None,
                        })
                        .collect()
                })
                .collect::<Table>(),
        );
        counts.push(b.iter().map(|(s, e)| (e - s) as f64).collect());
    }
    (tables, counts)
}

/// `adaptive_max_pool{1,2,3}d(self, output_size)` → (values, indices).
pub(super) fn adaptive_max_pool(a: &Args, n: usize) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    let outs = adaptive_sizes(a, &x, n)?;
    // Offsets past a window's end repeat its last element (no change to the max).
    let (tables, _) = adaptive_tables(&x, &outs, true);
    let (v, idx) = max_by_tables(&x.t, &tables)?;
    Ok(vec![
        Value::Tensor(Tv::new(v, x.dt)),
        Value::Tensor(Tv::new(idx, Dt::I64)),
    ])
}

/// `adaptive_avg_pool{1,2,3}d` / `_adaptive_avg_pool{2,3}d`.
pub(super) fn adaptive_avg_pool(a: &Args, n: usize) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if !x.dt.is_float() {
        return Err(a.err("adaptive_avg_pool takes floating tensors"));
    }
    let outs = adaptive_sizes(a, &x, n)?;
    let (tables, counts) = adaptive_tables(&x, &outs, false);
    let xt = x.t.to_dtype(opmath(x.dt))?;
    let sum = sum_by_tables(&xt, &tables)?;
    let div = divisors(product_grid(&counts), &outs, &xt)?;
    one(back(sum.broadcast_div(&div)?, x.dt)?)
}

/// `avg_pool{1,2,3}d` (`count_include_pad`, `ceil_mode`, `divisor_override`).
pub(super) fn avg_pool(a: &Args, n: usize) -> Result<Vec<Value>> {
    let x = a.tensor("self")?;
    if !x.dt.is_float() {
        return Err(a.err("avg_pool takes floating tensors"));
    }
    check_rank(a, &x, n)?;
    let win = window(a, n, false)?;
    let include_pad = a.bool_or("count_include_pad", true)?;
    let divisor = match a.opt_int("divisor_override")? {
        Some(0) => return Err(a.err("divisor_override must be non-zero")),
        d => d,
    };
    let xt = x.t.to_dtype(opmath(x.dt))?;
    let r = xt.rank();
    let mut tables = Vec::new();
    let mut outs = Vec::new();
    // Per dim, per output: the window size counting padding, and inside the input.
    let (mut with_pad, mut inside) = (Vec::new(), Vec::new());
    for i in 0..n {
        let input = xt.dims()[r - n + i];
        let (k, s, p) = (win.k[i], win.s[i], win.p[i]);
        let o = out_size(a, input, k, s, p, 1, win.ceil)?;
        tables.push(sliding_table(input, o, k, s, p, 1));
        outs.push(o);
        let (mut wp, mut ins) = (Vec::new(), Vec::new());
        for j in 0..o {
            let start = (j * s) as i64 - p as i64;
            let end = (start + k as i64).min((input + p) as i64);
            let (cs, ce) = (start.max(0), end.min(input as i64));
            wp.push((end - start) as f64);
            ins.push((ce - cs).max(0) as f64);
        }
        with_pad.push(wp);
        inside.push(ins);
    }
    let sum = sum_by_tables(&xt, &tables)?;
    let div = match divisor {
        Some(d) => vec![d as f64; outs.iter().product()],
        None if include_pad => product_grid(&with_pad),
        None => product_grid(&inside),
    };
    let div = divisors(div, &outs, &xt)?;
    one(back(sum.broadcast_div(&div)?, x.dt)?)
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
        } else {
            match n {
                1 => vec![a.opt_float("scales")?],
                2 => vec![a.opt_float("scales_h")?, a.opt_float("scales_w")?],
                _ => vec![
                    a.opt_float("scales_d")?,
                    a.opt_float("scales_h")?,
                    a.opt_float("scales_w")?,
                ],
            }
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
        y = y
            .contiguous()?
            .index_select(&idx_tensor(idx, y.device())?, d)?;
    }
    one(Tv::new(y, x.dt))
}

/// One output position's taps along a dim: input indices and weights.
type Taps = Vec<(Vec<usize>, Vec<f32>)>;

/// ATen's `area_pixel_compute_scale` (f32).
fn pixel_scale(input: usize, out: usize, align: bool, scale: Option<f64>) -> f32 {
    if align {
        if out > 1 {
            (input as f32 - 1.0) / (out as f32 - 1.0)
        } else {
            0.0
        }
    } else {
        scale_value(scale, input, out)
    }
}

/// Linear taps as ATen's kernels compute them: source `max(s*(o+0.5)-0.5, 0)` (or `s*o`
/// with aligned corners), `i0 = min(floor, in-1)`, `i1 = i0 + (i0 < in-1)`.
fn linear_taps(input: usize, out: usize, align: bool, scale: Option<f64>) -> Taps {
    let sc = pixel_scale(input, out, align, scale);
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
            (vec![i0, i1], vec![1.0 - lambda, lambda])
        })
        .collect()
}

/// Bicubic taps (A = -0.75): source `s*(o+0.5)-0.5` without the clamp at 0, four
/// neighbours clamped into the input.
fn cubic_taps(input: usize, out: usize, align: bool, scale: Option<f64>) -> Taps {
    const A: f32 = -0.75;
    let cc1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let sc = pixel_scale(input, out, align, scale);
    let last = input as i64 - 1;
    (0..out)
        .map(|o| {
            let real = if align {
                sc * o as f32
            } else {
                sc * (o as f32 + 0.5) - 0.5
            };
            let i = (real.floor() as i64).min(last);
            let t = (real - i as f32).clamp(0.0, 1.0);
            let idx = (0..4)
                .map(|k| (i - 1 + k).clamp(0, last) as usize)
                .collect();
            (idx, vec![cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)])
        })
        .collect()
}

/// Separable interpolation over the last `taps.len()` dims: outer dims weight the
/// interpolated inner ones (`Σ_i w_i · (Σ_j w_j · x[i, j])`, in tap order, as ATen).
fn interpolate(x: &Tensor, taps: &[Taps]) -> Result<Tensor> {
    let r = x.rank();
    let n = taps.len();
    let Some(first) = taps.first() else {
        return Ok(x.clone());
    };
    let d = r - n;
    let dev = x.device();
    let ntaps = first.first().map_or(0, |t| t.0.len());
    // Weights of this dim shaped to broadcast over the remaining dims.
    let mut wshape = vec![first.len()];
    wshape.extend(std::iter::repeat_n(1, n - 1));
    let mut acc: Option<Tensor> = None;
    for k in 0..ntaps {
        let idx: Vec<i64> = first.iter().map(|t| t.0[k] as i64).collect();
        let w: Vec<f32> = first.iter().map(|t| t.1[k]).collect();
        let xs = x.contiguous()?.index_select(&idx_tensor(idx, dev)?, d)?;
        let inner = interpolate(&xs, &taps[1..])?;
        let w = Tensor::from_vec(w, wshape.as_slice(), dev)?.to_dtype(x.dtype())?;
        let term = inner.broadcast_mul(&w)?;
        acc = Some(match acc {
            None => term,
            Some(a) => (a + term)?,
        });
    }
    acc.ok_or_else(|| super::super::super::GraphError::msg("interpolation without taps"))
}

#[derive(Clone, Copy)]
pub(super) enum Interp {
    Linear,
    Cubic,
}

/// `upsample_linear1d`, `upsample_bilinear2d`, `upsample_bicubic2d`, `upsample_trilinear3d`
/// (`.vec` and `.default`), `align_corners` either way.
pub(super) fn upsample_interp(a: &Args, n: usize, mode: Interp) -> Result<Vec<Value>> {
    let x = if a.has("input") {
        a.tensor("input")?
    } else {
        a.tensor("self")?
    };
    if !x.dt.is_float() {
        return Err(a.err("interpolation takes floating tensors"));
    }
    let align = a.bool_or("align_corners", false)?;
    let (sizes, scales) = upsample_sizes(a, &x.t, n)?;
    let xt = x.t.to_dtype(opmath(x.dt))?;
    let r = xt.rank();
    let ins = &xt.dims()[r - n..];
    if ins.contains(&0) || sizes.contains(&0) {
        return Err(a.err("empty spatial dims cannot be interpolated"));
    }
    let taps: Vec<Taps> = (0..n)
        .map(|i| match mode {
            Interp::Linear => linear_taps(ins[i], sizes[i], align, scales[i]),
            Interp::Cubic => cubic_taps(ins[i], sizes[i], align, scales[i]),
        })
        .collect();
    one(back(interpolate(&xt, &taps)?, x.dt)?)
}

/// `constant_pad_nd(self, pad, value=0)`: pairs from the last dim back; negative pads crop.
fn constant_pad(a: &Args, x: &Tv, pad: &[i64], value: f64) -> Result<Tv> {
    if !pad.len().is_multiple_of(2) || pad.len() / 2 > x.rank() {
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
    if !pad.len().is_multiple_of(2) || pad.len() / 2 > x.rank() {
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
        t = t
            .contiguous()?
            .index_select(&idx_tensor(idx, t.device())?, d)?;
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
