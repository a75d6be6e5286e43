//! Grouped aggregations finished one hash bucket at a time answer exactly
//! as DataFusion's own final aggregation and repartition: held or spilled,
//! with output partitions that a join can pair as it would have, and an
//! input's error as the query's.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use flowsql::Bucketing;
use flowsql::internals::Grammar;
use flowsql::internals::generate::{TreeSpec, generate_tree};
use flowsql::{CacheOptions, SessionOptions, new_context};

use crate::support::*;

/// Queries whose final aggregation is hash-partitioned: one or two keys,
/// NULL keys (NODATA records have no addresses), DISTINCT, grouping sets,
/// ordered and approximate aggregates, HAVING, and no rows at all. Keys
/// that pack (addresses), that do not (interfaces), and both in one column
/// ([`MIXED`]) and in one row (account and region, of type `Utf8`).
const QUERIES: &[&str] = &[
    "SELECT srcaddr, sum(bytes), count(*) FROM vpc_flow_logs GROUP BY 1",
    MERGED,
    NOT_MERGED,
    PAIRS,
    "SELECT interface_id, count(DISTINCT dstport) FROM vpc_flow_logs GROUP BY 1",
    "SELECT action, log_status, protocol, sum(packets) FROM vpc_flow_logs GROUP BY ROLLUP(action, log_status, protocol)",
    "SELECT dstport, array_agg(srcport ORDER BY srcport, bytes) FROM vpc_flow_logs GROUP BY 1 HAVING count(*) > 1",
    "SELECT dstport, approx_distinct(srcaddr) FROM vpc_flow_logs GROUP BY 1",
    "SELECT srcaddr, sum(bytes) FROM vpc_flow_logs WHERE bytes < 0 GROUP BY 1",
    MIXED,
    "SELECT account_id, region, split_part(dstaddr, '.', 2), count(*) FROM vpc_flow_logs GROUP BY 1, 2, 3",
    "SELECT account_id, srcaddr, sum(bytes) FROM vpc_flow_logs GROUP BY 1, 2",
    NEGATIVE_AND_NULL,
];

/// States below zero and NULL, in 64 and 32 bits, as spills write them
/// narrow.
const NEGATIVE_AND_NULL: &str = "SELECT srcaddr, sum(srcport - dstport), \
    sum(CASE WHEN protocol = 6 THEN NULL ELSE bytes END), min(dstport - 1024) \
    FROM vpc_flow_logs GROUP BY 1";

/// Every aggregate whose states the bucketed aggregate merges itself
/// (integer sums, counts, minimums and maximums by one packed key), with
/// NULL states (NODATA records have no bytes) and groups of only those.
const MERGED: &str = "SELECT dstaddr, min(bytes), max(packets), count(bytes), sum(dstport), \
    max(\"end\") - min(start) FROM vpc_flow_logs GROUP BY 1";

/// Two packed keys, merged too.
const PAIRS: &str = "SELECT srcaddr, dstaddr, min(start), max(\"end\"), sum(packets) \
    FROM vpc_flow_logs GROUP BY 1, 2";

/// Aggregates it leaves to DataFusion: a 32-bit minimum, an average.
const NOT_MERGED: &str = "SELECT srcaddr, min(dstport), avg(bytes) FROM vpc_flow_logs GROUP BY 1";

/// A key whose values mostly pack (first octets, which repeat) but not all
/// ("ssh", on about one row in 80): of 100-row batches, some hold only
/// packable keys and some both, and each octet must still be one group.
const MIXED: &str = "SELECT CASE WHEN dstport = 22 AND action = 'REJECT' THEN 'ssh' \
    ELSE split_part(srcaddr, '.', 1) END AS k, count(*), sum(bytes) FROM vpc_flow_logs GROUP BY 1";

/// The tree most tests read: 6,000 records in 8 objects.
fn small_tree() -> tempfile::TempDir {
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
        parquet: false,
    };
    generate_tree(dir.path(), &spec, 2).unwrap();
    dir
}

/// Rows split one at a time and all held; and windows of 700 rows, all
/// spilled.
const HELD: Bucketing = Bucketing {
    window_rows: 1,
    memory_budget: usize::MAX,
};
const SPILLED: Bucketing = Bucketing {
    window_rows: 700,
    memory_budget: 0,
};

async fn context(dir: &std::path::Path, bucketing: Option<Bucketing>) -> SessionContext {
    cached_context(dir, bucketing, None).await
}

