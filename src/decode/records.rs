//! Flow-log text to Arrow: the hot loop.
//!
//! [`TextDecoder`] takes the decompressed text of one object in chunks of any
//! size, reads the header line, binds the header's fields to the requested
//! columns by name, and turns every record line into one row, or, given a
//! [`RecordFilter`], every line that passes it. Only the requested columns
//! are built, but every field of every line is checked, so which lines
//! count as malformed never depends on the query.
//!
//! Text rules (DESIGN.md, "Bad input"): a `-` is NULL in every column; CRLF
//! endings lose their `\r`; runs of spaces and trailing spaces separate
//! nothing extra; blank lines hold no record and are passed over; a line
//! with the wrong field count, a value that is not its column's type, bytes
//! that are not UTF-8, or more than [`MAX_LINE_BYTES`] bytes is malformed.

pub(crate) mod record_filter;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, RecordBatchOptions, StringViewBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{DataFusionError, Result};

use crate::catalogue::{FieldKind, Header, catalogue_field, column_name, truncate_for_message};
use crate::decode::record_filter::{Matcher, RecordFilter, Value};

/// The longest line accepted; longer lines are malformed and memory stays bounded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a record line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The line does not have one value per header field.
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Values on the line.
        found: usize,
    },
    /// A value is not of its column's type.
    BadValue {
        /// The header field.
        field: String,
        /// The value (shortened).
        value: String,
    },
    /// The line holds bytes that are not UTF-8.
    NotUtf8,
    /// The line is longer than [`MAX_LINE_BYTES`].
    TooLong,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::FieldCount { expected, found } => {
                write!(
                    f,
                    "expected {expected} fields as the header says, found {found}"
                )
            }
            Reject::BadValue { field, value } => {
                write!(
                    f,
                    "`{value}` is not a valid {field} (expected an integer or `-`)"
                )
            }
            Reject::NotUtf8 => write!(f, "the line is not UTF-8 text"),
            Reject::TooLong => write!(f, "the line is longer than {MAX_LINE_BYTES} bytes"),
        }
    }
}

/// What happens to a malformed line.
pub trait RejectSink: Send {
    /// Called once per malformed line (1-based line number, header is line 1).
    /// Returning an error stops the read with that error.
    fn reject(&mut self, line: u64, reason: Reject, raw: &[u8]) -> Result<()>;
}

enum ColumnBuilder {
    Int32(Int32Builder),
    Int64(Int64Builder),
    Text(StringViewBuilder),
}

impl ColumnBuilder {
    fn new(data_type: &DataType, capacity: usize) -> Result<Self> {
        Ok(match data_type {
            DataType::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Utf8View => Self::Text(StringViewBuilder::with_capacity(capacity)),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "flow-log columns are Int32, Int64 or Utf8View, not {other}"
                )));
            }
        })
    }

    fn append_null(&mut self) {
        match self {
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Text(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
        }
    }
}

/// How one header field is checked and where its value goes.
#[derive(Debug, Clone)]
struct FieldSlot {
    kind: FieldKind,
    name: String,
    /// Output column that takes this field's value, if requested.
    output: Option<usize>,
}

/// Binds one object's header to the requested output columns, then decodes
/// its record lines into rows.
struct RecordDecoder {
    fields: Vec<FieldSlot>,
    /// The numeric fields (index, kind, whether a column takes the value):
    /// every line checks these; only requested ones are parsed.
    numeric: Vec<(usize, FieldKind, bool)>,
    /// The numeric fields no column takes, as (index, most digits): the
    /// quick check ([`RecordDecoder::numbers_look_valid`]) tests these.
    checked: Vec<(usize, usize)>,
    /// The numeric fields a column or a test takes, as (index, most
    /// digits): the quick check parses these with [`parse_digits`].
    parsed: Vec<(usize, usize)>,
    /// `checked` as vector lanes, where the processor and the fields allow.
    #[cfg(target_arch = "x86_64")]
    checked_lanes: Option<NumberLanes>,
    /// (field index, output column) for the requested fields: the hot loop
    /// visits only these, not every header field.
    outputs: Vec<(usize, usize)>,
    /// Output columns no header field feeds; they are all NULL.
    missing_outputs: Vec<usize>,
    /// The record filter's tests, by field index: a row is appended only
    /// if its line passes them all.
    tests: Vec<(usize, Matcher)>,
    /// A test on a column this header lacks (all NULL) fails: no row passes.
    nothing_passes: bool,
    builders: Vec<ColumnBuilder>,
    schema: SchemaRef,
    rows: usize,
    batch_size: usize,
    tokens: Tokens,
    ints: Vec<Option<i64>>,
}

