//! ModernBERT sentence embeddings against real PyTorch + sentence-transformers outputs
//! (`tests/fixtures/modernbert`, made by `scripts/modernbert_fixtures.py`): BERT's WordPiece
//! tokenizer, rotary embeddings, global and local (windowed) layers, GeGLU MLPs.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;
use torchless::{DeviceSpec, LoadOptions, SentenceEncoder};

use crate::common::{fixture, floats, ints, rel_err, s, torchless};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("modernbert/expected.json")).unwrap())
        .unwrap()
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

#[test]
fn modernbert_tokenization_matches_the_python_tokenizer() {
    let e = expected();
    let enc = load(&fixture("modernbert/tiny-st"));
    assert_eq!(enc.max_tokens(), 32);
    for (text, want) in sentences(&e).iter().zip(e["sentences"].as_array().unwrap()) {
        let b = enc.tokenize(&[text]).unwrap();
        assert_eq!(b.input_ids[0], ints(&want["input_ids"]), "{text:?}");
    }
}

#[test]
fn modernbert_hidden_states_match_pytorch_padded_batch() {
    let e = expected();
    let enc = load(&fixture("modernbert/tiny-st"));
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = enc.tokenize(&refs).unwrap();
    let h = enc.hidden_states(&batch).unwrap();
    let mut worst = 0f32;
    for (i, want) in e["batch"]["last_hidden_state"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let n = batch.lengths[i] as usize;
        let mask = ints(&e["batch"]["attention_mask"][i]);
        assert_eq!(n as u32, mask.iter().sum::<u32>(), "row {i}");
        assert_eq!(
            &batch.input_ids[i][..n],
            &ints(&e["batch"]["input_ids"][i])[..n]
        );
        let got: Vec<f32> = h[i][..n].iter().flatten().copied().collect();
        let want: Vec<f32> = want.as_array().unwrap()[..n]
            .iter()
            .flat_map(floats)
            .collect();
        let err = rel_err(&got, &want);
        worst = worst.max(err);
        assert!(err < 1e-4, "batch row {i}: relative error {err}");
    }
    eprintln!("modernbert hidden states: max relative error {worst:e}");
}

#[test]
fn modernbert_embeddings_match_sentence_transformers() {
    let e = expected();
    let enc = load(&fixture("modernbert/tiny-st"));
    assert_eq!(enc.dim(), 32);
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut worst = 0f32;
    for batch_size in [1, 3, 7] {
        let got = enc.embed(&refs, batch_size).unwrap();
        for (i, want) in e["embeddings"].as_array().unwrap().iter().enumerate() {
            let err = rel_err(&got[i], &floats(want));
            worst = worst.max(err);
            assert!(
                err < 1e-4,
                "sentence {i}, batch {batch_size}: relative error {err}"
            );
        }
    }
    eprintln!("modernbert embeddings: max relative error {worst:e}");
}

#[test]
fn modernbert_embedding_does_not_depend_on_batch_padding() {
    let enc = load(&fixture("modernbert/tiny-st"));
    let short = "Hello world";
    let alone = enc.embed(&[short], 1).unwrap();
    // Longer than the local window (8): padding must not leak into local or global layers.
    let long = "In the early morning light the old lighthouse keeper climbed the stairs";
    let batched = enc
        .embed(&[long, short, "Café naïve résumé à l'été"], 3)
        .unwrap();
    let d = alone[0]
        .iter()
        .zip(&batched[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "max |alone - batched| = {d}");
}

/// A `ModernBertForMaskedLM`-layout folder built from `tiny-st` (the fixture does not store
/// one): the encoder's keys under `model.`, a `decoder.bias`, `model.safetensors`,
/// no sentence-transformers files.
fn prefixed_folder(dir: &Path) {
    let src = fixture("modernbert/tiny-st");
    let plain = dir.join("plain.safetensors");
    torchless::convert::convert(
        &src.join("pytorch_model.bin"),
        &plain,
        &Default::default(),
        &Default::default(),
        &mut |_| {},
    )
    .unwrap();
    let cpu = candle_core::Device::Cpu;
    let mut map: HashMap<String, candle_core::Tensor> =
        candle_core::safetensors::load(&plain, &cpu)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (format!("model.{k}"), v))
            .collect();
    std::fs::remove_file(&plain).unwrap();
    let bias = candle_core::Tensor::zeros(1200, candle_core::DType::F32, &cpu).unwrap();
    map.insert("decoder.bias".into(), bias);
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["architectures"] = serde_json::json!(["ModernBertForMaskedLM"]);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
}

#[test]
fn modernbert_prefixed_masked_lm_checkpoint_loads() {
    let e = expected();
    let tmp = tempfile::tempdir().unwrap();
    prefixed_folder(tmp.path());
    let st = load(&fixture("modernbert/tiny-st"));
    let mlm = load(tmp.path());
    // No sentence-transformers files: the model's 64 positions.
    assert_eq!(mlm.max_tokens(), 64);
    let texts = sentences(&e);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = st.tokenize(&refs).unwrap();
    let a = st.hidden_states(&batch).unwrap();
    let b = mlm.hidden_states(&batch).unwrap();
    for (i, n) in batch.lengths.iter().enumerate() {
        let n = *n as usize;
        let x: Vec<f32> = a[i][..n].iter().flatten().copied().collect();
        let y: Vec<f32> = b[i][..n].iter().flatten().copied().collect();
        assert!(rel_err(&x, &y) < 1e-6, "row {i}");
    }
}

#[test]
fn modernbert_embed_cli_json() {
    let e = expected();
    let model = fixture("modernbert/tiny-st");
    let texts = sentences(&e);
    let mut args = vec!["embed", "--model", s(&model), "--json", "--device", "cpu"];
    for t in &texts {
        args.push("--text");
        args.push(t);
    }
    let o = torchless(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dim"], 32);
    let got = v["embeddings"].as_array().unwrap();
    let want = e["embeddings"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = rel_err(&floats(g), &floats(w));
        assert!(err < 1e-4, "sentence {i}: relative error {err}");
    }
}