async fn cached_context(
    dir: &std::path::Path,
    bucketing: Option<Bucketing>,
    cache: Option<CacheOptions>,
) -> SessionContext {
    let mut options = SessionOptions {
        // Small batches: many windows from a small tree.
        batch_size: Some(100),
        bucketing,
        ..options(true)
    };
    options.table.cache = cache;
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

/// The plan's first node named `name`, depth first.
fn find_node<'a>(
    plan: &'a Arc<dyn ExecutionPlan>,
    name: &str,
) -> Option<&'a Arc<dyn ExecutionPlan>> {
    if plan.name() == name {
        return Some(plan);
    }
    plan.children()
        .into_iter()
        .find_map(|child| find_node(child, name))
}

/// Whether the plan of `sql` finishes an aggregation bucket by bucket.
async fn is_bucketed(ctx: &SessionContext, sql: &str) -> bool {
    find_node(&physical_plan(ctx, sql).await, "BucketedAggregateExec").is_some()
}

/// The one-line display of the `BucketedAggregateExec` in the plan of `sql`.
async fn bucketed_line(ctx: &SessionContext, sql: &str) -> String {
    let plan = physical_plan(ctx, sql).await;
    let bucketed =
        find_node(&plan, "BucketedAggregateExec").unwrap_or_else(|| panic!("{sql}: not bucketed"));
    datafusion::physical_plan::displayable(bucketed.as_ref())
        .one_line()
        .to_string()
}

/// What a run of a bucketed aggregate shows.
struct BucketedRun {
    /// Rows the query returned.
    rows: usize,
    /// The `BucketedAggregateExec`'s (spills, rows out, packed rows).
    metrics: MetricsSet,
    /// Rows into the `BucketedAggregateExec` (the partial aggregates').
    input_rows: usize,
}

