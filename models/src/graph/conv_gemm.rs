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

    /// `conv(x) + b` (then ReLU) on an NCHW input; the result is an NCHW view of a
    /// `[C_out, N, H', W']` tensor.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, _, _) = x.dims4()?;
        if c != self.c_in {
            candle_core::bail!("the input has {c} channels, the weight {}", self.c_in);
        }
        let (cols, oh, ow) = crate::columns::cnhw_columns(
            &x.permute((1, 0, 2, 3))?,
            self.k,
            self.stride,
            self.padding,
        )?;
        let y = self.weight.matmul(&cols)?.broadcast_add(&self.bias)?;
        let y = if self.relu { y.relu()? } else { y };
        y.reshape((self.c_out, n, oh, ow))?.permute((1, 0, 2, 3))
    }
}
