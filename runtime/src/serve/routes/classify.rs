//! `POST /rerank` (text-embeddings-inference) and `POST /v1/classify` (texts for sequence
//! classifiers; images, as base64 PNG/JPEG or a float tensor, for image classifiers).

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::embed::texts;
use super::{pick_model, with_timeout, wrong_task, ApiJson, Shared};
use crate::preprocess::{Preprocess, RgbImage};
use crate::serve::error::ApiError;
use crate::serve::models::{ImageInput, Served, TextInput};
use crate::{top_k, Classifier, Task, TextClassifier};

#[derive(Deserialize)]
pub struct RerankRequest {
    #[serde(default)]
    model: Option<String>,
    query: String,
    texts: Vec<String>,
    #[serde(default)]
    return_text: bool,
}

/// Scores `(query, text)` for every text with the one-label cross-encoder `name` (or the only
/// sequence classifier): `(index, score)` best first, ties by index; also the model's name.
/// Every protocol's rerank goes through here.
pub async fn rerank_texts<'a>(
    state: &'a Shared,
    name: Option<&str>,
    query: &str,
    texts: &[String],
) -> Result<(&'a str, Vec<(usize, f32)>), ApiError> {
    if texts.is_empty() {
        return Err(ApiError::bad_request(
            "invalid field `texts`: the array is empty",
        ));
    }
    let (slot, served) = pick_model(state, name, |t| t == Task::SequenceClassify)?;
    let Served::Text { model, batcher } = served else {
        return Err(wrong_task(&slot.name, slot.task));
    };
    if model.num_labels() != 1 {
        return Err(ApiError::bad_request(format!(
            "model {:?} has {} labels: reranking needs a one-label cross-encoder (use \
             /v1/classify)",
            slot.name,
            model.num_labels()
        )));
    }
    let per_job = state.limits.max_batch_size.max(1);
    let pairs: Vec<(String, String)> = texts
        .iter()
        .map(|t| (query.to_string(), t.clone()))
        .collect();
    let lengths = token_counts(model, pairs.clone(), true, per_job).await?;
    let mut jobs = Vec::new();
    let mut pairs = pairs.into_iter();
    for chunk in lengths.chunks(per_job) {
        let inputs: Vec<TextInput> = pairs
            .by_ref()
            .take(chunk.len())
            .map(|(q, d)| TextInput::Pair(q, d))
            .collect();
        jobs.push(batcher.submit(inputs, chunk.iter().sum()));
    }
    let rows: Vec<Vec<f32>> = futures_util::future::try_join_all(jobs)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let mut scored: Vec<(usize, f32)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.first().copied().unwrap_or(f32::NAN)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok((&slot.name, scored))
}

