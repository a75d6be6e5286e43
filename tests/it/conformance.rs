//! The same answers from every way of reaching the fixture tree, with and
//! without pruning, and equal to an independent reading of the files.

use std::collections::BTreeMap;

use datafusion::prelude::SessionContext;

use crate::support::*;

/// Every way to name the fixture tree: the bucket root (flow logs found one
/// level down), the prefix folder, the AWSLogs folder itself, and the same
/// three over an in-memory `s3://` store; each with pruning on and off;
/// and through the local cache, twice over one cache folder (the first
/// session fills it as it answers, the second answers from it).
async fn all_contexts() -> Vec<(String, SessionContext)> {
    let mut out = Vec::new();
    for pruning in [true, false] {
        let folder = cache_folder();
        for pass in ["filling", "filled"] {
            out.push((
                format!("cache {pass} pruning={pruning}"),
                cached_context(&bucket(), pruning, &folder).await,
            ));
        }
        for location in [
            bucket(),
            bucket().join("flow-logs"),
            bucket().join("flow-logs/AWSLogs"),
        ] {
            out.push((
                format!("{} pruning={pruning}", location.display()),
                local_context(&location, pruning).await,
            ));
        }
        for prefix in ["", "flow-logs", "flow-logs/AWSLogs"] {
            out.push((
                format!("s3://test-bucket/{prefix} pruning={pruning}"),
                memory_s3_context(prefix, pruning).await,
            ));
        }
    }
    out
}

#[tokio::test]
async fn every_location_and_store_gives_the_same_rows() {
    let sql = "SELECT * FROM vpc_flow_logs ORDER BY flow_log_id, file_time, start, srcaddr, dstaddr, srcport, dstport, interface_id, bytes";
    let contexts = all_contexts().await;
    let expected = rows(&contexts[0].1, sql).await;
    assert!(expected.len() > 30, "fixture rows: {}", expected.len());
    for (name, ctx) in &contexts[1..] {
        assert_eq!(rows(ctx, sql).await, expected, "{name}");
    }
}

#[tokio::test]
async fn every_column_matches_an_independent_reading() {
    let records = read_independently(&bucket());
    let ctx = local_context(&bucket(), true).await;
    let schema = ctx.table(TABLE).await.unwrap().schema().clone();
    assert!(
        schema.field_with_unqualified_name("instance_tag_2").is_ok(),
        "unknown header field becomes a column"
    );
    for field in schema.fields() {
        let column = field.name();
        let mut got: Vec<String> = rows(&ctx, &format!("SELECT \"{column}\" FROM {TABLE}"))
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        let mut want: Vec<String> = records
            .iter()
            .map(|r| value(r, column).unwrap_or("NULL").to_string())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "column {column}");
    }
}

