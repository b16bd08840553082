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
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(candle_core::Error),
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
