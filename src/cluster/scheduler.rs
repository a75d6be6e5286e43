//! The `flowsql-scheduler` process's service on its one port: Ballista's
//! scheduler gRPC API (for clients and executors), the HTTP probes
//! `/healthz` and `/readyz`, the cluster's size (for the client's shuffle
//! partitions), the running jobs, and a running job's progress.
//!
//! Ballista's own `start_grpc_service_with_listener` serves the first two;
//! this is the same server with the progress route added, which Ballista
//! has no way to extend.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use ballista_core::serde::scheduler::ExecutorMetadata;

use super::progress::{self, JobProgress};
use super::{CLUSTER_SIZE_PATH, ClusterSize};

/// A Ballista scheduler with flowsql's plans.
pub type Scheduler = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

/// Serves `scheduler` on `listener` until the server fails.
pub async fn serve(listener: tokio::net::TcpListener, scheduler: Scheduler) -> std::io::Result<()> {
    let config = Arc::clone(&scheduler.state.config);
    let grpc = SchedulerGrpcServer::new(scheduler.clone())
        .max_encoding_message_size(config.grpc_server_max_encoding_message_size as usize)
        .max_decoding_message_size(config.grpc_server_max_decoding_message_size as usize);
    let mut services = tonic::service::RoutesBuilder::default();
    services.add_service(grpc);
    let http = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(&progress::path("{name}"), get(named_job_progress))
        .route(CLUSTER_SIZE_PATH, get(cluster_size))
        .route(RUNNING_JOBS_PATH, get(running_jobs))
        .with_state(Arc::new(scheduler));
    let app = services.routes().into_axum_router().merge(http);
    // Executors are told apart by the address they connect from.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// 200 once `--min-ready-executors` executors are alive, 503 before (as
/// Ballista's own probe).
async fn readyz(State(scheduler): State<Arc<Scheduler>>) -> Response {
    let alive = alive_executors(&scheduler).await.len();
    if scheduler.is_ready() {
        (
            StatusCode::OK,
            format!("ready: {alive} executors registered\n"),
        )
            .into_response()
    } else {
        let required = scheduler.state.config.min_ready_executors;
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {alive}/{required} executors registered\n"),
        )
            .into_response()
    }
}

/// The executors that have sent a heartbeat within the scheduler's
/// `--executor-timeout-seconds`.
async fn alive_executors(scheduler: &Scheduler) -> Vec<ExecutorMetadata> {
    let timeout = scheduler.state.config.executor_timeout_seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let executors = scheduler
        .state
        .executor_manager
        .get_executors_state()
        .await
        .unwrap_or_default();
    executors
        .into_iter()
        .filter(|(_, last_heartbeat, _)| {
            last_heartbeat.is_some_and(|at| now.saturating_sub(at).as_secs() <= timeout)
        })
        .map(|(metadata, _, _)| metadata)
        .collect()
}

/// The cluster's live executors and their task slots, as JSON.
async fn cluster_size(State(scheduler): State<Arc<Scheduler>>) -> Response {
    let alive = alive_executors(&scheduler).await;
    let size = ClusterSize {
        executors: alive.len() as u64,
        task_slots: alive
            .iter()
            .map(|e| u64::from(e.specification.vcores))
            .sum(),
    };
    json(&size)
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(json) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Where the scheduler lists its running jobs.
pub(crate) const RUNNING_JOBS_PATH: &str = "/flowsql/v1/jobs";

/// A running job, as [`RUNNING_JOBS_PATH`] lists it.
#[derive(serde::Serialize)]
struct RunningJob {
    id: String,
    name: String,
}

/// The scheduler's running jobs (id and name), as JSON.
async fn running_jobs(State(scheduler): State<Arc<Scheduler>>) -> Response {
    let running = scheduler.state.task_manager.get_running_job_cache();
    let mut jobs = Vec::new();
    for job in running.values() {
        let graph = job.execution_graph.read().await;
        jobs.push(RunningJob {
            id: graph.job_id().to_string(),
            name: graph.job_name().to_string(),
        });
    }
    json(&jobs)
}

/// The [`JobProgress`] of the running job (or jobs) named `name`, as JSON.
async fn named_job_progress(
    State(scheduler): State<Arc<Scheduler>>,
    Path(name): Path<String>,
) -> Response {
    let running = scheduler.state.task_manager.get_running_job_cache();
    let mut graphs = Vec::new();
    for job in running.values() {
        let graph = job.execution_graph.read().await;
        if graph.job_name() == name {
            graphs.push(graph);
        }
    }
    if graphs.is_empty() {
        return (StatusCode::NOT_FOUND, "no running job has this name\n").into_response();
    }
    json(&JobProgress::of(
        graphs
            .iter()
            .map(|graph| (graph.job_id().to_string(), graph.stages())),
    ))
}
