//! The decoder's instruction levels, and the one place that picks one.
//!
//! The hot loop ([`TextDecoder::feed`](super::TextDecoder::feed)) is
//! compiled once per level ([`Simd`]), and a decoder runs the copy of the
//! best level the processor has, found when the decoder is made
//! ([`Simd::detect`], from the crate's one detection,
//! [`Cpu::detect`](crate::cpu::Cpu::detect)).
//! The levels differ in a few steps, each written once per level:
//!
//! - the masks of a 64-byte block: spaces, newlines, non-ASCII bytes,
//!   digits ([`BlockMasks::with`]);
//! - the edges of a block's tokens, written from its mask of changes
//!   between space and non-space ([`write_edges`]);
//! - at AVX2 (and so at AVX-512), the quick check of several numbers at
//!   once ([`NumberLanes`]).
//!
//! One file per level: `portable` (plain integer code, any processor),
//! `sse2` (the x86-64 baseline), `avx2`, `avx512`. This file alone picks
//! among them: [`dispatch`] for a whole copy of the hot loop, and
//! [`BlockMasks::with`] and [`write_edges`] for the steps inside it.
//!
//! # Safety
//!
//! A level's code is compiled with `#[target_feature]`, and running it on a
//! processor without those features is undefined behaviour. These rules
//! keep every call sound; the `SAFETY` comments at the calls refer to them.
//!
//! - A level is a `u8`, one of [`Simd`]'s constants, as a value or as the
//!   const parameter `SIMD`. A level in use is always one that
//!   [`Simd::detect`] returned, or a lower one (whose features are a subset
//!   of it). The functions that take a level trust it without checking, as
//!   the `inline(always)` steps must, to be compiled into each level's copy
//!   of the hot loop; the tests that run a level check `Simd::detect`
//!   first.
//! - A level's `#[target_feature]` lists enable only features that
//!   `Simd::detect` requires for that level (and the features those
//!   imply).
//! - Only this file calls a level's `#[target_feature]` functions, through
//!   the dispatchers above and [`NumberLanes`], which is made at a level
//!   `Simd::detect` returned.
//! - Within a level's functions, `unsafe` is for memory (vector loads and
//!   stores): each such block says why it stays within its bounds.

mod portable;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod sse2;

/// The quick check of a line's unrequested numeric fields in AVX2
/// lanes, at the AVX2 and AVX-512 levels. AVX-512 processors run AVX2's
/// check too: an AVX-512 form that loaded the line's first 32 edges in
/// two 64-byte loads was slower, as those loads span several of the
/// tokenizer's stores still in flight, where AVX2's short check reads
/// each edge on its own.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct NumberLanes(avx2::NumberLanes);

#[cfg(target_arch = "x86_64")]
impl NumberLanes {
    /// Lanes at `level`, one [`Simd::detect`] returned, for `checked`
    /// (index, most digits), if the level has AVX2 and they fit: at most
    /// eight fields, among a line's first 16 tokens (32 edges).
    pub(crate) fn new(level: u8, checked: &[(usize, usize)]) -> Option<Self> {
        debug_assert!(level <= Simd::detect(), "level {level} not detected");
        // With nothing to check, the scalar check's empty fold says yes at
        // once (and the lanes would read edges a line may not have).
        if checked.is_empty() || checked.len() > 8 || checked.iter().any(|&(i, _)| i >= 16) {
            return None;
        }
        (level >= Simd::AVX2).then(|| Self(avx2::NumberLanes::new(checked)))
    }

    /// What the scalar quick check says of the line whose tokens have
    /// `edges` and `digits` (its digit masks), except that a `-` fails
    /// here too; `None` for lines whose digit masks are more than eight
    /// words.
    #[inline(always)]
    pub(crate) fn look_valid(&self, edges: &[u32], digits: &[u64]) -> Option<bool> {
        // SAFETY: lanes are made at a level `Simd::detect` returned, AVX2
        // or AVX-512, whose features include AVX2's.
        unsafe { self.0.look_valid(edges, digits) }
    }

    /// Whether a line of `words` digit words and `edges` edges takes the
    /// short check.
    #[cfg(test)]
    fn takes_short_check(&self, words: usize, edges: usize) -> bool {
        self.0.short_for(words, edges)
    }
}

/// The vector instructions the hot loop is compiled for: one copy of it
/// per level. A decoder detects the best level the processor has when it
/// is made, and each call of `TextDecoder::feed` runs that level's copy.
/// The masks and the edges are where the levels differ, and the number
/// lanes, which AVX2 and AVX-512 share, where they differ from the
/// baseline.
pub(crate) struct Simd;

impl Simd {
    /// SSE2 on x86-64 (every such processor has it), plain integer
    /// arithmetic elsewhere.
    pub(crate) const BASELINE: u8 = 0;
    /// AVX2 (with BMI and POPCNT for the edges' bit counts).
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX2: u8 = 1;
    /// AVX-512F and BW (for the block masks), VBMI2 (for the edges, see
    /// [`write_edges`]), and all of AVX2's.
    #[cfg(target_arch = "x86_64")]
    pub(crate) const AVX512: u8 = 2;

    /// The best level this processor has.
    pub(crate) fn detect() -> u8 {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = crate::cpu::Cpu::detect();
            if cpu.avx2 && cpu.avx512f && cpu.avx512bw && cpu.avx512vbmi2 {
                return Self::AVX512;
            }
            if cpu.avx2 {
                return Self::AVX2;
            }
        }
        Self::BASELINE
    }
}

/// Work compiled once per level, such as the hot loop: [`dispatch`] runs
/// the copy of a level.
pub(crate) trait AtLevel {
    /// What the work gives.
    type Output;

