//! Scaled dot-product attention without the score matrix: `softmax(q·kᵀ·scale + mask)·v` for
//! prefill (flash-style: an online softmax — running row maximum and sum, rescaled accumulator —
//! over tiles of keys) and for single-token decode over a preallocated KV cache (read in place).
//! Grouped-query attention: query head `h` uses key/value head `h / (Hq / Hk)`.
//!
//! Mirrors `torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, is_causal,
//! scale, enable_gqa=True)` with a boolean `attn_mask` built from per-batch key lengths (BERT
//! right padding). Two conventions differ from PyTorch and are deliberate:
//! - **causal alignment**: key `j` is masked for query `i` when `j > i + (Tk - Tq)` (the queries
//!   are the last `Tq` positions, as in flash-attn ≥ 2.1 and in decoding with a cache). PyTorch's
//!   `is_causal=True` aligns to the top left instead; the two agree when `Tq == Tk`.
//! - **a query row with no valid key** (all keys padded, or causal with `Tq > Tk`) outputs
//!   zeros, where PyTorch's math backend returns NaN.
//!
//! All arithmetic is in f32 whatever the input dtype; the output has the query's dtype.

use candle_core::{bail, CpuStorage, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu;
use crate::op::{apply, fused_op, same_float_dtype};
use crate::vmath;
use crate::Elem;

/// Head dimensions the CUDA kernels are instantiated for; any other uses the reference on CUDA
/// (the CPU path takes every head dimension).
pub const CUDA_HEAD_DIMS: [usize; 5] = [32, 64, 80, 96, 128];

/// Queries per CPU work item (one rayon task per `(batch, head, query tile)`).
const CPU_BLOCK_Q: usize = 64;
/// Keys per CPU tile (the per-row score buffer holds this many).
const CPU_BLOCK_K: usize = 64;
/// Below this many multiply-adds (`B·H·Tq·Tk·D`) the CPU path runs on the calling thread.
const CPU_PARALLEL_MIN_WORK: usize = 1 << 18;

/// Options of [`flash_attention`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionOptions {
    /// Multiplies `q·kᵀ` before the softmax (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Masks key `j` for query `i` when `j > i + (Tk - Tq)` (bottom-right aligned; see the
    /// module documentation).
    pub causal: bool,
    /// `key_lengths[b]`: how many leading keys of batch `b` are valid (right padding); one per
    /// batch, each at most `Tk`. `None`: every key is valid.
    pub key_lengths: Option<Vec<u32>>,
}

impl AttentionOptions {
    /// Scale `1 / sqrt(head_dim)` (PyTorch's default), not causal, no padding.
    pub fn for_head_dim(head_dim: usize) -> Self {
        AttentionOptions {
            scale: 1.0 / (head_dim.max(1) as f32).sqrt(),
            causal: false,
            key_lengths: None,
        }
    }
}

/// Checked sizes of one attention call.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    hq: usize,
    hk: usize,
    tq: usize,
    tk: usize,
    d: usize,
}

impl Dims {
    /// Query heads per key/value head.
    fn group(&self) -> usize {
        self.hq / self.hk
    }
}

/// Validates q `[B, Hq, Tq, D]`, k and v `[B, Hk, Tk, D]`, `Hq % Hk == 0`.
fn check_qkv(q: &Tensor, k: &Tensor, v: &Tensor, what: &str) -> Result<Dims> {
    let (b, hq, tq, d) = q.dims4()?;
    let (bk, hk, tk, dk) = k.dims4()?;
    if v.dims() != k.dims() {
        bail!("{what}: v {:?} differs from k {:?}", v.dims(), k.dims());
    }
    if bk != b || dk != d {
        bail!(
            "{what}: q {:?} and k {:?} disagree on batch or head_dim",
            q.dims(),
            k.dims()
        );
    }
    if hk == 0 || hq % hk != 0 {
        bail!("{what}: {hq} query heads are not a multiple of {hk} key/value heads");
    }
    Ok(Dims {
        b,
        hq,
        hk,
        tq,
        tk,
        d,
    })
}

/// Validates `key_lengths` against the batch size and `Tk`.
fn check_key_lengths(opts: &AttentionOptions, dims: &Dims) -> Result<()> {
    if let Some(l) = &opts.key_lengths {
        if l.len() != dims.b {
            bail!(
                "flash_attention: {} key lengths for a batch of {}",
                l.len(),
                dims.b
            );
        }
        if let Some(bad) = l.iter().find(|&&n| n as usize > dims.tk) {
            bail!(
                "flash_attention: key length {bad} exceeds the {} keys",
                dims.tk
            );
        }
    }
    Ok(())
}

/// The number of leading keys query `i` may attend to: `min(key_len, i + Tk - Tq + 1)` when
/// causal, clamped to `[0, key_len]`. Padding and the causal mask both keep a prefix of keys.
fn row_end(i: usize, tq: usize, tk: usize, causal: bool, key_len: usize) -> usize {
    if !causal {
        return key_len;
    }
    let lim = i as i64 + tk as i64 - tq as i64 + 1;
    key_len.min(lim.clamp(0, tk as i64) as usize)
}

/// The valid-key prefix length of every query row, `[B][Tq]` flattened.
fn row_ends(dims: &Dims, opts: &AttentionOptions) -> Vec<usize> {
    let mut v = Vec::with_capacity(dims.b * dims.tq);
    for b in 0..dims.b {
        let len = opts
            .key_lengths
            .as_ref()
            .and_then(|l| l.get(b))
            .map_or(dims.tk, |&n| (n as usize).min(dims.tk));
        v.extend((0..dims.tq).map(|i| row_end(i, dims.tq, dims.tk, opts.causal, len)));
    }
    v
}

