//! `masked_softmax` (scale, additive mask broadcast over heads, causal rule) against its f32
//! reference, the fully masked row (zeros), and values from PyTorch.

use candle_core::{DType, Device, Tensor};
use torchless_kernels::softmax::{masked_softmax, masked_softmax_reference, CUDA_CACHED_MAX_COLS};
use torchless_kernels::testing::{assert_close, devices, seeded, FLOAT_DTYPES};

/// Odd lengths, a length that is not a multiple of 8, BERT's 128, rows longer than any CUDA
/// block, and one longer than the CUDA shared-memory row cache.
const SHAPES: [[usize; 4]; 7] = [
    [1, 2, 3, 7],
    [2, 3, 5, 33],
    [1, 2, 4, 1000],
    [1, 12, 8, 128],
    [2, 1, 3, 8],
    [1, 1, 2, 5000],
    [1, 1, 2, 20_000],
];

/// An additive mask: values in [-2, 0], with `-inf` at every 7th and `-1e9` at every 11th
/// position (keys 0 stays visible, so only the causal rule can hide a whole row).
fn mask(dims: &[usize], seed: u64, dtype: DType, dev: &Device) -> Tensor {
    let n: usize = dims.iter().product();
    let k = *dims.last().unwrap();
    let base: Vec<f32> = seeded(&[n], seed, -2.0, 0.0, DType::F32, &Device::Cpu)
        .unwrap()
        .to_vec1()
        .unwrap();
    let v: Vec<f32> = base
        .iter()
        .enumerate()
        .map(|(p, &x)| match (p % k, p % 7, p % 11) {
            (0, _, _) => x,
            (_, 3, _) => f32::NEG_INFINITY,
            (_, _, 5) => -1e9,
            _ => x,
        })
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .to_device(dev)
        .unwrap()
}

fn check(scores: &Tensor, m: Option<&Tensor>, scale: f32, causal: bool, what: &str) {
    let got = masked_softmax(scores, m, scale, causal).unwrap();
    let want = masked_softmax_reference(scores, m, scale, causal).unwrap();
    assert_close(
        &got,
        &want,
        &format!(
            "{what} {:?} {:?} causal={causal}",
            scores.device(),
            scores.dtype()
        ),
    );
}

#[test]
fn no_mask_matches_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for shape in SHAPES {
                let s = seeded(&shape, 1, -8.0, 8.0, dtype, &dev).unwrap();
                check(&s, None, 0.125, false, &format!("{shape:?}"));
                check(&s, None, 1.0, false, &format!("{shape:?} scale 1"));
            }
        }
    }
}

#[test]
fn key_padding_mask() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for shape in SHAPES {
                let [b, _, _, k] = shape;
                let s = seeded(&shape, 2, -8.0, 8.0, dtype, &dev).unwrap();
                for mdt in [DType::F32, dtype] {
                    let m = mask(&[b, k], 3, mdt, &dev);
                    check(
                        &s,
                        Some(&m),
                        0.125,
                        false,
                        &format!("{shape:?} [B,Tk] {mdt:?}"),
                    );
                    // The 4-D form Hugging Face models build, and one mask for the batch.
                    let m4 = m.reshape((b, 1, 1, k)).unwrap();
                    check(
                        &s,
                        Some(&m4),
                        0.125,
                        false,
                        &format!("{shape:?} [B,1,1,Tk]"),
                    );
                    let m1 = mask(&[1, k], 4, mdt, &dev);
                    check(&s, Some(&m1), 0.125, false, &format!("{shape:?} [1,Tk]"));
                }
            }
        }
    }
}

#[test]
fn full_mask_per_query() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for shape in SHAPES {
                let [b, _, q, k] = shape;
                let s = seeded(&shape, 5, -8.0, 8.0, dtype, &dev).unwrap();
                for mdt in [DType::F32, dtype] {
                    let m = mask(&[b, q, k], 6, mdt, &dev);
                    check(&s, Some(&m), 0.3, false, &format!("{shape:?} [B,Tq,Tk]"));
                    check(&s, Some(&m), 0.3, true, &format!("{shape:?} [B,Tq,Tk]"));
                    let m4 = m.reshape((b, 1, q, k)).unwrap();
                    check(&s, Some(&m4), 0.3, false, &format!("{shape:?} [B,1,Tq,Tk]"));
                }
            }
        }
    }
}

#[test]
fn causal_prefill_and_decode() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for shape in [
                [1, 2, 7, 7],
                [2, 3, 33, 33],
                [1, 2, 128, 128],
                [1, 2, 3, 10],   // Tq < Tk: a chunk of queries after 7 cached keys
                [2, 4, 1, 1000], // one decoding step over a cache of 999 keys
                [1, 1, 2, 20_000],
                [1, 2, 9, 4], // Tq > Tk: the first 5 queries see no key (zeros)
            ] {
                let s = seeded(&shape, 7, -8.0, 8.0, dtype, &dev).unwrap();
                check(&s, None, 0.125, true, &format!("{shape:?}"));
                let m = mask(&[shape[0], shape[3]], 8, DType::F32, &dev);
                check(
                    &s,
                    Some(&m),
                    0.125,
                    true,
                    &format!("{shape:?} + [B,Tk] mask"),
                );
            }
        }
    }
}

