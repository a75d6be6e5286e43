//! The real `flowsql` binary, run as a process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

fn flowsql(args: &[&str]) -> Output {
    flowsql_command().args(args).output().expect("run flowsql")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_stderr_contains(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(needle),
        "expected {needle:?} in stderr:\n{stderr}"
    );
}

/// Creates `root/AWSLogs/111122223333/vpcflowlogs/us-east-1/{date}` (date
/// as `2024/03/01`) and returns it.
fn day_folder(root: &Path, date: &str) -> PathBuf {
    let day = root
        .join("AWSLogs/111122223333/vpcflowlogs/us-east-1")
        .join(date);
    std::fs::create_dir_all(&day).unwrap();
    day
}

/// `day/111122223333_vpcflowlogs_us-east-1_fl-1_{yyyymmdd}T{time}Z_{hash}.log.gz`,
/// its date read from the day folder's path.
fn object_path(day: &Path, time: &str, hash: &str) -> PathBuf {
    let mut parts: Vec<&str> = day
        .iter()
        .rev()
        .take(3)
        .map(|p| p.to_str().unwrap())
        .collect();
    parts.reverse();
    let date = parts.concat();
    day.join(format!(
        "111122223333_vpcflowlogs_us-east-1_fl-1_{date}T{time}Z_{hash}.log.gz"
    ))
}

/// A clean fixture object with several records.
fn clean_fixture_object() -> PathBuf {
    walk(&bucket())
        .into_iter()
        .find(|p| p.to_str().unwrap().contains("_9c8b7a6f"))
        .unwrap()
}

#[test]
fn one_shot_csv_count_matches_an_independent_reading() {
    let want = read_independently(&bucket()).len();
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-c",
        "SELECT count(*) AS n FROM vpc_flow_logs",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("n\n{want}\n"));
    assert!(
        text(&out.stderr).contains("1 row(s)"),
        "timing line: {}",
        text(&out.stderr)
    );
}

#[test]
fn csv_writes_null_as_empty_and_dates_as_iso() {
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "--format",
        "csv",
        "-c",
        "SELECT date, hour, log_status, bytes FROM vpc_flow_logs WHERE log_status = 'SKIPDATA' AND flow_log_id = 'fl-0a1b2c3d4e5f60001'",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "date,hour,log_status,bytes\n2024-01-15,,SKIPDATA,\n"
    );
    assert_eq!(text(&out.stderr), "", "-q prints nothing else");
}

#[test]
fn several_statements_and_table_name() {
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "--table",
        "flows",
        "--format",
        "csv",
        "-q",
        "-c",
        "SELECT count(*) AS a FROM flows WHERE action = 'REJECT'; SELECT count(DISTINCT aws_region) AS b FROM flows",
        "-c",
        "SELECT 1 AS c",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = read_independently(&bucket());
    let rejects = records
        .iter()
        .filter(|r| value(r, "action") == Some("REJECT"))
        .count();
    let regions: std::collections::BTreeSet<_> =
        records.iter().map(|r| value(r, "aws_region")).collect();
    assert_eq!(
        text(&out.stdout),
        format!("a\n{rejects}\nb\n{}\nc\n1\n", regions.len())
    );
}

#[test]
fn table_format_prints_a_grid() {
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "-c",
        "SELECT aws_region, count(*) AS n FROM vpc_flow_logs GROUP BY aws_region ORDER BY aws_region",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for record in read_independently(&bucket()) {
        *counts
            .entry(value(&record, "aws_region").unwrap().to_string())
            .or_default() += 1;
    }
    let w_region = counts
        .keys()
        .map(String::len)
        .max()
        .unwrap()
        .max("aws_region".len());
    let w_n = counts.values().map(|n| n.to_string().len()).max().unwrap();
    let rule = format!("+{}+{}+", "-".repeat(w_region + 2), "-".repeat(w_n + 2));
    let mut want = vec![
        rule.clone(),
        format!("| {:w_region$} | {:w_n$} |", "aws_region", "n"),
        rule.clone(),
    ];
    for (region, n) in &counts {
        want.push(format!("| {region:w_region$} | {n:>w_n$} |"));
    }
    want.push(rule);
    assert_eq!(text(&out.stdout), want.join("\n") + "\n");
}

#[test]
fn malformed_lines_are_skipped_counted_and_named() {
    let location = data("malformed");
    let out = flowsql(&[
        location.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n FROM vpc_flow_logs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n\n2\n");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped 2 malformed line(s) in 1 object(s)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("_20240201T0000Z_55555555.log.gz line 3: expected 14 fields"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4: `http` is not a valid srcport"),
        "{stderr}"
    );
}

