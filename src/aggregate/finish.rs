//! Phase two: one output partition's buckets, gathered from every input
//! partition's split and aggregated a run of buckets at a time.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::Count;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use super::keep_top::{KeepTop, TopSoFar};
use super::packed_merge::{PackedMerge, rows_of};
use super::packing::KeyPacking;
use super::split::SplitInput;
use super::{BUCKETS, RECOMPUTE};

/// Rows aggregated in one run at least: buckets smaller than this are
/// aggregated together (each run costs a plan and a table), larger ones
/// alone. Fewer than a bucket of a large aggregation holds, so that one
/// still runs a bucket at a time.
const MIN_RUN_ROWS: usize = 8 * 1024;

/// A run of buckets' rows: text rows, and packed rows.
#[derive(Default)]
struct Run {
    text: Vec<RecordBatch>,
    packed: Vec<RecordBatch>,
}

impl Run {
    fn push(&mut self, rows: RecordBatch, packed: bool) {
        if packed {
            self.packed.push(rows);
        } else {
            self.text.push(rows);
        }
    }

    fn rows(&self) -> usize {
        self.text
            .iter()
            .chain(&self.packed)
            .map(RecordBatch::num_rows)
            .sum()
    }
}

/// One output partition's buckets, gathered from every input partition's
/// split: held slices, and spilled batches read back through this
/// partition's own readers.
pub(crate) struct PartitionBuckets {
    splits: Arc<Vec<SplitInput>>,
    /// Per input partition, per spill round: opened on first use.
    readers: Vec<Vec<Option<FileReader<BufReader<File>>>>>,
    /// The next bucket and the end of this partition's buckets.
    next: usize,
    end: usize,
}

impl PartitionBuckets {
    pub(crate) fn new(splits: Arc<Vec<SplitInput>>, partition: usize) -> Self {
        let readers = splits
            .iter()
            .map(|split| split.rounds.iter().map(|_| None).collect())
            .collect();
        Self {
            splits,
            readers,
            next: partition * BUCKETS,
            end: (partition + 1) * BUCKETS,
        }
    }

    /// Adds all of one bucket's rows to `run`.
    fn bucket(&mut self, bucket: usize, run: &mut Run) -> Result<()> {
        for (split, readers) in self.splits.iter().zip(&mut self.readers) {
            for window in &split.held {
                if let Some(rows) = window.bucket(bucket) {
                    run.push(rows, window.packed);
                }
            }
            for (round, reader) in split.rounds.iter().zip(readers.iter_mut()) {
                let Some(index) = round.batches[bucket] else {
                    continue;
                };
                let reader = match reader {
                    Some(reader) => reader,
                    None => reader.insert(round.open()?),
                };
                reader.set_index(index)?;
                let batch = reader.next().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "spill file {:?} ended early",
                        round.file.path()
                    ))
                })??;
                run.push(round.restored(batch)?, round.packed);
            }
        }
        Ok(())
    }

    /// The rows of the next buckets, as many as make [`MIN_RUN_ROWS`]: a
    /// small input is aggregated in one run, a large one a bucket at a time.
    fn next_run(&mut self) -> Option<Result<Run>> {
        if self.next == self.end {
            return None;
        }
        let mut run = Run::default();
        while self.next < self.end && run.rows() < MIN_RUN_ROWS {
            let bucket = self.next;
            self.next += 1;
            if let Err(e) = self.bucket(bucket, &mut run) {
                self.next = self.end;
                return Some(Err(e));
            }
        }
        Some(Ok(run))
    }

    /// Runs the aggregate over each run of buckets in turn (text rows with
    /// `aggregate`, packed rows with `packing`'s merge or aggregate),
    /// reading spilled rows back when their turn comes. A merge takes its
    /// table from `merge_memory`; where the memory pool refuses it, the
    /// packed aggregate runs instead, which copes with a limit its own way.
    /// With `keep_top`, merged groups the TopK above cannot choose are
    /// dropped before they are unpacked.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn aggregate_each(
        mut self,
        schema: SchemaRef,
        aggregate: Arc<dyn ExecutionPlan>,
        packing: Option<Arc<KeyPacking>>,
        keep_top: Option<KeepTop>,
        merge_memory: MemoryReservation,
        merged_rows: Count,
        outranked_rows: Count,
        context: Arc<TaskContext>,
    ) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
        let mut top = keep_top.map(TopSoFar::new);
        futures::stream::iter(std::iter::from_fn(move || self.next_run()))
            .map(move |run| {
                let run = run?;
                let text = aggregate_rows(&run.text, &schema, &aggregate, &context)?;
                let bound = top.as_ref().and_then(TopSoFar::least_to_reach);
                let packed = match &packing {
                    Some(packing) if !run.packed.is_empty() => Some(match &packing.merge {
                        Some(merge)
                            if merge_memory
                                .try_resize(
                                    merge.memory_for(&run.packed)
                                        + bound.map_or(0, |_| {
                                            PackedMerge::memory_to_bound(&run.packed)
                                        }),
                                )
                                .is_ok() =>
                        {
                            // Under a TopK with its groups so far, only the
                            // rows of groups that may still reach them.
                            let bounded = match bound {
                                Some((column, least)) => {
                                    merge.rows_reaching(&run.packed, column, least)?
                                }
                                None => None,
                            };
                            let merging = bounded.as_deref().unwrap_or(&run.packed);
                            let merging_rows = rows_of(merging);
                            outranked_rows.add(rows_of(&run.packed) - merging_rows);
                            let mut merged = merge.merge(merging)?;
                            if let Some(top) = &mut top {
                                merged = top.filter(merged)?;
                            }
                            let merged = packing.unpack(merged);
                            merge_memory.resize(0);
                            merged_rows.add(merging_rows);
                            futures::stream::once(async move { merged }).boxed()
                        }
                        _ => {
                            let packing = Arc::clone(packing);
                            aggregate_rows(
                                &run.packed,
                                &packing.schema,
                                &packing.aggregate,
                                &context,
                            )?
                            .map(move |batch| packing.unpack(batch?))
                            .boxed()
                        }
                    }),
                    _ => None,
                };
                Ok::<_, DataFusionError>(text.chain(futures::stream::iter(packed).flatten()))
            })
            .try_flatten()
    }
}

/// `aggregate` run over `rows` (of `schema`) as one batch: the aggregation
/// has a cost per batch.
fn aggregate_rows(
    rows: &[RecordBatch],
    schema: &SchemaRef,
    aggregate: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    if rows.is_empty() {
        return Ok(Box::pin(RecordBatchStreamAdapter::new(
            aggregate.schema(),
            futures::stream::empty(),
        )));
    }
    let rows = concat_batches(schema, rows)?;
    let source = MemorySourceConfig::try_new_exec(&[vec![rows]], Arc::clone(schema), None)?;
    Arc::clone(aggregate)
        .replace_children(vec![source], RECOMPUTE)?
        .execute(0, Arc::clone(context))
}
