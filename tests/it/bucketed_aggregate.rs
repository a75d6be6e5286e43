//! Grouped aggregations finished one hash bucket at a time answer exactly
//! as DataFusion's own final aggregation: split or whole, held or spilled.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use flowsql::bucketed_aggregate::Bucketing;
use flowsql::generate::{TreeSpec, generate_tree};
use flowsql::layout::Grammar;
use flowsql::{SessionOptions, new_context};

use crate::support::*;

/// Queries whose final aggregation is hash-partitioned: one or two keys,
/// NULL keys (NODATA records have no addresses), DISTINCT, grouping sets,
/// ordered and approximate aggregates, HAVING, and no rows at all.
const QUERIES: &[&str] = &[
    "SELECT srcaddr, sum(bytes), count(*) FROM vpc_flow_logs GROUP BY 1",
    "SELECT srcaddr, dstaddr, min(start), max(\"end\"), sum(packets) FROM vpc_flow_logs GROUP BY 1, 2",
    "SELECT interface_id, count(DISTINCT dstport) FROM vpc_flow_logs GROUP BY 1",
    "SELECT action, log_status, protocol, sum(packets) FROM vpc_flow_logs GROUP BY ROLLUP(action, log_status, protocol)",
    "SELECT dstport, array_agg(srcport ORDER BY srcport, bytes) FROM vpc_flow_logs GROUP BY 1 HAVING count(*) > 1",
    "SELECT dstport, approx_distinct(srcaddr) FROM vpc_flow_logs GROUP BY 1",
    "SELECT srcaddr, sum(bytes) FROM vpc_flow_logs WHERE bytes < 0 GROUP BY 1",
];

async fn context(dir: &std::path::Path, bucketing: Option<Bucketing>) -> SessionContext {
    let options = SessionOptions {
        // Small batches: many windows from a small tree.
        batch_size: Some(100),
        bucketing,
        ..options(true)
    };
    new_context(&[dir.to_str().unwrap()], &options)
        .await
        .unwrap()
}

async fn sorted_rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let mut result = rows(ctx, sql).await;
    result.sort();
    result
}

/// Fails naming the first rows that differ, not printing thousands.
fn assert_same_rows(actual: &[Vec<String>], expected: &[Vec<String>], what: &str) {
    let differing: Vec<_> = actual
        .iter()
        .zip(expected)
        .filter(|(a, e)| a != e)
        .take(3)
        .collect();
    assert!(
        actual.len() == expected.len() && differing.is_empty(),
        "{what}: {} rows, expected {}; first differences (got, expected): {differing:?}",
        actual.len(),
        expected.len()
    );
}

/// Whether the plan of `sql` finishes an aggregation bucket by bucket.
async fn is_bucketed(ctx: &SessionContext, sql: &str) -> bool {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    bucketed_metrics(&plan).is_some()
}

/// Runs `sql`; returns its row count and the metrics of its
/// `BucketedAggregateExec` (spills and rows out).
async fn run_bucketed(ctx: &SessionContext, sql: &str) -> (usize, MetricsSet) {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    let rows = batches.iter().map(|batch| batch.num_rows()).sum();
    let metrics = bucketed_metrics(&plan).unwrap_or_else(|| panic!("{sql}: not bucketed"));
    (rows, metrics)
}

fn bucketed_metrics(plan: &Arc<dyn ExecutionPlan>) -> Option<MetricsSet> {
    if plan.name() == "BucketedAggregateExec" {
        return plan.metrics();
    }
    plan.children().into_iter().find_map(bucketed_metrics)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucketed_aggregation_answers_as_datafusion_does() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["us-east-1".into(), "eu-west-1".into()],
        first_day: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        days: 1,
        files_per_day: 4,
        records_per_file: 1500,
        grammar: Grammar::Positional,
        hourly: false,
        seed: 11,
    };
    generate_tree(dir.path(), &spec, 2).unwrap();
    let reference = context(dir.path(), None).await;
    let first = QUERIES[0];
    assert!(!is_bucketed(&reference, first).await);

    let held = Bucketing {
        window_rows: 1,
        memory_budget: usize::MAX,
    };
    let spilled = Bucketing {
        window_rows: 700,
        memory_budget: 0,
    };
    // The default window is larger than this tree: the input stays whole.
    for bucketing in [held, spilled, Bucketing::default()] {
        let ctx = context(dir.path(), Some(bucketing)).await;
        for sql in QUERIES {
            let expected = sorted_rows(&reference, sql).await;
            let actual = sorted_rows(&ctx, sql).await;
            assert_same_rows(&actual, &expected, &format!("{bucketing:?}: {sql}"));
        }
        let (groups, metrics) = run_bucketed(&ctx, first).await;
        assert_eq!(groups, rows(&reference, first).await.len());
        assert_eq!(metrics.output_rows(), Some(groups));
        let spills = metrics.spill_count().unwrap_or(0);
        assert_eq!(
            spills > 0,
            bucketing == spilled,
            "{bucketing:?}: {spills} spills"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_limit_makes_the_buckets_spill() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        days: 1,
        files_per_day: 2,
        records_per_file: 3000,
        seed: 12,
        ..TreeSpec::default()
    };
    generate_tree(dir.path(), &spec, 2).unwrap();
    let sql = QUERIES[0];
    let unlimited = context(dir.path(), None).await;
    let bucketing = Bucketing {
        window_rows: 500,
        memory_budget: usize::MAX,
    };
    let limited = new_context(
        &[dir.path().to_str().unwrap()],
        &SessionOptions {
            batch_size: Some(100),
            memory_limit: Some(2 << 20),
            bucketing: Some(bucketing),
            ..options(true)
        },
    )
    .await
    .unwrap();
    let expected = sorted_rows(&unlimited, sql).await;
    assert_same_rows(&sorted_rows(&limited, sql).await, &expected, sql);
    let (_, metrics) = run_bucketed(&limited, sql).await;
    assert!(metrics.spill_count().unwrap_or(0) > 0);
}
