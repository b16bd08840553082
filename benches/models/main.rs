//! End-to-end model timings on any device, through the public API a user calls: the timing
//! side of `scripts/gpu-check.sh` (PyTorch's side is `scripts/gpu_models.py`, on the same card
//! in the same run). One JSON object per run on stdout, with the device the model really ran on
//! (`"device": "cuda:0"`), so a CPU fallback cannot pass for a GPU time.
//!
//! ```text
//! bench-models encoder DIR  [--device D] [--dtype T] [--batch 32] [--tokens 128] [--runs 20]
//! bench-models resnet FILE  [--device D] [--dtype T] [--batch 32] [--image 224] [--runs 20]
//! bench-models decoder DIR  [--device D] [--dtype T] [--batch 1] [--prompt 512] [--new 64] [--runs 3]
//! bench-models graph PROGRAM.pt2 --input A.npy [--input B.npy ...] [--device D] [--runs 20]
//! ```
//!
//! - encoder: `SentenceEncoder::hidden_states` on a `batch × tokens` batch of fixed ids (host ids
//!   in, f32 hidden states back on the host); the median of `runs` calls after 3 warm-ups.
//! - resnet: `Classifier::classify_hw` on a `batch × 3 × image × image` host batch, logits back.
//! - decoder: `TextGenerator::generate` (greedy, end-of-sequence ignored): `prefill_ms` is the
//!   prompt pass and the first token; decode tokens/s counts every new token after the first.
//!   `--batch N` > 1 runs N sequences at once through `batching::GenerationQueue` (continuous
//!   batching: one batched decode step for every running sequence) and reports the aggregate
//!   tokens/s over the N sequences.
//! - graph: a `torch.export` program (`torchless::Program`, the graph runtime of `torchless run`)
//!   on the given `.npy` inputs (host arrays, in the program's input order and dtypes): the
//!   median wall time of `runs` calls of `Program::run` after 3 warm-ups, every output copied
//!   back to the host inside the timed call (which also waits for the device). `--dtype` does not
//!   apply (a program's dtypes are part of it); `"batch"` is the first input's first dimension.
//!
//! Build: `cargo bench -p torchless-benches --bench models --no-run [--features cuda]`.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use candle_core::{DType, Device, DeviceLocation, Tensor};
use torchless::batching::{BatchLimits, GenerationEvent, GenerationQueue};
use torchless::convert::DType as TorchDType;
use torchless::npy::read_npy_typed;
use torchless::{
    Batch, Classifier, DeviceSpec, GenerateOptions, LoadOptions, Program, SentenceEncoder,
    TextGenerator,
};

type Res<T> = Result<T, String>;

struct Opts {
    kind: String,
    path: PathBuf,
    device: String,
    dtype: String,
    batch: usize,
    tokens: usize,
    image: usize,
    prompt: usize,
    new: usize,
    runs: usize,
    inputs: Vec<PathBuf>,
}

