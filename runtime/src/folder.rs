//! A model folder as Hugging Face and sentence-transformers write it: `config.json` (which
//! architecture), weights (safetensors, shards, or a PyTorch `.bin`), `tokenizer.json`, and for
//! sentence-transformers `modules.json`, `sentence_bert_config.json`, `1_Pooling/config.json`.
//!
//! Every file a folder names is checked before it is opened ([`check_member`]): it must resolve,
//! after symbolic links, inside the folder, and be a regular file (a FIFO would block the
//! reader forever, a device would feed it endless bytes).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{safe_message, shown, Error, Result};

/// Reads and parses a JSON file. A parse error keeps serde's position and kind but not the
/// values it would quote from the file.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        cause: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        file: path.to_path_buf(),
        reason: format!("invalid JSON: {}", safe_message(&e.to_string())),
    })
}

/// What a path that is not a regular file is, for messages.
pub(crate) fn kind_of(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Whether `real` (canonical) lies inside the folder `root` (canonical). A Hugging Face hub
/// cache snapshot (`<repo>/snapshots/<revision>`) links its files to `<repo>/blobs`, which
/// counts as inside.
fn inside(root: &Path, real: &Path) -> bool {
    if real.starts_with(root) {
        return true;
    }
    let snapshots = root.parent();
    match snapshots.and_then(Path::parent) {
        Some(repo) if snapshots.and_then(Path::file_name) == Some("snapshots".as_ref()) => {
            real.starts_with(repo.join("blobs"))
        }
        _ => false,
    }
}

/// Checks a file that the model folder `dir` names, before anything opens it: it must resolve
/// (after symbolic links) inside `dir` and be a regular file. `Ok(false)` when nothing is at
/// `path`; a dangling link is an I/O error naming it.
pub(crate) fn check_member(dir: &Path, path: &Path) -> Result<bool> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |cause| Error::Io { path: p, cause }
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(path)(e)),
        Ok(_) => {}
    }
    let root = std::fs::canonicalize(dir).map_err(io(dir))?;
    let real = std::fs::canonicalize(path).map_err(io(path))?;
    if !inside(&root, &real) {
        return Err(Error::OutsideFolder {
            path: path.to_path_buf(),
            folder: dir.to_path_buf(),
        });
    }
    let meta = std::fs::metadata(&real).map_err(io(path))?;
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    Ok(true)
}

/// `dir/name` when it exists, checked by [`check_member`]; `None` when absent.
pub(crate) fn member(dir: &Path, name: impl AsRef<Path>) -> Result<Option<PathBuf>> {
    let p = dir.join(name);
    Ok(check_member(dir, &p)?.then_some(p))
}

/// The architecture fields every `config.json` has.
#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
}

/// How token embeddings become one sentence embedding (sentence-transformers' `Pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingMode {
    /// The first token (`[CLS]`).
    Cls,
    /// Mean over real tokens.
    Mean,
    /// Elementwise max over real tokens.
    Max,
    /// Sum over real tokens divided by the square root of their count.
    MeanSqrtLen,
}

/// `1_Pooling/config.json`.
#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
    #[serde(default)]
    include_prompt: Option<bool>,
    /// sentence-transformers ≥ 6: `"mean"`, `"cls"`, ... (or a list of them).
    #[serde(default)]
    pooling_mode: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    #[serde(default)]
    max_seq_length: Option<usize>,
}

/// What a folder says about turning token states into a sentence embedding.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Pooling modes, concatenated in sentence-transformers' order (cls, max, mean, mean_sqrt).
    pub pooling: Vec<PoolingMode>,
    /// Whether a `Normalize` module follows.
    pub normalize: bool,
    /// `max_seq_length` from `sentence_bert_config.json`, if any.
    pub max_seq_length: Option<usize>,
    /// Whether the folder is a sentence-transformers model.
    pub sentence_transformers: bool,
}

/// Reads the sentence-transformers files of `dir`; a plain model folder gets mean pooling
/// without normalisation (what sentence-transformers builds around a plain model).
pub fn pipeline(dir: &Path) -> Result<PipelineConfig> {
    let st_config: Option<SentenceBertConfig> = match member(dir, "sentence_bert_config.json")? {
        Some(p) => Some(read_json(&p)?),
        None => None,
    };
    let Some(modules_path) = member(dir, "modules.json")? else {
        return Ok(PipelineConfig {
            pooling: vec![PoolingMode::Mean],
            normalize: false,
            max_seq_length: st_config.and_then(|c| c.max_seq_length),
            sentence_transformers: false,
        });
    };
    let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
    let mut pooling = None;
    let mut normalize = false;
    for m in &modules {
        let short = m.kind.rsplit('.').next().unwrap_or(&m.kind);
        match short {
            "Transformer" => {}
            "Pooling" => {
                // `path` comes from modules.json: the file it names must stay in the folder.
                let p = dir.join(&m.path).join("config.json");
                if !check_member(dir, &p)? {
                    return Err(Error::Config {
                        file: p,
                        reason: "missing: modules.json names it for the Pooling module".into(),
                    });
                }
                pooling = Some(pooling_modes(&p, read_json(&p)?)?);
            }
            "Normalize" => normalize = true,
            _ => {
                return Err(Error::Config {
                    file: modules_path.clone(),
                    reason: format!(
                        "sentence-transformers module {} is not supported (supported: Transformer, Pooling, Normalize)",
                        shown(&m.kind)
                    ),
                })
            }
        }
    }
    Ok(PipelineConfig {
        pooling: pooling.unwrap_or_else(|| vec![PoolingMode::Mean]),
        normalize,
        max_seq_length: st_config.and_then(|c| c.max_seq_length),
        sentence_transformers: true,
    })
}

