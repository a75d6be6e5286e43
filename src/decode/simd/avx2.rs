//! AVX2: the block masks 32 bytes per compare, the edges a byte of the
//! mask at a time from a table, the quick check of several numbers at
//! once ([`NumberLanes`], which AVX-512 processors run too), and the hot
//! loop compiled for AVX2 with BMI1, BMI2, POPCNT and LZCNT.

use std::arch::x86_64::__m256i;

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

/// The quick check of up to eight unrequested numeric fields among a
/// line's first 16 tokens, in AVX2 lanes, which AVX-512 processors run
/// too. Lines of under 192 bytes (nearly all) take the short check
/// ([`NumberLanes::look_valid_short`]): each lane's edges read on their
/// own, all eight lanes in one register. Longer lines take the general
/// one: the first 32 edges in four registers, and a permute and blend to
/// pick each lane's (gathers, which would be shorter, are slow on the AMD
/// processors that stop at AVX2).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NumberLanes {
    /// Per lane, the place of its token's start edge within its register
    /// of eight edges (the end edge is the next place of the same one).
    places: [i32; 8],
    /// Per lane, all ones where the start edge is in the second or fourth
    /// register of eight.
    odd_register: [i32; 8],
    /// Per lane, all ones where the start edge is in the third or fourth
    /// register of eight.
    high_registers: [i32; 8],
    /// Per lane, the most digits.
    most: [i32; 8],
    /// The lanes in use.
    lanes: u8,
    /// Per lane, its token (0 where unused), for the short check.
    tokens: [usize; 8],
    /// Edges a line needs for the short check to read every lane's: two
    /// past the last checked token's start; more than any line has where
    /// a lane's most digits do not fit its 32-bit lanes.
    edges_needed: usize,
}

impl NumberLanes {
    /// Lanes for `checked` (index, most digits), which fit
    /// ([`super::NumberLanes::new`] checks).
    pub(crate) fn new(checked: &[(usize, usize)]) -> Self {
        let mut lanes = Self {
            places: [0; 8],
            odd_register: [0; 8],
            high_registers: [0; 8],
            most: [0; 8],
            lanes: ((1u16 << checked.len()) - 1) as u8,
            tokens: [0; 8],
            edges_needed: if checked.iter().all(|&(_, most)| most < 32) {
                checked.iter().map(|&(i, _)| 2 * i + 2).max().unwrap_or(0)
            } else {
                usize::MAX
            },
        };
        for (lane, &(i, most)) in checked.iter().enumerate() {
            lanes.tokens[lane] = i;
            // Token i's edges are 2i and 2i + 1: one register of eight
            // holds both, as 2i is even.
            let start = 2 * i;
            lanes.places[lane] = (start % 8) as i32;
            lanes.odd_register[lane] = -i32::from((start / 8) % 2 == 1);
            lanes.high_registers[lane] = -i32::from(start / 16 == 1);
            lanes.most[lane] = most as i32;
        }
        lanes
    }

