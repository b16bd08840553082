//! Decoder generation speed on the CPU, batch 1: prefill latency (a prompt through the model and
//! the first token chosen) and decode tokens/s (each further token: one cached forward step
//! plus greedy choice), through the public `TextGenerator::generate` API a user calls.
//!
//! Takes model folders (config.json + weights) on the command line; prints one JSON object per
//! model on stdout. `benches/decoder_vs_torch.py` builds GPT-2-small-sized and ~1B Llama-shaped
//! folders with random weights, runs this, and times `transformers` `generate()` on PyTorch
//! eager with the same threads in the same invocation.
//!
//! `cargo bench -p torchless-benches --bench decoder -- DIR... [--prompt N] [--new N] [--runs N]
//! [--dtype f32|bf16] [--quantize int8]`

use std::path::PathBuf;
use std::time::Instant;

use torchless::{DeviceSpec, GenerateOptions, LoadOptions, TextGenerator};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `VmRSS` and `VmHWM` of this process in MiB (Linux), for the memory-flatness check.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let mut dirs = Vec::new();
    let (mut prompt, mut new, mut runs) = (32usize, 32usize, 5usize);
    let mut dtype = candle_core::DType::F32;
    let mut quantize = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--prompt" => prompt = num("--prompt"),
            "--new" => new = num("--new"),
            "--runs" => runs = num("--runs"),
            "--dtype" => {
                let v = args.next().unwrap_or_default();
                dtype = torchless::parse_dtype(&v).unwrap_or_else(|e| panic!("{e}"));
            }
            "--quantize" => {
                let v = args.next().unwrap_or_default();
                quantize = torchless::parse_quantize(&v).unwrap_or_else(|e| panic!("{e}"));
            }
            "--bench" => {}
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        dtype,
        quantize,
    };
    for dir in dirs {
        let t = Instant::now();
        let g =
            TextGenerator::load(&dir, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let load_s = t.elapsed().as_secs_f64();
        let vocab = g.model().shape().vocab_size as u64;
        let ids: Vec<u32> = (0..prompt as u64)
            .map(|i| ((i * 7919 + 13) % vocab) as u32)
            .collect();
        let gen = |n: usize| GenerateOptions {
            max_new_tokens: n,
            stop_at_eos: false,
            ..Default::default()
        };
        // Warm-up, then `runs` timed generations of `new` tokens; prefill and decode are timed
        // inside generate (prefill = prompt pass; decode = the remaining new-1 tokens).
        let _ = g.generate(&ids, &gen(4), |_| true);
        let rss_before = rss_mib();
        let (mut prefill, mut decode) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let out = g
                .generate(&ids, &gen(new), |_| true)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.new_ids.len(), new);
            prefill.push(out.prefill_seconds);
            decode.push((new - 1) as f64 / out.decode_seconds);
        }
        // Memory after a generation 4x longer: flat when nothing grows per token.
        let long = (4 * new).min(g.model().shape().max_positions - prompt);
        let _ = g.generate(&ids, &gen(long), |_| true);
        let rss_after = rss_mib();
        println!(
            "{}",
            serde_json::json!({
                "model": dir.file_name().map(|n| n.to_string_lossy().into_owned()),
                "prompt_tokens": prompt,
                "dtype": format!("{dtype:?}").to_lowercase(),
                "new_tokens": new,
                "load_s": load_s,
                "prefill_ms": median(prefill) * 1e3,
                "decode_tok_s": median(decode),
                "rss_mib_before": rss_before.0,
                "rss_mib_after_long_generation": rss_after.0,
                "long_generation_tokens": long,
                "peak_rss_mib": rss_after.1,
            })
        );
    }
}
