//! The model registry: one table ([`FAMILIES`]) from what a model is — `config.json`'s
//! `model_type` (or, without one, its `architectures`), or for a bare state_dict file its key
//! layout — to the family that loads it and the task it serves. [`SentenceEncoder`],
//! [`TextGenerator`], [`Classifier`], the C ABI and the CLI all resolve models here, so a new
//! family is one model file (exporting `MODEL_TYPES` and a loader) plus one line in the table
//! (docs/adding-a-model.md).
//!
//! [`SentenceEncoder`]: crate::SentenceEncoder
//! [`TextGenerator`]: crate::TextGenerator
//! [`Classifier`]: crate::Classifier

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use torchless_models::{
    bert, clip, distilbert, gemma, gpt2, llama, modernbert, phi3, roberta, vit, CausalLm,
    ClassifierLoader, ClipLoader, DecoderLoader, EncoderLoader, ImageClassifier, ImageLoader,
    LoadContext, LoadError, Quantize, SequenceClassifier, TextEncoder,
};

use crate::device::DeviceSpec;
use crate::error::{shown, Error, Result};
use crate::folder::{self, read_json};
use crate::weights::Weights;

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where to run.
    pub device: DeviceSpec,
    /// Weights and activations dtype (default f32).
    pub dtype: DType,
    /// Quantize a decoder's weights at load (`--quantize int8`, CPU only; default none).
    /// Only text generation ([`Task::Generate`]) takes it: any other model is an error.
    pub quantize: Option<Quantize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: DeviceSpec::Auto,
            dtype: DType::F32,
            quantize: None,
        }
    }
}

impl LoadOptions {
    /// Refuses [`LoadOptions::quantize`] for a model that is not a text generator (`what`
    /// names it: "an encoder", "a ResNet state_dict", ...).
    pub(crate) fn refuse_quantize(&self, what: &str) -> Result<()> {
        match self.quantize {
            Some(q) => Err(Error::Option(format!(
                "--quantize {} applies to text-generation models (decoders) only, not to {what}",
                q.name()
            ))),
            None => Ok(()),
        }
    }
}

/// What a model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Sentence embeddings (`torchless embed`).
    Embed,
    /// Text generation with a causal language model (`torchless generate`).
    Generate,
    /// Image classification (`torchless classify`).
    Classify,
    /// Sequence classification with a `*ForSequenceClassification` head: cross-encoder
    /// reranking (`torchless rerank`) and text classification (`torchless classify --text`).
    /// Selected by `config.json`'s `architectures`, so a `BertModel` folder stays [`Task::Embed`].
    SequenceClassify,
    /// CLIP image and text embeddings in one space (`torchless embed --image` / `--text`): a
    /// separate task from [`Task::Embed`] because a `CLIPModel` takes pixels as well as text.
    ImageTextEmbed,
    /// A `torch.export` program (a `.pt2` file, see [`is_program`]): typed tensors in and out
    /// (`torchless run`).
    Run,
}

/// Whether `path` names a `torch.export` program (a `.pt2` file) rather than a model folder
/// or checkpoint of the registry's families.
pub fn is_program(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pt2"))
}

impl Task {
    /// Every task, in the order messages list them.
    pub const ALL: [Task; 6] = [
        Task::Embed,
        Task::Generate,
        Task::Classify,
        Task::SequenceClassify,
        Task::ImageTextEmbed,
        Task::Run,
    ];

