//! Running statements for both front ends: parse, plan, execute (with a
//! progress line and Ctrl-C cancellation where asked), print, summarize.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;
use flowsql::{
    CacheOptions, ScanReport, execute_statement, ipaddresses_as_text, list_scans, parse_statements,
};
use tokio::sync::Notify;

use super::messages::{cache_notes, print_note, print_warning, scan_warnings};
use super::print::{self, Format, TableLayout, human_bytes};
use super::progress::Progress;
use super::{Exit, chart};

/// What a statement run ended with, besides success.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The statement failed.
    Failed(DataFusionError),
    /// The user pressed Ctrl-C.
    Cancelled,
    /// The process was sent SIGTERM.
    Terminated,
}

/// What stops a running statement (cancelling its job on a cluster)
/// instead of ending the process at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Nothing: signals have their default effect.
    Never,
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// Ctrl-C, or SIGTERM (after which the process ends).
    InterruptOrTerminate,
}

impl RunError {
    /// How the process ends when a one-shot script stops on this.
    pub(crate) fn exit(&self) -> Exit {
        match self {
            RunError::Failed(_) => Exit::Failure,
            RunError::Cancelled => Exit::Cancelled,
            RunError::Terminated => Exit::Terminated,
        }
    }
}

impl From<DataFusionError> for RunError {
    fn from(e: DataFusionError) -> Self {
        RunError::Failed(e)
    }
}

/// The session and the user's display settings.
pub(crate) struct Shell {
    /// The session with the flow-log table.
    pub(crate) ctx: SessionContext,
    /// The flow-log table's scan report.
    pub(crate) report: Arc<ScanReport>,
    /// Output format.
    pub(crate) format: Format,
    /// Rows shown in table format.
    pub(crate) max_rows: Option<usize>,
    /// Print a summary line (rows, time, objects, bytes) after each statement.
    pub(crate) timing: bool,
    /// Show a live progress line on stderr for long statements.
    pub(crate) progress: bool,
    /// Write results here instead of stdout.
    pub(crate) output: Option<PathBuf>,
    /// Plan statements and say what they would list and read, reading
    /// nothing.
    pub(crate) dry_run: bool,
    /// In table format, leave out the columns NULL in every row.
    pub(crate) hide_null_columns: bool,
    /// Draw results as charts instead of printing them.
    pub(crate) chart: bool,
    /// The last result with columns, for `\chart` to draw; kept only when
    /// `keep_last_result` (in the shell).
    pub(crate) last_result: Option<(SchemaRef, Vec<RecordBatch>)>,
    pub(crate) keep_last_result: bool,
    /// Where the local cache is, and whether this session uses it.
    pub(crate) cache: Option<CacheOptions>,
    pub(crate) cache_in_use: bool,
    /// Text objects this session read from the cache and from their source
    /// while using it.
    pub(crate) cache_reads: (u64, u64),
    /// Statements run on a cluster (`--cluster`), whose executors read.
    pub(crate) on_cluster: bool,
    /// SIGTERM, once [`Stop::InterruptOrTerminate`] has caught it.
    pub(crate) sigterm: Option<Sigterm>,
}

/// SIGTERM caught for a one-shot command on a cluster: during a statement
/// it stops the statement (whose job on the cluster is cancelled as the
/// statement is dropped); outside one, the process ends by it at once, as
/// without a handler.
pub(crate) struct Sigterm(Arc<SigtermState>);

#[derive(Default)]
struct SigtermState {
    received: AtomicBool,
    in_statement: AtomicBool,
    stop: Notify,
}

impl Sigterm {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut signals = signal(SignalKind::terminate())?;
        let state = Arc::new(SigtermState::default());
        let seen = Arc::clone(&state);
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                seen.received.store(true, Ordering::SeqCst);
                if seen.in_statement.load(Ordering::SeqCst) {
                    seen.stop.notify_one();
                } else {
                    end_by_sigterm();
                }
            }
        });
        Ok(Sigterm(state))
    }
}

