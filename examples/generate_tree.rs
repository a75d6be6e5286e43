//! Writes a deterministic flow-log tree for benchmarks and scale tests.
//!
//! ```text
//! cargo run --release --example generate_tree -- /tmp/tree            # 10.08M records, 672 objects
//! cargo run --release --example generate_tree -- /tmp/tree --scale 4  # 4x the days
//! cargo run --release --example generate_tree -- /tmp/tree --parquet  # as AWS's Parquet
//! # one busy day folder beside quiet ones (two runs into one tree)
//! cargo run --release --example generate_tree -- /tmp/skewed --account 111122223333 \
//!     --region us-east-1 --days 1 --files-per-day 288
//! cargo run --release --example generate_tree -- /tmp/skewed --account 444455556666 \
//!     --region us-east-1 --days 14 --files-per-day 8
//! ```

use std::path::PathBuf;

use clap::Parser;
use flowsql::internals::generate::{TreeSpec, generate_tree};

#[derive(Parser)]
struct Args {
    /// Folder to write (it becomes the folder above AWSLogs/)
    out: PathBuf,
    /// Multiply the number of days
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Records per object
    #[arg(long)]
    records_per_file: Option<u32>,
    /// Only this account (instead of two)
    #[arg(long)]
    account: Option<String>,
    /// Only this region (instead of two)
    #[arg(long)]
    region: Option<String>,
    /// Days (instead of 7, before --scale)
    #[arg(long)]
    days: Option<u32>,
    /// Objects per account, region and day (instead of 24; at most 288)
    #[arg(long)]
    files_per_day: Option<u32>,
    /// Hive-compatible folders instead of the default layout
    #[arg(long)]
    hive: bool,
    /// Hourly folders
    #[arg(long)]
    hourly: bool,
    /// `.log.parquet` objects as AWS writes them instead of `.log.gz` text
    #[arg(long)]
    parquet: bool,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut spec = TreeSpec::default();
    if let Some(account) = args.account {
        spec.accounts = vec![account];
    }
    if let Some(region) = args.region {
        spec.regions = vec![region];
    }
    spec.days = args.days.unwrap_or(spec.days);
    spec.files_per_day = args.files_per_day.unwrap_or(spec.files_per_day);
    spec.days *= args.scale.max(1);
    if let Some(n) = args.records_per_file {
        spec.records_per_file = n;
    }
    if args.hive {
        spec.grammar = flowsql::internals::Grammar::Hive;
    }
    spec.hourly = args.hourly;
    spec.parquet = args.parquet;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let summary = generate_tree(&args.out, &spec, threads)?;
    println!(
        "wrote {} objects, {} records, {} compressed bytes under {}",
        summary.files,
        summary.records,
        summary.compressed_bytes,
        args.out.display()
    );
    Ok(())
}
