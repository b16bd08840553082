//! Convolutions (1-D, 2-D and 3-D, plain and transposed) on candle's kernels.
//!
//! candle takes one padding, stride and dilation for all spatial dims and pads symmetrically:
//! unequal paddings are applied to the input first (plain) or cropped from the output
//! (transposed), unequal strides run at stride 1 and subsample (plain) or dilate the input
//! with zeros (transposed). Unequal dilations run as a sum over kernel rows (plain) or are
//! refused (transposed). Transposed groups run per group; 3-D convolutions are sums of 2-D
//! ones over depth taps.

use candle_core::Tensor;

use super::super::super::args::Args;
use super::super::super::value::Value;
use super::super::{one, Result};
use super::{back, float_in, idx_tensor, opt_as, spatial, usize_of};

struct Params {
    stride: Vec<usize>,
    /// (left, right) per spatial dim.
    pad: Vec<(usize, usize)>,
    dilation: Vec<usize>,
    output_padding: Vec<usize>,
    groups: usize,
}

fn uniform(v: &[usize]) -> Option<usize> {
    let f = *v.first()?;
    v.iter().all(|&x| x == f).then_some(f)
}

fn to_us(a: &Args, what: &str, v: Vec<i64>) -> Result<Vec<usize>> {
    v.into_iter().map(|x| usize_of(a, what, x)).collect()
}

/// `convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding,
/// groups)` and `_convolution` (the same first nine arguments).
pub(super) fn convolution(a: &Args) -> Result<Vec<Value>> {
    let w = a.tensor("weight")?;
    let n = w.rank().saturating_sub(2);
    let transposed = a.bool_or("transposed", false)?;
    let p = Params {
        stride: to_us(a, "stride", spatial(a, "stride", n, 1)?)?,
        pad: to_us(a, "padding", spatial(a, "padding", n, 0)?)?
            .into_iter()
            .map(|p| (p, p))
            .collect(),
        dilation: to_us(a, "dilation", spatial(a, "dilation", n, 1)?)?,
        output_padding: to_us(a, "output_padding", spatial(a, "output_padding", n, 0)?)?,
        groups: usize_of(a, "groups", a.int_or("groups", 1)?)?,
    };
    run(a, n, transposed, &p)
}

/// `conv1d` / `conv2d` (int-list padding or the `"same"` / `"valid"` strings).
pub(super) fn conv_nd(a: &Args, n: usize) -> Result<Vec<Value>> {
    let stride = to_us(a, "stride", spatial(a, "stride", n, 1)?)?;
    let dilation = to_us(a, "dilation", spatial(a, "dilation", n, 1)?)?;
    let pad = match a.value("padding").ok() {
        Some(Value::Str(s)) => match s.as_str() {
            "valid" => vec![(0, 0); n],
            "same" => {
                if stride.iter().any(|&s| s != 1) {
                    return Err(a.err("padding='same' needs stride 1"));
                }
                let w = a.tensor("weight")?;
                let ks = &w.dims()[w.rank().saturating_sub(n)..];
                ks.iter()
                    .zip(&dilation)
                    .map(|(&k, &d)| {
                        let total = d * (k.max(1) - 1);
                        (total / 2, total - total / 2)
                    })
                    .collect()
            }
            other => return Err(a.err(format!("padding {other:?} is not 'same' or 'valid'"))),
        },
        _ => to_us(a, "padding", spatial(a, "padding", n, 0)?)?
            .into_iter()
            .map(|p| (p, p))
            .collect(),
    };
    let p = Params {
        stride,
        pad,
        dilation,
        output_padding: vec![0; n],
        groups: usize_of(a, "groups", a.int_or("groups", 1)?)?,
    };
    run(a, n, false, &p)
}

