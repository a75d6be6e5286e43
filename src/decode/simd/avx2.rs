//! AVX2: the block masks 32 bytes per compare, and the hot loop compiled
//! for AVX2 with BMI1, BMI2, POPCNT and LZCNT.

use super::{AtLevel, BlockMasks, Simd};

/// `work` compiled for the AVX2 level: all of it is inlined here, so every
/// step may use these instructions.
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
pub(crate) fn run<W: AtLevel>(work: W) -> W::Output {
    work.run::<{ Simd::AVX2 }>()
}

/// The masks of `block` with AVX2: 32 bytes per compare, half the
/// instructions of SSE2.
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn masks(block: &[u8; 64]) -> BlockMasks {
    use std::arch::x86_64::{
        _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let mut masks = BlockMasks {
        spaces: 0,
        newlines: 0,
        non_ascii: 0,
        digits: 0,
    };
    let spaces = _mm256_set1_epi8(b' ' as i8);
    let newlines = _mm256_set1_epi8(b'\n' as i8);
    // Signed compares: bytes past ASCII are negative, below '0'.
    let below_zero = _mm256_set1_epi8((b'0' - 1) as i8);
    let above_nine = _mm256_set1_epi8((b'9' + 1) as i8);
    for half in 0..2 {
        // SAFETY: each unaligned 32-byte load reads within the array.
        let bytes = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * half).cast()) };
        let bits = |mask: i32| u64::from(mask as u32) << (32 * half);
        masks.spaces |= bits(_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, spaces)));
        masks.newlines |= bits(_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, newlines)));
        masks.non_ascii |= bits(_mm256_movemask_epi8(bytes));
        let digits = _mm256_and_si256(
            _mm256_cmpgt_epi8(bytes, below_zero),
            _mm256_cmpgt_epi8(above_nine, bytes),
        );
        masks.digits |= bits(_mm256_movemask_epi8(digits));
    }
    masks
}
