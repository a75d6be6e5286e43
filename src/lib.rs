//! # flowsql
//!
//! SQL over Amazon VPC flow logs where AWS delivers them: gzip text or
//! Parquet objects under
//! `[prefix/]AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{MM}/{dd}/`
//! in S3, or a local copy of such a tree. No DDL, no partition upkeep: point
//! it at the folder above `AWSLogs/` and query the table `vpc_flow_logs`.
//!
//! ## A session
//!
//! [`new_context`] makes a DataFusion `SessionContext` with the flow logs
//! of one or more locations registered as one table, flowsql's functions,
//! and beside it `flowsql_rejects` ([`REJECTS_TABLE`]), the malformed lines
//! the last statement skipped. [`SessionOptions`] names the table and sets
//! a memory limit; its [`FlowLogOptions`] say how the table reads
//! (pruning, strict, bad objects, [`S3Options`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> datafusion::common::Result<()> {
//! let location = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bucket");
//! let ctx = flowsql::new_context(&[location], &flowsql::SessionOptions::default()).await?;
//! let batches = ctx
//!     .sql("SELECT srcaddr, sum(bytes) AS total FROM vpc_flow_logs \
//!           WHERE log_status = 'OK' GROUP BY srcaddr ORDER BY total DESC LIMIT 3")
//!     .await?
//!     .collect()
//!     .await?;
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! ## Athena's SQL
//!
//! `ctx.sql` speaks DataFusion's SQL with flowsql's functions. [`sql`] (or
//! [`parse_statements`] then [`execute_statement`]) adds what Athena users
//! write: `SHOW PARTITIONS`, `MSCK REPAIR TABLE`, `SET SESSION`,
//! `IPADDRESS '…'` literals and Trino's `_colN` names, as the command line
//! does; and `COPY vpc_flow_logs TO 'dest'` (or `COPY (SELECT * FROM
//! vpc_flow_logs WHERE <path filters>) TO 'dest'`), which converts the
//! objects into AWS's Hive-compatible Parquet delivery under `dest`. `IPADDRESS` values are 16 bytes; [`ipaddresses_as_text`] turns
//! them into text for display.
//!
//! ## The table alone
//!
//! [`FlowLogTable`] is the `TableProvider` itself, to register in a context
//! of your own, which then has only DataFusion's functions and
//! aggregation ([`Bucketing`] configures the rule [`new_context`] adds for
//! grouped aggregations with millions of groups).
//!
//! ## What a scan saw, and what went wrong
//!
//! [`scan_report`] gives the table's [`ScanReport`]: objects and bytes
//! read, listings made, malformed lines ([`MalformedLine`]), objects passed
//! over ([`SkippedObject`]), header fields with no column; a
//! [`ScanSummary`] is a copy of it at one moment. [`list_scans`] runs a
//! plan's listings without reading, for a dry run. Errors are DataFusion's;
//! flowsql's own are an [`Error`] inside them ([`Error::find`]), so callers
//! match on variants, never on text.
//!
//! ## Inside
//!
//! The data flows one way: the location (object store and prefix) → the
//! table (key grammar, listing, pruning) → the scan (GET, one reader per
//! object format: gunzip then flowsql's decoder, or DataFusion's Parquet
//! reader) → the decoder (text to Arrow, keeping the
//! lines that pass the query's record filter) → DataFusion, whose grouped
//! aggregations flowsql finishes one hash bucket at a time. The
//! repository's `docs/ARCHITECTURE.md` maps each stage to its folder and
//! states the invariants; `benches/RESULTS.md` holds the measurements.

#![warn(missing_docs)]
// Every `pub` item is reachable from outside, through the facade below or
// `internals`; without the `internals` feature (a plain build) the items
// only `internals` reaches would be flagged, so the lint runs where that
// feature is on: this crate's tests, clippy and CI.
#![cfg_attr(feature = "internals", warn(unreachable_pub))]

mod aggregate;
mod cache;
mod catalogue;
#[cfg(feature = "cluster")]
pub mod cluster;
mod convert;
mod cpu;
mod decode;
mod error;
#[cfg(any(test, feature = "internals"))]
#[doc(hidden)]
pub mod generate;
mod location;
mod narrow_integers;
mod report;
mod scan;
mod session;
mod sql;
mod table;
mod text_codes;
mod text_dictionary;

pub use aggregate::Bucketing;
pub use cache::{CacheOptions, CacheUsage, DEFAULT_CACHE_BYTES};
pub use error::{Error, StoreProblem};
pub use location::S3Options;
pub use report::{MalformedLine, REJECTS_TABLE, ScanReport, ScanSummary, SkippedObject};
pub use scan::list_scans;
pub use session::{
    DEFAULT_TABLE_NAME, SessionOptions, new_context, recorded_columns, scan_report, table_notes,
};
pub use sql::dialect::{Executed, execute_statement, parse_statements, sql};
pub use sql::functions::ipaddress::ipaddresses_as_text;
pub use table::{FlowLogOptions, FlowLogTable};

/// The pieces behind the table, for flowsql's own tests, benchmarks and
/// fuzz targets (the `internals` feature): the decoder, the header parser,
/// gunzip, the key grammar and the generator of test trees. Not a stable
/// API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::catalogue::Header;
    pub use crate::decode::record_filter::RecordFilter;
    pub use crate::decode::{MAX_LINE_BYTES, Reject, RejectSink, TextDecoder};
    pub use crate::generate;
    pub use crate::scan::inflate::gunzip_single_member;
    pub use crate::table::layout::Grammar;
}
