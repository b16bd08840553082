//! f32 matrix multiplication on the CPU with the right-hand operand packed once, at load, in the
//! micro-kernels' layout: `C[M,N] = act(A[M,K] · B[K,N] + bias + residual)`.
//!
//! Generic BLAS packs both operands on every call; a model's weights never change, so
//! [`PackedB`] lays a weight out once in `KC`-deep blocks of `NR`-wide panels (zero-padded to a
//! whole panel) and every product only packs its activations (`A`, `MR`-row panels per `KC`
//! block, into a per-thread buffer). The loops, after BLIS:
//!
//! ```text
//! tiles (mc rows × nc cols of C) in parallel, no barrier between them
//!   for each KC block of K:           pack A[rows, block] (MR-row panels)
//!     for each MR panel of the tile:  the A micro-panel stays in L1
//!       for each NR panel:            micro-kernel: C tile (=|+=) A panel · B panel
//!   epilogue over the tile: + bias (per column or per row) + residual, then the activation
//! ```
//!
//! The tile shape is chosen from `M`, `N` and the thread count ([`plan`]): a thin product (a
//! decode step, a short prompt) splits `N` over the threads, a tall one `M`. The micro-kernels
//! (AVX-512 12×32, AVX2+FMA 6×16, portable 4×16) are in [`ukernel`]; which one runs is decided by
//! [`crate::isa::isa`] when a weight is packed (the panel width depends on it), so
//! `TORCHLESS_CPU=avx2` forces the AVX2 path on an AVX-512 CPU.
//!
//! The `A` side is a trait ([`PackA`]) so an operand never materialised as a matrix (the patches
//! of a convolution: implicit GEMM) is packed straight from its source.

pub mod conv;
mod ukernel;

use std::cell::RefCell;

use candle_core::{bail, DType, Device, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

use crate::activation::Activation;
use crate::isa::{isa, Isa};
use crate::vmath::multiversion;
use half::{bf16, f16};
use ukernel::{mr, nr, BKind, Tile};

/// Depth of a `K` block: an `A` micro-panel of `KC × 12` f32 (12 KiB) stays in L1 while the
/// `B` panels stream from L2.
const KC: usize = 256;
/// Rows of a tile at most (a multiple of every `MR`).
const MC: usize = 96;
/// Columns of a tile at most (a multiple of every `NR`): a `KC × NC` block of `B` (512 KiB)
/// stays in L2.
const NC: usize = 512;
/// Rows of a tile at most when the right operand is packed per call (a multiple of every
/// `MR`): the whole output-channel count of a convolution.
const MC_PACKED_A: usize = 2304;
/// Products below this many multiply-adds run on the calling thread.
const PARALLEL_MIN: usize = 1 << 17;

/// A `[K, N]` matrix (a transposed `nn.Linear` weight) packed for the micro-kernels of one
/// [`Isa`], its elements f32, bf16 or f16 (half-precision weights stay half precision in
/// memory, widened to f32 in registers).
#[derive(Clone)]
pub struct PackedB {
    k: usize,
    n: usize,
    isa: Isa,
    /// `K` blocks of `KC` rows, each `npad` wide as `npad / NR` panels of `kc × NR`.
    data: Panels,
}

/// The packed elements.
#[derive(Clone)]
enum Panels {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedB")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("isa", &self.isa)
            .field("dtype", &self.dtype())
            .finish()
    }
}

