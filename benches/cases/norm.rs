//! Residual add + LayerNorm / RMSNorm cases.

use candle_core::{Device, Result};
use serde_json::json;
use torchless_kernels::norm::{add_norm, add_norm_reference, NormParams};
use torchless_kernels::testing::seeded;

use super::{dtypes, shape_name, Case, Size};

/// Cases at BERT-base batch 1 (128×768) and a bandwidth-bound 16384×4096.
pub fn cases(dev: &Device, size: Size) -> Result<Vec<Case>> {
    let shape: &[usize] = match size {
        Size::Inference => &[1, 128, 768],
        Size::Large => &[16384, 4096],
    };
    let cols = *shape.last().unwrap_or(&1);
    let n: usize = shape.iter().product();
    let mut v = Vec::new();
    for dtype in dtypes(dev) {
        let es = dtype.size_in_bytes();
        let x = seeded(shape, 1, -1.0, 1.0, dtype, dev)?;
        let r = seeded(shape, 2, -1.0, 1.0, dtype, dev)?;
        let w = seeded(&[cols], 3, 0.5, 1.5, dtype, dev)?;
        let b = seeded(&[cols], 4, -0.5, 0.5, dtype, dev)?;
        for rms in [false, true] {
            let params = if rms {
                NormParams::rms_norm(Some(&w))?
            } else {
                NormParams::layer_norm(Some(&w), Some(&b))?
            };
            let (x1, r1, p1) = (x.clone(), r.clone(), params.clone());
            let (x2, r2, w2, b2) = (x.clone(), r.clone(), w.clone(), b.clone());
            let (x3, r3, p3) = (x.clone(), r.clone(), params);
            v.push(Case {
                op: if rms { "add_rmsnorm" } else { "add_layernorm" },
                shape: shape_name(shape),
                dtype,
                // x and residual read, output written, parameters read once.
                bytes: 3 * n * es + (if rms { 1 } else { 2 }) * cols * es,
                fused: Box::new(move || Ok(add_norm(&x1, Some(&r1), &p1, 1e-5, false)?.normed)),
                unfused: Box::new(move || {
                    let s = (&x2 + &r2)?;
                    if rms {
                        candle_nn::ops::rms_norm(&s, &w2, 1e-5)
                    } else {
                        candle_nn::ops::layer_norm(&s, &w2, &b2, 1e-5)
                    }
                }),
                reference: Box::new(move || {
                    Ok(add_norm_reference(&x3, Some(&r3), &p3, 1e-5, false)?.normed)
                }),
                torch: json!({
                    "op": if rms { "add_rmsnorm" } else { "add_layernorm" },
                    "shape": shape, "dtype": dtype.as_str(), "eps": 1e-5,
                }),
            });
        }
    }
    Ok(v)
}
