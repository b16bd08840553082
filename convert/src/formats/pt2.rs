//! `torch.export` archives (`.pt2`): `<root>/archive_format` reads `pt2`, each exported program
//! `<name>` has `models/<name>.json`, and its state dict is described by
//! `data/weights/<name>_weights_config.json` (per name: the storage record, dtype, sizes,
//! strides, offset) with raw storages `data/weights/weight_N`. Tied weights share a record.
//! A weight marked `use_pickle` is a nested `torch.save` archive. Constants
//! (`data/constants/…`) are not part of the state dict and are listed as dropped.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::archive::Archive;
use super::torch_zip;
use crate::checkpoint::{Checkpoint, Dropped, Entry, EntryKind};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::pickle::Node;
use crate::tensor::{StorageRef, TensorSpec};
use crate::tree::join;
use crate::OpenOptions;

/// Whether a zip archive is a `torch.export` archive.
pub(crate) fn looks_pt2(archive: &Archive<'_>) -> bool {
    archive.has("archive_format") || archive.names_under("data/weights/").next().is_some()
}

fn as_int(v: &Json) -> Option<usize> {
    v.get("as_int")
        .and_then(Json::as_u64)
        .and_then(|x| usize::try_from(x).ok())
}

fn ints(v: Option<&Json>) -> Option<Vec<usize>> {
    v?.as_array()?.iter().map(as_int).collect()
}

