//! Short text of digits and dots, such as IPv4 addresses ("10.0.1.5") and
//! account ids ("123456789012"), coded losslessly as a `u64`.
//!
//! A flow log's busiest text is its addresses (the table follows Athena's
//! types). [`crate::aggregate`] carries such group keys as these codes
//! while it splits, spills and aggregates rows, which makes each row less
//! than half the bytes and each key an integer to hash and compare, and
//! turns them back into text for its output. The cluster's shuffle does the
//! same, and the local cache keeps address columns as codes: half the bytes
//! of the text to write and read.
//!
//! Each character takes four bits, first character lowest: '.' is 1 and
//! '0' to '9' are 3 to 12; unused places are 0. The code of a text is
//! therefore unique to it (its length is where the zeros begin), and only
//! text of at most 15 such characters has one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, StringBuilder, StringViewArray, UInt64Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};

/// Characters a code holds at most.
pub(crate) const MAX_LEN: usize = 15;

/// The code of `text`, if it is at most [`MAX_LEN`] digits and dots.
#[inline]
pub(crate) fn pack(text: &[u8]) -> Option<u64> {
    if text.len() > MAX_LEN {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes[..text.len()].copy_from_slice(text);
    let word = u128::from_le_bytes(bytes);
    pack_word(word, text.len())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The code of the text in the first `len` (at most [`MAX_LEN`]) bytes of
/// `word` (little-endian), eight characters at a time: these keys come by
/// the million.
#[inline(always)]
fn pack_word(word: u128, len: usize) -> Option<u64> {
    let low = pack_eight(word as u64, len.min(8))?;
    let high = pack_eight((word >> 64) as u64, len.saturating_sub(8))?;
    Some(low | high << 32)
}

/// The 4-bit places of up to eight characters (the first `len` bytes of
/// `word`), packed into 32 bits, or `None` if one is not a digit or a dot.
#[inline(always)]
fn pack_eight(word: u64, len: usize) -> Option<u64> {
    let used = if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    };
    // Digits become 0..=9, '.' becomes 0x1E.
    let t = (word ^ (ONES * b'0' as u64)) & used;
    // High bit of each byte that is not 0..=9 (no carry between bytes).
    let not_digit = (((t & !HIGHS) + ONES * 0x76) | t) & HIGHS;
    // High bit of each byte that is exactly 0x1E ('.').
    let z = t ^ (ONES * 0x1E);
    let dot = !(((z & !HIGHS) + !HIGHS) | z) & HIGHS;
    if not_digit & !dot & used & HIGHS != 0 {
        return None;
    }
    let dots = (dot >> 7) * 0xFF;
    // A digit's place is its value plus 3, a dot's is 1; unused ones 0.
    let mut x = (((t + ONES * 3) & !dots) | (ONES & dots)) & used;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    Some(x)
}

/// The text whose code is `code`: its bytes (the first `len`; the bytes
/// past them are not zero).
#[inline]
pub(crate) fn text_of(code: u64) -> ([u8; 16], usize) {
    let len = (64 - code.leading_zeros() as usize).div_ceil(4);
    let spread = |half: u64| {
        let mut x = half & 0xFFFF_FFFF;
        x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
        x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
        x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        // Every place is 1..=12, so no carry: back to '.' and the digits.
        x + ONES * (b'.' - 1) as u64
    };
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&spread(code).to_le_bytes());
    bytes[8..].copy_from_slice(&spread(code >> 32).to_le_bytes());
    (bytes, len)
}

/// The text whose code is `code`.
#[cfg(test)]
pub(crate) fn unpack(code: u64) -> String {
    let (bytes, len) = text_of(code);
    String::from_utf8(bytes[..len].to_vec()).expect("digits and dots")
}

/// Whether a column of this type can be packed.
pub(crate) fn packs(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::Utf8View)
}

/// Stands for "no code" among codes: every code has its top four bits 0.
pub(crate) const NO_CODE: u64 = u64::MAX;

/// A text column's codes, and which rows have one. A null stays null (and
/// counts as packed: null has no text to lose); a row whose text has no
/// code has no meaningful code and false in the mask.
pub(crate) fn pack_column(column: &dyn Array) -> Result<(UInt64Array, BooleanBuffer)> {
    pack_column_with(column, Lanes::best())
}

/// Columns whose codes are kept on one thread: the address columns
/// (`srcaddr`, `dstaddr`, `pkt-srcaddr`, `pkt-dstaddr`) of the batches a
/// decoder makes of one chunk of text before the first is passed up.
const REMEMBERED: usize = 64;

/// A column packed by [`pack_and_remember`] or made by a decoder (by a weak
/// reference: its allocation, and so its address, is not reused while
/// remembered, but its buffers are not kept), with its codes.
struct Remembered {
    column: Weak<dyn Array>,
    codes: UInt64Array,
    packed: BooleanBuffer,
    /// Set when the codes are recalled.
    passed_on: Option<PassedOn>,
    /// Whether they were (kept for more only if the text was left out).
    recalled: bool,
}

