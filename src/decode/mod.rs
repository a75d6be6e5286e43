//! Flow-log text to Arrow: the hot loop.
//!
//! [`TextDecoder`] takes the decompressed text of one object in chunks of any
//! size, reads the header line, binds the header's fields to the requested
//! columns by name, and turns every record line into one row, or, given a
//! [`RecordFilter`], every line that passes it. Only the requested columns
//! are built, but every field of every line is checked, so which lines
//! count as malformed never depends on the query.
//!
//! It takes the place of a generic CSV reader (DataFusion's CSV source,
//! over arrow-csv), which reads every file with one schema, by position,
//! and splits at single spaces: a flow-log object's own header line says
//! which fields it holds and in which order, and its fields may be
//! separated by runs of spaces. arrow-csv stays as the test oracle
//! (`tests/it/decoder_oracle.rs`) and the benchmark baseline
//! (`benches/decoder.rs`).
//!
//! Text rules: a `-` is NULL in every column; CRLF endings lose their `\r`;
//! runs of spaces and trailing spaces separate nothing extra (one of AWS's
//! documented sample records has a double space); blank lines hold no
//! record and are passed over; a line with the wrong field count, a value
//! that is not its column's type, bytes that are not UTF-8, or more than
//! [`MAX_LINE_BYTES`] bytes is malformed: it goes to the [`RejectSink`]
//! with its [`Reject`] reason, and the sink says whether the read goes on.
//!
//! A line goes through the files in this order:
//!
//! - this file: [`TextDecoder`], the framing: chunks into lines, lines
//!   across chunks, over-long lines, the header line, CRLF;
//! - [`tokenizer`]: a line into tokens at runs of spaces, with its digit
//!   masks and whether it is ASCII, 64 bytes at a time;
//! - [`records`]: the header's fields bound to the output columns; each
//!   line's field count, UTF-8 and numbers checked, the filter's tests
//!   run, and the row appended;
//! - [`numbers`]: numeric fields checked and parsed;
//! - [`integers`] and [`views`]: the values appended, integers and text
//!   (copied from the line into string views), with their nulls as
//!   [`validity`] bits;
//! - [`record_filter`]: the query's filters on record columns, as tests on
//!   a line's values;
//! - [`reject`]: why a line is malformed, and where it goes;
//! - [`simd`]: the steps written once per instruction level (block masks,
//!   edges, number lanes), and the one place that picks the level.

mod integers;
mod numbers;
pub(crate) mod record_filter;
mod records;
mod reject;
mod simd;
mod tokenizer;
mod validity;
mod views;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};

use crate::catalogue::Header;

use self::record_filter::RecordFilter;
use self::records::RecordDecoder;
pub use self::reject::{Reject, RejectSink};
use self::simd::Simd;
use self::tokenizer::{split_fields, split_line_with};
use crate::text_codes::PassedOn;

/// Which text columns a [`TextDecoder`] makes the codes of, for whom.
#[derive(Debug, Clone, Default)]
pub(crate) enum Codes {
    #[default]
    None,
    /// These columns, for a grouping above that packs them. Once a batch's
    /// codes went unused (the partial aggregate under the grouping made
    /// arrays of its own), the rest of the object is read without. With
    /// `passed_on`, where the plan reads no text of these columns once a
    /// partial aggregate passes batches on, the text of values with a code
    /// is left out from then on.
    ForGrouping {
        columns: Arc<[String]>,
        passed_on: Option<PassedOn>,
    },
    /// Every text column, for the cache's writer, which keeps the
    /// addresses as codes (and remembers them for a grouping above). With
    /// `grouping`, the columns a grouping above packs and their
    /// [`PassedOn`]: their text is left out as for `ForGrouping`, in
    /// batches whose every value has a code.
    ForCache {
        grouping: Option<(Arc<[String]>, PassedOn)>,
    },
}

impl Codes {
    /// These codes for one scan partition: its own [`PassedOn`], set by
    /// the grouping that recalls codes of its batches.
    pub(crate) fn for_partition(&self) -> Self {
        match self {
            Self::ForGrouping { columns, passed_on } => Self::ForGrouping {
                columns: Arc::clone(columns),
                passed_on: passed_on.as_ref().map(|_| PassedOn::default()),
            },
            other => other.clone(),
        }
    }

