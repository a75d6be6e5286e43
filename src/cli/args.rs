//! The raw flags, as clap parses them: types and help text, no rules
//! about which go together. [`super::invocation`] checks and resolves
//! them into what runs.

use std::path::PathBuf;

use clap::Parser;
use flowsql::DEFAULT_TABLE_NAME;

use super::print::Format;

/// `flowsql [OPTIONS] [LOCATION]...`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "flowsql",
    version,
    about = "SQL over Amazon VPC flow logs in S3 or a local copy, with no setup",
    after_help = "With neither -c, -f nor --saved, flowsql opens an interactive shell (\\? lists its commands).\n\n\
Examples:\n  flowsql s3://my-bucket/prefix -c \"SELECT action, count(*) FROM vpc_flow_logs GROUP BY action\"\n  \
flowsql ./logs --saved top_talkers -o top.csv\n  flowsql ./logs --saved traffic_from_source --param src_addr=10.0.1.5\n  \
flowsql ./logs --to-parquet ./logs-parquet --where \"date >= DATE '2024-05-01'\""
)]
pub(crate) struct Args {
    /// s3://bucket[/prefix] or a local folder holding AWSLogs/ (the AWSLogs
    /// folder itself is accepted too); several locations make one table
    #[arg(value_name = "LOCATION")]
    pub(crate) locations: Vec<String>,

    /// Run SQL and exit (repeatable; a string may hold several statements separated by `;`)
    // SQL may open with a `--` comment (saved queries and pasted SQL do):
    // the value after -c is SQL, never a flag.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        allow_hyphen_values = true
    )]
    pub(crate) commands: Vec<String>,

    /// Run every statement in a file and exit (repeatable)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub(crate) files: Vec<PathBuf>,

    /// Run a saved query from queries/ and exit (repeatable; see \saved in the shell)
    #[arg(long = "saved", value_name = "NAME")]
    pub(crate) saved: Vec<String>,

    /// A saved query's parameter (repeatable)
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// Convert the flow logs (those --where picks, else all) into AWS's
    /// Hive-compatible Parquet delivery under DEST (a local folder or
    /// s3://bucket/prefix) and exit; the same as
    /// -c "COPY vpc_flow_logs TO 'DEST'"
    #[arg(long = "to-parquet", value_name = "DEST")]
    pub(crate) to_parquet: Option<String>,

    /// With --to-parquet: which objects, as SQL on the path columns
    /// (aws_account_id, aws_region, date, hour, flow_log_id, file_time)
    #[arg(long = "where", value_name = "FILTER", allow_hyphen_values = true)]
    pub(crate) only_where: Option<String>,

    /// Output format [default: from the -o extension, else table]
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,

    /// Write results to FILE instead of stdout (format from --format or the
    /// extension: .csv .tsv .json .ndjson .parquet, or a chart: .svg .png)
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Rows shown in table format [default: 40 on a terminal, all otherwise]
    #[arg(long, value_name = "N")]
    pub(crate) maxrows: Option<usize>,

    /// Table name
    #[arg(long = "table", value_name = "NAME", default_value = DEFAULT_TABLE_NAME)]
    pub(crate) table_name: String,

    /// No timing line and no progress line
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// Fail on the first malformed line, naming the object and line
    #[arg(long)]
    pub(crate) strict: bool,

    /// Pass over objects that are not readable flow logs (corrupt, truncated
    /// or empty gzip or Parquet, no header line), naming each in a warning,
    /// instead of failing the statement
    #[arg(long)]
    pub(crate) skip_bad_objects: bool,

    /// List and read every object and build every line, ignoring filters
    /// when choosing what to read (answers are the same; for checking pruning)
    #[arg(long)]
    pub(crate) no_pruning: bool,

    /// Plan each statement and print what it would list and read (objects,
    /// compressed bytes, prefixes listed) without reading any object
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Draw each result as a chart in the terminal instead of a table: a
    /// date or time first column gives bars over time, any other first
    /// column a bar per row; every numeric column is a series
    #[arg(long)]
    pub(crate) chart: bool,

    /// AWS profile for s3:// locations [default: AWS_PROFILE, else default]
    #[arg(long, value_name = "NAME")]
    pub(crate) profile: Option<String>,

    /// AWS region [default: AWS_REGION, the profile's, else the bucket's own]
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,

    /// S3-compatible endpoint such as http://127.0.0.1:9000 [default:
    /// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's endpoint_url]
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,

    /// Send unsigned requests, for public buckets
    #[arg(long)]
    pub(crate) no_sign_request: bool,

    /// Disk space for the local cache of decoded objects (such as 2G); past
    /// it the least recently used are removed [default: 10G]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) cache_size: Option<usize>,

    /// Run statements on a Ballista cluster whose scheduler is at
    /// df://HOST:PORT (see flowsql-scheduler and flowsql-executor)
    #[cfg(feature = "cluster")]
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) cluster: Option<String>,

    /// Read every object from its source, neither using nor filling the
    /// local cache
    #[arg(long)]
    pub(crate) no_cache: bool,

    /// Print where the local cache is, what it holds and its hit rate
    /// (then exit, unless LOCATIONs are given)
    #[arg(long)]
    pub(crate) cache_info: bool,

    /// Empty the local cache (then exit, unless LOCATIONs are given)
    #[arg(long)]
    pub(crate) clear_cache: bool,

    /// Memory for sorts, joins and aggregations (such as 512M or 2G); past
    /// it they spill to temporary files [default: no limit]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) memory_limit: Option<usize>,
}

/// `512M`, `2G`, `1.5G`, `4096` (bytes); K, M, G, T are powers of 1024.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(format!("`{text}` is not a size such as 512M or 2G")),
    };
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 512M or 2G"))?;
    if number.is_nan() || number <= 0.0 {
        return Err(format!("`{text}`: the size must be above zero"));
    }
    Ok((number * (1u64 << shift) as f64) as usize)
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

impl Args {
    /// Whether anything is to be run without the shell.
    pub(crate) fn is_one_shot(&self) -> bool {
        !(self.commands.is_empty()
            && self.files.is_empty()
            && self.saved.is_empty()
            && self.to_parquet.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
    }
}
