//! BERT sentence embeddings against real PyTorch + sentence-transformers outputs
//! (`tests/fixtures/bert`, made by `scripts/make_fixtures.py`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use torchless::{pool, DeviceSpec, LoadOptions, PoolingMode, SentenceEncoder};

use crate::common::{fixture, floats, ints, rel_err};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("bert/expected.json")).unwrap()).unwrap()
}

fn sentences(e: &Value) -> Vec<String> {
    e["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect()
}

fn load(dir: &Path) -> SentenceEncoder {
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        ..Default::default()
    };
    SentenceEncoder::load(dir, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn tokenization_matches_the_python_tokenizer_exactly() {
    let e = expected();
    let enc = load(&fixture("bert/tiny-st"));
    assert_eq!(
        enc.max_tokens(),
        24,
        "sentence_bert_config.json's max_seq_length wins"
    );
    for (s, want) in sentences(&e).iter().zip(e["sentences"].as_array().unwrap()) {
        let b = enc.tokenize(&[s]).unwrap();
        assert_eq!(b.input_ids[0], ints(&want["tokens"]["input_ids"]), "{s:?}");
        assert_eq!(
            b.token_type_ids[0],
            ints(&want["tokens"]["token_type_ids"]),
            "{s:?}"
        );
    }
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let b = enc.tokenize(&refs).unwrap();
    for (i, row) in e["batch"]["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let mask = ints(&e["batch"]["attention_mask"][i]);
        let n = mask.iter().sum::<u32>();
        assert_eq!(b.lengths[i], n);
        assert_eq!(&b.input_ids[i][..n as usize], &ints(row)[..n as usize]);
    }
}

#[test]
fn hidden_states_match_pytorch_single_and_padded() {
    let e = expected();
    let enc = load(&fixture("bert/tiny-st"));
    let texts = sentences(&e);
    for (s, want) in texts.iter().zip(e["sentences"].as_array().unwrap()) {
        let h = enc.hidden_states(&enc.tokenize(&[s]).unwrap()).unwrap();
        let got: Vec<f32> = h[0].iter().flatten().copied().collect();
        let err = rel_err(&got, &floats(&want["last_hidden_state"]));
        assert!(err < 1e-4, "{s:?}: relative error {err}");
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = enc.tokenize(&refs).unwrap();
    let h = enc.hidden_states(&batch).unwrap();
    for (i, want) in e["batch"]["last_hidden_state"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let n = batch.lengths[i] as usize;
        let got: Vec<f32> = h[i][..n].iter().flatten().copied().collect();
        let want: Vec<f32> = want.as_array().unwrap()[..n]
            .iter()
            .flat_map(floats)
            .collect();
        let err = rel_err(&got, &want);
        assert!(err < 1e-4, "batch row {i}: relative error {err}");
    }
}

#[test]
fn embeddings_match_sentence_transformers() {
    let e = expected();
    let enc = load(&fixture("bert/tiny-st"));
    assert_eq!(enc.dim(), 32);
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for batch_size in [1, 3, 8] {
        let got = enc.embed(&refs, batch_size).unwrap();
        for (i, want) in e["embeddings"].as_array().unwrap().iter().enumerate() {
            let want = floats(want);
            let c = cosine(&got[i], &want);
            assert!(c >= 0.9999, "sentence {i}, batch {batch_size}: cosine {c}");
            let err = rel_err(&got[i], &want);
            assert!(
                err < 1e-4,
                "sentence {i}, batch {batch_size}: relative error {err}"
            );
        }
    }
}

#[test]
fn cls_mean_and_max_pooling_match_sentence_transformers() {
    let e = expected();
    let enc = load(&fixture("bert/tiny-st"));
    for (i, s) in sentences(&e).iter().enumerate() {
        let h = enc.hidden_states(&enc.tokenize(&[s]).unwrap()).unwrap();
        for (name, mode) in [
            ("mean", PoolingMode::Mean),
            ("cls", PoolingMode::Cls),
            ("max", PoolingMode::Max),
        ] {
            let got = pool(&h[0], 32, mode);
            let err = rel_err(&got, &floats(&e["pooled"][name][i]));
            assert!(
                err < 1e-4,
                "{name} pooling of sentence {i}: relative error {err}"
            );
        }
    }
}

#[test]
fn prefixed_masked_lm_checkpoint_loads_with_plain_defaults() {
    let e = expected();
    let p = &e["plain_folder"];
    let enc = load(&fixture("bert/tiny-bert-prefixed"));
    assert_eq!(
        enc.max_tokens(),
        p["max_seq_length"].as_u64().unwrap() as usize
    );
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = enc.embed(&refs, 4).unwrap();
    for (i, want) in p["embeddings"].as_array().unwrap().iter().enumerate() {
        let err = rel_err(&got[i], &floats(want));
        assert!(err < 1e-4, "sentence {i}: relative error {err}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn bin_folder_is_converted_in_memory_and_safetensors_gives_the_same() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-st");
    copy_dir(&fixture("bert/tiny-st"), &dir);
    let before = listing(&dir);
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let from_bin = load(&dir).embed(&refs, 8).unwrap();
    assert_eq!(
        listing(&dir),
        before,
        "loading a .bin folder must not write files"
    );
    torchless::convert::convert(
        &dir.join("pytorch_model.bin"),
        &dir.join("model.safetensors"),
        &Default::default(),
        &Default::default(),
        &mut |_| {},
    )
    .unwrap();
    std::fs::remove_file(dir.join("pytorch_model.bin")).unwrap();
    let from_st = load(&dir).embed(&refs, 8).unwrap();
    assert_eq!(from_bin, from_st);
}

#[test]
fn eight_threads_fifty_calls_each_give_identical_results() {
    let e = expected();
    let enc = Arc::new(load(&fixture("bert/tiny-st")));
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = enc.embed(&refs, 4).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (enc, refs, want) = (enc.clone(), &refs, &want);
            s.spawn(move || {
                for i in 0..50 {
                    let got = enc.embed(refs, 4).unwrap();
                    assert_eq!(&got, want, "thread {t} call {i}");
                }
            });
        }
    });
}

#[test]
fn bad_folders_give_clear_errors() {
    let err = |dir: &Path| {
        SentenceEncoder::load(
            dir,
            &LoadOptions {
                device: DeviceSpec::Cpu,
                ..Default::default()
            },
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("{} loaded", dir.display()))
    };
    assert!(err(Path::new("/nonexistent/model")).contains("/nonexistent/model"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    copy_dir(&fixture("bert/tiny-st"), &dir);
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert!(err(&dir).contains("tokenizer.json"));

    copy_dir(&fixture("bert/tiny-st"), &dir);
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), cfg.replace("\"bert\"", "\"gpt2\"")).unwrap();
    let m = err(&dir);
    assert!(
        m.contains("gpt2") && m.contains("is a text generator") && m.contains("torchless generate"),
        "{m}"
    );

    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"intermediate_size\": 64", "\"intermediate_size\": 48"),
    )
    .unwrap();
    let m = err(&dir);
    assert!(
        m.contains("intermediate.dense.weight") && m.contains("[48, 32]"),
        "{m}"
    );

    std::fs::write(
        dir.join("config.json"),
        cfg.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3"),
    )
    .unwrap();
    let m = err(&dir);
    assert!(m.contains("missing tensor `encoder.layer.2."), "{m}");
}

