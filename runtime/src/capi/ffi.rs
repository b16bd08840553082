//! The exported `extern "C"` functions. Each one checks its arguments, runs under [`guard`]
//! (no panic crosses the boundary) and returns a [`TorchlessStatus`].

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;

use super::args::{self, invalid, null};
use super::guard::{guard, last_error_ptr, CallError};
use super::model::{Loaded, TorchlessModel, TorchlessModelKind};
use super::status::{status_of, Phase, TorchlessStatus};
use crate::device::{parse_dtype, parse_quantize, DeviceSpec};
use crate::generator::GenerateOptions;
use crate::registry::LoadOptions;
use crate::sampling::{SamplerConfig, Sampling};

/// Texts embedded per forward pass inside one `torchless_embed` call.
const EMBED_BATCH: usize = 32;

/// What `torchless_model_info` reports. The strings belong to the model and stay valid until
/// `torchless_model_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TorchlessModelInfo {
    /// Which calls the model accepts.
    pub kind: TorchlessModelKind,
    /// The size of one output row: embedding size (encoder), number of classes (classifier),
    /// vocabulary size (generator), number of labels (text classifier), size of the shared
    /// embedding space (image-text embedder), number of outputs (program).
    pub output_dim: usize,
    /// The architecture from `config.json` (`model_type`, else the first `architectures` entry;
    /// `torch.export` for a program).
    pub architecture: *const c_char,
    /// The model folder's name (a program's file name).
    pub name: *const c_char,
}

/// Sampling settings for `torchless_generate`; start from `torchless_generate_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TorchlessGenerateOptions {
    /// The most new tokens to generate (> 0); generation also stops at end-of-sequence.
    pub max_new_tokens: u32,
    /// 0 for greedy decoding, else the softmax temperature (finite, > 0).
    pub temperature: f32,
    /// Keep the k most likely tokens before sampling; 0 keeps all.
    pub top_k: u32,
    /// Nucleus sampling mass in (0, 1]; 1 keeps all.
    pub top_p: f32,
    /// Seed of the sampler (same seed and inputs, same tokens).
    pub seed: u64,
}

/// Called by `torchless_generate` once per new token, on the calling thread, before the call
/// returns. Return 0 to continue, non-zero to stop generation (the call then returns OK with
/// the tokens so far). It must not unwind or longjmp, and must not free the model. May be NULL.
pub type TorchlessTokenCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, token_id: u32) -> c_int>;

/// Where generated tokens go: the caller's buffer and its callback.
pub(crate) struct TokenSink<'a> {
    out: Option<&'a mut [u32]>,
    len: usize,
    on_token: TorchlessTokenCallback,
    user_data: *mut c_void,
}

impl TokenSink<'_> {
    /// Records one token and reports it to the callback; false when the callback asks to stop.
    pub(crate) fn push(&mut self, token: u32) -> Result<bool, CallError> {
        if let Some(out) = self.out.as_deref_mut() {
            let slot = out.get_mut(self.len).ok_or_else(|| {
                CallError::new(
                    TorchlessStatus::BufferTooSmall,
                    "out_ids is full (out_capacity < max_new_tokens)",
                )
            })?;
            *slot = token;
        }
        self.len += 1;
        Ok(match self.on_token {
            // SAFETY: the caller of torchless_generate passed this callback and user_data for
            // the duration of the call, which is still running.
            Some(f) => (unsafe { f(self.user_data, token) }) == 0,
            None => true,
        })
    }
}