/// `[B, Hk, T, D]` → `[B, Hk·n, T, D]`, each key/value head repeated `n` times in place
/// (head `h` of the result is head `h / n` of the input).
pub fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, h, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, h, n, t, d))?
        .reshape((b, h * n, t, d))
}

/// Reference: plain candle ops in f32 (repeat the key/value heads, `q·kᵀ·scale`, add a 0/−∞
/// mask, `softmax_last_dim`, `·v`; rows with no valid key set to zero), cast to q's dtype.
pub fn flash_attention_reference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &AttentionOptions,
) -> Result<Tensor> {
    let dims = check_qkv(q, k, v, "flash_attention_reference")?;
    check_key_lengths(opts, &dims)?;
    if q.elem_count() == 0 || dims.tk == 0 {
        return Tensor::zeros(q.shape(), q.dtype(), q.device());
    }
    let out_dtype = q.dtype();
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let k = repeat_kv(&f(k)?, dims.group())?.contiguous()?;
    let v = repeat_kv(&f(v)?, dims.group())?.contiguous()?;
    let q = f(q)?.contiguous()?;
    let s = (q.matmul(&k.t()?.contiguous()?)? * f64::from(opts.scale))?;
    let ends = row_ends(&dims, opts);
    let dev = q.device();
    let (mut mask, mut live) = (Vec::with_capacity(ends.len() * dims.tk), Vec::new());
    for &e in &ends {
        mask.extend((0..dims.tk).map(|j| if j < e { 0f32 } else { f32::NEG_INFINITY }));
        live.push(u8::from(e > 0));
    }
    let mask = Tensor::from_vec(mask, (dims.b, 1, dims.tq, dims.tk), dev)?;
    let live = Tensor::from_vec(live, (dims.b, 1, dims.tq, 1), dev)?;
    let p = candle_nn::ops::softmax_last_dim(&s.broadcast_add(&mask)?)?;
    // A row whose keys are all masked is NaN after the softmax; `where_cond` selects zeros.
    let p = live
        .broadcast_as(p.shape())?
        .where_cond(&p, &p.zeros_like()?)?;
    p.matmul(&v)?.to_dtype(out_dtype)
}

/// Fused attention for prefill: q `[B, Hq, Tq, D]`, k and v `[B, Hk, Tk, D]` (`Hq % Hk == 0`),
/// output `[B, Hq, Tq, D]` in q's dtype. Never builds the `[Tq, Tk]` score matrix. Inputs the
/// fast paths do not cover (mixed dtypes or devices, a head dimension outside
/// [`CUDA_HEAD_DIMS`] on CUDA) use [`flash_attention_reference`].
pub fn flash_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &AttentionOptions,
) -> Result<Tensor> {
    let dims = check_qkv(q, k, v, "flash_attention")?;
    check_key_lengths(opts, &dims)?;
    if q.elem_count() == 0 || dims.tk == 0 {
        return Tensor::zeros(q.shape(), q.dtype(), q.device());
    }
    if !fast_path(&[q, k, v], dims.d) {
        return flash_attention_reference(q, k, v, opts);
    }
    let op = FlashAttention {
        dims,
        scale: opts.scale,
        causal: opts.causal,
        key_lengths: opts.key_lengths.clone(),
    };
    apply(&op, &[q, k, v])
}

/// Heads and masking of [`varlen_attention`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VarlenOptions {
    /// Query heads `Hq`.
    pub heads: usize,
    /// Key/value heads `Hk` (`Hq % Hk == 0`).
    pub kv_heads: usize,
    /// Multiplies `q·kᵀ` before the softmax (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Key `j` of a sequence masked for its query `i` when `j > i` (queries and keys are the
    /// same tokens, so both alignments of [`AttentionOptions::causal`] agree).
    pub causal: bool,
}

/// Checked sizes of one varlen call: the packed row width and the sequence bounds.
#[derive(Debug, Clone)]
struct Varlen {
    n: usize,
    hq: usize,
    hk: usize,
    d: usize,
    /// Sequence `i` is rows `cu[i]..cu[i + 1]`.
    cu: Vec<usize>,
}

impl Varlen {
    /// Elements per packed qkv row.
    fn width(&self) -> usize {
        (self.hq + 2 * self.hk) * self.d
    }

    fn seqs(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.cu.windows(2).map(|w| (w[0], w[1] - w[0]))
    }
}

/// Validates qkv `[N, (Hq + 2·Hk)·D]` and `cu_seqlens` (starts at 0, non-decreasing, ends at
/// `N`).
fn check_varlen(qkv: &Tensor, cu_seqlens: &[u32], o: &VarlenOptions) -> Result<Varlen> {
    let (n, w) = qkv.dims2().map_err(|_| {
        candle_core::Error::Msg(format!(
            "varlen_attention: qkv must be [tokens, (heads + 2·kv_heads)·head_dim], got {:?}",
            qkv.dims()
        ))
    })?;
    if o.kv_heads == 0 || !o.heads.is_multiple_of(o.kv_heads) {
        bail!(
            "varlen_attention: {} query heads are not a multiple of {} key/value heads",
            o.heads,
            o.kv_heads
        );
    }
    let parts = o.heads + 2 * o.kv_heads;
    if w == 0 || w % parts != 0 {
        bail!(
            "varlen_attention: a qkv row of {w} does not split into {} q + 2·{} k/v heads",
            o.heads,
            o.kv_heads
        );
    }
    let cu: Vec<usize> = cu_seqlens.iter().map(|&c| c as usize).collect();
    let ordered = cu.windows(2).all(|p| p[0] <= p[1]);
    if cu.first() != Some(&0) || cu.last() != Some(&n) || !ordered {
        bail!(
            "varlen_attention: cu_seqlens must rise from 0 to the {n} tokens, got {cu_seqlens:?}"
        );
    }
    Ok(Varlen {
        n,
        hq: o.heads,
        hk: o.kv_heads,
        d: w / parts,
        cu,
    })
}