    /// For a read that fills the cache: every text column's codes, and
    /// the text left out as these codes leave it.
    pub(crate) fn for_cache(&self) -> Self {
        let grouping = match self {
            Self::ForGrouping {
                columns,
                passed_on: Some(passed_on),
            } => Some((Arc::clone(columns), passed_on.clone())),
            _ => None,
        };
        Self::ForCache { grouping }
    }
}

/// The longest line accepted; longer lines are malformed and memory stays bounded.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

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
    /// Which text columns' codes are made as they are read, and for whom.
    codes: Codes,
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
            codes: Codes::None,
            simd: Simd::detect(),
        }
    }

    /// Appends only the well-formed lines that pass `filter`'s tests
    /// (every line is still checked, and malformed ones still reported).
    pub fn with_record_filter(mut self, filter: Arc<RecordFilter>) -> Self {
        self.filter = filter;
        self
    }

    /// Makes the [`crate::text_codes`] codes of text columns as it reads
    /// their values, as `codes` says, and remembers each batch's for the
    /// plan above ([`crate::text_codes::recall`]): addresses are packed
    /// there anyway, and the decoder holds their bytes already.
    pub(crate) fn with_codes(mut self, codes: Codes) -> Self {
        self.codes = codes;
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
        simd::dispatch(
            self.simd,
            Feed {
                decoder: self,
                data,
            },
        )
    }

    /// [`TextDecoder::feed`] at the level `SIMD`: the hot loop, compiled
    /// once per level.
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

    /// Reads one line that [`split_line_with`] did not: the header, a line
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
            &self.codes,
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

/// [`TextDecoder::feed`] as work for [`simd::dispatch`], which runs the
/// copy of it compiled for the processor's level.
struct Feed<'a> {
    decoder: &'a mut TextDecoder,
    data: &'a [u8],
}

