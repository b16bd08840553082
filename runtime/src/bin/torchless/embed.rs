//! `torchless embed`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use torchless::{ClipEmbedder, SentenceEncoder};

use crate::output::{device_name, print_json};
use crate::run_options::RunOptions;

/// Embed sentences with a BERT-family sentence-transformers (or plain BERT) model folder, or
/// images and texts with a CLIP model folder.
///
/// The folder holds `config.json`, `tokenizer.json` and the weights (`model.safetensors`, a
/// shard index, or `pytorch_model.bin`, which is converted in memory); pooling, normalisation
/// and truncation follow its sentence-transformers files. Without --json each embedding is one
/// line of comma-separated numbers, in input order.
///
/// A CLIP folder (`model_type: "clip"`, with tokenizer.json and preprocessor_config.json) embeds
/// --text or --image inputs into one space: `get_text_features` / `get_image_features` then
/// L2-normalised, as `CLIPModel.forward` returns `text_embeds` / `image_embeds` (unlike
/// sentence-transformers' CLIP wrapper, which does not normalise by default); images are
/// preprocessed as its CLIPImageProcessor (resample 2, bilinear, only).
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
        required_unless_present_any = ["input", "images"],
        conflicts_with_all = ["input", "images"]
    )]
    texts: Vec<String>,
    /// An image file (PNG or JPEG) to embed with a CLIP model (repeatable).
    #[arg(long = "image", value_name = "FILE", conflicts_with = "input")]
    images: Vec<PathBuf>,
    /// A JSON file holding an array of strings.
    #[arg(long, value_name = "FILE.json")]
    input: Option<PathBuf>,
    /// Print one JSON object `{"model", "device", "dim", "embeddings"}` on stdout (`device`: what
    /// the model ran on, `cpu` or `cuda:N`; CLIP: `{"model", "dim", "embeddings"}`).
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
    let resolved = torchless::registry::resolve(&a.model)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    if resolved.family.task == torchless::Task::ImageTextEmbed {
        return run_clip(&a, &texts, &opts);
    }
    if !a.images.is_empty() {
        anyhow::bail!(
            "--image needs a CLIP model folder (model_type \"clip\"); {} is a {} model",
            a.model.display(),
            resolved.model_type
        );
    }
    let enc = SentenceEncoder::load(&a.model, &opts)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embeddings = enc.embed(&refs, a.batch_size)?;
    if a.json {
        return print_json(&serde_json::json!({
            "model": enc.name(),
            "device": device_name(enc.device()),
            "dim": enc.dim(),
            "embeddings": embeddings,
        }));
    }
    print_lines(&embeddings)
}

fn print_lines(embeddings: &[Vec<f32>]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for e in embeddings {
        let line: Vec<String> = e.iter().map(|x| x.to_string()).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

/// CLIP: L2-normalised text or image embeddings, `batch_size` inputs per forward pass.
fn run_clip(a: &Args, texts: &[String], opts: &torchless::LoadOptions) -> anyhow::Result<()> {
    let clip = ClipEmbedder::load(&a.model, opts)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let mut embeddings = Vec::new();
    if a.images.is_empty() {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for chunk in refs.chunks(a.batch_size) {
            embeddings.extend(clip.embed_texts(chunk)?);
        }
    } else {
        let paths: Vec<&std::path::Path> = a.images.iter().map(|p| p.as_path()).collect();
        for chunk in paths.chunks(a.batch_size) {
            embeddings.extend(clip.embed_image_files(chunk)?);
        }
    }
    if a.json {
        return print_json(&serde_json::json!({
            "model": clip.name(),
            "dim": clip.dim(),
            "embeddings": embeddings,
        }));
    }
    print_lines(&embeddings)
}
