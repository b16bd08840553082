//! Tests of `torchless_kernels::embeddings`: the fused BERT embeddings against the f32
//! reference (token types, position offsets, ids at the table edges, id dtypes), the errors for
//! ids outside their tables, and values from Hugging Face's `BertEmbeddings`.

use candle_core::{DType, Device, Tensor};
use torchless_kernels::embeddings::{
    bert_embeddings, bert_embeddings_packed, bert_embeddings_packed_reference,
    bert_embeddings_reference, BertEmbeddingTables, CUDA_MAX_HIDDEN,
};
use torchless_kernels::testing::{assert_close, devices, seeded, FLOAT_DTYPES};

/// Seeded tables: `vocab` words, `positions` positions, `types` token types, hidden `h`.
fn tables(
    vocab: usize,
    positions: usize,
    types: usize,
    h: usize,
    dtype: DType,
    dev: &Device,
) -> BertEmbeddingTables {
    let word = seeded(&[vocab, h], 21, -1.0, 1.0, dtype, dev).unwrap();
    let pos = seeded(&[positions, h], 22, -0.5, 0.5, dtype, dev).unwrap();
    let tt = seeded(&[types, h], 23, -0.3, 0.3, dtype, dev).unwrap();
    let w = seeded(&[h], 24, 0.5, 1.5, dtype, dev).unwrap();
    let b = seeded(&[h], 25, -0.2, 0.2, dtype, dev).unwrap();
    BertEmbeddingTables::new(&word, &pos, &tt, &w, &b, 1e-12).unwrap()
}

/// `[b, t]` u32 ids `(i·step + start) % limit`, covering 0 and `limit - 1` when they fit.
fn ids(b: usize, t: usize, limit: usize, step: usize, dev: &Device) -> Tensor {
    let v: Vec<u32> = (0..b * t)
        .map(|i| match i {
            0 => 0,
            1 => (limit - 1) as u32,
            _ => ((i * step + 3) % limit) as u32,
        })
        .collect();
    Tensor::from_vec(v, (b, t), dev).unwrap()
}

fn check(dev: &Device, dtype: DType, b: usize, t: usize, h: usize, offset: usize, typed: bool) {
    let (vocab, positions, types) = (97, offset + t + 2, 3);
    let tab = tables(vocab, positions, types, h, dtype, dev);
    let input = ids(b, t, vocab, 31, dev);
    let tt = ids(b, t, types, 2, dev);
    let tt = typed.then_some(&tt);
    let got = bert_embeddings(&input, tt, offset, &tab).unwrap();
    let want = bert_embeddings_reference(&input, tt, offset, &tab).unwrap();
    assert_eq!(got.dims(), [b, t, h]);
    assert_close(
        &got,
        &want,
        &format!("{dev:?} {dtype:?} b{b} t{t} h{h} offset{offset} typed={typed}"),
    );
}

#[test]
fn bert_embeddings_match_reference() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for (b, t, h, offset) in [
                (1, 1, 8, 0),
                (2, 7, 32, 0),
                (3, 5, 33, 4), // odd hidden size: no vector path
                (1, 128, 768, 0),
                (2, 9, 1000, 2),
                (4, 3, 13, 7),
                (1, 2, 1024, 1),
            ] {
                for typed in [true, false] {
                    check(&dev, dtype, b, t, h, offset, typed);
                }
            }
        }
    }
}

