//! `POST /v1/embeddings` (OpenAI) and `POST /embed` (text-embeddings-inference).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::future::try_join_all;
use serde::Deserialize;
use serde_json::Value;

use super::{pick_model, with_timeout, wrong_task, ApiJson, Shared};
use crate::serve::error::ApiError;
use crate::serve::models::Served;
use crate::{SentenceEncoder, Task};

#[derive(Deserialize)]
pub struct OpenAiRequest {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
}

#[derive(Deserialize)]
pub struct TeiRequest {
    #[serde(default)]
    model: Option<String>,
    inputs: Value,
    #[serde(default)]
    normalize: Option<bool>,
}

/// A string or an array of strings, from field `field`.
pub fn texts(v: Value, field: &str) -> Result<Vec<String>, ApiError> {
    let out = match v {
        Value::String(s) => vec![s],
        Value::Array(a) => a
            .into_iter()
            .enumerate()
            .map(|(i, x)| match x {
                Value::String(s) => Ok(s),
                Value::Number(_) => Err(ApiError::bad_request(format!(
                    "invalid field `{field}[{i}]`: token-id inputs are not accepted; send text"
                ))),
                _ => Err(ApiError::bad_request(format!(
                    "invalid field `{field}[{i}]`: expected a string"
                ))),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::bad_request(format!(
                "invalid field `{field}`: expected a string or an array of strings"
            )))
        }
    };
    if out.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid field `{field}`: the array is empty"
        )));
    }
    Ok(out)
}

/// Embeds `texts` through the model's batcher, at most `max_batch_size` per queued job; also
/// returns each input's token count.
async fn embed(
    state: &Shared,
    model: &Arc<SentenceEncoder>,
    batcher: &crate::serve::batcher::Batcher<String, Vec<f32>>,
    texts: Vec<String>,
) -> Result<(Vec<Vec<f32>>, Vec<usize>), ApiError> {
    let per_job = state.limits.max_batch_size.max(1);
    let m = Arc::clone(model);
    // Tokenized once here for the token budget and `usage`; the batch tokenizes again with its
    // neighbours (padding depends on them).
    let (texts, lengths) = tokio::task::spawn_blocking(move || {
        let mut lengths = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(per_job) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            lengths.extend(m.tokenize(&refs)?.lengths.iter().map(|&n| n as usize));
        }
        Ok::<_, crate::Error>((texts, lengths))
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))??;
    let mut jobs = Vec::new();
    let mut texts = texts.into_iter();
    for chunk in lengths.chunks(per_job) {
        let inputs: Vec<String> = texts.by_ref().take(chunk.len()).collect();
        jobs.push(batcher.submit(inputs, chunk.iter().sum()));
    }
    let rows = try_join_all(jobs).await?.into_iter().flatten().collect();
    Ok((rows, lengths))
}

/// A served sentence encoder.
struct Encoder<'a> {
    name: &'a str,
    model: &'a Arc<SentenceEncoder>,
    batcher: &'a crate::serve::batcher::Batcher<String, Vec<f32>>,
    normalizes: bool,
}

fn encoder<'a>(state: &'a Shared, name: Option<&str>) -> Result<Encoder<'a>, ApiError> {
    let (slot, served) = pick_model(state, name, |t| t == Task::Embed)?;
    match served {
        Served::Embed {
            model,
            batcher,
            normalizes,
        } => Ok(Encoder {
            name: &slot.name,
            model,
            batcher,
            normalizes: *normalizes,
        }),
        _ => Err(wrong_task(&slot.name, slot.task)),
    }
}

/// The answer to an embedding request, over HTTP or gRPC.
pub struct Embedded<'a> {
    /// The model that answered.
    pub model: &'a str,
    /// One row per input, in order.
    pub rows: Vec<Vec<f32>>,
    /// Tokens per input (special tokens included, truncated as embedded).
    pub tokens: Vec<usize>,
}

/// Embeds `texts` with the served encoder `name` (or the only one): `normalize` unset gives the
/// rows as the folder computes them, `Some(true)` unit rows, `Some(false)` is refused for a
/// folder that normalises; `dimensions`, when given, must be the model's. Every protocol's
/// embedding route goes through here.
pub async fn embed_texts<'a>(
    state: &'a Shared,
    name: Option<&str>,
    texts: Vec<String>,
    normalize: Option<bool>,
    dimensions: Option<usize>,
) -> Result<Embedded<'a>, ApiError> {
    let Encoder {
        name,
        model,
        batcher,
        normalizes,
    } = encoder(state, name)?;
    if let Some(d) = dimensions {
        if d != model.dim() {
            return Err(ApiError::bad_request(format!(
                "invalid field `dimensions`: model {name:?} gives {} dimensions only",
                model.dim()
            )));
        }
    }
    if normalize == Some(false) && normalizes {
        return Err(ApiError::bad_request(format!(
            "invalid field `normalize`: model {name:?} ends with a Normalize module, so its \
             embeddings are always unit length"
        )));
    }
    let (mut rows, tokens) = embed(state, model, batcher, texts).await?;
    if normalize == Some(true) && !normalizes {
        for r in &mut rows {
            crate::l2_normalize(r);
        }
    }
    Ok(Embedded {
        model: name,
        rows,
        tokens,
    })
}

/// OpenAI's embeddings: `{"model", "input": str | [str], "encoding_format"?: "float" | "base64"}`.
pub async fn openai(State(state): State<Shared>, ApiJson(req): ApiJson<OpenAiRequest>) -> Response {
    let limit = state.limits.request_timeout;
    with_timeout(limit, async {
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid field `encoding_format`: {:?} is not float or base64",
                    other.chars().take(40).collect::<String>()
                )))
            }
        };
        let texts = texts(req.input, "input")?;
        let Embedded {
            model: name,
            rows,
            tokens,
        } = embed_texts(&state, Some(&req.model), texts, None, req.dimensions).await?;
        let tokens: usize = tokens.iter().sum();
        let data: Vec<Value> = rows
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = e.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    serde_json::json!(e)
                };
                serde_json::json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        Ok(axum::Json(serde_json::json!({
            "object": "list",
            "data": data,
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }))
        .into_response())
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// text-embeddings-inference's `/embed`: `{"inputs": str | [str], "normalize"?: bool}` →
/// `[[f32]]`.
pub async fn tei(State(state): State<Shared>, ApiJson(req): ApiJson<TeiRequest>) -> Response {
    let limit = state.limits.request_timeout;
    with_timeout(limit, async {
        let texts = texts(req.inputs, "inputs")?;
        let normalize = req.normalize.unwrap_or(true);
        let Embedded { rows, .. } =
            embed_texts(&state, req.model.as_deref(), texts, Some(normalize), None).await?;
        Ok(axum::Json(rows).into_response())
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}
