//! The legacy `torch.save` stream (`_use_new_zipfile_serialization=False`, PyTorch ≤ 1.5):
//! five pickles back to back — magic number, protocol version, sys_info, the object, the sorted
//! storage keys — then, per key, an int64 element count and the raw elements.

use std::collections::HashMap;

use super::persistent::{self, Pid};
use crate::checkpoint::{Checkpoint, SourceFile, Storage, StorageData};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::pickle::{self, Heap, NoPersistentIds, Node, Value};
use crate::tensor::StorageRef;
use crate::tree;
use crate::OpenOptions;

/// `torch.serialization.MAGIC_NUMBER`.
pub(crate) const MAGIC: &str = "119547037146038801333356";
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

/// Whether the bytes start with the legacy magic-number pickle.
pub(crate) fn looks_legacy(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    let mut heap = Heap::new(16);
    matches!(
        pickle::unpickle(head, 0, "", &mut heap, &mut NoPersistentIds, &Default::default()),
        Ok((Value::BigInt(m), _)) if &*m == MAGIC
    )
}

struct LegacyStorages<'x> {
    storages: &'x mut Vec<Storage>,
    /// key -> (storage id, element type)
    by_key: HashMap<String, (usize, DType, usize)>,
    file: usize,
    big_endian: bool,
}

impl pickle::PersistentLoad for LegacyStorages<'_> {
    fn load(&mut self, pid: &Value, heap: &mut Heap) -> std::result::Result<Value, String> {
        let (dtype, key, numel, view) = match persistent::decode(pid, heap)? {
            Pid::Storage {
                dtype,
                key,
                numel,
                view,
            } => (dtype, key, numel, view),
            Pid::Module(cls) => return Ok(cls),
        };
        let id = match self.by_key.get(&key) {
            Some(&(id, _, _)) => id,
            None => {
                // Location filled in once the data section is read.
                self.storages.push(Storage::new(
                    format!("storage {key}"),
                    self.file,
                    0,
                    self.big_endian,
                    StorageData::Mapped {
                        start: 0,
                        crc32: None,
                    },
                ));
                let id = self.storages.len() - 1;
                self.by_key.insert(key.clone(), (id, dtype, numel));
                id
            }
        };
        let es = dtype.size();
        let (byte_offset, byte_len) = match view {
            Some((_, off, n)) => (off.checked_mul(es), n.checked_mul(es)),
            None => (Some(0), numel.checked_mul(es)),
        };
        let (byte_offset, byte_len) = byte_offset
            .zip(byte_len)
            .ok_or_else(|| format!("storage {key}: size overflows"))?;
        heap.push(Node::Storage(StorageRef {
            id,
            dtype,
            byte_offset,
            byte_len,
        }))
        .ok_or_else(|| "object count limit exceeded".to_string())
    }
}

/// Reads a legacy stream file `src`, which will be `ckpt.files[file]`.
pub(crate) fn read(
    ckpt: &mut Checkpoint,
    src: &SourceFile,
    file: usize,
    options: &OpenOptions,
) -> Result<()> {
    let path = src.path.display().to_string();
    let bytes = src.bytes();
    let mut heap = Heap::new(options.pickle.limits.max_nodes);
    let opts = &options.pickle;
    let mut pos = 0;
    let next =
        |heap: &mut Heap, loader: &mut dyn pickle::PersistentLoad, what: &str, pos: &mut usize| {
            let (v, end) =
                pickle::unpickle(bytes, *pos, &format!("{path}: {what}"), heap, loader, opts)?;
            *pos = end;
            Ok::<_, Error>(v)
        };
    let magic = next(&mut heap, &mut NoPersistentIds, "magic number", &mut pos)?;
    if !matches!(&magic, Value::BigInt(m) if &**m == MAGIC) {
        return Err(Error::format(
            &path,
            "not a legacy torch.save stream (bad magic number)",
        ));
    }
    let version = next(
        &mut heap,
        &mut NoPersistentIds,
        "protocol version",
        &mut pos,
    )?;
    if !matches!(version, Value::Int(PROTOCOL_VERSION)) {
        return Err(Error::format(
            &path,
            format!(
                "unsupported legacy protocol version {}",
                heap.describe(&version)
            ),
        ));
    }
    let sys_info = next(&mut heap, &mut NoPersistentIds, "sys_info", &mut pos)?;
    let big_endian = match heap.node(&sys_info) {
        Some(Node::Dict(d)) => matches!(d.get_str("little_endian"), Some(Value::Bool(false))),
        _ => false,
    };
    let mut loader = LegacyStorages {
        storages: &mut ckpt.storages,
        by_key: HashMap::new(),
        file,
        big_endian,
    };
    let root = next(&mut heap, &mut loader, "object pickle", &mut pos)?;
    let by_key = std::mem::take(&mut loader.by_key);
    let keys = next(
        &mut heap,
        &mut NoPersistentIds,
        "storage key list",
        &mut pos,
    )?;
    let keys: Vec<String> = heap
        .seq(&keys)
        .ok_or_else(|| Error::format(&path, "storage key list is not a list"))?
        .iter()
        .map(|k| tree::key_string(k).unwrap_or_default())
        .collect();
    for key in &keys {
        let &(id, dtype, _) = by_key.get(key).ok_or_else(|| {
            Error::format(
                &path,
                format!("storage {key} is listed but never referenced"),
            )
        })?;
        let header = bytes.get(pos..pos + 8).ok_or_else(|| {
            Error::format(
                &path,
                format!("truncated: storage {key} header at byte {pos} is past the end"),
            )
        })?;
        let mut h = [0u8; 8];
        h.copy_from_slice(header);
        let numel = if big_endian {
            u64::from_be_bytes(h)
        } else {
            u64::from_le_bytes(h)
        };
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| {
                Error::format(&path, format!("storage {key}: size {numel} overflows"))
            })?;
        let start = pos + 8;
        if start.checked_add(len).is_none_or(|end| end > bytes.len()) {
            return Err(Error::format(
                &path,
                format!(
                    "truncated: storage {key} needs {len} bytes at byte {start} but the file has {}",
                    bytes.len()
                ),
            ));
        }
        let s = &mut ckpt.storages[id];
        s.len = len;
        s.data = StorageData::Mapped { start, crc32: None };
        pos = start + len;
    }
    let listed: std::collections::HashSet<&String> = keys.iter().collect();
    if let Some(missing) = by_key.keys().find(|k| !listed.contains(k)) {
        return Err(Error::format(
            &path,
            format!("storage {missing} is referenced but has no data"),
        ));
    }
    tree::flatten(&heap, &root, ckpt)
}