    /// What a model of this task is (`a sentence encoder`).
    pub fn describe(self) -> &'static str {
        match self {
            Task::Embed => "a sentence encoder",
            Task::Generate => "a text generator",
            Task::Classify => "an image classifier",
            Task::SequenceClassify => {
                "a sequence classifier (cross-encoder reranker or text classifier)"
            }
            Task::ImageTextEmbed => "an image-text embedder (CLIP)",
            Task::Run => "a torch.export program",
        }
    }

    /// The CLI command that runs it.
    pub fn command(self) -> &'static str {
        match self {
            Task::Embed => "embed",
            Task::Generate => "generate",
            Task::Classify => "classify",
            Task::SequenceClassify => "rerank",
            Task::ImageTextEmbed => "embed",
            Task::Run => "run",
        }
    }

    /// How to run it, for messages: `` `torchless embed` ``.
    pub fn usage(self) -> &'static str {
        match self {
            Task::Embed => "`torchless embed`",
            Task::Generate => "`torchless generate`",
            Task::Classify => "`torchless classify`",
            Task::SequenceClassify => "`torchless rerank` or `torchless classify --text`",
            Task::ImageTextEmbed => "`torchless embed --image` or `torchless embed --text`",
            Task::Run => "`torchless run`",
        }
    }
}

/// How a family is loaded.
#[derive(Clone, Copy)]
pub enum Loader {
    /// A text encoder from a model folder.
    Encoder(EncoderLoader),
    /// A causal language model from a model folder.
    Decoder(DecoderLoader),
    /// A `*ForSequenceClassification` model (encoder + head) from a model folder.
    SequenceClassifier(ClassifierLoader),
    /// A torchvision ResNet from a bare `state_dict` file, its depth read from the key layout
    /// ([`Classifier::load_detected`](crate::Classifier::load_detected)).
    ResNet,
    /// An image classifier from a model folder (`config.json` + weights).
    Image(ImageLoader),
    /// A CLIP model (both towers and their projections) from a model folder.
    Clip(ClipLoader),
}

/// One family: the `model_type`s it answers to, the task it serves and its loader.
pub struct Family {
    /// The family's name (`bert`, `llama`).
    pub name: &'static str,
    /// The task it serves.
    pub task: Task,
    /// `config.json` `model_type`s it loads.
    pub model_types: &'static [&'static str],
    /// Prefixes of `architectures` entries that identify it: alone when `model_type` is absent,
    /// and among the families sharing a `model_type` the longest matching prefix wins
    /// (`BertForSequenceClassification` → `bert-cls`, `BertModel` → `bert`).
    pub architectures: &'static [&'static str],
    /// How it is loaded.
    pub loader: Loader,
}