/// Reference for [`varlen_attention`]: each sequence cut out of the packed rows, split into
/// `[1, H, L, D]` heads and given to [`flash_attention_reference`], the outputs stacked.
pub fn varlen_attention_reference(
    qkv: &Tensor,
    cu_seqlens: &[u32],
    o: &VarlenOptions,
) -> Result<Tensor> {
    let vl = check_varlen(qkv, cu_seqlens, o)?;
    let opts = AttentionOptions {
        scale: o.scale,
        causal: o.causal,
        key_lengths: None,
    };
    let mut outs = Vec::new();
    for (start, len) in vl.seqs().filter(|&(_, len)| len > 0) {
        let rows = qkv
            .narrow(0, start, len)?
            .reshape((len, vl.hq + 2 * vl.hk, vl.d))?;
        let heads = |from: usize, count: usize| -> Result<Tensor> {
            rows.narrow(1, from, count)?.transpose(0, 1)?.unsqueeze(0)
        };
        let out = flash_attention_reference(
            &heads(0, vl.hq)?,
            &heads(vl.hq, vl.hk)?,
            &heads(vl.hq + vl.hk, vl.hk)?,
            &opts,
        )?;
        outs.push(
            out.squeeze(0)?
                .transpose(0, 1)?
                .reshape((len, vl.hq * vl.d))?,
        );
    }
    if outs.is_empty() {
        return Tensor::zeros((vl.n, vl.hq * vl.d), qkv.dtype(), qkv.device());
    }
    Tensor::cat(&outs, 0)
}

/// Attention over sequences packed into one token dimension (no padding), as flash-attention's
/// `flash_attn_varlen_qkvpacked_func`: `qkv` `[N, (Hq + 2·Hk)·D]` holds each token's query
/// heads, then key heads, then value heads (a fused QKV projection's output, read in place);
/// sequence `i` is rows `cu_seqlens[i]..cu_seqlens[i + 1]` and attends only to itself.
/// Returns `[N, Hq·D]` in qkv's dtype (each token's heads side by side, the layout the output
/// projection takes). A call costs `Σ Lᵢ²`, not `B·max(L)²`.
///
/// The CPU kernel tiles each sequence's queries (the tiles of [`flash_attention`]'s CPU path)
/// and reads keys and values in place. Elsewhere (CUDA has no varlen kernel yet) the call pads:
/// rows gathered into `[B, max L]`, [`flash_attention`] with key lengths, rows gathered back.
pub fn varlen_attention(qkv: &Tensor, cu_seqlens: &[u32], o: &VarlenOptions) -> Result<Tensor> {
    let vl = check_varlen(qkv, cu_seqlens, o)?;
    if vl.n == 0 {
        return Tensor::zeros((0, vl.hq * vl.d), qkv.dtype(), qkv.device());
    }
    if !(qkv.device().is_cpu() && same_float_dtype(&[qkv])) {
        return varlen_attention_padded(qkv, cu_seqlens, o);
    }
    apply(
        &VarlenAttention {
            vl,
            scale: o.scale,
            causal: o.causal,
        },
        &[qkv],
    )
}

/// [`varlen_attention`] through the padded kernel: the sequences gathered into `[B, max L]`
/// (a padded slot repeats the sequence's first row; the key lengths mask it), [`flash_attention`],
/// the real rows gathered back. The route on devices without a varlen kernel.
pub fn varlen_attention_padded(
    qkv: &Tensor,
    cu_seqlens: &[u32],
    o: &VarlenOptions,
) -> Result<Tensor> {
    let vl = check_varlen(qkv, cu_seqlens, o)?;
    let b = vl.cu.len() - 1;
    let tmax = vl.seqs().map(|(_, len)| len).max().unwrap_or(0);
    if vl.n == 0 || tmax == 0 {
        return Tensor::zeros((vl.n, vl.hq * vl.d), qkv.dtype(), qkv.device());
    }
    let (mut gather, mut back, mut lens) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (start, len)) in vl.seqs().enumerate() {
        // An empty sequence's slots point at row 0; its key length 0 masks them all.
        let first = if len > 0 { start } else { 0 };
        gather.extend((0..tmax).map(|t| (if t < len { start + t } else { first }) as u32));
        back.extend((0..len).map(|t| (i * tmax + t) as u32));
        lens.push(len as u32);
    }
    let dev = qkv.device();
    let padded = qkv
        .index_select(&Tensor::from_vec(gather, b * tmax, dev)?, 0)?
        .reshape((b, tmax, vl.hq + 2 * vl.hk, vl.d))?;
    let heads = |from: usize, count: usize| -> Result<Tensor> {
        padded.narrow(2, from, count)?.transpose(1, 2)
    };
    let out = flash_attention(
        &heads(0, vl.hq)?,
        &heads(vl.hq, vl.hk)?,
        &heads(vl.hq + vl.hk, vl.hk)?,
        &AttentionOptions {
            scale: o.scale,
            causal: o.causal,
            key_lengths: Some(lens),
        },
    )?;
    let rows = out.transpose(1, 2)?.reshape((b * tmax, vl.hq * vl.d))?;
    rows.index_select(&Tensor::from_vec(back, vl.n, dev)?, 0)
}

