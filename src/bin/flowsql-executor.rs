//! `flowsql-executor`: a Ballista executor that knows flowsql's table,
//! functions, codecs and object stores.
//!
//! This is Ballista's own executor process, built from its library:
//! [`ExecutorProcessConfig`] with flowsql's function registry, runtime
//! producer (spill files under the work folder), config producer and
//! codecs, run by [`start_executor_process`]. It registers with the
//! scheduler at start, so the scheduler must be reachable then (or within
//! `--scheduler-connect-timeout-seconds`).
//!
//! It logs nothing: no logger is installed for Ballista's `log` records.
//! Once registered it prints one `flowsql-executor registered ...` line on
//! stderr; on failure it prints one `flowsql-executor: error: ...` line and
//! exits 1. Ctrl-C or SIGTERM stops it as Ballista does (it tells the
//! scheduler, lets running tasks finish) with status 0; a second signal
//! exits at once.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ballista_core::error::BallistaError;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::health::ExecutorHealth;
use clap::Parser;
use datafusion::prelude::SessionConfig;
use flowsql::cluster;
use tokio::sync::Notify;

/// A Ballista executor for flowsql: runs the tasks a flowsql-scheduler
/// hands it and serves their shuffle output over Arrow Flight.
#[derive(Parser, Debug)]
#[command(name = "flowsql-executor", version)]
struct Args {
    /// Host name or IP address of the scheduler.
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    scheduler_host: String,

    /// Port of the scheduler.
    #[arg(long, value_name = "PORT", default_value_t = 50050)]
    scheduler_port: u16,

    /// Local IP address to listen on.
    #[arg(long, value_name = "HOST", default_value = "0.0.0.0")]
    bind_host: String,

    /// Port of the Arrow Flight service (shuffle data and results).
    #[arg(long, value_name = "PORT", default_value_t = 50051)]
    bind_port: u16,

    /// Port of the gRPC service the scheduler pushes tasks to.
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    bind_grpc_port: u16,

    /// Host name or IP address under which the scheduler, other executors
    /// and clients reach this executor. Default: the address the scheduler
    /// sees the executor connect from.
    #[arg(long, value_name = "HOST")]
    external_host: Option<String>,

    /// Folder for shuffle files and spills. Default: a new folder in the
    /// system's temporary folder, removed on exit.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,

    /// Tasks run at once (Ballista's vcores). Default, or 0: the number of
    /// cores.
    #[arg(long, visible_alias = "vcores", value_name = "N")]
    concurrent_tasks: Option<usize>,

    /// Keep trying to reach the scheduler for this many seconds before
    /// failing (0: fail at the first attempt).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    scheduler_connect_timeout_seconds: u16,

    /// Seconds between heartbeats to the scheduler. Keep it below the
    /// scheduler's --executor-timeout-seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    executor_heartbeat_interval_seconds: u64,
}