/// `w` (`(i, j)` at `w[i * rs + j * cs]`, `k × n`) as `KC`-deep blocks of `nr`-wide panels,
/// zero-padded to whole panels.
fn pack_panels<T: Copy + Default + Send + Sync>(
    w: &[T],
    k: usize,
    n: usize,
    (rs, cs): (usize, usize),
    nr: usize,
) -> Result<Vec<T>> {
    if k > 0 && n > 0 && (k - 1) * rs + (n - 1) * cs >= w.len() {
        bail!(
            "gemm: a {k}x{n} matrix with strides ({rs}, {cs}) does not fit in {} elements",
            w.len()
        );
    }
    let npad = n.div_ceil(nr) * nr;
    let mut data = vec![T::default(); k * npad];
    let fill = |k0: usize, block: &mut [T]| {
        let kc = block.len() / npad.max(1);
        for (p, panel) in block.chunks_mut(kc * nr).enumerate() {
            let j0 = p * nr;
            let cols = nr.min(n - j0);
            for (i, dst) in panel.chunks_mut(nr).enumerate() {
                let row = (k0 + i) * rs;
                if cs == 1 {
                    dst[..cols].copy_from_slice(&w[row + j0..row + j0 + cols]);
                } else {
                    for (j, d) in dst[..cols].iter_mut().enumerate() {
                        *d = w[row + (j0 + j) * cs];
                    }
                }
            }
        }
    };
    if npad > 0 {
        if k * n >= PARALLEL_MIN {
            data.par_chunks_mut(KC * npad)
                .enumerate()
                .for_each(|(b, block)| fill(b * KC, block));
        } else {
            data.chunks_mut(KC * npad)
                .enumerate()
                .for_each(|(b, block)| fill(b * KC, block));
        }
    }
    Ok(data)
}

impl PackedB {
    /// Packs `w` with element `(i, j)` (`i < k`, `j < n`) at `w[i * rs + j * cs]` for the
    /// process's kernel family ([`isa`]).
    pub fn pack(w: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Result<Self> {
        Self::pack_for(isa(), w, k, n, rs, cs)
    }

    /// [`PackedB::pack`] for the family `isa` (tests and benches compare families; it must be
    /// available on this CPU to multiply).
    pub fn pack_for(isa: Isa, w: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Result<Self> {
        let data = Panels::F32(pack_panels(w, k, n, (rs, cs), nr(isa))?);
        Ok(PackedB { k, n, isa, data })
    }

    /// Packs a 2-d `[K, N]` CPU tensor (any strides) for the process's kernel family: f32, bf16
    /// and f16 keep their dtype, other dtypes are converted to f32.
    pub fn from_tensor(w: &Tensor) -> Result<Self> {
        Self::from_tensor_for(isa(), w)
    }

    /// [`PackedB::from_tensor`] for the family `isa`.
    pub fn from_tensor_for(isa: Isa, w: &Tensor) -> Result<Self> {
        let (k, n) = w.dims2()?;
        let w = match w.dtype() {
            DType::F32 | DType::BF16 | DType::F16 => w.to_device(&Device::Cpu)?,
            _ => w.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
        };
        let (storage, layout) = w.storage_and_layout();
        let Storage::Cpu(cs) = &*storage else {
            bail!("gemm: weights are not on the CPU");
        };
        let st = layout.stride();
        let (off, strides, nr) = (layout.start_offset(), (st[0], st[1]), nr(isa));
        let data = match w.dtype() {
            DType::BF16 => Panels::Bf16(pack_panels(
                &cs.as_slice::<bf16>()?[off..],
                k,
                n,
                strides,
                nr,
            )?),
            DType::F16 => Panels::F16(pack_panels(
                &cs.as_slice::<f16>()?[off..],
                k,
                n,
                strides,
                nr,
            )?),
            _ => Panels::F32(pack_panels(
                &cs.as_slice::<f32>()?[off..],
                k,
                n,
                strides,
                nr,
            )?),
        };
        Ok(PackedB { k, n, isa, data })
    }

    /// Rows (`K`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (`N`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// The kernel family it is packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The stored element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            Panels::F32(_) => DType::F32,
            Panels::Bf16(_) => DType::BF16,
            Panels::F16(_) => DType::F16,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match &self.data {
            Panels::F32(v) => v.len() * 4,
            Panels::Bf16(v) => v.len() * 2,
            Panels::F16(v) => v.len() * 2,
        }
    }

    /// The panels from element `offset` on, as the micro-kernel reads them.
    fn panels_at(&self, offset: usize) -> (*const u8, BKind) {
        match &self.data {
            Panels::F32(v) => (v[offset..].as_ptr().cast(), BKind::F32),
            Panels::Bf16(v) => (v[offset..].as_ptr().cast(), BKind::Bf16),
            Panels::F16(v) => (v[offset..].as_ptr().cast(), BKind::F16),
        }
    }

    /// Element `i` of the packed storage as f32.
    fn get(&self, i: usize) -> f32 {
        match &self.data {
            Panels::F32(v) => v[i],
            Panels::Bf16(v) => v[i].to_f32(),
            Panels::F16(v) => v[i].to_f32(),
        }
    }

    /// The matrix back as `[K, N]` row-major f32 (exact: f32 holds every bf16 and f16).
    pub fn unpack(&self) -> Vec<f32> {
        let nr = nr(self.isa);
        let npad = self.n.div_ceil(nr) * nr;
        let mut out = vec![0f32; self.k * self.n];
        for k0 in (0..self.k).step_by(KC) {
            let kc = KC.min(self.k - k0);
            for j in 0..self.n {
                let panel = k0 * npad + (j / nr) * kc * nr;
                for i in 0..kc {
                    out[(k0 + i) * self.n + j] = self.get(panel + i * nr + j % nr);
                }
            }
        }
        out
    }

    /// The matrix back as a `[K, N]` CPU tensor of its stored dtype.
    pub fn to_tensor(&self) -> Result<Tensor> {
        Tensor::from_vec(self.unpack(), (self.k, self.n), &Device::Cpu)?.to_dtype(self.dtype())
    }
}

/// The left operand of a product, packed block by block as the driver asks.
pub trait PackA: Sync {
    /// Rows (`M`).
    fn rows(&self) -> usize;
    /// Columns (`K`).
    fn depth(&self) -> usize;
    /// Writes rows `r0..r0 + m` × columns `k0..k0 + kc` into `dst` as `⌈m / mr⌉` panels of
    /// `kc × mr` (step-major: the `mr` values of column `k0 + i` at `panel + i * mr`), rows past
    /// `m` in the last panel zero.
    fn pack_a(&self, r0: usize, m: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]);
}

