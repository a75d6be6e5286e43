//! Parquet-delivered flow logs: a tree mixing text and Parquet objects
//! answers as the same records all in text; AWS-shaped files, `-` and NULL
//! strings, custom formats, unknown columns, other integer widths; every
//! kind of bad Parquet object, failing or skipped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::SessionContext;
use flowsql::internals::Grammar;
use flowsql::internals::generate::aws_parquet::{MissingStrings, write_aws_parquet};
use flowsql::internals::generate::{TreeSpec, generate_tree};
use flowsql::{FlowLogOptions, FlowLogTable, SessionOptions};
use object_store::memory::InMemory;

use crate::support::*;

/// Rewrites one text object as AWS's Parquet at the same key with
/// `.log.parquet`, from an independent reading of its text (flate2, split
/// at whitespace).
fn text_to_parquet(text_object: &Path, missing: MissingStrings) -> PathBuf {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(text_object).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let records: Vec<Vec<&str>> = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
        .collect();
    let name = text_object
        .to_str()
        .unwrap()
        .replace(".log.gz", ".log.parquet");
    let out = PathBuf::from(name);
    write_aws_parquet(
        std::fs::File::create(&out).unwrap(),
        &header,
        &records,
        missing,
    )
    .unwrap();
    std::fs::remove_file(text_object).unwrap();
    out
}

/// A copy of the fixture bucket in which every other flow-log object (so
/// in the same folders as text ones, and in every layout) is Parquet,
/// alternately with missing strings as NULL and as `-`.
pub fn mixed_bucket() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = bucket();
    let mut flow_logs = 0;
    for file in walk(&source) {
        let relative = file.strip_prefix(&source).unwrap();
        let copy = dir.path().join(relative);
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&file, &copy).unwrap();
        let path = relative.to_str().unwrap();
        if path.ends_with(".log.gz") && path.contains("vpcflowlogs") {
            flow_logs += 1;
            match flow_logs % 4 {
                1 => {
                    text_to_parquet(&copy, MissingStrings::Null);
                }
                3 => {
                    text_to_parquet(&copy, MissingStrings::Dash);
                }
                _ => {}
            }
        }
    }
    let parquet = walk(dir.path())
        .iter()
        .filter(|p| p.to_str().unwrap().ends_with(".log.parquet"))
        .count();
    assert!(
        parquet >= 4 && parquet < flow_logs,
        "{parquet} of {flow_logs}"
    );
    dir
}

/// A session over `s3://test-bucket/<prefix>` in memory, holding `dir`.
async fn memory_context(dir: &Path, prefix: &str, pruning: bool) -> SessionContext {
    let ctx = SessionContext::new();
    let store = Arc::new(InMemory::new());
    upload(dir, &store, "").await;
    let url = url::Url::parse("s3://test-bucket").unwrap();
    ctx.runtime_env().register_object_store(&url, store);
    let location = format!("s3://test-bucket/{prefix}");
    let table = FlowLogTable::try_new(&ctx.runtime_env(), &[location], options(pruning).table)
        .await
        .unwrap();
    ctx.register_table(TABLE, Arc::new(table)).unwrap();
    ctx
}

const QUERIES: &[&str] = &[
    "SELECT * FROM vpc_flow_logs",
    "SELECT count(*) FROM vpc_flow_logs",
    "SELECT count(*), sum(bytes) FROM vpc_flow_logs WHERE vpc_id IS NULL",
    "SELECT count(*) FROM vpc_flow_logs WHERE srcaddr IS NULL OR action = 'REJECT'",
    "SELECT srcaddr, dstaddr, bytes FROM vpc_flow_logs WHERE action = 'REJECT'",
    "SELECT count(*) FROM vpc_flow_logs WHERE log_status <> 'OK'",
    "SELECT count(*) FROM vpc_flow_logs WHERE coalesce(vpc_id, 'none') = 'none'",
    "SELECT count(*) FROM vpc_flow_logs WHERE srcport = 22 OR dstport = 443",
    "SELECT count(*) FROM vpc_flow_logs WHERE protocol = 6 AND packets > 2",
    "SELECT count(*) FROM vpc_flow_logs WHERE start >= 1705363200 AND \"end\" < 1705449600",
    "SELECT aws_account_id, aws_region, date, hour, flow_log_id, count(*), sum(bytes) \
     FROM vpc_flow_logs GROUP BY 1, 2, 3, 4, 5",
    "SELECT count(*) FROM vpc_flow_logs WHERE aws_region = 'us-east-1' AND action = 'ACCEPT'",
    "SELECT count(*) FROM vpc_flow_logs WHERE instance_tag_2 IS NOT NULL",
    "SHOW PARTITIONS vpc_flow_logs",
];

