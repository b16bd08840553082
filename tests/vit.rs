//! Hugging Face ViT image classification against transformers (scripts/vit_fixtures.py): a
//! random small `ViTForImageClassification` (`pytorch_model.bin`, converted in memory), logits
//! of a raw `.npy` batch, `ViTImageProcessor`'s preprocessing of a PNG, and the CLI.

use std::path::PathBuf;

use candle_core::DType;
use serde_json::Value;
use torchless::npy::read_npy;
use torchless::preprocess::{load_image, ImageProcessor};
use torchless::{Classifier, DeviceSpec, LoadOptions, Task};

use crate::common::{fixture, floats, rel_err, s, torchless};

fn dir() -> PathBuf {
    fixture("vit")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize: None,
    }
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

#[test]
fn vit_logits_match_transformers() {
    let model = Classifier::load_dir(&dir(), &cpu()).unwrap();
    assert_eq!(model.architecture(), "vit");
    assert_eq!(model.arch(), None);
    assert_eq!(model.num_classes(), 5);
    assert_eq!(model.image_size(), Some((32, 32)));
    assert_eq!(
        model.labels().unwrap(),
        ["cat", "dog", "bird", "fish", "frog"]
    );
    let x = read_npy(&dir().join("inputs.npy")).unwrap();
    assert_eq!(x.shape, [2, 3, 32, 32]);
    let got = model.classify_hw(&x.data, 2, 32, 32).unwrap();
    let want = rows(&expected()["logits"]);
    for (g, w) in got.iter().zip(&want) {
        let e = rel_err(g, w);
        assert!(e < 1e-4, "relative error {e}: {g:?} vs {w:?}");
    }
    // The registry loads the folder through `load_detected` too (the C ABI's path).
    let again = Classifier::load_detected(&dir(), &cpu()).unwrap();
    assert_eq!(again.classify_hw(&x.data, 2, 32, 32).unwrap(), got);
}

#[test]
fn vit_preprocessing_matches_vit_image_processor() {
    let pre = ImageProcessor::from_dir(&dir()).unwrap();
    assert_eq!(pre.resize, Some((32, 32)));
    let img = load_image(&fixture("resnet/image.png")).unwrap();
    let got = pre.apply(&img);
    let e = expected();
    let want = floats(&e["image_pixel_values"]);
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-3, "max pixel difference {max}");
    let model = Classifier::load_dir(&dir(), &cpu()).unwrap();
    let logits = model.classify_hw(&got, 1, 32, 32).unwrap();
    let err = rel_err(&logits[0], &floats(&e["image_logits"]));
    assert!(err < 1e-4, "relative error {err}");
}

#[test]
fn vit_cli_names_classes_by_id2label() {
    let o = torchless(&[
        "classify",
        "--model",
        s(&dir()),
        "--image",
        s(&fixture("resnet/image.png")),
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = expected();
    assert_eq!(v["labels"], e["labels"]);
    let logits = rows(&v["logits"]);
    let want = floats(&e["image_logits"]);
    assert!(rel_err(&logits[0], &want) < 1e-4, "{logits:?} vs {want:?}");
    let best = (0..want.len())
        .max_by(|&a, &b| want[a].total_cmp(&want[b]))
        .unwrap();
    assert_eq!(v["top_k"][0][0]["index"], best);
    assert_eq!(v["top_k"][0][0]["label"], e["labels"][best]);
    // Lines: the image, then `label:score`.
    let o = torchless(&[
        "classify",
        "--model",
        s(&dir()),
        "--image",
        s(&fixture("resnet/image.png")),
        "--device",
        "cpu",
        "--top-k",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8(o.stdout).unwrap();
    let label = e["labels"][best].as_str().unwrap();
    assert!(line.contains(&format!("\t{label}:")), "{line}");
}

#[test]
fn vit_refuses_other_image_sizes() {
    let model = Classifier::load_dir(&dir(), &cpu()).unwrap();
    let e = model
        .classify_hw(&vec![0.0; 3 * 64 * 64], 1, 64, 64)
        .unwrap_err()
        .to_string();
    assert!(e.contains("64 × 64") && e.contains("takes 32 × 32"), "{e}");
    // The ResNet fixture's batch (not 32 × 32) through the CLI.
    let o = torchless(&[
        "classify",
        "--model",
        s(&dir()),
        "--input-npy",
        s(&fixture("resnet/inputs.npy")),
        "--device",
        "cpu",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("takes 32 × 32"), "{err}");
}

#[test]
fn vit_folder_resolves_and_bad_processors_are_refused() {
    let r = torchless::registry::resolve_for(&dir(), Task::Classify).unwrap();
    assert_eq!((r.family.name, r.model_type), ("vit", "vit"));
    assert!(torchless::registry::model_types(Task::Classify).contains(&"vit"));
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (r#"{"resample": 1}"#, "LANCZOS"),
        (r#"{"size": {"shortest_edge": 224}}"#, "shortest_edge"),
        (r#"{"do_center_crop": true}"#, "do_center_crop"),
        (r#"{"image_std": [0.5, 0.5]}"#, "image_std"),
    ];
    for (json, needle) in cases {
        std::fs::write(tmp.path().join("preprocessor_config.json"), json).unwrap();
        let e = ImageProcessor::from_dir(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{json}: {e}");
    }
}
