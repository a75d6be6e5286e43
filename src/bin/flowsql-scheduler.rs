//! `flowsql-scheduler`: a Ballista scheduler that knows flowsql's table,
//! functions, codecs and object stores.
//!
//! This is Ballista's own scheduler process, built from its library:
//! [`SchedulerConfig`] with flowsql's session builder, config producer and
//! codecs, [`BallistaCluster::new_from_config`], [`create_scheduler`] and
//! [`cluster::scheduler::serve`]. One port serves the gRPC API (for
//! clients and executors), the HTTP probes `/healthz` (always 200) and
//! `/readyz` (200 once `--min-ready-executors` executors are alive, 503
//! before), and running jobs' progress for the shell's progress line.
//!
//! It logs nothing: no logger is installed for Ballista's `log` records.
//! When it is ready it prints `flowsql-scheduler listening on ADDR:PORT` on
//! stderr (with the port actually bound, so `--bind-port 0` is usable); on
//! failure it prints one `flowsql-scheduler: error: ...` line and exits 1.
//! Ctrl-C or SIGTERM stops it with status 0.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::ConfigProducer;
use ballista_scheduler::SessionBuilder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::create_scheduler;
use clap::Parser;
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use flowsql::cluster;

/// A Ballista scheduler for flowsql: plans queries and hands their tasks
/// to flowsql-executor processes.
#[derive(Parser, Debug)]
#[command(name = "flowsql-scheduler", version)]
struct Args {
    /// Local host name or IP address to listen on.
    #[arg(long, value_name = "HOST", default_value = "0.0.0.0")]
    bind_host: String,

    /// Port of the gRPC service (clients and executors) and of the HTTP
    /// probes /healthz and /readyz; 0 picks a free port.
    #[arg(long, value_name = "PORT", default_value_t = 50050)]
    bind_port: u16,

    /// Host name or IP address under which executors reach this scheduler
    /// (they report task results to it). Default: --bind-host, or this
    /// machine's host name when that is 0.0.0.0 or ::.
    #[arg(long, value_name = "HOST")]
    external_host: Option<String>,

    /// Live executors needed before /readyz answers 200 (0: always ready).
    #[arg(long, value_name = "N", default_value_t = 1)]
    min_ready_executors: usize,

    /// Seconds without a heartbeat after which an executor counts as dead;
    /// also the grace period before jobs fail when no executor is left.
    /// Keep it above the executors' --executor-heartbeat-interval-seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    executor_timeout_seconds: u64,

    /// How often, in seconds, to look for executors that timed out.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    expire_dead_executor_interval_seconds: u64,
}

fn main() -> ExitCode {
    common::allocator::keep_freed_buffers();
    let args: Args = common::parse_args();
    // Ballista's own scheduler binary runs on 32 MiB worker stacks (deep
    // plans are planned recursively); do the same.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            print_error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            print_error(message);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Bind first, so that a port in use is reported as such and the
    // scheduler advertises the port actually bound (`--bind-port 0`).
    let listener = tokio::net::TcpListener::bind((args.bind_host.as_str(), args.bind_port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}:{}: {e}",
                args.bind_host, args.bind_port
            )
        })?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the address listened on: {e}"))?;
    let external_host = args
        .external_host
        .clone()
        .unwrap_or_else(|| default_external_host(&args.bind_host));

    // One runtime (object store registry, caches) for every session: the
    // session builder runs once per job. The scheduler plans but does not
    // run queries, so it has no spill folder of its own.
    let runtime = cluster::runtime_env(None)
        .map_err(|e| format!("cannot set up the session runtime: {e}"))?;
    let session_builder: SessionBuilder =
        Arc::new(move |config: SessionConfig| cluster::server_state(config, runtime.clone()));
    let config_producer: ConfigProducer = Arc::new(cluster::session_config);

    let mut config = SchedulerConfig::default()
        .with_hostname(external_host)
        .with_port(local.port())
        .with_override_session_builder(session_builder)
        .with_override_config_producer(config_producer)
        .with_no_executors_grace_period_seconds(args.executor_timeout_seconds);
    config.bind_host = args.bind_host.clone();
    config.min_ready_executors = args.min_ready_executors;
    config.executor_timeout_seconds = args.executor_timeout_seconds;
    config.expire_dead_executor_interval_seconds = args.expire_dead_executor_interval_seconds;
    config.override_logical_codec = Some(cluster::logical_codec());
    config.override_physical_codec = Some(cluster::physical_codec());
    config
        .validate()
        .map_err(|e| format!("invalid scheduler configuration: {e}"))?;
    let config = Arc::new(config);

    let ballista_cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| format!("cannot set up the cluster state: {e}"))?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(ballista_cluster, config)
        .await
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;

    eprintln!("flowsql-scheduler listening on {local}");
    tokio::select! {
        served = cluster::scheduler::serve(listener, scheduler) => match served {
            Ok(()) => Err("the scheduler's server stopped".to_string()),
            Err(e) => Err(format!("the scheduler's server failed: {e}")),
        },
        () = common::shutdown_signal() => Ok(()),
    }
}

/// For a wildcard bind address, the machine's host name (executors on
/// other machines report to it; `localhost` would send them to
/// themselves); else the bind host itself.
fn default_external_host(bind_host: &str) -> String {
    match bind_host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_string()),
        _ => bind_host.to_string(),
    }
}

fn print_error(message: impl std::fmt::Display) {
    eprintln!("flowsql-scheduler: error: {message}");
}
