//! The runtime's error type: every failure names the file, tensor or option at fault.

use std::path::PathBuf;

/// Errors from loading and running models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read.
    #[error("{path}: {cause}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause (in the message, so it is not repeated as a source).
        cause: std::io::Error,
    },
    /// Reading or converting the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] torchless_convert::Error),
    /// The weights lack a tensor the model needs.
    #[error("missing tensor `{name}` in {file}")]
    MissingTensor {
        /// The tensor's name.
        name: String,
        /// The weights file(s) searched.
        file: String,
    },
    /// A tensor has the wrong shape for the configuration.
    #[error("tensor `{name}` in {file} has shape {found:?}, the config expects {expected:?}")]
    WrongShape {
        /// The tensor's name.
        name: String,
        /// The weights file.
        file: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A tensor has a dtype the model cannot use.
    #[error("tensor `{name}` in {file} is {found}, expected a floating dtype")]
    WrongDType {
        /// The tensor's name.
        name: String,
        /// The weights file.
        file: String,
        /// The dtype found.
        found: String,
    },
    /// A configuration file is missing or invalid, or names an unsupported architecture.
    #[error("{file}: {reason}")]
    Config {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer could not be loaded or failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A device or dtype option is invalid or unavailable.
    #[error("{0}")]
    Option(String),
    /// An input file (image, `.npy` array) is unreadable or unsupported.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A model configuration's values cannot describe a working model (a zero or negative
    /// rotary factor, no heads, sizes that overflow): the cause names the field and value.
    #[error("{file}: {cause}")]
    InvalidConfig {
        /// The configuration file.
        file: PathBuf,
        /// The refused field (in the message, so it is not repeated as a source).
        cause: torchless_models::ConfigError,
    },
    /// A file a model folder names (a shard of its index, its tokenizer, ...) resolves, after
    /// symbolic links, to a place outside the folder; it is not opened.
    #[error("{path}: resolves outside the model folder {folder}")]
    OutsideFolder {
        /// The file, as the folder names it.
        path: PathBuf,
        /// The model folder.
        folder: PathBuf,
    },
    /// A file a model folder names is not a regular file (a FIFO, a device, a socket, a
    /// directory); it is not opened, so nothing blocks on it.
    #[error("{path}: is not a regular file (a {kind})")]
    NotRegularFile {
        /// The file, as the folder names it.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A queue in front of a model is full: the caller should retry later.
    #[error("the queue is full ({waiting} requests waiting): retry later")]
    Busy {
        /// Requests waiting when this one was refused.
        waiting: usize,
    },
    /// The queue no longer accepts requests (the service is stopping).
    #[error("the queue is shutting down and accepts no new requests")]
    ShuttingDown,
    /// The key/value cache a generation needs is larger than the memory the device has free.
    #[error(
        "the key/value cache for {positions} positions needs {needed} bytes ({:.2} GiB), more than the {available} bytes ({:.2} GiB) available on {device}",
        gib(*needed),
        gib(*available)
    )]
    KvCacheTooLarge {
        /// Positions the cache would hold (the prompt plus the new tokens, capped at the
        /// model's positions).
        positions: usize,
        /// Its size in bytes.
        needed: u64,
        /// The bytes the device reports available.
        available: u64,
        /// The device (`cpu`, `cuda:0`).
        device: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(candle_core::Error),
    /// A `torch.export` program cannot be loaded or run (unsupported ops, wrong inputs).
    #[error(transparent)]
    Graph(#[from] torchless_models::graph::GraphError),
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// A string read from a file, for messages: escaped (no control character reaches a terminal)
/// and cut to 40 characters.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    let n = s.chars().count();
    if n <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}… ({n} characters)")
    }
}

/// A parser's message about a file (serde_json, the tokenizer), safe to print: the string
/// values it quotes from the file (`invalid type: string "…"`) are left out, control
/// characters are escaped, and it is cut to 200 characters.
pub(crate) fn safe_message(msg: &str) -> String {
    const MAX: usize = 200;
    const QUOTED: &str = "string \"";
    let mut kept = String::with_capacity(msg.len().min(4 * MAX));
    let mut rest = msg;
    while let Some(i) = rest.find(QUOTED) {
        kept.push_str(&rest[..i]);
        kept.push_str("a string value");
        let body = &rest[i + QUOTED.len()..];
        // The value is Debug-escaped: it ends at the first quote not after a backslash.
        let mut escaped = false;
        let end = body.char_indices().find_map(|(j, c)| {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                return Some(j + 1);
            }
            None
        });
        rest = end.map_or("", |j| &body[j..]);
    }
    kept.push_str(rest);
    let mut out = String::new();
    for (n, c) in kept.chars().enumerate() {
        if n == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Context marker of runtime errors carried through candle (`VarBuilder` backends).
const CARRIED: &str = "torchless";

impl Error {
    /// Wraps this error so it can travel through candle APIs and come back typed.
    pub(crate) fn into_candle(self) -> candle_core::Error {
        candle_core::Error::WrappedContext {
            wrapped: Box::new(self),
            context: CARRIED.into(),
        }
    }
}

impl From<candle_core::Error> for Error {
    /// Unwraps runtime errors that travelled through candle's `VarBuilder`.
    fn from(e: candle_core::Error) -> Self {
        match e {
            candle_core::Error::WrappedContext { wrapped, context } if context == CARRIED => {
                match wrapped.downcast::<Error>() {
                    Ok(ours) => *ours,
                    Err(other) => Error::Candle(candle_core::Error::WrappedContext {
                        wrapped: other,
                        context,
                    }),
                }
            }
            candle_core::Error::WithBacktrace { inner, .. } => Error::from(*inner),
            candle_core::Error::Context { inner, context } => match Error::from(*inner) {
                Error::Candle(c) => Error::Candle(c.context(context)),
                ours => ours,
            },
            other => Error::Candle(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_about_files_leave_their_contents_out() {
        let e =
            serde_json::from_str::<Vec<u32>>("[\"\\u001b[2J secret \\\" quoted\"]").unwrap_err();
        let raw = e.to_string();
        assert!(raw.contains("secret"), "{raw}");
        let safe = safe_message(&raw);
        assert_eq!(
            safe,
            "invalid type: a string value, expected u32 at line 1 column 29"
        );
        assert_eq!(safe_message("a\u{1b}b"), "a\\u{1b}b");
        assert_eq!(safe_message(&"x".repeat(500)).chars().count(), 201);
        assert_eq!(safe_message("string \"unterminated"), "a string value");
        assert_eq!(shown("t5"), "\"t5\"");
        assert!(shown(&"y".repeat(90)).ends_with("(90 characters)"));
    }

    #[test]
    fn new_variants_name_what_is_refused() {
        let e = Error::NotRegularFile {
            path: "m/model-00001.safetensors".into(),
            kind: "FIFO",
        };
        assert_eq!(
            e.to_string(),
            "m/model-00001.safetensors: is not a regular file (a FIFO)"
        );
        let e = Error::KvCacheTooLarge {
            positions: 8192,
            needed: 3 << 30,
            available: 1 << 30,
            device: "cpu".into(),
        };
        assert_eq!(
            e.to_string(),
            "the key/value cache for 8192 positions needs 3221225472 bytes (3.00 GiB), more than \
             the 1073741824 bytes (1.00 GiB) available on cpu"
        );
    }
}
