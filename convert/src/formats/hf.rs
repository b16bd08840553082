//! Hugging Face checkpoint folders and shard indexes: `pytorch_model.bin.index.json` (or
//! `model.safetensors.index.json`) maps each tensor name to a shard; every shard is read by
//! content and the index is checked against what the shards hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Files a folder may hold, in the order they are preferred.
const CANDIDATES: &[&str] = &[
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "model.safetensors",
];

/// The shards of an index, with the names each must hold.
#[derive(Debug)]
pub(crate) struct Shards {
    /// Shard files in order.
    pub files: Vec<PathBuf>,
    /// Tensor names the index assigns to each shard.
    pub expected: BTreeMap<PathBuf, BTreeSet<String>>,
}

/// Picks the checkpoint inside a folder: an index, or a single weights file.
pub(crate) fn pick_in_folder(dir: &Path) -> Result<PathBuf> {
    for c in CANDIDATES {
        let p = dir.join(c);
        if p.is_file() {
            inside_folder(dir, &p)?;
            return Ok(p);
        }
    }
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            [".bin", ".pt", ".pth", ".safetensors", ".pt2", ".ckpt"]
                .iter()
                .any(|ext| n.ends_with(ext))
        })
        .collect();
    found.sort();
    Err(Error::UnknownFormat {
        path: dir.to_path_buf(),
        reason: if found.is_empty() {
            format!("the folder holds none of {}", CANDIDATES.join(", "))
        } else {
            format!(
                "the folder holds none of {}; pass one of these files instead: {}",
                CANDIDATES.join(", "),
                found.join(", ")
            )
        },
    })
}

/// Checks that a file a folder names resolves, after symlinks, inside that folder (or, for a
/// Hugging Face cache snapshot `…/snapshots/REV/`, inside the repository's `blobs/` folder,
/// where the cache's symlinks point) and is a regular file: a symlink out of the folder or a
/// FIFO (which would block the reader forever) is refused by name.
pub fn inside_folder(dir: &Path, file: &Path) -> Result<()> {
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let real = std::fs::canonicalize(file).map_err(|e| Error::io(file, e))?;
    let cache_blobs = (dir.parent().and_then(|p| p.file_name()) == Some("snapshots".as_ref()))
        .then(|| {
            dir.parent()
                .and_then(Path::parent)
                .map(|repo| repo.join("blobs"))
        })
        .flatten();
    let inside = real.starts_with(&dir) || cache_blobs.is_some_and(|b| real.starts_with(b));
    if !inside {
        return Err(Error::format(
            file.display().to_string(),
            format!(
                "resolves to a file outside the model folder {}; refusing to read it",
                dir.display()
            ),
        ));
    }
    let meta = std::fs::metadata(&real).map_err(|e| Error::io(file, e))?;
    if !meta.is_file() {
        return Err(Error::format(
            file.display().to_string(),
            "is not a regular file (a FIFO, device or folder); refusing to read it",
        ));
    }
    Ok(())
}

/// Reads a shard index.
pub(crate) fn read_index(index: &Path) -> Result<Shards> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let label = index.display().to_string();
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::format(&label, format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::format(&label, "no \"weight_map\" object"))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    let mut expected: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for (name, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| Error::format(&label, format!("{name}: shard is not a string")))?;
        if super::archive::unsafe_name(shard) || shard.contains('/') {
            return Err(Error::format(
                &label,
                format!("{name}: shard {shard:?} is not a file name in the index's folder"),
            ));
        }
        let p = dir.join(shard);
        inside_folder(dir, &p)?;
        if !expected.contains_key(&p) {
            files.push(p.clone());
        }
        expected.entry(p).or_default().insert(name.clone());
    }
    if files.is_empty() {
        return Err(Error::format(&label, "the weight_map is empty"));
    }
    files.sort();
    Ok(Shards { files, expected })
}
