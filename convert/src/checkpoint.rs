//! A parsed checkpoint: the mapped input files, the table of storages (where each one's bytes
//! live), and the named tensors and dropped objects found in it.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;

use crate::error::{Error, Result};
use crate::tensor::TensorSpec;

/// The container format a checkpoint was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `torch.save` zip archive (PyTorch ≥ 1.6).
    Zip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)` stream (PyTorch ≤ 1.5).
    Legacy,
    /// The tar format of PyTorch < 0.1.10.
    Tar,
    /// A `torch.jit.save` archive.
    Torchscript,
    /// A `torch.export.save` archive.
    Pt2,
    /// A safetensors file.
    Safetensors,
    /// A Hugging Face folder or index of shards (the shards' own format is listed per file).
    HfFolder,
}

impl Format {
    /// A human name for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Zip => "torch.save zip archive",
            Format::Legacy => "legacy torch.save stream (PyTorch <= 1.5)",
            Format::Tar => "legacy torch.save tar (PyTorch < 0.1.10)",
            Format::Torchscript => "TorchScript archive (torch.jit.save)",
            Format::Pt2 => "torch.export archive (.pt2)",
            Format::Safetensors => "safetensors",
            Format::HfFolder => "Hugging Face checkpoint folder",
        }
    }
}

/// The bytes of an input: a read-only mapping, or a buffer already in memory.
#[derive(Debug)]
pub(crate) enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// One input file.
#[derive(Debug)]
pub struct SourceFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    pub(crate) data: Bytes,
}

impl SourceFile {
    /// Maps `path` read-only.
    pub(crate) fn open(path: &Path, format: Format) -> Result<SourceFile> {
        Ok(SourceFile {
            path: path.to_path_buf(),
            format,
            data: Bytes::Mapped(map_file(path)?),
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// Maps a file read-only; an empty file is an error (it cannot be a checkpoint).
pub(crate) fn map_file(path: &Path) -> Result<Mmap> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so that opening a FIFO returns at once; it is then refused below.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: "not a regular file (a FIFO, device or socket); refusing to read it".into(),
        });
    }
    let len = meta.len();
    if len == 0 {
        return Err(Error::UnknownFormat {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    // SAFETY: the map is read-only and private to this process; a concurrent truncation of the
    // input by another process is outside what a converter can defend against (it would raise
    // SIGBUS, as for any mmap reader).
    unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))
}

/// Where a storage's bytes are.
#[derive(Debug, Clone)]
pub(crate) enum StorageData {
    /// A byte range of a mapped file.
    Mapped {
        /// Offset in the file.
        start: usize,
        /// Expected CRC-32 of the range (zip records), checked on first use.
        crc32: Option<u32>,
    },
    /// A compressed zip record, inflated on use.
    Deflated {
        /// The zip record's index in the archive.
        entry: usize,
        /// Offset of the archive within the file (nested archives).
        archive_start: usize,
        /// Length of the archive.
        archive_len: usize,
    },
}

/// One storage: a byte buffer several tensors may view.
#[derive(Debug)]
pub struct Storage {
    /// Record name or key, for messages (`archive/data/3`).
    pub name: String,
    /// Index of the file holding it.
    pub file: usize,
    /// Length in bytes.
    pub len: usize,
    /// Whether elements are stored big-endian.
    pub big_endian: bool,
    pub(crate) data: StorageData,
    pub(crate) checked: OnceLock<std::result::Result<(), String>>,
}

impl Storage {
    pub(crate) fn new(
        name: String,
        file: usize,
        len: usize,
        big_endian: bool,
        data: StorageData,
    ) -> Storage {
        Storage {
            name,
            file,
            len,
            big_endian,
            data,
            checked: OnceLock::new(),
        }
    }
}

/// A named tensor found in the checkpoint.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Dotted name (`model.fc.weight`).
    pub name: String,
    /// The tensor, or why it cannot be stored.
    pub kind: EntryKind,
}

/// What an [`Entry`] holds.
#[derive(Debug, Clone)]
pub enum EntryKind {
    /// A storable tensor view.
    Tensor(TensorSpec),
    /// A tensor safetensors cannot hold, with the reason.
    Unsupported(String),
}

/// A non-tensor value that has no place in safetensors, listed so nothing is dropped silently.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Dropped {
    /// Dotted path.
    pub path: String,
    /// What it is (`int 3`, `str 'adam'`, `object argparse.Namespace`).
    pub what: String,
}

/// A parsed checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The detected format.
    pub format: Format,
    /// The mapped input files.
    pub files: Vec<SourceFile>,
    /// Every storage.
    pub storages: Vec<Storage>,
    /// Named tensors in checkpoint order.
    pub entries: Vec<Entry>,
    /// Non-tensor values and objects, in checkpoint order.
    pub dropped: Vec<Dropped>,
    /// Notes for the user (e.g. which `--key` selects the model in a training checkpoint).
    pub notes: Vec<String>,
    /// Keys of the root dict, for `--key` hints.
    pub(crate) top_keys: Vec<String>,
    /// `__metadata__` of safetensors inputs (merged over shards).
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Most bytes of tensor data this input may materialise (see [`crate::Budget`]).
    pub byte_budget: u64,
}

impl Checkpoint {
    pub(crate) fn new(format: Format) -> Checkpoint {
        Checkpoint {
            format,
            files: Vec::new(),
            storages: Vec::new(),
            entries: Vec::new(),
            dropped: Vec::new(),
            notes: Vec::new(),
            top_keys: Vec::new(),
            metadata: Default::default(),
            byte_budget: crate::budget::BUDGET_SLACK,
        }
    }

    /// The keys of the root container when it is a dict (used for `--key` hints).
    pub fn top_keys(&self) -> &[String] {
        &self.top_keys
    }

    /// Checks every tensor view against its storage. Called once after parsing.
    pub(crate) fn validate(&self) -> Result<()> {
        for e in &self.entries {
            if let EntryKind::Tensor(spec) = &e.kind {
                let storage = self.storages.get(spec.storage.id).ok_or_else(|| {
                    Error::tensor(&e.name, "refers to a storage that does not exist")
                })?;
                let end = spec
                    .storage
                    .byte_offset
                    .checked_add(spec.storage.byte_len)
                    .ok_or_else(|| Error::tensor(&e.name, "storage view overflows"))?;
                if end > storage.len {
                    return Err(Error::tensor(
                        &e.name,
                        format!(
                            "its storage {} declares {} bytes (from offset {}) but holds {}",
                            storage.name,
                            spec.storage.byte_len,
                            spec.storage.byte_offset,
                            storage.len
                        ),
                    ));
                }
                spec.validate()
                    .map_err(|reason| Error::tensor(&e.name, reason))?;
            }
        }
        Ok(())
    }

    /// The bytes of a storage: borrowed from the mapping, or inflated for compressed records.
    /// Zip CRCs are checked on first use.
    pub fn storage_bytes(&self, id: usize) -> Result<Cow<'_, [u8]>> {
        let s = &self.storages[id];
        let file = &self.files[s.file];
        match &s.data {
            StorageData::Mapped { start, crc32 } => {
                let bytes = &file.bytes()[*start..*start + s.len];
                if let Some(expected) = crc32 {
                    s.checked
                        .get_or_init(|| {
                            let got = crc32fast::hash(bytes);
                            if got == *expected {
                                Ok(())
                            } else {
                                Err(format!(
                                    "CRC-32 mismatch (recorded {expected:08x}, data {got:08x}): the file is corrupted"
                                ))
                            }
                        })
                        .clone()
                        .map_err(|reason| Error::format(format!("{}: {}", file.path.display(), s.name), reason))?;
                }
                Ok(Cow::Borrowed(bytes))
            }
            StorageData::Deflated {
                entry,
                archive_start,
                archive_len,
            } => {
                let archive = &file.bytes()[*archive_start..*archive_start + *archive_len];
                let fail =
                    |e: String| Error::format(format!("{}: {}", file.path.display(), s.name), e);
                let mut z = zip::ZipArchive::new(std::io::Cursor::new(archive))
                    .map_err(|e| fail(e.to_string()))?;
                let f = z.by_index(*entry).map_err(|e| fail(e.to_string()))?;
                let mut out = Vec::new();
                out.try_reserve_exact(s.len).map_err(|_| {
                    fail(format!(
                        "cannot allocate {} bytes to inflate the record",
                        s.len
                    ))
                })?;
                // One byte more than declared, so a record that inflates larger is caught.
                f.take(s.len as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(|e| fail(e.to_string()))?;
                if out.len() != s.len {
                    return Err(fail(format!(
                        "inflated to {} bytes, expected {}",
                        out.len(),
                        s.len
                    )));
                }
                Ok(Cow::Owned(out))
            }
        }
    }

    /// Total elements over all distinct tensor views (aliases counted once).
    pub fn element_count(&self) -> u128 {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::Tensor(s) if seen.insert(s.clone()) => {
                    Some(s.numel().unwrap_or(0) as u128)
                }
                _ => None,
            })
            .sum()
    }
}

impl Checkpoint {
    /// Streams `range` of a compressed record to `sink` a chunk at a time, inflating as it
    /// goes: a contiguous tensor in a compressed record never holds more than one chunk.
    fn stream_inflated(
        &self,
        id: usize,
        range: std::ops::Range<usize>,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let s = &self.storages[id];
        let file = &self.files[s.file];
        let StorageData::Deflated {
            entry,
            archive_start,
            archive_len,
        } = s.data
        else {
            return Err(Error::format(&s.name, "not a compressed record"));
        };
        let fail = |e: String| Error::format(format!("{}: {}", file.path.display(), s.name), e);
        let archive = &file.bytes()[archive_start..archive_start + archive_len];
        let mut z =
            zip::ZipArchive::new(std::io::Cursor::new(archive)).map_err(|e| fail(e.to_string()))?;
        let mut f = z.by_index(entry).map_err(|e| fail(e.to_string()))?;
        let skipped = std::io::copy(&mut (&mut f).take(range.start as u64), &mut std::io::sink())
            .map_err(|e| fail(e.to_string()))?;
        let mut left = range.len();
        let mut buf = vec![0u8; PLAIN_CHUNK.min(left)];
        while left > 0 && skipped == range.start as u64 {
            let want = buf.len().min(left);
            let n = f.read(&mut buf[..want]).map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            sink(&buf[..n])?;
            left -= n;
        }
        if left > 0 || skipped != range.start as u64 {
            return Err(fail(format!(
                "inflated to fewer bytes than the {} the tensor needs",
                range.end
            )));
        }
        Ok(())
    }
}

/// Bytes handed to a sink at a time when a tensor needs no transformation.
const PLAIN_CHUNK: usize = 16 << 20;
/// Elements gathered at a time when a tensor is strided, byte-swapped, lazily negated or cast.
const GATHER_CHUNK: usize = 1 << 20;

impl Checkpoint {
    /// Streams a tensor's logical values as contiguous little-endian `out` elements to `sink`,
    /// in chunks: strides are materialised, big-endian storages swapped, lazy negation and
    /// conjugation applied, floats cast. Memory stays at one chunk whatever the tensor size.
    pub fn read_tensor(
        &self,
        spec: &TensorSpec,
        out: crate::dtype::DType,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let storage = &self.storages[spec.storage.id];
        if let StorageData::Deflated { .. } = storage.data {
            if out == spec.dtype && spec.is_plain() && !storage.big_endian {
                if let Some(range) = spec.contiguous_range() {
                    return self.stream_inflated(spec.storage.id, range, sink);
                }
            }
        }
        let bytes = self.storage_bytes(spec.storage.id)?;
        if out == spec.dtype && spec.is_plain() && !storage.big_endian {
            if let Some(range) = spec.contiguous_range() {
                for chunk in bytes[range].chunks(PLAIN_CHUNK) {
                    sink(chunk)?;
                }
                return Ok(());
            }
        }
        let mut gather = crate::tensor::Gather::new(spec, &bytes);
        let mut buf = Vec::new();
        let mut cast = Vec::new();
        while gather.next_chunk(&mut buf, GATHER_CHUNK) > 0 {
            if storage.big_endian {
                crate::tensor::byteswap(&mut buf, spec.dtype.swap_unit());
            }
            crate::tensor::apply_lazy_bits(&mut buf, spec.dtype, spec.neg, spec.conj);
            if out == spec.dtype {
                sink(&buf)?;
            } else {
                cast.clear();
                crate::cast::cast(&buf, spec.dtype, out, &mut cast);
                sink(&cast)?;
            }
        }
        Ok(())
    }
}
