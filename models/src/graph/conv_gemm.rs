//! A 2-D convolution as one GEMM, prepared at load (the compile step's conv fusion): the
//! weight is stored `[C_out, k·k·C_in]` in `(kh, kw, c)` order; the input is viewed `[C, N,
//! H, W]` so the column matrix `[k·k·C_in, N·H'·W']` is gathered once and the product already
//! has one row per output channel, with the bias (BatchNorm folded in) and a following ReLU
//! applied to it. The layout `torchless_models::resnet` uses, for any NCHW program: candle's
//! CPU `conv2d` repacks the kernel and tiles the pixels on every call.

use candle_core::{Result, Tensor};

/// The prepared convolution.
#[derive(Debug, Clone)]
pub(super) struct ConvGemm {
    weight: Tensor,
    bias: Tensor,
    c_out: usize,
    c_in: usize,
    k: usize,
    stride: usize,
    padding: usize,
    /// `relu(conv(x) + b)`.
    pub relu: bool,
}

impl ConvGemm {
    /// From a `[C_out, C_in, k, k]` weight and a `[C_out]` bias.
    pub fn new(w: &Tensor, bias: &Tensor, stride: usize, padding: usize) -> Result<ConvGemm> {
        let (c_out, c_in, kh, kw) = w.dims4()?;
        if kh != kw {
            candle_core::bail!("conv_gemm: a {kh}x{kw} kernel is not square");
        }
        Ok(ConvGemm {
            weight: w
                .permute((0, 2, 3, 1))?
                .contiguous()?
                .reshape((c_out, kh * kw * c_in))?,
            bias: bias.reshape((c_out, 1))?,
            c_out,
            c_in,
            k: kh,
            stride,
            padding,
            relu: false,
        })
    }

    /// The column matrix of a `[C, N, H, W]` view and `(H', W')`.
    fn columns(&self, x: &Tensor) -> Result<(Tensor, usize, usize)> {
        let (c, n, h, w) = x.dims4()?;
        let (k, s, p) = (self.k, self.stride, self.padding);
        if h + 2 * p < k || w + 2 * p < k {
            candle_core::bail!("a {h}x{w} input is smaller than a {k}x{k} kernel");
        }
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        if k == 1 && s == 1 && p == 0 {
            return Ok((x.contiguous()?.reshape((c, n * h * w))?, h, w));
        }
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
        let cols = Tensor::stack(&taps, 0)?.reshape((k * k * c, n * oh * ow))?;
        Ok((cols, oh, ow))
    }

    /// `conv(x) + b` (then ReLU) on an NCHW input; the result is an NCHW view of a
    /// `[C_out, N, H', W']` tensor.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, _, _) = x.dims4()?;
        if c != self.c_in {
            candle_core::bail!("the input has {c} channels, the weight {}", self.c_in);
        }
        let (cols, oh, ow) = self.columns(&x.permute((1, 0, 2, 3))?)?;
        let y = self.weight.matmul(&cols)?.broadcast_add(&self.bias)?;
        let y = if self.relu { y.relu()? } else { y };
        y.reshape((self.c_out, n, oh, ow))?.permute((1, 0, 2, 3))
    }
}