#[test]
fn ids_at_the_table_edges_and_every_id_dtype() {
    for dev in devices() {
        let tab = tables(5, 6, 2, 16, DType::F32, &dev);
        // Last word, last type, last position (offset 3 + t 3 = 6 positions).
        let want = bert_embeddings_reference(
            &Tensor::new(&[[4u32, 0, 4]], &dev).unwrap(),
            Some(&Tensor::new(&[[1u32, 0, 1]], &dev).unwrap()),
            3,
            &tab,
        )
        .unwrap();
        for (input, types) in [
            (
                Tensor::new(&[[4u32, 0, 4]], &dev).unwrap(),
                Tensor::new(&[[1u32, 0, 1]], &dev).unwrap(),
            ),
            (
                Tensor::new(&[[4i64, 0, 4]], &dev).unwrap(),
                Tensor::new(&[[1i64, 0, 1]], &dev).unwrap(),
            ),
            (
                Tensor::new(&[[4u8, 0, 4]], &dev).unwrap(),
                Tensor::new(&[[1u8, 0, 1]], &dev).unwrap(),
            ),
        ] {
            let got = bert_embeddings(&input, Some(&types), 3, &tab).unwrap();
            assert_close(&got, &want, &format!("{dev:?} ids {:?}", input.dtype()));
        }
        // Ids on the host, tables on the device.
        let host = Tensor::new(&[[4u32, 0, 4]], &Device::Cpu).unwrap();
        let host_types = Tensor::new(&[[1u32, 0, 1]], &Device::Cpu).unwrap();
        let got = bert_embeddings(&host, Some(&host_types), 3, &tab).unwrap();
        assert!(got.device().same_device(&dev));
        assert_close(&got, &want, &format!("{dev:?} host ids"));
    }
}

#[test]
fn a_batch_with_different_token_types_differs_only_by_the_type_row() {
    for dev in devices() {
        let tab = tables(11, 8, 2, 24, DType::F32, &dev);
        let input = Tensor::new(&[[3u32, 5, 7], [3, 5, 7]], &dev).unwrap();
        let types = Tensor::new(&[[0u32, 0, 0], [1, 1, 1]], &dev).unwrap();
        let got = bert_embeddings(&input, Some(&types), 0, &tab).unwrap();
        assert_close(
            &got,
            &bert_embeddings_reference(&input, Some(&types), 0, &tab).unwrap(),
            "two segments",
        );
        let zero = bert_embeddings(&input, None, 0, &tab).unwrap();
        assert_close(&zero.get(0).unwrap(), &got.get(0).unwrap(), "None = type 0");
        let diff = (zero.get(1).unwrap() - got.get(1).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff > 1e-3, "token type 1 changed nothing");
    }
}

#[test]
fn out_of_range_ids_are_clear_errors() {
    for dev in devices() {
        let tab = tables(5, 6, 2, 16, DType::F32, &dev);
        let e = bert_embeddings(
            &Tensor::new(&[[1u32, 2], [3, 5]], &dev).unwrap(),
            None,
            0,
            &tab,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("input id 5 at [1, 1]"), "{e}");
        assert!(e.contains("5 rows"), "{e}");
        let e = bert_embeddings(&Tensor::new(&[[1i64, -1]], &dev).unwrap(), None, 0, &tab)
            .unwrap_err()
            .to_string();
        assert!(e.contains("input id -1 at [0, 1]"), "{e}");
        let types = Tensor::new(&[[0u32, 2]], &dev).unwrap();
        let e = bert_embeddings(
            &Tensor::new(&[[1u32, 2]], &dev).unwrap(),
            Some(&types),
            0,
            &tab,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("token type id 2 at [0, 1]"), "{e}");
        let e = bert_embeddings(&Tensor::new(&[[1u32, 2]], &dev).unwrap(), None, 5, &tab)
            .unwrap_err()
            .to_string();
        assert!(e.contains("past the 6 position embeddings"), "{e}");
        // The reference refuses the same ids.
        assert!(
            bert_embeddings_reference(&Tensor::new(&[[7u32]], &dev).unwrap(), None, 0, &tab)
                .is_err()
        );
    }
}

