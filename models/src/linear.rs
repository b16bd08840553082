//! `nn.Linear` with the weight transposed once at load (`[in, out]`, contiguous), so the hot
//! path is a plain row-major matmul; the bias is applied by the caller's fused epilogue.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use torchless_kernels::activation::{bias_act, Activation};

/// A linear layer: `y = x·Wᵀ + b` as `torch.nn.Linear`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `Wᵀ`, `[in, out]`.
    pub weight_t: Tensor,
    /// `b`, `[out]`.
    pub bias: Option<Tensor>,
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
        Ok(Linear {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    /// Builds from a weight already laid out `[in, out]` (GPT-2's `Conv1D`).
    pub fn from_transposed(weight_t: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight_t, bias }
    }

    /// Concatenates several linears with the same input (Q, K, V) into one.
    pub fn concat(parts: &[Linear]) -> Result<Self> {
        let ws: Vec<&Tensor> = parts.iter().map(|l| &l.weight_t).collect();
        let bias = if parts.iter().all(|l| l.bias.is_some()) {
            let bs: Vec<&Tensor> = parts.iter().filter_map(|l| l.bias.as_ref()).collect();
            Some(Tensor::cat(&bs, 0)?)
        } else {
            None
        };
        Ok(Linear {
            weight_t: Tensor::cat(&ws, 1)?.contiguous()?,
            bias,
        })
    }

    /// Output features.
    pub fn out_dim(&self) -> Result<usize> {
        self.weight_t.dim(1)
    }

    /// `x·Wᵀ` without the bias, for any leading dims.
    pub fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("linear: a 0-d input");
        };
        let rows: usize = lead.iter().product();
        let y = x.reshape((rows, k))?.matmul(&self.weight_t)?;
        let mut out = lead.to_vec();
        out.push(self.weight_t.dim(1)?);
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
