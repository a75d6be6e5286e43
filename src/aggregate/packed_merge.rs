//! The final step of the commonest flow-log aggregations, done directly:
//! partial sums, counts, minimums and maximums of 64-bit integers, grouped
//! by keys carried as [`crate::text_codes`] codes (an address, a pair of
//! addresses).
//!
//! [`crate::aggregate`] runs the final aggregation once per run of
//! buckets. DataFusion's `AggregateExec` does it for any aggregate, but a
//! run costs it a plan, a stream and a hash table that starts small and
//! grows several times, and a query such as top talkers has a run per
//! bucket (EXPLAIN ANALYZE's aggregate_time shows the cost).
//! [`PackedMerge`] takes the rows of a run at once, so it sizes one
//! open-addressing table of codes for them, and merges each state column
//! in a loop of its own. It computes what DataFusion's accumulators
//! compute: sums wrap as theirs do, a state that is null is skipped, and a
//! group with no other state is null (counts are never null).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, ArrowPrimitiveType, AsArray, BooleanArray, PrimitiveArray,
    RecordBatch, UInt64Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, UInt64Type};
use datafusion::common::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::spill::get_record_batch_memory_size;

/// How a state column merges into its group's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// Wrapping sum of the non-null states; null if there are none.
    Sum,
    /// Sum of counts; never null.
    Count,
    Min,
    Max,
}

/// The final aggregation of one aggregate over packed codes, merged in
/// place of DataFusion's (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct PackedMerge {
    /// Group keys: the first columns of the input and of the output.
    keys: usize,
    /// Each aggregate's merge and the type of its state (and result).
    merges: Vec<(Merge, DataType)>,
    /// The output: the keys' codes, then each aggregate's result.
    schema: SchemaRef,
}

impl PackedMerge {
    /// The merge of `aggregate` (a final aggregation), with its text keys
    /// packed: input rows of `input` (the keys' codes, then one state per
    /// aggregate) and output of `output` (the keys as codes, then the
    /// results). `None` unless every key is packed and every aggregate is a
    /// plain `sum`, `count`, `min` or `max` whose state and result are
    /// `Int64` or `UInt64`.
    pub(crate) fn try_new(
        aggregate: &AggregateExec,
        input: &SchemaRef,
        output: &SchemaRef,
    ) -> Option<Self> {
        let group_by = aggregate.group_expr();
        let keys = group_by.expr().len();
        let columns_in_order = group_by.expr().iter().enumerate().all(|(i, (key, _))| {
            key.downcast_ref::<Column>()
                .is_some_and(|column| column.index() == i)
        });
        if !group_by.is_single() || keys == 0 || !columns_in_order {
            return None;
        }
        let aggregates = aggregate.aggr_expr();
        let plain = aggregate.filter_expr().iter().all(Option::is_none);
        let codes = |schema: &SchemaRef| {
            (0..keys).all(|i| schema.field(i).data_type() == &DataType::UInt64)
        };
        if !plain
            || input.fields().len() != keys + aggregates.len()
            || output.fields().len() != keys + aggregates.len()
            || !codes(input)
            || !codes(output)
        {
            return None;
        }
        let mut merges = Vec::with_capacity(aggregates.len());
        for (i, expr) in aggregates.iter().enumerate() {
            if expr.is_distinct() || !expr.order_bys().is_empty() {
                return None;
            }
            let merge = match expr.fun().name() {
                "sum" => Merge::Sum,
                "count" => Merge::Count,
                "min" => Merge::Min,
                "max" => Merge::Max,
                _ => return None,
            };
            let state = expr.state_fields().ok()?;
            let data_type = match state.as_slice() {
                [field] => field.data_type().clone(),
                _ => return None,
            };
            let supported = match merge {
                Merge::Count => data_type == DataType::Int64,
                _ => matches!(data_type, DataType::Int64 | DataType::UInt64),
            };
            if !supported
                || input.field(keys + i).data_type() != &data_type
                || output.field(keys + i).data_type() != &data_type
            {
                return None;
            }
            merges.push((merge, data_type));
        }
        Some(Self {
            keys,
            merges,
            schema: Arc::clone(output),
        })
    }

