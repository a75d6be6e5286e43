//! The local cache of decoded objects, beyond the conformance and `.slt`
//! suites (which also run through it): what reading an object reports is
//! the same from the cache; changed and damaged objects are read from
//! their source; the cache keeps to its size. Over S3 (moto), the no-GET
//! test is in `s3.rs`; the command line's flags and several processes at
//! once are in `cli.rs`.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use flowsql::{CacheOptions, CacheUsage, Error, FlowLogOptions, SessionOptions};

use crate::support::*;

/// The statement's answer and what its scan reported, in a fresh session.
async fn answer_and_summary(
    location: &Path,
    options: &SessionOptions,
    sql: &str,
) -> (Vec<Vec<String>>, flowsql::ScanSummary) {
    let ctx = flowsql::new_context(&[location.to_str().unwrap()], options)
        .await
        .unwrap();
    let report = flowsql::scan_report(&ctx, TABLE).await.unwrap();
    report.reset();
    let answer = rows(&ctx, sql).await;
    (answer, report.summary())
}

/// The flow-log objects of a tree (not, say, a load balancer's logs).
fn flow_log_objects(tree: &Path) -> Vec<std::path::PathBuf> {
    walk(tree)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".log.gz"))
        .filter(|p| p.to_string_lossy().contains("vpcflowlogs"))
        .collect()
}

#[tokio::test]
async fn malformed_lines_and_unknown_fields_are_reported_the_same_from_the_cache() {
    let location = data("malformed");
    let folder = cache_folder();
    let sql = "SELECT count(*), sum(bytes), count(DISTINCT srcaddr) FROM vpc_flow_logs";
    let rejects = format!(
        "SELECT object, line, reason, text FROM {} ORDER BY object, line",
        flowsql::REJECTS_TABLE
    );
    let mut seen = Vec::new();
    for options in [
        options(true),
        cached_options(true, &folder),
        cached_options(true, &folder),
    ] {
        let ctx = flowsql::new_context(&[location.to_str().unwrap()], &options)
            .await
            .unwrap();
        let report = flowsql::scan_report(&ctx, TABLE).await.unwrap();
        report.reset();
        let answer = rows(&ctx, sql).await;
        let summary = report.summary();
        let rejected = rows(&ctx, &rejects).await;
        seen.push((answer, summary, rejected));
    }
    let (source, filling, cached) = (&seen[0], &seen[1], &seen[2]);
    assert!(source.1.malformed > 0, "the fixture has malformed lines");
    assert_eq!(filling.1.objects_from_cache, 0);
    assert_eq!(cached.1.objects_from_cache, cached.1.objects_opened);
    assert!(cached.1.objects_opened > 0);
    for (name, other) in [("filling", filling), ("cached", cached)] {
        assert_eq!(other.0, source.0, "{name}: answer");
        assert_eq!(other.2, source.2, "{name}: flowsql_rejects");
        assert!(!other.2.is_empty());
        assert_eq!(other.1.records, source.1.records, "{name}: records");
        assert_eq!(other.1.malformed, source.1.malformed, "{name}");
        assert_eq!(
            other.1.malformed_objects, source.1.malformed_objects,
            "{name}"
        );
        assert_eq!(other.1.examples, source.1.examples, "{name}");
        assert_eq!(other.1.hidden_fields, source.1.hidden_fields, "{name}");
    }

    // Strict: the first malformed line is the error, from the cache too.
    let strict = |cache: Option<CacheOptions>| SessionOptions {
        table: FlowLogOptions {
            strict: true,
            cache,
            ..FlowLogOptions::default()
        },
        ..SessionOptions::default()
    };
    let mut errors = Vec::new();
    for cache in [None, Some(CacheOptions::in_folder(&folder))] {
        let ctx = flowsql::new_context(&[location.to_str().unwrap()], &strict(cache))
            .await
            .unwrap();
        let error = ctx.sql(sql).await.unwrap().collect().await.unwrap_err();
        match Error::find(&error) {
            Some(found @ Error::MalformedLine { .. }) => errors.push(found.to_string()),
            other => panic!("not a malformed line: {other:?} ({error})"),
        }
    }
    assert_eq!(errors[0], errors[1]);
}