/// A checked prompt: ids, or text for the model's tokenizer.
enum Prompt<'a> {
    Ids(&'a [u32]),
    Text(&'a str),
}

pub(crate) fn model_ref<'a>(model: *const TorchlessModel) -> Result<&'a TorchlessModel, CallError> {
    // SAFETY: a non-NULL handle comes from torchless_model_load and, per the API contract, is
    // not freed while calls on it are running; the model is only used through `&`.
    unsafe { model.as_ref() }.ok_or_else(|| null("model"))
}

pub(crate) fn wrong_kind(model: &TorchlessModel, call: &str, wanted: &str) -> CallError {
    CallError::new(
        TorchlessStatus::WrongModelKind,
        format!(
            "{call}: this model is not {wanted} ({} `{}` is a {})",
            model.name.to_string_lossy(),
            model.architecture.to_string_lossy(),
            match model.model.kind() {
                TorchlessModelKind::Encoder => "sentence encoder: use torchless_embed",
                TorchlessModelKind::Classifier => "classifier: use torchless_classify",
                TorchlessModelKind::Generator => "generator: use torchless_generate",
                TorchlessModelKind::TextClassifier => {
                    "text classifier: use torchless_rerank or torchless_classify_text"
                }
                TorchlessModelKind::ImageTextEmbedder => {
                    "image-text embedder: use torchless_embed or torchless_embed_images"
                }
                TorchlessModelKind::Program => "torch.export program: use torchless_run",
            }
        ),
    )
}

pub(crate) fn run_error(e: crate::Error) -> CallError {
    CallError::new(status_of(&e, Phase::Run), e.to_string())
}

/// The library version, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn torchless_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the calling thread's last failed call, or NULL when its last call succeeded.
/// Valid until the next `torchless_*` call on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn torchless_last_error() -> *const c_char {
    last_error_ptr()
}

/// Loads a model folder (`config.json`, weights, tokenizer), a bare weights file (a ResNet
/// state_dict) or a `torch.export` program (a path ending in `.pt2`, run with `torchless_run`)
/// and writes its handle to `*out`. `device` is `cpu`, `cuda`, `cuda:N` or `auto` and `dtype`
/// `f32`, `f16` or `bf16` (a program keeps its own dtypes); NULL means `auto` and `f32`. On
/// error `*out` is set to NULL.
///
/// # Safety
/// `dir`, `device` and `dtype` are NULL or NUL-terminated strings; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn torchless_model_load(
    dir: *const c_char,
    device: *const c_char,
    dtype: *const c_char,
    out: *mut *mut TorchlessModel,
) -> TorchlessStatus {
    // SAFETY: the caller's guarantees are this function's, and NULL `quantize` means none.
    unsafe { torchless_model_load_quantized(dir, device, dtype, std::ptr::null(), out) }
}

/// `torchless_model_load` with a weight quantization: `quantize` is `int8` (every linear layer
/// of a decoder's blocks and its output projection in int8 at load, symmetric per output
/// channel; CPU only; the embedding, norms and biases keep `dtype`; docs/quantization.md) or
/// `none`; NULL means `none`. Any model that
/// does not generate text refuses `int8` with `TORCHLESS_INVALID_ARGUMENT`.
///
/// # Safety
/// `dir`, `device`, `dtype` and `quantize` are NULL or NUL-terminated strings; `out` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn torchless_model_load_quantized(
    dir: *const c_char,
    device: *const c_char,
    dtype: *const c_char,
    quantize: *const c_char,
    out: *mut *mut TorchlessModel,
) -> TorchlessStatus {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller guarantees NUL-terminated strings for the call.
        let (dir, device, dtype, quantize) = unsafe {
            (
                args::utf8(dir, "dir")?,
                args::utf8_or(device, "auto", "device")?,
                args::utf8_or(dtype, "f32", "dtype")?,
                args::utf8_or(quantize, "none", "quantize")?,
            )
        };
        let load = |e: crate::Error| CallError::new(status_of(&e, Phase::Load), e.to_string());
        let opts = LoadOptions {
            device: device.parse::<DeviceSpec>().map_err(load)?,
            dtype: parse_dtype(dtype).map_err(load)?,
            quantize: parse_quantize(quantize).map_err(load)?,
        };
        let model = TorchlessModel::load(Path::new(dir), &opts).map_err(load)?;
        // SAFETY: checked non-NULL above.
        unsafe { out.write(Box::into_raw(Box::new(model))) };
        Ok(())
    })
}

/// Frees a model. NULL is a no-op. No call on the model may be running or start afterwards.
/// Leaves the thread's last error message as it was.
///
/// # Safety
/// `model` is NULL or a handle from `torchless_model_load` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn torchless_model_free(model: *mut TorchlessModel) {
    if model.is_null() {
        return;
    }
    // A panic while dropping (none is known) must not unwind into C: it is swallowed, and
    // whatever the drop had not released yet is leaked.
    // AssertUnwindSafe: the model is gone either way; nothing observes it after a panic.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the handle came from Box::into_raw in torchless_model_load and is freed
        // once, with no call running on it (caller contract).
        drop(unsafe { Box::from_raw(model) });
    }));
}

