//! S3 faults and cancellation, through [`FaultProxy`] in front of the moto
//! server of `s3.rs`: throttling, server errors, dropped connections, slow
//! and cut-short bodies either are retried into the right answer or end in
//! one clear error; nothing hangs; dropping a query stops its requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use flowsql::{FlowLogOptions, S3Options, SessionOptions};
use futures::StreamExt;

use crate::fault_proxy::{Fault, FaultProxy, Seen};
use crate::s3::{BUCKET, TURN, moto};
use crate::support::*;

/// A session over the moto bucket through `proxy`, unsigned.
async fn context_through(proxy: &FaultProxy, max_retries: usize) -> Result<SessionContext, String> {
    context_listing_through(
        proxy,
        max_retries,
        FlowLogOptions::default().listing_concurrency,
    )
    .await
}

async fn context_listing_through(
    proxy: &FaultProxy,
    max_retries: usize,
    listing_concurrency: usize,
) -> Result<SessionContext, String> {
    let options = SessionOptions {
        table: FlowLogOptions {
            s3: S3Options {
                endpoint_url: Some(proxy.endpoint()),
                no_sign_request: true,
                max_retries: Some(max_retries),
                ..S3Options::default()
            },
            listing_concurrency,
            ..FlowLogOptions::default()
        },
        ..SessionOptions::default()
    };
    flowsql::new_context(&[format!("s3://{BUCKET}/flow-logs")], &options)
        .await
        .map_err(|e| e.to_string())
}

async fn try_rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    Ok(batches_to_rows(&batches))
}

const QUERIES: &[&str] = &[
    "SELECT count(*), sum(bytes), count(DISTINCT srcaddr) FROM vpc_flow_logs",
    "SELECT aws_account_id, aws_region, date, count(*), sum(packets) FROM vpc_flow_logs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
];

