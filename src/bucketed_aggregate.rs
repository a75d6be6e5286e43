//! Finishing a `GROUP BY` one hash bucket at a time.
//!
//! DataFusion finishes a grouped aggregation in
//! `AggregateExec(FinalPartitioned)`: one hash table per partition holding
//! every group of that partition. Flow logs have queries with millions of
//! groups (top talkers sums 10 M records into 5.25 M source addresses), and
//! there that table costs a cache miss per row and holds hundreds of MB,
//! growing with the data.
//!
//! [`BucketedAggregateExec`] takes that aggregate's place. It splits its
//! partition's input (the partial aggregates' states) into [`BUCKETS`]
//! buckets by a hash of the group keys, keeping them in memory up to a
//! budget and spilling them to DataFusion's temporary files past it. Then it
//! runs the unchanged aggregate over one bucket at a time. All of a group's
//! rows fall in one bucket, so the answer is the same; each bucket's table is
//! small enough to stay in cache, and only one is held at a time.
//!
//! [`BucketFinalAggregation`] is the physical optimizer rule that puts it in
//! place. An input smaller than one window never splits: it is aggregated
//! whole, as before, so a `GROUP BY` over a few groups costs nothing more.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, interleave_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::common::config::ConfigOptions;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::disk_manager::DiskManager;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, SpillFile, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{
    ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, SpillMetrics, Time,
};
use datafusion::physical_plan::spill::get_record_batch_memory_size;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::{StreamExt, TryStreamExt};

/// Buckets per partition. With two partitions, 5.25 M groups make about
/// 5 K per bucket, and four times the data about 20 K: a table of up to
/// about a MB, which stays in cache. Fewer buckets measured the same time
/// but more memory at 4x (a bucket's rows and table grow with the data).
pub const BUCKETS: usize = 1 << BUCKET_BITS;
const BUCKET_BITS: u32 = 9;

/// The bucket hash. Its seed differs from the repartitioner's and from the
/// aggregate's own tables', so that the rows of one bucket do not share the
/// hash bits those tables index by.
const BUCKET_HASH: RandomState = RandomState::with_seed(0x6275_636b_6574_7321);

/// The aggregate gets new inputs (a bucket, or a rewritten child): its
/// properties follow from them.
const RECOMPUTE: ReplaceChildrenOptions =
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);

/// How [`BucketedAggregateExec`] splits and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucketing {
    /// Input rows gathered before they are split into buckets. An input that
    /// ends before the first window fills is aggregated whole.
    pub window_rows: usize,
    /// Bytes of split rows held in memory, shared evenly by the
    /// aggregate's partitions; past its share a partition spills all it
    /// holds to a temporary file. A memory limit
    /// (`SessionOptions::memory_limit`) can make it spill sooner.
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

/// The physical optimizer rule that finishes eligible grouped aggregations
/// with a [`BucketedAggregateExec`].
///
/// ```
/// use std::sync::Arc;
/// use datafusion::execution::session_state::SessionStateBuilder;
/// use flowsql::bucketed_aggregate::{BucketFinalAggregation, Bucketing};
///
/// let state = SessionStateBuilder::new()
///     .with_default_features()
///     .with_physical_optimizer_rule(Arc::new(BucketFinalAggregation::new(Bucketing::default())))
///     .build();
/// assert!(state.physical_optimizers().iter().any(|rule| rule.name() == "bucket_final_aggregation"));
/// ```
#[derive(Debug, Clone)]
pub struct BucketFinalAggregation {
    bucketing: Bucketing,
}

impl BucketFinalAggregation {
    /// A rule that splits with `bucketing`.
    pub fn new(bucketing: Bucketing) -> Self {
        Self { bucketing }
    }
}

