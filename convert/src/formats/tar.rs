//! The tar format of PyTorch < 0.1.10: members `storages` (a count, then per storage a pickled
//! `(key, location, StorageClass)`, an int64 element count and the raw elements, then a pickled
//! list of storage views), `tensors` (a count, then per tensor a pickled
//! `(key, storage_key, type)` and its int32 ndim, sizes, strides and offset), and `pickle`, the
//! object, whose persistent ids are tensor or storage keys.

use std::collections::HashMap;
use std::io::Cursor;

use super::persistent::{self, Pid};
use crate::checkpoint::{Checkpoint, SourceFile, Storage, StorageData};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::pickle::{self, Heap, NoPersistentIds, Node, Value};
use crate::tensor::{StorageRef, TensorSpec};
use crate::tree::{self, key_string};
use crate::OpenOptions;

/// Whether the bytes are a POSIX tar archive.
pub(crate) fn looks_tar(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar")
}

struct Cursorish<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
    label: String,
}

impl Cursorish<'_> {
    fn raw<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        if self.pos + N > self.end {
            return Err(Error::format(
                &self.label,
                format!(
                    "truncated: {what} at byte {} is past the end of the member",
                    self.pos
                ),
            ));
        }
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[self.pos..self.pos + N]);
        self.pos += N;
        Ok(a)
    }

    fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.raw(what)?))
    }

    fn count(&mut self, what: &str) -> Result<usize> {
        let v = self.i64(what)?;
        usize::try_from(v).map_err(|_| Error::format(&self.label, format!("negative {what} {v}")))
    }

    fn pickle(
        &mut self,
        heap: &mut Heap,
        loader: &mut dyn pickle::PersistentLoad,
        options: &OpenOptions,
    ) -> Result<Value> {
        let (v, end) = pickle::unpickle(
            &self.bytes[..self.end],
            self.pos,
            &self.label,
            heap,
            loader,
            &options.pickle,
        )?;
        self.pos = end;
        Ok(v)
    }
}

struct Keys<'a> {
    values: &'a HashMap<String, Value>,
}

impl pickle::PersistentLoad for Keys<'_> {
    fn load(&mut self, pid: &Value, heap: &mut Heap) -> std::result::Result<Value, String> {
        if heap.seq(pid).is_some() {
            return match persistent::decode(pid, heap)? {
                Pid::Module(cls) => Ok(cls),
                Pid::Storage { key, .. } => Err(format!("unexpected storage id {key}")),
            };
        }
        let key = key_string(pid).ok_or("persistent id is not a key")?;
        self.values
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("unknown tensor or storage key {key}"))
    }
}

