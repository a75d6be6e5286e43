//! The `flowsql` command, in three steps as ripgrep splits its own: the
//! raw flags as clap parses them ([`args`]), checked and resolved into an
//! [`Invocation`] ([`invocation`], pure), then [`run`], which opens the
//! session and runs scripts one-shot (`-c`, `-f`, `--saved`, statements
//! piped in) or the interactive shell ([`repl`]). Statements run through
//! [`exec`], results are written by [`print`] (or drawn by [`chart`]), and everything said on
//! stderr goes through [`messages`].

mod args;
mod chart;
mod exec;
mod invocation;
pub(crate) mod messages;
mod print;
mod progress;
mod repl;
mod saved;

use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use flowsql::{CacheOptions, CacheUsage, new_context, scan_report, table_notes};

pub(crate) use args::Args;
use exec::{RunError, Shell, Stop};
use invocation::{CacheActions, Invocation, Origin, Script, Statements, Terminals};
use messages::{print_error, print_note, print_run_error, user_message};

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
    /// SIGTERM stopped a statement (on a cluster), if the process cannot
    /// end by the signal itself: 128 + SIGTERM.
    Terminated = 143,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// flowsql's folder in the user's cache folder (`$XDG_CACHE_HOME`, else
/// `~/.cache`): the remembered header fields (`fields/`, so a field one
/// run warns about is a column in the next) and the cache of decoded
/// objects.
fn cache_home() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|folder| !folder.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("flowsql"))
}

/// `--clear-cache`, then `--cache-info`; false if one failed.
fn cache_actions(actions: CacheActions, cache: Option<&CacheOptions>) -> bool {
    let Some(cache) = cache else {
        print_error("no cache folder: neither XDG_CACHE_HOME nor HOME is set");
        return false;
    };
    if actions.clear {
        match CacheUsage::clear(cache) {
            Ok(usage) => println!(
                "cleared the local cache in {}: {} object(s), {}",
                cache.folder.display(),
                usage.entries,
                print::human_bytes(usage.bytes)
            ),
            Err(e) => {
                print_error(format_args!(
                    "cannot clear the cache in {}: {e}",
                    cache.folder.display()
                ));
                return false;
            }
        }
    }
    if actions.info {
        match CacheUsage::of(cache) {
            Ok(usage) => println!("{}", messages::cache_usage(cache, &usage)),
            Err(e) => {
                print_error(format_args!(
                    "cannot read the cache in {}: {e}",
                    cache.folder.display()
                ));
                return false;
            }
        }
    }
    true
}

/// Runs the command line; returns how the process ends.
pub(crate) async fn run(args: Args) -> Exit {
    let terminals = Terminals {
        stdin: io::stdin().is_terminal(),
        stdout: io::stdout().is_terminal(),
    };
    let mut invocation =
        match Invocation::new(args, terminals, |path| std::fs::read_to_string(path)) {
            Ok(invocation) => invocation,
            Err(e) => {
                print_error(&e);
                return e.exit();
            }
        };
    let home = cache_home();
    invocation.session.table.field_memory = home.as_ref().map(|home| home.join("fields"));
    let cache = home.map(|folder| CacheOptions {
        folder,
        max_bytes: invocation
            .cache_bytes
            .unwrap_or(flowsql::DEFAULT_CACHE_BYTES),
    });
    if invocation.cache_bytes.is_some() {
        invocation.session.table.cache = cache.clone();
    }
    let actions = invocation.cache_actions;
    if (actions.info || actions.clear) && !cache_actions(actions, cache.as_ref()) {
        return Exit::Failure;
    }
    if actions.alone(&invocation.locations) {
        return Exit::Success;
    }
    let table_name = invocation.session.table_name.clone();
    let context = match &invocation.cluster {
        #[cfg(feature = "cluster")]
        Some(scheduler) => {
            invocation.session.table.cache = None;
            flowsql::cluster::connect(scheduler, &invocation.locations, &invocation.session).await
        }
        _ => new_context(&invocation.locations, &invocation.session).await,
    };
    let opened = match context {
        Ok(ctx) => scan_report(&ctx, &table_name).await.map(|r| (ctx, r)),
        Err(e) => Err(e),
    };
    if let Ok((ctx, _)) = &opened
        && let Ok(notes) = table_notes(ctx, &table_name).await
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
    let mut shell = Shell {
        ctx,
        report,
        format: invocation.format,
        max_rows: invocation.max_rows,
        timing: invocation.timing,
        progress: invocation.progress,
        output: invocation.output,
        dry_run: invocation.dry_run,
        hide_null_columns: true,
        chart: invocation.chart,
        last_result: None,
        keep_last_result: false,
        cache,
        cache_in_use: invocation.cache_bytes.is_some(),
        cache_reads: (0, 0),
        on_cluster: invocation.cluster.is_some(),
        sigterm: None,
    };
    let scripts = match invocation.statements {
        Statements::Scripts(scripts) => scripts,
        Statements::Shell => return repl::run(&mut shell, &table_name).await,
        Statements::Piped => {
            let mut sql = String::new();
            if let Err(e) = io::stdin().read_to_string(&mut sql) {
                print_error(format_args!(
                    "cannot read statements from standard input: {e}"
                ));
                return Exit::Failure;
            }
            vec![Script {
                origin: Origin::StandardInput,
                sql,
            }]
        }
    };
    // On a cluster, Ctrl-C or SIGTERM cancels the running job there before
    // exiting (130, 143); in one process, their default handling (exit at
    // once) does.
    let stop = if shell.on_cluster {
        Stop::InterruptOrTerminate
    } else {
        Stop::Never
    };
    for script in scripts {
        if let Err(e) = shell.run_sql(&script.sql, stop).await {
            print_run_error(&e, script.origin.name().as_deref());
            if matches!(e, RunError::Terminated) {
                exec::end_by_sigterm();
            }
            return e.exit();
        }
    }
    Exit::Success
}