#[test]
fn bad_shapes_and_dtypes_are_errors() {
    let dev = Device::Cpu;
    let tab = tables(5, 6, 2, 16, DType::F32, &dev);
    let flat = Tensor::new(&[1u32, 2], &dev).unwrap();
    assert!(bert_embeddings(&flat, None, 0, &tab).is_err());
    let f = Tensor::new(&[[1f32, 2.]], &dev).unwrap();
    let e = bert_embeddings(&f, None, 0, &tab).unwrap_err().to_string();
    assert!(e.contains("u32, i64 or u8"), "{e}");
    let ids = Tensor::new(&[[1u32, 2]], &dev).unwrap();
    let types = Tensor::new(&[[0u32, 1, 1]], &dev).unwrap();
    assert!(bert_embeddings(&ids, Some(&types), 0, &tab).is_err());
    // Tables of different dtypes or hidden sizes are refused at load.
    let w = Tensor::zeros((5, 16), DType::F32, &dev).unwrap();
    let p = Tensor::zeros((6, 16), DType::F16, &dev).unwrap();
    let t = Tensor::zeros((2, 16), DType::F32, &dev).unwrap();
    let g = Tensor::ones(16, DType::F32, &dev).unwrap();
    assert!(BertEmbeddingTables::new(&w, &p, &t, &g, &g, 1e-12).is_err());
    let p = Tensor::zeros((6, 15), DType::F32, &dev).unwrap();
    assert!(BertEmbeddingTables::new(&w, &p, &t, &g, &g, 1e-12).is_err());
}

#[test]
fn rows_wider_than_the_cuda_limit_fall_back_to_the_reference() {
    for dev in devices() {
        check(&dev, DType::F32, 1, 2, CUDA_MAX_HIDDEN + 8, 0, true);
    }
}

#[test]
fn large_magnitudes_stay_finite() {
    for dev in devices() {
        let h = 40;
        let word = (seeded(&[9, h], 26, -1.0, 1.0, DType::F32, &dev).unwrap() * 1e4).unwrap();
        let pos = seeded(&[4, h], 27, -1.0, 1.0, DType::F32, &dev).unwrap();
        let tt = seeded(&[1, h], 28, -1.0, 1.0, DType::F32, &dev).unwrap();
        let g = Tensor::ones(h, DType::F32, &dev).unwrap();
        let z = Tensor::zeros(h, DType::F32, &dev).unwrap();
        let tab = BertEmbeddingTables::new(&word, &pos, &tt, &g, &z, 1e-12).unwrap();
        let input = Tensor::new(&[[8u32, 1, 0, 4]], &dev).unwrap();
        let got = bert_embeddings(&input, None, 0, &tab).unwrap();
        let v: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.is_finite()));
        assert_close(
            &got,
            &bert_embeddings_reference(&input, None, 0, &tab).unwrap(),
            "1e4 tables",
        );
    }
}

