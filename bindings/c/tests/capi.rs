//! The C ABI called as C calls it (raw pointers, statuses, the per-thread message) on the tiny
//! sentence-transformers fixture, values against sentence-transformers; `torchless_run` on
//! `torch.export` programs (module `program`); and `smoke.c` compiled with `cc` and linked
//! against the built `libtorchless.so`.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use torchless::capi::*;

mod common;
mod program;
mod text_classifier;
mod vision;
use common::{last_error, Model};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/bert")
}

fn load(dir: &Path, device: Option<&str>, dtype: Option<&str>) -> (TorchlessStatus, Model) {
    let dir = CString::new(dir.to_str().unwrap()).unwrap();
    let device = device.map(|s| CString::new(s).unwrap());
    let dtype = dtype.map(|s| CString::new(s).unwrap());
    let mut m = null_mut();
    // SAFETY: valid strings (or NULL) and a writable out pointer.
    let s = unsafe {
        torchless_model_load(
            dir.as_ptr(),
            device.as_ref().map_or(null(), |c| c.as_ptr()),
            dtype.as_ref().map_or(null(), |c| c.as_ptr()),
            &mut m,
        )
    };
    (s, Model(m))
}

fn tiny() -> Model {
    let (s, m) = load(&fixtures().join("tiny-st"), Some("cpu"), Some("f32"));
    assert_eq!(s, TorchlessStatus::Ok);
    m
}

fn embed(m: &Model, texts: &[&[u8]]) -> (TorchlessStatus, Vec<f32>, usize, usize) {
    let owned: Vec<CString> = texts.iter().map(|t| CString::new(*t).unwrap()).collect();
    let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    let mut out = vec![0f32; texts.len() * 32];
    let (mut rows, mut dim) = (0usize, 0usize);
    // SAFETY: live pointers and buffers of the stated sizes.
    let s = unsafe {
        torchless_embed(
            m.0,
            ptrs.as_ptr(),
            ptrs.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut rows,
            &mut dim,
        )
    };
    (s, out, rows, dim)
}

fn expected() -> (Vec<String>, Vec<Vec<f32>>) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
            .unwrap();
    let texts = v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string());
    let emb = v["embeddings"].as_array().unwrap().iter().map(|r| {
        r.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    });
    (texts.collect(), emb.collect())
}