#[test]
fn fully_masked_rows_are_zeros() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            let (b, h, q, k) = (2, 3, 4, 37);
            let s = seeded(&[b, h, q, k], 9, -8.0, 8.0, dtype, &dev).unwrap();
            // Batch 1 has every key hidden; batch 0 only the last.
            let mut v = vec![0f32; b * k];
            v[k - 1] = f32::NEG_INFINITY;
            v[k..].fill(f32::NEG_INFINITY);
            let m = Tensor::from_vec(v, (b, k), &dev).unwrap();
            for causal in [false, true] {
                let got = masked_softmax(&s, Some(&m), 0.125, causal).unwrap();
                check(&s, Some(&m), 0.125, causal, "fully masked batch");
                let rows: Vec<f32> = got
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let (first, second) = rows.split_at(h * q * k);
                assert!(second.iter().all(|&x| x == 0.0), "{dtype:?}: not zeros");
                for r in first.chunks(k) {
                    let sum: f32 = r.iter().sum();
                    assert!((sum - 1.0).abs() < 2e-2, "{dtype:?}: row sums to {sum}");
                    assert_eq!(r[k - 1], 0.0);
                }
            }
            // Scores of -inf hide keys the same way.
            let all_inf = Tensor::full(f32::NEG_INFINITY, (1, 1, 2, 9), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let got = masked_softmax(&all_inf, None, 1.0, false).unwrap();
            let z: Vec<f32> = got
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(z.iter().all(|&x| x == 0.0));
            check(&all_inf, None, 1.0, false, "all -inf scores");
        }
    }
}

#[test]
fn non_contiguous_scores_and_masks() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            // [B, H, Tk, Tq] transposed to [B, H, Tq, Tk].
            let s = seeded(&[2, 3, 33, 5], 10, -8.0, 8.0, dtype, &dev)
                .unwrap()
                .transpose(2, 3)
                .unwrap();
            let m = mask(&[33, 2], 11, DType::F32, &dev).t().unwrap();
            check(&s, None, 0.125, false, "transposed scores");
            check(&s, Some(&m), 0.125, false, "transposed scores and mask");
            check(&s, Some(&m), 0.125, true, "transposed, causal");
            // A contiguous view at an odd offset.
            let big = seeded(&[1 + 2 * 3 * 4 * 24], 12, -8.0, 8.0, dtype, &dev).unwrap();
            let off = big.narrow(0, 1, 2 * 3 * 4 * 24).unwrap();
            let off = off.reshape((2, 3, 4, 24)).unwrap();
            check(&off, None, 0.125, true, "odd offset");
        }
    }
}

#[test]
fn large_magnitudes_stay_finite() {
    for dev in devices() {
        for (dtype, mag) in [
            (DType::F32, 1e30f32),
            (DType::F16, 6e4),
            (DType::BF16, 1e30),
        ] {
            let s = seeded(&[1, 2, 3, 257], 13, -mag, mag, dtype, &dev).unwrap();
            let got = masked_softmax(&s, None, 1.0, false).unwrap();
            let v: Vec<f32> = got
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{dtype:?}");
            check(&s, None, 1.0, false, &format!("±{mag}"));
        }
    }
}

#[test]
fn the_cuda_row_cache_limit_is_tested() {
    // SHAPES covers rows on both sides of the shared-memory cache.
    assert!(SHAPES
        .iter()
        .any(|s| s[3] <= CUDA_CACHED_MAX_COLS && s[3] > 1024));
    assert!(SHAPES.iter().any(|s| s[3] > CUDA_CACHED_MAX_COLS));
}

#[test]
fn bad_masks_are_errors() {
    let dev = Device::Cpu;
    let s = Tensor::zeros((2, 3, 4, 5), DType::F32, &dev).unwrap();
    for dims in [
        &[2, 4][..],
        &[3, 5],
        &[2, 3, 5],
        &[2, 3, 4, 5],
        &[2, 2, 4, 5],
    ] {
        let m = Tensor::zeros(dims, DType::F32, &dev).unwrap();
        assert!(
            masked_softmax(&s, Some(&m), 1.0, false).is_err(),
            "mask {dims:?} accepted"
        );
    }
    let m = Tensor::zeros((2, 5), DType::U8, &dev).unwrap();
    assert!(masked_softmax(&s, Some(&m), 1.0, false).is_err(), "u8 mask");
    let s3 = Tensor::zeros((3, 4, 5), DType::F32, &dev).unwrap();
    assert!(masked_softmax(&s3, None, 1.0, false).is_err(), "3-D scores");
}

/// Values printed by PyTorch 2.x (f32, CPU):
/// ```python
/// s = torch.tensor([[[[1., 2., 3., 4.], [.5, -1., 2., 0.]]]])
/// mask = torch.tensor([[0., 0., 0., float("-inf")]])
/// torch.softmax(s * .5 + mask[:, None, None, :], -1)
/// causal = torch.ones(2, 4, dtype=torch.bool).triu(diagonal=3)  # j > i + (4 - 2)
/// torch.softmax((s * .5).masked_fill(causal, float("-inf")), -1)
/// ```
#[test]
fn pytorch_values() {
    let masked = [
        [0.18632373f32, 0.3071959, 0.5064804, 0.0],
        [0.2786007, 0.13160165, 0.5897977, 0.0],
    ];
    let causal = [
        [0.18632373f32, 0.3071959, 0.5064804, 0.0],
        [0.22892895, 0.10813838, 0.4846426, 0.17829005],
    ];
    for dev in devices() {
        let s = Tensor::new(&[[[[1f32, 2., 3., 4.], [0.5, -1., 2., 0.]]]], &dev).unwrap();
        let m = Tensor::new(&[[0f32, 0., 0., f32::NEG_INFINITY]], &dev).unwrap();
        for (got, want) in [
            (masked_softmax(&s, Some(&m), 0.5, false).unwrap(), masked),
            (masked_softmax(&s, None, 0.5, true).unwrap(), causal),
        ] {
            let got: Vec<Vec<f32>> = got
                .squeeze(0)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2()
                .unwrap();
            for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!((g - w).abs() <= 1e-6, "{dev:?}: {g} vs PyTorch {w}");
            }
        }
    }
}
