//! One trait for every fused op with 1 to 3 tensor inputs and one output, and the candle
//! `CustomOp1/2/3` implementations that forward to it (applied with `apply_op*_no_bwd`).

use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
};

/// A fused op over a list of contiguous inputs.
pub(crate) trait FusedOp: Send + Sync {
    /// The op's name in errors.
    const NAME: &'static str;

    /// The CPU path.
    fn cpu(&self, inputs: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)>;

    /// The CUDA path.
    #[cfg(feature = "cuda")]
    fn cuda(
        &self,
        inputs: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<(candle_core::CudaStorage, Shape)>;
}

struct Fused<'a, F>(&'a F);

impl<F: FusedOp> CustomOp1 for Fused<'_, F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.cpu(&[(s, l)])
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.0.cuda(&[(s, l)])
    }
}

impl<F: FusedOp> CustomOp2 for Fused<'_, F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0.cpu(&[(s1, l1), (s2, l2)])
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.0.cuda(&[(s1, l1), (s2, l2)])
    }
}

impl<F: FusedOp> CustomOp3 for Fused<'_, F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.0.cpu(&[(s1, l1), (s2, l2), (s3, l3)])
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.0.cuda(&[(s1, l1), (s2, l2), (s3, l3)])
    }
}

/// Applies `op` to 1–3 inputs (made contiguous first).
pub(crate) fn apply<F: FusedOp>(op: &F, inputs: &[&Tensor]) -> Result<Tensor> {
    let c: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.contiguous())
        .collect::<Result<_>>()?;
    match c.as_slice() {
        [a] => a.apply_op1_no_bwd(&Fused(op)),
        [a, b] => a.apply_op2_no_bwd(b, &Fused(op)),
        [a, b, c] => a.apply_op3_no_bwd(b, c, &Fused(op)),
        _ => bail!("{}: {} inputs (1 to 3 supported)", F::NAME, inputs.len()),
    }
}

/// Whether every tensor has the first one's float dtype (f32, f16 or bf16) and device.
pub(crate) fn same_float_dtype(ts: &[&Tensor]) -> bool {
    let Some(first) = ts.first() else {
        return false;
    };
    matches!(
        first.dtype(),
        candle_core::DType::F32 | candle_core::DType::F16 | candle_core::DType::BF16
    ) && ts
        .iter()
        .all(|t| t.dtype() == first.dtype() && t.device().same_device(first.device()))
}

/// Implements [`FusedOp`] for an op whose inherent generic methods compute it: `$cpu::<T>` on
/// the CPU and `cuda_t::<T>` on CUDA, `T` being the float dtype of input `$input`.
macro_rules! fused_op {
    ($ty:ty, $name:literal, input = $input:literal, cpu = $cpu:ident) => {
        impl $crate::op::FusedOp for $ty {
            const NAME: &'static str = $name;

            fn cpu(
                &self,
                ins: &[(&candle_core::CpuStorage, &candle_core::Layout)],
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                $crate::cpu::dispatch_float!(ins[$input].0, $name, |T| self.$cpu::<T>(ins))
            }

            #[cfg(feature = "cuda")]
            fn cuda(
                &self,
                ins: &[(&candle_core::CudaStorage, &candle_core::Layout)],
            ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
                use candle_core::backend::BackendStorage;
                $crate::cuda::dispatch_float_cuda!(ins[$input].0.dtype(), $name, |T| self
                    .cuda_t::<T>(ins))
            }
        }
    };
}
pub(crate) use fused_op;
