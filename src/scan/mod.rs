//! Reading: the execution plan that lists while it reads, and the reader
//! of each object format.
//!
//! - [`queue`]: what a listing sends ([`queue::ObjectListing`]) and the
//!   queue the plan's partitions share.
//! - [`exec`]: [`FlowLogScanExec`], the leaf of every plan over the table.
//! - [`read_ahead`]: one partition's reading, opening the next objects
//!   while it reads one.
//! - One reader per object format, each a `FileOpener` that turns one
//!   object into record batches: [`text`] for the gzip text objects (GET,
//!   [`inflate`], then the decoder), [`parquet`] for Parquet objects
//!   (DataFusion's Parquet reader). The exec holds one of each per store
//!   index and picks one per object by its name.
//! - [`cached`]: text objects through the local cache of decoded columns,
//!   when the table has one.

pub(crate) mod cached;
pub(crate) mod exec;
pub(crate) mod inflate;
pub(crate) mod parquet;
pub(crate) mod queue;
pub(crate) mod read_ahead;
pub(crate) mod row_group_pruning;
#[cfg(feature = "cluster")]
pub(crate) mod shards;
pub(crate) mod text;

pub(crate) use exec::FlowLogScanExec;
pub use exec::list_scans;
pub(crate) use queue::{FoundObject, ObjectFormat, ObjectListing};
