//! 2-D convolution as an implicit GEMM on the `[C, N, H, W]` (CNHW) layout: the filters are
//! packed once as the left operand (`[C_out, C_in·kh·kw]`, PyTorch's own weight order), the
//! input's patches are packed straight from the input block by block as the right operand (no
//! column matrix is ever built), and the product `[C_out, N·H'·W']` is already the next
//! layer's CNHW input. The epilogue adds the bias (a BatchNorm folded at load) per output
//! channel and the residual, then applies the ReLU. A 1×1 stride-1 unpadded convolution reads
//! the input as a plain `[C_in, N·H·W]` matrix.

use candle_core::{bail, Device, Result, Tensor};

use super::{cpu_f32, gemm_packed_a, Epilogue, MatRef, PackB, PackedA};
use crate::activation::Activation;

/// Kernel size, stride and zero padding of a convolution (dilation 1, one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride along H and W.
    pub stride: (usize, usize),
    /// Zero padding along H and W (each side).
    pub padding: (usize, usize),
}

impl ConvGeometry {
    /// `(H', W')` for an `h × w` input, or an error when the kernel does not fit.
    pub fn output(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let ((kh, kw), (sh, sw), (ph, pw)) = (self.kernel, self.stride, self.padding);
        if sh == 0 || sw == 0 {
            bail!("conv: stride {:?} has a zero", self.stride);
        }
        if h + 2 * ph < kh || w + 2 * pw < kw {
            bail!("conv: a {h}x{w} input is smaller than a {kh}x{kw} kernel");
        }
        Ok(((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1))
    }
}

/// A convolution's filters packed for [`conv2d_cnhw`].
#[derive(Debug, Clone)]
pub struct PackedConv {
    w: PackedA,
    c_in: usize,
    geometry: ConvGeometry,
}

impl PackedConv {
    /// Packs a `[C_out, C_in, kh, kw]` weight (any float dtype; converted to f32).
    pub fn new(weight: &Tensor, stride: (usize, usize), padding: (usize, usize)) -> Result<Self> {
        Self::new_for(crate::isa::isa(), weight, stride, padding)
    }

    /// [`PackedConv::new`] for the kernel family `isa`.
    pub fn new_for(
        isa: crate::isa::Isa,
        weight: &Tensor,
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Self> {
        let (c_out, c_in, kh, kw) = weight.dims4()?;
        let w = PackedA::from_tensor_for(isa, &weight.reshape((c_out, c_in * kh * kw))?)?;
        Ok(PackedConv {
            w,
            c_in,
            geometry: ConvGeometry {
                kernel: (kh, kw),
                stride,
                padding,
            },
        })
    }

    /// Output channels.
    pub fn c_out(&self) -> usize {
        self.w.m()
    }

    /// Input channels.
    pub fn c_in(&self) -> usize {
        self.c_in
    }

    /// Kernel, stride and padding.
    pub fn geometry(&self) -> ConvGeometry {
        self.geometry
    }
}

/// The patches of a contiguous CNHW input as the `[C_in·kh·kw, N·H'·W']` right operand.
struct Patches<'a> {
    x: &'a [f32],
    c: usize,
    n: usize,
    h: usize,
    w: usize,
    g: ConvGeometry,
    oh: usize,
    ow: usize,
}

impl PackB for Patches<'_> {
    fn depth(&self) -> usize {
        self.c * self.g.kernel.0 * self.g.kernel.1
    }

    fn cols(&self) -> usize {
        self.n * self.oh * self.ow
    }