fn main() -> ExitCode {
    common::allocator::keep_freed_buffers();
    let args: Args = common::parse_args();
    let work_dir = match WorkDir::prepare(args.work_dir.as_deref()) {
        Ok(work_dir) => work_dir,
        Err(message) => {
            print_error(message);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            print_error(format_args!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(&args, &work_dir));
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(work_dir);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            print_error(message);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, work_dir: &WorkDir) -> Result<(), String> {
    // Ballista binds the Flight port in a task of its own and, if that
    // fails, unregisters and returns Ok; check both ports first so that a
    // port in use is reported as such.
    if args.bind_port == args.bind_grpc_port {
        return Err(format!(
            "--bind-port and --bind-grpc-port are both {}",
            args.bind_port
        ));
    }
    check_port(&args.bind_host, args.bind_port, "--bind-port")?;
    check_port(&args.bind_host, args.bind_grpc_port, "--bind-grpc-port")?;
    let work_dir_path = work_dir.path.clone();
    let work_dir_text = work_dir_path
        .to_str()
        .ok_or_else(|| format!("work folder {} is not UTF-8", work_dir_path.display()))?
        .to_string();

    // Signals: the first one lets Ballista stop as it does (it listens to
    // Ctrl-C and SIGTERM itself once running); a second one exits at once.
    let stop = Arc::new(Stop::default());
    tokio::spawn(watch_signals(
        stop.clone(),
        work_dir.remove.then(|| work_dir_path.clone()),
    ));

    // The functions the executor resolves plan nodes against: those of a
    // flowsql server session.
    let runtime = cluster::runtime_env(Some(&work_dir_path))
        .map_err(|e| format!("cannot set up the session runtime: {e}"))?;
    let state = cluster::server_state(cluster::session_config(), runtime)
        .map_err(|e| format!("cannot set up the session: {e}"))?;
    let function_registry = Arc::new(BallistaFunctionRegistry::from(&state));
    let config_producer: ConfigProducer = Arc::new(cluster::session_config);
    // Called per session (Ballista keeps an LRU of them) or per task; its
    // spill files go under the work folder, as with Ballista's default.
    let spill_dir = work_dir_path.clone();
    let runtime_producer: RuntimeProducer =
        Arc::new(move |_config: &SessionConfig| cluster::runtime_env(Some(&spill_dir)));

    let vcores = match args.concurrent_tasks {
        Some(n) if n > 0 => n,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let health = ExecutorHealth::new();
    let config = ExecutorProcessConfig {
        bind_host: args.bind_host.clone(),
        external_host: args.external_host.clone(),
        port: args.bind_port,
        grpc_port: args.bind_grpc_port,
        scheduler_host: args.scheduler_host.clone(),
        scheduler_port: args.scheduler_port,
        scheduler_connect_timeout_seconds: args.scheduler_connect_timeout_seconds,
        vcores,
        work_dir: Some(work_dir_text),
        executor_heartbeat_interval_seconds: args.executor_heartbeat_interval_seconds,
        override_function_registry: Some(function_registry),
        override_runtime_producer: Some(runtime_producer),
        override_config_producer: Some(config_producer),
        override_logical_codec: Some(cluster::logical_codec()),
        override_physical_codec: Some(cluster::physical_codec()),
        health: health.clone(),
        ..Default::default()
    };

    let scheduler = format!("{}:{}", args.scheduler_host, args.scheduler_port);
    let mut process = std::pin::pin!(start_executor_process(Arc::new(config)));

    // Until registered: the executor is ready once its first heartbeat,
    // sent right after registration, has been acknowledged.
    let registered = async {
        while !health.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Ballista's own retry loop never gives up when its timeout is not 0
    // (executor_process.rs: it measures `Instant::now().elapsed()`), so
    // bound the wait here.
    let timeout = args.scheduler_connect_timeout_seconds;
    let give_up = async {
        if timeout == 0 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_secs(u64::from(timeout))).await;
    };
    tokio::select! {
        result = &mut process => {
            return match result {
                Ok(()) if stop.requested() => Ok(()),
                Ok(()) => Err(format!(
                    "stopped before registering with the scheduler at {scheduler}"
                )),
                Err(e) => Err(start_error(&e, &scheduler)),
            };
        }
        () = registered => {}
        () = give_up => {
            return Err(format!(
                "cannot reach the scheduler at {scheduler}: not registered within {timeout} s"
            ));
        }
        () = stop.notify.notified() => return Ok(()),
    }

    eprintln!(
        "flowsql-executor registered with the scheduler at {scheduler}, \
         listening on {}:{} (grpc {}), {vcores} concurrent tasks, work dir {}",
        args.bind_host,
        args.bind_port,
        args.bind_grpc_port,
        work_dir_path.display()
    );

    match process.await {
        Ok(()) if stop.requested() => Ok(()),
        Ok(()) => Err(format!(
            "stopped: the scheduler at {scheduler} asked it to, could not be reached \
             for several heartbeats, or one of the executor's services failed"
        )),
        Err(e) => Err(format!("stopped: {e}")),
    }
}

/// One line for a failure before registration.
fn start_error(e: &BallistaError, scheduler: &str) -> String {
    match e {
        BallistaError::GrpcConnectionError(_) => {
            format!("cannot reach the scheduler at {scheduler}")
        }
        BallistaError::Configuration(message) => format!("invalid configuration: {message}"),
        _ => format!("cannot register with the scheduler at {scheduler}: {e}"),
    }
}

/// Fails if `host:port` is not a socket address as Ballista parses it, or
/// cannot be listened on now. Port 0 is refused: the executor tells the
/// scheduler its ports, so they must be known.
fn check_port(host: &str, port: u16, flag: &str) -> Result<(), String> {
    if port == 0 {
        return Err(format!("{flag} must not be 0"));
    }
    // Ballista parses `format!("{bind_host}:{port}")`: an IPv4 address or a
    // bracketed IPv6 one, no host names.
    let address: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|_| format!("--bind-host {host}: not an IP address"))?;
    std::net::TcpListener::bind(address)
        .map(drop)
        .map_err(|e| format!("cannot listen on {address} ({flag}): {e}"))
}

/// The work folder, and whether this process made it (and removes it).
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    /// `--work-dir`, created if missing, or a new temporary folder.
    fn prepare(given: Option<&Path>) -> Result<WorkDir, String> {
        match given {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create work folder {}: {e}", dir.display()))?;
                let path = std::path::absolute(dir)
                    .map_err(|e| format!("cannot resolve work folder {}: {e}", dir.display()))?;
                Ok(WorkDir {
                    path,
                    remove: false,
                })
            }
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.subsec_nanos());
                let path = std::env::temp_dir().join(format!(
                    "flowsql-executor-{}-{nanos:08x}",
                    std::process::id()
                ));
                std::fs::create_dir(&path)
                    .map_err(|e| format!("cannot create a work folder {}: {e}", path.display()))?;
                Ok(WorkDir { path, remove: true })
            }
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether a stop signal came, and a wake-up for the start-up wait.
#[derive(Default)]
struct Stop {
    requested: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}

/// First Ctrl-C/SIGTERM: note it (Ballista, which listens too, shuts down
/// gracefully). Second: remove the temporary work folder and exit 130.
async fn watch_signals(stop: Arc<Stop>, temporary_work_dir: Option<PathBuf>) {
    common::shutdown_signal().await;
    stop.requested.store(true, Ordering::SeqCst);
    stop.notify.notify_one();
    common::shutdown_signal().await;
    eprintln!("flowsql-executor: second signal: exiting without waiting for running tasks");
    if let Some(dir) = temporary_work_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(130);
}

fn print_error(message: impl std::fmt::Display) {
    eprintln!("flowsql-executor: error: {message}");
}
