//! A line into tokens at runs of spaces, 64 bytes at a time.
//!
//! A token is kept as its two edges ([`Tokens`]). For each 64-byte block the
//! tokenizer takes the block's masks ([`BlockMasks`]: spaces, newlines,
//! non-ASCII bytes, digits) and reads the edges off the changes between
//! space and non-space, with no branch per byte. The same pass keeps the
//! digit masks, against which numbers are checked, finds whether the line
//! is ASCII and, in the hot loop ([`split_line_with`]), where it ends.

use super::MAX_LINE_BYTES;
use super::simd::{self, BlockMasks, Simd};

/// The tokens of one line, kept as their edges: the offsets where a run
/// of spaces ends (a token starts) and where one begins (a token ends).
/// Edges alternate start, end, start, ..., so token `i` is edges `2i` and
/// `2i + 1`, and a tokenizer only has to list every change between space
/// and non-space, in order, with no branch on which kind each one is.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// Offsets within the line; lines are at most [`MAX_LINE_BYTES`] long.
    edges: Vec<u32>,
    /// Per 64 bytes of the line, which are ASCII digits (bit `i` for byte
    /// `64 * block + i`), then a block of none: found with the spaces, so
    /// checking that a number is all digits is a mask test, not a pass
    /// over its bytes.
    digits: Vec<u64>,
}

impl Tokens {
    pub(crate) fn with_capacity(tokens: usize) -> Self {
        Self {
            edges: Vec::with_capacity(2 * tokens),
            digits: Vec::with_capacity(4),
        }
    }

    fn clear(&mut self) {
        self.edges.clear();
        self.digits.clear();
    }

    /// Ends the digit masks of a line (the block [`Tokens::all_digits`]
    /// may read past the last).
    fn finish_digits(&mut self) {
        self.digits.push(0);
    }

    /// Whether bytes `start..end` of the line (1 to 64 of them, within
    /// the line) are all ASCII digits.
    #[inline]
    pub(crate) fn all_digits(&self, start: usize, end: usize) -> bool {
        let block = start / 64;
        // Two blocks' masks, so a token across their boundary needs no branch.
        let pair = u128::from(self.digits[block]) | u128::from(self.digits[block + 1]) << 64;
        let window = (pair >> (start % 64)) as u64;
        let want = u64::MAX >> (64 - (end - start));
        window & want == want
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.edges.len() / 2
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Token `i` as a `(start, end)` byte range of the line.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> (usize, usize) {
        (self.edges[2 * i] as usize, self.edges[2 * i + 1] as usize)
    }

    /// The edges (token `i` is `edges[2 * i]..edges[2 * i + 1]`), for the
    /// number lanes.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) fn edges(&self) -> &[u32] {
        &self.edges
    }

