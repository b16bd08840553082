//! A model folder as Hugging Face and sentence-transformers write it: `config.json` (which
//! architecture), weights (safetensors, shards, or a PyTorch `.bin`), `tokenizer.json`, and for
//! sentence-transformers `modules.json`, `sentence_bert_config.json`, `1_Pooling/config.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Reads and parses a JSON file.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        cause: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        file: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
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
    let modules_path = dir.join("modules.json");
    let st_config: Option<SentenceBertConfig> = {
        let p = dir.join("sentence_bert_config.json");
        if p.is_file() {
            Some(read_json(&p)?)
        } else {
            None
        }
    };
    if !modules_path.is_file() {
        return Ok(PipelineConfig {
            pooling: vec![PoolingMode::Mean],
            normalize: false,
            max_seq_length: st_config.and_then(|c| c.max_seq_length),
            sentence_transformers: false,
        });
    }
    let modules: Vec<ModuleEntry> = read_json(&modules_path)?;
    let mut pooling = None;
    let mut normalize = false;
    for m in &modules {
        let short = m.kind.rsplit('.').next().unwrap_or(&m.kind);
        match short {
            "Transformer" => {}
            "Pooling" => {
                let p = dir.join(&m.path).join("config.json");
                pooling = Some(pooling_modes(&p, read_json(&p)?)?);
            }
            "Normalize" => normalize = true,
            other => {
                return Err(Error::Config {
                    file: modules_path.clone(),
                    reason: format!(
                        "sentence-transformers module {other} ({}) is not supported (supported: Transformer, Pooling, Normalize)",
                        m.kind
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
            other => {
                return Err(Error::Config {
                    file: file.to_path_buf(),
                    reason: format!("pooling_mode {other} is neither a name nor a list"),
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
                        reason: format!("unknown pooling_mode {other:?}"),
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

/// The folder's `config.json` path, checked to exist.
pub(crate) fn config_path(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Io {
            path: dir.to_path_buf(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such model folder"),
        });
    }
    let p = dir.join("config.json");
    if !p.is_file() {
        return Err(Error::Config {
            file: p,
            reason: "missing: a model folder needs the config.json its checkpoint came with".into(),
        });
    }
    Ok(p)
}
