//! The `torchless` command line: each subcommand is a thin wrapper over a library call.

mod classify;
mod convert;
mod embed;
mod generate;
mod inspect;
mod output;
mod rerank;
mod run;
mod run_options;
mod serve;
mod verify;
mod worker;

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
    // Each subcommand's help (a one-line summary, then the details for --help) is its `Args`
    // struct's documentation.
    Convert(convert::Args),
    Inspect(inspect::Args),
    Verify(verify::Args),
    Embed(embed::Args),
    Generate(generate::Args),
    Classify(classify::Args),
    Rerank(rerank::Args),
    Run(run::Args),
    Serve(serve::Args),
    Worker(worker::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SIGINT/SIGTERM: remove the temporary file of a conversion in flight, then exit as a
    // signal-killed process would (128 + signal number; ctrlc does not say which, so 130).
    // `serve` and `worker` handle the signals themselves: `serve` drains in-flight requests, the
    // worker finishes the batch in flight; both exit 0.
    if !matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        let _ = ctrlc::set_handler(|| {
            torchless::convert::remove_temp_files();
            std::process::exit(130);
        });
    }
    let result = match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Rerank(a) => rerank::run(a),
        Command::Run(a) => run::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Worker(a) => worker::run(a),
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