#[test]
fn embeddings_match_sentence_transformers() {
    let m = tiny();
    let (texts, want) = expected();
    let bytes: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    let (s, out, rows, dim) = embed(&m, &bytes);
    assert_eq!((s, rows, dim), (TorchlessStatus::Ok, 8, 32));
    assert!(torchless_last_error().is_null());
    for (got, want) in out.chunks(32).zip(&want) {
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

#[test]
fn info_names_the_model() {
    let m = tiny();
    let mut info = std::mem::MaybeUninit::<TorchlessModelInfo>::uninit();
    // SAFETY: a live handle and a writable out struct.
    assert_eq!(
        unsafe { torchless_model_info(m.0, info.as_mut_ptr()) },
        TorchlessStatus::Ok
    );
    // SAFETY: written by the OK call above.
    let info = unsafe { info.assume_init() };
    assert_eq!(info.kind, TorchlessModelKind::Encoder);
    assert_eq!(info.output_dim, 32);
    // SAFETY: strings owned by the live model.
    let (arch, name) = unsafe { (CStr::from_ptr(info.architecture), CStr::from_ptr(info.name)) };
    assert_eq!(
        (arch.to_str().unwrap(), name.to_str().unwrap()),
        ("bert", "tiny-st")
    );
    // SAFETY: NULL handle and out are checked.
    assert_eq!(
        unsafe { torchless_model_info(null(), null_mut()) },
        TorchlessStatus::NullPointer
    );
    assert_eq!(last_error(), "model is NULL");
    // SAFETY: as above.
    assert_eq!(
        unsafe { torchless_model_info(m.0, null_mut()) },
        TorchlessStatus::NullPointer
    );
}

#[test]
fn bad_load_arguments_are_statuses() {
    let (s, m) = load(&fixtures().join("no-such-model"), None, None);
    assert_eq!(s, TorchlessStatus::Io);
    assert!(m.0.is_null(), "no handle on failure");
    assert!(last_error().contains("no-such-model"), "{}", last_error());
    let (s, _) = load(&fixtures().join("tiny-st"), Some("cpu"), Some("f8"));
    assert_eq!(s, TorchlessStatus::InvalidArgument);
    assert!(
        last_error().contains("unknown dtype \"f8\""),
        "{}",
        last_error()
    );
    let (s, _) = load(&fixtures().join("tiny-st"), Some("tpu"), None);
    assert_eq!(s, TorchlessStatus::InvalidArgument);
    assert!(
        last_error().contains("unknown device \"tpu\""),
        "{}",
        last_error()
    );
    // A folder with no config.json is not a model.
    let (s, _) = load(&fixtures(), None, None);
    assert_eq!(s, TorchlessStatus::InvalidModel);
    assert!(last_error().contains("config.json"), "{}", last_error());
    let mut m = null_mut();
    // SAFETY: NULL dir is checked; out is writable.
    assert_eq!(
        unsafe { torchless_model_load(null(), null(), null(), &mut m) },
        TorchlessStatus::NullPointer
    );
    assert_eq!(last_error(), "dir is NULL");
    let bad = [0x66u8, 0xff, 0];
    // SAFETY: a NUL-terminated (non-UTF-8) string; NULL out is checked first.
    assert_eq!(
        unsafe { torchless_model_load(bad.as_ptr().cast(), null(), null(), null_mut()) },
        TorchlessStatus::NullPointer
    );
    // SAFETY: as above, with a writable out.
    assert_eq!(
        unsafe { torchless_model_load(bad.as_ptr().cast(), null(), null(), &mut m) },
        TorchlessStatus::InvalidArgument
    );
    assert!(
        last_error().starts_with("dir is not valid UTF-8"),
        "{}",
        last_error()
    );
    // SAFETY: freeing NULL is a no-op.
    unsafe { torchless_model_free(null_mut()) };
}

#[test]
fn bad_embed_arguments_are_statuses() {
    let m = tiny();
    let (s, ..) = embed(&m, &[b"ok", b"caf\xe9"]);
    assert_eq!(s, TorchlessStatus::InvalidArgument);
    assert!(
        last_error().starts_with("texts[1] is not valid UTF-8"),
        "{}",
        last_error()
    );
    let (mut rows, mut dim) = (7usize, 7usize);
    let mut out = [0f32; 64];
    // SAFETY: every pointer is live or NULL; sizes match the buffers.
    unsafe {
        assert_eq!(
            torchless_embed(m.0, null(), 0, out.as_mut_ptr(), 64, &mut rows, &mut dim),
            TorchlessStatus::InvalidArgument
        );
        assert_eq!(last_error(), "empty batch: n_texts is 0");
        assert_eq!(
            torchless_embed(m.0, null(), 2, out.as_mut_ptr(), 64, &mut rows, &mut dim),
            TorchlessStatus::NullPointer
        );
        assert_eq!(last_error(), "texts is NULL");
        let texts = [c"a".as_ptr(), null()];
        assert_eq!(
            torchless_embed(
                m.0,
                texts.as_ptr(),
                2,
                out.as_mut_ptr(),
                64,
                &mut rows,
                &mut dim
            ),
            TorchlessStatus::NullPointer
        );
        assert_eq!(last_error(), "texts[1] is NULL");
        let texts = [c"a".as_ptr(), c"b".as_ptr(), c"c".as_ptr()];
        assert_eq!(
            torchless_embed(
                null(),
                texts.as_ptr(),
                3,
                out.as_mut_ptr(),
                64,
                &mut rows,
                &mut dim
            ),
            TorchlessStatus::NullPointer
        );
        assert_eq!(
            torchless_embed(
                m.0,
                texts.as_ptr(),
                3,
                out.as_mut_ptr(),
                64,
                null_mut(),
                &mut dim
            ),
            TorchlessStatus::NullPointer
        );
        assert_eq!(last_error(), "out_rows is NULL");
        // Too small: the needed sizes are written, the buffer untouched.
        assert_eq!(
            torchless_embed(
                m.0,
                texts.as_ptr(),
                3,
                out.as_mut_ptr(),
                64,
                &mut rows,
                &mut dim
            ),
            TorchlessStatus::BufferTooSmall
        );
        assert_eq!((rows, dim), (3, 32));
        assert_eq!(last_error(), "out holds 64 elements, 96 are needed");
        assert!(out.iter().all(|&x| x == 0.0));
        // The size query: NULL buffer, capacity 0.
        assert_eq!(
            torchless_embed(m.0, texts.as_ptr(), 1, null_mut(), 0, &mut rows, &mut dim),
            TorchlessStatus::BufferTooSmall
        );
        assert_eq!((rows, dim), (1, 32));
        assert_eq!(
            torchless_embed(m.0, texts.as_ptr(), 1, null_mut(), 32, &mut rows, &mut dim),
            TorchlessStatus::NullPointer
        );
        assert_eq!(
            torchless_embed(
                m.0,
                texts.as_ptr(),
                2,
                out.as_mut_ptr(),
                64,
                &mut rows,
                &mut dim
            ),
            TorchlessStatus::Ok
        );
    }
}

#[test]
fn classify_and_generate_refuse_an_encoder() {
    let m = tiny();
    let input = [0f32; 12];
    let mut out = [0f32; 4];
    let (mut rows, mut classes) = (0, 0);
    // SAFETY: live buffers of the stated sizes.
    unsafe {
        let s = torchless_classify(
            m.0,
            input.as_ptr(),
            1,
            3,
            2,
            2,
            out.as_mut_ptr(),
            4,
            &mut rows,
            &mut classes,
        );
        assert_eq!(s, TorchlessStatus::WrongModelKind);
        assert_eq!(last_error(), "torchless_classify: this model is not an image classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)");
        let s = torchless_classify(
            m.0,
            input.as_ptr(),
            1,
            3,
            0,
            2,
            out.as_mut_ptr(),
            4,
            &mut rows,
            &mut classes,
        );
        assert_eq!(s, TorchlessStatus::InvalidArgument);
        assert_eq!(last_error(), "empty input: shape [1, 3, 0, 2]");
        let s = torchless_classify(
            m.0,
            null(),
            1,
            3,
            2,
            2,
            out.as_mut_ptr(),
            4,
            &mut rows,
            &mut classes,
        );
        assert_eq!(s, TorchlessStatus::NullPointer);
        let s = torchless_classify(
            m.0,
            input.as_ptr(),
            usize::MAX,
            3,
            2,
            2,
            out.as_mut_ptr(),
            4,
            &mut rows,
            &mut classes,
        );
        assert_eq!(s, TorchlessStatus::InvalidArgument);

        let ids = [2u32, 5, 9];
        let mut new = [0u32; 32];
        let mut n = 99usize;
        let s = torchless_generate(
            m.0,
            ids.as_ptr(),
            3,
            null(),
            null(),
            new.as_mut_ptr(),
            32,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::WrongModelKind);
        assert_eq!(n, 0);
        assert_eq!(last_error(), "torchless_generate: this model is not a text generator (tiny-st `bert` is a sentence encoder: use torchless_embed)");
        let s = torchless_generate(
            m.0,
            null(),
            0,
            c"Once upon".as_ptr(),
            null(),
            null_mut(),
            0,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::WrongModelKind);
        let s = torchless_generate(
            m.0,
            ids.as_ptr(),
            3,
            c"both".as_ptr(),
            null(),
            null_mut(),
            0,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::InvalidArgument);
        let s = torchless_generate(
            m.0,
            null(),
            0,
            null(),
            null(),
            null_mut(),
            0,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::NullPointer);
        assert_eq!(last_error(), "prompt_ids and prompt_text is NULL");
        let s = torchless_generate(
            m.0,
            ids.as_ptr(),
            0,
            null(),
            null(),
            null_mut(),
            0,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::InvalidArgument);
        // max_new_tokens 32 by default: 8 slots are too few.
        let s = torchless_generate(
            m.0,
            ids.as_ptr(),
            3,
            null(),
            null(),
            new.as_mut_ptr(),
            8,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::BufferTooSmall);
        let mut o = torchless_generate_options_default();
        assert_eq!(
            (o.max_new_tokens, o.temperature, o.top_k, o.top_p, o.seed),
            (32, 0.0, 0, 1.0, 0)
        );
        o.top_p = 0.0;
        let s = torchless_generate(
            m.0,
            ids.as_ptr(),
            3,
            null(),
            &o,
            null_mut(),
            0,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::InvalidArgument);
        assert_eq!(last_error(), "top_p 0 is not in (0, 1]");
        o.top_p = 1.0;
        o.temperature = f32::NAN;
        let s = torchless_generate(
            m.0,
            ids.as_ptr(),
            3,
            null(),
            &o,
            null_mut(),
            0,
            &mut n,
            None,
            null_mut(),
        );
        assert_eq!(s, TorchlessStatus::InvalidArgument);
    }
}

#[test]
fn one_handle_serves_many_threads() {
    let m = tiny();
    let (texts, _) = expected();
    let bytes: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
    let (_, want, ..) = embed(&m, &bytes);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (m, bytes, want) = (&m, &bytes, &want);
            s.spawn(move || {
                for i in 0..4 {
                    let (st, got, ..) = embed(m, bytes);
                    assert_eq!(st, TorchlessStatus::Ok, "thread {t} call {i}");
                    assert_eq!(&got, want, "thread {t} call {i}");
                }
            });
        }
    });
}

