//! What a scan saw besides rows: objects and bytes read, malformed lines,
//! header fields the table does not show, as structured data. Front ends
//! word it as warnings after each statement (the command line's wording is
//! in `src/cli/messages.rs`), so nothing is dropped silently.

pub(crate) mod field_memory;
pub(crate) mod rejects;
pub(crate) mod task_counts;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::cache::entry::KeptReject;
use field_memory::FieldMemory;
use task_counts::TaskCounts;

/// The name the rejects table is registered under.
pub const REJECTS_TABLE: &str = "flowsql_rejects";

/// How many malformed lines a [`ScanSummary`] carries as examples.
pub(crate) const MALFORMED_EXAMPLES: usize = 5;

/// How many malformed lines are kept, with their text, for the
/// `flowsql_rejects` table; past it they are only counted.
pub(crate) const REJECTS_KEPT: usize = 10_000;

/// How much of a malformed line's text is kept (the rest is cut at a
/// character boundary), so kept lines stay small even at [`REJECTS_KEPT`].
pub(crate) const REJECT_TEXT_BYTES: usize = 4096;

/// One malformed line that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLine {
    /// The object (URL or local path).
    pub object: String,
    /// 1-based line number; the header is line 1.
    pub line: u64,
    /// Why the line was skipped.
    pub reason: String,
    /// The line's text (bytes that are not UTF-8 shown as U+FFFD), at most
    /// 4 KiB of it.
    pub text: String,
}

/// An object given up on under
/// [`FlowLogOptions::skip_bad_objects`](crate::FlowLogOptions::skip_bad_objects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedObject {
    /// The object (URL or local path).
    pub object: String,
    /// What was wrong with it.
    pub reason: String,
    /// Records read from it before the fault; they are in the result.
    pub records_before: u64,
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
    objects_from_cache: AtomicU64,
    objects_missing_cache: AtomicU64,
    bytes_from_cache: AtomicU64,
    records: AtomicU64,
    list_requests: AtomicU64,
    objects_listed: AtomicU64,
    shards_planned: AtomicU64,
    shards_done: AtomicU64,
    details: Mutex<Details>,
    /// Where header fields without a column are remembered for the next
    /// opening, if anywhere.
    field_memory: Option<Arc<FieldMemory>>,
    /// The columns some object's header or footer records, from the
    /// objects sampled at opening and every object read since (`None`
    /// until one is); kept across statements.
    recorded: Mutex<Option<BTreeSet<String>>>,
}

/// How many listed prefixes are kept, for a dry run to show.
pub(crate) const LISTED_PREFIXES_KEPT: usize = 50;

#[derive(Debug, Default, Clone)]
struct Details {
    malformed: u64,
    malformed_objects: BTreeSet<String>,
    /// The first [`REJECTS_KEPT`] malformed lines.
    rejected: Vec<MalformedLine>,
    /// `rejected` of the last statement that read objects, kept by `reset`.
    previous_rejected: Vec<MalformedLine>,
    skipped_objects: Vec<SkippedObject>,
    /// (object, field) pairs for header fields the table has no column for.
    hidden_fields: BTreeSet<(String, String)>,
    /// The first prefixes listed, `/`-terminated for delimiter listings.
    listed_prefixes: Vec<String>,
    /// (object, why) for cache entries found damaged, removed, and read
    /// from the source instead.
    damaged_cache_entries: Vec<(String, String)>,
    /// What a cluster's executors counted, by name only: objects with
    /// malformed lines and objects skipped.
    malformed_objects_on_executors: u64,
    skipped_on_executors: u64,
    counted_on_executors: bool,
    executor_counts_missing: bool,
}

