//! `nn.Linear` with the weight transposed once at load (`[in, out]`, contiguous), so the hot
//! path is a plain row-major matmul; the bias is applied by the caller's fused epilogue.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use torchless_kernels::activation::{bias_act, Activation};
use torchless_kernels::gemv::vec_mat;
use torchless_kernels::layout::{transpose, transpose_cat};
use torchless_kernels::quant::Int8Matrix;

/// A linear layer: `y = x·Wᵀ + b` as `torch.nn.Linear`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    /// `b`, `[out]`.
    pub bias: Option<Tensor>,
}

/// How a [`Linear`] holds its weight.
#[derive(Debug, Clone)]
enum Weight {
    /// `Wᵀ`, `[in, out]`, contiguous, in the model's dtype and device.
    Dense(Tensor),
    /// `W` in int8 per output channel (`--quantize int8`, CPU only); products in f32, returned
    /// in `dtype` (the model's).
    Int8(Arc<Int8Matrix>, DType),
}

impl Linear {
    /// Loads `weight` `[out, in]` and, if `bias`, `bias` `[out]` from `vb`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let w = vb.get((out_dim, in_dim), "weight")?;
        let b = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Self::from_parts(&w, b)
    }

    /// Builds from a `[out, in]` weight.
    pub fn from_parts(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Self::from_transposed(transpose(weight)?, bias))
    }

    /// Builds from a weight already laid out `[in, out]` (GPT-2's `Conv1D`).
    pub fn from_transposed(weight_t: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight: Weight::Dense(weight_t),
            bias,
        }
    }

    /// `Wᵀ`, `[in, out]`, as a plain tensor (load-time passes that concatenate or convert
    /// weights; the forward paths never call it).
    pub fn weight_t(&self) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(w) => Ok(w.clone()),
            Weight::Int8(q, dtype) => q.dequantize_tensor()?.t()?.contiguous()?.to_dtype(*dtype),
        }
    }

    /// Replaces the weight by its int8 quantization ([`Int8Matrix`]: symmetric, one scale per
    /// output row); the bias stays as it is. A CPU f32 or bf16 weight only (CUDA and other
    /// dtypes are an error naming them); an int8 weight stays as it is.
    pub fn quantize_int8(&mut self) -> Result<()> {
        let q = match &self.weight {
            Weight::Int8(..) => return Ok(()),
            Weight::Dense(w) if !w.device().is_cpu() => {
                candle_core::bail!(
                    "int8 weights run on the CPU only (this model is on {:?})",
                    w.device()
                )
            }
            Weight::Dense(w) if !matches!(w.dtype(), DType::F32 | DType::BF16) => {
                candle_core::bail!(
                    "int8 quantization takes f32 or bf16 weights, not {:?}",
                    w.dtype()
                )
            }
            Weight::Dense(w) => Weight::Int8(Arc::new(Int8Matrix::from_in_out(w)?), w.dtype()),
        };
        self.weight = q;
        Ok(())
    }

    /// Loads several linears with the same input (q/k/v, gate/up) as one: their `[out_i, in]`
    /// weights transposed and concatenated into one `[in, Σout_i]` matrix in a single pass,
    /// their biases (all or none) concatenated. `parts` are `(vb, out_dim)`.
    pub fn load_fused(parts: &[(VarBuilder, usize)], in_dim: usize, bias: bool) -> Result<Self> {
        let ws = parts
            .iter()
            .map(|(vb, out)| vb.get((*out, in_dim), "weight"))
            .collect::<Result<Vec<_>>>()?;
        let bias = if bias {
            let bs = parts
                .iter()
                .map(|(vb, out)| vb.get(*out, "bias"))
                .collect::<Result<Vec<_>>>()?;
            Some(Tensor::cat(&bs, 0)?)
        } else {
            None
        };
        let refs: Vec<&Tensor> = ws.iter().collect();
        Ok(Self::from_transposed(transpose_cat(&refs)?, bias))
    }

    /// Output features.
    pub fn out_dim(&self) -> Result<usize> {
        match &self.weight {
            Weight::Dense(w) => w.dim(1),
            Weight::Int8(q, _) => Ok(q.out_dim()),
        }
    }

    /// `x·Wᵀ` without the bias, for any leading dims.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("linear: a 0-d input");
        };
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, k))?;
        let y = match &self.weight {
            // One row (a decode step): the weight-streaming product; more: candle's gemm.
            Weight::Dense(w) => vec_mat(&x2, w)?,
            Weight::Int8(q, _) => q.matmul(&x2)?,
        };
        let mut out = lead.to_vec();
        out.push(self.out_dim()?);
        y.reshape(out)
    }

    /// `x·Wᵀ + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.matmul(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// `act(x·Wᵀ + b)`, the bias added in the activation's fused epilogue.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        bias_act(&self.matmul(x)?, self.bias.as_ref(), act)
    }
}
