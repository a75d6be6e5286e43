//! The interactive shell: multi-line statements ended by `;` and checked
//! before they run, history in the home folder, completion, backslash
//! commands, Ctrl-C to cancel a running statement, Ctrl-D to leave.

use std::collections::BTreeSet;
use std::path::PathBuf;

use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{CompletionType, Config, Context, Editor, Helper};

use super::Exit;
use super::exec::{RunError, Shell, Stop};
use flowsql::CacheUsage;

use super::messages::{cache_usage, print_error, print_run_error, print_warning};
use super::print::{Format, human_bytes};
use super::saved;

/// The backslash commands and what they do.
pub(crate) const COMMANDS: &[(&str, &str)] = &[
    ("\\d", "list tables"),
    (
        "\\d TABLE",
        "list a table's columns, types and which fields the logs record",
    ),
    ("\\saved", "list the saved queries"),
    ("\\run NAME [PARAM=VALUE ...]", "run a saved query"),
    (
        "\\chart",
        "draw the last result as a chart (times or labels first, then numbers)",
    ),
    (
        "\\format [FORMAT]",
        "show or set the output format (table, csv, tsv, json, ndjson)",
    ),
    (
        "\\timing [on|off]",
        "show or set the summary line after each statement",
    ),
    (
        "\\maxrows [N|all]",
        "show or set the rows shown in table format",
    ),
    (
        "\\nullcols [show|hide]",
        "show or set whether table format shows columns NULL in every row",
    ),
    (
        "\\cache [clear]",
        "what the local cache of decoded objects holds, or empty it",
    ),
    ("\\?", "this help"),
    ("\\q", "quit (Ctrl-D works too)"),
];

/// Where history is kept: `~/.flowsql_history`.
pub(crate) fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".flowsql_history"))
}

/// Completion candidates, gathered once when the shell starts.
pub(crate) struct ShellHelper {
    keywords: Vec<String>,
    names: Vec<String>,
    tables: Vec<String>,
    saved: Vec<String>,
}

impl ShellHelper {
    /// Collects tables, their columns and the registered functions.
    pub(crate) async fn new(shell: &Shell) -> Self {
        let state = shell.ctx.state();
        let mut names: BTreeSet<String> = BTreeSet::new();
        names.extend(state.scalar_functions().keys().cloned());
        names.extend(state.aggregate_functions().keys().cloned());
        names.extend(state.window_functions().keys().cloned());
        let mut tables = Vec::new();
        if let Some(catalog) = shell.ctx.catalog("datafusion")
            && let Some(schema) = catalog.schema("public")
        {
            for table in schema.table_names() {
                if let Ok(Some(provider)) = schema.table(&table).await {
                    names.extend(provider.schema().fields().iter().map(|f| f.name().clone()));
                }
                tables.push(table);
            }
        }
        names.extend(tables.iter().cloned());
        Self {
            keywords: ALL_KEYWORDS.iter().map(|k| k.to_string()).collect(),
            names: names.into_iter().collect(),
            tables,
            saved: saved::all().into_iter().map(|q| q.name).collect(),
        }
    }