/// Every family torchless runs. Adding one is a model file and a line here.
pub static FAMILIES: &[Family] = &[
    Family {
        name: "bert",
        task: Task::Embed,
        model_types: bert::MODEL_TYPES,
        architectures: &["Bert"],
        loader: Loader::Encoder(bert::load_encoder),
    },
    Family {
        name: "roberta",
        task: Task::Embed,
        model_types: roberta::MODEL_TYPES,
        architectures: &["Roberta", "XLMRoberta"],
        loader: Loader::Encoder(roberta::load_encoder),
    },
    Family {
        name: "distilbert",
        task: Task::Embed,
        model_types: distilbert::MODEL_TYPES,
        architectures: &["DistilBert"],
        loader: Loader::Encoder(distilbert::load_encoder),
    },
    Family {
        name: "modernbert",
        task: Task::Embed,
        model_types: modernbert::MODEL_TYPES,
        architectures: &["ModernBert"],
        loader: Loader::Encoder(modernbert::load_encoder),
    },
    Family {
        name: "gpt2",
        task: Task::Generate,
        model_types: gpt2::MODEL_TYPES,
        architectures: &["GPT2"],
        loader: Loader::Decoder(gpt2::load_decoder),
    },
    Family {
        name: "llama",
        task: Task::Generate,
        model_types: llama::MODEL_TYPES,
        architectures: &["Llama", "Mistral", "Qwen2", "Qwen3"],
        loader: Loader::Decoder(llama::load_decoder),
    },
    Family {
        name: "phi3",
        task: Task::Generate,
        model_types: phi3::MODEL_TYPES,
        architectures: &["Phi3For", "Phi3Model"],
        loader: Loader::Decoder(phi3::load_decoder),
    },
    Family {
        name: "gemma",
        task: Task::Generate,
        model_types: gemma::MODEL_TYPES,
        architectures: &["Gemma2", "Gemma3ForCausalLM"],
        loader: Loader::Decoder(gemma::load_decoder),
    },
    Family {
        name: "resnet",
        task: Task::Classify,
        model_types: &["resnet"],
        architectures: &[],
        loader: Loader::ResNet,
    },
    Family {
        name: "vit",
        task: Task::Classify,
        model_types: vit::MODEL_TYPES,
        architectures: &["ViTForImageClassification"],
        loader: Loader::Image(vit::load_image_classifier),
    },
    Family {
        name: "clip",
        task: Task::ImageTextEmbed,
        model_types: clip::MODEL_TYPES,
        architectures: &["CLIPModel"],
        loader: Loader::Clip(clip::load_clip),
    },
    // `*ForSequenceClassification` heads: the same model_types as their encoders, told apart
    // by `architectures` (see `resolve`).
    Family {
        name: "bert-cls",
        task: Task::SequenceClassify,
        model_types: bert::MODEL_TYPES,
        architectures: &["BertForSequenceClassification"],
        loader: Loader::SequenceClassifier(bert::load_sequence_classifier),
    },
    Family {
        name: "roberta-cls",
        task: Task::SequenceClassify,
        model_types: roberta::MODEL_TYPES,
        architectures: &[
            "RobertaForSequenceClassification",
            "XLMRobertaForSequenceClassification",
        ],
        loader: Loader::SequenceClassifier(roberta::load_sequence_classifier),
    },
    Family {
        name: "modernbert-cls",
        task: Task::SequenceClassify,
        model_types: modernbert::MODEL_TYPES,
        architectures: &["ModernBertForSequenceClassification"],
        loader: Loader::SequenceClassifier(modernbert::load_sequence_classifier),
    },
];

/// The `model_type`s of every family serving `task`.
pub fn model_types(task: Task) -> Vec<&'static str> {
    FAMILIES
        .iter()
        .filter(|f| f.task == task)
        .flat_map(|f| f.model_types.iter().copied())
        .collect()
}

/// What a model path holds, as the table resolves it.
#[derive(Clone, Copy)]
pub struct Resolved {
    /// The family.
    pub family: &'static Family,
    /// The `model_type` that selected it (`resnet` for a bare state_dict file).
    pub model_type: &'static str,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("family", &self.family.name)
            .field("task", &self.family.task)
            .field("model_type", &self.model_type)
            .finish()
    }
}