/// Runs `sql`, whose plan must have a `BucketedAggregateExec`.
async fn run_bucketed(ctx: &SessionContext, sql: &str) -> BucketedRun {
    let plan = physical_plan(ctx, sql).await;
    let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
    let bucketed =
        find_node(&plan, "BucketedAggregateExec").unwrap_or_else(|| panic!("{sql}: not bucketed"));
    let input_rows = bucketed.children()[0]
        .metrics()
        .and_then(|metrics| metrics.output_rows())
        .unwrap();
    BucketedRun {
        rows: batches.iter().map(|batch| batch.num_rows()).sum(),
        metrics: bucketed.metrics().unwrap(),
        input_rows,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucketed_aggregation_answers_as_datafusion_does() {
    let dir = small_tree();
    let reference = context(dir.path(), None).await;
    let first = QUERIES[0];
    assert!(!is_bucketed(&reference, first).await);

    // The default window is larger than this tree: one window per input.
    for bucketing in [HELD, SPILLED, Bucketing::default()] {
        let ctx = context(dir.path(), Some(bucketing)).await;
        for sql in QUERIES {
            let expected = sorted_rows(&reference, sql).await;
            let actual = sorted_rows(&ctx, sql).await;
            assert_same_rows(&actual, &expected, &format!("{bucketing:?}: {sql}"));
        }
        // Nothing pairs its partitions with another input's: rows with
        // codes are routed by them.
        assert!(
            bucketed_line(&ctx, first).await.contains("routed_by_code"),
            "{first}"
        );
        for (sql, merged) in [
            (first, true),
            (MERGED, true),
            (PAIRS, true),
            (MIXED, true),
            (NOT_MERGED, false),
        ] {
            assert_eq!(
                bucketed_line(&ctx, sql).await.contains("merged_by_code"),
                merged,
                "{sql}"
            );
        }
        let run = run_bucketed(&ctx, first).await;
        assert_eq!(run.rows, rows(&reference, first).await.len());
        assert_eq!(run.metrics.output_rows(), Some(run.rows));
        let spills = run.metrics.spill_count().unwrap_or(0);
        assert_eq!(
            spills > 0,
            bucketing == SPILLED,
            "{bucketing:?}: {spills} spills"
        );
        // Addresses and nulls all pack; octets do, "ssh" does not.
        assert_eq!(
            packed_rows(&run.metrics),
            run.input_rows,
            "{bucketing:?}: {first}"
        );
        // With no memory limit, every packed row is merged by code.
        assert_eq!(
            metric(&run.metrics, "merged_rows"),
            run.input_rows,
            "{bucketing:?}: {first}"
        );
        let run = run_bucketed(&ctx, NOT_MERGED).await;
        assert_eq!(metric(&run.metrics, "merged_rows"), 0, "{NOT_MERGED}");
        let run = run_bucketed(&ctx, MIXED).await;
        let packed = packed_rows(&run.metrics);
        assert!(
            0 < packed && packed < run.input_rows,
            "{bucketing:?}: {packed} of {} rows packed: {MIXED}",
            run.input_rows
        );
    }
}

/// Once the partial aggregate under a grouping by addresses stops
/// aggregating (here after its first 100 rows, as it does past 100,000 on
/// a real tree of mostly distinct pairs; this small tree's pairs repeat
/// more), it passes the scan's arrays on, and the grouping recalls the
/// codes the scan's decoder made of them instead of packing the text
/// again. From then on the decoder leaves out the text of addresses with
/// codes, where nothing reads it; the answers stay DataFusion's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouping_by_addresses_recalls_the_codes_its_scan_made() {
    let dir = small_tree();
    let reference = context(dir.path(), None).await;
    let ctx = context(dir.path(), Some(Bucketing::default())).await;
    stop_partial_aggregation_early(&ctx).await;
    let scan_line = |plan: Arc<dyn ExecutionPlan>| {
        let scan = find_node(&plan, "FlowLogScanExec").unwrap();
        datafusion::physical_plan::displayable(scan.as_ref())
            .one_line()
            .to_string()
    };
    // A partial grouping by one key's views hands decoded text, whose
    // views do not repeat, to DataFusion's partial aggregate.
    let keys = [
        (PAIRS, "srcaddr, dstaddr"),
        (TOP_K[1].0, "srcaddr, dstaddr"),
        (QUERIES[0], "srcaddr"),
    ];
    for (sql, coded) in keys {
        let shown = scan_line(physical_plan(&ctx, sql).await);
        assert!(
            shown.contains(&format!("coded=[{coded}]")),
            "{sql}: {shown}"
        );
        assert!(shown.contains("coded_text=left_out"), "{sql}: {shown}");
        assert_same_rows(
            &sorted_rows(&ctx, sql).await,
            &sorted_rows(&reference, sql).await,
            sql,
        );
        let run = run_bucketed(&ctx, sql).await;
        let recalled = metric(&run.metrics, "recalled_rows");
        // A partition's first rows go through the partial aggregate's
        // probe, and the batches of their object decoded after one of
        // those was dropped are read without codes; the other rows are
        // recalled.
        assert!(
            recalled > run.input_rows / 2 && recalled <= packed_rows(&run.metrics),
            "{sql}: {recalled} of {} rows recalled",
            run.input_rows
        );
        // Each partition's first recall sets its decoders leaving text out.
        let textless = metric(&run.metrics, "textless_rows");
        assert!(
            textless > run.input_rows / 2 && textless <= recalled,
            "{sql}: {textless} of {recalled} recalled rows without text"
        );
    }
    // Where the partial aggregate reads an address even as it passes
    // batches on (an argument, or the same column under another name), or
    // a join above pairs partitions (so rows are routed by the hash of
    // their text), the text is read as ever.
    let argument = "SELECT srcaddr, dstaddr, count(*), max(length(dstaddr)) \
        FROM vpc_flow_logs GROUP BY 1, 2";
    let renamed = "SELECT a, min(b), count(*) FROM \
        (SELECT srcaddr AS a, srcaddr AS b FROM vpc_flow_logs) GROUP BY a";
    let joined = "SELECT p.srcaddr, p.dstaddr, p.n, a.n FROM \
        (SELECT srcaddr, dstaddr, count(*) AS n FROM vpc_flow_logs GROUP BY 1, 2) p \
        JOIN (SELECT srcaddr, count(*) AS n FROM vpc_flow_logs GROUP BY 1) a \
        ON p.srcaddr = a.srcaddr";
    for sql in [argument, renamed, joined] {
        let shown = scan_line(physical_plan(&ctx, sql).await);
        assert!(!shown.contains("coded_text"), "{sql}: {shown}");
        assert_same_rows(
            &sorted_rows(&ctx, sql).await,
            &sorted_rows(&reference, sql).await,
            sql,
        );
    }
    // With a key that has no code, rows are not packed but split and
    // aggregated as text: once a batch of such a key shows no code, the
    // addresses' text is kept (and any left out would be made again).
    let with_action =
        "SELECT srcaddr, action, count(*), sum(bytes) FROM vpc_flow_logs GROUP BY 1, 2";
    let shown = scan_line(physical_plan(&ctx, with_action).await);
    assert!(
        shown.contains("coded_text=left_out"),
        "{with_action}: {shown}"
    );
    let run = run_bucketed(&ctx, with_action).await;
    assert_eq!(metric(&run.metrics, "textless_rows"), 0, "{with_action}");
    assert_same_rows(
        &sorted_rows(&ctx, with_action).await,
        &sorted_rows(&reference, with_action).await,
        with_action,
    );
    // A filter between the scan and the grouping makes arrays of its own:
    // the scan makes no codes.
    let filtered = "SELECT srcaddr, dstaddr, count(*) FROM vpc_flow_logs \
        WHERE dstport = 22 GROUP BY 1, 2";
    for sql in [filtered] {
        let shown = scan_line(physical_plan(&ctx, sql).await);
        assert!(!shown.contains("coded="), "{sql}: {shown}");
        assert_same_rows(
            &sorted_rows(&ctx, sql).await,
            &sorted_rows(&reference, sql).await,
            sql,
        );
    }
}

/// Filling the local cache, and read from it (where addresses are kept as
/// codes), a grouping by addresses gets them without text too, once its
/// partial aggregate passes batches on; the answers, and so what the
/// cache keeps, stay DataFusion's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouping_by_addresses_read_from_the_cache_gets_codes_without_text() {
    let dir = small_tree();
    let folder = tempfile::tempdir().unwrap();
    let reference = context(dir.path(), None).await;
    let cache = Some(CacheOptions::in_folder(folder.path()));
    let ctx = cached_context(dir.path(), Some(Bucketing::default()), cache).await;
    stop_partial_aggregation_early(&ctx).await;
    for sql in [PAIRS, TOP_K[1].0] {
        let filled = run_bucketed(&ctx, sql).await;
        let warm = run_bucketed(&ctx, sql).await;
        assert_eq!(filled.rows, warm.rows, "{sql}");
        // The cache's writer reads the codes where the text is left out.
        let textless = metric(&filled.metrics, "textless_rows");
        assert!(
            textless > filled.input_rows / 2,
            "{sql}: {textless} of {} rows filled without text",
            filled.input_rows
        );
        assert_same_rows(
            &sorted_rows(&ctx, sql).await,
            &sorted_rows(&reference, sql).await,
            sql,
        );
        let textless = metric(&warm.metrics, "textless_rows");
        assert!(
            textless > warm.input_rows / 2 && textless <= metric(&warm.metrics, "recalled_rows"),
            "{sql}: {textless} of {} rows without text",
            warm.input_rows
        );
    }
}

