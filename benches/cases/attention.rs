//! Attention cases: flash-style prefill and single-token decode over a KV cache, against the
//! candle composition they replace (`softmax(q·kᵀ·scale + mask)·v` with `repeat_kv` for GQA, the
//! mask added in the activation dtype) and, on a GPU, PyTorch eager.
//!
//! The `torch` spec of every case is a JSON object with these fields (for
//! `scripts/gpu_torch_baseline.py`, which times eager `softmax(q @ k.transpose(-1, -2) * scale +
//! mask) @ v` from it, kv heads repeated with `repeat_interleave` when `Hq != Hk`):
//! - `op`: `"flash_attention"` (prefill) or `"decode_attention"` (one new token);
//! - `q`: the query shape `[B, Hq, Tq, D]` (`Tq = 1` for decode);
//! - `kv`: the key and value shape `[B, Hk, Tk, D]`; for decode the preallocated cache
//!   `[B, Hk, T_max, D]`, of which the first `len` rows are attended to;
//! - `dtype`: `"f32"`, `"f16"` or `"bf16"`, of q, k, v and the output;
//! - `scale`: the factor on `q·kᵀ` (`1 / sqrt(D)`);
//! - `causal`: mask key `j` for query `i` when `j > i + (Tk - Tq)` (an additive `[Tq, Tk]` mask
//!   of 0 and −∞ built once, outside the timed call);
//! - `key_lengths`: `null`, or per batch the number of valid leading keys (BERT right padding;
//!   an additive `[B, 1, 1, Tk]` 0/−∞ mask built once);
//! - `len`: decode only, the number of cache rows attended to (`null` for prefill).
//!
//! Byte counts: q, k, v read once and the output written once; for decode, q, the first `len`
//! rows of both caches, and the output.

use candle_core::{DType, Device, Result, Tensor};
use serde_json::json;
use torchless_kernels::attention::{
    decode_attention, decode_attention_reference, flash_attention, flash_attention_reference,
    repeat_kv, AttentionOptions,
};
use torchless_kernels::testing::seeded;

use super::{dtypes, shape_name, Case, Size};

/// One prefill shape.
struct Prefill {
    q: [usize; 4],
    kv: [usize; 4],
    causal: bool,
    key_lengths: Option<Vec<u32>>,
}

/// One decode shape.
struct Decode {
    q: [usize; 4],
    cache: [usize; 4],
    len: usize,
}

/// BERT-base batch-1 prefill with padding and a GQA decode step (`Size::Inference`); at
/// `Size::Large` prefill at 512 (batch 4), 2048 and 4096 tokens (causal), where flash
/// attention must beat PyTorch eager.
pub fn cases(dev: &Device, size: Size) -> Result<Vec<Case>> {
    let (prefill, decode) = match size {
        Size::Inference => (
            vec![Prefill {
                q: [1, 12, 128, 64],
                kv: [1, 12, 128, 64],
                causal: false,
                key_lengths: Some(vec![100]),
            }],
            vec![Decode {
                q: [1, 32, 1, 128],
                cache: [1, 8, 2048, 128],
                len: 1024,
            }],
        ),
        Size::Large => (
            vec![
                Prefill {
                    q: [4, 16, 512, 64],
                    kv: [4, 16, 512, 64],
                    causal: false,
                    key_lengths: None,
                },
                Prefill {
                    q: [1, 16, 2048, 128],
                    kv: [1, 16, 2048, 128],
                    causal: true,
                    key_lengths: None,
                },
                Prefill {
                    q: [1, 32, 4096, 128],
                    kv: [1, 32, 4096, 128],
                    causal: true,
                    key_lengths: None,
                },
            ],
            Vec::new(),
        ),
    };
    let mut v = Vec::new();
    for dtype in dtypes(dev) {
        for p in &prefill {
            v.push(prefill_case(dev, dtype, p)?);
        }
        for d in &decode {
            v.push(decode_case(dev, dtype, d)?);
        }
    }
    Ok(v)
}

