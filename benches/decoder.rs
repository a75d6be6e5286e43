//! The text decoder against arrow-csv on the same default-format text
//! (one generated object of 100,000 records, gunzipped in memory), with
//! criterion: once as bytes/s, once as rows/s. arrow-csv gets the same
//! typed schema and `-` as NULL.
//!
//! `cargo bench --bench decoder`

use std::io::{Cursor, Read};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Result;
use flowsql::internals::Header;
use flowsql::internals::generate::{TreeSpec, generate_tree};
use flowsql::internals::{Reject, RejectSink, TextDecoder};

const RECORDS: u32 = 100_000;

struct Fail;

impl RejectSink for Fail {
    fn reject(&mut self, line: u64, reason: Reject, _raw: &[u8]) -> Result<()> {
        panic!("generated line {line} rejected: {reason}");
    }
}

/// One generated object's text.
fn sample_text() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["us-east-1".into()],
        days: 1,
        files_per_day: 1,
        records_per_file: RECORDS,
        ..TreeSpec::default()
    };
    generate_tree(dir.path(), &spec, 1).unwrap();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".log.gz") {
                let mut text = Vec::new();
                flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
                    .read_to_end(&mut text)
                    .unwrap();
                return text;
            }
        }
    }
    panic!("the generator wrote no object");
}

fn decode_ours(text: &[u8], schema: &SchemaRef) {
    let mut decoder = TextDecoder::new(Arc::clone(schema), 8192, Box::new(Fail));
    for piece in text.chunks(256 * 1024) {
        decoder.feed(piece).unwrap();
    }
    decoder.finish().unwrap();
    let mut rows = 0;
    while let Some(batch) = decoder.next_batch() {
        rows += batch.num_rows();
    }
    assert_eq!(rows, RECORDS as usize);
}

fn decode_arrow_csv(text: &[u8], schema: &SchemaRef) {
    let reader = arrow_csv::ReaderBuilder::new(Arc::clone(schema))
        .with_delimiter(b' ')
        .with_header(true)
        .with_batch_size(8192)
        .with_null_regex(regex::Regex::new("^-$").unwrap())
        .build(Cursor::new(text))
        .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, RECORDS as usize);
}

fn decoder(c: &mut Criterion) {
    let text = sample_text();
    let header = Header::parse(text.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let ours = header.arrow_schema(DataType::Utf8View);
    let theirs = header.arrow_schema(DataType::Utf8);
    println!(
        "decoding {} records ({:.1} MB of text), all {} columns typed",
        RECORDS,
        text.len() as f64 / 1e6,
        header.tokens().len()
    );
    // Criterion reports one throughput per group, so the same work is
    // measured once per unit.
    for (group_name, throughput) in [
        ("decoder bytes", Throughput::Bytes(text.len() as u64)),
        ("decoder rows", Throughput::Elements(u64::from(RECORDS))),
    ] {
        let mut group = c.benchmark_group(group_name);
        group
            .throughput(throughput)
            .sample_size(20)
            .measurement_time(Duration::from_secs(6));
        group.bench_function("flowsql TextDecoder", |b| {
            b.iter(|| decode_ours(&text, &ours))
        });
        group.bench_function("arrow-csv Reader", |b| {
            b.iter(|| decode_arrow_csv(&text, &theirs))
        });
        group.finish();
    }
}

criterion_group!(benches, decoder);
criterion_main!(benches);
