//! BERT's input embeddings in one pass: for each token,
//! `LayerNorm(word[input_id] + token_type[token_type_id] + position[offset + t])`, the sum and
//! the normalisation in f32.
//!
//! Mirrors `transformers.models.bert.modeling_bert.BertEmbeddings.forward` with absolute
//! position embeddings (`position_ids = arange(cache_length, cache_length + seq_length)`;
//! missing `token_type_ids` = zeros; dropout is the identity at inference).
//! Every id is checked on the host against its table before anything is launched.

use candle_core::{bail, CpuStorage, DType, Device, Layout, Result, Shape, Tensor, D};

use crate::cpu;
use crate::op::{apply, fused_op, FusedOp};
use crate::Elem;

/// Widest hidden size the CUDA kernel keeps in shared memory (f32, 32 KiB); wider rows use the
/// reference.
pub const CUDA_MAX_HIDDEN: usize = 8192;

/// The embedding tables and LayerNorm parameters of a BERT model, prepared once at load: the
/// three tables packed into one `[vocab + positions + token_types, H]` tensor (word rows first,
/// then position rows, then token-type rows) and LayerNorm weight and bias into one `[2, H]`.
#[derive(Debug, Clone)]
pub struct BertEmbeddingTables {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    weight: Tensor,
    bias: Tensor,
    packed: Tensor,
    ln: Tensor,
    eps: f64,
}

impl BertEmbeddingTables {
    /// Packs `word [V, H]`, `position [P, H]`, `token_type [Tt, H]` and the LayerNorm
    /// `weight`/`bias` `[H]` (all one float dtype, on one device) with LayerNorm's `eps`.
    pub fn new(
        word: &Tensor,
        position: &Tensor,
        token_type: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        eps: f64,
    ) -> Result<Self> {
        let named = [
            ("word", word),
            ("position", position),
            ("token_type", token_type),
        ];
        let hidden = word.dims().last().copied().unwrap_or(0);
        for (name, t) in named {
            if t.rank() != 2 || t.dim(1)? != hidden || t.dim(0)? == 0 {
                bail!(
                    "bert embeddings: the {name} table must be a non-empty [rows, {hidden}], got {:?}",
                    t.dims()
                );
            }
        }
        for (name, t) in [("weight", weight), ("bias", bias)] {
            if t.dims() != [hidden] {
                bail!(
                    "bert embeddings: LayerNorm {name} must be [{hidden}], got {:?}",
                    t.dims()
                );
            }
        }
        let dtype = word.dtype();
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            bail!("bert embeddings: tables must be f32, f16 or bf16, got {dtype:?}");
        }
        for (name, t) in named
            .into_iter()
            .chain([("LayerNorm weight", weight), ("LayerNorm bias", bias)])
        {
            if t.dtype() != dtype || !t.device().same_device(word.device()) {
                bail!(
                    "bert embeddings: {name} is {:?} on {:?}, the word table {dtype:?} on {:?}",
                    t.dtype(),
                    t.device().location(),
                    word.device().location()
                );
            }
        }
        let packed = Tensor::cat(&[word, position, token_type], 0)?.contiguous()?;
        let ln = Tensor::stack(&[weight, bias], 0)?.contiguous()?;
        Ok(BertEmbeddingTables {
            word: word.clone(),
            position: position.clone(),
            token_type: token_type.clone(),
            weight: weight.clone(),
            bias: bias.clone(),
            packed,
            ln,
            eps,
        })
    }

    /// Hidden size `H`.
    pub fn hidden(&self) -> usize {
        self.word.dims()[1]
    }

    /// Vocabulary size `V` (rows of the word table).
    pub fn vocab_size(&self) -> usize {
        self.word.dims()[0]
    }

    /// Number of positions `P` (rows of the position table).
    pub fn max_positions(&self) -> usize {
        self.position.dims()[0]
    }

    /// Number of token types `Tt` (rows of the token-type table).
    pub fn type_vocab_size(&self) -> usize {
        self.token_type.dims()[0]
    }

    /// LayerNorm's epsilon.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The dtype of the tables and of the output.
    pub fn dtype(&self) -> DType {
        self.word.dtype()
    }

    /// The word table `[V, H]`, as given.
    pub fn word(&self) -> &Tensor {
        &self.word
    }

    /// The position table `[P, H]`, as given.
    pub fn position(&self) -> &Tensor {
        &self.position
    }

    /// The token-type table `[Tt, H]`, as given.
    pub fn token_type(&self) -> &Tensor {
        &self.token_type
    }

    /// LayerNorm weight `[H]`, as given.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// LayerNorm bias `[H]`, as given.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

