//! Rotary position embeddings applied to the queries and the keys of an attention layer in one
//! pass: each pair `(x0, x1)` of a head row at position `p` becomes
//! `(x0·cos - x1·sin, x0·sin + x1·cos)` with `cos`/`sin` of `p · inv_freq[i]`.
//!
//! Mirrors Hugging Face's `apply_rotary_pos_emb` / `rotate_half`
//! (`transformers/models/llama/modeling_llama.py`, pairs `(i, i + D/2)`) and, for the
//! interleaved layout, Meta's original Llama `apply_rotary_emb` / GPT-J (pairs `(2i, 2i+1)`,
//! `candle_nn::rotary_emb::rope_i`). The table follows HF's default `LlamaRotaryEmbedding`:
//! `inv_freq = 1 / theta^(2i/D)`, angles and `cos`/`sin` in f32.

use candle_core::{bail, CpuStorage, DType, Device, Layout, Result, Shape, Tensor, D};

use crate::cpu;
use crate::op::{apply, fused_op, FusedOp};
use crate::Elem;

/// How the head dimension is split into rotated pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs `(i, i + D/2)`: Hugging Face's `rotate_half` (Llama, Mistral, Qwen, GPT-NeoX).
    HalfSplit,
    /// Pairs `(2i, 2i + 1)`: GPT-J, Meta's original Llama, `candle_nn::rotary_emb::rope_i`.
    Interleaved,
}

/// The `cos`/`sin` table of every position, built once at load.
///
/// Keeps the tensors it was given (for the reference and for unfused callers) and a packed
/// copy: `[max_positions, D]` in f32, row `p` holding `cos[p, ..]` then `sin[p, ..]`, so the
/// fused op reads one row per position and takes three inputs (q, k, table). The f32 copy is
/// exact for a table given in f16/bf16, so the fused op rotates by the same values.
#[derive(Debug, Clone)]
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
    packed: Tensor,
}

impl RopeTable {
    /// A table from `cos` and `sin`, both `[max_positions, D/2]` (f32 or the model dtype).
    pub fn new(cos: &Tensor, sin: &Tensor) -> Result<Self> {
        if cos.rank() != 2 || cos.dims() != sin.dims() {
            bail!(
                "rope table: cos and sin must both be [max_positions, head_dim/2], got {:?} and {:?}",
                cos.dims(),
                sin.dims()
            );
        }
        if cos.dtype() != sin.dtype() || !cos.device().same_device(sin.device()) {
            bail!(
                "rope table: cos ({:?}) and sin ({:?}) must share a dtype and a device",
                cos.dtype(),
                sin.dtype()
            );
        }
        if !matches!(cos.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            bail!(
                "rope table: cos/sin must be f32, f16 or bf16, got {:?}",
                cos.dtype()
            );
        }
        let packed = Tensor::cat(&[cos, sin], 1)?
            .to_dtype(DType::F32)?
            .contiguous()?;
        Ok(RopeTable {
            cos: cos.clone(),
            sin: sin.clone(),
            packed,
        })
    }

    /// HF's default rope table: `inv_freq[i] = 1 / theta^(2i / head_dim)`, angles
    /// `position · inv_freq` and their `cos`/`sin` in f32, then cast to `dtype`.
    pub fn from_theta(
        head_dim: usize,
        max_positions: usize,
        theta: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            bail!("rope table: head_dim must be even and non-zero, got {head_dim}");
        }
        let half = head_dim / 2;
        // HF: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)).
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &Device::Cpu)?;
        let Ok(end) = u32::try_from(max_positions) else {
            bail!("rope table: {max_positions} positions do not fit in u32");
        };
        let positions = Tensor::arange(0u32, end, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?;
        let freqs = positions.broadcast_mul(&inv_freq)?;
        let cos = freqs.cos()?.to_dtype(dtype)?.to_device(device)?;
        let sin = freqs.sin()?.to_dtype(dtype)?.to_device(device)?;
        Self::new(&cos, &sin)
    }

    /// `cos`, `[max_positions, D/2]`, as given.
    pub fn cos(&self) -> &Tensor {
        &self.cos
    }

    /// `sin`, `[max_positions, D/2]`, as given.
    pub fn sin(&self) -> &Tensor {
        &self.sin
    }

    /// Number of positions the table covers.
    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// The head dimension `D` the table is for.
    pub fn head_dim(&self) -> usize {
        2 * self.cos.dims()[1]
    }
}

