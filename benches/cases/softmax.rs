//! Scaled, masked softmax cases.
//!
//! Shapes: `Size::Inference` is BERT-base batch 1 self-attention scores `[1, 12, 128, 128]`
//! with a `[1, 128]` key padding mask (the last 28 keys are padding); `Size::Large` is a
//! bandwidth-bound causal prefill `[8, 16, 1024, 1024]` with no mask.
//!
//! The `torch` spec of each case (the PyTorch baseline script builds the same computation):
//! - `op`: `"masked_softmax"`.
//! - `shape`: the scores' shape `[B, H, Tq, Tk]`; the output has the same shape.
//! - `dtype`: `"f32"`, `"f16"` or `"bf16"` of the scores and the output.
//! - `scale`: multiplies the scores before the mask is added.
//! - `causal`: when `true`, key `j` is hidden from query `i` if `j > i + (Tk - Tq)`
//!   (`masked_fill` with `-inf`, as `scaled_dot_product_attention(is_causal=True)`).
//! - `mask`: `null`, or an object describing an additive key padding mask:
//!   `shape` `[B, Tk]`, `dtype` (that of the scores), and `valid_keys`: entry `[b, j]` is `0`
//!   for `j < valid_keys` and `-inf` otherwise, broadcast as `mask[:, None, None, :]`.
//!
//! The computation is `torch.softmax(scores * scale + mask[:, None, None, :], dim=-1)` (with
//! the causal fill when `causal`). No row is fully masked in these cases.
//!
//! `bytes` is the minimal traffic: the scores a query can see read once (all of them, or the
//! causal lower triangle), the mask read once, the output written once.

use candle_core::{DType, Device, Result, Tensor};
use serde_json::json;
use torchless_kernels::softmax::{masked_softmax, masked_softmax_reference};
use torchless_kernels::testing::seeded;

use super::{dtypes, shape_name, Case, Size};

/// Key `j` is visible to query `i` when `j <= i + (tk - tq)`: how many keys query `i` sees.
fn visible(i: usize, tq: usize, tk: usize) -> usize {
    (i + tk + 1).saturating_sub(tq).min(tk)
}

/// The BERT padding-mask case (inference) or the causal prefill (large).
pub fn cases(dev: &Device, size: Size) -> Result<Vec<Case>> {
    // (shape, causal, valid keys of the padding mask when there is one)
    let (shape, causal, valid): ([usize; 4], bool, Option<usize>) = match size {
        Size::Inference => ([1, 12, 128, 128], false, Some(100)),
        Size::Large => ([8, 16, 1024, 1024], true, None),
    };
    let [b, h, tq, tk] = shape;
    let scale = 0.125f32; // 1/sqrt(head_dim = 64)
    let n: usize = shape.iter().product();
    let read = if causal {
        b * h * (0..tq).map(|i| visible(i, tq, tk)).sum::<usize>()
    } else {
        n
    };
    let s32 = seeded(&shape, 1, -8.0, 8.0, DType::F32, dev)?;
    // The padding mask [B, Tk]: 0 for the first `valid` keys, -inf after.
    let mask32 = match valid {
        Some(valid) => {
            let m: Vec<f32> = (0..b * tk)
                .map(|p| {
                    if p % tk < valid {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
                .collect();
            Some(Tensor::from_vec(m, (b, tk), dev)?)
        }
        None => None,
    };
    // What the unfused composition adds for the causal rule: [1, 1, Tq, Tk] of 0 / -inf.
    let causal32 = if causal {
        let m: Vec<f32> = (0..tq * tk)
            .map(|p| {
                if p % tk < visible(p / tk, tq, tk) {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        Some(Tensor::from_vec(m, (1, 1, tq, tk), dev)?)
    } else {
        None
    };

    let mut v = Vec::new();
    for dtype in dtypes(dev) {
        let es = dtype.size_in_bytes();
        let s = s32.to_dtype(dtype)?;
        let mask = mask32.as_ref().map(|m| m.to_dtype(dtype)).transpose()?;
        // The unfused composition adds one [B|1, 1, Tq|1, Tk] bias in the scores' dtype.
        let bias = match (&mask, &causal32) {
            (Some(m), _) => Some(m.reshape((b, 1, 1, tk))?),
            (None, Some(c)) => Some(c.to_dtype(dtype)?),
            (None, None) => None,
        };
        let (s1, m1) = (s.clone(), mask.clone());
        let (s2, bias2) = (s.clone(), bias);
        let (s3, m3) = (s, mask.clone());
        let torch_mask = match valid {
            Some(valid) => {
                json!({ "shape": [b, tk], "dtype": dtype.as_str(), "valid_keys": valid })
            }
            None => serde_json::Value::Null,
        };
        v.push(Case {
            op: "masked_softmax",
            shape: shape_name(&shape),
            dtype,
            bytes: (read + n + mask.as_ref().map_or(0, |m| m.elem_count())) * es,
            fused: Box::new(move || masked_softmax(&s1, m1.as_ref(), scale, causal)),
            unfused: Box::new(move || {
                let x = (&s2 * scale as f64)?;
                let x = match &bias2 {
                    Some(bias) => x.broadcast_add(bias)?,
                    None => x,
                };
                candle_nn::ops::softmax_last_dim(&x)
            }),
            reference: Box::new(move || masked_softmax_reference(&s3, m3.as_ref(), scale, causal)),
            torch: json!({
                "op": "masked_softmax", "shape": shape, "dtype": dtype.as_str(),
                "scale": scale, "causal": causal, "mask": torch_mask,
            }),
        });
    }
    Ok(v)
}