/// Ids copied to the host and checked against the tables.
struct HostIds {
    b: usize,
    t: usize,
    ids: Vec<u32>,
    types: Vec<u32>,
}

/// One id tensor as i64 values on the host (u32, i64 and u8 accepted).
fn host_values(ids: &Tensor, what: &str) -> Result<Vec<i64>> {
    match ids.dtype() {
        DType::U32 | DType::I64 | DType::U8 => ids
            .to_device(&Device::Cpu)?
            .to_dtype(DType::I64)?
            .flatten_all()?
            .to_vec1::<i64>(),
        other => bail!("bert embeddings: {what} must be u32, i64 or u8, got {other:?}"),
    }
}

/// Checks that positions `offset..offset + t` are in the table.
fn check_positions(offset: usize, t: usize, tables: &BertEmbeddingTables) -> Result<()> {
    let positions = tables.max_positions();
    if offset.checked_add(t).is_none_or(|end| end > positions) {
        bail!(
            "bert embeddings: positions {offset}..{offset}+{t} go past the {positions} position embeddings"
        );
    }
    Ok(())
}

/// Copies the ids to the host and checks each against its table, naming the first bad one.
fn host_ids(
    input_ids: &Tensor,
    token_type_ids: Option<&Tensor>,
    tables: &BertEmbeddingTables,
) -> Result<HostIds> {
    let (b, t) = input_ids.dims2().map_err(|_| {
        candle_core::Error::Msg(format!(
            "bert embeddings: input_ids must be [batch, seq], got {:?}",
            input_ids.dims()
        ))
    })?;
    if let Some(tt) = token_type_ids {
        if tt.dims() != input_ids.dims() {
            bail!(
                "bert embeddings: token_type_ids {:?} must match input_ids {:?}",
                tt.dims(),
                input_ids.dims()
            );
        }
    }
    let check = |values: Vec<i64>, limit: usize, what: &str| -> Result<Vec<u32>> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| match u32::try_from(v) {
                Ok(u) if (u as usize) < limit => Ok(u),
                _ => bail!(
                    "bert embeddings: {what} {v} at [{}, {}] is outside the table of {limit} rows",
                    i / t.max(1),
                    i % t.max(1)
                ),
            })
            .collect()
    };
    let ids = check(
        host_values(input_ids, "input_ids")?,
        tables.vocab_size(),
        "input id",
    )?;
    let types = match token_type_ids {
        Some(tt) => check(
            host_values(tt, "token_type_ids")?,
            tables.type_vocab_size(),
            "token type id",
        )?,
        None => vec![0; b * t],
    };
    Ok(HostIds { b, t, ids, types })
}

/// Reference: `index_select` gathers, the adds and LayerNorm as plain candle ops in f32, cast
/// to the tables' dtype.
pub fn bert_embeddings_reference(
    input_ids: &Tensor,
    token_type_ids: Option<&Tensor>,
    position_offset: usize,
    tables: &BertEmbeddingTables,
) -> Result<Tensor> {
    let h = host_ids(input_ids, token_type_ids, tables)?;
    check_positions(position_offset, h.t, tables)?;
    let (b, t) = (h.b, h.t);
    let positions = (0..b * t)
        .map(|r| (position_offset + r % t.max(1)) as u32)
        .collect();
    reference_rows(h, positions, tables)?.reshape((b, t, tables.hidden()))
}

/// The reference's body on checked ids: row `r` sums `word[ids[r]]`, `token_type[types[r]]`
/// and `position[positions[r]]`, then LayerNorm; `[rows, H]`.
fn reference_rows(h: HostIds, positions: Vec<u32>, tables: &BertEmbeddingTables) -> Result<Tensor> {
    let dev = tables.word.device();
    let n = h.b * h.t;
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let gather = |table: &Tensor, ids: Vec<u32>| -> Result<Tensor> {
        f(&table.index_select(&Tensor::from_vec(ids, n, dev)?, 0)?)
    };
    let words = gather(&tables.word, h.ids)?;
    let types = gather(&tables.token_type, h.types)?;
    let positions = gather(&tables.position, positions)?;
    let s = ((words + types)? + positions)?;
    let mean = s.mean_keepdim(D::Minus1)?;
    let c = s.broadcast_sub(&mean)?;
    let var = c.sqr()?.mean_keepdim(D::Minus1)?;
    let y = c
        .broadcast_div(&(var + tables.eps)?.sqrt()?)?
        .broadcast_mul(&f(&tables.weight)?)?
        .broadcast_add(&f(&tables.bias)?)?;
    y.to_dtype(tables.dtype())
}

