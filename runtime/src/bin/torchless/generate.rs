//! `torchless generate`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use torchless::chat::{ChatMessage, ChatTemplate, TextStream};
use torchless::{GenerateOptions, SamplerConfig, Sampling, TextGenerator};

use crate::output::{device_name, print_json};
use crate::run_options::{QuantizeOption, RunOptions};

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
///
/// --chat "message" (with an optional --system "instructions") builds the prompt with the
/// folder's chat template (`tokenizer_config.json`'s `chat_template` or `chat_template.jinja`),
/// as transformers' `apply_chat_template(messages, add_generation_prompt=True)` does, and
/// generates the assistant's answer.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model folder.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    #[command(flatten)]
    run: RunOptions,
    #[command(flatten)]
    quantize: QuantizeOption,
    /// The prompt text (needs tokenizer.json in the folder).
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present_any = ["prompt_ids", "chat"],
        conflicts_with_all = ["prompt_ids", "chat"]
    )]
    prompt: Option<String>,
    /// A user message, put in the model's chat format by the folder's chat template (needs
    /// tokenizer.json and a chat template); the template writes the special tokens, so none
    /// are added when the prompt is tokenized.
    #[arg(long, value_name = "TEXT", conflicts_with = "prompt_ids")]
    chat: Option<String>,
    /// A system message before the --chat message (refused by templates without a system
    /// role, such as Gemma's).
    #[arg(long, value_name = "TEXT", requires = "chat", conflicts_with_all = ["prompt", "prompt_ids"])]
    system: Option<String>,
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
    let opts = a.quantize.apply(a.run.load_options()?)?;
    let gen = TextGenerator::load(&a.model, &opts)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let prompt_ids = match (&a.prompt, &a.prompt_ids, &a.chat) {
        (Some(text), _, _) => gen.encode(text)?,
        (None, Some(ids), _) => ids.clone(),
        (None, None, Some(message)) => {
            chat_prompt_ids(&gen, &a.model, a.system.as_deref(), message)?
        }
        (None, None, None) => anyhow::bail!("give --prompt, --prompt-ids or --chat"),
    };
    let mut printer = match gen.tokenizer() {
        Some(tok) if !a.json => Some(TextStream::new(tok)),
        _ => None,
    };
    let mut stdout = std::io::stdout().lock();
    let mut stream_error = None;
    let out = gen.generate(&prompt_ids, &gen_opts, |id| {
        if let Some(printer) = printer.as_mut() {
            let written = printer
                .push(id)
                .map_err(anyhow::Error::from)
                .and_then(|piece| Ok(write_flush(&mut stdout, &piece)?));
            if let Err(e) = written {
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
    if let Some(printer) = printer.as_mut() {
        let rest = printer.finish()?;
        write_flush(&mut stdout, &rest)?;
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

fn write_flush(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The ids of the chat prompt for `message` (after `system`, if given) in `dir`'s chat format.
fn chat_prompt_ids(
    gen: &TextGenerator,
    dir: &Path,
    system: Option<&str>,
    message: &str,
) -> anyhow::Result<Vec<u32>> {
    let template = ChatTemplate::from_folder(dir)?.with_context(|| {
        format!(
            "{} has no chat template (tokenizer_config.json `chat_template` or \
             chat_template.jinja): use --prompt",
            dir.display()
        )
    })?;
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(ChatMessage {
            role: "system".into(),
            content: system.into(),
        });
    }
    messages.push(ChatMessage {
        role: "user".into(),
        content: message.into(),
    });
    let prompt = template.render(&messages, true)?;
    let tok = gen
        .tokenizer()
        .with_context(|| format!("--chat needs tokenizer.json in {}", dir.display()))?;
    let enc = tok
        .encode(prompt, false)
        .map_err(|e| torchless::Error::Tokenizer(e.to_string()))?;
    Ok(enc.get_ids().to_vec())
}
