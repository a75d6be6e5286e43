//! Shared helpers: fixture paths, contexts over local and in-memory S3
//! trees, results as strings, and an independent reader of fixture files.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use flowsql::{FlowLogOptions, FlowLogTable, SessionOptions};
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;

pub const TABLE: &str = "vpc_flow_logs";

/// The physical plan of `sql` in `ctx`.
pub async fn physical_plan(ctx: &SessionContext, sql: &str) -> Arc<dyn ExecutionPlan> {
    ctx.sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

/// `tests/data/<name>`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The bucket-shaped fixture tree (its flow logs sit under the prefix `flow-logs/`).
pub fn bucket() -> PathBuf {
    data("bucket")
}

pub fn options(pruning: bool) -> SessionOptions {
    SessionOptions {
        table: FlowLogOptions {
            pruning,
            ..FlowLogOptions::default()
        },
        ..SessionOptions::default()
    }
}

/// A session over a local location.
pub async fn local_context(location: &Path, pruning: bool) -> SessionContext {
    flowsql::new_context(&[location.to_str().unwrap()], &options(pruning))
        .await
        .unwrap()
}

/// The binary as the tests run it: what a run remembers (header fields,
/// decoded objects) goes to a cache folder of the tests' own, shared by
/// every run, not the user's.
pub fn flowsql_command() -> std::process::Command {
    static CACHE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().unwrap());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flowsql"));
    command.env("XDG_CACHE_HOME", cache.path());
    command
}

/// A fresh folder for a local cache, removed when the test binary ends
/// (the folders live under one temporary folder kept for the whole run).
pub fn cache_folder() -> PathBuf {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let root = ROOT.get_or_init(|| tempfile::tempdir().unwrap());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    root.path().join(format!("cache-{n}"))
}

/// Session options whose table uses the local cache in `folder`.
pub fn cached_options(pruning: bool, folder: &Path) -> SessionOptions {
    let mut options = options(pruning);
    options.table.cache = Some(flowsql::CacheOptions::in_folder(folder));
    options
}

/// A session over a local location, reading through the cache in `folder`.
pub async fn cached_context(location: &Path, pruning: bool, folder: &Path) -> SessionContext {
    flowsql::new_context(
        &[location.to_str().unwrap()],
        &cached_options(pruning, folder),
    )
    .await
    .unwrap()
}

/// Copies every file below `local` into an in-memory store, keys relative to `local`.
pub async fn upload(local: &Path, store: &InMemory, key_prefix: &str) {
    for file in walk(local) {
        let relative = file
            .strip_prefix(local)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let key = if key_prefix.is_empty() {
            relative
        } else {
            format!("{key_prefix}/{relative}")
        };
        let bytes = std::fs::read(&file).unwrap();
        store
            .put(&ObjectPath::from(key), bytes.into())
            .await
            .unwrap();
    }
}

/// A session whose table reads `s3://test-bucket/<location_prefix>` from an
/// in-memory store holding a copy of the fixture bucket.
pub async fn memory_s3_context(location_prefix: &str, pruning: bool) -> SessionContext {
    let ctx = SessionContext::new();
    let store = Arc::new(InMemory::new());
    upload(&bucket(), &store, "").await;
    let url = url::Url::parse("s3://test-bucket").unwrap();
    ctx.runtime_env().register_object_store(&url, store);
    let location = format!("s3://test-bucket/{location_prefix}");
    let table = FlowLogTable::try_new(&ctx.runtime_env(), &[location], options(pruning).table)
        .await
        .unwrap();
    ctx.register_table(TABLE, Arc::new(table)).unwrap();
    ctx
}

/// Runs SQL and returns every row as strings (`NULL` for null).
pub async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    batches_to_rows(&batches)
}

pub fn batches_to_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let Some(first) = batches.first() else {
        return vec![];
    };
    let (_, batches) = flowsql::ipaddresses_as_text(&first.schema(), batches).unwrap();
    let batches = &batches[..];
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    out
}

/// Every file below `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// One record as an independent reading of the files gives it: column name
/// to value (`None` for `-`), plus the path facts.
pub type Record = BTreeMap<String, Option<String>>;

/// Reads every flow-log object below `dir` without flowsql's code: splits
/// the path by hand, gunzips with flate2, splits lines at whitespace.
pub fn read_independently(dir: &Path) -> Vec<Record> {
    let mut records = Vec::new();
    for file in walk(dir) {
        let path = file.to_str().unwrap();
        let Some(below) = path.split("/AWSLogs/").nth(1) else {
            continue;
        };
        let parts: Vec<&str> = below.split('/').collect();
        let strip = |s: &str| {
            s.split_once('=')
                .map_or(s.to_string(), |(_, v)| v.to_string())
        };
        if !path.ends_with(".log.gz")
            || !(parts[1] == "vpcflowlogs" || parts[1] == "aws-service=vpcflowlogs")
        {
            continue;
        }
        let account = strip(parts[0]);
        let region = strip(parts[2]);
        let date = format!(
            "{}-{}-{}",
            strip(parts[3]),
            strip(parts[4]),
            strip(parts[5])
        );
        let hour = (parts.len() == 8).then(|| strip(parts[6]).parse::<u32>().unwrap().to_string());
        let name = parts.last().unwrap();
        let name_parts: Vec<&str> = name.split('_').collect();
        let flow_log_id = name_parts[3].to_string();
        let t = name_parts[4];
        let file_time = format!(
            "{}-{}-{}T{}:{}:00",
            &t[0..4],
            &t[4..6],
            &t[6..8],
            &t[9..11],
            &t[11..13]
        );

        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&file).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap()
            .split_whitespace()
            .map(|t| t.replace('-', "_"))
            .collect();
        for line in lines {
            let values: Vec<&str> = line.split_whitespace().collect();
            if values.is_empty() {
                continue;
            }
            assert_eq!(values.len(), header.len(), "{path}: {line}");
            let mut record = Record::new();
            for (k, v) in header.iter().zip(values) {
                record.insert(k.clone(), (v != "-").then(|| v.to_string()));
            }
            record.insert("aws_account_id".into(), Some(account.clone()));
            record.insert("aws_region".into(), Some(region.clone()));
            record.insert("date".into(), Some(date.clone()));
            record.insert("hour".into(), hour.clone());
            record.insert("flow_log_id".into(), Some(flow_log_id.clone()));
            record.insert("file_time".into(), Some(file_time.clone()));
            records.push(record);
        }
    }
    records
}

/// A record's value for `column` (`None` when the file lacks it or has `-`).
pub fn value<'a>(record: &'a Record, column: &str) -> Option<&'a str> {
    record.get(column).and_then(|v| v.as_deref())
}

pub fn int(record: &Record, column: &str) -> Option<i64> {
    value(record, column).map(|v| v.parse().unwrap())
}

/// The Python of the tests' virtual environment (moto, DuckDB, Pillow),
/// installed by `scripts/setup-test-deps` if it is not yet.
pub fn test_python() -> String {
    let venv = std::process::Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/setup-test-deps"
    ))
    .output()
    .unwrap();
    assert!(
        venv.status.success(),
        "{}",
        String::from_utf8_lossy(&venv.stderr)
    );
    format!(
        "{}/bin/python",
        String::from_utf8(venv.stdout).unwrap().trim()
    )
}
