//! What the server runs: the models it serves, where it listens, and the limits every request
//! is held to. The command line (`torchless serve`) fills a [`ServeConfig`]; Rust callers can too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::registry::LoadOptions;

/// One model to serve: the name clients send in `"model"` and the folder (or ResNet weights
/// file) it is loaded from.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The name in requests and in `GET /v1/models`.
    pub name: String,
    /// The model folder (or a ResNet state_dict file).
    pub path: PathBuf,
}

impl std::str::FromStr for ModelSpec {
    type Err = String;

    /// `NAME=PATH`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, path) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not NAME=PATH"))?;
        if name.is_empty() || path.is_empty() {
            return Err(format!("{s:?}: NAME and PATH must both be non-empty"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
        {
            return Err(format!(
                "model name {name:?}: use letters, digits and - _ . : / only"
            ));
        }
        Ok(ModelSpec {
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

/// Limits on batching, queues, bodies and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Inputs (texts, pairs, images) run together in one forward pass; sequences generated at once.
    pub max_batch_size: usize,
    /// Tokens (summed over a batch's inputs) that one encoder batch may hold.
    pub max_batch_tokens: usize,
    /// How long the first request of a batch waits for others to join it.
    pub max_wait: Duration,
    /// Requests that may wait per model; one more is refused with 429.
    pub max_queue: usize,
    /// The largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// The most new tokens a generation request may ask for (also the default for chat).
    pub max_new_tokens: usize,
    /// A request still running after this long is answered 504 and its work cancelled.
    pub request_timeout: Duration,
    /// After SIGTERM/SIGINT, how long in-flight requests get to finish before the process exits.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_size: 32,
            max_batch_tokens: 16384,
            max_wait: Duration::from_millis(5),
            max_queue: 1024,
            max_body_bytes: 2 << 20,
            max_new_tokens: 256,
            request_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything the server needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The models, each under its name.
    pub models: Vec<ModelSpec>,
    /// Device and dtype of every model.
    pub load: LoadOptions,
    /// Where to listen (port 0: any free port).
    pub addr: SocketAddr,
    /// Where to serve gRPC (`torchless.v1.Inference`, health, reflection), when at all (port 0:
    /// any free port).
    pub grpc_addr: Option<SocketAddr>,
    /// When set, every route but `/health` needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Limits.
    pub limits: Limits,
}
