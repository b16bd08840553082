//! `torchless generate` from the command line on the decoder fixtures: greedy JSON output equal
//! to `transformers`, a converted safetensors folder, streamed text, a `--max-new-tokens` far
//! beyond the model's positions, and one-line errors.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::common::{fixture, floats, ints, rel_err, s, torchless};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("decoders/expected.json")).unwrap())
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids_arg(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// `--prompt-ids ... --greedy --json` reproduces the recorded continuation and logits.
fn check_greedy(dir: &Path, kind: &str, e: &Value) {
    for c in e["models"][kind]["cases"].as_array().unwrap() {
        let ids = ints(&c["prompt_ids"]);
        let out = json_of(&torchless(&[
            "generate",
            "--model",
            s(dir),
            "--device",
            "cpu",
            "--prompt-ids",
            &ids_arg(&ids),
            "--greedy",
            "--max-new-tokens",
            "20",
            "--json",
        ]));
        assert_eq!(ints(&out["prompt_ids"]), ids);
        assert_eq!(ints(&out["new_ids"]), ints(&c["greedy_new_ids"]), "{kind}");
        assert_eq!(out["stop"], c["stop"]);
        let logits = floats(&out["first_step_logits"]);
        let all = floats(&c["prompt_logits"]);
        let last = &all[all.len() - logits.len()..];
        assert!(rel_err(&logits, last) < 1e-4, "{kind}");
    }
}

#[test]
fn greedy_json_matches_transformers_from_the_pytorch_checkpoint() {
    let e = expected();
    for kind in [
        "gpt2", "llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3",
    ] {
        check_greedy(&fixture(&format!("decoders/{kind}")), kind, &e);
    }
}

#[test]
fn greedy_json_matches_after_converting_to_safetensors() {
    let e = expected();
    for kind in ["gpt2", "qwen2", "qwen3", "phi3", "gemma3"] {
        let src = fixture(&format!("decoders/{kind}"));
        let dir = tempfile::tempdir().unwrap();
        for f in ["config.json", "generation_config.json"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        let out = torchless(&[
            "convert",
            s(&src.join("pytorch_model.bin")),
            s(&dir.path().join("model.safetensors")),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_greedy(dir.path(), kind, &e);
    }
}

#[test]
fn greedy_json_matches_from_hugging_face_safetensors_with_one_tied_name() {
    // `save_pretrained` stores the tied output projection once, as `transformer.wte.weight`.
    check_greedy(&fixture("decoders/gpt2-safetensors"), "gpt2", &expected());
}

#[test]
fn text_prompts_stream_and_decode() {
    let e = expected();
    let c = &e["models"]["gpt2"]["text_cases"][0];
    let dir = fixture("decoders/gpt2");
    let text = c["text"].as_str().unwrap();
    let out = json_of(&torchless(&[
        "generate",
        "--model",
        s(&dir),
        "--device",
        "cpu",
        "--prompt",
        text,
        "--max-new-tokens",
        "20",
        "--json",
    ]));
    assert_eq!(ints(&out["prompt_ids"]), ints(&c["prompt_ids"]));
    assert_eq!(ints(&out["new_ids"]), ints(&c["greedy_new_ids"]));
    assert_eq!(out["text"], c["greedy_text"]);
    // Without --json the new text is printed (streamed) followed by a newline.
    let out = torchless(&[
        "generate",
        "--model",
        s(&dir),
        "--device",
        "cpu",
        "--prompt",
        text,
        "--max-new-tokens",
        "20",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, format!("{}\n", c["greedy_text"].as_str().unwrap()));
}

#[test]
fn seeded_sampling_is_reproducible_from_the_command_line() {
    let dir = fixture("decoders/llama");
    let run = |seed: &str| {
        json_of(&torchless(&[
            "generate",
            "--model",
            s(&dir),
            "--device",
            "cpu",
            "--prompt-ids",
            "5,6,7",
            "--temperature",
            "1.3",
            "--top-k",
            "40",
            "--top-p",
            "0.9",
            "--seed",
            seed,
            "--ignore-eos",
            "--max-new-tokens",
            "12",
            "--json",
        ]))["new_ids"]
            .clone()
    };
    assert_eq!(run("3"), run("3"));
    assert_ne!(run("3"), run("4"));
}

#[test]
fn generate_bad_input_is_one_line_and_non_zero() {
    let qwen = fixture("decoders/qwen2");
    let gpt2 = fixture("decoders/gpt2");
    let bert = fixture("bert/tiny-st");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", s(&qwen), "--prompt", "hi"],
            "tokenizer.json",
        ),
        (
            vec!["--model", "/nonexistent/model", "--prompt-ids", "1"],
            "/nonexistent/model",
        ),
        (vec!["--model", s(&bert), "--prompt-ids", "1"], "\"bert\""),
        (
            vec!["--model", s(&gpt2), "--prompt-ids", "1,99999"],
            "99999",
        ),
        (
            vec![
                "--model",
                s(&gpt2),
                "--prompt-ids",
                "1",
                "--temperature",
                "0",
            ],
            "temperature",
        ),
        (
            vec!["--model", s(&gpt2), "--prompt-ids", "1", "--dtype", "f8"],
            "f8",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["generate", "--device", "cpu"];
        full.extend(args.iter().copied());
        let out = torchless(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_huge_max_new_tokens_stops_when_the_context_is_full() {
    // gpt2 has 64 positions: after an 8-token prompt, 57 new tokens (the last never fed back).
    let dir = fixture("decoders/gpt2");
    for n in ["1000000000000", &u64::MAX.to_string()] {
        let out = json_of(&torchless(&[
            "generate",
            "--model",
            s(&dir),
            "--device",
            "cpu",
            "--prompt-ids",
            "1,2,3,4,5,6,7,8",
            "--ignore-eos",
            "--max-new-tokens",
            n,
            "--json",
        ]));
        assert_eq!(out["stop"], "context_full", "{n}");
        assert_eq!(out["new_ids"].as_array().unwrap().len(), 57, "{n}");
    }
    // Without --json the ids are printed and a note says why generation ended.
    let out = torchless(&[
        "generate",
        "--model",
        s(&fixture("decoders/qwen2")),
        "--device",
        "cpu",
        "--prompt-ids",
        "1,2,3",
        "--ignore-eos",
        "--max-new-tokens",
        &u64::MAX.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    // qwen2 has 80 positions: 3 prompt tokens, 78 new ones.
    assert_eq!(printed.trim_end().split(',').count(), 78, "{printed}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stopped after 78 tokens: the model's 80 positions are used up"),
        "{err}"
    );
}

/// `--system ... --chat ...` builds the prompt with the folder's chat template: the ids are
/// transformers' `apply_chat_template(..., add_generation_prompt=True, tokenize=True)`, and the
/// streamed text equals the `--json` text.
#[test]
fn chat_prompts_use_the_folders_chat_template() {
    let fx: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("chat/folders.json")).expect("chat/folders.json"),
    )
    .expect("json");
    let case = fx["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| {
            c["folder"] == "decoders/llama"
                && c["messages"].as_array().map(Vec::len) == Some(2)
                && c["ids"].as_array().map(Vec::len) < Some(40)
        })
        .expect("a short llama chat case");
    let system = case["messages"][0]["content"].as_str().expect("system");
    let user = case["messages"][1]["content"].as_str().expect("user");
    let dir = fixture("decoders/llama");
    let args = [
        "generate",
        "--model",
        s(&dir),
        "--device",
        "cpu",
        "--system",
        system,
        "--chat",
        user,
        "--max-new-tokens",
        "8",
        "--ignore-eos",
    ];
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let out = json_of(&torchless(&with_json));
    assert_eq!(ints(&out["prompt_ids"]), ints(&case["ids"]));
    assert_eq!(ints(&out["new_ids"]).len(), 8);
    let streamed = torchless(&args);
    assert!(
        streamed.status.success(),
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    let text = out["text"].as_str().expect("text");
    assert_eq!(
        String::from_utf8_lossy(&streamed.stdout),
        format!("{text}\n")
    );

    // A folder without a chat template is refused, naming what is missing.
    let out = torchless(&[
        "generate",
        "--model",
        s(&fixture("decoders/qwen2")),
        "--device",
        "cpu",
        "--chat",
        "hi",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no chat template"), "{err}");
    // --system needs --chat.
    let out = torchless(&[
        "generate",
        "--model",
        s(&dir),
        "--system",
        "x",
        "--prompt",
        "y",
    ]);
    assert!(!out.status.success());
}