/// What a task runs, for messages.
fn task_models(task: Task) -> String {
    match task {
        Task::Classify => format!(
            "torchvision ResNet state_dict files, {} folders",
            FAMILIES
                .iter()
                .filter(|f| matches!(f.loader, Loader::Image(_)))
                .flat_map(|f| f.model_types.iter().copied())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Task::SequenceClassify => format!(
            "{} folders whose architectures are *ForSequenceClassification",
            model_types(task).join(", ")
        ),
        _ => model_types(task).join(", "),
    }
}

/// Every supported `model_type`, per task, for messages.
fn supported() -> String {
    Task::ALL
        .iter()
        .map(|&t| format!("{}: {}", t.command(), task_models(t)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Finds the family of a model folder (`config.json`'s `model_type`, else its
/// `architectures`) or of a single weights file (a torchvision ResNet state_dict: the only
/// family that comes without a config).
pub fn resolve(path: &Path) -> Result<Resolved> {
    if path.is_file() {
        let family = FAMILIES
            .iter()
            .find(|f| matches!(f.loader, Loader::ResNet))
            .ok_or_else(|| Error::Option("no family loads bare weights files".into()))?;
        return Ok(Resolved {
            family,
            model_type: family.model_types[0],
        });
    }
    let config_path = folder::config_path(path)?;
    let config: serde_json::Value = read_json(&config_path)?;
    resolve_config(&config_path, &config)
}

/// The family a folder's parsed `config.json` selects (see [`resolve`]).
fn resolve_config(config_path: &Path, config: &serde_json::Value) -> Result<Resolved> {
    use serde::Deserialize;
    let header = folder::Header::deserialize(config).map_err(|e| Error::Config {
        file: config_path.to_path_buf(),
        reason: format!(
            "invalid config: {}",
            crate::error::safe_message(&e.to_string())
        ),
    })?;
    // How well a family's `architectures` prefixes match the config's: the longest prefix
    // (0: none), so `BertForSequenceClassification` picks `bert-cls` over `bert`.
    let arch_match = |f: &Family| {
        header
            .architectures
            .iter()
            .flat_map(|a| f.architectures.iter().filter(|p| a.starts_with(**p)))
            .map(|p| p.len())
            .max()
            .unwrap_or(0)
    };
    // The best match; on a tie (none matching) the first in the table, the plain encoder.
    let best = |cands: Vec<(&'static Family, &'static str)>| {
        cands
            .into_iter()
            .rev()
            .max_by_key(|(f, _)| arch_match(f))
            .map(|(family, model_type)| Resolved { family, model_type })
    };
    let found = match header.model_type.as_deref() {
        Some(t) => best(
            FAMILIES
                .iter()
                .filter_map(|f| f.model_types.iter().find(|&&m| m == t).map(|&m| (f, m)))
                .collect(),
        ),
        None => best(
            FAMILIES
                .iter()
                .filter(|f| arch_match(f) > 0)
                .map(|f| (f, f.model_types[0]))
                .collect(),
        ),
    };
    found.ok_or_else(|| Error::Config {
        file: config_path.to_path_buf(),
        reason: format!(
            "{} is not supported (supported: {})",
            match (&header.model_type, header.architectures.first()) {
                (Some(t), _) => format!("model_type {}", shown(t)),
                (None, Some(a)) => format!("no model_type, and architecture {}", shown(a)),
                (None, None) => "no model_type or architectures".to_string(),
            },
            supported()
        ),
    })
}

/// A loaded model of any task, as the registry resolved its folder (or bare state_dict file).
/// What `torchless serve`, `torchless worker` and the C ABI hold: a new task is one variant
/// here and one arm in [`AnyModel::load`].
pub enum AnyModel {
    /// A sentence encoder ([`Task::Embed`]).
    Encoder(crate::SentenceEncoder),
    /// An image classifier ([`Task::Classify`]; a ResNet state_dict's depth read from its blocks).
    Classifier(crate::Classifier),
    /// A text generator ([`Task::Generate`]).
    Generator(crate::TextGenerator),
    /// A sequence classifier ([`Task::SequenceClassify`]).
    TextClassifier(crate::TextClassifier),
    /// An image-text embedder ([`Task::ImageTextEmbed`]).
    ImageText(crate::ClipEmbedder),
    /// A `torch.export` program ([`Task::Run`]).
    Program(crate::Program),
}

impl AnyModel {
    /// Loads `path` with the loader of `task` (the task [`resolve`] gave for it).
    pub fn load(path: &Path, task: Task, opts: &LoadOptions) -> Result<AnyModel> {
        Ok(match task {
            Task::Embed => AnyModel::Encoder(crate::SentenceEncoder::load(path, opts)?),
            Task::Classify => AnyModel::Classifier(crate::Classifier::load_detected(path, opts)?),
            Task::Generate => AnyModel::Generator(crate::TextGenerator::load(path, opts)?),
            Task::SequenceClassify => {
                AnyModel::TextClassifier(crate::TextClassifier::load(path, opts)?)
            }
            Task::ImageTextEmbed => AnyModel::ImageText(crate::ClipEmbedder::load(path, opts)?),
            Task::Run => AnyModel::Program(crate::Program::load(path, opts)?),
        })
    }
}

/// [`resolve`] for a task: a model of another task is refused naming the command that runs it.
pub fn resolve_for(path: &Path, task: Task) -> Result<Resolved> {
    for_task(path, resolve(path)?, task)
}

/// Refuses a resolved model of another task than `task`, naming the command that runs it.
fn for_task(path: &Path, r: Resolved, task: Task) -> Result<Resolved> {
    if r.family.task != task {
        return Err(Error::Config {
            file: path.to_path_buf(),
            reason: format!(
                "model_type {} ({} family) is {}, not {} (use {}); {} models: {}",
                shown(r.model_type),
                r.family.name,
                r.family.task.describe(),
                task.describe(),
                r.family.task.usage(),
                task.command(),
                task_models(task)
            ),
        });
    }
    Ok(r)
}

/// An opened model folder: the family, its config, weights and device, ready for a loader.
pub(crate) struct Source {
    pub resolved: Resolved,
    pub config_path: PathBuf,
    pub config: serde_json::Value,
    pub weights: Arc<Weights>,
    pub device: Device,
    pub dtype: DType,
    quantize: Option<Quantize>,
    dir: PathBuf,
}

impl Source {
    /// Resolves `dir` for `task`, reads its config, opens the device and the weights.
    pub fn open(dir: &Path, task: Task, opts: &LoadOptions) -> Result<Source> {
        let config_path = folder::config_path(dir)?;
        let config: serde_json::Value = read_json(&config_path)?;
        let resolved = for_task(dir, resolve_config(&config_path, &config)?, task)?;
        if task != Task::Generate {
            opts.refuse_quantize(&format!("{} ({})", task.describe(), resolved.family.name))?;
        }
        let device = opts.device.open()?;
        let weights = Arc::new(Weights::open(dir)?);
        Ok(Source {
            resolved,
            config_path,
            config,
            weights,
            device,
            dtype: opts.dtype,
            quantize: opts.quantize,
            dir: dir.to_path_buf(),
        })
    }

    fn context<T>(
        &self,
        load: impl FnOnce(&LoadContext) -> std::result::Result<T, LoadError>,
    ) -> Result<T> {
        let weights = self.weights.clone();
        let has = move |n: &str| weights.contains(n);
        let ctx = LoadContext {
            config: &self.config,
            vb: self.weights.var_builder(self.dtype, &self.device),
            has: &has,
        };
        load(&ctx).map_err(|e| self.load_error(e))
    }

    fn load_error(&self, e: LoadError) -> Error {
        match e {
            LoadError::Config(cause) => Error::InvalidConfig {
                file: self.config_path.clone(),
                cause,
            },
            LoadError::BadConfig { .. } => Error::Config {
                file: self.config_path.clone(),
                reason: e.to_string(),
            },
            LoadError::Layout(reason) => Error::Config {
                file: self.dir.clone(),
                reason: format!("{reason} ({})", self.weights.label()),
            },
            LoadError::Candle(c) => Error::from(c),
        }
    }

    /// Loads the folder's text encoder.
    pub fn encoder(&self) -> Result<Box<dyn TextEncoder>> {
        match self.resolved.family.loader {
            Loader::Encoder(load) => self.context(load),
            _ => Err(self.wrong_loader()),
        }
    }

    /// Loads the folder's causal language model, its blocks quantized when the options say so.
    pub fn decoder(&self) -> Result<Box<dyn CausalLm>> {
        let mut model = match self.resolved.family.loader {
            Loader::Decoder(load) => self.context(load)?,
            _ => return Err(self.wrong_loader()),
        };
        if let Some(q) = self.quantize {
            model.quantize(q).map_err(|e| {
                Error::Option(format!(
                    "--quantize {} of {} (family {}): {e}",
                    q.name(),
                    self.dir.display(),
                    self.resolved.family.name
                ))
            })?;
        }
        Ok(model)
    }

    /// Loads the folder's sequence classifier (encoder + `*ForSequenceClassification` head).
    pub fn sequence_classifier(&self) -> Result<Box<dyn SequenceClassifier>> {
        match self.resolved.family.loader {
            Loader::SequenceClassifier(load) => self.context(load),
            _ => Err(self.wrong_loader()),
        }
    }

    /// Loads the folder's image classifier.
    pub fn image_classifier(&self) -> Result<Box<dyn ImageClassifier>> {
        match self.resolved.family.loader {
            Loader::Image(load) => self.context(load),
            _ => Err(self.wrong_loader()),
        }
    }

    /// Loads the folder's CLIP model.
    pub fn clip(&self) -> Result<Box<clip::ClipModel>> {
        match self.resolved.family.loader {
            Loader::Clip(load) => self.context(load),
            _ => Err(self.wrong_loader()),
        }
    }

    fn wrong_loader(&self) -> Error {
        Error::Config {
            file: self.config_path.clone(),
            reason: format!(
                "family {} has no loader for this task",
                self.resolved.family.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_type_belongs_to_one_family() {
        // Once per task: a sequence-classification head shares its encoder's model_types.
        let mut seen = std::collections::HashSet::new();
        for f in FAMILIES {
            assert!(!f.model_types.is_empty(), "{}", f.name);
            for t in f.model_types {
                assert!(seen.insert((f.task, *t)), "model_type {t} is listed twice");
            }
        }
        assert_eq!(
            model_types(Task::Generate),
            [
                "gpt2",
                "llama",
                "mistral",
                "qwen2",
                "qwen3",
                "phi3",
                "gemma2",
                "gemma3_text"
            ]
        );
        assert_eq!(
            model_types(Task::Embed),
            ["bert", "roberta", "xlm-roberta", "distilbert", "modernbert"]
        );
    }

    #[test]
    fn unknown_and_misplaced_model_types_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
        let e = resolve(dir.path()).unwrap_err().to_string();
        assert!(e.contains("model_type \"t5\" is not supported"), "{e}");
        assert!(
            e.contains("generate: gpt2, llama, mistral, qwen2, qwen3"),
            "{e}"
        );
        std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
        let e = resolve_for(dir.path(), Task::Embed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a text generator"), "{e}");
        assert!(e.contains("torchless generate"), "{e}");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"architectures": ["BertForMaskedLM"]}"#,
        )
        .unwrap();
        let r = resolve(dir.path()).unwrap();
        assert_eq!((r.family.name, r.model_type), ("bert", "bert"));
    }

    #[test]
    fn sequence_classification_architectures_pick_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                r#"{"model_type": "bert", "architectures": ["BertModel"]}"#,
                "bert",
            ),
            (r#"{"model_type": "bert"}"#, "bert"),
            (
                r#"{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}"#,
                "bert-cls",
            ),
            (
                r#"{"architectures": ["BertForSequenceClassification"]}"#,
                "bert-cls",
            ),
            (
                r#"{"model_type": "xlm-roberta", "architectures": ["XLMRobertaForSequenceClassification"]}"#,
                "roberta-cls",
            ),
            (
                r#"{"model_type": "roberta", "architectures": ["RobertaForMaskedLM"]}"#,
                "roberta",
            ),
        ];
        for (config, family) in cases {
            std::fs::write(dir.path().join("config.json"), config).unwrap();
            assert_eq!(resolve(dir.path()).unwrap().family.name, family, "{config}");
        }
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}"#,
        )
        .unwrap();
        let e = resolve_for(dir.path(), Task::Embed)
            .unwrap_err()
            .to_string();
        assert!(e.contains("torchless rerank"), "{e}");
        assert!(e.contains("classify --text"), "{e}");
        std::fs::write(dir.path().join("config.json"), r#"{"model_type": "bert"}"#).unwrap();
        let e = resolve_for(dir.path(), Task::SequenceClassify)
            .unwrap_err()
            .to_string();
        assert!(e.contains("torchless embed"), "{e}");
        assert!(e.contains("ForSequenceClassification"), "{e}");
    }
}
