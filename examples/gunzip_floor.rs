//! The floor under any scan of a tree: gunzip alone, every `.log.gz`
//! object inflated on N threads and the text thrown away, two ways:
//! flate2 with zlib-rs streaming 32 KiB at a time (the floor the
//! performance goals are stated against) and libdeflate inflating each
//! object whole (what flowsql does for objects of a few MB).
//!
//! ```text
//! cargo run --release --example gunzip_floor -- /tmp/tree [THREADS] [RUNS]
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(
        args.next()
            .expect("usage: gunzip_floor TREE [THREADS] [RUNS]"),
    );
    let threads: usize = args.next().map_or(2, |t| t.parse().expect("THREADS"));
    let runs: usize = args.next().map_or(3, |r| r.parse().expect("RUNS"));
    let mut objects = Vec::new();
    collect_objects(&root, &mut objects);
    objects.sort();
    for (name, inflate) in [
        ("zlib-rs streaming", zlib_rs_streaming as fn(&[u8]) -> usize),
        ("libdeflate whole", libdeflate_whole),
    ] {
        let mut walls = Vec::new();
        let mut text = 0;
        for _ in 0..runs {
            let started = Instant::now();
            text = inflate_all(&objects, threads, inflate);
            walls.push(started.elapsed().as_secs_f64());
        }
        walls.sort_by(f64::total_cmp);
        println!(
            "{name}: {:.2} s (median of {runs}), {} objects, {:.1} MB of text, {threads} threads",
            walls[runs / 2],
            objects.len(),
            text as f64 / 1e6
        );
    }
}

fn collect_objects(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            collect_objects(&path, out);
        } else if path.to_string_lossy().ends_with(".log.gz") {
            out.push(path);
        }
    }
}

/// Reads and inflates every object on `threads` threads taking the next
/// object from a shared counter; returns the bytes of text.
fn inflate_all(objects: &[PathBuf], threads: usize, inflate: fn(&[u8]) -> usize) -> usize {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut text = 0;
                    while let Some(path) = objects.get(next.fetch_add(1, Ordering::Relaxed)) {
                        text += inflate(&std::fs::read(path).expect("read object"));
                    }
                    text
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

struct Discard(usize);

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn zlib_rs_streaming(gz: &[u8]) -> usize {
    let mut gunzip = flate2::write::MultiGzDecoder::new(Discard(0));
    for chunk in gz.chunks(256 * 1024) {
        gunzip.write_all(chunk).expect("gzip");
    }
    gunzip.try_finish().expect("gzip");
    gunzip.get_ref().0
}

fn libdeflate_whole(gz: &[u8]) -> usize {
    flowsql::internals::gunzip_single_member(gz, usize::MAX)
        .expect("one gzip member")
        .len()
}