thread_local! {
    /// The columns packed by [`pack_and_remember`] on this thread, oldest
    /// first.
    static REMEMBERED_CODES: std::cell::RefCell<Vec<Remembered>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The codes of columns whose coded values' text a decoder left out
/// ([`remember_textless`]): only these codes hold those values, so they
/// are kept, on every thread (a scan's batch may be passed up in a later
/// poll, on another worker), until their column is gone.
static TEXTLESS_CODES: Mutex<Vec<Remembered>> = Mutex::new(Vec::new());

/// Set once a grouping recalls the codes of a batch that a scan
/// partition's decoder made with it: the plan between them passes that
/// partition's batches on unread from then on (a partial aggregate under
/// the grouping that stops aggregating does so for good), and the decoder
/// may leave out the text of the values that have codes, unless another
/// key of the grouping has none (its rows are then aggregated as text).
#[derive(Debug, Clone, Default)]
pub(crate) struct PassedOn(Arc<PassedOnFlags>);

#[derive(Debug, Default)]
struct PassedOnFlags {
    recalled: AtomicBool,
    key_without_codes: AtomicBool,
}

impl PassedOn {
    /// Whether a grouping has recalled codes made with this.
    pub(crate) fn is_set(&self) -> bool {
        self.0.recalled.load(Ordering::Relaxed)
    }

    /// Notes that a batch of one of the grouping's keys had no code at
    /// all (text that is not addresses): its rows will not be packed, and
    /// text left out of the other keys would have to be made again.
    pub(crate) fn found_key_without_codes(&self) {
        self.0.key_without_codes.store(true, Ordering::Relaxed);
    }

    /// Whether the text of coded values may be left out now.
    pub(crate) fn leaves_text_out(&self) -> bool {
        self.is_set() && !self.0.key_without_codes.load(Ordering::Relaxed)
    }
}

/// [`pack_column`], or the codes the decoder made of it ([`recall`]),
/// remembered on this thread for one [`recall`] of the same column
/// ([`remember`]): a scan filling the local cache packs the address
/// columns of each batch before it passes the batch up, and a grouping by
/// addresses above it, run by the same poll, packs the same columns again.
/// Only the grouping's recall sets the [`PassedOn`] the codes were made
/// with: this one is the scan's own.
pub(crate) fn pack_and_remember(column: &ArrayRef) -> Result<(UInt64Array, BooleanBuffer)> {
    match take_remembered(column) {
        Some((kept, textless)) => {
            let codes = (kept.codes.clone(), kept.packed.clone());
            // A textless column's codes stay where any recall finds them.
            if !textless {
                keep_for_recall(column, kept.codes, kept.packed, kept.passed_on);
            }
            Ok(codes)
        }
        None => {
            let (codes, packed) = pack_column(column.as_ref())?;
            keep_for_recall(column, codes.clone(), packed.clone(), None);
            Ok((codes, packed))
        }
    }
}

/// Remembers on this thread, for one [`recall`], that `column`
/// packs into `codes`, `packed` telling which rows have one; for a column
/// made from codes (a cached address column read back as text), so the
/// codes are not made again. The codes are held until recalled or until
/// a later call finds their column gone: they should own their buffers,
/// not share a larger one. Their recall sets `passed_on`.
pub(crate) fn remember(
    column: &ArrayRef,
    codes: UInt64Array,
    packed: BooleanBuffer,
    passed_on: Option<PassedOn>,
) {
    debug_assert_eq!(
        pack_column(column.as_ref()).ok(),
        Some((codes.clone(), packed.clone()))
    );
    keep_for_recall(column, codes, packed, passed_on);
}

/// Whether `column` was passed up and dropped with its codes still
/// remembered, not recalled: then the plan above did not use them. (Codes
/// of a dropped column are let go at the next [`remember`]; one that ends
/// in between looks recalled.)
pub(crate) fn dropped_unused(column: &Weak<dyn Array>) -> bool {
    column.strong_count() == 0
        && (REMEMBERED_CODES
            .with_borrow(|remembered| position(remembered, column.as_ptr()).is_some())
            || textless_codes().iter().any(|kept| {
                !kept.recalled && std::ptr::addr_eq(kept.column.as_ptr(), column.as_ptr())
            }))
}

/// Remembers, as [`remember`] does, codes made of `column`'s values as it
/// was built (a row's [`word_code`]; any value for a null): the decoder
/// makes them while it reads the addresses a grouping above will pack.
/// Their recall sets `passed_on`.
pub(crate) fn remember_made(
    column: &ArrayRef,
    codes: Vec<u64>,
    passed_on: Option<PassedOn>,
) -> Result<()> {
    let (codes, packed) = finish_codes(column.as_ref(), codes)?;
    debug_assert_eq!(
        pack_column(column.as_ref()).ok(),
        Some((codes.clone(), packed.clone()))
    );
    keep_for_recall(column, codes, packed, passed_on);
    Ok(())
}

/// A `Utf8View` column of `len` values with no text (every view empty)
/// and `nulls`, for [`remember_textless`].
pub(crate) fn textless_column(len: usize, nulls: Option<NullBuffer>) -> ArrayRef {
    let views = ScalarBuffer::from(vec![0u128; len]);
    // SAFETY: a zero view is an inline empty text; no view names a buffer.
    Arc::new(unsafe { StringViewArray::new_unchecked(views, Vec::new(), nulls) })
}

/// Remembers codes made of `column`'s values, as [`remember_made`] does,
/// for a column whose values with a code have no text (an empty view):
/// the codes stand in for it, on any thread, for as many recalls as come
/// until the column is gone. Only for a grouping whose plan reads no text
/// of these rows ([`PassedOn`]).
pub(crate) fn remember_textless(
    column: &ArrayRef,
    codes: Vec<u64>,
    passed_on: PassedOn,
) -> Result<()> {
    let (codes, packed) = finish_codes(column.as_ref(), codes)?;
    let mut textless = textless_codes();
    textless.retain(|kept| kept.column.strong_count() > 0);
    textless.push(Remembered {
        column: Arc::downgrade(column),
        codes,
        packed,
        passed_on: Some(passed_on),
        recalled: false,
    });
    Ok(())
}

/// [`TEXTLESS_CODES`], whatever a panic elsewhere left in it (a list of
/// whole entries either way).
fn textless_codes() -> std::sync::MutexGuard<'static, Vec<Remembered>> {
    TEXTLESS_CODES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The code of the text in the first `len` bytes of `word` (little-endian;
/// the bytes past them may be anything), or [`NO_CODE`]: [`pack`] for a
/// value already in a register. Sixteen characters at once in an SSE2
/// register (every x86-64 processor has SSE2): a decoder makes one per
/// address it reads.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn word_code(word: u128, len: usize) -> u64 {
    use std::arch::x86_64::{
        _mm_add_epi8, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8,
        _mm_cvtsi128_si64, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_packus_epi16,
        _mm_set_epi64x, _mm_set1_epi8, _mm_set1_epi16, _mm_setr_epi8, _mm_srli_epi16, _mm_sub_epi8,
    };
    if len > MAX_LEN {
        return NO_CODE;
    }
    // SAFETY: these only compute on registers, with SSE2, which every
    // x86-64 processor has.
    unsafe {
        let text = _mm_set_epi64x((word >> 64) as i64, word as i64);
        let index = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // Lengths and places are below 16: a signed compare will do.
        let inside = _mm_cmpgt_epi8(_mm_set1_epi8(len as i8), index);
        let value = _mm_sub_epi8(text, _mm_set1_epi8(b'0' as i8));
        let is_digit = _mm_cmpeq_epi8(_mm_min_epu8(value, _mm_set1_epi8(9)), value);
        let is_dot = _mm_cmpeq_epi8(text, _mm_set1_epi8(b'.' as i8));
        if _mm_movemask_epi8(_mm_andnot_si128(_mm_or_si128(is_digit, is_dot), inside)) != 0 {
            return NO_CODE;
        }
        // A digit's place is its value plus 3, a dot's is 1; unused ones 0.
        let places = _mm_and_si128(
            inside,
            _mm_or_si128(
                _mm_and_si128(is_digit, _mm_add_epi8(value, _mm_set1_epi8(3))),
                _mm_and_si128(is_dot, _mm_set1_epi8(1)),
            ),
        );
        // Each pair of places as one byte, low + 16 * high (places are below
        // 16), then the eight bytes together.
        let paired = _mm_and_si128(
            _mm_or_si128(places, _mm_srli_epi16::<4>(places)),
            _mm_set1_epi16(0xFF),
        );
        _mm_cvtsi128_si64(_mm_packus_epi16(paired, paired)) as u64
    }
}

/// The code of the text in the first `len` bytes of `word` (little-endian;
/// the bytes past them may be anything), or [`NO_CODE`].
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn word_code(word: u128, len: usize) -> u64 {
    if len > MAX_LEN {
        return NO_CODE;
    }
    pack_word(word, len).unwrap_or(NO_CODE)
}

/// Adds `column`'s codes to this thread's [`REMEMBERED_CODES`].
fn keep_for_recall(
    column: &ArrayRef,
    codes: UInt64Array,
    packed: BooleanBuffer,
    passed_on: Option<PassedOn>,
) {
    REMEMBERED_CODES.with_borrow_mut(|remembered| {
        // Codes of columns gone (never grouped) are let go.
        remembered.retain(|kept| kept.column.strong_count() > 0);
        if remembered.len() == REMEMBERED {
            remembered.remove(0);
        }
        remembered.push(Remembered {
            column: Arc::downgrade(column),
            codes,
            packed,
            passed_on,
            recalled: false,
        });
    });
}

/// [`pack_column`], or the codes [`recall`] finds.
#[cfg(test)]
pub(crate) fn pack_or_recall(column: &ArrayRef) -> Result<(UInt64Array, BooleanBuffer)> {
    match recall(column) {
        Some((codes, packed, _)) => Ok((codes, packed)),
        None => pack_column(column.as_ref()),
    }
}

/// The codes remembered for this very column (then forgotten, unless its
/// text was left out), if any, which rows have one, and whether its coded
/// values have no text. Sets the [`PassedOn`] they were made with.
pub(crate) fn recall(column: &ArrayRef) -> Option<(UInt64Array, BooleanBuffer, bool)> {
    let (kept, textless) = take_remembered(column)?;
    if let Some(passed_on) = &kept.passed_on {
        passed_on.0.recalled.store(true, Ordering::Relaxed);
    }
    Some((kept.codes, kept.packed, textless))
}

/// The codes remembered for this very column, which rows have one, and
/// whether its coded values have no text, left remembered: for the
/// cache's writer, which looks at a column's first batch before it keeps
/// it.
pub(crate) fn peek(column: &ArrayRef) -> Option<(UInt64Array, BooleanBuffer, bool)> {
    let copy = |kept: &Remembered| (kept.codes.clone(), kept.packed.clone());
    let here = REMEMBERED_CODES.with_borrow(|remembered| {
        position(remembered, Arc::as_ptr(column)).map(|at| copy(&remembered[at]))
    });
    if let Some((codes, packed)) = here {
        return Some((codes, packed, false));
    }
    let textless = textless_codes();
    let at = position(&textless, Arc::as_ptr(column))?;
    let (codes, packed) = copy(&textless[at]);
    Some((codes, packed, true))
}

/// `column` as text to read: itself, or, where its coded values' text
/// was left out, its text made again from its codes.
pub(crate) fn readable(column: &ArrayRef) -> Result<ArrayRef> {
    match peek(column) {
        Some((codes, _, true)) => {
            let made = unpack_column(&codes, column.data_type())?;
            // Values without a code kept their text.
            let texts = column.as_string_view();
            let made_texts = made.as_string_view();
            if codes.iter().all(|code| code != Some(NO_CODE)) {
                return Ok(made);
            }
            let merged: StringViewArray = (0..texts.len())
                .map(
                    |row| match codes.is_valid(row) && codes.value(row) != NO_CODE {
                        true => made_texts.is_valid(row).then(|| made_texts.value(row)),
                        false => texts.is_valid(row).then(|| texts.value(row)),
                    },
                )
                .collect();
            Ok(Arc::new(merged))
        }
        _ => Ok(Arc::clone(column)),
    }
}

/// What is remembered of this very column, and whether its text was left
/// out: taken from this thread's codes, or a copy of the textless ones
/// (then marked recalled).
fn take_remembered(column: &ArrayRef) -> Option<(Remembered, bool)> {
    let here = REMEMBERED_CODES.with_borrow_mut(|remembered| {
        let at = position(remembered, Arc::as_ptr(column))?;
        Some(remembered.remove(at))
    });
    if let Some(kept) = here {
        return Some((kept, false));
    }
    let mut textless = textless_codes();
    // Codes of columns gone are let go (`column` is alive).
    textless.retain(|kept| kept.column.strong_count() > 0);
    let at = position(&textless, Arc::as_ptr(column))?;
    let kept = &mut textless[at];
    kept.recalled = true;
    let copy = Remembered {
        column: kept.column.clone(),
        codes: kept.codes.clone(),
        packed: kept.packed.clone(),
        passed_on: kept.passed_on.clone(),
        recalled: true,
    };
    Some((copy, true))
}

/// Where in `remembered` the column at `column` is. Only that column can
/// be at the address a remembered one had: a remembered column's
/// allocation is kept by its weak reference.
fn position(remembered: &[Remembered], column: *const dyn Array) -> Option<usize> {
    remembered
        .iter()
        .position(|kept| std::ptr::addr_eq(kept.column.as_ptr(), column))
}

/// How views are packed: in vector lanes of one of two sizes, or one at a
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lanes {
    /// Four views at a time ([`pack_views_avx512`]).
    Avx512,
    /// Two views at a time ([`pack_views_avx2`]).
    Avx2,
    /// One view at a time.
    Scalar,
}

impl Lanes {
    /// The widest lanes this CPU has.
    fn best() -> Self {
        let cpu = crate::cpu::Cpu::detect();
        if cpu.avx512f && cpu.avx512bw {
            Self::Avx512
        } else if cpu.avx2 {
            Self::Avx2
        } else {
            Self::Scalar
        }
    }
}

/// [`pack_column`], in `lanes`, which the CPU must have.
fn pack_column_with(column: &dyn Array, lanes: Lanes) -> Result<(UInt64Array, BooleanBuffer)> {
    // Widest first: lanes the CPU has are at or after the best.
    debug_assert!(lanes >= Lanes::best(), "{lanes:?} not detected");
    let codes: Vec<u64> = match column.data_type() {
        DataType::Utf8View => {
            let texts = column.as_string_view();
            let buffers = texts.data_buffers();
            let views = texts.views();
            #[cfg(target_arch = "x86_64")]
            if lanes != Lanes::Scalar {
                let mut codes = vec![0; views.len()];
                match lanes {
                    // SAFETY: the CPU has AVX-512F and BW (`Lanes::best`).
                    Lanes::Avx512 => unsafe { pack_views_avx512(views, buffers, &mut codes) },
                    // SAFETY: the CPU has AVX2 (`Lanes::best`).
                    _ => unsafe { pack_views_avx2(views, buffers, &mut codes) },
                }
                return finish_codes(column, codes);
            }
            let _ = lanes;
            views
                .iter()
                .map(|&view| view_code(view, buffers).unwrap_or(NO_CODE))
                .collect()
        }
        DataType::Utf8 => {
            let texts = column.as_string::<i32>();
            (0..texts.len())
                .map(|row| pack(texts.value(row).as_bytes()).unwrap_or(NO_CODE))
                .collect()
        }
        other => {
            return Err(DataFusionError::Internal(format!(
                "cannot pack a {other} column"
            )));
        }
    };
    finish_codes(column, codes)
}

/// The code of the text of `view` (over `buffers`).
#[inline(always)]
fn view_code(view: u128, buffers: &[Buffer]) -> Option<u64> {
    let len = view as u32 as usize;
    match view_word(view, buffers) {
        Some(word) => pack_word(word, len),
        None if len <= MAX_LEN => {
            let buffer = buffers[(view >> 64) as u32 as usize].as_slice();
            let offset = (view >> 96) as u32 as usize;
            pack(&buffer[offset..offset + len])
        }
        None => None,
    }
}

/// The text of `view` (over `buffers`) in the low bytes of a word, with
/// anything past it, if it is at most [`MAX_LEN`] bytes and can be read as
/// 16 bytes.
#[inline(always)]
fn view_word(view: u128, buffers: &[Buffer]) -> Option<u128> {
    let len = view as u32 as usize;
    if len <= 12 {
        // Inline: the text follows the length.
        Some(view >> 32)
    } else if len <= MAX_LEN {
        let buffer = buffers[(view >> 64) as u32 as usize].as_slice();
        let offset = (view >> 96) as u32 as usize;
        // 16 bytes in one read where the buffer has them.
        let word = buffer.get(offset..offset + 16)?;
        Some(u128::from_le_bytes(word.try_into().expect("16 bytes")))
    } else {
        None
    }
}

/// The text of `view` (over `buffers`) as a word and its length, as
/// [`view_word`] gives it, but with no branch on the length: addresses are
/// 7 to 15 characters, inline in the view up to 12 and in a buffer past
/// that, in no order, so such a branch mispredicts about every other row.
/// Both words are made and one chosen, with selects the compiler turns
/// into conditional moves. A text too long, or one at a buffer's end
/// (rare), gives 16 bytes of zeros and a length of 16: not a code, left to
/// [`view_code`].
#[inline(always)]
fn selected_word(view: u128, buffers: &[Buffer]) -> (u128, u64) {
    // Read in place of a text that is not in a buffer with 16 bytes to
    // read: the selects then always have somewhere to read from.
    static NOWHERE: [u8; 16] = [0; 16];
    let len = view as u32 as usize;
    let in_buffer = len > 12;
    let buffer = buffers
        .get(if in_buffer {
            (view >> 64) as u32 as usize
        } else {
            0
        })
        .map_or(&[][..], |buffer| buffer.as_slice());
    let offset = if in_buffer {
        (view >> 96) as u32 as usize
    } else {
        0
    };
    let readable = offset + 16 <= buffer.len();
    let from = if readable {
        buffer.as_ptr().wrapping_add(offset)
    } else {
        NOWHERE.as_ptr()
    };
    // SAFETY: `from` is 16 readable bytes: of the buffer, checked just
    // above, or of NOWHERE.
    let stored = unsafe { from.cast::<u128>().read_unaligned() };
    let word_fits = !in_buffer || (len <= MAX_LEN && readable);
    let word = if !word_fits {
        0
    } else if in_buffer {
        u128::from_le(stored)
    } else {
        view >> 32
    };
    (word, if word_fits { len as u64 } else { 16 })
}

/// Codes of four views at a time, one per 128-bit lane: each lane's
/// characters become places by byte compares, and pairs of places become
/// bytes by a multiply-add (first character lowest, as in [`pack_word`]).
/// A query such as top talkers packs an address per row, and this takes
/// fewer cycles than the scalar loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn pack_views_avx512(views: &[u128], buffers: &[Buffer], codes: &mut [u64]) {
    use std::arch::x86_64::*;
    let chunks = views.len() / 4;
    let index = _mm512_set_epi64(
        0x0F0E_0D0C_0B0A_0908,
        0x0706_0504_0302_0100,
        0x0F0E_0D0C_0B0A_0908,
        0x0706_0504_0302_0100,
        0x0F0E_0D0C_0B0A_0908,
        0x0706_0504_0302_0100,
        0x0F0E_0D0C_0B0A_0908,
        0x0706_0504_0302_0100,
    );
    // Place = digit + 3, '.' = 1; pairs of places: low + 16 * high.
    let zero = _mm512_set1_epi8(b'0' as i8);
    let ten = _mm512_set1_epi8(10);
    let three = _mm512_set1_epi8(3);
    let dot = _mm512_set1_epi8(b'.' as i8);
    let one = _mm512_set1_epi8(1);
    let pair = _mm512_set1_epi16(0x1001);
    for chunk in 0..chunks {
        let first = chunk * 4;
        // Kept in registers, not arrays: four scalar stores read back as
        // one vector would stall on store forwarding.
        let (w0, l0) = selected_word(views[first], buffers);
        let (w1, l1) = selected_word(views[first + 1], buffers);
        let (w2, l2) = selected_word(views[first + 2], buffers);
        let (w3, l3) = selected_word(views[first + 3], buffers);
        let lens = [l0, l1, l2, l3];
        // SAFETY: `codes` has room for four more from `first` (chunks end
        // by `views.len()`, its length).
        unsafe {
            let text = _mm512_set_epi64(
                (w3 >> 64) as i64,
                w3 as i64,
                (w2 >> 64) as i64,
                w2 as i64,
                (w1 >> 64) as i64,
                w1 as i64,
                (w0 >> 64) as i64,
                w0 as i64,
            );
            let length = _mm512_set_epi64(
                (l3 * ONES) as i64,
                (l3 * ONES) as i64,
                (l2 * ONES) as i64,
                (l2 * ONES) as i64,
                (l1 * ONES) as i64,
                (l1 * ONES) as i64,
                (l0 * ONES) as i64,
                (l0 * ONES) as i64,
            );
            let inside = _mm512_cmplt_epu8_mask(index, length);
            let value = _mm512_sub_epi8(text, zero);
            let digits = inside & _mm512_cmplt_epu8_mask(value, ten);
            let dots = inside & _mm512_cmpeq_epi8_mask(text, dot);
            let bad = inside & !(digits | dots);
            let places =
                _mm512_mask_add_epi8(_mm512_maskz_mov_epi8(dots, one), digits, value, three);
            let packed = _mm512_cvtepi16_epi8(_mm512_maddubs_epi16(places, pair));
            _mm256_storeu_si256(codes.as_mut_ptr().add(first).cast(), packed);
            for lane in 0..4 {
                if (bad >> (16 * lane)) & 0xFFFF != 0 {
                    codes[first + lane] = NO_CODE;
                }
            }
        }
        for lane in 0..4 {
            if lens[lane] == 16 {
                codes[first + lane] = view_code(views[first + lane], buffers).unwrap_or(NO_CODE);
            }
        }
    }
    for row in chunks * 4..views.len() {
        codes[row] = view_code(views[row], buffers).unwrap_or(NO_CODE);
    }
}