/// A copy of a [`ScanReport`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Objects the statement's scans have listed for reading so far (after
    /// pruning; the listing runs while objects are read).
    pub objects_planned: u64,
    /// Compressed bytes of those objects.
    pub bytes_planned: u64,
    /// Objects read to the end.
    pub objects_finished: u64,
    /// Objects opened for reading.
    pub objects_opened: u64,
    /// Compressed bytes read.
    pub compressed_bytes: u64,
    /// Objects read from the local cache instead of their source (counted
    /// in `objects_opened` too).
    pub objects_from_cache: u64,
    /// Text objects read from their source while the cache was in use
    /// (the cache did not hold them, or not all the columns read).
    pub objects_missing_cache: u64,
    /// The listed (compressed) sizes of the objects read from the cache:
    /// bytes not read.
    pub bytes_from_cache: u64,
    /// Well-formed records decoded.
    pub records: u64,
    /// Malformed lines skipped.
    pub malformed: u64,
    /// Objects holding at least one malformed line.
    pub malformed_objects: u64,
    /// The first few malformed lines.
    pub examples: Vec<MalformedLine>,
    /// Objects given up on under
    /// [`FlowLogOptions::skip_bad_objects`](crate::FlowLogOptions::skip_bad_objects).
    pub skipped_objects: Vec<SkippedObject>,
    /// Header fields read from objects that the table shows no column for
    /// (object, field). Their values were not returned.
    pub hidden_fields: Vec<(String, String)>,
    /// LIST requests the statement made: one per prefix listed, and one
    /// more per further 1,000 keys and folders a listing returned.
    pub list_requests: u64,
    /// Flow-log objects those listings returned, before time pruning.
    pub objects_listed: u64,
    /// The first 50 prefixes listed: ending in `/`
    /// for one-level (delimiter) listings, else recursive.
    pub listed_prefixes: Vec<String>,
    /// Cache entries found damaged (object, why): removed, and the object
    /// read from its source instead.
    pub damaged_cache_entries: Vec<(String, String)>,
    /// Whether the counts include what a cluster's executors read (whose
    /// malformed lines and skipped objects are counted, not named).
    pub counted_on_executors: bool,
    /// Objects a cluster's executors skipped under
    /// [`FlowLogOptions::skip_bad_objects`](crate::FlowLogOptions::skip_bad_objects).
    pub objects_skipped_on_executors: u64,
    /// On a cluster, whether the scheduler could not give what a finished
    /// job's executors read: the counts are then only those progress
    /// showed, if any, and may be short.
    pub executor_counts_missing: bool,
    /// On a cluster, the running statement's shards (the tasks of its
    /// scans); while it runs, the counts above are those of the finished
    /// ones.
    pub shards_planned: u64,
    /// Of those, the shards finished.
    pub shards_done: u64,
}

impl ScanReport {
    /// A report that also remembers, in `memory`, the header fields it is
    /// told have no column.
    pub(crate) fn remembering_fields(memory: Option<Arc<FieldMemory>>) -> Self {
        Self {
            field_memory: memory,
            ..Self::default()
        }
    }

    /// Clears every counter, to start a statement. The malformed lines of
    /// the statement before, if it read any objects, stay available to
    /// [`ScanReport::last_statement_rejects`].
    pub fn reset(&self) {
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        let previous = if self.objects_opened.load(Ordering::Relaxed) > 0 {
            std::mem::take(&mut details.rejected)
        } else {
            std::mem::take(&mut details.previous_rejected)
        };
        *details = Details {
            previous_rejected: previous,
            ..Details::default()
        };
        drop(details);
        self.objects_planned.store(0, Ordering::Relaxed);
        self.bytes_planned.store(0, Ordering::Relaxed);
        self.objects_finished.store(0, Ordering::Relaxed);
        self.objects_opened.store(0, Ordering::Relaxed);
        self.compressed_bytes.store(0, Ordering::Relaxed);
        self.objects_from_cache.store(0, Ordering::Relaxed);
        self.objects_missing_cache.store(0, Ordering::Relaxed);
        self.bytes_from_cache.store(0, Ordering::Relaxed);
        self.records.store(0, Ordering::Relaxed);
        self.list_requests.store(0, Ordering::Relaxed);
        self.objects_listed.store(0, Ordering::Relaxed);
        self.shards_planned.store(0, Ordering::Relaxed);
        self.shards_done.store(0, Ordering::Relaxed);
    }

    /// A copy of the counters now.
    pub fn summary(&self) -> ScanSummary {
        let details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        ScanSummary {
            objects_planned: self.objects_planned.load(Ordering::Relaxed),
            bytes_planned: self.bytes_planned.load(Ordering::Relaxed),
            objects_finished: self.objects_finished.load(Ordering::Relaxed),
            objects_opened: self.objects_opened.load(Ordering::Relaxed),
            compressed_bytes: self.compressed_bytes.load(Ordering::Relaxed),
            objects_from_cache: self.objects_from_cache.load(Ordering::Relaxed),
            objects_missing_cache: self.objects_missing_cache.load(Ordering::Relaxed),
            bytes_from_cache: self.bytes_from_cache.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            malformed: details.malformed,
            malformed_objects: details.malformed_objects.len() as u64
                + details.malformed_objects_on_executors,
            examples: details
                .rejected
                .iter()
                .take(MALFORMED_EXAMPLES)
                .cloned()
                .collect(),
            skipped_objects: details.skipped_objects.clone(),
            hidden_fields: details.hidden_fields.iter().cloned().collect(),
            list_requests: self.list_requests.load(Ordering::Relaxed),
            objects_listed: self.objects_listed.load(Ordering::Relaxed),
            listed_prefixes: details.listed_prefixes.clone(),
            damaged_cache_entries: details.damaged_cache_entries.clone(),
            counted_on_executors: details.counted_on_executors,
            objects_skipped_on_executors: details.skipped_on_executors,
            executor_counts_missing: details.executor_counts_missing,
            shards_planned: self.shards_planned.load(Ordering::Relaxed),
            shards_done: self.shards_done.load(Ordering::Relaxed),
        }
    }

