//! `nn.Linear` with the weight transposed once at load (`[in, out]`, contiguous), so the hot
//! path is a plain row-major matmul; the bias is applied by the caller's fused epilogue.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use torchless_kernels::activation::{bias_act, Activation};
use torchless_kernels::gemm::{self, PackedB};
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
    /// A CPU weight (f32, bf16 or f16, kept in its dtype) packed once for the GEMM
    /// micro-kernels (`kernels/src/gemm`), which compute in f32.
    Packed(Arc<PackedB>),
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
        if let Some(p) = Self::pack(&weight.t()?) {
            // Packed straight from the `[out, in]` layout: no transposed copy first.
            return Ok(Linear {
                weight: Weight::Packed(Arc::new(p)),
                bias,
            });
        }
        Ok(Self::from_transposed(transpose(weight)?, bias))
    }

    /// `Wᵀ` (`[in, out]`, any strides) packed for the CPU GEMM, when it is a CPU f32/bf16/f16
    /// tensor.
    fn pack(weight_t: &Tensor) -> Option<PackedB> {
        let packable = matches!(weight_t.dtype(), DType::F32 | DType::BF16 | DType::F16);
        if weight_t.device().is_cpu() && packable {
            PackedB::from_tensor(weight_t).ok()
        } else {
            None
        }
    }

    /// Builds from a weight already laid out `[in, out]` (GPT-2's `Conv1D`).
    ///
    /// A weight on the CPU (f32, bf16, f16) is packed for the GEMM micro-kernels here (once, at
    /// load); a weight that cannot be packed stays dense.
    pub fn from_transposed(weight_t: Tensor, bias: Option<Tensor>) -> Self {
        let weight = match Self::pack(&weight_t) {
            Some(p) => Weight::Packed(Arc::new(p)),
            None => Weight::Dense(weight_t),
        };
        Linear { weight, bias }
    }

    /// `Wᵀ`, `[in, out]`, as a plain tensor (load-time passes that concatenate or convert
    /// weights; the forward paths never call it).
    pub fn weight_t(&self) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(w) => Ok(w.clone()),
            Weight::Packed(p) => p.to_tensor(),
            Weight::Int8(q, dtype) => q.dequantize_tensor()?.t()?.contiguous()?.to_dtype(*dtype),
        }
    }

    /// Replaces the weight by its int8 quantization ([`Int8Matrix`]: symmetric, one scale per
    /// output row); the bias stays as it is. A CPU f32 or bf16 weight only (CUDA and other
    /// dtypes are an error naming them); an int8 weight stays as it is.
    pub fn quantize_int8(&mut self) -> Result<()> {
        let w = match &self.weight {
            Weight::Int8(..) => return Ok(()),
            Weight::Dense(w) if !w.device().is_cpu() => {
                candle_core::bail!(
                    "int8 weights run on the CPU only (this model is on {:?})",
                    w.device()
                )
            }
            Weight::Dense(w) => w.clone(),
            Weight::Packed(p) => p.to_tensor()?,
        };
        if !matches!(w.dtype(), DType::F32 | DType::BF16) {
            candle_core::bail!(
                "int8 quantization takes f32 or bf16 weights, not {:?}",
                w.dtype()
            );
        }
        self.weight = Weight::Int8(Arc::new(Int8Matrix::from_in_out(&w)?), w.dtype());
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
            Weight::Packed(p) => Ok(p.n()),
            Weight::Int8(q, _) => Ok(q.out_dim()),
        }
    }

    /// `x·Wᵀ` without the bias, for any leading dims.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        self.product(x, None, None, None)
    }

    /// `act(x·Wᵀ + bias + residual)` for any leading dims of `x` (`residual` shaped as the
    /// output): fused into the GEMM's epilogue when the weight is packed, separate ops otherwise.
    fn product(
        &self,
        x: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        act: Option<Activation>,
    ) -> Result<Tensor> {
        let dims = x.dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("linear: a 0-d input");
        };
        let rows: usize = lead.iter().product();
        let x2 = x.reshape((rows, k))?;
        let mut out = lead.to_vec();
        out.push(self.out_dim()?);
        match &self.weight {
            Weight::Packed(p) if x.device().is_cpu() => {
                let x2 = x2.to_dtype(DType::F32)?;
                let r2 = residual
                    .map(|r| r.reshape((rows, p.n()))?.to_dtype(DType::F32))
                    .transpose()?;
                let b = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
                gemm::matmul(&x2, p, b.as_ref(), r2.as_ref(), act)?
                    .reshape(out)?
                    .to_dtype(x.dtype())
            }
            Weight::Packed(_) => {
                candle_core::bail!("linear: a packed CPU weight for a {:?} input", x.device())
            }
            Weight::Dense(w) => {
                // One row (a decode step): the weight-streaming product; more: candle's gemm.
                let y = vec_mat(&x2, w)?.reshape(out)?;
                unfused_epilogue(y, bias, residual, act)
            }
            Weight::Int8(q, _) => {
                let y = q.matmul(&x2)?.reshape(out)?;
                unfused_epilogue(y, bias, residual, act)
            }
        }
    }

    /// `x·Wᵀ + b`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.product(x, self.bias.as_ref(), None, None)
    }

    /// `act(x·Wᵀ + b)`, the bias and activation in the product's fused epilogue.
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        self.product(x, self.bias.as_ref(), None, Some(act))
    }

    /// `x·Wᵀ + b + residual` (`residual` shaped as the output), the additions in the product's
    /// fused epilogue: an attention or MLP output projection with its skip connection.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.product(x, self.bias.as_ref(), Some(residual), None)
    }
}

/// `act(y + bias + residual)` as separate ops (the weights the packed GEMM does not hold).
fn unfused_epilogue(
    y: Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    act: Option<Activation>,
) -> Result<Tensor> {
    if let Some(r) = residual {
        let y = match bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let y = (y + r)?;
        return match act {
            Some(a) => bias_act(&y, None, a),
            None => Ok(y),
        };
    }
    match act {
        Some(a) => bias_act(&y, bias, a),
        None => match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        },
    }
}