/// Codes of two views at a time, one per 128-bit lane of AVX2: as
/// [`pack_views_avx512`], with compares into vector masks where AVX-512
/// has mask registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pack_views_avx2(views: &[u128], buffers: &[Buffer], codes: &mut [u64]) {
    use std::arch::x86_64::*;
    let pairs = views.len() / 2;
    let index = _mm256_setr_epi8(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
        12, 13, 14, 15,
    );
    // Place = digit + 3, '.' = 1; pairs of places: low + 16 * high.
    let zero = _mm256_set1_epi8(b'0' as i8);
    let nine = _mm256_set1_epi8(9);
    let three = _mm256_set1_epi8(3);
    let dot = _mm256_set1_epi8(b'.' as i8);
    let one = _mm256_set1_epi8(1);
    let pair = _mm256_set1_epi16(0x1001);
    for at in 0..pairs {
        let first = at * 2;
        let (w0, l0) = selected_word(views[first], buffers);
        let (w1, l1) = selected_word(views[first + 1], buffers);
        let text = _mm256_set_epi64x((w1 >> 64) as i64, w1 as i64, (w0 >> 64) as i64, w0 as i64);
        let length = _mm256_set_epi64x(
            (l1 * ONES) as i64,
            (l1 * ONES) as i64,
            (l0 * ONES) as i64,
            (l0 * ONES) as i64,
        );
        // Lengths and places are below 16: signed compares will do.
        let inside = _mm256_cmpgt_epi8(length, index);
        let value = _mm256_sub_epi8(text, zero);
        let is_digit = _mm256_cmpeq_epi8(_mm256_min_epu8(value, nine), value);
        let is_dot = _mm256_cmpeq_epi8(text, dot);
        let digits = _mm256_and_si256(inside, is_digit);
        let dots = _mm256_and_si256(inside, is_dot);
        let bad = _mm256_movemask_epi8(_mm256_andnot_si256(
            _mm256_or_si256(is_digit, is_dot),
            inside,
        )) as u32;
        let places = _mm256_or_si256(
            _mm256_and_si256(digits, _mm256_add_epi8(value, three)),
            _mm256_and_si256(dots, one),
        );
        let paired = _mm256_maddubs_epi16(places, pair);
        // Each lane's eight bytes of places first (they are at most 204).
        let packed = _mm256_packus_epi16(paired, paired);
        codes[first] = if bad & 0xFFFF == 0 {
            _mm256_extract_epi64::<0>(packed) as u64
        } else {
            NO_CODE
        };
        codes[first + 1] = if bad >> 16 == 0 {
            _mm256_extract_epi64::<2>(packed) as u64
        } else {
            NO_CODE
        };
        for (lane, len) in [l0, l1].into_iter().enumerate() {
            if len == 16 {
                codes[first + lane] = view_code(views[first + lane], buffers).unwrap_or(NO_CODE);
            }
        }
    }
    for row in pairs * 2..views.len() {
        codes[row] = view_code(views[row], buffers).unwrap_or(NO_CODE);
    }
}