fn pooling_modes(file: &Path, mut c: PoolingConfig) -> Result<Vec<PoolingMode>> {
    if let Some(mode) = c.pooling_mode.take() {
        let names: Vec<String> = match mode {
            serde_json::Value::String(s) => vec![s],
            serde_json::Value::Array(a) => a
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => {
                return Err(Error::Config {
                    file: file.to_path_buf(),
                    reason: "pooling_mode is neither a name nor a list".into(),
                })
            }
        };
        for n in names {
            match n.as_str() {
                "cls" | "cls_token" => c.pooling_mode_cls_token = true,
                "mean" | "mean_tokens" => c.pooling_mode_mean_tokens = true,
                "max" | "max_tokens" => c.pooling_mode_max_tokens = true,
                "mean_sqrt_len_tokens" | "mean_sqrt_len" => {
                    c.pooling_mode_mean_sqrt_len_tokens = true
                }
                "weightedmean" | "weightedmean_tokens" => c.pooling_mode_weightedmean_tokens = true,
                "lasttoken" => c.pooling_mode_lasttoken = true,
                other => {
                    return Err(Error::Config {
                        file: file.to_path_buf(),
                        reason: format!("unknown pooling_mode {}", shown(other)),
                    })
                }
            }
        }
    }
    let unsupported = if c.pooling_mode_weightedmean_tokens {
        Some("weightedmean")
    } else if c.pooling_mode_lasttoken {
        Some("lasttoken")
    } else if c.include_prompt == Some(false) {
        Some("include_prompt=false")
    } else {
        None
    };
    if let Some(u) = unsupported {
        return Err(Error::Config {
            file: file.to_path_buf(),
            reason: format!(
                "pooling mode {u} is not supported (supported: cls, mean, max, mean_sqrt_len)"
            ),
        });
    }
    let mut v = Vec::new();
    if c.pooling_mode_cls_token {
        v.push(PoolingMode::Cls);
    }
    if c.pooling_mode_max_tokens {
        v.push(PoolingMode::Max);
    }
    if c.pooling_mode_mean_tokens {
        v.push(PoolingMode::Mean);
    }
    if c.pooling_mode_mean_sqrt_len_tokens {
        v.push(PoolingMode::MeanSqrtLen);
    }
    if v.is_empty() {
        return Err(Error::Config {
            file: file.to_path_buf(),
            reason: "no pooling mode is enabled".into(),
        });
    }
    Ok(v)
}

/// The folder's `config.json` path, checked to exist (as [`check_member`]).
pub(crate) fn config_path(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder"),
        });
    }
    match member(dir, "config.json")? {
        Some(p) => Ok(p),
        None => Err(Error::Config {
            file: dir.join("config.json"),
            reason: "missing: a model folder needs the config.json its checkpoint came with".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_must_be_regular_files_inside_the_folder() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("model");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(outer.path().join("secret.json"), "{}").unwrap();
        assert_eq!(
            member(&dir, "config.json").unwrap(),
            Some(dir.join("config.json"))
        );
        assert_eq!(member(&dir, "absent.json").unwrap(), None);
        // Through `..` and through a symbolic link: both leave the folder.
        let e = member(&dir, "../secret.json").unwrap_err();
        assert!(matches!(e, Error::OutsideFolder { .. }), "{e}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outer.path().join("secret.json"), dir.join("link.json"))
                .unwrap();
            let e = member(&dir, "link.json").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "{}: resolves outside the model folder {}",
                    dir.join("link.json").display(),
                    dir.display()
                )
            );
            // A link inside the folder is fine; a dangling one is an I/O error naming it.
            std::os::unix::fs::symlink("config.json", dir.join("alias.json")).unwrap();
            assert!(member(&dir, "alias.json").unwrap().is_some());
            std::os::unix::fs::symlink("nowhere.json", dir.join("dangling.json")).unwrap();
            let e = member(&dir, "dangling.json").unwrap_err();
            assert!(
                matches!(e, Error::Io { ref path, .. } if path.ends_with("dangling.json")),
                "{e}"
            );
            let e = member(&dir, "/dev/null").unwrap_err();
            assert!(matches!(e, Error::OutsideFolder { .. }), "{e}");
        }
        std::fs::create_dir(dir.join("sub")).unwrap();
        let e = member(&dir, "sub").unwrap_err();
        assert!(
            matches!(
                e,
                Error::NotRegularFile {
                    kind: "directory",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn hub_cache_snapshots_may_link_to_their_blobs() {
        let root = Path::new("/c/models--org--m/snapshots/abc");
        assert!(inside(
            root,
            Path::new("/c/models--org--m/snapshots/abc/config.json")
        ));
        assert!(inside(root, Path::new("/c/models--org--m/blobs/0123")));
        assert!(!inside(root, Path::new("/c/models--org--other/blobs/0123")));
        assert!(!inside(
            Path::new("/c/m/other/abc"),
            Path::new("/c/m/blobs/0123")
        ));
    }

    #[test]
    fn json_errors_do_not_quote_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"max_seq_length": "\u001b]0;owned\u0007"}"#).unwrap();
        let e = read_json::<SentenceBertConfig>(&p).unwrap_err().to_string();
        assert!(!e.contains("owned") && !e.contains('\u{1b}'), "{e}");
        assert!(e.contains("invalid type: a string value"), "{e}");
    }
}
