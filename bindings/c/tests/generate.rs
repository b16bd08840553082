//! `torchless_generate` through the C ABI on the GPT-2 decoder fixture: greedy ids equal to
//! `transformers`, every token through the callback, a callback that stops, a text prompt, a
//! too-small output buffer, and the other calls refusing a generator.

use std::ffi::{c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use serde_json::Value;
use torchless::capi::*;

mod common;
use common::{last_error, Model};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/decoders")
        .join(rel)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn gpt2() -> Model {
    let dir = CString::new(fixture("gpt2").to_str().unwrap()).unwrap();
    let mut m = null_mut();
    // SAFETY: valid strings and a writable out pointer.
    let s = unsafe { torchless_model_load(dir.as_ptr(), c"cpu".as_ptr(), null(), &mut m) };
    assert_eq!(s, TorchlessStatus::Ok);
    Model(m)
}

/// Records every token into the `Vec<u32>` behind `user_data`; stops after `limit` when set.
struct Seen {
    tokens: Vec<u32>,
    limit: Option<usize>,
}

unsafe extern "C" fn record(user_data: *mut c_void, token: u32) -> c_int {
    // SAFETY: the tests pass a live `Seen` for the duration of the call.
    let seen = unsafe { &mut *user_data.cast::<Seen>() };
    seen.tokens.push(token);
    c_int::from(seen.limit.is_some_and(|l| seen.tokens.len() >= l))
}

/// Greedy generation of at most `n` tokens from ids; returns (status, ids written, seen).
fn generate(
    m: &Model,
    prompt: &[u32],
    n: u32,
    limit: Option<usize>,
) -> (TorchlessStatus, Vec<u32>, Seen) {
    let mut opts = torchless_generate_options_default();
    opts.max_new_tokens = n;
    let mut out = vec![0u32; n as usize];
    let mut len = 0usize;
    let mut seen = Seen {
        tokens: Vec::new(),
        limit,
    };
    // SAFETY: live buffers of the stated sizes; `seen` outlives the call.
    let s = unsafe {
        torchless_generate(
            m.0,
            prompt.as_ptr(),
            prompt.len(),
            null(),
            &opts,
            out.as_mut_ptr(),
            out.len(),
            &mut len,
            Some(record),
            (&mut seen as *mut Seen).cast(),
        )
    };
    out.truncate(len);
    (s, out, seen)
}

#[test]
fn greedy_ids_match_transformers_and_stream_through_the_callback() {
    let e = expected();
    let m = gpt2();
    let mut info = TorchlessModelInfo {
        kind: TorchlessModelKind::Encoder,
        output_dim: 0,
        architecture: null(),
        name: null(),
    };
    // SAFETY: a live handle and a writable info.
    assert_eq!(
        unsafe { torchless_model_info(m.0, &mut info) },
        TorchlessStatus::Ok
    );
    assert_eq!(info.kind, TorchlessModelKind::Generator);
    assert_eq!(info.output_dim, 384);
    for c in e["models"]["gpt2"]["cases"].as_array().unwrap() {
        let (s, out, seen) = generate(&m, &ids(&c["prompt_ids"]), 20, None);
        assert_eq!(s, TorchlessStatus::Ok, "{}", last_error());
        assert_eq!(out, ids(&c["greedy_new_ids"]));
        assert_eq!(seen.tokens, out);
    }
}

#[test]
fn the_callback_stops_generation_and_buffers_are_checked() {
    let e = expected();
    let m = gpt2();
    let c = &e["models"]["gpt2"]["cases"][1];
    let (s, out, seen) = generate(&m, &ids(&c["prompt_ids"]), 20, Some(4));
    assert_eq!(s, TorchlessStatus::Ok);
    assert_eq!(out, ids(&c["greedy_new_ids"])[..4]);
    assert_eq!(seen.tokens.len(), 4);

    // An output buffer smaller than max_new_tokens is refused before running.
    let mut opts = torchless_generate_options_default();
    opts.max_new_tokens = 8;
    let mut small = [0u32; 4];
    let mut len = 7usize;
    let prompt = [1u32, 2, 3];
    // SAFETY: live buffers of the stated sizes.
    let s = unsafe {
        torchless_generate(
            m.0,
            prompt.as_ptr(),
            3,
            null(),
            &opts,
            small.as_mut_ptr(),
            small.len(),
            &mut len,
            None,
            null_mut(),
        )
    };
    assert_eq!(s, TorchlessStatus::BufferTooSmall, "{}", last_error());
    assert_eq!(len, 0);

    // An id outside the vocabulary is an error with a message, not a crash.
    let (s, _, _) = generate(&m, &[1, 99_999], 2, None);
    assert_ne!(s, TorchlessStatus::Ok);
    assert!(last_error().contains("99999"), "{}", last_error());
}

#[test]
fn text_prompts_use_the_tokenizer() {
    let e = expected();
    let m = gpt2();
    let c = &e["models"]["gpt2"]["text_cases"][0];
    let text = CString::new(c["text"].as_str().unwrap()).unwrap();
    let mut opts = torchless_generate_options_default();
    opts.max_new_tokens = 20;
    let mut out = vec![0u32; 20];
    let mut len = 0usize;
    // SAFETY: a NUL-terminated prompt and live buffers of the stated sizes.
    let s = unsafe {
        torchless_generate(
            m.0,
            null(),
            0,
            text.as_ptr(),
            &opts,
            out.as_mut_ptr(),
            out.len(),
            &mut len,
            None,
            null_mut(),
        )
    };
    assert_eq!(s, TorchlessStatus::Ok, "{}", last_error());
    out.truncate(len);
    assert_eq!(out, ids(&c["greedy_new_ids"]));
}

#[test]
fn embed_and_classify_refuse_a_generator() {
    let m = gpt2();
    let text = c"hello";
    let texts = [text.as_ptr()];
    let mut out = [0f32; 8];
    let (mut rows, mut dim) = (0usize, 0usize);
    // SAFETY: live buffers of the stated sizes.
    let s = unsafe {
        torchless_embed(
            m.0,
            texts.as_ptr(),
            1,
            out.as_mut_ptr(),
            8,
            &mut rows,
            &mut dim,
        )
    };
    assert_eq!(s, TorchlessStatus::WrongModelKind);
    assert!(
        last_error().contains("generator: use torchless_generate"),
        "{}",
        last_error()
    );
}

#[test]
fn a_huge_max_new_tokens_is_capped_at_the_model_positions() {
    // gpt2 has 64 positions: an 8-token prompt leaves room for at most 57 new tokens, whatever
    // max_new_tokens says; nothing is sized from u32::MAX.
    let m = gpt2();
    let mut opts = torchless_generate_options_default();
    opts.max_new_tokens = u32::MAX;
    let prompt = [1u32, 2, 3, 4, 5, 6, 7, 8];
    let mut seen = Seen {
        tokens: Vec::new(),
        limit: None,
    };
    let mut len = 0usize;
    // SAFETY: a live prompt, no output buffer, `seen` outlives the call.
    let s = unsafe {
        torchless_generate(
            m.0,
            prompt.as_ptr(),
            prompt.len(),
            null(),
            &opts,
            null_mut(),
            0,
            &mut len,
            Some(record),
            (&mut seen as *mut Seen).cast(),
        )
    };
    assert_eq!(s, TorchlessStatus::Ok, "{}", last_error());
    assert_eq!(len, seen.tokens.len());
    // Either the context filled up or the model's end-of-sequence id (134) came first.
    let eos_at = seen.tokens.iter().position(|&t| t == 134);
    match eos_at {
        Some(i) => assert_eq!(i + 1, len, "generation went on past end-of-sequence"),
        None => assert_eq!(len, 57),
    }
}
