//! flowsql against a real S3-compatible server: moto's standalone server on
//! 127.0.0.1 (installed into a virtual environment by
//! `scripts/setup-test-deps`), holding a copy of the fixture tree. Requests
//! are counted with moto's request recorder.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flowsql::{FlowLogOptions, S3Options, SessionOptions};

use crate::support::*;

pub const BUCKET: &str = "flowsql-test";

pub struct Moto {
    pub port: u16,
    /// Its stdin is the server's lifeline: when this process exits, the
    /// pipe closes and the wrapper stops the server.
    _server: Child,
}

static MOTO: OnceLock<Moto> = OnceLock::new();
/// The recorder sees every request to the server, so the tests here take
/// turns: each holds this for its whole run.
pub static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        let moto = start_moto(&[]);
        assert_eq!(moto.http("PUT", &format!("/{BUCKET}"), b"").0, 200);
        let local = bucket();
        for file in walk(&local) {
            let key = file.strip_prefix(&local).unwrap().to_str().unwrap();
            // Readable without signing, as a public bucket's objects are.
            let (status, body) = moto.http_with(
                "PUT",
                &format!("/{BUCKET}/{key}"),
                &[("x-amz-acl", "public-read")],
                &std::fs::read(&file).unwrap(),
            );
            assert_eq!(status, 200, "upload {key}: {body}");
        }
        moto
    })
}

/// A moto server on a free port of 127.0.0.1, with `env` set.
fn start_moto(env: &[(&str, &str)]) -> Moto {
    let setup = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/setup-test-deps"
    ))
    .output()
    .expect("run scripts/setup-test-deps");
    assert!(
        setup.status.success(),
        "scripts/setup-test-deps failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let venv = String::from_utf8(setup.stdout).unwrap().trim().to_string();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let recording = std::env::temp_dir().join(format!("flowsql-moto-{port}.jsonl"));
    let server = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{venv}/bin/moto_server' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; read -r _; kill $m"
        ))
        .env("MOTO_RECORDER_FILEPATH", &recording)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .spawn()
        .expect("start moto_server");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        port,
        _server: server,
    }
}