/// Reads a `torch.export` archive into `ckpt`.
pub(crate) fn read(
    ckpt: &mut Checkpoint,
    archive: &Archive<'_>,
    options: &OpenOptions,
) -> Result<()> {
    check_format(archive)?;
    let mut models: Vec<String> = archive
        .names_under("data/weights/")
        .filter_map(|n| {
            n.strip_prefix("data/weights/")?
                .strip_suffix("_weights_config.json")
        })
        .map(str::to_string)
        .collect();
    models.sort();
    if models.is_empty() {
        return Err(Error::format(
            archive.label.clone(),
            "no data/weights/<model>_weights_config.json: older torch.export archives (serialized_state_dict.pt) are not supported",
        ));
    }
    let mut by_record: HashMap<String, usize> = HashMap::new();
    for model in &models {
        let prefix = if models.len() == 1 {
            ""
        } else {
            model.as_str()
        };
        let config_name = format!("data/weights/{model}_weights_config.json");
        read_config(ckpt, archive, &config_name, prefix, &mut by_record, options)?;
        let constants = format!("data/constants/{model}_constants_config.json");
        if archive.has(&constants) {
            let label = format!("{}: {}", archive.label, archive.full_name(&constants));
            let config: Json = serde_json::from_str(&archive.read_text(&constants)?)
                .map_err(|e| Error::format(&label, format!("not JSON: {e}")))?;
            if let Some(c) = config.get("config").and_then(Json::as_object) {
                for fqn in c.keys() {
                    ckpt.dropped.push(Dropped {
                        path: join(prefix, fqn),
                        what: "torch.export constant (non-persistent buffer or lifted constant, not in state_dict)".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// What [`read_program`] found besides the tensors.
pub(crate) struct ProgramFiles {
    /// The exported program's name (`models/<name>.json`).
    pub name: String,
    /// The text of `models/<name>.json`.
    pub json: String,
}

/// Reads one exported program of a `torch.export` archive for running it: its weights *and*
/// constants (lifted tensor constants, non-persistent buffers) as entries named by their
/// fully qualified names, and the program's JSON. `want` picks a program by name when the
/// archive holds several.
pub(crate) fn read_program(
    ckpt: &mut Checkpoint,
    archive: &Archive<'_>,
    options: &OpenOptions,
    want: Option<&str>,
) -> Result<ProgramFiles> {
    check_format(archive)?;
    let mut names: Vec<String> = archive
        .names_under("models/")
        .filter_map(|n| n.strip_prefix("models/")?.strip_suffix(".json"))
        .map(str::to_string)
        .collect();
    names.sort();
    let name = match (want, names.as_slice()) {
        (Some(w), _) if names.iter().any(|n| n == w) => w.to_string(),
        (Some(w), _) => {
            return Err(Error::format(
                archive.label.clone(),
                format!("no exported program named {w:?} (it holds {names:?})"),
            ))
        }
        (None, [one]) => one.clone(),
        (None, []) => {
            let flat = archive.has("serialized_exported_program.json");
            return Err(Error::format(
                archive.label.clone(),
                if flat {
                    "a torch.export archive of torch 2.6-2.7 (serialized_exported_program.json); re-export it with torch >= 2.8"
                } else {
                    "no models/<name>.json: not a torch.export program archive"
                },
            ));
        }
        (None, many) => {
            return Err(Error::format(
                archive.label.clone(),
                format!(
                    "holds {} exported programs ({many:?}); name the one to run",
                    many.len()
                ),
            ))
        }
    };
    let mut by_record = HashMap::new();
    let weights = format!("data/weights/{name}_weights_config.json");
    if archive.has(&weights) {
        read_config(ckpt, archive, &weights, "", &mut by_record, options)?;
    }
    let constants = format!("data/constants/{name}_constants_config.json");
    if archive.has(&constants) {
        read_config(ckpt, archive, &constants, "", &mut by_record, options)?;
    }
    let json = archive.read_text(&format!("models/{name}.json"))?;
    Ok(ProgramFiles { name, json })
}

fn check_format(archive: &Archive<'_>) -> Result<()> {
    if archive.has("archive_format") {
        let f = archive.read_text("archive_format")?;
        if f.trim() != "pt2" {
            return Err(Error::format(
                archive.label.clone(),
                format!("archive_format is {:?}, not pt2", f.trim()),
            ));
        }
    }
    Ok(())
}

/// Reads one `*_weights_config.json` / `*_constants_config.json`: per fully qualified name,
/// the storage record, dtype, sizes, strides and offset. Records shared by several names
/// (tied weights, views) become one storage.
fn read_config(
    ckpt: &mut Checkpoint,
    archive: &Archive<'_>,
    config_name: &str,
    prefix: &str,
    by_record: &mut HashMap<String, usize>,
    options: &OpenOptions,
) -> Result<()> {
    let big_endian = archive.big_endian()?;
    let folder = config_name.rsplit_once('/').map_or("", |(d, _)| d);
    let label = format!("{}: {}", archive.label, archive.full_name(config_name));
    let config: Json = serde_json::from_str(&archive.read_text(config_name)?)
        .map_err(|e| Error::format(&label, format!("not JSON: {e}")))?;
    let entries = config
        .get("config")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::format(&label, "no \"config\" object"))?;
    for (fqn, e) in entries {
        let name = join(prefix, fqn);
        let path_name = e
            .get("path_name")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::format(&label, format!("{fqn}: no path_name")))?;
        super::persistent::check_key(path_name).map_err(|r| Error::format(&label, r))?;
        let record = format!("{folder}/{path_name}");
        if e.get("use_pickle").and_then(Json::as_bool) == Some(true) {
            let kind = nested_tensor(ckpt, archive, &record, options)?;
            ckpt.entries.push(Entry { name, kind });
            continue;
        }
        let meta = e
            .get("tensor_meta")
            .ok_or_else(|| Error::format(&label, format!("{fqn}: no tensor_meta")))?;
        if meta.get("layout").and_then(Json::as_i64).unwrap_or(7) != 7 {
            ckpt.entries.push(Entry {
                name,
                kind: EntryKind::Unsupported("a non-strided (sparse) tensor".into()),
            });
            continue;
        }
        let code = meta.get("dtype").and_then(Json::as_i64).unwrap_or(-1);
        let dtype = DType::from_export_scalar_type(code)
            .ok_or_else(|| Error::format(&label, format!("{fqn}: unknown dtype code {code}")))?;
        if let Some(kind) = dtype.unsupported_reason() {
            ckpt.entries.push(Entry {
                name,
                kind: EntryKind::Unsupported(kind),
            });
            continue;
        }
        let shape = ints(meta.get("sizes")).ok_or_else(|| {
            Error::format(&label, format!("{fqn}: sizes are not all concrete ints"))
        })?;
        let strides = ints(meta.get("strides")).ok_or_else(|| {
            Error::format(&label, format!("{fqn}: strides are not all concrete ints"))
        })?;
        let offset = meta.get("storage_offset").and_then(as_int).unwrap_or(0);
        let id = match by_record.get(&record) {
            Some(&id) => id,
            None => {
                ckpt.storages.push(archive.storage(&record, big_endian)?);
                let id = ckpt.storages.len() - 1;
                by_record.insert(record.clone(), id);
                id
            }
        };
        let byte_len = ckpt.storages[id].len;
        ckpt.entries.push(Entry {
            name,
            kind: EntryKind::Tensor(TensorSpec {
                dtype,
                shape,
                strides,
                offset,
                storage: StorageRef {
                    id,
                    dtype,
                    byte_offset: 0,
                    byte_len,
                },
                neg: false,
                conj: false,
            }),
        });
    }
    Ok(())
}

/// A weight saved with `use_pickle`: a `torch.save` archive inside the archive.
fn nested_tensor(
    ckpt: &mut Checkpoint,
    archive: &Archive<'_>,
    record: &str,
    options: &OpenOptions,
) -> Result<EntryKind> {
    let rec = archive.records.get(record).ok_or_else(|| {
        Error::format(
            archive.label.clone(),
            format!("record {} is missing", archive.full_name(record)),
        )
    })?;
    let label = format!("{}: {}", archive.label, archive.full_name(record));
    if !rec.stored {
        return Err(Error::format(
            label,
            "compressed nested archives are not supported",
        ));
    }
    let bytes = &archive.bytes[rec.data_start..rec.data_start + rec.size];
    let nested = Archive::open(
        label.clone(),
        archive.file,
        archive.base + rec.data_start,
        bytes,
    )?;
    let (heap, root) = torch_zip::unpickle_record(ckpt, &nested, "data.pkl", options)?;
    match heap.node(&root) {
        Some(Node::Tensor(spec)) => Ok(EntryKind::Tensor(spec.clone())),
        Some(Node::Unsupported(u)) => Ok(EntryKind::Unsupported(u.kind.clone())),
        _ => Err(Error::format(
            label,
            format!("holds {}, not a tensor", heap.describe(&root)),
        )),
    }
}
