//! `torch.save` zip archives (PyTorch ≥ 1.6): `<root>/data.pkl` holds the object, each storage
//! is the record `<root>/data/<key>`, `<root>/byteorder` says the storages' byte order.
//! The same storage scheme serves TorchScript archives.

use std::collections::HashMap;

use super::archive::Archive;
use super::persistent::{self, Pid};
use crate::checkpoint::{Checkpoint, Storage};
use crate::error::Result;
use crate::pickle::{self, Heap, Node, Value};
use crate::tensor::StorageRef;
use crate::tree;
use crate::OpenOptions;

/// Resolves `('storage', cls, key, location, numel)` ids to records under `data/`.
pub(crate) struct ZipStorages<'x, 'a> {
    pub archive: &'x Archive<'a>,
    pub storages: &'x mut Vec<Storage>,
    pub by_key: HashMap<String, usize>,
    pub big_endian: bool,
}

impl pickle::PersistentLoad for ZipStorages<'_, '_> {
    fn load(&mut self, pid: &Value, heap: &mut Heap) -> std::result::Result<Value, String> {
        let (dtype, key, numel) = match persistent::decode(pid, heap)? {
            Pid::Storage {
                dtype, key, numel, ..
            } => (dtype, key, numel),
            Pid::Module(cls) => return Ok(cls),
        };
        persistent::check_key(&key)?;
        let id = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                let record = format!("data/{key}");
                let storage = self
                    .archive
                    .storage(&record, self.big_endian)
                    .map_err(|e| e.to_string())?;
                self.storages.push(storage);
                let id = self.storages.len() - 1;
                self.by_key.insert(key.clone(), id);
                id
            }
        };
        let byte_len = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| format!("storage {key}: size {numel} overflows"))?;
        let have = self.storages[id].len;
        if byte_len > have {
            return Err(format!(
                "storage {} declares {numel} elements ({byte_len} bytes) but the record holds {have} bytes",
                self.storages[id].name
            ));
        }
        heap.push(Node::Storage(StorageRef {
            id,
            dtype,
            byte_offset: 0,
            byte_len,
        }))
        .ok_or_else(|| "object count limit exceeded".to_string())
    }
}

/// Unpickles `record` of the archive, resolving storages into `ckpt`.
pub(crate) fn unpickle_record(
    ckpt: &mut Checkpoint,
    archive: &Archive<'_>,
    record: &str,
    options: &OpenOptions,
) -> Result<(Heap, Value)> {
    let big_endian = archive.big_endian()?;
    let data = archive.read(record)?;
    let mut heap = Heap::new(options.pickle.limits.max_nodes);
    let mut loader = ZipStorages {
        archive,
        storages: &mut ckpt.storages,
        by_key: HashMap::new(),
        big_endian,
    };
    let name = format!("{}: {}", archive.label, archive.full_name(record));
    let (root, _) = pickle::unpickle(&data, 0, &name, &mut heap, &mut loader, &options.pickle)?;
    Ok((heap, root))
}

/// Reads a `torch.save` zip archive into `ckpt`.
pub(crate) fn read(
    ckpt: &mut Checkpoint,
    archive: &Archive<'_>,
    options: &OpenOptions,
) -> Result<()> {
    let (heap, root) = unpickle_record(ckpt, archive, "data.pkl", options)?;
    tree::flatten(&heap, &root, ckpt)
}