/// Writes what the model is to `*out`.
///
/// # Safety
/// `model` is NULL or a live handle; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn torchless_model_info(
    model: *const TorchlessModel,
    out: *mut TorchlessModelInfo,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        let info = TorchlessModelInfo {
            kind: m.model.kind(),
            output_dim: m.model.output_dim(),
            architecture: m.architecture.as_ptr(),
            name: m.name.as_ptr(),
        };
        // SAFETY: the caller guarantees `out` is NULL or writable.
        unsafe { args::write(out, info, "out") }
    })
}

/// Embeds `n_texts` NUL-terminated UTF-8 texts into the caller's row-major `[n_texts][dim]`
/// buffer `out` of `out_capacity` floats, and writes the rows and dim. When the buffer is too
/// small it returns `TORCHLESS_STATUS_BUFFER_TOO_SMALL` with the needed rows and dim written and
/// runs nothing (`out` may be NULL with `out_capacity` 0 to ask for the size).
///
/// # Safety
/// `texts` is NULL or `n_texts` pointers to NUL-terminated strings; `out` is NULL or
/// `out_capacity` writable floats; `out_rows`, `out_dim` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn torchless_embed(
    model: *const TorchlessModel,
    texts: *const *const c_char,
    n_texts: usize,
    out: *mut f32,
    out_capacity: usize,
    out_rows: *mut usize,
    out_dim: *mut usize,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        check_sizes(out_rows, out_dim, "out_dim")?;
        // SAFETY: the caller guarantees `n_texts` pointers to NUL-terminated strings.
        let texts = unsafe { c_texts(texts, n_texts, "texts") }?;
        // SAFETY (both arms): out_rows, out_dim checked non-NULL; the caller guarantees the
        // buffers.
        match &m.model {
            Loaded::Encoder(enc) => unsafe {
                write_rows(
                    n_texts,
                    enc.dim(),
                    out,
                    out_capacity,
                    out_rows,
                    out_dim,
                    || enc.embed(&texts, EMBED_BATCH),
                )
            },
            Loaded::ImageText(clip) => unsafe {
                write_rows(
                    n_texts,
                    clip.dim(),
                    out,
                    out_capacity,
                    out_rows,
                    out_dim,
                    || clip.embed_texts(&texts),
                )
            },
            _ => Err(wrong_kind(
                m,
                "torchless_embed",
                "a sentence encoder or an image-text embedder",
            )),
        }
    })
}

/// Embeds a batch of images with an image-text embedder (CLIP) into the space
/// `torchless_embed` puts its texts in (L2-normalised, as `CLIPModel`'s `image_embeds`):
/// `input` is a contiguous NCHW f32 tensor `[batch][3][size][size]` preprocessed as the model's
/// `preprocessor_config.json` says (resize, centre crop, rescale, normalise), `size` being the
/// config's `image_size`. The embeddings go to the caller's row-major `[batch][dim]` buffer
/// `out` of `out_capacity` floats. Sizes and `TORCHLESS_STATUS_BUFFER_TOO_SMALL` work as in
/// `torchless_embed`. Returns `TORCHLESS_STATUS_WRONG_MODEL_KIND` for a model that is not an
/// image-text embedder.
///
/// # Safety
/// `input` is NULL or `batch * channels * height * width` readable floats; `out` is NULL or
/// `out_capacity` writable floats; `out_rows`, `out_dim` are NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchless_embed_images(
    model: *const TorchlessModel,
    input: *const f32,
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out: *mut f32,
    out_capacity: usize,
    out_rows: *mut usize,
    out_dim: *mut usize,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        check_sizes(out_rows, out_dim, "out_dim")?;
        let Loaded::ImageText(clip) = &m.model else {
            return Err(wrong_kind(
                m,
                "torchless_embed_images",
                "an image-text embedder",
            ));
        };
        let size = clip.image_size();
        if (channels, height, width) != (3, size, size) {
            return Err(invalid(format!(
                "images are {channels} × {height} × {width}: the model takes 3 × {size} × {size} \
                 (RGB, its config's image_size)"
            )));
        }
        if batch == 0 {
            return Err(invalid("empty batch: batch is 0"));
        }
        let numel = batch
            .checked_mul(3 * size * size)
            .ok_or_else(|| invalid("batch * channels * height * width overflows"))?;
        // SAFETY: the caller guarantees `numel` readable floats.
        let input = unsafe { args::slice(input, numel, "input") }?;
        // SAFETY: out_rows, out_dim checked non-NULL; the caller guarantees the buffers.
        unsafe {
            write_rows(
                batch,
                clip.dim(),
                out,
                out_capacity,
                out_rows,
                out_dim,
                || clip.embed_images(input, batch),
            )
        }
    })
}