/// `conv_transpose1d` / `conv_transpose2d.input`.
pub(super) fn conv_transpose_nd(a: &Args, n: usize) -> Result<Vec<Value>> {
    let p = Params {
        stride: to_us(a, "stride", spatial(a, "stride", n, 1)?)?,
        pad: to_us(a, "padding", spatial(a, "padding", n, 0)?)?
            .into_iter()
            .map(|p| (p, p))
            .collect(),
        dilation: to_us(a, "dilation", spatial(a, "dilation", n, 1)?)?,
        output_padding: to_us(a, "output_padding", spatial(a, "output_padding", n, 0)?)?,
        groups: usize_of(a, "groups", a.int_or("groups", 1)?)?,
    };
    run(a, n, true, &p)
}

fn run(a: &Args, n: usize, transposed: bool, p: &Params) -> Result<Vec<Value>> {
    let (x, dt) = float_in(a, "input")?;
    let w = a.tensor("weight")?.t.to_dtype(x.dtype())?;
    if !(1..=3).contains(&n) {
        return Err(a.err(format!(
            "{n}-D convolution is not supported (1-D, 2-D and 3-D are)"
        )));
    }
    if p.groups == 0 || p.stride.contains(&0) || p.dilation.contains(&0) {
        return Err(a.err("groups, stride and dilation must be positive"));
    }
    // Unbatched input: add the batch dim.
    let unbatched = x.rank() == n + 1;
    let x = if unbatched { x.unsqueeze(0)? } else { x };
    if x.rank() != n + 2 || w.rank() != n + 2 {
        return Err(a.err(format!(
            "input {:?} and weight {:?} do not fit a {n}-D convolution",
            x.dims(),
            w.dims()
        )));
    }
    let mut y = if transposed {
        let Some(dil) = uniform(&p.dilation[n.saturating_sub(2)..]) else {
            return Err(a.err(format!(
                "unequal dilations {:?} are not supported in transposed convolutions",
                p.dilation
            )));
        };
        if n == 3 {
            conv_transpose3d(a, &x, &w, dil, p)?
        } else {
            transposed_conv(a, &x, &w, n, dil, p)?
        }
    } else if n == 3 {
        conv3d(a, &x, &w, p)?
    } else {
        plain_conv(a, &x, &w, n, p)?
    };
    if let Some(b) = opt_as(a, "bias", y.dtype())? {
        let mut shape = vec![1usize; n + 2];
        shape[1] = b.elem_count();
        y = y.broadcast_add(&b.reshape(shape)?)?;
    }
    let y = if unbatched { y.squeeze(0)? } else { y };
    one(back(y, dt)?)
}

fn plain_conv(a: &Args, x: &Tensor, w: &Tensor, n: usize, p: &Params) -> Result<Tensor> {
    if n == 2 && p.dilation[0] != p.dilation[1] {
        return conv2d_by_rows(a, x, w, p);
    }
    let dil = p.dilation[0];
    let c_in = x.dims()[1];
    if c_in != w.dims()[1] * p.groups {
        return Err(a.err(format!(
            "input has {c_in} channels, weight {:?} with groups {} expects {}",
            w.dims(),
            p.groups,
            w.dims()[1] * p.groups
        )));
    }
    let sym = p.pad.iter().all(|&(l, r)| l == r)
        && uniform(&p.pad.iter().map(|x| x.0).collect::<Vec<_>>()).is_some();
    let (x, pad) = if sym {
        (x.clone(), p.pad[0].0)
    } else {
        let mut x = x.clone();
        for (i, &(l, r)) in p.pad.iter().enumerate() {
            x = x.pad_with_zeros(2 + i, l, r)?;
        }
        (x, 0)
    };
    let stride = uniform(&p.stride);
    let s = stride.unwrap_or(1);
    let y = if n == 1 {
        x.conv1d(w, pad, s, dil, p.groups)?
    } else {
        x.conv2d(w, pad, s, dil, p.groups)?
    };
    if stride.is_some() {
        return Ok(y);
    }
    // Unequal strides: subsample the stride-1 result.
    let mut y = y;
    for (i, &s) in p.stride.iter().enumerate() {
        let len = y.dims()[2 + i];
        let idx: Vec<i64> = (0..len).step_by(s).map(|v| v as i64).collect();
        y = y
            .contiguous()?
            .index_select(&idx_tensor(idx, y.device())?, 2 + i)?;
    }
    Ok(y)
}

