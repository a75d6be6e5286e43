//! The x86-64 baseline: SSE2, which every x86-64 processor has, so this
//! code needs no detection.

use super::BlockMasks;

/// The masks of `block` with SSE2: a compare and a byte-mask move per 16
/// bytes and kind, where the portable code takes several integer steps per
/// eight bytes.
pub(crate) fn masks(block: &[u8; 64]) -> BlockMasks {
    use std::arch::x86_64::{
        _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut masks = BlockMasks {
        spaces: 0,
        newlines: 0,
        non_ascii: 0,
        digits: 0,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline, and each unaligned
    // 16-byte load reads within the 64-byte array.
    unsafe {
        let spaces = _mm_set1_epi8(b' ' as i8);
        let newlines = _mm_set1_epi8(b'\n' as i8);
        // Signed compares: bytes past ASCII are negative, below '0'.
        let below_zero = _mm_set1_epi8((b'0' - 1) as i8);
        let above_nine = _mm_set1_epi8((b'9' + 1) as i8);
        for lane in 0..4 {
            let bytes = _mm_loadu_si128(block.as_ptr().add(16 * lane).cast());
            let bits = |mask: i32| u64::from(mask as u16) << (16 * lane);
            masks.spaces |= bits(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, spaces)));
            masks.newlines |= bits(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, newlines)));
            masks.non_ascii |= bits(_mm_movemask_epi8(bytes));
            let digits = _mm_and_si128(
                _mm_cmpgt_epi8(bytes, below_zero),
                _mm_cmplt_epi8(bytes, above_nine),
            );
            masks.digits |= bits(_mm_movemask_epi8(digits));
        }
    }
    masks
}
