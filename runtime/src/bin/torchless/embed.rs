//! `torchless embed`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use torchless::SentenceEncoder;

use crate::output::print_json;
use crate::run_options::RunOptions;

/// Embed sentences with a BERT-family sentence-transformers (or plain BERT) model folder.
///
/// The folder holds `config.json`, `tokenizer.json` and the weights (`model.safetensors`, a
/// shard index, or `pytorch_model.bin`, which is converted in memory); pooling, normalisation
/// and truncation follow its sentence-transformers files. Without --json each embedding is one
/// line of comma-separated numbers, in input order.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model folder.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    #[command(flatten)]
    run: RunOptions,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32, value_name = "N")]
    batch_size: usize,
    /// A sentence to embed (repeatable; empty strings are valid).
    #[arg(
        long = "text",
        value_name = "STR",
        required_unless_present = "input",
        conflicts_with = "input"
    )]
    texts: Vec<String>,
    /// A JSON file holding an array of strings.
    #[arg(long, value_name = "FILE.json")]
    input: Option<PathBuf>,
    /// Print one JSON object `{"model", "dim", "embeddings"}` on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let texts: Vec<String> = match &a.input {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: expected a JSON array of strings", p.display()))?
        }
        None => a.texts.clone(),
    };
    if a.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let opts = a.run.load_options()?;
    let enc = SentenceEncoder::load(&a.model, &opts)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embeddings = enc.embed(&refs, a.batch_size)?;
    if a.json {
        return print_json(&serde_json::json!({
            "model": enc.name(),
            "dim": enc.dim(),
            "embeddings": embeddings,
        }));
    }
    let mut out = std::io::stdout().lock();
    for e in &embeddings {
        let line: Vec<String> = e.iter().map(|x| x.to_string()).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}
