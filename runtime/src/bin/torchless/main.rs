//! The `torchless` command line: each subcommand is a thin wrapper over a library call.

mod classify;
mod convert;
mod embed;
mod inspect;
mod output;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run PyTorch-trained models with no Python and no LibTorch.
#[derive(Debug, Parser)]
#[command(name = "torchless", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a PyTorch checkpoint (any format, file or Hugging Face folder) to safetensors.
    Convert(convert::Args),
    /// List a checkpoint's format, tensors, aliases and dropped objects without converting.
    Inspect(inspect::Args),
    /// Compare a checkpoint with its safetensors conversion, bit for bit.
    Verify(verify::Args),
    /// Embed sentences with a BERT-family (sentence-transformers) model folder.
    Embed(embed::Args),
    /// Classify images (or a .npy batch) with a torchvision ResNet state_dict.
    Classify(classify::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Classify(a) => classify::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
