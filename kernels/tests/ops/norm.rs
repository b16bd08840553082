use candle_core::{DType, Device, Tensor};
use torchless_kernels::norm::{add_norm, add_norm_reference, NormParams, CUDA_MAX_COLS};
use torchless_kernels::testing::{assert_close, devices, seeded, FLOAT_DTYPES};

fn params(kind: &str, cols: usize, dtype: DType, dev: &Device, affine: bool) -> NormParams {
    let w = seeded(&[cols], 11, 0.5, 1.5, dtype, dev).unwrap();
    let b = seeded(&[cols], 12, -0.5, 0.5, dtype, dev).unwrap();
    match (kind, affine) {
        ("layer", true) => NormParams::layer_norm(Some(&w), Some(&b)).unwrap(),
        ("layer", false) => NormParams::layer_norm(None, None).unwrap(),
        (_, true) => NormParams::rms_norm(Some(&w)).unwrap(),
        (_, false) => NormParams::rms_norm(None).unwrap(),
    }
}

fn check(
    dev: &Device,
    dtype: DType,
    shape: &[usize],
    kind: &str,
    affine: bool,
    residual: bool,
    sum: bool,
) {
    let cols = *shape.last().unwrap();
    let x = seeded(shape, 1, -2.0, 2.0, dtype, dev).unwrap();
    let r = seeded(shape, 2, -1.0, 3.0, dtype, dev).unwrap();
    let p = params(kind, cols, dtype, dev, affine);
    let res = residual.then_some(&r);
    let got = add_norm(&x, res, &p, 1e-5, sum).unwrap();
    let want = add_norm_reference(&x, res, &p, 1e-5, sum).unwrap();
    let what = format!("{kind} {dev:?} {dtype:?} {shape:?} affine={affine} residual={residual}");
    assert_close(&got.normed, &want.normed, &what);
    if sum {
        assert_close(
            got.sum.as_ref().unwrap(),
            want.sum.as_ref().unwrap(),
            &format!("{what} sum"),
        );
    }
}

#[test]
fn add_norm_matches_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for shape in [
                &[1, 768][..],
                &[3, 7, 33],
                &[2, 1000],
                &[5, 8],
                &[1, 1],
                &[64, 4096],
            ] {
                for kind in ["layer", "rms"] {
                    for (affine, residual, sum) in [
                        (true, true, false),
                        (true, true, true),
                        (false, false, false),
                        (true, false, true),
                    ] {
                        check(&dev, dtype, shape, kind, affine, residual, sum);
                    }
                }
            }
        }
    }
}

#[test]
fn rows_longer_than_the_cuda_limit_fall_back_to_the_reference() {
    for dev in devices() {
        check(
            &dev,
            DType::F32,
            &[2, CUDA_MAX_COLS + 5],
            "layer",
            true,
            true,
            true,
        );
        check(
            &dev,
            DType::BF16,
            &[1, CUDA_MAX_COLS + 8],
            "rms",
            true,
            true,
            false,
        );
    }
}

#[test]
fn non_contiguous_and_mixed_dtype_inputs() {
    for dev in devices() {
        let x = seeded(&[6, 10], 3, -1.0, 1.0, DType::F32, &dev)
            .unwrap()
            .t()
            .unwrap();
        let r = seeded(&[10, 6], 4, -1.0, 1.0, DType::F32, &dev).unwrap();
        let p = params("layer", 6, DType::F32, &dev, true);
        let got = add_norm(&x, Some(&r), &p, 1e-6, true).unwrap();
        let want = add_norm_reference(&x, Some(&r), &p, 1e-6, true).unwrap();
        assert_close(&got.normed, &want.normed, "transposed input");
        // bf16 activations with f32 parameters: not the fast path, still right.
        let xb = x.to_dtype(DType::BF16).unwrap();
        let got = add_norm(&xb, None, &p, 1e-6, false).unwrap();
        let want = add_norm_reference(&xb, None, &p, 1e-6, false).unwrap();
        assert_close(&got.normed, &want.normed, "mixed dtypes");
    }
}

#[test]
fn large_magnitudes_stay_finite() {
    for dev in devices() {
        let x = (seeded(&[4, 257], 5, -1.0, 1.0, DType::F32, &dev).unwrap() * 1e4).unwrap();
        let p = params("layer", 257, DType::F32, &dev, true);
        let got = add_norm(&x, None, &p, 1e-5, false).unwrap().normed;
        let v: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
        assert_close(
            &got,
            &add_norm_reference(&x, None, &p, 1e-5, false)
                .unwrap()
                .normed,
            "1e4 inputs",
        );
    }
}

#[test]
fn pytorch_layer_norm_values() {
    // torch.nn.functional.layer_norm(torch.tensor([[1., 2., 4.]]) + 1, (3,), eps=1e-5)
    let x = Tensor::new(&[[1f32, 2., 4.]], &Device::Cpu).unwrap();
    let one = Tensor::ones((1, 3), DType::F32, &Device::Cpu).unwrap();
    let p = NormParams::layer_norm(None, None).unwrap();
    let y: Vec<Vec<f32>> = add_norm(&x, Some(&one), &p, 1e-5, false)
        .unwrap()
        .normed
        .to_vec2()
        .unwrap();
    let want = [-1.069_042_4f32, -0.267_260_6, 1.336_302_9];
    for (a, b) in y[0].iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
