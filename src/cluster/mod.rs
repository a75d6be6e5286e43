//! Running on an Apache DataFusion Ballista cluster (feature `cluster`).
//!
//! The same table, functions and SQL as in one process, planned by a
//! Ballista scheduler and run by its executors. [`connect`] opens a
//! session whose statements run on a cluster; the `flowsql-scheduler` and
//! `flowsql-executor` binaries are Ballista's own processes with flowsql
//! built in, through [`session_config`], [`server_state`] and
//! [`runtime_env`].
//!
//! What changes on a cluster:
//! - the scan is cut into shards (day folders, or slices of them) that
//!   each task lists and reads itself, instead of one listing shared by the
//!   partitions of one process;
//! - grouped aggregations are finished by DataFusion's own operators
//!   across the cluster's shuffle, not by flowsql's bucketed aggregate,
//!   which only one process can run; address keys cross the shuffle as
//!   integer codes;
//! - what a scan read (objects, bytes, LIST requests, malformed lines,
//!   skipped objects) is counted by each task, travels in its metrics and
//!   is summed into the client's scan report when the job ends; the lines
//!   and objects themselves stay in the executors' processes, and
//!   `flowsql_rejects` says so when read;
//! - a job whose result is dropped unread (Ctrl-C in the shell) is
//!   cancelled on the cluster;
//! - each process finds its own S3 credentials; only the region, endpoint
//!   and signing choice travel with a plan.

mod codec;
mod job;
mod packed_shuffle;
mod progress;
pub mod scheduler;

use std::path::Path;
use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;

use crate::report::rejects::RejectsTable;
use crate::report::{REJECTS_TABLE, ScanReport};
use crate::session::SessionOptions;
use crate::sql::functions::ipaddress::IpAddressTypePlanner;
use crate::table::FlowLogTable;

/// The codec of flowsql's table in logical plans (Ballista's for the rest).
pub fn logical_codec() -> Arc<dyn LogicalExtensionCodec> {
    Arc::new(codec::LogicalCodec::default())
}

/// The codec of flowsql's sharded scans in physical plans (Ballista's for
/// the rest).
pub fn physical_codec() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(codec::PhysicalCodec::default())
}

/// Ballista's session configuration with flowsql's codecs and settings.
pub fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(logical_codec())
        .with_ballista_physical_extension_codec(physical_codec());
    let options = config.options_mut();
    options.sql_parser.default_null_ordering = "nulls_last".to_string();
    // Each task reads the shards its plan names, and no other partition's.
    options.execution.enable_file_stream_work_stealing = false;
    config
}

/// The session state of a scheduler or an executor for one job: `config`
/// (the client's settings over [`session_config`]), flowsql's functions and
/// `IPADDRESS` type, and `runtime`. Grouped aggregations are DataFusion's
/// own: flowsql's bucketed aggregate finishes its groups within one process.
pub fn server_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Result<SessionState> {
    let mut rules = ballista_core::optimizer::ballista_default_optimizer_rules();
    rules.push(Arc::new(packed_shuffle::PackedAddressKeys));
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(rules)
        .with_type_planner(Arc::new(IpAddressTypePlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    crate::sql::functions::register_all(&ctx)?;
    for function in packed_shuffle::functions() {
        ctx.register_udf(function);
    }
    Ok(ctx.state())
}

/// A process's runtime: spill files under `spill_dir`, or, without one, in
/// a folder of the system's temporary folder made only when something
/// spills (a scheduler, which plans but runs nothing, makes none that a kill
/// could leave behind); `s3://` stores are registered by the plans that name
/// them, each set up on its first request with this process's own
/// credentials.
pub fn runtime_env(spill_dir: Option<&Path>) -> Result<Arc<RuntimeEnv>> {
    let mode = match spill_dir {
        Some(dir) => DiskManagerMode::Directories(vec![dir.to_path_buf()]),
        None => DiskManagerMode::OsTmpDirectory,
    };
    RuntimeEnvBuilder::new()
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode))
        .build_arc()
}

/// A session over the flow logs at `locations` whose statements run on the
/// Ballista cluster whose scheduler is at `scheduler` (`df://host:port`).
///
/// The table is opened here, as [`crate::new_context`] opens it (a few
/// listings); its objects are listed and read by the executors. Fails with
/// one line naming the scheduler when it cannot be reached.
pub async fn connect(
    scheduler: &str,
    locations: &[impl AsRef<str>],
    options: &SessionOptions,
) -> Result<SessionContext> {
    let address = reachable(scheduler).await?;
    let mut config = session_config();
    if let Some(batch_size) = options.batch_size {
        config = config.with_batch_size(batch_size);
    }
    // Shuffles cut into as many partitions as the cluster has task slots
    // (Ballista's default of 16 is slow on a small cluster); `SET` changes it.
    if let Some(size) = ClusterSize::fetch(&address).await
        && size.task_slots > 0
    {
        config = config.with_target_partitions(size.task_slots as usize);
    }
    let runtime = RuntimeEnvBuilder::new().build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_type_planner(Arc::new(IpAddressTypePlanner))
        .build();
    let ctx = SessionContext::remote_with_state(scheduler, state).await?;
    with_table(ctx, Some(address), locations, options).await
}

