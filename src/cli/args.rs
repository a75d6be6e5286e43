//! The command line, as clap parses it.

use clap::{Parser, ValueEnum};

use crate::session::DEFAULT_TABLE_NAME;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// Comma-separated values with a header row; NULL is an empty field.
    Csv,
}

/// `flowsql [OPTIONS] [LOCATION]...`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flowsql",
    version,
    about = "SQL over Amazon VPC flow logs in S3 or a local copy, with no setup",
    after_help = "Example:\n  flowsql s3://my-bucket/prefix -c \"SELECT action, count(*) FROM vpc_flow_logs GROUP BY action\""
)]
pub struct Args {
    /// s3://bucket[/prefix] or a local folder holding AWSLogs/ (the AWSLogs
    /// folder itself is accepted too); several locations make one table
    #[arg(value_name = "LOCATION")]
    pub locations: Vec<String>,

    /// Run SQL and exit (repeatable; a string may hold several statements separated by `;`)
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Table name
    #[arg(long = "table", value_name = "NAME", default_value = DEFAULT_TABLE_NAME)]
    pub table_name: String,

    /// No timing line
    #[arg(short, long)]
    pub quiet: bool,

    /// Fail on the first malformed line, naming the object and line
    #[arg(long)]
    pub strict: bool,

    /// List and read every object, ignoring path and time filters when
    /// choosing what to read (answers are the same; for checking pruning)
    #[arg(long)]
    pub no_pruning: bool,
}