/// The checked geometry of one call.
struct Dims {
    b: usize,
    hq: usize,
    hk: usize,
    t: usize,
    d: usize,
}

fn check(q: &Tensor, k: &Tensor, table: &RopeTable, offset: usize) -> Result<Dims> {
    let (b, hq, t, d) = q.dims4().map_err(|_| {
        candle_core::Error::Msg(format!("rope: q must be [B, H, T, D], got {:?}", q.dims()))
    })?;
    let (bk, hk, tk, dk) = k.dims4().map_err(|_| {
        candle_core::Error::Msg(format!("rope: k must be [B, H, T, D], got {:?}", k.dims()))
    })?;
    if (b, t, d) != (bk, tk, dk) {
        bail!(
            "rope: q {:?} and k {:?} must share batch, sequence length and head_dim",
            q.dims(),
            k.dims()
        );
    }
    if d % 2 != 0 {
        bail!("rope: head_dim must be even to form rotation pairs, got {d}");
    }
    if d != table.head_dim() {
        bail!(
            "rope: head_dim {d} but the table is for head_dim {}",
            table.head_dim()
        );
    }
    let end = offset.checked_add(t);
    if end.is_none_or(|e| e > table.max_positions()) {
        bail!(
            "rope: positions {offset}..{offset}+{t} go past the table's {} positions",
            table.max_positions()
        );
    }
    Ok(Dims { b, hq, hk, t, d })
}

