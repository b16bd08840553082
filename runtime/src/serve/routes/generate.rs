//! `POST /v1/completions` and `POST /v1/chat/completions` (OpenAI): one sequence per request
//! through the model's [`GenerationQueue`](crate::batching::GenerationQueue), answered whole or
//! streamed as server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.
//!
//! Cancelling is dropping: the queue's sink sends events into a channel, and once its receiver
//! is gone (the request timed out, the client disconnected, a stop string matched) the sink
//! returns `false` and the sequence leaves the batch at its next step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{with_timeout, wrong_task, ApiJson, Shared};
use crate::batching::{GenerationEvent, GenerationQueue};
use crate::chat::{ChatMessage, ChatTemplate, TextStream};
use crate::serve::error::ApiError;
use crate::serve::models::Served;
use crate::{GenerateOptions, SamplerConfig, Sampling, StopReason, TextGenerator};

/// The fields of both routes (each checks the ones it needs); gRPC requests are turned into
/// one too, so both protocols are checked by the same [`prepare`].
#[derive(Deserialize, Default)]
#[allow(missing_docs)]
pub struct GenRequest {
    pub model: String,
    #[serde(default)]
    pub prompt: Option<Value>,
    #[serde(default)]
    pub messages: Option<Vec<ChatMessage>>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stop: Option<Value>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub n: Option<usize>,
    #[serde(default)]
    pub echo: Option<bool>,
}

/// A completion or a chat.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A prompt to continue.
    Completion,
    /// Messages rendered with the chat template.
    Chat,
}

/// `/v1/completions`.
pub async fn completions(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<GenRequest>,
) -> Response {
    generate(state, req, Kind::Completion).await
}

/// `/v1/chat/completions`.
pub async fn chat(State(state): State<Shared>, ApiJson(req): ApiJson<GenRequest>) -> Response {
    generate(state, req, Kind::Chat).await
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Everything checked before the sequence is queued.
pub struct Prepared {
    queue: Arc<GenerationQueue>,
    model: String,
    prompt_ids: Vec<u32>,
    options: GenerateOptions,
    stops: Vec<String>,
}

async fn generate(state: Shared, req: GenRequest, kind: Kind) -> Response {
    let stream = req.stream;
    let prepared = match prepare(&state, req, kind) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if stream {
        return stream_response(state, prepared, kind);
    }
    let limit = state.limits.request_timeout;
    with_timeout(limit, whole(&state, prepared, kind))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Checks a request and turns it into a sequence to queue (every protocol goes through here).
pub fn prepare(state: &Shared, req: GenRequest, kind: Kind) -> Result<Prepared, ApiError> {
    let (slot, served) = state.model(&req.model)?;
    let Served::Generate { queue, dir } = served else {
        return Err(wrong_task(&slot.name, slot.task));
    };
    let gen = queue.generator();
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request(
            "invalid field `n`: one choice per request only",
        ));
    }
    if req.echo == Some(true) {
        return Err(ApiError::bad_request(
            "invalid field `echo`: echoing the prompt is not supported",
        ));
    }
    let prompt_ids = match kind {
        Kind::Completion => {
            let Some(p) = req.prompt else {
                return Err(ApiError::bad_request("missing field `prompt`"));
            };
            prompt_ids(gen, &slot.name, p)?
        }
        Kind::Chat => {
            let Some(m) = req.messages else {
                return Err(ApiError::bad_request("missing field `messages`"));
            };
            chat_ids(gen, &slot.name, dir, &m)?
        }
    };
    let shape = gen.model().shape();
    if prompt_ids.is_empty() {
        return Err(ApiError::bad_request("the prompt has no tokens"));
    }
    if prompt_ids.len() >= shape.max_positions {
        return Err(ApiError::bad_request(format!(
            "the prompt has {} tokens; model {:?} has {} positions",
            prompt_ids.len(),
            slot.name,
            shape.max_positions
        )));
    }
    if let Some(bad) = prompt_ids
        .iter()
        .find(|&&id| id as usize >= shape.vocab_size)
    {
        return Err(ApiError::bad_request(format!(
            "invalid field `prompt`: token id {bad} is outside the vocabulary of {}",
            shape.vocab_size
        )));
    }
    let limit = state.limits.max_new_tokens;
    let (field, asked) = match (req.max_completion_tokens, req.max_tokens) {
        (Some(n), _) => ("max_completion_tokens", Some(n)),
        (None, n) => ("max_tokens", n),
    };
    let max_new_tokens = match (asked, kind) {
        (Some(0), _) => {
            return Err(ApiError::bad_request(format!(
                "invalid field `{field}`: must be at least 1"
            )))
        }
        (Some(n), _) if n > limit => {
            return Err(ApiError::bad_request(format!(
                "invalid field `{field}`: {n} is more than the server's {limit} \
                 (--max-new-tokens)"
            )))
        }
        (Some(n), _) => n,
        // OpenAI's defaults: 16 for completions, as many as allowed for chat.
        (None, Kind::Completion) => 16.min(limit),
        (None, Kind::Chat) => limit,
    };
    let sampling = match req.temperature {
        Some(0.0) => Sampling::Greedy,
        t => Sampling::Sample {
            temperature: t.unwrap_or(1.0),
            top_k: req.top_k,
            top_p: req.top_p.filter(|&p| p != 1.0),
            seed: req.seed.unwrap_or_else(|| {
                now()
                    ^ NEXT_ID
                        .fetch_add(1, Ordering::Relaxed)
                        .wrapping_mul(0x9E37_79B9)
            }),
        },
    };
    let sampler = SamplerConfig {
        sampling,
        repetition_penalty: 1.0,
    };
    sampler
        .check()
        .map_err(|e| ApiError::bad_request(format!("invalid sampling fields: {e}")))?;
    let stops = match req.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::bad_request(format!(
                    "invalid field `stop[{i}]`: expected a string"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid field `stop`: expected a string or an array of strings",
            ))
        }
    };
    if stops.len() > 4 || stops.iter().any(|s| s.is_empty() || s.len() > 200) {
        return Err(ApiError::bad_request(
            "invalid field `stop`: at most 4 non-empty strings of at most 200 bytes",
        ));
    }
    if !stops.is_empty() && gen.tokenizer().is_none() {
        return Err(ApiError::bad_request(format!(
            "invalid field `stop`: model {:?} has no tokenizer.json, so its output has no text",
            slot.name
        )));
    }
    Ok(Prepared {
        queue: Arc::clone(queue),
        model: slot.name.clone(),
        prompt_ids,
        options: GenerateOptions {
            max_new_tokens,
            sampler,
            stop_at_eos: true,
        },
        stops,
    })
}