/// The varlen op (input: the packed qkv matrix). CPU only: other devices take
/// [`varlen_attention_padded`] before the op is built.
struct VarlenAttention {
    vl: Varlen,
    scale: f32,
    causal: bool,
}

impl VarlenAttention {
    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let Varlen { n, hq, hk, d, .. } = self.vl;
        let w = self.vl.width();
        let qkv = cpu::slice::<T>(ins[0].0, ins[0].1, "qkv")?;
        if qkv.len() != n * w {
            bail!("varlen_attention: storage size does not match the shape");
        }
        let mut buf = Vec::new();
        let x = cpu::as_f32(qkv, &mut buf);
        let (group, out_w) = (hq / hk, hq * d);
        // Work items: (sequence start, length, first query, rows), every head in one item so
        // each owns whole output rows. Smaller tiles when the big ones would leave threads idle.
        let tiles_at = |block: usize| self.vl.seqs().map(|(_, l)| l.div_ceil(block)).sum();
        let block = if tiles_at(CPU_BLOCK_Q) >= 2 * rayon::current_num_threads() {
            CPU_BLOCK_Q
        } else {
            CPU_BLOCK_Q / 4
        };
        let mut items = Vec::with_capacity(tiles_at(block));
        for (start, len) in self.vl.seqs() {
            items.extend(
                (0..len)
                    .step_by(block)
                    .map(|q0| (start, len, q0, block.min(len - q0))),
            );
        }
        let mut out = vec![T::from_f32(0.0); n * out_w];
        let mut chunks = Vec::with_capacity(items.len());
        let mut rest = out.as_mut_slice();
        for &(_, _, _, rows) in &items {
            let (c, r) = rest.split_at_mut(rows * out_w);
            chunks.push(c);
            rest = r;
        }
        let run = |&(start, len, q0, rows): &(usize, usize, usize, usize), o: &mut [T]| {
            let ends: Vec<usize> = (0..rows)
                .map(|r| if self.causal { q0 + r + 1 } else { len })
                .collect();
            let (mut qf, mut s) = (vec![0f32; rows * d], Vec::new());
            for h in 0..hq {
                for (r, q) in qf.chunks_mut(d).enumerate() {
                    let src = &x[(start + q0 + r) * w + h * d..][..d];
                    q.iter_mut()
                        .zip(src)
                        .for_each(|(a, &b)| *a = b * self.scale);
                }
                let kv = h / group;
                let k = &x[start * w + (hq + kv) * d..];
                let v = &x[start * w + (hq + hk + kv) * d..];
                attend_tile(&mut qf, d, k, v, w, &ends, &mut s);
                for (r, q) in qf.chunks(d).enumerate() {
                    for (a, &b) in o[r * out_w + h * d..][..d].iter_mut().zip(q) {
                        *a = T::from_f32(b);
                    }
                }
            }
        };
        let work: usize = self.vl.seqs().map(|(_, l)| l * l).sum::<usize>() * hq * d;
        if work < CPU_PARALLEL_MIN_WORK {
            items.iter().zip(chunks).for_each(|(it, o)| run(it, o));
        } else {
            items
                .par_iter()
                .zip(chunks.into_par_iter())
                .for_each(|(it, o)| run(it, o));
        }
        Ok((cpu::storage(out), Shape::from((n, out_w))))
    }
}

#[cfg(feature = "cuda")]
impl VarlenAttention {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        _ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<CudaOut> {
        // `varlen_attention` sends CUDA inputs to `varlen_attention_padded` first.
        bail!("varlen_attention: no CUDA kernel (the padded route serves CUDA)")
    }
}

fused_op!(VarlenAttention, "varlen-attention", input = 0, cpu = cpu_t);

/// Reference for [`decode_attention`]: [`flash_attention_reference`] over the first `len`
/// positions of the caches.
pub fn decode_attention_reference(
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    len: usize,
    scale: f32,
) -> Result<Tensor> {
    check_decode(q, k_cache, v_cache, len)?;
    let k = k_cache.narrow(2, 0, len)?;
    let v = v_cache.narrow(2, 0, len)?;
    let opts = AttentionOptions {
        scale,
        causal: false,
        key_lengths: None,
    };
    flash_attention_reference(q, &k, &v, &opts)
}

/// Validates a decode call: q `[B, Hq, 1, D]`, caches `[B, Hk, T_max, D]`, `1 <= len <= T_max`.
fn check_decode(q: &Tensor, k_cache: &Tensor, v_cache: &Tensor, len: usize) -> Result<Dims> {
    let dims = check_qkv(q, k_cache, v_cache, "decode_attention")?;
    if dims.tq != 1 {
        bail!(
            "decode_attention: q must hold one token, got {:?}",
            q.dims()
        );
    }
    if len == 0 || len > dims.tk {
        bail!(
            "decode_attention: len {len} outside 1..={} (the cache length)",
            dims.tk
        );
    }
    Ok(dims)
}