/// Classifies a batch of images: `input` is a contiguous NCHW f32 tensor
/// `[batch][channels][height][width]`, preprocessed as the model was trained; the logits go to
/// the caller's row-major `[batch][classes]` buffer `out` of `out_capacity` floats. Sizes and
/// `TORCHLESS_STATUS_BUFFER_TOO_SMALL` work as in `torchless_embed`. Returns
/// `TORCHLESS_STATUS_WRONG_MODEL_KIND` for a model that is not a classifier.
///
/// # Safety
/// `input` is NULL or `batch * channels * height * width` readable floats; `out` is NULL or
/// `out_capacity` writable floats; `out_rows`, `out_classes` are NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchless_classify(
    model: *const TorchlessModel,
    input: *const f32,
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    out: *mut f32,
    out_capacity: usize,
    out_rows: *mut usize,
    out_classes: *mut usize,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        if out_rows.is_null() || out_classes.is_null() {
            return Err(null(if out_rows.is_null() {
                "out_rows"
            } else {
                "out_classes"
            }));
        }
        let numel = [batch, channels, height, width]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| invalid("batch * channels * height * width overflows"))?;
        if numel == 0 {
            return Err(invalid(format!(
                "empty input: shape [{batch}, {channels}, {height}, {width}]"
            )));
        }
        // SAFETY: the caller guarantees `numel` readable floats.
        let input = unsafe { args::slice(input, numel, "input") }?;
        match &m.model {
            Loaded::Classifier(c) => {
                if channels != 3 {
                    return Err(invalid(format!(
                        "{channels} channels: the model takes RGB images (3 channels)"
                    )));
                }
                let classes = c.num_classes();
                // SAFETY: checked non-NULL above; the caller guarantees they are writable.
                unsafe {
                    args::write(out_rows, batch, "out_rows")?;
                    args::write(out_classes, classes, "out_classes")?;
                }
                let needed = batch
                    .checked_mul(classes)
                    .ok_or_else(|| invalid("batch * classes overflows"))?;
                // SAFETY: the caller guarantees `out_capacity` writable floats at `out`.
                let out = unsafe { args::out_slice(out, out_capacity, needed, "out") }?;
                let rows = c
                    .classify_hw(input, batch, height, width)
                    .map_err(run_error)?;
                for (dst, row) in out.chunks_exact_mut(classes).zip(&rows) {
                    dst.copy_from_slice(row);
                }
                Ok(())
            }
            _ => Err(wrong_kind(m, "torchless_classify", "an image classifier")),
        }
    })
}

/// `n` NUL-terminated UTF-8 strings at `ptrs` (an empty batch, NULL array, NULL entry and
/// non-UTF-8 checked; the count is named `n_{what}`), borrowed.
///
/// # Safety
/// `ptrs` is NULL or `n` pointers, each NULL or a NUL-terminated string live for `'a`.
unsafe fn c_texts<'a>(
    ptrs: *const *const c_char,
    n: usize,
    what: &str,
) -> Result<Vec<&'a str>, CallError> {
    if n == 0 {
        return Err(invalid(format!("empty batch: n_{what} is 0")));
    }
    // SAFETY: the caller guarantees `n` readable pointers.
    let ptrs = unsafe { args::slice(ptrs, n, what) }?;
    ptrs.iter()
        .enumerate()
        // SAFETY: each pointer is NULL or a NUL-terminated string (caller contract).
        .map(|(i, &p)| unsafe { args::utf8(p, &format!("{what}[{i}]")) })
        .collect()
}

