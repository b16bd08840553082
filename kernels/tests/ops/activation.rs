//! `bias_act` (GELU erf/tanh, ReLU, SiLU after an optional bias) and SwiGLU (two inputs and
//! packed `[gate | up]`) against their f32 references, and against values from PyTorch.

use candle_core::{DType, Device, Tensor, D};
use torchless_kernels::activation::{
    bias_act, bias_act_reference, swiglu, swiglu_packed, swiglu_packed_reference, swiglu_reference,
    Activation,
};
use torchless_kernels::testing::{assert_close, devices, seeded, FLOAT_DTYPES};

const ACTS: [Activation; 4] = [
    Activation::GeluErf,
    Activation::GeluTanh,
    Activation::Relu,
    Activation::Silu,
];

/// Odd widths, widths that are not a multiple of 8, one 16-byte vector, a row longer than any
/// CUDA block, and BERT's intermediate size.
const SHAPES: [&[usize]; 8] = [
    &[1, 7],
    &[3, 7, 33],
    &[2, 1000],
    &[5, 8],
    &[1, 1],
    &[2, 20_000],
    &[4, 3072],
    &[2, 3, 12],
];

fn check_bias_act(x: &Tensor, bias: Option<&Tensor>, act: Activation, what: &str) {
    let got = bias_act(x, bias, act).unwrap();
    let want = bias_act_reference(x, bias, act).unwrap();
    assert_close(&got, &want, &format!("{act:?} {what}"));
}

#[test]
fn bias_act_matches_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for shape in SHAPES {
                let cols = *shape.last().unwrap();
                let x = seeded(shape, 1, -4.0, 4.0, dtype, &dev).unwrap();
                let b = seeded(&[cols], 2, -1.0, 1.0, dtype, &dev).unwrap();
                for act in ACTS {
                    let what = format!("{dev:?} {dtype:?} {shape:?}");
                    check_bias_act(&x, Some(&b), act, &format!("{what} bias"));
                    check_bias_act(&x, None, act, &format!("{what} no bias"));
                }
            }
        }
    }
}

#[test]
fn swiglu_matches_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for shape in SHAPES {
                let what = format!("{dev:?} {dtype:?} {shape:?}");
                let g = seeded(shape, 3, -5.0, 5.0, dtype, &dev).unwrap();
                let u = seeded(shape, 4, -2.0, 2.0, dtype, &dev).unwrap();
                assert_close(
                    &swiglu(&g, &u).unwrap(),
                    &swiglu_reference(&g, &u).unwrap(),
                    &format!("swiglu {what}"),
                );
                let packed = Tensor::cat(&[&g, &u], D::Minus1).unwrap();
                let got = swiglu_packed(&packed).unwrap();
                assert_close(
                    &got,
                    &swiglu_packed_reference(&packed).unwrap(),
                    &format!("swiglu_packed {what}"),
                );
                // The packed form is the two-input form on the halves.
                assert_close(
                    &got,
                    &swiglu_reference(&g, &u).unwrap(),
                    &format!("packed halves {what}"),
                );
            }
        }
    }
}

