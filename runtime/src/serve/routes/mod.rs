//! The HTTP routes, the request-body extractor that turns every JSON problem into a 400 naming
//! the field, and the middleware: bearer-token auth (every route but `/health`) and per-route
//! request counting.

pub(crate) mod classify;
pub(crate) mod embed;
pub(crate) mod generate;
pub(crate) mod run;
mod sse;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::models::AppState;

/// Shared state as handlers see it.
pub type Shared = Arc<AppState>;

/// The router with every route and layer.
pub fn router(state: Shared) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(list_models))
        .route("/v1/embeddings", post(embed::openai))
        .route("/embed", post(embed::tei))
        .route("/rerank", post(classify::rerank))
        .route("/v1/classify", post(classify::classify))
        .route("/v1/completions", post(generate::completions))
        .route("/v1/chat/completions", post(generate::chat))
        .route("/v1/run", post(run::run))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), auth))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), count))
        .with_state(state)
}

/// A JSON body: any parse problem is a 400 naming the field, a body over the limit a 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Shared> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Shared) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(state.limits.max_body_bytes)
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a body, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let syntax = !e.inner().is_data();
        let inner = crate::error::safe_message(&e.inner().to_string());
        if path == "." || syntax {
            ApiError::bad_request(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid field `{path}`: {inner}"))
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body: {}",
            crate::error::safe_message(&e.to_string())
        ))
    })?;
    Ok(value)
}

/// Runs `work`, answering 504 when it takes longer than `--request-timeout`; the work is
/// dropped then, which cancels it (a queued batch input is skipped, a generation's sink says
/// stop).
pub async fn with_timeout<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(ApiError::timeout(limit)))
}

/// The served model for a request's `model` field: when absent, the only served model of a
/// kind `fits` accepts.
pub fn pick_model<'a>(
    state: &'a AppState,
    name: Option<&str>,
    fits: impl Fn(crate::Task) -> bool,
) -> Result<(&'a super::models::ModelSlot, &'a super::models::Served), ApiError> {
    match name {
        Some(n) => state.model(n),
        None => {
            let mut candidates = state.models.values().filter(|m| fits(m.task));
            match (candidates.next(), candidates.next()) {
                (Some(m), None) => state.model(&m.name),
                (None, _) => Err(ApiError::not_found("no served model handles this route")),
                (Some(_), Some(_)) => Err(ApiError::bad_request(
                    "missing field `model`: several served models could answer",
                )),
            }
        }
    }
}

/// 400 naming the route a model of another task belongs to.
pub fn wrong_task(name: &str, task: crate::Task) -> ApiError {
    let routes = match task {
        crate::Task::Embed => "/v1/embeddings or /embed (gRPC: Embed)",
        crate::Task::SequenceClassify => "/rerank or /v1/classify (gRPC: Rerank or Classify)",
        crate::Task::Classify => "/v1/classify (gRPC: Classify)",
        crate::Task::Generate => {
            "/v1/completions or /v1/chat/completions (gRPC: Complete or ChatComplete)"
        }
        crate::Task::ImageTextEmbed => "no route",
        crate::Task::Run => "/v1/run",
    };
    ApiError::bad_request(format!(
        "model {name:?} is {}: use {routes}",
        task.describe()
    ))
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(state): State<Shared>) -> Response {
    if state.is_draining() {
        return ApiError::unavailable("the server is shutting down").into_response();
    }
    let loading: Vec<&str> = state
        .models
        .values()
        .filter(|m| m.loaded.get().is_none())
        .map(|m| m.name.as_str())
        .collect();
    if loading.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        ApiError::unavailable(format!("still loading: {}", loading.join(", "))).into_response()
    }
}

async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.render_metrics(),
    )
        .into_response()
}

async fn list_models(State(state): State<Shared>) -> Response {
    let data: Vec<serde_json::Value> = state
        .models
        .values()
        .map(|m| {
            serde_json::json!({
                "id": m.name,
                "object": "model",
                "created": state.started,
                "owned_by": "torchless",
                "task": m.task,
                "ready": m.loaded.get().is_some(),
            })
        })
        .collect();
    axum::Json(serde_json::json!({"object": "list", "data": data})).into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}",
        req.method(),
        req.uri().path().chars().take(200).collect::<String>()
    ))
}

/// Bearer-token check on every route but `/health`.
async fn auth(State(state): State<Shared>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        if req.uri().path() != "/health" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| same(g.as_bytes(), key.as_bytes())) {
                let mut resp = ApiError::unauthorized().into_response();
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return resp;
            }
        }
    }
    next.run(req).await
}

/// Compares two keys in time that depends on their lengths only.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One request in `torchless_requests_in_flight`, also when its future is dropped.
pub(crate) struct InFlight<'a>(&'a AppState);

impl<'a> InFlight<'a> {
    pub(crate) fn new(state: &'a AppState) -> Self {
        state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts every request by route and status.
async fn count(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let start = Instant::now();
    let in_flight = InFlight::new(&state);
    let resp = next.run(req).await;
    drop(in_flight);
    state.metrics.request(
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        model: String,
        input: Vec<String>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"model": "m"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("missing field `input`"), "{}", e.message);
        let e = parse_json::<Body>(br#"{"model": "m", "input": [1]}"#).unwrap_err();
        assert!(e.message.contains("`input[0]`"), "{}", e.message);
        let e = parse_json::<Body>(b"{").unwrap_err();
        assert!(e.message.starts_with("invalid JSON body"), "{}", e.message);
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }

    #[tokio::test]
    async fn ready_is_503_while_a_model_loads_then_200() {
        let config = crate::serve::models::tests::config(&[("m", "bert/tiny-st")]);
        let state = Arc::new(AppState::new(&config).unwrap());
        let r = ready(State(Arc::clone(&state))).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        assert!(
            String::from_utf8_lossy(&body).contains("still loading: m"),
            "{body:?}"
        );
        let slot = Arc::clone(&state.models["m"]);
        crate::serve::models::load(slot, config.load.clone(), state.limits)
            .await
            .unwrap();
        assert_eq!(
            ready(State(Arc::clone(&state))).await.status(),
            StatusCode::OK
        );
        state.draining.store(true, Ordering::Relaxed);
        assert_eq!(
            ready(State(state)).await.status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
