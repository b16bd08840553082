//! `torchless worker`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use torchless::worker::{self, Config, Event, WorkerModel};

use crate::run_options::RunOptions;

/// Serve a model to a Redis stream: each request answered, then acknowledged.
///
/// Requests are read with a consumer group (XREADGROUP), in batches. The model folder is a
/// sentence encoder (op `embed`), a `*ForSequenceClassification` model (ops `rerank` and
/// `classify`) or a causal language model with its tokenizer.json (op `generate`). A request
/// is a stream entry with the fields:
///
///   id         the request id (required; the response carries it)
///   reply_to   a stream the response is added to (fields `id` and `result`), and/or
///   reply_key  a key the response is SET under (expires after --result-ttl)
///   op         embed | rerank | classify | generate
///   input      JSON: ["text", ...] for embed and classify;
///              {"query": "...", "texts": ["...", ...]} for rerank;
///              {"prompt": "...", "max_new_tokens": 32} for generate (greedy)
///
/// The response is JSON: {"id": .., "ok": true, "result": ..} where result is one embedding
/// per text (embed), one score per text (rerank: the cross-encoder's activated score), per
/// text the labels with their scores, best first (classify), or {"text", "token_ids", "stop"}
/// (generate); or {"id": .., "ok": false, "error": "..."} naming the field at fault. A
/// malformed request is answered with an error and acknowledged at once; so is one delivered
/// more than --max-deliveries times.
///
/// Every response is also recorded under `torchless:result:{stream}:{id}` (SET NX, expiring
/// after --result-ttl): the first answer for an id wins, and an entry answered twice (a worker
/// killed after answering, a slow worker whose entry another claimed) is written once only.
/// Entries left pending by a killed worker are claimed after --claim-idle-ms (XAUTOCLAIM).
/// SIGTERM or Ctrl-C finishes and acknowledges the batch in flight, then exits 0.
///
/// Example (a reranker from the repository's fixtures):
///
///   torchless worker --model tests/fixtures/rerank/bert-reranker --stream requests &
///   redis-cli XADD requests '*' id r1 reply_to replies op rerank \
///     input '{"query": "what is red?", "texts": ["a red apple", "the sea"]}'
///   redis-cli XREAD BLOCK 5000 STREAMS replies 0
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The model folder (a sentence encoder, a *ForSequenceClassification model, or a decoder).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    #[command(flatten)]
    run: RunOptions,
    /// The Redis server.
    #[arg(long, default_value = "redis://127.0.0.1:6379", value_name = "URL")]
    redis: String,
    /// The request stream.
    #[arg(long, default_value = "torchless:requests", value_name = "STREAM")]
    stream: String,
    /// The consumer group (created at the stream's first entry, with MKSTREAM, if missing).
    #[arg(long, default_value = "torchless", value_name = "GROUP")]
    group: String,
    /// This worker's name in the group [default: worker-<pid>]. A worker restarted under
    /// the same name answers its own pending entries first.
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,
    /// Entries read and run as one batch (for a decoder, also the sequences generated at once).
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_batch_size: usize,
    /// How long one read waits for new entries (also how soon a stop is noticed when idle).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    block_ms: u64,
    /// Claim entries pending on any consumer for this long (a worker that died); 0: never.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    claim_idle_ms: u64,
    /// An entry delivered more often than this is answered with an error and acknowledged.
    #[arg(long, default_value_t = 5, value_name = "N")]
    max_deliveries: u64,
    /// Seconds a recorded result, a reply key and an unused reply stream live.
    #[arg(long, default_value_t = 86_400, value_name = "SECS")]
    result_ttl: u64,
    /// Texts one request may hold.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_texts: usize,
    /// Texts per forward pass of the model.
    #[arg(long, default_value_t = 32, value_name = "N")]
    forward_batch_size: usize,
    /// New tokens one `generate` request may ask for.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_new_tokens: usize,
    /// Seconds Redis may keep failing (retried with backoff, 100 ms up to 5 s) before the
    /// worker exits with an error.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    give_up_after: u64,
    /// Print one line per batch on stderr (refusals and retries are always printed).
    #[arg(long, short)]
    verbose: bool,
}

/// Test hook: pause after reading a batch, before running it (milliseconds).
const TEST_DELAY_ENV: &str = "TORCHLESS_WORKER_TEST_DELAY_MS";

pub fn run(a: Args) -> anyhow::Result<()> {
    let consumer = a
        .consumer
        .clone()
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let mut cfg = Config::new(&a.redis, &a.stream, &a.group, &consumer);
    cfg.max_batch_size = a.max_batch_size;
    cfg.block = Duration::from_millis(a.block_ms);
    cfg.claim_idle = (a.claim_idle_ms > 0).then(|| Duration::from_millis(a.claim_idle_ms));
    cfg.max_deliveries = a.max_deliveries;
    cfg.result_ttl = Duration::from_secs(a.result_ttl);
    cfg.max_texts = a.max_texts;
    cfg.forward_batch = a.forward_batch_size;
    cfg.max_new_tokens = a.max_new_tokens;
    cfg.give_up_after = Duration::from_secs(a.give_up_after);
    if let Ok(ms) = std::env::var(TEST_DELAY_ENV) {
        let ms: u64 = ms
            .parse()
            .with_context(|| format!("{TEST_DELAY_ENV}={ms:?} is not a number of milliseconds"))?;
        cfg.pause_after_read = Some(Duration::from_millis(ms));
    }
    cfg.validate()?;
    let opts = a.run.load_options()?;
    let model = WorkerModel::load(&a.model, &opts, a.max_batch_size)
        .with_context(|| format!("cannot load {}", a.model.display()))?;

    // The first SIGINT/SIGTERM asks for a stop after the batch in flight; a second one exits
    // at once (the batch stays pending and is claimed by another worker).
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("torchless worker: stopping after the current batch");
    })
    .context("cannot install the SIGINT/SIGTERM handler")?;

    let ops: Vec<&str> = model.ops().iter().map(|o| o.name()).collect();
    eprintln!(
        "torchless worker: model {:?} (ops {}), stream {:?}, group {:?}, consumer {:?}",
        model.name(),
        ops.join(", "),
        cfg.stream,
        cfg.group,
        cfg.consumer
    );
    let verbose = a.verbose;
    let summary = worker::run(&model, &cfg, &stop, &mut |e| log(&e, verbose))?;
    eprintln!(
        "torchless worker: stopped after {} batches, {} entries answered ({} errors)",
        summary.batches, summary.answered, summary.errors
    );
    Ok(())
}

fn log(e: &Event, verbose: bool) {
    match e {
        Event::Connected { url } => eprintln!("torchless worker: connected to {url}"),
        Event::Batch {
            entries,
            recovered,
            errors,
            already_answered,
        } if verbose => eprintln!(
            "torchless worker: batch of {entries} ({recovered} recovered, {errors} errors, \
             {already_answered} already answered)"
        ),
        Event::Batch { .. } => {}
        Event::Refused { entry, id, error } => eprintln!(
            "torchless worker: entry {entry} (id {}): {error}",
            id.as_deref().map_or("none".into(), |i| format!("{i:?}"))
        ),
        Event::Undeliverable { entry, reason } => {
            eprintln!("torchless worker: entry {entry}: {reason}; its result is only recorded")
        }
        Event::Retry {
            error,
            attempt,
            delay,
        } => eprintln!(
            "torchless worker: redis: {error}; retry {attempt} in {} ms",
            delay.as_millis()
        ),
        Event::Stopped => {}
    }
}
