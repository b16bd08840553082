//! The resource budget of one input: how many bytes of tensor data a checkpoint may make the
//! converter (or the runtime loading it) write or hold, checked from the declared shapes and
//! sizes before anything is allocated. Real checkpoints materialise at most their own size
//! (times two for a cast from 16 to 32 bits); a crafted one can declare terabytes in a few
//! hundred bytes (stride-0 expansions, compressed records, lying zip sizes).

use crate::checkpoint::{Checkpoint, EntryKind, StorageData};
use crate::error::{Error, Result};

/// Bytes every budget allows beyond the multiple of the input size.
pub const BUDGET_SLACK: u64 = 64 << 20;
/// The default budget is this many times the input's size (plus [`BUDGET_SLACK`]).
pub const BUDGET_FACTOR: u64 = 4;

/// Limits for one input.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    /// Most bytes of tensor data (after casts, every distinct view counted, compressed records
    /// counted inflated) the input may materialise. `None`: [`BUDGET_FACTOR`] × the input's
    /// size + [`BUDGET_SLACK`].
    pub max_output_bytes: Option<u64>,
}

impl Budget {
    /// The byte budget for an input of `input_bytes`.
    pub fn output_limit(&self, input_bytes: u64) -> u64 {
        self.max_output_bytes
            .unwrap_or_else(|| default_limit(input_bytes))
    }
}

/// [`BUDGET_FACTOR`] × `input_bytes` + [`BUDGET_SLACK`].
pub fn default_limit(input_bytes: u64) -> u64 {
    input_bytes
        .saturating_mul(BUDGET_FACTOR)
        .saturating_add(BUDGET_SLACK)
}

/// Checks what an opened checkpoint declares against its budget: the inflated size of its
/// compressed records, and the bytes of every distinct tensor view.
pub(crate) fn check(ckpt: &Checkpoint, label: &str) -> Result<()> {
    let limit = ckpt.byte_budget;
    let over = |what: &str, needed: u64| Error::Budget {
        file: label.to_string(),
        what: what.to_string(),
        needed,
        limit,
    };
    let inflated = ckpt
        .storages
        .iter()
        .filter(|s| matches!(s.data, StorageData::Deflated { .. }))
        .fold(0u64, |acc, s| acc.saturating_add(s.len as u64));
    if inflated > limit {
        return Err(over("bytes of compressed records once inflated", inflated));
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for e in &ckpt.entries {
        if let EntryKind::Tensor(spec) = &e.kind {
            if seen.insert(spec) {
                let n = spec
                    .numel()
                    .and_then(|n| n.checked_mul(spec.dtype.size()))
                    .map_or(u64::MAX, |n| n as u64);
                total = total.saturating_add(n);
            }
        }
    }
    if total > limit {
        return Err(over("bytes of tensor data", total));
    }
    Ok(())
}
