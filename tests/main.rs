//! Integration tests: the converter's fixture zoo (real PyTorch files, values from PyTorch),
//! the pickle machine against Python's own pickles, and the `torchless` command line.

mod bert;
mod common;
mod convert_cli;
mod convert_zoo;
mod pickle_parity;
