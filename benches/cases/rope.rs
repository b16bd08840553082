//! Rotary position embedding cases: `rope_qk` (q and k in one launch) against candle-nn's
//! `rope` applied to q, then to k.
//!
//! The `torch` spec of each case, for `scripts/gpu_torch_baseline.py`:
//! - `op`: `"rope_qk"`.
//! - `q`, `k`: shapes `[B, Hq, T, D]` and `[B, Hk, T, D]` (contiguous; `Hk < Hq` is GQA).
//! - `dtype`: `"f32"`, `"f16"` or `"bf16"`, the dtype of q, k, cos and sin.
//! - `layout`: `"half_split"` — HF's `apply_rotary_pos_emb` (`q·cos + rotate_half(q)·sin`,
//!   pairs `(i, i + D/2)`) — or `"interleaved"` (pairs `(2i, 2i + 1)`).
//! - `offset`: the first position; the positions are `offset .. offset + T`.
//! - `theta`, `max_positions`: the table, HF's default rope: `inv_freq = 1 / theta^(arange(0, D,
//!   2) / D)`, `freqs = arange(max_positions)[:, None] · inv_freq` in f32, `cos`/`sin` of
//!   `cat(freqs, freqs)` cast to `dtype`, built once outside the timed region and sliced to
//!   `offset .. offset + T` inside it.
//!
//! The timed computation returns the rotated q and k. Here the fused case returns the packed
//! `[B, Hq + Hk, T, D]` output (`rope_qk_packed`; `rope_qk` only adds two `narrow` views), the
//! reference the same layout, and the unfused composition computes q and k and returns k (no
//! extra copy in either timed closure).

use candle_core::{Device, Result, Tensor};
use serde_json::json;
use torchless_kernels::rope::{rope_qk_packed, rope_qk_reference, RopeLayout, RopeTable};
use torchless_kernels::testing::seeded;

use super::{dtypes, shape_name, Case, Size};

/// Decode (`q [1,32,1,128]`, `k [1,8,1,128]` at position 100) and a BERT-size prefill
/// (`[1,12,128,64]`) at inference sizes; `[8,32,2048,128]` q and k when large.
pub fn cases(dev: &Device, size: Size) -> Result<Vec<Case>> {
    // (q shape, k shape, offset)
    let shapes: &[([usize; 4], [usize; 4], usize)] = match size {
        Size::Inference => &[
            ([1, 32, 1, 128], [1, 8, 1, 128], 100),
            ([1, 12, 128, 64], [1, 12, 128, 64], 0),
        ],
        Size::Large => &[([8, 32, 2048, 128], [8, 32, 2048, 128], 0)],
    };
    let theta = 10_000.0;
    let mut v = Vec::new();
    for &(qs, ks, offset) in shapes {
        let (t, d) = (qs[2], qs[3]);
        let max_positions = (offset + t).max(2048);
        for dtype in dtypes(dev) {
            let es = dtype.size_in_bytes();
            let q = seeded(&qs, 1, -1.0, 1.0, dtype, dev)?;
            let k = seeded(&ks, 2, -1.0, 1.0, dtype, dev)?;
            let table = RopeTable::from_theta(d, max_positions, theta, dtype, dev)?;
            let nq: usize = qs.iter().product();
            let nk: usize = ks.iter().product();
            let (q1, k1, t1) = (q.clone(), k.clone(), table.clone());
            let (q2, k2, t2) = (q.clone(), k.clone(), table.clone());
            let (q3, k3, t3) = (q, k, table);
            v.push(Case {
                op: "rope_qk",
                shape: format!("q{}+k{}@{offset}", shape_name(&qs), shape_name(&ks)),
                dtype,
                // q and k read and written once; cos and sin of the T positions read once.
                bytes: 2 * (nq + nk) * es + t * d * es,
                fused: Box::new(move || {
                    rope_qk_packed(&q1, &k1, &t1, offset, RopeLayout::HalfSplit)
                }),
                unfused: Box::new(move || {
                    let cos = t2.cos().narrow(0, offset, t)?;
                    let sin = t2.sin().narrow(0, offset, t)?;
                    let _q = candle_nn::rotary_emb::rope(&q2, &cos, &sin)?;
                    candle_nn::rotary_emb::rope(&k2, &cos, &sin)
                }),
                reference: Box::new(move || {
                    let (q, k) = rope_qk_reference(&q3, &k3, &t3, offset, RopeLayout::HalfSplit)?;
                    Tensor::cat(&[&q, &k], 1)
                }),
                torch: json!({
                    "op": "rope_qk", "q": qs, "k": ks, "dtype": dtype.as_str(),
                    "layout": "half_split", "offset": offset, "theta": theta,
                    "max_positions": max_positions,
                }),
            });
        }
    }
    Ok(v)
}
