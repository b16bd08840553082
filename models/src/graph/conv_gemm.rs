//! A 2-D convolution as one GEMM, prepared at load (the compile step's conv fusion): the
//! weight is stored `[C_out, k·k·C_in]` in `(kh, kw, c)` order; the input is viewed `[C, N,
//! H, W]` so the column matrix `[k·k·C_in, N·H'·W']` is gathered once and the product already
//! has one row per output channel, with the bias (BatchNorm folded in) and a following ReLU
//! applied to it. The layout `torchless_models::resnet` uses, for any NCHW program: candle's
//! CPU `conv2d` repacks the kernel and tiles the pixels on every call.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use torchless_kernels::activation::Activation;
use torchless_kernels::gemm::conv::{conv2d_cnhw, PackedConv};

/// The prepared convolution.
#[derive(Debug, Clone)]
pub(super) struct ConvGemm {
    /// `[C_out, k·k·C_in]` (`(kh, kw, c)` order) for the column-matrix path (half precision,
    /// CUDA); `None` when the filters are packed.
    weight: Option<Tensor>,
    /// f32 CPU filters packed for the implicit-GEMM convolution (no column matrix).
    packed: Option<Arc<PackedConv>>,
    bias: Tensor,
    bias_f32: Vec<f32>,
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
        let packed = (w.dtype() == DType::F32 && w.device().is_cpu())
            .then(|| PackedConv::new(w, (stride, stride), (padding, padding)))
            .transpose()?;
        let weight = match packed {
            Some(_) => None,
            None => Some(
                w.permute((0, 2, 3, 1))?
                    .contiguous()?
                    .reshape((c_out, kh * kw * c_in))?,
            ),
        };
        Ok(ConvGemm {
            weight,
            packed: packed.map(Arc::new),
            bias_f32: bias.to_dtype(DType::F32)?.to_vec1::<f32>()?,
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
        let cnhw = x.permute((1, 0, 2, 3))?;
        if let Some(p) = &self.packed {
            if x.device().is_cpu() && x.dtype() == DType::F32 {
                let act = self.relu.then_some(Activation::Relu);
                return conv2d_cnhw(&cnhw, p, Some(&self.bias_f32), None, act)?
                    .permute((1, 0, 2, 3));
            }
        }
        let Some(weight) = &self.weight else {
            candle_core::bail!(
                "conv_gemm: f32 CPU filters for a {:?} {:?} input",
                x.dtype(),
                x.device()
            );
        };
        let (cols, oh, ow) =
            crate::columns::cnhw_columns(&cnhw, self.k, self.stride, self.padding)?;
        let y = weight.matmul(&cols)?.broadcast_add(&self.bias)?;
        let y = if self.relu { y.relu()? } else { y };
        y.reshape((self.c_out, n, oh, ow))?.permute((1, 0, 2, 3))
    }
}
