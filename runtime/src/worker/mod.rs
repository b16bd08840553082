//! The Redis stream worker (`torchless worker`): one model, one request stream read through a
//! consumer group, results written back before the entries are acknowledged.
//!
//! A request is a stream entry with the fields `id`, `reply_to` (a stream) and/or `reply_key`
//! (a key), `op` (`embed`, `rerank`, `classify`, `generate`) and `input` (JSON); [`protocol`] has the
//! format. [`run`] reads up to `max_batch_size` entries at a time (XREADGROUP, or XAUTOCLAIM of
//! entries other consumers left pending longer than `claim_idle`), runs them as one batch per
//! op through the [`WorkerModel`], and answers each with one Lua script that records the
//! response under `torchless:result:{stream}:{id}` (SET NX, with a TTL), sends what that key
//! holds to the reply stream or key, and XACKs the entry — all atomically, and only while the
//! entry is still pending, so a request answered twice (a worker killed after answering,
//! or a slow one whose entry another claimed) gives exactly one response. docs/worker.md says
//! why.

mod consumer;
mod model;
pub mod protocol;

use std::time::Duration;

pub use consumer::run;
pub use model::WorkerModel;

/// How a worker reads its stream and answers.
#[derive(Debug, Clone)]
pub struct Config {
    /// `redis://host:port[/db]` (or `redis+unix://`, `rediss://` is not built in).
    pub redis_url: String,
    /// The request stream.
    pub stream: String,
    /// The consumer group (created at the stream's end, with MKSTREAM, when missing).
    pub group: String,
    /// This worker's consumer name in the group.
    pub consumer: String,
    /// Entries read (and run) at once.
    pub max_batch_size: usize,
    /// How long one XREADGROUP waits for new entries (also how soon a stop request is seen).
    pub block: Duration,
    /// Entries pending this long on any consumer are claimed (XAUTOCLAIM); `None`: never.
    pub claim_idle: Option<Duration>,
    /// An entry delivered more often than this is answered with an error and acknowledged.
    pub max_deliveries: u64,
    /// Lifetime of the recorded result, of a `reply_key`, and of a reply stream after its
    /// last write.
    pub result_ttl: Duration,
    /// Texts one request may hold; more is an error response.
    pub max_texts: usize,
    /// Texts per forward pass of the model.
    pub forward_batch: usize,
    /// New tokens one `generate` request may ask for.
    pub max_new_tokens: usize,
    /// How long Redis may stay unreachable (retried with backoff) before [`run`] gives up.
    pub give_up_after: Duration,
    /// Test hook: a pause after a batch is read and before it runs, so a test can kill the
    /// worker or signal it while the batch is pending (`TORCHLESS_WORKER_TEST_DELAY_MS`).
    pub pause_after_read: Option<Duration>,
}

impl Config {
    /// The defaults the CLI uses, for one stream, group and consumer.
    pub fn new(redis_url: &str, stream: &str, group: &str, consumer: &str) -> Self {
        Config {
            redis_url: redis_url.into(),
            stream: stream.into(),
            group: group.into(),
            consumer: consumer.into(),
            max_batch_size: 32,
            block: Duration::from_millis(1000),
            claim_idle: Some(Duration::from_millis(60_000)),
            max_deliveries: 5,
            result_ttl: Duration::from_secs(86_400),
            max_texts: 1024,
            forward_batch: 32,
            max_new_tokens: 256,
            give_up_after: Duration::from_secs(300),
            pause_after_read: None,
        }
    }

    /// Checks the values the loop relies on; the error names the option.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let bad = |what: &str| Err(WorkerError::Config(what.into()));
        if self.stream.is_empty() || self.group.is_empty() || self.consumer.is_empty() {
            return bad("--stream, --group and --consumer must not be empty");
        }
        if self.max_batch_size == 0 {
            return bad("--max-batch-size must be at least 1");
        }
        if self.block.is_zero() {
            return bad("--block-ms must be at least 1 (0 would block forever and never see a stop request)");
        }
        if self.max_deliveries == 0 {
            return bad("--max-deliveries must be at least 1");
        }
        if self.result_ttl.as_secs() == 0 {
            return bad("--result-ttl must be at least 1 second");
        }
        if self.max_texts == 0 || self.forward_batch == 0 {
            return bad("--max-texts and --forward-batch-size must be at least 1");
        }
        Ok(())
    }
}

/// What the worker reports while it runs (the CLI prints these on stderr).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Connected, with the group ready.
    Connected {
        /// The Redis URL.
        url: String,
    },
    /// A batch was answered and acknowledged.
    Batch {
        /// Entries in the batch.
        entries: usize,
        /// Of those, entries claimed from other consumers or read again from this one's
        /// pending list.
        recovered: usize,
        /// Of those, entries answered with an error.
        errors: usize,
        /// Of those, entries another worker had answered already (nothing written again).
        already_answered: usize,
    },
    /// An entry was answered with an error (a poison request, or a model failure).
    Refused {
        /// The stream entry id.
        entry: String,
        /// The request id, when it had one.
        id: Option<String>,
        /// The message sent.
        error: String,
    },
    /// A reply destination could not be written (a key of the wrong type): the response is
    /// still recorded under the result key.
    Undeliverable {
        /// The stream entry id.
        entry: String,
        /// What was skipped.
        reason: String,
    },
    /// Redis failed; the worker waits and retries.
    Retry {
        /// The error.
        error: String,
        /// Failures in a row.
        attempt: u32,
        /// The wait before the next try.
        delay: Duration,
    },
    /// A stop was requested: the batch in flight was answered and acknowledged.
    Stopped,
}

/// Counts of a worker's run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Batches answered.
    pub batches: u64,
    /// Entries answered (successes and errors).
    pub answered: u64,
    /// Entries answered with an error.
    pub errors: u64,
}

/// Why a worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// An option is invalid.
    #[error("{0}")]
    Config(String),
    /// The Redis URL cannot be used.
    #[error("--redis {url}: {cause}")]
    Url {
        /// The URL.
        url: String,
        /// The cause (in the message, so it is not repeated as a source).
        cause: redis::RedisError,
    },
    /// Redis stayed unreachable (or kept failing) for longer than `give_up_after`.
    #[error(
        "redis at {url} kept failing for {secs} s ({attempts} tries); giving up. Last error: {last}"
    )]
    GaveUp {
        /// The URL.
        url: String,
        /// Seconds since the first failure in a row.
        secs: u64,
        /// Tries made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] crate::Error),
}
