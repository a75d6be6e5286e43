//! Every saved query in queries/ runs over the fixture tree; several are
//! checked against an independent reading of the files.

use std::collections::BTreeMap;

use flowsql::internals::saved;

use crate::support::*;

#[tokio::test]
async fn every_saved_query_runs_with_and_without_pruning() {
    let pruned = local_context(&bucket(), true).await;
    let unpruned = local_context(&bucket(), false).await;
    let all = saved::all();
    assert!(all.len() >= 20);
    for query in all {
        let sql = query.render(&[]).unwrap();
        // Ties in ORDER BY may come in any order: compare as sorted lists.
        let mut a = rows(&pruned, &sql).await;
        let mut b = rows(&unpruned, &sql).await;
        a.sort();
        b.sort();
        assert_eq!(a, b, "{}", query.name);
    }
}

async fn run_saved(name: &str, params: &[(&str, &str)]) -> Vec<Vec<String>> {
    let ctx = local_context(&bucket(), true).await;
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rows(&ctx, &saved::find(name).unwrap().render(&params).unwrap()).await
}

/// Sums `measure` by `key` over records passing `keep`, sorted like the
/// saved queries (measure descending), as strings.
/// A sum of only NULLs is NULL, and NULL sorts last, as in SQL.
fn top(
    records: &[Record],
    keep: impl Fn(&Record) -> bool,
    key: &[&str],
    measure: &str,
) -> Vec<(Vec<String>, String)> {
    let mut sums: BTreeMap<Vec<String>, Option<i64>> = BTreeMap::new();
    for r in records.iter().filter(|r| keep(r)) {
        let k = key
            .iter()
            .map(|c| value(r, c).unwrap_or("NULL").to_string())
            .collect();
        let sum = sums.entry(k).or_default();
        if let Some(v) = int(r, measure) {
            *sum = Some(sum.unwrap_or(0) + v);
        }
    }
    let mut out: Vec<_> = sums.into_iter().collect();
    out.sort_by(|a, b| {
        b.1.map_or(i64::MIN, |v| v)
            .cmp(&a.1.map_or(i64::MIN, |v| v))
    });
    out.into_iter()
        .map(|(k, v)| (k, v.map_or_else(|| "NULL".to_string(), |v| v.to_string())))
        .collect()
}

#[tokio::test]
async fn top_talkers_match_an_independent_reading() {
    let records = read_independently(&bucket());
    let want = top(
        &records,
        |r| value(r, "log_status") == Some("OK"),
        &["srcaddr"],
        "bytes",
    );
    let got = run_saved("top_talkers", &[]).await;
    assert_eq!(got.len(), want.len().min(50));
    for (row, (key, bytes)) in got.iter().zip(&want) {
        // Ties may come in any order; the byte totals must match in order.
        assert_eq!(&row[1], bytes, "{key:?}");
    }
    let got_keys: std::collections::BTreeSet<_> = got.iter().map(|r| r[0].clone()).collect();
    let want_keys: std::collections::BTreeSet<_> = want.iter().map(|(k, _)| k[0].clone()).collect();
    assert_eq!(got_keys, want_keys);
}

#[tokio::test]
async fn rejected_and_udp_and_skipdata_match() {
    let records = read_independently(&bucket());
    let rejected: usize = records
        .iter()
        .filter(|r| value(r, "action") == Some("REJECT"))
        .count();
    let got = run_saved("rejected_traffic", &[]).await;
    assert_eq!(
        got.iter()
            .map(|r| r[4].parse::<usize>().unwrap())
            .sum::<usize>(),
        rejected
    );

    let udp = records
        .iter()
        .filter(|r| int(r, "protocol") == Some(17))
        .count();
    let got = run_saved("udp_users", &[]).await;
    assert_eq!(
        got.iter()
            .map(|r| r[1].parse::<usize>().unwrap())
            .sum::<usize>(),
        udp
    );

    let skipdata = records
        .iter()
        .filter(|r| value(r, "log_status") == Some("SKIPDATA"))
        .count();
    let got = run_saved("skipdata_by_hour", &[]).await;
    assert_eq!(
        got.iter()
            .map(|r| r[1].parse::<usize>().unwrap())
            .sum::<usize>(),
        skipdata
    );
    assert!(skipdata > 0);
}

#[tokio::test]
async fn parameters_select_the_traffic() {
    let records = read_independently(&bucket());
    for address in ["172.31.16.139", "10.0.0.62", "203.0.113.5"] {
        let from = records
            .iter()
            .filter(|r| value(r, "srcaddr") == Some(address))
            .count();
        let got = run_saved("traffic_from_source", &[("src_addr", address)]).await;
        assert_eq!(
            got.iter()
                .map(|r| r[4].parse::<usize>().unwrap())
                .sum::<usize>(),
            from,
            "{address}"
        );
        let to = records
            .iter()
            .filter(|r| value(r, "dstaddr") == Some(address))
            .count();
        let got = run_saved("traffic_to_destination", &[("dst_addr", address)]).await;
        assert_eq!(
            got.iter()
                .map(|r| r[4].parse::<usize>().unwrap())
                .sum::<usize>(),
            to,
            "{address}"
        );
        assert!(from + to > 0);
    }
    // The NAT-gateway sample: 10.0.0.220 is the NAT's address in 10.0.0.0/16.
    let got = run_saved("nat_gateway_top_contributors", &[]).await;
    let pairs: Vec<(String, String)> = got.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert!(
        pairs.contains(&("10.0.1.5".into(), "10.0.0.220".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("10.0.0.220".into(), "10.0.1.5".into())),
        "{pairs:?}"
    );
    let uploads = run_saved("nat_gateway_uploads", &[]).await;
    assert_eq!(
        uploads.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(),
        ["203.0.113.5"]
    );
    let downloads = run_saved("nat_gateway_downloads", &[]).await;
    assert_eq!(
        downloads.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["203.0.113.5"]
    );
}
