//! Bias + activation epilogues and SwiGLU cases.
//!
//! Shapes: `Size::Inference` is BERT-base batch 1 (`[1, 128, 3072]` intermediate activations)
//! and a Llama-7B-sized decoder step (`[1, 1, 11008]`) and a 128-token prefill through a fused
//! `gate_up_proj` (`[1, 128, 2·2816]`); `Size::Large` is bandwidth-bound `[16384, 4096]`
//! (packed `[16384, 2·4096]`).
//!
//! The `torch` spec of each case (the PyTorch baseline script builds the same computation):
//! - `op`: `"bias_gelu_erf"` → `F.gelu(x + b)`; `"bias_gelu_tanh"` →
//!   `F.gelu(x + b, approximate="tanh")`; `"bias_relu"` → `torch.relu(x + b)`; `"bias_silu"` →
//!   `F.silu(x + b)`; `"swiglu"` → `F.silu(gate) * up`; `"swiglu_packed"` →
//!   `gate, up = x.chunk(2, -1); F.silu(gate) * up`.
//! - `shape`: the input's shape: `x` for the `bias_*` ops (`b` has shape `[shape[-1]]`), each
//!   of `gate` and `up` (same shape, separate tensors) for `swiglu`, the packed `x` whose last
//!   dimension is `2·I` for `swiglu_packed` (the output's last dimension is `I`).
//! - `dtype`: `"f32"`, `"f16"` or `"bf16"` (`torch.float32`, `float16`, `bfloat16`) of every
//!   input and the output.
//! - `bias` (`bias_*` ops only): always `true`: the bias is added.
//!
//! `bytes` is the minimal traffic: every input read once, the output written once.

use candle_core::{DType, Device, Result, Tensor, D};
use serde_json::json;
use torchless_kernels::activation::{
    bias_act, bias_act_reference, swiglu, swiglu_packed, swiglu_packed_reference, swiglu_reference,
    Activation,
};
use torchless_kernels::testing::seeded;

use super::{dtypes, shape_name, Case, Size};

/// The activations benchmarked, with their `op` names.
const ACTS: [(Activation, &str); 4] = [
    (Activation::GeluErf, "bias_gelu_erf"),
    (Activation::GeluTanh, "bias_gelu_tanh"),
    (Activation::Relu, "bias_relu"),
    (Activation::Silu, "bias_silu"),
];

/// The unfused candle composition of `act(x + b)`, in `x`'s dtype.
fn unfused_bias_act(x: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    let s = x.broadcast_add(b)?;
    match act {
        Activation::GeluErf => s.gelu_erf(),
        Activation::GeluTanh => s.gelu(),
        Activation::Relu => s.relu(),
        Activation::Silu => candle_nn::ops::silu(&s),
    }
}

/// Bias + GELU (erf, tanh), ReLU, SiLU; SwiGLU on two inputs and packed.
pub fn cases(dev: &Device, size: Size) -> Result<Vec<Case>> {
    let (act_shape, swiglu_shape, packed_shape): (&[usize], &[usize], &[usize]) = match size {
        Size::Inference => (&[1, 128, 3072], &[1, 1, 11008], &[1, 128, 2 * 2816]),
        Size::Large => (&[16384, 4096], &[16384, 4096], &[16384, 2 * 4096]),
    };
    let cols = act_shape.last().copied().unwrap_or(1);
    let half = packed_shape.last().copied().unwrap_or(2) / 2;
    // Seeded once in f32 on the device, converted per dtype there.
    let x32 = seeded(act_shape, 1, -3.0, 3.0, DType::F32, dev)?;
    let b32 = seeded(&[cols], 2, -0.5, 0.5, DType::F32, dev)?;
    let g32 = seeded(swiglu_shape, 3, -4.0, 4.0, DType::F32, dev)?;
    let u32_ = seeded(swiglu_shape, 4, -2.0, 2.0, DType::F32, dev)?;
    let p32 = seeded(packed_shape, 5, -4.0, 4.0, DType::F32, dev)?;
    let n_act = x32.elem_count();
    let n_swiglu = g32.elem_count();
    let n_packed = p32.elem_count();

    let mut v = Vec::new();
    for dtype in dtypes(dev) {
        let es = dtype.size_in_bytes();
        let x = x32.to_dtype(dtype)?;
        let b = b32.to_dtype(dtype)?;
        for (act, name) in ACTS {
            let (x1, b1) = (x.clone(), b.clone());
            let (x2, b2) = (x.clone(), b.clone());
            let (x3, b3) = (x.clone(), b.clone());
            v.push(Case {
                op: name,
                shape: shape_name(act_shape),
                dtype,
                // x read, output written, bias read once.
                bytes: (2 * n_act + cols) * es,
                fused: Box::new(move || bias_act(&x1, Some(&b1), act)),
                unfused: Box::new(move || unfused_bias_act(&x2, &b2, act)),
                reference: Box::new(move || bias_act_reference(&x3, Some(&b3), act)),
                torch: json!({
                    "op": name, "shape": act_shape, "dtype": dtype.as_str(), "bias": true,
                }),
            });
        }

        let g = g32.to_dtype(dtype)?;
        let u = u32_.to_dtype(dtype)?;
        let (g1, u1, g2, u2, g3, u3) = (g.clone(), u.clone(), g.clone(), u.clone(), g, u);
        v.push(Case {
            op: "swiglu",
            shape: shape_name(swiglu_shape),
            dtype,
            // gate and up read, output written.
            bytes: 3 * n_swiglu * es,
            fused: Box::new(move || swiglu(&g1, &u1)),
            unfused: Box::new(move || candle_nn::ops::silu(&g2)? * &u2),
            reference: Box::new(move || swiglu_reference(&g3, &u3)),
            torch: json!({ "op": "swiglu", "shape": swiglu_shape, "dtype": dtype.as_str() }),
        });

        let p = p32.to_dtype(dtype)?;
        let (p1, p2, p3) = (p.clone(), p.clone(), p);
        v.push(Case {
            op: "swiglu_packed",
            shape: shape_name(packed_shape),
            dtype,
            // The packed input read, an output of half its size written.
            bytes: (n_packed + n_packed / 2) * es,
            fused: Box::new(move || swiglu_packed(&p1)),
            unfused: Box::new(move || {
                let gate = p2.narrow(D::Minus1, 0, half)?;
                let up = p2.narrow(D::Minus1, half, half)?;
                candle_nn::ops::silu(&gate)? * up
            }),
            reference: Box::new(move || swiglu_packed_reference(&p3)),
            torch: json!({
                "op": "swiglu_packed", "shape": packed_shape, "dtype": dtype.as_str(),
            }),
        });
    }
    Ok(v)
}
