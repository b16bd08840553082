//! Status codes returned by every C function, and how runtime errors map onto them.

use torchless_models::graph::GraphError;

use crate::error::Error;

/// What a `torchless_*` call did. `TORCHLESS_STATUS_OK` (0) is success; on any other value
/// `torchless_last_error()` holds a one-line message for the calling thread.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchlessStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullPointer = 1,
    /// An argument is invalid: a string that is not UTF-8, an empty batch, an unknown device or
    /// dtype, a tensor shape that does not fit the model.
    InvalidArgument = 2,
    /// The caller's output buffer is too small; the required size was written to the size
    /// out-parameters and nothing else was done.
    BufferTooSmall = 3,
    /// A file or folder could not be read (missing model folder, unreadable weights).
    Io = 4,
    /// The model folder is invalid or unsupported (config, weights, tokenizer).
    InvalidModel = 5,
    /// The model is not of the kind the call needs (`torchless_classify` on an encoder, ...).
    WrongModelKind = 6,
    /// Running the model failed.
    Inference = 7,
    /// A bug: Rust code panicked. The panic was caught at the boundary; the model handle stays
    /// usable, but please report the message.
    Panic = 8,
}

/// When an error happened: the same runtime error means different things at load and at run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Load,
    Run,
}

/// The status for a runtime error.
pub(crate) fn status_of(e: &Error, phase: Phase) -> TorchlessStatus {
    match e {
        Error::Io { .. } => TorchlessStatus::Io,
        Error::Option(_) | Error::Graph(GraphError::Input(_)) => TorchlessStatus::InvalidArgument,
        Error::Graph(_) if phase == Phase::Run => TorchlessStatus::Inference,
        Error::Candle(_) | Error::Tokenizer(_) | Error::KvCacheTooLarge { .. }
            if phase == Phase::Run =>
        {
            TorchlessStatus::Inference
        }
        _ => TorchlessStatus::InvalidModel,
    }
}