    /// What the scalar quick check says of the line whose tokens have
    /// `edges` and `digits` (its digit masks), except that a `-` fails here
    /// too (the exact check takes those lines); `None` for lines whose digit
    /// masks are more than eight words (of 448 bytes or more).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn look_valid(&self, edges: &[u32], digits: &[u64]) -> Option<bool> {
        use std::arch::x86_64::{
            _mm256_add_epi32, _mm256_add_epi64, _mm256_and_si256, _mm256_blendv_epi8,
            _mm256_castsi256_ps, _mm256_castsi256_si128, _mm256_cmpeq_epi64, _mm256_cmpgt_epi32,
            _mm256_cvtepu32_epi64, _mm256_extracti128_si256, _mm256_loadu_si256,
            _mm256_maskload_epi32, _mm256_maskload_epi64, _mm256_movemask_ps, _mm256_or_si256,
            _mm256_permutevar8x32_epi32, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_slli_epi64,
            _mm256_sub_epi32,
        };
        if digits.len() > 8 {
            return None;
        }
        if let Some(valid) = self.look_valid_short(edges, digits) {
            return Some(valid);
        }
        // SAFETY: each array is eight i32, one 32-byte vector.
        let load = |array: &[i32; 8]| unsafe { _mm256_loadu_si256(array.as_ptr().cast()) };
        // The first 32 edges in four registers; a masked load reads only
        // its set lanes, here the ones within the slice.
        let edge_register = |k: usize| unsafe {
            _mm256_maskload_epi32(
                edges.as_ptr().wrapping_add(8 * k).cast(),
                first_lanes(edges.len().saturating_sub(8 * k)),
            )
        };
        let registers: [__m256i; 4] = [
            edge_register(0),
            edge_register(1),
            edge_register(2),
            edge_register(3),
        ];
        let odd = load(&self.odd_register);
        let high = load(&self.high_registers);
        let pick = |places: __m256i| {
            let [r0, r1, r2, r3] = registers.map(|r| _mm256_permutevar8x32_epi32(r, places));
            _mm256_blendv_epi8(
                _mm256_blendv_epi8(r0, r1, odd),
                _mm256_blendv_epi8(r2, r3, odd),
                high,
            )
        };
        let places = load(&self.places);
        let starts = pick(places);
        let ends = pick(_mm256_add_epi32(places, _mm256_set1_epi32(1)));
        let lens = _mm256_sub_epi32(ends, starts);
        let too_long = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(
            lens,
            load(&self.most),
        ))) as u8;
        // The digit masks, eight words at most, in two registers of four.
        let word_mask = |n: usize| {
            let n = n.min(4);
            // Two 32-bit lanes of ones per word.
            first_lanes(2 * n)
        };
        // SAFETY: masked loads read only the words within the slice.
        let (low_words, high_words) = unsafe {
            (
                _mm256_maskload_epi64(digits.as_ptr().cast(), word_mask(digits.len())),
                _mm256_maskload_epi64(
                    digits.as_ptr().wrapping_add(4).cast(),
                    word_mask(digits.len().saturating_sub(4)),
                ),
            )
        };
        // Word `w` (0..8) of the masks, per 64-bit lane: a permute of 32-bit
        // halves within each register, then a blend by `w >= 4`. (Word 8
        // is never asked for: with eight words at most, a token starts in
        // block 6 at the latest, the last being a block of none.)
        let word = |w: __m256i| {
            let within = _mm256_slli_epi64::<1>(_mm256_and_si256(w, _mm256_set1_epi64x(3)));
            let halves = _mm256_or_si256(
                within,
                _mm256_slli_epi64::<32>(_mm256_add_epi64(within, _mm256_set1_epi64x(1))),
            );
            let four = _mm256_set1_epi64x(4);
            _mm256_blendv_epi8(
                _mm256_permutevar8x32_epi32(low_words, halves),
                _mm256_permutevar8x32_epi32(high_words, halves),
                _mm256_cmpeq_epi64(_mm256_and_si256(w, four), four),
            )
        };
        let half = |v: __m256i, upper: bool| {
            _mm256_cvtepu32_epi64(if upper {
                _mm256_extracti128_si256::<1>(v)
            } else {
                _mm256_castsi256_si128(v)
            })
        };
        let digits = all_digits(&word, half(starts, false), half(lens, false))
            | all_digits(&word, half(starts, true), half(lens, true)) << 4;
        Some(!too_long & digits & self.lanes == self.lanes)
    }

    /// [`Self::look_valid`] for lines of at most four digit words (under
    /// 192 bytes, as nearly every flow-log line is); `None` for others.
    /// Every lane's token is read as two scalar loads, and the digit
    /// masks fit one register as eight 32-bit words, so all eight lanes
    /// are checked at once in 32-bit lanes: a token of at most 31 digits
    /// lies within two of those words, which a permute each picks.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn look_valid_short(&self, edges: &[u32], digits: &[u64]) -> Option<bool> {
        use std::arch::x86_64::{
            _mm256_add_epi32, _mm256_and_si256, _mm256_castsi256_ps, _mm256_cmpeq_epi32,
            _mm256_cmpgt_epi32, _mm256_loadu_si256, _mm256_maskload_epi64, _mm256_movemask_ps,
            _mm256_or_si256, _mm256_permutevar8x32_epi32, _mm256_set1_epi32, _mm256_setr_epi32,
            _mm256_sllv_epi32, _mm256_srli_epi32, _mm256_srlv_epi32, _mm256_sub_epi32,
        };
        if digits.len() > 4 || edges.len() < self.edges_needed {
            return None;
        }
        let edge = |k: usize| {
            // SAFETY: every lane's token is below `edges_needed / 2`, and
            // the slice has at least `edges_needed` edges (checked above).
            unsafe { *edges.get_unchecked(k) as i32 }
        };
        let [t0, t1, t2, t3, t4, t5, t6, t7] = self.tokens.map(|t| 2 * t);
        let starts = _mm256_setr_epi32(
            edge(t0),
            edge(t1),
            edge(t2),
            edge(t3),
            edge(t4),
            edge(t5),
            edge(t6),
            edge(t7),
        );
        let ends = _mm256_setr_epi32(
            edge(t0 + 1),
            edge(t1 + 1),
            edge(t2 + 1),
            edge(t3 + 1),
            edge(t4 + 1),
            edge(t5 + 1),
            edge(t6 + 1),
            edge(t7 + 1),
        );
        // SAFETY: the array is one 32-byte vector, and the masked load
        // reads only the words within the slice (four at most).
        let (most, words) = unsafe {
            (
                _mm256_loadu_si256(self.most.as_ptr().cast()),
                _mm256_maskload_epi64(digits.as_ptr().cast(), first_lanes(2 * digits.len())),
            )
        };
        let lens = _mm256_sub_epi32(ends, starts);
        let too_long = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(lens, most)));
        // The 32-bit word of the masks each token starts in, and the next:
        // a token starts before the last 64-bit word (a line's words end
        // with an empty one), so both are among the eight.
        let at = _mm256_srli_epi32::<5>(starts);
        let shift = _mm256_and_si256(starts, _mm256_set1_epi32(31));
        let thirty_two = _mm256_set1_epi32(32);
        // A shift by 32 or more gives zeros: a token at the start of its
        // word takes nothing from the next, and one of over 31 bytes wants
        // no digits here (it is too long for every lane).
        let window = _mm256_or_si256(
            _mm256_srlv_epi32(_mm256_permutevar8x32_epi32(words, at), shift),
            _mm256_sllv_epi32(
                _mm256_permutevar8x32_epi32(words, _mm256_add_epi32(at, _mm256_set1_epi32(1))),
                _mm256_sub_epi32(thirty_two, shift),
            ),
        );
        let want = _mm256_srlv_epi32(_mm256_set1_epi32(-1), _mm256_sub_epi32(thirty_two, lens));
        let all_digits = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(
            _mm256_and_si256(window, want),
            want,
        )));
        let valid = (all_digits & !too_long) as u8;
        Some(valid & self.lanes == self.lanes)
    }

    /// Whether a line of `words` digit words and `edges` edges takes the
    /// short check.
    #[cfg(test)]
    pub(crate) fn short_for(&self, words: usize, edges: usize) -> bool {
        words <= 4 && edges >= self.edges_needed
    }
}