#[tokio::test]
async fn group_bys_on_path_columns_match() {
    let records = read_independently(&bucket());
    let mut want: BTreeMap<Vec<String>, (i64, i64, i64)> = BTreeMap::new();
    for r in &records {
        let key: Vec<String> = [
            "aws_account_id",
            "aws_region",
            "date",
            "hour",
            "flow_log_id",
        ]
        .iter()
        .map(|c| value(r, c).unwrap_or("NULL").to_string())
        .collect();
        let entry = want.entry(key).or_default();
        entry.0 += 1;
        entry.1 += int(r, "bytes").unwrap_or(0);
        entry.2 += int(r, "packets").unwrap_or(0);
    }
    let want: Vec<Vec<String>> = want
        .into_iter()
        .map(|(mut k, (n, b, p))| {
            k.extend([n.to_string(), b.to_string(), p.to_string()]);
            k
        })
        .collect();
    let folder = cache_folder();
    for (pruning, cache) in [(true, false), (false, false), (true, true), (true, true)] {
        let ctx = if cache {
            cached_context(&bucket(), pruning, &folder).await
        } else {
            local_context(&bucket(), pruning).await
        };
        let got = rows(
            &ctx,
            "SELECT aws_account_id, aws_region, date, hour, flow_log_id, count(*), \
             coalesce(sum(bytes), 0), coalesce(sum(packets), 0) FROM vpc_flow_logs \
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        )
        .await;
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(got_sorted, want_sorted, "pruning={pruning} cache={cache}");
    }
}

/// Filters on record and path columns: count and byte sum over the fixture
/// tree, pruned, unpruned, and by an independent reading.
#[tokio::test]
async fn filters_match_with_and_without_pruning() {
    let records = read_independently(&bucket());
    let midnight_16: i64 = 1_705_363_200; // 2024-01-16T00:00:00Z
    type Check = Box<dyn Fn(&Record) -> bool>;
    let eq =
        |c: &'static str, v: &'static str| -> Check { Box::new(move |r| value(r, c) == Some(v)) };
    let cases: Vec<(String, Check)> = vec![
        ("action = 'REJECT'".to_string(), eq("action", "REJECT")),
        (
            "log_status = 'NODATA' OR log_status = 'SKIPDATA'".to_string(),
            Box::new(|r| matches!(value(r, "log_status"), Some("NODATA" | "SKIPDATA"))),
        ),
        (
            "log_status IS NULL".to_string(),
            Box::new(|r| value(r, "log_status").is_none()),
        ),
        (
            "dstport = 22 AND protocol = 6".to_string(),
            Box::new(|r| int(r, "dstport") == Some(22) && int(r, "protocol") == Some(6)),
        ),
        (
            "srcaddr LIKE '2001:%'".to_string(),
            Box::new(|r| value(r, "srcaddr").is_some_and(|v| v.starts_with("2001:"))),
        ),
        (
            "tcp_flags = 19".to_string(),
            Box::new(|r| int(r, "tcp_flags") == Some(19)),
        ),
        (
            "bytes > 1000".to_string(),
            Box::new(|r| int(r, "bytes").is_some_and(|b| b > 1000)),
        ),
        (
            "vpc_id IS NOT NULL".to_string(),
            Box::new(|r| value(r, "vpc_id").is_some()),
        ),
        (
            "instance_tag_2 = 'web'".to_string(),
            eq("instance_tag_2", "web"),
        ),
        (
            "encryption_status = 1".to_string(),
            Box::new(|r| int(r, "encryption_status") == Some(1)),
        ),
        (
            "aws_region = 'eu-west-1'".to_string(),
            eq("aws_region", "eu-west-1"),
        ),
        (
            "aws_account_id = '444455556666'".to_string(),
            eq("aws_account_id", "444455556666"),
        ),
        (
            "aws_account_id IN ('444455556666') AND aws_region <> 'us-east-1'".to_string(),
            Box::new(|r| {
                value(r, "aws_account_id") == Some("444455556666")
                    && value(r, "aws_region") != Some("us-east-1")
            }),
        ),
        (
            "date = DATE '2024-01-16'".to_string(),
            eq("date", "2024-01-16"),
        ),
        ("date = '2024-01-15'".to_string(), eq("date", "2024-01-15")),
        (
            "date BETWEEN DATE '2024-01-10' AND DATE '2024-01-15'".to_string(),
            eq("date", "2024-01-15"),
        ),
        (
            "date > DATE '2024-01-15'".to_string(),
            eq("date", "2024-01-16"),
        ),
        (
            "hour = 23".to_string(),
            Box::new(|r| value(r, "hour") == Some("23")),
        ),
        (
            "hour IS NULL".to_string(),
            Box::new(|r| value(r, "hour").is_none()),
        ),
        (
            "flow_log_id = 'fl-0a1b2c3d4e5f60002'".to_string(),
            eq("flow_log_id", "fl-0a1b2c3d4e5f60002"),
        ),
        (
            "file_time >= TIMESTAMP '2024-01-15 12:00:00'".to_string(),
            Box::new(|r| value(r, "file_time").unwrap() >= "2024-01-15T12:00:00"),
        ),
        (
            "file_time < TIMESTAMP '2024-01-15 12:00:00' AND date = DATE '2024-01-15'".to_string(),
            Box::new(|r| value(r, "file_time").unwrap() < "2024-01-15T12:00:00"),
        ),
        // Records that started before midnight but sit in the next day's folder.
        (
            format!("start < {midnight_16} AND \"end\" >= {midnight_16}"),
            Box::new(move |r| {
                int(r, "start").is_some_and(|s| s < midnight_16)
                    && int(r, "end").is_some_and(|e| e >= midnight_16)
            }),
        ),
        (
            format!("start >= {midnight_16}"),
            Box::new(move |r| int(r, "start").is_some_and(|s| s >= midnight_16)),
        ),
        (
            format!("\"end\" < {midnight_16}"),
            Box::new(move |r| int(r, "end").is_some_and(|e| e < midnight_16)),
        ),
        (
            format!(
                "start BETWEEN {} AND {}",
                midnight_16 - 86_400,
                midnight_16 - 43_200
            ),
            Box::new(move |r| {
                int(r, "start")
                    .is_some_and(|s| (midnight_16 - 86_400..=midnight_16 - 43_200).contains(&s))
            }),
        ),
        (
            format!("\"end\" IN ({}, {})", midnight_16 + 40, midnight_16 + 10),
            Box::new(
                move |r| matches!(int(r, "end"), Some(e) if e == midnight_16 + 40 || e == midnight_16 + 10),
            ),
        ),
        (
            format!("(start >= {midnight_16} OR action = 'REJECT')"),
            Box::new(move |r| {
                int(r, "start").is_some_and(|s| s >= midnight_16)
                    || value(r, "action") == Some("REJECT")
            }),
        ),
        // Tests the decoder itself runs on each line (the record filter).
        (
            "dstport IN (22, 3389, 443)".to_string(),
            Box::new(|r| matches!(int(r, "dstport"), Some(22 | 3389 | 443))),
        ),
        (
            "22 = dstport".to_string(),
            Box::new(|r| int(r, "dstport") == Some(22)),
        ),
        (
            "srcaddr = '10.0.1.5' OR srcaddr = '203.0.113.5'".to_string(),
            Box::new(|r| matches!(value(r, "srcaddr"), Some("10.0.1.5" | "203.0.113.5"))),
        ),
        (
            "interface_id = 'eni-1235b8ca123456789' AND action = 'ACCEPT'".to_string(),
            Box::new(|r| {
                value(r, "interface_id") == Some("eni-1235b8ca123456789")
                    && value(r, "action") == Some("ACCEPT")
            }),
        ),
        (
            "pkt_srcaddr = '203.0.113.5'".to_string(),
            eq("pkt_srcaddr", "203.0.113.5"),
        ),
        (
            "instance_id = 'i-01234567890123456'".to_string(),
            eq("instance_id", "i-01234567890123456"),
        ),
        (
            "dstport <> 443 AND action <> 'ACCEPT'".to_string(),
            Box::new(|r| {
                int(r, "dstport").is_some_and(|p| p != 443)
                    && value(r, "action").is_some_and(|a| a != "ACCEPT")
            }),
        ),
        (
            "dstport NOT IN (22, 443)".to_string(),
            Box::new(|r| int(r, "dstport").is_some_and(|p| p != 22 && p != 443)),
        ),
        (
            "srcaddr LIKE '10.0.%'".to_string(),
            Box::new(|r| value(r, "srcaddr").is_some_and(|v| v.starts_with("10.0."))),
        ),
        (
            "tcp_flags IS NULL".to_string(),
            Box::new(|r| int(r, "tcp_flags").is_none()),
        ),
        (
            "pkt_srcaddr IS NOT NULL".to_string(),
            Box::new(|r| value(r, "pkt_srcaddr").is_some()),
        ),
        (
            "packets <= 10 AND bytes >= 500".to_string(),
            Box::new(|r| {
                int(r, "packets").is_some_and(|p| p <= 10)
                    && int(r, "bytes").is_some_and(|b| b >= 500)
            }),
        ),
        (
            "protocol IN (6, 17) AND log_status = 'OK'".to_string(),
            Box::new(|r| {
                matches!(int(r, "protocol"), Some(6 | 17)) && value(r, "log_status") == Some("OK")
            }),
        ),
    ];
    let pruned = local_context(&bucket(), true).await;
    let unpruned = local_context(&bucket(), false).await;
    // Through the cache: one session fills it with every column, the
    // other reads the predicates' columns from it (whole objects: the
    // filter above the scan applies the record filter's tests).
    let folder = cache_folder();
    let filling = cached_context(&bucket(), true, &folder).await;
    rows(&filling, &format!("SELECT * FROM {TABLE}")).await;
    let cached = cached_context(&bucket(), true, &folder).await;
    let report = flowsql::scan_report(&cached, TABLE).await.unwrap();
    // And a cache each query fills with its own columns as it filters
    // (the first fills the tested columns, later ones may find them).
    let filled_as_filtered = cached_context(&bucket(), true, &cache_folder()).await;
    for (predicate, check) in &cases {
        let matching: Vec<&Record> = records.iter().filter(|r| check(r)).collect();
        let want = vec![vec![
            matching.len().to_string(),
            matching
                .iter()
                .map(|r| int(r, "bytes").unwrap_or(0))
                .sum::<i64>()
                .to_string(),
        ]];
        let sql =
            format!("SELECT count(*), coalesce(sum(bytes), 0) FROM {TABLE} WHERE {predicate}");
        assert_eq!(rows(&pruned, &sql).await, want, "pruned: {predicate}");
        assert_eq!(rows(&unpruned, &sql).await, want, "unpruned: {predicate}");
        assert_eq!(
            rows(&filled_as_filtered, &sql).await,
            want,
            "filling: {predicate}"
        );
        report.reset();
        assert_eq!(rows(&cached, &sql).await, want, "cached: {predicate}");
        let summary = report.summary();
        assert_eq!(
            summary.objects_from_cache, summary.objects_opened,
            "cached: {predicate}: every object from the cache"
        );
    }
    assert!(cases.len() > 20);
}
