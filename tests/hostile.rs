//! The hostile corpus (`tests/fixtures/hostile/`, made by `scripts/make_hostile.py`): every
//! file is fed to every command that reads it — `convert`, `inspect`, `verify`, `classify`, and `embed`
//! and `generate` with the file as a model folder's `pytorch_model.bin` — under a 4 GiB
//! address-space limit and a kill timer. Each must be refused cleanly: a non-zero exit (never a
//! signal), the expected words in the message, no output and no temporary file left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::common::{fixture, s, temp_files};

/// Address space a command may map: a naive reader of these files needs terabytes.
const ADDRESS_SPACE: u64 = 4 << 30;
/// A hang guard, far above the milliseconds a refusal takes (not a timing assertion).
const KILL_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Deserialize)]
struct Entry {
    file: String,
    #[serde(default)]
    class: String,
    #[serde(default)]
    expect: Option<String>,
    #[serde(default)]
    expect_ok: bool,
    /// The commands that read this file (names safetensors cannot hold only matter to
    /// `convert`; every command may read them).
    #[serde(default)]
    commands: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    files: Vec<Entry>,
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(fixture("hostile/manifest.json"))
        .expect("tests/fixtures/hostile/manifest.json (run scripts/make_hostile.py)");
    serde_json::from_str::<Manifest>(&text)
        .expect("manifest parses")
        .files
}

/// Runs the CLI with an address-space limit; kills it after [`KILL_AFTER`].
fn limited(args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_torchless"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
    // which is async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run torchless");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if start.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "torchless {args:?} still running after {KILL_AFTER:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A model folder holding `file` as its `pytorch_model.bin`, next to a real fixture's configs.
fn model_folder(root: &Path, fixture_dir: &str, file: &Path) -> PathBuf {
    let dir = root.join(fixture_dir.replace('/', "_"));
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture(fixture_dir)).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "pytorch_model.bin" || name == "model.safetensors" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            let sub = dir.join(&name);
            std::fs::create_dir_all(&sub).unwrap();
            for f in std::fs::read_dir(e.path()).unwrap() {
                let f = f.unwrap();
                std::fs::copy(f.path(), sub.join(f.file_name())).unwrap();
            }
        } else {
            std::fs::copy(e.path(), dir.join(&name)).unwrap();
        }
    }
    std::fs::copy(file, dir.join("pytorch_model.bin")).unwrap();
    dir
}

/// Checks one run: refused (or, for `expect_ok` files, accepted), never killed by a signal.
fn check(e: &Entry, what: &str, out: &Output, expect: Option<&str>) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or_else(|| {
        panic!(
            "{} / {what}: killed by a signal ({:?}); stderr: {stderr}",
            e.file, out.status
        )
    });
    if e.expect_ok {
        assert_eq!(code, 0, "{} / {what}: {stderr}", e.file);
        return;
    }
    assert_eq!(code, 1, "{} / {what} ({}): {stderr}", e.file, e.class);
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{} / {what}: {stderr}",
        e.file
    );
    if let Some(want) = expect {
        assert!(
            stderr.contains(want),
            "{} / {what}: expected {want:?} in: {stderr}",
            e.file
        );
    }
}

#[test]
fn every_hostile_file_is_refused_cleanly_by_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let image = fixture("resnet/image.png");
    for e in manifest() {
        let path = fixture(&format!("hostile/{}", e.file));
        if e.file.ends_with(".input.pt") || !e.file.ends_with(".pt") {
            continue;
        }
        let expect = e.expect.as_deref();
        let out_dir = tmp.path().join(format!("out-{}", e.file));
        std::fs::create_dir_all(&out_dir).unwrap();
        let target = out_dir.join("out.safetensors");
        let out = limited(&["convert", s(&path), s(&target)]);
        check(&e, "convert", &out, expect);
        if !e.expect_ok {
            assert!(!target.exists(), "{}: convert wrote an output", e.file);
        }
        assert!(
            temp_files(&out_dir).is_empty(),
            "{}: temp file left",
            e.file
        );
        if e.expect_ok {
            std::fs::remove_file(&target).unwrap();
            continue;
        }
        let runs = |c: &str| e.commands.iter().any(|x| x == c);
        if runs("inspect") {
            check(&e, "inspect", &limited(&["inspect", s(&path)]), expect);
            // As the checkpoint side of `verify` (the output side is a real safetensors file).
            let real = fixture("convert/input.safetensors");
            check(
                &e,
                "verify",
                &limited(&["verify", s(&path), s(&real)]),
                expect,
            );
        }
        if !runs("classify") {
            continue;
        }
        let out = limited(&[
            "classify",
            "--model",
            s(&path),
            "--arch",
            "resnet18",
            "--image",
            s(&image),
        ]);
        check(&e, "classify", &out, expect);
        let st = model_folder(&out_dir, "bert/tiny-st", &path);
        check(
            &e,
            "embed",
            &limited(&["embed", "--model", s(&st), "--text", "hi"]),
            expect,
        );
        let gpt2 = model_folder(&out_dir, "decoders/gpt2", &path);
        let out = limited(&[
            "generate",
            "--model",
            s(&gpt2),
            "--prompt",
            "hi",
            "--max-new-tokens",
            "2",
        ]);
        check(&e, "generate", &out, expect);
    }
}

