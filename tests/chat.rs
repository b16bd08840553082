//! Chat templates against `transformers`' `apply_chat_template` (the prompts
//! `scripts/chat_template_fixtures.py` recorded for Qwen2.5/ChatML, Llama 3.1 and 3.2,
//! Gemma 2 and 3, Phi-3, Mistral v0.3, Qwen3 and Zephyr templates and one of Python-isms),
//! and streamed text against the tokenizer's decoding of the whole sequence.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use tokenizers::Tokenizer;
use torchless::chat::{ChatMessage, ChatTemplate, TextStream};

use crate::common::fixture;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    serde_json::from_value(v.clone()).expect("fixture messages are {role, content}")
}

/// A model folder holding `template` the way number `form` of three stores it: the config's
/// `chat_template` string, a list of named templates with a `default`, or `chat_template.jinja`
/// beside a config that only has the special tokens (as strings or `{"content": ...}` objects).
fn write_folder(dir: &Path, template: &str, special: &Value, form: usize) {
    let mut config = serde_json::Map::new();
    if let Some(tokens) = special.as_object() {
        for (i, (k, v)) in tokens.iter().enumerate() {
            let value = if (i + form).is_multiple_of(2) {
                v.clone()
            } else {
                json!({"__type": "AddedToken", "content": v, "special": true})
            };
            config.insert(k.clone(), value);
        }
    }
    match form % 3 {
        0 => {
            config.insert("chat_template".into(), json!(template));
        }
        1 => {
            config.insert(
                "chat_template".into(),
                json!([
                    {"name": "tool_use", "template": "{{ raise_exception('not this one') }}"},
                    {"name": "default", "template": template},
                ]),
            );
        }
        _ => {
            // transformers 5 prefers the file over the config's entry.
            config.insert(
                "chat_template".into(),
                json!("{{ raise_exception('stale') }}"),
            );
            std::fs::write(dir.join("chat_template.jinja"), template).expect("write template");
        }
    }
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&Value::Object(config)).expect("json"),
    )
    .expect("write config");
}

