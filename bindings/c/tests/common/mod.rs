//! Helpers shared by the C ABI tests.

use std::ffi::CStr;

use torchless::capi::*;

/// The calling thread's last error message (asserting there is one).
pub fn last_error() -> String {
    let p = torchless_last_error();
    assert!(!p.is_null(), "a failed call leaves a message");
    // SAFETY: non-NULL message of this thread, valid until its next call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A model handle freed on drop.
pub struct Model(pub *mut TorchlessModel);

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: a handle from torchless_model_load, freed once.
        unsafe { torchless_model_free(self.0) };
    }
}
