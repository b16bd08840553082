//! Model weights: a memory-mapped checkpoint (safetensors file or shard index, or a PyTorch
//! `.bin` converted in memory by `torchless-convert`, nothing written), tensors materialised on
//! request in the model's dtype and device. Implements candle's `VarBuilder` backend so models
//! load with `vb.pp("encoder").pp("layer")...` and the PyTorch state_dict names unchanged; a
//! missing tensor or a wrong shape is a typed error naming the tensor and the file.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use torchless_convert::{Checkpoint, EntryKind, OpenOptions};

use crate::error::{Error, Result};
use crate::folder::check_member;

/// The checkpoint files a folder may hold, in the order `torchless_convert::open` prefers them.
const CANDIDATES: &[&str] = &[
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "model.safetensors",
];

/// Checks the files [`Weights::open`] would read from `path`, without opening any but a shard
/// index: a folder's checkpoint (the first of [`CANDIDATES`] present) and every shard its
/// index lists must be regular files that resolve inside the folder; a file given directly
/// must be a regular file, and the shards of an index given directly must resolve inside the
/// index's folder. What is absent or malformed is left for the reader to report.
pub(crate) fn check_files(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    let (dir, file) = if meta.is_dir() {
        let mut found = None;
        for c in CANDIDATES {
            let p = path.join(c);
            if check_member(path, &p)? {
                found = Some(p);
                break;
            }
        }
        match found {
            Some(p) => (path.to_path_buf(), p),
            None => return Ok(()),
        }
    } else {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        if !meta.is_file() {
            // The caller named it, so it may live anywhere; only its kind is refused.
            return Err(Error::NotRegularFile {
                path: path.to_path_buf(),
                kind: crate::folder::kind_of(meta.file_type()),
            });
        }
        (dir, path.to_path_buf())
    };
    let is_index = file
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"));
    if !is_index {
        return Ok(());
    }
    let text = std::fs::read_to_string(&file).map_err(|cause| Error::Io {
        path: file.clone(),
        cause,
    })?;
    let Ok(index) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Ok(());
    };
    let Some(map) = index.get("weight_map").and_then(|m| m.as_object()) else {
        return Ok(());
    };
    let shards: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    for shard in shards {
        let p = dir.join(shard);
        check_member(&dir, &p)?;
    }
    Ok(())
}

/// The tensors of a checkpoint, by name.
#[derive(Debug)]
pub struct Weights {
    ckpt: Checkpoint,
    by_name: HashMap<String, usize>,
    label: String,
}

fn candle_dtype(d: torchless_convert::DType) -> Option<DType> {
    use torchless_convert::DType as C;
    Some(match d {
        C::F64 => DType::F64,
        C::F32 => DType::F32,
        C::F16 => DType::F16,
        C::BF16 => DType::BF16,
        C::I64 => DType::I64,
        C::I32 => DType::I32,
        C::I16 => DType::I16,
        C::U32 => DType::U32,
        C::U8 | C::Bool => DType::U8,
        _ => return None,
    })
}

impl Weights {
    /// Opens a safetensors file, a shard index, a `.bin` checkpoint or a model folder holding
    /// one of them. PyTorch checkpoints are read in place (never executed) and converted tensor
    /// by tensor as they are requested.
    ///
    /// Before anything is opened, the files a folder or an index names are checked
    /// ([`check_files`]): each must be a regular file resolving inside the folder.
    pub fn open(path: &Path) -> Result<Weights> {
        check_files(path)?;
        let ckpt = torchless_convert::open(path, &OpenOptions::default())?;
        Ok(Weights::from_checkpoint(ckpt))
    }

    /// Wraps an opened checkpoint.
    pub fn from_checkpoint(ckpt: Checkpoint) -> Weights {
        let by_name = ckpt
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let mut files: Vec<String> = ckpt
            .files
            .iter()
            .map(|f| {
                f.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        if files.len() > 3 {
            let n = files.len();
            files.truncate(2);
            files.push(format!("… ({n} shards)"));
        }
        let mut label = files.join(", ");
        if ckpt.format != torchless_convert::Format::Safetensors
            && ckpt
                .files
                .iter()
                .any(|f| f.format != torchless_convert::Format::Safetensors)
        {
            label.push_str(" (read in place, converted in memory)");
        }
        Weights {
            ckpt,
            by_name,
            label,
        }
    }

    /// The file(s) the weights come from, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Every tensor name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ckpt.entries.iter().map(|e| e.name.as_str())
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// A tensor's shape, if it exists and is storable.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        match &self.ckpt.entries[*self.by_name.get(name)?].kind {
            EntryKind::Tensor(s) => Some(&s.shape),
            EntryKind::Unsupported(_) => None,
        }
    }

    /// Loads a tensor as `dtype` (floating tensors are cast; integer tensors keep their type
    /// unless `dtype` is integer too) on `device`.
    pub fn tensor(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let missing = || Error::MissingTensor {
            name: name.to_string(),
            file: self.label.clone(),
        };
        let entry = &self.ckpt.entries[*self.by_name.get(name).ok_or_else(missing)?];
        let spec = match &entry.kind {
            EntryKind::Tensor(s) => s,
            EntryKind::Unsupported(kind) => {
                return Err(Error::WrongDType {
                    name: name.into(),
                    file: self.label.clone(),
                    found: kind.clone(),
                })
            }
        };
        let src = candle_dtype(spec.dtype).ok_or_else(|| Error::WrongDType {
            name: name.into(),
            file: self.label.clone(),
            found: spec.dtype.to_string(),
        })?;
        let storage = &self.ckpt.storages[spec.storage.id];
        let t = match spec.contiguous_range() {
            Some(range) if spec.is_plain() && !storage.big_endian => {
                let bytes = self.ckpt.storage_bytes(spec.storage.id)?;
                Tensor::from_raw_buffer(&bytes[range], src, &spec.shape, &Device::Cpu)?
            }
            _ => {
                let mut buf = Vec::with_capacity(spec.nbytes());
                self.ckpt.read_tensor(spec, spec.dtype, &mut |c| {
                    buf.extend_from_slice(c);
                    Ok(())
                })?;
                Tensor::from_raw_buffer(&buf, src, &spec.shape, &Device::Cpu)?
            }
        };
        let t = if src.is_float() && dtype.is_float() && src != dtype {
            t.to_dtype(dtype)?
        } else {
            t
        };
        Ok(t.to_device(device)?)
    }

    /// Loads a tensor and checks its shape.
    pub fn get(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if let Some(found) = self.shape(name) {
            if found != shape {
                return Err(Error::WrongShape {
                    name: name.into(),
                    file: self.label.clone(),
                    expected: shape.to_vec(),
                    found: found.to_vec(),
                });
            }
        }
        self.tensor(name, dtype, device)
    }

    /// A candle `VarBuilder` reading these weights as `dtype` on `device`.
    pub fn var_builder(self: &Arc<Self>, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Backend(self.clone())), dtype, device.clone())
    }
}

struct Backend(Arc<Weights>);

impl SimpleBackend for Backend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0
            .get(name, s.dims(), dtype, dev)
            .map_err(Error::into_candle)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.tensor(name, dtype, dev).map_err(Error::into_candle)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}
