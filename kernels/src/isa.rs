//! Which x86 instruction set the hand-written CPU kernels use, decided once per process.
//!
//! [`isa`] is the best of [`Isa::Avx512`], [`Isa::Avx2`] and [`Isa::Portable`] that the CPU
//! supports ([`detected`]), lowered by the environment variable `TORCHLESS_CPU`:
//!
//! - `TORCHLESS_CPU=avx2`: the AVX2+FMA paths even where AVX-512 exists (to test or measure the
//!   paths an older CPU takes);
//! - `TORCHLESS_CPU=portable`: the plain-Rust paths (no hand-written intrinsics);
//! - unset, empty, `auto` or `avx512`: what the CPU has. A value names a ceiling, never more
//!   than the CPU supports; any other value is treated as unset.
//!
//! The variable is read on the first call and cached (a `OnceLock`), so it must be set before
//! the process runs a kernel. Tests call the path functions of each kernel directly instead of
//! setting it, so they do not race on the process environment.

use std::sync::OnceLock;

/// An instruction-set level of the CPU kernels, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust (whatever the compiler vectorises for the build target).
    Portable,
    /// AVX2 with FMA (x86-64-v3: Haswell and Zen 1 on).
    Avx2,
    /// AVX-512 F, BW, VL and DQ with AVX2 and FMA (x86-64-v4: Skylake-SP, Ice Lake, Zen 4 on).
    Avx512,
}

impl Isa {
    /// The level's name as `TORCHLESS_CPU` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// The level the kernels run at: [`detected`] lowered by `TORCHLESS_CPU` (module docs).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let ceiling = std::env::var("TORCHLESS_CPU")
            .ok()
            .and_then(|v| parse(&v))
            .unwrap_or(Isa::Avx512);
        detected().min(ceiling)
    })
}

/// A `TORCHLESS_CPU` value as a ceiling (`None`: no ceiling).
fn parse(v: &str) -> Option<Isa> {
    match v.trim().to_ascii_lowercase().as_str() {
        "portable" => Some(Isa::Portable),
        "avx2" => Some(Isa::Avx2),
        _ => None,
    }
}

/// The best level the CPU supports, whatever the environment says.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        if avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq") {
            return Isa::Avx512;
        }
        if avx2 {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// Whether the CPU has AVX-512 VNNI (`vpdpbusd`: u8·i8 dot products of four bytes accumulated
/// into i32 lanes), on top of [`Isa::Avx512`].
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        detected() == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_only_lowers_the_level() {
        assert_eq!(parse("avx2"), Some(Isa::Avx2));
        assert_eq!(parse(" Portable "), Some(Isa::Portable));
        assert_eq!(parse("avx512"), None);
        assert_eq!(parse(""), None);
        assert!(isa() <= detected());
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }
}
