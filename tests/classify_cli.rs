//! `torchless classify` as a user runs it.

use torchless::ResNetArch;

use crate::common::{fixture, s, torchless};
use crate::resnet::{expected_logits, rel_err, weights_file};

#[test]
fn classify_input_npy_json_reproduces_pytorch_logits() {
    let model = weights_file(ResNetArch::ResNet18);
    let o = torchless(&[
        "classify",
        "--model",
        s(&model),
        "--arch",
        "resnet18",
        "--input-npy",
        s(&fixture("resnet/inputs.npy")),
        "--device",
        "cpu",
        "--top-k",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let logits: Vec<Vec<f32>> = v["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let want = expected_logits(ResNetArch::ResNet18);
    let err = rel_err(&logits, &want);
    assert!(err < 1e-4, "relative error {err}");
    let tops = v["top_k"].as_array().unwrap();
    assert_eq!(tops.len(), 2);
    for (t, w) in tops.iter().zip(&want) {
        let t = t.as_array().unwrap();
        assert_eq!(t.len(), 3);
        // The best class is PyTorch's argmax, scored with its softmax probability.
        let best = (0..w.len()).max_by(|&a, &b| w[a].total_cmp(&w[b])).unwrap();
        assert_eq!(t[0]["index"].as_u64().unwrap() as usize, best);
        let m = w[best];
        let z: f64 = w.iter().map(|&x| ((x - m) as f64).exp()).sum();
        let score = t[0]["score"].as_f64().unwrap();
        assert!((score - 1.0 / z).abs() < 1e-4, "{score} vs {}", 1.0 / z);
        assert!(t[1]["score"].as_f64().unwrap() <= score);
    }
}

#[test]
fn classify_images_prints_one_line_per_image() {
    let model = weights_file(ResNetArch::ResNet18);
    let o = torchless(&[
        "classify",
        "--model",
        s(&model),
        "--arch",
        "resnet18",
        "--image",
        s(&fixture("resnet/image.png")),
        "--image",
        s(&fixture("resnet/image.jpg")),
        "--device",
        "cpu",
        "--top-k",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("image.png\t") && lines[1].contains("image.jpg\t"));
    assert_eq!(lines[0].split('\t').nth(1).unwrap().split(' ').count(), 2);
}

#[test]
fn classify_with_the_wrong_arch_fails_with_one_line_naming_the_tensor() {
    let model = weights_file(ResNetArch::ResNet18);
    let o = torchless(&[
        "classify",
        "--model",
        s(&model),
        "--arch",
        "resnet34",
        "--input-npy",
        s(&fixture("resnet/inputs.npy")),
        "--device",
        "cpu",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("layer1.2.conv1.weight"), "{err}");
    assert!(o.stdout.is_empty());

    let o = torchless(&[
        "classify",
        "--model",
        s(&model),
        "--arch",
        "resnet19",
        "--image",
        s(&fixture("resnet/image.png")),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown ResNet"));

    // A .npy of another dtype.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("f64.npy");
    let mut b = torchless::npy::write_npy_bytes(&[1, 3, 2, 2], &[0.0; 12]);
    let at = b.windows(3).position(|w| w == b"<f4").unwrap();
    b[at + 2] = b'8';
    std::fs::write(&bad, &b).unwrap();
    let o = torchless(&[
        "classify",
        "--model",
        s(&model),
        "--arch",
        "resnet18",
        "--input-npy",
        s(&bad),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("f64.npy") && err.contains("'<f8'"), "{err}");
}

#[test]
fn classify_detects_the_depth_through_the_registry_when_arch_is_omitted() {
    for arch in [ResNetArch::ResNet18, ResNetArch::ResNet50] {
        let o = torchless(&[
            "classify",
            "--model",
            s(&weights_file(arch)),
            "--input-npy",
            s(&fixture("resnet/inputs.npy")),
            "--device",
            "cpu",
            "--json",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let logits: Vec<Vec<f32>> = serde_json::from_value(v["logits"].clone()).unwrap();
        let err = rel_err(&logits, &expected_logits(arch));
        assert!(err < 1e-4, "{arch}: relative error {err}");
    }
    // A decoder folder is not an image classifier: the registry names the right command.
    let o = torchless(&[
        "classify",
        "--model",
        s(&fixture("decoders/gpt2")),
        "--input-npy",
        s(&fixture("resnet/inputs.npy")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is a text generator") && err.contains("torchless generate"),
        "{err}"
    );
}
