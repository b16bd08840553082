//! Load-time folding of an eval-mode `BatchNorm2d` into the convolution before it, for any conv
//! model: `BN(conv(x, W) + b) = conv(x, W·s) + (b − μ)·s + β` with `s = γ / √(σ² + ε)` per
//! output channel. Computed once in f64 and cast to the model's dtype, so the folded network
//! runs one convolution and one bias add where PyTorch runs a convolution and a normalisation.

use candle_core::{bail, DType, Result, Tensor};

/// The running statistics and affine parameters of an eval-mode `nn.BatchNorm2d`, `[C]` each.
#[derive(Debug, Clone)]
pub struct BatchNormStats<'a> {
    /// `weight` (γ).
    pub gamma: &'a Tensor,
    /// `bias` (β).
    pub beta: &'a Tensor,
    /// `running_mean` (μ).
    pub mean: &'a Tensor,
    /// `running_var` (σ²).
    pub var: &'a Tensor,
    /// `eps` (torchvision: 1e-5).
    pub eps: f64,
}

/// Folds `bn` into a convolution with weight `conv_w` (`[C_out, C_in, kH, kW]`) and optional
/// bias `conv_b` (`[C_out]`); returns the folded weight and bias as `dtype`, on the weight's
/// device. The arithmetic is done in f64 whatever the input dtypes.
pub fn fold_batch_norm(
    conv_w: &Tensor,
    conv_b: Option<&Tensor>,
    bn: &BatchNormStats,
    dtype: DType,
) -> Result<(Tensor, Tensor)> {
    let c = conv_w.dim(0)?;
    for (what, t) in [
        ("weight", bn.gamma),
        ("bias", bn.beta),
        ("running_mean", bn.mean),
        ("running_var", bn.var),
    ] {
        if t.dims() != [c] {
            bail!(
                "batch norm {what} has shape {:?}, the convolution has {c} output channels",
                t.dims()
            );
        }
    }
    let f = |t: &Tensor| t.to_dtype(DType::F64);
    let scale = f(bn.gamma)?.div(&(f(bn.var)? + bn.eps)?.sqrt()?)?;
    let mut shape = vec![c];
    shape.extend(std::iter::repeat_n(1, conv_w.rank().saturating_sub(1)));
    let w = f(conv_w)?.broadcast_mul(&scale.reshape(shape)?)?;
    let b = match conv_b {
        Some(b) => f(b)?,
        None => Tensor::zeros(c, DType::F64, conv_w.device())?,
    };
    let b = ((b - f(bn.mean)?)?.mul(&scale)? + f(bn.beta)?)?;
    Ok((w.to_dtype(dtype)?, b.to_dtype(dtype)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use torchless_kernels::testing::seeded;

    /// The unfolded reference: conv, then `(y − μ)/√(σ² + ε)·γ + β` as PyTorch's eval BN.
    fn conv_bn(x: &Tensor, w: &Tensor, b: &Tensor, bn: &BatchNormStats) -> Result<Tensor> {
        let c = w.dim(0)?;
        let r = |t: &Tensor| t.reshape((1, c, 1, 1));
        let y = x.conv2d(w, 1, 2, 1, 1)?.broadcast_add(&r(b)?)?;
        let y = y.broadcast_sub(&r(bn.mean)?)?;
        let y = y.broadcast_div(&r(&(bn.var + bn.eps)?.sqrt()?)?)?;
        y.broadcast_mul(&r(bn.gamma)?)?.broadcast_add(&r(bn.beta)?)
    }

    #[test]
    fn folded_conv_matches_conv_then_batch_norm() -> Result<()> {
        let d = Device::Cpu;
        let (cin, cout) = (5, 7);
        let x = seeded(&[2, cin, 9, 11], 1, -1.0, 1.0, DType::F32, &d)?;
        let w = seeded(&[cout, cin, 3, 3], 2, -0.5, 0.5, DType::F32, &d)?;
        let b = seeded(&[cout], 3, -0.5, 0.5, DType::F32, &d)?;
        let gamma = seeded(&[cout], 4, 0.5, 1.5, DType::F32, &d)?;
        let beta = seeded(&[cout], 5, -0.5, 0.5, DType::F32, &d)?;
        let mean = seeded(&[cout], 6, -0.3, 0.3, DType::F32, &d)?;
        let var = seeded(&[cout], 7, 0.01, 2.0, DType::F32, &d)?;
        let bn = BatchNormStats {
            gamma: &gamma,
            beta: &beta,
            mean: &mean,
            var: &var,
            eps: 1e-5,
        };
        let want = conv_bn(&x, &w, &b, &bn)?;
        for conv_b in [Some(&b), None] {
            let (fw, fb) = fold_batch_norm(&w, conv_b, &bn, DType::F32)?;
            let got = x
                .conv2d(&fw, 1, 2, 1, 1)?
                .broadcast_add(&fb.reshape((1, cout, 1, 1))?)?;
            let want = match conv_b {
                Some(_) => want.clone(),
                None => conv_bn(&x, &w, &b.zeros_like()?, &bn)?,
            };
            let err = (got - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let scale = want.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(
                err <= 1e-5 * scale.max(1.0),
                "max error {err} (scale {scale})"
            );
        }
        Ok(())
    }

    #[test]
    fn mismatching_channel_counts_are_refused() -> Result<()> {
        let d = Device::Cpu;
        let w = Tensor::zeros((4, 3, 1, 1), DType::F32, &d)?;
        let s = Tensor::ones(3, DType::F32, &d)?;
        let bn = BatchNormStats {
            gamma: &s,
            beta: &s,
            mean: &s,
            var: &s,
            eps: 1e-5,
        };
        let e = fold_batch_norm(&w, None, &bn, DType::F32).unwrap_err();
        assert!(e.to_string().contains("4 output channels"), "{e}");
        Ok(())
    }
}