/// The additive masks of the unfused composition, in `dtype`: `[B, 1, 1, Tk]` for padding and
/// `[Tq, Tk]` for causal (both 0 / −∞).
fn masks(dev: &Device, dtype: DType, p: &Prefill) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let [b, _, tq, _] = p.q;
    let tk = p.kv[2];
    let pad = match &p.key_lengths {
        Some(lens) => {
            let m: Vec<f32> = lens
                .iter()
                .flat_map(|&n| {
                    (0..tk).map(move |j| {
                        if j < n as usize {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
                .collect();
            Some(Tensor::from_vec(m, (b, 1, 1, tk), dev)?.to_dtype(dtype)?)
        }
        None => None,
    };
    let causal = if p.causal {
        let m: Vec<f32> = (0..tq)
            .flat_map(|i| {
                (0..tk).map(move |j| {
                    if j + tq > i + tk {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        Some(Tensor::from_vec(m, (tq, tk), dev)?.to_dtype(dtype)?)
    } else {
        None
    };
    Ok((pad, causal))
}

/// The candle composition attention replaces: `softmax(q·kᵀ·scale + masks)·v` in q's dtype.
fn unfused(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32, masks: &[&Tensor]) -> Result<Tensor> {
    let group = q.dim(1)? / k.dim(1)?;
    let k = repeat_kv(k, group)?;
    let v = repeat_kv(v, group)?;
    let mut s = (q.matmul(&k.t()?)? * f64::from(scale))?;
    for m in masks {
        s = s.broadcast_add(m)?;
    }
    candle_nn::ops::softmax_last_dim(&s)?.matmul(&v)
}

fn prefill_case(dev: &Device, dtype: DType, p: &Prefill) -> Result<Case> {
    let es = dtype.size_in_bytes();
    let q = seeded(&p.q, 1, -1.0, 1.0, dtype, dev)?;
    let k = seeded(&p.kv, 2, -1.0, 1.0, dtype, dev)?;
    let vv = seeded(&p.kv, 3, -1.0, 1.0, dtype, dev)?;
    let opts = AttentionOptions {
        causal: p.causal,
        key_lengths: p.key_lengths.clone(),
        ..AttentionOptions::for_head_dim(p.q[3])
    };
    let (pad, causal) = masks(dev, dtype, p)?;
    let scale = opts.scale;
    let (q1, k1, v1, o1) = (q.clone(), k.clone(), vv.clone(), opts.clone());
    let (q2, k2, v2) = (q.clone(), k.clone(), vv.clone());
    let (q3, k3, v3, o3) = (q, k, vv, opts);
    let q_elems: usize = p.q.iter().product();
    let kv_elems: usize = p.kv.iter().product();
    let suffix = match (p.causal, &p.key_lengths) {
        (true, _) => " causal",
        (false, Some(_)) => " padded",
        (false, None) => "",
    };
    Ok(Case {
        op: "flash_attention",
        shape: format!("{} kv{}{suffix}", shape_name(&p.q), shape_name(&p.kv)),
        dtype,
        // q, k, v read, the output (q's shape) written.
        bytes: (2 * q_elems + 2 * kv_elems) * es,
        fused: Box::new(move || flash_attention(&q1, &k1, &v1, &o1)),
        unfused: Box::new(move || {
            let m: Vec<&Tensor> = pad.iter().chain(causal.iter()).collect();
            unfused(&q2, &k2, &v2, scale, &m)
        }),
        reference: Box::new(move || flash_attention_reference(&q3, &k3, &v3, &o3)),
        torch: json!({
            "op": "flash_attention", "q": p.q, "kv": p.kv, "dtype": dtype.as_str(),
            "scale": scale, "causal": p.causal, "key_lengths": p.key_lengths, "len": null,
        }),
    })
}

fn decode_case(dev: &Device, dtype: DType, d: &Decode) -> Result<Case> {
    let es = dtype.size_in_bytes();
    let q = seeded(&d.q, 1, -1.0, 1.0, dtype, dev)?;
    let k = seeded(&d.cache, 2, -1.0, 1.0, dtype, dev)?;
    let v = seeded(&d.cache, 3, -1.0, 1.0, dtype, dev)?;
    let scale = 1.0 / (d.q[3] as f32).sqrt();
    let len = d.len;
    let (q1, k1, v1) = (q.clone(), k.clone(), v.clone());
    let (q2, k2, v2) = (q.clone(), k.clone(), v.clone());
    let (q3, k3, v3) = (q, k, v);
    let q_elems: usize = d.q.iter().product();
    let [b, hk, _, hd] = d.cache;
    Ok(Case {
        op: "decode_attention",
        shape: format!("{} kv{} len{len}", shape_name(&d.q), shape_name(&d.cache)),
        dtype,
        // q read, the first `len` rows of both caches read, the output written.
        bytes: (2 * q_elems + 2 * b * hk * len * hd) * es,
        fused: Box::new(move || decode_attention(&q1, &k1, &v1, len, scale)),
        unfused: Box::new(move || {
            let k = k2.narrow(2, 0, len)?;
            let v = v2.narrow(2, 0, len)?;
            unfused(&q2, &k, &v, scale, &[])
        }),
        reference: Box::new(move || decode_attention_reference(&q3, &k3, &v3, len, scale)),
        torch: json!({
            "op": "decode_attention", "q": d.q, "kv": d.cache, "dtype": dtype.as_str(),
            "scale": scale, "causal": false, "key_lengths": null, "len": len,
        }),
    })
}