/// Reference: plain candle ops in f32 (HF's `x·cos + rotate_half(x)·sin` with `cos`/`sin`
/// duplicated to `D` for [`RopeLayout::HalfSplit`]; the pairwise formula for
/// [`RopeLayout::Interleaved`]), results cast back to each input's dtype.
pub fn rope_qk_reference(
    q: &Tensor,
    k: &Tensor,
    table: &RopeTable,
    position_offset: usize,
    layout: RopeLayout,
) -> Result<(Tensor, Tensor)> {
    let dims = check(q, k, table, position_offset)?;
    let cos = table
        .cos
        .narrow(0, position_offset, dims.t)?
        .to_dtype(DType::F32)?;
    let sin = table
        .sin
        .narrow(0, position_offset, dims.t)?
        .to_dtype(DType::F32)?;
    let one = |x: &Tensor| -> Result<Tensor> {
        let xf = x.to_dtype(DType::F32)?;
        let y = match layout {
            RopeLayout::HalfSplit => {
                let cos = Tensor::cat(&[&cos, &cos], D::Minus1)?;
                let sin = Tensor::cat(&[&sin, &sin], D::Minus1)?;
                let half = dims.d / 2;
                let x1 = xf.narrow(D::Minus1, 0, half)?;
                let x2 = xf.narrow(D::Minus1, half, half)?;
                let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
                (xf.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?
            }
            RopeLayout::Interleaved => {
                let (b, h, t, d) = xf.dims4()?;
                let pairs = xf.reshape((b, h, t, d / 2, 2))?;
                let x0 = pairs.narrow(D::Minus1, 0, 1)?;
                let x1 = pairs.narrow(D::Minus1, 1, 1)?;
                let c = cos.reshape((t, d / 2, 1))?;
                let s = sin.reshape((t, d / 2, 1))?;
                let y0 = (x0.broadcast_mul(&c)? - x1.broadcast_mul(&s)?)?;
                let y1 = (x0.broadcast_mul(&s)? + x1.broadcast_mul(&c)?)?;
                Tensor::cat(&[&y0, &y1], D::Minus1)?.reshape((b, h, t, d))?
            }
        };
        y.to_dtype(x.dtype())
    };
    Ok((one(q)?, one(k)?))
}

/// Fused rotary embedding of `q` `[B, Hq, T, D]` and `k` `[B, Hk, T, D]` (`Hk` may differ
/// from `Hq`: grouped-query attention) at positions `position_offset..position_offset + T`,
/// in one launch. Returns the rotated `(q, k)` in their dtype; both are views (`narrow`) of
/// one `[B, Hq + Hk, T, D]` output (see [`rope_qk_packed`]). Non-contiguous inputs are made
/// contiguous first; inputs the fast path does not cover (different dtypes or devices) use the
/// reference.
pub fn rope_qk(
    q: &Tensor,
    k: &Tensor,
    table: &RopeTable,
    position_offset: usize,
    layout: RopeLayout,
) -> Result<(Tensor, Tensor)> {
    match fast_op(q, k, table, position_offset, layout)? {
        Some(op) => {
            let out = apply(&op, &[q, k, &table.packed])?;
            Ok((out.narrow(1, 0, op.hq)?, out.narrow(1, op.hq, op.hk)?))
        }
        None => rope_qk_reference(q, k, table, position_offset, layout),
    }
}

/// [`rope_qk`] without the split: the rotated heads of q then those of k, `[B, Hq + Hk, T, D]`
/// (what the op writes; for callers that consume q and k together). q and k must share a dtype.
pub fn rope_qk_packed(
    q: &Tensor,
    k: &Tensor,
    table: &RopeTable,
    position_offset: usize,
    layout: RopeLayout,
) -> Result<Tensor> {
    if q.dtype() != k.dtype() {
        bail!(
            "rope: q ({:?}) and k ({:?}) of different dtypes cannot be packed into one tensor",
            q.dtype(),
            k.dtype()
        );
    }
    match fast_op(q, k, table, position_offset, layout)? {
        Some(op) => apply(&op, &[q, k, &table.packed]),
        None => {
            let (q, k) = rope_qk_reference(q, k, table, position_offset, layout)?;
            Tensor::cat(&[&q, &k], 1)
        }
    }
}

/// The op for a checked call, or `None` when the fast path does not cover it.
fn fast_op(
    q: &Tensor,
    k: &Tensor,
    table: &RopeTable,
    offset: usize,
    layout: RopeLayout,
) -> Result<Option<RopeQk>> {
    let dims = check(q, k, table, offset)?;
    let fast = matches!(q.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && q.dtype() == k.dtype()
        && q.device().same_device(k.device())
        && q.device().same_device(table.packed.device())
        && q.elem_count() + k.elem_count() > 0
        && fits_cuda(q.device(), &dims, offset);
    Ok(fast.then_some(RopeQk {
        hq: dims.hq,
        hk: dims.hk,
        t: dims.t,
        d: dims.d,
        offset,
        layout,
    }))
}

/// Whether the CUDA kernel's 32-bit sizes and grid cover the call (always true on the CPU).
fn fits_cuda(dev: &Device, d: &Dims, offset: usize) -> bool {
    if dev.is_cpu() {
        return true;
    }
    let small = |v: usize| v <= i32::MAX as usize;
    let rows = d.b * (d.hq + d.hk) * d.t;
    // At most one thread per pair: the grid has at most rows·D/2 threads in blocks of 256.
    let blocks = (rows * (d.d / 2)).div_ceil(256);
    small(d.hq + d.hk) && small(d.t) && small(d.d) && small(offset + d.t) && small(blocks)
}

struct RopeQk {
    hq: usize,
    hk: usize,
    t: usize,
    d: usize,
    offset: usize,
    layout: RopeLayout,
}

impl RopeQk {
    fn out_shape(&self, b: usize) -> Shape {
        Shape::from((b, self.hq + self.hk, self.t, self.d))
    }

    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let q = cpu::slice::<T>(ins[0].0, ins[0].1, "q")?;
        let k = cpu::slice::<T>(ins[1].0, ins[1].1, "k")?;
        let table = cpu::slice::<f32>(ins[2].0, ins[2].1, "rope table")?;
        let (hq, hk, t, d) = (self.hq, self.hk, self.t, self.d);
        let b = ins[0].1.dims()[0];
        let heads = hq + hk;
        if q.len() != b * hq * t * d
            || k.len() != b * hk * t * d
            || table.len() < (self.offset + t) * d
        {
            bail!("{}: inputs do not match the checked shapes", Self::NAME);
        }
        let half = d / 2;
        let layout = self.layout;
        let offset = self.offset;
        let mut out = vec![T::from_f32(0.0); b * heads * t * d];
        cpu::rows_mut(&mut out, d, |row, y| {
            let ti = row % t;
            let bh = row / t;
            let (bi, h) = (bh / heads, bh % heads);
            let src = if h < hq {
                let s = ((bi * hq + h) * t + ti) * d;
                &q[s..s + d]
            } else {
                let s = ((bi * hk + (h - hq)) * t + ti) * d;
                &k[s..s + d]
            };
            let cs = &table[(offset + ti) * d..(offset + ti + 1) * d];
            let (cos, sin) = cs.split_at(half);
            match layout {
                RopeLayout::HalfSplit => {
                    let (y0, y1) = y.split_at_mut(half);
                    for i in 0..half {
                        let (x0, x1) = (src[i].to_f32(), src[i + half].to_f32());
                        y0[i] = T::from_f32(x0 * cos[i] - x1 * sin[i]);
                        y1[i] = T::from_f32(x1 * cos[i] + x0 * sin[i]);
                    }
                }
                RopeLayout::Interleaved => {
                    for (i, (yp, xp)) in y.chunks_exact_mut(2).zip(src.chunks_exact(2)).enumerate()
                    {
                        let (x0, x1) = (xp[0].to_f32(), xp[1].to_f32());
                        yp[0] = T::from_f32(x0 * cos[i] - x1 * sin[i]);
                        yp[1] = T::from_f32(x0 * sin[i] + x1 * cos[i]);
                    }
                }
            }
        });
        Ok((cpu::storage(out), self.out_shape(b)))
    }
}

fused_op!(RopeQk, "rope-qk", input = 0, cpu = cpu_t);

#[cfg(feature = "cuda")]
impl RopeQk {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

        let dev = &ins[0].0.device;
        let q = cuda::view::<T>(ins[0].0, ins[0].1, "q")?;
        let k = cuda::view::<T>(ins[1].0, ins[1].1, "k")?;
        let table = cuda::view::<f32>(ins[2].0, ins[2].1, "rope table")?;
        let (hq, hk, t, d) = (self.hq, self.hk, self.t, self.d);
        let b = ins[0].1.dims()[0];
        let rows = b * (hq + hk) * t;
        if q.len() != b * hq * t * d
            || k.len() != b * hk * t * d
            || table.len() < (self.offset + t) * d
        {
            bail!("{}: inputs do not match the checked shapes", Self::NAME);
        }
        let half = d / 2;
        // Elements one thread moves as a 16-byte vector, when every row splits evenly
        // (the kernel also checks pointer alignment and otherwise loops over them one by one).
        let n = 16 / std::mem::size_of::<T>();
        let vec = match self.layout {
            RopeLayout::HalfSplit => half % n == 0,
            RopeLayout::Interleaved => d % n == 0,
        };
        // Elements of a half row (HalfSplit) or of a row (Interleaved) per thread.
        let width = match (vec, self.layout) {
            (true, _) => n,
            (false, RopeLayout::HalfSplit) => 1,
            (false, RopeLayout::Interleaved) => 2,
        };
        let chunks = match self.layout {
            RopeLayout::HalfSplit => half / width,
            RopeLayout::Interleaved => d / width,
        };
        let threads_total = rows * chunks;
        let block = 256usize;
        let blocks = threads_total.div_ceil(block);
        if blocks > i32::MAX as usize {
            bail!("{}: grid of {blocks} blocks is too large", Self::NAME);
        }
        let out = cuda::alloc::<T>(dev, rows * d)?;
        let root = match self.layout {
            RopeLayout::HalfSplit => "rope_qk_half",
            RopeLayout::Interleaved => "rope_qk_interleaved",
        };
        let func = cuda::function(dev, "rope", crate::ptx::ROPE, root, T::DTYPE)?;
        let (hq_i, hk_i, t_i, d_i) = (hq as i32, hk as i32, t as i32, d as i32);
        let offset_i = self.offset as i32;
        let vec_i = i32::from(vec);
        let rows_i = rows as i64;
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&q);
        builder.arg(&k);
        builder.arg(&table);
        builder.arg(&out);
        builder.arg(&hq_i);
        builder.arg(&hk_i);
        builder.arg(&t_i);
        builder.arg(&d_i);
        builder.arg(&offset_i);
        builder.arg(&vec_i);
        builder.arg(&rows_i);
        let cfg = LaunchConfig {
            grid_dim: (blocks.max(1) as u32, 1, 1),
            block_dim: (block as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the kernel runs `rows · chunks` threads (extra threads of the last block
        // return); thread (row, chunk) reads `width` elements (and their partners) of one
        // `d`-element row of q (`b·hq·t·d` elements) or k (`b·hk·t·d`, both checked above),
        // `d` floats of table row `offset + t' < offset + t` (table length checked above), and
        // writes the same elements of row `row` of `out` (`rows · d` elements allocated).
        // `rope_qk` checked that every size fits the kernel's i32 arguments.
        cuda::launch(&mut builder, cfg)?;
        drop(builder);
        Ok((cuda::storage(out, dev), self.out_shape(b)))
    }
}
