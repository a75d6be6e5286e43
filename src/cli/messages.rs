//! What the command line says on stderr: errors, warnings and notes, each
//! under its prefix, and the warnings a statement's scan summary calls
//! for. The wording, flag names included, belongs here; the library hands
//! over structured data ([`ScanSummary`]).

use std::collections::BTreeSet;
use std::fmt::{self, Display};

use datafusion::common::DataFusionError;
use flowsql::{CacheOptions, CacheUsage, REJECTS_TABLE, ScanSummary};

use super::exec::RunError;

/// Prints `error: {message}`. Every error the command line reports goes
/// out through here.
pub(crate) fn print_error(message: impl Display) {
    eprintln!("error: {message}");
}

/// Prints `warning: {message}`.
pub(crate) fn print_warning(message: impl Display) {
    eprintln!("warning: {message}");
}

/// Prints `note: {message}`.
pub(crate) fn print_note(message: impl Display) {
    eprintln!("note: {message}");
}

/// What `--cache-info` and `\cache` say: where the cache is, what it
/// holds against its limit, and how often it answered.
pub(crate) fn cache_usage(cache: &CacheOptions, usage: &CacheUsage) -> String {
    let hits = match usage.hit_rate() {
        Some(rate) => format!(
            "{:.0}% of {} object read(s) answered from it",
            rate * 100.0,
            usage.hits + usage.misses
        ),
        None => "no object read through it yet".to_string(),
    };
    format!(
        "local cache: {}\n  {} object(s), {} of {}; {hits}",
        cache.folder.display(),
        usage.entries,
        super::print::human_bytes(usage.bytes),
        super::print::human_bytes(cache.max_bytes),
    )
}

/// A note per cache entry a statement found damaged.
pub(crate) fn cache_notes(summary: &ScanSummary) -> Vec<String> {
    summary
        .damaged_cache_entries
        .iter()
        .map(|(object, why)| {
            format!("the local cache's copy of {object} was damaged ({why}): removed, and the object read itself")
        })
        .collect()
}

/// Tells the user how running statements ended badly, in one-shot mode
/// and in the shell alike: `cancelled`, or the error after `{origin}: `
/// when the statements came from a named script.
pub(crate) fn print_run_error(error: &RunError, origin: Option<&str>) {
    match (error, origin) {
        (RunError::Cancelled, _) => eprintln!("cancelled"),
        (RunError::Terminated, _) => eprintln!("terminated: the statement was cancelled"),
        (RunError::Failed(e), None) => print_error(user_message(e)),
        (RunError::Failed(e), Some(origin)) => {
            print_error(format_args!("{origin}: {}", user_message(e)))
        }
    }
}

/// The message a user sees for an error: the innermost error's own words,
/// without DataFusion's category prefix where we wrote the message.
pub(crate) fn user_message(error: &DataFusionError) -> String {
    if let Some(error) = flowsql::Error::find(error) {
        return format!("{error}{}", flag_hint(error));
    }
    let message = match error.find_root() {
        DataFusionError::Execution(m)
        | DataFusionError::Configuration(m)
        | DataFusionError::Plan(m) => m.clone(),
        DataFusionError::SQL(e, _) => e.to_string(),
        root => root.to_string(),
    };
    let message = without_job_wrapping(message);
    // DataFusion lists every column after an unknown name; with some 75
    // flow-log columns that buries the message (`\d TABLE` lists them).
    match message.split_once("\nValid fields are") {
        Some((first, _)) => first.to_string(),
        None => message,
    }
}

/// A failed Ballista job's error (`Job ID failed: DataFusion error:
/// Execution error: WHY`, as text from the scheduler; a task's error is
/// in it as `Debug` text, `...Execution("WHY")...`) as `WHY (cluster job
/// ID)`.
fn without_job_wrapping(message: String) -> String {
    const WRAPPERS: [&str; 5] = [
        "DataFusion error: ",
        "Execution error: ",
        "External error: ",
        "Error during planning: ",
        "Internal error: ",
    ];
    let Some((job, mut why)) = message
        .strip_prefix("Job ")
        .and_then(|rest| rest.split_once(" failed: "))
    else {
        return message;
    };
    while let Some(inner) = WRAPPERS.iter().find_map(|w| why.strip_prefix(w)) {
        why = inner;
    }
    let why = match innermost_execution_message(why) {
        Some(inner) => inner,
        None => why.trim_end().to_string(),
    };
    format!("{why} (cluster job {job})")
}

