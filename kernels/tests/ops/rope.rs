//! Tests of `torchless_kernels::rope`: the fused op against its f32 reference (both layouts,
//! GQA, decode offsets, non-contiguous q), against candle-nn's `rope`/`rope_i`, and against
//! values from Hugging Face's `apply_rotary_pos_emb` and Meta's original Llama code.

use candle_core::{DType, Device, Tensor};
use torchless_kernels::rope::{rope_qk, rope_qk_packed, rope_qk_reference, RopeLayout, RopeTable};
use torchless_kernels::testing::{assert_close, devices, seeded, FLOAT_DTYPES};

const LAYOUTS: [RopeLayout; 2] = [RopeLayout::HalfSplit, RopeLayout::Interleaved];

/// (batch, q heads, k heads, seq, head_dim, offset).
const SHAPES: [(usize, usize, usize, usize, usize, usize); 8] = [
    (1, 4, 4, 7, 16, 0),
    (2, 5, 1, 9, 8, 3),      // odd head counts, GQA
    (1, 32, 8, 1, 128, 100), // decode: one token at a non-zero offset
    (2, 3, 3, 33, 6, 0),     // D/2 odd: no vector path
    (1, 1, 1, 3, 2, 1),      // a single pair
    (3, 7, 3, 5, 130, 11),   // D/2 odd, rows not a multiple of any vector
    (1, 12, 12, 128, 64, 0), // BERT-size prefill
    (2, 6, 2, 17, 96, 40),
];

fn table(d: usize, p: usize, dtype: DType, dev: &Device) -> RopeTable {
    RopeTable::from_theta(d, p, 10_000.0, dtype, dev).unwrap()
}

#[test]
fn rope_qk_matches_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for (b, hq, hk, t, d, off) in SHAPES {
                let q = seeded(&[b, hq, t, d], 1, -2.0, 2.0, dtype, &dev).unwrap();
                let k = seeded(&[b, hk, t, d], 2, -2.0, 2.0, dtype, &dev).unwrap();
                // The table in f32 and in the model dtype (HF casts cos/sin to x.dtype).
                for tdt in [DType::F32, dtype] {
                    let tab = table(d, off + t + 3, tdt, &dev);
                    for layout in LAYOUTS {
                        let (gq, gk) = rope_qk(&q, &k, &tab, off, layout).unwrap();
                        let (wq, wk) = rope_qk_reference(&q, &k, &tab, off, layout).unwrap();
                        let what = format!(
                            "{dev:?} {dtype:?} table {tdt:?} b{b} hq{hq} hk{hk} t{t} d{d} off{off} {layout:?}"
                        );
                        assert_close(&gq, &wq, &format!("{what} q"));
                        assert_close(&gk, &wk, &format!("{what} k"));
                        let packed = rope_qk_packed(&q, &k, &tab, off, layout).unwrap();
                        let want = Tensor::cat(&[&wq, &wk], 1).unwrap();
                        assert_close(&packed, &want, &format!("{what} packed"));
                    }
                }
            }
        }
    }
}

#[test]
fn non_contiguous_q_from_a_transposed_projection() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            // [B, T, H, D] as a projection produces it, transposed to [B, H, T, D].
            let q = seeded(&[2, 9, 6, 32], 3, -1.0, 1.0, dtype, &dev)
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            let k = seeded(&[2, 9, 2, 32], 4, -1.0, 1.0, dtype, &dev)
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            assert!(!q.is_contiguous());
            let tab = table(32, 64, dtype, &dev);
            for layout in LAYOUTS {
                let (gq, gk) = rope_qk(&q, &k, &tab, 7, layout).unwrap();
                let (wq, wk) = rope_qk_reference(&q, &k, &tab, 7, layout).unwrap();
                assert_close(
                    &gq,
                    &wq,
                    &format!("{dev:?} {dtype:?} {layout:?} transposed q"),
                );
                assert_close(
                    &gk,
                    &wk,
                    &format!("{dev:?} {dtype:?} {layout:?} transposed k"),
                );
            }
        }
    }
}

#[test]
fn matches_candle_nn_rope_and_rope_i() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for (b, hq, hk, t, d, off) in [(1, 4, 2, 7, 16, 5), (2, 3, 3, 1, 64, 100)] {
                let q = seeded(&[b, hq, t, d], 5, -2.0, 2.0, dtype, &dev).unwrap();
                let k = seeded(&[b, hk, t, d], 6, -2.0, 2.0, dtype, &dev).unwrap();
                let tab = table(d, off + t, dtype, &dev);
                let cos = tab.cos().narrow(0, off, t).unwrap();
                let sin = tab.sin().narrow(0, off, t).unwrap();
                for (layout, f) in [
                    (
                        RopeLayout::HalfSplit,
                        candle_nn::rotary_emb::rope as fn(&Tensor, &Tensor, &Tensor) -> _,
                    ),
                    (RopeLayout::Interleaved, candle_nn::rotary_emb::rope_i),
                ] {
                    let (gq, gk) = rope_qk(&q, &k, &tab, off, layout).unwrap();
                    let what = format!("{dev:?} {dtype:?} {layout:?} vs candle-nn");
                    assert_close(&gq, &f(&q, &cos, &sin).unwrap(), &format!("{what} q"));
                    assert_close(&gk, &f(&k, &cos, &sin).unwrap(), &format!("{what} k"));
                }
            }
        }
    }
}

