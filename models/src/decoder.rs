//! What every causal language model of this crate shares: the [`CausalLm`] trait the runtime's
//! generation loop drives, attention over the [`KvCache`] (fused prefill kernel for a prompt,
//! fused single-query kernel reading the cache in place for a decode step) and the tied or
//! separate output projection.

use std::sync::Arc;

use candle_core::{bail, DType, Device, Result, Tensor};
use torchless_kernels::attention::{decode_attention, flash_attention, AttentionOptions};
use torchless_kernels::gemv::vec_mat_t;
use torchless_kernels::norm::{add_norm, NormParams};
use torchless_kernels::quant::Int8Matrix;

use crate::KvCache;

/// The weights under a state-dict `prefix` (`"model."` → `vb.pp("model")`, `""` → `vb`).
pub(crate) fn under_prefix<'a>(
    vb: &candle_nn::VarBuilder<'a>,
    prefix: &str,
) -> candle_nn::VarBuilder<'a> {
    let p = prefix.trim_end_matches('.');
    if p.is_empty() {
        vb.clone()
    } else {
        vb.pp(p)
    }
}

/// The output projection: the token embedding when tied, else `lm_head.weight` at the
/// checkpoint's root (an untied config without one is an error naming it).
pub(crate) fn output_head(
    vb: &candle_nn::VarBuilder,
    embed: &Tensor,
    tied: bool,
    vocab_size: usize,
    hidden: usize,
) -> Result<Head> {
    if tied {
        Ok(Head::Dense(embed.clone()))
    } else if vb.contains_tensor("lm_head.weight") {
        Ok(Head::Dense(
            vb.pp("lm_head").get((vocab_size, hidden), "weight")?,
        ))
    } else {
        bail!("tie_word_embeddings is false but the checkpoint has no `lm_head.weight`")
    }
}

/// A load-time weight quantization of a decoder (`--quantize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantize {
    /// Every linear layer of the blocks and the output projection in int8, symmetric per
    /// output channel ([`Int8Matrix`](torchless_kernels::quant::Int8Matrix)); the token
    /// embedding (the gather), the norms and the biases stay in the model's dtype. A tied head
    /// gets its own int8 copy of the table. CPU only.
    Int8,
}

impl Quantize {
    /// The name `--quantize` takes.
    pub fn name(self) -> &'static str {
        match self {
            Quantize::Int8 => "int8",
        }
    }
}

/// Quantizes every linear layer in `linears` and the output `head` as `q` says.
pub(crate) fn quantize_linears<'a>(
    q: Quantize,
    linears: impl IntoIterator<Item = &'a mut crate::Linear>,
    head: &mut Head,
) -> Result<()> {
    match q {
        Quantize::Int8 => {
            linears.into_iter().try_for_each(|l| l.quantize_int8())?;
            head.quantize_int8()
        }
    }
}

/// Which positions a forward pass returns logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (what generation needs): `[1, vocab]`.
    Last,
    /// Every new position: `[T, vocab]`.
    All,
}

/// The geometry a decoder's cache and generation loop need.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderShape {
    /// Layers (one cache entry each).
    pub layers: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Vocabulary size (logits per position).
    pub vocab_size: usize,
    /// The most positions the model can attend over (learned position table, rope table or
    /// sliding window).
    pub max_positions: usize,
}

/// A causal language model: token ids in, next-token logits out, keys and values kept in a
/// per-sequence [`KvCache`]. The model itself is immutable and `Send + Sync`; each sequence
/// owns its cache, so many threads can generate from one loaded model at once.
pub trait CausalLm: Send + Sync {
    /// The model's geometry.
    fn shape(&self) -> &DecoderShape;

    /// The weights' dtype (the cache's dtype).
    fn dtype(&self) -> DType;

    /// The device the weights live on.
    fn device(&self) -> &Device;

    /// Bytes a cache of `capacity` positions takes ([`KvCache::nbytes_for`]; `None` when that
    /// overflows).
    fn cache_nbytes(&self, capacity: usize) -> Option<u64> {
        let s = self.shape();
        KvCache::nbytes_for(s.layers, s.kv_heads, s.head_dim, capacity, self.dtype())
    }

    /// For a model whose rotary scaling depends on the sequence length (Phi-3's `longrope`):
    /// the length past which the whole sequence is computed again. transformers drops its
    /// cache the first time a generation's length exceeds it (with at most that many positions
    /// cached) and runs every token with the long factors; the generation loop does the same.
    fn recompute_past(&self) -> Option<usize> {
        None
    }

    /// Quantizes the weights of every linear layer of the blocks and the output projection at
    /// load ([`Quantize`]); the token embedding keeps the model's dtype. Families without it
    /// refuse.
    fn quantize(&mut self, q: Quantize) -> Result<()> {
        bail!("this model family has no {} quantization", q.name())
    }

