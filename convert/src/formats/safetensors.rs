//! safetensors input, for recasting, renaming and resharding: every tensor is a contiguous
//! byte range of the mapped file. Alias records in `__metadata__` (`"removed": "kept"`, as this
//! converter and `safetensors.torch.save_model` write them) give the removed names back.

use crate::checkpoint::{Checkpoint, Entry, EntryKind, SourceFile, Storage, StorageData};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{StorageRef, TensorSpec};

/// Whether the bytes look like a safetensors file: a little-endian header length, then `{`.
pub(crate) fn looks_safetensors(bytes: &[u8]) -> bool {
    if bytes.len() < 10 {
        return false;
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(n);
    n >= 2 && n <= (bytes.len() as u64 - 8) && bytes[8] == b'{'
}

/// Reads a safetensors file `src`, which will be `ckpt.files[file]`.
pub(crate) fn read(ckpt: &mut Checkpoint, src: &SourceFile, file: usize) -> Result<()> {
    let path = src.path.display().to_string();
    let (n, meta) = safetensors::SafeTensors::read_metadata(src.bytes())
        .map_err(|e| Error::format(&path, format!("invalid safetensors header: {e}")))?;
    let data_start = 8 + n;
    let infos = meta.tensors();
    let first = ckpt.entries.len();
    for name in meta.offset_keys() {
        let info = infos[&name];
        let (s, e) = info.data_offsets;
        ckpt.storages.push(Storage::new(
            name.clone(),
            file,
            e - s,
            false,
            StorageData::Mapped {
                start: data_start + s,
                crc32: None,
            },
        ));
        let id = ckpt.storages.len() - 1;
        let kind = match DType::from_safetensors(info.dtype) {
            Some(dtype) => EntryKind::Tensor(TensorSpec {
                dtype,
                strides: TensorSpec::contiguous_strides(&info.shape),
                shape: info.shape.clone(),
                offset: 0,
                storage: StorageRef {
                    id,
                    dtype,
                    byte_offset: 0,
                    byte_len: e - s,
                },
                neg: false,
                conj: false,
            }),
            None => EntryKind::Unsupported(format!("a {} tensor", info.dtype)),
        };
        ckpt.entries.push(Entry { name, kind });
    }
    if let Some(md) = meta.metadata() {
        ckpt.metadata
            .extend(md.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut aliases: Vec<(&String, &String)> = md
            .iter()
            .filter(|(k, v)| !infos.contains_key(*k) && infos.contains_key(*v))
            .collect();
        aliases.sort();
        for (removed, kept) in aliases {
            let kind = ckpt.entries[first..]
                .iter()
                .find(|e| &e.name == kept)
                .map(|e| e.kind.clone())
                .expect("alias target checked above");
            ckpt.entries.push(Entry {
                name: removed.clone(),
                kind,
            });
        }
    }
    Ok(())
}
