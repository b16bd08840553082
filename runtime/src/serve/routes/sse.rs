//! Server-sent events from a channel: the response body ends when the sender is dropped, and
//! the sender sees a closed channel as soon as the client is gone (its body was dropped).

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

/// The sending half: `send` is false once the client went away.
pub struct EventSender(mpsc::Sender<Event>);

impl EventSender {
    /// Sends `data: <json>`.
    pub async fn json(&self, v: &serde_json::Value) -> bool {
        self.0
            .send(Event::default().data(v.to_string()))
            .await
            .is_ok()
    }

    /// Sends `data: [DONE]`.
    pub async fn done(&self) -> bool {
        self.0.send(Event::default().data("[DONE]")).await.is_ok()
    }
}

/// A channel and the SSE response reading it.
pub fn channel() -> (EventSender, Response) {
    let (tx, rx) = mpsc::channel::<Event>(64);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    (EventSender(tx), Sse::new(stream).into_response())
}
