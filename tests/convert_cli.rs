//! The `torchless` binary as a user runs it: exit codes, one-line errors, nothing left behind.

use std::path::Path;

use crate::common::*;

#[test]
fn convert_then_verify_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let src = fixture("convert/zip_state_dict.pt");
    let o = torchless(&["convert", s(&src), s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("converted "), "{stdout}");
    let o = torchless(&["verify", s(&src), s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("identical: "));
}

#[test]
fn json_reports_parse() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let src = fixture("convert/training_checkpoint.pt");
    let o = torchless(&["convert", s(&src), s(&out), "--key", "model", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["tensors"].as_u64().unwrap() > 0);
    let o = torchless(&["inspect", s(&src), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "zip");
    assert!(v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "optimizer.state.0.exp_avg"));
    assert!(v["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["path"] == "epoch"));
}

#[test]
fn training_checkpoint_hint_goes_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let o = torchless(&[
        "convert",
        s(&fixture("convert/training_checkpoint.pt")),
        s(&out),
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--key model"));
}

#[test]
fn every_refusal_exits_non_zero_with_one_line_and_no_output() {
    for (entry, fx) in manifest() {
        let Some(needle) = fx.refuse else { continue };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.safetensors");
        if let Some(c) = &fx.canary {
            let _ = std::fs::remove_file(c);
        }
        let o = torchless(&["convert", s(&fixture_path(&entry)), s(&out)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{entry} converted");
        assert_eq!(err.lines().count(), 1, "{entry}: {err}");
        assert!(err.starts_with("error: "), "{entry}: {err}");
        assert!(err.contains(&needle), "{entry}: {err} lacks {needle}");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{entry} left files"
        );
        if let Some(c) = &fx.canary {
            assert!(!Path::new(c).exists(), "{entry}: canary fired");
        }
        // inspect reads metadata, not tensor data, so data corruption is found by convert/verify.
        if entry != "bad_crc.pt" {
            let o = torchless(&["inspect", s(&fixture_path(&entry))]);
            assert!(!o.status.success(), "inspect accepted {entry}");
        }
    }
}

#[test]
fn missing_input_and_bad_flags_are_clear() {
    let o = torchless(&["convert", "/nonexistent/model.pt", "/tmp/x.safetensors"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/nonexistent/model.pt"), "{err}");
    let o = torchless(&["convert", "a", "b", "--dtype", "f8"]);
    assert_eq!(o.status.code(), Some(2));
    let o = torchless(&["convert", "a", "b", "--max-shard-size", "5XB"]);
    assert!(!o.status.success());
}

#[test]
fn allow_global_turns_a_refused_constructor_into_an_inert_object_but_never_a_code_runner() {
    let fx = fixture("convert/evil_os_system.pt");
    let o = torchless(&["inspect", s(&fx), "--allow-global", "posix.system"]);
    assert!(!o.status.success(), "posix.system must stay refused");
}