/// Per 64-bit lane, whether the `lens` bytes from `starts` are all digits
/// (bit `i` of the result for lane `i`), where `word(w)` gives each lane's
/// digit word `w`: as in `Tokens::all_digits`, the two words around the
/// token, shifted to start at it, against `len` ones.
#[target_feature(enable = "avx2")]
#[inline]
fn all_digits(word: &impl Fn(__m256i) -> __m256i, starts: __m256i, lens: __m256i) -> u8 {
    use std::arch::x86_64::{
        _mm256_add_epi64, _mm256_and_si256, _mm256_castsi256_pd, _mm256_cmpeq_epi64,
        _mm256_movemask_pd, _mm256_or_si256, _mm256_set1_epi64x, _mm256_sllv_epi64,
        _mm256_srli_epi64, _mm256_srlv_epi64, _mm256_sub_epi64,
    };
    let sixty_four = _mm256_set1_epi64x(64);
    let block = _mm256_srli_epi64::<6>(starts);
    let shift = _mm256_and_si256(starts, _mm256_set1_epi64x(63));
    // A shift by 64 or more gives zeros.
    let window = _mm256_or_si256(
        _mm256_srlv_epi64(word(block), shift),
        _mm256_sllv_epi64(
            word(_mm256_add_epi64(block, _mm256_set1_epi64x(1))),
            _mm256_sub_epi64(sixty_four, shift),
        ),
    );
    let want = _mm256_srlv_epi64(_mm256_set1_epi64x(-1), _mm256_sub_epi64(sixty_four, lens));
    _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(
        _mm256_and_si256(window, want),
        want,
    ))) as u8
}

/// All ones in the first `n` of eight 32-bit lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn first_lanes(n: usize) -> __m256i {
    // A window into eight ones and eight zeros.
    const FIRST: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: 8 - n.min(8) + 8 is at most 16, the array's length.
    unsafe { std::arch::x86_64::_mm256_loadu_si256(FIRST.as_ptr().add(8 - n.min(8)).cast()) }
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
