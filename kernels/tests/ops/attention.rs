//! Tests of `torchless_kernels::attention`: prefill and decode against their f32 references on
//! every device and dtype (query and key counts that are not multiples of the tiles, every
//! CUDA head dimension plus one the kernels lack, GQA, causal with fewer queries than keys,
//! padding down to zero valid keys, non-contiguous queries, large magnitudes), the bf16 error
//! against PyTorch's habit (at most twice the unfused low-precision composition's), and values
//! computed by PyTorch itself.
//!
//! The fused paths and the references read the same low-precision inputs and both compute in
//! f32, so the shared dtype tolerances of `testing::compare` apply unchanged.

use candle_core::{DType, Device, Tensor, D};
use torchless_kernels::attention::{
    decode_attention, decode_attention_reference, flash_attention, flash_attention_reference,
    repeat_kv, varlen_attention, varlen_attention_padded, varlen_attention_reference,
    AttentionOptions, VarlenOptions,
};
use torchless_kernels::testing::{assert_close, devices, seeded, FLOAT_DTYPES};

/// q `[b, hq, tq, d]`, k and v `[b, hk, tk, d]`, seeded uniform in [-2, 2).
fn qkv(
    dev: &Device,
    dtype: DType,
    (b, hq, hk): (usize, usize, usize),
    (tq, tk, d): (usize, usize, usize),
) -> (Tensor, Tensor, Tensor) {
    let q = seeded(&[b, hq, tq, d], 1, -2.0, 2.0, dtype, dev).unwrap();
    let k = seeded(&[b, hk, tk, d], 2, -2.0, 2.0, dtype, dev).unwrap();
    let v = seeded(&[b, hk, tk, d], 3, -2.0, 2.0, dtype, dev).unwrap();
    (q, k, v)
}

fn opts(d: usize, causal: bool, key_lengths: Option<Vec<u32>>) -> AttentionOptions {
    AttentionOptions {
        causal,
        key_lengths,
        ..AttentionOptions::for_head_dim(d)
    }
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor, o: &AttentionOptions, what: &str) -> Tensor {
    let got = flash_attention(q, k, v, o).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = flash_attention_reference(q, k, v, o).unwrap();
    assert_close(&got, &want, what);
    got
}

/// `|got - want| <= 1e-2 + 1e-2·|want|`: with scores in the hundreds, f32 rounding of the
/// scores (~1e-4 absolute) moves the softmax weights of near-ties by ~1e-4 relative, over the
/// f32 tolerance though far below any real error.
fn assert_close_loose(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    for (a, b) in to_vec(got).iter().zip(to_vec(want)) {
        assert!((a - b).abs() <= 1e-2 + 1e-2 * b.abs(), "{what}: {a} vs {b}");
    }
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn flash_attention_matches_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for t in [1, 7, 64, 130] {
                // 48: no CUDA kernel (reference fallback there; the CPU path takes any D).
                for d in [32, 64, 80, 128, 48] {
                    for causal in [false, true] {
                        let (q, k, v) = qkv(&dev, dtype, (1, 2, 1), (t, t, d));
                        let what = format!("{dev:?} {dtype:?} T={t} D={d} causal={causal}");
                        check(&q, &k, &v, &opts(d, causal, None), &what);
                    }
                }
            }
        }
    }
}

#[test]
fn head_dim_96_and_gqa() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for (d, t) in [(96, 70), (64, 130), (128, 33)] {
                let (q, k, v) = qkv(&dev, dtype, (1, 8, 2), (t, t, d));
                for causal in [false, true] {
                    let what = format!("GQA 8/2 {dev:?} {dtype:?} T={t} D={d} causal={causal}");
                    check(&q, &k, &v, &opts(d, causal, None), &what);
                }
            }
        }
    }
}

#[test]
fn gqa_uses_kv_head_h_over_group() {
    // Hq = 4, Hk = 2: query heads 0, 1 use kv head 0, heads 2, 3 kv head 1 — the same as
    // attention over explicitly repeated kv heads.
    for dev in devices() {
        let (q, k, v) = qkv(&dev, DType::F32, (1, 4, 2), (9, 9, 32));
        let o = opts(32, false, None);
        let gqa = flash_attention(&q, &k, &v, &o).unwrap();
        let kr = repeat_kv(&k, 2).unwrap();
        let vr = repeat_kv(&v, 2).unwrap();
        assert_close(
            &gqa,
            &flash_attention(&q, &kr, &vr, &o).unwrap(),
            "GQA vs repeated heads",
        );
    }
}