async fn sorted_rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let mut got = flowsql_sql(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    got.sort();
    got
}

#[tokio::test]
async fn a_tree_mixing_text_and_parquet_answers_as_all_text() {
    let mixed = mixed_bucket();
    for pruning in [true, false] {
        let text_only = local_context(&bucket(), pruning).await;
        let mut contexts = Vec::new();
        for location in ["", "flow-logs", "flow-logs/AWSLogs"] {
            contexts.push((
                format!("local /{location} pruning={pruning}"),
                local_context(&mixed.path().join(location), pruning).await,
            ));
            contexts.push((
                format!("s3 /{location} pruning={pruning}"),
                memory_context(mixed.path(), location, pruning).await,
            ));
        }
        for sql in QUERIES {
            let want = sorted_rows(&text_only, sql).await;
            assert!(!want.is_empty(), "{sql}");
            for (name, ctx) in &contexts {
                let mut got = sorted_rows(ctx, sql).await;
                if sql.starts_with("SHOW PARTITIONS") {
                    // Folders and object counts agree; Parquet's bytes do not.
                    let without_bytes = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
                        rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect()
                    };
                    assert_eq!(without_bytes(&got), without_bytes(&want), "{name}: {sql}");
                    got = want.clone();
                }
                assert_eq!(got, want, "{name}: {sql}");
            }
        }
    }
}

#[tokio::test]
async fn dry_run_and_the_scan_report_count_parquet_objects() {
    let mixed = mixed_bucket();
    let ctx = local_context(mixed.path(), true).await;
    let plan = ctx
        .sql("SELECT count(*) FROM vpc_flow_logs")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let report = flowsql::scan_report(&ctx, TABLE).await.unwrap();
    report.reset();
    flowsql::list_scans(&plan).await.unwrap();
    let listed = report.summary();
    let text = local_context(&bucket(), true).await;
    let text_report = flowsql::scan_report(&text, TABLE).await.unwrap();
    rows(&text, "SELECT count(*) FROM vpc_flow_logs").await;
    assert_eq!(
        listed.objects_planned,
        text_report.summary().objects_planned
    );
    assert_eq!(listed.objects_opened, 0);

    report.reset();
    let answer = rows(&ctx, "SELECT count(*) FROM vpc_flow_logs").await;
    let read = report.summary();
    assert_eq!(read.objects_finished, listed.objects_planned);
    assert_eq!(answer[0][0], read.records.to_string());
    assert!(read.skipped_objects.is_empty() && read.hidden_fields.is_empty());
}

/// One account, region and day of generated Parquet objects.
fn parquet_tree(files: u32, records: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["us-east-1".into()],
        first_day: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        days: 1,
        files_per_day: files,
        records_per_file: records,
        grammar: Grammar::Positional,
        hourly: false,
        seed: 5,
        parquet: true,
    };
    let summary = generate_tree(dir.path(), &spec, 2).unwrap();
    assert_eq!(summary.files, u64::from(files));
    let day = dir
        .path()
        .join("AWSLogs/111122223333/vpcflowlogs/us-east-1/2025/03/01");
    (dir, day)
}

/// The name of a new object in `day`, for the 5-minute slot `slot`.
fn object_name(day: &Path, slot: u32, tag: &str) -> PathBuf {
    day.join(format!(
        "111122223333_vpcflowlogs_us-east-1_fl-{tag}_20250301T{:02}{:02}Z_0000abcd.log.parquet",
        slot / 12,
        (slot % 12) * 5
    ))
}

fn skipping(skip: bool) -> SessionOptions {
    SessionOptions {
        table: FlowLogOptions {
            skip_bad_objects: skip,
            ..FlowLogOptions::default()
        },
        ..SessionOptions::default()
    }
}

async fn context(dir: &Path, options: &SessionOptions) -> SessionContext {
    flowsql::new_context(&[dir.to_str().unwrap()], options)
        .await
        .unwrap()
}

async fn run(ctx: &SessionContext, sql: &str) -> datafusion::common::Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