#[test]
fn non_contiguous_and_offset_inputs() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            // Transposed input.
            let xt = seeded(&[33, 6], 5, -3.0, 3.0, dtype, &dev)
                .unwrap()
                .t()
                .unwrap();
            let b = seeded(&[33], 6, -1.0, 1.0, dtype, &dev).unwrap();
            for act in ACTS {
                check_bias_act(&xt, Some(&b), act, &format!("{dtype:?} transposed"));
            }
            // A contiguous view that starts at an offset (not 16-byte aligned on the GPU).
            let big = seeded(&[5, 24], 7, -3.0, 3.0, dtype, &dev).unwrap();
            let off = big.narrow(0, 1, 3).unwrap();
            let b24 = seeded(&[24], 8, -1.0, 1.0, dtype, &dev).unwrap();
            let flat = big.flatten_all().unwrap().narrow(0, 3, 96).unwrap();
            let flat = flat.reshape((4, 24)).unwrap();
            for act in ACTS {
                check_bias_act(&off, Some(&b24), act, &format!("{dtype:?} row offset"));
                check_bias_act(&flat, Some(&b24), act, &format!("{dtype:?} odd offset"));
                check_bias_act(&flat, None, act, &format!("{dtype:?} odd offset no bias"));
            }
            // Gate and up as views of one packed tensor, and a transposed packed input.
            let packed = seeded(&[4, 2 * 40], 9, -4.0, 4.0, dtype, &dev).unwrap();
            let g = packed.narrow(1, 0, 40).unwrap();
            let u = packed.narrow(1, 40, 40).unwrap();
            assert_close(
                &swiglu(&g, &u).unwrap(),
                &swiglu_reference(&g, &u).unwrap(),
                &format!("{dtype:?} swiglu views"),
            );
            assert_close(
                &swiglu_packed(&packed).unwrap(),
                &swiglu(&g, &u).unwrap(),
                &format!("{dtype:?} packed vs views"),
            );
            let pt = seeded(&[2 * 9, 5], 10, -4.0, 4.0, dtype, &dev)
                .unwrap()
                .t()
                .unwrap();
            assert_close(
                &swiglu_packed(&pt).unwrap(),
                &swiglu_packed_reference(&pt).unwrap(),
                &format!("{dtype:?} packed transposed"),
            );
            let poff = packed.flatten_all().unwrap().narrow(0, 1, 3 * 80).unwrap();
            let poff = poff.reshape((3, 80)).unwrap();
            assert_close(
                &swiglu_packed(&poff).unwrap(),
                &swiglu_packed_reference(&poff).unwrap(),
                &format!("{dtype:?} packed odd offset"),
            );
        }
    }
}

#[test]
fn large_magnitudes_stay_finite() {
    for dev in devices() {
        for (dtype, mag) in [(DType::F32, 1e4f32), (DType::F16, 6e4), (DType::BF16, 1e30)] {
            let x = seeded(&[3, 257], 11, -mag, mag, dtype, &dev).unwrap();
            let b = seeded(&[257], 12, -1.0, 1.0, dtype, &dev).unwrap();
            for act in ACTS {
                let got = bias_act(&x, Some(&b), act).unwrap();
                let v: Vec<f32> = got
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert!(
                    v.iter().all(|x| x.is_finite()),
                    "{act:?} {dtype:?}: non-finite"
                );
                assert_close(
                    &got,
                    &bias_act_reference(&x, Some(&b), act).unwrap(),
                    &format!("{act:?} {dtype:?} ±{mag}"),
                );
            }
            // Small up values keep silu(gate)·up inside f16's range.
            let u = seeded(&[3, 257], 13, -1.0, 1.0, dtype, &dev).unwrap();
            let got = swiglu(&x, &u).unwrap();
            let v: Vec<f32> = got
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "swiglu {dtype:?}");
            assert_close(
                &got,
                &swiglu_reference(&x, &u).unwrap(),
                &format!("swiglu {dtype:?} ±{mag}"),
            );
        }
    }
}

#[test]
fn mixed_dtypes_use_the_reference() {
    for dev in devices() {
        let x = seeded(&[3, 10], 14, -2.0, 2.0, DType::BF16, &dev).unwrap();
        let b = seeded(&[10], 15, -1.0, 1.0, DType::F32, &dev).unwrap();
        let got = bias_act(&x, Some(&b), Activation::GeluErf).unwrap();
        assert_eq!(got.dtype(), DType::BF16);
        assert_close(
            &got,
            &bias_act_reference(&x, Some(&b), Activation::GeluErf).unwrap(),
            "bf16 x, f32 bias",
        );
        let u = x.to_dtype(DType::F32).unwrap();
        assert_close(
            &swiglu(&x, &u).unwrap(),
            &swiglu_reference(&x, &u).unwrap(),
            "bf16 gate, f32 up",
        );
    }
}