#[test]
fn causal_with_fewer_queries_than_keys() {
    // Bottom-right aligned: query i sees keys 0 ..= i + Tk - Tq.
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for (tq, tk, d) in [(1, 70, 64), (5, 70, 64), (64, 130, 128), (33, 200, 80)] {
                let (q, k, v) = qkv(&dev, dtype, (2, 2, 1), (tq, tk, d));
                let what = format!("causal {dev:?} {dtype:?} Tq={tq} Tk={tk} D={d}");
                check(&q, &k, &v, &opts(d, true, None), &what);
                // The last query attends to every key: the non-causal result for that row.
                let got = flash_attention(&q, &k, &v, &opts(d, true, None)).unwrap();
                let full = flash_attention(&q, &k, &v, &opts(d, false, None)).unwrap();
                assert_close(
                    &got.narrow(2, tq - 1, 1).unwrap(),
                    &full.narrow(2, tq - 1, 1).unwrap(),
                    &format!("{what}: last row"),
                );
            }
        }
    }
}

#[test]
fn causal_with_more_queries_than_keys_gives_zero_rows() {
    // Tq = 10, Tk = 4: query i sees keys j <= i - 6, so rows 0..6 have no key and are zero.
    for dev in devices() {
        let (q, k, v) = qkv(&dev, DType::F32, (1, 2, 2), (10, 4, 64));
        let got = check(&q, &k, &v, &opts(64, true, None), "Tq > Tk causal");
        let head0 = to_vec(&got.narrow(1, 0, 1).unwrap());
        assert!(head0[..6 * 64].iter().all(|&x| x == 0.0), "rows 0..6 zero");
        assert!(
            head0[6 * 64..].iter().any(|&x| x != 0.0),
            "rows 6.. not zero"
        );
    }
}

#[test]
fn padding_masks_keys_and_an_empty_batch_outputs_zeros() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for (t, d) in [(7, 32), (64, 64), (130, 80), (130, 128), (40, 48)] {
                let (q, k, v) = qkv(&dev, dtype, (3, 2, 1), (t, t, d));
                let lens = vec![t as u32, (t as u32).div_ceil(2), 0];
                for causal in [false, true] {
                    let o = opts(d, causal, Some(lens.clone()));
                    let what = format!("padding {dev:?} {dtype:?} T={t} D={d} causal={causal}");
                    let got = check(&q, &k, &v, &o, &what);
                    let empty = to_vec(&got.narrow(0, 2, 1).unwrap());
                    assert!(empty.iter().all(|&x| x == 0.0), "{what}: batch 2 not zero");
                }
                // Padded keys are ignored whatever they hold.
                let o = opts(d, false, Some(vec![t as u32, 3, 1]));
                let junk_k = (k.clone() * 100.0).unwrap();
                let a = flash_attention(&q, &k, &v, &o).unwrap();
                let keep = Tensor::arange(0u32, t as u32, &dev)
                    .unwrap()
                    .reshape((1, 1, t, 1))
                    .unwrap()
                    .lt(3u32)
                    .unwrap()
                    .broadcast_as(k.shape())
                    .unwrap();
                let k2 = keep.where_cond(&k, &junk_k).unwrap();
                let b = flash_attention(&q, &k2, &v, &o).unwrap();
                assert_close(
                    &a.narrow(0, 1, 2).unwrap(),
                    &b.narrow(0, 1, 2).unwrap(),
                    "padded keys ignored",
                );
            }
        }
    }
}

#[test]
fn non_contiguous_queries() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for (t, d) in [(7, 64), (130, 128)] {
                // q as a model produces it: [B, T, H, D] from a linear layer, heads transposed.
                let q = seeded(&[2, t, 4, d], 7, -2.0, 2.0, dtype, &dev)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap();
                assert!(!q.is_contiguous());
                let k = seeded(&[2, 2, t, d], 8, -2.0, 2.0, dtype, &dev).unwrap();
                let v = seeded(&[2, 2, t, d], 9, -2.0, 2.0, dtype, &dev).unwrap();
                let what = format!("transposed q {dev:?} {dtype:?} T={t} D={d}");
                let got = check(&q, &k, &v, &opts(d, true, None), &what);
                let contiguous =
                    flash_attention(&q.contiguous().unwrap(), &k, &v, &opts(d, true, None))
                        .unwrap();
                assert_close(&got, &contiguous, &what);
            }
        }
    }
}