fn write_arrow_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test]
async fn every_bad_parquet_object_is_named_and_can_be_skipped() {
    let (dir, day) = parquet_tree(2, 50);
    let good = walk(&day)[0].clone();
    let good_bytes = std::fs::read(&good).unwrap();
    let mut corrupt_footer = good_bytes.clone();
    let footer_length = u32::from_le_bytes(
        good_bytes[good_bytes.len() - 8..good_bytes.len() - 4]
            .try_into()
            .unwrap(),
    ) as usize;
    let footer_start = good_bytes.len() - 8 - footer_length;
    for byte in &mut corrupt_footer[footer_start..footer_start + footer_length / 2] {
        *byte = 0xff;
    }
    let string_port: Vec<(&str, ArrayRef)> = vec![
        ("version", Arc::new(Int32Array::from(vec![2, 2]))),
        ("srcport", Arc::new(StringArray::from(vec!["22", "80"]))),
    ];
    type WriteBad<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, WriteBad)> = vec![
        (
            "empty",
            Box::new(|p: &Path| std::fs::write(p, b"").unwrap()),
        ),
        (
            "not Parquet",
            Box::new(|p: &Path| std::fs::write(p, b"version srcaddr\n2 10.0.0.1\n").unwrap()),
        ),
        (
            "truncated",
            Box::new(|p: &Path| std::fs::write(p, &good_bytes[..good_bytes.len() / 2]).unwrap()),
        ),
        (
            "corrupt footer",
            Box::new(|p: &Path| std::fs::write(p, &corrupt_footer).unwrap()),
        ),
        (
            "a string port",
            Box::new(|p: &Path| write_arrow_parquet(p, string_port.clone())),
        ),
        (
            "no documented column",
            Box::new(|p: &Path| {
                write_arrow_parquet(p, vec![("name", Arc::new(StringArray::from(vec!["a"])))])
            }),
        ),
    ];
    let sql = "SELECT count(*), sum(srcport), max(action) FROM vpc_flow_logs";
    for (case, write) in &cases {
        let bad = object_name(&day, 200, "bad");
        write(&bad);
        let ctx = context(dir.path(), &skipping(false)).await;
        let error = run(&ctx, sql).await.expect_err(case);
        match flowsql::Error::find(&error) {
            Some(flowsql::Error::BadObject { object, .. }) => {
                assert_eq!(Path::new(object), bad, "{case}")
            }
            other => panic!("{case}: expected a bad object, got {other:?} ({error})"),
        }
        let ctx = context(dir.path(), &skipping(true)).await;
        let answer = batches_to_rows(&run(&ctx, sql).await.unwrap());
        assert_eq!(
            answer[0][0], "100",
            "{case}: the good objects are still read"
        );
        let report = flowsql::scan_report(&ctx, TABLE).await.unwrap().summary();
        assert_eq!(report.skipped_objects.len(), 1, "{case}");
        assert_eq!(Path::new(&report.skipped_objects[0].object), bad, "{case}");
        std::fs::remove_file(&bad).unwrap();
    }
}

#[tokio::test]
async fn aws_shaped_files_dashes_nulls_and_custom_formats() {
    let (dir, day) = parquet_tree(1, 10);
    // A custom format with fewer fields, `-` strings written as `-`.
    let header = ["version", "srcaddr", "dstport", "action", "vpc-id"];
    let records = vec![
        vec!["5", "10.0.0.1", "22", "REJECT", "-"],
        vec!["5", "10.0.0.2", "-", "ACCEPT", "vpc-1"],
    ];
    write_aws_parquet(
        std::fs::File::create(object_name(&day, 100, "custom")).unwrap(),
        &header,
        &records,
        MissingStrings::Dash,
    )
    .unwrap();
    let ctx = context(dir.path(), &skipping(false)).await;
    let got = rows(
        &ctx,
        "SELECT version, srcaddr, dstport, action, vpc_id, bytes, interface_id \
         FROM vpc_flow_logs WHERE version = 5 ORDER BY srcaddr",
    )
    .await;
    assert_eq!(
        got,
        vec![
            vec!["5", "10.0.0.1", "22", "REJECT", "NULL", "NULL", "NULL"],
            vec!["5", "10.0.0.2", "NULL", "ACCEPT", "vpc-1", "NULL", "NULL"],
        ]
    );
    // `-` is NULL for filters too, with and without row-group pruning.
    for sql in [
        "SELECT count(*) FROM vpc_flow_logs WHERE version = 5 AND vpc_id IS NULL",
        "SELECT count(*) FROM vpc_flow_logs WHERE version = 5 AND vpc_id = '-'",
    ] {
        let pruned = rows(&ctx, sql).await;
        let unpruned = rows(&local_context(dir.path(), false).await, sql).await;
        assert_eq!(pruned, unpruned, "{sql}");
    }
    assert_eq!(
        rows(
            &ctx,
            "SELECT count(*) FROM vpc_flow_logs WHERE version = 5 AND vpc_id IS NULL"
        )
        .await,
        vec![vec!["1"]]
    );
}