/// Whether an earlier request was the same (method, path and range): a
/// retry, or a second read of the same bytes.
fn repeated(request: &Seen, before: &[Seen]) -> bool {
    before.iter().any(|s| {
        s.method == request.method && s.target == request.target && s.range == request.range
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_server_errors_drops_and_cut_bodies_are_retried_into_the_right_answer() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    // The first attempt at every listing is throttled; the first attempt at
    // every object read gets one of four faults in turn; retries pass.
    let kinds = [
        Fault::InternalError,
        Fault::SlowDown,
        Fault::Drop,
        Fault::Truncate,
    ];
    let mut next = 0;
    let proxy = FaultProxy::start(moto.port, move |request, before| {
        if repeated(request, before) {
            Fault::Pass
        } else if request.is_list() {
            Fault::SlowDown
        } else if request.is_object_get() {
            next += 1;
            kinds[(next - 1) % kinds.len()]
        } else {
            Fault::Pass
        }
    });
    let ctx = context_through(&proxy, 5).await.unwrap();
    let local = local_context(&bucket(), true).await;
    for sql in QUERIES {
        let over_s3 = try_rows(&ctx, sql).await.unwrap();
        assert_eq!(over_s3, rows(&local, sql).await, "{sql}");
    }
    let seen = proxy.seen();
    // flowsql never writes to a LOCATION: reads only.
    assert!(
        seen.iter().all(|s| s.method == "GET" || s.method == "HEAD"),
        "{seen:#?}"
    );
    for kind in kinds.iter().chain([&Fault::SlowDown]) {
        assert!(
            seen.iter().filter(|s| s.fault == *kind).count() >= 2,
            "{kind:?} was injected fewer than twice: {seen:#?}"
        );
    }
    // A body cut short is resumed where it stopped, not read again whole.
    assert!(
        seen.iter().any(|s| s
            .range
            .as_deref()
            .is_some_and(|r| !r.starts_with("bytes=0-"))),
        "no resumed read after a cut body: {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_faults_end_in_one_clear_error_naming_the_object_or_prefix() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    let victim = "fl-0a1b2c3d4e5f60001";
    let broken = Arc::new(AtomicBool::new(false));
    let proxy = {
        let broken = Arc::clone(&broken);
        FaultProxy::start(moto.port, move |request, _| {
            if broken.load(Ordering::Relaxed)
                && request.is_object_get()
                && request.target.contains(victim)
            {
                Fault::InternalError
            } else {
                Fault::Pass
            }
        })
    };
    let ctx = context_through(&proxy, 2).await.unwrap();
    broken.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let error = try_rows(&ctx, QUERIES[0]).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        error.contains(&format!("s3://{BUCKET}/flow-logs/AWSLogs/")),
        "{error}"
    );
    assert!(error.contains(victim), "{error}");
    assert!(error.contains("500"), "{error}");
    // Three attempts per read of the broken objects (one and two retries).
    let attempts = proxy
        .seen()
        .iter()
        .filter(|s| s.fault == Fault::InternalError)
        .count();
    assert!(attempts >= 3, "{attempts} attempts");

    // Listings that always fail: opening the table names the prefix.
    let proxy = FaultProxy::start(moto.port, |request, _| {
        if request.is_list() {
            Fault::SlowDown
        } else {
            Fault::Pass
        }
    });
    let Err(error) = context_through(&proxy, 1).await else {
        panic!("the table opened though every listing failed");
    };
    assert!(error.contains(BUCKET), "{error}");
    assert!(
        error.contains("503") || error.contains("SlowDown"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_give_the_right_answer() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    let proxy = FaultProxy::start(moto.port, |request, _| {
        if request.is_object_get() || request.is_list() {
            Fault::Slow(Duration::from_millis(5))
        } else {
            Fault::Pass
        }
    });
    let ctx = context_through(&proxy, 0).await.unwrap();
    let local = local_context(&bucket(), true).await;
    let over_s3 = try_rows(&ctx, QUERIES[1]).await.unwrap();
    assert_eq!(over_s3, rows(&local, QUERIES[1]).await);
    assert!(
        proxy
            .seen()
            .iter()
            .all(|s| s.fault != Fault::Pass || !s.is_object_get())
    );
}

/// A running `SELECT *` over the whole table.
async fn every_record(ctx: &SessionContext) -> SendableRecordBatchStream {
    let df = ctx.sql("SELECT * FROM vpc_flow_logs").await.unwrap();
    df.execute_stream().await.unwrap()
}

/// Requests and body bytes stay where they are once `settle` has passed.
async fn assert_quiet_after(proxy: &FaultProxy, settle: Duration, what: &str) -> usize {
    tokio::time::sleep(settle).await;
    let (requests, bytes) = (proxy.seen().len(), proxy.body_bytes());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(proxy.seen().len(), requests, "{what}: requests went on");
    assert_eq!(proxy.body_bytes(), bytes, "{what}: reading went on");
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_query_stops_its_listing_and_reading() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    let slow = Arc::new(AtomicBool::new(false));
    let proxy = {
        let slow = Arc::clone(&slow);
        FaultProxy::start(moto.port, move |request, _| {
            if slow.load(Ordering::Relaxed) && (request.is_object_get() || request.is_list()) {
                Fault::Slow(Duration::from_millis(150))
            } else {
                Fault::Pass
            }
        })
    };
    let ctx = context_through(&proxy, 0).await.unwrap();
    slow.store(true, Ordering::Relaxed);
    let objects = walk(&bucket())
        .iter()
        .filter(|p| p.to_str().unwrap().ends_with(".log.gz"))
        .count();

    // Dropped while listing: the scan lists as it runs. With one listing
    // at a time, most of the folder listings sent ahead (from what the
    // opening saw) still wait for their turn when the query goes.
    slow.store(false, Ordering::Relaxed);
    let one_at_a_time = context_listing_through(&proxy, 0, 1).await.unwrap();
    slow.store(true, Ordering::Relaxed);
    let mut after = 0;
    for ctx in [&ctx, &one_at_a_time] {
        let before = proxy.seen().len();
        let mut stream = every_record(ctx).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(200), stream.next())
                .await
                .is_err(),
            "a batch came before the listing could be dropped"
        );
        drop(stream);
        after = assert_quiet_after(&proxy, Duration::from_millis(500), "listing").await;
        assert!(after > before, "nothing was listed");
    }

    // Dropped while reading: one batch, then the stream goes.
    slow.store(false, Ordering::Relaxed);
    let mut stream = every_record(&ctx).await;
    slow.store(true, Ordering::Relaxed);
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.num_rows() > 0);
    drop(stream);
    let start_of_query = after;
    let total = assert_quiet_after(&proxy, Duration::from_millis(500), "reading").await;
    let gets = proxy.seen()[start_of_query..]
        .iter()
        .filter(|s| s.is_object_get())
        .count();
    assert!(
        gets < objects,
        "{gets} of {objects} objects were requested after the stream was dropped"
    );
    assert!(total > start_of_query);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_starts_while_a_slow_listing_is_still_running() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    // The listing of the last day folder in listing order answers slowly.
    let last_day = "aws-region=us-east-1/year=2024/month=01/day=15/";
    let pause = Duration::from_secs(1);
    let slow = Arc::new(AtomicBool::new(false));
    let proxy = {
        let slow = Arc::clone(&slow);
        FaultProxy::start(moto.port, move |request, _| {
            let slow_listing = request.is_list()
                && request.query("delimiter").is_none()
                && request
                    .query("prefix")
                    .is_some_and(|p| p.ends_with(last_day));
            if slow.load(Ordering::Relaxed) && slow_listing {
                Fault::Slow(pause)
            } else {
                Fault::Pass
            }
        })
    };
    let ctx = context_through(&proxy, 0).await.unwrap();
    slow.store(true, Ordering::Relaxed);
    let sql = "SELECT count(*), sum(bytes) FROM vpc_flow_logs";
    let over_s3 = try_rows(&ctx, sql).await.unwrap();
    assert_eq!(
        over_s3,
        rows(&local_context(&bucket(), true).await, sql).await
    );
    let seen = proxy.seen();
    let slow_listing = seen
        .iter()
        .find(|s| s.fault != Fault::Pass)
        .expect("the last day was listed");
    let read_meanwhile = seen
        .iter()
        .filter(|s| s.is_object_get() && !s.target.contains("day=15"))
        .filter(|s| s.at > slow_listing.at && s.at < slow_listing.at + pause)
        .count();
    assert!(
        read_meanwhile > 0,
        "no object was read while the last listing was answering: {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_requested_ahead_while_earlier_ones_wait() {
    let moto = tokio::task::block_in_place(moto);
    let _turn = TURN.lock().await;
    // Every object GET waits before it is answered, as far from S3 as a
    // laptop can be; reading must not wait for them one or two at a time.
    let latency = Duration::from_millis(500);
    let proxy = FaultProxy::start(moto.port, move |request, _| {
        if request.is_object_get() {
            Fault::Late(latency)
        } else {
            Fault::Pass
        }
    });
    let ctx = context_through(&proxy, 0).await.unwrap();
    let sql = "SELECT count(*), sum(bytes) FROM vpc_flow_logs";
    let started = proxy.seen().len();
    assert_eq!(
        try_rows(&ctx, sql).await.unwrap(),
        rows(&local_context(&bucket(), true).await, sql).await
    );
    let gets: Vec<Seen> = proxy.seen()[started..]
        .iter()
        .filter(|s| s.is_object_get())
        .cloned()
        .collect();
    let first = gets.first().expect("objects were read").at;
    let before_any_answer = gets.iter().filter(|s| s.at < first + latency).count();
    // Without read-ahead, two readers each wait on one object and open
    // one more: four at most.
    assert!(
        before_any_answer >= 6,
        "{before_any_answer} of {} object GETs were sent before the first could be answered",
        gets.len()
    );
}
