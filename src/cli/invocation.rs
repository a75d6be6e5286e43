//! The command line checked and resolved: the raw flags ([`Args`]) become
//! an [`Invocation`], which says what [`super::run`] opens, runs and how it
//! shows results. Every rule about which flags go together lives here.
//!
//! Pure: what it must know about the process (whether stdin and stdout are
//! terminals, what a `-f` file holds) comes in as arguments, so the rules
//! are unit-tested without a process.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use flowsql::{FlowLogOptions, S3Options, SessionOptions};

use super::args::Args;
use super::messages::user_message;
use super::print::Format;
use super::{Exit, saved};

/// Rows shown in table format on a terminal unless `--maxrows` says otherwise.
pub(crate) const DEFAULT_TERMINAL_ROWS: usize = 40;

/// Whether the process's standard streams are terminals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Terminals {
    /// Standard input: a terminal gets the interactive shell, anything
    /// else is read as statements.
    pub(crate) stdin: bool,
    /// Standard output: a terminal gets at most [`DEFAULT_TERMINAL_ROWS`]
    /// rows per table unless `--maxrows` says otherwise.
    pub(crate) stdout: bool,
}

/// What one run of `flowsql` does, checked and resolved from its flags.
#[derive(Debug)]
pub(crate) struct Invocation {
    /// Where the flow logs are.
    pub(crate) locations: Vec<String>,
    /// The session to open: table name, table options, memory limit.
    pub(crate) session: SessionOptions,
    /// What runs once the session is open.
    pub(crate) statements: Statements,
    /// Output format.
    pub(crate) format: Format,
    /// Write results here instead of stdout.
    pub(crate) output: Option<PathBuf>,
    /// Rows shown in table format.
    pub(crate) max_rows: Option<usize>,
    /// A summary line after each statement.
    pub(crate) timing: bool,
    /// A live progress line for long statements.
    pub(crate) progress: bool,
    /// Plan statements and say what they would read, reading nothing.
    pub(crate) dry_run: bool,
    /// Draw results as charts in the terminal instead of tables.
    pub(crate) chart: bool,
    /// The local cache's size limit, or `None` under `--no-cache`.
    pub(crate) cache_bytes: Option<u64>,
    /// `--cache-info`, `--clear-cache`: done before anything else.
    pub(crate) cache_actions: CacheActions,
    /// The scheduler of the cluster statements run on (`--cluster`).
    pub(crate) cluster: Option<String>,
}

/// What to do with the cache itself before opening any location.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheActions {
    pub(crate) info: bool,
    pub(crate) clear: bool,
}

impl CacheActions {
    /// Whether the flags ask only for these, with no location to open.
    pub(crate) fn alone(&self, invocation_locations: &[String]) -> bool {
        (self.info || self.clear) && invocation_locations.is_empty()
    }
}

/// What runs once the session is open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Statements {
    /// `-c`, `-f` and `--saved` scripts, in that order (each flag's in the
    /// order given), then exit.
    Scripts(Vec<Script>),
    /// Statements piped in (`flowsql DIR < report.sql`), read once the
    /// session is open and run as one script.
    Piped,
    /// The interactive shell.
    Shell,
}

/// SQL to run as one script: its statements run in order until one fails.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Script {
    /// Where the SQL came from.
    pub(crate) origin: Origin,
    /// One or more statements.
    pub(crate) sql: String,
}

/// Where a script came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `-c SQL`.
    Command,
    /// `-f PATH`.
    File(PathBuf),
    /// `--saved NAME`, rendered with the `--param` values.
    Saved(String),
    /// Statements piped in.
    StandardInput,
}

impl Origin {
    /// How an error names the script: `None` for `-c`, whose SQL is on
    /// the command line in front of the user.
    pub(crate) fn name(&self) -> Option<String> {
        match self {
            Origin::Command => None,
            Origin::File(path) => Some(path.display().to_string()),
            Origin::Saved(name) => Some(format!("--saved {name}")),
            Origin::StandardInput => Some("standard input".to_string()),
        }
    }
}