/// A strided f32 matrix as the left operand.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// Element `(i, j)` at `data[i * rs + j * cs]`; checked to fit.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Result<Self> {
        if rows > 0 && cols > 0 && (rows - 1) * rs + (cols - 1) * cs >= data.len() {
            bail!(
                "gemm: a {rows}x{cols} operand with strides ({rs}, {cs}) does not fit in {} \
                 elements",
                data.len()
            );
        }
        Ok(MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }
}

impl PackA for MatRef<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn depth(&self) -> usize {
        self.cols
    }

    fn pack_a(&self, r0: usize, m: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        for (p, panel) in dst.chunks_mut(kc * mr).take(m.div_ceil(mr)).enumerate() {
            for r in 0..mr {
                let i = p * mr + r;
                if i >= m {
                    for step in 0..kc {
                        panel[step * mr + r] = 0.0;
                    }
                    continue;
                }
                let base = (r0 + i) * self.rs + k0 * self.cs;
                if self.cs == 1 {
                    for (step, v) in self.data[base..base + kc].iter().enumerate() {
                        panel[step * mr + r] = *v;
                    }
                } else {
                    for step in 0..kc {
                        panel[step * mr + r] = self.data[base + step * self.cs];
                    }
                }
            }
        }
    }
}

impl PackB for MatRef<'_> {
    fn depth(&self) -> usize {
        self.rows
    }

    fn cols(&self) -> usize {
        self.cols
    }

    fn pack_b(&self, k0: usize, kc: usize, c0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
        for (p, panel) in dst.chunks_mut(kc * nr).take(cols.div_ceil(nr)).enumerate() {
            let j0 = c0 + p * nr;
            let w = nr.min(c0 + cols - j0);
            for (step, d) in panel.chunks_mut(nr).take(kc).enumerate() {
                let base = (k0 + step) * self.rs + j0 * self.cs;
                if self.cs == 1 {
                    d[..w].copy_from_slice(&self.data[base..base + w]);
                } else {
                    for (j, v) in d[..w].iter_mut().enumerate() {
                        *v = self.data[base + j * self.cs];
                    }
                }
                d[w..].fill(0.0);
            }
        }
    }
}

