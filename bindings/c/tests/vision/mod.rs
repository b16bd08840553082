//! The image models through the C ABI: CLIP (`tests/fixtures/clip`) embeds texts with
//! `torchless_embed` and images with `torchless_embed_images` into one space, and a ViT image
//! classifier (`tests/fixtures/vit`) classifies with `torchless_classify` and names its classes
//! with `torchless_model_label`; all against transformers' outputs (scripts/clip_fixtures.py,
//! scripts/vit_fixtures.py), plus the wrong kind and wrong image sizes.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use serde_json::Value;
use torchless::capi::*;
use torchless::npy::read_npy;

use crate::common::{cstrings, floats, info, label, last_error, rel_err, Model};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(name: &str) -> Model {
    let dir = CString::new(fixture(name).to_str().unwrap()).unwrap();
    let mut m = null_mut();
    // SAFETY: valid strings and a writable out pointer.
    let s = unsafe { torchless_model_load(dir.as_ptr(), c"cpu".as_ptr(), null(), &mut m) };
    assert_eq!(s, TorchlessStatus::Ok, "{name}: {}", last_error());
    Model(m)
}

/// `torchless_embed_images` on `batch` images of `3 × side × side`: status, values, rows, dim.
fn embed_images(
    m: &Model,
    pixels: &[f32],
    batch: usize,
    side: usize,
    capacity: usize,
) -> (TorchlessStatus, Vec<f32>, usize, usize) {
    let mut out = vec![0f32; capacity];
    let (mut rows, mut dim) = (0usize, 0usize);
    // SAFETY: `pixels` holds what the shape says (the tests pass matching sizes, or a shape the
    // call refuses before reading), `out` holds `capacity` floats.
    let s = unsafe {
        torchless_embed_images(
            m.0,
            pixels.as_ptr(),
            batch,
            3,
            side,
            side,
            out.as_mut_ptr(),
            capacity,
            &mut rows,
            &mut dim,
        )
    };
    (s, out, rows, dim)
}

fn close(got: &[f32], want: &[f32]) {
    let e = rel_err(got, want);
    assert!(e < 1e-4, "relative error {e}");
}

#[test]
fn clip_embeds_texts_and_images_into_one_space() {
    let m = load("clip");
    let (kind, dim, arch, _) = info(&m);
    assert_eq!(kind, TorchlessModelKind::ImageTextEmbedder);
    assert_eq!((dim, arch.as_str()), (16, "clip"));
    let want = expected("clip");

    let texts: Vec<String> = want["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let bytes: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    let (_owned, ptrs) = cstrings(&bytes);
    let mut out = vec![0f32; texts.len() * dim];
    let (mut rows, mut d) = (0usize, 0usize);
    // SAFETY: live strings and a buffer of the stated size.
    let s = unsafe {
        torchless_embed(
            m.0,
            ptrs.as_ptr(),
            ptrs.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut rows,
            &mut d,
        )
    };
    assert_eq!(s, TorchlessStatus::Ok, "{}", last_error());
    assert_eq!((rows, d), (texts.len(), 16));
    close(&out, &floats(&want["text_embeds"]));

    // A raw batch of two preprocessed images, and the PNG's CLIPImageProcessor pixels.
    let x = read_npy(&fixture("clip").join("inputs.npy")).unwrap();
    let (s, out, rows, d) = embed_images(&m, &x.data, 2, 32, 32);
    assert_eq!(s, TorchlessStatus::Ok, "{}", last_error());
    assert_eq!((rows, d), (2, 16));
    close(&out, &floats(&want["input_embeds"]));
    let pixels = floats(&want["image_pixel_values"]);
    let (s, out, _, _) = embed_images(&m, &pixels, 1, 32, 16);
    assert_eq!(s, TorchlessStatus::Ok, "{}", last_error());
    close(&out, &floats(&want["image_embeds"]));
}

#[test]
fn clip_image_calls_check_sizes_and_kinds() {
    let m = load("clip");
    let pixels = vec![0f32; 3 * 32 * 32];
    // Too small a buffer: the sizes come back, nothing runs.
    let (s, _, rows, dim) = embed_images(&m, &pixels, 1, 32, 3);
    assert_eq!(s, TorchlessStatus::BufferTooSmall);
    assert_eq!((rows, dim), (1, 16));
    // Another image size: refused naming the one the model takes.
    let (s, ..) = embed_images(&m, &pixels, 1, 16, 16);
    assert_eq!(s, TorchlessStatus::InvalidArgument);
    assert!(last_error().contains("3 × 32 × 32"), "{}", last_error());
    // CLIP is not an image classifier.
    let (mut rows, mut classes) = (0usize, 0usize);
    let mut out = vec![0f32; 16];
    // SAFETY: a live handle, `pixels` of 3 × 32 × 32, `out` of 16 floats.
    let s = unsafe {
        torchless_classify(
            m.0,
            pixels.as_ptr(),
            1,
            3,
            32,
            32,
            out.as_mut_ptr(),
            16,
            &mut rows,
            &mut classes,
        )
    };
    assert_eq!(s, TorchlessStatus::WrongModelKind);
    assert!(
        last_error().contains("torchless_embed_images"),
        "{}",
        last_error()
    );
    // An image classifier does not embed images.
    let vit = load("vit");
    let (s, ..) = embed_images(&vit, &pixels, 1, 32, 16);
    assert_eq!(s, TorchlessStatus::WrongModelKind);
    assert!(
        last_error().contains("torchless_classify"),
        "{}",
        last_error()
    );
}

#[test]
fn vit_classifies_and_names_its_classes() {
    let m = load("vit");
    let (kind, classes, arch, _) = info(&m);
    assert_eq!(kind, TorchlessModelKind::Classifier);
    assert_eq!((classes, arch.as_str()), (5, "vit"));
    let want = expected("vit");
    let x = read_npy(&fixture("vit").join("inputs.npy")).unwrap();
    let mut out = vec![0f32; 2 * classes];
    let (mut rows, mut c) = (0usize, 0usize);
    // SAFETY: `x` holds 2 × 3 × 32 × 32 floats, `out` 2 × 5.
    let s = unsafe {
        torchless_classify(
            m.0,
            x.data.as_ptr(),
            2,
            3,
            32,
            32,
            out.as_mut_ptr(),
            out.len(),
            &mut rows,
            &mut c,
        )
    };
    assert_eq!(s, TorchlessStatus::Ok, "{}", last_error());
    assert_eq!((rows, c), (2, 5));
    close(&out, &floats(&want["logits"]));
    let labels: Vec<String> = (0..classes).map(|i| label(&m, i).unwrap()).collect();
    let want_labels: Vec<String> = want["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, want_labels);
    assert_eq!(label(&m, classes), None);
    assert!(last_error().contains("out of range"), "{}", last_error());
}
