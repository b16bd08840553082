//! The converter's error type: every refusal names the tensor, record, pickle global or
//! byte offset at fault, on one line.

use std::path::PathBuf;

/// Everything that can go wrong while reading a checkpoint or writing safetensors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error while touching `path`.
    #[error("{path}: {cause}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error (in the message, so it is not repeated as a source).
        cause: std::io::Error,
    },
    /// The input is not a checkpoint format this crate knows.
    #[error("{path}: {reason}")]
    UnknownFormat {
        /// The file that was examined.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The pickle names a global that exists to run code, or calls one that is not on the
    /// allow-list of inert rebuild functions: `torch.load(weights_only=False)` would run it.
    #[error(
        "refusing {file}: the pickle uses `{global}` (opcode {opcode} at byte {offset}), which \
         torch.load(weights_only=False) would run; nothing was executed or written"
    )]
    Refused {
        /// The pickle stream (record or file) holding the call.
        file: String,
        /// `module.name` of the global.
        global: String,
        /// The opcode that named or called it (GLOBAL, REDUCE, INST, OBJ, NEWOBJ, ...).
        opcode: &'static str,
        /// Byte offset of the opcode within the pickle stream.
        offset: usize,
    },
    /// The pickle stream is malformed or exceeds a hostile-input limit.
    #[error("{file}: malformed pickle at byte {offset}: {reason}")]
    Pickle {
        /// The pickle stream (record or file).
        file: String,
        /// Byte offset of the failing opcode.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// A structural problem in the container format (zip, tar, legacy stream, pt2 config).
    #[error("{file}: {reason}")]
    Format {
        /// The file or record at fault.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor whose metadata is inconsistent with its storage.
    #[error("tensor `{tensor}`: {reason}")]
    Tensor {
        /// Dotted name of the tensor (or the storage key when no name is known yet).
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor kind safetensors cannot hold (quantized, sparse, nested, complex128, ...).
    #[error(
        "tensor `{tensor}` is {kind}, which safetensors cannot store; \
         pass --skip-unsupported to convert the rest and list it"
    )]
    Unsupported {
        /// Dotted name of the tensor.
        tensor: String,
        /// What kind of tensor it is.
        kind: String,
    },
    /// The input asks for more than its resource budget allows (bytes to write or hold,
    /// inflated bytes, copied values, names): refused before anything is allocated.
    #[error(
        "{file}: refusing the file: it needs {needed} {what}, over the budget of {limit}{}",
        budget_hint(what)
    )]
    Budget {
        /// The file, record or stream at fault.
        file: String,
        /// What is counted (`bytes of tensor data`, `names`, ...).
        what: String,
        /// How much the input asks for (saturating).
        needed: u64,
        /// The budget.
        limit: u64,
    },
    /// A user option that cannot be applied (bad `--key`, rename collision, ...).
    #[error("{0}")]
    Option(String),
    /// `verify` found a difference.
    #[error("{0}")]
    Mismatch(String),
}

/// How a user raises a budget that a real file exceeded.
fn budget_hint(what: &str) -> &'static str {
    if what.contains("bytes") {
        " (a real checkpoint this large: raise it with --max-output-size)"
    } else {
        ""
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }

    /// A container-format error.
    pub fn format(file: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Format {
            file: file.into(),
            reason: reason.into(),
        }
    }

    /// A tensor-metadata error.
    pub fn tensor(tensor: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Tensor {
            tensor: tensor.into(),
            reason: reason.into(),
        }
    }
}
