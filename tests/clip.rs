//! CLIP image and text embeddings against transformers (scripts/clip_fixtures.py): a random
//! small `CLIPModel` (`pytorch_model.bin`, converted in memory), L2-normalised `text_embeds` of a
//! few texts, `image_embeds` of a raw `.npy` batch and of a PNG through `CLIPImageProcessor`,
//! and the CLI in both modes.

use std::path::PathBuf;

use candle_core::DType;
use serde_json::Value;
use torchless::npy::read_npy;
use torchless::preprocess::load_image;
use torchless::{ClipEmbedder, DeviceSpec, LoadOptions};

use crate::common::{fixture, floats, ints, rel_err, s, torchless};

fn dir() -> PathBuf {
    fixture("clip")
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

fn close(got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        let e = rel_err(g, w);
        assert!(e < 1e-4, "relative error {e}: {g:?} vs {w:?}");
    }
}

fn texts() -> Vec<String> {
    expected()["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn clip_text_embeddings_match_transformers() {
    let clip = ClipEmbedder::load(&dir(), &cpu()).unwrap();
    assert_eq!(clip.dim(), 16);
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // One batch (right-padded, causal) and one text at a time agree with transformers.
    let want = rows(&expected()["text_embeds"]);
    close(&clip.embed_texts(&refs).unwrap(), &want);
    for (t, w) in refs.iter().zip(&want) {
        close(&clip.embed_texts(&[t]).unwrap(), std::slice::from_ref(w));
    }
    // The fixture's ids are the tokenizer's (CLIPTokenizerFast gives the same in Python).
    let ids: Vec<Vec<u32>> = expected()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(ints)
        .collect();
    assert_eq!(
        ids[2].len(),
        2,
        "the empty text is <|startoftext|> <|endoftext|>"
    );
}

#[test]
fn clip_image_embeddings_match_transformers() {
    let clip = ClipEmbedder::load(&dir(), &cpu()).unwrap();
    let x = read_npy(&dir().join("inputs.npy")).unwrap();
    assert_eq!(x.shape, [2, 3, 32, 32]);
    close(
        &clip.embed_images(&x.data, 2).unwrap(),
        &rows(&expected()["input_embeds"]),
    );
    // Preprocessing of the PNG matches CLIPImageProcessor's pixel values.
    let img = load_image(&dir().join("../resnet/image.png")).unwrap();
    let pixels = clip.processor().apply(&img).unwrap();
    let want = floats(&expected()["image_pixel_values"]);
    let max = pixels
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-5, "pixel values differ by {max}");
    let image = dir().join("../resnet/image.png");
    let got = clip.embed_image_files(&[image.as_path()]).unwrap();
    close(&got, &rows(&expected()["image_embeds"]));
    // Normalised embeddings.
    let n: f32 = got[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((n - 1.0).abs() < 1e-5);
}

#[test]
fn clip_similarity_sign_matches_transformers() {
    let clip = ClipEmbedder::load(&dir(), &cpu()).unwrap();
    let image = dir().join("../resnet/image.png");
    let img = &clip.embed_image_files(&[image.as_path()]).unwrap()[0];
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = clip.embed_texts(&refs).unwrap();
    let want_img = &rows(&expected()["image_embeds"])[0];
    for (g, w) in got.iter().zip(rows(&expected()["text_embeds"])) {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let (sg, sw) = (dot(g, img), dot(&w, want_img));
        assert!((sg - sw).abs() < 1e-4, "cosine {sg} vs {sw}");
        if sw.abs() > 1e-3 {
            assert_eq!(sg > 0.0, sw > 0.0);
        }
    }
}

#[test]
fn clip_cli_embeds_texts_and_images() {
    let texts = texts();
    let out = torchless(&[
        "embed",
        "--model",
        s(&dir()),
        "--text",
        &texts[0],
        "--text",
        &texts[1],
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dim"], 16);
    close(
        &rows(&v["embeddings"]),
        &rows(&expected()["text_embeds"])[..2],
    );

    let image = dir().join("../resnet/image.png");
    let out = torchless(&["embed", "--model", s(&dir()), "--image", s(&image)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Vec<f32> = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    close(&[line], &rows(&expected()["image_embeds"]));

    // --image with a text-only encoder is refused naming the model type.
    let out = torchless(&[
        "embed",
        "--model",
        s(&fixture("bert").join("tiny-st")),
        "--image",
        s(&image),
    ]);
    assert!(!out.status.success());
}
