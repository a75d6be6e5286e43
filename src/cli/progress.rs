//! A live progress line on stderr for statements that run longer than half
//! a second; it is erased before the result prints.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowsql::{ScanReport, ScanSummary};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::print::{human_bytes, truncate};

const FIRST_DRAW_AFTER: Duration = Duration::from_millis(500);
const REDRAW_EVERY: Duration = Duration::from_millis(200);

/// A running progress line.
pub(crate) struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts drawing from `report` once the statement has run for half a second.
    pub(crate) fn start(report: Arc<ScanReport>, started: Instant) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut drawn = false;
            let mut wait = FIRST_DRAW_AFTER.saturating_sub(started.elapsed());
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                let line = progress_line(&report.summary(), started.elapsed());
                let width = terminal_size::terminal_size_of(std::io::stderr())
                    .map_or(100, |(w, _)| usize::from(w.0));
                let line = truncate(&line, width.saturating_sub(1));
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
                drawn = true;
                wait = REDRAW_EVERY;
            }
            if drawn {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
            }
        });
        Self { stop, task }
    }

    /// Stops drawing and erases the line.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// `37/672 objects, 15.2 MiB of 277.5 MiB, 550000 rows, 1.2s, about 20s left`
/// Objects read from the local cache count as their listed size done.
pub(crate) fn progress_line(summary: &ScanSummary, elapsed: Duration) -> String {
    if summary.shards_planned > 0 {
        return cluster_progress_line(summary, elapsed);
    }
    let done_bytes = summary.compressed_bytes + summary.bytes_from_cache;
    let mut line = format!(
        "{}/{} objects, {} of {}, {} rows, {:.1}s",
        summary.objects_finished,
        summary.objects_planned,
        human_bytes(done_bytes),
        human_bytes(summary.bytes_planned),
        summary.records,
        elapsed.as_secs_f64()
    );
    if summary.bytes_planned > 0 && done_bytes > 0 {
        let done = done_bytes as f64 / summary.bytes_planned as f64;
        if done < 1.0 {
            let left = elapsed.as_secs_f64() * (1.0 - done) / done;
            line.push_str(&format!(", about {left:.0}s left"));
        }
    }
    line
}

/// `3/14 shards, 37 objects, 15.2 MiB read, 550000 rows, 1.2s, about 4s left`:
/// on a cluster, the counts of the scan tasks (shards) finished so far,
/// and a guess from their share.
fn cluster_progress_line(summary: &ScanSummary, elapsed: Duration) -> String {
    let mut line = format!(
        "{}/{} shards, {} objects, {} read, {} rows, {:.1}s",
        summary.shards_done,
        summary.shards_planned,
        summary.objects_finished,
        human_bytes(summary.compressed_bytes),
        summary.records,
        elapsed.as_secs_f64()
    );
    if summary.shards_done > 0 && summary.shards_done < summary.shards_planned {
        let done = summary.shards_done as f64 / summary.shards_planned as f64;
        let left = elapsed.as_secs_f64() * (1.0 - done) / done;
        line.push_str(&format!(", about {left:.0}s left"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_cluster_estimates_from_shards_done() {
        let summary = ScanSummary {
            shards_planned: 8,
            shards_done: 2,
            objects_finished: 30,
            compressed_bytes: 2048,
            records: 999,
            ..ScanSummary::default()
        };
        assert_eq!(
            progress_line(&summary, Duration::from_secs(3)),
            "2/8 shards, 30 objects, 2.0 KiB read, 999 rows, 3.0s, about 9s left"
        );
    }

    #[test]
    fn estimates_from_bytes_read() {
        let summary = ScanSummary {
            objects_planned: 10,
            bytes_planned: 1000,
            objects_finished: 2,
            compressed_bytes: 250,
            records: 1234,
            ..ScanSummary::default()
        };
        assert_eq!(
            progress_line(&summary, Duration::from_secs(2)),
            "2/10 objects, 250 B of 1000 B, 1234 rows, 2.0s, about 6s left"
        );
    }
}