impl simd::AtLevel for Feed<'_> {
    type Output = Result<()>;

    #[inline(always)]
    fn run<const SIMD: u8>(self) -> Result<()> {
        self.decoder.feed_with::<SIMD>(self.data)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<(u64, Reject)>>>);

    impl RejectSink for Collect {
        fn reject(&mut self, line: u64, reason: Reject, _raw: &[u8]) -> Result<()> {
            self.0.lock().unwrap().push((line, reason));
            Ok(())
        }
    }

    pub(crate) fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    pub(crate) fn decode(
        text: &[u8],
        chunk: usize,
        schema: SchemaRef,
    ) -> (Vec<RecordBatch>, Vec<(u64, Reject)>) {
        let (batches, rejected, _) = decode_filtered(text, chunk, schema, RecordFilter::default());
        (batches, rejected)
    }

    /// Batches, rejected lines and well-formed records read.
    pub(crate) fn decode_filtered(
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

    pub(crate) const TEXT: &[u8] = b"version srcport bytes log-status\r\n\
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

    /// Batches of two rows decoded with `codes`, with whether each
    /// batch's `srcaddr` and `action` had codes remembered (which must be
    /// the columns' own), dropping each batch after looking.
    fn remembered_codes(codes: Codes) -> Vec<(bool, bool)> {
        let text = b"srcaddr action dstaddr\n\
            10.0.0.1 ACCEPT 10.1.0.1\n\
            - REJECT 172.16.0.1\n\
            192.168.100.200 ACCEPT 2001:db8::1\n\
            10.0.0.2 ACCEPT 10.1.0.2\n\
            10.0.0.3 REJECT 10.1.0.3\n";
        let s = schema(&[
            ("srcaddr", DataType::Utf8View),
            ("action", DataType::Utf8View),
        ]);
        let mut decoder = TextDecoder::new(s, 2, Box::new(Collect::default())).with_codes(codes);
        let mut seen = vec![];
        // Line by line: each batch is passed on (and dropped) before the
        // next one starts, as in a scan.
        for line in text.split_inclusive(|&b| b == b'\n') {
            decoder.feed(line).unwrap();
            while let Some(batch) = decoder.next_batch() {
                let look = |column: &datafusion::arrow::array::ArrayRef| {
                    let recalled = crate::text_codes::recall(column);
                    if let Some((codes, packed, _)) = &recalled {
                        let made = crate::text_codes::pack_column(column.as_ref()).unwrap();
                        assert_eq!((codes, packed), (&made.0, &made.1));
                    }
                    recalled.is_some()
                };
                seen.push((look(batch.column(0)), look(batch.column(1))));
            }
        }
        decoder.finish().unwrap();
        while let Some(batch) = decoder.next_batch() {
            seen.push((
                crate::text_codes::recall(batch.column(0)).is_some(),
                crate::text_codes::recall(batch.column(1)).is_some(),
            ));
        }
        seen
    }

    #[test]
    fn codes_are_made_for_the_columns_asked_until_they_go_unused() {
        // Every text column for the cache, while its values have codes:
        // `action` stops at its first value.
        assert_eq!(
            remembered_codes(Codes::ForCache { grouping: None }),
            [(true, false), (true, false), (true, false)]
        );
        // For a grouping, the columns it asks for, which it recalls here;
        // `action` stops after a batch with no code.
        let grouping = Codes::ForGrouping {
            columns: Arc::new(["srcaddr".to_string(), "action".to_string()]),
            passed_on: None,
        };
        assert_eq!(
            remembered_codes(grouping),
            [(true, true), (true, false), (true, false)]
        );
        let grouping = Codes::ForGrouping {
            columns: Arc::new(["srcaddr".to_string()]),
            passed_on: None,
        };
        assert_eq!(
            remembered_codes(grouping),
            [(true, false), (true, false), (true, false)]
        );
        assert_eq!(
            remembered_codes(Codes::None),
            [(false, false), (false, false), (false, false)]
        );
    }

    #[test]
    fn text_of_coded_values_is_left_out_once_a_batch_is_passed_on() {
        let text = b"srcaddr action dstaddr\n\
            10.0.0.1 ACCEPT 10.1.0.1\n\
            10.0.0.2 REJECT 172.16.100.200\n\
            192.168.100.200 ACCEPT 010.1.0.3\n\
            - ACCEPT 2001:db8::1\n";
        let s = schema(&[
            ("srcaddr", DataType::Utf8View),
            ("action", DataType::Utf8View),
            ("dstaddr", DataType::Utf8View),
        ]);
        let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
        let words = |line: &[u8]| -> Vec<Option<String>> {
            String::from_utf8(line.to_vec())
                .unwrap()
                .split_whitespace()
                .map(|word| (word != "-").then(|| word.to_string()))
                .collect()
        };
        let passed_on = crate::text_codes::PassedOn::default();
        let codes = Codes::ForGrouping {
            columns: Arc::new(["srcaddr".to_string(), "dstaddr".to_string()]),
            passed_on: Some(passed_on.clone()),
        };
        let mut decoder = TextDecoder::new(s, 1, Box::new(Collect::default())).with_codes(codes);
        decoder.feed(lines[0]).unwrap();
        for (number, line) in lines[1..].iter().enumerate() {
            decoder.feed(line).unwrap();
            let batch = decoder.next_batch().expect("a batch per line");
            let read: Vec<Option<String>> = batch
                .columns()
                .iter()
                .map(|column| {
                    let column = column.as_string_view();
                    column.is_valid(0).then(|| column.value(0).to_string())
                })
                .collect();
            let words = words(line);
            // The grouping recalls the codes of the first batch, which
            // sets `passed_on`; every batch after leaves the text of coded
            // values out, and their codes hold it.
            for (column, word) in [(0, &words[0]), (2, &words[2])] {
                let (codes, packed, textless) =
                    crate::text_codes::recall(batch.column(column)).unwrap();
                let code = word
                    .as_deref()
                    .and_then(|word| crate::text_codes::pack(word.as_bytes()));
                let left_out = number > 0 && code.is_some();
                assert_eq!(
                    packed.value(0),
                    code.is_some() || word.is_none(),
                    "{line:?}"
                );
                if let Some(code) = code {
                    assert_eq!(codes.value(0), code, "{line:?}");
                }
                let expected = if left_out {
                    Some(String::new())
                } else {
                    word.clone()
                };
                assert_eq!(read[column], expected, "{line:?}");
                assert_eq!(textless, left_out, "{line:?}");
            }
            assert_eq!(read[1], words[1], "text not coded is read as ever");
            assert!(passed_on.is_set());
        }
    }

    #[test]
    fn a_fill_leaves_text_out_only_of_batches_whose_every_value_has_a_code() {
        // Lines of at least 16 bytes: a value is read 16 bytes at a time.
        let text = b"srcaddr action\n10.0.0.1 ACCEPT\n10.0.0.2 ACCEPT\n\
            172.16.100.200 ACCEPT\n10.0.0.4 REJECTED\n192.168.100.200 ACCEPT\n\
            2001:db8::1 ACCEPT\n10.0.0.7 ACCEPT\n10.0.0.8 ACCEPT\n";
        let passed_on = crate::text_codes::PassedOn::default();
        let grouping = Codes::ForGrouping {
            columns: Arc::new(["srcaddr".to_string()]),
            passed_on: Some(passed_on.clone()),
        };
        let s = schema(&[("srcaddr", DataType::Utf8View)]);
        let mut decoder =
            TextDecoder::new(s, 2, Box::new(Collect::default())).with_codes(grouping.for_cache());
        let mut seen = Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n') {
            decoder.feed(line).unwrap();
            while let Some(batch) = decoder.next_batch() {
                let column = batch.column(0);
                let read: Vec<String> = column
                    .as_string_view()
                    .iter()
                    .map(|text| text.unwrap().to_string())
                    .collect();
                let readable: Vec<String> = crate::text_codes::readable(column)
                    .unwrap()
                    .as_string_view()
                    .iter()
                    .map(|text| text.unwrap().to_string())
                    .collect();
                // The cache's writer packs first; then the grouping.
                let written = crate::text_codes::pack_and_remember(column).unwrap();
                let recalled = crate::text_codes::recall(column);
                if let Some((codes, packed, _)) = &recalled {
                    assert_eq!((codes, packed), (&written.0, &written.1));
                }
                seen.push((read, readable, recalled.map(|(.., textless)| textless)));
            }
        }
        let texts = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let empty = texts(&["", ""]);
        assert_eq!(
            seen,
            [
                // Before the grouping recalls any codes: text.
                (
                    texts(&["10.0.0.1", "10.0.0.2"]),
                    texts(&["10.0.0.1", "10.0.0.2"]),
                    Some(false)
                ),
                // Every value has a code: left out.
                (empty, texts(&["172.16.100.200", "10.0.0.4"]), Some(true)),
                // A value without a code: the text left out is put back,
                // and codes stop for the rest of the object (the writer
                // packs the text).
                (
                    texts(&["192.168.100.200", "2001:db8::1"]),
                    texts(&["192.168.100.200", "2001:db8::1"]),
                    Some(false)
                ),
                (
                    texts(&["10.0.0.7", "10.0.0.8"]),
                    texts(&["10.0.0.7", "10.0.0.8"]),
                    Some(false)
                ),
            ]
        );
    }

    #[test]
    fn a_key_with_no_code_but_nulls_keeps_the_other_keys_text() {
        // `action`'s values have no code; its `-` is a NULL, which packs.
        let text = b"srcaddr action\n10.0.0.1 ACCEPT\n10.0.0.2 -\n";
        let passed_on = crate::text_codes::PassedOn::default();
        let codes = Codes::ForGrouping {
            columns: Arc::new(["srcaddr".to_string(), "action".to_string()]),
            passed_on: Some(passed_on.clone()),
        };
        let s = schema(&[
            ("srcaddr", DataType::Utf8View),
            ("action", DataType::Utf8View),
        ]);
        let mut decoder = TextDecoder::new(s, 2, Box::new(Collect::default())).with_codes(codes);
        decoder.feed(text).unwrap();
        decoder.finish().unwrap();
        let batch = decoder.next_batch().unwrap();
        assert!(crate::text_codes::recall(batch.column(0)).is_some());
        assert!(passed_on.is_set());
        assert!(!passed_on.leaves_text_out());
    }

    #[test]
    fn text_is_kept_while_no_batch_is_passed_on() {
        let text = b"srcaddr\n10.0.0.1\n10.0.0.2\n10.0.0.3\n";
        let passed_on = crate::text_codes::PassedOn::default();
        let codes = Codes::ForGrouping {
            columns: Arc::new(["srcaddr".to_string()]),
            passed_on: Some(passed_on.clone()),
        };
        let s = schema(&[("srcaddr", DataType::Utf8View)]);
        let mut decoder = TextDecoder::new(s, 1, Box::new(Collect::default())).with_codes(codes);
        decoder.feed(text).unwrap();
        decoder.finish().unwrap();
        // Made before any was passed on, and dropped unread.
        let mut read = Vec::new();
        while let Some(batch) = decoder.next_batch() {
            read.push(batch.column(0).as_string_view().value(0).to_string());
        }
        assert_eq!(read, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert!(!passed_on.is_set());
    }

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