/// A 2-D convolution with unequal H and W dilations: a sum over the kernel's rows of
/// convolutions with one-row kernels (whose W dilation is then the only one).
fn conv2d_by_rows(a: &Args, x: &Tensor, w: &Tensor, p: &Params) -> Result<Tensor> {
    let mut xp = x.clone();
    for (i, &(l, r)) in p.pad.iter().enumerate() {
        xp = xp.pad_with_zeros(2 + i, l, r)?;
    }
    let (kh, dh) = (w.dims()[2], p.dilation[0]);
    let hp = xp.dims()[2];
    let reach = dh * (kh.max(1) - 1);
    if hp <= reach {
        return Err(a.err(format!(
            "input height {hp} (padded) is smaller than the dilated kernel's {}",
            reach + 1
        )));
    }
    let rows = Params {
        stride: p.stride.clone(),
        pad: vec![(0, 0); 2],
        dilation: vec![p.dilation[1]; 2],
        output_padding: vec![0, 0],
        groups: p.groups,
    };
    let mut acc: Option<Tensor> = None;
    for k in 0..kh {
        let xs = xp.narrow(2, k * dh, hp - reach)?.contiguous()?;
        let ws = w.narrow(2, k, 1)?.contiguous()?;
        let y = plain_conv(a, &xs, &ws, 2, &rows)?;
        acc = Some(match acc {
            None => y,
            Some(s) => (s + y)?,
        });
    }
    acc.ok_or_else(|| a.err("empty kernel"))
}

/// A 3-D convolution as a sum over depth taps of 2-D convolutions of depth slices.
fn conv3d(a: &Args, x: &Tensor, w: &Tensor, p: &Params) -> Result<Tensor> {
    let (pl, pr) = p.pad[0];
    let (sd, dd) = (p.stride[0], p.dilation[0]);
    let kd = w.dims()[2];
    let x = x.pad_with_zeros(2, pl, pr)?;
    let depth = x.dims()[2];
    let span = dd * (kd.max(1) - 1) + 1;
    if depth < span {
        return Err(a.err(format!(
            "input depth {depth} (padded) is smaller than the kernel's {span}"
        )));
    }
    let od = (depth - span) / sd + 1;
    let p2 = Params {
        stride: p.stride[1..].to_vec(),
        pad: p.pad[1..].to_vec(),
        dilation: p.dilation[1..].to_vec(),
        output_padding: vec![0, 0],
        groups: p.groups,
    };
    let mut planes = Vec::with_capacity(od);
    for o in 0..od {
        let mut acc: Option<Tensor> = None;
        for k in 0..kd {
            let xs = x.narrow(2, o * sd + k * dd, 1)?.squeeze(2)?.contiguous()?;
            let ws = w.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
            let y = plain_conv(a, &xs, &ws, 2, &p2)?;
            acc = Some(match acc {
                None => y,
                Some(s) => (s + y)?,
            });
        }
        let plane = acc.ok_or_else(|| a.err("empty kernel"))?;
        planes.push(plane.unsqueeze(2)?);
    }
    Ok(Tensor::cat(&planes, 2)?)
}

