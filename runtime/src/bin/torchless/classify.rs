//! `torchless classify`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use torchless::npy::read_npy;
use torchless::preprocess::{ImageProcessor, Preprocess};
use torchless::{top_k, Classifier, ResNetArch, Task, TextClassifier};

use crate::output::{device_name, print_json};
use crate::run_options::RunOptions;

/// Classify images with a torchvision ResNet state_dict or a ViT folder, or texts with a
/// text-classification folder.
///
/// Images (--image, --input-npy): the model is `torch.save(model.state_dict())` of a torchvision ResNet, as safetensors (or a
/// .pt/.pth/.bin, converted in memory); its depth is read from its block layout (--arch
/// overrides it) and the class count is
/// read from `fc.weight`. Images (PNG or JPEG) go through torchvision's ImageNet transform:
/// Resize(256) (PIL bilinear) → CenterCrop(224) → ToTensor → Normalize(ImageNet mean/std).
/// --input-npy takes a ready float32 NCHW batch instead. Scores are softmax probabilities.
/// Without --json, each input prints one line: its name, then `index:score` for the top-k
/// classes.
///
/// A model folder (--image, --input-npy) holds a Hugging Face image classifier
/// (`ViTForImageClassification`: config.json, weights, preprocessor_config.json). Images go
/// through its `ViTImageProcessor` settings: resize to `size` (PIL bilinear), rescale,
/// normalize; inputs must have the config's `image_size`. Lines and JSON name the classes by
/// `id2label` (JSON also has `"model"` and `"labels"`, and each top-k entry its `"label"`).
///   torchless classify --model tests/fixtures/vit --image tests/fixtures/resnet/image.png
///
/// Texts (--text): the model is a folder of a `*ForSequenceClassification` checkpoint (BERT,
/// RoBERTa, XLM-RoBERTa; what the model registry resolves from its config.json), with its
/// tokenizer.json. Scores are softmax probabilities over `id2label` (a one-label model: its
/// sigmoid score). Without --json each text prints one line: the text, then `label:score` for
/// the top-k labels. Example:
///   torchless classify --model tests/fixtures/rerank/xlmr-classifier --text "A sentence."
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The weights (`.safetensors`, or a PyTorch `.pt`/`.pth`/`.bin` state_dict), or an
    /// image-classification model folder (ViT); with --text, a text-classification model folder.
    #[arg(long, value_name = "FILE|DIR")]
    model: PathBuf,
    /// resnet18, resnet34, resnet50, resnet101 or resnet152. Optional: by default the depth is
    /// read from the state_dict's block layout (the model registry); --arch overrides it.
    #[arg(long, value_name = "ARCH")]
    arch: Option<String>,
    /// An image to classify (repeatable; PNG or JPEG).
    #[arg(
        long = "image",
        value_name = "IMG",
        required_unless_present_any = ["input_npy", "texts"],
        conflicts_with_all = ["input_npy", "texts"]
    )]
    images: Vec<PathBuf>,
    /// A text to classify (repeatable) with a text-classification folder.
    #[arg(long = "text", value_name = "STR", conflicts_with_all = ["input_npy", "arch"])]
    texts: Vec<String>,
    /// A preprocessed batch: a little-endian float32 C-order `.npy` array of shape [N, 3, H, W].
    #[arg(long, value_name = "FILE.npy")]
    input_npy: Option<PathBuf>,
    #[command(flatten)]
    run: RunOptions,
    /// How many classes to list per input (highest softmax probability first).
    #[arg(long, default_value_t = 5, value_name = "K")]
    top_k: usize,
    /// Print one JSON object `{"device", "logits": [[...]], "top_k": [[{"index", "score"}]]}`,
    /// one row per input in order; `score` is the softmax probability, `device` what the model
    /// ran on (`cpu` or `cuda:N`). With --text, also `"model"` and
    /// `"labels"` (id2label), and each top-k entry has its `"label"`.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !a.texts.is_empty() {
        return run_text(a);
    }
    let arch: Option<ResNetArch> = a
        .arch
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let opts = a.run.load_options()?;
    // Inputs first: a bad image fails before the model is read.
    let (names, input, batch, h, w) = match &a.input_npy {
        Some(p) => {
            let arr = read_npy(p)?;
            let [n, c, h, w] = arr.shape[..] else {
                anyhow::bail!("{}: shape {:?} is not [N, 3, H, W]", p.display(), arr.shape);
            };
            if c != 3 {
                anyhow::bail!(
                    "{}: shape {:?} has {c} channels, expected 3",
                    p.display(),
                    arr.shape
                );
            }
            let names: Vec<String> = (0..n).map(|i| format!("{}[{i}]", p.display())).collect();
            (names, arr.data, n, h, w)
        }
        None if a.model.is_dir() && arch.is_none() => {
            let pre = ImageProcessor::from_dir(&a.model)
                .with_context(|| format!("cannot load {}", a.model.display()))?;
            let mut data = Vec::new();
            let mut size = None;
            for img in &a.images {
                let (pixels, h, w) = pre.load(img)?;
                if size.is_some_and(|s| s != (h, w)) {
                    anyhow::bail!(
                        "{}: {h} × {w} after preprocessing, the images before it are {:?} \
                         (do_resize is off)",
                        img.display(),
                        size.unwrap()
                    );
                }
                size = Some((h, w));
                data.extend(pixels);
            }
            let (h, w) = size.unwrap_or((0, 0));
            let names = a.images.iter().map(|p| p.display().to_string()).collect();
            (names, data, a.images.len(), h, w)
        }
        None => {
            let pre = Preprocess::default();
            let mut data = Vec::with_capacity(a.images.len() * 3 * pre.crop * pre.crop);
            for img in &a.images {
                data.extend(pre.load(img)?);
            }
            let names = a.images.iter().map(|p| p.display().to_string()).collect();
            (names, data, a.images.len(), pre.crop, pre.crop)
        }
    };
    let model = match arch {
        Some(arch) => Classifier::load(&a.model, arch, &opts),
        None => torchless::registry::resolve_for(&a.model, torchless::Task::Classify)
            .and_then(|_| Classifier::load_detected(&a.model, &opts)),
    }
    .with_context(|| format!("cannot load {}", a.model.display()))?;
    let logits = model.classify_hw(&input, batch, h, w)?;
    let tops: Vec<_> = logits.iter().map(|l| top_k(l, a.top_k)).collect();
    if let Some(labels) = model.labels() {
        return print_labelled(&a, &model, labels, &names, &logits, &tops);
    }
    if a.json {
        return print_json(&serde_json::json!({
            "device": device_name(model.device()),
            "logits": logits,
            "top_k": tops,
        }));
    }
    let mut out = std::io::stdout().lock();
    for (name, t) in names.iter().zip(&tops) {
        let best: Vec<String> = t
            .iter()
            .map(|t| format!("{}:{:.4}", t.index, t.score))
            .collect();
        writeln!(out, "{name}\t{}", best.join(" "))?;
    }
    Ok(())
}

