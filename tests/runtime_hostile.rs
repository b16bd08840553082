//! Hostile inputs to the runtime: a `max_new_tokens` far beyond the model's positions (capped,
//! not allocated), rotary and size fields that cannot describe a model (refused by name), and
//! model folders whose shard index names a file outside the folder or a FIFO (refused before
//! anything is opened, so nothing blocks).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candle_core::DType;
use serde_json::{json, Value};
use torchless::{DeviceSpec, Error, GenerateOptions, LoadOptions, StopReason, TextGenerator};
use torchless_models::ConfigError;

use crate::common::{fixture, s};

/// How long a load may take before the test calls it hung.
const HANG: Duration = Duration::from_secs(30);

fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceSpec::Cpu,
        dtype: DType::F32,
        quantize: None,
    }
}

/// A copy of `tests/fixtures/decoders/<kind>` in a fresh temporary folder.
fn copy_fixture(kind: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(&format!("decoders/{kind}"))).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let p = dir.join("config.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(&p, c.to_string()).unwrap();
}

fn load_err(dir: &Path) -> Error {
    match TextGenerator::load(dir, &cpu()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

/// Runs `torchless` with `args`, killing it (and failing) if it runs past [`HANG`].
fn torchless_within(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_torchless"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run torchless");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("torchless {args:?} still ran after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Loads in a thread and fails if it does not finish within [`HANG`].
fn load_within(dir: &Path) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(TextGenerator::load(&dir, &cpu()).map(|_| ()));
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("loading still ran after {HANG:?}"))
}

#[test]
fn a_huge_max_new_tokens_generates_until_the_context_is_full() {
    // gpt2: 64 positions; llama: 96. An 8-token prompt fills the cache after
    // `positions - 8` more tokens, and the token chosen at the last position is one more.
    for (kind, positions) in [("gpt2", 64), ("llama", 96)] {
        let g = TextGenerator::load(&fixture(&format!("decoders/{kind}")), &cpu()).unwrap();
        for max_new_tokens in [1_000_000_000_000, usize::MAX] {
            let opts = GenerateOptions {
                max_new_tokens,
                stop_at_eos: false,
                ..Default::default()
            };
            let mut streamed = 0usize;
            let out = g
                .generate(&[1, 2, 3, 4, 5, 6, 7, 8], &opts, |_| {
                    streamed += 1;
                    true
                })
                .unwrap();
            assert_eq!(out.stop, StopReason::ContextFull, "{kind}");
            assert_eq!(out.new_ids.len(), positions - 8 + 1, "{kind}");
            assert_eq!(streamed, out.new_ids.len());
        }
        // A prompt that already fills every position still yields its one token.
        let full: Vec<u32> = (0..positions as u32).collect();
        let opts = GenerateOptions {
            max_new_tokens: usize::MAX,
            stop_at_eos: false,
            ..Default::default()
        };
        let out = g.generate(&full, &opts, |_| true).unwrap();
        assert_eq!(
            (out.stop, out.new_ids.len()),
            (StopReason::ContextFull, 1),
            "{kind}"
        );
    }
}

#[test]
fn zero_negative_and_huge_rope_values_are_refused_naming_the_field() {
    let dir = copy_fixture("llama");
    let original = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    // The untouched copy loads.
    TextGenerator::load(dir.path(), &cpu()).unwrap();
    for key in [
        "rope_theta",
        "factor",
        "low_freq_factor",
        "high_freq_factor",
        "original_max_position_embeddings",
    ] {
        for bad in [0.0, -8.0] {
            std::fs::write(dir.path().join("config.json"), &original).unwrap();
            edit_config(dir.path(), |c| c["rope_parameters"][key] = json!(bad));
            let e = load_err(dir.path());
            let field = format!("rope_parameters.{key}");
            match &e {
                Error::InvalidConfig {
                    file,
                    cause: ConfigError::NotPositive { field: f, value },
                } => {
                    assert_eq!((f, *value), (&field, bad));
                    assert!(file.ends_with("config.json"));
                }
                other => panic!("{key} = {bad}: {other}"),
            }
            assert!(e.to_string().contains(&field), "{e}");
        }
    }
    // 1e400 is out of f64's range: the JSON reader refuses it, naming the file and position.
    std::fs::write(
        dir.path().join("config.json"),
        original.replace("\"factor\": 8.0", "\"factor\": 1e400"),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(
        matches!(&e, Error::Config { file, reason } if file.ends_with("config.json")
            && reason.contains("number out of range")),
        "{e}"
    );
    // transformers 4 fields: `rope_theta` and a linear `rope_scaling`.
    std::fs::write(dir.path().join("config.json"), &original).unwrap();
    edit_config(dir.path(), |c| {
        c.as_object_mut().unwrap().remove("rope_parameters");
        c["rope_theta"] = json!(-10000.0);
    });
    assert!(matches!(
        load_err(dir.path()),
        Error::InvalidConfig { cause: ConfigError::NotPositive { field, value }, .. }
            if field == "rope_theta" && value == -10000.0
    ));
    edit_config(dir.path(), |c| {
        c["rope_theta"] = json!(10000.0);
        c["rope_scaling"] = json!({"rope_type": "linear", "factor": 0});
    });
    assert!(matches!(
        load_err(dir.path()),
        Error::InvalidConfig { cause: ConfigError::NotPositive { field, value }, .. }
            if field == "rope_scaling.factor" && value == 0.0
    ));
    // The command line prints one line naming the field.
    std::fs::write(dir.path().join("config.json"), &original).unwrap();
    edit_config(dir.path(), |c| c["rope_parameters"]["factor"] = json!(-1.5));
    let out = torchless_within(&[
        "generate",
        "--model",
        s(dir.path()),
        "--device",
        "cpu",
        "--prompt-ids",
        "1,2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("`rope_parameters.factor` is -1.5: it must be a finite number > 0"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn gpt2_sizes_and_epsilon_that_cannot_work_are_refused_naming_the_field() {
    let dir = copy_fixture("gpt2");
    let original = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let cases: [(&str, Value, ConfigError); 4] = [
        (
            "n_positions",
            json!(0),
            ConfigError::Zero {
                field: "n_positions".into(),
            },
        ),
        (
            "n_head",
            json!(0),
            ConfigError::Zero {
                field: "n_head".into(),
            },
        ),
        (
            "layer_norm_epsilon",
            json!(-1e-5),
            ConfigError::Negative {
                field: "layer_norm_epsilon".into(),
                value: -1e-5,
            },
        ),
        (
            "n_embd",
            json!(0),
            ConfigError::Zero {
                field: "n_embd".into(),
            },
        ),
    ];
    for (key, value, want) in cases {
        std::fs::write(dir.path().join("config.json"), &original).unwrap();
        edit_config(dir.path(), |c| c[key] = value);
        match load_err(dir.path()) {
            Error::InvalidConfig { cause, .. } => assert_eq!(cause, want, "{key}"),
            other => panic!("{key}: {other}"),
        }
    }
    std::fs::write(dir.path().join("config.json"), &original).unwrap();
    edit_config(dir.path(), |c| c["n_head"] = json!(5));
    let e = load_err(dir.path()).to_string();
    assert!(e.contains("n_embd 64 is not a multiple of n_head 5"), "{e}");
}

/// A GPT-2 folder whose weights are a one-shard `model.safetensors.index.json`; returns the
/// folder and the shard's path in it (not yet created).
fn sharded_gpt2(root: &Path) -> (PathBuf, PathBuf) {
    let src = fixture("decoders/gpt2-safetensors");
    let dir = root.join("model");
    std::fs::create_dir(&dir).unwrap();
    for f in ["config.json", "generation_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shard = "model-00001-of-00001.safetensors";
    let weight_map: serde_json::Map<String, Value> = st
        .names()
        .into_iter()
        .map(|n| (n.to_string(), json!(shard)))
        .collect();
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        json!({"metadata": {}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();
    (dir.clone(), dir.join(shard))
}

#[test]
fn a_shard_linked_outside_the_folder_is_refused_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let (dir, shard) = sharded_gpt2(root.path());
    let weights = fixture("decoders/gpt2-safetensors/model.safetensors");
    // The same shard as a regular file in the folder loads (the index itself is fine).
    std::fs::copy(&weights, &shard).unwrap();
    load_within(&dir).unwrap();
    std::fs::remove_file(&shard).unwrap();
    // As a link to a file outside the folder: refused before it is opened.
    let outside = root.path().join("elsewhere.safetensors");
    std::fs::copy(&weights, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &shard).unwrap();
    match load_within(&dir) {
        Err(Error::OutsideFolder { path, folder }) => {
            assert_eq!(path, shard);
            assert_eq!(folder, dir);
        }
        Err(other) => panic!("{other}"),
        Ok(()) => panic!("a shard outside the folder was loaded"),
    }
    let out = torchless_within(&[
        "generate",
        "--model",
        s(&dir),
        "--device",
        "cpu",
        "--prompt-ids",
        "1,2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("model-00001-of-00001.safetensors: resolves outside the model folder"),
        "{err}"
    );
    // A relative link climbing out (`../`) is the same.
    std::fs::remove_file(&shard).unwrap();
    std::os::unix::fs::symlink("../elsewhere.safetensors", &shard).unwrap();
    assert!(matches!(
        load_within(&dir),
        Err(Error::OutsideFolder { .. })
    ));
    // A link that stays inside the folder is fine.
    std::fs::remove_file(&shard).unwrap();
    std::fs::copy(&weights, dir.join("real.safetensors")).unwrap();
    std::os::unix::fs::symlink("real.safetensors", &shard).unwrap();
    load_within(&dir).unwrap();
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_shard_or_tokenizer_is_refused_without_blocking() {
    let root = tempfile::tempdir().unwrap();
    let (dir, shard) = sharded_gpt2(root.path());
    mkfifo(&shard);
    match load_within(&dir) {
        Err(Error::NotRegularFile { path, kind }) => {
            assert_eq!(path, shard);
            assert_eq!(kind, "FIFO");
        }
        Err(other) => panic!("{other}"),
        Ok(()) => panic!("a FIFO shard was loaded"),
    }
    let out = torchless_within(&[
        "generate",
        "--model",
        s(&dir),
        "--device",
        "cpu",
        "--prompt-ids",
        "1,2",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("model-00001-of-00001.safetensors: is not a regular file (a FIFO)"),
        "{err}"
    );
    // The weights fine, the tokenizer a FIFO: refused too (it was silently skipped before).
    std::fs::remove_file(&shard).unwrap();
    std::fs::copy(
        fixture("decoders/gpt2-safetensors/model.safetensors"),
        &shard,
    )
    .unwrap();
    mkfifo(&dir.join("tokenizer.json"));
    assert!(matches!(
        load_within(&dir),
        Err(Error::NotRegularFile { kind: "FIFO", .. })
    ));
    // A FIFO given directly as the weights file is refused as well.
    let fifo = root.path().join("weights.safetensors");
    mkfifo(&fifo);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(torchless::Weights::open(&fifo).map(|_| ()));
    });
    let got = rx.recv_timeout(HANG).expect("Weights::open hung on a FIFO");
    assert!(matches!(
        got,
        Err(Error::NotRegularFile { kind: "FIFO", .. })
    ));
}
