//! The `torchless` command line: each subcommand is a thin wrapper over a library call.

mod convert;
mod embed;
mod generate;
mod inspect;
mod output;
mod run_options;
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
    /// Generate text with a GPT-2 or Llama-style model folder.
    Generate(generate::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Generate(a) => generate::run(a),
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