    /// Bytes [`PackedMerge::merge`] allocates for `rows`, at most: the
    /// table, a group number per row of a batch, and per group its codes
    /// and each aggregate's value and flag.
    pub(crate) fn memory_for(&self, rows: &[RecordBatch]) -> usize {
        let total = rows_of(rows);
        let largest = rows.iter().map(RecordBatch::num_rows).max().unwrap_or(0);
        CodeTable::slots_for(total) * size_of::<u32>()
            + largest * size_of::<u32>()
            + total * (self.keys * size_of::<u64>() + self.merges.len() * (size_of::<u64>() + 1))
    }

    /// The groups of `rows` (of the input schema) and their merged values,
    /// as one batch of the output schema.
    pub(crate) fn merge(&self, rows: &[RecordBatch]) -> Result<RecordBatch> {
        let total = rows_of(rows);
        let mut table = CodeTable::with_rows(self.keys, total);
        let mut columns: Vec<Box<dyn MergedColumn>> = self
            .merges
            .iter()
            .map(|(merge, data_type)| match data_type {
                DataType::UInt64 => {
                    Box::new(Merged::<UInt64Type>::new(*merge)) as Box<dyn MergedColumn>
                }
                _ => Box::new(Merged::<Int64Type>::new(*merge)),
            })
            .collect();
        let mut groups = Vec::new();
        for batch in rows {
            let keys: Vec<&UInt64Array> = batch.columns()[..self.keys]
                .iter()
                .map(|key| key.as_primitive::<UInt64Type>())
                .collect();
            table.groups_of(&keys, &mut groups);
            for (i, column) in columns.iter_mut().enumerate() {
                column.merge(&groups, table.len(), batch.column(self.keys + i));
            }
        }
        let mut output = table.keys();
        output.extend(columns.into_iter().map(|column| column.finish()));
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), output)?)
    }

    /// The rows of `rows` (a run) whose groups' value of the aggregate in
    /// output column `column` may reach `least`, found before merging
    /// them; `None` where no bound is known: the aggregate is not a sum or
    /// a count of `Int64` or `UInt64` states, or a state is negative (even
    /// under a null); every row where `least` is 0 or less.
    ///
    /// Each row's state is added to a counter picked by a hash of its
    /// codes. All of a group's rows add to one counter, so, with no
    /// negative state, a group's value is at most its counter's (other
    /// groups' rows only add to it). A row whose counter is below `least`
    /// is dropped with the rest of its group, which a TopK that already
    /// has its `fetch` groups at `least` or better would never choose.
    /// Counters are 32 bits and saturate: one at the top is kept whatever
    /// `least` is. A null state puts its counter at the top: a group of
    /// nulls alone is null, which the TopSoFar filter always lets through.
    ///
    /// Under `ORDER BY sum(bytes) DESC LIMIT 10` with millions of groups,
    /// nearly every counter is far below the tenth best, so a run's rows
    /// cost a hash and an add each instead of a place in the table.
    pub(crate) fn rows_reaching(
        &self,
        rows: &[RecordBatch],
        column: usize,
        least: i128,
    ) -> Result<Option<Vec<RecordBatch>>> {
        let Some(aggregate) = column.checked_sub(self.keys) else {
            return Ok(None);
        };
        let Some((Merge::Sum | Merge::Count, _)) = self.merges.get(aggregate) else {
            return Ok(None);
        };
        if least <= 0 {
            return Ok(Some(rows.to_vec()));
        }
        let total = rows_of(rows);
        let mut counters = vec![0u32; Self::counters_for(total)];
        let shift = 64 - counters.len().trailing_zeros();
        // Each row's counter, batch after batch.
        let mut places: Vec<u32> = Vec::with_capacity(total);
        for batch in rows {
            let start = places.len();
            self.counters_of(batch, shift, &mut places);
            let places = &places[start..];
            let states = batch.column(self.keys + aggregate);
            let nulls = states.nulls().filter(|nulls| nulls.null_count() > 0);
            match states.data_type() {
                DataType::Int64 => {
                    let values = states.as_primitive::<Int64Type>().values();
                    if values.iter().any(|&value| value < 0) {
                        return Ok(None);
                    }
                    add_states(
                        &mut counters,
                        places,
                        nulls,
                        values.iter().map(|&v| v as u64),
                    );
                }
                DataType::UInt64 => {
                    let values = states.as_primitive::<UInt64Type>().values();
                    add_states(&mut counters, places, nulls, values.iter().copied());
                }
                _ => return Ok(None),
            }
        }
        // A counter at the top is kept whatever `least` is.
        let least = u32::try_from(least).unwrap_or(u32::MAX);
        let mut reaching = Vec::with_capacity(rows.len());
        let mut start = 0;
        for batch in rows {
            let batch_places = &places[start..start + batch.num_rows()];
            start += batch.num_rows();
            let kept = BooleanArray::new(
                BooleanBuffer::collect_bool(batch.num_rows(), |row| {
                    counters[batch_places[row] as usize] >= least
                }),
                None,
            );
            match kept.true_count() {
                0 => {}
                n if n == batch.num_rows() => reaching.push(batch.clone()),
                _ => reaching.push(filter_record_batch(batch, &kept)?),
            }
        }
        Ok(Some(reaching))
    }

    /// Counters for a run of `rows` rows: twice as many, as the table has
    /// slots, so that few rows share one.
    fn counters_for(rows: usize) -> usize {
        (2 * rows).next_power_of_two().max(16)
    }

    /// Bytes [`PackedMerge::rows_reaching`] allocates for `rows`, at most:
    /// its counters, each row's counter, a batch's mask, and the rows it
    /// keeps (copies of at most all of them).
    pub(crate) fn memory_to_bound(rows: &[RecordBatch]) -> usize {
        let total = rows_of(rows);
        let largest = rows.iter().map(RecordBatch::num_rows).max().unwrap_or(0);
        let kept: usize = rows.iter().map(get_record_batch_memory_size).sum();
        (Self::counters_for(total) + total) * size_of::<u32>() + largest + kept
    }

    /// Appends each row's counter (among `1 << (64 - shift)`), from a hash
    /// of its codes, to `places`.
    fn counters_of(&self, batch: &RecordBatch, shift: u32, places: &mut Vec<u32>) {
        let place = |hash: u64| (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as u32;
        let keys: Vec<&UInt64Array> = batch.columns()[..self.keys]
            .iter()
            .map(|key| key.as_primitive::<UInt64Type>())
            .collect();
        let no_nulls = keys.iter().all(|key| key.null_count() == 0);
        match keys.as_slice() {
            [key] if no_nulls => places.extend(key.values().iter().map(|&code| place(code))),
            [first, second] if no_nulls => places.extend(
                first
                    .values()
                    .iter()
                    .zip(second.values().iter())
                    .map(|(&a, &b)| place(a.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ b)),
            ),
            _ => places.extend((0..batch.num_rows()).map(|row| {
                place(keys.iter().fold(0u64, |hash, key| {
                    hash.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ code_at(key, row)
                }))
            })),
        }
    }
}

