//! The safetensors writer: tensors streamed one chunk at a time from the mapped input into a
//! temporary file next to the output, the input's SHA-256 computed on a second thread and
//! patched into the header, then fsync and rename — an output exists only when complete.
//! With a shard size, Hugging Face shard names and `<output>.index.json` are written.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use safetensors::tensor::{Metadata, TensorInfo};
use sha2::{Digest, Sha256};

use crate::checkpoint::{Checkpoint, SourceFile};
use crate::error::{Error, Result};
use crate::plan::{ConvertOptions, Plan, PlannedTensor};

/// Metadata key holding the input's SHA-256.
pub const SHA_KEY: &str = "torchless.source_sha256";
/// Metadata key holding the conversion options.
pub const OPTIONS_KEY: &str = "torchless.options";
/// Metadata key holding the converter version.
pub const VERSION_KEY: &str = "torchless.version";
/// Metadata key holding the source format.
pub const FORMAT_KEY: &str = "torchless.source_format";

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// The safetensors files, in shard order.
    pub files: Vec<PathBuf>,
    /// The shard index, when sharded.
    pub index: Option<PathBuf>,
    /// Bytes of tensor data written.
    pub bytes: u64,
    /// SHA-256 of each input file, as recorded.
    pub source_sha256: String,
}

/// Parses a size such as `5GB`, `500MB`, `2GiB`, `1.5GB` or a byte count.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KIB" => 1 << 10,
        "MIB" => 1 << 20,
        "GIB" => 1 << 30,
        "TIB" => 1 << 40,
        other => return Err(Error::Option(format!("size {s:?}: unknown unit {other:?}"))),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::Option(format!("size {s:?}: not a number")))?;
    let v = (n * mult as f64).round();
    if !(1.0..1e19).contains(&v) {
        return Err(Error::Option(format!("size {s:?} is out of range")));
    }
    Ok(v as u64)
}

/// The safetensors order: larger alignment first, then by name.
fn order(tensors: &[PlannedTensor]) -> Vec<&PlannedTensor> {
    let mut v: Vec<&PlannedTensor> = tensors.iter().collect();
    v.sort_by(|a, b| {
        let (da, db) = (a.dtype.to_safetensors(), b.dtype.to_safetensors());
        db.cmp(&da).then_with(|| a.name.cmp(&b.name))
    });
    v
}

/// Splits ordered tensors into shards of at most `max` bytes (a larger tensor gets its own).
fn shards(ordered: Vec<&PlannedTensor>, max: Option<u64>) -> Vec<Vec<&PlannedTensor>> {
    let Some(max) = max else {
        return vec![ordered];
    };
    let mut out: Vec<Vec<&PlannedTensor>> = vec![Vec::new()];
    let mut size = 0u64;
    for t in ordered {
        let n = t.nbytes() as u64;
        let cur = out.last_mut().expect("never empty");
        if !cur.is_empty() && size + n > max {
            out.push(vec![t]);
            size = n;
        } else {
            cur.push(t);
            size += n;
        }
    }
    out
}

/// Shard file names for `output` (`model.safetensors` → `model-00001-of-00002.safetensors`).
fn shard_paths(output: &Path, n: usize) -> Vec<PathBuf> {
    if n == 1 {
        return vec![output.to_path_buf()];
    }
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let ext = output
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (1..=n)
        .map(|i| output.with_file_name(format!("{stem}-{i:05}-of-{n:05}{ext}")))
        .collect()
}

/// The index path for a sharded `output`.
pub fn index_path(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.safetensors".into());
    output.with_file_name(format!("{name}.index.json"))
}

fn sha_placeholder(files: &[SourceFile]) -> String {
    sha_value(files, &vec!["0".repeat(64); files.len()])
}

