//! Elementwise activations fused with what surrounds them in a transformer MLP: the Linear
//! epilogue `act(x + bias)` (bias over the last dimension, optional) for GELU (erf and tanh
//! forms), ReLU and SiLU, and SwiGLU `silu(gate) * up`, with gate and up either as two tensors
//! or packed in one `[.., 2*I]` tensor (`[gate | up]`, as one fused `gate_up_proj` Linear
//! produces). One read of each input and one write, f32 arithmetic.
//!
//! Mirrors `torch.nn.functional.gelu(x + b)` (`approximate="none"` and `"tanh"`),
//! `torch.relu(x + b)`, `torch.nn.functional.silu(x + b)`, and
//! `gate, up = x.chunk(2, -1); torch.nn.functional.silu(gate) * up`.

use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Tensor, D};

use crate::cpu;
use crate::op::{apply, fused_op, same_float_dtype};
use crate::vmath;
use crate::Elem;

/// `sqrt(2 / pi)`, the scale inside the tanh approximation of GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation of GELU.
const GELU_TANH_C: f32 = 0.044_715;

/// The activation applied after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `0.5·x·(1 + erf(x/√2))`: `torch.nn.functional.gelu(x)` (BERT's `"gelu"`).
    GeluErf,
    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`: `gelu(x, approximate="tanh")`
    /// (GPT-2's `"gelu_new"`).
    GeluTanh,
    /// `max(x, 0)`: `torch.relu`.
    Relu,
    /// `x·sigmoid(x)`: `torch.nn.functional.silu`.
    Silu,
}

#[cfg(feature = "cuda")]
impl Activation {
    /// The kernel family name in `kernels/cuda/activation.cu` (`bias_<name>_<dtype>`).
    fn kernel(self) -> &'static str {
        match self {
            Activation::GeluErf => "bias_gelu_erf",
            Activation::GeluTanh => "bias_gelu_tanh",
            Activation::Relu => "bias_relu",
            Activation::Silu => "bias_silu",
        }
    }
}

impl Activation {
    /// The in-place f32 row function of the CPU paths (this op's and the GEMM epilogue's).
    pub(crate) fn row_fn(self) -> fn(&mut [f32]) {
        match self {
            Activation::GeluErf => act_row_erf,
            Activation::GeluTanh => act_row_tanh,
            Activation::Relu => act_row_relu,
            Activation::Silu => act_row_silu,
        }
    }
}

#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + vmath::erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + vmath::tanh(SQRT_2_OVER_PI * (x + GELU_TANH_C * (x * x * x))))
}

#[inline(always)]
fn relu(x: f32) -> f32 {
    // `x < 0` rather than `max`: NaN stays NaN, as in `torch.relu`.
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    x * vmath::sigmoid(x)
}

vmath::multiversion! {
    /// GELU (erf) of a row in place.
    fn act_row_erf(buf: &mut [f32]) {
        for v in buf.iter_mut() {
            *v = gelu_erf(*v);
        }
    }
}
vmath::multiversion! {
    /// GELU (tanh approximation) of a row in place.
    fn act_row_tanh(buf: &mut [f32]) {
        for v in buf.iter_mut() {
            *v = gelu_tanh(*v);
        }
    }
}
vmath::multiversion! {
    /// ReLU of a row in place.
    fn act_row_relu(buf: &mut [f32]) {
        for v in buf.iter_mut() {
            *v = relu(*v);
        }
    }
}
vmath::multiversion! {
    /// SiLU of a row in place.
    fn act_row_silu(buf: &mut [f32]) {
        for v in buf.iter_mut() {
            *v = silu(*v);
        }
    }
}
vmath::multiversion! {
    /// `g = silu(g) * u` over one row.
    fn swiglu_row(g: &mut [f32], u: &[f32]) {
        for (g, u) in g.iter_mut().zip(u) {
            *g = silu(*g) * u;
        }
    }
}

/// Reference for [`bias_act`]: plain candle ops in f32, the result cast to `x`'s dtype.
pub fn bias_act_reference(x: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    check_bias(x, bias)?;
    let mut v = x.to_dtype(DType::F32)?;
    if let Some(b) = bias {
        v = v.broadcast_add(&b.to_dtype(DType::F32)?)?;
    }
    let y = match act {
        Activation::GeluErf => {
            let e = (v.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?.erf()? + 1.0)?;
            (v.affine(0.5, 0.0)? * e)?
        }
        Activation::GeluTanh => {
            let cube = (v.sqr()? * &v)?;
            let inner = ((cube.affine(GELU_TANH_C as f64, 0.0)? + &v)? * SQRT_2_OVER_PI as f64)?;
            (v.affine(0.5, 0.0)? * (inner.tanh()? + 1.0)?)?
        }
        Activation::Relu => v.relu()?,
        Activation::Silu => (&v / (v.neg()?.exp()? + 1.0)?)?,
    };
    y.to_dtype(x.dtype())
}

/// Fused `act(x + bias)`; `bias` (optional) is 1-D over the last dimension of `x`, as in the
/// epilogue of `torch.nn.Linear`. The output has `x`'s shape and dtype.
///
/// f32, f16 and bf16 with matching bias dtype take the fused path; other dtypes (or a bias of
/// another dtype) use [`bias_act_reference`].
pub fn bias_act(x: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    check_bias(x, bias)?;
    let mut inputs = vec![x];
    inputs.extend(bias);
    if !same_float_dtype(&inputs) || x.elem_count() == 0 {
        return bias_act_reference(x, bias, act);
    }
    apply(
        &BiasAct {
            act,
            bias: bias.is_some(),
        },
        &inputs,
    )
}

fn check_bias(x: &Tensor, bias: Option<&Tensor>) -> Result<()> {
    if let Some(b) = bias {
        let cols = x.dims().last().copied();
        if b.rank() != 1 || cols != Some(b.dim(0)?) {
            bail!(
                "bias_act: bias {:?} for input {:?} (the bias must be 1-D over the last dimension)",
                b.dims(),
                x.dims()
            );
        }
    }
    Ok(())
}

/// Reference for [`swiglu`]: `silu(gate) * up` in f32 candle ops, cast to `gate`'s dtype.
pub fn swiglu_reference(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    check_pair(gate, up)?;
    let g = gate.to_dtype(DType::F32)?;
    let u = up.to_dtype(DType::F32)?;
    let silu = (&g / (g.neg()?.exp()? + 1.0)?)?;
    (silu * u)?.to_dtype(gate.dtype())
}

/// Reference for [`swiglu_packed`]: the two halves of the last dimension through
/// [`swiglu_reference`].
pub fn swiglu_packed_reference(gate_up: &Tensor) -> Result<Tensor> {
    let half = packed_half(gate_up)?;
    let gate = gate_up.narrow(D::Minus1, 0, half)?;
    let up = gate_up.narrow(D::Minus1, half, half)?;
    swiglu_reference(&gate, &up)
}

/// Fused SwiGLU `silu(gate) * up` (the Llama MLP before `down_proj`); `gate` and `up` have the
/// same shape, the output too. f32, f16 and bf16 take the fused path when both inputs share
/// the dtype; anything else uses [`swiglu_reference`].
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    check_pair(gate, up)?;
    if !same_float_dtype(&[gate, up]) || gate.elem_count() == 0 {
        return swiglu_reference(gate, up);
    }
    apply(&SwiGlu { packed: false }, &[gate, up])
}

/// Fused SwiGLU over a packed input whose last dimension `2*I` holds `[gate | up]` (as
/// `gate, up = x.chunk(2, -1)`); the output's last dimension is `I`.
pub fn swiglu_packed(gate_up: &Tensor) -> Result<Tensor> {
    packed_half(gate_up)?;
    if !same_float_dtype(&[gate_up]) || gate_up.elem_count() == 0 {
        return swiglu_packed_reference(gate_up);
    }
    apply(&SwiGlu { packed: true }, &[gate_up])
}

fn check_pair(gate: &Tensor, up: &Tensor) -> Result<()> {
    if gate.dims() != up.dims() {
        bail!("swiglu: gate {:?} vs up {:?}", gate.dims(), up.dims());
    }
    if gate.rank() == 0 {
        bail!("swiglu: inputs must have at least one dimension");
    }
    Ok(())
}

/// `I` for a packed `[.., 2*I]` input.
fn packed_half(gate_up: &Tensor) -> Result<usize> {
    match gate_up.dims().last() {
        Some(&w) if w % 2 == 0 => Ok(w / 2),
        _ => bail!(
            "swiglu_packed: the last dimension must hold [gate | up] (even length), got {:?}",
            gate_up.dims()
        ),
    }
}

/// `act(x + bias)`; inputs: x, then the bias when `bias`.
struct BiasAct {
    act: Activation,
    bias: bool,
}

impl BiasAct {
    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let (xs, xl) = ins[0];
        let x = cpu::slice::<T>(xs, xl, "x")?;
        let cols = xl.shape().dims().last().copied().unwrap_or(1);
        let b = if self.bias {
            let b = cpu::slice::<T>(ins[1].0, ins[1].1, "bias")?;
            if b.len() != cols {
                bail!("bias_act: bias of {} for rows of {cols}", b.len());
            }
            Some(b)
        } else {
            None
        };
        let mut out = vec![T::from_f32(0.0); x.len()];
        let act = self.act.row_fn();
        cpu::rows_mut(&mut out, cols, |i, y| {
            let xr = &x[i * cols..(i + 1) * cols];
            let fill = |dst: &mut [f32]| match b {
                Some(b) => {
                    for ((d, x), b) in dst.iter_mut().zip(xr).zip(b) {
                        *d = x.to_f32() + b.to_f32();
                    }
                }
                None => {
                    for (d, x) in dst.iter_mut().zip(xr) {
                        *d = x.to_f32();
                    }
                }
            };
            // f32 rows are computed in place; other dtypes through an f32 row buffer.
            if let Some(yf) = cpu::as_f32_mut(y) {
                fill(yf);
                act(yf);
                return;
            }
            let mut buf = vec![0f32; cols];
            fill(&mut buf);
            act(&mut buf);
            for (y, v) in y.iter_mut().zip(&buf) {
                *y = T::from_f32(*v);
            }
        });
        Ok((cpu::storage(out), xl.shape().clone()))
    }
}

fused_op!(BiasAct, "bias-act", input = 0, cpu = cpu_t);

/// `silu(gate) * up`; inputs: the packed `[.., 2*I]` tensor, or gate then up.
struct SwiGlu {
    packed: bool,
}

impl SwiGlu {
    /// (rows, I, output shape) for the first input's shape.
    fn geometry(&self, shape: &Shape) -> Result<(usize, usize, Shape)> {
        let dims = shape.dims();
        let Some(&last) = dims.last() else {
            bail!("swiglu: rank-0 input");
        };
        let cols = if self.packed { last / 2 } else { last };
        let mut out = dims.to_vec();
        if let Some(l) = out.last_mut() {
            *l = cols;
        }
        let rows = if cols == 0 {
            0
        } else {
            shape.elem_count() / last
        };
        Ok((rows, cols, Shape::from(out)))
    }

    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let (s0, l0) = ins[0];
        let (rows, cols, out_shape) = self.geometry(l0.shape())?;
        let first = cpu::slice::<T>(s0, l0, "gate")?;
        // (gate, up, row stride of each).
        let (gate, up, stride) = if self.packed {
            (first, &first[cols.min(first.len())..], 2 * cols)
        } else {
            let up = cpu::slice::<T>(ins[1].0, ins[1].1, "up")?;
            if up.len() != first.len() {
                bail!(
                    "swiglu: gate of {} elements, up of {}",
                    first.len(),
                    up.len()
                );
            }
            (first, up, cols)
        };
        let mut out = vec![T::from_f32(0.0); rows * cols];
        cpu::rows_mut(&mut out, cols, |i, y| {
            let g = &gate[i * stride..i * stride + cols];
            let u = &up[i * stride..i * stride + cols];
            let mut gb: Vec<f32> = g.iter().map(|x| x.to_f32()).collect();
            let ub: Vec<f32> = u.iter().map(|x| x.to_f32()).collect();
            swiglu_row(&mut gb, &ub);
            for (y, v) in y.iter_mut().zip(&gb) {
                *y = T::from_f32(*v);
            }
        });
        Ok((cpu::storage(out), out_shape))
    }
}

fused_op!(SwiGlu, "swiglu", input = 0, cpu = cpu_t);

/// Threads per block of the elementwise kernels.
#[cfg(feature = "cuda")]
const CUDA_THREADS: u32 = 256;
/// Most blocks an elementwise launch uses; the kernels are grid-stride loops.
#[cfg(feature = "cuda")]
const CUDA_MAX_BLOCKS: usize = 1 << 16;

/// Launch shape for `n` elements of `T`: one thread per 16-byte vector (grid-stride beyond).
#[cfg(feature = "cuda")]
fn elementwise_cfg<T>(n: usize) -> candle_core::cuda_backend::cudarc::driver::LaunchConfig {
    let per_vec = (16 / std::mem::size_of::<T>()).max(1);
    let blocks = n
        .div_ceil(per_vec)
        .div_ceil(CUDA_THREADS as usize)
        .clamp(1, CUDA_MAX_BLOCKS);
    candle_core::cuda_backend::cudarc::driver::LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (CUDA_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

#[cfg(feature = "cuda")]
impl BiasAct {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::PushKernelArg;

        let (xs, xl) = ins[0];
        let dev = &xs.device;
        let x = cuda::view::<T>(xs, xl, "x")?;
        let n = xl.shape().elem_count();
        let cols = xl.shape().dims().last().copied().unwrap_or(1);
        let b = if self.bias {
            let b = cuda::view::<T>(ins[1].0, ins[1].1, "bias")?;
            if b.len() != cols {
                bail!("bias_act: bias of {} for rows of {cols}", b.len());
            }
            Some(b)
        } else {
            None
        };
        let Ok(cols_i) = i32::try_from(cols) else {
            bail!("bias_act: rows of {cols} elements are too long for the CUDA kernel");
        };
        let mut out = cuda::alloc::<T>(dev, n)?;
        let func = cuda::function(
            dev,
            "activation",
            crate::ptx::ACTIVATION,
            self.act.kernel(),
            T::DTYPE,
        )?;
        let null = 0u64;
        let n_u64 = n as u64;
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&x);
        match &b {
            Some(b) => builder.arg(b),
            None => builder.arg(&null),
        };
        builder.arg(&mut out);
        builder.arg(&n_u64);
        builder.arg(&cols_i);
        // SAFETY: the grid-stride kernel touches element indices `< n` only: `x` and `out`
        // hold `n` elements (contiguous view of the input, fresh allocation), and the bias
        // (when present, else a null pointer the kernel never reads) holds `cols` elements,
        // indexed by `index % cols` (length checked above).
        cuda::launch(&mut builder, elementwise_cfg::<T>(n))?;
        drop(builder);
        Ok((cuda::storage(out, dev), xl.shape().clone()))
    }
}

#[cfg(feature = "cuda")]
impl SwiGlu {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::PushKernelArg;

        let (s0, l0) = ins[0];
        let dev = &s0.device;
        let (rows, cols, out_shape) = self.geometry(l0.shape())?;
        let first = cuda::view::<T>(s0, l0, "gate")?;
        let second = if self.packed {
            None
        } else {
            let up = cuda::view::<T>(ins[1].0, ins[1].1, "up")?;
            if up.len() != first.len() {
                bail!(
                    "swiglu: gate of {} elements, up of {}",
                    first.len(),
                    up.len()
                );
            }
            Some(up)
        };
        // The packed input's up half starts `cols` elements into each row of `2*cols`.
        let packed_up = if self.packed {
            Some(first.slice(cols.min(first.len())..))
        } else {
            None
        };
        let stride = if self.packed { 2 * cols } else { cols };
        let (Ok(rows_u64), Ok(cols_i), Ok(stride_u64)) = (
            u64::try_from(rows),
            i32::try_from(cols),
            u64::try_from(stride),
        ) else {
            bail!("swiglu: shape too large for the CUDA kernel");
        };
        let n = rows * cols;
        let mut out = cuda::alloc::<T>(dev, n)?;
        let func = cuda::function(
            dev,
            "activation",
            crate::ptx::ACTIVATION,
            "swiglu",
            T::DTYPE,
        )?;
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&first);
        match (&second, &packed_up) {
            (Some(up), _) | (None, Some(up)) => builder.arg(up),
            (None, None) => bail!("swiglu: no up input"),
        };
        builder.arg(&mut out);
        builder.arg(&rows_u64);
        builder.arg(&cols_i);
        builder.arg(&stride_u64);
        builder.arg(&stride_u64);
        // SAFETY: the grid-stride kernel visits `rows * cols` output elements (the size of
        // `out`); it reads gate at `row * stride + col` and up at `row * stride + col` of its
        // own pointer with `col < cols`: for two inputs stride = cols and each holds
        // `rows * cols` elements; packed, stride = 2·cols, the input holds `rows * 2·cols`
        // elements and the up view starts `cols` in, so its last read is at
        // `rows·2·cols - cols - 1`, inside the view.
        cuda::launch(&mut builder, elementwise_cfg::<T>(n))?;
        drop(builder);
        Ok((cuda::storage(out, dev), out_shape))
    }
}