    /// The digit masks, one per 64 bytes of the line and a last of none,
    /// for the number lanes.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    pub(crate) fn digits(&self) -> &[u64] {
        &self.digits
    }

    /// Drops a final `\r` from the line of length `line_len`: from the last
    /// token, or the token itself when it is only the `\r`.
    pub(crate) fn drop_final_cr(&mut self, line_len: usize) {
        if let [.., start, end] = self.edges[..]
            && end as usize == line_len
        {
            if end - 1 == start {
                self.edges.truncate(self.edges.len() - 2);
            } else {
                *self.edges.last_mut().expect("two edges") -= 1;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn pairs(&self) -> Vec<(usize, usize)> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// Splits a line at runs of spaces into tokens.
///
/// The hot loop's tokenizer: it finds the spaces of 64 bytes at a time as
/// a bit mask, then reads token edges off the mask's changes, instead of
/// searching for each space on its own (a search, with its branches, per
/// token). Returns whether the line is all ASCII, which the same pass finds
/// for free.
pub(crate) fn split_fields(line: &[u8], tokens: &mut Tokens) -> bool {
    tokens.clear();
    let mut tokenizer = Tokenizer::default();
    let mut non_ascii = 0u64;
    let n = line.len();
    let mut block = 0;
    while block < n {
        let bytes = &line[block..n.min(block + 64)];
        let masks = match <&[u8; 64]>::try_from(bytes) {
            Ok(full) => BlockMasks::with::<{ Simd::BASELINE }>(full),
            Err(_) => {
                // Padding with spaces adds no token and no non-ASCII byte.
                let mut padded = [b' '; 64];
                padded[..bytes.len()].copy_from_slice(bytes);
                BlockMasks::with::<{ Simd::BASELINE }>(&padded)
            }
        };
        non_ascii |= masks.non_ascii;
        tokens.digits.push(masks.digits);
        tokenizer.block_with::<{ Simd::BASELINE }>(block, masks.spaces, tokens);
        block += 64;
    }
    tokens.finish_digits();
    tokenizer.finish(n, tokens);
    non_ascii == 0
}

/// [`split_line_with`] at the baseline level.
#[cfg(test)]
pub(crate) fn split_line(data: &[u8], tokens: &mut Tokens) -> Option<(usize, bool)> {
    split_line_with::<{ Simd::BASELINE }>(data, tokens)
}

/// Splits the line at the start of `data` as [`split_fields`] does, finding
/// its end in the same pass (no separate search for the newline, and no
/// padded copy of its last block): returns the line's length without the
/// `\n`, and whether it is ASCII. `None` when no newline is found within
/// the whole 64-byte blocks of `data` and [`MAX_LINE_BYTES`]; the caller
/// then reads the line the slower way, which handles every case.
///
/// With the masks of `SIMD` (a [`Simd`] level the processor has); inlined
/// into each level's copy of the hot loop.
#[inline(always)]
pub(crate) fn split_line_with<const SIMD: u8>(
    data: &[u8],
    tokens: &mut Tokens,
) -> Option<(usize, bool)> {
    tokens.clear();
    let mut tokenizer = Tokenizer::default();
    let mut non_ascii = 0u64;
    let mut block = 0;
    while block + 64 <= data.len() && block <= MAX_LINE_BYTES {
        let full: &[u8; 64] = data[block..block + 64].try_into().expect("64 bytes");
        let masks = BlockMasks::with::<SIMD>(full);
        if masks.newlines == 0 {
            non_ascii |= masks.non_ascii;
            tokens.digits.push(masks.digits);
            tokenizer.block_with::<SIMD>(block, masks.spaces, tokens);
            block += 64;
            continue;
        }
        let newline = masks.newlines.trailing_zeros();
        let len = block + newline as usize;
        if len > MAX_LINE_BYTES {
            return None;
        }
        // Bytes from the newline on count as spaces and are not checked.
        let line_bits = (1u64 << newline) - 1;
        non_ascii |= masks.non_ascii & line_bits;
        tokens.digits.push(masks.digits & line_bits);
        tokens.finish_digits();
        tokenizer.block_with::<SIMD>(block, masks.spaces | !line_bits, tokens);
        return Some((len, non_ascii == 0));
    }
    None
}

/// Whether the byte before the next block is a space, carried from one
/// 64-byte block to the next.
struct Tokenizer {
    /// The start of the line counts as a space.
    after_space: bool,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self { after_space: true }
    }
}

impl Tokenizer {
    /// The bits where the block whose space mask is `spaces` changes
    /// between space and non-space (an edge), and notes whether it ends
    /// in a space for the next block.
    #[inline(always)]
    fn changes(&mut self, spaces: u64) -> u64 {
        let before = (spaces << 1) | u64::from(self.after_space);
        self.after_space = spaces >> 63 == 1;
        spaces ^ before
    }

    /// Adds the edges in the block at `offset`, whose space mask is
    /// `spaces` (bit `i` for byte `offset + i`), at the level `SIMD`, which
    /// the processor must have.
    #[inline(always)]
    fn block_with<const SIMD: u8>(&mut self, offset: usize, spaces: u64, tokens: &mut Tokens) {
        let changes = self.changes(spaces);
        simd::write_edges::<SIMD>(changes, offset, &mut tokens.edges);
    }

    /// Closes a token still open at the end of a line of length `n`.
    fn finish(&self, n: usize, tokens: &mut Tokens) {
        if !self.after_space {
            tokens.edges.push(n as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokenizer_agrees_with_a_naive_split() {
        let naive = |line: &[u8]| -> Vec<(usize, usize)> {
            let mut out = vec![];
            let mut i = 0;
            while i < line.len() {
                if line[i] == b' ' {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < line.len() && line[i] != b' ' {
                    i += 1;
                }
                out.push((start, i));
            }
            out
        };
        let mut lines: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b" ".to_vec(),
            b"a".to_vec(),
            b"  a  bb   ccc ".to_vec(),
            b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK".to_vec(),
        ];
        // Tokens and gaps across every 8- and 64-byte boundary.
        for len in 55..140 {
            for gap in [1, 2, 9] {
                let mut line = vec![b'x'; len];
                for i in (3..len).step_by(7 + gap) {
                    line[i..(i + gap).min(len)].fill(b' ');
                }
                lines.push(line);
            }
        }
        let mut tokens = Tokens::default();
        lines.push("naïve  café".as_bytes().to_vec());
        lines.push(b"ascii \x80".to_vec());
        // Every byte but the newline, twice: each mask at each level sees
        // the edges of every byte range ('/' and ':' around the digits).
        lines.push((0..=255u8).chain(0..=255).filter(|&b| b != b'\n').collect());
        // Blocks of 17 to 64 edges: every group of the vector tokenizer's
        // offsets.
        for pattern in [&b"a "[..], b" a", b"ab ", b"abc  ", b"abcd "] {
            lines.push(pattern.repeat(150 / pattern.len()));
        }
        for line in &lines {
            let ascii = split_fields(line, &mut tokens);
            assert_eq!(
                tokens.pairs(),
                naive(line),
                "{:?}",
                String::from_utf8_lossy(line)
            );
            assert_eq!(ascii, line.is_ascii());
            // The portable masks, used off x86-64, agree block by block.
            for block in line.chunks(64) {
                let mut padded = [b'\n'; 64];
                padded[..block.len()].copy_from_slice(block);
                let portable = BlockMasks::portable(&padded);
                for ours in simd_masks(&padded) {
                    assert_eq!(ours.spaces, portable.spaces, "{block:?}");
                    assert_eq!(ours.newlines, portable.newlines, "{block:?}");
                    assert_eq!(ours.non_ascii, portable.non_ascii, "{block:?}");
                    assert_eq!(ours.digits, portable.digits, "{block:?}");
                }
            }
            // Split together with finding its end, followed by more text, at
            // every level, as the hot loop splits.
            let mut data = line.clone();
            data.push(b'\n');
            data.extend(std::iter::repeat_n(b'x', 64));
            for (level, found) in split_line_at_every_level(&data) {
                assert_eq!(
                    found,
                    (Some((line.len(), line.is_ascii())), naive(line)),
                    "level {level}: {:?}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    /// [`split_line_with`] at every level this processor has: the level,
    /// what it returned and the tokens.
    #[allow(clippy::type_complexity)]
    fn split_line_at_every_level(
        data: &[u8],
    ) -> Vec<(u8, (Option<(usize, bool)>, Vec<(usize, usize)>))> {
        let mut all = vec![];
        let mut run = |level: u8, split: fn(&[u8], &mut Tokens) -> Option<(usize, bool)>| {
            // Tokens of its own: edges another level left behind in the
            // spare capacity would hide ones this level failed to write.
            let mut tokens = Tokens::default();
            let found = split(data, &mut tokens);
            all.push((level, (found, tokens.pairs())));
        };
        run(Simd::BASELINE, split_line_with::<{ Simd::BASELINE }>);
        #[cfg(target_arch = "x86_64")]
        {
            let level = Simd::detect();
            if level >= Simd::AVX2 {
                run(Simd::AVX2, split_line_with::<{ Simd::AVX2 }>);
            }
            if level >= Simd::AVX512 {
                run(Simd::AVX512, split_line_with::<{ Simd::AVX512 }>);
            }
        }
        all
    }

    /// The masks of `block` at every level this processor has.
    fn simd_masks(block: &[u8; 64]) -> Vec<BlockMasks> {
        let mut all = vec![BlockMasks::with::<{ Simd::BASELINE }>(block)];
        #[cfg(target_arch = "x86_64")]
        {
            let level = Simd::detect();
            if level >= Simd::AVX2 {
                all.push(BlockMasks::with::<{ Simd::AVX2 }>(block));
            }
            if level >= Simd::AVX512 {
                all.push(BlockMasks::with::<{ Simd::AVX512 }>(block));
            }
        }
        all
    }
}
