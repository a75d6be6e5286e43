//! Differential test: flowsql's decoder against arrow-csv (space-delimited,
//! header row, `^-$` as NULL) on every fixture object and a generated tree.

use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::DataType;
use flowsql::internals::Header;
use flowsql::internals::TextDecoder;
use flowsql::internals::generate::{TreeSpec, generate_tree};

use crate::decoder_properties::Collected;
use crate::support::*;

fn gunzip(path: &Path) -> Vec<u8> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

fn compare(path: &Path) -> usize {
    let text = gunzip(path);
    let first_line = text.split(|b| *b == b'\n').next().unwrap();
    let header = Header::parse(first_line).unwrap();

    let ours_schema = header.arrow_schema(DataType::Utf8View);
    let rejects = Collected::default();
    let mut decoder = TextDecoder::new(Arc::clone(&ours_schema), 1000, Box::new(rejects.clone()));
    // Feed in odd-sized pieces to exercise lines that span chunks.
    for piece in text.chunks(4093) {
        decoder.feed(piece).unwrap();
    }
    decoder.finish().unwrap();
    let mut ours = Vec::new();
    while let Some(batch) = decoder.next_batch() {
        ours.push(batch);
    }
    assert!(rejects.0.lock().unwrap().is_empty(), "{}", path.display());

    // arrow-csv splits at single spaces; give it the text with runs collapsed
    // (one documented sample has a double space).
    let mut collapsed = Vec::with_capacity(text.len());
    for &b in &text {
        if !(b == b' ' && collapsed.last() == Some(&b' ')) {
            collapsed.push(b);
        }
    }
    let oracle_schema = header.arrow_schema(DataType::Utf8);
    let reader = arrow_csv::ReaderBuilder::new(Arc::clone(&oracle_schema))
        .with_delimiter(b' ')
        .with_header(true)
        .with_null_regex(regex::Regex::new("^-$").unwrap())
        .build(Cursor::new(collapsed))
        .unwrap();
    let oracle: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();

    let oracle = concat_batches(&oracle_schema, &oracle).unwrap();
    let ours = concat_batches(&ours_schema, &ours).unwrap();
    let ours_cast: Vec<_> = ours
        .columns()
        .iter()
        .zip(oracle_schema.fields())
        .map(|(c, f)| cast(c, f.data_type()).unwrap())
        .collect();
    let ours = RecordBatch::try_new(Arc::clone(&oracle_schema), ours_cast).unwrap();
    assert_eq!(ours, oracle, "{}", path.display());
    ours.num_rows()
}

#[test]
fn decoder_agrees_with_arrow_csv_on_every_fixture_object() {
    let mut rows = 0;
    let mut objects = 0;
    for path in walk(&bucket()) {
        let p = path.to_str().unwrap();
        if p.ends_with(".log.gz") && p.contains("vpcflowlogs") {
            rows += compare(&path);
            objects += 1;
        }
    }
    assert_eq!(objects, 11);
    assert_eq!(rows, read_independently(&bucket()).len());
}

#[test]
fn decoder_agrees_with_arrow_csv_on_generated_objects() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["us-west-2".into()],
        first_day: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        days: 1,
        files_per_day: 4,
        records_per_file: 5000,
        ..TreeSpec::default()
    };
    generate_tree(dir.path(), &spec, 2).unwrap();
    let rows: usize = walk(dir.path()).iter().map(|p| compare(p)).sum();
    assert_eq!(rows, 20_000);
}