/// The right operand of a product when it is not a prepacked weight (a convolution's input
/// patches), packed block by block as the driver asks.
pub trait PackB: Sync {
    /// Rows (`K`).
    fn depth(&self) -> usize;
    /// Columns (`N`).
    fn cols(&self) -> usize;
    /// Writes rows `k0..k0 + kc` × columns `c0..c0 + cols` into `dst` as `⌈cols / nr⌉` panels
    /// of `kc × nr` (step-major: the `nr` values of row `k0 + i` at `panel + i * nr`), columns
    /// past `cols` in the last panel zero.
    fn pack_b(&self, k0: usize, kc: usize, c0: usize, cols: usize, nr: usize, dst: &mut [f32]);
}

/// An `[M, K]` f32 matrix (a convolution's filters, rows the output channels) packed once as
/// the left operand: `K` blocks of `KC`, each `⌈M / MR⌉` panels of `kc × MR`.
#[derive(Clone)]
pub struct PackedA {
    m: usize,
    k: usize,
    isa: Isa,
    data: Vec<f32>,
}

impl std::fmt::Debug for PackedA {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedA")
            .field("m", &self.m)
            .field("k", &self.k)
            .field("isa", &self.isa)
            .finish()
    }
}

impl PackedA {
    /// Packs `w` with element `(i, j)` (`i < m`, `j < k`) at `w[i * rs + j * cs]` for the
    /// process's kernel family.
    pub fn pack(w: &[f32], m: usize, k: usize, rs: usize, cs: usize) -> Result<Self> {
        Self::pack_for(isa(), w, m, k, rs, cs)
    }

    /// [`PackedA::pack`] for the family `isa`.
    pub fn pack_for(isa: Isa, w: &[f32], m: usize, k: usize, rs: usize, cs: usize) -> Result<Self> {
        let src = MatRef::new(w, m, k, rs, cs)?;
        let mr = mr(isa);
        let mpad = m.div_ceil(mr) * mr;
        let mut data = vec![0f32; k * mpad];
        if mpad > 0 {
            for (b, block) in data.chunks_mut(KC * mpad).enumerate() {
                let kc = block.len() / mpad;
                src.pack_a(0, m, b * KC, kc, mr, block);
            }
        }
        Ok(PackedA { m, k, isa, data })
    }

    /// Packs a 2-d `[M, K]` tensor (any strides, any float dtype: converted to f32).
    pub fn from_tensor(w: &Tensor) -> Result<Self> {
        Self::from_tensor_for(isa(), w)
    }

    /// [`PackedA::from_tensor`] for the family `isa`.
    pub fn from_tensor_for(isa: Isa, w: &Tensor) -> Result<Self> {
        let (m, k) = w.dims2()?;
        let w = w.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        cpu_f32(&w, "weights", |all, layout| {
            let stride = layout.stride();
            Self::pack_for(
                isa,
                &all[layout.start_offset()..],
                m,
                k,
                stride[0],
                stride[1],
            )
        })
    }

    /// Rows (`M`).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns (`K`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// The kernel family it is packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

/// What is applied to each element of `C` after the product: `act(acc + bias + residual)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    /// Added per column (`N` values: an `nn.Linear` bias).
    pub bias: Option<&'a [f32]>,
    /// Added per row (`M` values: a convolution's bias when rows are output channels).
    pub row_bias: Option<&'a [f32]>,
    /// Added element-wise: `M × N` laid out as `C` (same row stride).
    pub residual: Option<&'a [f32]>,
    /// Applied last.
    pub act: Option<Activation>,
}

/// `C[r, j]` at `c[r * ldc + j]`, shared by the tiles (each writes its own rectangle).
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: the tiles handed to the threads are disjoint rectangles of `C`, so no element is
// written by two threads; the pointer outlives the parallel loop (it borrows `c` mutably).
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// The element `i` past the start.
    ///
    /// # Safety
    /// `i` must be inside `C`.
    unsafe fn at(self, i: usize) -> *mut f32 {
        // SAFETY: the caller keeps `i` inside `C`.
        unsafe { self.0.add(i) }
    }
}