/// TEI's rerank: `{"query", "texts"}` → `[{"index", "score"}]`, best first.
pub async fn rerank(State(state): State<Shared>, ApiJson(req): ApiJson<RerankRequest>) -> Response {
    let limit = state.limits.request_timeout;
    with_timeout(limit, async {
        let (_, scored) =
            rerank_texts(&state, req.model.as_deref(), &req.query, &req.texts).await?;
        let out: Vec<Value> = scored
            .into_iter()
            .map(|(index, score)| {
                if req.return_text {
                    serde_json::json!({"index": index, "score": score, "text": req.texts[index]})
                } else {
                    serde_json::json!({"index": index, "score": score})
                }
            })
            .collect();
        Ok(axum::Json(out).into_response())
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub struct ClassifyRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    images: Option<Vec<ImageField>>,
    #[serde(default)]
    top_k: Option<usize>,
}

/// An image: base64 PNG/JPEG bytes (a bare string or `{"base64": ...}`), or a preprocessed
/// float tensor `{"data": [...], "shape": [3, H, W]}` (or `[1, 3, H, W]`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ImageField {
    /// Base64 bytes.
    Encoded(String),
    /// `{"base64": ...}`.
    Wrapped {
        /// Base64 bytes.
        base64: String,
    },
    /// A CHW tensor.
    Tensor {
        /// Row-major values.
        data: Vec<f32>,
        /// `[3, H, W]` or `[1, 3, H, W]`.
        shape: Vec<usize>,
    },
}

/// An image as [`prepare`] takes it, whatever the protocol sent.
pub enum ImageData {
    /// PNG or JPEG file bytes.
    Encoded(Vec<u8>),
    /// A CHW tensor.
    Tensor {
        /// Row-major values.
        data: Vec<f32>,
        /// `[3, H, W]` or `[1, 3, H, W]`.
        shape: Vec<usize>,
    },
}

impl ImageField {
    /// The bytes or tensor of `images[i]` (base64 decoded).
    fn into_data(self, i: usize) -> Result<ImageData, ApiError> {
        match self {
            ImageField::Tensor { data, shape } => Ok(ImageData::Tensor { data, shape }),
            ImageField::Encoded(b) | ImageField::Wrapped { base64: b } => {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map(ImageData::Encoded)
                    .map_err(|e| {
                        ApiError::bad_request(format!(
                            "invalid field `images[{i}]`: not base64: {e}"
                        ))
                    })
            }
        }
    }
}

/// Tokens per input (special tokens included, truncated as the model runs it), for the batch
/// token budget: `(query, document)` pairs when `pairs`, else `(text, "")`.
async fn token_counts(
    model: &Arc<TextClassifier>,
    inputs: Vec<(String, String)>,
    pairs: bool,
    per_job: usize,
) -> Result<Vec<usize>, ApiError> {
    let m = Arc::clone(model);
    tokio::task::spawn_blocking(move || {
        let mut lengths = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(per_job) {
            let batch = if !pairs {
                let texts: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
                m.tokenize(&texts)?
            } else {
                let pairs: Vec<(&str, &str)> = chunk
                    .iter()
                    .map(|(q, d)| (q.as_str(), d.as_str()))
                    .collect();
                m.tokenize_pairs(&pairs)?
            };
            lengths.extend(batch.lengths.iter().map(|&n| n as usize));
        }
        Ok::<_, crate::Error>(lengths)
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing failed: {e}")))?
    .map_err(ApiError::from)
}

const MAX_SIDE: usize = 8192;

/// Decodes and preprocesses one image for `model`.
fn prepare(model: &Classifier, i: usize, img: ImageData) -> Result<ImageInput, ApiError> {
    let bad = |m: String| ApiError::bad_request(format!("invalid field `images[{i}]`: {m}"));
    let (data, height, width) = match img {
        ImageData::Tensor { data, shape } => {
            let (h, w) = match shape[..] {
                [3, h, w] | [1, 3, h, w] => (h, w),
                _ => {
                    return Err(bad(format!(
                        "shape {shape:?} is not [3, H, W] or [1, 3, H, W]"
                    )))
                }
            };
            if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE {
                return Err(bad(format!(
                    "{h} × {w} is not a size between 1 and {MAX_SIDE}"
                )));
            }
            if data.len() != 3 * h * w {
                return Err(bad(format!(
                    "data has {} values, shape {shape:?} needs {}",
                    data.len(),
                    3 * h * w
                )));
            }
            (data, h, w)
        }
        ImageData::Encoded(bytes) => {
            let rgb = decode_image(&bytes).map_err(bad)?;
            match model.processor() {
                Some(p) => {
                    let (h, w) = p.output_size(&rgb);
                    (p.apply(&rgb), h, w)
                }
                None => {
                    let pre = Preprocess::default();
                    let data = pre.apply(&rgb).map_err(bad)?;
                    (data, pre.crop, pre.crop)
                }
            }
        }
    };
    if let Some((mh, mw)) = model.image_size() {
        if (height, width) != (mh, mw) {
            return Err(bad(format!(
                "the image is {height} × {width} after preprocessing; the model takes {mh} × {mw}"
            )));
        }
    }
    Ok(ImageInput {
        data,
        height,
        width,
    })
}

/// PNG or JPEG bytes to RGB, refusing other formats and images over [`MAX_SIDE`] per side.
fn decode_image(bytes: &[u8]) -> Result<RgbImage, String> {
    let format = image::guess_format(bytes)
        .map_err(|_| "not a PNG or JPEG image (unrecognised content)".to_string())?;
    if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
        return Err(format!(
            "{format:?} images are not supported (PNG or JPEG only)"
        ));
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE as u32);
    limits.max_image_height = Some(MAX_SIDE as u32);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| format!("cannot decode: {e}"))?
        .to_rgb8();
    Ok(RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    })
}

/// One label of a classification.
pub struct LabelScore {
    /// The class index.
    pub index: usize,
    /// Its name, when the model has one.
    pub label: Option<String>,
    /// The softmax probability (a one-label text model: its activated score).
    pub score: f32,
}

/// One input's classification.
pub struct Classified {
    /// The top `k` labels, best first.
    pub labels: Vec<LabelScore>,
    /// The raw logits.
    pub logits: Vec<f32>,
}

/// What to classify; the field names are the protocol's, for its error messages.
pub struct ClassifyArgs<'f> {
    /// The model's name, when given.
    pub model: Option<String>,
    /// Texts (a text classifier), when given.
    pub texts: Option<Vec<String>>,
    /// Images (an image classifier), when given.
    pub images: Option<Vec<ImageData>>,
    /// Labels per input (default 5).
    pub top_k: Option<usize>,
    /// The texts' and the images' field names.
    pub fields: (&'f str, &'f str),
}