#[test]
fn skipped_lines_are_queryable_in_flowsql_rejects_until_the_next_read() {
    // The malformed fixture object, and beside it a clean one on another day.
    let dir = tempfile::tempdir().unwrap();
    let malformed = walk(&data("malformed")).pop().unwrap();
    let below = malformed
        .to_str()
        .unwrap()
        .split("/malformed/")
        .nth(1)
        .unwrap();
    let object = dir.path().join(below);
    std::fs::create_dir_all(object.parent().unwrap()).unwrap();
    std::fs::copy(&malformed, &object).unwrap();
    let clean_day = day_folder(dir.path(), "2024/02/02");
    std::fs::copy(
        clean_fixture_object(),
        object_path(&clean_day, "0000", "00000000"),
    )
    .unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&object).unwrap()),
        &mut content,
    )
    .unwrap();
    let lines: Vec<&str> = content.lines().collect();

    let out = flowsql(&[
        dir.path().to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n FROM vpc_flow_logs WHERE date = DATE '2024-02-01'",
        // Reads no object, so what the rejects table shows stays.
        "-c",
        "SELECT 1 AS one",
        "-c",
        "SELECT object, line, reason, text FROM flowsql_rejects ORDER BY line",
        "-c",
        "SELECT count(*) AS n FROM flowsql_rejects",
        // Reads the clean object only: nothing skipped, the table empties.
        "-c",
        "SELECT count(*) > 0 AS some FROM vpc_flow_logs WHERE date = DATE '2024-02-02'",
        "-c",
        "SELECT count(*) AS n FROM flowsql_rejects",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout.lines().collect();
    let object = object.to_str().unwrap();
    assert_eq!(rows[..4], ["n", "2", "one", "1"], "{stdout}");
    assert_eq!(rows[4], "object,line,reason,text");
    assert!(
        rows[5].starts_with(&format!(
            "{object},3,\"expected 14 fields as the header says, found 13\","
        )),
        "{stdout}"
    );
    assert!(rows[5].ends_with(lines[2]), "{stdout}");
    assert!(rows[6].starts_with(&format!("{object},4,")), "{stdout}");
    assert!(rows[6].ends_with(lines[3]), "{stdout}");
    assert_eq!(rows[7..], ["n", "2", "some", "true", "n", "0"], "{stdout}");
    assert_stderr_contains(&out, "SELECT * FROM flowsql_rejects");
}

#[test]
fn skip_bad_objects_passes_over_each_bad_object_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let day = day_folder(dir.path(), "2024/03/01");
    let bytes = std::fs::read(clean_fixture_object()).unwrap();
    let name = |t: &str, h: &str| object_path(&day, t, h);
    std::fs::write(name("0000", "00000000"), &bytes).unwrap();
    let count_of = |args: &[&str]| -> (Output, u64) {
        let mut all = vec![dir.path().to_str().unwrap(), "-q", "--format", "csv"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-c", "SELECT count(*) AS n FROM vpc_flow_logs"]);
        let out = flowsql(&all);
        let n = text(&out.stdout)
            .lines()
            .nth(1)
            .map_or(0, |n| n.parse().unwrap());
        (out, n)
    };
    let (_, good) = count_of(&[]);
    assert!(good > 0);

    // Cut mid-stream, so some records come before the fault.
    let truncated = name("0005", "11111111");
    std::fs::write(&truncated, &bytes[..bytes.len() * 3 / 4]).unwrap();
    std::fs::write(name("0010", "22222222"), b"").unwrap();
    std::fs::write(name("0015", "33333333"), b"version log-status\n2 OK\n").unwrap();
    let mut not_a_header = Vec::new();
    {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(&mut not_a_header, flate2::Compression::fast());
        gz.write_all(b"<html>AccessDenied</html>\n").unwrap();
        gz.finish().unwrap();
    }
    std::fs::write(name("0020", "44444444"), &not_a_header).unwrap();

    let (out, n) = count_of(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "without the flag a bad object fails"
    );
    assert_eq!(n, 0);

    let (out, n) = count_of(&["--skip-bad-objects"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("skipped 4 bad object(s)"), "{stderr}");
    for h in ["11111111", "22222222", "33333333", "44444444"] {
        assert!(stderr.contains(&format!("_{h}.log.gz")), "{h}: {stderr}");
    }
    assert!(!stderr.contains("_00000000.log.gz"), "{stderr}");
    // The records read from the truncated object before the fault are
    // counted in the answer and said in the warning.
    let truncated_line = stderr
        .lines()
        .find(|l| l.contains("_11111111.log.gz"))
        .unwrap();
    let before: u64 = truncated_line
        .rsplit_once(" (")
        .map(|(_, tail)| tail.split(' ').next().unwrap().parse().unwrap())
        .unwrap_or(0);
    assert_eq!(n, good + before, "{stderr}");
    assert!(before < good, "{stderr}");
}

/// Gzips `text` into [`object_path`]`(day, time, hash)`.
fn write_object(day: &Path, time: &str, hash: &str, text: &[u8]) -> PathBuf {
    let path = object_path(day, time, hash);
    write_members(&path, &[text], flate2::Compression::fast());
    path
}

#[test]
fn odd_text_is_read_as_the_bad_input_rules_say() {
    let dir = tempfile::tempdir().unwrap();
    let day = day_folder(dir.path(), "2024/03/01");
    let header = "version account-id srcport bytes log-status";
    // CRLF endings, runs of spaces, trailing spaces, a blank line.
    write_object(
        &day,
        "0000",
        "00000000",
        format!("{header}\r\n2 111122223333 22 10 OK\r\n2  111122223333   80 20 OK   \r\n\r\n2 111122223333 - - NODATA\r\n").as_bytes(),
    );
    // Header only.
    write_object(&day, "0005", "11111111", format!("{header}\n").as_bytes());
    // A non-UTF-8 line, then an 8 MB line with no newline at the end.
    let mut content = format!("{header}\n2 111122223333 443 30 OK\n").into_bytes();
    content.extend_from_slice(b"2 111122223333 \xff 1 OK\n2 111122223333 443 40 OK\n2 ");
    content.extend(std::iter::repeat_n(b'9', 8 << 20));
    write_object(&day, "0010", "22222222", &content);
    // A field the table has no column for: no flow-log version documents
    // it, and no earlier run over this folder met it.
    let old_day = day_folder(dir.path(), "2024/02/01");
    write_object(
        &old_day,
        "0000",
        "33333333",
        format!("{header} brand-new-field\n2 111122223333 53 50 OK x\n").as_bytes(),
    );

    let out = flowsql(&[
        dir.path().to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n, sum(bytes) AS b, count(srcport) AS ports FROM vpc_flow_logs",
        "-c",
        "SELECT line, reason, length(text) AS len FROM flowsql_rejects ORDER BY object, line",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // Rows: 3 from the CRLF object, 2 good ones after the bad, 1 old.
    assert_eq!(lines[..2], ["n,b,ports", "6,150,5"], "{stdout}");
    assert_eq!(lines[2], "line,reason,len");
    // 15 characters, U+FFFD for the bad byte, 5 more.
    assert_eq!(lines[3], "3,the line is not UTF-8 text,21", "{stdout}");
    assert_eq!(
        lines[4], "5,the line is longer than 65536 bytes,4096",
        "{stdout}"
    );
    assert_eq!(lines.len(), 5, "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("skipped 2 malformed line(s) in 1 object(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("brand-new-field"), "{stderr}");
    assert!(stderr.contains("_33333333.log.gz"), "{stderr}");
}

#[test]
fn a_field_no_version_documents_is_named_then_remembered_as_a_column() {
    let dir = tempfile::tempdir().unwrap();
    let header = "version account-id srcport bytes log-status";
    // An old object has the field; the newest day does not.
    let old_day = day_folder(dir.path(), "2024/02/01");
    let old = write_object(
        &old_day,
        "0000",
        "33333333",
        format!("{header} brand-new-field\n2 111122223333 53 50 OK x\n").as_bytes(),
    );
    let new_day = day_folder(dir.path(), "2024/03/01");
    write_object(
        &new_day,
        "0000",
        "44444444",
        format!("{header}\n2 111122223333 80 20 OK\n").as_bytes(),
    );
    let location = dir.path().to_str().unwrap();

    let first = flowsql(&[
        location,
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n, sum(bytes) AS b FROM vpc_flow_logs",
    ]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(text(&first.stdout), "n,b\n2,70\n");
    let stderr = text(&first.stderr);
    let object_name = old.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains("brand-new-field") && stderr.contains(object_name),
        "{stderr}"
    );

    // The next run over the same folder has the column, and no warning.
    let second = flowsql(&[
        location,
        "--format",
        "csv",
        "-c",
        "SELECT brand_new_field, bytes FROM vpc_flow_logs ORDER BY bytes",
    ]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout), "brand_new_field,bytes\n,20\nx,50\n");
    assert!(
        !text(&second.stderr).contains("brand-new-field"),
        "{}",
        text(&second.stderr)
    );
}

/// Writes `text` gzipped as the given members, each at `level`.
fn write_members(path: &Path, members: &[&[u8]], level: flate2::Compression) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    for member in members {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
        gz.write_all(member).unwrap();
        file.write_all(&gz.finish().unwrap()).unwrap();
    }
}

#[test]
fn every_gzip_shape_gives_the_same_rows() {
    // Small single-member objects are inflated whole; two members, or an
    // object too large to hold whole, stream. All must read alike.
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    let mut content = format!("{header}\n");
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut sources = std::collections::BTreeSet::new();
    for i in 0u64..100_000 {
        let source = format!("10.{}.{}.{}", i % 7, (i / 7) % 256, i % 251);
        let size = (i * 7919) % 100_000;
        content.push_str(&format!(
            "2 111122223333 eni-0a1b2c3d {source} 172.31.{}.{} {} 443 6 {} {size} 1709251200 1709251260 ACCEPT OK\n",
            i % 256,
            (i * 3) % 256,
            1024 + i % 60_000,
            i % 90 + 1,
        ));
        records += 1;
        bytes += size;
        sources.insert(source);
    }
    if content.len() % 2 == 1 {
        content.insert(content.len() - 1, ' '); // a trailing space is allowed
    }
    let content = content.into_bytes();
    // Two members of equal length, split inside a line: the trailer of the
    // last then also fits the first, so only reading to the end of the
    // object finds the second.
    let middle = content.len() / 2;
    let dir = tempfile::tempdir().unwrap();
    let one = object_path(&day_folder(dir.path(), "2024/03/01"), "0000", "aaaaaaaa");
    write_members(&one, &[&content], flate2::Compression::fast());
    let two = object_path(&day_folder(dir.path(), "2024/03/02"), "0000", "bbbbbbbb");
    write_members(
        &two,
        &[&content[..middle], &content[middle..]],
        flate2::Compression::fast(),
    );
    let large = object_path(&day_folder(dir.path(), "2024/03/03"), "0000", "cccccccc");
    write_members(&large, &[&content], flate2::Compression::none());
    assert!(
        std::fs::metadata(&large).unwrap().len() > 8 << 20,
        "the stored object must exceed the 8 MiB whole-object limit"
    );

    let out = flowsql(&[
        dir.path().to_str().unwrap(),
        "-q",
        "--format",
        "csv",
        "-c",
        "SELECT date, count(*) AS n, sum(bytes) AS b, count(DISTINCT srcaddr) AS s \
         FROM vpc_flow_logs GROUP BY date ORDER BY date",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = |date: &str| format!("{date},{records},{bytes},{}", sources.len());
    assert_eq!(
        text(&out.stdout),
        format!(
            "date,n,b,s\n{}\n{}\n{}\n",
            want("2024-03-01"),
            want("2024-03-02"),
            want("2024-03-03")
        )
    );
}

#[test]
fn flowsql_never_writes_to_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for file in walk(&bucket()) {
        let to = tree.join(file.strip_prefix(bucket()).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
    let snapshot = || -> Vec<(PathBuf, u64, std::time::SystemTime, Vec<u8>)> {
        walk(&tree)
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).unwrap();
                let bytes = std::fs::read(&p).unwrap();
                (p, meta.len(), meta.modified().unwrap(), bytes)
            })
            .collect()
    };
    let before = snapshot();
    let output = dir.path().join("out.parquet");
    for args in [
        vec!["-c", "SELECT * FROM vpc_flow_logs"],
        vec!["-c", "SHOW PARTITIONS vpc_flow_logs"],
        vec!["-c", "MSCK REPAIR TABLE vpc_flow_logs"],
        vec!["--dry-run", "-c", "SELECT count(*) FROM vpc_flow_logs"],
        vec![
            "-o",
            output.to_str().unwrap(),
            "-c",
            "SELECT * FROM vpc_flow_logs",
        ],
    ] {
        let mut all = vec![tree.to_str().unwrap(), "-q"];
        all.extend(args);
        let out = flowsql(&all);
        assert!(out.status.success(), "{all:?}: {}", text(&out.stderr));
    }
    assert!(output.exists());
    let after = snapshot();
    assert_eq!(before.len(), after.len(), "files appeared in the location");
    assert!(before == after, "a file in the location changed");
}

#[test]
fn sql_that_opens_with_a_comment_is_sql_not_a_flag() {
    let location = bucket();
    let sql = "-- top talkers\nSELECT count(*) AS n FROM vpc_flow_logs WHERE log_status = 'OK'";
    let expected = flowsql(&[
        location.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS n FROM vpc_flow_logs WHERE log_status = 'OK'",
    ]);
    assert!(expected.status.success(), "{}", text(&expected.stderr));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.sql");
    std::fs::write(&file, format!("{sql};\n")).unwrap();
    for how in [
        vec!["-c", sql],
        vec!["--command", sql],
        vec!["-f", file.to_str().unwrap()],
    ] {
        let mut args = vec![location.to_str().unwrap(), "--format", "csv"];
        args.extend(how.iter().copied());
        let out = flowsql(&args);
        assert!(out.status.success(), "{how:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), text(&expected.stdout), "{how:?}");
    }
}

#[test]
fn dry_run_shows_local_prefixes_as_paths() {
    let location = bucket();
    let out = flowsql(&[
        location.to_str().unwrap(),
        "-q",
        "--dry-run",
        "-c",
        "SELECT count(*) FROM vpc_flow_logs WHERE date = DATE '2024-01-16'",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let absolute = std::fs::canonicalize(&location).unwrap();
    let listed: Vec<&str> = stdout.lines().skip(1).map(str::trim).collect();
    assert!(!listed.is_empty(), "{stdout}");
    for prefix in listed {
        assert!(
            prefix.starts_with(absolute.to_str().unwrap()) || prefix.starts_with('…'),
            "{prefix} is not a path under {}",
            absolute.display()
        );
    }
}

#[test]
fn strict_makes_the_first_malformed_line_an_error() {
    let location = data("malformed");
    let out = flowsql(&[
        location.to_str().unwrap(),
        "--strict",
        "-c",
        "SELECT count(*) FROM vpc_flow_logs",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("_20240201T0000Z_55555555.log.gz line 3: malformed line: expected 14 fields"),
        "{stderr}"
    );
}

#[test]
fn bad_locations_and_bad_sql_fail_with_one_clear_line() {
    let out = flowsql(&["/no/such/folder", "-c", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: location `/no/such/folder` does not exist"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let empty = tempfile::tempdir().unwrap();
    let out = flowsql(&[empty.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_stderr_contains(&out, "holds no flow logs");

    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-c",
        "SELECT nonexistent FROM vpc_flow_logs",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_stderr_contains(&out, "nonexistent");

    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "--param",
        "a=b",
        "-c",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_contains(&out, "--param goes with --saved");
}

#[test]
fn corrupt_and_empty_objects_are_errors_naming_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let day = day_folder(dir.path(), "2024/03/01");
    let empty = object_path(&day, "0000", "aaaaaaaa");
    std::fs::write(&empty, b"").unwrap();
    let out = flowsql(&[
        dir.path().to_str().unwrap(),
        "-c",
        "SELECT count(*) FROM vpc_flow_logs",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("_20240301T0000Z_aaaaaaaa.log.gz is empty"),
        "{stderr}"
    );

    // Truncate a real object to half its bytes.
    let bytes = std::fs::read(clean_fixture_object()).unwrap();
    std::fs::write(&empty, &bytes[..bytes.len() / 2]).unwrap();
    let out = flowsql(&[
        dir.path().to_str().unwrap(),
        "-c",
        "SELECT count(*) FROM vpc_flow_logs",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("_aaaaaaaa.log.gz is not valid gzip data"),
        "{stderr}"
    );

    std::fs::write(&empty, b"version log-status\n2 OK\n").unwrap();
    let out = flowsql(&[
        dir.path().to_str().unwrap(),
        "-c",
        "SELECT count(*) FROM vpc_flow_logs",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_stderr_contains(&out, "_aaaaaaaa.log.gz is not valid gzip data");
}

#[test]
fn every_output_format() {
    let sql = "SELECT date, hour, log_status, bytes FROM vpc_flow_logs WHERE log_status = 'SKIPDATA' AND flow_log_id = 'fl-0a1b2c3d4e5f60001'";
    let run = |format: &str| {
        let out = flowsql(&[
            bucket().to_str().unwrap(),
            "-q",
            "--format",
            format,
            "-c",
            sql,
        ]);
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(
        run("tsv"),
        "date\thour\tlog_status\tbytes\n2024-01-15\t\tSKIPDATA\t\n"
    );
    assert_eq!(
        run("ndjson"),
        "{\"date\":\"2024-01-15\",\"hour\":null,\"log_status\":\"SKIPDATA\",\"bytes\":null}\n"
    );
    assert_eq!(
        run("json"),
        "[{\"date\":\"2024-01-15\",\"hour\":null,\"log_status\":\"SKIPDATA\",\"bytes\":null}]\n"
    );
}

#[test]
fn maxrows_says_how_many_rows_were_not_shown() {
    let total = read_independently(&bucket()).len();
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "--maxrows",
        "3",
        "-c",
        "SELECT srcaddr FROM vpc_flow_logs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("| ")).count(),
        4,
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{total} rows, 3 shown ({} not shown", total - 3)),
        "{stdout}"
    );
}

#[test]
fn output_files_take_their_format_from_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let want = read_independently(&bucket()).len();
    let csv = dir.path().join("out.csv");
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "-o",
        csv.to_str().unwrap(),
        "-c",
        "SELECT count(*) AS n FROM vpc_flow_logs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        format!("n\n{want}\n")
    );

    let parquet = dir.path().join("out.parquet");
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "-o",
        parquet.to_str().unwrap(),
        "-c",
        "SELECT * FROM vpc_flow_logs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = std::fs::File::open(&parquet).unwrap();
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, want);

    // A failing statement leaves no file behind.
    let failed = dir.path().join("failed.json");
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-o",
        failed.to_str().unwrap(),
        "-c",
        "SELECT nope FROM vpc_flow_logs",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!failed.exists());
    assert!(!dir.path().join("failed.json.partial").exists());

    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-o",
        dir.path().join("x.bin").to_str().unwrap(),
        "-c",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_contains(&out, "add --format");
}

#[test]
fn script_files_and_saved_queries() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("report.sql");
    std::fs::write(
        &script,
        "-- two statements\nSELECT count(*) AS rejected FROM vpc_flow_logs WHERE action = 'REJECT';\n\nSELECT count(DISTINCT flow_log_id) AS flow_logs FROM vpc_flow_logs;\n",
    )
    .unwrap();
    let records = read_independently(&bucket());
    let rejected = records
        .iter()
        .filter(|r| value(r, "action") == Some("REJECT"))
        .count();
    let flow_logs: std::collections::BTreeSet<_> =
        records.iter().map(|r| value(r, "flow_log_id")).collect();
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "--format",
        "csv",
        "-f",
        script.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("rejected\n{rejected}\nflow_logs\n{}\n", flow_logs.len())
    );

    let to = records
        .iter()
        .filter(|r| value(r, "dstaddr") == Some("10.0.0.62"))
        .count();
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "--format",
        "csv",
        "--saved",
        "traffic_to_destination",
        "--param",
        "dst_addr=10.0.0.62",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let flows: usize = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(flows, to);

    let out = flowsql(&[bucket().to_str().unwrap(), "--saved", "no_such_query"]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_contains(&out, "no saved query named `no_such_query`");
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "--saved",
        "top_talkers",
        "--param",
        "x=1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_contains(&out, "has no parameter `x`");
}

#[test]
fn a_failing_statement_in_a_script_names_the_script_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.sql");
    std::fs::write(
        &script,
        "SELECT nope FROM vpc_flow_logs;\nSELECT 1 AS after;\n",
    )
    .unwrap();
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "-f",
        script.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {}: ", script.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_location_without_flow_logs_gives_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("AWSLogs/111122223333/CloudTrail")).unwrap();
    let out = flowsql(&[dir.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("holds no flow-log files"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Flow-log folders without flow-log objects hold no flow-log files
    // either: an empty region, a day of other files.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(
        dir.path()
            .join("AWSLogs/111122223333/vpcflowlogs/eu-west-1"),
    )
    .unwrap();
    let day = dir
        .path()
        .join("AWSLogs/111122223333/vpcflowlogs/us-east-1/2024/01/15");
    std::fs::create_dir_all(&day).unwrap();
    let name = "111122223333_vpcflowlogs_us-east-1_fl-1_20240115T0000Z_abcd1234.log";
    std::fs::write(day.join(format!("{name}.txt")), b"notes").unwrap();
    let out = flowsql(&[dir.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("holds no flow-log files"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A Parquet delivery's objects are flow-log files: the location opens.
    std::fs::write(day.join(format!("{name}.parquet")), b"PAR1").unwrap();
    let out = flowsql(&[dir.path().to_str().unwrap(), "-c", "SELECT 1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The opening samples each region's newest day, which may hold no flow
/// log: the tree is then searched further, and opens with every record of
/// its older days.
#[test]
fn flow_logs_older_than_an_empty_newest_day_open_the_location() {
    let source = "us-east-1/2024/01/15/111122223333_vpcflowlogs_us-east-1_fl-0a1b2c3d4e5f60002_20240115T0300Z_9c8b7a6f.log.gz";
    let regions = bucket().join("flow-logs/AWSLogs/111122223333/vpcflowlogs");
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("AWSLogs/111122223333/vpcflowlogs");
    let copied = tree.join(source);
    std::fs::create_dir_all(copied.parent().unwrap()).unwrap();
    std::fs::copy(regions.join(source), &copied).unwrap();
    let newest = tree.join("us-east-1/2024/02/01");
    std::fs::create_dir_all(&newest).unwrap();
    std::fs::write(newest.join("notes.txt"), b"not a flow log").unwrap();
    let count = |location: &str, filter: &str| {
        let sql = format!("SELECT count(*) FROM vpc_flow_logs{filter}");
        let out = flowsql(&[location, "--no-cache", "--format", "csv", "-c", &sql]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let whole = count(dir.path().to_str().unwrap(), "");
    // The same object, read where the sample tree keeps it.
    let original = count(
        bucket().join("flow-logs").to_str().unwrap(),
        " WHERE aws_region = 'us-east-1' AND flow_log_id = 'fl-0a1b2c3d4e5f60002' \
         AND file_time = TIMESTAMP '2024-01-15 03:00:00'",
    );
    assert_eq!(whole, original);
    assert_ne!(whole.lines().nth(1), Some("0"), "{whole}");
}

#[test]
fn statements_piped_in_run_as_a_script() {
    use std::io::Write;
    let mut child = flowsql_command()
        .args([bucket().to_str().unwrap(), "-q", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n\nFROM vpc_flow_logs\nWHERE hour = 23;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = read_independently(&bucket())
        .iter()
        .filter(|r| value(r, "hour") == Some("23"))
        .count();
    assert_eq!(text(&out.stdout), format!("n\n{want}\n"));
}

#[test]
fn athena_statements_show_partitions_msck_and_set_session() {
    // SHOW PARTITIONS: one row per account, region, day and hour folder
    // holding flow-log objects, with the object count, as a walk finds them.
    let mut want: std::collections::BTreeMap<(String, String, String, String), usize> =
        Default::default();
    for file in walk(&bucket()) {
        let path = file.to_str().unwrap();
        if !path.ends_with(".log.gz")
            || !path.contains("vpcflowlogs/") && !path.contains("aws-service=vpcflowlogs/")
        {
            continue;
        }
        let below = path.split("/AWSLogs/").nth(1).unwrap();
        let parts: Vec<String> = below
            .split('/')
            .map(|s| s.split_once('=').map_or(s, |(_, v)| v).to_string())
            .collect();
        let hour = if parts.len() == 8 {
            parts[6].parse::<u32>().unwrap().to_string()
        } else {
            String::new()
        };
        let key = (
            parts[0].clone(),
            parts[2].clone(),
            format!("{}-{}-{}", parts[3], parts[4], parts[5]),
            hour,
        );
        *want.entry(key).or_default() += 1;
    }
    let want: String = want
        .iter()
        .map(|((a, r, d, h), n)| format!("{a},{r},{d},{h},{n}\n"))
        .collect();
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "--format",
        "csv",
        "-c",
        "SHOW PARTITIONS vpc_flow_logs",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: String = text(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n")
        .collect();
    assert_eq!(got, want);

    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "--format",
        "csv",
        "-c",
        "MSCK REPAIR TABLE vpc_flow_logs; SET SESSION query_max_run_time = '10m'; \
         SET SESSION datafusion.execution.batch_size = 1024; SHOW datafusion.execution.batch_size",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "name,value\ndatafusion.execution.batch_size,1024\n"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("note: MSCK REPAIR TABLE has nothing to do"),
        "{stderr}"
    );
    assert!(
        stderr.contains("note: SET SESSION query_max_run_time accepted"),
        "{stderr}"
    );
}

#[test]
fn ip_addresses_print_as_text_and_alike_named_casts_get_athena_names() {
    let bucket = bucket();
    // Every output format sees text, not the 16 stored bytes.
    for format in ["csv", "json"] {
        let out = flowsql(&[
            bucket.to_str().unwrap(),
            "-q",
            "--format",
            format,
            "-c",
            "SELECT CAST(srcaddr AS IPADDRESS), CAST(srcaddr AS varchar) FROM vpc_flow_logs \
             WHERE srcaddr = '2001:db8:1234:a100:8d6e:3477:df66:f105' LIMIT 1",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        match format {
            "csv" => assert_eq!(
                stdout,
                "_col0,_col1\n2001:db8:1234:a100:8d6e:3477:df66:f105,2001:db8:1234:a100:8d6e:3477:df66:f105\n"
            ),
            _ => assert!(
                stdout.contains(r#""_col0":"2001:db8:1234:a100:8d6e:3477:df66:f105""#),
                "{stdout}"
            ),
        }
    }
}

#[test]
fn a_high_cardinality_group_by_spills_under_a_memory_limit_with_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let spec = flowsql::internals::generate::TreeSpec {
        days: 1,
        ..flowsql::internals::generate::TreeSpec::default()
    };
    flowsql::internals::generate::generate_tree(dir.path(), &spec, 2).unwrap();
    // About 1.4 million groups from 1.44 million records: the hash table
    // outgrows 64 MiB (unlimited, the process peaks near 210 MB), so the
    // aggregation spills.
    // One partition: with two, which stream gets the memory first varies,
    // and DataFusion's greedy pool can fail a 64M run (seen once in CI).
    let sql = "SET datafusion.execution.target_partitions = 1; \
               SELECT srcaddr, dstaddr, count(*) AS n, sum(bytes) AS b FROM vpc_flow_logs \
               GROUP BY 1, 2 ORDER BY b DESC, 1, 2 LIMIT 20";
    let run = |extra: &[&str]| {
        let mut args = vec![
            dir.path().to_str().unwrap(),
            "-q",
            "--format",
            "csv",
            "-c",
            sql,
        ];
        args.extend_from_slice(extra);
        let out = flowsql(&args);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let unlimited = run(&[]);
    assert_eq!(unlimited.lines().count(), 21);
    assert_eq!(run(&["--memory-limit", "64M"]), unlimited);
}

/// `--chart` over the sample tree, with the given locale and size.
fn chart(sql: &str, lang: &str, columns: usize, lines: usize) -> (Output, String) {
    let out = flowsql_command()
        .env("LANG", lang)
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("COLUMNS", columns.to_string())
        .env("LINES", lines.to_string())
        .args([bucket().to_str().unwrap(), "-q", "--chart", "-c", sql])
        .output()
        .expect("run flowsql");
    let drawn = text(&out.stdout);
    for line in drawn.lines() {
        assert!(
            line.chars().count() <= columns,
            "wider than {columns}: {line:?}"
        );
    }
    (out, drawn)
}

#[test]
fn chart_draws_results_to_the_terminals_size_and_locale() {
    let records = read_independently(&bucket());
    let accepted = records
        .iter()
        .filter(|r| value(r, "action") == Some("ACCEPT"))
        .count();
    let sql = "SELECT action, count(*) AS flows FROM vpc_flow_logs \
               WHERE action IS NOT NULL GROUP BY 1 ORDER BY 1";
    let (out, drawn) = chart(sql, "C.UTF-8", 50, 10);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(drawn.starts_with("█ flows\n"), "{drawn}");
    let accept = drawn.lines().find(|l| l.starts_with("ACCEPT │")).unwrap();
    assert!(accept.ends_with(&format!(" {accepted}")), "{accept}");
    // No UTF-8 locale: the same chart in ASCII.
    let (_, ascii) = chart(sql, "C", 50, 10);
    assert!(ascii.is_ascii() && ascii.contains("ACCEPT |#"), "{ascii}");

    // Times make bars over time, within the height.
    let (out, drawn) = chart(
        "SELECT date_trunc('hour', from_unixtime(start)) AS hour, count(*) AS flows, \
         sum(bytes) AS bytes FROM vpc_flow_logs WHERE start IS NOT NULL GROUP BY 1 ORDER BY 1",
        "C.UTF-8",
        60,
        16,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(drawn.lines().count() <= 16, "{drawn}");
    assert!(
        drawn.contains("    flows\n") && drawn.contains("    bytes\n"),
        "{drawn}"
    );
    assert!(drawn.contains(" MiB ┤") && drawn.contains("└──"), "{drawn}");

    // A result with nothing to draw says so and fails.
    let (out, _) = chart(
        "SELECT action FROM vpc_flow_logs LIMIT 1",
        "C.UTF-8",
        50,
        10,
    );
    assert!(!out.status.success());
    assert_stderr_contains(&out, "no chart: a chart needs two columns");
    // --chart draws in the terminal only.
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "--chart",
        "-o",
        "x.csv",
        "-c",
        "SELECT 1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_stderr_contains(&out, "--chart draws in the terminal");
}

/// What Python (xml.etree, Pillow) reads in a chart file: its lines of
/// `name<TAB>value`, gathered by name.
fn read_image(python: &str, path: &Path) -> std::collections::HashMap<String, Vec<String>> {
    let script = r##"
import sys, xml.etree.ElementTree as ET
path = sys.argv[1]
if path.endswith(".svg"):
    root = ET.parse(path).getroot()
    for t in root.iter():
        if t.tag.endswith("text") and t.text and t.text.strip():
            print("text\t" + t.text.strip())
    fills = [r.get("fill") for r in root.iter() if r.tag.endswith("rect")]
    bars = [f for f in fills if f and f.upper() not in ("#FFFFFF", "WHITE", "NONE")]
    print("bars\t%d" % len(bars))
else:
    from PIL import Image
    image = Image.open(path)
    image.load()
    pixels = image.convert("RGB").getdata()
    print("format\t" + image.format)
    print("size\t%dx%d" % image.size)
    print("colored\t%d" % sum(1 for (r, g, b) in pixels if max(r, g, b) - min(r, g, b) > 60))
    print("dark\t%d" % sum(1 for (r, g, b) in pixels if max(r, g, b) < 100))
"##;
    let out = Command::new(python)
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut read = std::collections::HashMap::<String, Vec<String>>::new();
    for line in text(&out.stdout).lines() {
        let (name, value) = line.split_once('\t').unwrap();
        read.entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    read
}

#[test]
fn charts_are_written_as_svg_and_png_files() {
    let python = test_python();
    let dir = tempfile::tempdir().unwrap();
    let by_action = "SELECT action, count(*) AS flows, sum(bytes) AS bytes FROM vpc_flow_logs \
                     WHERE action IS NOT NULL GROUP BY 1 ORDER BY 1";
    let over_time = "SELECT date_trunc('hour', from_unixtime(start)) AS hour, count(*) AS flows \
                     FROM vpc_flow_logs WHERE start IS NOT NULL GROUP BY 1 ORDER BY 1";
    let hours = read_independently(&bucket())
        .iter()
        .filter_map(|r| int(r, "start"))
        .map(|start| start / 3600)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let run = |sql: &str, file: &str| {
        let path = dir.path().join(file);
        let out = flowsql(&[
            bucket().to_str().unwrap(),
            "-q",
            "-o",
            path.to_str().unwrap(),
            "-c",
            sql,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        path
    };

    let number = |read: &std::collections::HashMap<String, Vec<String>>, name: &str| -> usize {
        read[name][0].parse().unwrap()
    };
    let svg = read_image(&python, &run(by_action, "actions.svg"));
    let texts = &svg["text"];
    for label in ["flows", "bytes", "ACCEPT", "REJECT", "action"] {
        assert!(texts.iter().any(|t| t == label), "{label} not in {texts:?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.ends_with(" KiB") || t.ends_with(" MiB")),
        "{texts:?}"
    );
    // Two series, a bar for each action in each.
    assert_eq!(number(&svg, "bars"), 4, "{svg:?}");

    let svg = read_image(&python, &run(over_time, "hours.svg"));
    assert_eq!(number(&svg, "bars"), hours, "a bar per hour: {svg:?}");
    let texts = &svg["text"];
    assert!(
        texts.iter().any(|t| t.starts_with("2024-01-15")) && texts.iter().any(|t| t == "hour"),
        "{texts:?}"
    );

    let png = read_image(&python, &run(by_action, "actions.png"));
    assert_eq!(png["format"], ["PNG"]);
    assert_eq!(png["size"], ["1000x640"], "two panels of 320 pixels");
    // Coloured bars, and dark text and axes, on white.
    assert!(number(&png, "colored") > 10_000, "{png:?}");
    assert!(number(&png, "dark") > 1_000, "{png:?}");

    // What makes no chart writes no file.
    let path = dir.path().join("none.png");
    let out = flowsql(&[
        bucket().to_str().unwrap(),
        "-q",
        "-o",
        path.to_str().unwrap(),
        "-c",
        "SELECT action FROM vpc_flow_logs",
    ]);
    assert!(!out.status.success());
    assert_stderr_contains(&out, "no chart: a chart needs two columns");
    assert!(!path.exists() && !dir.path().join("none.png.partial").exists());
}

/// The decoder at every instruction level this machine has (capped with
/// `FLOWSQL_MAX_SIMD`, as on a processor without the higher ones) reads a
/// generated tree as an independent reading does: the SSE2 and AVX2 code
/// runs end to end here even on an AVX-512 machine.
#[test]
fn every_instruction_level_reads_the_records_an_independent_reading_finds() {
    use chrono::NaiveDate;
    use flowsql::internals::generate::{TreeSpec, generate_tree};

    let dir = tempfile::tempdir().unwrap();
    let spec = TreeSpec {
        accounts: vec!["111122223333".into()],
        regions: vec!["eu-west-1".into()],
        first_day: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        days: 1,
        files_per_day: 3,
        records_per_file: 4000,
        ..TreeSpec::default()
    };
    generate_tree(dir.path(), &spec, 2).unwrap();
    let records = read_independently(dir.path());
    let sum = |column: &str| -> i64 { records.iter().filter_map(|r| int(r, column)).sum() };
    let rejected_https = records
        .iter()
        .filter(|r| value(r, "action") == Some("REJECT") && int(r, "dstport") == Some(443))
        .count();
    let sources: std::collections::BTreeSet<_> =
        records.iter().filter_map(|r| value(r, "srcaddr")).collect();
    let want = format!(
        "{},{},{},{},{}",
        records.len(),
        sum("bytes"),
        sum("packets"),
        sum("srcport"),
        sources.len()
    );
    let sql = "SELECT count(*), sum(bytes), sum(packets), sum(srcport), count(DISTINCT srcaddr) \
               FROM vpc_flow_logs";
    let filtered = "SELECT count(*) FROM vpc_flow_logs WHERE action = 'REJECT' AND dstport = 443";
    for level in ["sse2", "avx2", "avx512"] {
        let run = |sql: &str| {
            let out = flowsql_command()
                .env("FLOWSQL_MAX_SIMD", level)
                .args([
                    dir.path().to_str().unwrap(),
                    "-q",
                    "--format",
                    "csv",
                    "-c",
                    sql,
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{level}: {}", text(&out.stderr));
            text(&out.stdout).lines().nth(1).unwrap().to_string()
        };
        assert_eq!(run(sql), want, "at {level}");
        assert_eq!(run(filtered), rejected_https.to_string(), "at {level}");
    }
}

/// `flowsql` with the cache folder `cache` (its own, not the tests' shared one).
fn flowsql_cached(cache: &Path, args: &[&str]) -> Output {
    flowsql_command()
        .env("XDG_CACHE_HOME", cache)
        .args(args)
        .output()
        .expect("run flowsql")
}

#[test]
fn the_cache_flags_show_clear_and_bypass_the_local_cache() {
    let cache = tempfile::tempdir().unwrap();
    let location = bucket();
    let location = location.to_str().unwrap();
    let info = |cache: &Path| text(&flowsql_cached(cache, &["--cache-info"]).stdout);
    assert!(
        info(cache.path()).contains("0 object(s)"),
        "{}",
        info(cache.path())
    );
    assert!(info(cache.path()).contains("no object read through it yet"));

    let sql = "SELECT action, count(*), sum(bytes) FROM vpc_flow_logs GROUP BY 1 ORDER BY 1";
    let first = flowsql_cached(cache.path(), &[location, "--format", "csv", "-c", sql]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(!text(&first.stderr).contains("from the local cache"));
    // The objects the table reads (the fixture also holds other files).
    let objects: usize = text(&first.stderr)
        .split("read ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line: {}", text(&first.stderr)));
    let second = flowsql_cached(cache.path(), &[location, "--format", "csv", "-c", sql]);
    assert_eq!(text(&second.stdout), text(&first.stdout));
    assert_stderr_contains(
        &second,
        &format!("read {objects} object(s) ({objects} from the local cache), 0 B compressed"),
    );
    let shown = info(cache.path());
    assert!(shown.contains(&format!("{objects} object(s), ")), "{shown}");
    assert!(
        shown.contains(&format!("50% of {} object read(s)", 2 * objects)),
        "{shown}"
    );

    // --no-cache neither reads nor fills it: a new column is not added.
    let bypass = flowsql_cached(
        cache.path(),
        &[
            location,
            "--no-cache",
            "--format",
            "csv",
            "-c",
            "SELECT count(DISTINCT srcaddr) FROM vpc_flow_logs",
        ],
    );
    assert!(bypass.status.success(), "{}", text(&bypass.stderr));
    let files_before = walk(cache.path()).len();
    let bypass = flowsql_cached(cache.path(), &[location, "--no-cache", "-c", sql]);
    assert!(!text(&bypass.stderr).contains("from the local cache"));
    assert_eq!(walk(cache.path()).len(), files_before);

    let cleared = flowsql_cached(cache.path(), &["--clear-cache"]);
    assert!(cleared.status.success());
    assert!(
        text(&cleared.stdout).contains(&format!("{objects} object(s)")),
        "{}",
        text(&cleared.stdout)
    );
    assert!(info(cache.path()).contains("0 object(s)"));

    let usage = flowsql_cached(
        cache.path(),
        &[location, "--no-cache", "--cache-size", "1G", "-c", sql],
    );
    assert_eq!(usage.status.code(), Some(2));
    assert_stderr_contains(&usage, "--cache-size goes without --no-cache");
}

#[test]
fn two_processes_fill_and_read_one_cache_at_once() {
    let cache = tempfile::tempdir().unwrap();
    let location = bucket();
    let location = location.to_str().unwrap();
    let queries = [
        "SELECT * FROM vpc_flow_logs ORDER BY flow_log_id, file_time, start, srcaddr, dstaddr, srcport, dstport, interface_id, bytes",
        "SELECT srcaddr, dstaddr, action, sum(bytes) FROM vpc_flow_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    ];
    let want: Vec<String> = queries
        .iter()
        .map(|sql| {
            text(&flowsql(&[location, "-q", "--no-cache", "--format", "csv", "-c", sql]).stdout)
        })
        .collect();
    for _ in 0..3 {
        let runs: Vec<_> = queries
            .iter()
            .flat_map(|sql| [sql, sql])
            .map(|sql| {
                flowsql_command()
                    .env("XDG_CACHE_HOME", cache.path())
                    .args([location, "-q", "--format", "csv", "-c", sql])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (i, run) in runs.into_iter().enumerate() {
            let out = run.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), want[i / 2], "{}", queries[i / 2]);
        }
    }
}