/// A completion prompt: a string, or token ids (also a one-element array of either).
fn prompt_ids(gen: &TextGenerator, model: &str, p: Value) -> Result<Vec<u32>, ApiError> {
    let encode = |s: &str| {
        if gen.tokenizer().is_none() {
            return Err(ApiError::bad_request(format!(
                "invalid field `prompt`: model {model:?} has no tokenizer.json; send token ids"
            )));
        }
        gen.encode(s).map_err(ApiError::from)
    };
    match p {
        Value::String(s) => encode(&s),
        Value::Array(a) if a.iter().all(Value::is_number) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid field `prompt[{i}]`: not a token id"
                        ))
                    })
            })
            .collect(),
        Value::Array(a) if a.len() == 1 => {
            prompt_ids(gen, model, a.into_iter().next().unwrap_or_default())
        }
        Value::Array(_) => Err(ApiError::bad_request(
            "invalid field `prompt`: one prompt per request (a string or an array of token ids)",
        )),
        _ => Err(ApiError::bad_request(
            "invalid field `prompt`: expected a string or an array of token ids",
        )),
    }
}

/// The chat rendered with the folder's template, tokenized without adding special tokens (the
/// template writes them), as `apply_chat_template(tokenize=True)` does.
fn chat_ids(
    gen: &TextGenerator,
    model: &str,
    dir: &std::path::Path,
    messages: &[ChatMessage],
) -> Result<Vec<u32>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "invalid field `messages`: the array is empty",
        ));
    }
    let Some(tok) = gen.tokenizer() else {
        return Err(ApiError::bad_request(format!(
            "model {model:?} has no tokenizer.json, so it cannot chat"
        )));
    };
    let template = ChatTemplate::from_folder(dir)
        .map_err(|e| ApiError::internal(format!("model {model:?}: chat template: {e}")))?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "model {model:?} has no chat template (tokenizer_config.json `chat_template` or \
                 chat_template.jinja); use /v1/completions"
            ))
        })?;
    let prompt = template
        .render(messages, true)
        .map_err(|e| ApiError::bad_request(format!("invalid field `messages`: {e}")))?;
    let enc = tok
        .encode(prompt.as_str(), false)
        .map_err(|e| ApiError::internal(format!("tokenizer: {e}")))?;
    Ok(enc.get_ids().to_vec())
}

