//! The converter's integration tests: the fixture zoo (real PyTorch files, values from PyTorch)
//! and the pickle machine against Python's own pickles. No candle: `cargo test -p
//! torchless-convert` builds only the converter. The command-line tests (`convert_cli`,
//! `hostile`) run the `torchless` binary and stay in the runtime's `tests/main.rs`.

mod common;
mod pickle_parity;
mod zoo;
