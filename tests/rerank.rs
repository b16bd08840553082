//! Sequence classification (`tests/fixtures/rerank`, made by `scripts/make_fixtures.py rerank`):
//! a BERT cross-encoder reranker (one label) and an XLM-R text classifier (three labels)
//! against real transformers logits and sentence-transformers `CrossEncoder.predict` scores,
//! non-ASCII and truncated pairs included; `torchless rerank` and `torchless classify --text`.

use std::path::Path;

use serde_json::Value;
use torchless::{softmax, DeviceSpec, LoadOptions, ScoreActivation, TextClassifier};

use crate::common::{fixture, floats, ints, rel_err, s, torchless};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("rerank/expected.json")).unwrap())
        .unwrap()
}

fn load(dir: &Path) -> TextClassifier {
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        ..Default::default()
    };
    TextClassifier::load(dir, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn pairs(e: &Value) -> Vec<(String, String)> {
    e["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Token ids, logits and CrossEncoder scores of one fixture model, pairs batched together.
fn check_model(name: &str, activation: ScoreActivation, labels: usize) {
    let e = expected();
    let m = load(&fixture(&format!("rerank/{name}")));
    let want = &e[name];
    assert_eq!(m.num_labels(), labels);
    assert_eq!(m.activation(), activation);
    assert_eq!(m.max_tokens() as u64, want["max_length"].as_u64().unwrap());
    let owned = pairs(&e);
    let refs: Vec<(&str, &str)> = owned
        .iter()
        .map(|(q, d)| (q.as_str(), d.as_str()))
        .collect();
    let batch = m.tokenize_pairs(&refs).unwrap();
    for (i, p) in want["pairs"].as_array().unwrap().iter().enumerate() {
        let n = batch.lengths[i] as usize;
        assert_eq!(
            &batch.input_ids[i][..n],
            &ints(&p["input_ids"])[..],
            "{name} pair {i}"
        );
    }
    let logits = m.logits_pairs(&refs).unwrap();
    let want_logits: Vec<f32> = want["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| floats(&p["logits"]))
        .collect();
    let got: Vec<f32> = logits.iter().flatten().copied().collect();
    let err_l = rel_err(&got, &want_logits);
    assert!(err_l < 1e-4, "{name} logits: relative error {err_l}");
    let scores: Vec<f32> = m.score_pairs(&refs).unwrap().concat();
    let err_s = rel_err(&scores, &floats(&want["scores"]));
    assert!(
        err_s < 1e-4,
        "{name} CrossEncoder scores: relative error {err_s}"
    );
    for (i, (g, w)) in scores.iter().zip(floats(&want["scores"])).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1e-3),
            "{name} score {i}: {g} vs {w}"
        );
    }
    if let Some(sm) = want.get("softmax") {
        let got: Vec<f32> = logits.iter().flat_map(|l| softmax(l)).collect();
        let err = rel_err(&got, &floats(sm));
        assert!(err < 1e-4, "{name} softmax: relative error {err}");
    }
    // single texts
    let texts: Vec<&str> = e["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let tb = m.tokenize(&texts).unwrap();
    let tl = m.logits(&texts).unwrap();
    let mut want_t = Vec::new();
    for (i, t) in want["texts"].as_array().unwrap().iter().enumerate() {
        let n = tb.lengths[i] as usize;
        assert_eq!(
            &tb.input_ids[i][..n],
            &ints(&t["input_ids"])[..],
            "{name} text {i}"
        );
        want_t.extend(floats(&t["logits"]));
    }
    let err_t = rel_err(&tl.concat(), &want_t);
    assert!(err_t < 1e-4, "{name} text logits: relative error {err_t}");
    eprintln!("{name}: logits {err_l:e}, scores {err_s:e}, texts {err_t:e} (relative)");
}

#[test]
fn rerank_bert_cross_encoder_matches_sentence_transformers() {
    check_model("bert-reranker", ScoreActivation::Sigmoid, 1);
}

#[test]
fn rerank_modernbert_cross_encoder_matches_sentence_transformers() {
    // Mean pooling over real tokens, a local layer narrower than the longer pairs, truncation.
    check_model("modernbert-reranker", ScoreActivation::Sigmoid, 1);
}

#[test]
fn rerank_xlmr_classifier_matches_transformers() {
    check_model("xlmr-classifier", ScoreActivation::Identity, 3);
    let m = load(&fixture("rerank/xlmr-classifier"));
    assert_eq!(m.id2label(), ["negative", "neutral", "positive"]);
}

#[test]
fn rerank_cli_json_scores_in_input_order() {
    let e = expected();
    let dir = fixture("rerank/bert-reranker");
    let docs = fixture("rerank/documents.json");
    let out = torchless(&[
        "rerank",
        "--model",
        s(&dir),
        "--query",
        e["query"].as_str().unwrap(),
        "--documents",
        s(&docs),
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "bert-reranker");
    assert_eq!(v["activation"], "Sigmoid");
    let got = floats(&v["scores"]);
    let want = floats(&e["bert-reranker"]["scores"]);
    assert_eq!(got.len(), 5, "one score per document of documents.json");
    let err = rel_err(&got, &want[..5]);
    assert!(err < 1e-4, "CLI scores: relative error {err}");
    let raw = torchless(&[
        "rerank",
        "--model",
        s(&dir),
        "--query",
        e["query"].as_str().unwrap(),
        "--documents",
        s(&docs),
        "--device",
        "cpu",
        "--raw-logits",
    ]);
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let lines: Vec<f32> = String::from_utf8(raw.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let want: Vec<f32> = e["bert-reranker"]["pairs"].as_array().unwrap()[..5]
        .iter()
        .flat_map(|p| floats(&p["logits"]))
        .collect();
    assert!(rel_err(&lines, &want) < 1e-4, "{lines:?} vs {want:?}");
}

#[test]
fn rerank_classify_text_prints_labels() {
    let e = expected();
    let dir = fixture("rerank/xlmr-classifier");
    let text = e["texts"][0].as_str().unwrap();
    let out = torchless(&[
        "classify",
        "--model",
        s(&dir),
        "--text",
        text,
        "--device",
        "cpu",
        "--json",
        "--top-k",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let logits = floats(&e["xlmr-classifier"]["texts"][0]["logits"]);
    let best = (0..3)
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    let label = e["xlmr-classifier"]["id2label"][best.to_string()].clone();
    assert_eq!(v["top_k"][0][0]["label"], label);
    assert!(rel_err(&floats(&v["logits"]), &logits) < 1e-4);
    let p = softmax(&logits)[best];
    let got = v["top_k"][0][0]["score"].as_f64().unwrap() as f32;
    assert!((got - p).abs() < 1e-4, "{got} vs {p}");
    let plain = torchless(&[
        "classify",
        "--model",
        s(&dir),
        "--text",
        text,
        "--device",
        "cpu",
    ]);
    assert!(plain.status.success());
    let line = String::from_utf8(plain.stdout).unwrap();
    assert!(
        line.starts_with(&format!("{text}\t{}:", label.as_str().unwrap())),
        "{line}"
    );
}

#[test]
fn rerank_wrong_task_is_refused_naming_the_command() {
    let docs = fixture("rerank/documents.json");
    // A sentence encoder (BertModel) is not a reranker...
    let out = torchless(&[
        "rerank",
        "--model",
        s(&fixture("bert/tiny-st")),
        "--query",
        "q",
        "--documents",
        s(&docs),
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is a sentence encoder") && err.contains("torchless embed"),
        "{err}"
    );
    // ... and a reranker is not a sentence encoder.
    let out = torchless(&[
        "embed",
        "--model",
        s(&fixture("rerank/bert-reranker")),
        "--text",
        "x",
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("torchless rerank") && err.contains("classify --text"),
        "{err}"
    );
    // --text needs a folder, --image a state_dict.
    let out = torchless(&[
        "classify",
        "--model",
        s(&fixture("rerank/xlmr-classifier")),
        "--image",
        s(&fixture("resnet/image.png")),
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("classify --text"),
        "{err}"
    );
    let out = torchless(&[
        "classify",
        "--model",
        s(&fixture("bert/tiny-st")),
        "--text",
        "x",
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("torchless embed"),
        "{err}"
    );
}