/// What one event of the sequence gives the client.
enum Step {
    Token { id: u32, text: String },
    End { text: String, reason: &'static str },
}

/// The client's view of one running sequence: text deltas cut at stop strings.
struct Run<'a> {
    rx: mpsc::UnboundedReceiver<GenerationEvent>,
    stream: Option<TextStream<'a>>,
    stops: Vec<String>,
    held: String,
    ids: Vec<u32>,
    state: &'a Shared,
}

/// Queues the sequence; its events arrive on the returned channel.
fn submit(p: &Prepared) -> Result<mpsc::UnboundedReceiver<GenerationEvent>, ApiError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Box::new(move |ev| tx.send(ev).is_ok());
    p.queue
        .submit(p.prompt_ids.clone(), p.options.clone(), sink)
        .map_err(|e| match e {
            crate::Error::Busy { waiting } => ApiError::busy(&p.model, waiting),
            other => ApiError::from(other),
        })?;
    Ok(rx)
}

impl<'a> Run<'a> {
    fn new(
        rx: mpsc::UnboundedReceiver<GenerationEvent>,
        gen: &'a TextGenerator,
        stops: Vec<String>,
        state: &'a Shared,
    ) -> Self {
        Run {
            rx,
            stream: gen.tokenizer().map(TextStream::new),
            stops,
            held: String::new(),
            ids: Vec::new(),
            state,
        }
    }

    async fn next(&mut self) -> Result<Step, ApiError> {
        match self.rx.recv().await {
            Some(GenerationEvent::Token(id)) => {
                self.ids.push(id);
                self.state
                    .metrics
                    .generated_tokens
                    .fetch_add(1, Ordering::Relaxed);
                let piece = match &mut self.stream {
                    Some(s) => s.push(id)?,
                    None => String::new(),
                };
                self.held.push_str(&piece);
                if let Some(text) = self.cut_at_stop() {
                    return Ok(Step::End {
                        text,
                        reason: "stop",
                    });
                }
                Ok(Step::Token {
                    id,
                    text: self.release(),
                })
            }
            Some(GenerationEvent::Finished(g)) => {
                let piece = match &mut self.stream {
                    Some(s) => s.finish()?,
                    None => String::new(),
                };
                self.held.push_str(&piece);
                if let Some(text) = self.cut_at_stop() {
                    return Ok(Step::End {
                        text,
                        reason: "stop",
                    });
                }
                let reason = match g.stop {
                    StopReason::Eos | StopReason::Callback => "stop",
                    StopReason::MaxTokens | StopReason::ContextFull => "length",
                };
                Ok(Step::End {
                    text: std::mem::take(&mut self.held),
                    reason,
                })
            }
            Some(GenerationEvent::Failed(e)) => Err(e.into()),
            None => Err(ApiError::internal("the generation ended without a result")),
        }
    }

    /// The held text before the first stop string, when one has appeared.
    fn cut_at_stop(&mut self) -> Option<String> {
        let at = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()?;
        let mut text = std::mem::take(&mut self.held);
        text.truncate(at);
        Some(text)
    }

    /// The held text that cannot be the start of a stop string (the rest stays held).
    fn release(&mut self) -> String {
        let keep = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .rev()
                    .filter(|&k| s.is_char_boundary(k) && self.held.ends_with(&s[..k]))
                    .take(1)
            })
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let rest = self.held.split_off(cut);
        std::mem::replace(&mut self.held, rest)
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// The whole answer at once.
async fn whole(state: &Shared, p: Prepared, kind: Kind) -> Result<Response, ApiError> {
    let rx = submit(&p)?;
    let gen = Arc::clone(p.queue.generator());
    let mut run = Run::new(rx, &gen, p.stops.clone(), state);
    let mut text = String::new();
    let reason = loop {
        match run.next().await? {
            Step::Token { text: t, .. } => text.push_str(&t),
            Step::End { text: t, reason } => {
                text.push_str(&t);
                break reason;
            }
        }
    };
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let body = match kind {
        Kind::Completion => json!({
            "id": format!("cmpl-{n}"),
            "object": "text_completion",
            "created": now(),
            "model": p.model,
            "choices": [{
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": reason,
                "token_ids": run.ids,
            }],
            "usage": usage(p.prompt_ids.len(), run.ids.len()),
        }),
        Kind::Chat => json!({
            "id": format!("chatcmpl-{n}"),
            "object": "chat.completion",
            "created": now(),
            "model": p.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": reason,
                "token_ids": run.ids,
            }],
            "usage": usage(p.prompt_ids.len(), run.ids.len()),
        }),
    };
    Ok(axum::Json(body).into_response())
}

