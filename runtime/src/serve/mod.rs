//! `torchless serve`: the models of a [`ServeConfig`] behind an HTTP API (axum on tokio) and,
//! with [`ServeConfig::grpc_addr`], the same operations over gRPC ([`grpc`], tonic) on their
//! own port.
//!
//! - Routes ([`routes`]): OpenAI-compatible `POST /v1/embeddings`, `/v1/completions`,
//!   `/v1/chat/completions` (streamed as server-sent events with `"stream": true`) and
//!   `GET /v1/models`; text-embeddings-inference-compatible `POST /embed` and `POST /rerank`;
//!   `POST /v1/classify` for text and image classifiers; `GET /health`, `GET /ready` (503 until
//!   every model is loaded), `GET /metrics` (Prometheus).
//! - Models ([`models`]): the task of each `NAME=PATH` comes from the [`registry`]; encoders and
//!   classifiers get a dynamic [`batcher`], decoders a
//!   [`GenerationQueue`](crate::batching::GenerationQueue).
//! - Pressure ([`error`]): a full queue is 429 with `Retry-After`, a large body 413, a bad field
//!   400 naming it, an unknown model 404, a request past `--request-timeout` 504 (its work is
//!   cancelled), a missing or wrong bearer token 401.
//! - Shutdown: SIGTERM or SIGINT stops accepting connections, lets in-flight requests finish
//!   (at most [`Limits::drain_timeout`]) and returns `Ok`.
//!
//! docs/serve.md has the decisions.
//!
//! [`registry`]: crate::registry

pub mod batcher;
pub mod config;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod models;
pub mod routes;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

pub use config::{Limits, ModelSpec, ServeConfig};
pub use error::{ApiError, ServeError};
pub use models::AppState;

/// The bound addresses.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// HTTP.
    pub http: SocketAddr,
    /// gRPC, when served.
    pub grpc: Option<SocketAddr>,
}

/// Runs the server until SIGTERM/SIGINT (then drains) or a model fails to load (then returns
/// that error). `on_listening` is called with the bound addresses before any model is loaded.
pub fn run(config: ServeConfig, on_listening: impl FnOnce(Bound)) -> Result<(), ServeError> {
    let state = Arc::new(AppState::new(&config)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|cause| ServeError::Io {
            context: "cannot start the async runtime".into(),
            cause,
        })?;
    let result = runtime.block_on(serve(config, state, on_listening));
    // A batch still running on a blocking thread after the drain timeout is not waited for.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|cause| ServeError::Io {
            context: format!("cannot listen on {addr}"),
            cause,
        })?;
    let bound = listener.local_addr().map_err(|cause| ServeError::Io {
        context: "cannot read the bound address".into(),
        cause,
    })?;
    Ok((listener, bound))
}

async fn serve(
    config: ServeConfig,
    state: Arc<AppState>,
    on_listening: impl FnOnce(Bound),
) -> Result<(), ServeError> {
    let (listener, addr) = bind(config.addr).await?;
    let grpc = match config.grpc_addr {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    on_listening(Bound {
        http: addr,
        grpc: grpc.as_ref().map(|(_, a)| *a),
    });
    // Notified once every model is loaded (gRPC health turns SERVING).
    let loaded = Arc::new(Notify::new());

    let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel::<ServeError>();
    for slot in state.models.values() {
        let slot = Arc::clone(slot);
        let fatal = fatal_tx.clone();
        let opts = config.load.clone();
        let limits = config.limits;
        let state = Arc::clone(&state);
        let loaded = Arc::clone(&loaded);
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            match models::load(Arc::clone(&slot), opts, limits).await {
                Ok(()) => {
                    eprintln!(
                        "model {:?} loaded ({}) in {:.1} s",
                        slot.name,
                        slot.task.describe(),
                        start.elapsed().as_secs_f64()
                    );
                    if state.ready() {
                        loaded.notify_one();
                    }
                }
                Err(e) => {
                    let _ = fatal.send(e);
                }
            }
        });
    }
    drop(fatal_tx);

    let stop = Arc::new(Notify::new());
    let stop2 = Arc::clone(&stop);
    let app = routes::router(Arc::clone(&state));
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop2.notified().await })
            .await
    });
    let grpc_stop = Arc::new(Notify::new());
    let grpc_server = grpc.map(|(listener, _)| {
        let stop = Arc::clone(&grpc_stop);
        tokio::spawn(grpc::serve(
            listener,
            Arc::clone(&state),
            Arc::clone(&loaded),
            async move { stop.notified().await },
        ))
    });

    let mut failure = None;
    tokio::select! {
        () = shutdown_signal() => eprintln!("shutting down: draining in-flight requests"),
        Some(e) = recv_some(&mut fatal_rx) => {
            eprintln!("shutting down: {e}");
            failure = Some(e);
        }
    }
    state.draining.store(true, Ordering::Relaxed);
    stop.notify_one();
    grpc_stop.notify_one();
    let drain = config.limits.drain_timeout;
    let both = async {
        let http = server.await;
        let grpc = match grpc_server {
            Some(g) => Some(g.await),
            None => None,
        };
        (http, grpc)
    };
    match tokio::time::timeout(drain, both).await {
        Ok((http, grpc)) => {
            match http {
                Ok(Ok(())) => {}
                Ok(Err(cause)) => {
                    failure.get_or_insert(ServeError::Io {
                        context: "the server failed".into(),
                        cause,
                    });
                }
                Err(e) => eprintln!("the server task failed: {e}"),
            }
            match grpc {
                None | Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    failure.get_or_insert(e);
                }
                Some(Err(e)) => eprintln!("the gRPC server task failed: {e}"),
            }
        }
        Err(_) => eprintln!(
            "requests still running after {} s (the drain timeout) are dropped",
            drain.as_secs_f64()
        ),
    }
    for slot in state.models.values() {
        if let Some(models::Served::Generate { queue, .. }) = slot.loaded.get() {
            let queue = Arc::clone(queue);
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::task::spawn_blocking(move || queue.shutdown()),
            )
            .await;
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `recv` that never resolves once every sender is gone (every model loaded).
async fn recv_some<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Option<T> {
    match rx.recv().await {
        Some(v) => Some(v),
        None => std::future::pending().await,
    }
}

/// SIGINT or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
