//! `torchless rerank`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use torchless::TextClassifier;

use crate::output::print_json;
use crate::run_options::RunOptions;

/// Score documents against a query with a cross-encoder (`*ForSequenceClassification`) folder.
///
/// The folder holds `config.json` (model_type bert, roberta or xlm-roberta, architectures
/// `BertForSequenceClassification` / `XLMRobertaForSequenceClassification` / ...),
/// `tokenizer.json` and the weights. Each (query, document) pair is tokenized as the tokenizer's
/// pair template (`[CLS] query [SEP] document [SEP]`) and truncated longest-first to the model's
/// length, exactly as sentence-transformers' `CrossEncoder.predict` does; the scores are its
/// scores: the logit through the folder's activation (by default a sigmoid for a one-label
/// reranker, so relevance is in (0, 1); the raw logits for several labels). --raw-logits prints
/// the logits. Scores come in input order, one line each (a pair classifier with several
/// labels prints comma-separated values); sort them yourself.
///
/// Example: torchless rerank --model tests/fixtures/rerank/bert-reranker --query "how do
/// transformers read text?" --documents tests/fixtures/rerank/documents.json --json
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model folder (a `*ForSequenceClassification` checkpoint).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// The query every document is scored against.
    #[arg(long, value_name = "STR")]
    query: String,
    /// A JSON file holding an array of document strings.
    #[arg(long, value_name = "FILE.json")]
    documents: PathBuf,
    /// Print the raw logits instead of the activated scores.
    #[arg(long)]
    raw_logits: bool,
    #[command(flatten)]
    run: RunOptions,
    /// Print one JSON object `{"model", "activation", "scores"}` on stdout: `scores[i]` is the
    /// score of document i (a number with one label, an array with several).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.documents)
        .with_context(|| format!("cannot read {}", a.documents.display()))?;
    let docs: Vec<String> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: expected a JSON array of strings",
            a.documents.display()
        )
    })?;
    let opts = a.run.load_options()?;
    let model = TextClassifier::load(&a.model, &opts)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let pairs: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| (a.query.as_str(), d.as_str()))
        .collect();
    let rows = if a.raw_logits {
        model.logits_pairs(&pairs)?
    } else {
        model.score_pairs(&pairs)?
    };
    let single = model.num_labels() == 1;
    if a.json {
        let scores: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                if single {
                    serde_json::json!(r[0])
                } else {
                    serde_json::json!(r)
                }
            })
            .collect();
        return print_json(&serde_json::json!({
            "model": model.name(),
            "activation": if a.raw_logits { "none" } else { model.activation().name() },
            "scores": scores,
        }));
    }
    let mut out = std::io::stdout().lock();
    for r in &rows {
        let line: Vec<String> = r.iter().map(|x| x.to_string()).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}