/// The fixture's BERT encoder itself (no tokenizer), f32 on the CPU.
fn bert_model() -> torchless_models::bert::BertModel {
    let dir = fixture("bert/tiny-st");
    let raw: torchless_models::bert::RawBertConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let w = Arc::new(torchless::Weights::open(&dir).unwrap());
    let vb = w.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu);
    torchless_models::bert::BertModel::load(vb, raw.into_config().unwrap()).unwrap()
}

/// `cu_seqlens` of sequences of `lens` tokens.
fn offsets(lens: &[usize]) -> Vec<u32> {
    let mut cu = vec![0u32];
    for &l in lens {
        cu.push(cu[cu.len() - 1] + l as u32);
    }
    cu
}

/// The unpadded forward on the fixture's 8 sentences packed into one token dimension gives
/// PyTorch's last hidden state of each sentence run alone.
#[test]
fn packed_forward_matches_pytorch_per_sentence() {
    let e = expected();
    let model = bert_model();
    assert!(model.runs_packed(), "the CPU takes the unpadded route");
    let sents = e["sentences"].as_array().unwrap();
    let ids: Vec<Vec<u32>> = sents
        .iter()
        .map(|s| ints(&s["tokens"]["input_ids"]))
        .collect();
    let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
    let cu = offsets(&lens);
    let flat: Vec<u32> = ids.concat();
    let n = flat.len();
    let dev = candle_core::Device::Cpu;
    let input = candle_core::Tensor::from_vec(flat, n, &dev).unwrap();
    let h = model.forward_packed(&input, None, &cu).unwrap();
    assert_eq!(h.dims(), [n, 32]);
    let rows = h.to_vec2::<f32>().unwrap();
    for (i, s) in sents.iter().enumerate() {
        let got: Vec<f32> = rows[cu[i] as usize..cu[i + 1] as usize].concat();
        let err = rel_err(&got, &floats(&s["last_hidden_state"]));
        assert!(err < 1e-4, "sentence {i}: relative error {err}");
    }
}

