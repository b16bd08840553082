//! The element types the fused ops accept (f32, f16, bf16), converted to f32 for arithmetic.

use half::{bf16, f16};

/// A floating element type with f32 accumulation.
pub trait Elem: candle_core::WithDType + Copy + Send + Sync + 'static {
    /// Widens to f32.
    fn to_f32(self) -> f32;
    /// Narrows from f32 (round to nearest even).
    fn from_f32(v: f32) -> Self;
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

impl Elem for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}
