//! Which vector instructions this processor has: the one place flowsql asks
//! (at run time), so that all its vector code is chosen from one answer.
//!
//! Code for instructions beyond the target's baseline (SSE2 on x86-64) is
//! compiled with `#[target_feature(enable = "...")]`, and running it on a
//! processor without those features is undefined behaviour. Such code is
//! therefore called only where [`Cpu::detect`] found every feature its
//! `#[target_feature]` list enables; the `SAFETY` comment at each call says
//! which check that was. The users: the decoder's instruction levels
//! (`decode::simd`) and the packing of text keys in vector lanes
//! (`text_codes`).

/// The x86-64 instruction sets flowsql has code for, and whether this
/// processor has them (on other processors, none).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu {
    /// AVX2, together with BMI1, BMI2, POPCNT and LZCNT for the bit
    /// counts and scans on its masks.
    pub(crate) avx2: bool,
    /// AVX-512F, the foundation every other AVX-512 set builds on.
    pub(crate) avx512f: bool,
    /// AVX-512BW: compares and moves on byte and 16-bit lanes.
    pub(crate) avx512bw: bool,
    /// AVX-512 VBMI2: byte compress.
    pub(crate) avx512vbmi2: bool,
}

/// The environment variable that caps the instruction sets flowsql uses
/// below what the processor has: `sse2` (the x86-64 baseline) or `avx2`.
/// It lets one machine test the code every other processor runs (an
/// AVX-512 machine running AVX2's code); its timings stay that machine's,
/// not an AVX2-only processor's. Using fewer instructions than the
/// processor has is always sound; any other value leaves the detection as
/// it is.
pub(crate) const MAX_SIMD_VARIABLE: &str = "FLOWSQL_MAX_SIMD";

impl Cpu {
    /// What this processor has, less what [`MAX_SIMD_VARIABLE`] turns off.
    /// Both answers are cached, so asking again is cheap.
    pub(crate) fn detect() -> Self {
        static DETECTED: std::sync::OnceLock<Cpu> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            Self::of_processor().capped(std::env::var(MAX_SIMD_VARIABLE).ok().as_deref())
        })
    }

    fn of_processor() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            Self {
                avx2: has!("avx2")
                    && has!("bmi1")
                    && has!("bmi2")
                    && has!("popcnt")
                    && has!("lzcnt"),
                avx512f: has!("avx512f"),
                avx512bw: has!("avx512bw"),
                avx512vbmi2: has!("avx512vbmi2"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self::default()
    }

    /// These features, less those above `cap` (`sse2`, `avx2`).
    fn capped(self, cap: Option<&str>) -> Self {
        match cap.map(str::to_ascii_lowercase).as_deref() {
            Some("sse2") => Self::default(),
            Some("avx2") => Self {
                avx2: self.avx2,
                ..Self::default()
            },
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_only_turns_features_off() {
        let all = Cpu {
            avx2: true,
            avx512f: true,
            avx512bw: true,
            avx512vbmi2: true,
        };
        let avx2 = all.capped(Some("AVX2"));
        assert!(avx2.avx2 && !avx2.avx512f && !avx2.avx512bw && !avx2.avx512vbmi2);
        let sse2 = all.capped(Some("sse2"));
        assert!(!sse2.avx2 && !sse2.avx512f);
        let none = Cpu::default();
        assert!(!none.capped(Some("avx2")).avx2, "a cap never adds");
        assert!(all.capped(Some("avx512")).avx512vbmi2);
        assert!(all.capped(None).avx512f);
    }
}