/// A 3-D transposed convolution: each (input plane, depth tap) pair adds a 2-D transposed
/// convolution to output plane `i * stride + k * dilation`; the depth padding is cropped
/// and the output padding added as in [`transposed_conv`].
fn conv_transpose3d(a: &Args, x: &Tensor, w: &Tensor, dil: usize, p: &Params) -> Result<Tensor> {
    let (sd, dd) = (p.stride[0], p.dilation[0]);
    let (id, kd) = (x.dims()[2], w.dims()[2]);
    if id == 0 || kd == 0 {
        return Err(a.err("empty input depth or kernel depth"));
    }
    let p2 = Params {
        stride: p.stride[1..].to_vec(),
        pad: p.pad[1..].to_vec(),
        dilation: p.dilation[1..].to_vec(),
        output_padding: p.output_padding[1..].to_vec(),
        groups: p.groups,
    };
    let full = (id - 1) * sd + dd * (kd - 1) + 1;
    let mut planes: Vec<Option<Tensor>> = vec![None; full];
    for i in 0..id {
        let xs = x.narrow(2, i, 1)?.squeeze(2)?.contiguous()?;
        for k in 0..kd {
            let ws = w.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
            let y = transposed_conv(a, &xs, &ws, 2, dil, &p2)?;
            let slot = &mut planes[i * sd + k * dd];
            *slot = Some(match slot.take() {
                None => y,
                Some(s) => (s + y)?,
            });
        }
    }
    let Some(shape) = planes.iter().flatten().next().map(|t| t.dims().to_vec()) else {
        return Err(a.err("no output planes"));
    };
    let (pl, pr) = p.pad[0];
    let want = (full + p.output_padding[0])
        .checked_sub(pl + pr)
        .ok_or_else(|| a.err(format!("padding {:?} is larger than the output", p.pad)))?;
    let zeros = Tensor::zeros(shape.as_slice(), x.dtype(), x.device())?;
    let out: Vec<Tensor> = (pl..pl + want)
        .map(|d| {
            planes
                .get(d)
                .and_then(|t| t.clone())
                .unwrap_or_else(|| zeros.clone())
                .unsqueeze(2)
        })
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&out, 2)?)
}

/// Inserts `s - 1` zeros between the elements of dim `d`.
fn dilate_zeros(x: &Tensor, d: usize, s: usize) -> Result<Tensor> {
    if s == 1 {
        return Ok(x.clone());
    }
    let len = x.dims()[d];
    let xs = x.unsqueeze(d + 1)?;
    let mut zshape = xs.dims().to_vec();
    zshape[d + 1] = s - 1;
    let z = Tensor::zeros(zshape, x.dtype(), x.device())?;
    let t = Tensor::cat(&[&xs, &z], d + 1)?;
    let mut shape = x.dims().to_vec();
    shape[d] = len * s;
    Ok(t.reshape(shape)?.narrow(d, 0, (len - 1) * s + 1)?)
}

fn transposed_conv(
    a: &Args,
    x: &Tensor,
    w: &Tensor,
    n: usize,
    dil: usize,
    p: &Params,
) -> Result<Tensor> {
    let (c_in, g) = (x.dims()[1], p.groups);
    if w.dims()[0] != c_in || c_in % g != 0 {
        return Err(a.err(format!(
            "input has {c_in} channels, weight is {:?} with groups {g}",
            w.dims()
        )));
    }
    let stride = uniform(&p.stride);
    let mut x = x.clone();
    let s = match stride {
        Some(s) => s,
        None => {
            for (i, &s) in p.stride.iter().enumerate() {
                x = dilate_zeros(&x, 2 + i, s)?;
            }
            1
        }
    };
    let xs = x.chunk(g, 1)?;
    let ws = w.chunk(g, 0)?;
    let mut outs = Vec::with_capacity(g);
    for (xg, wg) in xs.iter().zip(&ws) {
        let (xg, wg) = (xg.contiguous()?, wg.contiguous()?);
        outs.push(if n == 1 {
            xg.conv_transpose1d(&wg, 0, 0, s, dil, 1)?
        } else {
            xg.conv_transpose2d(&wg, 0, 0, s, dil)?
        });
    }
    let mut y = if outs.len() == 1 {
        outs.remove(0)
    } else {
        Tensor::cat(&outs, 1)?
    };
    // Output size (in-1)*s - 2p + d*(k-1) + output_padding + 1: crop the padding, extend by
    // the output padding.
    for i in 0..n {
        let (pl, pr) = p.pad[i];
        let op = p.output_padding[i];
        let full = y.dims()[2 + i];
        let want = (full + op)
            .checked_sub(pl + pr)
            .ok_or_else(|| a.err(format!("padding {:?} is larger than the output", p.pad)))?;
        let extra = (pl + want).saturating_sub(full);
        if extra > 0 {
            y = y.pad_with_zeros(2 + i, 0, extra)?;
        }
        y = y.narrow(2 + i, pl, want)?;
    }
    Ok(y)
}