/// Output of a model folder with `id2label` (ViT): classes by name.
fn print_labelled(
    a: &Args,
    model: &Classifier,
    labels: &[String],
    names: &[String],
    logits: &[Vec<f32>],
    tops: &[Vec<torchless::TopK>],
) -> anyhow::Result<()> {
    if a.json {
        let tops: Vec<Vec<serde_json::Value>> = tops
            .iter()
            .map(|t| {
                t.iter()
                    .map(|t| serde_json::json!({"index": t.index, "label": labels[t.index], "score": t.score}))
                    .collect()
            })
            .collect();
        return print_json(&serde_json::json!({
            "model": model.name(),
            "device": device_name(model.device()),
            "labels": labels,
            "logits": logits,
            "top_k": tops,
        }));
    }
    let mut out = std::io::stdout().lock();
    for (name, t) in names.iter().zip(tops) {
        let best: Vec<String> = t
            .iter()
            .map(|t| format!("{}:{:.4}", labels[t.index], t.score))
            .collect();
        writeln!(out, "{name}\t{}", best.join(" "))?;
    }
    Ok(())
}

/// `--text`: a `*ForSequenceClassification` folder, labels from `id2label`.
fn run_text(a: Args) -> anyhow::Result<()> {
    if a.model.is_file() {
        anyhow::bail!(
            "--text needs a text-classification model folder (config.json with a \
             *ForSequenceClassification architecture); {} is a weights file: image classifiers \
             take --image or --input-npy",
            a.model.display()
        );
    }
    let opts = a.run.load_options()?;
    let model = torchless::registry::resolve_for(&a.model, Task::SequenceClassify)
        .and_then(|_| TextClassifier::load(&a.model, &opts))
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let refs: Vec<&str> = a.texts.iter().map(String::as_str).collect();
    let logits = model.logits(&refs)?;
    let labels = model.id2label();
    let entry = |index: usize, score: f32| serde_json::json!({"index": index, "label": labels[index], "score": score});
    let tops: Vec<Vec<serde_json::Value>> = if model.num_labels() == 1 {
        // One label: its score as `CrossEncoder.predict` gives it (a sigmoid by default).
        model
            .classify(&refs)?
            .iter()
            .map(|s| vec![entry(0, s[0])])
            .collect()
    } else {
        logits
            .iter()
            .map(|l| {
                top_k(l, a.top_k)
                    .iter()
                    .map(|t| entry(t.index, t.score))
                    .collect()
            })
            .collect()
    };
    if a.json {
        return print_json(&serde_json::json!({
            "model": model.name(),
            "device": device_name(model.device()),
            "labels": labels,
            "logits": logits,
            "top_k": tops,
        }));
    }
    let mut out = std::io::stdout().lock();
    for (text, t) in a.texts.iter().zip(&tops) {
        let best: Vec<String> = t
            .iter()
            .map(|t| {
                format!(
                    "{}:{:.4}",
                    t["label"].as_str().unwrap_or_default(),
                    t["score"].as_f64().unwrap_or(f64::NAN)
                )
            })
            .collect();
        writeln!(out, "{text}\t{}", best.join(" "))?;
    }
    Ok(())
}