impl RecordDecoder {
    fn new(
        header: &Header,
        schema: SchemaRef,
        batch_size: usize,
        filter: &RecordFilter,
        simd: u8,
    ) -> Result<Self> {
        let mut fed = vec![false; schema.fields().len()];
        let fields = header
            .tokens()
            .iter()
            .map(|token| {
                let name = column_name(token);
                let kind = catalogue_field(token).map_or(FieldKind::Text, |f| f.kind);
                let output = schema.index_of(&name).ok();
                if let Some(i) = output {
                    fed[i] = true;
                }
                FieldSlot { kind, name, output }
            })
            .collect::<Vec<_>>();
        let builders = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), batch_size))
            .collect::<Result<Vec<_>>>()?;
        let missing_outputs = fed
            .iter()
            .enumerate()
            .filter(|(_, fed)| !**fed)
            .map(|(i, _)| i)
            .collect();
        let mut nothing_passes = false;
        let mut tests = vec![];
        for test in filter.tests() {
            let matcher = test.matcher();
            match fields.iter().position(|f| f.name == test.column) {
                Some(i) if test.fits(fields[i].kind) => tests.push((i, matcher)),
                // A test that does not fit the field's type is not run: the
                // decoder may keep rows the filter drops, never the reverse.
                Some(_) => {}
                // The column is NULL on every line of this object.
                None => nothing_passes |= !matcher.passes(Value::Null),
            }
        }
        let numeric: Vec<_> = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind != FieldKind::Text)
            .map(|(i, f)| {
                let tested = tests.iter().any(|(t, _)| *t == i);
                (i, f.kind, f.output.is_some() || tested)
            })
            .collect();
        let outputs = fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i, f.output?)))
            .collect();
        let (parsed, checked): (Vec<_>, Vec<_>) =
            numeric.iter().partition(|(_, _, requested)| *requested);
        let quick = |fields: Vec<&(usize, FieldKind, bool)>, parsed: bool| -> Vec<(usize, usize)> {
            fields
                .iter()
                .map(|&&(i, kind, _)| (i, most_quick_digits(kind, parsed)))
                .collect()
        };
        let checked = quick(checked, false);
        #[cfg(target_arch = "x86_64")]
        let checked_lanes = (simd >= Simd::AVX512)
            .then(|| NumberLanes::new(&checked))
            .flatten();
        #[cfg(not(target_arch = "x86_64"))]
        let _ = simd;
        Ok(Self {
            #[cfg(target_arch = "x86_64")]
            checked_lanes,
            checked,
            parsed: quick(parsed, true),
            numeric,
            outputs,
            ints: vec![None; fields.len()],
            tokens: Tokens::with_capacity(fields.len()),
            fields,
            missing_outputs,
            tests,
            nothing_passes,
            builders,
            schema,
            rows: 0,
            batch_size,
        })
    }

    /// Checks one record line, split into `self.tokens`, and, if it is well
    /// formed and passes the record filter, appends it as a row. Returns
    /// whether it was appended.
    fn decode_tokens(&mut self, line: &[u8], ascii: bool) -> std::result::Result<bool, Reject> {
        if self.tokens.len() != self.fields.len() {
            return Err(Reject::FieldCount {
                expected: self.fields.len(),
                found: self.tokens.len(),
            });
        }
        if !ascii && std::str::from_utf8(line).is_err() {
            return Err(Reject::NotUtf8);
        }
        // Validate every numeric field before appending anything, so a
        // rejected line leaves no partial row behind.
        if !self.numbers_look_valid(line) {
            self.check_numbers(line)?;
        }
        if !self.passes_filter(line) {
            return Ok(false);
        }
        for &(i, out) in &self.outputs {
            match &mut self.builders[out] {
                ColumnBuilder::Int32(b) => b.append_option(self.ints[i].map(|v| v as i32)),
                ColumnBuilder::Int64(b) => b.append_option(self.ints[i]),
                ColumnBuilder::Text(b) => {
                    let (start, end) = self.tokens.get(i);
                    let token = &line[start..end];
                    if token == b"-" {
                        b.append_null();
                    } else {
                        debug_assert!(std::str::from_utf8(token).is_ok());
                        // SAFETY: the line was checked to be UTF-8 above, and
                        // a token ends at the line's ends or at a space, and
                        // a space byte is never inside a UTF-8 sequence, so
                        // the token is UTF-8 too (checking again cost 3% of
                        // a group-by on srcaddr).
                        b.append_value(unsafe { std::str::from_utf8_unchecked(token) })
                    }
                }
            }
        }
        for &out in &self.missing_outputs {
            self.builders[out].append_null();
        }
        self.rows += 1;
        Ok(true)
    }

    /// The common case of [`Self::check_numbers`], with no branch per
    /// field: whether every numeric field is short enough to need no range
    /// check and all digits (or, if no column takes it, a `-`), with the
    /// requested ones parsed into `self.ints`. When it says no,
    /// `check_numbers` decides, and finds the field to name.
    #[inline]
    fn numbers_look_valid(&mut self, line: &[u8]) -> bool {
        let tokens = &self.tokens;
        #[cfg(target_arch = "x86_64")]
        let vector = self
            .checked_lanes
            .as_ref()
            // SAFETY: lanes are made only where `Simd::detect` found AVX-512.
            .and_then(|lanes| unsafe { lanes.look_valid(tokens) });
        #[cfg(not(target_arch = "x86_64"))]
        let vector = None;
        let mut valid = match vector {
            Some(valid) => valid,
            None => self.checked.iter().fold(true, |valid, &(i, most)| {
                let (start, end) = tokens.get(i);
                let len = end - start;
                let digits = (len <= most) & tokens.all_digits(start, end.min(start + 64));
                let dash = (len == 1) & (line[start] == b'-');
                valid & (digits | dash)
            }),
        };
        for &(i, most) in &self.parsed {
            let (start, end) = tokens.get(i);
            let value = parse_digits(line, tokens, start, end, most);
            self.ints[i] = value;
            valid &= value.is_some();
        }
        valid
    }

    /// Checks every numeric field of a line exactly, parsing the requested
    /// ones into `self.ints`, or names the first that is not a number of
    /// its type.
    fn check_numbers(&mut self, line: &[u8]) -> std::result::Result<(), Reject> {
        for &(i, kind, requested) in &self.numeric {
            let (start, end) = self.tokens.get(i);
            let token = &line[start..end];
            let valid = if token == b"-" {
                self.ints[i] = None;
                true
            } else if requested {
                self.ints[i] = parse_integer(token)
                    .filter(|v| kind == FieldKind::Int64 || i32::try_from(*v).is_ok());
                self.ints[i].is_some()
            } else {
                is_integer(&self.tokens, token, start, kind)
            };
            if !valid {
                return Err(Reject::BadValue {
                    field: self.fields[i].name.clone(),
                    value: truncate_for_message(&String::from_utf8_lossy(token)),
                });
            }
        }
        Ok(())
    }

    /// Whether a well-formed line passes every test of the record filter.
    fn passes_filter(&self, line: &[u8]) -> bool {
        !self.nothing_passes
            && self.tests.iter().all(|(i, test)| {
                let value = if self.fields[*i].kind == FieldKind::Text {
                    let (start, end) = self.tokens.get(*i);
                    match &line[start..end] {
                        b"-" => Value::Null,
                        token => Value::Text(token),
                    }
                } else {
                    // Validated: `None` is a `-`.
                    self.ints[*i].map_or(Value::Null, Value::Integer)
                };
                test.passes(value)
            })
    }

    fn is_full(&self) -> bool {
        self.rows >= self.batch_size
    }

    fn take_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        Ok(Some(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?))
    }
}