// The handle is used from several threads above; the pointer wrapper says so.
// SAFETY: TorchlessModel is Send + Sync (asserted in the runtime's unit tests).
unsafe impl Sync for Model {}

// `cargo test` does not build a cdylib-only package's library for its own tests, so this runs
// after `cargo build -p torchless-capi`: `.ci/run` does both (`-- --ignored`).
#[test]
#[ignore = "needs libtorchless.so: cargo build -p torchless-capi, then cargo test -p torchless-capi -- --ignored"]
fn a_c_program_embeds_through_the_shared_library() {
    // target/<profile>/deps/capi-HASH -> target/<profile>
    let exe = std::env::current_exe().unwrap();
    let lib_dir = exe.parent().unwrap().parent().unwrap();
    assert!(
        lib_dir.join("libtorchless.so").is_file(),
        "libtorchless.so not built in {}",
        lib_dir.display()
    );
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = std::env::temp_dir().join(format!("torchless-smoke-{}", std::process::id()));
    let cc = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&bin)
        .arg(here.join("tests/smoke.c"))
        .arg(format!("-I{}", here.display()))
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-ltorchless")
        .status()
        .unwrap();
    assert!(cc.success(), "cc failed");
    let out = std::process::Command::new(&bin)
        .arg(fixtures().join("tiny-st"))
        .arg(fixtures().join("../graph/ops_elementwise/program.pt2"))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bin);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The program prints the first 4 values of "Hello world" (sentence 1).
    let (_, want) = expected();
    let got: Vec<f32> = stdout
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(got.len(), 4);
    for (a, b) in got.iter().zip(&want[1]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    assert_eq!(stdout.lines().nth(1), Some("wrong kind: torchless_classify: this model is not an image classifier (tiny-st `bert` is a sentence encoder: use torchless_embed)"));
    // ops_elementwise: 2 inputs, 47 outputs, output 0 float32 [2, 3, 4].
    assert_eq!(
        stdout.lines().nth(2),
        Some("program: 2 47 dtype=1 shape=2x3x4")
    );
}