/// Where one key of a row has no code (an IPv6 destination) and the other's
/// text was left out, the row is split as text, with that text made again
/// from its codes; the answers stay DataFusion's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_a_key_without_code_get_back_the_text_left_out_of_the_other() {
    use std::io::{Read, Write};
    let dir = small_tree();
    // Every third record's destination becomes an IPv6 address.
    for path in walk(dir.path()) {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let dstaddr = header.split(' ').position(|f| f == "dstaddr").unwrap();
        let mut changed = format!("{header}\n");
        for (n, line) in lines.enumerate() {
            let mut fields: Vec<String> = line.split(' ').map(str::to_string).collect();
            if n % 3 == 0 {
                fields[dstaddr] = format!("2001:db8::{:x}", n % 50);
            }
            changed.push_str(&fields.join(" "));
            changed.push('\n');
        }
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(changed.as_bytes()).unwrap();
        gz.finish().unwrap();
    }
    let reference = context(dir.path(), None).await;
    let ctx = context(dir.path(), Some(Bucketing::default())).await;
    stop_partial_aggregation_early(&ctx).await;
    let run = run_bucketed(&ctx, PAIRS).await;
    let packed = packed_rows(&run.metrics);
    let textless = metric(&run.metrics, "textless_rows");
    assert!(
        packed < run.input_rows && textless > run.input_rows / 2,
        "{packed} packed and {textless} without text of {} rows",
        run.input_rows
    );
    assert_same_rows(
        &sorted_rows(&ctx, PAIRS).await,
        &sorted_rows(&reference, PAIRS).await,
        PAIRS,
    );
}

/// Has the partial aggregate stop aggregating after its first 100 rows,
/// as it does past 100,000 on a real tree of mostly distinct pairs.
async fn stop_partial_aggregation_early(ctx: &SessionContext) {
    for setting in ["probe_rows_threshold = 100", "probe_ratio_threshold = 0.1"] {
        let set = format!("SET datafusion.execution.skip_partial_aggregation_{setting}");
        ctx.sql(&set).await.unwrap();
    }
}