/// `path`'s gzip text cut to its header and first record.
fn keep_first_record(path: &Path) {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    assert!(
        text.lines().count() > 2,
        "{}: too few records",
        path.display()
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("{}\n", kept.join("\n")).as_bytes())
        .unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    for file in walk(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
}

#[tokio::test]
async fn a_changed_object_is_read_from_its_source_again() {
    let tree = tempfile::tempdir().unwrap();
    copy_tree(&bucket(), tree.path());
    let folder = cache_folder();
    let options = cached_options(true, &folder);
    let sql = "SELECT count(*), sum(bytes) FROM vpc_flow_logs";
    let (before, _) = answer_and_summary(tree.path(), &options, sql).await;
    let objects = flow_log_objects(tree.path());
    let changed = objects
        .iter()
        .find(|p| {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
                .read_to_string(&mut text)
                .is_ok()
                && text.lines().count() > 2
        })
        .unwrap();
    keep_first_record(changed);

    let (after, summary) = answer_and_summary(tree.path(), &options, sql).await;
    let read = summary.objects_opened;
    let records = read_independently(tree.path());
    let bytes: i64 = records.iter().map(|r| int(r, "bytes").unwrap_or(0)).sum();
    assert_eq!(
        after,
        vec![vec![records.len().to_string(), bytes.to_string()]]
    );
    assert_ne!(after, before);
    assert_eq!(summary.objects_missing_cache, 1, "only the changed object");
    assert_eq!(summary.objects_from_cache, read - 1);
}

#[tokio::test]
async fn a_damaged_entry_is_removed_and_its_object_read_from_its_source() {
    let folder = cache_folder();
    let cached = cached_options(true, &folder);
    let sql = "SELECT * FROM vpc_flow_logs ORDER BY flow_log_id, file_time, start, srcaddr, dstaddr, srcport, dstport, interface_id, bytes";
    let (want, _) = answer_and_summary(&bucket(), &options(true), sql).await;
    answer_and_summary(&bucket(), &cached, sql).await;

    // One entry's data cut short (a small object's data is inside its
    // facts file, after the text), another's facts file garbled.
    let files = walk(&folder);
    let mut facts_files = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "facts"));
    let (data, facts) = (facts_files.next().unwrap(), facts_files.next().unwrap());
    assert!(
        !files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "arrow")),
        "a small object's entry is one file"
    );
    let length = std::fs::metadata(data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(data)
        .unwrap()
        .set_len(length - 100)
        .unwrap();
    std::fs::write(facts, "not a facts file").unwrap();

    let (got, summary) = answer_and_summary(&bucket(), &cached, sql).await;
    assert_eq!(got, want);
    assert_eq!(summary.damaged_cache_entries.len(), 2, "{summary:?}");
    for (object, why) in &summary.damaged_cache_entries {
        assert!(object.ends_with(".log.gz"), "{object}");
        assert!(why.contains("damaged"), "{why}");
    }
    // Read again from their objects, and cached again.
    let (again, summary) = answer_and_summary(&bucket(), &cached, sql).await;
    assert_eq!(again, want);
    assert!(summary.damaged_cache_entries.is_empty());
    assert_eq!(summary.objects_from_cache, summary.objects_opened);
}