#[tokio::test]
async fn other_integer_widths_are_widened_or_checked_and_unknown_columns_named() {
    let (dir, day) = parquet_tree(1, 10);
    let ctx = context(dir.path(), &skipping(false)).await;
    // Written after the table is opened, so the opening's sample cannot
    // have seen its extra column.
    let odd = object_name(&day, 150, "odd");
    write_arrow_parquet(
        &odd,
        vec![
            ("version", Arc::new(Int64Array::from(vec![7, 7]))),
            ("protocol", Arc::new(Int64Array::from(vec![6, 17]))),
            ("packets", Arc::new(Int32Array::from(vec![3, 4]))),
            (
                "srcaddr",
                Arc::new(StringArray::from(vec!["10.1.1.1", "-"])),
            ),
            ("custom_thing", Arc::new(StringArray::from(vec!["x", "y"]))),
            (
                "custom_ratio",
                Arc::new(Float64Array::from(vec![0.5, 1.25])),
            ),
        ],
    );
    let got = rows(
        &ctx,
        "SELECT protocol, packets, srcaddr FROM vpc_flow_logs WHERE version = 7 ORDER BY protocol",
    )
    .await;
    assert_eq!(
        got,
        vec![vec!["6", "3", "10.1.1.1"], vec!["17", "4", "NULL"]]
    );
    let report = flowsql::scan_report(&ctx, TABLE).await.unwrap().summary();
    assert!(
        report.hidden_fields.contains(&(
            odd.to_str().unwrap().to_string(),
            "custom-thing".to_string()
        )),
        "{:?}",
        report.hidden_fields
    );
    // A newly opened table samples the object: the column is there.
    let reopened = context(dir.path(), &skipping(false)).await;
    assert_eq!(
        rows(
            &reopened,
            "SELECT custom_thing, custom_ratio FROM vpc_flow_logs WHERE version = 7 ORDER BY 1"
        )
        .await,
        vec![vec!["x", "0.5"], vec!["y", "1.25"]]
    );

    // A BIGINT value that does not fit the INT column is an error naming the column.
    std::fs::remove_file(&odd).unwrap();
    write_arrow_parquet(
        &odd,
        vec![("protocol", Arc::new(Int64Array::from(vec![6, 1 << 40])))],
    );
    let error = run(&ctx, "SELECT sum(protocol) FROM vpc_flow_logs")
        .await
        .unwrap_err();
    match flowsql::Error::find(&error) {
        Some(flowsql::Error::BadObject { object, reason }) => {
            assert_eq!(Path::new(object), odd);
            assert!(reason.contains("`protocol`"), "{reason}");
        }
        other => panic!("expected a bad object, got {other:?} ({error})"),
    }
}

