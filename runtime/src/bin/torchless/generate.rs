//! `torchless generate`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use torchless::{GenerateOptions, SamplerConfig, Sampling, TextGenerator};

use crate::output::{device_name, print_json};
use crate::run_options::RunOptions;

/// Generate text with a GPT-2 or Llama-style (llama, mistral, qwen2, qwen3) model folder.
///
/// The folder holds `config.json`, the weights (`model.safetensors`, a shard index, or
/// `pytorch_model.bin`, converted in memory) and, for --prompt, `tokenizer.json`. Generation
/// stops at the end-of-sequence ids of `generation_config.json` (else `config.json`) or after
/// --max-new-tokens. Without --json the new text is printed as it is produced; with --json one
/// object `{"model", "device", "prompt_ids", "new_ids", "text", "first_step_logits", "stop"}` is
/// printed at the end (`device`: what the model ran on, `cpu` or `cuda:N`), `first_step_logits` being the logits (before any penalty or warping) that chose the
/// first new token. Sampling is greedy unless --temperature, --top-k or --top-p is given;
/// --seed makes sampling reproducible.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model folder.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    #[command(flatten)]
    run: RunOptions,
    /// The prompt text (needs tokenizer.json in the folder).
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "prompt_ids",
        conflicts_with = "prompt_ids"
    )]
    prompt: Option<String>,
    /// The prompt as comma-separated token ids (no tokenizer needed).
    #[arg(long, value_name = "1,2,3", value_delimiter = ',')]
    prompt_ids: Option<Vec<u32>>,
    /// At most this many new tokens.
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_new_tokens: usize,
    /// Always take the most likely token (the default).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p"])]
    greedy: bool,
    /// Sample with this temperature.
    #[arg(long, value_name = "X")]
    temperature: Option<f32>,
    /// Sample among the K most likely tokens.
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Sample among the most likely tokens covering probability P.
    #[arg(long, value_name = "P")]
    top_p: Option<f32>,
    /// Seed of the sampler's random generator.
    #[arg(long, default_value_t = 0, value_name = "S")]
    seed: u64,
    /// Repetition penalty (> 1 discourages repeated tokens; 1 is off).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    repetition_penalty: f32,
    /// Do not stop at end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object on stdout at the end instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let sampling =
        if a.greedy || (a.temperature.is_none() && a.top_k.is_none() && a.top_p.is_none()) {
            Sampling::Greedy
        } else {
            Sampling::Sample {
                temperature: a.temperature.unwrap_or(1.0),
                top_k: a.top_k,
                top_p: a.top_p,
                seed: a.seed,
            }
        };
    let gen_opts = GenerateOptions {
        max_new_tokens: a.max_new_tokens,
        sampler: SamplerConfig {
            sampling,
            repetition_penalty: a.repetition_penalty,
        },
        stop_at_eos: !a.ignore_eos,
    };
    gen_opts.sampler.check()?;
    let opts = a.run.load_options()?;
    let gen = TextGenerator::load(&a.model, &opts)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let prompt_ids = match (&a.prompt, &a.prompt_ids) {
        (Some(text), _) => gen.encode(text)?,
        (None, Some(ids)) => ids.clone(),
        (None, None) => anyhow::bail!("give --prompt or --prompt-ids"),
    };
    let streaming = !a.json && gen.tokenizer().is_some();
    let mut printer = TextStream::default();
    let mut so_far = Vec::new();
    let mut stream_error = None;
    let out = gen.generate(&prompt_ids, &gen_opts, |id| {
        so_far.push(id);
        if streaming {
            if let Err(e) = printer.push(&gen, &so_far) {
                stream_error = Some(e);
                return false;
            }
        }
        true
    })?;
    if let Some(e) = stream_error {
        return Err(e);
    }
    if a.json {
        let text = match gen.tokenizer() {
            Some(_) => serde_json::Value::String(gen.decode(&out.new_ids)?),
            None => serde_json::Value::Null,
        };
        return print_json(&serde_json::json!({
            "model": gen.name(),
            "device": device_name(gen.device()),
            "prompt_ids": prompt_ids,
            "new_ids": out.new_ids,
            "text": text,
            "stop": out.stop.as_str(),
            "first_step_logits": out.first_step_logits,
        }));
    }
    let mut stdout = std::io::stdout().lock();
    if streaming {
        printer.finish(&gen, &out.new_ids)?;
        writeln!(stdout)?;
    } else {
        let ids: Vec<String> = out.new_ids.iter().map(u32::to_string).collect();
        writeln!(stdout, "{}", ids.join(","))?;
    }
    if out.stop == torchless::StopReason::ContextFull {
        eprintln!(
            "note: stopped after {} tokens: the model's {} positions are used up",
            out.new_ids.len(),
            gen.model().shape().max_positions
        );
    }
    Ok(())
}

/// Prints decoded text progressively: the whole new sequence is decoded after each token and
/// the part not yet printed is written, holding back while the tail is an incomplete UTF-8
/// sequence (a replacement character) that later tokens complete.
#[derive(Default)]
struct TextStream {
    printed: String,
}

impl TextStream {
    fn push(&mut self, gen: &TextGenerator, ids: &[u32]) -> anyhow::Result<()> {
        let text = gen.decode(ids)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(());
        }
        self.emit(&text)
    }

    fn finish(&mut self, gen: &TextGenerator, ids: &[u32]) -> anyhow::Result<()> {
        let text = gen.decode(ids)?;
        if !text.starts_with(self.printed.as_str()) {
            // The final decoding rewrote printed characters: show it whole on its own line.
            println!();
            self.printed.clear();
        }
        self.emit(&text)
    }

    fn emit(&mut self, text: &str) -> anyhow::Result<()> {
        // Decoding can rewrite earlier characters (clean-up of spaces); print only once the new
        // text extends what is on screen.
        if let Some(rest) = text.strip_prefix(self.printed.as_str()) {
            let mut out = std::io::stdout().lock();
            out.write_all(rest.as_bytes())?;
            out.flush()?;
            self.printed = text.to_string();
        }
        Ok(())
    }
}
