//! Shared output helpers: JSON to stdout, human sizes, closed pipes, shared reader flags.

use std::io::Write;

use torchless::convert::{pickle, Budget, OpenOptions};

/// Flags every subcommand that reads a checkpoint accepts.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Treat this `module.name` pickle global as an inert object instead of refusing the file
    /// (it is never executed; globals that run code stay refused). Repeatable.
    #[arg(long = "allow-global", value_name = "MODULE.NAME")]
    pub allow_globals: Vec<String>,
    /// Most bytes of tensor data the input may make torchless write or hold (e.g. 20GB):
    /// checked from the declared shapes before anything is allocated. Default: 4 x the
    /// input's size + 64 MiB, which every real checkpoint fits; crafted files that declare
    /// terabytes (stride-0 expansions, compressed records) are refused.
    #[arg(long, value_name = "SIZE", value_parser = parse_size_flag)]
    pub max_output_size: Option<u64>,
}

fn parse_size_flag(s: &str) -> Result<u64, String> {
    torchless::convert::parse_size(s).map_err(|e| e.to_string())
}

impl ReadArgs {
    /// The reader options.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            pickle: pickle::Options {
                allow_globals: self.allow_globals.clone(),
                ..Default::default()
            },
            budget: Budget {
                max_output_bytes: self.max_output_size,
            },
        }
    }
}

/// A device's name for `--json` outputs (`cpu`, `cuda:0`): what the model really runs on, so a
/// caller (the GPU check) can tell a CUDA run from a CPU one.
pub fn device_name(device: &candle_core::Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Prints a value as one JSON object on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Whether an error is a closed stdout (`torchless inspect x | head`), which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// `1234567` → `1.2 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
