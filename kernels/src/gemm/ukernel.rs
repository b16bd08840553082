//! GEMM micro-kernels: one `R×NR` tile of `C` from a packed `A` micro-panel (`kc` steps of `MR`
//! values, `R ≤ MR` of them used) and a packed `B` micro-panel (`kc` steps of `NR` values), with
//! every partial sum in registers for the whole `kc` loop. `C` is written once per call
//! (overwritten, or added to when `accumulate`), only its first `cols ≤ NR` columns.
//!
//! | family | `MR×NR` | accumulators |
//! |---|---|---|
//! | AVX-512 | 12×32 | 24 zmm (+2 for `B`, 1 broadcast) |
//! | AVX2+FMA | 6×16 | 12 ymm (+2 for `B`, 1 broadcast) |
//! | portable | 4×16 | arrays the compiler vectorises for the baseline target |
//!
//! The row count is a const generic, so a one-row product (a decode step) does one row's work,
//! not `MR` rows'. `B` panels may hold bf16 or f16 (a half-precision model's weights, half the
//! bytes to stream): they are widened to f32 in registers as they are loaded, and every
//! product and sum is f32.

use crate::isa::Isa;

/// Rows of a micro-tile (`A` panels are packed this many rows wide).
pub(crate) const fn mr(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 12,
        Isa::Avx2 => 6,
        Isa::Portable => 4,
    }
}

/// Columns of a micro-tile (`B` panels are packed this many columns wide).
pub(crate) const fn nr(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 32,
        Isa::Avx2 => 16,
        Isa::Portable => 16,
    }
}

/// The element type of a `B` panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BKind {
    F32,
    Bf16,
    F16,
}

impl BKind {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            BKind::F32 => 4,
            BKind::Bf16 | BKind::F16 => 2,
        }
    }
}

/// A micro-tile's operands and destination.
#[derive(Clone, Copy)]
pub(crate) struct Tile {
    /// Depth (steps of the `k` loop).
    pub kc: usize,
    /// `A` micro-panel: `kc × mr(isa)` f32, step-major.
    pub a: *const f32,
    /// `B` micro-panel: `kc × nr(isa)` elements of `b_kind`, step-major.
    pub b: *const u8,
    /// `B`'s element type.
    pub b_kind: BKind,
    /// `C`'s first element of the tile; rows `ldc` apart.
    pub c: *mut f32,
    /// Row stride of `C`.
    pub ldc: usize,
    /// Rows of `C` to compute (`1..=mr(isa)`).
    pub rows: usize,
    /// Columns of `C` to write (`1..=nr(isa)`).
    pub cols: usize,
    /// Add to `C` (a later block of `k`) instead of overwriting it.
    pub accumulate: bool,
}

/// Runs one micro-tile with the `isa` family's kernel.
///
/// # Safety
/// `isa` must be available on this CPU; `t.a` must be readable for `t.kc * mr(isa)` f32 and
/// `t.b` for `t.kc * nr(isa)` elements of `t.b_kind`; `t.c` must be writable (and readable when `t.accumulate`) at
/// `r * t.ldc + j` for `r < t.rows`, `j < t.cols`, with no other thread touching those elements.
pub(crate) unsafe fn run(isa: Isa, t: Tile) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees the CPU has AVX-512 and the pointers' extents.
        Isa::Avx512 => unsafe { x86::avx512(t) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees the CPU has AVX2+FMA and the pointers' extents.
        Isa::Avx2 => unsafe { x86::avx2(t) },
        // SAFETY: the caller guarantees the pointers' extents.
        _ => unsafe { portable(t) },
    }
}

/// Expands `$call::<R>(t)` for the row count `t.rows` in `1..=12`.
macro_rules! by_rows {
    ($t:expr, $f:ident) => {
        match $t.rows {
            1 => $f::<1>($t),
            2 => $f::<2>($t),
            3 => $f::<3>($t),
            4 => $f::<4>($t),
            5 => $f::<5>($t),
            6 => $f::<6>($t),
            7 => $f::<7>($t),
            8 => $f::<8>($t),
            9 => $f::<9>($t),
            10 => $f::<10>($t),
            11 => $f::<11>($t),
            _ => $f::<12>($t),
        }
    };
}