#[test]
fn large_magnitudes_stay_finite() {
    // Scores in the hundreds: exp without the running maximum would overflow.
    for dev in devices() {
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let (q, k, v) = qkv(&dev, DType::F32, (1, 2, 2), (70, 70, 64));
            let q = (q * 15.0).unwrap().to_dtype(dtype).unwrap();
            let k = (k * 15.0).unwrap().to_dtype(dtype).unwrap();
            let v = v.to_dtype(dtype).unwrap();
            for causal in [false, true] {
                let what = format!("large {dev:?} {dtype:?} causal={causal}");
                let o = opts(64, causal, None);
                let got = flash_attention(&q, &k, &v, &o).unwrap();
                assert_close_loose(
                    &got,
                    &flash_attention_reference(&q, &k, &v, &o).unwrap(),
                    &what,
                );
                assert!(to_vec(&got).iter().all(|x| x.is_finite()), "{what}");
            }
            let kc = Tensor::cat(&[&k, &k], 2).unwrap();
            let vc = Tensor::cat(&[&v, &v], 2).unwrap();
            let q1 = q.narrow(2, 0, 1).unwrap();
            let got = decode_attention(&q1, &kc, &vc, 100, 0.125).unwrap();
            assert!(to_vec(&got).iter().all(|x| x.is_finite()));
            assert_close_loose(
                &got,
                &decode_attention_reference(&q1, &kc, &vc, 100, 0.125).unwrap(),
                "large decode",
            );
        }
    }
}