#[test]
fn verify_replays_recorded_options_under_the_budget() {
    let out = fixture("hostile/verify_rename_bomb.safetensors");
    let inp = fixture("hostile/verify_rename_bomb.input.pt");
    let run = limited(&["verify", s(&inp), s(&out)]);
    let e = Entry {
        file: "verify_rename_bomb.safetensors".into(),
        class: "recorded rename rules".into(),
        expect: None,
        expect_ok: false,
        commands: vec!["verify".into()],
    };
    check(&e, "verify", &run, Some("name limit"));
}

#[test]
fn the_output_may_not_be_the_input() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model.pt");
    std::fs::copy(fixture("convert/zip_state_dict.pt"), &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    // The same path, and the same file through a symlink.
    let link = tmp.path().join("link.safetensors");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    for target in [&src, &link] {
        let out = limited(&["convert", s(&src), s(target)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("is the input file"), "{stderr}");
    }
    assert_eq!(
        std::fs::read(&src).unwrap(),
        before,
        "the input was changed"
    );
    assert!(temp_files(tmp.path()).is_empty());
}

#[test]
fn a_fifo_or_a_symlink_out_of_the_folder_is_refused_without_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo.pt");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file system node.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = limited(&["inspect", s(&fifo)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");

    // A folder whose weights file links to a file outside it.
    let secret = tmp.path().join("secret.pt");
    std::fs::copy(fixture("convert/zip_state_dict.pt"), &secret).unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("pytorch_model.bin")).unwrap();
    let out = limited(&["inspect", s(&dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("outside the model folder"), "{stderr}");

    // A shard index naming a FIFO.
    let dir = tmp.path().join("sharded");
    std::fs::create_dir(&dir).unwrap();
    let shard = dir.join("pytorch_model-00001-of-00001.bin");
    let c = std::ffi::CString::new(s(&shard)).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::write(
        dir.join("pytorch_model.bin.index.json"),
        r#"{"metadata": {}, "weight_map": {"w": "pytorch_model-00001-of-00001.bin"}}"#,
    )
    .unwrap();
    let out = limited(&["inspect", s(&dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn sigterm_during_a_conversion_leaves_no_temporary_file() {
    // A conversion large enough to be caught in flight: 64 MiB of zeros as one tensor.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("big.safetensors");
    let n = 16usize << 20;
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        n * 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + n * 4, 0);
    std::fs::write(&src, bytes).unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("out.safetensors");
    for _ in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_torchless"))
            .args(["convert", "--dtype", "f16", s(&src), s(&target)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the temporary file exists, then terminate.
        let start = Instant::now();
        while temp_files(&out_dir).is_empty()
            && child.try_wait().unwrap().is_none()
            && start.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        // SAFETY: kill(2) with a pid this test spawned and has not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(
            temp_files(&out_dir).is_empty(),
            "temp file left ({status:?})"
        );
        if status.code() == Some(130) {
            assert!(!target.exists());
            return;
        }
        // The conversion finished before the signal: try again.
        let _ = std::fs::remove_file(&target);
    }
    panic!("never caught the conversion in flight");
}

#[test]
fn compressed_records_convert_exactly_streamed_from_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("out.safetensors");
    let out = crate::common::torchless(&[
        "convert",
        s(&fixture("hostile/deflated_state_dict.pt")),
        s(&target),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (got, _) = crate::common::read_output(&target);
    let zoo = crate::common::manifest();
    let want = &zoo["zip_state_dict.pt"].tensors;
    assert_eq!(got.len(), want.len());
    for (name, e) in want {
        let g = &got[name];
        assert_eq!((&g.dtype, &g.shape), (&e.dtype, &e.shape), "{name}");
        assert_eq!(crate::common::sha256_hex(&g.bytes), e.sha256, "{name}");
    }
}