#[tokio::test]
async fn count_reads_footers_and_filters_prune_row_groups() {
    let (dir, _) = parquet_tree(6, 20_000);
    let total: u64 = walk(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let ctx = local_context(dir.path(), true).await;
    let report = flowsql::scan_report(&ctx, TABLE).await.unwrap();
    report.reset();
    assert_eq!(
        rows(&ctx, "SELECT count(*) FROM vpc_flow_logs").await,
        vec![vec!["120000"]]
    );
    let counted = report.summary();
    assert!(
        counted.compressed_bytes * 10 < total,
        "count(*) read {} of {total} bytes",
        counted.compressed_bytes
    );

    report.reset();
    let none = rows(
        &ctx,
        "SELECT count(*) FROM vpc_flow_logs WHERE srcport = 99999",
    )
    .await;
    assert_eq!(none, vec![vec!["0"]]);
    assert_eq!(
        report.summary().records,
        0,
        "every row group pruned by statistics"
    );
    let plan = rows(
        &ctx,
        "EXPLAIN SELECT count(*) FROM vpc_flow_logs WHERE srcport = 99999",
    )
    .await;
    assert!(
        plan.iter()
            .any(|r| r[1].contains("parquet_predicate=[srcport")),
        "{plan:?}"
    );
}

/// Runs a statement through flowsql's dialect (where COPY converts).
async fn flowsql_sql(
    ctx: &SessionContext,
    sql: &str,
) -> datafusion::common::Result<Vec<Vec<String>>> {
    let batches = flowsql::sql(ctx, sql).await?.collect().await?;
    Ok(batches_to_rows(&batches))
}

/// Every object below `dir` with its key relative to `dir`.
fn relative_files(dir: &Path) -> Vec<String> {
    walk(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn conversion_writes_aws_parquet_layout_that_reads_back_the_same() {
    for source in [bucket(), mixed_bucket().keep()] {
        let out = tempfile::tempdir().unwrap();
        let ctx = local_context(&source, true).await;
        let destination = out.path().join("converted");
        let written = flowsql_sql(
            &ctx,
            &format!("COPY vpc_flow_logs TO '{}'", destination.display()),
        )
        .await
        .unwrap();
        let objects = walk(&source)
            .iter()
            .filter(|p| {
                let p = p.to_str().unwrap();
                p.contains("vpcflowlogs") && (p.ends_with(".log.gz") || p.ends_with(".log.parquet"))
            })
            .count();
        assert_eq!(written[0][0], objects.to_string(), "{written:?}");
        let files = relative_files(&destination);
        assert_eq!(files.len(), objects);
        for file in &files {
            let parts: Vec<&str> = file.split('/').collect();
            assert_eq!(parts[0], "AWSLogs", "{file}");
            assert!(parts[1].starts_with("aws-account-id="), "{file}");
            assert_eq!(parts[2], "aws-service=vpcflowlogs", "{file}");
            assert!(parts[3].starts_with("aws-region="), "{file}");
            assert!(
                parts[4].starts_with("year=") && parts[4].len() == 9,
                "{file}"
            );
            assert!(
                parts[5].starts_with("month=") && parts[5].len() == 8,
                "{file}"
            );
            assert!(
                parts[6].starts_with("day=") && parts[6].len() == 6,
                "{file}"
            );
            assert!(file.ends_with(".log.parquet"), "{file}");
        }
        for pruning in [true, false] {
            let back = local_context(&destination, pruning).await;
            let text = local_context(&bucket(), pruning).await;
            for sql in QUERIES.iter().filter(|q| !q.starts_with("SHOW")) {
                assert_eq!(
                    sorted_rows(&back, sql).await,
                    sorted_rows(&text, sql).await,
                    "{sql} pruning={pruning}"
                );
            }
        }
        assert_eq!(
            written[0][1],
            rows(&ctx, "SELECT count(*) FROM vpc_flow_logs").await[0][0]
        );
        if source != bucket() {
            std::fs::remove_dir_all(&source).unwrap();
        }
    }
}

#[tokio::test]
async fn a_where_on_path_columns_picks_what_is_converted_and_other_filters_are_refused() {
    let out = tempfile::tempdir().unwrap();
    let ctx = local_context(&bucket(), true).await;
    let filter = "aws_region = 'us-east-1' AND date >= DATE '2024-01-16'";
    let sql = format!(
        "COPY (SELECT * FROM vpc_flow_logs WHERE {filter}) TO '{}'",
        out.path().display()
    );
    let written = flowsql_sql(&ctx, &sql).await.unwrap();
    let back = local_context(out.path(), true).await;
    let want = rows(
        &ctx,
        &format!("SELECT count(*), sum(bytes) FROM vpc_flow_logs WHERE {filter}"),
    )
    .await;
    assert_eq!(
        rows(&back, "SELECT count(*), sum(bytes) FROM vpc_flow_logs").await,
        want
    );
    assert_eq!(written[0][1], want[0][0]);
    assert!(
        relative_files(out.path())
            .iter()
            .all(|f| f.contains("aws-region=us-east-1/")),
    );

    // Without pruning the WHERE still picks the objects.
    let unpruned = local_context(&bucket(), false).await;
    let out_unpruned = out.path().join("unpruned");
    let sql = format!(
        "COPY (SELECT * FROM vpc_flow_logs WHERE {filter}) TO '{}'",
        out_unpruned.display()
    );
    let unpruned_written = flowsql_sql(&unpruned, &sql).await.unwrap();
    assert_eq!(unpruned_written[0][..3], written[0][..3]);

    let refused = flowsql_sql(
        &ctx,
        &format!(
            "COPY (SELECT * FROM vpc_flow_logs WHERE action = 'REJECT') TO '{}'",
            out.path().join("x").display()
        ),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("`action"), "{refused}");
    // Never into a LOCATION.
    let into_source = flowsql_sql(
        &ctx,
        &format!(
            "COPY vpc_flow_logs TO '{}'",
            bucket().join("flow-logs").display()
        ),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            flowsql::Error::find(&into_source),
            Some(flowsql::Error::Location { .. })
        ),
        "{into_source}"
    );
    // Nor into a new folder inside one, which is not even made.
    let inside = bucket().join("converted-here");
    let into_new = flowsql_sql(
        &ctx,
        &format!("COPY vpc_flow_logs TO '{}'", inside.display()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            flowsql::Error::find(&into_new),
            Some(flowsql::Error::Location { .. })
        ),
        "{into_new}"
    );
    assert!(!inside.exists());
    // A target with an extension and no STORED AS is a file for DataFusion.
    let csv = out.path().join("rows.csv");
    flowsql_sql(&ctx, &format!("COPY vpc_flow_logs TO '{}'", csv.display()))
        .await
        .unwrap();
    assert!(csv.is_file());
    // Any other COPY is DataFusion's.
    let plain = out.path().join("rejects.parquet");
    flowsql_sql(
        &ctx,
        &format!(
            "COPY (SELECT srcaddr, bytes FROM vpc_flow_logs WHERE action = 'REJECT') TO '{}'",
            plain.display()
        ),
    )
    .await
    .unwrap();
    assert!(plain.is_file());
}

#[tokio::test]
async fn duckdb_reads_a_converted_tree_with_hive_partitioning() {
    let out = tempfile::tempdir().unwrap();
    let ctx = local_context(&bucket(), true).await;
    flowsql_sql(
        &ctx,
        &format!("COPY vpc_flow_logs TO '{}'", out.path().display()),
    )
    .await
    .unwrap();
    let python = test_python();
    // DuckDB reads daily and hourly folders in separate reads (one read
    // needs the same partition keys in every path).
    let read = |depth: &str| {
        format!(
            "SELECT \\\"aws-region\\\" AS r, bytes, vpc_id FROM read_parquet('{}/AWSLogs/*/*/*/*/*/*/{depth}*.log.parquet', \
             hive_partitioning = true, union_by_name = true)",
            out.path().display()
        )
    };
    let script = format!(
        "import duckdb\n\
         rows = duckdb.sql(\"SELECT r, count(*), sum(bytes), count(vpc_id) FROM ({} UNION ALL {}) \
         GROUP BY 1 ORDER BY 1\").fetchall()\n\
         for r in rows: print(','.join('NULL' if v is None else str(v) for v in r))\n",
        read(""),
        read("*/"),
    );
    let duck = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        duck.status.success(),
        "{}",
        String::from_utf8_lossy(&duck.stderr)
    );
    let got: Vec<String> = String::from_utf8(duck.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = rows(
        &ctx,
        "SELECT aws_region, count(*), sum(bytes), count(vpc_id) FROM vpc_flow_logs GROUP BY 1 ORDER BY 1",
    )
    .await
    .into_iter()
    .map(|r| r.join(","))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_conversion_killed_half_way_leaves_no_complete_looking_object() {
    let tree = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["us-east-1".into()],
        first_day: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        days: 2,
        files_per_day: 40,
        records_per_file: 30_000,
        grammar: Grammar::Positional,
        hourly: true,
        seed: 9,
        parquet: false,
    };
    let total = generate_tree(tree.path(), &spec, 2).unwrap().files as usize;
    let out = tempfile::tempdir().unwrap();
    let destination = out.path().join("converted");
    let mut child = flowsql_command()
        .arg(tree.path())
        .args(["-q", "--to-parquet"])
        .arg(&destination)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let complete = |dir: &Path| -> Vec<PathBuf> {
        if !dir.exists() {
            return vec![];
        }
        walk(dir)
            .into_iter()
            .filter(|p| p.to_str().unwrap().ends_with(".log.parquet"))
            .collect()
    };
    let started = std::time::Instant::now();
    while complete(&destination).is_empty() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let written = complete(&destination);
    assert!(
        !written.is_empty() && written.len() < total,
        "{} of {total}",
        written.len()
    );
    for object in &written {
        let bytes = bytes::Bytes::from(std::fs::read(object).unwrap());
        let footer = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap_or_else(|e| panic!("{} is not complete: {e}", object.display()));
        assert_eq!(footer.file_metadata().num_rows(), 30_000);
    }
}

#[tokio::test]
async fn snappy_zstd_and_uncompressed_objects_read_as_gzip_ones() {
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;
    let (dir, day) = parquet_tree(1, 10);
    let codecs = [
        ("snappy", Compression::SNAPPY),
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("plain", Compression::UNCOMPRESSED),
    ];
    for (slot, (tag, codec)) in codecs.into_iter().enumerate() {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "version",
                Arc::new(Int32Array::from(vec![9, 9, 9])) as ArrayRef,
            ),
            (
                "bytes",
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    None,
                    Some(slot as i64 + 10),
                ])),
            ),
            (
                "action",
                Arc::new(StringArray::from(vec![Some("ACCEPT"), Some("-"), None])),
            ),
        ])
        .unwrap();
        let properties = WriterProperties::builder().set_compression(codec).build();
        let path = object_name(&day, 120 + slot as u32, tag);
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            Some(properties),
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
    let ctx = context(dir.path(), &skipping(false)).await;
    assert_eq!(
        rows(
            &ctx,
            "SELECT flow_log_id, count(*), sum(bytes), count(action) FROM vpc_flow_logs \
             WHERE version = 9 GROUP BY 1 ORDER BY 1"
        )
        .await,
        vec![
            vec!["fl-plain", "3", "13", "1"],
            vec!["fl-snappy", "3", "11", "1"],
            vec!["fl-zstd", "3", "12", "1"],
        ]
    );
}

