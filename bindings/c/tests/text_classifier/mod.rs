//! `torchless_rerank`, `torchless_classify_text` and `torchless_model_label` on the
//! sequence-classification fixtures (`tests/fixtures/rerank`): a BERT cross-encoder reranker
//! (one label, sigmoid) and an XLM-R text classifier (three labels, identity), against
//! sentence-transformers `CrossEncoder.predict` scores and transformers logits; every bad
//! argument and the wrong kind both ways.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use serde_json::Value;
use torchless::capi::*;

use crate::common::{cstrings, floats, info, label, last_error, rel_err, Model};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/rerank")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn load(name: &str) -> Model {
    let dir = CString::new(fixture(name).to_str().unwrap()).unwrap();
    let mut m = null_mut();
    // SAFETY: valid strings and a writable out pointer.
    let s = unsafe { torchless_model_load(dir.as_ptr(), c"cpu".as_ptr(), null(), &mut m) };
    assert_eq!(s, TorchlessStatus::Ok, "{name}");
    Model(m)
}

struct Out {
    status: TorchlessStatus,
    values: Vec<f32>,
    rows: usize,
    labels: usize,
}

fn rerank(m: &Model, query: &[u8], docs: &[&[u8]], capacity: usize) -> Out {
    let q = CString::new(query).unwrap();
    let (_owned, ptrs) = cstrings(docs);
    let mut values = vec![0f32; capacity];
    let (mut rows, mut labels) = (0usize, 0usize);
    // SAFETY: live strings and buffers of the stated sizes.
    let status = unsafe {
        torchless_rerank(
            m.0,
            q.as_ptr(),
            ptrs.as_ptr(),
            ptrs.len(),
            values.as_mut_ptr(),
            capacity,
            &mut rows,
            &mut labels,
        )
    };
    Out {
        status,
        values,
        rows,
        labels,
    }
}

fn classify_text(m: &Model, texts: &[&[u8]], capacity: usize) -> Out {
    let (_owned, ptrs) = cstrings(texts);
    let mut values = vec![0f32; capacity];
    let (mut rows, mut labels) = (0usize, 0usize);
    // SAFETY: live strings and buffers of the stated sizes.
    let status = unsafe {
        torchless_classify_text(
            m.0,
            ptrs.as_ptr(),
            ptrs.len(),
            values.as_mut_ptr(),
            capacity,
            &mut rows,
            &mut labels,
        )
    };
    Out {
        status,
        values,
        rows,
        labels,
    }
}

/// Reranks the fixture's pairs through C (one call per query) against `CrossEncoder.predict`.
fn check_rerank(name: &str, labels: usize) {
    let e = expected();
    let m = load(name);
    let pairs = e["pairs"].as_array().unwrap();
    let mut got = Vec::new();
    let mut i = 0;
    while i < pairs.len() {
        let q = pairs[i][0].as_str().unwrap();
        let docs: Vec<&[u8]> = pairs[i..]
            .iter()
            .take_while(|p| p[0].as_str() == Some(q))
            .map(|p| p[1].as_str().unwrap().as_bytes())
            .collect();
        let out = rerank(&m, q.as_bytes(), &docs, docs.len() * labels);
        assert_eq!(out.status, TorchlessStatus::Ok, "{name}");
        assert!(torchless_last_error().is_null());
        assert_eq!((out.rows, out.labels), (docs.len(), labels));
        got.extend(out.values);
        i += docs.len();
    }
    assert!(i > 1 && pairs[0][0].as_str() == e["query"].as_str());
    let want = floats(&e[name]["scores"]);
    let err = rel_err(&got, &want);
    assert!(err < 1e-4, "{name} rerank scores: relative error {err}");
}

#[test]
fn rerank_matches_cross_encoder_predict() {
    check_rerank("bert-reranker", 1);
    check_rerank("xlmr-classifier", 3);
}

