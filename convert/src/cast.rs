//! `--dtype` casts between F64, F32, F16 and BF16, bit-exact with PyTorch's CPU `.to(dtype)`:
//! round to nearest even, F64 to F16/BF16 through F32 as c10 does, NaN payloads as PyTorch's
//! CPU kernels leave them (checked against PyTorch by the `casts.pt` fixture).

use crate::dtype::DType;

/// F32 → BF16, round to nearest even as c10's `round_to_nearest_even`. NaN becomes `nan`:
/// PyTorch's vectorised F32/F64 kernels write 0xFFFF, its scalar F16 path 0x7FC0.
pub fn f32_to_bf16(x: f32, nan: u16) -> u16 {
    if x.is_nan() {
        return nan;
    }
    let u = x.to_bits();
    let bias = ((u >> 16) & 1) + 0x7FFF;
    (u.wrapping_add(bias) >> 16) as u16
}

/// F32 → F16, round to nearest even as c10's `fp16_ieee_from_fp32_value`; NaN as the x86
/// F16C instruction PyTorch's CPU kernels use: quiet, sign and top payload bits kept.
pub fn f32_to_f16(x: f32) -> u16 {
    if x.is_nan() {
        let w = x.to_bits();
        return ((w >> 16) & 0x8000) as u16 | 0x7E00 | ((w >> 13) & 0x3FF) as u16;
    }
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (x.abs() * scale_to_inf) * scale_to_zero;
    let w = x.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let bias = (shl1_w & 0xFF00_0000).max(0x7100_0000);
    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    ((sign >> 16)
        | if shl1_w > 0xFF00_0000 {
            0x7E00
        } else {
            nonsign
        }) as u16
}

/// F16 → F32, exact (`half` keeps NaN payloads as c10 does).
pub fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// BF16 → F32, exact.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

fn read<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(b);
    a
}

/// Converts little-endian elements of `from` in `src` to `to`, appending to `out`.
/// Both types must be [`DType::is_castable_float`].
pub fn cast(src: &[u8], from: DType, to: DType, out: &mut Vec<u8>) {
    let es = from.size();
    out.reserve(src.len() / es * to.size());
    for e in src.chunks_exact(es) {
        // To F32 first (exact except from F64, which c10 also narrows to float first).
        let (f64v, f32v) = match from {
            DType::F64 => {
                let v = f64::from_le_bytes(read(e));
                (v, v as f32)
            }
            DType::F32 => {
                let v = f32::from_le_bytes(read(e));
                (f64::from(v), v)
            }
            DType::F16 => {
                let v = f16_to_f32(u16::from_le_bytes(read(e)));
                (f64::from(v), v)
            }
            DType::BF16 => {
                let v = bf16_to_f32(u16::from_le_bytes(read(e)));
                (f64::from(v), v)
            }
            other => unreachable!("cast from non-float {other}"),
        };
        match to {
            DType::F64 => out.extend_from_slice(&f64v.to_le_bytes()),
            DType::F32 => out.extend_from_slice(&f32v.to_le_bytes()),
            DType::F16 => out.extend_from_slice(&f32_to_f16(f32v).to_le_bytes()),
            DType::BF16 => {
                let nan = if from == DType::F16 { 0x7FC0 } else { 0xFFFF };
                out.extend_from_slice(&f32_to_bf16(f32v, nan).to_le_bytes())
            }
            other => unreachable!("cast to non-float {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_c10() {
        assert_eq!(f32_to_f16(1.0), 0x3C00);
        assert_eq!(f32_to_f16(-2.0), 0xC000);
        assert_eq!(f32_to_f16(65504.0), 0x7BFF);
        assert_eq!(f32_to_f16(65520.0), 0x7C00); // rounds to inf
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7C00);
        assert_eq!(f32_to_f16(5.960_464_5e-8), 0x0001); // smallest subnormal
        assert_eq!(f32_to_f16(f32::NAN), 0x7E00);
        assert_eq!(f32_to_f16(f32::from_bits(0x7FA0_0000)), 0x7F00);
        assert_eq!(f32_to_f16(f32::from_bits(0xFF81_0000)), 0xFE08);
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3C00);
        assert_eq!(f32_to_bf16(1.0, 0xFFFF), 0x3F80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F80_8000), 0xFFFF), 0x3F80); // tie to even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3F81_8000), 0xFFFF), 0x3F82);
        assert_eq!(f32_to_bf16(-f32::NAN, 0x7FC0), 0x7FC0);
        for h in [0x0000u16, 0x8000, 0x3C00, 0x0001, 0x7BFF, 0x7C00, 0xFC00] {
            assert_eq!(f32_to_f16(f16_to_f32(h)), h);
        }
    }
}
