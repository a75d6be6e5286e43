//! Which output partition and which bucket of it a row goes to: the
//! repartition's hash of the keys, or a hash of their codes.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::common::Result;
use datafusion::common::hash_utils::create_hashes;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;

use super::packing::PackedRows;
use super::{BUCKET_BITS, BUCKETS};

/// Where the bucket bits start in the routing hash: right under the seven
/// bits hashbrown tags entries with.
const BUCKET_SHIFT: u32 = 64 - 7 - BUCKET_BITS;

/// Where a row goes: its output partition, as the repartition would have
/// sent it (or, routed by code, by a hash of its codes), and a bucket
/// within that partition, both from one hash; and whether to its packed or
/// its text rows.
pub(crate) struct Route {
    pub(crate) keys: Vec<Arc<dyn PhysicalExpr>>,
    pub(crate) partitions: usize,
    /// Whether rows with codes are hashed by their codes (see
    /// [`with_code_routing`](super::exec::BucketedAggregateExec::with_code_routing)).
    pub(crate) by_code: bool,
}

impl Route {
    /// Buckets over all partitions: partition `p` has buckets
    /// `p * BUCKETS .. (p + 1) * BUCKETS`.
    pub(crate) fn buckets(&self) -> usize {
        self.partitions * BUCKETS
    }

    /// Lists of rows: each bucket's text rows, then each bucket's packed
    /// rows.
    pub(crate) fn lists(&self) -> usize {
        2 * self.buckets()
    }

    /// Hashes `batch`'s rows into `hashes` and adds each row's list (see
    /// [`Route::lists`]) to `lists`. `codes` is the batch with its keys
    /// packed.
    pub(crate) fn add(
        &self,
        batch: &RecordBatch,
        codes: Option<&RecordBatch>,
        packed: &PackedRows,
        hashes: &mut Vec<u64>,
        lists: &mut WindowLists,
    ) -> Result<()> {
        // The repartition's own hash of the text, so that a row lands in the
        // partition it would have (a join above may pair partitions), or,
        // where nothing pairs them, of the codes.
        let hash = |batch: &RecordBatch, hashes: &mut Vec<u64>| -> Result<()> {
            let keys = self
                .keys
                .iter()
                .map(|key| key.evaluate(batch)?.into_array(batch.num_rows()))
                .collect::<Result<Vec<ArrayRef>>>()?;
            hashes.clear();
            hashes.resize(batch.num_rows(), 0);
            create_hashes(&keys, REPARTITION_RANDOM_STATE.random_state(), hashes)?;
            Ok(())
        };
        // Codes are hashed by a mixer of their own where every key is one,
        // which costs less than DataFusion's hash of them.
        let hash_codes = |codes: &RecordBatch, hashes: &mut Vec<u64>| -> Result<()> {
            let keys: Option<Vec<&UInt64Array>> = self
                .keys
                .iter()
                .map(|key| {
                    let column = key.downcast_ref::<Column>()?;
                    codes
                        .column(column.index())
                        .as_primitive_opt::<UInt64Type>()
                })
                .collect();
            match keys {
                Some(keys) => {
                    hash_code_columns(&keys, hashes);
                    Ok(())
                }
                None => hash(codes, hashes),
            }
        };
        match (packed, codes.filter(|_| self.by_code)) {
            (PackedRows::All, Some(codes)) => hash_codes(codes, hashes)?,
            (PackedRows::Some(rows), Some(codes)) => {
                hash(batch, hashes)?;
                let mut code_hashes = Vec::new();
                hash_codes(codes, &mut code_hashes)?;
                for row in rows.set_indices() {
                    hashes[row] = code_hashes[row];
                }
            }
            _ => hash(batch, hashes)?,
        }
        let buckets = self.buckets();
        match packed {
            PackedRows::None => self.push(hashes, lists, |_| 0),
            PackedRows::All => self.push(hashes, lists, |_| buckets),
            PackedRows::Some(rows) => {
                self.push(hashes, lists, |row| buckets * rows.value(row) as usize)
            }
        }
        Ok(())
    }

    /// Adds each row's list to `lists`: `list_of(row)` (text or packed)
    /// plus its bucket.
    fn push(&self, hashes: &[u64], lists: &mut WindowLists, list_of: impl Fn(usize) -> usize) {
        // The partition takes the hash's low bits (its remainder). The bucket
        // takes the nine bits under the top seven: a string key's table in
        // the aggregate hashes with this same function and indexes by the
        // low bits and tags by the top seven, which must still differ
        // between the rows of one bucket. (Codes' tables hash with a seed
        // of their own.)
        // A mask where the partition count allows: no division per row.
        let partitions = self.partitions as u64;
        if partitions.is_power_of_two() {
            push_lists(hashes, lists, list_of, |hash| hash & (partitions - 1));
        } else {
            push_lists(hashes, lists, list_of, |hash| hash % partitions);
        }
    }
}

/// Each row's hash of its codes (one column per key) into `hashes`: all
/// bits of it mixed (murmur3's finalizer), as the partition takes the low
/// bits and the bucket high ones.
fn hash_code_columns(keys: &[&UInt64Array], hashes: &mut Vec<u64>) {
    fn mix(mut h: u64) -> u64 {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    // What a null key hashes as: any value will do, the same for all.
    const NULL: u64 = 0x9E37_79B9_7F4A_7C15;
    hashes.clear();
    hashes.resize(keys.first().map_or(0, |key| key.len()), 0);
    for key in keys {
        match key.nulls().filter(|nulls| nulls.null_count() > 0) {
            None => {
                for (hash, &code) in hashes.iter_mut().zip(key.values().iter()) {
                    *hash = mix(hash.rotate_left(21) ^ code);
                }
            }
            Some(nulls) => {
                for (row, (hash, &code)) in hashes.iter_mut().zip(key.values().iter()).enumerate() {
                    let code = if nulls.is_valid(row) { code } else { NULL };
                    *hash = mix(hash.rotate_left(21) ^ code);
                }
            }
        }
    }
}

/// Adds each row's list, `list_of(row)` plus its bucket (the one of
/// `partition_of(hash)` taken from the hash's bucket bits), to `lists`.
fn push_lists(
    hashes: &[u64],
    lists: &mut WindowLists,
    list_of: impl Fn(usize) -> usize,
    partition_of: impl Fn(u64) -> u64,
) {
    lists.of_row.reserve(hashes.len());
    for (row, &hash) in hashes.iter().enumerate() {
        let bucket = (hash >> BUCKET_SHIFT) as usize & (BUCKETS - 1);
        let list = list_of(row) + partition_of(hash) as usize * BUCKETS + bucket;
        lists.counts[list] += 1;
        lists.of_row.push(list as u32);
    }
}

/// A window's rows by list (see [`Route::lists`]): each row's list, in the
/// window's order, and each list's count of rows. A split puts the rows in
/// list order from these with one counting sort, where a growing list of
/// positions per list cost a push each and a copy of them all.
pub(crate) struct WindowLists {
    pub(crate) of_row: Vec<u32>,
    pub(crate) counts: Vec<u32>,
}

impl WindowLists {
    pub(crate) fn new(lists: usize) -> Self {
        Self {
            of_row: Vec::new(),
            counts: vec![0; lists],
        }
    }

    /// Empties it for the next window.
    pub(crate) fn clear(&mut self) {
        self.of_row.clear();
        self.counts.fill(0);
    }
}