/// Reads a legacy tar checkpoint `src`, which will be `ckpt.files[file]`.
pub(crate) fn read(
    ckpt: &mut Checkpoint,
    src: &SourceFile,
    file: usize,
    options: &OpenOptions,
) -> Result<()> {
    let path = src.path.display().to_string();
    let bytes = src.bytes();
    let mut members: HashMap<String, (usize, usize)> = HashMap::new();
    let mut archive = tar::Archive::new(Cursor::new(bytes));
    let entries = archive
        .entries()
        .map_err(|e| Error::format(&path, format!("unreadable tar: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::format(&path, format!("unreadable tar: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| Error::format(&path, format!("unreadable tar member name: {e}")))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let start = usize::try_from(entry.raw_file_position()).unwrap_or(usize::MAX);
        let size = usize::try_from(entry.size()).unwrap_or(usize::MAX);
        if start.checked_add(size).is_none_or(|e| e > bytes.len()) {
            return Err(Error::format(
                &path,
                format!("truncated: tar member {name} runs past the end"),
            ));
        }
        members.insert(name, (start, size));
    }
    let member = |name: &str| -> Result<Cursorish<'_>> {
        let &(start, size) = members
            .get(name)
            .ok_or_else(|| Error::format(&path, format!("tar has no `{name}` member")))?;
        Ok(Cursorish {
            bytes,
            pos: start,
            end: start + size,
            label: format!("{path}: {name}"),
        })
    };
    let mut heap = Heap::new(options.pickle.limits.max_nodes);

    // storages
    let mut c = member("storages")?;
    let n = c.pickle(&mut heap, &mut NoPersistentIds, options)?;
    let n = match n {
        Value::Int(n) if n >= 0 => n as usize,
        _ => return Err(Error::format(&c.label, "storage count is not an int")),
    };
    let mut storages: HashMap<String, (usize, DType)> = HashMap::new();
    let mut refs: HashMap<String, StorageRef> = HashMap::new();
    for _ in 0..n {
        let args = c.pickle(&mut heap, &mut NoPersistentIds, options)?;
        let (key, dtype) = match heap.seq(&args) {
            Some([k, _loc, Value::Global(g)]) => (
                key_string(k).unwrap_or_default(),
                DType::from_storage_class(&g.name)
                    .ok_or_else(|| Error::format(&c.label, format!("unknown storage class {g}")))?,
            ),
            _ => {
                return Err(Error::format(
                    &c.label,
                    "storage record is not (key, location, class)",
                ))
            }
        };
        let numel = c.count("storage size")?;
        let len = numel
            .checked_mul(dtype.size())
            .filter(|&l| c.pos.checked_add(l).is_some_and(|e| e <= c.end))
            .ok_or_else(|| {
                Error::format(
                    &c.label,
                    format!("truncated: storage {key} ({numel} elements) runs past the end"),
                )
            })?;
        ckpt.storages.push(Storage::new(
            format!("storages/{key}"),
            file,
            len,
            false,
            StorageData::Mapped {
                start: c.pos,
                crc32: None,
            },
        ));
        let id = ckpt.storages.len() - 1;
        c.pos += len;
        storages.insert(key.clone(), (id, dtype));
        refs.insert(
            key,
            StorageRef {
                id,
                dtype,
                byte_offset: 0,
                byte_len: len,
            },
        );
    }
    let views = c.pickle(&mut heap, &mut NoPersistentIds, options)?;
    for v in heap.seq(&views).unwrap_or_default().to_vec() {
        let Some([target, root, offset, numel]) = heap.seq(&v) else {
            return Err(Error::format(
                &c.label,
                "storage view is not (target, root, offset, numel)",
            ));
        };
        let (target, root) = (
            key_string(target).unwrap_or_default(),
            key_string(root).unwrap_or_default(),
        );
        let (&(id, dtype), Value::Int(offset), Value::Int(numel)) = (
            storages.get(&root).ok_or_else(|| {
                Error::format(&c.label, format!("view of unknown storage {root}"))
            })?,
            offset,
            numel,
        ) else {
            return Err(Error::format(&c.label, "storage view offsets are not ints"));
        };
        let es = dtype.size() as i64;
        let (Some(off), Some(len)) = (offset.checked_mul(es), numel.checked_mul(es)) else {
            return Err(Error::format(&c.label, "storage view overflows"));
        };
        refs.insert(
            target,
            StorageRef {
                id,
                dtype,
                byte_offset: usize::try_from(off)
                    .map_err(|_| Error::format(&c.label, "negative view offset"))?,
                byte_len: usize::try_from(len)
                    .map_err(|_| Error::format(&c.label, "negative view size"))?,
            },
        );
    }

    // tensors
    let mut values: HashMap<String, Value> = HashMap::new();
    let mut c = member("tensors")?;
    let n = match c.pickle(&mut heap, &mut NoPersistentIds, options)? {
        Value::Int(n) if n >= 0 => n as usize,
        _ => return Err(Error::format(&c.label, "tensor count is not an int")),
    };
    for _ in 0..n {
        let args = c.pickle(&mut heap, &mut NoPersistentIds, options)?;
        let (key, storage_key) = match heap.seq(&args) {
            Some([k, s, _]) => (
                key_string(k).unwrap_or_default(),
                key_string(s).unwrap_or_default(),
            ),
            _ => {
                return Err(Error::format(
                    &c.label,
                    "tensor record is not (key, storage, type)",
                ))
            }
        };
        let ndim = i32::from_le_bytes(c.raw("ndim")?);
        c.raw::<4>("padding")?;
        let ndim = usize::try_from(ndim)
            .ok()
            .filter(|&d| d <= 64)
            .ok_or_else(|| Error::format(&c.label, format!("tensor {key}: bad ndim {ndim}")))?;
        let mut dims = Vec::with_capacity(ndim * 2);
        for _ in 0..ndim * 2 {
            dims.push(c.count("size/stride")?);
        }
        let offset = c.count("storage offset")?;
        let storage = refs.get(&storage_key).cloned().ok_or_else(|| {
            Error::format(
                &c.label,
                format!("tensor {key}: unknown storage {storage_key}"),
            )
        })?;
        let spec = TensorSpec {
            dtype: storage.dtype,
            shape: dims[..ndim].to_vec(),
            strides: dims[ndim..].to_vec(),
            offset,
            storage,
            neg: false,
            conj: false,
        };
        let v = heap
            .push(Node::Tensor(spec))
            .ok_or_else(|| Error::format(&c.label, "object count limit exceeded"))?;
        values.insert(key, v);
    }
    for (key, r) in refs {
        let v = heap
            .push(Node::Storage(r))
            .ok_or_else(|| Error::format(&path, "object count limit exceeded"))?;
        values.entry(key).or_insert(v);
    }

    // the object
    let mut c = member("pickle")?;
    let root = c.pickle(&mut heap, &mut Keys { values: &values }, options)?;
    tree::flatten(&heap, &root, ckpt)
}