/// Produced by (transformers 5.24, torch 2.15):
/// ```python
/// from transformers import BertConfig
/// from transformers.models.bert.modeling_bert import BertEmbeddings
/// cfg = BertConfig(vocab_size=6, hidden_size=4, max_position_embeddings=8, type_vocab_size=2,
///                  layer_norm_eps=1e-12, pad_token_id=0)
/// m = BertEmbeddings(cfg).eval()
/// with torch.no_grad():
///     m.word_embeddings.weight.copy_((torch.arange(24.).reshape(6, 4) * 0.7).sin())
///     m.position_embeddings.weight.copy_((torch.arange(32.).reshape(8, 4) * 0.3).cos() * 0.5)
///     m.token_type_embeddings.weight.copy_(torch.arange(8.).reshape(2, 4) * 0.1 - 0.3)
///     m.LayerNorm.weight.copy_(1 + 0.1 * torch.arange(4.))
///     m.LayerNorm.bias.copy_(0.05 * torch.arange(4.) - 0.1)
///     a = m(input_ids=torch.tensor([[5, 0, 3], [1, 2, 4]]),
///           token_type_ids=torch.tensor([[0, 1, 1], [1, 0, 0]]), cache_length=2)
///     b = m(input_ids=torch.tensor([[5, 0, 3]]))
/// ```
#[test]
fn pytorch_bert_embeddings_values() {
    #[rustfmt::skip]
    let want_a = [
        0.929729, 0.783251, -0.328358, -1.917677, -1.664224, -0.237562, 0.922414, 1.305872,
        1.18452, 0.581187, -0.654858, -1.656395, 1.479394, 0.108138, -1.021509, -1.083469,
        -1.494949, -0.515851, 0.691825, 1.664508, -1.35436, -0.671892, 0.521818, 1.850329,
    ];
    #[rustfmt::skip]
    let want_b = [
        0.842073, 0.839991, -0.234778, -1.97216, -1.748096, 0.092949, 1.198025, 0.725725,
        1.25525, 0.481594, -0.687696, -1.595068,
    ];
    for dev in devices() {
        let ar = |n: usize| Tensor::arange(0f32, n as f32, &dev).unwrap();
        let word = (ar(24) * 0.7)
            .unwrap()
            .sin()
            .unwrap()
            .reshape((6, 4))
            .unwrap();
        let pos = ((ar(32) * 0.3).unwrap().cos().unwrap() * 0.5)
            .unwrap()
            .reshape((8, 4))
            .unwrap();
        let tt = ((ar(8) * 0.1).unwrap() - 0.3)
            .unwrap()
            .reshape((2, 4))
            .unwrap();
        let w = ((ar(4) * 0.1).unwrap() + 1.0).unwrap();
        let b = ((ar(4) * 0.05).unwrap() - 0.1).unwrap();
        let tab = BertEmbeddingTables::new(&word, &pos, &tt, &w, &b, 1e-12).unwrap();
        let ids = Tensor::new(&[[5i64, 0, 3], [1, 2, 4]], &dev).unwrap();
        let types = Tensor::new(&[[0i64, 1, 1], [1, 0, 0]], &dev).unwrap();
        for (got, want) in [
            (
                bert_embeddings(&ids, Some(&types), 2, &tab).unwrap(),
                &want_a[..],
            ),
            (
                bert_embeddings(&ids.narrow(0, 0, 1).unwrap(), None, 0, &tab).unwrap(),
                &want_b[..],
            ),
        ] {
            let v: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(v.len(), want.len());
            for (i, (x, y)) in v.iter().zip(want).enumerate() {
                assert!((x - y).abs() < 2e-5, "{dev:?} [{i}]: {x} vs {y}");
            }
        }
    }
}

/// A packed batch (sequences of 1, 7, 17 and 5 tokens, an empty one between) gets, row for
/// row, what each sequence gets alone as a `[1, L]` batch: its own positions from the offset.
#[test]
fn packed_embeddings_equal_each_sequence_alone() {
    for dev in devices() {
        for dtype in FLOAT_DTYPES {
            for offset in [0, 2] {
                let lens = [1usize, 7, 0, 17, 5];
                let h = 24;
                let tab = tables(97, offset + 17, 3, h, dtype, &dev);
                let n: usize = lens.iter().sum();
                let input = ids(1, n, 97, 31, &dev).flatten_all().unwrap();
                let tt = ids(1, n, 3, 2, &dev).flatten_all().unwrap();
                let mut cu = vec![0u32];
                for &l in &lens {
                    cu.push(cu[cu.len() - 1] + l as u32);
                }
                let what = format!("{dev:?} {dtype:?} offset {offset}");
                let got = bert_embeddings_packed(&input, Some(&tt), &cu, offset, &tab).unwrap();
                let want =
                    bert_embeddings_packed_reference(&input, Some(&tt), &cu, offset, &tab).unwrap();
                assert_eq!(got.dims(), [n, h], "{what}");
                assert_close(&got, &want, &what);
                for (i, &l) in lens.iter().enumerate().filter(|(_, &l)| l > 0) {
                    let start = cu[i] as usize;
                    let one = |t: &Tensor| t.narrow(0, start, l).unwrap().reshape((1, l)).unwrap();
                    let alone = bert_embeddings(&one(&input), Some(&one(&tt)), offset, &tab)
                        .unwrap()
                        .squeeze(0)
                        .unwrap();
                    let row = got.narrow(0, start, l).unwrap();
                    assert_close(&row, &alone, &format!("{what}: sequence {i}"));
                }
                // A sequence longer than the position table is refused, naming the positions.
                let e = bert_embeddings_packed(&input, None, &[0, n as u32], offset, &tab)
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("position embeddings"), "{what}: {e}");
            }
        }
    }
}