/// The rows of `batches`, all together.
pub(super) fn rows_of(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// Adds each row's state (`values`, one per row) to its counter (`places`,
/// one per row). Counters saturate: one at the top reaches any least
/// value, and one below it is its rows' exact total. A null state sets its
/// counter to the top.
fn add_states(
    counters: &mut [u32],
    places: &[u32],
    nulls: Option<&NullBuffer>,
    values: impl Iterator<Item = u64>,
) {
    for (row, (&place, value)) in places.iter().zip(values).enumerate() {
        let counter = &mut counters[place as usize];
        *counter = if nulls.is_some_and(|nulls| nulls.is_null(row)) {
            u32::MAX
        } else {
            counter.saturating_add(u32::try_from(value).unwrap_or(u32::MAX))
        };
    }
}

/// A key's code at `row`, [`NULL`] for a null key.
#[inline(always)]
fn code_at(key: &UInt64Array, row: usize) -> u64 {
    if key.is_null(row) {
        NULL
    } else {
        key.value(row)
    }
}

/// Stands for an empty slot.
const EMPTY: u32 = u32::MAX;

/// Stands for a null key among codes: every code has its top four bits 0.
const NULL: u64 = u64::MAX;

/// Groups by codes: an open-addressing table sized once for a run's rows
/// (at most half full, so it never grows). Slots hold group numbers, four
/// bytes each, so that the table of a bucket's run stays in cache.
struct CodeTable {
    slots: Vec<u32>,
    shift: u32,
    /// Codes per group.
    keys: usize,
    /// Each group's codes, [`NULL`] for a null key.
    codes: Vec<u64>,
}

impl CodeTable {
    /// Slots for `rows` rows: at least twice as many.
    fn slots_for(rows: usize) -> usize {
        (rows * 2).next_power_of_two().max(16)
    }

    fn with_rows(keys: usize, rows: usize) -> Self {
        let capacity = Self::slots_for(rows);
        Self {
            slots: vec![EMPTY; capacity],
            shift: 64 - capacity.trailing_zeros(),
            keys,
            codes: Vec::with_capacity(rows / 2 * keys),
        }
    }

    fn len(&self) -> usize {
        self.codes.len() / self.keys
    }

    /// Each row's group into `groups` (`keys` holds each key's codes),
    /// adding groups for new codes.
    fn groups_of(&mut self, keys: &[&UInt64Array], groups: &mut Vec<u32>) {
        let rows = keys[0].len();
        groups.clear();
        groups.reserve(rows);
        match keys {
            [key] => {
                for row in 0..rows {
                    let group = self.group_of::<1>(&[code_at(key, row)]);
                    groups.push(group);
                }
            }
            [first, second] => {
                for row in 0..rows {
                    let group = self.group_of::<2>(&[code_at(first, row), code_at(second, row)]);
                    groups.push(group);
                }
            }
            _ => {
                let mut codes = vec![0; keys.len()];
                for row in 0..rows {
                    for (slot, key) in codes.iter_mut().zip(keys) {
                        *slot = code_at(key, row);
                    }
                    let group = self.group_of::<0>(&codes);
                    groups.push(group);
                }
            }
        }
    }

    /// The group of `codes` (one per key), added if new. `N` is the
    /// number of keys where it is known at compile time (0 where not), so
    /// that comparing one or two codes takes no loop.
    #[inline(always)]
    fn group_of<const N: usize>(&mut self, codes: &[u64]) -> u32 {
        let keys = if N == 0 { self.keys } else { N };
        // Fibonacci hashing: the top bits of the product.
        let hash = codes.iter().fold(0u64, |hash, &code| {
            (hash.rotate_left(29) ^ code).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
        let mask = self.slots.len() - 1;
        let mut slot = (hash >> self.shift) as usize;
        loop {
            match self.slots[slot] {
                EMPTY => {
                    let group = self.len() as u32;
                    self.slots[slot] = group;
                    self.codes.extend_from_slice(codes);
                    return group;
                }
                group => {
                    let start = group as usize * keys;
                    if self.codes[start..start + keys] == codes[..keys] {
                        return group;
                    }
                    slot = (slot + 1) & mask;
                }
            }
        }
    }

    /// Each key's column of the groups' codes, null where [`NULL`].
    fn keys(self) -> Vec<ArrayRef> {
        let groups = self.len();
        (0..self.keys)
            .map(|key| {
                let codes: Vec<u64> = (0..groups)
                    .map(|group| self.codes[group * self.keys + key])
                    .collect();
                let nulls = codes.contains(&NULL).then(|| {
                    NullBuffer::new(BooleanBuffer::collect_bool(groups, |g| codes[g] != NULL))
                });
                Arc::new(UInt64Array::new(ScalarBuffer::from(codes), nulls)) as ArrayRef
            })
            .collect()
    }
}

/// One aggregate's values per group, merged from state columns.
trait MergedColumn {
    /// Merges `states` (one per row) into the groups `groups` name; there
    /// are `len` groups now.
    fn merge(&mut self, groups: &[u32], len: usize, states: &ArrayRef);
    fn finish(self: Box<Self>) -> ArrayRef;
}

struct Merged<T: ArrowPrimitiveType> {
    merge: Merge,
    values: Vec<T::Native>,
    /// Whether a group has had a non-null state.
    seen: Vec<bool>,
}

// The state types merged are 64-bit integers: ordered, with arrow's
// wrapping add (the one DataFusion's sum uses).
impl<T: ArrowPrimitiveType> Merged<T>
where
    T::Native: ArrowNativeTypeOp + Ord,
{
    fn new(merge: Merge) -> Self {
        Self {
            merge,
            values: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn initial(&self) -> T::Native {
        match self.merge {
            Merge::Sum | Merge::Count => T::Native::ZERO,
            Merge::Min => T::Native::MAX_TOTAL_ORDER,
            Merge::Max => T::Native::MIN_TOTAL_ORDER,
        }
    }

    fn merge_with(
        &mut self,
        groups: &[u32],
        states: &PrimitiveArray<T>,
        op: impl Fn(&mut T::Native, T::Native),
    ) {
        let values = states.values();
        match states.nulls().filter(|nulls| nulls.null_count() > 0) {
            None => {
                for (&group, &value) in groups.iter().zip(values.iter()) {
                    op(&mut self.values[group as usize], value);
                    self.seen[group as usize] = true;
                }
            }
            Some(nulls) => {
                for (row, (&group, &value)) in groups.iter().zip(values.iter()).enumerate() {
                    if nulls.is_valid(row) {
                        op(&mut self.values[group as usize], value);
                        self.seen[group as usize] = true;
                    }
                }
            }
        }
    }
}

impl<T: ArrowPrimitiveType> MergedColumn for Merged<T>
where
    T::Native: ArrowNativeTypeOp + Ord,
{
    fn merge(&mut self, groups: &[u32], len: usize, states: &ArrayRef) {
        let initial = self.initial();
        self.values.resize(len, initial);
        self.seen.resize(len, false);
        let states = states.as_primitive::<T>();
        match self.merge {
            Merge::Sum | Merge::Count => self.merge_with(groups, states, |total, value| {
                *total = total.add_wrapping(value)
            }),
            Merge::Min => self.merge_with(groups, states, |min, value| *min = (*min).min(value)),
            Merge::Max => self.merge_with(groups, states, |max, value| *max = (*max).max(value)),
        }
    }

    fn finish(self: Box<Self>) -> ArrayRef {
        let Self {
            merge,
            values,
            seen,
        } = *self;
        let nulls = (merge != Merge::Count && seen.iter().any(|seen| !seen))
            .then(|| NullBuffer::from(seen));
        Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use datafusion::arrow::array::Int64Array;

    use super::*;
    use crate::generate::SplitMix;

    /// Rows get the same group exactly when their codes are equal (nulls
    /// equal to nulls), with one, two or three keys, whatever collides in the
    /// table.
    #[test]
    fn code_table_groups_equal_codes_together() {
        let mut random = SplitMix(5);
        for keys in [1, 2, 3] {
            for distinct in [1, 7, 300, 5000] {
                let mut code = || match random.below(50) {
                    0 => None,
                    _ => Some(random.below(distinct) << 20),
                };
                let batches: Vec<Vec<UInt64Array>> = (0..4)
                    .map(|_| {
                        (0..keys)
                            .map(|_| (0..1000).map(|_| code()).collect())
                            .collect()
                    })
                    .collect();
                let mut table = CodeTable::with_rows(keys, 4000);
                let mut first_group: HashMap<Vec<Option<u64>>, u32> = HashMap::new();
                let mut groups = Vec::new();
                for columns in &batches {
                    let columns: Vec<&UInt64Array> = columns.iter().collect();
                    table.groups_of(&columns, &mut groups);
                    for (row, &group) in groups.iter().enumerate() {
                        let codes: Vec<Option<u64>> = columns
                            .iter()
                            .map(|c| c.is_valid(row).then(|| c.value(row)))
                            .collect();
                        let first = *first_group.entry(codes.clone()).or_insert(group);
                        assert_eq!(first, group, "{codes:?}");
                    }
                }
                assert_eq!(table.len(), first_group.len());
                let out = table.keys();
                for (codes, group) in first_group {
                    let got: Vec<Option<u64>> = out
                        .iter()
                        .map(|c| {
                            let c = c.as_primitive::<UInt64Type>();
                            c.is_valid(group as usize).then(|| c.value(group as usize))
                        })
                        .collect();
                    assert_eq!(got, codes);
                }
            }
        }
    }

    /// The rows a bound keeps hold every group whose merged sum or count
    /// reaches the least value (or is null), with all of its rows; whatever
    /// else they hold merges to the same values as from all rows. With one,
    /// two and three keys, null keys in some batches and not others, signed
    /// and unsigned sums, and sums past a counter's 32 bits.
    #[test]
    fn a_bound_keeps_every_group_that_may_reach_the_least_value() {
        use datafusion::arrow::datatypes::{Field, Schema};
        let mut random = SplitMix(17);
        for keys in [1, 2, 3] {
            for sum_type in [DataType::Int64, DataType::UInt64] {
                let mut fields: Vec<Field> = (0..keys)
                    .map(|k| Field::new(format!("k{k}"), DataType::UInt64, true))
                    .collect();
                fields.push(Field::new("sum", sum_type.clone(), true));
                fields.push(Field::new("count", DataType::Int64, false));
                fields.push(Field::new("max", DataType::Int64, true));
                let schema = Arc::new(Schema::new(fields));
                let merge = PackedMerge {
                    keys,
                    merges: vec![
                        (Merge::Sum, sum_type.clone()),
                        (Merge::Count, DataType::Int64),
                        (Merge::Max, DataType::Int64),
                    ],
                    schema: Arc::clone(&schema),
                };
                let mut run = |distinct: u64, negative: bool| -> Vec<RecordBatch> {
                    (0..3)
                        .map(|batch| {
                            let rows = 2000;
                            let mut columns: Vec<ArrayRef> = (0..keys)
                                .map(|_| {
                                    let codes: UInt64Array = (0..rows)
                                        .map(|_| {
                                            // Null keys in the middle batch only.
                                            (batch != 1 || random.below(20) > 0)
                                                .then(|| random.below(distinct))
                                        })
                                        .collect();
                                    Arc::new(codes) as ArrayRef
                                })
                                .collect();
                            let sums: Vec<Option<i64>> = (0..rows)
                                .map(|_| match random.below(100) {
                                    0 => None,
                                    1 => Some(5_000_000_000),
                                    2 if negative => Some(-1),
                                    _ => Some(random.below(1000) as i64),
                                })
                                .collect();
                            columns.push(match sum_type {
                                DataType::UInt64 => Arc::new(
                                    sums.iter()
                                        .map(|v| v.map(|v| v as u64))
                                        .collect::<UInt64Array>(),
                                ),
                                _ => Arc::new(Int64Array::from(sums)),
                            });
                            let count: Int64Array =
                                (0..rows).map(|_| random.below(3) as i64).collect();
                            columns.push(Arc::new(count.clone()));
                            columns.push(Arc::new(count));
                            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
                        })
                        .collect()
                };
                // Each group's codes and its merged values.
                type Groups = HashMap<Vec<Option<u64>>, Vec<Option<i128>>>;
                let groups = |merged: &RecordBatch| -> Groups {
                    (0..merged.num_rows())
                        .map(|row| {
                            let codes = (0..keys)
                                .map(|k| {
                                    let c = merged.column(k).as_primitive::<UInt64Type>();
                                    c.is_valid(row).then(|| c.value(row))
                                })
                                .collect();
                            let values = (keys..keys + 3)
                                .map(|c| {
                                    let column = merged.column(c);
                                    column.is_valid(row).then(|| match column.data_type() {
                                        DataType::UInt64 => i128::from(
                                            column.as_primitive::<UInt64Type>().value(row),
                                        ),
                                        _ => i128::from(
                                            column.as_primitive::<Int64Type>().value(row),
                                        ),
                                    })
                                })
                                .collect();
                            (codes, values)
                        })
                        .collect()
                };
                for distinct in [3, 30, 3000] {
                    let rows = run(distinct, false);
                    let all = groups(&merge.merge(&rows).unwrap());
                    for aggregate in [0, 1] {
                        let column = keys + aggregate;
                        let mut values: Vec<i128> =
                            all.values().filter_map(|v| v[aggregate]).collect();
                        values.sort_unstable();
                        let tenth = values[values.len().saturating_sub(10)];
                        for least in [0, 1, values[values.len() / 2], tenth, i128::from(u64::MAX)] {
                            let kept = merge.rows_reaching(&rows, column, least).unwrap().unwrap();
                            let bounded = groups(&merge.merge(&kept).unwrap());
                            let what =
                                format!("{keys} keys, {sum_type}, {distinct}, {column}, {least}");
                            for (codes, values) in &all {
                                if values[aggregate].is_none_or(|v| v >= least) {
                                    assert_eq!(bounded.get(codes), Some(values), "{what}");
                                }
                            }
                            for (codes, values) in &bounded {
                                assert_eq!(all.get(codes), Some(values), "{what}");
                            }
                            if least == tenth && distinct == 3000 && aggregate == 0 {
                                let kept = rows_of(&kept);
                                assert!(kept < 3000, "{what}: {kept} of 6000 rows kept");
                            }
                        }
                    }
                    // No bound for a maximum, or over a negative state.
                    assert!(merge.rows_reaching(&rows, keys + 2, 5).unwrap().is_none());
                    if sum_type == DataType::Int64 {
                        let negative = run(distinct, true);
                        assert!(merge.rows_reaching(&negative, keys, 5).unwrap().is_none());
                    }
                }
            }
        }
    }

    /// Sums wrap on overflow as DataFusion's do; a group of null states
    /// sums to null but counts to 0; minimums and maximums skip nulls.
    #[test]
    fn states_merge_as_datafusion_accumulators_do() {
        let groups = [0, 0, 1, 2, 2];
        let states: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(i64::MAX),
            Some(2),
            None,
            Some(-5),
            None,
        ]));
        let merged = |merge| {
            let mut column = Box::new(Merged::<Int64Type>::new(merge));
            column.merge(&groups, 3, &states);
            let values = column.finish();
            let values = values.as_primitive::<Int64Type>();
            (0..3)
                .map(|g| values.is_valid(g).then(|| values.value(g)))
                .collect::<Vec<_>>()
        };
        assert_eq!(merged(Merge::Sum), [Some(i64::MIN + 1), None, Some(-5)]);
        assert_eq!(
            merged(Merge::Count),
            [Some(i64::MIN + 1), Some(0), Some(-5)]
        );
        assert_eq!(merged(Merge::Min), [Some(2), None, Some(-5)]);
        assert_eq!(merged(Merge::Max), [Some(i64::MAX), None, Some(-5)]);
    }
}
