//! Every fixture of the zoo converts to the values PyTorch loaded, or is refused cleanly.

use std::collections::BTreeSet;

use torchless_convert::{self as tc, ConvertOptions, OpenOptions, TargetDType};

use crate::common::*;

/// Converts one fixture and checks it; returns a description of what went wrong.
fn check(entry: &str, fx: &Fixture) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    if let Some(c) = &fx.canary {
        let _ = std::fs::remove_file(c);
    }
    let opts = ConvertOptions {
        key: fx.key.clone(),
        skip_unsupported: !fx.unsupported.is_empty(),
        ..Default::default()
    };
    let result = tc::convert(
        &fixture_path(entry),
        &out,
        &opts,
        &OpenOptions::default(),
        &mut |_| {},
    );
    if let Some(c) = &fx.canary {
        if std::path::Path::new(c).exists() {
            return Err(format!("canary {c} fired"));
        }
    }
    if let Some(needle) = &fx.refuse {
        let err = match result {
            Ok(_) => return Err("converted, but the fixture must be refused".into()),
            Err(e) => e.to_string(),
        };
        if !err.contains(needle.as_str()) {
            return Err(format!("error {err:?} does not mention {needle:?}"));
        }
        if err.contains('\n') {
            return Err(format!("error is not one line: {err:?}"));
        }
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        if !left.is_empty() {
            return Err(format!("refusal left files behind: {left:?}"));
        }
        return Ok(());
    }
    let report = result.map_err(|e| format!("conversion failed: {e}"))?;
    let (got, meta) = read_output(&out);
    if meta.get("format").map(String::as_str) != Some("pt") {
        return Err("metadata lacks format=pt".into());
    }
    let sha = meta
        .get("torchless.source_sha256")
        .cloned()
        .unwrap_or_default();
    if fx.format != "hf-folder" && sha != sha256_hex(&std::fs::read(fixture_path(entry)).unwrap()) {
        return Err(format!("recorded source sha256 {sha} is not the file's"));
    }
    let want: BTreeSet<&String> = fx.tensors.keys().collect();
    let have: BTreeSet<&String> = got.keys().collect();
    if want != have {
        return Err(format!(
            "names differ: missing {:?}, unexpected {:?}",
            want.difference(&have).collect::<Vec<_>>(),
            have.difference(&want).collect::<Vec<_>>()
        ));
    }
    for (name, e) in &fx.tensors {
        let g = &got[name];
        if g.dtype != e.dtype || g.shape != e.shape {
            return Err(format!(
                "{name}: expected {} {:?}, got {} {:?}",
                e.dtype, e.shape, g.dtype, g.shape
            ));
        }
        if sha256_hex(&g.bytes) != e.sha256 {
            return Err(format!("{name}: values differ from PyTorch's"));
        }
    }
    let skipped: BTreeSet<&String> = report.skipped.iter().map(|s| &s.name).collect();
    let unsupported: BTreeSet<&String> = fx.unsupported.iter().collect();
    if skipped != unsupported {
        return Err(format!("skipped {skipped:?}, expected {unsupported:?}"));
    }
    for d in &fx.dropped {
        if !report.dropped.iter().any(|x| &x.path == d) {
            return Err(format!(
                "{d} is not listed as dropped ({:?})",
                report.dropped
            ));
        }
    }
    tc::verify(&fixture_path(entry), &out, None, &OpenOptions::default())
        .map_err(|e| format!("verify failed: {e}"))?;
    Ok(())
}

