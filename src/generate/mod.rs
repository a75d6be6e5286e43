//! A deterministic generator of delivery trees in AWS's layout, for tests,
//! benchmarks and memory measurements, as gzip text or as AWS's Parquet
//! ([`aws_parquet`]). The same [`TreeSpec`] always writes the same bytes.

pub mod aws_parquet;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, NaiveDateTime};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::table::layout::{AccountFolder, Grammar};

/// The default (version 2) header line.
pub const DEFAULT_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// What to generate.
#[derive(Debug, Clone)]
pub struct TreeSpec {
    /// Account folders.
    pub accounts: Vec<String>,
    /// Region folders.
    pub regions: Vec<String>,
    /// The first day.
    pub first_day: NaiveDate,
    /// How many days.
    pub days: u32,
    /// Objects per account, region and day (at most 288, one per 5 minutes).
    pub files_per_day: u32,
    /// Records per object.
    pub records_per_file: u32,
    /// Folder grammar.
    pub grammar: Grammar,
    /// Hourly folders.
    pub hourly: bool,
    /// Seed for every generated value.
    pub seed: u64,
    /// Write `.log.parquet` objects as AWS does instead of `.log.gz` text
    /// (the same records).
    pub parquet: bool,
}

impl Default for TreeSpec {
    /// 10.08 million records in 672 objects: 7 days, 2 accounts, 2 regions,
    /// 24 objects a day of 15,000 records (the benchmark tree).
    fn default() -> Self {
        Self {
            accounts: vec!["111122223333".into(), "444455556666".into()],
            regions: vec!["us-east-1".into(), "eu-west-1".into()],
            first_day: NaiveDate::from_ymd_opt(2026, 10, 1).expect("valid date"),
            days: 7,
            files_per_day: 24,
            records_per_file: 15_000,
            grammar: Grammar::Positional,
            hourly: false,
            seed: 42,
            parquet: false,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeSummary {
    /// Objects written.
    pub files: u64,
    /// Records written (header lines not counted).
    pub records: u64,
    /// Compressed bytes written.
    pub compressed_bytes: u64,
}

/// A small, fast, deterministic random source (SplitMix64), seeded by its
/// state; the unit tests draw their random inputs from it too.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct FileJob {
    path: PathBuf,
    account: String,
    file_time: NaiveDateTime,
    seed: u64,
}

/// Writes the tree below `root` (which becomes the folder above `AWSLogs/`),
/// using up to `threads` threads to compress.
pub fn generate_tree(root: &Path, spec: &TreeSpec, threads: usize) -> std::io::Result<TreeSummary> {
    let files_per_day = spec.files_per_day.clamp(1, 288);
    let step = 288 / files_per_day;
    let mut jobs = Vec::new();
    for account in &spec.accounts {
        let folder = AccountFolder {
            grammar: spec.grammar,
            account: account.clone(),
        };
        for region in &spec.regions {
            for day in 0..spec.days {
                let date = spec.first_day + Duration::days(i64::from(day));
                for file in 0..files_per_day {
                    let file_time = date.and_hms_opt(0, 0, 0).expect("midnight")
                        + Duration::minutes(i64::from(file * step) * 5);
                    let mut dir = root.join("AWSLogs").join(folder.day_folder(region, date));
                    if spec.hourly {
                        let hour = file_time.format("%H").to_string();
                        dir = match spec.grammar {
                            Grammar::Positional => dir.join(hour),
                            Grammar::Hive => dir.join(format!("hour={hour}")),
                        };
                    }
                    let index = jobs.len() as u64;
                    let name = format!(
                        "{account}_vpcflowlogs_{region}_fl-{:017x}_{}_{:08x}.log.{}",
                        spec.seed ^ 0x0f1e_2d3c,
                        file_time.format("%Y%m%dT%H%MZ"),
                        SplitMix(spec.seed ^ index).next() as u32,
                        if spec.parquet { "parquet" } else { "gz" },
                    );
                    jobs.push(FileJob {
                        path: dir.join(name),
                        account: account.clone(),
                        file_time,
                        seed: spec.seed.wrapping_mul(1_000_003).wrapping_add(index),
                    });
                }
            }
        }
    }
    let threads = threads.max(1);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let results: Vec<std::io::Result<TreeSummary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| scope.spawn(move || write_files(part, spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("generator thread panicked")))
            })
            .collect()
    });
    let mut summary = TreeSummary::default();
    for result in results {
        let part = result?;
        summary.files += part.files;
        summary.records += part.records;
        summary.compressed_bytes += part.compressed_bytes;
    }
    Ok(summary)
}