fn sha_value(files: &[SourceFile], hex: &[String]) -> String {
    if files.len() == 1 {
        return hex[0].clone();
    }
    files
        .iter()
        .zip(hex)
        .map(|(f, h)| {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{name}:{h}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// SHA-256 of each file; stops early (returning `None`) when `cancel` is set.
fn hash_files(files: &[SourceFile], cancel: &AtomicBool) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let mut h = Sha256::new();
        for chunk in f.bytes().chunks(8 << 20) {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            h.update(chunk);
        }
        out.push(h.finalize().iter().map(|b| format!("{b:02x}")).collect());
    }
    Some(out)
}

/// The recorded SHA-256 value for a set of input files.
pub(crate) fn sha256_of(files: &[SourceFile]) -> String {
    let hex = hash_files(files, &AtomicBool::new(false)).unwrap_or_default();
    sha_value(files, &hex)
}

/// Metadata common to every shard.
fn base_metadata(ckpt: &Checkpoint, opts: &ConvertOptions, sha: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("format".into(), "pt".into());
    m.insert(VERSION_KEY.into(), env!("CARGO_PKG_VERSION").into());
    m.insert(
        FORMAT_KEY.into(),
        serde_json::to_value(ckpt.format)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    );
    m.insert(SHA_KEY.into(), sha.into());
    m.insert(
        OPTIONS_KEY.into(),
        serde_json::to_string(&opts.recorded()).unwrap_or_default(),
    );
    m
}

struct Pending {
    file: tempfile::NamedTempFile,
    final_path: PathBuf,
    sha_at: Option<u64>,
    _live: LiveTemp,
}

/// Temporary files being written right now, so that a signal handler can remove them
/// ([`remove_temp_files`]): a process killed by SIGINT/SIGTERM runs no destructor.
static LIVE_TEMPS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Registers a temporary file in [`LIVE_TEMPS`] for as long as it lives.
struct LiveTemp(PathBuf);

impl LiveTemp {
    fn new(path: &Path) -> LiveTemp {
        LIVE_TEMPS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(path.to_path_buf());
        LiveTemp(path.to_path_buf())
    }
}

impl Drop for LiveTemp {
    fn drop(&mut self) {
        LIVE_TEMPS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p != &self.0);
    }
}

/// Removes every temporary output file still being written; returns how many there were.
/// For a signal handler (SIGINT, SIGTERM) that then exits: the conversion in flight fails,
/// and no partial file is left behind.
pub fn remove_temp_files() -> usize {
    let live = LIVE_TEMPS.lock().unwrap_or_else(|p| p.into_inner());
    for p in live.iter() {
        let _ = std::fs::remove_file(p);
    }
    live.len()
}