/// The plain-Rust kernel.
///
/// # Safety
/// As [`run`].
unsafe fn portable(t: Tile) {
    const MR: usize = mr(Isa::Portable);
    const NR: usize = nr(Isa::Portable);
    #[inline(always)]
    unsafe fn body<const R: usize>(t: Tile) {
        let mut acc = [[0f32; NR]; R];
        for p in 0..t.kc {
            // SAFETY: step `p < kc` of panels `kc × MR` f32 and `kc × NR` of `b_kind`
            // (caller's extents).
            let ap = unsafe { &*(t.a.add(p * MR) as *const [f32; MR]) };
            let mut bp = [0f32; NR];
            // SAFETY: as above; the panel's elements are of `b_kind`.
            unsafe {
                match t.b_kind {
                    BKind::F32 => bp = *(t.b.cast::<f32>().add(p * NR) as *const [f32; NR]),
                    BKind::Bf16 => {
                        let h = &*(t.b.cast::<u16>().add(p * NR) as *const [u16; NR]);
                        for j in 0..NR {
                            bp[j] = f32::from_bits(u32::from(h[j]) << 16);
                        }
                    }
                    BKind::F16 => {
                        let h = &*(t.b.cast::<u16>().add(p * NR) as *const [u16; NR]);
                        for j in 0..NR {
                            bp[j] = half::f16::from_bits(h[j]).to_f32();
                        }
                    }
                }
            }
            for r in 0..R {
                let a = ap[r];
                for j in 0..NR {
                    acc[r][j] += a * bp[j];
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate().take(t.cols) {
                // SAFETY: `r < rows`, `j < cols`: inside the caller's tile of `C`.
                unsafe {
                    let c = t.c.add(r * t.ldc + j);
                    *c = if t.accumulate { *c + v } else { *v };
                }
            }
        }
    }
    // SAFETY: forwarded from the caller; rows ≤ MR = 4 so only `1..=4` arms are reached.
    unsafe {
        match t.rows {
            1 => body::<1>(t),
            2 => body::<2>(t),
            3 => body::<3>(t),
            _ => body::<4>(t),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{mr, nr, BKind, Tile};
    use crate::isa::Isa;
    use std::arch::x86_64::*;

    /// AVX-512: 12×32.
    ///
    /// # Safety
    /// As [`super::run`], on a CPU with AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(t: Tile) {
        // SAFETY: forwarded from the caller (features and extents).
        unsafe {
            match t.b_kind {
                BKind::F32 => by_rows!(t, avx512_f32),
                BKind::Bf16 => by_rows!(t, avx512_bf16),
                BKind::F16 => by_rows!(t, avx512_f16),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_f32<const R: usize>(t: Tile) {
        // SAFETY: forwarded.
        unsafe { avx512_rows::<R, 0>(t) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_bf16<const R: usize>(t: Tile) {
        // SAFETY: forwarded.
        unsafe { avx512_rows::<R, 1>(t) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_f16<const R: usize>(t: Tile) {
        // SAFETY: forwarded.
        unsafe { avx512_rows::<R, 2>(t) }
    }

    /// Sixteen B elements at `p` as f32: `KIND` 0 f32, 1 bf16, 2 f16.
    #[target_feature(enable = "avx512f")]
    unsafe fn load16<const KIND: u8>(p: *const u8) -> __m512 {
        // SAFETY: the caller guarantees 16 elements of the kind at `p` (AVX-512 F enabled in
        // every caller).
        unsafe {
            match KIND {
                0 => _mm512_loadu_ps(p.cast()),
                1 => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
                    _mm256_loadu_si256(p.cast()),
                ))),
                _ => _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_rows<const R: usize, const KIND: u8>(t: Tile) {
        const MR: usize = mr(Isa::Avx512);
        const NR: usize = nr(Isa::Avx512);
        let es = if KIND == 0 { 4 } else { 2 };
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for p in 0..t.kc {
            // SAFETY: step `p < kc` of the `kc × NR` and `kc × MR` panels (caller's extents);
            // unaligned loads.
            unsafe {
                let bp = t.b.add(p * NR * es);
                let b0 = load16::<KIND>(bp);
                let b1 = load16::<KIND>(bp.add(16 * es));
                let ap = t.a.add(p * MR);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = _mm512_set1_ps(*ap.add(r));
                    acc[0] = _mm512_fmadd_ps(a, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(a, b1, acc[1]);
                }
            }
        }
        let lanes = |n: usize| -> __mmask16 {
            if n >= 16 {
                0xFFFF
            } else {
                ((1u32 << n) - 1) as u16
            }
        };
        let m0 = lanes(t.cols);
        let m1 = lanes(t.cols.saturating_sub(16));
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: row `r < rows` of the tile; the masks cover only columns `< cols`, and
            // masked-off lanes are neither read nor written (no fault past the end).
            unsafe {
                let c0 = t.c.add(r * t.ldc);
                let c1 = c0.wrapping_add(16);
                let (mut v0, mut v1) = (acc[0], acc[1]);
                if t.accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c0));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c1));
                }
                _mm512_mask_storeu_ps(c0, m0, v0);
                _mm512_mask_storeu_ps(c1, m1, v1);
            }
        }
    }

    /// AVX2+FMA: 6×16.
    ///
    /// # Safety
    /// As [`super::run`], on a CPU with AVX2 and FMA.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn avx2(t: Tile) {
        // SAFETY: forwarded from the caller (features and extents); rows ≤ MR = 6.
        unsafe {
            match t.b_kind {
                BKind::F32 => avx2_by_rows::<0>(t),
                BKind::Bf16 => avx2_by_rows::<1>(t),
                BKind::F16 => avx2_by_rows::<2>(t),
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2_by_rows<const KIND: u8>(t: Tile) {
        // SAFETY: forwarded from the caller (features and extents); rows ≤ MR = 6.
        unsafe {
            match t.rows {
                1 => avx2_rows::<1, KIND>(t),
                2 => avx2_rows::<2, KIND>(t),
                3 => avx2_rows::<3, KIND>(t),
                4 => avx2_rows::<4, KIND>(t),
                5 => avx2_rows::<5, KIND>(t),
                _ => avx2_rows::<6, KIND>(t),
            }
        }
    }

    /// Eight B elements at `p` as f32: `KIND` 0 f32, 1 bf16, 2 f16.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8<const KIND: u8>(p: *const u8) -> __m256 {
        // SAFETY: the caller guarantees 8 elements of the kind at `p` (AVX2 and F16C enabled
        // in every caller).
        unsafe {
            match KIND {
                0 => _mm256_loadu_ps(p.cast()),
                1 => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                    _mm_loadu_si128(p.cast()),
                ))),
                _ => _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2_rows<const R: usize, const KIND: u8>(t: Tile) {
        const MR: usize = mr(Isa::Avx2);
        const NR: usize = nr(Isa::Avx2);
        let es = if KIND == 0 { 4 } else { 2 };
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for p in 0..t.kc {
            // SAFETY: step `p < kc` of the `kc × NR` and `kc × MR` panels (caller's extents).
            unsafe {
                let bp = t.b.add(p * NR * es);
                let b0 = load8::<KIND>(bp);
                let b1 = load8::<KIND>(bp.add(8 * es));
                let ap = t.a.add(p * MR);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = _mm256_broadcast_ss(&*ap.add(r));
                    acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
                }
            }
        }
        if t.cols == NR {
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: row `r < rows`, all 16 columns inside the tile.
                unsafe {
                    let c0 = t.c.add(r * t.ldc);
                    let (mut v0, mut v1) = (acc[0], acc[1]);
                    if t.accumulate {
                        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c0));
                        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c0.add(8)));
                    }
                    _mm256_storeu_ps(c0, v0);
                    _mm256_storeu_ps(c0.add(8), v1);
                }
            }
            return;
        }
        // A partial tile: through a buffer, element by element.
        for (r, acc) in acc.iter().enumerate() {
            let mut buf = [0f32; NR];
            // SAFETY: `buf` holds 16 f32.
            unsafe {
                _mm256_storeu_ps(buf.as_mut_ptr(), acc[0]);
                _mm256_storeu_ps(buf.as_mut_ptr().add(8), acc[1]);
            }
            for (j, v) in buf.iter().enumerate().take(t.cols) {
                // SAFETY: `r < rows`, `j < cols`: inside the caller's tile.
                unsafe {
                    let c = t.c.add(r * t.ldc + j);
                    *c = if t.accumulate { *c + v } else { *v };
                }
            }
        }
    }
}
