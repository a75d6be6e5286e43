//! End-to-end scans through SQL over a generated tree on local disk
//! (1.44 million records, 96 objects: one day of the benchmark tree's
//! shape), with criterion, as records/s. For the full 10-million-record
//! comparison with DuckDB, see `scripts/bench-vs-duckdb`.
//!
//! `cargo bench --bench scan`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowsql::internals::generate::{TreeSpec, generate_tree};
use flowsql::{SessionOptions, new_context};

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        days: 1,
        ..TreeSpec::default()
    };
    let summary = generate_tree(dir.path(), &spec, 2).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let location = dir.path().to_str().unwrap().to_string();
    let ctx = runtime
        .block_on(new_context(&[location], &SessionOptions::default()))
        .unwrap();
    println!(
        "{} records in {} objects ({:.1} MB compressed)",
        summary.records,
        summary.files,
        summary.compressed_bytes as f64 / 1e6
    );
    let mut group = c.benchmark_group("scan");
    group
        .throughput(Throughput::Elements(summary.records))
        .sample_size(10);
    for (name, sql) in [
        ("count", "SELECT count(*) FROM vpc_flow_logs"),
        (
            "top talkers",
            "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 ORDER BY b DESC LIMIT 10",
        ),
        (
            "rejected SSH",
            "SELECT count(*) FROM vpc_flow_logs WHERE dstport = 22 AND action = 'REJECT'",
        ),
        (
            "by ENI",
            "SELECT interface_id, count(*), sum(bytes) FROM vpc_flow_logs GROUP BY 1",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                    assert!(!batches.is_empty());
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