/// The tokens of one line, kept as their edges: the offsets where a run
/// of spaces ends (a token starts) and where one begins (a token ends).
/// Edges alternate start, end, start, ..., so token `i` is edges `2i` and
/// `2i + 1`, and a tokenizer only has to list every change between space
/// and non-space, in order, with no branch on which kind each one is.
#[derive(Debug, Default)]
struct Tokens {
    /// Offsets within the line; lines are at most [`MAX_LINE_BYTES`] long.
    edges: Vec<u32>,
    /// Per 64 bytes of the line, which are ASCII digits (bit `i` for byte
    /// `64 * block + i`), then a block of none: found with the spaces, so
    /// checking that a number is all digits is a mask test, not a pass
    /// over its bytes.
    digits: Vec<u64>,
}

impl Tokens {
    fn with_capacity(tokens: usize) -> Self {
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
    fn all_digits(&self, start: usize, end: usize) -> bool {
        let block = start / 64;
        // Two blocks' masks, so a token across their boundary needs no branch.
        let pair = u128::from(self.digits[block]) | u128::from(self.digits[block + 1]) << 64;
        let window = (pair >> (start % 64)) as u64;
        let want = u64::MAX >> (64 - (end - start));
        window & want == want
    }

    fn len(&self) -> usize {
        self.edges.len() / 2
    }

    fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Token `i` as a `(start, end)` byte range of the line.
    fn get(&self, i: usize) -> (usize, usize) {
        (self.edges[2 * i] as usize, self.edges[2 * i + 1] as usize)
    }

    /// Drops a final `\r` from the line of length `line_len`: from the last
    /// token, or the token itself when it is only the `\r`.
    fn drop_final_cr(&mut self, line_len: usize) {
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
    fn pairs(&self) -> Vec<(usize, usize)> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

/// Splits a line at runs of spaces into tokens.
///
/// The hot loop's tokenizer: it finds the spaces of 64 bytes at a time as
/// a bit mask, then reads token edges off the mask's changes, instead of
/// searching for each space on its own (three times the instructions,
/// measured with callgrind). Returns whether the line is all ASCII, which
/// the same pass finds for free.
fn split_fields(line: &[u8], tokens: &mut Tokens) -> bool {
    tokens.clear();
    let mut tokenizer = Tokenizer::default();
    let mut non_ascii = 0u64;
    let n = line.len();
    let mut block = 0;
    while block < n {
        let bytes = &line[block..n.min(block + 64)];
        let masks = match <&[u8; 64]>::try_from(bytes) {
            Ok(full) => BlockMasks::of(full),
            Err(_) => {
                // Padding with spaces adds no token and no non-ASCII byte.
                let mut padded = [b' '; 64];
                padded[..bytes.len()].copy_from_slice(bytes);
                BlockMasks::of(&padded)
            }
        };
        non_ascii |= masks.non_ascii;
        tokens.digits.push(masks.digits);
        tokenizer.block(block, masks.spaces, tokens);
        block += 64;
    }
    tokens.finish_digits();
    tokenizer.finish(n, tokens);
    non_ascii == 0
}

/// Splits the line at the start of `data` as [`split_fields`] does, finding
/// its end in the same pass (no separate search for the newline, and no
/// padded copy of its last block): returns the line's length without the
/// `\n`, and whether it is ASCII. `None` when no newline is found within
/// the whole 64-byte blocks of `data` and [`MAX_LINE_BYTES`]; the caller
/// then reads the line the slower way, which handles every case.
#[cfg(test)]
fn split_line(data: &[u8], tokens: &mut Tokens) -> Option<(usize, bool)> {
    split_line_with::<{ Simd::BASELINE }>(data, tokens)
}

/// [`split_line`] with the masks of `SIMD` (a [`Simd`] level the
/// processor has); inlined into each level's copy of the hot loop.
#[inline(always)]
fn split_line_with<const SIMD: u8>(data: &[u8], tokens: &mut Tokens) -> Option<(usize, bool)> {
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
    /// Adds the edges in the block at `offset`, whose space mask is
    /// `spaces` (bit `i` for byte `offset + i`).
    fn block(&mut self, offset: usize, spaces: u64, tokens: &mut Tokens) {
        let mut changes = self.changes(spaces);
        let offset = offset as u32; // offsets stay within MAX_LINE_BYTES + 64
        // Filled through the spare capacity: a loop over a slice keeps the
        // length in a register instead of storing it back per edge (push),
        // and nothing is written twice (resize).
        let count = changes.count_ones() as usize;
        let filled = tokens.edges.len();
        tokens.edges.reserve(count);
        for edge in &mut tokens.edges.spare_capacity_mut()[..count] {
            edge.write(offset + changes.trailing_zeros());
            changes &= changes - 1;
        }
        // SAFETY: the loop above initialized the `count` slots after `filled`.
        unsafe { tokens.edges.set_len(filled + count) };
    }

    /// The bits where the block whose space mask is `spaces` changes
    /// between space and non-space (an edge), and notes whether it ends
    /// in a space for the next block.
    #[inline(always)]
    fn changes(&mut self, spaces: u64) -> u64 {
        let before = (spaces << 1) | u64::from(self.after_space);
        self.after_space = spaces >> 63 == 1;
        spaces ^ before
    }

    /// [`Tokenizer::block`] at the level `SIMD`, which the processor must
    /// have.
    #[inline(always)]
    fn block_with<const SIMD: u8>(&mut self, offset: usize, spaces: u64, tokens: &mut Tokens) {
        match SIMD {
            // SAFETY: the caller runs this level only where the processor
            // has its features (`Simd::detect`).
            #[cfg(target_arch = "x86_64")]
            Simd::AVX512 => unsafe { self.block_avx512(offset, spaces, tokens) },
            _ => self.block(offset, spaces, tokens),
        }
    }

    /// With AVX-512 VBMI2: the edges' places in the block are compressed
    /// out of the vector 0, 1, ..., 63 by the mask of changes in one
    /// instruction, then widened to offsets 16 at a time, where the loop
    /// of [`Tokenizer::block`] takes a step per edge and mispredicts its
    /// end about once a block (perf, top talkers: the hot loop's share of
    /// cycles fell from 12.2% to 6.7%).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw,avx512vbmi2")]
    #[inline]
    fn block_avx512(&mut self, offset: usize, spaces: u64, tokens: &mut Tokens) {
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
        let changes = self.changes(spaces);
        let count = changes.count_ones() as usize;
        let filled = tokens.edges.len();
        // Offsets are written 16 at a time, the first group always: room
        // for the unused lanes of the last one, which stay past the length.
        tokens.edges.reserve(16 * count.div_ceil(16).max(1));
        // SAFETY: the 64-byte load reads exactly the array.
        let places = unsafe { _mm512_loadu_si512(PLACES.as_ptr().cast()) };
        let packed = _mm512_maskz_compress_epi8(changes, places);
        let base = _mm512_set1_epi32(offset as i32);
        let out = tokens.edges.spare_capacity_mut().as_mut_ptr().cast::<u32>();
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
        unsafe { tokens.edges.set_len(filled + count) };
    }

    /// Closes a token still open at the end of a line of length `n`.
    fn finish(&self, n: usize, tokens: &mut Tokens) {
        if !self.after_space {
            tokens.edges.push(n as u32);
        }
    }
}

/// The vector instructions the hot loop is compiled for: one copy of it
/// per level. A decoder detects the best level the processor has when it
/// is made, and each call of [`TextDecoder::feed`] runs that level's copy.
/// The masks and, at AVX-512, the edges are where the levels differ.
struct Simd;

impl Simd {
    /// SSE2 on x86-64 (every such processor has it), plain integer
    /// arithmetic elsewhere.
    const BASELINE: u8 = 0;
    /// AVX2 (with BMI and POPCNT for the edges' bit counts).
    #[cfg(target_arch = "x86_64")]
    const AVX2: u8 = 1;
    /// AVX-512BW and VBMI2 (for the edges, see [`Tokenizer`]), and all of
    /// AVX2's.
    #[cfg(target_arch = "x86_64")]
    const AVX512: u8 = 2;

    /// The best level this processor has.
    fn detect() -> u8 {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("bmi1")
                && std::arch::is_x86_feature_detected!("bmi2")
                && std::arch::is_x86_feature_detected!("popcnt")
                && std::arch::is_x86_feature_detected!("lzcnt");
            if avx2
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vbmi2")
            {
                return Self::AVX512;
            }
            if avx2 {
                return Self::AVX2;
            }
        }
        Self::BASELINE
    }
}

/// Bit masks of one 64-byte block: bit `i` describes byte `i`.
struct BlockMasks {
    spaces: u64,
    newlines: u64,
    /// Bytes with the high bit set (not ASCII).
    non_ascii: u64,
    /// ASCII digits.
    digits: u64,
}

impl BlockMasks {
    /// With SSE2, which every x86-64 processor has: a compare and a
    /// byte-mask move per 16 bytes and kind, a third of the time of the
    /// portable version (measured on the benchmark machine).
    #[cfg(target_arch = "x86_64")]
    fn of(block: &[u8; 64]) -> Self {
        use std::arch::x86_64::{
            _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut masks = Self {
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

    #[cfg(not(target_arch = "x86_64"))]
    fn of(block: &[u8; 64]) -> Self {
        Self::portable(block)
    }

    /// The masks at the level `SIMD`, which the processor must have.
    #[inline(always)]
    fn with<const SIMD: u8>(block: &[u8; 64]) -> Self {
        match SIMD {
            // SAFETY: the caller runs this level only where the processor
            // has its features (`Simd::detect`).
            #[cfg(target_arch = "x86_64")]
            Simd::AVX512 => unsafe { Self::of_avx512(block) },
            #[cfg(target_arch = "x86_64")]
            Simd::AVX2 => unsafe { Self::of_avx2(block) },
            _ => Self::of(block),
        }
    }

    /// With AVX2: 32 bytes per compare, half the instructions of SSE2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    fn of_avx2(block: &[u8; 64]) -> Self {
        use std::arch::x86_64::{
            _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
            _mm256_movemask_epi8, _mm256_set1_epi8,
        };
        let mut masks = Self {
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

    /// With AVX-512BW: the whole block in one register, and compares that
    /// give the 64-bit masks directly.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw")]
    #[inline]
    fn of_avx512(block: &[u8; 64]) -> Self {
        use std::arch::x86_64::{
            _mm512_cmpeq_epi8_mask, _mm512_cmpge_epu8_mask, _mm512_cmple_epu8_mask,
            _mm512_loadu_si512, _mm512_movepi8_mask, _mm512_set1_epi8,
        };
        // SAFETY: the 64-byte load reads exactly the array.
        let bytes = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
        Self {
            spaces: _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(b' ' as i8)),
            newlines: _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(b'\n' as i8)),
            non_ascii: _mm512_movepi8_mask(bytes),
            digits: _mm512_cmpge_epu8_mask(bytes, _mm512_set1_epi8(b'0' as i8))
                & _mm512_cmple_epu8_mask(bytes, _mm512_set1_epi8(b'9' as i8)),
        }
    }

    /// In plain integer arithmetic, 8 bytes per step (SWAR), for
    /// processors other than x86-64.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn portable(block: &[u8; 64]) -> Self {
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
        let mut masks = Self {
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
}

/// Whether `token`, which starts at `start` in the line split into
/// `tokens`, is a number of `kind`, as [`parse_integer`] and the range
/// check would say, without computing it: up to 9 digits always fit an
/// `Int32` and up to 18 an `Int64`, so for those a test of the line's
/// digit mask decides, with no branch on how many digits there are (which
/// mispredicts in a digit-by-digit loop). Empty and longer tokens, rare,
/// are parsed.
#[inline]
fn is_integer(tokens: &Tokens, token: &[u8], start: usize, kind: FieldKind) -> bool {
    let most_digits = if kind == FieldKind::Int32 { 9 } else { 18 };
    if (1..=most_digits).contains(&token.len()) {
        return tokens.all_digits(start, start + token.len());
    }
    parse_integer(token).is_some_and(|v| kind == FieldKind::Int64 || i32::try_from(v).is_ok())
}

/// The quick check of up to eight unrequested numeric fields among a
/// line's first 16 tokens, all at once in AVX-512 lanes: the scalar loop
/// spent about 60% of the record decoder's cycles on these (perf, top
/// talkers), most of it on each field's own loads and shifts.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
struct NumberLanes {
    /// Per lane, the edges (places in [`Tokens::edges`]) of its token's
    /// start and end, and its most digits.
    starts: [u32; 16],
    ends: [u32; 16],
    most: [u32; 16],
    /// The lanes in use.
    lanes: u8,
}

#[cfg(target_arch = "x86_64")]
impl NumberLanes {
    /// Lanes for `checked` (index, most digits), if they fit.
    fn new(checked: &[(usize, usize)]) -> Option<Self> {
        if checked.len() > 8 || checked.iter().any(|&(i, _)| i >= 16) {
            return None;
        }
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
        Some(lanes)
    }

    /// What the scalar quick check says, except that a `-` fails here too
    /// (the exact check takes those lines); `None` for lines over 448
    /// bytes, whose digit masks are more than eight words.
    #[target_feature(enable = "avx512f")]
    fn look_valid(&self, tokens: &Tokens) -> Option<bool> {
        use std::arch::x86_64::{
            _mm512_add_epi64, _mm512_and_si512, _mm512_castsi512_si256, _mm512_cmpeq_epi64_mask,
            _mm512_cmple_epu32_mask, _mm512_cvtepu32_epi64, _mm512_loadu_si512,
            _mm512_maskz_loadu_epi32, _mm512_maskz_loadu_epi64, _mm512_or_si512,
            _mm512_permutex2var_epi32, _mm512_permutexvar_epi64, _mm512_set1_epi64,
            _mm512_sllv_epi64, _mm512_srli_epi64, _mm512_srlv_epi64, _mm512_sub_epi32,
            _mm512_sub_epi64,
        };
        let (edges, digits) = (&tokens.edges, &tokens.digits);
        if digits.len() > 8 {
            return None;
        }
        // The first 32 edges, and the digit masks, in registers.
        let in_first = |n: usize| ((1u32 << n.min(16)) - 1) as u16;
        // SAFETY: a masked load reads only its set lanes, here the ones
        // within the vectors.
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

/// The most digits [`RecordDecoder::numbers_look_valid`] takes for a field
/// of `kind`: as many as always fit the type (so no range check), and for
/// a parsed field at most the 16 that [`parse_digits`] reads.
fn most_quick_digits(kind: FieldKind, parsed: bool) -> usize {
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
fn parse_digits(
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
fn parse_integer(token: &[u8]) -> Option<i64> {
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

/// Decodes the text of one flow-log object, fed in chunks of any size, into
/// record batches of the requested columns.
pub struct TextDecoder {
    schema: SchemaRef,
    batch_size: usize,
    records: Option<RecordDecoder>,
    header: Option<Header>,
    /// The unfinished last line of the previous chunk.
    carry: Vec<u8>,
    /// True while skipping the rest of an over-long line.
    skipping_long_line: bool,
    line_number: u64,
    rows_decoded: u64,
    ready: VecDeque<RecordBatch>,
    rejects: Box<dyn RejectSink>,
    filter: Arc<RecordFilter>,
    /// The [`Simd`] level [`TextDecoder::feed`] runs at.
    simd: u8,
}

impl fmt::Debug for TextDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextDecoder")
            .field("line_number", &self.line_number)
            .field("rows_decoded", &self.rows_decoded)
            .finish_non_exhaustive()
    }
}

impl TextDecoder {
    /// A decoder producing batches of `schema` (the requested record columns,
    /// by name) of at most `batch_size` rows.
    pub fn new(schema: SchemaRef, batch_size: usize, rejects: Box<dyn RejectSink>) -> Self {
        Self {
            schema,
            batch_size: batch_size.max(1),
            records: None,
            header: None,
            carry: Vec::new(),
            skipping_long_line: false,
            line_number: 0,
            rows_decoded: 0,
            ready: VecDeque::new(),
            rejects,
            filter: Arc::default(),
            simd: Simd::detect(),
        }
    }

    /// Appends only the well-formed lines that pass `filter`'s tests
    /// (every line is still checked, and malformed ones still reported).
    pub fn with_record_filter(mut self, filter: Arc<RecordFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// The header, once the first line has been read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Well-formed records read so far, whether or not they passed the
    /// record filter.
    pub fn rows_decoded(&self) -> u64 {
        self.rows_decoded
    }

    /// Feeds the next chunk of text.
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        match self.simd {
            // SAFETY: `Simd::detect` found these levels' features.
            #[cfg(target_arch = "x86_64")]
            Simd::AVX512 => unsafe { self.feed_avx512(data) },
            #[cfg(target_arch = "x86_64")]
            Simd::AVX2 => unsafe { self.feed_avx2(data) },
            _ => self.feed_with::<{ Simd::BASELINE }>(data),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
    fn feed_avx2(&mut self, data: &[u8]) -> Result<()> {
        self.feed_with::<{ Simd::AVX2 }>(data)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512bw,avx512vbmi2,avx2,bmi1,bmi2,popcnt,lzcnt")]
    fn feed_avx512(&mut self, data: &[u8]) -> Result<()> {
        self.feed_with::<{ Simd::AVX512 }>(data)
    }

    /// [`TextDecoder::feed`] at the level `SIMD`.
    #[inline(always)]
    fn feed_with<const SIMD: u8>(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            // The common case: a record line wholly inside this chunk.
            if self.carry.is_empty()
                && !self.skipping_long_line
                && let Some(records) = &mut self.records
                && let Some((len, ascii)) = split_line_with::<SIMD>(data, &mut records.tokens)
            {
                self.record_line(&data[..len], ascii)?;
                data = &data[len + 1..];
                continue;
            }
            match memchr::memchr(b'\n', data) {
                Some(pos) => {
                    let (line, rest) = (&data[..pos], &data[pos + 1..]);
                    data = rest;
                    if self.skipping_long_line {
                        self.skipping_long_line = false;
                        continue;
                    }
                    if self.carry.len() + line.len() > MAX_LINE_BYTES {
                        let mut carry = std::mem::take(&mut self.carry);
                        carry.extend_from_slice(&line[..MAX_LINE_BYTES.min(line.len())]);
                        self.too_long(&carry)?;
                    } else if self.carry.is_empty() {
                        self.line(line)?;
                    } else {
                        let mut carry = std::mem::take(&mut self.carry);
                        carry.extend_from_slice(line);
                        self.line(&carry)?;
                        carry.clear();
                        self.carry = carry;
                    }
                }
                None => {
                    if !self.skipping_long_line {
                        if self.carry.len() + data.len() > MAX_LINE_BYTES {
                            let mut carry = std::mem::take(&mut self.carry);
                            carry.extend_from_slice(&data[..MAX_LINE_BYTES.min(data.len())]);
                            self.too_long(&carry)?;
                            self.skipping_long_line = true;
                        } else {
                            self.carry.extend_from_slice(data);
                        }
                    }
                    data = &[];
                }
            }
        }
        Ok(())
    }

    /// Ends the text: decodes a last line that has no newline and flushes
    /// the final batch. An object with no header line is an error.
    pub fn finish(&mut self) -> Result<()> {
        if self.skipping_long_line {
            self.skipping_long_line = false;
        } else if !self.carry.is_empty() {
            let carry = std::mem::take(&mut self.carry);
            self.line(&carry)?;
        }
        if self.header.is_none() {
            return Err(DataFusionError::Execution(
                "the object holds no header line".to_string(),
            ));
        }
        if let Some(records) = &mut self.records
            && let Some(batch) = records.take_batch()?
        {
            self.ready.push_back(batch);
        }
        Ok(())
    }

    /// Makes the rows decoded so far available from [`TextDecoder::next_batch`]
    /// without ending the text, for a reader that gives up on the rest.
    pub fn flush_rows(&mut self) {
        if let Some(records) = &mut self.records
            && let Ok(Some(batch)) = records.take_batch()
        {
            self.ready.push_back(batch);
        }
    }

    /// The next finished batch, if any.
    pub fn next_batch(&mut self) -> Option<RecordBatch> {
        self.ready.pop_front()
    }

    fn too_long(&mut self, start_of_line: &[u8]) -> Result<()> {
        self.line_number += 1;
        if self.header.is_none() {
            return Err(DataFusionError::Execution(format!(
                "the header line is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        self.rejects
            .reject(self.line_number, Reject::TooLong, start_of_line)
    }

    /// Reads one line that [`split_line`] did not: the header, a line
    /// across chunks, the last line of a chunk.
    fn line(&mut self, line: &[u8]) -> Result<()> {
        if let Some(records) = &mut self.records {
            let ascii = split_fields(line, &mut records.tokens);
            return self.record_line(line, ascii);
        }
        self.line_number += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let header = Header::parse(line)?;
        self.records = Some(RecordDecoder::new(
            &header,
            Arc::clone(&self.schema),
            self.batch_size,
            &self.filter,
            self.simd,
        )?);
        self.header = Some(header);
        Ok(())
    }

    /// Decodes a record line whose tokens are in the records decoder.
    fn record_line(&mut self, line: &[u8], ascii: bool) -> Result<()> {
        self.line_number += 1;
        let records = self
            .records
            .as_mut()
            .expect("record lines come after the header");
        // CRLF endings: the `\r` is not part of the line.
        let line = match line.strip_suffix(b"\r") {
            Some(stripped) => {
                records.tokens.drop_final_cr(line.len());
                stripped
            }
            None => line,
        };
        if records.tokens.is_empty() {
            return Ok(()); // a blank line
        }
        match records.decode_tokens(line, ascii) {
            Ok(appended) => {
                self.rows_decoded += 1;
                if appended
                    && records.is_full()
                    && let Some(batch) = records.take_batch()?
                {
                    self.ready.push_back(batch);
                }
                Ok(())
            }
            Err(reason) => self.rejects.reject(self.line_number, reason, line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::SplitMix;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Field, Int32Type, Int64Type, Schema};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<(u64, Reject)>>>);

    impl RejectSink for Collect {
        fn reject(&mut self, line: u64, reason: Reject, _raw: &[u8]) -> Result<()> {
            self.0.lock().unwrap().push((line, reason));
            Ok(())
        }
    }

    fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn decode(
        text: &[u8],
        chunk: usize,
        schema: SchemaRef,
    ) -> (Vec<RecordBatch>, Vec<(u64, Reject)>) {
        let (batches, rejected, _) = decode_filtered(text, chunk, schema, RecordFilter::default());
        (batches, rejected)
    }

    /// Batches, rejected lines and well-formed records read.
    fn decode_filtered(
        text: &[u8],
        chunk: usize,
        schema: SchemaRef,
        filter: RecordFilter,
    ) -> (Vec<RecordBatch>, Vec<(u64, Reject)>, u64) {
        let rejects = Collect::default();
        let mut decoder = TextDecoder::new(schema, 2, Box::new(rejects.clone()))
            .with_record_filter(Arc::new(filter));
        for piece in text.chunks(chunk) {
            decoder.feed(piece).unwrap();
        }
        decoder.finish().unwrap();
        let mut batches = vec![];
        while let Some(b) = decoder.next_batch() {
            batches.push(b);
        }
        let rejected = rejects.0.lock().unwrap().clone();
        (batches, rejected, decoder.rows_decoded())
    }

    const TEXT: &[u8] = b"version srcport bytes log-status\r\n\
        2 22 4249 OK\r\n\
        2 - - NODATA\n\
        \n\
        2  3389   100 OK  \n\
        2 x 1 OK\n\
        2 1 OK\n\
        2 99999999999 1 OK\n\
        2 80 18446744073709551616000 OK\n\
        2 80 7 \xff\xfe\n\
        2 443 5 OK";

    #[test]
    fn decodes_by_name_in_any_chunking() {
        let s = schema(&[
            ("bytes", DataType::Int64),
            ("srcport", DataType::Int32),
            ("vpc_id", DataType::Utf8View),
            ("log_status", DataType::Utf8View),
        ]);
        for chunk in [1, 3, 7, 1024] {
            let (batches, rejects) = decode(TEXT, chunk, Arc::clone(&s));
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 4, "chunk {chunk}");
            let all = datafusion::arrow::compute::concat_batches(&s, &batches).unwrap();
            let bytes = all.column(0).as_primitive::<Int64Type>();
            assert_eq!(
                bytes.iter().collect::<Vec<_>>(),
                [Some(4249), None, Some(100), Some(5)]
            );
            let ports = all.column(1).as_primitive::<Int32Type>();
            assert_eq!(
                ports.iter().collect::<Vec<_>>(),
                [Some(22), None, Some(3389), Some(443)]
            );
            assert_eq!(all.column(2).null_count(), 4);
            let status = all.column(3).as_string_view();
            assert_eq!(
                status.iter().collect::<Vec<_>>(),
                [Some("OK"), Some("NODATA"), Some("OK"), Some("OK")]
            );
            let lines: Vec<u64> = rejects.iter().map(|(l, _)| *l).collect();
            assert_eq!(lines, [6, 7, 8, 9, 10], "chunk {chunk}");
            assert!(matches!(rejects[0].1, Reject::BadValue { .. }));
            assert_eq!(
                rejects[1].1,
                Reject::FieldCount {
                    expected: 4,
                    found: 3
                }
            );
            assert!(
                matches!(rejects[2].1, Reject::BadValue { .. }),
                "i32 overflow"
            );
            assert!(
                matches!(rejects[3].1, Reject::BadValue { .. }),
                "i64 overflow"
            );
            assert_eq!(rejects[4].1, Reject::NotUtf8);
        }
    }

    #[test]
    fn the_record_filter_drops_rows_but_never_rejects() {
        use datafusion::prelude::{col, lit};
        let columns = schema(&[
            ("srcport", DataType::Int32),
            ("log_status", DataType::Utf8View),
            ("vpc_id", DataType::Utf8View),
        ]);
        let bytes = |filters: &[datafusion::prelude::Expr]| {
            let filter = RecordFilter::from_filters(filters, &columns);
            assert_eq!(filter.tests().len(), filters.len());
            let output = schema(&[("bytes", DataType::Int64)]);
            let (batches, rejects, records) = decode_filtered(TEXT, 5, output, filter);
            assert_eq!(records, 4, "well-formed records read");
            let lines: Vec<u64> = rejects.iter().map(|r| r.0).collect();
            assert_eq!(lines, [6, 7, 8, 9, 10], "the same lines are malformed");
            batches
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<Int64Type>().iter())
                .collect::<Vec<_>>()
        };
        let ok = col("log_status").eq(lit("OK"));
        let ports = col("srcport").in_list(vec![lit(22), lit(443)], false);
        assert_eq!(bytes(&[ok.clone(), ports]), [Some(4249), Some(5)]);
        assert_eq!(bytes(&[col("srcport").eq(lit(3389))]), [Some(100)]);
        assert_eq!(bytes(&[col("log_status").eq(lit("NODATA"))]), [None]);
        // A NULL passes no test; a field the header lacks is all NULL.
        assert_eq!(bytes(&[ok, col("srcport").eq(lit(80))]), []);
        assert_eq!(bytes(&[col("vpc_id").eq(lit("vpc-1"))]), []);
        let all = [Some(4249), None, Some(100), Some(5)];
        assert_eq!(bytes(&[col("vpc_id").is_null()]), all);
        assert_eq!(bytes(&[col("srcport").gt(lit(100))]), [Some(100), Some(5)]);
        assert_eq!(
            bytes(&[col("srcport").is_not_null()]),
            [Some(4249), Some(100), Some(5)]
        );
        assert_eq!(bytes(&[col("log_status").like(lit("NO%"))]), [None]);
    }

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

    #[test]
    fn numbers_are_checked_and_parsed_whichever_columns_are_read() {
        // Random numeric tokens (short and long digit runs, leading zeros,
        // the edges of the types, `-`, junk) decoded with different columns
        // requested: the quick check and the exact one must agree with
        // `parse_integer` on every line, whichever path decides.
        let header = "account-id version srcport bytes start action";
        let kinds = [
            FieldKind::Int32,
            FieldKind::Int32,
            FieldKind::Int64,
            FieldKind::Int64,
        ];
        let mut rng = SplitMix(0x2545_F491_4F6C_DD1D);
        let mut next = |n: usize| rng.below(n as u64) as usize;
        let specials = [
            "-",
            "0",
            "2147483647",
            "2147483648",
            "999999999",
            "1000000000",
            "9999999999999999",
            "99999999999999999",
            "999999999999999999",
            "1000000000000000000",
            "12a",
            "-5",
            "+5",
            "1.0",
        ];
        let mut text = format!("{header}\n");
        let mut lines = Vec::new();
        for _ in 0..3000 {
            let tokens: Vec<String> = (0..4)
                .map(|_| match next(4) {
                    0 => specials[next(specials.len())].to_string(),
                    _ => (0..1 + next(19))
                        .map(|_| char::from(b'0' + next(10) as u8))
                        .collect(),
                })
                .collect();
            // A first field of any length moves the numbers across the
            // digit masks' blocks, and some lines past 448 bytes.
            let account = "x".repeat(1 + next(420));
            text.push_str(&format!("{account} {} ACCEPT\n", tokens.join(" ")));
            lines.push(tokens);
        }
        let names = ["version", "srcport", "bytes", "start"];
        for requested in [vec![], vec![2], vec![1, 2], vec![0, 3], vec![0, 1, 2, 3]] {
            let columns: Vec<(&str, DataType)> = requested
                .iter()
                .map(|&i| (names[i], kinds[i].data_type()))
                .collect();
            let (batches, rejects) = decode(text.as_bytes(), 4096, schema(&columns));
            let mut want_rows: Vec<Vec<Option<i64>>> = Vec::new();
            let mut want_rejects = Vec::new();
            for (n, tokens) in lines.iter().enumerate() {
                let values: Vec<Option<Option<i64>>> = tokens
                    .iter()
                    .zip(kinds)
                    .map(|(token, kind)| match token.as_str() {
                        "-" => Some(None),
                        _ => parse_integer(token.as_bytes())
                            .filter(|v| kind == FieldKind::Int64 || i32::try_from(*v).is_ok())
                            .map(Some),
                    })
                    .collect();
                match values.iter().position(Option::is_none) {
                    Some(bad) => want_rejects.push((n as u64 + 2, names[bad].to_string())),
                    None => want_rows.push(requested.iter().map(|&i| values[i].unwrap()).collect()),
                }
            }
            let got_rejects: Vec<(u64, String)> = rejects
                .iter()
                .map(|(line, reason)| match reason {
                    Reject::BadValue { field, .. } => (*line, field.clone()),
                    other => panic!("line {line}: {other:?}"),
                })
                .collect();
            assert_eq!(got_rejects, want_rejects, "reading {requested:?}");
            let mut got_rows: Vec<Vec<Option<i64>>> = Vec::new();
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    got_rows.push(
                        batch
                            .columns()
                            .iter()
                            .map(|column| match column.data_type() {
                                DataType::Int32 => {
                                    let c = column.as_primitive::<Int32Type>();
                                    c.is_valid(row).then(|| i64::from(c.value(row)))
                                }
                                _ => {
                                    let c = column.as_primitive::<Int64Type>();
                                    c.is_valid(row).then(|| c.value(row))
                                }
                            })
                            .collect(),
                    );
                }
            }
            if requested.is_empty() {
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                assert_eq!(rows, want_rows.len());
            } else {
                assert_eq!(got_rows, want_rows, "reading {requested:?}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn number_lanes_agree_with_the_scalar_check() {
        if Simd::detect() < Simd::AVX512 {
            eprintln!("no AVX-512 here: the lanes are not used");
            return;
        }
        let mut rng = SplitMix(0x1234_5678_9ABC_DEF1);
        let mut next = |n: usize| rng.below(n as u64) as usize;
        let pieces = ["-", "7", "12a", "x", "1234567890", "0000000000000000000"];
        let mut tokens = Tokens::default();
        let (mut said_yes, mut said_no) = (0, 0);
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
                    checked.push((i, [9, 18][next(2)]));
                }
            }
            let lanes = NumberLanes::new(&checked).expect("fits the lanes");
            // SAFETY: AVX-512 was detected above.
            let Some(valid) = (unsafe { lanes.look_valid(&tokens) }) else {
                assert!(tokens.digits.len() > 8, "{line}");
                continue;
            };
            let want = checked.iter().all(|&(i, most)| {
                let (start, end) = tokens.get(i);
                (1..=most).contains(&(end - start))
                    && line.as_bytes()[start..end].iter().all(u8::is_ascii_digit)
            });
            assert_eq!(valid, want, "{checked:?} of {line:?}");
            if valid {
                said_yes += 1;
            } else {
                said_no += 1;
            }
        }
        assert!(said_yes > 1000 && said_no > 1000, "{said_yes} / {said_no}");
    }

    #[test]
    fn counts_rows_with_no_columns() {
        let (batches, _) = decode(TEXT, 5, schema(&[]));
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    }

    #[test]
    fn long_lines_are_rejected_with_bounded_memory() {
        let mut text = b"version log-status\n2 OK\n".to_vec();
        text.extend(std::iter::repeat_n(b'a', 3 * MAX_LINE_BYTES));
        text.extend_from_slice(b"\n2 OK\n");
        text.extend(std::iter::repeat_n(b'b', 2 * MAX_LINE_BYTES));
        let (batches, rejects) = decode(&text, 4096, schema(&[("version", DataType::Int32)]));
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        assert_eq!(rejects, [(3, Reject::TooLong), (5, Reject::TooLong)]);
    }

    #[test]
    fn header_only_and_empty_objects() {
        let (batches, _) = decode(
            b"version log-status\n",
            64,
            schema(&[("version", DataType::Int32)]),
        );
        assert!(batches.is_empty());
        let mut decoder = TextDecoder::new(schema(&[]), 8, Box::new(Collect::default()));
        assert!(decoder.finish().is_err());
    }
}
