//! `torchless embed` as a user runs it.

use crate::common::{fixture, s, torchless};

#[test]
fn embed_json_reproduces_sentence_transformers() {
    let model = fixture("bert/tiny-st");
    let input = fixture("bert/sentences.json");
    let o = torchless(&[
        "embed",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--json",
        "--device",
        "cpu",
        "--batch-size",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["model"], "tiny-st");
    assert_eq!(v["dim"], 32);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("bert/expected.json")).unwrap())
            .unwrap();
    let got = v["embeddings"].as_array().unwrap();
    let want = expected["embeddings"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let g: Vec<f64> = g
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let w: Vec<f64> = w
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let dot: f64 = g.iter().zip(&w).map(|(a, b)| a * b).sum();
        let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(dot / (n(&g) * n(&w)) >= 0.9999);
    }
}

#[test]
fn embed_text_flags_print_one_line_per_input_and_accept_empty_strings() {
    let model = fixture("bert/tiny-st");
    let o = torchless(&[
        "embed",
        "--model",
        s(&model),
        "--text",
        "Hello world",
        "--text",
        "",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    for l in lines {
        assert_eq!(l.split(',').count(), 32);
    }
}

#[test]
fn embed_bad_input_is_one_line_and_non_zero() {
    let model = fixture("bert/tiny-st");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[\"a\", 3]").unwrap();
    let weird = dir.path().join("weird");
    std::fs::create_dir(&weird).unwrap();
    std::fs::write(weird.join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    for (args, needle) in [
        (
            vec!["embed", "--model", "/nonexistent/dir", "--text", "x"],
            "/nonexistent/dir",
        ),
        (
            vec!["embed", "--model", s(&model), "--input", s(&bad)],
            "array of strings",
        ),
        (
            vec![
                "embed",
                "--model",
                s(&model),
                "--input",
                "/nonexistent.json",
            ],
            "/nonexistent.json",
        ),
        (vec!["embed", "--model", s(&weird), "--text", "x"], "\"t5\""),
        (
            vec![
                "embed",
                "--model",
                s(&model),
                "--text",
                "x",
                "--dtype",
                "f8",
            ],
            "f8",
        ),
        (
            vec![
                "embed",
                "--model",
                s(&model),
                "--text",
                "x",
                "--device",
                "tpu",
            ],
            "tpu",
        ),
    ] {
        let o = torchless(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
