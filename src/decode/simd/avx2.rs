//! AVX2: the block masks 32 bytes per compare, the edges a byte of the
//! mask at a time from a table, and the hot loop compiled for AVX2 with
//! BMI1, BMI2, POPCNT and LZCNT.

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

/// For each byte value, the places of its set bits, in order, one per
/// byte (unused places 0).
const PLACES_OF_BYTE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut places = 0u64;
        let mut n = 0;
        let mut bit = 0;
        while bit < 8 {
            if byte & (1 << bit) != 0 {
                places |= (bit as u64) << (8 * n);
                n += 1;
            }
            bit += 1;
        }
        table[byte] = places;
        byte += 1;
    }
    table
};

/// Appends the edges of the block at `offset` to `edges` (bit `i` of
/// `changes` is an edge at `offset + i`) a byte of the mask at a time:
/// each byte's places come from a table, widened to eight offsets in one
/// register and stored whole, and the next store starts past the ones
/// that byte had. Eight steps a block whatever its edges, where the
/// portable loop takes one per edge and mispredicts its end about once a
/// block.
#[target_feature(enable = "avx2,popcnt")]
#[inline]
pub(crate) fn write_edges(changes: u64, offset: usize, edges: &mut Vec<u32>) {
    use std::arch::x86_64::{
        _mm_cvtsi64_si128, _mm256_add_epi32, _mm256_cvtepu8_epi32, _mm256_set1_epi32,
        _mm256_storeu_si256,
    };
    let count = changes.count_ones() as usize;
    let filled = edges.len();
    // Each store writes eight slots: room for the last one's unused ones.
    edges.reserve(count + 8);
    let out = edges.spare_capacity_mut().as_mut_ptr().cast::<u32>();
    let mut written = 0;
    for k in 0..8 {
        let byte = (changes >> (8 * k)) as u8;
        let places = _mm_cvtsi64_si128(PLACES_OF_BYTE[usize::from(byte)] as i64);
        let offsets = _mm256_add_epi32(
            _mm256_cvtepu8_epi32(places),
            _mm256_set1_epi32((offset + 8 * k) as i32),
        );
        // SAFETY: `written` is at most `count` before the last store's
        // own edges, so `written + 8` is within the `count + 8` slots
        // reserved above, past `filled`.
        unsafe { _mm256_storeu_si256(out.add(written).cast(), offsets) };
        written += byte.count_ones() as usize;
    }
    // SAFETY: the stores above initialized the `count` slots after
    // `filled`.
    unsafe { edges.set_len(filled + count) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::SplitMix;

    #[test]
    fn edges_from_the_table_agree_with_the_portable_loop() {
        if crate::decode::simd::Simd::detect() < Simd::AVX2 {
            eprintln!("no AVX2 here: the table is not used");
            return;
        }
        let mut rng = SplitMix(0x0DDB_A11C_0FFE_E000);
        let mut patterns = vec![0, u64::MAX, 1, 1 << 63, 0x5555_5555_5555_5555];
        // Sparse, dense and random masks.
        for _ in 0..20_000 {
            let a = rng.below(u64::MAX);
            let b = rng.below(u64::MAX);
            patterns.extend([a, a & b, a | b]);
        }
        for (i, &changes) in patterns.iter().enumerate() {
            let offset = 64 * (i % 7);
            // Edges already there stay; the new ones follow them.
            let mut ours = vec![7, 9];
            let mut want = ours.clone();
            // SAFETY: AVX2 was detected above (POPCNT with it).
            unsafe { write_edges(changes, offset, &mut ours) };
            super::super::portable::write_edges(changes, offset, &mut want);
            assert_eq!(ours, want, "{changes:#x} at {offset}");
        }
    }
}