/// The message of the innermost `Execution("...")` in `Debug` text.
fn innermost_execution_message(text: &str) -> Option<String> {
    const OPENING: &str = "Execution(\"";
    let start = text.rfind(OPENING)? + OPENING.len();
    let mut message = String::new();
    let mut chars = text[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(message),
            '\\' => match chars.next()? {
                'n' => message.push('\n'),
                'r' => message.push('\r'),
                't' => message.push('\t'),
                '0' => message.push('\0'),
                'u' => {
                    // `\u{1b}`
                    let code: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    message.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
                }
                other => message.push(other),
            },
            c => message.push(c),
        }
    }
    None
}

/// What the command line offers for one of the library's errors, after
/// the library's own words.
fn flag_hint(error: &flowsql::Error) -> &'static str {
    use flowsql::{Error, StoreProblem};
    let problem = match error {
        Error::Bucket { problem, .. }
        | Error::Listing { problem, .. }
        | Error::Unreadable { problem, .. }
        | Error::Unwritable { problem, .. } => problem,
        _ => return "",
    };
    match problem {
        StoreProblem::NoCredentials { .. } => ", or pass --no-sign-request for a public bucket",
        StoreProblem::UnknownRegion { .. } => "; give it with --region or AWS_REGION",
        StoreProblem::WrongRegion => ": pass its region with --region",
        _ => "",
    }
}

/// The warnings a statement's scan calls for, one paragraph each, without
/// the `warning: ` prefix (empty when the scan was clean): malformed lines
/// skipped, bad objects passed over, header fields the table has no column
/// for.
pub(crate) fn scan_warnings(summary: &ScanSummary) -> Vec<String> {
    let mut warnings = Vec::new();
    if summary.malformed > 0 {
        warnings.push(Malformed(summary).to_string());
    }
    if !summary.skipped_objects.is_empty() {
        let mut warning = format!(
            "skipped {} bad object(s) (--skip-bad-objects); the answer leaves out what they hold",
            summary.skipped_objects.len()
        );
        for skipped in &summary.skipped_objects {
            warning.push_str(&format!("\n  {}", skipped.reason));
            if skipped.records_before > 0 {
                warning.push_str(&format!(
                    " ({} record(s) read before the fault are included)",
                    skipped.records_before
                ));
            }
        }
        warnings.push(warning);
    }
    if summary.objects_skipped_on_executors > 0 {
        warnings.push(format!(
            "the cluster's executors skipped {} bad object(s) (--skip-bad-objects); the answer \
             leaves out what they hold (run without --cluster to see which)",
            summary.objects_skipped_on_executors
        ));
    }
    if !summary.hidden_fields.is_empty() {
        let fields: BTreeSet<&str> = summary
            .hidden_fields
            .iter()
            .map(|(_, f)| f.as_str())
            .collect();
        let (object, _) = &summary.hidden_fields[0];
        warnings.push(format!(
            "{} object(s) have header fields the table shows no column for ({}), e.g. {object}; \
             their values were not returned (the table's columns are fixed when it is opened; \
             these fields are remembered, so the next run over these locations has columns for them)",
            summary
                .hidden_fields
                .iter()
                .map(|(o, _)| o)
                .collect::<BTreeSet<_>>()
                .len(),
            fields.into_iter().collect::<Vec<_>>().join(", "),
        ));
    }
    warnings
}

/// The malformed-line warning: counts, then the examples the summary kept.
struct Malformed<'a>(&'a ScanSummary);

