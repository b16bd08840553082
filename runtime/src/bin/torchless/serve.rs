//! `torchless serve`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use torchless::serve::{Limits, ModelSpec, ServeConfig};

use crate::run_options::{QuantizeOption, RunOptions};

/// Serve models over HTTP (and gRPC with --grpc-port): OpenAI- and
/// text-embeddings-inference-compatible routes, dynamic batching, Prometheus metrics.
///
/// Each --model NAME=PATH is served under NAME; what it does comes from its folder (the model
/// registry, as for the other commands): a sentence encoder answers POST /v1/embeddings and
/// POST /embed; a cross-encoder or text classifier POST /rerank and POST /v1/classify; an image
/// classifier (ResNet state_dict, ViT folder) POST /v1/classify; a decoder POST /v1/completions
/// and POST /v1/chat/completions (`"stream": true` for server-sent events); a `torch.export`
/// program (a `.pt2` file, as `torchless run` takes) POST /v1/run with typed tensors
/// (`{"inputs": [{"dtype": "float32", "shape": [2, 16], "data": "<base64 little-endian>"}]}`).
/// GET /v1/models
/// lists them, GET /health answers while the process runs, GET /ready is 503 until every model
/// is loaded, GET /metrics is Prometheus text.
///
/// Requests to encoders and classifiers are batched: a batch closes at --max-batch-size inputs,
/// --max-batch-tokens tokens or --max-wait-ms after its first request. A full queue (--max-queue
/// per model) answers 429 with Retry-After; a body over --max-body-bytes 413; a bad field 400
/// naming it; an unknown model 404; a request past --request-timeout 504 (its work is
/// cancelled); with --api-key (or TORCHLESS_API_KEY) every route but /health needs
/// `Authorization: Bearer KEY` (401). SIGTERM or Ctrl-C stops accepting connections, lets the
/// requests in flight finish (at most --drain-timeout) and exits 0. Once bound, the server
/// prints `listening on http://ADDR` on stderr (--port 0 picks a free port).
///
/// Example, the server in one shell:
///
///   torchless serve --model minilm=tests/fixtures/bert/tiny-st --port 8080
///
/// and a client in another:
///
///   curl -s localhost:8080/v1/embeddings -d '{"model": "minilm", "input": ["Hello world"]}'
///
/// With --grpc-port 50051, the same over gRPC (reflection: grpcurl needs no .proto):
///
///   grpcurl -plaintext -d '{"inputs": ["Hello world"]}' localhost:50051 torchless.v1.Inference/Embed
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A model to serve, as NAME=PATH (repeatable): NAME is what requests send in "model",
    /// PATH a model folder (or a ResNet state_dict file, or a `torch.export` `.pt2` program).
    #[arg(long = "model", value_name = "NAME=PATH", required = true)]
    models: Vec<ModelSpec>,
    #[command(flatten)]
    run: RunOptions,
    // Applies to the text-generation models only; an error when none is served.
    #[command(flatten)]
    quantize: QuantizeOption,
    /// The address to listen on (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    host: IpAddr,
    /// The port (0: any free port; the bound address is printed on stderr).
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    port: u16,
    /// Also serve gRPC on this port (same --host; off when not given; 0: any free port, printed
    /// on stderr as `listening on grpc://ADDR`): service torchless.v1.Inference (Embed, Rerank,
    /// Classify, streamed Complete and ChatComplete, ListModels; the .proto is
    /// runtime/proto/torchless/v1/torchless.proto) over the same queues, limits, API key and
    /// metrics as HTTP, plus
    /// grpc.health.v1.Health (SERVING once every model is loaded) and server reflection, so
    /// `grpcurl -plaintext localhost:PORT list` works.
    #[arg(long, value_name = "PORT")]
    grpc_port: Option<u16>,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(
        long,
        env = "TORCHLESS_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Inputs per encoder/classifier batch; sequences generated at once per decoder.
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_batch_size: usize,
    /// Tokens per encoder/classifier batch (all inputs together).
    #[arg(long, default_value_t = 16384, value_name = "N")]
    max_batch_tokens: usize,
    /// How long a batch waits for more requests after its first one.
    #[arg(long, default_value_t = 5, value_name = "MS")]
    max_wait_ms: u64,
    /// Requests waiting per model before new ones are refused with 429.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_queue: usize,
    /// The largest request body (413 above).
    #[arg(long, default_value_t = 2 << 20, value_name = "BYTES")]
    max_body_bytes: usize,
    /// The most new tokens one generation request may ask for (and chat's default).
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_new_tokens: usize,
    /// Seconds a request may take before it is answered 504 and its work cancelled.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    request_timeout: f64,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    drain_timeout: f64,
}

fn seconds(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow::anyhow!("{flag} must be a positive number of seconds, got {v}"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    for (flag, v) in [
        ("--max-batch-size", a.max_batch_size),
        ("--max-batch-tokens", a.max_batch_tokens),
        ("--max-queue", a.max_queue),
        ("--max-body-bytes", a.max_body_bytes),
        ("--max-new-tokens", a.max_new_tokens),
    ] {
        if v == 0 {
            anyhow::bail!("{flag} must be at least 1");
        }
    }
    if a.api_key.as_deref() == Some("") {
        anyhow::bail!("--api-key (TORCHLESS_API_KEY) is empty");
    }
    let config = ServeConfig {
        models: a.models,
        load: a.quantize.apply(a.run.load_options()?)?,
        addr: SocketAddr::new(a.host, a.port),
        grpc_addr: a.grpc_port.map(|p| SocketAddr::new(a.host, p)),
        api_key: a.api_key,
        limits: Limits {
            max_batch_size: a.max_batch_size,
            max_batch_tokens: a.max_batch_tokens,
            max_wait: Duration::from_millis(a.max_wait_ms),
            max_queue: a.max_queue,
            max_body_bytes: a.max_body_bytes,
            max_new_tokens: a.max_new_tokens,
            request_timeout: seconds(a.request_timeout, "--request-timeout")?,
            drain_timeout: seconds(a.drain_timeout, "--drain-timeout")?,
        },
    };
    torchless::serve::run(config, |bound| {
        eprintln!("listening on http://{}", bound.http);
        if let Some(g) = bound.grpc {
            eprintln!("listening on grpc://{g}");
        }
    })?;
    Ok(())
}
