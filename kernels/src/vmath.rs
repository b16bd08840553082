//! Vectorisable f32 math for the CPU paths: branch-free `exp` (Cody–Waite reduction and the
//! Cephes `expf` polynomial, ≤ 2 ulp on the normal range) and what builds on it (the
//! Abramowitz–Stegun 7.1.26 `erf` PyTorch's own vectorised CPU GELU uses, `tanh`, `sigmoid`).
//! Slice functions are compiled three times — AVX-512, AVX2+FMA and baseline — and the best
//! one for the running CPU is picked at run time, so LLVM vectorises the loops whatever the
//! crate's target flags are.

/// `e^x`; `x < -87.3` gives 0, `x > 88.7` gives +∞, NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest with the 1.5·2^23 trick (vectorises; `round()` does not everywhere).
    const MAGIC: f32 = 12_582_912.0;
    let xc = x.clamp(-87.33, 88.72);
    let n = (xc * LOG2E + MAGIC) - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r2 + r + 1.0;
    // 2^n via the exponent field: n ∈ [-126, 128]; split in two to stay in range.
    let ni = n as i32;
    let half = ni >> 1;
    let s1 = f32::from_bits(((half + 127) as u32) << 23);
    let s2 = f32::from_bits(((ni - half + 127) as u32) << 23);
    let v = y * s1 * s2;
    if x < -87.33 {
        0.0
    } else if x > 88.72 {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// `erf(x)` by Abramowitz–Stegun 7.1.26 (≤ 1.5e-7 in exact arithmetic, ≤ 5e-7 in f32), as PyTorch's vectorised CPU
/// `erf` (`Vectorized<float>::erf`) computes it.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (0.327_591_1 * a + 1.0);
    let r = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_73) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - r * exp(-a * a);
    if x.is_sign_negative() {
        -y
    } else {
        y
    }
}

/// `tanh(x)` as `1 - 2 / (e^{2x} + 1)` (exact limits ±1).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// `1 / (1 + e^{-x})`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Defines `pub(crate) fn $name(args)` that runs `$body` compiled for AVX-512, AVX2+FMA or the
/// baseline, whichever the CPU supports.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$m])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn v4($($arg: $ty),*) { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) { body($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports every feature `v4` is compiled for (checked).
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports every feature `v3` is compiled for (checked).
                    return unsafe { v3($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    /// `xs[i] = e^{xs[i] - max}` (the tests' check that the vectorised builds compute the
    /// scalar values).
    #[cfg(test)]
    fn exp_shifted(xs: &mut [f32], max: f32) {
        for x in xs.iter_mut() {
            *x = exp(*x - max);
        }
    }
}

multiversion! {
    /// In-place softmax of one row (−∞ entries get weight 0); a row that is empty or all −∞
    /// comes back as zeros.
    fn softmax_row(xs: &mut [f32]) {
        // Eight running maxima and sums so the reductions vectorise.
        let mut m8 = [f32::NEG_INFINITY; 8];
        let chunks = xs.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for i in 0..8 {
                m8[i] = m8[i].max(c[i]);
            }
        }
        let max = tail.iter().fold(m8.iter().copied().fold(f32::NEG_INFINITY, f32::max), |a, &b| a.max(b));
        if max == f32::NEG_INFINITY {
            xs.iter_mut().for_each(|x| *x = 0.0);
            return;
        }
        let mut s8 = [0f32; 8];
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            for i in 0..8 {
                c[i] = exp(c[i] - max);
                s8[i] += c[i];
            }
        }
        let tail = chunks.into_remainder();
        let mut sum: f32 = s8.iter().sum();
        for x in tail.iter_mut() {
            *x = exp(*x - max);
            sum += *x;
        }
        let inv = 1.0 / sum;
        xs.iter_mut().for_each(|x| *x *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp() as f32;
            assert!(ulps(exp(x), want) <= 2, "exp({x}) = {} vs {want}", exp(x));
            x += 0.0137;
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32 * 0.01 - 5.0).collect();
        let want: Vec<f32> = v.iter().map(|&x| exp(x - 4.99)).collect();
        exp_shifted(&mut v, 4.99);
        assert_eq!(
            v, want,
            "the vectorised slice version computes the same values"
        );
    }

    #[test]
    fn erf_matches_abramowitz_stegun_bound() {
        for i in -400..=400 {
            let x = i as f32 * 0.01;
            // Against a Taylor sum in f64.
            let xd = x as f64;
            let mut term = xd;
            let mut sum = xd;
            let mut k = 0.0;
            while term.abs() > 1e-18 && k < 200.0 {
                k += 1.0;
                term *= -xd * xd / k;
                sum += term / (2.0 * k + 1.0);
            }
            let want = (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32;
            assert!(
                (erf(x) - want).abs() <= 5e-7,
                "erf({x}) = {} vs {want}",
                erf(x)
            );
        }
    }

    #[test]
    fn softmax_rows() {
        let mut r = vec![1.0f32, 2.0, 3.0];
        softmax_row(&mut r);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|x| x.exp()).collect();
        let s: f64 = e.iter().sum();
        for (a, b) in r.iter().zip(&e) {
            assert!((*a as f64 - b / s).abs() < 1e-7);
        }
        let mut r = vec![f32::NEG_INFINITY; 3];
        softmax_row(&mut r);
        assert_eq!(r, vec![0.0; 3]);
        let mut long: Vec<f32> = (0..1003).map(|i| (i % 17) as f32 * 0.3).collect();
        long[5] = f32::NEG_INFINITY;
        softmax_row(&mut long);
        assert_eq!(long[5], 0.0);
        assert!((long.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