/// Shared tail of the calls that return rows of floats (`torchless_embed`,
/// `torchless_embed_images`, `torchless_rerank`, `torchless_classify_text`): writes `rows` and
/// `width` to the size out-parameters, checks the buffer (`TORCHLESS_STATUS_BUFFER_TOO_SMALL`
/// before running anything), then runs `f` and copies its rows into `out`.
///
/// # Safety
/// `out` is NULL or `out_capacity` writable floats; `out_rows`, `out_width` are non-NULL and
/// writable.
unsafe fn write_rows(
    rows: usize,
    width: usize,
    out: *mut f32,
    out_capacity: usize,
    out_rows: *mut usize,
    out_width: *mut usize,
    f: impl FnOnce() -> crate::Result<Vec<Vec<f32>>>,
) -> Result<(), CallError> {
    // SAFETY: checked non-NULL by the callers; the caller guarantees they are writable.
    unsafe {
        args::write(out_rows, rows, "out_rows")?;
        args::write(out_width, width, "out_width")?;
    }
    let needed = rows
        .checked_mul(width)
        .ok_or_else(|| invalid("rows * width overflows"))?;
    // SAFETY: the caller guarantees `out_capacity` writable floats at `out`.
    let out = unsafe { args::out_slice(out, out_capacity, needed, "out") }?;
    let result = f().map_err(run_error)?;
    for (dst, row) in out.chunks_exact_mut(width.max(1)).zip(&result) {
        dst.copy_from_slice(row);
    }
    Ok(())
}

/// The two size out-parameters of a row-returning call, checked non-NULL.
fn check_sizes(
    out_rows: *mut usize,
    out_width: *mut usize,
    width_name: &str,
) -> Result<(), CallError> {
    if out_rows.is_null() {
        return Err(null("out_rows"));
    }
    if out_width.is_null() {
        return Err(null(width_name));
    }
    Ok(())
}

/// Scores `n_documents` (query, document) pairs with a text-classifier model (a cross-encoder
/// reranker) as sentence-transformers' `CrossEncoder.predict` does: the logits with the
/// activation the folder declares applied (`activation_fn` in
/// `config_sentence_transformers.json` or `config.json`; by default a sigmoid for one label,
/// so scores in (0, 1), and none for several). Writes the caller's row-major
/// `[n_documents][num_labels]` buffer `out` of `out_capacity` floats, in document order, and
/// the rows and labels. Sizes and `TORCHLESS_STATUS_BUFFER_TOO_SMALL` work as in
/// `torchless_embed`; pairs longer than the model's limit are truncated longest-first.
/// Returns `TORCHLESS_STATUS_WRONG_MODEL_KIND` for a model that is not a text classifier.
///
/// # Safety
/// `query` is NULL or a NUL-terminated string; `documents` is NULL or `n_documents` pointers
/// to NUL-terminated strings; `out` is NULL or `out_capacity` writable floats; `out_rows`,
/// `out_labels` are NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchless_rerank(
    model: *const TorchlessModel,
    query: *const c_char,
    documents: *const *const c_char,
    n_documents: usize,
    out: *mut f32,
    out_capacity: usize,
    out_rows: *mut usize,
    out_labels: *mut usize,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        check_sizes(out_rows, out_labels, "out_labels")?;
        // SAFETY: the caller guarantees a NUL-terminated string.
        let query = unsafe { args::utf8(query, "query") }?;
        // SAFETY: the caller guarantees `n_documents` pointers to NUL-terminated strings.
        let documents = unsafe { c_texts(documents, n_documents, "documents") }?;
        match &m.model {
            Loaded::TextClassifier(c) => {
                let pairs: Vec<(&str, &str)> = documents.iter().map(|&d| (query, d)).collect();
                // SAFETY: out_rows, out_labels checked non-NULL; the caller guarantees the
                // buffers.
                unsafe {
                    write_rows(
                        n_documents,
                        c.num_labels(),
                        out,
                        out_capacity,
                        out_rows,
                        out_labels,
                        || c.score_pairs(&pairs),
                    )
                }
            }
            _ => Err(wrong_kind(m, "torchless_rerank", "a text classifier")),
        }
    })
}

