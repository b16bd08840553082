//! The column matrix of a square-kernel convolution over a `[C, N, H, W]` input: one row per
//! `(kh, kw, c)` tap, one column per output pixel, so a convolution is one matrix product
//! `W [C_out, k·k·C_in] × cols` whose result already has one row per output channel. Shared
//! by the hand-written ResNet ([`crate::resnet`]) and the graph runtime's convolution.

use candle_core::{bail, Result, Tensor};

/// `cols [k·k·C, N·H'·W']` (rows in `(kh, kw, c)` order) and `(H', W')` for kernel `k`,
/// stride `s` and zero padding `p`. A 1×1 stride-1 unpadded kernel reads the input as is
/// (copied only when it is a non-contiguous view); other kernels gather their `k·k` shifted
/// and strided windows once.
pub(crate) fn cnhw_columns(
    x: &Tensor,
    k: usize,
    s: usize,
    p: usize,
) -> Result<(Tensor, usize, usize)> {
    let (c, n, h, w) = x.dims4()?;
    if h + 2 * p < k || w + 2 * p < k {
        bail!("a {h}x{w} input is smaller than a {k}x{k} kernel");
    }
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    if k == 1 && s == 1 && p == 0 {
        return Ok((x.contiguous()?.reshape((c, n * h * w))?, h, w));
    }
    // Zero padding, then up to a multiple of the stride so that a window offset `kh` and
    // stride `s` become plain slices of a `[.., H/s, s, ..]` view.
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let (hs, ws) = (hp.div_ceil(s) * s, wp.div_ceil(s) * s);
    let xp = x
        .pad_with_zeros(2, p, p + hs - hp)?
        .pad_with_zeros(3, p, p + ws - wp)?
        .contiguous()?
        .reshape((c, n, hs / s, s, ws / s, s))?;
    let mut taps = Vec::with_capacity(k * k);
    for kh in 0..k {
        for kw in 0..k {
            taps.push(
                xp.narrow(2, kh / s, oh)?
                    .narrow(3, kh % s, 1)?
                    .narrow(4, kw / s, ow)?
                    .narrow(5, kw % s, 1)?
                    .squeeze(5)?
                    .squeeze(3)?,
            );
        }
    }
    // Stacked on a new leading dim: one copy of each view straight into place (a stack on an
    // inner dim would copy twice).
    let cols = Tensor::stack(&taps, 0)?.reshape((k * k * c, n * oh * ow))?;
    Ok((cols, oh, ow))
}