    fn candidates(&self, line: &str, word: &str) -> Vec<String> {
        if line.trim_start().starts_with('\\') {
            let command = line.split_whitespace().next().unwrap_or("");
            let at_first_word = !line.trim_start().contains(char::is_whitespace);
            if at_first_word {
                return COMMANDS
                    .iter()
                    .map(|(c, _)| c.split_whitespace().next().unwrap_or(c).to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|c| c.starts_with(&format!("\\{word}")) || c.starts_with(word))
                    .collect();
            }
            let pool: Vec<String> = match command {
                "\\run" => self.saved.clone(),
                "\\format" => Format::names(),
                "\\d" => self.tables.clone(),
                "\\timing" => vec!["on".into(), "off".into()],
                _ => vec![],
            };
            return pool.into_iter().filter(|c| c.starts_with(word)).collect();
        }
        let lower = word.to_ascii_lowercase();
        let mut out: Vec<String> = self
            .names
            .iter()
            .filter(|n| n.to_ascii_lowercase().starts_with(&lower))
            .cloned()
            .collect();
        let upper_case = word.chars().next().is_some_and(|c| c.is_ascii_uppercase());
        out.extend(
            self.keywords
                .iter()
                .filter(|k| k.to_ascii_lowercase().starts_with(&lower))
                .map(|k| {
                    if upper_case {
                        k.clone()
                    } else {
                        k.to_ascii_lowercase()
                    }
                }),
        );
        out.dedup();
        out
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let candidates = self.candidates(before, word);
        // A backslash command completes from its backslash.
        let start = if before.trim_start().starts_with('\\') && !before.trim_start().contains(' ') {
            before.find('\\').unwrap_or(start)
        } else {
            start
        };
        Ok((
            start,
            candidates
                .into_iter()
                .map(|c| Pair {
                    display: c.clone(),
                    replacement: c,
                })
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {
    /// A backslash command is complete at once; SQL is complete when it
    /// ends with `;`. A statement that does not parse is complete too: as
    /// in psql and DuckDB's shell, it gets its error and a fresh prompt,
    /// and Up-arrow brings it back from history for fixing.
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input().trim();
        if input.is_empty() || input.starts_with('\\') || input.ends_with(';') {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Helper for ShellHelper {}

/// Runs the shell until `\q` or Ctrl-D.
pub(crate) async fn run(shell: &mut Shell, table_name: &str) -> Exit {
    shell.keep_last_result = true;
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> = match Editor::with_config(config) {
        Ok(editor) => editor,
        Err(e) => {
            print_error(format_args!("cannot start the interactive shell: {e}"));
            return Exit::Failure;
        }
    };
    editor.set_helper(Some(ShellHelper::new(shell).await));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    // Install the SIGINT handler now, so Ctrl-C during a statement always
    // cancels it instead of ending the process.
    let _interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    eprintln!(
        "flowsql {}: table `{table_name}` is ready. End statements with `;`. \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        let line = tokio::task::block_in_place(|| editor.readline("flowsql> "));
        match line {
            Ok(line) => {
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(text);
                if let Some(path) = &history
                    && let Err(e) = editor.save_history(path)
                {
                    print_warning(format_args!(
                        "cannot save history to {}: {e}",
                        path.display()
                    ));
                }
                if text.starts_with('\\') {
                    match command(shell, text).await {
                        Ok(CommandOutcome::Quit) => break,
                        Ok(CommandOutcome::Continue) => {}
                        Err(e) => print_run_error(&e, None),
                    }
                } else if let Err(e) = shell.run_sql(text, Stop::Interrupt).await {
                    print_run_error(&e, None);
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                print_error(e);
                break;
            }
        }
    }
    Exit::Success
}

enum CommandOutcome {
    Continue,
    Quit,
}

fn usage(message: String) -> RunError {
    RunError::Failed(datafusion::common::DataFusionError::Configuration(message))
}

/// Runs one backslash command.
async fn command(shell: &mut Shell, text: &str) -> Result<CommandOutcome, RunError> {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or("");
    let args: Vec<&str> = words.collect();
    match (name, args.as_slice()) {
        ("\\q" | "\\quit", []) => return Ok(CommandOutcome::Quit),
        ("\\?" | "\\h" | "\\help", []) => {
            let width = COMMANDS.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
            for (command, help) in COMMANDS {
                println!("  {command:width$}  {help}");
            }
        }
        ("\\d", []) => {
            // A listing is not a result to chart: `\chart` keeps the query's.
            let last = shell.last_result.take();
            shell
                .run_sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name;",
                    Stop::Interrupt,
                )
                .await?;
            shell.last_result = last;
        }
        ("\\d", [table]) => {
            let exists = shell.ctx.table_exist(*table).unwrap_or(false);
            if !exists {
                return Err(usage(format!(
                    "no table named `{table}` (\\d lists the tables)"
                )));
            }
            let last = shell.last_result.take();
            let recorded = flowsql::recorded_columns(&shell.ctx, table).await?;
            // The name as SQL resolves it (unquoted names fold to lower
            // case, a schema may precede it), as information_schema holds it.
            let table = datafusion::common::TableReference::from(*table)
                .table()
                .replace('\'', "''");
            let Some(recorded) = recorded else {
                shell
                    .run_sql(
                        &format!(
                            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                             WHERE table_name = '{table}' ORDER BY ordinal_position;"
                        ),
                        Stop::Interrupt,
                    )
                    .await?;
                shell.last_result = last;
                return Ok(CommandOutcome::Continue);
            };
            let origins: Vec<String> = recorded
                .iter()
                .map(|(name, origin)| format!("('{}', '{origin}')", name.replace('\'', "''")))
                .collect();
            shell
                .run_sql(
                    &format!(
                        "SELECT c.column_name, c.data_type, c.is_nullable, r.recorded \
                         FROM information_schema.columns c \
                         JOIN (VALUES {}) AS r(name, recorded) ON c.column_name = r.name \
                         WHERE c.table_name = '{table}' ORDER BY c.ordinal_position;",
                        origins.join(", ")
                    ),
                    Stop::Interrupt,
                )
                .await?;
            println!(
                "recorded: whether a flow-log format seen so far (headers sampled at opening \
                 and of every object read since) records the field; a `no` column is NULL in \
                 every record read."
            );
            shell.last_result = last;
        }
        ("\\saved", []) => {
            for query in saved::all() {
                let params: Vec<String> = query
                    .parameters
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.default))
                    .collect();
                println!("  {:28} {}", query.name, query.title);
                println!("  {:28}   {}", "", query.question);
                if !params.is_empty() {
                    println!("  {:28}   parameters: {}", "", params.join(" "));
                }
            }
        }
        ("\\run", [name, params @ ..]) => {
            let query = saved::find(name)?;
            let values = params
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| usage(format!("`{p}` is not PARAM=VALUE")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sql = query.render(&values)?;
            shell.run_sql(&sql, Stop::Interrupt).await?;
        }
        ("\\chart", []) => {
            let Some((schema, batches)) = &shell.last_result else {
                return Err(usage(
                    "no result to chart yet: run a query first".to_string(),
                ));
            };
            shell.draw(schema, batches)?;
        }
        ("\\format", []) => println!("format: {}", format_name(shell.format)),
        ("\\format", [name]) => match Format::parse(name) {
            Some(format) if format.files_only() => {
                return Err(usage(format!(
                    "{} output goes to a file: use -o FILE.{}",
                    format.name(),
                    format.extension()
                )));
            }
            Some(format) => shell.format = format,
            None => {
                return Err(usage(format!(
                    "unknown format `{name}`; use one of {}",
                    Format::names().join(", ")
                )));
            }
        },
        ("\\cache", []) => match &shell.cache {
            Some(cache) => {
                let mut usage = CacheUsage::of(cache)
                    .map_err(|e| usage(format!("cannot read the cache: {e}")))?;
                usage.hits += shell.cache_reads.0;
                usage.misses += shell.cache_reads.1;
                println!("{}", cache_usage(cache, &usage));
                if !shell.cache_in_use {
                    println!("  not used by this session (--no-cache)");
                }
            }
            None => println!("no cache folder: neither XDG_CACHE_HOME nor HOME is set"),
        },
        ("\\cache", ["clear"]) => match &shell.cache {
            Some(cache) => {
                let cleared = CacheUsage::clear(cache)
                    .map_err(|e| usage(format!("cannot clear the cache: {e}")))?;
                shell.cache_reads = (0, 0);
                println!(
                    "cleared the local cache: {} object(s), {}",
                    cleared.entries,
                    human_bytes(cleared.bytes)
                );
            }
            None => println!("no cache folder: neither XDG_CACHE_HOME nor HOME is set"),
        },
        ("\\timing", []) => println!("timing: {}", if shell.timing { "on" } else { "off" }),
        ("\\timing", ["on"]) => shell.timing = true,
        ("\\timing", ["off"]) => shell.timing = false,
        ("\\maxrows", []) => match shell.max_rows {
            Some(n) => println!("maxrows: {n}"),
            None => println!("maxrows: all"),
        },
        ("\\maxrows", ["all"]) => shell.max_rows = None,
        ("\\nullcols", []) => println!(
            "nullcols: {}",
            if shell.hide_null_columns {
                "hide"
            } else {
                "show"
            }
        ),
        ("\\nullcols", ["show"]) => shell.hide_null_columns = false,
        ("\\nullcols", ["hide"]) => shell.hide_null_columns = true,
        ("\\maxrows", [n]) => {
            shell.max_rows = Some(
                n.parse()
                    .map_err(|_| usage(format!("`{n}` is not a number of rows")))?,
            )
        }
        _ => {
            return Err(usage(format!(
                "unknown command `{text}`; \\? lists the commands"
            )));
        }
    }
    Ok(CommandOutcome::Continue)
}

fn format_name(format: Format) -> String {
    use clap::ValueEnum;
    format
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}