/// One streamed chunk.
fn chunk(
    kind: Kind,
    id: &str,
    model: &str,
    text: Option<&str>,
    ids: &[u32],
    reason: Option<&str>,
) -> Value {
    match kind {
        Kind::Completion => json!({
            "id": id,
            "object": "text_completion",
            "created": now(),
            "model": model,
            "choices": [{
                "index": 0,
                "text": text.unwrap_or(""),
                "logprobs": null,
                "finish_reason": reason,
                "token_ids": ids,
            }],
        }),
        Kind::Chat => {
            let delta = match text {
                Some(t) => json!({"content": t}),
                None if reason.is_none() => json!({"role": "assistant", "content": ""}),
                None => json!({}),
            };
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": now(),
                "model": model,
                "choices": [{
                    "index": 0,
                    "delta": delta,
                    "logprobs": null,
                    "finish_reason": reason,
                    "token_ids": ids,
                }],
            })
        }
    }
}

/// One event of a streamed generation, whatever the protocol.
pub enum StreamEvent {
    /// A text delta and the ids it came from (ids whose text is still held back, an incomplete
    /// character or a possible stop string, travel with the next delta that has text).
    Delta {
        /// The text.
        text: String,
        /// The ids.
        ids: Vec<u32>,
    },
    /// The end.
    Finish {
        /// `stop` or `length`.
        reason: &'static str,
        /// Tokens of the prompt.
        prompt_tokens: usize,
        /// Tokens generated.
        completion_tokens: usize,
    },
    /// A failure or the timeout after the stream started; nothing follows.
    Error(ApiError),
}

/// Queues the sequence (a refusal, such as a full queue, is returned at once) and streams its
/// events on a bounded channel, ending at `--request-timeout`. Dropping the receiver (the
/// client went away) cancels the sequence: it leaves the batch at its next step.
pub fn stream_events(state: Shared, p: Prepared) -> Result<mpsc::Receiver<StreamEvent>, ApiError> {
    let rx = submit(&p)?;
    let (tx, events) = mpsc::channel(64);
    let limit = state.limits.request_timeout;
    tokio::spawn(async move {
        let deadline = Instant::now() + limit;
        let gen = Arc::clone(p.queue.generator());
        let mut run = Run::new(rx, &gen, p.stops.clone(), &state);
        let mut pending: Vec<u32> = Vec::new();
        loop {
            let step = match tokio::time::timeout_at(deadline, run.next()).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let _ = tx.send(StreamEvent::Error(e)).await;
                    return;
                }
                Err(_) => {
                    let _ = tx.send(StreamEvent::Error(ApiError::timeout(limit))).await;
                    return;
                }
            };
            match step {
                Step::Token { id: tok, text } => {
                    pending.push(tok);
                    if text.is_empty() && run.stream.is_some() {
                        continue;
                    }
                    let ids = std::mem::take(&mut pending);
                    if tx.send(StreamEvent::Delta { text, ids }).await.is_err() {
                        // The client went away: dropping `run` stops the sequence.
                        return;
                    }
                }
                Step::End { text, reason } => {
                    if !text.is_empty() || !pending.is_empty() {
                        let ids = std::mem::take(&mut pending);
                        if tx.send(StreamEvent::Delta { text, ids }).await.is_err() {
                            return;
                        }
                    }
                    let finish = StreamEvent::Finish {
                        reason,
                        prompt_tokens: p.prompt_ids.len(),
                        completion_tokens: run.ids.len(),
                    };
                    let _ = tx.send(finish).await;
                    return;
                }
            }
        }
    });
    Ok(events)
}

/// The answer as server-sent events. A queue refusal (429) is still a plain error response;
/// anything after the first byte (a failure, the timeout) is an `{"error": ...}` event before
/// `[DONE]`.
fn stream_response(state: Shared, p: Prepared, kind: Kind) -> Response {
    let model = p.model.clone();
    let events = match stream_events(state, p) {
        Ok(rx) => rx,
        Err(e) => return e.into_response(),
    };
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let id = match kind {
        Kind::Completion => format!("cmpl-{n}"),
        Kind::Chat => format!("chatcmpl-{n}"),
    };
    let first = (kind == Kind::Chat).then(|| chunk(kind, &id, &model, None, &[], None));
    super::sse::stream(first, events, move |ev| match ev {
        StreamEvent::Delta { text, ids } => chunk(kind, &id, &model, Some(&text), &ids, None),
        StreamEvent::Finish { reason, .. } => chunk(kind, &id, &model, None, &[], Some(reason)),
        StreamEvent::Error(e) => e.body(),
    })
}
