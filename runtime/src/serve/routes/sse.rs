//! Server-sent events from a channel: one `data:` event per item, then `data: [DONE]` once the
//! sender is dropped. When the client goes away the body (and the receiver in it) is dropped,
//! so the sender sees a closed channel.

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;

/// The SSE response: `first` (when given), then `to_json` of each item of `rx`, then `[DONE]`.
pub fn stream<T: Send + 'static>(
    first: Option<serde_json::Value>,
    rx: mpsc::Receiver<T>,
    to_json: impl FnMut(T) -> serde_json::Value + Send + 'static,
) -> Response {
    let items =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
            .map(to_json);
    let events = futures_util::stream::iter(first)
        .chain(items)
        .map(|v| Event::default().data(v.to_string()))
        .chain(futures_util::stream::once(async {
            Event::default().data("[DONE]")
        }))
        .map(Ok::<_, Infallible>);
    Sse::new(events).into_response()
}