thread_local! {
    static A_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Tile shape `(mc, nc)` for an `m × n × k` product on `threads` threads: at most
/// `mc_max × NC`, halved along the longer side (in panels) until there are a few tiles per
/// thread, then evened out so tiles are about equal.
fn plan(m: usize, n: usize, k: usize, isa: Isa, threads: usize, mc_max: usize) -> (usize, usize) {
    let (mr, nr) = (mr(isa), nr(isa));
    let mut mc = mc_max.min(m.div_ceil(mr) * mr).max(mr);
    let mut nc = NC.min(n.div_ceil(nr) * nr).max(nr);
    let want = if m * n * k < PARALLEL_MIN || threads <= 1 {
        1
    } else {
        3 * threads
    };
    while m.div_ceil(mc) * n.div_ceil(nc) < want {
        let (pm, pn) = (mc / mr, nc / nr);
        if pn >= pm && pn > 1 {
            nc = pn.div_ceil(2) * nr;
        } else if pm > 1 {
            mc = pm.div_ceil(2) * mr;
        } else {
            break;
        }
    }
    let even = |len: usize, tile: usize, unit: usize| {
        let parts = len.div_ceil(tile).max(1);
        len.div_ceil(parts).div_ceil(unit) * unit
    };
    (even(m, mc, mr), even(n, nc, nr))
}

/// `c[M, N]` (row stride `ldc`) `= act(a · b + bias + residual)`, `b` a prepacked weight.
pub fn gemm(a: &impl PackA, b: &PackedB, c: &mut [f32], ldc: usize, epi: &Epilogue) -> Result<()> {
    if a.depth() != b.k {
        bail!("gemm: A has {} columns, B {} rows", a.depth(), b.k);
    }
    drive(
        b.isa,
        (a.rows(), b.n, b.k),
        Lhs::Pack(a),
        Rhs::Packed(b),
        (c, ldc),
        epi,
    )
}

/// `c[M, N]` (row stride `ldc`) `= act(a · b + bias + residual)`, `a` prepacked (a
/// convolution's filters) and `b` packed as it is read (the input's patches).
pub fn gemm_packed_a(
    a: &PackedA,
    b: &dyn PackB,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
) -> Result<()> {
    if b.depth() != a.k {
        bail!("gemm: A has {} columns, B {} rows", a.k, b.depth());
    }
    drive(
        a.isa,
        (a.m, b.cols(), a.k),
        Lhs::Packed(a),
        Rhs::Pack(b),
        (c, ldc),
        epi,
    )
}

/// Where the left operand's panels come from.
enum Lhs<'a> {
    Packed(&'a PackedA),
    Pack(&'a dyn PackA),
}

/// Where the right operand's panels come from.
enum Rhs<'a> {
    Packed(&'a PackedB),
    Pack(&'a dyn PackB),
}

thread_local! {
    static B_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn drive(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    lhs: Lhs,
    rhs: Rhs,
    (c, ldc): (&mut [f32], usize),
    epi: &Epilogue,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    if ldc < n || c.len() < (m - 1) * ldc + n {
        bail!(
            "gemm: C of {} elements (row stride {ldc}) for {m}x{n}",
            c.len()
        );
    }
    if let Some(bias) = epi.bias {
        if bias.len() != n {
            bail!("gemm: bias of {} for {n} columns", bias.len());
        }
    }
    if let Some(bias) = epi.row_bias {
        if bias.len() != m {
            bail!("gemm: row bias of {} for {m} rows", bias.len());
        }
    }
    if let Some(res) = epi.residual {
        if res.len() < (m - 1) * ldc + n {
            bail!("gemm: residual of {} elements for {m}x{n}", res.len());
        }
    }
    if !isa.available() {
        bail!(
            "gemm: weights packed for {} on a CPU without it",
            isa.name()
        );
    }
    let (mr, nr) = (mr(isa), nr(isa));
    let (mpad, npad) = (m.div_ceil(mr) * mr, n.div_ceil(nr) * nr);
    // A right operand packed per call is packed once per tile: tiles then span many rows so
    // each packed block serves them all.
    let mc_max = match rhs {
        Rhs::Packed(_) => MC,
        Rhs::Pack(_) => MC_PACKED_A,
    };
    let (mc, nc) = plan(m, n, k, isa, rayon::current_num_threads(), mc_max);
    let (tm, tn) = (m.div_ceil(mc), n.div_ceil(nc));
    let out = Out(c.as_mut_ptr());
    let tile = |t: usize| {
        let (r0, c0) = ((t / tn) * mc, (t % tn) * nc);
        let (rows, cols) = (mc.min(m - r0), nc.min(n - c0));
        A_BUF.with_borrow_mut(|abuf| {
            B_BUF.with_borrow_mut(|bbuf| {
                if let Lhs::Pack(_) = lhs {
                    let need = rows.div_ceil(mr) * mr * KC.min(k);
                    if abuf.len() < need {
                        abuf.resize(need, 0.0);
                    }
                }
                if let Rhs::Pack(_) = rhs {
                    let need = cols.div_ceil(nr) * nr * KC.min(k);
                    if bbuf.len() < need {
                        bbuf.resize(need, 0.0);
                    }
                }
                for k0 in (0..k).step_by(KC) {
                    let kc = KC.min(k - k0);
                    let a_panels: &[f32] = match lhs {
                        Lhs::Packed(pa) => &pa.data[k0 * mpad + (r0 / mr) * kc * mr..],
                        Lhs::Pack(a) => {
                            a.pack_a(r0, rows, k0, kc, mr, abuf);
                            abuf
                        }
                    };
                    let (b_panels, b_kind) = match rhs {
                        Rhs::Packed(pb) => pb.panels_at(k0 * npad + (c0 / nr) * kc * nr),
                        Rhs::Pack(b) => {
                            b.pack_b(k0, kc, c0, cols, nr, bbuf);
                            (bbuf.as_ptr().cast::<u8>(), BKind::F32)
                        }
                    };
                    for ir in (0..rows).step_by(mr) {
                        for jr in (0..cols).step_by(nr) {
                            let t = Tile {
                                kc,
                                a: a_panels[(ir / mr) * kc * mr..].as_ptr(),
                                // SAFETY: panel `jr / nr` of this block (the packed layout).
                                b: unsafe { b_panels.add((jr / nr) * kc * nr * b_kind.size()) },
                                b_kind,
                                // SAFETY: `(r0 + ir, c0 + jr)` is inside `C` (checked extents).
                                c: unsafe { out.at((r0 + ir) * ldc + c0 + jr) },
                                ldc,
                                rows: mr.min(rows - ir),
                                cols: nr.min(cols - jr),
                                accumulate: k0 > 0,
                            };
                            // SAFETY: `isa` is available (checked); the A panel holds
                            // `kc × mr` packed values and the B panel `kc × nr` (the packed
                            // layouts: a tile starts on a panel boundary); the tile's rows ×
                            // cols lie in this task's rectangle of `C`, which no other task
                            // writes.
                            unsafe { ukernel::run(isa, t) };
                        }
                    }
                }
            })
        });
        for r in r0..r0 + rows {
            // SAFETY: row `r` columns `c0..c0 + cols` of `C`: this task's rectangle.
            let row = unsafe { std::slice::from_raw_parts_mut(out.at(r * ldc + c0), cols) };
            if k == 0 {
                row.fill(0.0);
            }
            let res = epi.residual.map(|x| &x[r * ldc + c0..r * ldc + c0 + cols]);
            finish_row(
                row,
                epi.bias.map(|b| &b[c0..c0 + cols]),
                epi.row_bias.map_or(0.0, |b| b[r]),
                res,
            );
            if let Some(act) = epi.act {
                act.row_fn()(row);
            }
        }
    };
    if tm * tn == 1 {
        tile(0);
    } else {
        (0..tm * tn).into_par_iter().for_each(tile);
    }
    Ok(())
}

multiversion! {
    /// `row += bias + scalar + residual` (the parts present).
    fn finish_row(row: &mut [f32], bias: Option<&[f32]>, scalar: f32, res: Option<&[f32]>) {
        if let Some(b) = bias {
            for (y, b) in row.iter_mut().zip(b) {
                *y += b;
            }
        }
        if scalar != 0.0 {
            for y in row.iter_mut() {
                *y += scalar;
            }
        }
        if let Some(x) = res {
            for (y, x) in row.iter_mut().zip(x) {
                *y += x;
            }
        }
    }
}

/// The f32 CPU elements of `t` and its layout (any strides).
fn cpu_f32<R>(t: &Tensor, what: &str, f: impl FnOnce(&[f32], &Layout) -> Result<R>) -> Result<R> {
    if t.dtype() != DType::F32 {
        bail!("gemm: {what} is {:?}, not f32", t.dtype());
    }
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cs) = &*storage else {
        bail!("gemm: {what} is not on the CPU");
    };
    f(cs.as_slice::<f32>()?, layout)
}

/// `act(x · b + bias + residual)` for `x` `[M, K]` (f32 on the CPU, any strides), `bias` `[N]`,
/// `residual` `[M, N]`: the product of an `nn.Linear` whose weight is packed in `b`.
pub fn matmul(
    x: &Tensor,
    b: &PackedB,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    act: Option<Activation>,
) -> Result<Tensor> {
    let (m, k) = x.dims2()?;
    if k != b.k {
        bail!("gemm: input has {k} features, the weight {}", b.k);
    }
    let n = b.n;
    let bias = bias.map(|t| t.contiguous()).transpose()?;
    let residual = residual.map(|t| t.contiguous()).transpose()?;
    if let Some(r) = &residual {
        if r.dims() != [m, n] {
            bail!("gemm: residual {:?} for a {m}x{n} output", r.dims());
        }
    }
    let mut c = vec![0f32; m * n];
    cpu_f32(x, "input", |xs, xl| {
        let st = xl.stride();
        let a = MatRef::new(&xs[xl.start_offset()..], m, k, st[0], st[1])?;
        let mut with_bias = |bias: Option<&[f32]>| match &residual {
            Some(r) => cpu_f32(r, "residual", |rs, rl| {
                let residual = Some(&rs[rl.start_offset()..rl.start_offset() + m * n]);
                gemm(
                    &a,
                    b,
                    &mut c,
                    n,
                    &Epilogue {
                        bias,
                        residual,
                        act,
                        ..Epilogue::default()
                    },
                )
            }),
            None => gemm(
                &a,
                b,
                &mut c,
                n,
                &Epilogue {
                    bias,
                    act,
                    ..Epilogue::default()
                },
            ),
        };
        match &bias {
            Some(t) => cpu_f32(t, "bias", |bs, bl| {
                let start = bl.start_offset();
                match bs.get(start..start + t.elem_count()) {
                    Some(v) => with_bias(Some(v)),
                    None => bail!("gemm: bias storage too short"),
                }
            }),
            None => with_bias(None),
        }
    })?;
    Tensor::from_vec(c, (m, n), &Device::Cpu)
}

#[cfg(test)]
mod tests;

/// Runs the `isa` micro-kernel `reps` times on one `MR × NR` tile with `KC`-deep panels held in
/// L1, returning the multiply-adds ×2 done (floating-point operations): the peak the GEMM can
/// reach on this CPU (the roofline's compute roof, `benches/gemm`).
#[doc(hidden)]
pub fn microkernel_loop(isa: Isa, reps: usize) -> Result<usize> {
    if !isa.available() {
        bail!("gemm: {} is not available on this CPU", isa.name());
    }
    let (mr, nr) = (mr(isa), nr(isa));
    let a = vec![1e-3f32; KC * mr];
    let b = vec![1e-3f32; KC * nr];
    let mut c = vec![0f32; mr * nr];
    for rep in 0..reps {
        let t = Tile {
            kc: KC,
            a: a.as_ptr(),
            b: b.as_ptr().cast(),
            b_kind: BKind::F32,
            c: c.as_mut_ptr(),
            ldc: nr,
            rows: mr,
            cols: nr,
            accumulate: rep > 0,
        };
        // SAFETY: `isa` is available (checked); `a` holds `KC × mr`, `b` `KC × nr` and `c`
        // `mr × nr` f32 (row stride `nr`).
        unsafe { ukernel::run(isa, t) };
    }
    std::hint::black_box(&c);
    Ok(reps * 2 * KC * mr * nr)
}
