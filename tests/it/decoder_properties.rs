//! What must hold for the header parser and the decoder on any bytes at
//! all. The cargo-fuzz targets in `fuzz/` include this file and run it on
//! generated inputs; the tests here replay the fuzzers' corpus kept in
//! `fuzz/corpus/` and a fixed-seed stream of mutated records, so CI checks
//! the same properties on stable Rust.
//!
//! - Nothing panics.
//! - A decode does not depend on how the text is cut into chunks.
//! - Every line after the header is either one row or one rejected line
//!   (blank lines neither), so nothing is dropped silently.
//! - The same lines are rejected, for the same reasons, whichever columns
//!   are read (none at all for `count(*)`).
//! - A row's integers are what the standard library reads from the same
//!   tokens; a rejected value is one the standard library cannot read as
//!   the column's type, or an implausibly long one.
//! - With a record filter, the rows are exactly those of the unfiltered
//!   decode for which DataFusion's own evaluation of the filter is true,
//!   and the same lines are rejected.

use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::execution_props::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::physical_expr::create_physical_expr;
use flowsql::internals::Header;
use flowsql::internals::RecordFilter;
use flowsql::internals::{MAX_LINE_BYTES, Reject, RejectSink, TextDecoder};

/// Parsing any line either fails or gives tokens that name distinct columns.
pub fn check_header(line: &[u8]) {
    if let Ok(header) = Header::parse(line) {
        assert!(!header.tokens().is_empty());
        let schema = header.arrow_schema(DataType::Utf8View);
        assert_eq!(schema.fields().len(), header.tokens().len());
    }
}

/// A reject sink that keeps (line, reason) for the caller to read.
#[derive(Clone, Default)]
pub struct Collected(pub Arc<Mutex<Vec<(u64, Reject)>>>);

impl RejectSink for Collected {
    fn reject(&mut self, line: u64, reason: Reject, _raw: &[u8]) -> Result<()> {
        self.0.lock().unwrap().push((line, reason));
        Ok(())
    }
}

type Decoded = std::result::Result<(Vec<RecordBatch>, Vec<(u64, Reject)>), String>;

fn decode(data: &[u8], chunk: usize, header: &Header, batch_size: usize) -> Decoded {
    decode_columns(
        data,
        chunk,
        header.arrow_schema(DataType::Utf8View),
        batch_size,
    )
}

fn decode_columns(data: &[u8], chunk: usize, schema: SchemaRef, batch_size: usize) -> Decoded {
    decode_filtered(data, chunk, schema, batch_size, RecordFilter::default())
}

fn decode_filtered(
    data: &[u8],
    chunk: usize,
    schema: SchemaRef,
    batch_size: usize,
    filter: RecordFilter,
) -> Decoded {
    let rejects = Collected::default();
    let mut decoder = TextDecoder::new(Arc::clone(&schema), batch_size, Box::new(rejects.clone()))
        .with_record_filter(Arc::new(filter));
    for piece in data.chunks(chunk.max(1)) {
        decoder.feed(piece).map_err(|e| e.to_string())?;
    }
    decoder.finish().map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    while let Some(batch) = decoder.next_batch() {
        assert!(batch.num_rows() <= batch_size);
        assert_eq!(batch.schema(), schema);
        batches.push(batch);
    }
    let rejected = rejects.0.lock().unwrap().clone();
    Ok((batches, rejected))
}