/// Classifies `n_texts` NUL-terminated UTF-8 texts with a text-classifier model: the raw
/// logits (no activation; apply a softmax for probabilities) go to the caller's row-major
/// `[n_texts][num_labels]` buffer `out` of `out_capacity` floats, in input order;
/// `torchless_model_label` names the columns. Sizes and `TORCHLESS_STATUS_BUFFER_TOO_SMALL`
/// work as in `torchless_embed`. Returns `TORCHLESS_STATUS_WRONG_MODEL_KIND` for a model that
/// is not a text classifier.
///
/// # Safety
/// `texts` is NULL or `n_texts` pointers to NUL-terminated strings; `out` is NULL or
/// `out_capacity` writable floats; `out_rows`, `out_labels` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn torchless_classify_text(
    model: *const TorchlessModel,
    texts: *const *const c_char,
    n_texts: usize,
    out: *mut f32,
    out_capacity: usize,
    out_rows: *mut usize,
    out_labels: *mut usize,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        check_sizes(out_rows, out_labels, "out_labels")?;
        // SAFETY: the caller guarantees `n_texts` pointers to NUL-terminated strings.
        let texts = unsafe { c_texts(texts, n_texts, "texts") }?;
        match &m.model {
            // SAFETY: out_rows, out_labels checked non-NULL; the caller guarantees the buffers.
            Loaded::TextClassifier(c) => unsafe {
                write_rows(
                    n_texts,
                    c.num_labels(),
                    out,
                    out_capacity,
                    out_rows,
                    out_labels,
                    || c.logits(&texts),
                )
            },
            _ => Err(wrong_kind(
                m,
                "torchless_classify_text",
                "a text classifier",
            )),
        }
    })
}

/// The name of label `index` of a text-classifier model (`config.json`'s `id2label`,
/// `LABEL_<index>` where it has none) or of an image classifier that names its classes (ViT's
/// `id2label`): a NUL-terminated string owned by the model, valid until
/// `torchless_model_free`. NULL, with the thread's error message set, for a NULL model, an
/// index out of range, or a model with no labels (an encoder, a generator, a ResNet state_dict).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn torchless_model_label(
    model: *const TorchlessModel,
    index: usize,
) -> *const c_char {
    let mut label = std::ptr::null();
    guard(|| {
        let m = model_ref(model)?;
        if !matches!(m.model, Loaded::TextClassifier(_) | Loaded::Classifier(_)) {
            return Err(wrong_kind(
                m,
                "torchless_model_label",
                "a text classifier or an image classifier",
            ));
        }
        let l = m.labels.get(index).ok_or_else(|| {
            invalid(format!(
                "label index {index} is out of range (the model has {} labels)",
                m.labels.len()
            ))
        })?;
        label = l.as_ptr();
        Ok(())
    });
    label
}

/// The default generation settings: greedy, at most 32 new tokens, seed 0.
#[no_mangle]
pub extern "C" fn torchless_generate_options_default() -> TorchlessGenerateOptions {
    TorchlessGenerateOptions {
        max_new_tokens: 32,
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        seed: 0,
    }
}

fn check_options(o: &TorchlessGenerateOptions) -> Result<(), CallError> {
    if o.max_new_tokens == 0 {
        return Err(invalid("max_new_tokens is 0"));
    }
    if !(o.temperature.is_finite() && o.temperature >= 0.0) {
        return Err(invalid(format!(
            "temperature {} is not a finite value >= 0",
            o.temperature
        )));
    }
    if !(o.top_p > 0.0 && o.top_p <= 1.0) {
        return Err(invalid(format!("top_p {} is not in (0, 1]", o.top_p)));
    }
    Ok(())
}

/// The runtime's options for C options already checked by `check_options`: temperature 0 is
/// greedy decoding; otherwise sampling with `top_k` (0: off) and `top_p` (1: off), seeded.
fn generate_options(o: &TorchlessGenerateOptions) -> GenerateOptions {
    let sampling = if o.temperature == 0.0 {
        Sampling::Greedy
    } else {
        Sampling::Sample {
            temperature: o.temperature,
            top_k: (o.top_k > 0).then_some(o.top_k as usize),
            top_p: (o.top_p < 1.0).then_some(o.top_p),
            seed: o.seed,
        }
    };
    GenerateOptions {
        max_new_tokens: o.max_new_tokens as usize,
        sampler: SamplerConfig {
            sampling,
            repetition_penalty: 1.0,
        },
        stop_at_eos: true,
    }
}

