//! What a cluster task's scans read, as it travels back to the client: in
//! the task's metrics (named counters, which Ballista's scheduler sums over
//! a stage's tasks), then into the client's [`ScanReport`](super::ScanReport).

use super::ScanSummary;

/// The counts of one or more tasks' scans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TaskCounts {
    pub(crate) objects_opened: u64,
    pub(crate) objects_finished: u64,
    pub(crate) compressed_bytes: u64,
    pub(crate) records: u64,
    pub(crate) objects_listed: u64,
    pub(crate) list_requests: u64,
    pub(crate) malformed: u64,
    pub(crate) malformed_objects: u64,
    pub(crate) skipped_objects: u64,
}

impl TaskCounts {
    /// The counts of `summary` (a task's own report).
    pub(crate) fn of(summary: &ScanSummary) -> Self {
        Self {
            objects_opened: summary.objects_opened,
            objects_finished: summary.objects_finished,
            compressed_bytes: summary.compressed_bytes,
            records: summary.records,
            objects_listed: summary.objects_listed,
            list_requests: summary.list_requests,
            malformed: summary.malformed,
            malformed_objects: summary.malformed_objects,
            skipped_objects: summary.skipped_objects.len() as u64,
        }
    }

    /// Each count with the name of its metric. The names start with
    /// `flowsql_` so they are told apart from DataFusion's own metrics.
    pub(crate) fn named(&self) -> [(&'static str, u64); 9] {
        [
            ("flowsql_objects_read", self.objects_opened),
            ("flowsql_objects_finished", self.objects_finished),
            ("flowsql_compressed_bytes", self.compressed_bytes),
            ("flowsql_records", self.records),
            ("flowsql_objects_listed", self.objects_listed),
            ("flowsql_list_requests", self.list_requests),
            ("flowsql_malformed_lines", self.malformed),
            ("flowsql_malformed_objects", self.malformed_objects),
            ("flowsql_objects_skipped", self.skipped_objects),
        ]
    }

    fn counts_mut(&mut self) -> [&mut u64; 9] {
        [
            &mut self.objects_opened,
            &mut self.objects_finished,
            &mut self.compressed_bytes,
            &mut self.records,
            &mut self.objects_listed,
            &mut self.list_requests,
            &mut self.malformed,
            &mut self.malformed_objects,
            &mut self.skipped_objects,
        ]
    }

    /// Adds `value` to the count whose metric is `name`; false (and no
    /// change) when `name` is not one of them.
    pub(crate) fn add_named(&mut self, name: &str, value: u64) -> bool {
        let names = self.named().map(|(name, _)| name);
        match names.iter().position(|n| *n == name) {
            Some(i) => {
                *self.counts_mut()[i] += value;
                true
            }
            None => false,
        }
    }

    /// Each count of `self` plus that of `other`.
    pub(crate) fn plus(&self, other: &Self) -> Self {
        let mut sum = *self;
        for ((_, more), count) in other.named().iter().zip(sum.counts_mut()) {
            *count += more;
        }
        sum
    }

    /// What `self` counted beyond `earlier`, an earlier copy of the same
    /// counts (none where `self` counted less).
    pub(crate) fn since(&self, earlier: &Self) -> Self {
        let mut delta = *self;
        for ((_, before), now) in earlier.named().iter().zip(delta.counts_mut()) {
            *now = now.saturating_sub(*before);
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_by_name_and_differences_are_per_count() {
        let mut total = TaskCounts::default();
        for (i, (name, _)) in TaskCounts::default().named().iter().enumerate() {
            assert!(total.add_named(name, i as u64 + 1));
        }
        assert!(!total.add_named("output_rows", 5));
        assert_eq!(total.objects_opened, 1);
        assert_eq!(total.skipped_objects, 9);
        let mut later = total;
        later.add_named("flowsql_compressed_bytes", 100);
        let delta = later.since(&total);
        assert_eq!(delta.compressed_bytes, 100);
        assert_eq!(
            TaskCounts {
                compressed_bytes: 0,
                ..delta
            },
            TaskCounts::default()
        );
        assert_eq!(total.plus(&delta), later);
        // A count that went back adds nothing.
        assert_eq!(TaskCounts::default().since(&later), TaskCounts::default());
    }
}