impl PhysicalOptimizerRule for BucketFinalAggregation {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(
                match BucketedAggregateExec::try_new(&node, self.bucketing) {
                    Some(bucketed) => {
                        Transformed::yes(Arc::new(bucketed) as Arc<dyn ExecutionPlan>)
                    }
                    None => Transformed::no(node),
                },
            )
        })
        .data()
    }

    fn name(&self) -> &str {
        "bucket_final_aggregation"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// An `AggregateExec(FinalPartitioned)` run one hash bucket at a time (see
/// the [module docs](self)). Same input, output, partitioning and answer.
#[derive(Debug)]
pub struct BucketedAggregateExec {
    /// The aggregate it replaces; run unchanged over each bucket.
    aggregate: Arc<dyn ExecutionPlan>,
    group_keys: Vec<Arc<dyn PhysicalExpr>>,
    bucketing: Bucketing,
    metrics: ExecutionPlanMetricsSet,
}

impl BucketedAggregateExec {
    /// Wraps `plan` when it is an aggregate this can finish: a final
    /// aggregation of hash-partitioned states, with groups, not streaming
    /// over sorted input and with no group limit of its own.
    pub fn try_new(plan: &Arc<dyn ExecutionPlan>, bucketing: Bucketing) -> Option<Self> {
        let aggregate = plan.downcast_ref::<AggregateExec>()?;
        let eligible = *aggregate.mode() == AggregateMode::FinalPartitioned
            && *aggregate.input_order_mode() == InputOrderMode::Linear
            && aggregate.limit_options().is_none()
            && !aggregate.group_expr().is_true_no_grouping();
        eligible.then(|| Self {
            aggregate: Arc::clone(plan),
            group_keys: aggregate.group_expr().input_exprs(),
            bucketing,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn input(&self) -> &Arc<dyn ExecutionPlan> {
        self.aggregate.children()[0]
    }
}

impl DisplayAs for BucketedAggregateExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BucketedAggregateExec: buckets={BUCKETS}, ")?;
        // The aggregate's own line says what is grouped and computed.
        self.aggregate.fmt_as(t, f)
    }
}

impl ExecutionPlan for BucketedAggregateExec {
    fn name(&self) -> &str {
        "BucketedAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.aggregate.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.aggregate.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).replace_children(children, RECOMPUTE)?;
        Self::try_new(&aggregate, self.bucketing)
            .map(|bucketed| Arc::new(bucketed) as Arc<dyn ExecutionPlan>)
            .ok_or_else(|| {
                DataFusionError::Internal("BucketedAggregateExec lost its aggregate".to_string())
            })
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).reset_state()?;
        Ok(Arc::new(Self {
            aggregate,
            group_keys: self.group_keys.clone(),
            bucketing: self.bucketing,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    /// Rows out; spills (count, bytes, rows); time splitting (hashing and
    /// reordering the input, writing spills) and aggregating the buckets
    /// (reading spills back included).
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input().execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("BucketedAggregateExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let input_schema = input.schema();
        let partitions = self.properties().partitioning.partition_count().max(1);
        let splitter = Splitter {
            group_keys: self.group_keys.clone(),
            window_rows: self.bucketing.window_rows.max(1),
            memory_budget: self.bucketing.memory_budget / partitions,
            schema: Arc::clone(&input_schema),
            disk: Arc::clone(&context.runtime_env().disk_manager),
            spill_metrics: SpillMetrics::new(&self.metrics, partition),
            split_time: MetricBuilder::new(&self.metrics).subset_time("split_time", partition),
            reservation,
        };
        let aggregate_time =
            MetricBuilder::new(&self.metrics).subset_time("aggregate_time", partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let aggregate = Arc::clone(&self.aggregate);
        let output = futures::stream::once(async move {
            let buckets = splitter.split(input).await?;
            let mut each = Box::pin(buckets.aggregate_each(input_schema, aggregate, context));
            Ok::<_, DataFusionError>(futures::stream::poll_fn(move |cx| {
                let _timer = aggregate_time.timer();
                each.as_mut().poll_next_unpin(cx)
            }))
        })
        .try_flatten()
        .inspect_ok(move |batch| output_rows.add(batch.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            output,
        )))
    }
}

/// Splits one partition's input into buckets.
struct Splitter {
    group_keys: Vec<Arc<dyn PhysicalExpr>>,
    window_rows: usize,
    /// This partition's share of [`Bucketing::memory_budget`].
    memory_budget: usize,
    schema: SchemaRef,
    disk: Arc<DiskManager>,
    spill_metrics: SpillMetrics,
    split_time: Time,
    /// Covers the split windows held in memory.
    reservation: MemoryReservation,
}

/// One window's rows in bucket order, and where each bucket's rows are.
struct SplitWindow {
    rows: RecordBatch,
    buckets: Vec<Range<usize>>,
}

impl SplitWindow {
    fn bucket(&self, bucket: usize) -> Option<RecordBatch> {
        let range = &self.buckets[bucket];
        (!range.is_empty()).then(|| self.rows.slice(range.start, range.len()))
    }
}

/// Split rows written out together when the held windows passed the budget:
/// one Arrow IPC file with a batch per bucket.
struct SpillRound {
    /// Keeps the temporary file until the round is read.
    file: Arc<dyn SpillFile>,
    reader: FileReader<BufReader<File>>,
    /// Per bucket, the index of its batch in the file, if it had rows.
    batches: Vec<Option<usize>>,
}

/// A partition's input: whole when it was smaller than one window, or
/// split into buckets.
enum Buckets {
    Whole(Vec<RecordBatch>),
    Split(SplitInput),
}

/// Split input: windows held in memory, and spill rounds.
#[derive(Default)]
struct SplitInput {
    held: Vec<SplitWindow>,
    rounds: Vec<SpillRound>,
    /// Covers `held`; kept only to be freed with it.
    _reservation: Option<MemoryReservation>,
}

impl SplitInput {
    /// All of one bucket's rows, read back from every spill round.
    fn bucket(&mut self, bucket: usize) -> Result<Vec<RecordBatch>> {
        let mut rows: Vec<RecordBatch> =
            self.held.iter().filter_map(|w| w.bucket(bucket)).collect();
        for round in &mut self.rounds {
            let Some(index) = round.batches[bucket] else {
                continue;
            };
            round.reader.set_index(index)?;
            let batch = round.reader.next().ok_or_else(|| {
                DataFusionError::Internal(format!("spill file {:?} ended early", round.file.path()))
            })??;
            rows.push(batch);
        }
        Ok(rows)
    }
}

impl Splitter {
    async fn split(self, mut input: SendableRecordBatchStream) -> Result<Buckets> {
        let mut window: Vec<RecordBatch> = Vec::new();
        let mut window_rows = 0;
        // Per bucket: (batch in the window, row) of each of its rows.
        let mut positions: Vec<Vec<(usize, usize)>> = vec![Vec::new(); BUCKETS];
        let mut held = Vec::new();
        let mut rounds = Vec::new();
        let mut hashes = Vec::new();
        while let Some(batch) = input.try_next().await? {
            if batch.num_rows() == 0 {
                continue;
            }
            let _timer = self.split_time.timer();
            let keys = self
                .group_keys
                .iter()
                .map(|key| key.evaluate(&batch)?.into_array(batch.num_rows()))
                .collect::<Result<Vec<ArrayRef>>>()?;
            hashes.clear();
            hashes.resize(batch.num_rows(), 0);
            create_hashes(&keys, &BUCKET_HASH, &mut hashes)?;
            let slot = window.len();
            for (row, hash) in hashes.iter().enumerate() {
                positions[(hash >> (64 - BUCKET_BITS)) as usize].push((slot, row));
            }
            window_rows += batch.num_rows();
            window.push(batch);
            if window_rows >= self.window_rows {
                held.push(split_window(&window, &mut positions)?);
                window.clear();
                window_rows = 0;
                self.hold_or_spill(&mut held, &mut rounds)?;
            }
        }
        if held.is_empty() && rounds.is_empty() {
            // Small input: aggregate it whole, as DataFusion would have.
            return Ok(Buckets::Whole(window));
        }
        if !window.is_empty() {
            let _timer = self.split_time.timer();
            held.push(split_window(&window, &mut positions)?);
            self.hold_or_spill(&mut held, &mut rounds)?;
        }
        Ok(Buckets::Split(SplitInput {
            held,
            rounds,
            _reservation: Some(self.reservation),
        }))
    }

    /// Keeps the held windows in memory if the budget and the memory pool
    /// allow, or else spills all of them in one round.
    fn hold_or_spill(
        &self,
        held: &mut Vec<SplitWindow>,
        rounds: &mut Vec<SpillRound>,
    ) -> Result<()> {
        let held_bytes = held
            .iter()
            .map(|window| get_record_batch_memory_size(&window.rows))
            .sum();
        if held_bytes <= self.memory_budget && self.reservation.try_resize(held_bytes).is_ok() {
            return Ok(());
        }
        rounds.push(self.spill(held)?);
        held.clear();
        self.reservation.resize(0);
        Ok(())
    }

    /// Writes the held windows to a new temporary file, one batch per
    /// bucket, and opens it for reading back.
    fn spill(&self, held: &[SplitWindow]) -> Result<SpillRound> {
        let file = self.disk.create_tmp_file("BucketedAggregateExec")?;
        let sink = BufWriter::with_capacity(1 << 20, file.open_writer()?);
        let mut writer = FileWriter::try_new(sink, &self.schema)?;
        let mut batches = Vec::with_capacity(BUCKETS);
        let mut written = 0;
        for bucket in 0..BUCKETS {
            let pieces: Vec<RecordBatch> = held.iter().filter_map(|w| w.bucket(bucket)).collect();
            if pieces.is_empty() {
                batches.push(None);
                continue;
            }
            // Compact: a slice of a view column would be written with all of
            // its window's string data.
            let rows = compact(concat_batches(&self.schema, &pieces)?);
            writer.write(&rows)?;
            self.spill_metrics.spilled_rows.add(rows.num_rows());
            batches.push(Some(written));
            written += 1;
        }
        writer.finish()?;
        let mut sink = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| DataFusionError::IoError(e.into_error()))?;
        sink.finish()?;
        self.spill_metrics.spill_file_count.add(1);
        self.spill_metrics
            .spilled_bytes
            .add(file.size().unwrap_or_default() as usize);
        let path = file.path().ok_or_else(|| {
            DataFusionError::NotImplemented(
                "BucketedAggregateExec spills only to local temporary files".to_string(),
            )
        })?;
        let reader = FileReader::try_new_buffered(File::open(path)?, None)?;
        // SAFETY: the file was written just above from arrays that were
        // valid, and only this operator reads it; validating it again
        // (UTF-8 of every string) cost 4% of top talkers' cycles.
        let reader = unsafe { reader.with_skip_validation(true) };
        Ok(SpillRound {
            file,
            reader,
            batches,
        })
    }
}

/// Puts the window's rows in bucket order with one interleave (one call
/// per bucket costs more than the copy). View columns keep pointing into
/// the input's string buffers, which hold these rows' strings anyway;
/// spilling compacts them.
fn split_window(
    window: &[RecordBatch],
    positions: &mut [Vec<(usize, usize)>],
) -> Result<SplitWindow> {
    let sources: Vec<&RecordBatch> = window.iter().collect();
    let total = positions.iter().map(Vec::len).sum();
    let mut order = Vec::with_capacity(total);
    let mut buckets = Vec::with_capacity(BUCKETS);
    for rows in positions.iter_mut() {
        let start = order.len();
        order.append(rows);
        buckets.push(start..order.len());
    }
    let rows = interleave_record_batch(&sources, &order)?;
    Ok(SplitWindow { rows, buckets })
}

/// Gives view columns buffers of their own, holding only their strings:
/// interleaving and slicing leave them pointing into whole input buffers,
/// which Arrow IPC would write out in full.
fn compact(batch: RecordBatch) -> RecordBatch {
    let needs_gc = |column: &ArrayRef| match column.data_type() {
        DataType::Utf8View => !column.as_string_view().data_buffers().is_empty(),
        DataType::BinaryView => !column.as_binary_view().data_buffers().is_empty(),
        _ => false,
    };
    if !batch.columns().iter().any(needs_gc) {
        return batch;
    }
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View => Arc::new(column.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(column.as_binary_view().gc()) as ArrayRef,
            _ => Arc::clone(column),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).expect("same columns, compacted")
}

impl Buckets {
    /// Runs `aggregate` over each bucket in turn, reading its spilled rows
    /// back when its turn comes.
    fn aggregate_each(
        self,
        schema: SchemaRef,
        aggregate: Arc<dyn ExecutionPlan>,
        context: Arc<TaskContext>,
    ) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
        let (mut whole, mut split, count) = match self {
            Buckets::Whole(rows) => (Some(rows), SplitInput::default(), 1),
            Buckets::Split(split) => (None, split, BUCKETS),
        };
        futures::stream::iter(0..count)
            .map(move |bucket| {
                let rows = match whole.take() {
                    Some(rows) => rows,
                    None => split.bucket(bucket)?,
                };
                if rows.is_empty() {
                    let none: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
                        Arc::clone(&schema),
                        futures::stream::empty(),
                    ));
                    return Ok(none);
                }
                // One batch per bucket: the aggregation has a cost per batch.
                let rows = concat_batches(&schema, &rows)?;
                let source =
                    MemorySourceConfig::try_new_exec(&[vec![rows]], Arc::clone(&schema), None)?;
                Arc::clone(&aggregate)
                    .replace_children(vec![source], RECOMPUTE)?
                    .execute(0, Arc::clone(&context))
            })
            .try_flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_gives_views_their_own_buffers() {
        use datafusion::arrow::array::StringViewArray;
        use datafusion::arrow::datatypes::{Field, Schema};
        let long: Vec<String> = (0..100)
            .map(|i| format!("a string longer than twelve {i}"))
            .collect();
        let array = StringViewArray::from_iter_values(long.iter());
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(array)]).unwrap();
        let piece = interleave_record_batch(&[&batch], &[(0, 3), (0, 7)]).unwrap();
        let compacted = compact(piece.clone());
        assert!(get_record_batch_memory_size(&compacted) < get_record_batch_memory_size(&piece));
        assert_eq!(compacted, piece);
    }
}