#[test]
fn bad_shapes_are_errors() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((2, 6), DType::F32, &dev).unwrap();
    let b5 = Tensor::zeros(5, DType::F32, &dev).unwrap();
    let b2d = Tensor::zeros((1, 6), DType::F32, &dev).unwrap();
    assert!(bias_act(&x, Some(&b5), Activation::Relu).is_err());
    assert!(bias_act(&x, Some(&b2d), Activation::Relu).is_err());
    let y = Tensor::zeros((2, 5), DType::F32, &dev).unwrap();
    assert!(swiglu(&x, &y).is_err());
    let odd = Tensor::zeros((2, 7), DType::F32, &dev).unwrap();
    assert!(swiglu_packed(&odd).is_err());
}

#[test]
fn empty_inputs() {
    for dev in devices() {
        let x = Tensor::zeros((0, 6), DType::F16, &dev).unwrap();
        let b = Tensor::zeros(6, DType::F16, &dev).unwrap();
        assert_eq!(
            bias_act(&x, Some(&b), Activation::Silu).unwrap().dims(),
            &[0, 6]
        );
        assert_eq!(swiglu_packed(&x).unwrap().dims(), &[0, 3]);
    }
}

/// Values printed by PyTorch 2.x (f32, CPU):
/// ```python
/// x = torch.tensor([[-3., -1., -.25, 0., .5, 1., 2., 4.]])
/// b = torch.tensor([.5, -.5, .25, 1., -1., 0., .5, -2.])
/// F.gelu(x + b); F.gelu(x + b, approximate="tanh"); torch.relu(x + b); F.silu(x + b)
/// ```
#[test]
fn pytorch_bias_act_values() {
    let want: [(Activation, [f32; 8]); 4] = [
        (
            Activation::GeluErf,
            [
                -0.015524179,
                -0.10021086,
                0.0,
                0.8413447,
                -0.15426877,
                0.8413447,
                2.4844759,
                1.9544997,
            ],
        ),
        (
            Activation::GeluTanh,
            [
                -0.015084296,
                -0.10042843,
                0.0,
                0.841192,
                -0.154286,
                0.841192,
                2.4849157,
                1.9545977,
            ],
        ),
        (Activation::Relu, [0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 2.5, 2.0]),
        (
            Activation::Silu,
            [
                -0.18964545,
                -0.27363828,
                0.0,
                0.7310586,
                -0.18877034,
                0.7310586,
                2.3103545,
                1.761594,
            ],
        ),
    ];
    for dev in devices() {
        let x = Tensor::new(&[[-3f32, -1., -0.25, 0., 0.5, 1., 2., 4.]], &dev).unwrap();
        let b = Tensor::new(&[0.5f32, -0.5, 0.25, 1., -1., 0., 0.5, -2.], &dev).unwrap();
        for (act, want) in &want {
            let got: Vec<f32> = bias_act(&x, Some(&b), *act)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                    "{act:?} {dev:?}: {g} vs PyTorch {w}"
                );
            }
        }
    }
}

/// ```python
/// gate, up = torch.tensor([[-2., -.5, .5, 3., 1.5, -1., 2., .25]]).chunk(2, -1)
/// F.silu(gate) * up
/// ```
#[test]
fn pytorch_swiglu_values() {
    let want = [-0.35760877f32, 0.18877034, 0.62245935, 0.71443063];
    for dev in devices() {
        let gu = Tensor::new(&[[-2f32, -0.5, 0.5, 3., 1.5, -1., 2., 0.25]], &dev).unwrap();
        let packed: Vec<f32> = swiglu_packed(&gu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let g = gu.narrow(1, 0, 4).unwrap();
        let u = gu.narrow(1, 4, 4).unwrap();
        let two: Vec<f32> = swiglu(&g, &u)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for ((p, t), w) in packed.iter().zip(&two).zip(want) {
            assert!(
                (p - w).abs() <= 1e-6 * (1.0 + w.abs()),
                "{p} vs PyTorch {w}"
            );
            assert_eq!(p, t, "packed and two-input forms agree exactly");
        }
    }
}
