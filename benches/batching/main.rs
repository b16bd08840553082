//! Continuous batching against one sequence at a time, on the CPU: `S` concurrent streams
//! submitted at once to a `GenerationQueue` (one decode step for all running sequences, every
//! weight read once per step) next to the same `S` requests run by `TextGenerator::generate`
//! one after the other. Prints one JSON object: total new tokens / wall seconds for each, the
//! ratio, and whether both gave the same ids (greedy).
//!
//! The model is GPT-2-small-shaped (12 layers, 768 wide, 12 heads, 50257 vocabulary, 124M
//! parameters) with random weights (N(0, 0.02), seeded), written once as an f32 safetensors
//! folder under the system's temporary directory and removed at the end.
//!
//! `cargo bench -p torchless-benches --bench batching -- [--streams S] [--new N] [--dtype
//! f32|bf16] [--layers L]`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use torchless::batching::{BatchLimits, GenerationEvent, GenerationQueue};
use torchless::{DeviceSpec, GenerateOptions, LoadOptions, TextGenerator};

const VOCAB: usize = 50257;
const HIDDEN: usize = 768;
const HEADS: usize = 12;
const POSITIONS: usize = 1024;

/// Writes a GPT-2-small-shaped folder with random weights into `dir`.
fn write_gpt2(dir: &Path, layers: usize) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let randn = |shape: &[usize]| Tensor::randn(0f32, 0.02, shape, &dev);
    let ones = |n: usize| Tensor::ones(n, DType::F32, &dev);
    let zeros = |n: usize| Tensor::zeros(n, DType::F32, &dev);
    t.insert("transformer.wte.weight".into(), randn(&[VOCAB, HIDDEN])?);
    t.insert(
        "transformer.wpe.weight".into(),
        randn(&[POSITIONS, HIDDEN])?,
    );
    for i in 0..layers {
        let p = |n: &str| format!("transformer.h.{i}.{n}");
        for ln in ["ln_1", "ln_2"] {
            t.insert(p(&format!("{ln}.weight")), ones(HIDDEN)?);
            t.insert(p(&format!("{ln}.bias")), zeros(HIDDEN)?);
        }
        for (name, i_dim, o_dim) in [
            ("attn.c_attn", HIDDEN, 3 * HIDDEN),
            ("attn.c_proj", HIDDEN, HIDDEN),
            ("mlp.c_fc", HIDDEN, 4 * HIDDEN),
            ("mlp.c_proj", 4 * HIDDEN, HIDDEN),
        ] {
            t.insert(p(&format!("{name}.weight")), randn(&[i_dim, o_dim])?);
            t.insert(p(&format!("{name}.bias")), randn(&[o_dim])?);
        }
    }
    t.insert("transformer.ln_f.weight".into(), ones(HIDDEN)?);
    t.insert("transformer.ln_f.bias".into(), zeros(HIDDEN)?);
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "model_type": "gpt2", "vocab_size": VOCAB, "n_positions": POSITIONS, "n_embd": HIDDEN,
        "n_layer": layers, "n_head": HEADS, "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new", "eos_token_id": 50256,
        "architectures": ["GPT2LMHeadModel"]
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    Ok(())
}

fn main() {
    let (mut streams, mut new, mut layers) = (16usize, 32usize, 12usize);
    let mut dtype = DType::F32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--streams" => streams = num("--streams"),
            "--new" => new = num("--new"),
            "--layers" => layers = num("--layers"),
            "--dtype" => {
                let v = args.next().unwrap_or_default();
                dtype = torchless::parse_dtype(&v).unwrap_or_else(|e| panic!("{e}"));
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let dir: PathBuf =
        std::env::temp_dir().join(format!("torchless-bench-batching-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the model folder");
    write_gpt2(&dir, layers).expect("write the random GPT-2 folder");
    let opts = LoadOptions {
        device: DeviceSpec::Cpu,
        dtype,
        quantize: None,
    };
    let g = Arc::new(TextGenerator::load(&dir, &opts).expect("load the random GPT-2"));
    let _ = std::fs::remove_dir_all(&dir);

    // Prompts of 8..=38 tokens, one per stream; greedy, no EOS stop: every stream makes `new`.
    let prompts: Vec<Vec<u32>> = (0..streams)
        .map(|s| {
            (0..8 + (s * 7) % 31)
                .map(|j| ((s * 7919 + j * 104_729 + 13) % VOCAB) as u32)
                .collect()
        })
        .collect();
    let gen = GenerateOptions {
        max_new_tokens: new,
        stop_at_eos: false,
        ..Default::default()
    };
    let _ = g.generate(
        &prompts[0],
        &GenerateOptions {
            max_new_tokens: 4,
            ..gen.clone()
        },
        |_| true,
    );

    let t = Instant::now();
    let sequential: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| g.generate(p, &gen, |_| true).expect("generate").new_ids)
        .collect();
    let seq_s = t.elapsed().as_secs_f64();

    let q = GenerationQueue::new(
        Arc::clone(&g),
        BatchLimits {
            max_batch_size: streams,
            max_queue: streams,
        },
    );
    let (tx, rx) = channel();
    let t = Instant::now();
    for (i, p) in prompts.iter().enumerate() {
        let tx = tx.clone();
        let sink = Box::new(move |ev| tx.send((i, ev)).is_ok());
        q.submit(p.clone(), gen.clone(), sink).expect("submit");
    }
    let mut batched: Vec<Vec<u32>> = vec![Vec::new(); streams];
    let mut ended = 0;
    while ended < streams {
        match rx
            .recv_timeout(Duration::from_secs(600))
            .expect("a stream stalled")
        {
            (i, GenerationEvent::Finished(out)) => {
                batched[i] = out.new_ids;
                ended += 1;
            }
            (_, GenerationEvent::Failed(e)) => panic!("a stream failed: {e}"),
            (_, GenerationEvent::Token(_)) => {}
        }
    }
    let batch_s = t.elapsed().as_secs_f64();
    q.shutdown();

    let tokens = (streams * new) as f64;
    let report = serde_json::json!({
        "model": format!("gpt2-small-shaped random ({layers} layers)"),
        "dtype": format!("{dtype:?}").to_lowercase(),
        "streams": streams,
        "new_tokens_each": new,
        "sequential_seconds": seq_s,
        "batched_seconds": batch_s,
        "sequential_tok_s": tokens / seq_s,
        "batched_tok_s": tokens / batch_s,
        "speed_up": seq_s / batch_s,
        "same_ids": sequential == batched,
    });
    println!("{report}");
}