/// Classifies texts or images with the served classifier `model` (or the only one). Every
/// protocol's classify goes through here.
pub async fn classify_inputs<'a>(
    state: &'a Shared,
    args: ClassifyArgs<'_>,
) -> Result<(&'a str, Vec<Classified>), ApiError> {
    let (text_field, image_field) = args.fields;
    let k = args.top_k.unwrap_or(5);
    if k == 0 {
        return Err(ApiError::bad_request(
            "invalid field `top_k`: must be at least 1",
        ));
    }
    let (slot, served) = pick_model(state, args.model.as_deref(), |t| {
        matches!(t, Task::SequenceClassify | Task::Classify)
    })?;
    let per_job = state.limits.max_batch_size.max(1);
    let results = match served {
        Served::Text { model, batcher } => {
            let Some(texts) = args.texts else {
                return Err(ApiError::bad_request(format!(
                    "missing field `{text_field}`: model {:?} classifies texts",
                    slot.name
                )));
            };
            if texts.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "invalid field `{text_field}`: the array is empty"
                )));
            }
            let singles: Vec<(String, String)> =
                texts.iter().map(|t| (t.clone(), String::new())).collect();
            let lengths = token_counts(model, singles, false, per_job).await?;
            let mut jobs = Vec::new();
            for (chunk, lens) in texts.chunks(per_job).zip(lengths.chunks(per_job)) {
                let inputs = chunk.iter().cloned().map(TextInput::Single).collect();
                jobs.push(batcher.submit(inputs, lens.iter().sum()));
            }
            let rows = futures_util::future::try_join_all(jobs).await?;
            let labels = model.id2label();
            rows.into_iter()
                .flatten()
                .map(|logits| {
                    let entries = if model.num_labels() == 1 {
                        vec![LabelScore {
                            index: 0,
                            label: labels.first().cloned(),
                            score: model.activation().apply(logits[0]),
                        }]
                    } else {
                        top_k(&logits, k)
                            .iter()
                            .map(|t| LabelScore {
                                index: t.index,
                                label: labels.get(t.index).cloned(),
                                score: t.score,
                            })
                            .collect()
                    };
                    Classified {
                        labels: entries,
                        logits,
                    }
                })
                .collect()
        }
        Served::Image { model, batcher } => {
            let Some(images) = args.images else {
                return Err(ApiError::bad_request(format!(
                    "missing field `{image_field}`: model {:?} classifies images",
                    slot.name
                )));
            };
            if images.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "invalid field `{image_field}`: the array is empty"
                )));
            }
            let m = Arc::clone(model);
            let inputs = tokio::task::spawn_blocking(move || {
                images
                    .into_iter()
                    .enumerate()
                    .map(|(i, img)| prepare(&m, i, img))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| ApiError::internal(format!("preprocessing failed: {e}")))??;
            let mut jobs = Vec::new();
            let mut inputs = inputs.into_iter().peekable();
            while inputs.peek().is_some() {
                let chunk: Vec<ImageInput> = inputs.by_ref().take(per_job).collect();
                let n = chunk.len();
                jobs.push(batcher.submit(chunk, n));
            }
            let rows = futures_util::future::try_join_all(jobs).await?;
            let labels = model.labels();
            rows.into_iter()
                .flatten()
                .map(|logits| Classified {
                    labels: top_k(&logits, k)
                        .iter()
                        .map(|t| LabelScore {
                            index: t.index,
                            label: labels.and_then(|l| l.get(t.index)).cloned(),
                            score: t.score,
                        })
                        .collect(),
                    logits,
                })
                .collect()
        }
        _ => return Err(wrong_task(&slot.name, slot.task)),
    };
    Ok((&slot.name, results))
}

/// `/v1/classify`: `{"model", "input": str | [str]}` for a text classifier, `{"model",
/// "images": [...]}` for an image classifier; `top_k` (default 5) labels per input.
pub async fn classify(
    State(state): State<Shared>,
    ApiJson(req): ApiJson<ClassifyRequest>,
) -> Response {
    let limit = state.limits.request_timeout;
    with_timeout(limit, async {
        let texts = req.input.map(|v| texts(v, "input")).transpose()?;
        let images = req
            .images
            .map(|imgs| {
                imgs.into_iter()
                    .enumerate()
                    .map(|(i, img)| img.into_data(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let args = ClassifyArgs {
            model: req.model,
            texts,
            images,
            top_k: req.top_k,
            fields: ("input", "images"),
        };
        let (model, results) = classify_inputs(&state, args).await?;
        let data: Vec<Value> = results
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let labels: Vec<Value> = c
                    .labels
                    .iter()
                    .map(|l| serde_json::json!({"index": l.index, "label": l.label, "score": l.score}))
                    .collect();
                serde_json::json!({"index": i, "labels": labels, "logits": c.logits})
            })
            .collect();
        Ok(axum::Json(serde_json::json!({
            "object": "list",
            "model": model,
            "data": data,
        }))
        .into_response())
    })
    .await
    .unwrap_or_else(IntoResponse::into_response)
}
