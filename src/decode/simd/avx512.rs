//! AVX-512: the block masks in one register, the edges compressed out of
//! the block with VBMI2, and the hot loop compiled for AVX-512BW and VBMI2
//! with all of AVX2's level (whose number check it runs).

use super::{AtLevel, BlockMasks, Simd};

/// `work` compiled for the AVX-512 level: all of it is inlined here, so
/// every step may use these instructions.
#[target_feature(enable = "avx512bw,avx512vbmi2,avx2,bmi1,bmi2,popcnt,lzcnt")]
pub(crate) fn run<W: AtLevel>(work: W) -> W::Output {
    work.run::<{ Simd::AVX512 }>()
}

/// The masks of `block` with AVX-512BW: the whole block in one register,
/// and compares that give the 64-bit masks directly.
#[target_feature(enable = "avx512bw")]
#[inline]
pub(crate) fn masks(block: &[u8; 64]) -> BlockMasks {
    use std::arch::x86_64::{
        _mm512_cmpeq_epi8_mask, _mm512_cmpge_epu8_mask, _mm512_cmple_epu8_mask, _mm512_loadu_si512,
        _mm512_movepi8_mask, _mm512_set1_epi8,
    };
    // SAFETY: the 64-byte load reads exactly the array.
    let bytes = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
    BlockMasks {
        spaces: _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(b' ' as i8)),
        newlines: _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(b'\n' as i8)),
        non_ascii: _mm512_movepi8_mask(bytes),
        digits: _mm512_cmpge_epu8_mask(bytes, _mm512_set1_epi8(b'0' as i8))
            & _mm512_cmple_epu8_mask(bytes, _mm512_set1_epi8(b'9' as i8)),
    }
}

/// Appends the edges of the block at `offset` to `edges` (bit `i` of
/// `changes` is an edge at `offset + i`) with VBMI2: the edges' places in
/// the block are compressed out of the vector 0, 1, ..., 63 by the mask of
/// changes in one instruction, then widened to offsets 16 at a time, where
/// the portable loop ([`super::portable::write_edges`]) takes a step per
/// edge and mispredicts its end about once a block.
#[target_feature(enable = "avx512bw,avx512vbmi2")]
#[inline]
pub(crate) fn write_edges(changes: u64, offset: usize, edges: &mut Vec<u32>) {
    use std::arch::x86_64::{
        __m128i, _mm512_add_epi32, _mm512_castsi512_si128, _mm512_cvtepu8_epi32,
        _mm512_extracti32x4_epi32, _mm512_loadu_si512, _mm512_maskz_compress_epi8,
        _mm512_set1_epi32, _mm512_storeu_si512,
    };
    const PLACES: [u8; 64] = {
        let mut places = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            places[i] = i as u8;
            i += 1;
        }
        places
    };
    let count = changes.count_ones() as usize;
    let filled = edges.len();
    // Offsets are written 16 at a time, the first group always: room
    // for the unused lanes of the last one, which stay past the length.
    edges.reserve(16 * count.div_ceil(16).max(1));
    // SAFETY: the 64-byte load reads exactly the array.
    let places = unsafe { _mm512_loadu_si512(PLACES.as_ptr().cast()) };
    let packed = _mm512_maskz_compress_epi8(changes, places);
    let base = _mm512_set1_epi32(offset as i32);
    let out = edges.spare_capacity_mut().as_mut_ptr().cast::<u32>();
    let store = |group: usize, places: __m128i| {
        let offsets = _mm512_add_epi32(_mm512_cvtepu8_epi32(places), base);
        // SAFETY: `group * 16 + 16` is at most the capacity reserved
        // above, past `filled`.
        unsafe { _mm512_storeu_si512(out.add(16 * group).cast(), offsets) };
    };
    store(0, _mm512_castsi512_si128(packed));
    if count > 16 {
        store(1, _mm512_extracti32x4_epi32::<1>(packed));
    }
    if count > 32 {
        store(2, _mm512_extracti32x4_epi32::<2>(packed));
    }
    if count > 48 {
        store(3, _mm512_extracti32x4_epi32::<3>(packed));
    }
    // SAFETY: the stores above initialized the `count` slots after
    // `filled`.
    unsafe { edges.set_len(filled + count) };
}
