//! BERT embedding cases: `bert_embeddings` (gather + adds + LayerNorm in one pass) against
//! candle's `embedding` gathers, the adds and `candle_nn::ops::layer_norm`.
//!
//! The `torch` spec of each case, for `scripts/gpu_torch_baseline.py`:
//! - `op`: `"bert_embeddings"`.
//! - `ids`: the shape `[B, T]` of `input_ids` and of `token_type_ids`. The ids are
//!   `input_ids[b, t] = (i · 7919 + 13) % vocab` with `i = b·T + t`, and the token types are
//!   0 for `t < T/2` and 1 after (two segments), as int64; both are made on the host and copied
//!   to the device inside the timed region (a tokenizer hands over host ids).
//! - `hidden`, `vocab`, `max_positions`, `type_vocab`: `H`, the rows of the word, position and
//!   token-type tables (seeded values; only the timing matters to the script).
//! - `dtype`: `"f32"`, `"f16"` or `"bf16"`, the dtype of the tables and of the output.
//! - `offset`: the first position (`past_key_values_length` / `cache_length`), positions
//!   `offset .. offset + T`.
//! - `eps`: LayerNorm's epsilon.
//!
//! The computation is `transformers`' `BertEmbeddings.forward` in eval mode:
//! `LayerNorm(word[ids] + token_type[types] + position[offset + t])`, output `[B, T, H]`.

use candle_core::{Device, Result, Tensor};
use serde_json::json;
use torchless_kernels::embeddings::{
    bert_embeddings, bert_embeddings_reference, BertEmbeddingTables,
};
use torchless_kernels::testing::seeded;

use super::{dtypes, shape_name, Case, Size};

/// BERT-base batch 1 (`[1,128]` ids, H = 768, V = 30522) at inference sizes; `[64,512]` ids
/// with H = 1024 (BERT-large) when large.
pub fn cases(dev: &Device, size: Size) -> Result<Vec<Case>> {
    let (b, t, h) = match size {
        Size::Inference => (1, 128, 768),
        Size::Large => (64, 512, 1024),
    };
    let (vocab, max_positions, type_vocab, offset, eps) = (30522, 512, 2, 0, 1e-12);
    let n = b * t;
    let ids: Vec<u32> = (0..n).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
    let types: Vec<u32> = (0..n).map(|i| u32::from(i % t >= t / 2)).collect();
    let host_ids = Tensor::from_vec(ids, (b, t), &Device::Cpu)?;
    let host_types = Tensor::from_vec(types, (b, t), &Device::Cpu)?;
    let mut v = Vec::new();
    for dtype in dtypes(dev) {
        let es = dtype.size_in_bytes();
        let word = seeded(&[vocab, h], 1, -1.0, 1.0, dtype, dev)?;
        let pos = seeded(&[max_positions, h], 2, -0.5, 0.5, dtype, dev)?;
        let tt = seeded(&[type_vocab, h], 3, -0.3, 0.3, dtype, dev)?;
        let w = seeded(&[h], 4, 0.5, 1.5, dtype, dev)?;
        let bias = seeded(&[h], 5, -0.2, 0.2, dtype, dev)?;
        let tables = BertEmbeddingTables::new(&word, &pos, &tt, &w, &bias, eps)?;
        let (i1, y1, t1) = (host_ids.clone(), host_types.clone(), tables.clone());
        let (i2, y2, t2, dev2) = (
            host_ids.clone(),
            host_types.clone(),
            tables.clone(),
            dev.clone(),
        );
        let (i3, y3, t3) = (host_ids.clone(), host_types.clone(), tables);
        v.push(Case {
            op: "bert_embeddings",
            shape: format!("{}x{h}", shape_name(&[b, t])),
            dtype,
            // Ids and type ids read (u32), one word row per token, the T position rows, the
            // type rows, LayerNorm weight and bias, the output written.
            bytes: 2 * n * 4 + (n * h + t * h + type_vocab * h + 2 * h + n * h) * es,
            fused: Box::new(move || bert_embeddings(&i1, Some(&y1), offset, &t1)),
            unfused: Box::new(move || {
                let ids = i2.to_device(&dev2)?.flatten_all()?;
                let types = y2.to_device(&dev2)?.flatten_all()?;
                let hidden = t2.hidden();
                let words = t2.word().embedding(&ids)?.reshape((b, t, hidden))?;
                let ty = t2.token_type().embedding(&types)?.reshape((b, t, hidden))?;
                let pos = t2.position().narrow(0, offset, t)?;
                let s = (words + ty)?.broadcast_add(&pos)?;
                candle_nn::ops::layer_norm(&s, t2.weight(), t2.bias(), t2.eps() as f32)
            }),
            reference: Box::new(move || bert_embeddings_reference(&i3, Some(&y3), offset, &t3)),
            torch: json!({
                "op": "bert_embeddings", "ids": [b, t], "hidden": h, "vocab": vocab,
                "max_positions": max_positions, "type_vocab": type_vocab,
                "dtype": dtype.as_str(), "offset": offset, "eps": eps,
            }),
        });
    }
    Ok(v)
}
