//! `--device` and `--dtype`, shared by every subcommand that runs a model.

use torchless::{parse_dtype, DeviceSpec, LoadOptions};

/// Where and in what precision the model runs.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto", value_name = "DEVICE")]
    device: String,
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_name = "DTYPE")]
    dtype: String,
}

impl RunOptions {
    /// The parsed options.
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        Ok(LoadOptions {
            device: self.device.parse::<DeviceSpec>()?,
            dtype: parse_dtype(&self.dtype)?,
        })
    }
}