/// Rows the bucketed aggregate split with packed keys.
fn packed_rows(metrics: &MetricsSet) -> usize {
    metric(metrics, "packed_rows")
}

/// A count the bucketed aggregate keeps, summed over its partitions.
fn metric(metrics: &MetricsSet, name: &str) -> usize {
    metrics
        .sum_by_name(name)
        .map(|value| value.as_usize())
        .unwrap_or(0)
}

/// TopKs by a merged aggregate, with ties (most pairs are counted once),
/// NULLs (groups of NODATA records only) first and last, ascending and
/// descending; and one with a HAVING between, which must see every group.
const TOP_K: &[(&str, bool)] = &[
    (
        "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 ORDER BY b DESC, 1 LIMIT 7",
        true,
    ),
    (
        "SELECT srcaddr, dstaddr, count(*) AS n FROM vpc_flow_logs GROUP BY 1, 2 \
         ORDER BY n DESC, 1, 2 LIMIT 5",
        true,
    ),
    (
        "SELECT dstaddr, min(bytes) AS m FROM vpc_flow_logs GROUP BY 1 \
         ORDER BY m ASC NULLS FIRST, 1 LIMIT 4",
        true,
    ),
    (
        "SELECT srcaddr, max(packets) AS p, count(*) FROM vpc_flow_logs GROUP BY 1 \
         ORDER BY p DESC NULLS FIRST, 1 LIMIT 3",
        true,
    ),
    (
        "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 \
         ORDER BY b DESC, 1 LIMIT 3 OFFSET 4",
        true,
    ),
    (
        "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 \
         HAVING sum(bytes) < 5000 ORDER BY b DESC, 1 LIMIT 3",
        false,
    ),
    // A fetch past what the aggregate filters for.
    (
        "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 ORDER BY b DESC, 1 LIMIT 5000",
        false,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_top_k_only_the_groups_it_can_choose_are_unpacked() {
    let dir = small_tree();
    let reference = context(dir.path(), None).await;
    for bucketing in [HELD, SPILLED, Bucketing::default()] {
        let ctx = context(dir.path(), Some(bucketing)).await;
        for &(sql, kept) in TOP_K {
            let expected = rows(&reference, sql).await;
            assert!(!expected.is_empty(), "{sql}");
            assert_same_rows(
                &rows(&ctx, sql).await,
                &expected,
                &format!("{bucketing:?}: {sql}"),
            );
            let line = bucketed_line(&ctx, sql).await;
            assert_eq!(line.contains("keep_top=["), kept, "{sql}: {line}");
        }
        // Fewer groups leave the aggregate than there are.
        let (sql, _) = TOP_K[0];
        let groups = rows(&reference, "SELECT DISTINCT srcaddr FROM vpc_flow_logs")
            .await
            .len();
        let run = run_bucketed(&ctx, sql).await;
        let out = run.metrics.output_rows().unwrap();
        assert!(
            out < groups,
            "{bucketing:?}: {out} of {groups} groups left the aggregate"
        );
    }
}

/// With runs enough for a TopK's best so far to exist before the last
/// ones, rows of groups that cannot reach it are dropped before the merge,
/// and the answers stay DataFusion's: sums and counts, ties, and NULL sums
/// (groups of NODATA records only) first and last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_top_k_rows_that_cannot_reach_it_are_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["us-east-1".into(), "eu-west-1".into()],
        days: 1,
        files_per_day: 8,
        records_per_file: 5000,
        seed: 23,
        ..TreeSpec::default()
    };
    generate_tree(dir.path(), &spec, 2).unwrap();
    let reference = context(dir.path(), None).await;
    let ctx = context(dir.path(), Some(Bucketing::default())).await;
    for (sql, outranked) in [
        (TOP_K[0].0, true),
        (TOP_K[1].0, false),
        (TOP_K[4].0, true),
        (
            "SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1 \
             ORDER BY b DESC NULLS FIRST, 1 LIMIT 9",
            true,
        ),
        (
            "SELECT srcaddr, dstaddr, sum(packets) AS p, sum(bytes) FROM vpc_flow_logs \
             GROUP BY 1, 2 ORDER BY p DESC NULLS LAST, 1, 2 LIMIT 6",
            true,
        ),
    ] {
        let expected = rows(&reference, sql).await;
        assert!(!expected.is_empty(), "{sql}");
        assert_same_rows(&rows(&ctx, sql).await, &expected, sql);
        let run = run_bucketed(&ctx, sql).await;
        let (merged, dropped) = (
            metric(&run.metrics, "merged_rows"),
            metric(&run.metrics, "outranked_rows"),
        );
        assert_eq!(merged + dropped, run.input_rows, "{sql}");
        if outranked {
            assert!(
                dropped > run.input_rows / 2,
                "{sql}: {dropped} of {}",
                run.input_rows
            );
        }
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
    // Keys that do not pack (a letter), whose rows are big enough to pass
    // the limit.
    let sql = "SELECT 'h' || srcaddr AS host, sum(bytes), count(*) FROM vpc_flow_logs GROUP BY 1";
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
    let run = run_bucketed(&limited, sql).await;
    assert!(run.metrics.spill_count().unwrap_or(0) > 0);
}

/// Whether `plan` reaches a `BucketedAggregateExec` through nodes with one
/// child and no repartition: its partitions are the aggregate's.
fn partitioned_by_bucketed_aggregate(plan: &Arc<dyn ExecutionPlan>) -> bool {
    match plan.name() {
        "BucketedAggregateExec" => true,
        "RepartitionExec" => false,
        _ => match plan.children().as_slice() {
            [only] => partitioned_by_bucketed_aggregate(only),
            _ => false,
        },
    }
}

/// A partitioned join of a grouped aggregation with the table pairs
/// partition `i` of the aggregate with partition `i` of the table's hash
/// repartition: the buckets must route rows to the partitions that
/// repartition would have, or matches are lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_pairs_bucketed_partitions_with_repartitioned_ones() {
    let dir = small_tree();
    let sql = "SELECT a.srcaddr, a.b, c.dstport, c.packets FROM \
        (SELECT srcaddr, sum(bytes) AS b FROM vpc_flow_logs GROUP BY 1) a \
        JOIN vpc_flow_logs c ON a.srcaddr = c.dstaddr";
    let reference = context(dir.path(), None).await;
    let expected = sorted_rows(&reference, sql).await;
    assert!(
        !expected.is_empty(),
        "no address is both a source and a destination"
    );
    for bucketing in [HELD, SPILLED, Bucketing::default()] {
        let ctx = context(dir.path(), Some(bucketing)).await;
        // Partitioned, however small the sides.
        for setting in [
            "hash_join_single_partition_threshold",
            "hash_join_single_partition_threshold_rows",
        ] {
            ctx.sql(&format!("SET datafusion.optimizer.{setting} = 0"))
                .await
                .unwrap();
        }
        let plan = physical_plan(&ctx, sql).await;
        let join = find_node(&plan, "HashJoinExec").expect("a hash join");
        let shown = datafusion::physical_plan::displayable(join.as_ref())
            .one_line()
            .to_string();
        assert!(shown.contains("mode=Partitioned"), "{shown}");
        // The join pairs partitions: rows go where the text's hash sends them.
        let bucketed = bucketed_line(&ctx, sql).await;
        assert!(!bucketed.contains("routed_by_code"), "{bucketed}");
        // One side keeps the aggregate's partitions, the other is
        // repartitioned by DataFusion.
        let sides: Vec<bool> = join
            .children()
            .into_iter()
            .map(partitioned_by_bucketed_aggregate)
            .collect();
        assert!(
            sides.contains(&true) && sides.contains(&false),
            "{}",
            datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
        );
        assert_same_rows(
            &sorted_rows(&ctx, sql).await,
            &expected,
            &format!("{bucketing:?}: {sql}"),
        );
    }
}

/// An input partition that fails ends the query with its error, naming the
/// object, from every output partition waiting on the split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_error_ends_the_query_with_its_message() {
    let dir = small_tree();
    let objects = walk(dir.path());
    let victim = objects.last().unwrap();
    let bytes = std::fs::read(victim).unwrap();
    std::fs::write(victim, &bytes[..bytes.len() / 2]).unwrap();
    let name = victim.file_name().unwrap().to_str().unwrap();
    for bucketing in [HELD, SPILLED] {
        let ctx = context(dir.path(), Some(bucketing)).await;
        let sql = QUERIES[0];
        assert!(is_bucketed(&ctx, sql).await);
        let error = ctx
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .expect_err("a truncated object")
            .to_string();
        assert!(
            error.contains(name) && error.contains("is not valid gzip data"),
            "{bucketing:?}: {error}"
        );
    }
}
