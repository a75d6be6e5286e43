//! A statement's job on the cluster as the client sees it: cancelled on the
//! cluster when its result is dropped unread (Ctrl-C in the shell), and,
//! when it ends, what its scans read brought back from the executors'
//! metrics into the table's [`ScanReport`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ballista_core::config::{BALLISTA_JOB_NAME, BallistaConfig};
use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::serde::protobuf::operator_metric::Metric;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::{CancelJobParams, GetJobMetricsParams};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::StreamExt;

use super::progress::JobProgress;
use crate::report::ScanReport;
use crate::report::task_counts::TaskCounts;

/// How long the client waits for the scheduler to take a cancellation or
/// hand over a job's metrics.
const SCHEDULER_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the client asks the scheduler how far a job has got.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How long a cancellation looks for a job the scheduler has not started
/// running (queued, or still being planned).
const CANCEL_LOOKUP: Duration = Duration::from_secs(60);

/// How long dropping a job's stream waits for its cancellation.
const CANCEL_WAIT: Duration = Duration::from_secs(3);

/// Runs Ballista's distributed plan (`inner`) as one job whose scans'
/// counts go to `report`, and cancels the job if its stream is dropped
/// before the end.
pub(super) struct JobExec {
    inner: Arc<dyn ExecutionPlan>,
    /// The scheduler's gRPC address (`http://host:port`).
    scheduler: String,
    report: Option<Arc<ScanReport>>,
}

impl JobExec {
    pub(super) fn new(
        inner: Arc<dyn ExecutionPlan>,
        scheduler: String,
        report: Option<Arc<ScanReport>>,
    ) -> Self {
        Self {
            inner,
            scheduler,
            report,
        }
    }
}

impl fmt::Debug for JobExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobExec")
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for JobExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ClusterJobExec")
    }
}

