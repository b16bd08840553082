//! Helpers for the op tests and benchmarks: seeded inputs, the elementwise comparison against a
//! reference with dtype-scaled tolerances, and the list of devices to test on.

use candle_core::{DType, Device, Result, Tensor};

/// `shape` filled with seeded uniform values in `[lo, hi)`, as `dtype` on `device`.
pub fn seeded(
    shape: &[usize],
    seed: u64,
    lo: f32,
    hi: f32,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)
}

/// (absolute, relative) tolerance for outputs of `dtype` computed with f32 accumulation.
pub fn tolerance(dtype: DType) -> (f32, f32) {
    match dtype {
        DType::F32 => (1e-5, 1e-4),
        DType::F16 => (2e-3, 4e-3),
        DType::BF16 => (1.6e-2, 1.6e-2),
        _ => (0.0, 0.0),
    }
}

/// Largest `|out - ref|` and whether every element satisfies `|out - ref| <= atol + rtol·|ref|`
/// (NaN and infinities must match exactly).
pub fn compare(out: &Tensor, reference: &Tensor) -> Result<(f32, bool)> {
    let (atol, rtol) = tolerance(out.dtype());
    let a: Vec<f32> = out.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let b: Vec<f32> = reference.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    if a.len() != b.len() {
        candle_core::bail!("{} elements vs {} in the reference", a.len(), b.len());
    }
    let mut max = 0f32;
    let mut ok = true;
    for (x, y) in a.iter().zip(&b) {
        if !y.is_finite() || !x.is_finite() {
            ok &= x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
            continue;
        }
        let d = (x - y).abs();
        max = max.max(d);
        ok &= d <= atol + rtol * y.abs();
    }
    Ok((max, ok))
}

/// Asserts `out` matches `reference` (shape, then values within the dtype's tolerance).
pub fn assert_close(out: &Tensor, reference: &Tensor, what: &str) {
    assert_eq!(out.dims(), reference.dims(), "{what}: shape");
    assert_eq!(out.dtype(), reference.dtype(), "{what}: dtype");
    let (max, ok) = compare(out, reference).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        ok,
        "{what}: max abs error {max} exceeds the {:?} tolerance",
        out.dtype()
    );
}

/// The devices to test on: the CPU always; CUDA device 0 when built with `cuda` and present.
/// Without a GPU this prints that the CUDA half is skipped — and panics when
/// `TORCHLESS_REQUIRE_GPU=1` (the GPU check treats a skip as a failure).
pub fn devices() -> Vec<Device> {
    let mut v = vec![Device::Cpu];
    match cuda_device() {
        Some(d) => v.push(d),
        None => {
            if std::env::var("TORCHLESS_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("TORCHLESS_REQUIRE_GPU=1 but no CUDA device is usable");
            }
            eprintln!("skipped: no CUDA device (CPU only)");
        }
    }
    v
}

/// CUDA device 0, if this build has CUDA and a GPU is present.
pub fn cuda_device() -> Option<Device> {
    if cfg!(feature = "cuda") {
        Device::new_cuda(0).ok()
    } else {
        None
    }
}

/// The float dtypes every op supports.
pub const FLOAT_DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
