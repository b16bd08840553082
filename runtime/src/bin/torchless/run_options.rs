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
    /// int8 or none. int8 quantizes every linear layer of the decoder's blocks and its output
    /// projection at load (symmetric, one scale per output row; activations rounded per token
    /// to int8 on CPUs with AVX-512 VNNI): a quarter of the f32 weight bytes per token, so
    /// decoding on the CPU, which is memory-bound, runs about 2-3x faster. It costs accuracy:
    /// about 0.2-0.5% relative error in the logits of a trained model, so greedy
    /// continuations can part from the f32 one after some tokens (docs/quantization.md). The
    /// token embedding, the norms and the biases keep --dtype; a tied output head gets an
    /// int8 copy (+25% of the table's f32 size). CPU only; an error for a model that does not
    /// generate text.
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
