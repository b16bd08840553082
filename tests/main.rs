//! Integration tests of the runtime: BERT sentence embeddings against
//! sentence-transformers, torchvision ResNets against PyTorch, and the `torchless` command line.

mod batching;
mod bert;
mod chat;
mod classify_cli;
mod clip;
mod common;
mod convert_cli;
mod decoders;
mod distilbert;
mod embed_cli;
mod encoder_fixture;
mod generate_cli;
mod graph;
mod hostile;
mod modernbert;
mod quantize;
mod rerank;
mod resize;
mod resnet;
mod runtime_hostile;
mod serve;
mod serve_grpc;
mod vit;
mod worker;
mod xlmr;