/// Ends the process by SIGTERM, with the signal's default effect (so a
/// supervisor sees it killed by the signal, not exiting).
pub(crate) fn end_by_sigterm() -> ! {
    use nix::sys::signal::{SigHandler, Signal, raise, signal};
    // SAFETY: restoring the default action installs no Rust handler.
    unsafe {
        let _ = signal(Signal::SIGTERM, SigHandler::SigDfl);
    }
    let _ = raise(Signal::SIGTERM);
    std::process::exit(Exit::Terminated as i32)
}

impl Shell {
    /// Runs every statement in `sql`, stopping at the first that fails or
    /// that a signal in `stop` stops.
    pub(crate) async fn run_sql(
        &mut self,
        sql: &str,
        stop: Stop,
    ) -> std::result::Result<(), RunError> {
        for statement in parse_statements(sql)? {
            self.run_statement(statement, stop).await?;
        }
        Ok(())
    }

    async fn run_statement(
        &mut self,
        statement: Statement,
        stop: Stop,
    ) -> std::result::Result<(), RunError> {
        self.report.reset();
        if self.dry_run {
            return self.dry_run(statement).await.map_err(RunError::from);
        }
        let started = Instant::now();
        let progress = (self.progress && std::io::stderr().is_terminal())
            .then(|| Progress::start(Arc::clone(&self.report), started));
        let execution = execute(&self.ctx, statement);
        let outcome = match stop {
            Stop::Never => execution.await.map_err(RunError::from),
            Stop::Interrupt => tokio::select! {
                result = execution => result.map_err(RunError::from),
                _ = tokio::signal::ctrl_c() => Err(RunError::Cancelled),
            },
            Stop::InterruptOrTerminate => {
                let Sigterm(sigterm) =
                    match &self.sigterm {
                        Some(sigterm) => sigterm,
                        None => self.sigterm.insert(Sigterm::install().map_err(|e| {
                            RunError::Failed(DataFusionError::External(Box::new(e)))
                        })?),
                    };
                sigterm.in_statement.store(true, Ordering::SeqCst);
                let outcome = tokio::select! {
                    result = execution => result.map_err(RunError::from),
                    _ = tokio::signal::ctrl_c() => Err(RunError::Cancelled),
                    _ = sigterm.stop.notified() => Err(RunError::Terminated),
                };
                sigterm.in_statement.store(false, Ordering::SeqCst);
                // One that came as the statement ended.
                if sigterm.received.load(Ordering::SeqCst) {
                    Err(RunError::Terminated)
                } else {
                    outcome
                }
            }
        };
        if let Some(progress) = progress {
            progress.stop().await;
        }
        let summary = self.report.summary();
        for warning in scan_warnings(&summary) {
            print_warning(warning);
        }
        for note in cache_notes(&summary) {
            print_note(note);
        }
        self.cache_reads.0 += summary.objects_from_cache;
        self.cache_reads.1 += summary.objects_missing_cache;
        let (schema, batches) = outcome?;
        let rows = print::row_count(&batches);
        if !schema.fields().is_empty() {
            if self.chart {
                self.draw(&schema, &batches)?;
            } else {
                self.print(&schema, &batches)?;
            }
            if self.keep_last_result {
                self.last_result = Some((schema, batches));
            }
        }
        let summary = self.report.summary();
        let counted =
            summary.counted_on_executors || summary.objects_opened > 0 || summary.list_requests > 0;
        let place = if summary.counted_on_executors {
            " on the cluster"
        } else {
            ""
        };
        if self.timing && self.on_cluster && (!counted || summary.executor_counts_missing) {
            let why = if summary.executor_counts_missing {
                " (the scheduler did not say what the executors read)"
            } else {
                ""
            };
            eprintln!(
                "{rows} row(s) in {:.3}s on the cluster{why}",
                started.elapsed().as_secs_f64()
            );
        } else if self.timing {
            let from_cache = match summary.objects_from_cache {
                0 => String::new(),
                n => format!(" ({n} from the local cache)"),
            };
            eprintln!(
                "{rows} row(s) in {:.3}s{place}; read {} object(s){from_cache}, {} compressed; {} LIST request(s)",
                started.elapsed().as_secs_f64(),
                summary.objects_opened,
                human_bytes(summary.compressed_bytes),
                summary.list_requests,
            );
        }
        Ok(())
    }