#[test]
fn table_given_as_cos_and_sin_matches_from_theta() {
    let dev = Device::Cpu;
    let t = table(8, 10, DType::F32, &dev);
    let custom = RopeTable::new(t.cos(), t.sin()).unwrap();
    assert_eq!((custom.max_positions(), custom.head_dim()), (10, 8));
    let q = seeded(&[1, 2, 4, 8], 7, -1.0, 1.0, DType::F32, &dev).unwrap();
    let (a, _) = rope_qk(&q, &q, &t, 6, RopeLayout::HalfSplit).unwrap();
    let (b, _) = rope_qk(&q, &q, &custom, 6, RopeLayout::HalfSplit).unwrap();
    assert_close(&a, &b, "RopeTable::new vs from_theta");
    // Position 0 is the identity.
    let (y, _) = rope_qk(&q, &q, &t, 0, RopeLayout::Interleaved).unwrap();
    let y0: Vec<f32> = y
        .narrow(2, 0, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let q0: Vec<f32> = q
        .narrow(2, 0, 1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(y0, q0);
}

#[test]
fn odd_head_dim_is_a_clear_error() {
    let dev = Device::Cpu;
    let q = Tensor::zeros((1, 2, 3, 7), DType::F32, &dev).unwrap();
    let tab = table(8, 16, DType::F32, &dev);
    let e = rope_qk(&q, &q, &tab, 0, RopeLayout::HalfSplit).unwrap_err();
    assert!(e.to_string().contains("head_dim must be even"), "{e}");
    let e = rope_qk_reference(&q, &q, &tab, 0, RopeLayout::Interleaved).unwrap_err();
    assert!(e.to_string().contains("head_dim must be even"), "{e}");
    let e = RopeTable::from_theta(7, 16, 10_000.0, DType::F32, &dev).unwrap_err();
    assert!(e.to_string().contains("even"), "{e}");
}

#[test]
fn positions_past_the_table_and_mismatched_shapes_are_errors() {
    let dev = Device::Cpu;
    let tab = table(8, 16, DType::F32, &dev);
    let q = Tensor::zeros((1, 2, 4, 8), DType::F32, &dev).unwrap();
    let e = rope_qk(&q, &q, &tab, 13, RopeLayout::HalfSplit).unwrap_err();
    assert!(e.to_string().contains("past the table"), "{e}");
    assert!(rope_qk(&q, &q, &tab, 12, RopeLayout::HalfSplit).is_ok());
    let e = rope_qk(&q, &q, &tab, usize::MAX, RopeLayout::HalfSplit).unwrap_err();
    assert!(e.to_string().contains("past the table"), "{e}");
    let k = Tensor::zeros((1, 2, 5, 8), DType::F32, &dev).unwrap();
    assert!(rope_qk(&q, &k, &tab, 0, RopeLayout::HalfSplit).is_err());
    let q16 = Tensor::zeros((1, 2, 4, 16), DType::F32, &dev).unwrap();
    let e = rope_qk(&q16, &q16, &tab, 0, RopeLayout::HalfSplit).unwrap_err();
    assert!(e.to_string().contains("table is for head_dim 8"), "{e}");
    let q3 = Tensor::zeros((2, 4, 8), DType::F32, &dev).unwrap();
    assert!(rope_qk(&q3, &q3, &tab, 0, RopeLayout::HalfSplit).is_err());
}

#[test]
fn mixed_q_and_k_dtypes_use_the_reference() {
    for dev in devices() {
        let q = seeded(&[1, 2, 3, 8], 8, -1.0, 1.0, DType::BF16, &dev).unwrap();
        let k = seeded(&[1, 1, 3, 8], 9, -1.0, 1.0, DType::F32, &dev).unwrap();
        let tab = table(8, 8, DType::F32, &dev);
        let (gq, gk) = rope_qk(&q, &k, &tab, 2, RopeLayout::HalfSplit).unwrap();
        let (wq, wk) = rope_qk_reference(&q, &k, &tab, 2, RopeLayout::HalfSplit).unwrap();
        assert_close(&gq, &wq, "mixed q");
        assert_close(&gk, &wk, "mixed k");
        let e = rope_qk_packed(&q, &k, &tab, 2, RopeLayout::HalfSplit).unwrap_err();
        assert!(e.to_string().contains("different dtypes"), "{e}");
    }
}

fn pytorch_inputs(dev: &Device) -> (Tensor, Tensor) {
    let q = ((Tensor::arange(0f32, 32., dev).unwrap() / 8.0).unwrap() - 2.0)
        .unwrap()
        .sin()
        .unwrap()
        .reshape((1, 2, 2, 8))
        .unwrap();
    let k = ((Tensor::arange(0f32, 16., dev).unwrap() / 4.0).unwrap() + 1.0)
        .unwrap()
        .cos()
        .unwrap()
        .reshape((1, 1, 2, 8))
        .unwrap();
    (q, k)
}

fn assert_values(got: &Tensor, want: &[f32], what: &str) {
    let v: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(v.len(), want.len(), "{what}");
    for (i, (a, b)) in v.iter().zip(want).enumerate() {
        assert!((a - b).abs() < 2e-6, "{what}[{i}]: {a} vs {b}");
    }
}

/// Produced by (transformers 5.24, torch 2.15):
/// ```python
/// from transformers import LlamaConfig
/// from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
/// cfg = LlamaConfig(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
///                   max_position_embeddings=16, rope_theta=10000.0)
/// q = (torch.arange(32, dtype=torch.float32).reshape(1, 2, 2, 8) / 8 - 2).sin()
/// k = (torch.arange(16, dtype=torch.float32).reshape(1, 1, 2, 8) / 4 + 1).cos()
/// cos, sin = LlamaRotaryEmbedding(cfg)(q, torch.tensor([[5, 6]]))
/// qe, ke = apply_rotary_pos_emb(q, k, cos, sin)
/// ```
#[test]
fn pytorch_hf_apply_rotary_pos_emb_values() {
    #[rustfmt::skip]
    let want_q = [
        -1.2144555, -0.3670238, -0.9353268, -0.9940075, 0.5889957, -1.3182278, -0.9969774, -0.907249,
        -0.9419143, -0.4266679, -0.6655768, -0.5843387, -0.2252101, -0.7356855, -0.2878326, -0.1281831,
        0.4597328, -0.1710982, 0.213027, 0.3624302, 0.1359949, 0.5732434, 0.693152, 0.7693653,
        1.0866709, 0.1808603, 0.8882732, 0.9751509, 0.722645, 1.3335822, 1.0391202, 0.9599539,
    ];
    #[rustfmt::skip]
    let want_k = [
        -0.24579, 0.577884, 0.1106893, -0.1736223, -0.6361542, -0.4001006, -0.796607, -0.925182,
        -1.1331995, -0.5686107, -0.9221314, -0.8207701, -0.3509899, -0.9294997, -0.2665702, 0.0326781,
    ];
    for dev in devices() {
        let (q, k) = pytorch_inputs(&dev);
        let tab = table(8, 16, DType::F32, &dev);
        let (gq, gk) = rope_qk(&q, &k, &tab, 5, RopeLayout::HalfSplit).unwrap();
        assert_values(&gq, &want_q, "HF q");
        assert_values(&gk, &want_k, "HF k");
    }
}

/// Produced by Meta's original Llama code (`llama/model.py`) on the same q and k (its layout is
/// `[B, T, H, D]`, hence the transposes):
/// ```python
/// def precompute_freqs_cis(dim, end, theta=10000.0):
///     freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
///     t = torch.arange(end, device=freqs.device)
///     freqs = torch.outer(t, freqs).float()
///     return torch.polar(torch.ones_like(freqs), freqs)
/// def apply_rotary_emb(xq, xk, freqs_cis):
///     xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
///     xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
///     freqs_cis = freqs_cis.view(1, xq_.shape[1], 1, xq_.shape[-1])
///     return (torch.view_as_real(xq_ * freqs_cis).flatten(3).type_as(xq),
///             torch.view_as_real(xk_ * freqs_cis).flatten(3).type_as(xk))
/// qi, ki = apply_rotary_emb(q.transpose(1, 2), k.transpose(1, 2), precompute_freqs_cis(8, 16)[5:7])
/// qi, ki = qi.transpose(1, 2), ki.transpose(1, 2)
/// ```
#[test]
fn pytorch_meta_llama_interleaved_values() {
    #[rustfmt::skip]
    let want_q = [
        -1.1728293, 0.6013093, -0.3848075, -1.3480417, -0.9472242, -1.0295212, -0.9444615, -0.9070012,
        -1.022419, -0.5018525, -0.23221, -0.8677838, -0.4565997, -0.3943617, -0.2466515, -0.1261569,
        0.1195536, 0.0353655, 0.041517, 0.4400462, 0.4495837, 0.6083273, 0.6777925, 0.7709421,
        1.0600629, 0.6312105, 0.2293769, 1.3454031, 0.9358241, 1.0565482, 0.9782438, 0.9599725,
    ];
    #[rustfmt::skip]
    let want_k = [
        0.4556336, -0.428664, 0.1475334, -0.1225124, -0.3842312, -0.6481873, -0.7965121, -0.9282966,
        -1.2283366, -0.6779145, -0.3095684, -1.2060001, -0.6257182, -0.4844798, -0.2110176, 0.0363367,
    ];
    for dev in devices() {
        let (q, k) = pytorch_inputs(&dev);
        let tab = table(8, 16, DType::F32, &dev);
        let (gq, gk) = rope_qk(&q, &k, &tab, 5, RopeLayout::Interleaved).unwrap();
        assert_values(&gq, &want_q, "Meta q");
        assert_values(&gk, &want_k, "Meta k");
    }
}