#[test]
fn classify_text_gives_transformers_logits() {
    let e = expected();
    for (name, labels) in [("bert-reranker", 1), ("xlmr-classifier", 3)] {
        let m = load(name);
        let texts: Vec<&[u8]> = e["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().as_bytes())
            .collect();
        let out = classify_text(&m, &texts, texts.len() * labels);
        assert_eq!(out.status, TorchlessStatus::Ok, "{name}");
        assert_eq!((out.rows, out.labels), (texts.len(), labels));
        let want: Vec<f32> = e[name]["texts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| floats(&t["logits"]))
            .collect();
        let err = rel_err(&out.values, &want);
        assert!(err < 1e-4, "{name} logits: relative error {err}");
    }
}

#[test]
fn info_and_labels_of_a_text_classifier() {
    let m = load("xlmr-classifier");
    assert_eq!(
        info(&m),
        (
            TorchlessModelKind::TextClassifier,
            3,
            "xlm-roberta".into(),
            "xlmr-classifier".into()
        )
    );
    let e = expected();
    for i in 0..3 {
        assert_eq!(
            label(&m, i).as_deref(),
            e["xlmr-classifier"]["id2label"][i.to_string()].as_str()
        );
        assert!(torchless_last_error().is_null());
    }
    assert_eq!(label(&m, 3), None);
    assert_eq!(
        last_error(),
        "label index 3 is out of range (the model has 3 labels)"
    );
    assert_eq!(label(&Model(null_mut()), 0), None);
    assert_eq!(last_error(), "model is NULL");
    let r = load("bert-reranker");
    assert_eq!(info(&r).0, TorchlessModelKind::TextClassifier);
    assert_eq!(info(&r).1, 1);
    assert_eq!(label(&r, 0).as_deref(), Some("LABEL_0"));
}

#[test]
fn bad_text_classifier_arguments_are_statuses() {
    let m = load("xlmr-classifier");
    let docs: [&[u8]; 2] = [b"one", b"two"];
    // Too small: sizes written, nothing run; NULL + 0 is the size query.
    let out = rerank(&m, b"q", &docs, 5);
    assert_eq!(
        (out.status, out.rows, out.labels),
        (TorchlessStatus::BufferTooSmall, 2, 3)
    );
    assert!(out.values.iter().all(|&v| v == 0.0));
    let out = classify_text(&m, &docs, 5);
    assert_eq!(
        (out.status, out.rows, out.labels),
        (TorchlessStatus::BufferTooSmall, 2, 3)
    );
    let (_owned, ptrs) = cstrings(&docs);
    let (mut rows, mut labels) = (0usize, 0usize);
    let mut buf = [0f32; 6];
    // SAFETY: every pointer is NULL, a live string or a buffer of the stated size.
    unsafe {
        assert_eq!(
            torchless_rerank(
                m.0,
                c"q".as_ptr(),
                ptrs.as_ptr(),
                2,
                null_mut(),
                0,
                &mut rows,
                &mut labels
            ),
            TorchlessStatus::BufferTooSmall
        );
        assert_eq!((rows, labels), (2, 3));
        assert_eq!(
            torchless_classify_text(m.0, ptrs.as_ptr(), 1, null_mut(), 0, &mut rows, &mut labels),
            TorchlessStatus::BufferTooSmall
        );
        assert_eq!((rows, labels), (1, 3));

        // NULL pointers.
        let s = torchless_rerank(
            null(),
            c"q".as_ptr(),
            ptrs.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "model is NULL")
        );
        let s = torchless_rerank(
            m.0,
            null(),
            ptrs.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "query is NULL")
        );
        let s = torchless_rerank(
            m.0,
            c"q".as_ptr(),
            null(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "documents is NULL")
        );
        let with_null = [ptrs[0], null()];
        let s = torchless_rerank(
            m.0,
            c"q".as_ptr(),
            with_null.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "documents[1] is NULL")
        );
        let s = torchless_rerank(
            m.0,
            c"q".as_ptr(),
            ptrs.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            null_mut(),
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "out_rows is NULL")
        );
        let s = torchless_rerank(
            m.0,
            c"q".as_ptr(),
            ptrs.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            null_mut(),
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "out_labels is NULL")
        );
        let s = torchless_classify_text(
            null(),
            ptrs.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(s, TorchlessStatus::NullPointer);
        let s =
            torchless_classify_text(m.0, null(), 2, buf.as_mut_ptr(), 6, &mut rows, &mut labels);
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "texts is NULL")
        );
        let s = torchless_classify_text(
            m.0,
            with_null.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "texts[1] is NULL")
        );
        let s = torchless_classify_text(
            m.0,
            ptrs.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            null_mut(),
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "out_rows is NULL")
        );
        let s = torchless_classify_text(
            m.0,
            ptrs.as_ptr(),
            2,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            null_mut(),
        );
        assert_eq!(
            (s, last_error().as_str()),
            (TorchlessStatus::NullPointer, "out_labels is NULL")
        );

        // Empty batches.
        let s = torchless_rerank(
            m.0,
            c"q".as_ptr(),
            ptrs.as_ptr(),
            0,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (
                TorchlessStatus::InvalidArgument,
                "empty batch: n_documents is 0"
            )
        );
        let s = torchless_classify_text(
            m.0,
            ptrs.as_ptr(),
            0,
            buf.as_mut_ptr(),
            6,
            &mut rows,
            &mut labels,
        );
        assert_eq!(
            (s, last_error().as_str()),
            (
                TorchlessStatus::InvalidArgument,
                "empty batch: n_texts is 0"
            )
        );
    }

    // Non-UTF-8 strings.
    let bad: &[u8] = b"caf\xe9";
    let out = rerank(&m, bad, &docs, 6);
    assert_eq!(out.status, TorchlessStatus::InvalidArgument);
    assert!(
        last_error().starts_with("query is not valid UTF-8"),
        "{}",
        last_error()
    );
    let out = rerank(&m, b"q", &[b"ok", bad], 6);
    assert_eq!(out.status, TorchlessStatus::InvalidArgument);
    assert!(
        last_error().starts_with("documents[1] is not valid UTF-8"),
        "{}",
        last_error()
    );
    let out = classify_text(&m, &[bad], 3);
    assert_eq!(out.status, TorchlessStatus::InvalidArgument);
    assert!(
        last_error().starts_with("texts[0] is not valid UTF-8"),
        "{}",
        last_error()
    );

    // Still usable after all that.
    let out = rerank(&m, b"q", &docs, 6);
    assert_eq!(
        (out.status, out.rows, out.labels),
        (TorchlessStatus::Ok, 2, 3)
    );
}

