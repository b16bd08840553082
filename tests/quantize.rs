//! `--quantize int8` (int8 weights in the decoders' blocks) against a *trained* tiny GPT-2
//! (`tests/fixtures/decoders/trained-gpt2`, written by `scripts/train_tiny_gpt2.py`): random
//! weights give near-flat logits where argmax agreement means nothing, a trained model's are
//! peaked as a real one's. f32 must equal transformers token for token; int8 must stay close.

use std::path::{Path, PathBuf};

use candle_core::DType;
use serde_json::Value;
use torchless::{DeviceSpec, GenerateOptions, LoadOptions, Quantize, TextGenerator};
use torchless_models::Logits;

use crate::common::{fixture, floats, ints, rel_err, s, torchless};

/// ‖int8 − f32‖ / ‖f32‖ of the first-step logits of the trained model (measured 0.3–0.9%:
/// weights rounded to 1/254 of each row's largest magnitude, errors of random sign).
const FIRST_LOGITS_TOL: f32 = 0.02;
/// Of 64 greedy tokens, how many must equal the f32 path's.
const MIN_AGREEMENT: usize = 60;

fn dir() -> PathBuf {
    fixture("decoders/trained-gpt2")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn load(dir: &Path, quantize: Option<Quantize>) -> TextGenerator {
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize,
    };
    TextGenerator::load(dir, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: n,
        stop_at_eos: false,
        ..Default::default()
    }
}

#[test]
fn trained_gpt2_f32_equals_transformers_and_int8_stays_close() {
    let e = expected();
    let n = e["new_tokens"].as_u64().unwrap() as usize;
    assert_eq!(n, 64);
    let f32_model = load(&dir(), None);
    let int8_model = load(&dir(), Some(Quantize::Int8));
    for c in e["cases"].as_array().unwrap() {
        let ids = ints(&c["prompt_ids"]);
        assert_eq!(
            f32_model.encode(c["prompt"].as_str().unwrap()).unwrap(),
            ids
        );
        let want = ints(&c["greedy_new_ids"]);
        let f = f32_model.generate(&ids, &greedy(n), |_| true).unwrap();
        assert_eq!(f.new_ids, want, "f32 {ids:?}");
        let ref_logits = floats(&c["first_step_logits"]);
        assert!(rel_err(&f.first_step_logits, &ref_logits) < 1e-4);

        let q = int8_model.generate(&ids, &greedy(n), |_| true).unwrap();
        let agree = q
            .new_ids
            .iter()
            .zip(&f.new_ids)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            agree >= MIN_AGREEMENT,
            "int8 agrees with f32 on {agree}/{n} tokens for {ids:?}: {:?} vs {:?}",
            q.new_ids,
            f.new_ids
        );
        let err = rel_err(&q.first_step_logits, &f.first_step_logits);
        eprintln!("int8 {ids:?}: {agree}/{n} tokens agree, first-step logits error {err}");
        assert!(
            err < FIRST_LOGITS_TOL,
            "{ids:?}: first-step logits relative error {err}"
        );
        assert!(err > 0.0, "the int8 path must not be the f32 one");
    }
}

/// Teacher-forced over a held-out passage (Python source the model did not train on): f32's
/// argmax equals transformers' at every position, and int8's at nearly every one.
#[test]
fn held_out_passage_argmax_agrees() {
    let p = &expected()["passage"];
    let ids = ints(&p["ids"]);
    let want = ints(&p["argmax"]);
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |b, (i, &v)| {
                if v > b.1 {
                    (i as u32, v)
                } else {
                    b
                }
            })
            .0
    };
    let f = load(&dir(), None).prompt_logits(&ids).unwrap();
    let q = load(&dir(), Some(Quantize::Int8))
        .prompt_logits(&ids)
        .unwrap();
    let got: Vec<u32> = f.iter().map(|r| argmax(r)).collect();
    assert_eq!(got, want);
    let last = floats(&p["last_logits"]);
    assert!(rel_err(&f[f.len() - 1], &last) < 1e-4);
    let agree = q.iter().zip(&want).filter(|(r, &w)| argmax(r) == w).count();
    eprintln!("int8 passage argmax agreement {agree}/{}", want.len());
    // PyTorch's quantize_dynamic agrees on `quantize_dynamic_argmax_agreement` (122 of 127).
    assert!(
        agree * 100 >= want.len() * 94,
        "int8 argmax agrees on {agree}/{}",
        want.len()
    );
}

