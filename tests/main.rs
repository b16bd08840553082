//! Integration tests: the converter's fixture zoo (real PyTorch files, values from PyTorch),
//! the pickle machine against Python's own pickles, BERT sentence embeddings against
//! sentence-transformers, torchvision ResNets against PyTorch, and the `torchless` command line.

mod bert;
mod classify_cli;
mod common;
mod convert_cli;
mod convert_zoo;
mod decoders;
mod embed_cli;
mod generate_cli;
mod hostile;
mod pickle_parity;
mod resnet;
mod runtime_hostile;