#[test]
fn bf16_error_at_most_twice_the_unfused_bf16_composition() {
    // flash-attention's criterion: against the f32 result on the f32 inputs, the fused bf16
    // output may err at most twice as much as the plain bf16 composition (what PyTorch eager
    // computes in bf16).
    for dev in devices() {
        for (t, d, causal) in [(130, 64, false), (130, 128, true), (257, 80, true)] {
            let (q, k, v) = qkv(&dev, DType::F32, (1, 4, 4), (t, t, d));
            let o = opts(d, causal, None);
            let exact = flash_attention_reference(&q, &k, &v, &o).unwrap();
            let bf = |x: &Tensor| x.to_dtype(DType::BF16).unwrap();
            let fused = flash_attention(&bf(&q), &bf(&k), &bf(&v), &o).unwrap();
            let mask = if causal {
                let m: Vec<f32> = (0..t * t)
                    .map(|x| {
                        if x % t > x / t {
                            f32::NEG_INFINITY
                        } else {
                            0.0
                        }
                    })
                    .collect();
                Some(bf(&Tensor::from_vec(m, (t, t), &dev).unwrap()))
            } else {
                None
            };
            let s = (bf(&q).matmul(&bf(&k).t().unwrap()).unwrap() * f64::from(o.scale)).unwrap();
            let s = match &mask {
                Some(m) => s.broadcast_add(m).unwrap(),
                None => s,
            };
            let p = candle_nn::ops::softmax_last_dim(&s).unwrap();
            let unfused = p.matmul(&bf(&v)).unwrap();
            let err = |x: &Tensor| {
                (x.to_dtype(DType::F32).unwrap() - &exact)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(D::Minus1)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let (ef, eu) = (err(&fused), err(&unfused));
            assert!(
                ef <= 2.0 * eu + 1e-6,
                "{dev:?} T={t} D={d}: fused bf16 error {ef} vs unfused bf16 {eu}"
            );
        }
    }
}

#[test]
fn decode_matches_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for d in [32, 64, 80, 96, 128, 48] {
                // T_max = 1100 with 1000 or 1100 valid rows: several key splits on CUDA.
                for (t_max, lens) in [(16, &[1usize, 7, 16][..]), (1100, &[1000, 1100, 130])] {
                    let (q, k, v) = qkv(&dev, dtype, (2, 4, 2), (1, t_max, d));
                    for &len in lens {
                        let what =
                            format!("decode {dev:?} {dtype:?} D={d} T_max={t_max} len={len}");
                        let got = decode_attention(&q, &k, &v, len, 0.1).unwrap();
                        let want = decode_attention_reference(&q, &k, &v, len, 0.1).unwrap();
                        assert_close(&got, &want, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn decode_reads_only_the_first_len_rows() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            let (q, k, v) = qkv(&dev, dtype, (1, 4, 4), (1, 600, 64));
            // Rows from 517 on hold NaN: any read of them would poison the output.
            let valid = Tensor::arange(0u32, 600, &dev)
                .unwrap()
                .reshape((1, 1, 600, 1))
                .unwrap()
                .lt(517u32)
                .unwrap()
                .broadcast_as(k.shape())
                .unwrap();
            let nan = Tensor::full(f32::NAN, k.shape(), &dev)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let k = valid.where_cond(&k, &nan).unwrap();
            let v = valid.where_cond(&v, &nan).unwrap();
            let got = decode_attention(&q, &k, &v, 517, 0.125).unwrap();
            assert!(
                to_vec(&got).iter().all(|x| x.is_finite()),
                "{dev:?} {dtype:?}"
            );
            assert_close(
                &got,
                &decode_attention_reference(&q, &k, &v, 517, 0.125).unwrap(),
                "decode len 517 of 600",
            );
            // The prefill kernel with the same rows as padding ignores them too.
            let o = AttentionOptions {
                scale: 0.125,
                causal: false,
                key_lengths: Some(vec![517]),
            };
            assert_close(
                &flash_attention(&q, &k, &v, &o).unwrap(),
                &got,
                "prefill with padding = decode",
            );
        }
    }
}

#[test]
fn decode_equals_the_last_row_of_causal_prefill() {
    for dev in devices() {
        let (q, k, v) = qkv(&dev, DType::F32, (1, 8, 2), (40, 40, 128));
        let o = opts(128, true, None);
        let prefill = flash_attention(&q, &k, &v, &o).unwrap();
        let last = q.narrow(2, 39, 1).unwrap();
        let dec = decode_attention(&last, &k, &v, 40, o.scale).unwrap();
        assert_close(
            &dec,
            &prefill.narrow(2, 39, 1).unwrap(),
            "decode vs prefill",
        );
    }
}

#[test]
fn invalid_inputs_are_errors() {
    let dev = Device::Cpu;
    let (q, k, v) = qkv(&dev, DType::F32, (2, 3, 2), (4, 4, 8));
    assert!(
        flash_attention(&q, &k, &v, &opts(8, false, None)).is_err(),
        "3 % 2 heads"
    );
    let (q, k, v) = qkv(&dev, DType::F32, (2, 4, 2), (4, 4, 8));
    assert!(flash_attention(&q, &k, &v, &opts(8, false, Some(vec![4]))).is_err());
    assert!(flash_attention(&q, &k, &v, &opts(8, false, Some(vec![4, 5]))).is_err());
    assert!(flash_attention(&q, &k, &v.narrow(3, 0, 4).unwrap(), &opts(8, false, None)).is_err());
    let q1 = q.narrow(2, 0, 1).unwrap();
    assert!(decode_attention(&q1, &k, &v, 0, 0.1).is_err(), "len 0");
    assert!(
        decode_attention(&q1, &k, &v, 5, 0.1).is_err(),
        "len > T_max"
    );
    assert!(
        decode_attention(&q, &k, &v, 2, 0.1).is_err(),
        "several tokens"
    );
    // No keys at all: every row is empty, zeros.
    let e = Tensor::zeros((2, 2, 0, 8), DType::F32, &dev).unwrap();
    let z = flash_attention(&q, &e, &e, &opts(8, false, None)).unwrap();
    assert_eq!(z.dims(), q.dims());
    assert!(to_vec(&z).iter().all(|&x| x == 0.0));
}

/// PyTorch 2.15 (`/work/venv/bin/python`), float32:
/// ```python
/// import torch, torch.nn.functional as F
/// torch.manual_seed(0)
/// q = torch.randn(1, 2, 3, 4); k = torch.randn(1, 1, 3, 4); v = torch.randn(1, 1, 3, 4)
/// causal = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
/// pad = torch.tensor([True, True, False]).view(1, 1, 1, 3)
/// padded = F.scaled_dot_product_attention(q, k, v, attn_mask=pad, enable_gqa=True)
/// br = torch.ones(2, 3, dtype=torch.bool).tril(diagonal=1)  # bottom-right causal, Tq=2, Tk=3
/// bottom_right = F.scaled_dot_product_attention(q[:, :, 1:], k, v, attn_mask=br,
///                                               enable_gqa=True, scale=0.3)
/// ```
#[test]
fn pytorch_scaled_dot_product_attention_values() {
    #[rustfmt::skip]
    let q = [
        -1.1258398f32, -1.1523602, -0.2505786, -0.4338788, 0.8487104, 0.6920092, -0.3160128,
        -2.1152194, 0.4680964, -0.1577124, 1.4436601, 0.2660494, 0.1664553, 0.8743818,
        -0.1434738, -0.1116093, 0.9318266, 1.2590092, 2.0049806, 0.0537369, 0.6180567,
        -0.4128022, -0.8410648, -2.316_042,
    ];
    #[rustfmt::skip]
    let k = [
        0.3703935f32, 1.4565026, 0.9398099, 0.7748488, 0.1918694, 1.2637948, -1.2904351,
        -0.7911027, -0.0208795, -0.7184801, 0.5186368, -1.3125219,
    ];
    #[rustfmt::skip]
    let v = [
        0.1919951f32, 0.5427713, -2.2187793, 0.2589845, -1.0297022, -0.5007584, 0.2733677,
        -0.9181, -0.0404211, 0.2881168, -0.0075373, -0.9144955,
    ];
    #[rustfmt::skip]
    let causal = [
        0.1919951f32, 0.5427713, -2.2187793, 0.2589845, -0.8660058, -0.3609349, -0.0605574,
        -0.7603813, 0.0027006, 0.3618108, -1.2362311, -0.249404, 0.1919951, 0.5427713,
        -2.2187793, 0.2589845, 0.0977973, 0.4623109, -2.0266244, 0.1682266, -0.4696298,
        -0.0521638, 0.0530578, -0.8825635,
    ];
    #[rustfmt::skip]
    let padded = [
        -0.6589133f32, -0.1840439, -0.4830066, -0.5608512, -0.8660058, -0.3609349, -0.0605574,
        -0.7603813, 0.0252458, 0.4003401, -1.8786266, 0.0983244, -0.464056, -0.0176039,
        -0.8804969, -0.3731095, 0.0977973, 0.4623109, -2.0266244, 0.1682266, -0.9553156,
        -0.4372201, 0.1216262, -0.8464298,
    ];
    #[rustfmt::skip]
    let bottom_right = [
        -0.729077f32, -0.2439752, -0.3398794, -0.6284527, -0.0861258, 0.2851488, -1.0305922,
        -0.3483468, -0.0328086, 0.3507521, -1.7602011, 0.04239, -0.4488335, -0.0317535,
        -0.0712781, -0.8177513,
    ];
    for dev in devices() {
        let q = Tensor::from_slice(&q, (1, 2, 3, 4), &dev).unwrap();
        let k = Tensor::from_slice(&k, (1, 1, 3, 4), &dev).unwrap();
        let v = Tensor::from_slice(&v, (1, 1, 3, 4), &dev).unwrap();
        let near = |got: Tensor, want: &[f32], what: &str| {
            for (a, b) in to_vec(&got).iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "{what} {dev:?}: {a} vs {b}");
            }
        };
        let o = opts(4, true, None);
        near(flash_attention(&q, &k, &v, &o).unwrap(), &causal, "causal");
        let o = opts(4, false, Some(vec![2]));
        near(flash_attention(&q, &k, &v, &o).unwrap(), &padded, "padded");
        let o = AttentionOptions {
            scale: 0.3,
            causal: true,
            key_lengths: None,
        };
        let q2 = q.narrow(2, 1, 2).unwrap();
        near(
            flash_attention(&q2, &k, &v, &o).unwrap(),
            &bottom_right,
            "bottom-right causal",
        );
        // Decode of the last query over the 3 cached keys = the last causal row.
        let q3 = q.narrow(2, 2, 1).unwrap();
        let dec = decode_attention(&q3, &k, &v, 3, 0.5).unwrap();
        near(
            dec,
            &[causal[8..12].to_vec(), causal[20..24].to_vec()].concat(),
            "decode",
        );
    }
}

