//! `--device` and `--dtype`, shared by every subcommand that runs a model, and `--quantize`,
//! for the subcommands that run decoders.

use torchless::{parse_dtype, parse_quantize, DeviceSpec, LoadOptions};

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
            quantize: None,
        })
    }
}

/// `--quantize`: int8 weights for the decoders' linear layers.
#[derive(Debug, Clone, clap::Args)]
pub struct QuantizeOption {
    /// int8 or none. int8 quantizes every linear layer of the decoder's blocks at load
    /// (symmetric, one scale per output row) and runs their products on int8 weights widened
    /// in registers: a quarter of the f32 weight bytes per token, so decoding on the CPU is
    /// faster (memory-bound), for a small accuracy cost (about 1% relative error in the first
    /// logits of a trained model; greedy continuations may part from the f32 one after some
    /// tokens, see docs/quantization.md). The token embedding, the output head, the norms and
    /// the biases keep --dtype. CPU only; an error for a model that does not generate text.
    #[arg(long, default_value = "none", value_name = "KIND")]
    quantize: String,
}

impl QuantizeOption {
    /// `opts` with the quantization set.
    pub fn apply(&self, opts: LoadOptions) -> anyhow::Result<LoadOptions> {
        Ok(LoadOptions {
            quantize: parse_quantize(&self.quantize)?,
            ..opts
        })
    }
}
