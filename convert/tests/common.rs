//! Fixture helpers shared by the converter's tests (this crate) and the runtime's
//! (`tests/common.rs` includes this file): fixture paths, the zoo's manifest
//! (`tests/fixtures/convert/expected.json`), reading safetensors outputs back.
//! Both crates sit one folder below the repository root, so `CARGO_MANIFEST_DIR/../tests`
//! is the same folder for either.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

/// Expected values of one tensor.
#[derive(Debug, Deserialize)]
pub struct ExpectedTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub sha256: String,
}

/// One fixture of `tests/fixtures/convert/expected.json`.
#[derive(Debug, Deserialize)]
pub struct Fixture {
    pub format: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub tensors: BTreeMap<String, ExpectedTensor>,
    #[serde(default)]
    pub dropped: Vec<String>,
    #[serde(default)]
    pub unsupported: Vec<String>,
    #[serde(default)]
    pub refuse: Option<String>,
    #[serde(default)]
    pub canary: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    fixtures: BTreeMap<String, Fixture>,
}

/// Every fixture, by entry name (`file` or `file#variant`).
pub fn manifest() -> BTreeMap<String, Fixture> {
    let text = std::fs::read_to_string(fixture("convert/expected.json"))
        .expect("tests/fixtures/convert/expected.json (run scripts/make_convert_fixtures.py)");
    serde_json::from_str::<Manifest>(&text)
        .expect("expected.json parses")
        .fixtures
}

/// The file an entry name refers to.
pub fn fixture_path(entry: &str) -> PathBuf {
    fixture(&format!(
        "convert/{}",
        entry.split('#').next().unwrap_or(entry)
    ))
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A tensor read back from a safetensors output.
#[derive(Debug, Clone)]
pub struct OutTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Reads every tensor of a safetensors file or shard index with the `safetensors` crate,
/// resolving `{"removed": "kept"}` alias records; also returns the metadata.
pub fn read_output(path: &Path) -> (HashMap<String, OutTensor>, HashMap<String, String>) {
    let files: Vec<PathBuf> = if path.to_string_lossy().ends_with(".index.json") {
        let idx: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut v: Vec<PathBuf> = idx["weight_map"]
            .as_object()
            .unwrap()
            .values()
            .map(|f| path.with_file_name(f.as_str().unwrap()))
            .collect();
        v.sort();
        v.dedup();
        v
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = HashMap::new();
    let mut meta = HashMap::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        if let Some(md) = m.metadata() {
            meta.extend(md.clone());
        }
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, view) in st.tensors() {
            out.insert(
                name,
                OutTensor {
                    dtype: view.dtype().to_string(),
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                },
            );
        }
    }
    let aliases: Vec<(String, String)> = meta
        .iter()
        .filter(|(k, v)| !out.contains_key(*k) && out.contains_key(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (removed, kept) in aliases {
        let t = out[&kept].clone();
        out.insert(removed, t);
    }
    (out, meta)
}

/// Files in a folder whose names start with `.` and end with `.tmp` (our temp files).
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}
