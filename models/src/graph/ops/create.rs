//! TODO family.

use super::OpFn;

pub(super) const NAMES: &[&str] = &[];

pub(super) fn lookup(_base: &str, _overload: &str) -> Option<OpFn> {
    None
}