    fn pack_b(&self, k0: usize, kc: usize, c0: usize, cols: usize, nr: usize, dst: &mut [f32]) {
        let ((kh, kw), (sh, sw), (ph, pw)) = (self.g.kernel, self.g.stride, self.g.padding);
        let plane = self.n * self.h * self.w;
        let (h, w) = (self.h as isize, self.w as isize);
        // Per panel: its columns cut into runs on one output row of one image:
        // `(first column in the panel, length, image offset, top input row, left input column)`.
        let mut runs: Vec<(usize, usize, usize, isize, isize)> = Vec::with_capacity(8);
        for (p, panel) in dst.chunks_mut(kc * nr).take(cols.div_ceil(nr)).enumerate() {
            let j0 = c0 + p * nr;
            let width = nr.min(c0 + cols - j0);
            runs.clear();
            let mut j = 0;
            while j < width {
                let col = j0 + j;
                let (img, rem) = (col / (self.oh * self.ow), col % (self.oh * self.ow));
                let (oy, ox) = (rem / self.ow, rem % self.ow);
                let len = (self.ow - ox).min(width - j);
                runs.push((
                    j,
                    len,
                    img * self.h * self.w,
                    (oy * sh) as isize - ph as isize,
                    (ox * sw) as isize - pw as isize,
                ));
                j += len;
            }
            for (step, d) in panel.chunks_mut(nr).take(kc).enumerate() {
                let kidx = k0 + step;
                let (ch, r) = (kidx / (kh * kw), kidx % (kh * kw));
                let (ky, kx) = ((r / kw) as isize, (r % kw) as isize);
                let base = ch * plane;
                for &(j, len, img, iy0, ix0) in &runs {
                    let out = &mut d[j..j + len];
                    let iy = iy0 + ky;
                    if iy < 0 || iy >= h {
                        zero(out);
                        continue;
                    }
                    let row = &self.x[base + img + iy as usize * self.w..][..self.w];
                    let ix = ix0 + kx;
                    if sw == 1 {
                        // Columns `ix .. ix + len` of the row, zero outside `0..w`.
                        let lo = (-ix).clamp(0, len as isize) as usize;
                        let hi = (w - ix).clamp(lo as isize, len as isize) as usize;
                        zero(&mut out[..lo]);
                        if hi > lo {
                            let s0 = (ix + lo as isize) as usize;
                            copy(&mut out[lo..hi], &row[s0..s0 + hi - lo]);
                        }
                        zero(&mut out[hi..]);
                    } else {
                        for (t, v) in out.iter_mut().enumerate() {
                            let x = ix + (t * sw) as isize;
                            *v = if x >= 0 && x < w {
                                row[x as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
                zero(&mut d[width..]);
            }
        }
    }
}

/// `dst = src` for the short runs of a panel (at most `NR` values): fixed-size chunks the
/// compiler turns into vector moves, where `copy_from_slice` calls `memmove` for each run.
#[inline(always)]
fn copy(dst: &mut [f32], src: &[f32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().unwrap_or_else(|_| unreachable!());
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// `dst = 0` for a short run (see [`copy`]).
#[inline(always)]
fn zero(dst: &mut [f32]) {
    let mut d = dst.chunks_exact_mut(8);
    for d in &mut d {
        d.copy_from_slice(&[0.0; 8]);
    }
    d.into_remainder().iter_mut().for_each(|x| *x = 0.0);
}

/// `act(conv(x) + bias + residual)` for a CNHW f32 CPU input `x` `[C_in, N, H, W]`: the result
/// `[C_out, N, H', W']`; `bias` `[C_out]`, `residual` shaped as the result; `act` ReLU or none
/// (any [`Activation`] works).
pub fn conv2d_cnhw(
    x: &Tensor,
    w: &PackedConv,
    bias: Option<&[f32]>,
    residual: Option<&Tensor>,
    act: Option<Activation>,
) -> Result<Tensor> {
    let (c, n, h, wd) = x.dims4()?;
    if c != w.c_in {
        bail!("conv: the input has {c} channels, the weight {}", w.c_in);
    }
    let g = w.geometry;
    let (oh, ow) = g.output(h, wd)?;
    let c_out = w.c_out();
    let cols = n * oh * ow;
    let x = x.contiguous()?;
    let residual = residual.map(|r| r.contiguous()).transpose()?;
    if let Some(r) = &residual {
        if r.dims() != [c_out, n, oh, ow] {
            bail!(
                "conv: residual {:?} for a {:?} output",
                r.dims(),
                [c_out, n, oh, ow]
            );
        }
    }
    let mut out = vec![0f32; c_out * cols];
    cpu_f32(&x, "input", |xs, xl| {
        let xs = &xs[xl.start_offset()..xl.start_offset() + c * n * h * wd];
        let run = |b: &dyn PackB, out: &mut [f32]| {
            let go = |residual: Option<&[f32]>, out: &mut [f32]| {
                let epi = Epilogue {
                    row_bias: bias,
                    residual,
                    act,
                    ..Epilogue::default()
                };
                gemm_packed_a(&w.w, b, out, cols, &epi)
            };
            match &residual {
                Some(r) => cpu_f32(r, "residual", |rs, rl| {
                    go(
                        Some(&rs[rl.start_offset()..rl.start_offset() + c_out * cols]),
                        out,
                    )
                }),
                None => go(None, out),
            }
        };
        if g.kernel == (1, 1) && g.stride == (1, 1) && g.padding == (0, 0) {
            run(&MatRef::new(xs, c, cols, cols, 1)?, &mut out)
        } else {
            let p = Patches {
                x: xs,
                c,
                n,
                h,
                w: wd,
                g,
                oh,
                ow,
            };
            run(&p, &mut out)
        }
    })?;
    Tensor::from_vec(out, (c_out, n, oh, ow), &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::Isa;
    use crate::testing::seeded;
    use candle_core::DType;

    /// candle's `conv2d` on NCHW, in f32, as the reference.
    fn reference(
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        res: Option<&Tensor>,
        g: ConvGeometry,
        relu: bool,
    ) -> Result<Tensor> {
        assert_eq!(g.stride.0, g.stride.1);
        assert_eq!(g.padding.0, g.padding.1);
        // candle pads and strides symmetrically: square stride/padding in these tests.
        let nchw = x.permute((1, 0, 2, 3))?.contiguous()?;
        let y = nchw
            .conv2d(w, g.padding.0, g.stride.0, 1, 1)?
            .broadcast_add(&bias.reshape((1, (), 1, 1))?)?
            .permute((1, 0, 2, 3))?;
        let y = match res {
            Some(r) => (y + r)?,
            None => y,
        };
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    #[test]
    fn matches_candle_conv2d_at_odd_shapes() -> Result<()> {
        let dev = Device::Cpu;
        // (c_in, c_out, n, h, w, k, stride, padding)
        let cases = [
            (3, 7, 1, 17, 17, 7, 2, 3),
            (5, 17, 2, 9, 11, 3, 1, 1),
            (17, 7, 1, 7, 7, 3, 2, 1),
            (7, 33, 2, 5, 6, 1, 1, 0),
            (7, 13, 3, 9, 9, 1, 2, 0),
            (1, 1, 1, 1, 1, 1, 1, 0),
            (4, 255, 1, 6, 5, 3, 1, 1),
            (2, 5, 1, 40, 3, 3, 1, 2),
        ];
        for (i, &(ci, co, n, h, w, k, s, p)) in cases.iter().enumerate() {
            let seed = 100 + 10 * i as u64;
            let x = seeded(&[ci, n, h, w], seed, -1.0, 1.0, DType::F32, &dev)?;
            let wt = seeded(&[co, ci, k, k], seed + 1, -1.0, 1.0, DType::F32, &dev)?;
            let b = seeded(&[co], seed + 2, -1.0, 1.0, DType::F32, &dev)?;
            let fams = [Isa::Portable, Isa::Avx2, Isa::Avx512];
            for fam in fams.into_iter().filter(|f| f.available()) {
                let packed = PackedConv::new_for(fam, &wt, (s, s), (p, p))?;
                let g = packed.geometry();
                let (oh, ow) = g.output(h, w)?;
                let res = seeded(&[co, n, oh, ow], seed + 3, -1.0, 1.0, DType::F32, &dev)?;
                let bv = b.to_vec1::<f32>()?;
                for (with_res, relu) in [(false, false), (true, true), (false, true)] {
                    let r = with_res.then_some(&res);
                    let act = relu.then_some(Activation::Relu);
                    let got = conv2d_cnhw(&x, &packed, Some(&bv), r, act)?;
                    let want = reference(&x, &wt, &b, r, g, relu)?;
                    assert_eq!(got.dims(), want.dims(), "case {i}");
                    let diff = (got - want)?
                        .abs()?
                        .flatten_all()?
                        .max(0)?
                        .to_scalar::<f32>()?;
                    assert!(
                        diff < 1e-4,
                        "{} case {i} ({with_res}, {relu}): max |diff| {diff}",
                        fam.name()
                    );
                }
            }
        }
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let wt = seeded(&[4, 3, 3, 3], 1, -1.0, 1.0, DType::F32, &dev)?;
        let packed = PackedConv::new(&wt, (1, 1), (0, 0))?;
        let x = seeded(&[2, 1, 5, 5], 2, -1.0, 1.0, DType::F32, &dev)?;
        assert!(conv2d_cnhw(&x, &packed, None, None, None).is_err());
        let small = seeded(&[3, 1, 2, 2], 3, -1.0, 1.0, DType::F32, &dev)?;
        assert!(conv2d_cnhw(&small, &packed, None, None, None).is_err());
        let x = seeded(&[3, 1, 5, 5], 4, -1.0, 1.0, DType::F32, &dev)?;
        let wrong = seeded(&[4, 1, 2, 2], 5, -1.0, 1.0, DType::F32, &dev)?;
        assert!(conv2d_cnhw(&x, &packed, None, Some(&wrong), None).is_err());
        Ok(())
    }
}
