//! Pruning reads less without changing answers; LIMIT stops reading early;
//! tests on record columns run in the decoder.

use chrono::NaiveDate;
use flowsql::internals::Grammar;
use flowsql::internals::generate::{TreeSpec, generate_tree};
use flowsql::scan_report;

use crate::support::*;

/// Runs `sql` and returns (rows, objects opened).
async fn run_counting(
    ctx: &datafusion::prelude::SessionContext,
    sql: &str,
) -> (Vec<Vec<String>>, u64) {
    let report = scan_report(ctx, TABLE).await.unwrap();
    report.reset();
    let result = rows(ctx, sql).await;
    (result, report.summary().objects_opened)
}

#[tokio::test]
async fn filters_on_paths_and_times_open_fewer_objects() {
    let pruned = local_context(&bucket(), true).await;
    let unpruned = local_context(&bucket(), false).await;
    let total_objects = walk(&bucket())
        .iter()
        .filter(|p| {
            p.to_str().unwrap().ends_with(".log.gz") && p.to_str().unwrap().contains("vpcflowlogs")
        })
        .count() as u64;
    // (query, objects a pruned scan may open at most)
    let cases = [
        ("SELECT count(*) FROM vpc_flow_logs", total_objects),
        (
            "SELECT count(*) FROM vpc_flow_logs WHERE aws_region = 'eu-west-1'",
            2,
        ),
        (
            "SELECT count(*) FROM vpc_flow_logs WHERE date = DATE '2024-01-16' AND aws_account_id = '111122223333' AND aws_region = 'us-east-1'",
            2,
        ),
        (
            "SELECT count(*) FROM vpc_flow_logs WHERE flow_log_id = 'fl-0a1b2c3d4e5f60002'",
            1,
        ),
        ("SELECT count(*) FROM vpc_flow_logs WHERE hour = 23", 2),
        // 2024-01-15 05:00 .. 07:00 by record time: with an hour of slack only the
        // objects named 06:30 and 06:40 (and none of the other days) qualify.
        (
            "SELECT count(*) FROM vpc_flow_logs WHERE start >= 1705294800 AND start < 1705302000",
            2,
        ),
    ];
    for (sql, at_most) in cases {
        let (a, opened_pruned) = run_counting(&pruned, sql).await;
        let (b, opened_all) = run_counting(&unpruned, sql).await;
        assert_eq!(a, b, "{sql}");
        assert_eq!(
            opened_all, total_objects,
            "{sql}: unpruned reads everything"
        );
        assert!(
            opened_pruned <= at_most,
            "{sql}: opened {opened_pruned}, expected at most {at_most}"
        );
    }
}

#[tokio::test]
async fn limit_stops_reading_early_even_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["us-east-1".into()],
        first_day: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        days: 2,
        files_per_day: 24,
        records_per_file: 500,
        grammar: Grammar::Positional,
        hourly: false,
        seed: 7,
        parquet: false,
    };
    let summary = generate_tree(dir.path(), &spec, 2).unwrap();
    assert_eq!(summary.files, 48);
    let ctx = local_context(dir.path(), true).await;
    for sql in [
        "SELECT * FROM vpc_flow_logs LIMIT 5",
        "SELECT * FROM vpc_flow_logs WHERE action = 'REJECT' LIMIT 3",
        "SELECT srcaddr FROM vpc_flow_logs WHERE dstport = 22 AND aws_region = 'us-east-1' LIMIT 1",
    ] {
        let (result, opened) = run_counting(&ctx, sql).await;
        assert!(!result.is_empty(), "{sql}");
        assert!(opened <= 8, "{sql}: opened {opened} of 48 objects");
    }
}

#[tokio::test]
async fn tests_on_record_columns_reach_the_decoder() {
    let sql = "EXPLAIN SELECT count(*) FROM vpc_flow_logs \
               WHERE dstport IN (22, 3389) AND action = 'REJECT' AND bytes > 5 \
               AND srcaddr LIKE '%.5'";
    let plan = |rows: Vec<Vec<String>>| rows.concat().join("\n");
    let pruned = plan(rows(&local_context(&bucket(), true).await, sql).await);
    assert!(
        pruned.contains(
            "record_filter=[dstport IN (22, 3389) AND action IN ('REJECT') AND bytes >= 6]"
        ),
        "{pruned}"
    );
    // DataFusion still applies every filter above the scan, including the
    // suffix match the decoder does not run.
    assert!(pruned.contains("FilterExec"), "{pruned}");
    assert!(pruned.contains("LIKE %.5"), "{pruned}");
    let unpruned = plan(rows(&local_context(&bucket(), false).await, sql).await);
    assert!(!unpruned.contains("record_filter"), "{unpruned}");
}

#[tokio::test]
async fn explain_analyze_counts_records_read_and_rows_kept() {
    let records = read_independently(&bucket());
    let rejected = records
        .iter()
        .filter(|r| value(r, "action") == Some("REJECT"))
        .count();
    assert!(rejected > 0 && rejected < records.len());
    // From the source, filling the cache (every record decoded, the
    // record filter run on the columns as kept), and from the cache.
    let folder = cache_folder();
    for (how, ctx) in [
        ("source", local_context(&bucket(), true).await),
        ("filling", cached_context(&bucket(), true, &folder).await),
        ("cached", cached_context(&bucket(), true, &folder).await),
    ] {
        let sql = "EXPLAIN ANALYZE SELECT count(*) FROM vpc_flow_logs WHERE action = 'REJECT'";
        let plan = rows(&ctx, sql).await.concat().join("\n");
        let scan = plan
            .split("FlowLogScanExec")
            .nth(1)
            .unwrap_or_else(|| panic!("no scan in {plan}"));
        let metrics = format!("output_rows={rejected}, records_read={}", records.len());
        assert!(scan.contains(&metrics), "{how}: {metrics} not in {scan}");
    }
}
