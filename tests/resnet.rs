//! torchvision ResNets against PyTorch: logits of resnet18 and resnet50 with generated weights
//! (BatchNorm statistics included, so folding is exercised), strict state_dict matching, and
//! torchvision's image preprocessing on committed PNG/JPEG files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use sha2::{Digest, Sha256};
use torchless::npy::read_npy;
use torchless::preprocess::{load_image, Preprocess};
use torchless::{Classifier, DeviceSpec, LoadOptions, ResNetArch};

use crate::common::fixture;

// The fixture generator of scripts/resnet_fixtures.py, bit for bit:
//   key(name) = FNV-1a 32 of the name's UTF-8 bytes
//   x = (i * 0x9E3779B1 + key) mod 2^32, then lowbias32:
//   x ^= x >> 16; x *= 0x7FEB352D; x ^= x >> 15; x *= 0x846CA68B; x ^= x >> 16 (mod 2^32)
//   u = x / 2^31 - 1 (f64, exact), value = (center + u * spread) as f32 (f64 mul, f64 add)
//   conv weight [O,I,kh,kw]: 0, sqrt(6/(I*kh*kw)); bn weight: 1, 0.25; bn bias: 0, 0.1;
//   running_mean: 0, 0.1; running_var: 1, 0.5; fc.weight [C,F]: 0, 1/sqrt(F); fc.bias: 0, 0.1;
//   "input": 0, 2; num_batches_tracked: int64 0.

fn fnv1a32(name: &str) -> u32 {
    name.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

fn uniform(key: u32, i: usize) -> f64 {
    let mut x = (i as u32).wrapping_mul(0x9E37_79B1).wrapping_add(key);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^= x >> 16;
    x as f64 / (1u64 << 31) as f64 - 1.0
}

fn center_spread(name: &str, shape: &[usize]) -> (f64, f64) {
    let leaf = name.rsplit('.').next().unwrap();
    match (name, leaf) {
        ("input", _) => (0.0, 2.0),
        ("fc.weight", _) => (0.0, 1.0 / (shape[1] as f64).sqrt()),
        ("fc.bias", _) => (0.0, 0.1),
        _ if shape.len() == 4 => (0.0, (6.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt()),
        (_, "weight") => (1.0, 0.25),
        (_, "bias") => (0.0, 0.1),
        (_, "running_mean") => (0.0, 0.1),
        (_, "running_var") => (1.0, 0.5),
        _ => panic!("no generator rule for {name}"),
    }
}

/// The generated values of tensor `name`.
pub fn generated(name: &str, shape: &[usize]) -> Vec<f32> {
    let (center, spread) = center_spread(name, shape);
    let key = fnv1a32(name);
    let n: usize = shape.iter().product();
    (0..n)
        .map(|i| (center + uniform(key, i) * spread) as f32)
        .collect()
}

/// The generated state_dict of `arch`, in torchvision's order (`num_batches_tracked` as I64 0).
pub fn generated_state_dict(arch: ResNetArch, classes: usize) -> Vec<(String, Tensor)> {
    arch.state_dict_shapes(classes)
        .into_iter()
        .map(|(name, shape)| {
            let t = if name.ends_with("num_batches_tracked") {
                Tensor::zeros((), DType::I64, &Device::Cpu).unwrap()
            } else {
                Tensor::from_vec(generated(&name, &shape), shape, &Device::Cpu).unwrap()
            };
            (name, t)
        })
        .collect()
}

pub fn expected() -> &'static Value {
    static E: OnceLock<Value> = OnceLock::new();
    E.get_or_init(|| {
        serde_json::from_str(
            &std::fs::read_to_string(fixture("resnet/expected.json")).expect(
                "tests/fixtures/resnet/expected.json (run scripts/make_fixtures.py resnet)",
            ),
        )
        .unwrap()
    })
}

pub fn num_classes(arch: ResNetArch) -> usize {
    expected()["models"][arch.name()]["num_classes"]
        .as_u64()
        .unwrap() as usize
}

/// Writes `tensors` as a safetensors file.
pub fn save(tensors: &[(String, Tensor)], path: &Path) {
    let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

/// `model.safetensors` of the generated fixture weights of `arch`, written once per test run.
pub fn weights_file(arch: ResNetArch) -> PathBuf {
    static DONE: Mutex<Vec<ResNetArch>> = Mutex::new(Vec::new());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("resnet-fixtures");
    let path = dir.join(format!("{}.safetensors", arch.name()));
    let mut done = DONE.lock().unwrap();
    if !done.contains(&arch) {
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!(".{}.{}.tmp", arch.name(), std::process::id()));
        save(&generated_state_dict(arch, num_classes(arch)), &tmp);
        std::fs::rename(&tmp, &path).unwrap();
        done.push(arch);
    }
    path
}

pub fn expected_logits(arch: ResNetArch) -> Vec<Vec<f32>> {
    expected()["models"][arch.name()]["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

/// ‖a − b‖ / ‖b‖ over all rows.
pub fn rel_err(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut d, mut n) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            d += (*p as f64 - *q as f64).powi(2);
            n += (*q as f64).powi(2);
        }
    }
    (d / n).sqrt()
}

fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize: None,
    }
}

#[test]
fn generator_reproduces_the_python_state_dict() {
    for arch in [ResNetArch::ResNet18, ResNetArch::ResNet50] {
        let e = &expected()["models"][arch.name()];
        let sd = generated_state_dict(arch, num_classes(arch));
        assert_eq!(sd.len() as u64, e["num_tensors"].as_u64().unwrap());
        let by_name: HashMap<&str, &Tensor> = sd.iter().map(|(n, t)| (n.as_str(), t)).collect();
        for (name, samples) in e["samples"].as_object().unwrap() {
            let v: Vec<f32> = by_name[name.as_str()]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for s in samples.as_array().unwrap() {
                let i = s[0].as_u64().unwrap() as usize;
                assert_eq!(v[i], s[1].as_f64().unwrap() as f32, "{name}[{i}]");
            }
        }
        // sha256 over name + f32 LE bytes in torchvision's state_dict order: also checks that
        // `state_dict_shapes` lists torchvision's tensors in its order.
        let mut h = Sha256::new();
        for (name, t) in &sd {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            h.update(name.as_bytes());
            for x in t.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
                h.update(x.to_le_bytes());
            }
        }
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, e["state_dict_sha256"].as_str().unwrap(), "{arch}");
    }
    let inputs = read_npy(&fixture("resnet/inputs.npy")).unwrap();
    assert_eq!(inputs.shape, vec![2, 3, 224, 224]);
    assert_eq!(inputs.data, generated("input", &inputs.shape));
}

fn parity(arch: ResNetArch) {
    let model = Classifier::load(&weights_file(arch), arch, &cpu()).unwrap();
    assert_eq!(model.num_classes(), num_classes(arch));
    let inputs = read_npy(&fixture("resnet/inputs.npy")).unwrap();
    let got = model.classify(&inputs.data, 2).unwrap();
    let want = expected_logits(arch);
    let err = rel_err(&got, &want);
    assert!(err < 1e-4, "{arch}: relative error {err}");
    // Batch items are independent: the second image alone gives the same logits.
    let one = model.classify(&inputs.data[3 * 224 * 224..], 1).unwrap();
    assert!(rel_err(&one, &want[1..]) < 1e-4);
}

#[test]
fn resnet18_logits_match_pytorch() {
    parity(ResNetArch::ResNet18);
}

#[test]
fn resnet50_logits_match_pytorch() {
    parity(ResNetArch::ResNet50);
}

