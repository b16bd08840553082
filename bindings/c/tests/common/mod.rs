//! Helpers shared by the C ABI tests.
//!
//! Each test target (`capi`, `generate`) uses a part of it.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};

use serde_json::Value;
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

/// Every number of a JSON value (nested arrays flattened).
pub fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        v => vec![v.as_f64().unwrap() as f32],
    }
}

/// Norm-relative error of `got` against `want`.
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut d, mut n) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        d += (f64::from(*g) - f64::from(*w)).powi(2);
        n += f64::from(*w).powi(2);
    }
    (d / n).sqrt()
}

/// Owned C strings and their pointers.
pub fn cstrings(texts: &[&[u8]]) -> (Vec<CString>, Vec<*const c_char>) {
    let owned: Vec<CString> = texts.iter().map(|t| CString::new(*t).unwrap()).collect();
    let ptrs = owned.iter().map(|c| c.as_ptr()).collect();
    (owned, ptrs)
}

/// Label `i` of a model, `None` when the call fails.
pub fn label(m: &Model, i: usize) -> Option<String> {
    // SAFETY: a live handle (or NULL, checked).
    let p = unsafe { torchless_model_label(m.0, i) };
    // SAFETY: a non-NULL label is owned by the live model.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string())
}

/// `torchless_model_info`: kind, output size, architecture, name.
pub fn info(m: &Model) -> (TorchlessModelKind, usize, String, String) {
    let mut info = std::mem::MaybeUninit::<TorchlessModelInfo>::uninit();
    // SAFETY: a live handle and a writable out struct.
    assert_eq!(
        unsafe { torchless_model_info(m.0, info.as_mut_ptr()) },
        TorchlessStatus::Ok
    );
    // SAFETY: written by the OK call above; its strings are owned by the live model.
    unsafe {
        let info = info.assume_init();
        (
            info.kind,
            info.output_dim,
            CStr::from_ptr(info.architecture).to_str().unwrap().into(),
            CStr::from_ptr(info.name).to_str().unwrap().into(),
        )
    }
}