/// Every file of the hostile corpus (`tests/fixtures/hostile/`) is refused by the loader with
/// a status and a message — as a state_dict file (the classifier path) and as a model folder's
/// `pytorch_model.bin` (the encoder path) — and the process goes on.
#[test]
fn every_hostile_file_is_a_status_not_an_abort() {
    // The checks run in a child copy of this test binary whose address space is limited to
    // 4 GiB, so an allocation sized from a hostile file would abort it rather than succeed.
    if std::env::var_os("TORCHLESS_HOSTILE_CHILD").is_none() {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "every_hostile_file_is_a_status_not_an_abort",
            "--test-threads=1",
        ])
        .env("TORCHLESS_HOSTILE_CHILD", "1");
        // SAFETY: runs in the forked child before exec and only calls setrlimit, which is
        // async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 4 << 30,
                    rlim_max: 4 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "hostile loads under a 4 GiB address-space limit failed ({:?}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran no test"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hostile");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap())
            .unwrap();
    let tmp = std::env::temp_dir().join(format!("torchless-capi-hostile-{}", std::process::id()));
    let mut checked = 0;
    for e in manifest["files"].as_array().unwrap() {
        let file = e["file"].as_str().unwrap();
        let loads = e["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "classify");
        if e["expect_ok"].as_bool().unwrap_or(false) || !loads {
            continue;
        }
        let want = e["expect"].as_str().unwrap_or("");
        let (s, m) = load(&root.join(file), Some("cpu"), Some("f32"));
        assert_ne!(s, TorchlessStatus::Ok, "{file} loaded");
        assert!(m.0.is_null());
        let msg = last_error();
        assert!(msg.contains(want), "{file}: expected {want:?} in {msg}");
        // The same bytes as an encoder folder's weights.
        let dir = tmp.join(file);
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        let st = fixtures().join("tiny-st");
        for f in [
            "config.json",
            "tokenizer.json",
            "modules.json",
            "1_Pooling/config.json",
        ] {
            std::fs::copy(st.join(f), dir.join(f)).unwrap();
        }
        std::fs::copy(root.join(file), dir.join("pytorch_model.bin")).unwrap();
        let (s, m) = load(&dir, Some("cpu"), Some("f32"));
        assert_ne!(s, TorchlessStatus::Ok, "{file} loaded as a folder");
        assert!(m.0.is_null());
        let msg = last_error();
        assert!(
            msg.contains(want),
            "{file} (folder): expected {want:?} in {msg}"
        );
        checked += 1;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(checked >= 15, "only {checked} hostile files checked");
}