/// Sequences of every length from 1 token to the fixture's 24, packed in a scrambled order:
/// each sequence's rows equal the sequence run alone, and the padded batch's real rows.
#[test]
fn packed_forward_rows_equal_each_sequence_alone_from_1_to_24_tokens() {
    let model = bert_model();
    let dev = candle_core::Device::Cpu;
    let lens: Vec<usize> = (0..24).map(|i| (i * 7) % 24 + 1).collect();
    let seqs: Vec<Vec<u32>> = lens
        .iter()
        .enumerate()
        .map(|(s, &l)| (0..l).map(|t| ((s * 131 + t * 37) % 1200) as u32).collect())
        .collect();
    let cu = offsets(&lens);
    let flat = seqs.concat();
    let n = flat.len();
    let types: Vec<u32> = (0..n).map(|i| u32::from(i % 3 == 1)).collect();
    let input = candle_core::Tensor::from_vec(flat, n, &dev).unwrap();
    let tt = candle_core::Tensor::from_vec(types.clone(), n, &dev).unwrap();
    let packed = model
        .forward_packed(&input, Some(&tt), &cu)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    // The padded route on the same batch.
    let tmax = 24;
    let pad = |v: &[u32]| {
        let mut v = v.to_vec();
        v.resize(tmax, 0);
        v
    };
    let mut pids = Vec::new();
    let mut ptypes = Vec::new();
    for (s, seq) in seqs.iter().enumerate() {
        pids.extend(pad(seq));
        ptypes.extend(pad(&types[cu[s] as usize..cu[s + 1] as usize]));
    }
    let b = seqs.len();
    let lengths: Vec<u32> = lens.iter().map(|&l| l as u32).collect();
    let padded = model
        .forward(
            &candle_core::Tensor::from_vec(pids, (b, tmax), &dev).unwrap(),
            Some(&candle_core::Tensor::from_vec(ptypes, (b, tmax), &dev).unwrap()),
            &lengths,
        )
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    for (s, seq) in seqs.iter().enumerate() {
        let (a, z) = (cu[s] as usize, cu[s + 1] as usize);
        let got: Vec<f32> = packed[a..z].concat();
        let one = |v: Vec<u32>| candle_core::Tensor::from_vec(v, (1, seq.len()), &dev).unwrap();
        let alone = model
            .forward(
                &one(seq.clone()),
                Some(&one(types[a..z].to_vec())),
                &[seq.len() as u32],
            )
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        let alone: Vec<f32> = alone[0].concat();
        let err = rel_err(&got, &alone);
        assert!(
            err < 1e-5,
            "length {}: packed vs alone, relative error {err}",
            seq.len()
        );
        let row: Vec<f32> = padded[s][..seq.len()].concat();
        let err = rel_err(&got, &row);
        assert!(
            err < 1e-5,
            "length {}: packed vs padded, relative error {err}",
            seq.len()
        );
    }
}

/// `embed` of a mixed-length call (the fixture's sentences, 2 to 24 tokens, repeated in a
/// scrambled order) at several batch sizes: every row equals the text embedded alone and
/// sentence-transformers' embedding, whatever the batch composition.
#[test]
fn mixed_length_batches_match_each_text_alone_and_sentence_transformers() {
    let e = expected();
    let enc = load(&fixture("bert/tiny-st"));
    let texts = sentences(&e);
    let want: Vec<Vec<f32>> = e["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    let order: Vec<usize> = (0..27).map(|i| (i * 5 + 3) % texts.len()).collect();
    let refs: Vec<&str> = order.iter().map(|&i| texts[i].as_str()).collect();
    let alone: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| enc.embed(&[t], 1).unwrap().remove(0))
        .collect();
    for batch_size in [1, 4, 7, 32] {
        let got = enc.embed(&refs, batch_size).unwrap();
        assert_eq!(got.len(), refs.len());
        for (row, &i) in got.iter().zip(&order) {
            let err = rel_err(row, &alone[i]);
            assert!(
                err < 1e-5,
                "sentence {i}, batch {batch_size}: vs alone {err}"
            );
            let err = rel_err(row, &want[i]);
            assert!(err < 1e-4, "sentence {i}, batch {batch_size}: vs ST {err}");
        }
    }
}
