//! The `flowsql` command: raw flags, then a session, then statements.

pub mod args;
pub mod print;

use std::io::Write;
use std::time::Instant;

use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;

pub use args::{Args, Format};

use crate::report::ScanReport;
use crate::session::{SessionOptions, new_context, scan_report};
use crate::table::FlowLogOptions;

/// Exit code for a failed statement or a bad location.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a command line that cannot run.
pub const EXIT_USAGE: u8 = 2;

/// The message a user sees for an error: the innermost error's own words,
/// without DataFusion's category prefix where we wrote the message.
pub fn user_message(error: &DataFusionError) -> String {
    match error.find_root() {
        DataFusionError::Execution(m)
        | DataFusionError::Configuration(m)
        | DataFusionError::Plan(m) => m.clone(),
        root => root.to_string(),
    }
}

/// Runs the command line; returns the process exit code.
pub async fn run(args: Args) -> u8 {
    if args.commands.is_empty() {
        eprintln!("error: no SQL given; run statements with -c \"SQL\" (see --help)");
        return EXIT_USAGE;
    }
    let options = SessionOptions {
        table_name: args.table_name.clone(),
        table: FlowLogOptions {
            strict: args.strict,
            pruning: !args.no_pruning,
            ..FlowLogOptions::default()
        },
        batch_size: None,
    };
    let ctx = match new_context(&args.locations, &options).await {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {}", user_message(&e));
            return EXIT_FAILURE;
        }
    };
    let report = match scan_report(&ctx, &args.table_name).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {}", user_message(&e));
            return EXIT_FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for sql in &args.commands {
        let statements = match DFParser::parse_sql_with_dialect(sql, &GenericDialect {}) {
            Ok(statements) => statements,
            Err(e) => {
                eprintln!("error: {}", user_message(&e));
                return EXIT_FAILURE;
            }
        };
        for statement in statements {
            report.reset();
            let started = Instant::now();
            let outcome = run_statement(&ctx, statement, args.format, &mut out).await;
            let flushed = out.flush().map_err(DataFusionError::from);
            print_warnings(&report);
            match outcome.and_then(|rows| flushed.map(|_| rows)) {
                Ok(rows) => {
                    if !args.quiet {
                        print_timing(rows, started, &report);
                    }
                }
                Err(e) => {
                    eprintln!("error: {}", user_message(&e));
                    return EXIT_FAILURE;
                }
            }
        }
    }
    0
}

/// Plans and runs one statement, writing its rows; returns the row count.
async fn run_statement(
    ctx: &SessionContext,
    statement: datafusion::sql::parser::Statement,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    let df = ctx.execute_logical_plan(plan).await?;
    let schema = df.schema().inner().clone();
    match format {
        Format::Table => {
            let batches = df.collect().await?;
            print::write_table(out, schema, &batches)?;
            Ok(batches.iter().map(|b| b.num_rows()).sum())
        }
        Format::Csv => {
            let mut writer = print::CsvWriter::new();
            writer.header(out, &schema)?;
            let mut stream = df.execute_stream().await?;
            let mut rows = 0;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows();
                writer.batch(out, &batch)?;
            }
            Ok(rows)
        }
    }
}

fn print_warnings(report: &ScanReport) {
    for warning in report.summary().warnings() {
        eprintln!("{warning}");
    }
}

fn print_timing(rows: usize, started: Instant, report: &ScanReport) {
    let summary = report.summary();
    eprintln!(
        "{rows} row(s) in {:.3}s; read {} object(s), {} compressed",
        started.elapsed().as_secs_f64(),
        summary.objects_opened,
        human_bytes(summary.compressed_bytes),
    );
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