/// Generates up to `options->max_new_tokens` new tokens after a prompt given either as token
/// ids (`prompt_ids`, `n_prompt` > 0, `prompt_text` NULL) or as UTF-8 text (`prompt_text`,
/// tokenized with the model's tokenizer; `prompt_ids` NULL). The new ids go to `out_ids` (NULL,
/// or at least `max_new_tokens` elements) and their count to `*out_len`; `on_token` (may be
/// NULL) sees each token as it is produced and stops generation by returning non-zero.
/// `options` NULL means `torchless_generate_options_default()`. Returns
/// `TORCHLESS_STATUS_WRONG_MODEL_KIND` for a model that is not a generator.
///
/// # Safety
/// `prompt_ids` is NULL or `n_prompt` readable ids; `prompt_text` is NULL or NUL-terminated;
/// `options` NULL or readable; `out_ids` NULL or `out_capacity` writable ids; `out_len` NULL or
/// writable; `on_token` is called with `user_data` only during this call.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn torchless_generate(
    model: *const TorchlessModel,
    prompt_ids: *const u32,
    n_prompt: usize,
    prompt_text: *const c_char,
    options: *const TorchlessGenerateOptions,
    out_ids: *mut u32,
    out_capacity: usize,
    out_len: *mut usize,
    on_token: TorchlessTokenCallback,
    user_data: *mut c_void,
) -> TorchlessStatus {
    guard(|| {
        let m = model_ref(model)?;
        // SAFETY: the caller guarantees `out_len` is NULL or writable.
        unsafe { args::write(out_len, 0, "out_len") }?;
        // SAFETY: the caller guarantees `options` is NULL or readable.
        let opts = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| torchless_generate_options_default());
        check_options(&opts)?;
        let prompt = match (prompt_ids.is_null(), prompt_text.is_null()) {
            (false, true) if n_prompt > 0 => {
                // SAFETY: the caller guarantees `n_prompt` readable ids.
                Prompt::Ids(unsafe { args::slice(prompt_ids, n_prompt, "prompt_ids") }?)
            }
            (false, true) => return Err(invalid("empty prompt: n_prompt is 0")),
            // SAFETY: the caller guarantees a NUL-terminated string.
            (true, false) => Prompt::Text(unsafe { args::utf8(prompt_text, "prompt_text") }?),
            (true, true) => return Err(null("prompt_ids and prompt_text")),
            (false, false) => {
                return Err(invalid("give prompt_ids or prompt_text, not both"));
            }
        };
        let out = if out_ids.is_null() {
            None
        } else {
            let n = opts.max_new_tokens as usize;
            // SAFETY: the caller guarantees `out_capacity` writable ids.
            Some(unsafe { args::out_slice(out_ids, out_capacity, n, "out_ids") }?)
        };
        let mut sink = TokenSink {
            out,
            len: 0,
            on_token,
            user_data,
        };
        match &m.model {
            Loaded::Generator(g) => {
                let ids = match prompt {
                    Prompt::Ids(ids) => ids.to_vec(),
                    Prompt::Text(text) => g.encode(text).map_err(run_error)?,
                };
                let gen_opts = generate_options(&opts);
                let mut failed = None;
                let result = g.generate(&ids, &gen_opts, |id| match sink.push(id) {
                    Ok(go_on) => go_on,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                });
                // SAFETY: the caller guarantees `out_len` is NULL or writable.
                unsafe { args::write(out_len, sink.len, "out_len") }?;
                if let Some(e) = failed {
                    return Err(e);
                }
                result.map(|_| ()).map_err(run_error)
            }
            _ => Err(wrong_kind(m, "torchless_generate", "a text generator")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts calls in `*user_data` and asks to stop at the third token.
    unsafe extern "C" fn stop_at_third(user_data: *mut c_void, _token: u32) -> c_int {
        // SAFETY: the test passes a live `usize` as user_data.
        let n = unsafe { &mut *user_data.cast::<usize>() };
        *n += 1;
        c_int::from(*n == 3)
    }

    #[test]
    fn token_sink_fills_the_buffer_and_stops_when_the_callback_says() {
        let mut ids = [0u32; 4];
        let mut calls = 0usize;
        let mut sink = TokenSink {
            out: Some(&mut ids),
            len: 0,
            on_token: Some(stop_at_third),
            user_data: (&mut calls as *mut usize).cast(),
        };
        assert!(sink.push(7).unwrap());
        assert!(sink.push(8).unwrap());
        assert!(!sink.push(9).unwrap(), "non-zero from the callback stops");
        assert!(sink.push(10).unwrap());
        let e = sink.push(11).unwrap_err();
        assert_eq!(e.status, TorchlessStatus::BufferTooSmall);
        assert_eq!(sink.len, 4);
        assert_eq!((ids, calls), ([7, 8, 9, 10], 4));
    }
}