#[tokio::test]
async fn the_cache_keeps_to_its_size_by_removing_the_least_recently_used() {
    let sql = "SELECT * FROM vpc_flow_logs ORDER BY flow_log_id, file_time, start, srcaddr, dstaddr, srcport, dstport, interface_id, bytes";
    // Room for about half of the fixture's objects, all columns.
    let whole = cache_folder();
    let (want, summary) = answer_and_summary(&bucket(), &cached_options(true, &whole), sql).await;
    let objects = summary.objects_opened;
    let full = CacheUsage::of(&CacheOptions::in_folder(&whole)).unwrap();
    assert_eq!(full.entries, objects);
    let max_bytes = full.bytes / 2;
    let folder = cache_folder();
    let options = SessionOptions {
        table: FlowLogOptions {
            cache: Some(CacheOptions {
                folder: folder.clone(),
                max_bytes,
            }),
            ..FlowLogOptions::default()
        },
        ..SessionOptions::default()
    };
    let (got, _) = answer_and_summary(&bucket(), &options, sql).await;
    assert_eq!(got, want);
    // Sweeps run in the background; each brings the cache to 80% of its
    // size once it passes it, so at rest it holds at most the size plus
    // what was written since the last sweep (a tenth of the size).
    let cache = CacheOptions {
        folder: folder.clone(),
        max_bytes,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let usage = loop {
        let usage = CacheUsage::of(&cache).unwrap();
        if usage.bytes <= max_bytes + max_bytes / 10 || Instant::now() > deadline {
            break usage;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(usage.bytes <= max_bytes + max_bytes / 10, "{usage:?}");
    assert!(
        usage.entries > 0 && usage.entries < objects,
        "{usage:?} of {objects}"
    );
    // A scan larger than the cache evicts as it goes (the unit test of
    // the sweep checks the order); its answer is still whole.
    let (again, summary) = answer_and_summary(&bucket(), &options, sql).await;
    assert_eq!(again, want);
    assert_eq!(
        summary.objects_from_cache + summary.objects_missing_cache,
        objects
    );
}

#[tokio::test]
async fn a_cache_folder_inside_a_location_is_not_used() {
    let tree = tempfile::tempdir().unwrap();
    copy_tree(&bucket(), tree.path());
    let before = walk(tree.path());
    let folder = tree.path().join("flow-logs/cache");
    let options = cached_options(true, &folder);
    let ctx = flowsql::new_context(&[tree.path().to_str().unwrap()], &options)
        .await
        .unwrap();
    let notes = flowsql::table_notes(&ctx, TABLE).await.unwrap();
    assert!(
        notes.iter().any(|n| n.contains("the local cache is off")),
        "{notes:?}"
    );
    let sql = "SELECT count(*), sum(bytes) FROM vpc_flow_logs";
    let want = rows(&local_context(tree.path(), true).await, sql).await;
    assert_eq!(rows(&ctx, sql).await, want);
    assert_eq!(walk(tree.path()), before, "nothing written in the LOCATION");
}

#[tokio::test]
async fn a_cache_folder_that_cannot_be_made_turns_the_cache_off_with_one_note() {
    let scratch = tempfile::tempdir().unwrap();
    let not_a_folder = scratch.path().join("file");
    std::fs::write(&not_a_folder, b"not a folder").unwrap();
    let options = cached_options(true, &not_a_folder.join("cache"));
    let ctx = flowsql::new_context(&[bucket().to_str().unwrap()], &options)
        .await
        .unwrap();
    let notes = flowsql::table_notes(&ctx, TABLE).await.unwrap();
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("the local cache is off"))
            .count(),
        1,
        "{notes:?}"
    );
    let sql = "SELECT count(*), sum(bytes) FROM vpc_flow_logs";
    let report = flowsql::scan_report(&ctx, TABLE).await.unwrap();
    report.reset();
    let want = rows(&local_context(&bucket(), true).await, sql).await;
    assert_eq!(rows(&ctx, sql).await, want);
    assert!(report.summary().damaged_cache_entries.is_empty());
}

/// Writes one gzip flow-log object of `records` records under `tree`: IPv4
/// addresses but for a few IPv6 ones in the middle, some NULLs, and 500
/// interfaces in the first half, 5,000 after (a dictionary the decoder
/// makes while filling the cache stops at 4,096 values).
fn write_large_object(tree: &Path, records: usize) {
    let folder = tree.join("AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/01/02");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(
        "123456789012_vpcflowlogs_us-east-1_fl-0123456789abcdef0_20240102T0000Z_0a1b2c3d.log.gz",
    );
    let file = std::fs::File::create(path).unwrap();
    let mut gz =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    writeln!(
        gz,
        "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets \
         bytes start end action log-status"
    )
    .unwrap();
    for i in 0..records {
        let source = match i {
            _ if i % 997 == 5 => "-".to_string(),
            300_000..300_004 => format!("2001:db8::{i:x}"),
            _ => format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
        };
        let action = if i % 3 == 0 { "REJECT" } else { "ACCEPT" };
        writeln!(
            gz,
            "2 123456789012 eni-{:017x} {source} 172.16.{}.{} {} {} 6 {} {} {} {} {action} OK",
            if i < records / 2 { i % 500 } else { i % 5_000 },
            (i / 7) % 256,
            i % 251,
            1024 + i % 60_000,
            [22, 443, 3389][i % 3],
            1 + i % 90,
            (i * 7919) % 1_000_003,
            1_704_153_600 + i / 100,
            1_704_153_660 + i / 100,
        )
        .unwrap();
    }
    gz.finish().unwrap().flush().unwrap();
}

#[tokio::test]
async fn a_large_objects_columns_are_cached_in_segments_and_read_back_the_same() {
    // Every column of 400,000 records is well past the 8 MiB a writer holds
    // before it writes a segment.
    let tree = tempfile::tempdir().unwrap();
    write_large_object(tree.path(), 400_000);
    let folder = cache_folder();
    let options = cached_options(true, &folder);
    let sql = "SELECT count(*), sum(bytes), sum(packets), count(DISTINCT srcaddr), \
               min(srcaddr), max(srcaddr), count(DISTINCT dstaddr), \
               count(DISTINCT interface_id), sum(dstport), max(\"end\"), \
               count(*) FILTER (WHERE action = 'REJECT'), \
               count(*) FILTER (WHERE srcaddr LIKE '2001:%') FROM vpc_flow_logs";

    let records = read_independently(tree.path());
    let texts = |column: &str| -> std::collections::BTreeSet<&str> {
        records.iter().filter_map(|r| value(r, column)).collect()
    };
    let sum = |column: &str| -> i64 { records.iter().filter_map(|r| int(r, column)).sum() };
    let sources = texts("srcaddr");
    let expected = vec![vec![
        records.len().to_string(),
        sum("bytes").to_string(),
        sum("packets").to_string(),
        sources.len().to_string(),
        sources.first().unwrap().to_string(),
        sources.last().unwrap().to_string(),
        texts("dstaddr").len().to_string(),
        texts("interface_id").len().to_string(),
        sum("dstport").to_string(),
        records
            .iter()
            .filter_map(|r| int(r, "end"))
            .max()
            .unwrap()
            .to_string(),
        records
            .iter()
            .filter(|r| value(r, "action") == Some("REJECT"))
            .count()
            .to_string(),
        sources
            .iter()
            .filter(|s| s.starts_with("2001:"))
            .count()
            .to_string(),
    ]];

    let (filling, summary) = answer_and_summary(tree.path(), &options, sql).await;
    assert_eq!(filling, expected);
    assert_eq!(summary.objects_missing_cache, 1);
    let data_files = walk(&folder)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
        .count();
    assert!(data_files > 1, "{data_files} data files");

    let (warm, summary) = answer_and_summary(tree.path(), &options, sql).await;
    assert_eq!(warm, expected);
    assert_eq!(summary.objects_from_cache, 1);
    assert_eq!(summary.records, records.len() as u64);

    // The last segment cut short: found when the entry is opened, before
    // any record is read, so the object is read from its source instead.
    let facts = walk(&folder)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "facts"))
        .unwrap();
    let manifest = std::fs::read_to_string(&facts).unwrap();
    let last = manifest
        .lines()
        .filter_map(|line| line.strip_prefix("segment\t"))
        .next_back()
        .and_then(|rest| rest.split('\t').next())
        .expect("the manifest lists segments");
    let segment = walk(&folder)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(&format!(".{last}.arrow")))
        .unwrap();
    let length = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(length - 100)
        .unwrap();
    let (read_again, summary) = answer_and_summary(tree.path(), &options, sql).await;
    assert_eq!(read_again, expected);
    assert_eq!(summary.damaged_cache_entries.len(), 1, "{summary:?}");
    assert_eq!(summary.objects_missing_cache, 1);
    let (cached_again, summary) = answer_and_summary(tree.path(), &options, sql).await;
    assert_eq!(cached_again, expected);
    assert_eq!(summary.objects_from_cache, 1);

    // A filter on the repeating text, run in the scan on the columns as
    // they are kept, filling a new cache and then from it.
    let filtered = "SELECT count(*), sum(bytes) FROM vpc_flow_logs \
                    WHERE action = 'REJECT' AND interface_id LIKE 'eni-00000000000000f%'";
    let passing: Vec<_> = records
        .iter()
        .filter(|r| value(r, "action") == Some("REJECT"))
        .filter(|r| value(r, "interface_id").is_some_and(|i| i.starts_with("eni-00000000000000f")))
        .collect();
    let expected = vec![vec![
        passing.len().to_string(),
        passing
            .iter()
            .filter_map(|r| int(r, "bytes"))
            .sum::<i64>()
            .to_string(),
    ]];
    assert!(passing.len() > 100, "{} records pass", passing.len());
    let folder = cache_folder();
    let options = cached_options(true, &folder);
    for from_cache in [0, 1] {
        let (answer, summary) = answer_and_summary(tree.path(), &options, filtered).await;
        assert_eq!(answer, expected);
        assert_eq!(summary.objects_from_cache, from_cache);
    }
}