/// The column of `codes`, and which rows of `column` have one.
fn finish_codes(column: &dyn Array, codes: Vec<u64>) -> Result<(UInt64Array, BooleanBuffer)> {
    let nulls = column.logical_nulls();
    let packed = match &nulls {
        Some(nulls) => BooleanBuffer::collect_bool(codes.len(), |row| {
            codes[row] != NO_CODE || nulls.is_null(row)
        }),
        None => BooleanBuffer::collect_bool(codes.len(), |row| codes[row] != NO_CODE),
    };
    Ok((UInt64Array::new(ScalarBuffer::from(codes), nulls), packed))
}

/// The text column of `data_type` (`Utf8` or `Utf8View`) whose codes are
/// `codes`.
pub(crate) fn unpack_column(codes: &UInt64Array, data_type: &DataType) -> Result<ArrayRef> {
    let nulls = codes.nulls().cloned();
    match data_type {
        DataType::Utf8View => {
            // Views made here: texts of up to 12 bytes sit in the view, longer
            // ones in one buffer. Nulls get an empty view.
            let mut data = Vec::new();
            let views: Vec<u128> = codes
                .values()
                .iter()
                .enumerate()
                .map(|(row, &code)| {
                    if nulls.as_ref().is_some_and(|nulls| nulls.is_null(row)) {
                        // Not a code: an empty view.
                        return 0;
                    }
                    let (bytes, len) = text_of(code);
                    let word = u128::from_le_bytes(bytes);
                    if len <= 12 {
                        let inline = word & ((1u128 << (8 * len)) - 1);
                        len as u128 | inline << 32
                    } else {
                        // Length, 4-byte prefix, buffer 0, offset.
                        let offset = data.len();
                        data.extend_from_slice(&bytes[..len]);
                        len as u128 | (word & 0xFFFF_FFFF) << 32 | (offset as u128) << 96
                    }
                })
                .collect();
            // SAFETY: each view is as made above: an inline text zero-padded,
            // or the length, first four bytes and place of a text in buffer
            // 0; all texts are ASCII. (Checking them again would cost a
            // pass over every text for nothing.)
            let array = unsafe {
                StringViewArray::new_unchecked(views.into(), vec![Buffer::from_vec(data)], nulls)
            };
            Ok(Arc::new(array))
        }
        DataType::Utf8 => {
            let mut texts = StringBuilder::with_capacity(codes.len(), codes.len() * MAX_LEN);
            for (row, &code) in codes.values().iter().enumerate() {
                if nulls.as_ref().is_some_and(|nulls| nulls.is_null(row)) {
                    texts.append_null();
                } else {
                    let (bytes, len) = text_of(code);
                    // SAFETY: digits and dots are ASCII.
                    texts.append_value(unsafe { std::str::from_utf8_unchecked(&bytes[..len]) });
                }
            }
            Ok(Arc::new(texts.finish()))
        }
        other => Err(DataFusionError::Internal(format!(
            "cannot unpack into a {other} column"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::SplitMix;
    use datafusion::arrow::array::{StringArray, StringViewBuilder};
    use std::collections::HashMap;

    #[test]
    fn a_remembered_column_is_recalled_once_and_only_for_itself() {
        let column = |texts: &[Option<&str>]| -> ArrayRef {
            Arc::new(texts.iter().copied().collect::<StringViewArray>())
        };
        let first = column(&[Some("10.0.0.1"), None, Some("2001:db8::1")]);
        let same_text = column(&[Some("10.0.0.1"), None, Some("2001:db8::1")]);
        let other = column(&[Some("10.0.0.2"), Some("192.168.0.1"), None]);
        let (remembered, _) = pack_and_remember(&first).unwrap();
        // Remembered, the column is not kept alive.
        assert_eq!(Arc::strong_count(&first), 1);
        // Another column, even of the same text, is packed for itself.
        for column in [&other, &same_text] {
            let (codes, packed) = pack_or_recall(column).unwrap();
            assert_eq!((codes, packed), pack_column(column.as_ref()).unwrap());
        }
        // The column itself gets the codes made for it, once.
        let (recalled, packed) = pack_or_recall(&first).unwrap();
        assert_eq!(recalled.values().as_ptr(), remembered.values().as_ptr());
        assert_eq!((recalled, packed), pack_column(first.as_ref()).unwrap());
        let (again, _) = pack_or_recall(&first).unwrap();
        assert_ne!(again.values().as_ptr(), remembered.values().as_ptr());
        // Only the last few columns are held.
        let many: Vec<ArrayRef> = (0..=REMEMBERED)
            .map(|i| column(&[Some(&format!("10.0.0.{i}"))]))
            .collect();
        let made: Vec<_> = many
            .iter()
            .map(|c| pack_and_remember(c).unwrap().0)
            .collect();
        let (oldest, _) = pack_or_recall(&many[0]).unwrap();
        assert_ne!(oldest.values().as_ptr(), made[0].values().as_ptr());
        let (newest, _) = pack_or_recall(&many[REMEMBERED]).unwrap();
        assert_eq!(newest.values().as_ptr(), made[REMEMBERED].values().as_ptr());
    }

    #[test]
    fn only_the_grouping_s_recall_sets_passed_on() {
        let column: ArrayRef = Arc::new(StringViewArray::from(vec!["10.0.0.1", "172.16.0.2"]));
        let made = vec![pack(b"10.0.0.1").unwrap(), pack(b"172.16.0.2").unwrap()];
        let passed_on = PassedOn::default();
        remember_made(&column, made, Some(passed_on.clone())).unwrap();
        // The cache's writer packs the column first, in the scan.
        let (written, _) = pack_and_remember(&column).unwrap();
        assert!(!passed_on.is_set());
        let (recalled, _, textless) = recall(&column).unwrap();
        assert_eq!(written, recalled);
        assert!(!textless);
        assert!(passed_on.is_set());
    }

    #[test]
    fn codes_of_a_column_without_text_are_recalled_on_any_thread_while_it_lives() {
        let texts = [Some("10.0.0.1"), None, Some("2001:db8::1")];
        let made: Vec<u64> = texts
            .iter()
            .map(|text| text.map_or(0, |text| pack(text.as_bytes()).unwrap_or(NO_CODE)))
            .collect();
        // The coded value's text left out, as a decoder does.
        let column: ArrayRef = Arc::new(
            [Some(""), None, Some("2001:db8::1")]
                .into_iter()
                .collect::<StringViewArray>(),
        );
        let passed_on = PassedOn::default();
        remember_textless(&column, made.clone(), passed_on.clone()).unwrap();
        // More than a thread holds, made after it, do not push it out.
        for i in 0..=REMEMBERED {
            let other: ArrayRef = Arc::new(StringViewArray::from(vec![format!("10.0.1.{i}")]));
            pack_and_remember(&other).unwrap();
        }
        assert!(!passed_on.is_set());
        for _ in 0..2 {
            let recalled = std::thread::scope(|scope| {
                scope
                    .spawn(|| recall(&column).expect("kept"))
                    .join()
                    .unwrap()
            });
            let (codes, packed, textless) = recalled;
            assert!(textless);
            assert_eq!(codes.values().as_ref(), made.as_slice());
            assert_eq!(packed.iter().collect::<Vec<_>>(), [true, true, false]);
            assert!(passed_on.is_set());
        }
        let gone = Arc::downgrade(&column);
        drop(column);
        // Recalled before it was dropped: used.
        assert!(!dropped_unused(&gone));
    }

    #[test]
    fn a_word_has_the_code_of_its_text_whatever_follows_it() {
        // Texts of 0 to 17 characters, mostly digits and dots, each with
        // random bytes after it in its word.
        let mut rng = SplitMix(0xC0DE_5EED_0000_0017);
        let alphabet = b"0123456789.0123456789.-a/:\xff ";
        for _ in 0..100_000 {
            let len = rng.below(18) as usize;
            let mut bytes = [0u8; 16];
            for byte in &mut bytes {
                *byte = rng.below(256) as u8;
            }
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            let shown = len.min(16);
            bytes[..shown].copy_from_slice(&text[..shown]);
            let word = u128::from_le_bytes(bytes);
            assert_eq!(
                word_code(word, len),
                pack(&text).unwrap_or(NO_CODE),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn every_short_text_of_digits_and_dots_has_its_own_code() {
        // All texts of up to 4 characters from '.', '/', '0', '1', '9' and
        // 'a': the ones without '/' or 'a' have a code, which unpacks to
        // them, and no two share one.
        let alphabet = b"./019a";
        let mut seen: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        let mut last = texts.clone();
        for _ in 0..4 {
            last = last
                .iter()
                .flat_map(|text| {
                    alphabet
                        .iter()
                        .map(move |&c| [text.as_slice(), &[c]].concat())
                })
                .collect();
            texts.extend(last.iter().cloned());
        }
        for text in &texts {
            let expected = text.iter().all(|&c| c == b'.' || c.is_ascii_digit());
            match pack(text) {
                Some(code) => {
                    assert!(expected, "{text:?} packed");
                    assert_eq!(unpack(code).as_bytes(), text.as_slice());
                    if let Some(other) = seen.insert(code, text.clone()) {
                        panic!("{text:?} and {other:?} share code {code}");
                    }
                }
                None => assert!(!expected, "{text:?} not packed"),
            }
        }
        // '.', '0', '1' and '9': 1 + 4 + 16 + 64 + 256 texts.
        assert_eq!(seen.len(), 341);
    }

    /// The code by definition, one character at a time.
    fn code_by_definition(text: &[u8]) -> Option<u64> {
        if text.len() > MAX_LEN {
            return None;
        }
        let mut code = 0;
        for (place, &c) in text.iter().enumerate() {
            let nibble = match c {
                b'.' => 1,
                b'0'..=b'9' => u64::from(c - b'0') + 3,
                _ => return None,
            };
            code |= nibble << (4 * place);
        }
        Some(code)
    }

    #[test]
    fn codes_of_long_and_odd_texts_follow_the_definition() {
        // Bytes next to the digits and the dot, the same with the high bit
        // set, and the dot's and zero's images in the eight-at-a-time steps.
        let alphabet = [
            b'.', b'/', b'0', b'5', b'9', b':', b'-', 0xAE, 0xB0, 0x00, 0x1E, 0x7F, 0xFF, b'a',
        ];
        let mut rng = SplitMix(0x9E37_79B9_7F4A_7C15);
        let mut next = |n: usize| rng.below(n as u64) as usize;
        for _ in 0..50_000 {
            let len = next(18);
            // Mostly digits and dots, so that long valid texts occur.
            let text: Vec<u8> = (0..len)
                .map(|_| match next(4) {
                    0 => alphabet[next(alphabet.len())],
                    1 => b'.',
                    _ => b'0' + next(10) as u8,
                })
                .collect();
            let code = pack(&text);
            assert_eq!(code, code_by_definition(&text), "{text:?}");
            if let Some(code) = code {
                assert_eq!(unpack(code).as_bytes(), text.as_slice());
            }
        }
    }

    #[test]
    fn length_limit() {
        assert_eq!(unpack(pack(b"255.255.255.255").unwrap()), "255.255.255.255");
        assert_eq!(pack(b"255.255.255.2550"), None);
        assert_eq!(pack(b""), Some(0));
        assert_eq!(unpack(0), "");
    }

    #[test]
    fn view_columns_pack_as_their_texts_do() {
        // Texts of 0 to 17 bytes, mostly addresses, in views over several
        // data buffers (the builder's blocks are small): long ones inline
        // and at every place in a buffer, up to its last byte.
        let mut rng = SplitMix(0x2545_F491_4F6C_DD1D);
        let mut next = |n: usize| rng.below(n as u64) as usize;
        // The last: short texts only, no buffers.
        for (block, longest) in [(16, 17), (40, 17), (1000, 17), (1000, 12)] {
            let mut builder = StringViewBuilder::new().with_fixed_block_size(block);
            let mut texts = Vec::new();
            for _ in 0..5000 {
                let len = next(longest + 1);
                let text: String = (0..len)
                    .map(|_| match next(12) {
                        0 => ':',
                        1 | 2 => '.',
                        _ => char::from(b'0' + next(10) as u8),
                    })
                    .collect();
                builder.append_value(&text);
                texts.push(text);
            }
            let column = builder.finish();
            assert_eq!(column.data_buffers().len() > 1, longest > 12, "{block}");
            // In each size of vector lanes the CPU has, and one at a time.
            let all = [Lanes::Avx512, Lanes::Avx2, Lanes::Scalar];
            let best = all.iter().position(|l| *l == Lanes::best()).unwrap();
            for lanes in all.into_iter().skip(best) {
                let (codes, packed) = pack_column_with(&column, lanes).unwrap();
                for (row, text) in texts.iter().enumerate() {
                    let want = pack(text.as_bytes());
                    assert_eq!(packed.value(row), want.is_some(), "{text:?}, {lanes:?}");
                    if let Some(code) = want {
                        assert_eq!(
                            codes.value(row),
                            code,
                            "{text:?} in blocks of {block}, {lanes:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn columns_round_trip_with_nulls_and_texts_without_codes() {
        let values = [
            Some("10.0.0.1"),
            None,
            Some("2001:db8::1"),
            Some("203.0.113.250"),
            Some("255.255.255.255"),
            Some("1.2.3.4.5.6.7.8.9"),
            Some(""),
        ];
        let view: ArrayRef = Arc::new(StringViewArray::from(values.to_vec()));
        let plain: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        for column in [view, plain] {
            let (codes, packed) = pack_column(&column).unwrap();
            assert_eq!(
                packed.iter().collect::<Vec<_>>(),
                [true, true, false, true, true, false, true]
            );
            assert!(codes.is_null(1));
            let texts = unpack_column(&codes, column.data_type()).unwrap();
            assert_eq!(texts.data_type(), column.data_type());
            // Views are made without checks: check them here.
            texts.to_data().validate_full().unwrap();
            for row in [0, 1, 3, 4, 6] {
                assert_eq!(
                    texts.slice(row, 1).as_ref(),
                    column.slice(row, 1).as_ref(),
                    "row {row}"
                );
            }
        }
    }

    #[test]
    fn codes_are_unique_and_bounded() {
        use crate::text_codes::{pack, unpack};

        let code = pack(b"192.168.0.1").unwrap();
        assert_eq!(unpack(code), "192.168.0.1");
        assert_ne!(pack(b"10.0.0.1"), pack(b"10.0.0.01"));
        assert_eq!(pack(b"2001:db8::1"), None);
        assert_eq!(pack(b"1234567890123456"), None);
    }
}
