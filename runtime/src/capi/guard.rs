//! The boundary guard: every C entry point runs its body through [`guard`], which catches
//! panics, records the error message for the calling thread and returns a status.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::TorchlessStatus;

/// A failed call: its status and a one-line message.
#[derive(Debug)]
pub(crate) struct CallError {
    pub status: TorchlessStatus,
    pub message: String,
}

impl CallError {
    pub(crate) fn new(status: TorchlessStatus, message: impl Into<String>) -> Self {
        CallError {
            status,
            message: message.into(),
        }
    }
}

thread_local! {
    /// The message of the last failed call on this thread (cleared when a call starts).
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: &str) {
    // Interior NULs cannot be in a C string: show them escaped rather than cut the message.
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(c));
}

/// The calling thread's last error message, or NULL; valid until the thread's next call.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |c| c.as_ptr()))
}

/// Runs one C call: clears the thread's error, runs `body` with panics caught, and turns an
/// error or a panic into a status with its message recorded.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), CallError>) -> TorchlessStatus {
    LAST_ERROR.with(|e| *e.borrow_mut() = None);
    // AssertUnwindSafe: after a panic nothing the body touched is observed again except through
    // the model's own `&self` methods, which hold no state a half-done call could break.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TorchlessStatus::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".into());
            set_last_error(&format!(
                "internal error (panic caught at the C boundary): {what}"
            ));
            TorchlessStatus::Panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> Option<String> {
        let p = last_error_ptr();
        // SAFETY: a non-NULL pointer from last_error_ptr is a live NUL-terminated string owned by
        // this thread's LAST_ERROR, unchanged until the next guard call here.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }

    #[test]
    fn panics_become_a_status_with_the_message() {
        let s = guard(|| panic!("boom {}", 42));
        assert_eq!(s, TorchlessStatus::Panic);
        assert_eq!(
            last().as_deref(),
            Some("internal error (panic caught at the C boundary): boom 42")
        );
        assert_eq!(guard(|| Ok(())), TorchlessStatus::Ok);
        assert_eq!(last(), None, "a successful call clears the message");
    }

    #[test]
    fn errors_keep_their_status_and_message() {
        let s = guard(|| Err(CallError::new(TorchlessStatus::InvalidArgument, "bad\0x")));
        assert_eq!(s, TorchlessStatus::InvalidArgument);
        assert_eq!(last().as_deref(), Some("bad\\0x"));
    }
}