    /// A cache for one sequence of at most `capacity` positions.
    fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        let s = self.shape();
        if capacity > s.max_positions {
            bail!(
                "a sequence of {capacity} positions exceeds the model's {} positions",
                s.max_positions
            );
        }
        KvCache::new(
            s.layers,
            s.kv_heads,
            s.head_dim,
            capacity,
            self.dtype(),
            self.device(),
        )
    }

    /// Runs `ids` (the next `T ≥ 1` tokens of the sequence, at positions `cache.len()..`)
    /// through the model, appends their keys and values to `cache`, and returns f32 logits
    /// (`[1, vocab]` or `[T, vocab]`, see [`Logits`]).
    fn forward(&self, ids: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor>;

    /// One decode step for `B = ids.len()` sequences at once: `ids[i]` is the next token of
    /// the sequence whose cache is `caches[i]`, each at its own position `caches[i].len()`.
    /// Appends every sequence's keys and values to its own cache and returns f32 logits
    /// `[B, vocab]`, row `i` equal (within f32 rounding) to `forward(&[ids[i]], caches[i],
    /// Logits::Last)`. Every id and every cache's room is checked before anything is written;
    /// on an error no cache has advanced.
    ///
    /// This default runs [`CausalLm::forward`] per sequence; families that override it run
    /// every projection as one matmul over the `B` rows (the weights are read once for all
    /// sequences) and only attention per sequence.
    fn decode_batch(&self, ids: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        check_batch(ids, caches, self.shape())?;
        let rows = ids
            .iter()
            .zip(caches.iter_mut())
            .map(|(&id, cache)| self.forward(&[id], cache, Logits::Last))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&rows, 0)
    }
}

/// Checks a batched decode step's ids against the vocabulary and the caches (one per id, each
/// with room for one more position).
pub(crate) fn check_batch(
    ids: &[u32],
    caches: &[&mut KvCache],
    shape: &DecoderShape,
) -> Result<()> {
    if ids.is_empty() {
        bail!("decode_batch: no sequences");
    }
    if ids.len() != caches.len() {
        bail!(
            "decode_batch: {} token ids for {} caches",
            ids.len(),
            caches.len()
        );
    }
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= shape.vocab_size) {
        bail!(
            "token id {bad} is outside the vocabulary of {}",
            shape.vocab_size
        );
    }
    for c in caches {
        c.check_room(1)?;
    }
    Ok(())
}

/// Attention of one layer for a batched decode step: `q` `[B, Hq, 1, D]`, `k`, `v`
/// `[B, Hk, 1, D]` (row `i` belongs to `caches[i]`). `rotate` gets each sequence's `(q, k)`
/// rows (`[1, H, 1, D]`) and its position, and returns them rotated (or as they are); then
/// each row is written into its own cache and attends over it with the decode kernel.
/// Returns `[B, 1, Hq·D]`.
pub(crate) fn batched_decode_attention(
    caches: &[&mut KvCache],
    layer: usize,
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    scale: f32,
    rotate: impl Fn(&Tensor, &Tensor, usize) -> Result<(Tensor, Tensor)>,
) -> Result<Tensor> {
    let rows = caches
        .iter()
        .enumerate()
        .map(|(i, cache)| {
            let (qi, ki) = rotate(&q.narrow(0, i, 1)?, &k.narrow(0, i, 1)?, cache.len())?;
            cached_attention(cache, layer, &qi, &ki, &v.narrow(0, i, 1)?, scale)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&rows, 0)
}

/// Marks one more position as cached in every cache of a batched step.
pub(crate) fn advance_all(caches: &mut [&mut KvCache]) -> Result<()> {
    caches.iter_mut().try_for_each(|c| c.advance(1))
}

/// Checks a forward call's ids against the cache and the vocabulary; returns `[T]` u32 ids.
pub(crate) fn check_ids(
    ids: &[u32],
    cache: &KvCache,
    shape: &DecoderShape,
    device: &Device,
) -> Result<Tensor> {
    if ids.is_empty() {
        bail!("forward: no token ids");
    }
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= shape.vocab_size) {
        bail!(
            "token id {bad} is outside the vocabulary of {}",
            shape.vocab_size
        );
    }
    cache.check_room(ids.len())?;
    Tensor::new(ids, device)
}

/// Attention of one layer for the new positions: writes `k`/`v` (`[1, Hk, T, D]`) into the
/// cache at its current length, then attends `q` (`[1, Hq, T, D]`) causally over every cached
/// position plus the new ones. Returns `[1, T, Hq·D]`.
pub(crate) fn cached_attention(
    cache: &KvCache,
    layer: usize,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let (_, hq, t, d) = q.dims4()?;
    let past = cache.len();
    cache.write(layer, k, v)?;
    let ctx = if t == 1 {
        let (kc, vc) = cache.buffers(layer)?;
        decode_attention(q, kc, vc, past + 1, scale)?
    } else {
        let opts = AttentionOptions {
            scale,
            causal: true,
            key_lengths: None,
        };
        if past == 0 {
            flash_attention(q, k, v, &opts)?
        } else {
            let (kc, vc) = cache.buffers(layer)?;
            let kk = kc.narrow(2, 0, past + t)?;
            let vv = vc.narrow(2, 0, past + t)?;
            flash_attention(q, &kk, &vv, &opts)?
        }
    };
    ctx.transpose(1, 2)?.contiguous()?.reshape((1, t, hq * d))
}

