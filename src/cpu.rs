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
//! (`aggregate::packed_keys`).

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

impl Cpu {
    /// What this processor has. The standard library caches the answer, so
    /// asking again is cheap.
    pub(crate) fn detect() -> Self {
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
}