#[test]
fn every_fixture_converts_to_pytorch_values_or_is_refused() {
    let manifest = manifest();
    assert!(
        manifest.len() >= 40,
        "the zoo shrank to {} fixtures",
        manifest.len()
    );
    let failures: Vec<String> = manifest
        .iter()
        .filter_map(|(entry, fx)| check(entry, fx).err().map(|e| format!("{entry}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_format_is_detected_by_content() {
    let manifest = manifest();
    for (entry, fx) in &manifest {
        if fx.refuse.is_some() || entry.contains('#') {
            continue;
        }
        let ckpt = tc::open(&fixture_path(entry), &OpenOptions::default())
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
        let got = serde_json::to_value(ckpt.format).unwrap();
        assert_eq!(got.as_str(), Some(fx.format.as_str()), "{entry}");
    }
    let formats: BTreeSet<&str> = manifest.values().map(|f| f.format.as_str()).collect();
    for f in [
        "zip",
        "legacy",
        "tar",
        "torchscript",
        "pt2",
        "safetensors",
        "hf-folder",
    ] {
        assert!(formats.contains(f), "no fixture in format {f}");
    }
}

#[derive(serde::Deserialize)]
struct CastExpected {
    hex: String,
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

fn is_nan(bytes: &[u8], dtype: &str) -> bool {
    match dtype {
        "F32" => f32::from_le_bytes(bytes.try_into().unwrap()).is_nan(),
        "F16" => {
            let b = u16::from_le_bytes(bytes.try_into().unwrap());
            b & 0x7C00 == 0x7C00 && b & 0x3FF != 0
        }
        "BF16" => {
            let b = u16::from_le_bytes(bytes.try_into().unwrap());
            b & 0x7F80 == 0x7F80 && b & 0x7F != 0
        }
        _ => unreachable!(),
    }
}

/// Every element equals PyTorch's `.to()` bit for bit. One documented exception: PyTorch's
/// F64→BF16 kernel writes NaN as 0xFFFF in its vector body and 0x7FC0 in its scalar tail, so
/// which pattern a NaN gets depends on its position and the CPU's vector width; there, any NaN
/// must be a NaN.
#[test]
fn dtype_casts_match_pytorch_bit_for_bit() {
    let text = std::fs::read_to_string(fixture("convert/casts_expected.json")).unwrap();
    let expected: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, CastExpected>,
    > = serde_json::from_str(&text).unwrap();
    for (target, flag, es) in [
        ("F32", TargetDType::F32, 4),
        ("F16", TargetDType::F16, 2),
        ("BF16", TargetDType::BF16, 2),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.safetensors");
        let opts = ConvertOptions {
            dtype: flag,
            ..Default::default()
        };
        tc::convert(
            &fixture("convert/casts.pt"),
            &out,
            &opts,
            &OpenOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        let (got, _) = read_output(&out);
        for (name, per) in &expected {
            let g = &got[name];
            assert_eq!(g.dtype, target, "{name}");
            let want = unhex(&per[target].hex);
            assert_eq!(g.bytes.len(), want.len(), "{name}");
            let nan_pattern_free = name == "f64" && target == "BF16";
            for (i, (a, b)) in g.bytes.chunks(es).zip(want.chunks(es)).enumerate() {
                if a != b && !(nan_pattern_free && is_nan(a, target) && is_nan(b, target)) {
                    panic!("{name}[{i}] cast to {target}: got {a:02x?}, torch gives {b:02x?}");
                }
            }
        }
        tc::verify(
            &fixture("convert/casts.pt"),
            &out,
            None,
            &OpenOptions::default(),
        )
        .unwrap();
    }
}

#[test]
fn sharded_output_round_trips_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let opts = ConvertOptions {
        max_shard_size: Some(64),
        ..Default::default()
    };
    let src = fixture("convert/zip_state_dict.pt");
    let r = tc::convert(&src, &out, &opts, &OpenOptions::default(), &mut |_| {}).unwrap();
    assert!(r.written.files.len() > 1, "expected several shards");
    let idx = dir.path().join("model.safetensors.index.json");
    assert_eq!(r.written.index.as_deref(), Some(idx.as_path()));
    assert!(r.written.files[0].to_string_lossy().ends_with(&format!(
        "model-00001-of-{:05}.safetensors",
        r.written.files.len()
    )));
    let (got, _) = read_output(&idx);
    let fx = &manifest()["zip_state_dict.pt"];
    for (name, e) in &fx.tensors {
        assert_eq!(sha256_hex(&got[name].bytes), e.sha256, "{name}");
    }
    tc::verify(&src, &out, None, &OpenOptions::default()).unwrap();
    // The sharded output reads back as an input too (resharding).
    let again = dir.path().join("single.safetensors");
    tc::convert(
        &idx,
        &again,
        &ConvertOptions::default(),
        &OpenOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(read_output(&again).0.len(), got.len());
}

#[test]
fn renames_strip_prefix_and_collisions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let src = fixture("convert/training_checkpoint.pt");
    let opts = ConvertOptions {
        key: Some("model".into()),
        renames: vec![tc::Rename::parse(r"^(\w+)\.weight$=$1.w").unwrap()],
        ..Default::default()
    };
    tc::convert(&src, &out, &opts, &OpenOptions::default(), &mut |_| {}).unwrap();
    let (got, _) = read_output(&out);
    assert!(got.keys().any(|k| k.ends_with(".w")), "{:?}", got.keys());
    assert!(!got
        .keys()
        .any(|k| k.ends_with(".weight") && !k.contains("bn")));
    tc::verify(&src, &out, None, &OpenOptions::default()).unwrap();

    let collide = ConvertOptions {
        renames: vec![tc::Rename::parse(".*=same").unwrap()],
        ..Default::default()
    };
    let err = tc::convert(&src, &out, &collide, &OpenOptions::default(), &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("would both be written as `same`"),
        "{err}"
    );

    let bad_key = ConvertOptions {
        key: Some("modle".into()),
        ..Default::default()
    };
    let err = tc::convert(&src, &out, &bad_key, &OpenOptions::default(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("top-level keys: model"), "{err}");
}

#[test]
fn training_checkpoints_get_a_key_hint() {
    let ckpt = tc::open(
        &fixture("convert/training_checkpoint.pt"),
        &OpenOptions::default(),
    )
    .unwrap();
    assert!(
        ckpt.notes.iter().any(|n| n.contains("--key model")),
        "{:?}",
        ckpt.notes
    );
}

#[test]
fn tied_weights_are_written_once_with_an_alias_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v.safetensors");
    let src = fixture("convert/views.pt");
    let r = tc::convert(
        &src,
        &out,
        &ConvertOptions::default(),
        &OpenOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(!r.aliases.is_empty(), "views.pt has a tied pair");
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let md = meta.metadata().clone().unwrap();
    for a in &r.aliases {
        assert!(
            st.tensor(&a.removed).is_err(),
            "{} written twice",
            a.removed
        );
        assert_eq!(md.get(&a.removed), Some(&a.kept));
    }
    // --keep-aliases writes both.
    let keep = ConvertOptions {
        keep_aliases: true,
        ..Default::default()
    };
    tc::convert(&src, &out, &keep, &OpenOptions::default(), &mut |_| {}).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for a in &r.aliases {
        assert_eq!(
            st.tensor(&a.removed).unwrap().data(),
            st.tensor(&a.kept).unwrap().data()
        );
    }
}

#[test]
fn unsupported_tensors_are_refused_by_name_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("u.safetensors");
    let err = tc::convert(
        &fixture("convert/unsupported.pt"),
        &out,
        &ConvertOptions::default(),
        &OpenOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("--skip-unsupported"), "{msg}");
    assert!(
        ["q", "sparse", "nested", "c128"]
            .iter()
            .any(|n| msg.contains(&format!("`{n}`"))),
        "{msg}"
    );
    assert!(!out.exists());
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn verify_catches_a_changed_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let src = fixture("convert/zip_state_dict.pt");
    tc::convert(
        &src,
        &out,
        &ConvertOptions::default(),
        &OpenOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let mut bytes = std::fs::read(&out).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&out, &bytes).unwrap();
    let err = tc::verify(&src, &out, None, &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("values differ"), "{err}");
}

/// Inputs found by fuzzing (`tests/fixtures/convert/regressions/`): each must be refused,
/// with nothing written (the first one used to write terabytes from a 4 KB file).
#[test]
fn fuzz_regressions_are_refused() {
    let dir = fixture("convert/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("o.safetensors");
        let r = tc::convert(
            &path,
            &out,
            &ConvertOptions::default(),
            &OpenOptions::default(),
            &mut |_| {},
        );
        assert!(r.is_err(), "{} converted", path.display());
        assert!(!out.exists() && temp_files(tmp.path()).is_empty());
        n += 1;
    }
    assert!(n >= 1);
}