/// A packed qkv matrix `[N, (hq + 2·hk)·d]` for sequences of `lens`, seeded in [-2, 2), and
/// its `cu_seqlens`.
fn packed_qkv(
    dev: &Device,
    dtype: DType,
    lens: &[usize],
    (hq, hk, d): (usize, usize, usize),
) -> (Tensor, Vec<u32>) {
    let mut cu = vec![0u32];
    for &l in lens {
        cu.push(cu[cu.len() - 1] + l as u32);
    }
    let n = cu[cu.len() - 1] as usize;
    let qkv = seeded(&[n, (hq + 2 * hk) * d], 7, -2.0, 2.0, dtype, dev).unwrap();
    (qkv, cu)
}

fn varlen_opts(hq: usize, hk: usize, d: usize, causal: bool) -> VarlenOptions {
    VarlenOptions {
        heads: hq,
        kv_heads: hk,
        scale: 1.0 / (d as f32).sqrt(),
        causal,
    }
}

/// The sequence lengths the varlen tests run: single ones at odd lengths (1, 7, 17, 255, one
/// past a tile) and mixed batches (empty sequences included).
const VARLEN_BATCHES: &[&[usize]] = &[
    &[1],
    &[7],
    &[17],
    &[255],
    &[65],
    &[1, 7, 17, 255],
    &[3, 0, 64, 1, 130, 0],
    &[17; 9],
];