/// Fused BERT embeddings: `input_ids` `[B, T]` (u32, i64 or u8, on any device),
/// `token_type_ids` likewise (`None`: all zeros), positions
/// `position_offset..position_offset + T`; returns `[B, T, H]` in the tables' dtype on their
/// device. Every id is checked on the host first; a bad one is an error naming it and its
/// `[batch, position]`.
pub fn bert_embeddings(
    input_ids: &Tensor,
    token_type_ids: Option<&Tensor>,
    position_offset: usize,
    tables: &BertEmbeddingTables,
) -> Result<Tensor> {
    let hidden = tables.hidden();
    let dev = tables.packed.device();
    let fits_cuda = dev.is_cpu()
        || (hidden <= CUDA_MAX_HIDDEN
            && input_ids.elem_count() <= i32::MAX as usize
            && tables.packed.dim(0)? <= i32::MAX as usize);
    if input_ids.elem_count() == 0 || !fits_cuda {
        return bert_embeddings_reference(input_ids, token_type_ids, position_offset, tables);
    }
    let h = host_ids(input_ids, token_type_ids, tables)?;
    check_positions(position_offset, h.t, tables)?;
    let HostIds { b, t, ids, types } = h;
    let mut packed_ids = ids;
    packed_ids.extend_from_slice(&types);
    let ids2 = Tensor::from_vec(packed_ids, (2, b, t), dev)?;
    let op = BertEmbeddings {
        b,
        t,
        hidden,
        vocab: tables.vocab_size(),
        positions: tables.max_positions(),
        types: tables.type_vocab_size(),
        offset: position_offset,
        eps: tables.eps as f32,
        packed_positions: None,
    };
    apply(&op, &[&ids2, &tables.packed, &tables.ln])
}

/// The table position of every row of a packed batch: sequence `i` (rows
/// `cu_seqlens[i]..cu_seqlens[i + 1]`) takes `position_offset..position_offset + Lᵢ`.
fn packed_positions(
    n: usize,
    cu_seqlens: &[u32],
    position_offset: usize,
    tables: &BertEmbeddingTables,
) -> Result<Vec<u32>> {
    let ordered = cu_seqlens.windows(2).all(|p| p[0] <= p[1]);
    if cu_seqlens.first() != Some(&0)
        || cu_seqlens.last().map(|&c| c as usize) != Some(n)
        || !ordered
    {
        bail!("bert embeddings: cu_seqlens must rise from 0 to the {n} tokens, got {cu_seqlens:?}");
    }
    let longest = cu_seqlens.windows(2).map(|p| (p[1] - p[0]) as usize).max();
    check_positions(position_offset, longest.unwrap_or(0), tables)?;
    let mut pos = Vec::with_capacity(n);
    for p in cu_seqlens.windows(2) {
        pos.extend((0..p[1] - p[0]).map(|t| (position_offset + t as usize) as u32));
    }
    Ok(pos)
}

/// `input_ids` `[N]` as the `[1, N]` the id checks take (token types likewise).
fn packed_host_ids(
    input_ids: &Tensor,
    token_type_ids: Option<&Tensor>,
    tables: &BertEmbeddingTables,
) -> Result<HostIds> {
    let n = input_ids.dims1().map_err(|_| {
        candle_core::Error::Msg(format!(
            "bert embeddings: packed input_ids must be [tokens], got {:?}",
            input_ids.dims()
        ))
    })?;
    let types = match token_type_ids {
        Some(tt) if tt.dims() != input_ids.dims() => bail!(
            "bert embeddings: token_type_ids {:?} must match input_ids {:?}",
            tt.dims(),
            input_ids.dims()
        ),
        Some(tt) => Some(tt.reshape((1, n))?),
        None => None,
    };
    host_ids(&input_ids.reshape((1, n))?, types.as_ref(), tables)
}

