//! torchless-convert: reads every PyTorch checkpoint format without executing pickle code, and
//! writes safetensors.
//!
//! Formats are detected by content: `torch.save` zip archives, the legacy stream and tar
//! formats, TorchScript archives, `torch.export` `.pt2` archives, whole-module pickles, nested
//! training checkpoints, Hugging Face folders and shard indexes, and safetensors itself.
//! The pickle machine ([`pickle`]) interprets an allow-list of rebuild functions and refuses any
//! file that calls anything else. Inputs are memory-mapped and tensors are written one chunk at
//! a time, so memory stays near one chunk whatever the checkpoint size.
//!
//! ```no_run
//! use torchless_convert::{convert, ConvertOptions, OpenOptions};
//! let report = convert(
//!     "model.pt".as_ref(),
//!     "model.safetensors".as_ref(),
//!     &ConvertOptions::default(),
//!     &OpenOptions::default(),
//!     &mut |_bytes| {},
//! )?;
//! println!("{} tensors", report.tensors);
//! # Ok::<(), torchless_convert::Error>(())
//! ```
#![deny(missing_docs)]

mod budget;
pub mod cast;
mod checkpoint;
pub mod dtype;
mod error;
mod formats;
pub mod pickle;
mod plan;
pub mod program;
mod report;
pub mod tensor;
mod tree;
mod verify;
mod write;

use std::path::Path;

pub use budget::{default_limit, Budget, BUDGET_FACTOR, BUDGET_SLACK};
pub use checkpoint::{Checkpoint, Dropped, Entry, EntryKind, Format, SourceFile, Storage};
pub use dtype::DType;
pub use error::{Error, Result};
pub use formats::inside_folder;
pub use plan::{
    plan, Alias, ConvertOptions, Plan, PlannedTensor, RecordedOptions, Rename, Skipped, TargetDType,
};
pub use report::{inspect, FileReport, InspectReport, TensorReport, UnsupportedReport};
pub use tree::ROOT_TENSOR_NAME;
pub use verify::{open_output, verify, VerifyReport};
pub use write::{index_path, parse_size, remove_temp_files, write, Written, OPTIONS_KEY, SHA_KEY};

/// How to read checkpoints.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Pickle limits and user-allowed inert globals.
    pub pickle: pickle::Options,
    /// How many bytes of tensor data the input may materialise.
    pub budget: Budget,
}

/// Opens a checkpoint file, a Hugging Face folder or a shard index.
pub fn open(path: &Path, options: &OpenOptions) -> Result<Checkpoint> {
    formats::open(path, options)
}

/// Reads a single checkpoint file already in memory; `name` labels it in messages.
pub fn open_bytes(name: &Path, bytes: Vec<u8>, options: &OpenOptions) -> Result<Checkpoint> {
    formats::open_bytes(name, bytes, options)
}

/// The result of [`convert`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConvertReport {
    /// Input path.
    pub input: String,
    /// Detected format.
    pub format: Format,
    /// Files written.
    pub written: Written,
    /// Tensors written.
    pub tensors: usize,
    /// Names written once under another name.
    pub aliases: Vec<Alias>,
    /// Unsupported tensors skipped.
    pub skipped: Vec<Skipped>,
    /// Non-tensor values not written.
    pub dropped: Vec<Dropped>,
    /// Hints.
    pub notes: Vec<String>,
}

/// Opens `input`, plans with `options` and writes `output`; `progress` receives written bytes.
pub fn convert(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
    open_options: &OpenOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ConvertReport> {
    let ckpt = open(input, open_options)?;
    convert_checkpoint(&ckpt, input, output, options, progress)
}

/// [`convert`] for a checkpoint already open (to size a progress bar first).
pub fn convert_checkpoint(
    ckpt: &Checkpoint,
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ConvertReport> {
    let p = plan(ckpt, options)?;
    let written = write(ckpt, &p, options, output, progress)?;
    Ok(ConvertReport {
        input: input.display().to_string(),
        format: ckpt.format,
        written,
        tensors: p.tensors.len(),
        aliases: p.aliases,
        skipped: p.skipped,
        dropped: p.dropped,
        notes: if options.key.is_some() {
            Vec::new()
        } else {
            ckpt.notes.clone()
        },
    })
}
