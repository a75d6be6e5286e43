//! Plain integer code, which runs on any processor: the block masks where
//! there is no vector code for the processor (and as the reference the
//! vector masks are tested against), and the edges at the baseline level
//! (SSE2 on x86-64, any other processor) and as the reference the vector
//! edges are tested against.

#[cfg(any(test, not(target_arch = "x86_64")))]
use super::BlockMasks;

/// The masks of `block` in plain integer arithmetic, 8 bytes per step
/// (SWAR), for processors other than x86-64.
#[cfg(any(test, not(target_arch = "x86_64")))]
pub(crate) fn masks(block: &[u8; 64]) -> BlockMasks {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Moves the top bit of each byte k to bit 56 + k (no two products
    // overlap, so nothing carries).
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let gather = |top_bits: u64| (top_bits >> 7).wrapping_mul(GATHER) >> 56;
    let equal = |word: u64, byte: u8| {
        let x = word ^ u64::from_ne_bytes([byte; 8]);
        // The top bit of each byte is set exactly where x's byte is zero.
        gather(!(((x & LOW7).wrapping_add(LOW7)) | x | LOW7))
    };
    let mut masks = BlockMasks {
        spaces: 0,
        newlines: 0,
        non_ascii: 0,
        digits: 0,
    };
    for (i, word) in block.chunks_exact(8).enumerate() {
        let word: [u8; 8] = word.try_into().expect("chunks_exact gives 8 bytes");
        let word = u64::from_le_bytes(word);
        masks.spaces |= equal(word, b' ') << (i * 8);
        masks.newlines |= equal(word, b'\n') << (i * 8);
        masks.non_ascii |= gather(word & HIGH) << (i * 8);
        // A byte is a digit if it is ASCII and 0..=9 once '0' is taken
        // off: 0x76 more carries into its top bit from 10 on.
        let t = word ^ u64::from_ne_bytes([b'0'; 8]);
        let not_digit = ((t & LOW7).wrapping_add(u64::from_ne_bytes([0x76; 8])) | t) & HIGH;
        masks.digits |= gather(!not_digit & HIGH) << (i * 8);
    }
    masks
}

/// Appends the edges of the block at `offset` to `edges`: bit `i` of
/// `changes` is an edge at `offset + i`. One step per edge.
pub(crate) fn write_edges(mut changes: u64, offset: usize, edges: &mut Vec<u32>) {
    let offset = offset as u32; // offsets stay within MAX_LINE_BYTES + 64
    // Filled through the spare capacity: a loop over a slice keeps the
    // length in a register instead of storing it back per edge (push),
    // and nothing is written twice (resize).
    let count = changes.count_ones() as usize;
    let filled = edges.len();
    edges.reserve(count);
    for edge in &mut edges.spare_capacity_mut()[..count] {
        edge.write(offset + changes.trailing_zeros());
        changes &= changes - 1;
    }
    // SAFETY: the loop above initialized the `count` slots after `filled`.
    unsafe { edges.set_len(filled + count) };
}