/// Decodes `data` as one object's text and checks every property above.
pub fn check_decoder(data: &[u8]) {
    let first = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let header = match Header::parse(first) {
        Ok(header) if first.len() <= MAX_LINE_BYTES => header,
        // No header: the decoder must refuse the object too.
        _ => {
            let any = Header::parse(b"version").unwrap();
            assert!(decode(data, data.len(), &any, 7).is_err());
            return;
        }
    };
    let whole = decode(data, data.len(), &header, 1000);
    // The chunk size comes from the input, so the fuzzer steers it.
    let chunk = 1 + usize::from(data.last().copied().unwrap_or(0)) % 13;
    let pieces = decode(data, chunk, &header, 1000);
    let small_batches = decode(data, data.len(), &header, 3);
    let (batches, rejects) = whole
        .clone()
        .expect("a decode with a valid header succeeds");
    fn rows(d: &Decoded) -> std::result::Result<(usize, Vec<(u64, Reject)>), String> {
        d.clone()
            .map(|(b, r)| (b.iter().map(|b| b.num_rows()).sum::<usize>(), r))
    }
    assert_eq!(rows(&pieces), rows(&whole), "chunks of {chunk} bytes");
    assert_eq!(rows(&small_batches), rows(&whole), "batches of 3 rows");
    // Which lines are malformed, and why, never depends on the columns
    // read: unread numeric fields are checked without being parsed.
    let all = header.arrow_schema(DataType::Utf8View);
    let every_other: Vec<_> = all.fields().iter().step_by(2).cloned().collect();
    for (columns, schema) in [
        ("no columns", Arc::new(Schema::empty())),
        ("every other column", Arc::new(Schema::new(every_other))),
    ] {
        let read = decode_columns(data, data.len(), schema, 1000);
        assert_eq!(rows(&read), rows(&whole), "{columns}");
    }
    let pieces = pieces.unwrap().0;
    assert_eq!(concat(&pieces), concat(&batches), "chunks of {chunk} bytes");
    check_record_filters(data, &all, &batches, &rejects);

    // Every non-blank line after the header: a row or a reject, in order.
    let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').skip(1).collect();
    if data.ends_with(b"\n") {
        lines.pop();
    }
    let table = concat(&batches);
    let mut row = 0;
    let mut next_reject = rejects.iter().peekable();
    for (i, raw) in lines.iter().enumerate() {
        let number = i as u64 + 2;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if next_reject.peek().is_some_and(|(n, _)| *n == number) {
            let (_, reason) = next_reject.next().unwrap();
            // The length bound counts the line as it came, `\r` and all.
            let checked = if *reason == Reject::TooLong {
                raw
            } else {
                line
            };
            check_rejected(checked, &header, reason);
            continue;
        }
        if line.iter().all(|b| *b == b' ') {
            continue;
        }
        let table = table.as_ref().expect("a row exists for an accepted line");
        assert!(
            row < table.num_rows(),
            "line {number} is neither a row nor a reject"
        );
        check_row(line, table, row);
        row += 1;
    }
    assert!(
        next_reject.next().is_none(),
        "a reject for a line that does not exist"
    );
    assert_eq!(row, table.map_or(0, |t| t.num_rows()), "rows without lines");
}

/// Filters built from the text's own values (so a fuzzer steers them),
/// each run in the decoder and compared with DataFusion evaluating it on
/// the unfiltered rows.
fn check_record_filters(
    data: &[u8],
    all: &SchemaRef,
    batches: &[RecordBatch],
    rejects: &[(u64, Reject)],
) {
    let table = concat(batches);
    // A column no header field feeds is NULL on every line.
    let absent = Field::new("not in the header", DataType::Utf8View, true);
    let mut filters = vec![
        col(absent.name()).is_null(),
        col(absent.name()).eq(lit(ScalarValue::Utf8View(Some("x".to_string())))),
    ];
    // Three columns, from one the text picks on.
    let columns = all.fields().len();
    let first = data.len() % columns.max(1);
    for (at, field) in all
        .fields()
        .iter()
        .enumerate()
        .cycle()
        .skip(first)
        .take(3.min(columns))
    {
        let column = col(field.name());
        let value = table.as_ref().and_then(|t| {
            let array = t.column(at);
            (0..t.num_rows())
                .find(|&row| array.is_valid(row))
                .map(|row| ScalarValue::try_from_array(array, row).expect("a value of the row"))
        });
        filters.push(column.clone().is_null());
        filters.push(column.clone().is_not_null());
        let Some(value) = value else { continue };
        filters.push(column.clone().eq(lit(value.clone())));
        filters.push(column.clone().not_eq(lit(value.clone())));
        match &value {
            ScalarValue::Utf8View(Some(text)) => {
                let prefix: String = text.chars().take(2).collect();
                if !prefix.contains(['%', '_', '\\']) {
                    let pattern = ScalarValue::Utf8View(Some(format!("{prefix}%")));
                    filters.push(column.like(lit(pattern)));
                }
            }
            _ => filters.push(column.gt(lit(value))),
        }
    }
    let mut schema_with_absent: Vec<_> = all.fields().iter().cloned().collect();
    schema_with_absent.push(Arc::new(absent));
    let tested = Schema::new(schema_with_absent);
    let df_schema = DFSchema::try_from(tested.clone()).unwrap();
    for filter in filters {
        let record_filter = RecordFilter::from_filters(std::slice::from_ref(&filter), &tested);
        assert_eq!(
            record_filter.tests().len(),
            1,
            "{filter} runs in the decoder"
        );
        let (got, got_rejects) =
            decode_filtered(data, data.len(), Arc::clone(all), 64, record_filter).unwrap();
        assert_eq!(
            got_rejects, rejects,
            "{filter}: the same lines are rejected"
        );
        let want = table
            .as_ref()
            .map(|t| expected_rows(t, &filter, &df_schema));
        let rows = |b: Option<RecordBatch>| b.filter(|b| b.num_rows() > 0);
        assert_eq!(rows(concat(&got)), rows(want), "{filter}");
    }
}