/// Reference for [`bert_embeddings_packed`]: the gathers, adds and LayerNorm as plain candle
/// ops in f32.
pub fn bert_embeddings_packed_reference(
    input_ids: &Tensor,
    token_type_ids: Option<&Tensor>,
    cu_seqlens: &[u32],
    position_offset: usize,
    tables: &BertEmbeddingTables,
) -> Result<Tensor> {
    let h = packed_host_ids(input_ids, token_type_ids, tables)?;
    let positions = packed_positions(h.t, cu_seqlens, position_offset, tables)?;
    reference_rows(h, positions, tables)
}

/// Fused BERT embeddings of a packed batch (no padding): `input_ids` `[N]` holds the
/// sequences back to back, sequence `i` in rows `cu_seqlens[i]..cu_seqlens[i + 1]`, each with
/// its own positions `position_offset..position_offset + Lᵢ`; `token_type_ids` `[N]` likewise
/// (`None`: zeros). Returns `[N, H]`. The CPU kernel is [`bert_embeddings`]' with a position
/// per row; CUDA uses the reference composition (its kernel derives positions from `[B, T]`).
pub fn bert_embeddings_packed(
    input_ids: &Tensor,
    token_type_ids: Option<&Tensor>,
    cu_seqlens: &[u32],
    position_offset: usize,
    tables: &BertEmbeddingTables,
) -> Result<Tensor> {
    let dev = tables.packed.device();
    if input_ids.elem_count() == 0 || !dev.is_cpu() {
        return bert_embeddings_packed_reference(
            input_ids,
            token_type_ids,
            cu_seqlens,
            position_offset,
            tables,
        );
    }
    let HostIds {
        t: n, ids, types, ..
    } = packed_host_ids(input_ids, token_type_ids, tables)?;
    let positions = packed_positions(n, cu_seqlens, position_offset, tables)?;
    let mut packed_ids = ids;
    packed_ids.extend_from_slice(&types);
    let ids2 = Tensor::from_vec(packed_ids, (2, 1, n), dev)?;
    let op = BertEmbeddings {
        b: 1,
        t: n,
        hidden: tables.hidden(),
        vocab: tables.vocab_size(),
        positions: tables.max_positions(),
        types: tables.type_vocab_size(),
        offset: 0,
        eps: tables.eps as f32,
        packed_positions: Some(positions),
    };
    apply(&op, &[&ids2, &tables.packed, &tables.ln])?.reshape((n, tables.hidden()))
}

struct BertEmbeddings {
    b: usize,
    t: usize,
    hidden: usize,
    vocab: usize,
    positions: usize,
    types: usize,
    offset: usize,
    eps: f32,
    /// The table position of each row (a packed batch); `None`: `offset + r % t`.
    packed_positions: Option<Vec<u32>>,
}

impl BertEmbeddings {
    fn out_shape(&self) -> Shape {
        Shape::from((self.b, self.t, self.hidden))
    }

    /// Number of packed table rows.
    fn table_rows(&self) -> usize {
        self.vocab + self.positions + self.types
    }