/// Fused single-token decode: q `[B, Hq, 1, D]` attends to the first `len` positions of the
/// preallocated caches `[B, Hk, T_max, D]` (read in place, no copy when they are contiguous),
/// output `[B, Hq, 1, D]` in q's dtype. Errors when `len` is 0 or exceeds `T_max`.
pub fn decode_attention(
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    len: usize,
    scale: f32,
) -> Result<Tensor> {
    let dims = check_decode(q, k_cache, v_cache, len)?;
    if q.elem_count() == 0 {
        return Tensor::zeros(q.shape(), q.dtype(), q.device());
    }
    if !fast_path(&[q, k_cache, v_cache], dims.d) {
        return decode_attention_reference(q, k_cache, v_cache, len, scale);
    }
    apply(
        &DecodeAttention { dims, len, scale },
        &[q, k_cache, v_cache],
    )
}

/// Whether the fused kernels take these inputs: one float dtype and device, and on CUDA a
/// head dimension the kernels are instantiated for.
fn fast_path(ts: &[&Tensor], d: usize) -> bool {
    same_float_dtype(ts) && (ts[0].device().is_cpu() || CUDA_HEAD_DIMS.contains(&d))
}

/// Runs `f(item, chunk)` over the `width`-element chunks of `out`, in parallel when `work`
/// (multiply-adds in all) is large enough.
fn par_chunks<T: Send>(
    out: &mut [T],
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if width == 0 {
        return;
    }
    if work < CPU_PARALLEL_MIN_WORK {
        out.chunks_mut(width).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        out.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// `Σ a[i]·b[i]` with eight independent partial sums (vectorisable).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a·x`.
#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Widens `src` into `dst` (same length).
#[inline]
fn widen<T: Elem>(dst: &mut [f32], src: &[T]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Online-softmax state of one query row: running maximum, running sum, accumulator.
struct RowState<'a> {
    m: f32,
    l: f32,
    acc: &'a mut [f32],
}

impl RowState<'_> {
    /// Folds in the scores `s` (already scaled, all valid) of keys whose values are the rows
    /// of `vals` (`s.len()` rows of `acc.len()` elements).
    fn update(&mut self, s: &[f32], vals: &[f32]) {
        let tile_max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let m_new = self.m.max(tile_max);
        if m_new == f32::NEG_INFINITY {
            return; // every score is −∞: no weight.
        }
        let alpha = (self.m - m_new).exp(); // 0 on the first tile (m = −∞).
        if alpha != 1.0 {
            self.acc.iter_mut().for_each(|a| *a *= alpha);
        }
        let d = self.acc.len();
        let mut sum = 0f32;
        for (j, &sj) in s.iter().enumerate() {
            let p = (sj - m_new).exp();
            sum += p;
            axpy(self.acc, p, &vals[j * d..(j + 1) * d]);
        }
        self.l = self.l * alpha + sum;
        self.m = m_new;
    }

    /// `acc / l`, or zeros when no key had weight.
    fn finish<T: Elem>(&self, out: &mut [T]) {
        let inv = if self.l > 0.0 { 1.0 / self.l } else { 0.0 };
        for (o, a) in out.iter_mut().zip(self.acc.iter()) {
            *o = T::from_f32(a * inv);
        }
    }
}

/// One tile of `ends.len()` query rows against its keys, the CPU paths' shared body:
/// `qf` holds the rows (`d` each, already scaled) and is overwritten by their outputs; key and
/// value `j` are the `d` elements at `j·kv_stride` of `k` and `v` (in place: `kv_stride` is `d`
/// for a `[T, D]` head, the packed row width for a `[T, (Hq + 2·Hk)·D]` qkv matrix); row `r`
/// attends to the first `ends[r]` keys. `s` is the score scratch (`rows × max(ends)`).
fn attend_tile(
    qf: &mut [f32],
    d: usize,
    k: &[f32],
    v: &[f32],
    kv_stride: usize,
    ends: &[usize],
    s: &mut Vec<f32>,
) {
    let rows = ends.len();
    let kend = ends.iter().copied().max().unwrap_or(0);
    if kend == 0 {
        qf[..rows * d].iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    s.clear();
    s.resize(rows * kend, 0.0);
    // Scores of this query tile against every key it may see: S = q·kᵀ.
    cpu::sgemm(rows, kend, d, qf, d, 1, k, 1, kv_stride, s);
    for (r, row) in s.chunks_mut(kend).enumerate() {
        row[ends[r]..]
            .iter_mut()
            .for_each(|x| *x = f32::NEG_INFINITY);
        vmath::softmax_row(row);
    }
    // O = P·v, reusing the query buffer.
    cpu::sgemm(rows, d, kend, s, kend, 1, v, kv_stride, 1, qf);
}

/// The prefill op (inputs q, k, v).
struct FlashAttention {
    dims: Dims,
    scale: f32,
    causal: bool,
    key_lengths: Option<Vec<u32>>,
}

impl FlashAttention {
    /// Valid keys of batch `b` (all when no lengths were given).
    fn key_len(&self, b: usize) -> usize {
        self.key_lengths
            .as_ref()
            .and_then(|l| l.get(b))
            .map_or(self.dims.tk, |&n| (n as usize).min(self.dims.tk))
    }

    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let Dims {
            b,
            hq,
            hk,
            tq,
            tk,
            d,
        } = self.dims;
        let q = cpu::slice::<T>(ins[0].0, ins[0].1, "q")?;
        let k = cpu::slice::<T>(ins[1].0, ins[1].1, "k")?;
        let v = cpu::slice::<T>(ins[2].0, ins[2].1, "v")?;
        if q.len() != b * hq * tq * d || k.len() != b * hk * tk * d || v.len() != k.len() {
            bail!("flash_attention: storage sizes do not match the shapes");
        }
        let group = self.dims.group();
        let mut out = vec![T::from_f32(0.0); q.len()];
        // One work item per (batch, head, query tile): `CPU_BLOCK_Q` rows of the output, the
        // last tile of a head shorter. Chunk the output per head, then per tile.
        let work = b * hq * tq * tk * d;
        let tile_fn = |bh: usize, tile: usize, o: &mut [T]| {
            let (bi, h) = (bh / hq, bh % hq);
            let q0 = tile * CPU_BLOCK_Q;
            let rows = o.len() / d;
            let key_len = self.key_len(bi);
            let ends: Vec<usize> = (0..rows)
                .map(|r| row_end(q0 + r, tq, tk, self.causal, key_len))
                .collect();
            let kend = ends.iter().copied().max().unwrap_or(0);
            if kend == 0 {
                o.iter_mut().for_each(|x| *x = T::from_f32(0.0));
                return;
            }
            let qbase = (bh * tq + q0) * d;
            let mut qf: Vec<f32> = q[qbase..qbase + rows * d]
                .iter()
                .map(|x| x.to_f32() * self.scale)
                .collect();
            let kbase = (bi * hk + h / group) * tk * d;
            let (mut kb, mut vb) = (Vec::new(), Vec::new());
            let kf = cpu::as_f32(&k[kbase..kbase + kend * d], &mut kb);
            let vf = cpu::as_f32(&v[kbase..kbase + kend * d], &mut vb);
            let mut s = Vec::new();
            attend_tile(&mut qf, d, kf, vf, d, &ends, &mut s);
            for (o, x) in o.iter_mut().zip(&qf) {
                *o = T::from_f32(*x);
            }
        };
        par_chunks(&mut out, tq * d, work, |bh, head| {
            if work < CPU_PARALLEL_MIN_WORK {
                head.chunks_mut(CPU_BLOCK_Q * d)
                    .enumerate()
                    .for_each(|(t, o)| tile_fn(bh, t, o));
            } else {
                head.par_chunks_mut(CPU_BLOCK_Q * d)
                    .enumerate()
                    .for_each(|(t, o)| tile_fn(bh, t, o));
            }
        });
        Ok((cpu::storage(out), Shape::from((b, hq, tq, d))))
    }
}

fused_op!(FlashAttention, "flash-attention", input = 0, cpu = cpu_t);

/// The decode op (inputs q, k cache, v cache).
struct DecodeAttention {
    dims: Dims,
    len: usize,
    scale: f32,
}

impl DecodeAttention {
    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let Dims {
            b, hq, hk, tk, d, ..
        } = self.dims;
        let len = self.len;
        let q = cpu::slice::<T>(ins[0].0, ins[0].1, "q")?;
        let k = cpu::slice::<T>(ins[1].0, ins[1].1, "k_cache")?;
        let v = cpu::slice::<T>(ins[2].0, ins[2].1, "v_cache")?;
        if q.len() != b * hq * d || k.len() != b * hk * tk * d || v.len() != k.len() {
            bail!("decode_attention: storage sizes do not match the shapes");
        }
        let group = self.dims.group();
        let mut out = vec![T::from_f32(0.0); q.len()];
        par_chunks(&mut out, d, b * hq * len * d, |bh, o| {
            let (bi, h) = (bh / hq, bh % hq);
            let qf: Vec<f32> = q[bh * d..(bh + 1) * d]
                .iter()
                .map(|x| x.to_f32() * self.scale)
                .collect();
            // The cache rows of this head: `T_max` rows of `d`, the first `len` read.
            let base = (bi * hk + h / group) * tk * d;
            let mut acc = vec![0f32; d];
            let mut st = RowState {
                m: f32::NEG_INFINITY,
                l: 0.0,
                acc: &mut acc,
            };
            let mut kf = vec![0f32; CPU_BLOCK_K * d];
            let mut vf = vec![0f32; CPU_BLOCK_K * d];
            let mut s = [0f32; CPU_BLOCK_K];
            for k0 in (0..len).step_by(CPU_BLOCK_K) {
                let kn = CPU_BLOCK_K.min(len - k0);
                let span = base + k0 * d..base + (k0 + kn) * d;
                widen(&mut kf[..kn * d], &k[span.clone()]);
                widen(&mut vf[..kn * d], &v[span]);
                for (j, sj) in s[..kn].iter_mut().enumerate() {
                    *sj = dot(&qf, &kf[j * d..(j + 1) * d]);
                }
                st.update(&s[..kn], &vf[..kn * d]);
            }
            st.finish(o);
        });
        Ok((cpu::storage(out), Shape::from((b, hq, 1, d))))
    }
}