/// A session over the flow logs at `locations` whose statements run on a
/// cluster started in this process (Ballista's standalone mode: a
/// scheduler and an executor on `localhost`), configured by `config`
/// (usually [`session_config`] with changes, such as Ballista's
/// `ballista.planner.adaptive.enabled`). For trying a cluster's plans on
/// one machine, and for tests.
pub async fn standalone(
    locations: &[impl AsRef<str>],
    options: &SessionOptions,
    config: SessionConfig,
) -> Result<SessionContext> {
    let mut config = config;
    if let Some(batch_size) = options.batch_size {
        config = config.with_batch_size(batch_size);
    }
    // The in-process scheduler plans every job with this very state.
    let state = server_state(config, RuntimeEnvBuilder::new().build_arc()?)?;
    let ctx = SessionContext::standalone_with_state(state).await?;
    with_table(ctx, None, locations, options).await
}

/// `ctx`, just connected, with flowsql's planning and functions and the
/// flow-log table. With the `scheduler`'s gRPC address, jobs are cancelled
/// when their results are dropped and report what their scans read.
async fn with_table(
    ctx: SessionContext,
    scheduler: Option<String>,
    locations: &[impl AsRef<str>],
    options: &SessionOptions,
) -> Result<SessionContext> {
    // Plans that read no flow-log table run here, where what they read is.
    let distributed = Arc::clone(ctx.state().query_planner());
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_query_planner(Arc::new(ClusterPlanner {
            distributed,
            scheduler,
        }))
        .build();
    let ctx = SessionContext::new_with_state(state);
    // Connecting replaced the session's functions with Ballista's.
    crate::sql::functions::register_all(&ctx)?;
    let table_options = crate::FlowLogOptions {
        cache: None,
        ..options.table.clone()
    };
    let table = FlowLogTable::try_new(&ctx.runtime_env(), locations, table_options).await?;
    ctx.register_table(options.table_name.as_str(), Arc::new(table))?;
    ctx.register_table(REJECTS_TABLE, Arc::new(RejectsTable::on_a_cluster()))?;
    Ok(ctx)
}

/// The gRPC address (`http://host:port`) of the scheduler at `scheduler`
/// (`df://host[:port]`); fails with one line naming it when nothing
/// answers there.
async fn reachable(scheduler: &str) -> Result<String> {
    let unreachable = |why: String| {
        DataFusionError::Execution(format!(
            "cannot reach the cluster's scheduler at {scheduler}: {why}"
        ))
    };
    let url = url::Url::parse(scheduler).map_err(|e| unreachable(e.to_string()))?;
    let host = url
        .host_str()
        .ok_or_else(|| unreachable("no host named".to_string()))?;
    let port = url.port().unwrap_or(DEFAULT_SCHEDULER_PORT);
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(_)) => Ok(format!("http://{host}:{port}")),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Where flowsql's scheduler says how large the cluster is.
const CLUSTER_SIZE_PATH: &str = "/flowsql/v1/cluster";

/// The live executors of a cluster and their task slots.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct ClusterSize {
    executors: u64,
    task_slots: u64,
}

impl ClusterSize {
    /// The size of the cluster whose scheduler is at `scheduler`
    /// (`http://host:port`); `None` if it does not say (not flowsql's).
    async fn fetch(scheduler: &str) -> Option<Self> {
        let url = reqwest::Url::parse(&format!("{scheduler}{CLUSTER_SIZE_PATH}")).ok()?;
        get_json(&reqwest::Client::new(), url, CONNECT_TIMEOUT).await
    }
}

/// The JSON answer to `GET url` from flowsql's scheduler, read as `T`;
/// `None` if it gives none (it is not flowsql's, or has nothing there).
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: reqwest::Url,
    timeout: std::time::Duration,
) -> Option<T> {
    let response = client.get(url).timeout(timeout).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_str(&response.text().await.ok()?).ok()
}

/// Ballista's scheduler port when a `df://` URL names none.
const DEFAULT_SCHEDULER_PORT: u16 = 50050;

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Plans statements that read a flow-log table on the cluster and the rest
/// in this process: `SHOW PARTITIONS` (listed here), a conversion (whose
/// plan reads objects itself), constant queries.
#[derive(Debug)]
struct ClusterPlanner {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
    /// The scheduler's gRPC address, where known (not in standalone mode).
    scheduler: Option<String>,
}

#[async_trait::async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(report) = flow_log_report(plan)? {
            let job = self.distributed.create_physical_plan(plan, state).await?;
            Ok(match &self.scheduler {
                Some(scheduler) => {
                    Arc::new(job::JobExec::new(job, scheduler.clone(), Some(report)))
                }
                None => job,
            })
        } else {
            DefaultPhysicalPlanner::default()
                .create_physical_plan(plan, state)
                .await
        }
    }
}

/// The scan report of the first flow-log table `plan` (its subqueries
/// included) scans; `None` if it scans none.
fn flow_log_report(plan: &LogicalPlan) -> Result<Option<Arc<ScanReport>>> {
    let mut found = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
        {
            let any: &dyn std::any::Any = provider.as_ref();
            if let Some(table) = any.downcast_ref::<FlowLogTable>() {
                found = Some(table.report());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}
