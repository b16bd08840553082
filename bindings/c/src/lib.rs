//! `libtorchless.so`: the runtime's C ABI (`torchless::capi`) as a shared library. The header
//! is `bindings/c/torchless.h`; the contract is in `docs/capi.md`.
#![deny(missing_docs)]

pub use torchless::capi::*;