fused_op!(DecodeAttention, "decode-attention", input = 0, cpu = cpu_t);

/// Queries per block of the CUDA prefill kernel for head dimension `d` (mirrors
/// `FlashTile<D>::BQ` in `kernels/cuda/attention.cu`; the kernel traps on a mismatch).
#[cfg(feature = "cuda")]
fn flash_block_q(d: usize) -> usize {
    if d <= 96 {
        64
    } else {
        32
    }
}

/// Threads per block of the CUDA prefill kernel (`FLASH_THREADS`).
#[cfg(feature = "cuda")]
const FLASH_THREADS: u32 = 128;
/// Threads per block of the CUDA decode kernel (`DEC_THREADS`).
#[cfg(feature = "cuda")]
const DECODE_THREADS: u32 = 256;
/// The decode grid aims at this many blocks (about two per SM of an H100) by splitting the keys.
#[cfg(feature = "cuda")]
const DECODE_TARGET_BLOCKS: usize = 264;
/// Fewest keys per decode split.
#[cfg(feature = "cuda")]
const DECODE_MIN_CHUNK: usize = 128;

/// Parameters of `flash_attn_fwd_*` (C layout of `tl_attn::FlashParams`): strides in elements
/// for batch, head and row of q, k, v and the output (the last dimension is contiguous).
#[cfg(feature = "cuda")]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct FlashParams {
    q_b: i64,
    q_h: i64,
    q_t: i64,
    k_b: i64,
    k_h: i64,
    k_t: i64,
    v_b: i64,
    v_h: i64,
    v_t: i64,
    o_b: i64,
    o_h: i64,
    o_t: i64,
    batch: i32,
    hq: i32,
    hk: i32,
    tq: i32,
    tk: i32,
    causal: i32,
    scale_log2: f32,
    pad: i32,
}