/// The fields the headers of the text objects under `dir` name, as column
/// names, read with flate2.
fn fields_in_headers(dir: &Path) -> std::collections::BTreeSet<String> {
    let mut fields = std::collections::BTreeSet::new();
    for file in walk(dir) {
        let path = file.to_str().unwrap();
        if !(path.ends_with(".log.gz") && path.contains("vpcflowlogs")) {
            continue;
        }
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&file).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let header = text.lines().next().unwrap();
        fields.extend(header.split(' ').map(|token| token.replace('-', "_")));
    }
    fields
}

#[tokio::test]
async fn describe_says_which_fields_the_objects_record() {
    let want = fields_in_headers(&bucket());
    let path = [
        "aws_account_id",
        "aws_region",
        "date",
        "hour",
        "flow_log_id",
        "file_time",
    ];
    let mixed = mixed_bucket();
    for dir in [bucket(), mixed.path().to_path_buf()] {
        let ctx = local_context(&dir, true).await;
        let recorded = |columns: Vec<(String, &'static str)>, origin: &str| {
            columns
                .into_iter()
                .filter(|(_, o)| *o == origin)
                .map(|(name, _)| name)
                .collect::<std::collections::BTreeSet<_>>()
        };
        // A small tree is sampled when it opens: what it finds is true.
        let sampled = flowsql::recorded_columns(&ctx, "vpc_flow_logs")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            recorded(sampled.clone(), "path"),
            path.map(String::from).into()
        );
        let seen = recorded(sampled, "yes");
        assert!(!seen.is_empty() && seen.is_subset(&want), "{seen:?}");
        // Once every object has been read, exactly the headers' fields.
        rows(&ctx, "SELECT count(*) FROM vpc_flow_logs").await;
        let columns = flowsql::recorded_columns(&ctx, "vpc_flow_logs")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(recorded(columns.clone(), "yes"), want, "{}", dir.display());
        let not = recorded(columns, "no");
        assert!(not.contains("pkt_srcaddr") || want.contains("pkt_srcaddr"));
        assert!(not.is_disjoint(&want) && !not.is_empty());
    }
    // Not a flow-log table.
    let ctx = local_context(&bucket(), true).await;
    assert!(
        flowsql::recorded_columns(&ctx, flowsql::REJECTS_TABLE)
            .await
            .unwrap()
            .is_none()
    );
}
