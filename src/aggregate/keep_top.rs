//! Only the groups a top-k above can still choose, dropped before their
//! codes are turned back into text.
//!
//! `ORDER BY sum(bytes) DESC LIMIT 10` over a grouping of millions of
//! addresses puts a `SortExec` with a fetch (DataFusion's TopK) directly
//! above the aggregate. The aggregate would give it every group, each
//! unpacked from its codes to text, and the TopK would compare them all.
//! Where the TopK orders first by an aggregate that [`PackedMerge`]
//! computes, each output partition instead keeps, as its runs of buckets
//! are merged, the best `fetch` values of that aggregate seen so far, and
//! lets through only the groups at least as good as the worst of them.
//! A group dropped so has `fetch` groups of the same partition strictly
//! better by the TopK's first key, so the TopK would never choose it; ties
//! and NULLs are always let through, and the TopK orders what is left
//! exactly as before. Where the aggregate is a sum or a count taken
//! largest first, the least value a group must reach
//! ([`TopSoFar::least_to_reach`]) also lets a run drop, before it is
//! merged, the rows of groups bounded below it
//! ([`PackedMerge::rows_reaching`](super::packed_merge::PackedMerge::rows_reaching)),
//! which is most rows of a grouping by millions of keys.
//!
//! [`PackedMerge`]: super::packed_merge::PackedMerge

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::Result;

/// Which groups a TopK above the aggregate can choose: the first `fetch`
/// by the output column `column`, descending or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeepTop {
    pub(crate) column: usize,
    pub(crate) descending: bool,
    pub(crate) fetch: usize,
}

/// One output partition's best values so far, and the filter they make.
#[derive(Debug)]
pub(crate) struct TopSoFar {
    keep: KeepTop,
    /// The best `fetch` values so far as ranks (larger is better), the
    /// worst on top.
    best: BinaryHeap<Reverse<i128>>,
}

impl TopSoFar {
    pub(crate) fn new(keep: KeepTop) -> Self {
        Self {
            keep,
            // Grown as values come: a fetch larger than the groups would
            // otherwise reserve for nothing.
            best: BinaryHeap::new(),
        }
    }

    /// The aggregate's output column, and the least value a group must
    /// reach to be let through, once there is one: for a TopK that takes
    /// the largest values.
    pub(crate) fn least_to_reach(&self) -> Option<(usize, i128)> {
        match self.best.peek() {
            Some(Reverse(worst)) if self.keep.descending && self.best.len() == self.keep.fetch => {
                Some((self.keep.column, *worst))
            }
            _ => None,
        }
    }

    /// The rows of `merged` (a batch of merged groups, keys as codes) that
    /// the TopK may still choose, with the best values updated by them.
    pub(crate) fn filter(&mut self, merged: RecordBatch) -> Result<RecordBatch> {
        let values = merged.column(self.keep.column);
        match values.data_type() {
            DataType::Int64 => {
                let values = values.as_primitive::<Int64Type>();
                self.filter_by(&merged, |row| {
                    values.is_valid(row).then(|| i128::from(values.value(row)))
                })
            }
            DataType::UInt64 => {
                let values = values.as_primitive::<UInt64Type>();
                self.filter_by(&merged, |row| {
                    values.is_valid(row).then(|| i128::from(values.value(row)))
                })
            }
            // PackedMerge merges only these; anything else passes whole.
            _ => Ok(merged),
        }
    }

    /// [`Self::filter`] with row `i`'s value given by `value(i)`, read
    /// twice rather than copied: once to update the best, once to filter.
    fn filter_by(
        &mut self,
        merged: &RecordBatch,
        value: impl Fn(usize) -> Option<i128>,
    ) -> Result<RecordBatch> {
        let descending = self.keep.descending;
        // Larger is better for the TopK.
        let rank = |row| value(row).map(|v| if descending { v } else { -v });
        let rows = merged.num_rows();
        for rank in (0..rows).filter_map(rank) {
            if self.best.len() < self.keep.fetch {
                self.best.push(Reverse(rank));
            } else if self.best.peek().is_some_and(|worst| rank > worst.0) {
                self.best.pop();
                self.best.push(Reverse(rank));
            }
        }
        let worst = match self.best.peek() {
            Some(Reverse(worst)) if self.best.len() == self.keep.fetch => *worst,
            _ => return Ok(merged.clone()),
        };
        let kept: BooleanArray = (0..rows)
            .map(|row| Some(rank(row).is_none_or(|rank| rank >= worst)))
            .collect();
        if kept.true_count() == rows {
            return Ok(merged.clone());
        }
        Ok(filter_record_batch(merged, &kept)?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, UInt64Array};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(values: Vec<Option<i64>>) -> RecordBatch {
        let codes: Vec<u64> = (0..values.len() as u64).collect();
        let schema = Schema::new(vec![
            Field::new("code", DataType::UInt64, false),
            Field::new("sum", DataType::Int64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(UInt64Array::from(codes)),
                Arc::new(Int64Array::from(values)),
            ],
        )
        .unwrap()
    }

    fn kept(top: &mut TopSoFar, values: Vec<Option<i64>>) -> Vec<Option<i64>> {
        let out = top.filter(batch(values)).unwrap();
        out.column(1).as_primitive::<Int64Type>().iter().collect()
    }

    #[test]
    fn groups_the_top_k_cannot_choose_are_dropped_ties_and_nulls_kept() {
        let keep = KeepTop {
            column: 1,
            descending: true,
            fetch: 2,
        };
        let mut top = TopSoFar::new(keep);
        // Fewer values than the fetch: all pass.
        assert_eq!(kept(&mut top, vec![Some(5)]), vec![Some(5)]);
        // Best so far 9 and 7: 5 and 1 can no longer be chosen; the tie
        // with 7 and the NULL pass.
        assert_eq!(
            kept(
                &mut top,
                vec![Some(1), Some(9), None, Some(7), Some(7), Some(5)]
            ),
            vec![Some(9), None, Some(7), Some(7)]
        );
        // Earlier runs' best still count.
        assert_eq!(kept(&mut top, vec![Some(6), Some(8)]), vec![Some(8)]);

        // Ascending: the smallest are the best.
        let mut top = TopSoFar::new(KeepTop {
            descending: false,
            ..keep
        });
        assert_eq!(
            kept(
                &mut top,
                vec![Some(3), Some(-2), Some(10), Some(3), Some(i64::MIN)]
            ),
            vec![Some(-2), Some(i64::MIN)]
        );
    }

    #[test]
    fn what_is_kept_always_holds_the_true_top_k() {
        let mut rng = crate::generate::SplitMix(0x70F_4EE9);
        for fetch in [1, 3, 10] {
            for descending in [true, false] {
                let mut top = TopSoFar::new(KeepTop {
                    column: 1,
                    descending,
                    fetch,
                });
                let mut all = Vec::new();
                let mut passed = Vec::new();
                for _ in 0..20 {
                    let values: Vec<Option<i64>> = (0..50)
                        .map(|_| (rng.below(10) > 0).then(|| rng.below(40) as i64))
                        .collect();
                    all.extend(values.iter().flatten().copied());
                    passed.extend(kept(&mut top, values).into_iter().flatten());
                }
                let best = |mut values: Vec<i64>| {
                    values.sort_unstable();
                    if descending {
                        values.reverse();
                    }
                    values.truncate(fetch);
                    values
                };
                assert_eq!(best(passed.clone()), best(all.clone()));
                assert!(passed.len() < all.len(), "something was dropped");
            }
        }
    }
}