fn load_err(path: &Path, arch: ResNetArch) -> String {
    match Classifier::load(path, arch, &cpu()) {
        Ok(_) => panic!("{} loaded as {arch}", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_state_dict_of_another_depth_names_the_first_mismatching_tensor() {
    let r18 = weights_file(ResNetArch::ResNet18);
    let e = load_err(&r18, ResNetArch::ResNet34);
    assert!(e.contains("missing tensor `layer1.2.conv1.weight`"), "{e}");
    assert!(e.contains("resnet34"), "{e}");
    let e = load_err(&r18, ResNetArch::ResNet50);
    assert!(
        e.contains("`layer1.0.conv1.weight` has shape [64, 64, 3, 3]")
            && e.contains("[64, 64, 1, 1]"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    // A tensor resnet18 does not have (as in a resnet34 checkpoint loaded as resnet18).
    let mut sd = generated_state_dict(ResNetArch::ResNet18, 10);
    let extra = Tensor::zeros((64, 64, 3, 3), DType::F32, &Device::Cpu).unwrap();
    sd.push(("layer1.2.conv1.weight".into(), extra));
    let p = dir.path().join("extra.safetensors");
    save(&sd, &p);
    let e = load_err(&p, ResNetArch::ResNet18);
    assert!(
        e.contains("unexpected tensor `layer1.2.conv1.weight`"),
        "{e}"
    );

    // Wrong channel count deep in the network.
    let mut sd = generated_state_dict(ResNetArch::ResNet18, 10);
    for (name, t) in sd.iter_mut() {
        if name == "layer4.1.bn2.running_var" {
            *t = Tensor::ones(256, DType::F32, &Device::Cpu).unwrap();
        }
    }
    let p = dir.path().join("channels.safetensors");
    save(&sd, &p);
    let e = load_err(&p, ResNetArch::ResNet18);
    assert!(
        e.contains("`layer4.1.bn2.running_var` has shape [256], resnet18 expects [512]"),
        "{e}"
    );

    // No classifier head at all.
    sd.retain(|(n, _)| !n.starts_with("fc."));
    let p = dir.path().join("headless.safetensors");
    save(&sd, &p);
    let e = load_err(&p, ResNetArch::ResNet18);
    assert!(e.contains("missing tensor `fc.weight`"), "{e}");
}

#[test]
fn png_preprocessing_matches_torchvision_exactly() {
    let want = read_npy(&fixture("resnet/image_preprocessed.npy")).unwrap();
    assert_eq!(want.shape, vec![3, 224, 224]);
    let got = Preprocess::default()
        .load(&fixture("resnet/image.png"))
        .unwrap();
    assert_eq!(got.len(), want.data.len());
    let max = got
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(max < 1e-3, "max |rust - torchvision| = {max}");
}

#[test]
fn jpeg_decodes_and_preprocesses_like_torchvision_up_to_the_decoder() {
    // JPEG decoders differ in their IDCT and chroma upsampling, so torchvision's tensor of
    // image.jpg is only kept in summary: per-channel means, and how far it is from the PNG's
    // tensor on average (the JPEG is a quality-90 copy of the PNG with sharp stripes, so that
    // distance is large). Ours must agree with both to 0.01.
    let img = load_image(&fixture("resnet/image.jpg")).unwrap();
    assert_eq!((img.width, img.height), (300, 260));
    let e = &expected()["jpeg"];
    let png = read_npy(&fixture("resnet/image_preprocessed.npy")).unwrap();
    let got = Preprocess::default()
        .load(&fixture("resnet/image.jpg"))
        .unwrap();
    let hw = 224 * 224;
    for c in 0..3 {
        let mean = got[c * hw..(c + 1) * hw]
            .iter()
            .map(|&x| x as f64)
            .sum::<f64>()
            / hw as f64;
        let want = e["channel_means"][c].as_f64().unwrap();
        assert!(
            (mean - want).abs() < 0.01,
            "channel {c}: mean {mean} vs {want}"
        );
    }
    let diff = got
        .iter()
        .zip(&png.data)
        .map(|(a, b)| (a - b).abs() as f64)
        .sum::<f64>()
        / got.len() as f64;
    let want = e["mean_abs_diff_to_png"].as_f64().unwrap();
    assert!(
        (diff - want).abs() < 0.01,
        "mean |jpeg - png| {diff} vs torchvision's {want}"
    );
}

#[test]
fn unsupported_inputs_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("not-an-image.png");
    std::fs::write(&p, b"GIF89a......").unwrap();
    let e = load_image(&p).unwrap_err().to_string();
    assert!(
        e.contains("not-an-image.png") && e.contains("not supported"),
        "{e}"
    );
    let e = read_npy(&fixture("resnet/expected.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected.json") && e.contains("magic"), "{e}");
    let m = Classifier::load(
        &weights_file(ResNetArch::ResNet18),
        ResNetArch::ResNet18,
        &cpu(),
    )
    .unwrap();
    let e = m.classify(&[0.0; 10], 1).unwrap_err().to_string();
    assert!(e.contains("1 × 3 × 224 × 224"), "{e}");
}

#[test]
fn the_depth_is_read_from_the_block_layout() {
    for arch in ResNetArch::ALL {
        let shapes = arch.state_dict_shapes(10);
        let names: std::collections::HashSet<&str> =
            shapes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(ResNetArch::detect(|n| names.contains(n)), Some(arch));
    }
    assert_eq!(ResNetArch::detect(|n| n == "fc.weight"), None);
    let model = Classifier::load_detected(&weights_file(ResNetArch::ResNet50), &cpu()).unwrap();
    assert_eq!(model.arch(), Some(ResNetArch::ResNet50));
    assert_eq!(model.name(), "resnet50");
}

/// The C ABI (`capi` feature, on in `cargo test --workspace`): a ResNet state_dict file loads
/// as a classifier and `torchless_classify` gives PyTorch's logits.
#[cfg(feature = "capi")]
#[test]
fn the_c_abi_classifies_with_pytorch_logits() {
    use std::ffi::CString;
    use torchless::capi::*;

    let path = CString::new(weights_file(ResNetArch::ResNet18).to_str().unwrap()).unwrap();
    let mut m = std::ptr::null_mut();
    // SAFETY: valid strings and a writable out pointer.
    let s =
        unsafe { torchless_model_load(path.as_ptr(), c"cpu".as_ptr(), c"f32".as_ptr(), &mut m) };
    assert_eq!(s, TorchlessStatus::Ok);
    let inputs = read_npy(&fixture("resnet/inputs.npy")).unwrap();
    let classes = num_classes(ResNetArch::ResNet18);
    let mut out = vec![0f32; 2 * classes];
    let (mut rows, mut cols) = (0usize, 0usize);
    // SAFETY: a live handle and buffers of the stated sizes.
    let s = unsafe {
        torchless_classify(
            m,
            inputs.data.as_ptr(),
            2,
            3,
            224,
            224,
            out.as_mut_ptr(),
            out.len(),
            &mut rows,
            &mut cols,
        )
    };
    assert_eq!(s, TorchlessStatus::Ok);
    assert_eq!((rows, cols), (2, classes));
    let got: Vec<Vec<f32>> = out.chunks(classes).map(<[f32]>::to_vec).collect();
    let err = rel_err(&got, &expected_logits(ResNetArch::ResNet18));
    assert!(err < 1e-4, "relative error {err}");
    // A grayscale batch is refused with a status, not run.
    // SAFETY: as above.
    let s = unsafe {
        torchless_classify(
            m,
            inputs.data.as_ptr(),
            2,
            1,
            224,
            224,
            out.as_mut_ptr(),
            out.len(),
            &mut rows,
            &mut cols,
        )
    };
    assert_eq!(s, TorchlessStatus::InvalidArgument);
    // SAFETY: the handle from torchless_model_load, freed once.
    unsafe { torchless_model_free(m) };
}
