//! The zip layer shared by `torch.save`, TorchScript and `torch.export` archives: the record
//! table under the archive's root folder, with each record's location in the mapped file so
//! stored records are read in place.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Cursor, Read};

use crate::checkpoint::{Storage, StorageData};
use crate::error::{Error, Result};

/// One record of the archive.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// Index in the zip's central directory.
    pub index: usize,
    /// Offset of the record's data within the archive bytes.
    pub data_start: usize,
    /// Uncompressed size.
    pub size: usize,
    /// Whether the record is stored uncompressed.
    pub stored: bool,
    /// CRC-32 from the central directory.
    pub crc32: u32,
}

/// The records of a zip archive, keyed by name below the root folder.
#[derive(Debug)]
pub(crate) struct Archive<'a> {
    /// Display name for messages (the file path, or `outer.pt2: record` for nested archives).
    pub label: String,
    /// Index of the mapped file holding the archive.
    pub file: usize,
    /// Offset of the archive within that file.
    pub base: usize,
    /// The archive's bytes.
    pub bytes: &'a [u8],
    /// The root folder name (`archive`, `model`, ...).
    pub root: String,
    /// Records by name below the root.
    pub records: HashMap<String, Record>,
}

/// Whether a record name could escape a folder if extracted: absolute, `..`, backslash or NUL.
pub(crate) fn unsafe_name(name: &str) -> bool {
    name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.split('/').any(|c| c == "..")
}

impl<'a> Archive<'a> {
    /// Reads the central directory of the zip in `bytes` (which start at `base` in `file`).
    pub fn open(label: String, file: usize, base: usize, bytes: &'a [u8]) -> Result<Archive<'a>> {
        let fail = |reason: String| Error::format(label.clone(), reason);
        let mut z = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| fail(format!("not a readable zip archive: {e}")))?;
        let mut records = HashMap::new();
        let mut root: Option<String> = None;
        for i in 0..z.len() {
            let f = z
                .by_index_raw(i)
                .map_err(|e| fail(format!("zip record {i}: {e}")))?;
            let name = f
                .name()
                .map_err(|e| fail(format!("zip record {i}: {e}")))?
                .into_owned();
            if unsafe_name(&name) {
                return Err(fail(format!(
                    "record name {name:?} is absolute or climbs out of the archive; refusing the file"
                )));
            }
            if name.ends_with('/') {
                continue; // folder entries carry no data
            }
            let (r, rest) = name.split_once('/').ok_or_else(|| {
                fail(format!(
                    "record {name:?} is not inside a root folder, as PyTorch archives are"
                ))
            })?;
            match &root {
                None => root = Some(r.to_string()),
                Some(existing) if existing != r => {
                    return Err(fail(format!(
                        "records under two root folders ({existing:?} and {r:?})"
                    )))
                }
                _ => {}
            }
            let data_start = f
                .data_start()
                .ok_or_else(|| fail(format!("record {name:?}: no data offset")))?;
            let data_start = usize::try_from(data_start)
                .map_err(|_| fail(format!("record {name:?}: offset out of range")))?;
            let csize = usize::try_from(f.compressed_size())
                .map_err(|_| fail(format!("record {name:?}: size out of range")))?;
            let size = usize::try_from(f.size())
                .map_err(|_| fail(format!("record {name:?}: size out of range")))?;
            if data_start
                .checked_add(csize)
                .is_none_or(|end| end > bytes.len())
            {
                return Err(fail(format!(
                    "record {name:?} ({csize} bytes at offset {data_start}) runs past the end of the file ({} bytes): truncated?",
                    bytes.len()
                )));
            }
            let stored = f.compression() == zip::CompressionMethod::Stored;
            // DEFLATE produces at most 1032 bytes per input byte: a larger declared size is a
            // lie (a zip64 field claiming terabytes for a few bytes of data).
            if !stored && size > csize.saturating_mul(1032).saturating_add(1024) {
                return Err(fail(format!(
                    "compressed record {name:?} declares {size} bytes, more than {csize} compressed bytes can inflate to: refusing the file"
                )));
            }
            if stored && csize != size {
                return Err(fail(format!(
                    "stored record {name:?} declares {size} bytes but holds {csize}"
                )));
            }
            records.insert(
                rest.to_string(),
                Record {
                    index: i,
                    data_start,
                    size,
                    stored,
                    crc32: f.crc32(),
                },
            );
        }
        let root = root.ok_or_else(|| fail("the zip archive is empty".into()))?;
        Ok(Archive {
            label,
            file,
            base,
            bytes,
            root,
            records,
        })
    }