/// Why the flags cannot run.
#[derive(Debug)]
pub(crate) enum InvocationError {
    /// The flags do not go together, or name a saved query or parameter
    /// that does not exist.
    Usage(String),
    /// A `-f` file cannot be read.
    Unreadable {
        /// The file as given.
        path: PathBuf,
        /// Why it cannot be read.
        error: io::Error,
    },
}

impl InvocationError {
    /// How the process ends for this error.
    pub(crate) fn exit(&self) -> Exit {
        match self {
            InvocationError::Usage(_) => Exit::Usage,
            InvocationError::Unreadable { .. } => Exit::Failure,
        }
    }
}

impl fmt::Display for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvocationError::Usage(message) => f.write_str(message),
            InvocationError::Unreadable { path, error } => {
                write!(f, "cannot read `{}`: {error}", path.display())
            }
        }
    }
}

impl Invocation {
    /// Checks and resolves `args`. `read_file` reads a `-f` file. Saved
    /// queries are resolved and files read here, before any location is
    /// opened, so a typo fails fast.
    pub(crate) fn new(
        args: Args,
        terminals: Terminals,
        mut read_file: impl FnMut(&Path) -> io::Result<String>,
    ) -> Result<Self, InvocationError> {
        let format = output_format(&args)?;
        if !args.params.is_empty() && args.saved.is_empty() {
            return Err(usage("--param goes with --saved NAME"));
        }
        let one_shot = args.is_one_shot();
        if args.output.is_some() && !one_shot && terminals.stdin {
            return Err(usage("-o goes with -c, -f, --saved or statements piped in"));
        }
        if args.chart && args.output.is_some() {
            return Err(usage(
                "--chart draws in the terminal; -o FILE.svg or -o FILE.png writes a chart to a file",
            ));
        }
        if args.no_cache && args.cache_size.is_some() {
            return Err(usage("--cache-size goes without --no-cache"));
        }
        #[cfg(feature = "cluster")]
        let cluster = args.cluster.clone();
        #[cfg(not(feature = "cluster"))]
        let cluster: Option<String> = None;
        if let Some(url) = &cluster
            && !url.starts_with("df://")
        {
            return Err(usage(
                "--cluster takes the scheduler as df://HOST:PORT (such as df://127.0.0.1:50050)",
            ));
        }
        let cache_actions = CacheActions {
            info: args.cache_info,
            clear: args.clear_cache,
        };
        if cache_actions.alone(&args.locations) && one_shot {
            return Err(usage(
                "-c, -f, --saved and --to-parquet need a LOCATION (--cache-info and --clear-cache do not)",
            ));
        }
        if args.only_where.is_some() && args.to_parquet.is_none() {
            return Err(usage("--where goes with --to-parquet DEST"));
        }
        let mut scripts: Vec<Script> = Vec::new();
        if let Some(destination) = &args.to_parquet {
            scripts.push(Script {
                origin: Origin::Command,
                sql: conversion_sql(&args.table_name, destination, args.only_where.as_deref()),
            });
        }
        scripts.extend(args.commands.iter().map(|sql| Script {
            origin: Origin::Command,
            sql: sql.clone(),
        }));
        for path in &args.files {
            let sql = read_file(path).map_err(|error| InvocationError::Unreadable {
                path: path.clone(),
                error,
            })?;
            scripts.push(Script {
                origin: Origin::File(path.clone()),
                sql,
            });
        }
        for name in &args.saved {
            let sql = saved::find(name)
                .and_then(|query| query.render(&args.params))
                .map_err(|e| InvocationError::Usage(user_message(&e)))?;
            scripts.push(Script {
                origin: Origin::Saved(name.clone()),
                sql,
            });
        }
        let statements = if one_shot {
            Statements::Scripts(scripts)
        } else if terminals.stdin {
            Statements::Shell
        } else {
            Statements::Piped
        };

        let terminal_rows =
            (terminals.stdout && args.output.is_none()).then_some(DEFAULT_TERMINAL_ROWS);
        let session = SessionOptions {
            table_name: args.table_name,
            table: FlowLogOptions {
                strict: args.strict,
                skip_bad_objects: args.skip_bad_objects,
                pruning: !args.no_pruning,
                s3: S3Options {
                    profile: args.profile,
                    region: args.region,
                    endpoint_url: args.endpoint_url,
                    no_sign_request: args.no_sign_request,
                    ..S3Options::default()
                },
                ..FlowLogOptions::default()
            },
            memory_limit: args.memory_limit,
            ..SessionOptions::default()
        };
        Ok(Invocation {
            locations: args.locations,
            session,
            statements,
            format,
            output: args.output,
            max_rows: args.maxrows.or(terminal_rows),
            timing: !args.quiet,
            progress: !args.quiet,
            dry_run: args.dry_run,
            chart: args.chart,
            cache_bytes: (!args.no_cache).then(|| {
                args.cache_size
                    .map_or(flowsql::DEFAULT_CACHE_BYTES, |bytes| bytes as u64)
            }),
            cache_actions,
            cluster,
        })
    }
}

