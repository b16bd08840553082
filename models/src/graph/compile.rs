//! The compile passes run once at load: rewrites of the step list that keep every result
//! identical up to float rounding and move work from each call to the load.

use super::{GraphModel, Result};

/// A rewrite the compile step applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fusion {}

/// Runs every pass in order.
pub(super) fn run_passes(_model: &mut GraphModel) -> Result<()> {
    Ok(())
}