    /// Plans `statement`, runs its scans' listings alone (reading no
    /// object) and prints what executing it would read.
    async fn dry_run(&self, statement: Statement) -> Result<()> {
        let executed = execute_statement(&self.ctx, statement).await?;
        if let Some(note) = executed.note {
            print_note(note);
        }
        // Planned here even on a cluster: the listing is this process's.
        let (state, plan) = executed.dataframe.into_parts();
        let plan = state.optimize(&plan)?;
        let plan = DefaultPhysicalPlanner::default()
            .create_physical_plan(&plan, &state)
            .await?;
        list_scans(&plan).await?;
        let summary = self.report.summary();
        println!(
            "would read {} object(s), {} compressed, of {} flow-log object(s) listed; {} LIST request(s):",
            summary.objects_planned,
            human_bytes(summary.bytes_planned),
            summary.objects_listed,
            summary.list_requests,
        );
        for prefix in &summary.listed_prefixes {
            println!("  {prefix}");
        }
        if summary.list_requests as usize > summary.listed_prefixes.len() {
            println!(
                "  … and {} more",
                summary.list_requests as usize - summary.listed_prefixes.len()
            );
        }
        Ok(())
    }

    /// Draws a result as a chart that fits the terminal.
    pub(crate) fn draw(&self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        let chart = chart::render(schema, batches, chart::Area::of_terminal())
            .map_err(|why| DataFusionError::Execution(format!("no chart: {why}")))?;
        let mut out = std::io::stdout().lock();
        out.write_all(chart.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    fn print(&self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        if let Some(path) = &self.output {
            return print::write_file(path, self.format, schema, batches);
        }
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let layout = TableLayout {
            max_rows: self.max_rows,
            max_width: terminal.then(terminal_width).flatten(),
            hide_null_columns: self.hide_null_columns,
        };
        let mut out = std::io::BufWriter::new(stdout.lock());
        print::write_result(&mut out, self.format, schema, batches, layout)?;
        out.flush()?;
        Ok(())
    }
}

/// Plans and runs one statement to completion. The whole result is
/// gathered before anything is printed, so a statement that fails half way
/// prints nothing.
async fn execute(
    ctx: &SessionContext,
    statement: Statement,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let executed = execute_statement(ctx, statement).await?;
    if let Some(note) = executed.note {
        print_note(note);
    }
    let df = executed.dataframe;
    let schema: SchemaRef = Arc::clone(df.schema().inner());
    let batches = df.collect().await?;
    ipaddresses_as_text(&schema, &batches)
}

/// The terminal's width: `COLUMNS` if set, else the size of stdout's terminal.
pub(crate) fn terminal_width() -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(columns);
    }
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
}

/// The terminal's width and height: `COLUMNS` and `LINES` where set, else
/// the size of stdout's terminal; `None` when neither says.
pub(crate) fn terminal_size() -> Option<(usize, usize)> {
    let variable = |name| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let terminal = terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, h)| (usize::from(w.0), usize::from(h.0)));
    match (variable("COLUMNS"), variable("LINES"), terminal) {
        (Some(w), Some(h), _) => Some((w, h)),
        (w, h, Some((tw, th))) => Some((w.unwrap_or(tw), h.unwrap_or(th))),
        (Some(w), None, None) => Some((w, 24)),
        (None, Some(h), None) => Some((80, h)),
        (None, None, None) => None,
    }
}