/// Parameters of `decode_attn_*` and `decode_combine_*` (C layout of `tl_attn::DecodeParams`).
#[cfg(feature = "cuda")]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct DecodeParams {
    q_b: i64,
    q_h: i64,
    k_b: i64,
    k_h: i64,
    k_t: i64,
    v_b: i64,
    v_h: i64,
    v_t: i64,
    o_b: i64,
    o_h: i64,
    batch: i32,
    hq: i32,
    hk: i32,
    len: i32,
    splits: i32,
    chunk: i32,
    head_dim: i32,
    scale_log2: f32,
}

#[cfg(feature = "cuda")]
const _: () = assert!(std::mem::size_of::<FlashParams>() == 128);
#[cfg(feature = "cuda")]
const _: () = assert!(std::mem::size_of::<DecodeParams>() == 112);

// SAFETY: plain `#[repr(C)]` data (integers and a float, no pointers, no padding) with the
// layout of the kernel's struct; the sizes are asserted here and by `static_assert` in the .cu.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for FlashParams {}
// SAFETY: as for `FlashParams`.
#[cfg(feature = "cuda")]
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for DecodeParams {}

/// `(batch, head, row)` strides of a rank-4 layout whose last dimension is contiguous.
#[cfg(feature = "cuda")]
fn strides(l: &Layout, what: &str) -> Result<[i64; 3]> {
    let s = l.stride();
    let dims = l.dims();
    if s.len() != 4 || (s[3] != 1 && dims[3] > 1) {
        bail!("{what}: the last dimension must be contiguous (strides {s:?})");
    }
    Ok([s[0] as i64, s[1] as i64, s[2] as i64])
}

/// `x` as an `i32` kernel argument.
#[cfg(feature = "cuda")]
fn int(x: usize, what: &str) -> Result<i32> {
    i32::try_from(x).map_err(|_| candle_core::Error::Msg(format!("{what} {x} exceeds i32")))
}

#[cfg(feature = "cuda")]
type CudaOut = (candle_core::CudaStorage, Shape);

#[cfg(feature = "cuda")]
impl FlashAttention {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<CudaOut> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

