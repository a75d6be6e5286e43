//! How far a running job has got, for the shell's progress line: the
//! scheduler serves it at [`path`] as JSON, from the job's
//! execution graph (its scan stages' tasks, and the counts in the metrics
//! of those finished), and the client polls it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use ballista_core::serde::protobuf::task_status;
use ballista_scheduler::state::execution_stage::{ExecutionStage, TaskInfo};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{MetricValue, MetricsSet};
use serde::{Deserialize, Serialize};

use crate::report::task_counts::TaskCounts;
use crate::scan::shards::ShardSource;

/// The path under which the scheduler serves the progress of the running
/// job named `name`. (A name, not an id: the client learns a job's id
/// only when it ends.)
pub(crate) fn path(name: &str) -> String {
    format!("/{}/{name}/progress", NAMED_JOBS.join("/"))
}

/// The path's segments before the job's name.
const NAMED_JOBS: [&str; 4] = ["flowsql", "v1", "jobs", "named"];

/// What the scheduler knows of a running job's scans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobProgress {
    /// The ids of the jobs, for cancelling them.
    pub(crate) job_ids: Vec<String>,
    /// Tasks of the stages that scan flow logs (one per shard).
    pub(crate) scan_tasks: u64,
    /// Those finished.
    pub(crate) scan_tasks_done: u64,
    /// The counts of the finished tasks' scans, by metric name.
    pub(crate) counts: BTreeMap<String, u64>,
}

impl JobProgress {
    /// The progress of the jobs with these ids and execution graph stages.
    pub(crate) fn of<'a>(
        jobs: impl IntoIterator<Item = (String, &'a HashMap<usize, ExecutionStage>)>,
    ) -> Self {
        let mut progress = Self::default();
        let mut counts = TaskCounts::default();
        let mut stages = Vec::new();
        for (id, job_stages) in jobs {
            progress.job_ids.push(id);
            stages.extend(job_stages.values());
        }
        for stage in stages {
            let (plan, tasks, done, metrics): (_, usize, usize, &[MetricsSet]) = match stage {
                ExecutionStage::Resolved(s) => (&s.plan, s.partitions, 0, &[]),
                ExecutionStage::Running(s) => (
                    &s.plan,
                    s.partitions,
                    partitions_done(&s.task_infos),
                    s.stage_metrics.as_deref().unwrap_or_default(),
                ),
                ExecutionStage::Successful(s) => {
                    (&s.plan, s.partitions, s.partitions, &s.stage_metrics)
                }
                // Scans have no input stages, so are never unresolved;
                // a failed stage fails the job.
                ExecutionStage::UnResolved(_) | ExecutionStage::Failed(_) => continue,
            };
            if !scans_shards(plan) {
                continue;
            }
            progress.scan_tasks += tasks as u64;
            progress.scan_tasks_done += done.min(tasks) as u64;
            for metric in metrics.iter().flat_map(|set| set.iter()) {
                if let MetricValue::Count { name, count } = metric.value() {
                    counts.add_named(name, count.value() as u64);
                }
            }
        }
        progress.counts = counts
            .named()
            .iter()
            .map(|(name, value)| (name.to_string(), *value))
            .collect();
        progress
    }

    /// The counts, as the report takes them.
    pub(crate) fn task_counts(&self) -> TaskCounts {
        let mut counts = TaskCounts::default();
        for (name, value) in &self.counts {
            counts.add_named(name, *value);
        }
        counts
    }

    /// The progress of the running job named `name` from the scheduler
    /// at `scheduler` (`http://host:port`); `None` if it has none to give
    /// (it is not flowsql's).
    pub(crate) async fn fetch(
        client: &reqwest::Client,
        scheduler: &str,
        name: &str,
    ) -> Option<Self> {
        let mut url = reqwest::Url::parse(scheduler).ok()?;
        // Segment by segment, so that a `/` or `%` in a user's job name
        // is escaped.
        url.path_segments_mut()
            .ok()?
            .clear()
            .extend(NAMED_JOBS)
            .extend([name, "progress"]);
        super::get_json(client, url, Duration::from_secs(2)).await
    }
}

/// The partitions (shards) that successful tasks have covered: a task
/// may run several, and one run again after a lost executor succeeds
/// twice.
fn partitions_done(tasks: &[TaskInfo]) -> usize {
    tasks
        .iter()
        .filter(|task| matches!(task.task_status, task_status::Status::Successful(_)))
        .flat_map(|task| &task.global_input_partition_ids)
        .collect::<HashSet<_>>()
        .len()
}

/// Whether `plan` (a stage's) scans shards of flow logs.
fn scans_shards(plan: &std::sync::Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(config) = any
            .downcast_ref::<DataSourceExec>()
            .and_then(|e| e.data_source().downcast_ref::<FileScanConfig>())
            && config.file_source().is::<ShardSource>()
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