impl Moto {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain HTTP/1.1 request (moto takes unsigned ones); status and body.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        self.http_with(method, path, &[], body)
    }

    fn http_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, body)
    }

    /// Runs `work` with the recorder on; the requests it made, as
    /// (method, URL, Authorization header). The caller holds [`TURN`].
    fn record<T>(&self, work: impl FnOnce() -> T) -> (T, Vec<Recorded>) {
        assert_eq!(
            self.http("POST", "/moto-api/recorder/reset-recording", b"")
                .0,
            200
        );
        assert_eq!(
            self.http("POST", "/moto-api/recorder/start-recording", b"")
                .0,
            200
        );
        let result = work();
        assert_eq!(
            self.http("POST", "/moto-api/recorder/stop-recording", b"")
                .0,
            200
        );
        let (status, log) = self.http("GET", "/moto-api/recorder/download-recording", b"");
        assert_eq!(status, 200);
        let entry = regex::Regex::new(r#""method": "(\w+)", "url": "([^"]*)""#).unwrap();
        let authorization = regex::Regex::new(r#""Authorization": "([^"]*)""#).unwrap();
        let requests = log
            .lines()
            .filter_map(|line| {
                let e = entry.captures(line)?;
                Some(Recorded {
                    method: e[1].to_string(),
                    url: url::Url::parse(&e[2]).ok()?,
                    authorization: authorization.captures(line).map(|a| a[1].to_string()),
                })
            })
            .collect();
        (result, requests)
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[derive(Debug)]
struct Recorded {
    method: String,
    url: url::Url,
    authorization: Option<String>,
}

impl Recorded {
    fn query(&self, key: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    fn is_list(&self) -> bool {
        self.method == "GET" && self.query("list-type").is_some()
    }

    fn is_object_get(&self) -> bool {
        self.method == "GET"
            && self.url.query().is_none()
            && self.url.path().len() > BUCKET.len() + 2
    }
}

/// A session on `moto` with unsigned requests (moto accepts them), for a
/// table built in the test's own process.
fn unsigned(moto: &Moto) -> SessionOptions {
    SessionOptions {
        table: FlowLogOptions {
            s3: S3Options {
                endpoint_url: Some(moto.endpoint()),
                no_sign_request: true,
                ..S3Options::default()
            },
            ..FlowLogOptions::default()
        },
        ..SessionOptions::default()
    }
}

/// The binary over the moto bucket, with only the environment given here
/// (no credentials, config files or instance metadata of the machine).
fn flowsql_s3(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let moto = moto();
    let mut env = env.to_vec();
    let (config, credentials) = (home.join("no-config"), home.join("no-credentials"));
    // Given files (a test's own) come later and win.
    env.insert(0, ("AWS_CONFIG_FILE", config.to_str().unwrap()));
    env.insert(
        1,
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
    );
    let location = format!("s3://{BUCKET}/flow-logs");
    let mut all = vec![location.as_str(), "-q"];
    all.extend_from_slice(args);
    flowsql_at(moto, &all, &env, home)
}

/// The binary against `moto`, with a clean environment plus `env`.
fn flowsql_at(moto: &Moto, args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowsql"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .arg("--endpoint-url")
        .arg(moto.endpoint())
        .args(args)
        .output()
        .unwrap()
}

/// The run failed with one line of stderr holding every `needle`.
fn assert_one_line_failure(out: &Output, needles: &[&str]) -> String {
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    stderr
}

fn flowsql_local(args: &[&str]) -> Output {
    flowsql_command()
        .arg(bucket().join("flow-logs"))
        .arg("-q")
        .args(args)
        .output()
        .unwrap()
}

const KEYS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT"),
    ("AWS_SECRET_ACCESS_KEY", "secret-from-environment"),
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_same_queries_give_the_same_answers_over_s3_and_locally() {
    let _turn = TURN.blocking_lock();
    let home = tempfile::tempdir().unwrap();
    let queries = [
        "SELECT count(*) FROM vpc_flow_logs",
        "SELECT aws_account_id, aws_region, date, hour, count(*), sum(bytes) FROM vpc_flow_logs GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        "SELECT srcaddr, dstaddr, sum(bytes) AS b FROM vpc_flow_logs WHERE action = 'ACCEPT' GROUP BY 1, 2 ORDER BY b DESC, 1, 2 LIMIT 5",
        "SELECT * FROM vpc_flow_logs WHERE date = DATE '2024-01-16' ORDER BY flow_log_id, file_time, start, srcaddr",
        "SHOW PARTITIONS vpc_flow_logs",
    ];
    for sql in queries {
        let over_s3 = flowsql_s3(&["--format", "csv", "-c", sql], KEYS, home.path());
        assert!(over_s3.status.success(), "{sql}: {}", text(&over_s3.stderr));
        let local = flowsql_local(&["--format", "csv", "-c", sql]);
        assert!(local.status.success(), "{sql}: {}", text(&local.stderr));
        assert_eq!(text(&over_s3.stdout), text(&local.stdout), "{sql}");
        assert!(text(&over_s3.stdout).lines().count() > 1, "{sql}: no rows");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_object_is_not_fetched_again() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    let mut options = unsigned(moto);
    options.table.cache = Some(flowsql::CacheOptions::in_folder(cache_folder()));
    let ctx = flowsql::new_context(&[format!("s3://{BUCKET}/flow-logs")], &options)
        .await
        .unwrap();
    let sql = "SELECT action, count(*), sum(bytes), count(DISTINCT srcaddr) FROM vpc_flow_logs GROUP BY 1 ORDER BY 1";
    let handle = tokio::runtime::Handle::current();
    let mut answers = Vec::new();
    let mut gets = Vec::new();
    for _ in 0..2 {
        let (answer, requests) = tokio::task::block_in_place(|| {
            moto.record(|| handle.block_on(async { rows(&ctx, sql).await }))
        });
        answers.push(answer);
        gets.push(requests.iter().filter(|r| r.is_object_get()).count());
    }
    let local = rows(&local_context(&bucket(), true).await, sql).await;
    assert_eq!(answers[0], local);
    assert_eq!(answers[1], local);
    let report = flowsql::scan_report(&ctx, TABLE).await.unwrap();
    let objects = report.summary().objects_from_cache as usize;
    assert!(objects > 0);
    assert_eq!(
        gets,
        vec![objects, 0],
        "GETs filling the cache, then reading from it"
    );
    // A new session's opening samples the newest objects' headers: the
    // cache has them, so without it the opening GETs objects and with it
    // none.
    let open = |options: SessionOptions| {
        let (opened, requests) = tokio::task::block_in_place(|| {
            moto.record(|| {
                handle.block_on(flowsql::new_context(
                    &[format!("s3://{BUCKET}/flow-logs")],
                    &options,
                ))
            })
        });
        opened.unwrap();
        requests.iter().filter(|r| r.is_object_get()).count()
    };
    let mut uncached = options.clone();
    uncached.table.cache = None;
    assert!(open(uncached) > 0, "the opening samples headers");
    assert_eq!(open(options), 0, "headers sampled from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_day_query_lists_only_that_day_and_reads_only_its_objects() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    // Unsigned requests: moto accepts them, and the table is built in this
    // process so the recording covers the query alone.
    let options = unsigned(moto);
    let ctx = flowsql::new_context(&[format!("s3://{BUCKET}/flow-logs")], &options)
        .await
        .unwrap();
    let day = "flow-logs/AWSLogs/111122223333/vpcflowlogs/us-east-1/2024/01/16/";
    let day_objects = walk(&bucket().join(day)).len();
    let sql = "SELECT count(*) FROM vpc_flow_logs WHERE aws_account_id = '111122223333' \
               AND aws_region = 'us-east-1' AND date = DATE '2024-01-16'";
    let handle = tokio::runtime::Handle::current();
    let (answer, requests) = tokio::task::block_in_place(|| {
        moto.record(|| handle.block_on(async { rows(&ctx, sql).await }))
    });
    let local = rows(&local_context(&bucket(), true).await, sql).await;
    assert_eq!(answer, local);
    assert_eq!(answer, vec![vec!["3".to_string()]]);

    let lists: Vec<&Recorded> = requests.iter().filter(|r| r.is_list()).collect();
    assert!(!lists.is_empty(), "no LIST requests recorded: {requests:?}");
    for list in &lists {
        let prefix = list.query("prefix").unwrap_or_default();
        if list.query("delimiter").is_none() {
            assert!(
                prefix.starts_with(day),
                "a recursive listing outside the day's prefix: {prefix}"
            );
        }
    }
    let gets = requests.iter().filter(|r| r.is_object_get()).count();
    assert!(
        (1..=day_objects).contains(&gets),
        "{gets} GETs for a day of {day_objects} objects: {requests:?}"
    );
}

#[test]
fn credentials_come_from_profiles_and_credential_process_and_never_show() {
    let _turn = TURN.blocking_lock();
    let moto = moto();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    std::fs::write(
        &config,
        "[profile from-process]\n\
         credential_process = printf '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \"SecretAccessKey\": \"secret-from-process\"}'\n",
    )
    .unwrap();
    let credentials = home.path().join("credentials");
    std::fs::write(
        &credentials,
        "[static]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = secret-from-file\n",
    )
    .unwrap();
    let files = [
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
    ];
    for (how, key_id, secret) in [
        (
            vec!["--profile", "from-process"],
            "AKIDPROCESS",
            "secret-from-process",
        ),
        (
            vec!["--profile", "static"],
            "AKIDSTATIC",
            "secret-from-file",
        ),
    ] {
        let mut args = how.clone();
        args.extend([
            "-c",
            "SELECT count(*) FROM vpc_flow_logs",
            "--format",
            "csv",
        ]);
        let (out, requests) = moto.record(|| flowsql_s3(&args, &files, home.path()));
        assert!(out.status.success(), "{how:?}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("count(*)\n{}\n", read_independently(&bucket()).len())
        );
        let signed_with = format!("Credential={key_id}/");
        assert!(
            requests
                .iter()
                .filter_map(|r| r.authorization.as_deref())
                .any(|a| a.contains(&signed_with)),
            "{how:?}: no request signed with {key_id}"
        );
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!all.contains(secret));
    }
    // The environment's keys, with EXPLAIN: the secret appears nowhere.
    let out = flowsql_s3(
        &[
            "-c",
            "EXPLAIN SELECT count(*) FROM vpc_flow_logs",
            "--format",
            "csv",
        ],
        KEYS,
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("FlowLogScanExec"), "{all}");
    assert!(!all.contains("secret-from-environment"));
}

#[test]
fn no_credentials_and_a_missing_bucket_each_give_one_clear_line() {
    let _turn = TURN.blocking_lock();
    let moto = moto();
    let home = tempfile::tempdir().unwrap();
    let out = flowsql_s3(&["-c", "SELECT 1"], &[], home.path());
    assert_one_line_failure(&out, &["credentials"]);

    let out = flowsql_at(
        moto,
        &[
            "s3://no-such-bucket/flow-logs",
            "--no-sign-request",
            "-c",
            "SELECT 1",
        ],
        &[],
        home.path(),
    );
    assert_one_line_failure(&out, &["no-such-bucket", "does not exist"]);
}

#[test]
fn dry_run_says_what_would_be_listed_and_read_without_reading() {
    let _turn = TURN.blocking_lock();
    let moto = moto();
    let home = tempfile::tempdir().unwrap();
    let sql = "SELECT count(*) FROM vpc_flow_logs WHERE date = DATE '2024-01-16'";
    let day_objects = walk(&bucket())
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .filter(|p| {
            p.contains("vpcflowlogs")
                && p.ends_with(".log.gz")
                && (p.contains("/2024/01/16/") || p.contains("/day=16/"))
        })
        .count();
    let (dry, dry_requests) =
        moto.record(|| flowsql_s3(&["--dry-run", "-c", sql], KEYS, home.path()));
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let stdout = text(&dry.stdout);
    assert!(
        stdout.starts_with(&format!("would read {day_objects} object(s)")),
        "{stdout}"
    );
    assert!(stdout.contains("2024/01/16"), "{stdout}");
    let (real, real_requests) = moto.record(|| flowsql_s3(&["-c", sql], KEYS, home.path()));
    assert!(real.status.success(), "{}", text(&real.stderr));
    // Opening the table reads no object; the dry run reads none of the
    // query's objects either.
    let gets = |requests: &[Recorded]| requests.iter().filter(|r| r.is_object_get()).count();
    let urls = |requests: &[Recorded]| -> Vec<String> {
        let mut urls: Vec<String> = requests
            .iter()
            .filter(|r| r.is_object_get())
            .map(|r| r.url.path().to_string())
            .collect();
        urls.sort();
        urls
    };
    assert_eq!(
        gets(&real_requests) - gets(&dry_requests),
        day_objects,
        "dry run GETs {:#?}\nreal GETs {:#?}",
        urls(&dry_requests),
        urls(&real_requests)
    );
}

#[test]
fn bad_keys_a_wrong_secret_and_access_denied_each_give_one_clear_line() {
    // moto checks signatures and IAM permissions after its first three
    // requests: the bucket, a user without policies, and that user's key.
    let moto = start_moto(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    assert_eq!(moto.http("PUT", "/locked", b"").0, 200);
    let iam = [
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        ),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (status, _) = moto.http_with(
        "POST",
        "/",
        &iam,
        b"Action=CreateUser&UserName=reader&Version=2010-05-08",
    );
    assert_eq!(status, 200);
    let (status, created) = moto.http_with(
        "POST",
        "/",
        &iam,
        b"Action=CreateAccessKey&UserName=reader&Version=2010-05-08",
    );
    assert_eq!(status, 200, "{created}");
    let field = |name: &str| -> String {
        let open = format!("<{name}>");
        let at = created.find(&open).unwrap() + open.len();
        created[at..created[at..].find('<').unwrap() + at].to_string()
    };
    let (key_id, secret) = (field("AccessKeyId"), field("SecretAccessKey"));
    let home = tempfile::tempdir().unwrap();
    for (key_id, secret, expected) in [
        (
            "AKIDNOTAREALKEY",
            "whatever",
            "the AWS access key id is not valid",
        ),
        (
            key_id.as_str(),
            "not-the-secret",
            "the AWS secret key does not match",
        ),
        (key_id.as_str(), secret.as_str(), "access denied"),
    ] {
        let out = flowsql_at(
            &moto,
            &["s3://locked/flow-logs", "-c", "SELECT 1"],
            &[
                ("AWS_ACCESS_KEY_ID", key_id),
                ("AWS_SECRET_ACCESS_KEY", secret),
            ],
            home.path(),
        );
        let stderr = assert_one_line_failure(&out, &[expected, "locked"]);
        assert!(!stderr.contains(secret), "{stderr}");
    }
}

/// A bucket of many accounts: [`BIG_ACCOUNTS`] accounts x 4 regions, one
/// small object each for 2026-10-02, and one older object (2026-09-01)
/// whose header has a field no flow-log version documents.
const BIG_BUCKET: &str = "flowsql-big";
const BIG_ACCOUNTS: u64 = 200;
const BIG_REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"];
const HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

fn account(i: u64) -> String {
    format!("{:012}", 100_000_000_000 + i)
}

fn big_bucket() -> &'static Moto {
    static BIG: OnceLock<()> = OnceLock::new();
    let moto = moto();
    BIG.get_or_init(|| {
        use std::io::Write as _;
        assert_eq!(moto.http("PUT", &format!("/{BIG_BUCKET}"), b"").0, 200);
        let put = |key: &str, text: &str| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            let body = gz.finish().unwrap();
            let (status, answer) = moto.http_with(
                "PUT",
                &format!("/{BIG_BUCKET}/{key}"),
                &[("x-amz-acl", "public-read")],
                &body,
            );
            assert_eq!(status, 200, "upload {key}: {answer}");
        };
        let key = |acct: &str, region: &str, day: &str, stamp: &str| {
            format!(
                "big/AWSLogs/{acct}/vpcflowlogs/{region}/{day}/{acct}_vpcflowlogs_{region}_fl-0123456789abcdef0_{stamp}_abcd1234.log.gz"
            )
        };
        for i in 0..BIG_ACCOUNTS {
            let acct = account(i);
            for region in BIG_REGIONS {
                let text = format!(
                    "{HEADER}\n2 {acct} eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 {i} 1790899200 1790899260 ACCEPT OK\n\
                     2 {acct} eni-1 10.0.0.2 10.0.0.1 49152 443 6 10 1 1790899200 1790899260 REJECT OK\n"
                );
                put(&key(&acct, region, "2026/10/02", "20261002T0000Z"), &text);
            }
        }
        let acct = account(7);
        let text = format!("{HEADER} brand-new-field\n2 {acct} eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 5 1788220800 1788220860 ACCEPT OK x\n");
        put(&key(&acct, "us-east-1", "2026/09/01", "20260901T0000Z"), &text);
    });
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_account_query_over_a_big_bucket_lists_only_that_account() {
    // Uploads are requests too: they wait for the turn.
    let _turn = TURN.lock().await;
    let moto = tokio::task::block_in_place(big_bucket);
    let home = tempfile::tempdir().unwrap();
    let queried = account(150);
    let sql = format!(
        "SELECT count(*) FROM vpc_flow_logs WHERE aws_account_id = '{queried}' \
         AND aws_region = 'us-east-1' AND date = DATE '2026-10-02'"
    );
    let location = format!("s3://{BIG_BUCKET}/big");

    // The whole run, opening included, through the binary.
    let (out, requests) = tokio::task::block_in_place(|| {
        moto.record(|| {
            flowsql_at(
                moto,
                &[
                    &location,
                    "--no-sign-request",
                    "--format",
                    "csv",
                    "-c",
                    &sql,
                ],
                &[],
                home.path(),
            )
        })
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "count(*)\n2\n");
    let lists = requests.iter().filter(|r| r.is_list()).count();
    // Opening: the location's folders, AWSLogs/, one account's regions and
    // the first page of one region; the query: AWSLogs/, the account's
    // regions, the day. A bucket of 200 accounts x 4 regions costs what one
    // of 2 would.
    assert!(lists <= 7, "{lists} LIST requests: {requests:#?}");
    assert!(
        requests.len() <= 10,
        "{} requests: {requests:#?}",
        requests.len()
    );

    // The query alone, in a table opened beforehand: no listing of another
    // account's folders.
    let options = unsigned(moto);
    let ctx = flowsql::new_context(&[location.as_str()], &options)
        .await
        .unwrap();
    let handle = tokio::runtime::Handle::current();
    let (answer, requests) = tokio::task::block_in_place(|| {
        moto.record(|| handle.block_on(async { rows(&ctx, &sql).await }))
    });
    assert_eq!(answer, vec![vec!["2".to_string()]]);
    let awslogs = "big/AWSLogs/";
    let own = format!("{awslogs}{queried}/");
    for list in requests.iter().filter(|r| r.is_list()) {
        let prefix = list.query("prefix").unwrap_or_default();
        assert!(
            prefix == awslogs || prefix.starts_with(&own),
            "a listing outside the queried account: {prefix}"
        );
    }
}

#[test]
fn a_count_over_a_big_bucket_is_right_and_names_an_old_unknown_field() {
    let _turn = TURN.blocking_lock();
    let moto = big_bucket();
    let home = tempfile::tempdir().unwrap();
    let location = format!("s3://{BIG_BUCKET}/big");
    let out = flowsql_at(
        moto,
        &[
            &location,
            "--no-sign-request",
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS n, sum(bytes) AS b, count(DISTINCT aws_account_id) AS accounts FROM vpc_flow_logs",
        ],
        &[],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Two records per account and region, and the old one.
    let records = BIG_ACCOUNTS * 4 * 2 + 1;
    let bytes: u64 = (0..BIG_ACCOUNTS).map(|i| (i + 1) * 4).sum::<u64>() + 5;
    assert_eq!(
        text(&out.stdout),
        format!("n,b,accounts\n{records},{bytes},{BIG_ACCOUNTS}\n")
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("brand-new-field") && stderr.contains("20260901T0000Z_abcd1234.log.gz"),
        "{stderr}"
    );
}

/// A bucket of its own (so the other tests' bucket-wide listings never
/// see it) holding the fixture tree with every other object as Parquet.
const PARQUET_BUCKET: &str = "flowsql-parquet";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_objects_over_s3_read_and_convert_as_locally() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    let mixed = crate::parquet::mixed_bucket();
    // Public, as the conversion below writes with unsigned requests too.
    let public = [("x-amz-acl", "public-read-write")];
    let (status, body) = moto.http_with("PUT", &format!("/{PARQUET_BUCKET}"), &public, b"");
    assert_eq!(status, 200, "{body}");
    for file in walk(mixed.path()) {
        let key = file.strip_prefix(mixed.path()).unwrap().to_str().unwrap();
        let (status, body) = moto.http_with(
            "PUT",
            &format!("/{PARQUET_BUCKET}/{key}"),
            &[("x-amz-acl", "public-read")],
            &std::fs::read(&file).unwrap(),
        );
        assert_eq!(status, 200, "upload {key}: {body}");
    }
    let options = unsigned(moto);
    let ctx = flowsql::new_context(&[format!("s3://{PARQUET_BUCKET}/flow-logs")], &options)
        .await
        .unwrap();
    let text = local_context(&bucket(), true).await;
    for sql in [
        "SELECT count(*), sum(bytes), count(vpc_id) FROM vpc_flow_logs",
        "SELECT aws_region, date, action, count(*) FROM vpc_flow_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        "SELECT srcaddr, dstaddr, bytes FROM vpc_flow_logs WHERE dstport = 22 ORDER BY 1, 2, 3",
    ] {
        assert_eq!(rows(&ctx, sql).await, rows(&text, sql).await, "{sql}");
    }

    // Converted into the same bucket, outside the LOCATION, then read back.
    let copy = "COPY (SELECT * FROM vpc_flow_logs WHERE aws_account_id = '111122223333') \
                TO 's3://flowsql-parquet/converted'";
    flowsql::sql(&ctx, copy)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let back = flowsql::new_context(&[format!("s3://{PARQUET_BUCKET}/converted")], &options)
        .await
        .unwrap();
    let sql = "SELECT aws_region, count(*), sum(packets) FROM vpc_flow_logs GROUP BY 1 ORDER BY 1";
    let want = rows(
        &text,
        "SELECT aws_region, count(*), sum(packets) FROM vpc_flow_logs \
         WHERE aws_account_id = '111122223333' GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(rows(&back, sql).await, want);
}

/// A bucket of its own, changed between two queries of one session.
const CHANGING_BUCKET: &str = "flowsql-changing";

/// A later query of a session sends its folder listings ahead, from the
/// folders the session saw before: it must still find every folder new
/// since (a day, a month, a year, a region, an account), leave out a day
/// and a month emptied since, and list nothing a new session would not
/// but the month it had seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_query_finds_every_folder_new_since_the_last() {
    use chrono::NaiveDate;
    use flowsql::internals::generate::{TreeSpec, generate_tree};
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    let (status, body) = moto.http_with(
        "PUT",
        &format!("/{CHANGING_BUCKET}"),
        &[("x-amz-acl", "public-read")],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    // The tree as it is now, kept locally too: the answers' oracle.
    let mirror = tempfile::tempdir().unwrap();
    let add = |account: &str, region: &str, first_day: (i32, u32, u32), days: u32| {
        let spec = TreeSpec {
            accounts: vec![account.to_string()],
            regions: vec![region.to_string()],
            first_day: NaiveDate::from_ymd_opt(first_day.0, first_day.1, first_day.2).unwrap(),
            days,
            files_per_day: 2,
            records_per_file: 20,
            seed: u64::from(first_day.2) + u64::from(days),
            ..TreeSpec::default()
        };
        generate_tree(mirror.path(), &spec, 1).unwrap();
    };
    let mut stored: Vec<String> = Vec::new();
    let sync = |stored: &mut Vec<String>| {
        let now: Vec<String> = walk(mirror.path())
            .iter()
            .map(|f| {
                f.strip_prefix(mirror.path())
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for key in now.iter().filter(|k| !stored.contains(k)) {
            let body = std::fs::read(mirror.path().join(key)).unwrap();
            let path = format!("/{CHANGING_BUCKET}/{key}");
            let (status, text) =
                moto.http_with("PUT", &path, &[("x-amz-acl", "public-read")], &body);
            assert_eq!(status, 200, "upload {key}: {text}");
        }
        for key in stored.iter().filter(|k| !now.contains(k)) {
            let (status, text) = moto.http("DELETE", &format!("/{CHANGING_BUCKET}/{key}"), b"");
            assert_eq!(status, 204, "delete {key}: {text}");
        }
        *stored = now;
    };
    let (a, b) = ("111122223333", "444455556666");
    add(a, "us-east-1", (2025, 11, 29), 2);
    add(a, "us-east-1", (2025, 12, 29), 2);
    tokio::task::block_in_place(|| sync(&mut stored));

    let location = format!("s3://{CHANGING_BUCKET}");
    let options = unsigned(moto);
    let session = flowsql::new_context(std::slice::from_ref(&location), &options)
        .await
        .unwrap();
    let sql = "SELECT aws_account_id, aws_region, date, count(*), sum(bytes) \
               FROM vpc_flow_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let days = |answer: &[Vec<String>]| answer.len();
    let first = rows(&session, sql).await;
    assert_eq!(
        first,
        rows(&local_context(mirror.path(), true).await, sql).await
    );
    assert_eq!(days(&first), 4);

    // A day in a month seen, a new year and month, a month of a year
    // seen, a region, an account; and a day and a month seen, emptied.
    add(a, "us-east-1", (2025, 12, 31), 2);
    add(a, "us-east-1", (2025, 10, 15), 1);
    add(a, "eu-west-1", (2025, 12, 30), 1);
    add(b, "us-east-1", (2025, 12, 30), 1);
    let year = format!("AWSLogs/{a}/vpcflowlogs/us-east-1/2025");
    for emptied in ["12/29", "11"] {
        std::fs::remove_dir_all(mirror.path().join(&year).join(emptied)).unwrap();
    }
    tokio::task::block_in_place(|| sync(&mut stored));

    let handle = tokio::runtime::Handle::current();
    let lists = |ctx: &datafusion::prelude::SessionContext| {
        let (answer, requests) = tokio::task::block_in_place(|| {
            moto.record(|| handle.block_on(async { rows(ctx, sql).await }))
        });
        let mut lists: Vec<String> = requests
            .iter()
            .filter(|r| r.is_list())
            .map(|r| r.url.query().unwrap_or_default().to_string())
            .collect();
        lists.sort();
        (answer, lists)
    };
    let (later, later_lists) = lists(&session);
    let want = rows(&local_context(mirror.path(), true).await, sql).await;
    assert_eq!(later, want);
    assert_eq!(days(&later), 6, "{later:?}");
    let fresh = flowsql::new_context(&[location], &options).await.unwrap();
    let (again, fresh_lists) = lists(&fresh);
    assert_eq!(again, want);
    // The month gone may have been listed, sent ahead, and no more.
    let mut extra = later_lists.clone();
    for list in &fresh_lists {
        let at = extra.iter().position(|l| l == list);
        assert!(at.is_some(), "not listed by the later query: {list}");
        extra.remove(at.unwrap());
    }
    let gone = format!(
        "delimiter=%2F&list-type=2&prefix={}%2F11%2F",
        year.replace('/', "%2F")
    );
    assert!(extra.iter().all(|l| *l == gone), "{extra:?} besides {gone}");
}