/// Splits a fused `[1, T, (Hq + 2·Hk)·D]` projection into `q` `[1, Hq, T, D]` and `k`, `v`
/// `[1, Hk, T, D]`, each contiguous.
pub(crate) fn split_qkv(
    qkv: &Tensor,
    hq: usize,
    hk: usize,
    d: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, t, _) = qkv.dims3()?;
    let heads = |start: usize, n: usize| -> Result<Tensor> {
        qkv.narrow(2, start * d, n * d)?
            .reshape((b, t, n, d))?
            .transpose(1, 2)?
            .contiguous()
    };
    Ok((heads(0, hq)?, heads(hq, hk)?, heads(hq + hk, hk)?))
}

/// The output projection: `h` `[1, T, H]` (normed) → f32 logits of the positions asked for,
/// with `weight` `[vocab, H]` (a tied embedding table or `lm_head.weight`) used transposed in
/// place.
pub(crate) fn project_logits(h: &Tensor, head: &Head, which: Logits) -> Result<Tensor> {
    let (_, t, hidden) = h.dims3()?;
    let rows = match which {
        Logits::Last => h.narrow(1, t - 1, 1)?.reshape((1, hidden))?,
        Logits::All => h.reshape((t, hidden))?,
    };
    head.project(&rows)
}

/// The output projection of a batched decode step: `h` `[B, 1, H]` (normed) → f32 logits
/// `[B, vocab]`, one matmul over the `B` rows.
pub(crate) fn project_batch_logits(h: &Tensor, head: &Head) -> Result<Tensor> {
    let (b, _, hidden) = h.dims3()?;
    head.project(&h.reshape((b, hidden))?)
}

/// The output projection's weight `[vocab, H]`: the (tied) table in the model's dtype, or its
/// int8 copy under `--quantize int8` (the embedding gather keeps the table).
#[derive(Debug, Clone)]
pub(crate) enum Head {
    /// `[vocab, H]` as stored.
    Dense(Tensor),
    /// Quantized per vocabulary row.
    Int8(Arc<Int8Matrix>),
}

impl Head {
    /// f32 logits `[rows, vocab]` for normed hidden states `[rows, H]`.
    fn project(&self, rows: &Tensor) -> Result<Tensor> {
        match self {
            Head::Dense(w) => vec_mat_t(rows, w)?.to_dtype(DType::F32),
            Head::Int8(q) => q.matmul(&rows.to_dtype(DType::F32)?),
        }
    }

    /// Replaces a CPU f32/bf16 head by its int8 quantization.
    pub(crate) fn quantize_int8(&mut self) -> Result<()> {
        if let Head::Dense(w) = self {
            if !w.device().is_cpu() {
                bail!(
                    "int8 weights run on the CPU only (this model is on {:?})",
                    w.device()
                );
            }
            *self = Head::Int8(Arc::new(Int8Matrix::from_out_in(w)?));
        }
        Ok(())
    }
}

/// The two norms of one pre-norm residual block (its attention and MLP are closures of
/// [`pre_norm_stack`]).
pub(crate) struct PreNormBlock<'a> {
    /// The norm before attention.
    pub norm1: &'a NormParams,
    /// The norm before the MLP.
    pub norm2: &'a NormParams,
}

/// Runs a pre-norm stack `h = x + attn(norm1(x)); x = h + mlp(norm2(h))` over every block, then
/// `final_norm`; `attn` gets the layer index, the block and the normed input, `mlp` the block and
/// the normed input. The residual stream is carried as (sum so far, pending delta) so each residual
/// add happens inside the next norm's fused kernel.
pub(crate) fn pre_norm_stack<B>(
    x: Tensor,
    blocks: &[B],
    eps: f64,
    final_norm: &NormParams,
    norms: impl Fn(&B) -> PreNormBlock<'_>,
    mut attn: impl FnMut(usize, &B, &Tensor) -> Result<Tensor>,
    mlp: impl Fn(&B, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (mut residual, mut delta) = (None::<Tensor>, x);
    for (i, b) in blocks.iter().enumerate() {
        let n = norms(b);
        let n1 = add_norm(&delta, residual.as_ref(), n.norm1, eps, true)?;
        let sum1 = n1.sum.unwrap_or(delta);
        let a = attn(i, b, &n1.normed)?;
        let n2 = add_norm(&a, Some(&sum1), n.norm2, eps, true)?;
        let sum2 = match n2.sum {
            Some(s) => s,
            None => (&a + &sum1)?,
        };
        delta = mlp(b, &n2.normed)?;
        residual = Some(sum2);
    }
    Ok(add_norm(&delta, residual.as_ref(), final_norm, eps, false)?.normed)
}
