//! Numeric fields: checked and parsed without a branch per digit.
//!
//! Every numeric field of every line is checked, and the ones a column or
//! a record-filter test takes are parsed. The common case, up to 9 digits
//! for an `Int32` and 18 for an `Int64`, always fits its type, so a test
//! of the line's digit mask ([`Tokens::all_digits`]) decides it, and a
//! requested number is read eight digits at a time ([`parse_digits`]).
//! [`parse_integer`], digit by digit, decides everything else and is what
//! the fast forms are tested against.

use crate::catalogue::FieldKind;

use super::tokenizer::Tokens;

/// Whether `token`, which starts at `start` in the line split into
/// `tokens`, is a number of `kind`, as [`parse_integer`] and the range
/// check would say, without computing it: up to 9 digits always fit an
/// `Int32` and up to 18 an `Int64`, so for those a test of the line's
/// digit mask decides, with no branch on how many digits there are (which
/// mispredicts in a digit-by-digit loop). Empty and longer tokens, rare,
/// are parsed.
#[inline]
pub(crate) fn is_integer(tokens: &Tokens, token: &[u8], start: usize, kind: FieldKind) -> bool {
    let most_digits = if kind == FieldKind::Int32 { 9 } else { 18 };
    if (1..=most_digits).contains(&token.len()) {
        return tokens.all_digits(start, start + token.len());
    }
    parse_integer(token).is_some_and(|v| kind == FieldKind::Int64 || i32::try_from(v).is_ok())
}

/// The most digits the quick check
/// ([`RecordDecoder::numbers_look_valid`](super::records::RecordDecoder::numbers_look_valid))
/// takes for a field of `kind`: as many as always fit the type (so no
/// range check), and for a parsed field at most the 16 that
/// [`parse_digits`] reads.
pub(crate) fn most_quick_digits(kind: FieldKind, parsed: bool) -> usize {
    match (kind, parsed) {
        (FieldKind::Int32, _) => 9,
        (_, false) => 18,
        (_, true) => 16,
    }
}

/// The number at bytes `start..end` of `line`, split into `tokens`, if it is
/// 1 to `most` (at most 16) digits and ends at least 8 bytes (16 past
/// eight digits) into the line:
/// read eight digits at a time from the line's bytes, with no branch per
/// digit (a digit loop mispredicts its exit as lengths vary). `None` also
/// where [`parse_integer`] would give a number; it decides those.
#[inline]
pub(crate) fn parse_digits(
    line: &[u8],
    tokens: &Tokens,
    start: usize,
    end: usize,
    most: usize,
) -> Option<i64> {
    debug_assert!(most <= 16);
    let len = end - start;
    // The words read end at `end` and, past eight digits, at `end - 8`.
    let bytes_read = if len > 8 { 16 } else { 8 };
    if !(1..=most).contains(&len) || end < bytes_read || !tokens.all_digits(start, end) {
        return None;
    }
    let word_ending_at =
        |end: usize| u64::from_le_bytes(line[end - 8..end].try_into().expect("eight bytes"));
    let last = eight_digits(word_ending_at(end), len.min(8));
    let first = if len > 8 {
        eight_digits(word_ending_at(end - 8), len - 8)
    } else {
        0
    };
    Some((first * 100_000_000 + last) as i64)
}

/// The value of the `len` (1 to 8) ASCII digits in the high bytes of
/// `word` (little-endian, so the first digit is the lowest of them): the
/// bytes below are zeros in front, then pairs, fours and the eight are
/// combined with three multiplications (the SWAR method in Lemire's "Faster
/// integer parsing").
#[inline]
fn eight_digits(word: u64, len: usize) -> u64 {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const FIRST_AND_FIFTH: u64 = 0x0000_00FF_0000_00FF;
    let digits = (word ^ ZEROS) & (u64::MAX << (8 * (8 - len)));
    // Byte 2k holds 10 * digit 2k + digit 2k+1.
    let pairs = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let high = (pairs & FIRST_AND_FIFTH).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((pairs >> 16) & FIRST_AND_FIFTH).wrapping_mul(1 + (10_000 << 32));
    high.wrapping_add(low) >> 32
}

/// Parses an unsigned decimal integer without allocating.
pub(crate) fn parse_integer(token: &[u8]) -> Option<i64> {
    if token.is_empty() || token.len() > 18 {
        // 18 digits always fit in an i64; longer values are not flow-log numbers.
        return None;
    }
    let mut value: i64 = 0;
    for &b in token {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tokenizer::{split_fields, split_line};
    use crate::generate::SplitMix;

    #[test]
    fn integer_check_agrees_with_parsing() {
        // Tokens of every length up to 20 from digits and near-digits, at
        // many places in lines of several lengths, so tokens fall within
        // and across the 64-byte blocks of the digit masks.
        let alphabet = b"0123456789/:-a\xff";
        let mut rng = SplitMix(0x9E37_79B9_7F4A_7C15);
        let mut next = |n: usize| rng.below(n as u64) as usize;
        let mut tokens = Tokens::default();
        for _ in 0..200_000 {
            let len = next(21);
            let mut token: Vec<u8> = (0..len).map(|_| b'0' + next(10) as u8).collect();
            if len > 0 && next(3) == 0 {
                token[next(len)] = alphabet[next(alphabet.len())];
            }
            let (before, after) = (next(140), next(12));
            let mut line: Vec<u8> = (0..before).map(|i| [b'7', b' '][i % 2]).collect();
            line.push(b' ');
            line.extend_from_slice(&token);
            line.extend(std::iter::repeat_n(b' ', after));
            let start = before + 1;
            for split in [false, true] {
                if split {
                    let mut data = line.clone();
                    data.push(b'\n');
                    data.extend(std::iter::repeat_n(b'5', 64));
                    split_line(&data, &mut tokens).expect("a line");
                } else {
                    split_fields(&line, &mut tokens);
                }
                let end = start + token.len();
                for most in [9, 16] {
                    let quick = parse_digits(&line, &tokens, start, end, most);
                    if quick.is_some() {
                        assert_eq!(quick, parse_integer(&token), "{token:?}");
                    }
                    let bytes_read = if token.len() > 8 { 16 } else { 8 };
                    let takes = (1..=most).contains(&token.len())
                        && end >= bytes_read
                        && token.iter().all(u8::is_ascii_digit);
                    assert_eq!(quick.is_some(), takes, "{token:?} up to {most}");
                }
                for kind in [FieldKind::Int32, FieldKind::Int64] {
                    let want = parse_integer(&token)
                        .is_some_and(|v| kind == FieldKind::Int64 || i32::try_from(v).is_ok());
                    assert_eq!(
                        is_integer(&tokens, &token, start, kind),
                        want,
                        "{:?} as {kind:?} at {start} of {:?}",
                        String::from_utf8_lossy(&token),
                        String::from_utf8_lossy(&line)
                    );
                }
            }
        }
    }
}