    /// The work at the level `SIMD`, which the processor must have. It
    /// should be `inline(always)`, so that all of it is compiled into the
    /// level's function, with that level's features.
    fn run<const SIMD: u8>(self) -> Self::Output;
}

/// Runs `work` at `level`, one [`Simd::detect`] returned.
#[inline(always)]
pub(crate) fn dispatch<W: AtLevel>(level: u8, work: W) -> W::Output {
    match level {
        // SAFETY: `Simd::detect` found these levels' features.
        #[cfg(target_arch = "x86_64")]
        Simd::AVX512 => unsafe { avx512::run(work) },
        #[cfg(target_arch = "x86_64")]
        Simd::AVX2 => unsafe { avx2::run(work) },
        _ => work.run::<{ Simd::BASELINE }>(),
    }
}

/// Bit masks of one 64-byte block: bit `i` describes byte `i`.
pub(crate) struct BlockMasks {
    pub(crate) spaces: u64,
    pub(crate) newlines: u64,
    /// Bytes with the high bit set (not ASCII).
    pub(crate) non_ascii: u64,
    /// ASCII digits.
    pub(crate) digits: u64,
}

impl BlockMasks {
    /// The masks at the level `SIMD`, which the processor must have.
    #[inline(always)]
    pub(crate) fn with<const SIMD: u8>(block: &[u8; 64]) -> Self {
        match SIMD {
            // SAFETY: the caller runs this level only where the processor
            // has its features (`Simd::detect`).
            #[cfg(target_arch = "x86_64")]
            Simd::AVX512 => unsafe { avx512::masks(block) },
            #[cfg(target_arch = "x86_64")]
            Simd::AVX2 => unsafe { avx2::masks(block) },
            #[cfg(target_arch = "x86_64")]
            _ => sse2::masks(block),
            #[cfg(not(target_arch = "x86_64"))]
            _ => portable::masks(block),
        }
    }

    /// The masks in plain integer arithmetic, which the others are tested
    /// against.
    #[cfg(test)]
    pub(crate) fn portable(block: &[u8; 64]) -> Self {
        portable::masks(block)
    }
}

/// Appends the edges of the block at `offset` to `edges` (bit `i` of
/// `changes` is an edge at `offset + i`), at the level `SIMD`, which the
/// processor must have.
#[inline(always)]
pub(crate) fn write_edges<const SIMD: u8>(changes: u64, offset: usize, edges: &mut Vec<u32>) {
    match SIMD {
        // SAFETY: the caller runs this level only where the processor
        // has its features (`Simd::detect`).
        #[cfg(target_arch = "x86_64")]
        Simd::AVX512 => unsafe { avx512::write_edges(changes, offset, edges) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Simd::AVX2 => unsafe { avx2::write_edges(changes, offset, edges) },
        _ => portable::write_edges(changes, offset, edges),
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::decode::tokenizer::{Tokens, split_fields};
    use crate::generate::SplitMix;

    #[test]
    fn number_lanes_agree_with_the_scalar_check() {
        if Simd::detect() < Simd::AVX2 {
            eprintln!("no AVX2 here: the lanes are not used");
            return;
        }
        let mut rng = SplitMix(0x1234_5678_9ABC_DEF1);
        let mut next = |n: usize| rng.below(n as u64) as usize;
        let pieces = ["-", "7", "12a", "x", "1234567890", "0000000000000000000"];
        let mut tokens = Tokens::default();
        let (mut said_yes, mut said_no) = (0, 0);
        // Lines AVX2 checked with its short check and with the general one.
        let (mut short, mut general) = (0, 0);
        for _ in 0..50_000 {
            let count = 1 + next(20);
            let words: Vec<String> = (0..count)
                .map(|_| match next(3) {
                    0 => pieces[next(pieces.len())].to_string(),
                    _ => {
                        let longest = if next(8) == 0 { 70 } else { 12 };
                        let len = 1 + next(longest);
                        (0..len)
                            .map(|_| char::from(b'0' + next(10) as u8))
                            .collect()
                    }
                })
                .collect();
            let line = words.join(&" ".repeat(1 + next(3)));
            split_fields(line.as_bytes(), &mut tokens);
            let mut checked = Vec::new();
            for i in 0..count.min(16) {
                if checked.len() < 8 && next(2) == 0 {
                    // 9 and 18 as the decoder asks; 31, the most the short
                    // check's 32-bit lanes take; 40, which they do not.
                    checked.push((i, [9, 18, 31, 40][next(4)]));
                }
            }
            let want = checked.iter().all(|&(i, most)| {
                let (start, end) = tokens.get(i);
                (1..=most).contains(&(end - start))
                    && line.as_bytes()[start..end].iter().all(u8::is_ascii_digit)
            });
            let Some(lanes) = NumberLanes::new(Simd::AVX2, &checked) else {
                assert!(checked.is_empty(), "{checked:?} fit the lanes");
                continue;
            };
            let Some(valid) = lanes.look_valid(tokens.edges(), tokens.digits()) else {
                assert!(tokens.digits().len() > 8, "{line}");
                continue;
            };
            assert_eq!(valid, want, "{checked:?} of {line:?}");
            if lanes.takes_short_check(tokens.digits().len(), tokens.edges().len()) {
                short += 1;
            } else {
                general += 1;
            }
            if valid {
                said_yes += 1;
            } else {
                said_no += 1;
            }
        }
        assert!(said_yes > 1000 && said_no > 1000, "{said_yes} / {said_no}");
        assert!(short > 1000 && general > 1000, "{short} / {general}");
    }
}
