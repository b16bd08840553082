//! Which x86 vector extension the hand-written CPU kernels (the GEMM micro-kernels, the int8
//! products) run with: decided once per process from the CPU's features, and lowered — never
//! raised — by the environment switch `TORCHLESS_CPU`:
//!
//! - `TORCHLESS_CPU=avx2`: the AVX2+FMA kernels even on a CPU with AVX-512 (how the AVX2 path is
//!   tested on the development machines, and a way around a CPU whose AVX-512 clocks down);
//! - `TORCHLESS_CPU=portable`: the plain-Rust kernels (no x86 intrinsics);
//! - `TORCHLESS_CPU=avx512` or unset: the best the CPU has.
//!
//! Any other value is ignored with a warning on stderr (once), never an abort: a library that a
//! Go service links must not die on an environment typo.

use std::sync::OnceLock;

/// A kernel family, from the widest to the plainest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler for the baseline target.
    Portable,
    /// AVX2, FMA and F16C (x86-64-v3).
    Avx2,
    /// AVX-512 F, BW, VL and DQ (x86-64-v4: Skylake-SP, Ice Lake, Zen 4 on).
    Avx512,
}

impl Isa {
    /// The switch's spelling (`TORCHLESS_CPU` values, bench labels).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run kernels of this family.
    pub fn available(self) -> bool {
        self <= detected()
    }
}

/// The widest family the CPU supports.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
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
/// into i32 lanes), on top of [`Isa::Avx512`] (the int8 kernels, `crate::quant`).
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

/// The family the kernels use: [`detected`] lowered by `TORCHLESS_CPU` (read once).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let best = detected();
        let wanted = match std::env::var("TORCHLESS_CPU") {
            Err(_) => best,
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "avx512" => best,
                "avx2" => Isa::Avx2,
                "portable" => Isa::Portable,
                other => {
                    eprintln!(
                        "torchless: TORCHLESS_CPU={other:?} is not one of avx512, avx2, portable; \
                         using {}",
                        best.name()
                    );
                    best
                }
            },
        };
        wanted.min(best)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_ordered_and_the_choice_is_available() {
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
        assert!(Isa::Portable.available());
        assert!(isa().available());
        assert!(isa() <= detected());
    }

    #[test]
    fn the_environment_switch_is_honoured() {
        // CI runs the suites again with `TORCHLESS_CPU=avx2`: this is what makes that run take
        // the AVX2 kernels.
        let want = match std::env::var("TORCHLESS_CPU").as_deref() {
            Ok("avx2") => Isa::Avx2,
            Ok("portable") => Isa::Portable,
            _ => detected(),
        };
        assert_eq!(isa(), want.min(detected()));
    }
}