    fn cpu_t<T: Elem>(&self, ins: &[(&CpuStorage, &Layout)]) -> Result<(CpuStorage, Shape)> {
        let ids2 = match ins[0].1.contiguous_offsets() {
            Some((a, z)) => &ins[0].0.as_slice::<u32>()?[a..z],
            None => bail!("{}: ids must be contiguous", Self::NAME),
        };
        let table = cpu::slice::<T>(ins[1].0, ins[1].1, "tables")?;
        let ln = cpu::slice::<T>(ins[2].0, ins[2].1, "LayerNorm parameters")?;
        let (n, h) = (self.b * self.t, self.hidden);
        if ids2.len() != 2 * n || table.len() != self.table_rows() * h || ln.len() != 2 * h {
            bail!("{}: inputs do not match the checked shapes", Self::NAME);
        }
        let (ids, types) = ids2.split_at(n);
        // Checked on the host already; checked again so no index below can go out of bounds.
        let bad_id = ids.iter().any(|&i| i as usize >= self.vocab);
        let bad_type = types.iter().any(|&i| i as usize >= self.types);
        let bad_pos = match &self.packed_positions {
            Some(p) => p.len() != n || p.iter().any(|&x| x as usize >= self.positions),
            None => self.offset + self.t > self.positions,
        };
        if bad_id || bad_type || bad_pos {
            bail!("{}: an id is outside its table", Self::NAME);
        }
        let (w, bias) = ln.split_at(h);
        let pos_base = self.vocab;
        let type_base = self.vocab + self.positions;
        let (t, offset, eps) = (self.t, self.offset, self.eps);
        let mut out = vec![T::from_f32(0.0); n * h];
        cpu::rows_mut(&mut out, h, |r, y| {
            let word = &table[ids[r] as usize * h..][..h];
            let tt = &table[(type_base + types[r] as usize) * h..][..h];
            let p = match &self.packed_positions {
                Some(p) => p[r] as usize,
                None => offset + r % t,
            };
            let pos = &table[(pos_base + p) * h..][..h];
            let s: Vec<f32> = (0..h)
                .map(|j| word[j].to_f32() + tt[j].to_f32() + pos[j].to_f32())
                .collect();
            let inv = 1.0 / h as f32;
            let mean = s.iter().sum::<f32>() * inv;
            let var = s.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() * inv;
            let rstd = 1.0 / (var + eps).sqrt();
            for (j, yj) in y.iter_mut().enumerate() {
                *yj = T::from_f32((s[j] - mean) * rstd * w[j].to_f32() + bias[j].to_f32());
            }
        });
        Ok((cpu::storage(out), self.out_shape()))
    }
}

fused_op!(BertEmbeddings, "bert-embeddings", input = 1, cpu = cpu_t);

#[cfg(feature = "cuda")]
impl BertEmbeddings {
    fn cuda_t<T: crate::cuda::CudaElem>(
        &self,
        ins: &[(&candle_core::CudaStorage, &Layout)],
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use crate::cuda;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};

        let dev = &ins[1].0.device;
        let ids2 = cuda::view::<u32>(ins[0].0, ins[0].1, "ids")?;
        let table = cuda::view::<T>(ins[1].0, ins[1].1, "tables")?;
        let ln = cuda::view::<T>(ins[2].0, ins[2].1, "LayerNorm parameters")?;
        let (n, h) = (self.b * self.t, self.hidden);
        if ids2.len() != 2 * n
            || table.len() != self.table_rows() * h
            || ln.len() != 2 * h
            || h > CUDA_MAX_HIDDEN
            || n > i32::MAX as usize
            || self.offset + self.t > self.positions
            || self.packed_positions.is_some()
        {
            bail!("{}: inputs do not match the checked shapes", Self::NAME);
        }
        let out = cuda::alloc::<T>(dev, n * h)?;
        let func = cuda::function(
            dev,
            "embeddings",
            crate::ptx::EMBEDDINGS,
            "bert_embeddings",
            T::DTYPE,
        )?;
        let ints = [
            n as i32,
            self.t as i32,
            h as i32,
            self.vocab as i32,
            self.positions as i32,
            self.types as i32,
            self.offset as i32,
        ];
        let stream = dev.cuda_stream();
        let mut builder = stream.launch_builder(&func);
        builder.arg(&ids2);
        builder.arg(&table);
        builder.arg(&ln);
        builder.arg(&out);
        for v in &ints {
            builder.arg(v);
        }
        builder.arg(&self.eps);
        // One thread per 16-byte vector of the row when the row splits into them.
        let per_thread = 16 / std::mem::size_of::<T>();
        let units = if h % per_thread == 0 {
            h / per_thread
        } else {
            h
        };
        let threads = 256u32.min((units as u32).div_ceil(32) * 32).max(32);
        let cfg = LaunchConfig {
            grid_dim: (n as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: (h * 4) as u32,
        };
        // SAFETY: one block per token r < n reads ids2[r] and ids2[n + r] (2·n u32 allocated),
        // the three `h`-element table rows they select inside the packed
        // `(vocab + positions + types) · h` table (every id was checked against its table on
        // the host, and a row whose ids the kernel finds out of range is written as NaN
        // without reading the tables), the `2·h` LayerNorm
        // parameters, and writes row r of `out` (`n · h` elements); shared memory is `h`
        // floats, at most 32 KiB.
        cuda::launch(&mut builder, cfg)?;
        drop(builder);
        Ok((cuda::storage(out, dev), self.out_shape()))
    }
}
