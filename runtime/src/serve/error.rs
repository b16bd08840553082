//! Errors: [`ApiError`] is what a client receives (a status code and OpenAI's error body
//! `{"error": {"message", "type", "code"}}`); [`ServeError`] is why the server could not start
//! or stopped.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A refused or failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
    /// A `Retry-After` header (seconds), for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: the body is not what the route takes.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key: send `Authorization: Bearer <key>`",
        )
    }

    /// 404: no such model (or route).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 413: the body is larger than `--max-body-bytes`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes (--max-body-bytes)"),
        )
    }

    /// 429: the model's queue is full.
    pub fn busy(model: &str, waiting: usize) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "model {model:?} has {waiting} requests waiting (--max-queue): retry later"
                ),
            )
        }
    }

    /// 503: the model is still loading, or the server is stopping.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// 504: the request ran past `--request-timeout`.
    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request took longer than {} s (--request-timeout) and was cancelled",
                limit.as_secs_f64()
            ),
        )
    }

    /// 500: the model failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// OpenAI's `type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::BAD_REQUEST => "invalid_request_error",
            StatusCode::GATEWAY_TIMEOUT => "timeout_error",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable_error",
            _ => "server_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind(),
                "code": self.status.as_u16(),
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl From<crate::Error> for ApiError {
    /// A runtime error while running a model: the queue's refusals keep their meaning, anything
    /// else is the server's fault (inputs are checked before they reach a model).
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Busy { waiting } => ApiError::busy("", waiting),
            crate::Error::ShuttingDown => ApiError::unavailable("the server is shutting down"),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No `--model`.
    #[error("no model to serve: give --model NAME=PATH at least once")]
    NoModels,
    /// Two models under one name.
    #[error("model name {0:?} is given twice")]
    DuplicateName(String),
    /// A model path could not be resolved or loaded.
    #[error("model {name:?} ({path}): {cause}")]
    Model {
        /// The model's name.
        name: String,
        /// Its path.
        path: String,
        /// The cause.
        cause: Box<crate::Error>,
    },
    /// A model of a task the server does not serve.
    #[error("model {name:?}: {reason}")]
    Unsupported {
        /// The model's name.
        name: String,
        /// What is not served.
        reason: String,
    },
    /// Binding or serving failed.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        cause: std::io::Error,
    },
}
