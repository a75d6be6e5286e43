//! Finishing a `GROUP BY` one hash bucket at a time.
//!
//! DataFusion finishes a grouped aggregation in
//! `AggregateExec(FinalPartitioned)` over a hash `RepartitionExec`: one hash
//! table per partition holding every group of that partition. Flow logs have
//! queries with millions of groups (top talkers: one per source address),
//! and there that table costs a cache miss per row and holds every group at
//! once, growing with the data.
//!
//! [`BucketedAggregateExec`] takes the place of both. Each input partition
//! (the partial aggregates' states) is read in a task of its own, as the
//! repartition would have read it, and its rows are split by the
//! repartition's own hash (but see packed keys below) into the output
//! partition the repartition would have sent them to and into one of
//! [`BUCKETS`] buckets of that partition:
//! one hash and one copy where the repartition and a split of its output
//! took two of each. Split rows are kept in memory up to a budget and
//! spilled to DataFusion's temporary files past it. When every input is
//! split, each output partition runs the unchanged aggregate over its
//! buckets, one at a time. All of a group's rows fall in one bucket, so the
//! answer is the same; each bucket's table is small enough to stay in cache,
//! and only one is held at a time. Small buckets are aggregated together, so
//! a `GROUP BY` over a small input runs the aggregate about once per
//! partition, as before.
//!
//! Group keys of short text made of digits and dots (IPv4 addresses,
//! account ids) travel as `u64` codes ([`crate::text_codes`]) from the split to
//! the output: rows of half the bytes to copy and spill, and
//! integer keys to hash and compare. Where no node of the plan pairs one
//! input's partitions with another's (no join, no union), rows with codes
//! are routed by a hash of the codes instead of the repartition's hash of
//! the text, which is cheaper; the partitioning is then by the same keys,
//! but not the repartition's. Rows whose keys have no code (IPv6
//! addresses, names) are split and aggregated as they are, apart from the
//! packed ones; a key's form depends only on the key, so no group is split
//! between the two.
//!
//! Where the aggregation is sums, counts, minimums and maximums of 64-bit
//! integers by packed keys only (top talkers), the output partitions merge
//! the packed rows' states themselves ([`packed_merge`]) instead of running
//! DataFusion's aggregate over them; EXPLAIN says `merged_by_code`.
//!
//! [`BucketFinalAggregation`] is the physical optimizer rule that puts it in
//! place.
//!
//! Below the repartition, the partial aggregation by one text key (by ENI,
//! by action) runs by the keys' string views where they repeat, as they do
//! in columns read from Parquet dictionary pages ([`by_view`]); the rule
//! [`PartialAggregationByView`] puts it in place.
//!
//! The files, in the order rows go through them:
//! - [`by_view`]: the partial aggregation by one text key, grouped by the
//!   keys' string views;
//! - [`rule`]: the physical optimizer rules that put a
//!   [`PartialAggregateByViewExec`] in place of each partial aggregate it
//!   can run and a [`BucketedAggregateExec`] in place of each final
//!   aggregate it can finish;
//! - [`exec`]: that execution plan node: which aggregates it takes, how it
//!   shows in EXPLAIN, its metrics, and its two phases (split every input,
//!   then finish each output partition's buckets);
//! - [`packing`]: which group keys travel as [`crate::text_codes`] codes, and the
//!   aggregate over rows that carry them;
//! - [`routing`]: which output partition and bucket a row goes to;
//! - [`split`]: one input partition's rows put in bucket order, held in
//!   memory up to a budget and spilled to temporary files past it;
//! - [`finish`]: one output partition's buckets gathered from every input's
//!   split and aggregated a run of buckets at a time, by [`packed_merge`] or
//!   by DataFusion's aggregate;
//! - [`keep_top`]: under a TopK by a merged aggregate, only the groups it can
//!   still choose, dropped before their codes become text again.
//!
//! [`BucketedAggregateExec`]: exec::BucketedAggregateExec
//! [`PartialAggregateByViewExec`]: by_view::PartialAggregateByViewExec

mod by_view;
mod exec;
mod finish;
mod keep_top;
mod packed_merge;
mod packing;
mod routing;
mod rule;
mod split;

use datafusion::physical_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};

#[cfg(feature = "cluster")]
pub(crate) use by_view::PartialAggregateByViewExec;
#[cfg(feature = "cluster")]
pub(crate) use exec::BucketedAggregateExec;
pub(crate) use rule::{BucketFinalAggregation, PartialAggregationByView};

/// How grouped aggregations are finished one hash bucket at a time: how
/// rows are split into buckets and how much is held before spilling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucketing {
    /// Input rows gathered before they are split into buckets (with one
    /// copy).
    pub window_rows: usize,
    /// Bytes of split rows held in memory, shared evenly by the input
    /// partitions; past its share an input partition spills all it holds
    /// to a temporary file. Under a memory limit
    /// (`SessionOptions::memory_limit`) it is at most half the limit, and
    /// the memory pool can make it spill sooner.
    pub memory_budget: usize,
}

impl Default for Bucketing {
    fn default() -> Self {
        Self {
            window_rows: 64 * 1024,
            memory_budget: 48 << 20,
        }
    }
}

/// Buckets per partition: enough that a bucket's rows and its aggregate's
/// table stay small enough for the cache, even with millions of groups.
/// Each bucket costs the split a list and a spill a batch, so fewer
/// buckets run a little faster; but a bucket's rows and table grow with
/// the data, and with them the peak memory. The measurements behind the
/// choice are in `benches/RESULTS.md`.
pub(crate) const BUCKETS: usize = 1 << BUCKET_BITS;
const BUCKET_BITS: u32 = 8;

/// The aggregate gets new inputs (a bucket, or a rewritten child): its
/// properties follow from them.
const RECOMPUTE: ReplaceChildrenOptions =
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
