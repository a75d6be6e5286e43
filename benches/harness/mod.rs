//! A small timing harness for `cargo bench` (criterion would add a serde
//! feature that rebuilds all of DataFusion): a warm-up run, then `runs`
//! timed runs; prints the median, the spread and the throughput.

use std::time::{Duration, Instant};

/// What one run processes, for throughput.
pub struct Work {
    pub bytes: u64,
    pub rows: u64,
}

/// Times `run` and prints one line: name, median, min–max, MB/s, Mrows/s.
pub fn measure(name: &str, runs: usize, work: Work, mut run: impl FnMut()) {
    run();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    let seconds = median.as_secs_f64();
    println!(
        "{name:<28} median {:>8.1} ms  (min {:.1}, max {:.1})  {:>8.1} MB/s  {:>6.2} Mrows/s",
        seconds * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        work.bytes as f64 / seconds / 1e6,
        work.rows as f64 / seconds / 1e6,
    );
}
