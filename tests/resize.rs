//! Pillow's resampling, bit for bit (scripts/resize_fixtures.py): the resnet fixture's image
//! through `Image.resize` with BILINEAR and BICUBIC to smaller, larger and stretched sizes, and
//! `CLIPImageProcessorPil` with `resample=3` (the hub's CLIP default) read from a
//! `preprocessor_config.json`.

use std::path::PathBuf;

use serde_json::Value;
use torchless::preprocess::{load_image, pil_resize, ImageProcessor, Resample};
use torchless::ClipImageProcessor;

use crate::common::{fixture, floats};

fn dir() -> PathBuf {
    fixture("resize")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("expected.json")).unwrap()).unwrap()
}

#[test]
fn pillow_bilinear_and_bicubic_resizes_are_reproduced_exactly() {
    let src = load_image(&dir().join("../resnet/image.png")).unwrap();
    let files = expected()["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 16);
    for f in files {
        let name = f.as_str().unwrap();
        let (filter, size) = name.trim_end_matches(".png").split_once('_').unwrap();
        let (w, h) = size.split_once('x').unwrap();
        let (w, h): (usize, usize) = (w.parse().unwrap(), h.parse().unwrap());
        let filter = match filter {
            "bilinear" => Resample::Bilinear,
            "bicubic" => Resample::Bicubic,
            other => panic!("{other}"),
        };
        let want = load_image(&dir().join(name)).unwrap();
        let got = pil_resize(&src, w, h, filter);
        assert_eq!((got.width, got.height), (w, h), "{name}");
        let differing = got
            .data
            .iter()
            .zip(&want.data)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 0, "{name}: {differing} bytes differ from Pillow");
    }
}

#[test]
fn clip_bicubic_processor_matches_clip_image_processor_pil() {
    let tmp = tempfile::tempdir().unwrap();
    let config = r#"{"crop_size": {"height": 32, "width": 32}, "do_center_crop": true,
        "do_normalize": true, "do_rescale": true, "do_resize": true, "resample": 3,
        "size": {"shortest_edge": 32}}"#;
    std::fs::write(tmp.path().join("preprocessor_config.json"), config).unwrap();
    let p = ClipImageProcessor::from_dir(tmp.path()).unwrap();
    assert_eq!(p.resample, Resample::Bicubic);
    let img = load_image(&dir().join("../resnet/image.png")).unwrap();
    let got = p.apply(&img).unwrap();
    let want = floats(&expected()["clip_bicubic"]);
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert_eq!(got.len(), want.len());
    assert!(max < 1e-5, "pixel values differ by {max}");
    // The same folder without `resample` takes CLIPImageProcessor's default, bicubic.
    std::fs::write(
        tmp.path().join("preprocessor_config.json"),
        config.replace(r#""resample": 3,"#, ""),
    )
    .unwrap();
    let p = ClipImageProcessor::from_dir(tmp.path()).unwrap();
    assert_eq!(p.resample, Resample::Bicubic);
}

#[test]
fn other_pillow_filters_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    for (code, name) in [
        (0, "NEAREST"),
        (1, "LANCZOS"),
        (4, "BOX"),
        (5, "HAMMING"),
        (9, "unknown"),
    ] {
        std::fs::write(
            tmp.path().join("preprocessor_config.json"),
            format!(r#"{{"resample": {code}}}"#),
        )
        .unwrap();
        let e = ImageProcessor::from_dir(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains("BICUBIC"), "{e}");
    }
    std::fs::write(
        tmp.path().join("preprocessor_config.json"),
        r#"{"resample": 3}"#,
    )
    .unwrap();
    let p = ImageProcessor::from_dir(tmp.path()).unwrap();
    assert_eq!(p.resample, Resample::Bicubic);
}