/// The rows of `table` for which DataFusion finds `filter` true (the
/// absent column added as all NULL).
fn expected_rows(table: &RecordBatch, filter: &Expr, df_schema: &DFSchema) -> RecordBatch {
    let nulls = datafusion::arrow::array::new_null_array(&DataType::Utf8View, table.num_rows());
    let mut columns = table.columns().to_vec();
    columns.push(nulls);
    let widened = RecordBatch::try_new(Arc::clone(df_schema.inner()), columns).unwrap();
    let planning = PhysicalPlanningContext::default();
    let predicate =
        create_physical_expr(filter, df_schema, &ExecutionProps::new(), &planning).unwrap();
    let mask = predicate.evaluate(&widened).unwrap();
    let mask = mask.into_array(table.num_rows()).unwrap();
    filter_record_batch(table, mask.as_boolean()).unwrap()
}

fn concat(batches: &[RecordBatch]) -> Option<RecordBatch> {
    let first = batches.first()?;
    Some(datafusion::arrow::compute::concat_batches(&first.schema(), batches).unwrap())
}

fn tokens(line: &[u8]) -> Vec<&[u8]> {
    line.split(|b| *b == b' ')
        .filter(|t| !t.is_empty())
        .collect()
}

/// An accepted line's values, read back from the row.
fn check_row(line: &[u8], table: &RecordBatch, row: usize) {
    let text = std::str::from_utf8(line).expect("an accepted line is UTF-8");
    assert!(line.len() <= MAX_LINE_BYTES);
    let values = tokens(line);
    assert_eq!(values.len(), table.num_columns(), "{text}");
    for (column, value) in table.columns().iter().zip(values) {
        let value = std::str::from_utf8(value).unwrap();
        if value == "-" {
            assert!(column.is_null(row), "{text}");
            continue;
        }
        match column.data_type() {
            DataType::Int64 => {
                assert_eq!(
                    column.as_primitive::<Int64Type>().value(row),
                    value.parse::<i64>().unwrap()
                );
            }
            DataType::Int32 => {
                assert_eq!(
                    column.as_primitive::<Int32Type>().value(row),
                    value.parse::<i32>().unwrap()
                );
            }
            _ => assert_eq!(column.as_string_view().value(row), value, "{text}"),
        }
    }
}

/// A rejected line deserves its reason.
fn check_rejected(line: &[u8], header: &Header, reason: &Reject) {
    match reason {
        Reject::TooLong => assert!(line.len() > MAX_LINE_BYTES),
        Reject::NotUtf8 => assert!(std::str::from_utf8(line).is_err()),
        Reject::FieldCount { expected, found } => {
            assert_eq!(*expected, header.tokens().len());
            assert_eq!(*found, tokens(line).len());
            assert_ne!(expected, found);
        }
        Reject::BadValue { field, .. } => {
            let schema = header.arrow_schema(DataType::Utf8View);
            let at = schema.index_of(field).expect("the field is a column");
            let value = std::str::from_utf8(tokens(line)[at]).unwrap();
            let readable = match schema.field(at).data_type() {
                DataType::Int64 => value.parse::<i64>().is_ok_and(|v| v >= 0),
                DataType::Int32 => value.parse::<i32>().is_ok_and(|v| v >= 0),
                other => panic!("a {other} value was rejected: {value}"),
            };
            // Signs and more than 18 digits are not flow-log numbers.
            assert!(
                !readable || value.starts_with(['+', '-']) || value.len() > 18,
                "`{value}` was rejected as {field}"
            );
        }
    }
}