#[test]
fn chat_templates_render_as_transformers() {
    let fx = read_json(&fixture("chat/templates.json"));
    let templates = &fx["templates"];
    let cases = fx["cases"].as_array().expect("cases");
    assert!(cases.len() > 100);
    let mut failures = Vec::new();
    let mut errors_checked = 0;
    for (i, case) in cases.iter().enumerate() {
        let name = case["template"].as_str().expect("template name");
        let dir = tempfile::tempdir().expect("tempdir");
        write_folder(
            dir.path(),
            templates[name]["template"].as_str().expect("template"),
            &templates[name]["special_tokens"],
            i,
        );
        let label = format!(
            "{name} / {} / add_generation_prompt={} / extra={}",
            case["conversation"], case["add_generation_prompt"], case["extra"]
        );
        let template = match ChatTemplate::from_folder(dir.path()) {
            Ok(Some(t)) => t,
            other => panic!("{label}: {other:?}"),
        };
        let extra = case["extra"].as_object().cloned().unwrap_or_default();
        let agp = case["add_generation_prompt"].as_bool().expect("bool");
        let got = template.render_with(&messages(&case["messages"]), agp, &extra);
        match (case["expected"].as_str(), case["error"].as_str(), got) {
            (Some(want), _, Ok(got)) if got == want => {}
            (_, Some(message), Err(e)) => {
                let text = e.to_string();
                let file = if i % 3 == 2 {
                    "chat_template.jinja"
                } else {
                    "tokenizer_config.json"
                };
                if !text.contains(message) || !text.contains(file) {
                    failures.push(format!(
                        "{label}: error {text:?} lacks {message:?} or {file}"
                    ));
                }
                errors_checked += 1;
            }
            (want, error, got) => failures.push(format!(
                "{label}:\n want {want:?} (error {error:?})\n  got {got:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        errors_checked >= 10,
        "{errors_checked} raise_exception cases"
    );
}

#[test]
fn decoder_fixture_folders_carry_chat_templates() {
    let fx = read_json(&fixture("chat/folders.json"));
    let cases = fx["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());
    for case in cases {
        let folder = fixture(case["folder"].as_str().expect("folder"));
        let template = ChatTemplate::from_folder(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .unwrap_or_else(|| panic!("{} has no chat template", folder.display()));
        let agp = case["add_generation_prompt"].as_bool().expect("bool");
        let got = template.render(&messages(&case["messages"]), agp);
        assert_eq!(
            got.ok().as_deref(),
            case["expected"].as_str(),
            "{}",
            folder.display()
        );
    }
}

#[test]
fn chat_template_absent_or_broken() {
    // No tokenizer_config.json at all, and one without `chat_template`.
    assert!(matches!(
        ChatTemplate::from_folder(&fixture("decoders/qwen2")),
        Ok(None)
    ));
    assert!(matches!(
        ChatTemplate::from_folder(&fixture("bert")),
        Ok(None)
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tokenizer_config.json");
    let write = |v: Value| std::fs::write(&config, v.to_string()).expect("write");

    write(json!({"chat_template": [{"name": "tool_use", "template": "x"}]}));
    let e = ChatTemplate::from_folder(dir.path()).expect_err("no default template");
    assert!(
        e.to_string().contains("tool_use") && e.to_string().contains("default"),
        "{e}"
    );

    write(json!({"chat_template": "{% for m in messages %}{{ m.content }"}));
    let e = ChatTemplate::from_folder(dir.path()).expect_err("syntax error");
    assert!(e.to_string().contains("tokenizer_config.json"), "{e}");
    assert!(e.to_string().contains("syntax error"), "{e}");

    write(json!({"chat_template": 3}));
    assert!(ChatTemplate::from_folder(dir.path()).is_err());

    // Errors while rendering name the file and the line.
    write(json!({"chat_template": "{{ messages[0].content + 1 }}"}));
    let t = ChatTemplate::from_folder(dir.path())
        .expect("compiles")
        .expect("present");
    let e = t
        .render(
            &[ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            true,
        )
        .expect_err("string + int");
    assert!(e.to_string().contains("tokenizer_config.json"), "{e}");
    assert!(e.to_string().contains("line 1"), "{e}");

    // `raise_exception` inside a macro still reaches the caller with its message.
    write(
        json!({"chat_template": "{% macro check(m) %}{% if m.role != 'user' %}{{ raise_exception('role ' + m.role + ' refused') }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{% endfor %}"}),
    );
    let t = ChatTemplate::from_folder(dir.path())
        .expect("compiles")
        .expect("present");
    let e = t
        .render(
            &[ChatMessage {
                role: "tool".into(),
                content: "x".into(),
            }],
            false,
        )
        .expect_err("raised");
    assert!(e.to_string().contains("role tool refused"), "{e}");

    // `strftime_now` gives today's date as Python would (UTC here).
    write(
        json!({"chat_template": "{{ strftime_now('%Y-%m-%d') }}|{{ bos_token }}", "bos_token": {"content": "<s>"}}),
    );
    let t = ChatTemplate::from_folder(dir.path())
        .expect("compiles")
        .expect("present");
    let out = t.render(&[], false).expect("renders");
    let (date, bos) = out.split_once('|').expect("two parts");
    assert_eq!(bos, "<s>");
    let parts: Vec<&str> = date.split('-').collect();
    assert_eq!(parts.len(), 3, "{date}");
    assert!(parts[0].parse::<u32>().is_ok_and(|y| y >= 2024), "{date}");
    assert!(
        parts[1].parse::<u32>().is_ok_and(|m| (1..=12).contains(&m)),
        "{date}"
    );
    assert!(
        parts[2].parse::<u32>().is_ok_and(|d| (1..=31).contains(&d)),
        "{date}"
    );
}

/// Pushes the ids of every fixture text through a [`TextStream`]: the pieces add up to the
/// whole decoding, none holds a broken character, and multi-byte characters split over tokens
/// were held back until complete.
#[test]
fn text_stream_pieces_add_up_to_the_decoding() {
    let texts = read_json(&fixture("chat/stream_texts.json"));
    let texts: Vec<&str> = texts["texts"]
        .as_array()
        .expect("texts")
        .iter()
        .map(|t| t.as_str().expect("text"))
        .collect();
    let mut held_back = BTreeMap::new();
    for name in [
        "decoders/gpt2",
        "decoders/llama",
        "chat/spm-byte-fallback",
        "xlmr/tiny-st",
        "bert",
    ] {
        let path = fixture(name).join("tokenizer.json");
        let tok = Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for text in &texts {
            let ids = tok.encode(*text, true).expect("encodes").get_ids().to_vec();
            let want = tok.decode(&ids, true).expect("decodes");
            let mut stream = TextStream::new(&tok);
            let mut got = String::new();
            for &id in &ids {
                let piece = stream.push(id).expect("push");
                if piece.is_empty() {
                    *held_back.entry(name).or_insert(0) += 1;
                }
                assert!(
                    !piece.contains('\u{FFFD}'),
                    "{name} {text:?}: piece {piece:?}"
                );
                got.push_str(&piece);
            }
            got.push_str(&stream.finish().expect("finish"));
            assert_eq!(got, want, "{name} {text:?} ids {ids:?}");
            assert_eq!(stream.finish().expect("finish twice"), "");
        }
    }
    // Byte-level and byte-fallback tokenizers split emoji/CJK over several tokens.
    for name in ["decoders/gpt2", "decoders/llama", "chat/spm-byte-fallback"] {
        assert!(
            held_back.get(name).copied().unwrap_or(0) > 0,
            "{name}: {held_back:?}"
        );
    }
}

#[test]
fn text_stream_restarts_after_finish() {
    let tok =
        Tokenizer::from_file(fixture("chat/spm-byte-fallback/tokenizer.json")).expect("loads");
    let mut stream = TextStream::new(&tok);
    for text in ["héllo 🙂", "世界 again"] {
        let ids = tok.encode(text, false).expect("encodes").get_ids().to_vec();
        let mut got = String::new();
        for &id in &ids {
            got.push_str(&stream.push(id).expect("push"));
        }
        got.push_str(&stream.finish().expect("finish"));
        assert_eq!(got, tok.decode(&ids, true).expect("decodes"));
    }
}