    /// Whether a record exists.
    pub fn has(&self, name: &str) -> bool {
        self.records.contains_key(name)
    }

    /// A record's full name for messages.
    pub fn full_name(&self, name: &str) -> String {
        format!("{}/{}", self.root, name)
    }

    /// Reads a (small) record whole, checking its CRC.
    pub fn read(&self, name: &str) -> Result<Cow<'a, [u8]>> {
        let rec = self.records.get(name).ok_or_else(|| {
            Error::format(
                self.label.clone(),
                format!("record {} is missing", self.full_name(name)),
            )
        })?;
        let fail = |reason: String| {
            Error::format(format!("{}: {}", self.label, self.full_name(name)), reason)
        };
        if rec.stored {
            let b = &self.bytes[rec.data_start..rec.data_start + rec.size];
            if crc32fast::hash(b) != rec.crc32 {
                return Err(fail("CRC-32 mismatch: the file is corrupted".into()));
            }
            return Ok(Cow::Borrowed(b));
        }
        let mut z =
            zip::ZipArchive::new(Cursor::new(self.bytes)).map_err(|e| fail(e.to_string()))?;
        let limit = crate::budget::default_limit(self.bytes.len() as u64);
        if rec.size as u64 > limit {
            return Err(Error::Budget {
                file: format!("{}: {}", self.label, self.full_name(name)),
                what: "bytes once inflated".into(),
                needed: rec.size as u64,
                limit,
            });
        }
        let f = z.by_index(rec.index).map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        out.try_reserve_exact(rec.size)
            .map_err(|_| fail(format!("cannot allocate {} bytes to inflate it", rec.size)))?;
        f.take(rec.size as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| fail(e.to_string()))?;
        if out.len() != rec.size {
            return Err(fail(format!(
                "inflated to {} bytes, the zip declares {}",
                out.len(),
                rec.size
            )));
        }
        Ok(Cow::Owned(out))
    }

    /// Reads a record as UTF-8 text.
    pub fn read_text(&self, name: &str) -> Result<String> {
        let b = self.read(name)?;
        String::from_utf8(b.into_owned()).map_err(|_| {
            Error::format(
                format!("{}: {}", self.label, self.full_name(name)),
                "not UTF-8 text",
            )
        })
    }

    /// The byte order the archive records (`byteorder`), default little-endian.
    pub fn big_endian(&self) -> Result<bool> {
        if !self.has("byteorder") {
            return Ok(false);
        }
        match self.read("byteorder")?.as_ref() {
            b"little" => Ok(false),
            b"big" => Ok(true),
            other => Err(Error::format(
                self.label.clone(),
                format!(
                    "unknown byteorder record ({} bytes; expected `little` or `big`)",
                    other.len()
                ),
            )),
        }
    }

    /// A storage-table entry for a record, read in place when stored.
    pub fn storage(&self, name: &str, big_endian: bool) -> Result<Storage> {
        let rec = self.records.get(name).ok_or_else(|| {
            Error::format(
                self.label.clone(),
                format!("record {} is missing", self.full_name(name)),
            )
        })?;
        let data = if rec.stored {
            StorageData::Mapped {
                start: self.base + rec.data_start,
                crc32: Some(rec.crc32),
            }
        } else {
            StorageData::Deflated {
                entry: rec.index,
                archive_start: self.base,
                archive_len: self.bytes.len(),
            }
        };
        Ok(Storage::new(
            self.full_name(name),
            self.file,
            rec.size,
            big_endian,
            data,
        ))
    }

    /// Names of records below `folder/` (one level or deeper).
    pub fn names_under<'s>(&'s self, folder: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.records
            .keys()
            .filter(move |k| k.starts_with(folder))
            .map(String::as_str)
    }
}
