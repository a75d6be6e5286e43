//! flowsql on a Ballista cluster: plans that travel, and real scheduler and
//! executor processes giving the answers of one process.

use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};

use crate::support::*;

/// A session as a cluster's scheduler has it, with the table of `one` as
/// the client's plan carries it (through the logical codec).
async fn scheduler_session(one: &SessionContext, slots: usize) -> SessionContext {
    let table = one.table_provider(TABLE).await.unwrap();
    let codec = flowsql::cluster::logical_codec();
    let reference = TableReference::bare(TABLE);
    let mut buf = Vec::new();
    codec
        .try_encode_table_provider(&reference, Arc::clone(&table), &mut buf)
        .unwrap();
    let config = flowsql::cluster::session_config().with_target_partitions(slots);
    let runtime = RuntimeEnvBuilder::new().build_arc().unwrap();
    let state = flowsql::cluster::server_state(config, runtime).unwrap();
    let server = SessionContext::new_with_state(state);
    let decoded = codec
        .try_decode_table_provider(&buf, &reference, table.schema(), &server.task_ctx())
        .unwrap();
    server.register_table(TABLE, decoded).unwrap();
    server
}

/// The file groups of the plan's one `DataSourceExec`.
fn scan_groups(plan: &Arc<dyn ExecutionPlan>) -> Option<FileScanConfig> {
    let mut found = None;
    plan.apply(|node| {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(config) = any
            .downcast_ref::<DataSourceExec>()
            .and_then(|e| e.data_source().downcast_ref::<FileScanConfig>())
        {
            found = Some(config.clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })
    .unwrap();
    found
}

/// Each shard group of `sql`'s plan, alone in the plan (as a scheduler
/// gives it to one task), encoded, decoded and run; the rows of all.
async fn rows_shard_by_shard(server: &SessionContext, sql: &str) -> (usize, Vec<Vec<String>>) {
    let plan = physical_plan(server, sql).await;
    let codec = flowsql::cluster::physical_codec();
    let Some(config) = scan_groups(&plan) else {
        // Nothing to read (no folder passes the filters).
        let batches = collect(plan, server.task_ctx()).await.unwrap();
        return (0, batches_to_rows(&batches));
    };
    let mut all = Vec::new();
    for group in &config.file_groups {
        let alone = FileScanConfigBuilder::from(config.clone())
            .with_file_groups(vec![group.clone()])
            .build();
        let task = Arc::clone(&plan)
            .transform_up(|node| {
                let any: &dyn std::any::Any = node.as_ref();
                Ok(if any.is::<DataSourceExec>() {
                    Transformed::yes(DataSourceExec::from_data_source(alone.clone()))
                } else {
                    Transformed::no(node)
                })
            })
            .unwrap()
            .data;
        let bytes = physical_plan_to_bytes_with_extension_codec(task, codec.as_ref()).unwrap();
        let decoded = physical_plan_from_bytes_with_extension_codec(
            &bytes,
            &server.task_ctx(),
            codec.as_ref(),
        )
        .unwrap();
        let travelled = scan_groups(&decoded).expect("the scan travelled");
        assert_eq!(travelled.limit, config.limit, "{sql}: the scan's limit");
        assert_eq!(travelled.file_groups.len(), 1, "{sql}");
        let batches = collect(decoded, server.task_ctx()).await.unwrap();
        all.extend(batches_to_rows(&batches));
    }
    (config.file_groups.len(), all)
}

#[tokio::test]
async fn each_shard_travels_alone_and_the_shards_add_up_to_the_one_process_answer() {
    let filters = [
        "TRUE",
        "action = 'REJECT' AND dstport = 22",
        "date = DATE '2024-01-16'",
        "aws_account_id = '444455556666' AND aws_region <> 'us-east-1'",
        "file_time >= TIMESTAMP '2024-01-15 12:00:00'",
        "srcaddr LIKE '10.0.%' OR interface_id = 'eni-1235b8ca123456789'",
        "date = DATE '2023-06-01'",
    ];
    for pruning in [true, false] {
        let one = local_context(&bucket(), pruning).await;
        for slots in [1, 3] {
            let server = scheduler_session(&one, slots).await;
            // A LIMIT pushed into the scan travels with it.
            let sql = format!("SELECT srcaddr FROM {TABLE} LIMIT 4");
            let plan = physical_plan(&server, &sql).await;
            assert_eq!(scan_groups(&plan).unwrap().limit, Some(4));
            let (groups, limited) = rows_shard_by_shard(&server, &sql).await;
            assert!(
                !limited.is_empty() && limited.len() <= 4 * groups,
                "{}",
                limited.len()
            );
            for filter in filters {
                let sql = format!("SELECT * FROM {TABLE} WHERE {filter}");
                let mut want = rows(&one, &sql).await;
                let (groups, mut got) = rows_shard_by_shard(&server, &sql).await;
                want.sort();
                got.sort();
                assert_eq!(
                    got, want,
                    "pruning={pruning} slots={slots} groups={groups}: {filter}"
                );
                if filter == "TRUE" {
                    assert!(want.len() > 30);
                    assert!(groups >= slots, "{groups} groups for {slots} slots");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_large_day_is_cut_by_size_and_its_slices_read_each_object_once() {
    use flowsql::internals::generate::{TreeSpec, generate_tree};
    // One busy day (48 objects) among three quiet ones (2 objects each),
    // under a folder whose name a path encodes (`~`, `#`) when it travels.
    let folder = tempfile::tempdir().unwrap();
    let tree = folder.path().join("flow~logs#1");
    let spec = |account: &str, days, files_per_day| TreeSpec {
        accounts: vec![account.to_string()],
        regions: vec!["us-east-1".to_string()],
        days,
        files_per_day,
        records_per_file: 40,
        ..TreeSpec::default()
    };
    generate_tree(&tree, &spec("111122223333", 1, 48), 2).unwrap();
    generate_tree(&tree, &spec("444455556666", 3, 2), 2).unwrap();
    let one = local_context(&tree, true).await;
    let server = scheduler_session(&one, 2).await;
    let sql = format!("SELECT * FROM {TABLE}");
    let plan = physical_plan(&server, &sql).await;
    let names: Vec<String> = scan_groups(&plan)
        .unwrap()
        .file_groups
        .iter()
        .map(|group| group.files()[0].object_meta.location.to_string())
        .collect();
    // On two slots, the busy day (most of the bytes) is cut so that every
    // slot has work and no slice holds up the end; its slices go first.
    let busy = names
        .iter()
        .filter(|n| n.contains("/111122223333/"))
        .count();
    assert!(busy >= 4, "{names:#?}");
    assert!(
        names[..busy]
            .iter()
            .all(|n| n.contains("/111122223333/") && n.contains(" (slice ")),
        "{names:#?}"
    );
    assert_eq!(names.len(), busy + 3, "{names:#?}");
    let (_, mut got) = rows_shard_by_shard(&server, &sql).await;
    let mut want = rows(&one, &sql).await;
    got.sort();
    want.sort();
    assert_eq!(want.len(), (48 + 3 * 2) * 40);
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_local_location_the_scheduler_or_an_executor_cannot_see_is_an_error() {
    use flowsql::internals::generate::{TreeSpec, generate_tree};
    let tree = tempfile::tempdir().unwrap();
    let location = tree.path().join("logs");
    let spec = TreeSpec {
        days: 2,
        files_per_day: 2,
        records_per_file: 10,
        ..TreeSpec::default()
    };
    generate_tree(&location, &spec, 2).unwrap();
    let one = local_context(&location, true).await;
    let server = scheduler_session(&one, 2).await;
    let sql = format!("SELECT count(*) FROM {TABLE}");
    let planned = physical_plan(&server, &sql).await;
    // As if on other machines, where the folder is not mounted: the
    // scheduler's planning and an executor's task fail, naming the folder,
    // instead of reading nothing.
    let elsewhere = tree.path().join("moved");
    std::fs::rename(&location, &elsewhere).unwrap();
    let planning = server.sql(&sql).await.unwrap().create_physical_plan().await;
    let task = collect(planned, server.task_ctx()).await;
    for outcome in [planning.map(|_| ()), task.map(|_| ())] {
        let error = outcome.expect_err("a missing LOCATION must not read as empty");
        let error = error.to_string();
        assert!(error.contains("cannot read"), "{error}");
        assert!(
            error.contains(&format!("{}/AWSLogs", location.display())),
            "{error}"
        );
    }
    std::fs::rename(&elsewhere, &location).unwrap();
    assert_eq!(rows(&server, &sql).await, rows(&one, &sql).await);
}

#[tokio::test]
async fn a_plan_from_another_version_or_a_one_process_scan_is_refused() {
    let one = local_context(&bucket(), true).await;
    let codec = flowsql::cluster::physical_codec();
    // The one-process scan cannot be split by a scheduler.
    let plan = physical_plan(&one, &format!("SELECT count(*) FROM {TABLE}")).await;
    let error = physical_plan_to_bytes_with_extension_codec(plan, codec.as_ref())
        .unwrap_err()
        .to_string();
    assert!(error.contains("runs in one process only"), "{error}");
    // A table payload of another version.
    let server = scheduler_session(&one, 2).await;
    let table = server.table_provider(TABLE).await.unwrap();
    let logical = flowsql::cluster::logical_codec();
    let mut buf = Vec::new();
    logical
        .try_encode_table_provider(&TableReference::bare(TABLE), Arc::clone(&table), &mut buf)
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let version = env!("CARGO_PKG_VERSION");
    assert!(text.contains(version), "{text}");
    let other = text.replace(version, "0.0.0-other").into_bytes();
    let error = logical
        .try_decode_table_provider(
            &other,
            &TableReference::bare(TABLE),
            table.schema(),
            &server.task_ctx(),
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("flowsql 0.0.0-other"), "{error}");
}

#[tokio::test]
async fn the_rejects_table_says_it_is_not_kept_on_a_cluster() {
    let malformed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malformed");
    let one = local_context(&malformed, true).await;
    let cluster = flowsql::cluster::standalone(
        &[malformed.to_str().unwrap()],
        &options(true),
        flowsql::cluster::session_config(),
    )
    .await
    .unwrap();
    let count = format!("SELECT count(*) FROM {TABLE}");
    assert_eq!(rows(&cluster, &count).await, rows(&one, &count).await);
    // One process lists the lines it skipped; the cluster's executors kept
    // them, and reading the table says so rather than showing none.
    assert!(!rows(&one, "SELECT * FROM flowsql_rejects").await.is_empty());
    let read = async {
        cluster
            .sql("SELECT * FROM flowsql_rejects")
            .await?
            .collect()
            .await
    };
    let error = read.await.unwrap_err().to_string();
    assert!(error.contains("not kept with --cluster"), "{error}");
}

/// A scheduler and executors as separate processes on 127.0.0.1, killed
/// when dropped.
struct Cluster {
    port: u16,
    scheduler: std::process::Child,
    executors: Vec<std::process::Child>,
    work: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The scheduler's `/readyz` answer, if it answers.
fn readyz(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

impl Cluster {
    /// A scheduler and `executors` one-task executors, once all have
    /// registered. Executors heartbeat every second and count as dead after
    /// five, so a killed one is noticed quickly.
    fn start(executors: usize) -> Self {
        Self::start_with(executors, &[])
    }

    /// As [`Cluster::start`], the scheduler and executors with `env` set.
    fn start_with(executors: usize, env: &[(&str, &str)]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        // The scheduler's own temporary folder, so a test can see what it
        // leaves there.
        let scheduler_tmp = work.path().join("scheduler-tmp");
        std::fs::create_dir(&scheduler_tmp).unwrap();
        let scheduler = std::process::Command::new(env!("CARGO_BIN_EXE_flowsql-scheduler"))
            .args(["--bind-host", "127.0.0.1", "--bind-port", &port.to_string()])
            .env("TMPDIR", &scheduler_tmp)
            .args(["--min-ready-executors", &executors.to_string()])
            .args(["--executor-timeout-seconds", "5"])
            .args(["--expire-dead-executor-interval-seconds", "1"])
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut cluster = Cluster {
            port,
            scheduler,
            executors: Vec::new(),
            work,
        };
        cluster.wait_until(|answer| answer.contains("executors registered"));
        for i in 0..executors {
            let folder = cluster.work.path().join(format!("executor-{i}"));
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_flowsql-executor"))
                .args(["--scheduler-host", "127.0.0.1"])
                .args(["--scheduler-port", &port.to_string()])
                .args(["--bind-host", "127.0.0.1"])
                .args(["--bind-port", &free_port().to_string()])
                .args(["--bind-grpc-port", &free_port().to_string()])
                .args(["--work-dir", folder.to_str().unwrap()])
                .args(["--concurrent-tasks", "1"])
                .args(["--executor-heartbeat-interval-seconds", "1"])
                .env("XDG_CACHE_HOME", cluster.work.path())
                .envs(env.iter().copied())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            cluster.executors.push(child);
        }
        cluster.wait_until(|answer| answer.starts_with("HTTP/1.1 200"));
        cluster
    }

    fn wait_until(&self, ready: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(answer) = readyz(self.port)
                && ready(&answer)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster on port {} did not become ready: {:?}",
                self.port,
                readyz(self.port)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }
}

/// `flowsql --format csv -c SQL LOCATION [--cluster URL]`: its standard
/// output, after checking it succeeded.
fn csv(location: &std::path::Path, sql: &str, cluster: Option<&str>) -> String {
    let mut command = flowsql_command();
    command.arg(location);
    csv_with(command, sql, cluster)
}

/// `command` (flowsql with its LOCATION and any other flags) run with
/// `--format csv -q -c SQL [--cluster URL]`: its standard output, after
/// checking it succeeded.
fn csv_with(mut command: std::process::Command, sql: &str, cluster: Option<&str>) -> String {
    command.args(["--format", "csv", "-q"]);
    String::from_utf8(run_sql(command, sql, cluster).stdout).unwrap()
}

/// `command` (flowsql with its LOCATION and flags) run with `-c SQL
/// [--cluster URL]`, after checking it succeeded.
fn run_sql(
    mut command: std::process::Command,
    sql: &str,
    cluster: Option<&str>,
) -> std::process::Output {
    command.args(["-c", sql]);
    if let Some(url) = cluster {
        command.args(["--cluster", url]);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{sql} (cluster {cluster:?}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn separate_processes_answer_as_one_process() {
    let cluster = Cluster::start(2);
    let url = cluster.url();
    let queries = [
        format!("SELECT count(*), sum(bytes), sum(packets) FROM {TABLE}"),
        format!(
            "SELECT srcaddr, sum(bytes) AS b FROM {TABLE} GROUP BY srcaddr ORDER BY b DESC, srcaddr"
        ),
        format!(
            "SELECT aws_account_id, aws_region, date, action, count(*) FROM {TABLE} \
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        ),
        format!(
            "SELECT count(*) FROM {TABLE} WHERE date = DATE '2024-01-16' AND action = 'ACCEPT'"
        ),
        format!(
            "SELECT interface_id, count(DISTINCT dstport) FROM {TABLE} \
             WHERE file_time >= TIMESTAMP '2024-01-15 12:00:00' GROUP BY 1 ORDER BY 1"
        ),
        format!(
            "SELECT from_unixtime(start) AS t, srcaddr, dstaddr FROM {TABLE} \
             WHERE dstport = 22 ORDER BY t, srcaddr, dstaddr LIMIT 5"
        ),
        format!(
            "SELECT * FROM {TABLE} ORDER BY flow_log_id, file_time, start, srcaddr, dstaddr, srcport, dstport, interface_id, bytes"
        ),
    ];
    for sql in &queries {
        let one = csv(&bucket(), sql, None);
        assert!(one.lines().count() > 1, "{sql}: {one}");
        assert_eq!(csv(&bucket(), sql, Some(&url)), one, "{sql}");
    }
    // The address groups above (IPv4, IPv6 and "-") crossed the shuffle
    // as codes and text.
    let plan = csv(&bucket(), &format!("EXPLAIN {}", queries[1]), Some(&url));
    assert!(plan.contains("flowsql_key_code(srcaddr"), "{plan}");
    // The scheduler, which plans but runs nothing, made no spill folder that
    // its kill would leave behind.
    let scheduler_tmp = cluster.work.path().join("scheduler-tmp");
    let left: Vec<_> = std::fs::read_dir(&scheduler_tmp)
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_unreachable_scheduler_is_named_in_one_line() {
    let port = free_port();
    let url = format!("df://127.0.0.1:{port}");
    let out = flowsql_command()
        .args(["-q", "-c", "SELECT count(*) FROM vpc_flow_logs"])
        .arg(bucket())
        .args(["--cluster", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

/// Whether any file lies below `dir`, which a running executor changes:
/// a folder it removes while this looks is passed over.
fn holds_a_file(dir: &std::path::Path) -> bool {
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.is_file() {
                return true;
            }
        }
    }
    false
}

#[test]
fn an_executor_killed_mid_query_changes_no_answer() {
    let tree = tempfile::tempdir().unwrap();
    let spec = flowsql::internals::generate::TreeSpec {
        days: 2,
        ..flowsql::internals::generate::TreeSpec::default()
    };
    flowsql::internals::generate::generate_tree(tree.path(), &spec, 2).unwrap();
    let sql = format!(
        "SELECT aws_account_id, action, count(*), sum(bytes), count(DISTINCT dstport) \
         FROM {TABLE} GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let want = csv(tree.path(), &sql, None);
    let mut cluster = Cluster::start(2);
    let mut query = flowsql_command()
        .args(["--format", "csv", "-q", "-c", &sql])
        .arg(tree.path())
        .args(["--cluster", &cluster.url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first executor has written a shuffle file, it is killed.
    let work = cluster.work.path().join("executor-0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !holds_a_file(&work) {
        assert!(std::time::Instant::now() < deadline, "no task ran");
        assert!(
            query.try_wait().unwrap().is_none(),
            "answered before any task ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cluster.executors[0].kill().unwrap();
    cluster.executors[0].wait().unwrap();
    let out = query.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    } else {
        // Failing is allowed, in one line.
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    eprintln!("after the kill: success {}, {stderr}", out.status.success());
}

#[test]
fn executors_read_s3_with_their_own_credentials_and_the_clients_endpoint() {
    let _turn = crate::s3::TURN.blocking_lock();
    let moto = crate::s3::moto();
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("missing");
    let missing = missing.to_str().unwrap();
    // Each process's own chain: the executors' keys come from their
    // environment, which the client's plan never carries.
    let keys = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXECUTOR"),
        ("AWS_SECRET_ACCESS_KEY", "secret-of-the-executors"),
        ("AWS_CONFIG_FILE", missing),
        ("AWS_SHARED_CREDENTIALS_FILE", missing),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let cluster = Cluster::start_with(2, &keys);
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let location = format!("s3://{}/flow-logs", crate::s3::BUCKET);
    for sql in [
        format!("SELECT count(*), sum(bytes) FROM {TABLE}"),
        format!(
            "SELECT aws_account_id, aws_region, date, count(*), sum(bytes) FROM {TABLE} \
             WHERE action = 'ACCEPT' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ),
    ] {
        let run = |sql: &str, cluster_url: Option<&str>| {
            let mut command = flowsql_command();
            command
                .env("HOME", home.path())
                .envs(keys.iter().copied())
                .args(["--endpoint-url", &endpoint, &location]);
            csv_with(command, sql, cluster_url)
        };
        let one = run(&sql, None);
        assert!(one.lines().count() > 1, "{sql}: {one}");
        assert_eq!(run(&sql, Some(&cluster.url())), one, "{sql}");
        // The largest day is cut into key ranges, which executors list from
        // their first key on (S3's start-after).
        let explain = run(&format!("EXPLAIN {sql}"), Some(&cluster.url()));
        assert!(explain.contains(" (slice 2 of "), "{explain}");
    }
}

/// The summary line (and warnings) `flowsql LOCATION -c SQL` prints on
/// standard error, run with `--no-cache` so that every object is read.
fn summary_of(location: &std::path::Path, sql: &str, cluster: Option<&str>) -> String {
    let mut command = flowsql_command();
    command
        .arg(location)
        .args(["--no-cache", "--format", "csv"]);
    String::from_utf8(run_sql(command, sql, cluster).stderr).unwrap()
}

/// The number before `unit` in `text` (such as 12 in "read 12 object(s)").
fn number_before(text: &str, unit: &str) -> String {
    let at = text
        .find(unit)
        .unwrap_or_else(|| panic!("no {unit:?} in {text}"));
    text[..at]
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn shuffles_fit_the_cluster_and_the_summary_counts_what_the_executors_read() {
    let cluster = Cluster::start(2);
    let url = cluster.url();
    // Shuffles have as many partitions as the two executors have task slots.
    let setting = csv(
        &bucket(),
        "SHOW datafusion.execution.target_partitions",
        Some(&url),
    );
    assert!(setting.trim_end().ends_with(",2"), "{setting}");
    // Long enough (a few seconds) for the progress polls to see finished
    // tasks before the end: the end's counts must not add to theirs.
    let tree = tempfile::tempdir().unwrap();
    let spec = flowsql::internals::generate::TreeSpec {
        days: 2,
        ..flowsql::internals::generate::TreeSpec::default()
    };
    flowsql::internals::generate::generate_tree(tree.path(), &spec, 2).unwrap();
    let sql = format!(
        "SELECT action, count(*), count(DISTINCT srcaddr) FROM {TABLE} GROUP BY 1 ORDER BY 1"
    );
    let one = summary_of(tree.path(), &sql, None);
    let on = summary_of(tree.path(), &sql, Some(&url));
    assert!(on.contains("on the cluster; read "), "{on}");
    // "read N object(s), X compressed": the same objects and bytes.
    let read = |summary: &str| {
        let from = summary.find("read ").unwrap_or_else(|| panic!("{summary}"));
        let to = summary
            .find(" compressed")
            .unwrap_or_else(|| panic!("{summary}"));
        summary[from..to].to_string()
    };
    assert_eq!(read(&on), read(&one));
    assert_ne!(number_before(&on, " object(s)"), "0", "{on}");

    // Malformed lines are counted on the executors; their text stays there.
    let malformed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/malformed");
    let sql = format!("SELECT count(*) FROM {TABLE}");
    let one = summary_of(&malformed, &sql, None);
    let on = summary_of(&malformed, &sql, Some(&url));
    assert!(on.contains("the cluster's executors skipped "), "{on}");
    for unit in [" malformed line(s)", " object(s);"] {
        assert_eq!(
            number_before(&on, unit),
            number_before(&one, unit),
            "{one}\n{on}"
        );
    }

    // An executor's error reads as in one process (object and line), in one
    // line, with the cluster's job named after it.
    let strict = |cluster: Option<&str>| {
        let mut command = flowsql_command();
        command.arg(&malformed).args(["--strict", "-c", &sql]);
        if let Some(url) = cluster {
            command.args(["--cluster", url]);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };
    let one = strict(None);
    let on = strict(Some(&url));
    assert!(one.contains(" line ") && one.contains(".log.gz"), "{one}");
    assert_eq!(on.lines().count(), 1, "{on}");
    let (error, job) = on.trim_end().rsplit_once(" (cluster job ").unwrap();
    assert_eq!(error, one.trim_end());
    assert!(job.ends_with(')'), "{on}");
}

impl Cluster {
    /// The scheduler's answer to `GET path`: its status line and body.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    /// How many jobs that flowsql named are running on the cluster.
    fn running_jobs(&self) -> usize {
        self.get("/flowsql/v1/jobs")
            .matches("\"name\":\"flowsql-")
            .count()
    }

    /// Waits (up to a minute) until `n` jobs are running.
    fn wait_for_running_jobs(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.running_jobs() != n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} jobs running, not {n}: {}",
                self.running_jobs(),
                self.get("/flowsql/v1/jobs")
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// 45^6 (8.3 billion) rows: minutes of work for the executors.
fn endless_count() -> String {
    format!("SELECT count(*) FROM {TABLE} a, {TABLE} b, {TABLE} c, {TABLE} d, {TABLE} e, {TABLE} f")
}

#[test]
fn progress_shows_and_ctrl_c_cancels_the_job_on_the_cluster() {
    let cluster = Cluster::start(2);
    let home = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flowsql"));
    command
        .arg(bucket())
        .args(["--cluster", &cluster.url()])
        .env("HOME", home.path())
        .env_remove("XDG_CACHE_HOME")
        .env("TERM", "xterm")
        .env("COLUMNS", "200");
    let mut shell = rexpect::session::spawn_command(command, Some(60_000)).unwrap();
    shell.exp_string("\\? for help").unwrap();
    shell.send(&format!("{};\r", endless_count())).unwrap();
    shell.flush().unwrap();
    // The progress line counts the scans' shards from the scheduler.
    shell.exp_regex(r"\d+/\d+ shards, \d+ objects, ").unwrap();
    assert_eq!(cluster.running_jobs(), 1);
    // Ctrl-C in the shell cancels the job on the cluster, and the shell
    // goes on.
    shell.send_control('c').unwrap();
    shell.exp_string("cancelled").unwrap();
    cluster.wait_for_running_jobs(0);
    shell.send("SELECT 6 * 7 AS answer;\r").unwrap();
    shell.flush().unwrap();
    shell.exp_string("|     42 |").unwrap();
    shell.send_control('d').unwrap();
    shell.exp_eof().unwrap();

    // Ctrl-C (SIGINT) or SIGTERM on a one-shot command cancels its job too;
    // then the command exits 130, or ends by SIGTERM (143 in a shell).
    use std::os::unix::process::ExitStatusExt;
    for (signal, status, said) in [("-INT", 130, "cancelled"), ("-TERM", 143, "terminated")] {
        let query = flowsql_command()
            .arg(bucket())
            .args(["--cluster", &cluster.url(), "-c", &endless_count()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        cluster.wait_for_running_jobs(1);
        let sent = std::process::Command::new("kill")
            .args([signal, &query.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = query.wait_with_output().unwrap();
        let ended = out.status.code().or(out.status.signal().map(|n| 128 + n));
        assert_eq!(ended, Some(status), "{signal}: {:?}", out.status);
        if signal == "-TERM" {
            assert_eq!(out.status.signal(), Some(15), "{:?}", out.status);
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(said),
            "{signal}"
        );
        cluster.wait_for_running_jobs(0);
    }
}
