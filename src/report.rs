//! What a scan saw besides rows: objects and bytes read, malformed lines,
//! header fields the table does not show. Front ends print it after each
//! statement, so nothing is dropped silently.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::decode::Reject;

/// How many malformed lines are kept as examples.
pub const MALFORMED_EXAMPLES: usize = 5;

/// One malformed line, kept as an example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLine {
    /// The object (URL or local path).
    pub object: String,
    /// 1-based line number; the header is line 1.
    pub line: u64,
    /// Why the line was skipped.
    pub reason: String,
}

/// Counters shared by every reader of one table. Reset it before a
/// statement and read it after; concurrent statements on one table share it.
#[derive(Debug, Default)]
pub struct ScanReport {
    objects_planned: AtomicU64,
    bytes_planned: AtomicU64,
    objects_finished: AtomicU64,
    objects_opened: AtomicU64,
    compressed_bytes: AtomicU64,
    records: AtomicU64,
    list_requests: AtomicU64,
    objects_listed: AtomicU64,
    details: Mutex<Details>,
}

/// How many listed prefixes are kept for `--dry-run`.
pub const LISTED_PREFIXES_KEPT: usize = 50;

#[derive(Debug, Default, Clone)]
struct Details {
    malformed: u64,
    malformed_objects: BTreeSet<String>,
    examples: Vec<MalformedLine>,
    /// (object, field) pairs for header fields the table has no column for.
    hidden_fields: BTreeSet<(String, String)>,
    /// The first prefixes listed, `/`-terminated for delimiter listings.
    listed_prefixes: Vec<String>,
}

/// A copy of a [`ScanReport`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Objects the plans of the statement will read (after pruning).
    pub objects_planned: u64,
    /// Compressed bytes of those objects.
    pub bytes_planned: u64,
    /// Objects read to the end.
    pub objects_finished: u64,
    /// Objects opened for reading.
    pub objects_opened: u64,
    /// Compressed bytes read.
    pub compressed_bytes: u64,
    /// Well-formed records decoded.
    pub records: u64,
    /// Malformed lines skipped.
    pub malformed: u64,
    /// Objects holding at least one malformed line.
    pub malformed_objects: u64,
    /// The first few malformed lines.
    pub examples: Vec<MalformedLine>,
    /// Header fields read from objects that the table shows no column for
    /// (object, field). Their values were not returned.
    pub hidden_fields: Vec<(String, String)>,
    /// LIST requests made while planning (one per prefix listed; a long
    /// listing takes one more request per 1,000 keys).
    pub list_requests: u64,
    /// Flow-log objects those listings returned, before time pruning.
    pub objects_listed: u64,
    /// The first [`LISTED_PREFIXES_KEPT`] prefixes listed: ending in `/`
    /// for one-level (delimiter) listings, else recursive.
    pub listed_prefixes: Vec<String>,
}

impl ScanReport {
    /// Clears every counter.
    pub fn reset(&self) {
        self.objects_planned.store(0, Ordering::Relaxed);
        self.bytes_planned.store(0, Ordering::Relaxed);
        self.objects_finished.store(0, Ordering::Relaxed);
        self.objects_opened.store(0, Ordering::Relaxed);
        self.compressed_bytes.store(0, Ordering::Relaxed);
        self.records.store(0, Ordering::Relaxed);
        self.list_requests.store(0, Ordering::Relaxed);
        self.objects_listed.store(0, Ordering::Relaxed);
        *self.details.lock().unwrap_or_else(|e| e.into_inner()) = Details::default();
    }

    /// A copy of the counters now.
    pub fn summary(&self) -> ScanSummary {
        let details = self
            .details
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        ScanSummary {
            objects_planned: self.objects_planned.load(Ordering::Relaxed),
            bytes_planned: self.bytes_planned.load(Ordering::Relaxed),
            objects_finished: self.objects_finished.load(Ordering::Relaxed),
            objects_opened: self.objects_opened.load(Ordering::Relaxed),
            compressed_bytes: self.compressed_bytes.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            malformed: details.malformed,
            malformed_objects: details.malformed_objects.len() as u64,
            examples: details.examples,
            hidden_fields: details.hidden_fields.into_iter().collect(),
            list_requests: self.list_requests.load(Ordering::Relaxed),
            objects_listed: self.objects_listed.load(Ordering::Relaxed),
            listed_prefixes: details.listed_prefixes,
        }
    }

    pub(crate) fn listed(&self, prefix: &str, one_level: bool) {
        self.list_requests.fetch_add(1, Ordering::Relaxed);
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        if details.listed_prefixes.len() < LISTED_PREFIXES_KEPT {
            let shown = if one_level {
                format!("{prefix}/")
            } else {
                prefix.to_string()
            };
            details.listed_prefixes.push(shown);
        }
    }

    pub(crate) fn objects_listed(&self, n: u64) {
        self.objects_listed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn planned(&self, objects: u64, bytes: u64) {
        self.objects_planned.fetch_add(objects, Ordering::Relaxed);
        self.bytes_planned.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn object_finished(&self) {
        self.objects_finished.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn object_opened(&self) {
        self.objects_opened.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_compressed_bytes(&self, n: u64) {
        self.compressed_bytes.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_records(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn malformed(&self, object: &str, line: u64, reason: &Reject) {
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details.malformed += 1;
        if !details.malformed_objects.contains(object) {
            details.malformed_objects.insert(object.to_string());
        }
        if details.examples.len() < MALFORMED_EXAMPLES {
            details.examples.push(MalformedLine {
                object: object.to_string(),
                line,
                reason: reason.to_string(),
            });
        }
    }

    pub(crate) fn hidden_field(&self, object: &str, field: &str) {
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details
            .hidden_fields
            .insert((object.to_string(), field.to_string()));
    }
}

impl ScanSummary {
    /// The warnings a user should see, one paragraph each (empty when clean).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.malformed > 0 {
            warnings.push(self.to_string());
        }
        if !self.hidden_fields.is_empty() {
            let fields: BTreeSet<&str> =
                self.hidden_fields.iter().map(|(_, f)| f.as_str()).collect();
            let (object, _) = &self.hidden_fields[0];
            warnings.push(format!(
                "warning: {} object(s) have header fields the table shows no column for ({}), e.g. {object}; \
                 their values were not returned (the table's columns are fixed when it is opened)",
                self.hidden_fields.iter().map(|(o, _)| o).collect::<BTreeSet<_>>().len(),
                fields.into_iter().collect::<Vec<_>>().join(", "),
            ));
        }
        warnings
    }
}

impl fmt::Display for ScanSummary {
    /// The malformed-line summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warning: skipped {} malformed line(s) in {} object(s) (--strict makes this an error)",
            self.malformed, self.malformed_objects
        )?;
        for example in &self.examples {
            write!(
                f,
                "\n  {} line {}: {}",
                example.object, example.line, example.reason
            )?;
        }
        if self.malformed > self.examples.len() as u64 {
            write!(
                f,
                "\n  … and {} more",
                self.malformed - self.examples.len() as u64
            )?;
        }
        Ok(())
    }
}
