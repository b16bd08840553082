//! Format detection by content and dispatch to one reader per format.

mod archive;
mod hf;
mod legacy;
mod persistent;
mod pt2;
mod safetensors;
mod tar;
mod torch_zip;
mod torchscript;

pub use hf::inside_folder;
pub(crate) use pt2::ProgramFiles;

use std::collections::BTreeSet;
use std::path::Path;

use crate::checkpoint::{Checkpoint, Format, SourceFile};
use crate::error::{Error, Result};
use crate::OpenOptions;

/// Root keys that hold model weights in training checkpoints, most likely first.
const MODEL_KEYS: &[&str] = &[
    "model",
    "state_dict",
    "model_state_dict",
    "model_state",
    "module",
    "net",
    "network",
    "ema",
    "model_ema",
    "generator",
];
/// Root keys that mark a training checkpoint.
const TRAINING_KEYS: &[&str] = &[
    "optimizer",
    "optimizer_state_dict",
    "optim",
    "opt",
    "scheduler",
    "lr_scheduler",
    "epoch",
    "global_step",
    "step",
    "iteration",
    "scaler",
    "amp",
    "args",
    "config",
    "hyper_parameters",
];

/// Opens a checkpoint file, folder or shard index, detecting the format from the bytes.
pub(crate) fn open(path: &Path, options: &OpenOptions) -> Result<Checkpoint> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let target = if meta.is_dir() {
        hf::pick_in_folder(path)?
    } else {
        path.to_path_buf()
    };
    let is_index = target
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"));
    let mut ckpt;
    if is_index {
        ckpt = Checkpoint::new(Format::HfFolder);
        let shards = hf::read_index(&target)?;
        for file in &shards.files {
            let before = ckpt.entries.len();
            read_file(&mut ckpt, file, options)?;
            let got: BTreeSet<&str> = ckpt.entries[before..]
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            if let Some(missing) = shards.expected[file]
                .iter()
                .find(|n| !got.contains(n.as_str()))
            {
                return Err(Error::format(
                    target.display().to_string(),
                    format!(
                        "the index puts `{missing}` in {} but that shard does not hold it",
                        file.display()
                    ),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = ckpt.entries.iter().find(|e| !seen.insert(e.name.as_str())) {
            return Err(Error::format(
                target.display().to_string(),
                format!("tensor `{}` appears in two shards", dup.name),
            ));
        }
    } else {
        ckpt = Checkpoint::new(Format::Zip);
        ckpt.format = read_file(&mut ckpt, &target, options)?;
        if meta.is_dir() {
            ckpt.format = Format::HfFolder;
        }
    }
    finish(&mut ckpt, &path.display().to_string(), options)?;
    Ok(ckpt)
}

/// Opens a `torch.export` archive for running one of its programs: the program's weights and
/// constants as a checkpoint, and its JSON.
pub(crate) fn open_program(
    path: &Path,
    options: &OpenOptions,
    want: Option<&str>,
) -> Result<(Checkpoint, ProgramFiles)> {
    let mut src = SourceFile::open(path, Format::Pt2)?;
    let label = path.display().to_string();
    let bytes = src.bytes();
    if !(bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")) {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: "not a zip archive, so not a torch.export .pt2 program".into(),
        });
    }
    let mut ckpt = Checkpoint::new(Format::Pt2);
    let files = {
        let a = archive::Archive::open(label.clone(), 0, 0, bytes)?;
        pt2::read_program(&mut ckpt, &a, options, want)?
    };
    src.format = Format::Pt2;
    ckpt.files.push(src);
    finish(&mut ckpt, &label, options)?;
    Ok((ckpt, files))
}

/// Validates every view, sets and checks the byte budget, and adds hints.
fn finish(ckpt: &mut Checkpoint, label: &str, options: &OpenOptions) -> Result<()> {
    ckpt.validate()?;
    let input: u64 = ckpt.files.iter().map(|f| f.bytes().len() as u64).sum();
    ckpt.byte_budget = options.budget.output_limit(input);
    crate::budget::check(ckpt, label)?;
    training_hint(ckpt);
    Ok(())
}

/// Reads a checkpoint held in memory (one file; `name` labels it in messages).
pub(crate) fn open_bytes(name: &Path, bytes: Vec<u8>, options: &OpenOptions) -> Result<Checkpoint> {
    if bytes.is_empty() {
        return Err(Error::UnknownFormat {
            path: name.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    let src = SourceFile {
        path: name.to_path_buf(),
        format: Format::Zip,
        data: crate::checkpoint::Bytes::Owned(bytes),
    };
    let mut ckpt = Checkpoint::new(Format::Zip);
    ckpt.format = read_source(&mut ckpt, src, options)?;
    finish(&mut ckpt, &name.display().to_string(), options)?;
    Ok(ckpt)
}

/// Reads one file into `ckpt`, returning its detected format.
fn read_file(ckpt: &mut Checkpoint, path: &Path, options: &OpenOptions) -> Result<Format> {
    read_source(ckpt, SourceFile::open(path, Format::Zip)?, options)
}

/// Detects the format of `src`, reads it into `ckpt` and keeps it there.
fn read_source(
    ckpt: &mut Checkpoint,
    mut src: SourceFile,
    options: &OpenOptions,
) -> Result<Format> {
    let path = src.path.clone();
    let path = path.as_path();
    let file = ckpt.files.len();
    let bytes = src.bytes();
    let label = path.display().to_string();
    let format = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        let a = archive::Archive::open(label.clone(), file, 0, bytes)?;
        if a.has("data.pkl") && torchscript::looks_torchscript(&a) {
            torchscript::read(ckpt, &a, options)?;
            Format::Torchscript
        } else if a.has("data.pkl") {
            torch_zip::read(ckpt, &a, options)?;
            Format::Zip
        } else if pt2::looks_pt2(&a) {
            pt2::read(ckpt, &a, options)?;
            Format::Pt2
        } else {
            let mut names: Vec<&String> = a.records.keys().collect();
            names.sort();
            names.truncate(5);
            return Err(Error::UnknownFormat {
                path: path.to_path_buf(),
                reason: format!(
                    "a zip archive without data.pkl or a torch.export weights config, so not a PyTorch checkpoint (it holds {})",
                    names.iter().map(|n| format!("{}/{n}", a.root)).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    } else if tar::looks_tar(bytes) {
        tar::read(ckpt, &src, file, options)?;
        Format::Tar
    } else if safetensors::looks_safetensors(bytes) {
        safetensors::read(ckpt, &src, file)?;
        Format::Safetensors
    } else if legacy::looks_legacy(bytes) {
        legacy::read(ckpt, &src, file, options)?;
        Format::Legacy
    } else if bytes.first() == Some(&0x80) {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: "a plain pickle without torch.save framing; tensors in such files are rebuilt by calling torch.load, which this converter never does".into(),
        });
    } else {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: format!(
                "not a PyTorch checkpoint: no zip, tar, legacy torch.save or safetensors signature in its {} bytes",
                bytes.len()
            ),
        });
    };
    src.format = format;
    ckpt.files.push(src);
    Ok(format)
}

/// Adds a note suggesting `--key` when the root looks like a training checkpoint.
fn training_hint(ckpt: &mut Checkpoint) {
    let keys = &ckpt.top_keys;
    let has = |k: &&str| keys.iter().any(|x| x == k);
    let Some(model) = MODEL_KEYS.iter().find(|k| has(k)) else {
        return;
    };
    let training: Vec<&str> = TRAINING_KEYS.iter().copied().filter(|k| has(k)).collect();
    if training.is_empty() {
        return;
    }
    ckpt.notes.push(format!(
        "this looks like a training checkpoint (top-level keys include `{model}` and `{}`); to convert only the model weights, pass --key {model}",
        training.join("`, `")
    ));
}