    /// The malformed lines of the most recent statement that read objects:
    /// those since the last reset if anything has been read since, else
    /// those of the statement before it.
    pub fn last_statement_rejects(&self) -> Vec<MalformedLine> {
        let details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        if self.objects_opened.load(Ordering::Relaxed) > 0 {
            details.rejected.clone()
        } else {
            details.previous_rejected.clone()
        }
    }

    /// Counts one listing of `prefix` (as a user would write it: a URL, or
    /// an absolute local path), one level deep or recursive.
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

    /// Counts the further pages of a listing that returned `entries` keys
    /// and folders: S3 answers 1,000 per request.
    pub(crate) fn listed_entries(&self, entries: usize) {
        let more_pages = entries.saturating_sub(1) / 1000;
        self.list_requests
            .fetch_add(more_pages as u64, Ordering::Relaxed);
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

    /// An object read from the cache; `listed_bytes` is its size in the store.
    pub(crate) fn object_from_cache(&self, listed_bytes: u64) {
        self.objects_from_cache.fetch_add(1, Ordering::Relaxed);
        self.bytes_from_cache
            .fetch_add(listed_bytes, Ordering::Relaxed);
    }

    /// A text object read from its source while the cache was in use.
    pub(crate) fn object_missing_cache(&self) {
        self.objects_missing_cache.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn damaged_cache_entry(&self, object: &str, why: String) {
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details
            .damaged_cache_entries
            .push((object.to_string(), why));
    }

    pub(crate) fn add_records(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
    }

    /// A malformed line as the report keeps it (and the cache stores it).
    pub(crate) fn malformed(&self, object: &str, reject: &KeptReject) {
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details.malformed += 1;
        if !details.malformed_objects.contains(object) {
            details.malformed_objects.insert(object.to_string());
        }
        if details.rejected.len() < REJECTS_KEPT {
            details.rejected.push(MalformedLine {
                object: object.to_string(),
                line: reject.line,
                reason: reject.reason.clone(),
                text: reject.text.clone(),
            });
        }
    }

    /// Adds what a cluster's executors counted for a statement.
    pub(crate) fn add_from_executors(&self, counts: &TaskCounts) {
        self.objects_opened
            .fetch_add(counts.objects_opened, Ordering::Relaxed);
        self.objects_finished
            .fetch_add(counts.objects_finished, Ordering::Relaxed);
        self.compressed_bytes
            .fetch_add(counts.compressed_bytes, Ordering::Relaxed);
        self.records.fetch_add(counts.records, Ordering::Relaxed);
        self.objects_listed
            .fetch_add(counts.objects_listed, Ordering::Relaxed);
        self.list_requests
            .fetch_add(counts.list_requests, Ordering::Relaxed);
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details.malformed += counts.malformed;
        details.malformed_objects_on_executors += counts.malformed_objects;
        details.skipped_on_executors += counts.skipped_objects;
        details.counted_on_executors = true;
    }

    /// Notes that the scheduler could not give what a finished job's
    /// executors read.
    pub(crate) fn executor_counts_missing(&self) {
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details.executor_counts_missing = true;
    }

    /// How many of a running statement's `planned` shards are `done`.
    pub(crate) fn shards(&self, planned: u64, done: u64) {
        self.shards_planned.store(planned, Ordering::Relaxed);
        self.shards_done.store(done, Ordering::Relaxed);
    }

    pub(crate) fn skipped_object(&self, object: &str, reason: String, records_before: u64) {
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details.skipped_objects.push(SkippedObject {
            object: object.to_string(),
            reason,
            records_before,
        });
    }

    /// Notes the fields one object records (header tokens or column
    /// names).
    pub(crate) fn fields_recorded<'a>(&self, fields: impl IntoIterator<Item = &'a str>) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        let recorded = recorded.get_or_insert_with(BTreeSet::new);
        for field in fields {
            let name = crate::catalogue::column_name(field);
            if !recorded.contains(&name) {
                recorded.insert(name);
            }
        }
    }

    /// The columns that the header or footer of some object seen so far
    /// records (sampled when the table opened, or read by a statement);
    /// `None` while no object has been seen. A column outside it is NULL in
    /// every record seen.
    pub fn recorded_columns(&self) -> Option<BTreeSet<String>> {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn hidden_field(&self, object: &str, field: &str) {
        if let Some(memory) = &self.field_memory
            && crate::catalogue::can_be_extra_column(field)
        {
            memory.remember(field);
        }
        let mut details = self.details.lock().unwrap_or_else(|e| e.into_inner());
        details
            .hidden_fields
            .insert((object.to_string(), field.to_string()));
    }
}

/// The first [`REJECT_TEXT_BYTES`] of a line as text.
pub(crate) fn kept_text(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(REJECT_TEXT_BYTES + 4)]);
    text[..text.floor_char_boundary(REJECT_TEXT_BYTES)].to_string()
}
