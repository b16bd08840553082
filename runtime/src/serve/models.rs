//! The served models: each `--model NAME=PATH` is resolved through the [`registry`] at start
//! (so a wrong folder fails before the port is bound), then loaded in the background; `/ready`
//! answers 200 once every one is loaded. Each loaded model owns its queue: a [`Batcher`] for
//! encoders and classifiers, a [`GenerationQueue`] for decoders.
//!
//! [`registry`]: crate::registry

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::batching::{BatchLimits, GenerationQueue};
use crate::registry::{self, AnyModel, LoadOptions, Task};
use crate::{Classifier, SentenceEncoder, TextClassifier};

use super::batcher::{Batcher, RunBatch};
use super::config::{Limits, ServeConfig};
use super::error::{ApiError, ServeError};
use super::metrics::{Metrics, ModelGauges};

/// One input of a sequence classifier: a text, or a (query, document) pair.
pub enum TextInput {
    /// A single text (`/v1/classify`).
    Single(String),
    /// A pair scored as a cross-encoder does (`/rerank`).
    Pair(String, String),
}

/// One preprocessed image, CHW f32.
pub struct ImageInput {
    /// `3 × height × width` values.
    pub data: Vec<f32>,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

/// A loaded model and its queue.
pub enum Served {
    /// A sentence encoder: `/v1/embeddings`, `/embed`.
    Embed {
        /// The model.
        model: Arc<SentenceEncoder>,
        /// Its queue.
        batcher: Batcher<String, Vec<f32>>,
        /// Whether its pipeline ends with sentence-transformers' `Normalize`.
        normalizes: bool,
    },
    /// A sequence classifier: `/rerank`, `/v1/classify` with texts.
    Text {
        /// The model.
        model: Arc<TextClassifier>,
        /// Its queue; rows are logits for single texts, activated scores for pairs.
        batcher: Batcher<TextInput, Vec<f32>>,
    },
    /// An image classifier: `/v1/classify` with images.
    Image {
        /// The model.
        model: Arc<Classifier>,
        /// Its queue; rows are logits.
        batcher: Batcher<ImageInput, Vec<f32>>,
    },
    /// A `torch.export` program: `/v1/run`. Calls run on blocking threads, at most
    /// `--max-batch-size` at once; up to `--max-queue` more wait, past that 429.
    Program {
        /// The program.
        program: Arc<crate::Program>,
        /// Permits to run or wait (`max_batch_size + max_queue`).
        admitted: Arc<tokio::sync::Semaphore>,
        /// Permits to run (`max_batch_size`).
        running: Arc<tokio::sync::Semaphore>,
        /// `max_batch_size + max_queue`.
        capacity: usize,
    },
    /// A decoder: `/v1/completions`, `/v1/chat/completions`.
    Generate {
        /// The queue, which holds the generator.
        queue: Arc<GenerationQueue>,
        /// The folder (for its chat template).
        dir: PathBuf,
    },
}

impl Served {
    fn queue_depth(&self) -> usize {
        match self {
            Served::Embed { batcher, .. } => batcher.depth(),
            Served::Text { batcher, .. } => batcher.depth(),
            Served::Image { batcher, .. } => batcher.depth(),
            Served::Program {
                admitted, capacity, ..
            } => capacity.saturating_sub(admitted.available_permits()),
            Served::Generate { queue, .. } => queue.waiting(),
        }
    }