/// Refuses to write over one of the input files (same device and inode, whatever the path).
fn not_an_input(ckpt: &Checkpoint, target: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(out) = std::fs::metadata(target) else {
        return Ok(());
    };
    for f in &ckpt.files {
        if let Ok(inp) = std::fs::metadata(&f.path) {
            if inp.dev() == out.dev() && inp.ino() == out.ino() {
                return Err(Error::Option(format!(
                    "the output {} is the input file {}; write the conversion elsewhere",
                    target.display(),
                    f.path.display()
                )));
            }
        }
    }
    Ok(())
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Writes one shard to a temporary file; returns it with the offset of the SHA placeholder.
fn write_shard(
    ckpt: &Checkpoint,
    tensors: &[&PlannedTensor],
    mut metadata: HashMap<String, String>,
    plan: &Plan,
    final_path: &Path,
    placeholder: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Pending> {
    for a in &plan.aliases {
        if tensors.iter().any(|t| t.name == a.kept) {
            metadata.insert(a.removed.clone(), a.kept.clone());
        }
    }
    let mut infos = Vec::with_capacity(tensors.len());
    let mut offset = 0usize;
    for t in tensors {
        let n = t.nbytes();
        let dtype = t.dtype.to_safetensors().ok_or_else(|| Error::Unsupported {
            tensor: t.source.clone(),
            kind: format!("a {} tensor", t.dtype),
        })?;
        infos.push((
            t.name.clone(),
            TensorInfo {
                dtype,
                shape: t.spec.shape.clone(),
                data_offsets: (offset, offset + n),
            },
        ));
        offset += n;
    }
    let md = Metadata::new(Some(metadata), infos)
        .map_err(|e| Error::format(final_path.display().to_string(), e.to_string()))?;
    let mut header = serde_json::to_vec(&md)
        .map_err(|e| Error::format(final_path.display().to_string(), e.to_string()))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let needle = serde_json::to_vec(&placeholder).unwrap_or_default();
    let sha_at = header
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .map(|p| 8 + p as u64 + 1);

    let dir = match final_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err(dir))?;
    let tmp_path = file.path().to_path_buf();
    let live = LiveTemp::new(&tmp_path);
    let f = file.as_file();
    f.write_all_at(&(header.len() as u64).to_le_bytes(), 0)
        .and_then(|_| f.write_all_at(&header, 8))
        .map_err(io_err(&tmp_path))?;
    write_data(
        ckpt,
        tensors,
        f,
        8 + header.len() as u64,
        &tmp_path,
        progress,
    )?;
    Ok(Pending {
        file,
        final_path: final_path.to_path_buf(),
        sha_at,
        _live: live,
    })
}

/// Bytes of a plain tensor one writer job copies (jobs are spread over the writer threads).
const JOB_BYTES: usize = 64 << 20;

/// Starts the kernel writing `len` bytes at `at` back to disk without waiting, so the final
/// fsync has little left to do (Linux `sync_file_range`; elsewhere a no-op).
fn start_writeback(file: &std::fs::File, at: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `sync_file_range` only reads the descriptor and the range; the file stays
        // open for the call's duration (borrowed). Failure is harmless: fsync follows.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                at as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, at, len);
}

/// One piece of the data section.
struct Job {
    /// Index into the shard's tensors.
    tensor: usize,
    /// A byte range of a tensor copied straight from the mapping, or the whole tensor through
    /// `read_tensor` (strided, swapped, cast or compressed).
    range: Option<std::ops::Range<usize>>,
    /// Where it goes in the file.
    at: u64,
}

/// Writes the tensors' bytes from `data_start` on, with one writer per CPU pulling jobs in
/// order (a plain copy is CPU-bound kernel work on most machines, so a second core doubles it).
fn write_data(
    ckpt: &Checkpoint,
    tensors: &[&PlannedTensor],
    file: &std::fs::File,
    data_start: u64,
    path: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    use std::sync::atomic::{AtomicU64, AtomicUsize};
    use std::sync::Mutex;

    let mut jobs = Vec::new();
    let mut at = data_start;
    for (i, t) in tensors.iter().enumerate() {
        let n = t.nbytes();
        let mapped = matches!(
            ckpt.storages[t.spec.storage.id].data,
            crate::checkpoint::StorageData::Mapped { .. }
        );
        let plain = t.dtype == t.spec.dtype
            && t.spec.is_plain()
            && mapped
            && !ckpt.storages[t.spec.storage.id].big_endian;
        if plain && n > 0 {
            for start in (0..n).step_by(JOB_BYTES) {
                jobs.push(Job {
                    tensor: i,
                    range: Some(start..(start + JOB_BYTES).min(n)),
                    at: at + start as u64,
                });
            }
        } else {
            jobs.push(Job {
                tensor: i,
                range: None,
                at,
            });
        }
        at += n as u64;
    }
    file.set_len(at).map_err(io_err(path))?;
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let run = |job: &Job| -> Result<()> {
        let t = tensors[job.tensor];
        let context = |e: Error| match e {
            Error::Format { file, reason } => Error::Format {
                file: format!("{file} (tensor `{}`)", t.source),
                reason,
            },
            other => other,
        };
        match &job.range {
            Some(r) => {
                let bytes = ckpt.storage_bytes(t.spec.storage.id).map_err(context)?;
                let base = t.spec.contiguous_range().map_or(0, |c| c.start);
                file.write_all_at(&bytes[base + r.start..base + r.end], job.at)
                    .map_err(io_err(path))?;
                start_writeback(file, job.at, r.len());
                done.fetch_add(r.len() as u64, Ordering::Relaxed);
            }
            None => {
                let mut pos = job.at;
                let mut written = 0usize;
                ckpt.read_tensor(&t.spec, t.dtype, &mut |chunk| {
                    file.write_all_at(chunk, pos).map_err(io_err(path))?;
                    pos += chunk.len() as u64;
                    written += chunk.len();
                    done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok(())
                })
                .map_err(context)?;
                if written != t.nbytes() {
                    return Err(Error::tensor(
                        &t.source,
                        format!("produced {written} bytes, expected {}", t.nbytes()),
                    ));
                }
                start_writeback(file, job.at, written);
            }
        }
        Ok(())
    };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= jobs.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Err(e) = run(&jobs[j]) {
                        stop.store(true, Ordering::Relaxed);
                        let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                        f.get_or_insert(e);
                        break;
                    }
                })
            })
            .collect();
        let mut reported = 0u64;
        loop {
            let finished = handles.iter().all(|h| h.is_finished());
            let now = done.load(Ordering::Relaxed);
            if now > reported {
                progress(now - reported);
                reported = now;
            }
            if finished {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes the plan to `output` (sharded when `opts.max_shard_size` asks), atomically.
/// `progress` receives byte counts as tensor data is written.
pub fn write(
    ckpt: &Checkpoint,
    plan: &Plan,
    opts: &ConvertOptions,
    output: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Written> {
    if output.is_dir() {
        return Err(Error::Option(format!(
            "{} is a folder; give the output file name (e.g. {}/model.safetensors)",
            output.display(),
            output.display()
        )));
    }
    let placeholder = sha_placeholder(&ckpt.files);
    let base = base_metadata(ckpt, opts, &placeholder);
    let groups = shards(order(&plan.tensors), opts.max_shard_size);
    let paths = shard_paths(output, groups.len());
    for p in paths.iter().chain(std::iter::once(&index_path(output))) {
        not_an_input(ckpt, p)?;
    }
    let cancel = AtomicBool::new(false);
    let (pending, hashes) = std::thread::scope(|s| {
        let hasher = s.spawn(|| hash_files(&ckpt.files, &cancel));
        let mut pending = Vec::new();
        let mut result = Ok(());
        for (group, path) in groups.iter().zip(&paths) {
            match write_shard(
                ckpt,
                group,
                base.clone(),
                plan,
                path,
                &placeholder,
                progress,
            ) {
                Ok(p) => pending.push(p),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        let hashes = hasher.join().ok().flatten();
        result.map(|_| (pending, hashes))
    })?;
    let hashes = hashes.ok_or_else(|| Error::Option("hashing the input failed".into()))?;
    let sha = sha_value(&ckpt.files, &hashes);
    for p in &pending {
        if let Some(at) = p.sha_at {
            p.file
                .as_file()
                .write_all_at(sha.as_bytes(), at)
                .map_err(io_err(p.file.path()))?;
        }
        p.file.as_file().sync_all().map_err(io_err(p.file.path()))?;
    }
    let index = if paths.len() > 1 {
        let idx = index_path(output);
        let mut weight_map = serde_json::Map::new();
        for (group, path) in groups.iter().zip(&paths) {
            let fname = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for t in group {
                weight_map.insert(t.name.clone(), fname.clone().into());
            }
        }
        let mut meta: serde_json::Map<String, serde_json::Value> = base
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        meta.insert(SHA_KEY.into(), sha.clone().into());
        meta.insert("total_size".into(), plan.total_bytes().into());
        for a in &plan.aliases {
            meta.insert(a.removed.clone(), a.kept.clone().into());
        }
        let json = serde_json::json!({"metadata": meta, "weight_map": weight_map});
        let dir = match idx.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut f = tempfile::Builder::new()
            .prefix(".index.")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        let live = LiveTemp::new(f.path());
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        f.write_all(text.as_bytes())
            .and_then(|_| f.as_file().sync_all())
            .map_err(io_err(&idx))?;
        Some((f, idx, live))
    } else {
        None
    };
    let mut files = Vec::new();
    for p in pending {
        p.file
            .persist(&p.final_path)
            .map_err(|e| Error::io(&p.final_path, e.error))?;
        files.push(p.final_path);
    }
    let index = match index {
        Some((f, idx, _live)) => {
            f.persist(&idx).map_err(|e| Error::io(&idx, e.error))?;
            Some(idx)
        }
        None => None,
    };
    if let Some(dir) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(Written {
        files,
        index,
        bytes: plan.total_bytes(),
        source_sha256: sha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5MB").unwrap(), 1_500_000);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("GB").is_err());
    }

    #[test]
    fn shard_names() {
        let p = shard_paths(Path::new("out/model.safetensors"), 3);
        assert_eq!(p[0], Path::new("out/model-00001-of-00003.safetensors"));
        assert_eq!(
            index_path(Path::new("out/model.safetensors")),
            Path::new("out/model.safetensors.index.json")
        );
        assert_eq!(
            shard_paths(Path::new("m.safetensors"), 1)[0],
            Path::new("m.safetensors")
        );
    }
}