        let Dims {
            b,
            hq,
            hk,
            tq,
            tk,
            d,
        } = self.dims;
        let (qs, ql) = ins[0];
        let dev = &qs.device;
        let q = cuda::view::<T>(qs, ql, "q")?;
        let k = cuda::view::<T>(ins[1].0, ins[1].1, "k")?;
        let v = cuda::view::<T>(ins[2].0, ins[2].1, "v")?;
        if q.len() != b * hq * tq * d || k.len() != b * hk * tk * d || v.len() != k.len() {
            bail!("flash_attention: storage sizes do not match the shapes");
        }
        if !CUDA_HEAD_DIMS.contains(&d) {
            bail!("flash_attention: no CUDA kernel for head_dim {d}");
        }
        let [q_b, q_h, q_t] = strides(ql, "q")?;
        let [k_b, k_h, k_t] = strides(ins[1].1, "k")?;
        let [v_b, v_h, v_t] = strides(ins[2].1, "v")?;
        let n = q.len();
        let blocks = b * hq * tq.div_ceil(flash_block_q(d));
        let grid = u32::try_from(blocks)
            .ok()
            .filter(|&g| g <= i32::MAX as u32)
            .ok_or_else(|| candle_core::Error::Msg(format!("flash_attention: {blocks} blocks")))?;
        let params = FlashParams {
            q_b,
            q_h,
            q_t,
            k_b,
            k_h,
            k_t,
            v_b,
            v_h,
            v_t,
            o_b: (hq * tq * d) as i64,
            o_h: (tq * d) as i64,
            o_t: d as i64,
            batch: int(b, "batch")?,
            hq: int(hq, "heads")?,
            hk: int(hk, "kv heads")?,
            tq: int(tq, "queries")?,
            tk: int(tk, "keys")?,
            causal: i32::from(self.causal),
            scale_log2: self.scale * std::f32::consts::LOG2_E,
            pad: 0,
        };
        let lens = match &self.key_lengths {
            Some(l) => {
                let l: Vec<i32> = l
                    .iter()
                    .map(|&x| i32::try_from(x).unwrap_or(i32::MAX))
                    .collect();
                Some(dev.clone_htod(&l)?)
            }
            None => None,
        };
        let mut out = cuda::alloc::<T>(dev, n)?;
        let func = cuda::function(
            dev,
            "attention",
            crate::ptx::ATTENTION,
            &format!("flash_attn_fwd_d{d}"),
            T::DTYPE,
        )?;
        let null = 0u64;
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&q);
        builder.arg(&k);
        builder.arg(&v);
        builder.arg(&mut out);
        match &lens {
            Some(l) => builder.arg(l),
            None => builder.arg(&null),
        };
        builder.arg(&params);
        let cfg = LaunchConfig {
            grid_dim: (grid, 1, 1),
            block_dim: (FLASH_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block of FLASH_THREADS per (batch, head, tile of flash_block_q(d)
        // queries), the grid and block size the kernel checks (it traps otherwise). A block
        // reads rows < Tq of its q head, rows < min(Tk, row bound) of its k/v head, through the
        // strides of the contiguous layouts checked above (sizes B·Hq·Tq·D and B·Hk·Tk·D), reads
        // `key_lengths[b]` (B entries) when given, and writes rows < Tq of its output head
        // (`out` holds B·Hq·Tq·D elements). Shared memory is static (≤ 48 KiB).
        cuda::launch(&mut builder, cfg)?;
        drop(builder);
        drop(lens);
        Ok((cuda::storage(out, dev), Shape::from((b, hq, tq, d))))
    }
}

#[cfg(feature = "cuda")]
impl DecodeAttention {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<CudaOut> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

        let Dims {
            b, hq, hk, tk, d, ..
        } = self.dims;
        let len = self.len;
        let (qs, ql) = ins[0];
        let dev = &qs.device;
        let q = cuda::view::<T>(qs, ql, "q")?;
        let k = cuda::view::<T>(ins[1].0, ins[1].1, "k_cache")?;
        let v = cuda::view::<T>(ins[2].0, ins[2].1, "v_cache")?;
        if q.len() != b * hq * d || k.len() != b * hk * tk * d || v.len() != k.len() {
            bail!("decode_attention: storage sizes do not match the shapes");
        }
        if !CUDA_HEAD_DIMS.contains(&d) || len == 0 || len > tk {
            bail!("decode_attention: head_dim {d} / len {len} not supported by the CUDA kernel");
        }
        let [q_b, q_h, _] = strides(ql, "q")?;
        let [k_b, k_h, k_t] = strides(ins[1].1, "k_cache")?;
        let [v_b, v_h, v_t] = strides(ins[2].1, "v_cache")?;
        let bh = b * hq;
        let splits = DECODE_TARGET_BLOCKS
            .div_ceil(bh)
            .min(len.div_ceil(DECODE_MIN_CHUNK))
            .max(1);
        let chunk = len.div_ceil(splits);
        let splits = len.div_ceil(chunk);
        let blocks = u32::try_from(bh * splits)
            .ok()
            .filter(|&g| g <= i32::MAX as u32)
            .ok_or_else(|| candle_core::Error::Msg(format!("decode_attention: {bh} heads")))?;
        let params = DecodeParams {
            q_b,
            q_h,
            k_b,
            k_h,
            k_t,
            v_b,
            v_h,
            v_t,
            o_b: (hq * d) as i64,
            o_h: d as i64,
            batch: int(b, "batch")?,
            hq: int(hq, "heads")?,
            hk: int(hk, "kv heads")?,
            len: int(len, "len")?,
            splits: int(splits, "splits")?,
            chunk: int(chunk, "chunk")?,
            head_dim: int(d, "head_dim")?,
            scale_log2: self.scale * std::f32::consts::LOG2_E,
        };
        let mut out = cuda::alloc::<T>(dev, bh * d)?;
        let mut part = if splits > 1 {
            Some(cuda::alloc::<f32>(dev, bh * splits * (d + 2))?)
        } else {
            None
        };
        let func = cuda::function(
            dev,
            "attention",
            crate::ptx::ATTENTION,
            &format!("decode_attn_d{d}"),
            T::DTYPE,
        )?;
        let null = 0u64;
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&q);
        builder.arg(&k);
        builder.arg(&v);
        builder.arg(&mut out);
        match part.as_mut() {
            Some(p) => builder.arg(p),
            None => builder.arg(&null),
        };
        builder.arg(&params);
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (DECODE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block of DECODE_THREADS per (batch, head, split), the grid the kernel
        // checks (it traps otherwise). A block reads the D elements of its q row and rows
        // [split·chunk, min(len, (split+1)·chunk)) ⊂ [0, len) ⊂ [0, T_max) of its cache head
        // through the strides of the contiguous cache layouts (B·Hk·T_max·D elements each, checked
        // above). With one split it writes the D elements of its output row (`out` holds
        // B·Hq·D); otherwise D + 2 floats at `part[block·(D + 2)]` (`part` holds
        // B·Hq·splits·(D + 2)) and never touches `out`.
        cuda::launch(&mut builder, cfg)?;
        drop(builder);
        if let Some(part) = &part {
            let combine = cuda::function(
                dev,
                "attention",
                crate::ptx::ATTENTION,
                "decode_combine",
                T::DTYPE,
            )?;
            let mut builder = stream.launch_builder(&combine);
            builder.arg(part);
            builder.arg(&mut out);
            builder.arg(&params);
            let cfg = LaunchConfig {
                grid_dim: (int(bh, "heads")? as u32, 1, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: one block per (batch, head), the grid the kernel checks; it reads the
            // `splits` partial rows of D + 2 floats the first launch wrote for that (batch,
            // head) (`part` holds B·Hq·splits·(D + 2)) and writes the D elements of its output
            // row (`out` holds B·Hq·D), so every output element is written.
            cuda::launch(&mut builder, cfg)?;
        }
        drop(part);
        Ok((cuda::storage(out, dev), Shape::from((b, hq, 1, d))))
    }
}