fn parse() -> Res<Opts> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let kind = args
        .next()
        .ok_or("usage: bench-models encoder|resnet|decoder|graph PATH [options]")?;
    let path = PathBuf::from(args.next().ok_or("missing the model path")?);
    let mut o = Opts {
        kind,
        path,
        device: "auto".into(),
        dtype: "f32".into(),
        batch: 1,
        tokens: 128,
        image: 224,
        prompt: 512,
        new: 64,
        runs: 0,
        inputs: Vec::new(),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || -> Res<usize> {
            value
                .parse()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--device" => o.device = value.clone(),
            "--dtype" => o.dtype = value.clone(),
            "--batch" => o.batch = num()?,
            "--tokens" => o.tokens = num()?,
            "--image" => o.image = num()?,
            "--prompt" => o.prompt = num()?,
            "--new" => o.new = num()?,
            "--runs" => o.runs = num()?,
            "--input" => o.inputs.push(PathBuf::from(&value)),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.batch == 0 || o.tokens == 0 || o.prompt == 0 || o.image < 32 || o.new < 2 {
        return Err(
            "--batch, --tokens and --prompt must be at least 1, --image 32, --new 2".into(),
        );
    }
    Ok(o)
}

fn device_name(d: &Device) -> String {
    match d.location() {
        DeviceLocation::Cpu => "cpu".into(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Median ms of `runs` calls of `f` after 3 untimed ones.
fn time_ms(runs: usize, mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut ts = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(ts))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn encoder(o: &Opts, opts: &LoadOptions) -> Res<serde_json::Value> {
    let t = Instant::now();
    let enc = SentenceEncoder::load(&o.path, opts).map_err(err)?;
    let load_s = t.elapsed().as_secs_f64();
    // Ids from the tokenizer's ordinary range (below 1000: every BERT-family vocabulary has them).
    let row: Vec<u32> = (0..o.tokens).map(|i| (i * 7919 % 997 + 3) as u32).collect();
    let batch = Batch {
        input_ids: vec![row; o.batch],
        token_type_ids: vec![vec![0; o.tokens]; o.batch],
        lengths: vec![o.tokens as u32; o.batch],
    };
    let ms = time_ms(o.runs_or(20), || {
        enc.hidden_states(&batch).map(|_| ()).map_err(err)
    })?;
    Ok(serde_json::json!({
        "device": device_name(enc.device()), "load_s": load_s, "ms": ms,
        "tokens": o.tokens,
    }))
}

fn resnet(o: &Opts, opts: &LoadOptions) -> Res<serde_json::Value> {
    let t = Instant::now();
    let model = Classifier::load_detected(&o.path, opts).map_err(err)?;
    let load_s = t.elapsed().as_secs_f64();
    let x: Vec<f32> = (0..o.batch * 3 * o.image * o.image)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let ms = time_ms(o.runs_or(20), || {
        model
            .classify_hw(&x, o.batch, o.image, o.image)
            .map(|_| ())
            .map_err(err)
    })?;
    Ok(serde_json::json!({
        "device": device_name(model.device()), "load_s": load_s, "ms": ms,
    }))
}

/// A host tensor of one `.npy` input (candle's dtype for its PyTorch dtype, as `Program::run`
/// takes it).
fn npy_input(path: &std::path::Path) -> Res<Tensor> {
    let npy = read_npy_typed(path).map_err(err)?;
    let dtype = match npy.dtype {
        TorchDType::F32 => DType::F32,
        TorchDType::F16 => DType::F16,
        TorchDType::F64 => DType::F64,
        TorchDType::I64 => DType::I64,
        TorchDType::I32 => DType::I32,
        TorchDType::I16 => DType::I16,
        TorchDType::Bool | TorchDType::U8 => DType::U8,
        other => {
            return Err(format!(
                "{}: dtype {other} is not supported",
                path.display()
            ))
        }
    };
    Tensor::from_raw_buffer(&npy.data, dtype, &npy.shape, &Device::Cpu).map_err(err)
}

fn graph(o: &Opts, opts: &LoadOptions) -> Res<serde_json::Value> {
    if o.inputs.is_empty() {
        return Err("graph needs its inputs (--input A.npy, repeatable)".into());
    }
    let inputs = o
        .inputs
        .iter()
        .map(|p| npy_input(p))
        .collect::<Res<Vec<_>>>()?;
    let t = Instant::now();
    let program = Program::load(&o.path, opts).map_err(err)?;
    let load_s = t.elapsed().as_secs_f64();
    let ms = time_ms(o.runs_or(20), || {
        let outs = program.run(&inputs).map_err(err)?;
        for out in outs {
            // Back on the host, as `torchless run` writes them: this also waits for the device.
            out.to_device(&Device::Cpu).map_err(err)?;
        }
        Ok(())
    })?;
    Ok(serde_json::json!({
        "device": device_name(program.device()), "load_s": load_s, "ms": ms,
        "inputs": inputs.iter().map(|t| t.dims().to_vec()).collect::<Vec<_>>(),
    }))
}

fn decoder(o: &Opts, opts: &LoadOptions) -> Res<serde_json::Value> {
    let t = Instant::now();
    let gen = Arc::new(TextGenerator::load(&o.path, opts).map_err(err)?);
    let load_s = t.elapsed().as_secs_f64();
    let vocab = gen.model().shape().vocab_size as u64;
    let ids: Vec<u32> = (0..o.prompt as u64)
        .map(|i| ((i * 7919 + 13) % vocab) as u32)
        .collect();
    let options = |n: usize| GenerateOptions {
        max_new_tokens: n,
        stop_at_eos: false,
        ..Default::default()
    };
    let _ = gen.generate(&ids, &options(4), |_| true).map_err(err)?;
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..o.runs_or(3) {
        if o.batch == 1 {
            let out = gen.generate(&ids, &options(o.new), |_| true).map_err(err)?;
            if out.new_ids.len() != o.new {
                return Err(format!("{} new tokens, asked {}", out.new_ids.len(), o.new));
            }
            prefill.push(out.prefill_seconds * 1e3);
            decode.push((o.new - 1) as f64 / out.decode_seconds);
        } else {
            decode.push(concurrent_tok_s(&gen, &ids, o.batch, options(o.new))?);
        }
    }
    Ok(serde_json::json!({
        "device": device_name(gen.device()), "load_s": load_s,
        "prefill_ms": if prefill.is_empty() { serde_json::Value::Null } else { median(prefill).into() },
        "decode_tok_s": median(decode), "prompt": o.prompt, "new": o.new,
    }))
}

/// Aggregate decode tokens/s of `batch` sequences generated at once on one model.
fn concurrent_tok_s(
    gen: &Arc<TextGenerator>,
    ids: &[u32],
    batch: usize,
    options: GenerateOptions,
) -> Res<f64> {
    let queue = GenerationQueue::new(
        Arc::clone(gen),
        BatchLimits {
            max_batch_size: batch,
            max_queue: batch,
        },
    );
    let (tx, rx) = mpsc::channel();
    for _ in 0..batch {
        let tx = tx.clone();
        queue
            .submit(
                ids.to_vec(),
                options.clone(),
                Box::new(move |ev| {
                    match ev {
                        GenerationEvent::Finished(g) => {
                            let _ = tx.send(Ok(g));
                        }
                        GenerationEvent::Failed(e) => {
                            let _ = tx.send(Err(e.to_string()));
                        }
                        GenerationEvent::Token(_) => {}
                    }
                    true
                }),
            )
            .map_err(err)?;
    }
    drop(tx);
    let mut seconds = Vec::with_capacity(batch);
    for _ in 0..batch {
        let g = rx
            .recv_timeout(std::time::Duration::from_secs(600))
            .map_err(err)??;
        seconds.push(g.decode_seconds);
    }
    queue.shutdown();
    // Every sequence decodes new - 1 tokens; they overlap, so the slowest one bounds the rate.
    let slowest = seconds.iter().copied().fold(0.0, f64::max);
    Ok((batch * (options.max_new_tokens - 1)) as f64 / slowest)
}

impl Opts {
    fn runs_or(&self, default: usize) -> usize {
        if self.runs == 0 {
            default
        } else {
            self.runs
        }
    }
}

fn main() -> std::process::ExitCode {
    let run = || -> Res<serde_json::Value> {
        let o = parse()?;
        let opts = LoadOptions {
            device: o.device.parse::<DeviceSpec>().map_err(err)?,
            dtype: torchless::parse_dtype(&o.dtype).map_err(err)?,
            quantize: None,
        };
        let mut out = match o.kind.as_str() {
            "encoder" => encoder(&o, &opts)?,
            "resnet" => resnet(&o, &opts)?,
            "decoder" => decoder(&o, &opts)?,
            "graph" => graph(&o, &opts)?,
            other => {
                return Err(format!(
                    "unknown kind {other:?} (encoder, resnet, decoder, graph)"
                ))
            }
        };
        out["kind"] = o.kind.clone().into();
        out["model"] = o.path.display().to_string().into();
        if o.kind == "graph" {
            out["dtype"] = "program".into();
            out["batch"] = out["inputs"][0][0].clone();
        } else {
            out["dtype"] = o.dtype.clone().into();
            out["batch"] = o.batch.into();
        }
        Ok(out)
    };
    match run() {
        Ok(v) => {
            println!("{v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