fn write_files(jobs: &[FileJob], spec: &TreeSpec) -> std::io::Result<TreeSummary> {
    let records = spec.records_per_file;
    let mut summary = TreeSummary::default();
    let mut text = String::new();
    for job in jobs {
        text.clear();
        text.push_str(DEFAULT_HEADER);
        text.push('\n');
        let mut rng = SplitMix(job.seed);
        for _ in 0..records {
            push_record(&mut text, &mut rng, &job.account, job.file_time);
        }
        if let Some(parent) = job.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::io::BufWriter::new(std::fs::File::create(&job.path)?);
        if spec.parquet {
            write_parquet(file, &text)?;
        } else {
            let mut gz = GzEncoder::new(file, Compression::default());
            gz.write_all(text.as_bytes())?;
            gz.finish()?.flush()?;
        }
        summary.files += 1;
        summary.records += u64::from(records);
        summary.compressed_bytes += std::fs::metadata(&job.path)?.len();
    }
    Ok(summary)
}

/// Writes the text object `text` (header line, then records) as AWS's Parquet.
fn write_parquet(out: impl Write + Send, text: &str) -> std::io::Result<()> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    let records: Vec<Vec<&str>> = lines.map(|line| line.split(' ').collect()).collect();
    aws_parquet::write_aws_parquet(out, &header, &records, aws_parquet::MissingStrings::Null)
        .map_err(std::io::Error::other)
}

/// One default-format record whose `end` falls in the file's 5-minute bucket.
fn push_record(text: &mut String, rng: &mut SplitMix, account: &str, file_time: NaiveDateTime) {
    use std::fmt::Write as _;
    let end = file_time.and_utc().timestamp() + rng.below(300) as i64;
    let start = end - rng.below(600) as i64;
    let eni = rng.below(64);
    if rng.below(100) == 0 {
        let _ = writeln!(
            text,
            "2 {account} eni-{eni:017x} - - - - - - - {start} {end} - NODATA"
        );
        return;
    }
    let inside = |rng: &mut SplitMix| {
        format!(
            "10.{}.{}.{}",
            rng.below(4),
            rng.below(256),
            1 + rng.below(254)
        )
    };
    let outside = |rng: &mut SplitMix| {
        format!(
            "{}.{}.{}.{}",
            1 + rng.below(223),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        )
    };
    let (src, dst) = if rng.below(2) == 0 {
        (inside(rng), outside(rng))
    } else {
        (outside(rng), inside(rng))
    };
    const PORTS: [u64; 8] = [22, 80, 443, 3389, 53, 123, 8080, 5432];
    let (protocol, srcport, dstport) = match rng.below(10) {
        0 => (1, 0, 0),
        1 | 2 => (17, 1024 + rng.below(64_000), PORTS[rng.below(8) as usize]),
        _ => (6, 1024 + rng.below(64_000), PORTS[rng.below(8) as usize]),
    };
    let packets = 1 + rng.below(200);
    let bytes = packets * (40 + rng.below(1400));
    let action = if rng.below(10) == 0 {
        "REJECT"
    } else {
        "ACCEPT"
    };
    let _ = writeln!(
        text,
        "2 {account} eni-{eni:017x} {src} {dst} {srcport} {dstport} {protocol} {packets} {bytes} {start} {end} {action} OK"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_counted() {
        let spec = TreeSpec {
            accounts: vec!["111122223333".into()],
            regions: vec!["us-east-1".into()],
            days: 2,
            files_per_day: 3,
            records_per_file: 50,
            hourly: true,
            ..TreeSpec::default()
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let sa = generate_tree(a.path(), &spec, 2).unwrap();
        let sb = generate_tree(b.path(), &spec, 1).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(sa.files, 6);
        assert_eq!(sa.records, 300);
        // The same spec writes the same files, byte for byte, whatever the threads.
        let files = |root: &Path| {
            let mut out = Vec::new();
            let mut stack = vec![root.to_path_buf()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        let relative = path.strip_prefix(root).unwrap().to_path_buf();
                        out.push((relative, std::fs::read(&path).unwrap()));
                    }
                }
            }
            out.sort();
            out
        };
        assert_eq!(files(a.path()), files(b.path()));
    }
}
