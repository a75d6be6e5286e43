//! Every saved query in queries/ runs through `flowsql --saved` over the
//! fixture tree; several are checked against an independent reading of the
//! files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;

/// The names of the saved queries: the `.sql` files of `queries/`, which
/// the build embeds in the binary.
fn saved_query_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `flowsql BUCKET --saved NAME [--param K=V]... [EXTRA]...` and
/// returns its rows as strings, `NULL` for an empty field. TSV writes tabs
/// and line breaks inside values as `\t` and `\n`, so splitting is exact.
fn run_saved_with(name: &str, params: &[(&str, &str)], extra: &[&str]) -> Vec<Vec<String>> {
    let mut command = flowsql_command();
    command.args([
        bucket().to_str().unwrap(),
        "-q",
        "--format",
        "tsv",
        "--saved",
        name,
    ]);
    for (key, value) in params {
        command.args(["--param", &format!("{key}={value}")]);
    }
    let out = command.args(extra).output().expect("run flowsql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            line.split('\t')
                .map(|field| if field.is_empty() { "NULL" } else { field }.to_string())
                .collect()
        })
        .collect()
}

fn run_saved(name: &str, params: &[(&str, &str)]) -> Vec<Vec<String>> {
    run_saved_with(name, params, &[])
}

#[test]
fn every_saved_query_runs_with_and_without_pruning() {
    let all = saved_query_names();
    assert!(all.len() >= 20);
    for name in all {
        // Ties in ORDER BY may come in any order: compare as sorted lists.
        let mut a = run_saved(&name, &[]);
        let mut b = run_saved_with(&name, &[], &["--no-pruning"]);
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}");
    }
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

#[test]
fn top_talkers_match_an_independent_reading() {
    let records = read_independently(&bucket());
    let want = top(
        &records,
        |r| value(r, "log_status") == Some("OK"),
        &["srcaddr"],
        "bytes",
    );
    let got = run_saved("top_talkers", &[]);
    assert_eq!(got.len(), want.len().min(50));
    for (row, (key, bytes)) in got.iter().zip(&want) {
        // Ties may come in any order; the byte totals must match in order.
        assert_eq!(&row[1], bytes, "{key:?}");
    }
    let got_keys: std::collections::BTreeSet<_> = got.iter().map(|r| r[0].clone()).collect();
    let want_keys: std::collections::BTreeSet<_> = want.iter().map(|(k, _)| k[0].clone()).collect();
    assert_eq!(got_keys, want_keys);
}

#[test]
fn rejected_and_udp_and_skipdata_match() {
    let records = read_independently(&bucket());
    let rejected: usize = records
        .iter()
        .filter(|r| value(r, "action") == Some("REJECT"))
        .count();
    let got = run_saved("rejected_traffic", &[]);
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
    let got = run_saved("udp_users", &[]);
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
    let got = run_saved("skipdata_by_hour", &[]);
    assert_eq!(
        got.iter()
            .map(|r| r[1].parse::<usize>().unwrap())
            .sum::<usize>(),
        skipdata
    );
    assert!(skipdata > 0);
}

#[test]
fn parameters_select_the_traffic() {
    let records = read_independently(&bucket());
    for address in ["172.31.16.139", "10.0.0.62", "203.0.113.5"] {
        let from = records
            .iter()
            .filter(|r| value(r, "srcaddr") == Some(address))
            .count();
        let got = run_saved("traffic_from_source", &[("src_addr", address)]);
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
        let got = run_saved("traffic_to_destination", &[("dst_addr", address)]);
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
    let got = run_saved("nat_gateway_top_contributors", &[]);
    let pairs: Vec<(String, String)> = got.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert!(
        pairs.contains(&("10.0.1.5".into(), "10.0.0.220".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("10.0.0.220".into(), "10.0.1.5".into())),
        "{pairs:?}"
    );
    let uploads = run_saved("nat_gateway_uploads", &[]);
    assert_eq!(
        uploads.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(),
        ["203.0.113.5"]
    );
    let downloads = run_saved("nat_gateway_downloads", &[]);
    assert_eq!(
        downloads.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["203.0.113.5"]
    );
}