impl Display for Malformed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = self.0;
        if summary.counted_on_executors {
            // The executors count malformed lines; they keep no text.
            return write!(
                f,
                "the cluster's executors skipped {} malformed line(s) in {} object(s); \
                 {REJECTS_TABLE} lists them only without --cluster (--strict makes this an error)",
                summary.malformed, summary.malformed_objects
            );
        }
        write!(
            f,
            "skipped {} malformed line(s) in {} object(s); see them with SELECT * FROM {REJECTS_TABLE} (--strict makes this an error)",
            summary.malformed, summary.malformed_objects
        )?;
        for example in &summary.examples {
            write!(
                f,
                "\n  {} line {}: {}",
                example.object, example.line, example.reason
            )?;
        }
        if summary.malformed > summary.examples.len() as u64 {
            write!(
                f,
                "\n  … and {} more",
                summary.malformed - summary.examples.len() as u64
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use flowsql::{MalformedLine, SkippedObject};

    use super::*;

    #[test]
    fn a_failed_cluster_job_says_why_first() {
        let message = "Job 038J2FVEFJ000 failed: DataFusion error: Execution error: \
                       flowsql-executor on vm cannot read /data/AWSLogs";
        assert_eq!(
            without_job_wrapping(message.to_string()),
            "flowsql-executor on vm cannot read /data/AWSLogs (cluster job 038J2FVEFJ000)"
        );
        let from_a_task = "Job failed due to stage 0 failed: Task failed due to runtime \
                           execution error: DataFusionError(Shared(External(DataFusionError(\
                           Execution(\"s3://b/AWSLogs/x.log.gz: \\\"quoted\\\"\")))))\n";
        assert_eq!(
            without_job_wrapping(format!("Job 038J failed: {from_a_task}")),
            "s3://b/AWSLogs/x.log.gz: \"quoted\" (cluster job 038J)"
        );
        let message = "a\r\n\u{1b}[0m\0\\\"'";
        let debug = format!("Job 7 failed: Execution({message:?})");
        assert_eq!(
            without_job_wrapping(debug),
            format!("{message} (cluster job 7)")
        );
        let plain = "Job titles are not columns";
        assert_eq!(without_job_wrapping(plain.to_string()), plain);
    }

    #[test]
    fn a_clean_scan_has_no_warnings() {
        assert!(scan_warnings(&ScanSummary::default()).is_empty());
    }

    #[test]
    fn malformed_lines_name_the_rejects_table_and_strict() {
        let example = |line| MalformedLine {
            object: "a.log.gz".to_string(),
            line,
            reason: "malformed line: expected 14 fields, found 3".to_string(),
            text: String::new(),
        };
        let summary = ScanSummary {
            malformed: 7,
            malformed_objects: 1,
            examples: vec![example(2), example(5)],
            ..ScanSummary::default()
        };
        assert_eq!(
            scan_warnings(&summary),
            [
                "skipped 7 malformed line(s) in 1 object(s); see them with SELECT * FROM flowsql_rejects (--strict makes this an error)\n  \
                 a.log.gz line 2: malformed line: expected 14 fields, found 3\n  \
                 a.log.gz line 5: malformed line: expected 14 fields, found 3\n  \
                 … and 5 more"
            ]
        );
    }

    #[test]
    fn skipped_objects_and_hidden_fields() {
        let summary = ScanSummary {
            skipped_objects: vec![
                SkippedObject {
                    object: "a.log.gz".to_string(),
                    reason: "a.log.gz is not valid gzip data".to_string(),
                    records_before: 3,
                },
                SkippedObject {
                    object: "b.log.gz".to_string(),
                    reason: "b.log.gz is empty".to_string(),
                    records_before: 0,
                },
            ],
            hidden_fields: vec![
                ("c.log.gz".to_string(), "tcp-flags".to_string()),
                ("c.log.gz".to_string(), "type".to_string()),
                ("d.log.gz".to_string(), "tcp-flags".to_string()),
            ],
            ..ScanSummary::default()
        };
        assert_eq!(
            scan_warnings(&summary),
            [
                "skipped 2 bad object(s) (--skip-bad-objects); the answer leaves out what they hold\n  \
                 a.log.gz is not valid gzip data (3 record(s) read before the fault are included)\n  \
                 b.log.gz is empty",
                "2 object(s) have header fields the table shows no column for (tcp-flags, type), e.g. c.log.gz; \
                 their values were not returned (the table's columns are fixed when it is opened; \
                 these fields are remembered, so the next run over these locations has columns for them)",
            ]
        );
    }
}