/// The prompt through the int8 product at once (`M > 1`) and token by token (`M = 1`, the
/// decode kernel) gives the same logits: both read the same int8 weights.
#[test]
fn int8_prefill_equals_int8_decode_steps() {
    let g = load(&dir(), Some(Quantize::Int8));
    let ids = ints(&expected()["cases"][0]["prompt_ids"]);
    let m = g.model();
    let mut whole = m.new_cache(ids.len()).unwrap();
    let all = m
        .forward(&ids, &mut whole, Logits::All)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut steps = m.new_cache(ids.len()).unwrap();
    for (i, &id) in ids.iter().enumerate() {
        let one = m
            .forward(&[id], &mut steps, Logits::Last)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let err = rel_err(&one[0], &all[i]);
        assert!(err < 1e-5, "position {i}: {err}");
    }
}

/// Every decoder family quantizes its blocks (random-weight fixtures: only closeness of the
/// logits is meaningful there), and the output keeps the model's dtype.
#[test]
fn every_decoder_family_takes_int8() {
    for kind in [
        "gpt2", "llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3",
    ] {
        let d = fixture(&format!("decoders/{kind}"));
        let (f, q) = (load(&d, None), load(&d, Some(Quantize::Int8)));
        let ids = [1u32, 5, 9, 3];
        let lf = f.prompt_logits(&ids).unwrap().concat();
        let lq = q.prompt_logits(&ids).unwrap().concat();
        let err = rel_err(&lq, &lf);
        assert!(err > 0.0 && err < 0.1, "{kind}: {err}");
    }
}

#[test]
fn int8_is_refused_for_models_that_do_not_generate() {
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize: Some(Quantize::Int8),
    };
    let enc = torchless::SentenceEncoder::load(&fixture("bert/tiny-st"), &opts)
        .err()
        .unwrap();
    assert!(
        enc.to_string()
            .contains("--quantize int8 applies to text-generation models"),
        "{enc}"
    );
    let vit = torchless::Classifier::load_detected(&fixture("vit"), &opts)
        .err()
        .unwrap();
    assert!(vit.to_string().contains("an image classifier"), "{vit}");
    let program = torchless::Program::load(&fixture("graph/ops_int/program.pt2"), &opts)
        .err()
        .unwrap();
    assert!(
        program.to_string().contains("torch.export program"),
        "{program}"
    );
    // bf16 weights quantize too (the products run in f32, the output is bf16 again).
    let bf16 = LoadOptions {
        dtype: DType::BF16,
        ..opts
    };
    let g = TextGenerator::load(&dir(), &bf16).unwrap();
    assert_eq!(g.model().dtype(), DType::BF16);
}

#[test]
fn generate_cli_takes_quantize_int8() {
    let c = &expected()["cases"][1];
    let ids = ints(&c["prompt_ids"]);
    let ids_arg = ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let run = |quantize: &str| {
        torchless(&[
            "generate",
            "--model",
            s(&dir()),
            "--device",
            "cpu",
            "--prompt-ids",
            &ids_arg,
            "--greedy",
            "--max-new-tokens",
            "8",
            "--ignore-eos",
            "--json",
            "--quantize",
            quantize,
        ])
    };
    let out = run("int8");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = ints(&c["greedy_new_ids"]);
    let got = ints(&v["new_ids"]);
    assert_eq!(got.len(), 8);
    assert!(
        got.iter().zip(&want).filter(|(a, b)| a == b).count() >= 7,
        "{got:?} vs {want:?}"
    );
    let bad = run("int4");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown quantization \"int4\""));
    let help = torchless(&["generate", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--quantize"));
}
