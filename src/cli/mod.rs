//! The `flowsql` command: raw flags, then a session, then statements, in
//! one-shot mode (`-c`, `-f`, `--saved`) or in the interactive shell.

pub(crate) mod args;
pub(crate) mod exec;
pub(crate) mod messages;
pub(crate) mod print;
pub(crate) mod progress;
pub(crate) mod repl;
pub(crate) mod saved;

use std::io::IsTerminal;
use std::process::ExitCode;

pub(crate) use args::Args;
pub(crate) use exec::{RunError, Shell};
pub(crate) use print::Format;

use messages::{print_error, print_note, print_run_error, user_message};

use flowsql::{FlowLogOptions, S3Options, SessionOptions, new_context, scan_report, table_notes};

/// How the process ends: its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Everything asked for ran.
    Success = 0,
    /// A statement failed, or a location, file or input could not be read.
    Failure = 1,
    /// The command line cannot run as given; clap exits with the same
    /// status for the flags it rejects itself.
    Usage = 2,
    /// Ctrl-C cancelled a statement: 128 + SIGINT, as shells report it.
    Cancelled = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
/// Rows shown in table format on a terminal unless `--maxrows` says otherwise.
pub(crate) const DEFAULT_TERMINAL_ROWS: usize = 40;

/// `1536` → `1.5 KiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
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

/// The output format the flags ask for.
fn output_format(args: &Args) -> Result<Format, String> {
    let from_extension = args.output.as_deref().map(Format::from_extension);
    match (args.format, &args.output, from_extension) {
        (Some(Format::Parquet), None, _) => {
            Err("Parquet output goes to a file: add -o FILE.parquet".to_string())
        }
        (Some(format), _, _) => Ok(format),
        (None, Some(path), Some(None)) => Err(format!(
            "cannot tell the format of `{}` from its extension; add --format",
            path.display()
        )),
        (None, _, Some(Some(format))) => Ok(format),
        (None, _, _) => Ok(Format::Table),
    }
}

/// Runs the command line; returns how the process ends.
pub(crate) async fn run(args: Args) -> Exit {
    let format = match output_format(&args) {
        Ok(format) => format,
        Err(message) => {
            print_error(message);
            return Exit::Usage;
        }
    };
    if !args.params.is_empty() && args.saved.is_empty() {
        print_error("--param goes with --saved NAME");
        return Exit::Usage;
    }
    if args.output.is_some() && !args.is_one_shot() && std::io::stdin().is_terminal() {
        print_error("-o goes with -c, -f, --saved or statements piped in");
        return Exit::Usage;
    }
    // Resolve saved queries and read files before opening the location, so
    // a typo fails fast.
    let mut scripts: Vec<(String, String)> = args
        .commands
        .iter()
        .map(|sql| ("-c".to_string(), sql.clone()))
        .collect();
    for path in &args.files {
        match std::fs::read_to_string(path) {
            Ok(sql) => scripts.push((path.display().to_string(), sql)),
            Err(e) => {
                print_error(format_args!("cannot read `{}`: {e}", path.display()));
                return Exit::Failure;
            }
        }
    }
    for name in &args.saved {
        match saved::find(name).and_then(|q| q.render(&args.params)) {
            Ok(sql) => scripts.push((format!("--saved {name}"), sql)),
            Err(e) => {
                print_error(user_message(&e));
                return Exit::Usage;
            }
        }
    }

    let options = SessionOptions {
        table_name: args.table_name.clone(),
        table: FlowLogOptions {
            strict: args.strict,
            skip_bad_objects: args.skip_bad_objects,
            pruning: !args.no_pruning,
            s3: S3Options {
                profile: args.profile.clone(),
                region: args.region.clone(),
                endpoint_url: args.endpoint_url.clone(),
                no_sign_request: args.no_sign_request,
                ..S3Options::default()
            },
            ..FlowLogOptions::default()
        },
        memory_limit: args.memory_limit,
        ..SessionOptions::default()
    };
    let opened = match new_context(&args.locations, &options).await {
        Ok(ctx) => scan_report(&ctx, &args.table_name).await.map(|r| (ctx, r)),
        Err(e) => Err(e),
    };
    if let Ok((ctx, _)) = &opened
        && let Ok(notes) = table_notes(ctx, &args.table_name).await
    {
        for note in notes {
            print_note(note);
        }
    }
    let (ctx, report) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            print_error(user_message(&e));
            return Exit::Failure;
        }
    };
    let terminal_rows =
        (std::io::stdout().is_terminal() && args.output.is_none()).then_some(DEFAULT_TERMINAL_ROWS);
    let mut shell = Shell {
        ctx,
        report,
        format,
        max_rows: args.maxrows.or(terminal_rows),
        timing: !args.quiet,
        progress: !args.quiet,
        output: args.output.clone(),
        dry_run: args.dry_run,
    };
    if !args.is_one_shot() {
        if std::io::stdin().is_terminal() {
            return repl::run(&mut shell, &args.table_name).await;
        }
        // Statements piped in (`flowsql DIR < report.sql`) run as a script.
        let mut sql = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sql) {
            print_error(format_args!(
                "cannot read statements from standard input: {e}"
            ));
            return Exit::Failure;
        }
        scripts.push(("standard input".to_string(), sql));
    }
    for (origin, sql) in scripts {
        if let Err(e) = shell.run_sql(&sql, false).await {
            print_run_error(&e, (origin != "-c").then_some(origin.as_str()));
            return match e {
                RunError::Cancelled => Exit::Cancelled,
                RunError::Failed(_) => Exit::Failure,
            };
        }
    }
    Exit::Success
}
