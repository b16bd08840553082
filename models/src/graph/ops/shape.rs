//! TODO family.

use super::OpFn;

pub(super) const NAMES: &[&str] = &[];

pub(super) fn lookup(_base: &str, _overload: &str) -> Option<OpFn> {
    None
}

pub(super) fn lookup_symbolic(_op: &str) -> Option<OpFn> {
    None
}
