//! Persistent ids: how `torch.save` pickles refer to storages kept outside the pickle.
//! Zip archives write `('storage', StorageClass, key, location, numel)`; the legacy stream adds
//! a sixth field, `view_metadata`, and whole-module pickles may hold `('module', cls, file, src)`.

use crate::dtype::DType;
use crate::pickle::{Heap, Value};

/// A decoded persistent id.
#[derive(Debug)]
pub(crate) enum Pid {
    /// A storage reference.
    Storage {
        /// Element type of the storage class.
        dtype: DType,
        /// The storage key.
        key: String,
        /// Declared number of elements.
        numel: usize,
        /// Legacy view: (view key, element offset, element count).
        view: Option<(String, usize, usize)>,
    },
    /// A module class reference (legacy whole-module pickles): the class symbol itself.
    Module(Value),
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_string),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn count(v: &Value, what: &str) -> Result<usize, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        _ => Err(format!("{what} is not a non-negative int")),
    }
}

/// A storage key used to build a record name must be a plain name.
pub(crate) fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty()
        || key.contains('/')
        || key.contains('\\')
        || key.contains('\0')
        || key == ".."
        || key == "."
    {
        return Err(format!(
            "storage key {key:?} is not a plain record name; refusing the file"
        ));
    }
    Ok(())
}

/// Decodes a persistent id tuple.
pub(crate) fn decode(pid: &Value, heap: &Heap) -> Result<Pid, String> {
    let items = heap
        .seq(pid)
        .ok_or_else(|| format!("expected a tuple, found {}", heap.describe(pid)))?;
    let kind = items.first().and_then(text).unwrap_or_default();
    match kind.as_str() {
        "module" => Ok(Pid::Module(items.get(1).cloned().unwrap_or(Value::None))),
        "storage" => {
            if items.len() != 5 && items.len() != 6 {
                return Err(format!("storage id with {} fields", items.len()));
            }
            let dtype = match &items[1] {
                Value::Global(g) => DType::from_storage_class(&g.name)
                    .ok_or_else(|| format!("unknown storage class {g}"))?,
                other => return Err(format!("storage class is {}", heap.describe(other))),
            };
            let key = text(&items[2]).ok_or("storage key is not text")?;
            let numel = count(&items[4], "storage size")?;
            let view = match items.get(5) {
                None | Some(Value::None) => None,
                Some(v) => {
                    let f = heap.seq(v).ok_or("view metadata is not a tuple")?;
                    match f {
                        [k, off, n] => Some((
                            text(k).ok_or("view key is not text")?,
                            count(off, "view offset")?,
                            count(n, "view size")?,
                        )),
                        _ => return Err("view metadata is not (key, offset, size)".into()),
                    }
                }
            };
            Ok(Pid::Storage {
                dtype,
                key,
                numel,
                view,
            })
        }
        _ => Err("unknown persistent id kind".to_string()),
    }
}