impl ExecutionPlan for JobExec {
    fn name(&self) -> &str {
        "ClusterJobExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.inner]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([inner]) => Ok(Arc::new(Self::new(
                inner,
                self.scheduler.clone(),
                self.report.clone(),
            ))),
            Err(_) => Err(DataFusionError::Internal(
                "ClusterJobExec has one child".to_string(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // A name of its own, by which the scheduler finds the job while it
        // runs: its id reaches the client only when it ends.
        let name = job_name(context.session_config());
        let mut config = context.session_config().clone();
        config.options_mut().set(BALLISTA_JOB_NAME, &name)?;
        let context = Arc::new(TaskContext::new(
            context.task_id(),
            context.session_id(),
            config,
            context.scalar_functions().clone(),
            context.higher_order_functions().clone(),
            context.aggregate_functions().clone(),
            context.window_functions().clone(),
            context.runtime_env(),
        ));
        // Ballista keeps the last execution's job id in the plan until the
        // new job's id arrives: that one is not this job's.
        let earlier_id = job_id(&self.inner);
        let batches = self.inner.execute(partition, context)?;
        let schema = batches.schema();
        let added = Arc::new(Mutex::new(TaskCounts::default()));
        let poller = self.report.as_ref().map(|report| {
            tokio::spawn(show_progress(
                name.clone(),
                self.scheduler.clone(),
                Arc::clone(report),
                Arc::clone(&added),
            ))
        });
        let job = Job {
            plan: Arc::clone(&self.inner),
            name,
            earlier_id,
            scheduler: self.scheduler.clone(),
            report: self.report.clone(),
            over: false,
            added,
            poller,
        };
        let stream = futures::stream::unfold((batches, job), |(mut batches, mut job)| async move {
            match batches.next().await {
                Some(Ok(batch)) => Some((Ok(batch), (batches, job))),
                Some(Err(e)) => {
                    // A failed job is over on the cluster too.
                    job.over = true;
                    Some((Err(e), (batches, job)))
                }
                None => {
                    job.ended().await;
                    None
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One execution of a [`JobExec`].
struct Job {
    plan: Arc<dyn ExecutionPlan>,
    /// The job's name, unique to it.
    name: String,
    /// The id of the plan's execution before this one, if any.
    earlier_id: Option<String>,
    scheduler: String,
    report: Option<Arc<ScanReport>>,
    /// Whether the job has ended, failed or been cancelled.
    over: bool,
    /// The executors' counts already added to the report.
    added: Arc<Mutex<TaskCounts>>,
    /// The task that adds them while the job runs.
    poller: Option<tokio::task::JoinHandle<()>>,
}

/// The scheduler's id of the job that `plan` (Ballista's distributed
/// plan) runs, once the scheduler has accepted it.
fn job_id(plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    let mut id = None;
    let _ = plan.apply(|node| {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(query) = any.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>() {
            id = query.job_id().map(|id| id.to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    id
}

/// A job name no other job has: the user's (`ballista.job.name`), if any,
/// with a token made of this process's id, a count and the time.
fn job_name(config: &datafusion::prelude::SessionConfig) -> String {
    static JOBS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let token = format!(
        "flowsql-{:x}-{:x}-{nanos:x}",
        std::process::id(),
        JOBS.fetch_add(1, Ordering::Relaxed)
    );
    let named = config
        .options()
        .extensions
        .get::<BallistaConfig>()
        .and_then(|ballista| ballista.settings().get(BALLISTA_JOB_NAME))
        .filter(|name| !name.is_empty());
    match named {
        Some(name) => format!("{name} ({token})"),
        None => token,
    }
}

/// Adds `counts`, the executors' counts so far, to `report`, less what
/// `added` says it already has. Counts never go back: a smaller one (from
/// a retried stage) adds nothing.
fn add_counts(report: &ScanReport, added: &Mutex<TaskCounts>, counts: TaskCounts) {
    let mut added = added.lock().unwrap_or_else(|e| e.into_inner());
    let new = counts.since(&added);
    report.add_from_executors(&new);
    *added = added.plus(&new);
}

/// While the job runs, puts the scheduler's account of its finished scan
/// tasks (shards) into `report`, for the progress line. The job is found by
/// its `name`. A scheduler that is not flowsql's has no account to give;
/// the report then waits for the end.
async fn show_progress(
    name: String,
    scheduler: String,
    report: Arc<ScanReport>,
    added: Arc<Mutex<TaskCounts>>,
) {
    let client = reqwest::Client::new();
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        if let Some(progress) = JobProgress::fetch(&client, &scheduler, &name).await {
            report.shards(progress.scan_tasks, progress.scan_tasks_done);
            add_counts(&report, &added, progress.task_counts());
        }
    }
}

impl Job {
    /// The job's id on the scheduler, once the client knows it.
    fn id(&self) -> Option<String> {
        job_id(&self.plan).filter(|id| Some(id) != self.earlier_id.as_ref())
    }

    /// The job gave its last rows: its scans' counts go to the report. If
    /// the scheduler cannot say what they were, the report says so (and
    /// keeps the counts of the progress polls, if any).
    async fn ended(&mut self) {
        self.over = true;
        if let Some(poller) = self.poller.take() {
            poller.abort();
        }
        let Some(report) = &self.report else {
            return;
        };
        let counts = match self.id() {
            Some(id) => {
                tokio::time::timeout(SCHEDULER_CALL_TIMEOUT, job_counts(&self.scheduler, &id))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            None => None,
        };
        match counts {
            Some(counts) => add_counts(report, &self.added, counts),
            None => report.executor_counts_missing(),
        }
    }
}

impl Drop for Job {
    /// A job whose rows are no longer wanted is cancelled on the cluster.
    /// Where the runtime allows, this waits a few seconds for the
    /// cancellation, so that a process about to exit still sends it; a job
    /// the scheduler is still planning is looked for longer, in the
    /// background.
    fn drop(&mut self) {
        if let Some(poller) = self.poller.take() {
            poller.abort();
        }
        if self.over {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cancel = runtime.spawn(cancel_job(
            self.scheduler.clone(),
            self.name.clone(),
            self.id(),
        ));
        if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| {
                runtime.block_on(async {
                    let _ = tokio::time::timeout(CANCEL_WAIT, cancel).await;
                })
            });
        }
    }
}

/// Asks the scheduler to cancel the job named `name` (whose id, `id`, the
/// client may not know yet): its running tasks stop and the rest are not
/// run. A job not running yet (queued, or being planned) is looked for
/// until it runs, for up to [`CANCEL_LOOKUP`]. Failing is harmless (the
/// job may just have ended).
async fn cancel_job(scheduler: String, name: String, id: Option<String>) {
    let cancel = async {
        let ids = match id {
            Some(id) => vec![id],
            None => {
                let client = reqwest::Client::new();
                loop {
                    if let Some(progress) = JobProgress::fetch(&client, &scheduler, &name).await
                        && !progress.job_ids.is_empty()
                    {
                        break progress.job_ids;
                    }
                    tokio::time::sleep(PROGRESS_EVERY).await;
                }
            }
        };
        let mut client = SchedulerGrpcClient::connect(scheduler.clone())
            .await
            .map_err(|e| e.to_string())?;
        for job_id in ids {
            client
                .cancel_job(CancelJobParams { job_id })
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    };
    let _ = tokio::time::timeout(CANCEL_LOOKUP, cancel).await;
}

/// What the scans of job `id` (ended) counted, summed over its stages
/// and tasks.
async fn job_counts(scheduler: &str, id: &str) -> Result<TaskCounts, String> {
    let mut client = SchedulerGrpcClient::connect(scheduler.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let metrics = client
        .get_job_metrics(GetJobMetricsParams {
            job_id: id.to_string(),
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut counts = TaskCounts::default();
    for operator in metrics.stages.iter().flat_map(|stage| &stage.operators) {
        for metric in &operator.metrics {
            if let Some(Metric::Count(count)) = &metric.metric {
                counts.add_named(&count.name, count.value);
            }
        }
    }
    Ok(counts)
}