#[test]
fn varlen_attention_matches_reference_at_odd_and_mixed_lengths() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for lens in VARLEN_BATCHES {
                for (hq, hk, d) in [(4, 4, 32), (4, 2, 64), (3, 1, 48)] {
                    for causal in [false, true] {
                        let (qkv, cu) = packed_qkv(&dev, dtype, lens, (hq, hk, d));
                        let o = varlen_opts(hq, hk, d, causal);
                        let what = format!(
                            "{dev:?} {dtype:?} lens {lens:?} heads {hq}/{hk} D={d} causal={causal}"
                        );
                        let got = varlen_attention(&qkv, &cu, &o).unwrap();
                        let want = varlen_attention_reference(&qkv, &cu, &o).unwrap();
                        assert_eq!(got.dims(), [qkv.dim(0).unwrap(), hq * d], "{what}");
                        assert_close(&got, &want, &what);
                        // The padded route (what devices without a varlen kernel take).
                        let padded = varlen_attention_padded(&qkv, &cu, &o).unwrap();
                        assert_close(&padded, &want, &format!("padded route, {what}"));
                    }
                }
            }
        }
    }
}

/// Each sequence of a packed batch gets what the padded kernel gives its row of a right-padded
/// `[B, max L]` batch with key lengths: the unpadded path changes the cost, not the values.
#[test]
fn varlen_attention_equals_padded_flash_attention_rows() {
    let dev = Device::Cpu;
    let (hq, d) = (4, 32);
    let lens = [1usize, 7, 17, 255, 40];
    let (qkv, cu) = packed_qkv(&dev, DType::F32, &lens, (hq, hq, d));
    let o = varlen_opts(hq, hq, d, false);
    let got = varlen_attention(&qkv, &cu, &o).unwrap();
    let tmax = 255;
    let mut rows = Vec::new();
    for (i, &l) in lens.iter().enumerate() {
        let seq = qkv.narrow(0, cu[i] as usize, l).unwrap();
        let pad = Tensor::zeros((tmax - l, 3 * hq * d), DType::F32, &dev).unwrap();
        rows.push(Tensor::cat(&[&seq, &pad], 0).unwrap());
    }
    let batch = Tensor::stack(&rows, 0)
        .unwrap()
        .reshape((lens.len(), tmax, 3, hq, d))
        .unwrap();
    let part = |i: usize| {
        batch
            .narrow(2, i, 1)
            .unwrap()
            .squeeze(2)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
    };
    let lengths = lens.iter().map(|&l| l as u32).collect();
    let padded = flash_attention(&part(0), &part(1), &part(2), &opts(d, false, Some(lengths)))
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    for (i, &l) in lens.iter().enumerate() {
        let want = padded
            .get(i)
            .unwrap()
            .narrow(0, 0, l)
            .unwrap()
            .reshape((l, hq * d))
            .unwrap();
        let row = got.narrow(0, cu[i] as usize, l).unwrap();
        assert_close(&row, &want, &format!("sequence {i} of length {l}"));
    }
}

#[test]
fn varlen_attention_refuses_bad_offsets_and_heads() {
    let dev = Device::Cpu;
    let (qkv, _) = packed_qkv(&dev, DType::F32, &[5, 3], (2, 2, 8));
    let o = varlen_opts(2, 2, 8, false);
    for bad in [&[0u32, 5][..], &[1, 5, 8], &[0, 6, 5, 8], &[0, 5, 9], &[]] {
        let e = varlen_attention(&qkv, bad, &o).unwrap_err().to_string();
        assert!(e.contains("cu_seqlens"), "{bad:?}: {e}");
    }
    let e = varlen_attention(&qkv, &[0, 8], &varlen_opts(3, 2, 8, false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple"), "{e}");
    let e = varlen_attention(&qkv, &[0, 8], &varlen_opts(5, 5, 8, false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not split"), "{e}");
}