    fn batch_metrics(&self) -> Option<&super::metrics::BatchMetrics> {
        match self {
            Served::Embed { batcher, .. } => Some(&batcher.metrics),
            Served::Text { batcher, .. } => Some(&batcher.metrics),
            Served::Image { batcher, .. } => Some(&batcher.metrics),
            Served::Program { .. } | Served::Generate { .. } => None,
        }
    }
}

/// A model slot: known from the start, loaded later.
pub struct ModelSlot {
    /// Its name.
    pub name: String,
    /// Its path (never shown to clients).
    pub path: PathBuf,
    /// What it does, from the registry.
    pub task: Task,
    /// The model once loaded.
    pub loaded: OnceLock<Served>,
}

/// What every handler shares.
pub struct AppState {
    /// The models by name.
    pub models: BTreeMap<String, Arc<ModelSlot>>,
    /// The limits.
    pub limits: Limits,
    /// The bearer token, when required.
    pub api_key: Option<String>,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// Set once SIGTERM/SIGINT arrived.
    pub draining: AtomicBool,
    /// When the server started (`created` of `/v1/models`).
    pub started: u64,
}

impl AppState {
    /// Resolves every model's task (reading only its config.json); nothing is loaded yet.
    pub fn new(config: &ServeConfig) -> Result<AppState, ServeError> {
        if config.models.is_empty() {
            return Err(ServeError::NoModels);
        }
        let mut models = BTreeMap::new();
        for spec in &config.models {
            let task = if registry::is_program(&spec.path) {
                Task::Run
            } else {
                registry::resolve(&spec.path)
                    .map_err(|cause| ServeError::Model {
                        name: spec.name.clone(),
                        path: spec.path.display().to_string(),
                        cause: Box::new(cause),
                    })?
                    .family
                    .task
            };
            if task == Task::ImageTextEmbed {
                return Err(ServeError::Unsupported {
                    name: spec.name.clone(),
                    reason: "CLIP (image-text) models are not served over HTTP yet; use \
                             `torchless embed`"
                        .into(),
                });
            }
            let slot = ModelSlot {
                name: spec.name.clone(),
                path: spec.path.clone(),
                task,
                loaded: OnceLock::new(),
            };
            if models.insert(spec.name.clone(), Arc::new(slot)).is_some() {
                return Err(ServeError::DuplicateName(spec.name.clone()));
            }
        }
        if let Some(q) = config.load.quantize {
            if !models.values().any(|m| m.task == Task::Generate) {
                return Err(ServeError::Unsupported {
                    name: "--quantize".into(),
                    reason: format!(
                        "--quantize {} quantizes text-generation models, and none of the \
                         --model's generates text",
                        q.name()
                    ),
                });
            }
        }
        Ok(AppState {
            models,
            limits: config.limits,
            api_key: config.api_key.clone(),
            metrics: Metrics::default(),
            draining: AtomicBool::new(false),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
    }

    /// Whether every model is loaded.
    pub fn ready(&self) -> bool {
        self.models.values().all(|m| m.loaded.get().is_some())
    }

    /// The model `name`, loaded: 404 when unknown, 503 while loading.
    pub fn model(&self, name: &str) -> Result<(&ModelSlot, &Served), ApiError> {
        let slot = self.models.get(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "model {:?} is not served (served: {})",
                name.chars().take(100).collect::<String>(),
                self.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        match slot.loaded.get() {
            Some(s) => Ok((slot, s)),
            None => Err(ApiError::unavailable(format!(
                "model {name:?} is still loading"
            ))),
        }
    }

    /// Queue depth and batches per model, for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let gauges: Vec<ModelGauges<'_>> = self
            .models
            .values()
            .map(|m| ModelGauges {
                name: &m.name,
                queue_depth: m.loaded.get().map_or(0, Served::queue_depth),
                batches: m.loaded.get().and_then(Served::batch_metrics),
            })
            .collect();
        self.metrics.render(&gauges)
    }

    /// Whether the server is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Loads `slot` (on a blocking thread) and starts its queue on the current runtime.
pub async fn load(
    slot: Arc<ModelSlot>,
    opts: LoadOptions,
    limits: Limits,
) -> Result<(), ServeError> {
    let path = slot.path.clone();
    let task = slot.task;
    let err = |cause: crate::Error| ServeError::Model {
        name: slot.name.clone(),
        path: slot.path.display().to_string(),
        cause: Box::new(cause),
    };
    let clip_refused = || crate::Error::Option("CLIP models are not served over HTTP".into());
    let loaded = tokio::task::spawn_blocking(move || -> crate::Result<(AnyModel, bool)> {
        // `AppState::new` refuses them already; nothing is loaded for them here either.
        if task == Task::ImageTextEmbed {
            return Err(clip_refused());
        }
        // `--quantize` is for the decoders; the other models load as they are.
        let opts = if task == Task::Generate {
            opts
        } else {
            LoadOptions {
                quantize: None,
                ..opts
            }
        };
        let model = AnyModel::load(&path, task, &opts)?;
        // Whether the folder's pipeline ends with `Normalize` (`/embed`'s `normalize`).
        let normalizes = match &model {
            AnyModel::Encoder(_) => crate::pipeline(&path)?.normalize,
            _ => false,
        };
        Ok((model, normalizes))
    })
    .await
    .map_err(|e| err(crate::Error::Option(format!("loading panicked: {e}"))))?
    .map_err(err)?;
    let served = match loaded {
        (AnyModel::Encoder(m), normalizes) => {
            let model = Arc::new(m);
            let m2 = Arc::clone(&model);
            let run: RunBatch<String, Vec<f32>> = Arc::new(move |texts: Vec<String>| {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                m2.embed(&refs, refs.len())
            });
            Served::Embed {
                batcher: Batcher::start(&slot.name, limits, run),
                model,
                normalizes,
            }
        }
        (AnyModel::TextClassifier(m), _) => {
            let model = Arc::new(m);
            let m2 = Arc::clone(&model);
            let run: RunBatch<TextInput, Vec<f32>> =
                Arc::new(move |inputs: Vec<TextInput>| run_text(&m2, &inputs));
            Served::Text {
                batcher: Batcher::start(&slot.name, limits, run),
                model,
            }
        }
        (AnyModel::Classifier(m), _) => {
            let model = Arc::new(m);
            let m2 = Arc::clone(&model);
            let run: RunBatch<ImageInput, Vec<f32>> =
                Arc::new(move |inputs: Vec<ImageInput>| run_images(&m2, &inputs));
            Served::Image {
                batcher: Batcher::start(&slot.name, limits, run),
                model,
            }
        }
        (AnyModel::ImageText(_), _) => return Err(err(clip_refused())),
        (AnyModel::Program(p), _) => Served::Program {
            program: Arc::new(p),
            admitted: Arc::new(tokio::sync::Semaphore::new(
                limits.max_batch_size.max(1) + limits.max_queue,
            )),
            running: Arc::new(tokio::sync::Semaphore::new(limits.max_batch_size.max(1))),
            capacity: limits.max_batch_size.max(1) + limits.max_queue,
        },
        (AnyModel::Generator(g), _) => Served::Generate {
            queue: Arc::new(GenerationQueue::new(
                Arc::new(g),
                BatchLimits {
                    max_batch_size: limits.max_batch_size,
                    max_queue: limits.max_queue,
                },
            )),
            dir: slot.path.clone(),
        },
    };
    let _ = slot.loaded.set(served);
    Ok(())
}

/// Single texts (logits) and pairs (activated scores) of one batch, each kind in one pass.
fn run_text(model: &TextClassifier, inputs: &[TextInput]) -> crate::Result<Vec<Vec<f32>>> {
    let singles: Vec<&str> = inputs
        .iter()
        .filter_map(|i| match i {
            TextInput::Single(t) => Some(t.as_str()),
            TextInput::Pair(..) => None,
        })
        .collect();
    let pairs: Vec<(&str, &str)> = inputs
        .iter()
        .filter_map(|i| match i {
            TextInput::Pair(q, d) => Some((q.as_str(), d.as_str())),
            TextInput::Single(_) => None,
        })
        .collect();
    let mut single_rows = model.logits(&singles)?.into_iter();
    let mut pair_rows = model.score_pairs(&pairs)?.into_iter();
    Ok(inputs
        .iter()
        .filter_map(|i| match i {
            TextInput::Single(_) => single_rows.next(),
            TextInput::Pair(..) => pair_rows.next(),
        })
        .collect())
}

/// Images of one batch: consecutive images of one size go through the model together.
fn run_images(model: &Classifier, inputs: &[ImageInput]) -> crate::Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(inputs.len());
    let mut start = 0;
    while start < inputs.len() {
        let (h, w) = (inputs[start].height, inputs[start].width);
        let end = inputs[start..]
            .iter()
            .position(|i| (i.height, i.width) != (h, w))
            .map_or(inputs.len(), |n| start + n);
        let data: Vec<f32> = inputs[start..end]
            .iter()
            .flat_map(|i| i.data.iter().copied())
            .collect();
        out.extend(model.classify_hw(&data, end - start, h, w)?);
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::serve::config::ModelSpec;
    use crate::DeviceSpec;

    /// A configuration of committed fixtures, on CPU, ports 0.
    pub(crate) fn config(models: &[(&str, &str)]) -> ServeConfig {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        ServeConfig {
            models: models
                .iter()
                .map(|(name, rel)| ModelSpec {
                    name: name.to_string(),
                    path: root.join(rel),
                })
                .collect(),
            load: LoadOptions {
                device: DeviceSpec::Cpu,
                ..LoadOptions::default()
            },
            addr: ([127, 0, 0, 1], 0).into(),
            grpc_addr: None,
            api_key: None,
            limits: Limits::default(),
        }
    }

    #[tokio::test]
    async fn models_answer_503_until_loaded_and_unknown_ones_404() {
        let state =
            AppState::new(&config(&[("m", "bert/tiny-st"), ("g", "decoders/gpt2")])).unwrap();
        assert!(!state.ready());
        assert_eq!(state.model("m").err().unwrap().status.as_u16(), 503);
        assert_eq!(state.model("nope").err().unwrap().status.as_u16(), 404);
        assert_eq!(state.models["m"].task, Task::Embed);
        assert_eq!(state.models["g"].task, Task::Generate);
        for slot in state.models.values() {
            load(Arc::clone(slot), config(&[]).load, state.limits)
                .await
                .unwrap();
        }
        assert!(state.ready());
        assert!(matches!(state.model("m").unwrap().1, Served::Embed { .. }));
    }

    #[test]
    fn configurations_that_cannot_serve_are_refused_by_name() {
        assert!(matches!(
            AppState::new(&config(&[])),
            Err(ServeError::NoModels)
        ));
        let twice = AppState::new(&config(&[("m", "bert/tiny-st"), ("m", "vit")]));
        assert!(matches!(twice, Err(ServeError::DuplicateName(n)) if n == "m"));
        let clip = AppState::new(&config(&[("c", "clip")]));
        assert!(matches!(clip, Err(ServeError::Unsupported { .. })));
        let missing = AppState::new(&config(&[("x", "no/such/folder")]));
        assert!(matches!(missing, Err(ServeError::Model { name, .. }) if name == "x"));
    }
}
