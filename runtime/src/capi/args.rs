//! Checked conversions of raw C arguments: NULL pointers, UTF-8, sizes and alignment become
//! [`CallError`]s before anything is read or written.

use std::ffi::{c_char, CStr};

use super::guard::CallError;
use super::status::TorchlessStatus;

pub(crate) fn null(what: &str) -> CallError {
    CallError::new(TorchlessStatus::NullPointer, format!("{what} is NULL"))
}

pub(crate) fn invalid(message: impl Into<String>) -> CallError {
    CallError::new(TorchlessStatus::InvalidArgument, message)
}

/// A NUL-terminated UTF-8 string argument, borrowed (no copy).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn utf8<'a>(p: *const c_char, what: &str) -> Result<&'a str, CallError> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-NULL, and the caller guarantees a live NUL-terminated string for 'a.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| invalid(format!("{what} is not valid UTF-8 ({e})")))
}

/// An optional string argument: NULL gives `default`.
///
/// # Safety
/// As [`utf8`].
pub(crate) unsafe fn utf8_or<'a>(
    p: *const c_char,
    default: &'a str,
    what: &str,
) -> Result<&'a str, CallError> {
    if p.is_null() {
        Ok(default)
    } else {
        // SAFETY: forwarded from the caller's guarantee.
        unsafe { utf8(p, what) }
    }
}

/// A read-only array argument of `len` elements (`len` > 0).
///
/// # Safety
/// `p` is NULL or points to `len` initialised elements valid for reads for `'a`.
pub(crate) unsafe fn slice<'a, T>(
    p: *const T,
    len: usize,
    what: &str,
) -> Result<&'a [T], CallError> {
    if p.is_null() {
        return Err(null(what));
    }
    if !p.is_aligned() {
        return Err(invalid(format!(
            "{what} is not aligned for its element type"
        )));
    }
    // SAFETY: non-NULL, aligned, and the caller guarantees `len` readable elements for 'a.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A caller-provided output array of `capacity` elements, checked to hold `needed`; returns the
/// first `needed` elements.
///
/// # Safety
/// `p` is NULL or points to `capacity` elements valid for writes for `'a`, not aliased by any
/// other argument.
pub(crate) unsafe fn out_slice<'a, T>(
    p: *mut T,
    capacity: usize,
    needed: usize,
    what: &str,
) -> Result<&'a mut [T], CallError> {
    if capacity < needed {
        return Err(CallError::new(
            TorchlessStatus::BufferTooSmall,
            format!("{what} holds {capacity} elements, {needed} are needed"),
        ));
    }
    if p.is_null() {
        return Err(null(what));
    }
    if !p.is_aligned() {
        return Err(invalid(format!(
            "{what} is not aligned for its element type"
        )));
    }
    // SAFETY: non-NULL, aligned, `needed <= capacity` writable elements per the caller's
    // guarantee, and no other live reference to them.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, needed) })
}

/// Writes an out-parameter.
///
/// # Safety
/// `p` is NULL or valid for a write of one `T`.
pub(crate) unsafe fn write<T>(p: *mut T, value: T, what: &str) -> Result<(), CallError> {
    if p.is_null() {
        return Err(null(what));
    }
    if !p.is_aligned() {
        return Err(invalid(format!("{what} is not aligned for its type")));
    }
    // SAFETY: non-NULL, aligned and writable per the caller's guarantee.
    unsafe { p.write(value) };
    Ok(())
}