#[test]
fn text_calls_and_other_calls_refuse_the_wrong_kind() {
    // A sentence encoder through the text-classifier calls.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bert/tiny-st");
    let dir = CString::new(dir.to_str().unwrap()).unwrap();
    let mut enc = null_mut();
    // SAFETY: valid strings and a writable out pointer.
    let s = unsafe { torchless_model_load(dir.as_ptr(), c"cpu".as_ptr(), null(), &mut enc) };
    assert_eq!(s, TorchlessStatus::Ok);
    let enc = Model(enc);
    let out = rerank(&enc, b"q", &[b"d"], 4);
    assert_eq!(out.status, TorchlessStatus::WrongModelKind);
    assert_eq!(last_error(), "torchless_rerank: this model is not a text classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)");
    let out = classify_text(&enc, &[b"t"], 4);
    assert_eq!(out.status, TorchlessStatus::WrongModelKind);
    assert_eq!(last_error(), "torchless_classify_text: this model is not a text classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)");
    assert_eq!(label(&enc, 0), None);
    assert_eq!(last_error(), "torchless_model_label: this model is not a text classifier or an image classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)");

    // A text classifier through the other calls.
    let m = load("xlmr-classifier");
    let tail = "(xlmr-classifier `xlm-roberta` is a text classifier: use torchless_rerank or torchless_classify_text)";
    let (_owned, ptrs) = cstrings(&[b"t"]);
    let mut out = [0f32; 64];
    let (mut rows, mut dim) = (0usize, 0usize);
    let input = [0f32; 3 * 32 * 32];
    let mut n = 0usize;
    // SAFETY: live strings and buffers of the stated sizes.
    unsafe {
        let s = torchless_embed(
            m.0,
            ptrs.as_ptr(),
            1,
            out.as_mut_ptr(),
            64,
            &mut rows,
            &mut dim,
        );
        assert_eq!(s, TorchlessStatus::WrongModelKind);
        assert_eq!(
            last_error(),
            format!("torchless_embed: this model is not a sentence encoder or an image-text embedder {tail}")
        );
        let s = torchless_classify(
            m.0,
            input.as_ptr(),
            1,
            3,
            32,
            32,
            out.as_mut_ptr(),
            64,
            &mut rows,
            &mut dim,
        );
        assert_eq!(s, TorchlessStatus::WrongModelKind);
        assert_eq!(
            last_error(),
            format!("torchless_classify: this model is not an image classifier {tail}")
        );
        let s = torchless_generate(
            m.0,
            null(),
            0,
            c"Once upon".as_ptr(),
            null(),
            null_mut(),
            0,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::WrongModelKind);
        assert_eq!(
            last_error(),
            format!("torchless_generate: this model is not a text generator {tail}")
        );
    }
}
