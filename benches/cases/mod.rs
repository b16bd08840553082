//! Benchmark cases: one list per op family, each case runnable on any device.

use candle_core::{DType, Device, Result, Tensor};

pub mod activation;
pub mod attention;
pub mod embeddings;
pub mod norm;
pub mod rope;
pub mod softmax;

/// A runnable closure producing the op's output.
pub type Run = Box<dyn Fn() -> Result<Tensor>>;

/// One benchmark case of one op at one shape and dtype.
pub struct Case {
    /// Op name (`add_layernorm`, ...).
    pub op: &'static str,
    /// Shape description (`1x128x768`).
    pub shape: String,
    /// Element type of the activations.
    pub dtype: DType,
    /// Minimal bytes the op must move (inputs read once, outputs written once), for GB/s.
    pub bytes: usize,
    /// The fused op.
    pub fused: Run,
    /// The unfused candle composition it replaces, in the same dtype.
    pub unfused: Run,
    /// The f32 reference (for the maximum error).
    pub reference: Run,
    /// The same computation for the PyTorch baseline script: a JSON object with `op`, the
    /// shapes and the parameters (see `scripts/gpu_torch_baseline.py`).
    pub torch: serde_json::Value,
}

/// Sizes to benchmark at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Batch-1 inference sizes (BERT-base: 128 tokens, hidden 768; decoders: one token).
    Inference,
    /// Large, bandwidth-bound sizes.
    Large,
}

/// Every case of every op family.
pub fn all(device: &Device, size: Size) -> Result<Vec<Case>> {
    let mut v = Vec::new();
    v.extend(norm::cases(device, size)?);
    v.extend(activation::cases(device, size)?);
    v.extend(softmax::cases(device, size)?);
    v.extend(rope::cases(device, size)?);
    v.extend(embeddings::cases(device, size)?);
    v.extend(attention::cases(device, size)?);
    Ok(v)
}

/// The activation dtypes benchmarked: f32, f16 and bf16 (the CPU criterion benches keep f32).
pub fn dtypes(_device: &Device) -> Vec<DType> {
    vec![DType::F32, DType::F16, DType::BF16]
}

/// `[a, b, c]` → `axbxc`.
pub fn shape_name(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}
