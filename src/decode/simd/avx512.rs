//! AVX-512: the block masks in one register, the edges compressed out of
//! the block with VBMI2, the quick check of several numbers at once
//! ([`NumberLanes`]), and the hot loop compiled for AVX-512BW and VBMI2
//! with all of AVX2's level.

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

/// The quick check of up to eight unrequested numeric fields among a
/// line's first 16 tokens, all at once in AVX-512 lanes, instead of each
/// field's own loads and shifts in the scalar loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NumberLanes {
    /// Per lane, the edges (places in the line's edges, as the tokenizer
    /// lists them) of its token's start and end, and its most digits.
    starts: [u32; 16],
    ends: [u32; 16],
    most: [u32; 16],
    /// The lanes in use.
    lanes: u8,
}

impl NumberLanes {
    /// Lanes for `checked` (index, most digits), which fit
    /// ([`super::NumberLanes::new`] checks).
    pub(crate) fn new(checked: &[(usize, usize)]) -> Self {
        let mut lanes = Self {
            starts: [0; 16],
            ends: [0; 16],
            most: [0; 16],
            lanes: ((1u16 << checked.len()) - 1) as u8,
        };
        for (lane, &(i, most)) in checked.iter().enumerate() {
            lanes.starts[lane] = 2 * i as u32;
            lanes.ends[lane] = 2 * i as u32 + 1;
            lanes.most[lane] = most as u32;
        }
        lanes
    }

    /// What the scalar quick check says of the line whose tokens have
    /// `edges` and `digits` (its digit masks), except that a `-` fails here
    /// too (the exact check takes those lines); `None` for lines whose digit
    /// masks are more than eight words (of 448 bytes or more).
    #[target_feature(enable = "avx512f")]
    pub(crate) fn look_valid(&self, edges: &[u32], digits: &[u64]) -> Option<bool> {
        use std::arch::x86_64::{
            _mm512_add_epi64, _mm512_and_si512, _mm512_castsi512_si256, _mm512_cmpeq_epi64_mask,
            _mm512_cmple_epu32_mask, _mm512_cvtepu32_epi64, _mm512_loadu_si512,
            _mm512_maskz_loadu_epi32, _mm512_maskz_loadu_epi64, _mm512_or_si512,
            _mm512_permutex2var_epi32, _mm512_permutexvar_epi64, _mm512_set1_epi64,
            _mm512_sllv_epi64, _mm512_srli_epi64, _mm512_srlv_epi64, _mm512_sub_epi32,
            _mm512_sub_epi64,
        };
        if digits.len() > 8 {
            return None;
        }
        // The first 32 edges, and the digit masks, in registers.
        let in_first = |n: usize| ((1u32 << n.min(16)) - 1) as u16;
        // SAFETY: a masked load reads only its set lanes, here the ones
        // within the slices.
        let (low, high, masks) = unsafe {
            (
                _mm512_maskz_loadu_epi32(in_first(edges.len()), edges.as_ptr().cast()),
                _mm512_maskz_loadu_epi32(
                    in_first(edges.len().saturating_sub(16)),
                    edges.as_ptr().wrapping_add(16).cast(),
                ),
                _mm512_maskz_loadu_epi64(
                    ((1u16 << digits.len()) - 1) as u8,
                    digits.as_ptr().cast(),
                ),
            )
        };
        // SAFETY: each array is 16 u32, one 64-byte vector.
        let load = |array: &[u32; 16]| unsafe { _mm512_loadu_si512(array.as_ptr().cast()) };
        let starts = _mm512_permutex2var_epi32(low, load(&self.starts), high);
        let ends = _mm512_permutex2var_epi32(low, load(&self.ends), high);
        let lens = _mm512_sub_epi32(ends, starts);
        let short = _mm512_cmple_epu32_mask(lens, load(&self.most)) as u8;
        // As in `Tokens::all_digits`, per lane: the two masks around the
        // token, shifted to start at it, against `len` ones.
        let starts = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(starts));
        let lens = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(lens));
        let block = _mm512_srli_epi64::<6>(starts);
        let first = _mm512_permutexvar_epi64(block, masks);
        let second = _mm512_permutexvar_epi64(_mm512_add_epi64(block, _mm512_set1_epi64(1)), masks);
        let shift = _mm512_and_si512(starts, _mm512_set1_epi64(63));
        let sixty_four = _mm512_set1_epi64(64);
        // A shift by 64 or more gives zeros.
        let window = _mm512_or_si512(
            _mm512_srlv_epi64(first, shift),
            _mm512_sllv_epi64(second, _mm512_sub_epi64(sixty_four, shift)),
        );
        let want = _mm512_srlv_epi64(_mm512_set1_epi64(-1), _mm512_sub_epi64(sixty_four, lens));
        let digits = _mm512_cmpeq_epi64_mask(_mm512_and_si512(window, want), want);
        Some(short & digits & self.lanes == self.lanes)
    }
}