/// The COPY statement `--to-parquet DEST [--where FILTER]` stands for.
fn conversion_sql(table: &str, destination: &str, filter: Option<&str>) -> String {
    let destination = destination.replace('\'', "''");
    match filter {
        Some(filter) => {
            format!("COPY (SELECT * FROM {table} WHERE {filter}) TO '{destination}'")
        }
        None => format!("COPY {table} TO '{destination}'"),
    }
}

fn usage(message: &str) -> InvocationError {
    InvocationError::Usage(message.to_string())
}

/// The output format the flags ask for: `--format`, else the `-o` file's
/// extension, else a table.
fn output_format(args: &Args) -> Result<Format, InvocationError> {
    let from_extension = args.output.as_deref().map(Format::from_extension);
    match (args.format, &args.output, from_extension) {
        (Some(format), None, _) if format.files_only() => Err(InvocationError::Usage(format!(
            "{} output goes to a file: add -o FILE.{}",
            format.name(),
            format.extension()
        ))),
        (Some(format), _, _) => Ok(format),
        (None, Some(path), Some(None)) => Err(InvocationError::Usage(format!(
            "cannot tell the format of `{}` from its extension; add --format",
            path.display()
        ))),
        (None, _, Some(Some(format))) => Ok(format),
        (None, _, _) => Ok(Format::Table),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const PIPED: Terminals = Terminals {
        stdin: false,
        stdout: false,
    };
    const TERMINAL: Terminals = Terminals {
        stdin: true,
        stdout: true,
    };

    /// The invocation for `flowsql FLAGS...`; the only readable `-f` file
    /// is `report.sql`.
    fn invoke(flags: &[&str], terminals: Terminals) -> Result<Invocation, InvocationError> {
        let args = Args::try_parse_from(std::iter::once("flowsql").chain(flags.iter().copied()))
            .expect("clap accepts the flags");
        Invocation::new(args, terminals, |path| {
            if path == Path::new("report.sql") {
                Ok("SELECT 1;\nSELECT 2;\n".to_string())
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "No such file"))
            }
        })
    }

    fn ok(flags: &[&str], terminals: Terminals) -> Invocation {
        invoke(flags, terminals).unwrap_or_else(|e| panic!("{flags:?}: {e}"))
    }

    #[test]
    fn usage_errors() {
        let cases: &[(&[&str], Terminals, &str)] = &[
            (
                &["--format", "parquet", "-c", "SELECT 1"],
                PIPED,
                "Parquet output goes to a file: add -o FILE.parquet",
            ),
            (
                &["-o", "out.xyz", "-c", "SELECT 1"],
                PIPED,
                "cannot tell the format of `out.xyz` from its extension; add --format",
            ),
            (
                &["-o", "out", "-c", "SELECT 1"],
                PIPED,
                "cannot tell the format of `out` from its extension; add --format",
            ),
            (
                &["--param", "a=b", "-c", "SELECT 1"],
                PIPED,
                "--param goes with --saved NAME",
            ),
            // The format is checked first.
            (
                &["--format", "parquet", "--param", "a=b", "-c", "SELECT 1"],
                PIPED,
                "Parquet output goes to a file: add -o FILE.parquet",
            ),
            (
                &["-o", "out.csv"],
                TERMINAL,
                "-o goes with -c, -f, --saved or statements piped in",
            ),
            (
                &["--saved", "no_such_query"],
                PIPED,
                "no saved query named `no_such_query`; the saved queries are: ",
            ),
            (
                &["--saved", "top_talkers", "--param", "x=1"],
                PIPED,
                "saved query top_talkers has no parameter `x` (it has: ",
            ),
        ];
        for (flags, terminals, message) in cases {
            match invoke(flags, *terminals) {
                Err(e @ InvocationError::Usage(_)) => {
                    assert!(e.to_string().starts_with(message), "{flags:?}: {e}");
                    assert_eq!(e.exit(), Exit::Usage, "{flags:?}");
                }
                other => panic!("{flags:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_unreadable_file_is_a_failure_named_before_saved_queries() {
        let e = invoke(&["-f", "missing.sql", "--saved", "no_such_query"], PIPED).unwrap_err();
        assert!(
            matches!(&e, InvocationError::Unreadable { path, .. } if path == Path::new("missing.sql")),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "cannot read `missing.sql`: No such file");
        assert_eq!(e.exit(), Exit::Failure);
    }

    #[test]
    fn format_from_the_flag_else_the_extension_else_table() {
        let cases: &[(&[&str], Format)] = &[
            (&[], Format::Table),
            (&["--format", "csv"], Format::Csv),
            (&["-o", "out.csv"], Format::Csv),
            (&["-o", "out.TSV"], Format::Tsv),
            (&["-o", "out.json"], Format::Json),
            (&["-o", "out.jsonl"], Format::Ndjson),
            (&["-o", "out.ndjson"], Format::Ndjson),
            (&["-o", "out.parquet"], Format::Parquet),
            (&["-o", "out.txt"], Format::Table),
            (&["-o", "out.bin", "--format", "json"], Format::Json),
            (&["-o", "out.csv", "--format", "tsv"], Format::Tsv),
            (&["-o", "out", "--format", "parquet"], Format::Parquet),
        ];
        for (flags, format) in cases {
            let flags: Vec<&str> = flags.iter().copied().chain(["-c", "SELECT 1"]).collect();
            assert_eq!(ok(&flags, PIPED).format, *format, "{flags:?}");
        }
    }

    #[test]
    fn scripts_in_order_of_flag_then_occurrence() {
        let invocation = ok(
            &[
                "--saved",
                "traffic_from_source",
                "-f",
                "report.sql",
                "-c",
                "SELECT 'a'",
                "--param",
                "src_addr=10.1.2.3",
                "-c",
                "SELECT 'b'",
            ],
            TERMINAL,
        );
        let Statements::Scripts(scripts) = invocation.statements else {
            panic!("{:?}", invocation.statements);
        };
        let origins: Vec<&Origin> = scripts.iter().map(|s| &s.origin).collect();
        assert_eq!(
            origins,
            [
                &Origin::Command,
                &Origin::Command,
                &Origin::File(PathBuf::from("report.sql")),
                &Origin::Saved("traffic_from_source".to_string()),
            ]
        );
        assert_eq!(scripts[0].sql, "SELECT 'a'");
        assert_eq!(scripts[1].sql, "SELECT 'b'");
        assert_eq!(scripts[2].sql, "SELECT 1;\nSELECT 2;\n");
        assert!(
            scripts[3].sql.contains("srcaddr = '10.1.2.3'"),
            "{}",
            scripts[3].sql
        );
        let names: Vec<Option<String>> = scripts.iter().map(|s| s.origin.name()).collect();
        assert_eq!(
            names,
            [
                None,
                None,
                Some("report.sql".to_string()),
                Some("--saved traffic_from_source".to_string()),
            ]
        );
        assert_eq!(
            Origin::StandardInput.name().as_deref(),
            Some("standard input")
        );
    }

    #[test]
    fn to_parquet_is_a_copy_statement_run_first() {
        let invocation = ok(
            &[
                "-c",
                "SELECT 1",
                "--to-parquet",
                "s3://out/it's",
                "--where",
                "date >= DATE '2024-05-01'",
            ],
            TERMINAL,
        );
        let Statements::Scripts(scripts) = invocation.statements else {
            panic!("{:?}", invocation.statements);
        };
        assert_eq!(
            scripts[0].sql,
            "COPY (SELECT * FROM vpc_flow_logs WHERE date >= DATE '2024-05-01') TO 's3://out/it''s'"
        );
        assert_eq!(scripts[1].sql, "SELECT 1");
        let whole = ok(&["--to-parquet", "./out", "--table", "t"], PIPED);
        let Statements::Scripts(scripts) = whole.statements else {
            panic!("{:?}", whole.statements);
        };
        assert_eq!(scripts[0].sql, "COPY t TO './out'");
        match invoke(&["--where", "date = DATE '2024-01-01'"], TERMINAL) {
            Err(InvocationError::Usage(message)) => {
                assert_eq!(message, "--where goes with --to-parquet DEST")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_scripts_a_terminal_gets_the_shell_and_a_pipe_is_read() {
        assert_eq!(ok(&[], TERMINAL).statements, Statements::Shell);
        assert_eq!(ok(&[], PIPED).statements, Statements::Piped);
        assert_eq!(ok(&["-o", "out.csv"], PIPED).statements, Statements::Piped);
        assert!(matches!(
            ok(&["-c", "SELECT 1"], PIPED).statements,
            Statements::Scripts(_)
        ));
    }

    #[test]
    fn rows_shown() {
        let stdout_only = Terminals {
            stdin: false,
            stdout: true,
        };
        let cases: &[(&[&str], Terminals, Option<usize>)] = &[
            (&[], stdout_only, Some(DEFAULT_TERMINAL_ROWS)),
            (&["-o", "out.csv"], stdout_only, None),
            (&[], PIPED, None),
            (&["--maxrows", "5"], stdout_only, Some(5)),
            (&["--maxrows", "5"], PIPED, Some(5)),
        ];
        for (flags, terminals, max_rows) in cases {
            let flags: Vec<&str> = flags.iter().copied().chain(["-c", "SELECT 1"]).collect();
            assert_eq!(ok(&flags, *terminals).max_rows, *max_rows, "{flags:?}");
        }
    }

    #[test]
    fn session_and_display_settings() {
        let defaults = ok(&["logs"], PIPED);
        assert_eq!(defaults.locations, ["logs"]);
        assert_eq!(defaults.session.table_name, flowsql::DEFAULT_TABLE_NAME);
        assert!(defaults.session.table.pruning);
        assert!(!defaults.session.table.strict);
        assert!(!defaults.session.table.skip_bad_objects);
        assert_eq!(defaults.session.table.s3, S3Options::default());
        assert_eq!(defaults.session.memory_limit, None);
        assert!(defaults.session.bucketing.is_some());
        assert_eq!(defaults.output, None);
        assert!(defaults.timing && defaults.progress && !defaults.dry_run);

        let set = ok(
            &[
                "a",
                "s3://b/p",
                "--table",
                "t",
                "--strict",
                "--skip-bad-objects",
                "--no-pruning",
                "--profile",
                "prof",
                "--region",
                "eu-west-1",
                "--endpoint-url",
                "http://127.0.0.1:9000",
                "--no-sign-request",
                "--memory-limit",
                "512M",
                "-q",
                "--dry-run",
                "-o",
                "out.csv",
                "-c",
                "SELECT 1",
            ],
            PIPED,
        );
        assert_eq!(set.locations, ["a", "s3://b/p"]);
        assert_eq!(set.session.table_name, "t");
        assert!(!set.session.table.pruning);
        assert!(set.session.table.strict);
        assert!(set.session.table.skip_bad_objects);
        assert_eq!(
            set.session.table.s3,
            S3Options {
                profile: Some("prof".to_string()),
                region: Some("eu-west-1".to_string()),
                endpoint_url: Some("http://127.0.0.1:9000".to_string()),
                no_sign_request: true,
                ..S3Options::default()
            }
        );
        assert_eq!(set.session.memory_limit, Some(512 << 20));
        assert_eq!(set.output, Some(PathBuf::from("out.csv")));
        assert!(!set.timing && !set.progress && set.dry_run);
    }
}
