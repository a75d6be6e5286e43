//! Finishing a `GROUP BY` one hash bucket at a time.
//!
//! DataFusion finishes a grouped aggregation in
//! `AggregateExec(FinalPartitioned)` over a hash `RepartitionExec`: one hash
//! table per partition holding every group of that partition. Flow logs have
//! queries with millions of groups (top talkers sums 10 M records into
//! 5.25 M source addresses), and there that table costs a cache miss per row
//! and holds hundreds of MB, growing with the data.
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
//! account ids) travel as `u64` codes ([`crate::aggregate::packed_keys`]) from the
//! split to the output: rows of half the bytes to copy and spill, and
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
//! the packed rows' states themselves (`packed_merge`) instead of running
//! DataFusion's aggregate over them; EXPLAIN says `merged_by_code`.
//!
//! [`BucketFinalAggregation`] is the physical optimizer rule that puts it in
//! place.

pub(crate) mod packed_keys;
mod packed_merge;

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef, UInt64Type};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::common::config::ConfigOptions;
use datafusion::common::hash_utils::create_hashes;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::disk_manager::DiskManager;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, SpillFile, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, SpillMetrics, Time,
};
use datafusion::physical_plan::repartition::{REPARTITION_RANDOM_STATE, RepartitionExec};
use datafusion::physical_plan::spill::get_record_batch_memory_size;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    InputOrderMode, PlanProperties, ReplaceChildrenOptions,
};
use futures::future::{BoxFuture, FutureExt, Shared, TryFutureExt};
use futures::{StreamExt, TryStreamExt};

use crate::aggregate::packed_merge::PackedMerge;

/// Buckets per partition. With two partitions, top talkers' 10 M rows and
/// 5.25 M groups make about 20 K rows and 10 K groups per bucket, and four
/// times the data four times that: a merge's table of up to a MB. Each
/// bucket costs the split a list and a spill a batch: with the merge by
/// code, 256 buckets took top talkers from 0.93 s to 0.89 s (1.80 to
/// 1.71 s of CPU) against 512, and 128 from 0.86 s to 0.84 s against
/// 256, but at 4x 128 took its peak RSS from 155 MB to 175 MB and
/// address pairs' to 205 MB (256: 160-167 and 176-180 MB): a bucket's
/// rows and table grow with the data.
pub(crate) const BUCKETS: usize = 1 << BUCKET_BITS;
const BUCKET_BITS: u32 = 8;
/// Where the bucket bits start in the routing hash: right under the seven
/// bits hashbrown tags entries with.
const BUCKET_SHIFT: u32 = 64 - 7 - BUCKET_BITS;

/// Rows aggregated in one run at least: buckets smaller than this are
/// aggregated together (each run costs a plan and a table), larger ones
/// alone. Under a bucket's rows at 1x (about 20 K for top talkers).
const MIN_RUN_ROWS: usize = 8 * 1024;

/// The aggregate gets new inputs (a bucket, or a rewritten child): its
/// properties follow from them.
const RECOMPUTE: ReplaceChildrenOptions =
    ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);

/// How [`BucketedAggregateExec`] splits and how much it holds.
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

/// The physical optimizer rule that finishes eligible grouped aggregations
/// with a [`BucketedAggregateExec`].
#[derive(Debug, Clone)]
pub(crate) struct BucketFinalAggregation {
    bucketing: Bucketing,
}

impl BucketFinalAggregation {
    /// A rule that splits with `bucketing`.
    pub(crate) fn new(bucketing: Bucketing) -> Self {
        Self { bucketing }
    }
}

impl PhysicalOptimizerRule for BucketFinalAggregation {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Only a node of two or more inputs (a join, a union) pairs one
        // input's partitions with another's; with none, a partition need not
        // be the one the repartition's hash of the text picks.
        let mut pairs_partitions = false;
        plan.apply(|node| {
            pairs_partitions |= node.children().len() > 1;
            Ok(TreeNodeRecursion::Continue)
        })?;
        plan.transform_up(|node| {
            Ok(
                match BucketedAggregateExec::try_new(&node, self.bucketing) {
                    Some(bucketed) => {
                        let bucketed = bucketed.with_code_routing(!pairs_partitions);
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

/// An `AggregateExec(FinalPartitioned)` and the hash `RepartitionExec` that
/// feeds it, run as one (see the [module docs](self)). Same output and
/// answer, and the same partitioning wherever a join or union above pairs
/// partitions.
pub(crate) struct BucketedAggregateExec {
    /// The aggregate it replaces, over the repartition; run unchanged over
    /// each bucket.
    aggregate: Arc<dyn ExecutionPlan>,
    /// The hash repartition under the aggregate, whose routing of rows to
    /// partitions this reproduces; its input is this plan's input.
    repartition: Arc<dyn ExecutionPlan>,
    /// What the repartition hashes, over its input's rows.
    route_keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Output partitions: the repartition's.
    partitions: usize,
    bucketing: Bucketing,
    /// How text group keys travel as codes, if there are any.
    packing: Option<Arc<KeyPacking>>,
    /// Whether rows with codes go to the partition and bucket of a hash of
    /// their codes rather than of their text (see [`Route`]).
    route_by_code: bool,
    metrics: ExecutionPlanMetricsSet,
    /// The split of every input partition, started by the first output
    /// partition executed and awaited by all of them.
    split: Arc<Mutex<PhaseOne>>,
}

/// Every input partition's split rows, or the error that ended the split.
type SharedSplit =
    Shared<BoxFuture<'static, std::result::Result<Arc<Vec<SplitInput>>, Arc<DataFusionError>>>>;

#[derive(Default)]
struct PhaseOne {
    split: Option<SharedSplit>,
    /// Output partitions executed so far: once all have been, the plan lets
    /// go of the split, so that its rows are freed when the last partition
    /// is done with them rather than with the plan.
    executed: usize,
}

impl fmt::Debug for BucketedAggregateExec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("BucketedAggregateExec")
            .field("aggregate", &self.aggregate)
            .field("repartition", &self.repartition)
            .field("bucketing", &self.bucketing)
            .field("packing", &self.packing)
            .finish_non_exhaustive()
    }
}

impl BucketedAggregateExec {
    /// Takes the place of `plan` when it is an aggregate this can finish: a
    /// final aggregation with groups, over a hash repartition that does not
    /// keep an order, not streaming over sorted input and with no group
    /// limit of its own.
    pub(crate) fn try_new(plan: &Arc<dyn ExecutionPlan>, bucketing: Bucketing) -> Option<Self> {
        let aggregate = plan.downcast_ref::<AggregateExec>()?;
        let eligible = *aggregate.mode() == AggregateMode::FinalPartitioned
            && *aggregate.input_order_mode() == InputOrderMode::Linear
            && aggregate.limit_options().is_none()
            && !aggregate.group_expr().is_true_no_grouping();
        if !eligible {
            return None;
        }
        let repartition = aggregate.input();
        let exec = repartition.downcast_ref::<RepartitionExec>()?;
        let Partitioning::Hash(route_keys, partitions) = exec.partitioning() else {
            return None;
        };
        if exec.preserve_order() || *partitions == 0 {
            return None;
        }
        Some(Self {
            aggregate: Arc::clone(plan),
            route_keys: route_keys.clone(),
            partitions: *partitions,
            packing: KeyPacking::try_new(aggregate, &repartition.schema()).map(Arc::new),
            repartition: Arc::clone(repartition),
            bucketing,
            route_by_code: false,
            metrics: ExecutionPlanMetricsSet::new(),
            split: Arc::default(),
        })
    }

    /// Routes rows with packed keys by a hash of their codes, where `on`
    /// and the repartition hashes plain columns (which the codes stand in
    /// for). Nothing above may then pair this plan's partitions with
    /// another input's: a key lands in a partition of its own, not the one
    /// the repartition would have picked. The rule turns it on for plans
    /// with no node of two inputs. Hashing codes costs a fraction of
    /// hashing the text (perf, top talkers: 0.5% of cycles against 2.1%
    /// with DataFusion's hash of either; less again with the mixer of
    /// [`hash_code_columns`]).
    fn with_code_routing(mut self, on: bool) -> Self {
        self.route_by_code = on
            && self.packing.is_some()
            && self
                .route_keys
                .iter()
                .all(|key| key.downcast_ref::<Column>().is_some());
        self
    }

    fn input(&self) -> &Arc<dyn ExecutionPlan> {
        self.repartition.children()[0]
    }

    /// The split of every input partition, started on the first call.
    fn phase_one(&self, context: &Arc<TaskContext>) -> SharedSplit {
        let mut state = self.split.lock().unwrap_or_else(PoisonError::into_inner);
        let split = state
            .split
            .get_or_insert_with(|| self.start_split(context))
            .clone();
        state.executed += 1;
        if state.executed >= self.partitions {
            state.split = None;
        }
        split
    }

    /// Splits each input partition in a task of its own (as the
    /// repartition would have read it), all at once; dropping the result
    /// stops them.
    fn start_split(&self, context: &Arc<TaskContext>) -> SharedSplit {
        let input = Arc::clone(self.input());
        let inputs = input.output_partitioning().partition_count();
        // Held rows take at most half of a memory limit: the buckets'
        // aggregation and the rest of the plan need the other half.
        let memory_budget = match context.memory_pool().memory_limit() {
            MemoryLimit::Finite(limit) => self.bucketing.memory_budget.min(limit / 2),
            MemoryLimit::Infinite | MemoryLimit::Unknown => self.bucketing.memory_budget,
        };
        let splitters: Vec<Splitter> = (0..inputs)
            .map(|i| Splitter {
                route: Route {
                    keys: self.route_keys.clone(),
                    partitions: self.partitions,
                    by_code: self.route_by_code,
                },
                // Window positions are u32s: a window ends before 2^31 rows.
                window_rows: self.bucketing.window_rows.clamp(1, 1 << 31),
                memory_budget: memory_budget / inputs.max(1),
                schema: input.schema(),
                packing: self.packing.clone(),
                disk: Arc::clone(&context.runtime_env().disk_manager),
                spill_metrics: SpillMetrics::new(&self.metrics, i),
                split_time: MetricBuilder::new(&self.metrics).subset_time("split_time", i),
                packed_rows: MetricBuilder::new(&self.metrics).counter("packed_rows", i),
                reservation: MemoryConsumer::new(format!("BucketedAggregateExec[{i}]"))
                    .with_can_spill(true)
                    .register(context.memory_pool()),
            })
            .collect();
        let context = Arc::clone(context);
        async move {
            let tasks = splitters.into_iter().enumerate().map(|(i, splitter)| {
                let rows = input.execute(i, Arc::clone(&context));
                let task = SpawnedTask::spawn(async move { splitter.split(rows?).await });
                async move {
                    task.join_unwind()
                        .await
                        .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?
                }
            });
            Ok(Arc::new(futures::future::try_join_all(tasks).await?))
        }
        .map_err(Arc::new)
        .boxed()
        .shared()
    }
}

impl DisplayAs for BucketedAggregateExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "BucketedAggregateExec: buckets={BUCKETS}, ")?;
        if let Some(packing) = &self.packing {
            let schema = self.input().schema();
            let names: Vec<&str> = packing
                .columns
                .iter()
                .map(|&column| schema.field(column).name().as_str())
                .collect();
            write!(f, "packed_keys=[{}], ", names.join(", "))?;
            if packing.merge.is_some() {
                write!(f, "merged_by_code, ")?;
            }
            if self.route_by_code {
                write!(f, "routed_by_code, ")?;
            }
        }
        // The repartition's and the aggregate's own lines say how rows are
        // routed and what is grouped and computed.
        self.repartition.fmt_as(t, f)?;
        write!(f, ", ")?;
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
        if self.repartition.apply_expressions(f)? == TreeNodeRecursion::Stop {
            return Ok(TreeNodeRecursion::Stop);
        }
        self.aggregate.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let repartition = Arc::clone(&self.repartition).replace_children(children, RECOMPUTE)?;
        let aggregate =
            Arc::clone(&self.aggregate).replace_children(vec![repartition], RECOMPUTE)?;
        Self::try_new(&aggregate, self.bucketing)
            .map(|bucketed| {
                Arc::new(bucketed.with_code_routing(self.route_by_code)) as Arc<dyn ExecutionPlan>
            })
            .ok_or_else(|| {
                DataFusionError::Internal("BucketedAggregateExec lost its aggregate".to_string())
            })
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).reset_state()?;
        Ok(Arc::new(Self {
            aggregate,
            repartition: Arc::clone(&self.repartition),
            route_keys: self.route_keys.clone(),
            partitions: self.partitions,
            bucketing: self.bucketing,
            packing: self.packing.clone(),
            route_by_code: self.route_by_code,
            metrics: ExecutionPlanMetricsSet::new(),
            split: Arc::default(),
        }))
    }

    /// Rows out; spills (count, bytes, rows); rows split with packed keys,
    /// and those merged by code;
    /// time splitting (hashing, packing and reordering the input, writing
    /// spills; per input partition) and aggregating the buckets (reading
    /// spills back included).
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= self.partitions {
            return Err(DataFusionError::Internal(format!(
                "BucketedAggregateExec has {} partitions, not {}",
                self.partitions,
                partition + 1
            )));
        }
        let split = self.phase_one(&context);
        let schema = self.input().schema();
        let aggregate = Arc::clone(&self.aggregate);
        let packing = self.packing.clone();
        let aggregate_time =
            MetricBuilder::new(&self.metrics).subset_time("aggregate_time", partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let merged_rows = MetricBuilder::new(&self.metrics).counter("merged_rows", partition);
        let output = futures::stream::once(async move {
            let splits = split.await.map_err(|e| DataFusionError::from(&e))?;
            let buckets = PartitionBuckets::new(splits, partition);
            let merge_memory =
                MemoryConsumer::new(format!("BucketedAggregateExec merge[{partition}]"))
                    .register(context.memory_pool());
            let mut each = Box::pin(buckets.aggregate_each(
                schema,
                aggregate,
                packing,
                merge_memory,
                merged_rows,
                context,
            ));
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

/// Text group keys carried as `u64` codes (see [`crate::aggregate::packed_keys`])
/// from the split to the aggregate's output: a top-talkers row of an
/// address and a sum shrinks from about 28 bytes to 16, and the bucket's
/// table hashes and compares integers. A row whose keys all have codes (or
/// are null) goes to its bucket's packed rows, any other to its text rows;
/// whether a key has a code depends only on the key, so each group's rows
/// all go one way, and the two are aggregated apart.
struct KeyPacking {
    /// The input columns packed: the group keys of text.
    columns: Vec<usize>,
    /// The input's schema with those columns as `UInt64`.
    schema: SchemaRef,
    /// The aggregate, over rows of that schema.
    aggregate: Arc<dyn ExecutionPlan>,
    /// The same aggregation done directly, where it is one of sums,
    /// counts, minimums and maximums by packed keys only.
    merge: Option<PackedMerge>,
    /// The output columns that come out as codes, and their text type.
    outputs: Vec<(usize, DataType)>,
    /// The aggregate's own output schema.
    output_schema: SchemaRef,
}

impl fmt::Debug for KeyPacking {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("KeyPacking")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// Which of a batch's rows go to the packed buckets.
enum PackedRows {
    None,
    All,
    /// The rows whose bit is set.
    Some(BooleanBuffer),
}

impl KeyPacking {
    /// Packing for `aggregate`'s text keys, if it groups by any plain text
    /// column (grouping sets are left alone).
    fn try_new(aggregate: &AggregateExec, input_schema: &SchemaRef) -> Option<Self> {
        let group_by = aggregate.group_expr();
        if !group_by.is_single() {
            return None;
        }
        let mut columns = Vec::new();
        let mut outputs = Vec::new();
        for (position, (expr, _)) in group_by.expr().iter().enumerate() {
            let Some(column) = expr.downcast_ref::<Column>() else {
                continue;
            };
            let data_type = input_schema.field(column.index()).data_type();
            if packed_keys::packs(data_type) {
                outputs.push((position, data_type.clone()));
                if !columns.contains(&column.index()) {
                    columns.push(column.index());
                }
            }
        }
        if columns.is_empty() {
            return None;
        }
        let fields = input_schema.fields().iter().enumerate().map(|(i, field)| {
            if columns.contains(&i) {
                Arc::new(field.as_ref().clone().with_data_type(DataType::UInt64))
            } else {
                Arc::clone(field)
            }
        });
        let schema = Arc::new(Schema::new_with_metadata(
            fields.collect::<Vec<_>>(),
            input_schema.metadata().clone(),
        ));
        let packed = AggregateExec::try_new(
            *aggregate.mode(),
            group_by.clone(),
            aggregate.aggr_expr().to_vec(),
            aggregate.filter_expr().to_vec(),
            Arc::new(EmptyExec::new(Arc::clone(&schema))),
            aggregate.input_schema(),
        )
        .ok()?;
        let merge = PackedMerge::try_new(aggregate, &schema, &packed.schema());
        Some(Self {
            columns,
            schema,
            merge,
            aggregate: Arc::new(packed),
            outputs,
            output_schema: aggregate.schema(),
        })
    }

    /// `batch` with its key columns as codes, and which rows have codes.
    fn pack(&self, batch: &RecordBatch) -> Result<(RecordBatch, PackedRows)> {
        let mut columns = batch.columns().to_vec();
        let mut packed: Option<BooleanBuffer> = None;
        for &column in &self.columns {
            let (codes, has_code) = packed_keys::pack_column(&columns[column])?;
            columns[column] = Arc::new(codes);
            packed = Some(match packed {
                Some(rows) => &rows & &has_code,
                None => has_code,
            });
        }
        let rows = match packed {
            Some(rows) => match rows.count_set_bits() {
                0 => PackedRows::None,
                all if all == rows.len() => PackedRows::All,
                _ => PackedRows::Some(rows),
            },
            None => PackedRows::None,
        };
        Ok((
            RecordBatch::try_new(Arc::clone(&self.schema), columns)?,
            rows,
        ))
    }

    /// An output batch of the packed aggregate with its keys as text again.
    fn unpack(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for (position, data_type) in &self.outputs {
            let codes = columns[*position].as_primitive();
            columns[*position] = packed_keys::unpack_column(codes, data_type)?;
        }
        Ok(RecordBatch::try_new(
            Arc::clone(&self.output_schema),
            columns,
        )?)
    }
}

/// Where a row goes: its output partition, as the repartition would have
/// sent it (or, routed by code, by a hash of its codes), and a bucket
/// within that partition, both from one hash; and whether to its packed or
/// its text rows.
struct Route {
    keys: Vec<Arc<dyn PhysicalExpr>>,
    partitions: usize,
    /// Whether rows with codes are hashed by their codes (see
    /// [`BucketedAggregateExec::with_code_routing`]).
    by_code: bool,
}

impl Route {
    /// Buckets over all partitions: partition `p` has buckets
    /// `p * BUCKETS .. (p + 1) * BUCKETS`.
    fn buckets(&self) -> usize {
        self.partitions * BUCKETS
    }

    /// Lists of rows: each bucket's text rows, then each bucket's packed
    /// rows.
    fn lists(&self) -> usize {
        2 * self.buckets()
    }

    /// Hashes `batch`'s rows into `hashes` and pushes each row's position
    /// in the window (`first` for its first row) onto its list (see
    /// [`Route::lists`]). `codes` is the batch with its keys packed.
    fn add(
        &self,
        batch: &RecordBatch,
        codes: Option<&RecordBatch>,
        first: u32,
        packed: &PackedRows,
        hashes: &mut Vec<u64>,
        positions: &mut [Vec<u32>],
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
        // Codes are hashed by a mixer of their own where every key is one
        // (top talkers: 1.77 s of CPU with DataFusion's hash, 1.74 s).
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
            PackedRows::None => self.push(hashes, first, positions, |_| 0),
            PackedRows::All => self.push(hashes, first, positions, |_| buckets),
            PackedRows::Some(rows) => self.push(hashes, first, positions, |row| {
                buckets * rows.value(row) as usize
            }),
        }
        Ok(())
    }

    /// Pushes each row's position onto its list: `list_of(row)` (text or
    /// packed) plus its bucket.
    fn push(
        &self,
        hashes: &[u64],
        first: u32,
        positions: &mut [Vec<u32>],
        list_of: impl Fn(usize) -> usize,
    ) {
        // The partition takes the hash's low bits (its remainder). The bucket
        // takes the nine bits under the top seven: a string key's table in
        // the aggregate hashes with this same function and indexes by the
        // low bits and tags by the top seven, which must still differ
        // between the rows of one bucket. (Codes' tables hash with a seed
        // of their own.)
        // A mask where the partition count allows: no division per row.
        let partitions = self.partitions as u64;
        if partitions.is_power_of_two() {
            push_positions(hashes, first, positions, list_of, |hash| {
                hash & (partitions - 1)
            });
        } else {
            push_positions(hashes, first, positions, list_of, |hash| hash % partitions);
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

/// Pushes each row's position onto the list `list_of(row)` plus its bucket:
/// the one of `partition_of(hash)` taken from the hash's bucket bits.
fn push_positions(
    hashes: &[u64],
    first: u32,
    positions: &mut [Vec<u32>],
    list_of: impl Fn(usize) -> usize,
    partition_of: impl Fn(u64) -> u64,
) {
    for (row, &hash) in hashes.iter().enumerate() {
        let bucket = (hash >> BUCKET_SHIFT) as usize & (BUCKETS - 1);
        positions[list_of(row) + partition_of(hash) as usize * BUCKETS + bucket]
            .push(first + row as u32);
    }
}

/// Splits one input partition's rows into the buckets of every output
/// partition.
struct Splitter {
    route: Route,
    window_rows: usize,
    /// This input partition's share of [`Bucketing::memory_budget`].
    memory_budget: usize,
    schema: SchemaRef,
    packing: Option<Arc<KeyPacking>>,
    disk: Arc<DiskManager>,
    spill_metrics: SpillMetrics,
    split_time: Time,
    /// Rows split with their keys packed.
    packed_rows: Count,
    /// Covers the split windows held in memory.
    reservation: MemoryReservation,
}

/// One window's text or packed rows in bucket order, and where each
/// bucket's rows are.
struct SplitWindow {
    rows: RecordBatch,
    packed: bool,
    buckets: Vec<Range<usize>>,
}

impl SplitWindow {
    fn bucket(&self, bucket: usize) -> Option<RecordBatch> {
        let range = &self.buckets[bucket];
        (!range.is_empty()).then(|| self.rows.slice(range.start, range.len()))
    }
}

/// Split rows written out together when the held windows passed the budget:
/// one Arrow IPC file of text or of packed rows, with a batch per bucket.
struct SpillRound {
    /// Keeps the temporary file until the round is read.
    file: Arc<dyn SpillFile>,
    packed: bool,
    /// Per bucket, the index of its batch in the file, if it had rows.
    batches: Vec<Option<usize>>,
}

impl SpillRound {
    fn open(&self) -> Result<FileReader<BufReader<File>>> {
        let path = self.file.path().ok_or_else(|| {
            DataFusionError::NotImplemented(
                "BucketedAggregateExec spills only to local temporary files".to_string(),
            )
        })?;
        let reader = FileReader::try_new_buffered(File::open(path)?, None)?;
        // SAFETY: the file was written by this operator from arrays that
        // were valid, and only it reads the file; validating it again
        // (UTF-8 of every string) cost 4% of top talkers' cycles.
        Ok(unsafe { reader.with_skip_validation(true) })
    }
}

/// One input partition's split rows: windows held in memory, and spill
/// rounds.
struct SplitInput {
    held: Vec<SplitWindow>,
    rounds: Vec<SpillRound>,
    /// Covers `held`; kept only to be freed with it.
    _reservation: MemoryReservation,
}

impl Splitter {
    async fn split(self, mut input: SendableRecordBatchStream) -> Result<SplitInput> {
        // The window's batches, and the same with keys packed.
        let mut window: Vec<RecordBatch> = Vec::new();
        let mut packed_window: Vec<RecordBatch> = Vec::new();
        let mut window_rows = 0;
        // Per list (see `Route::lists`): the window positions of its rows
        // (4 bytes each, where a (batch, row) pair took 16).
        let mut positions: Vec<Vec<u32>> = vec![Vec::new(); self.route.lists()];
        let mut held = Vec::new();
        let mut rounds = Vec::new();
        let mut hashes = Vec::new();
        while let Some(batch) = input.try_next().await? {
            if batch.num_rows() == 0 {
                continue;
            }
            let _timer = self.split_time.timer();
            let packed = match &self.packing {
                Some(packing) => {
                    let (packed_batch, rows) = packing.pack(&batch)?;
                    self.packed_rows.add(match &rows {
                        PackedRows::None => 0,
                        PackedRows::All => batch.num_rows(),
                        PackedRows::Some(rows) => rows.count_set_bits(),
                    });
                    packed_window.push(packed_batch);
                    rows
                }
                None => PackedRows::None,
            };
            self.route.add(
                &batch,
                packed_window.last(),
                window_rows as u32,
                &packed,
                &mut hashes,
                &mut positions,
            )?;
            window_rows += batch.num_rows();
            window.push(batch);
            if window_rows >= self.window_rows {
                self.split_window(&window, &packed_window, &mut positions, &mut held)?;
                window.clear();
                packed_window.clear();
                window_rows = 0;
                self.hold_or_spill(&mut held, &mut rounds)?;
            }
        }
        if !window.is_empty() {
            let _timer = self.split_time.timer();
            self.split_window(&window, &packed_window, &mut positions, &mut held)?;
            self.hold_or_spill(&mut held, &mut rounds)?;
        }
        Ok(SplitInput {
            held,
            rounds,
            _reservation: self.reservation,
        })
    }

    /// Puts the window's text rows and its packed rows in bucket order,
    /// each joined into one batch (one copy in order) and taken in bucket
    /// order with one `take` (one call per bucket costs more than the copy;
    /// an interleave of (batch, row) pairs cost twice the take), onto
    /// `held`. View columns keep pointing into the input's string buffers,
    /// which hold these rows' strings anyway; spilling compacts them.
    fn split_window(
        &self,
        window: &[RecordBatch],
        packed_window: &[RecordBatch],
        positions: &mut [Vec<u32>],
        held: &mut Vec<SplitWindow>,
    ) -> Result<()> {
        let (text_lists, packed_lists) = positions.split_at_mut(self.route.buckets());
        for (lists, sources, packed) in [
            (text_lists, window, false),
            (packed_lists, packed_window, true),
        ] {
            let total = lists.iter().map(Vec::len).sum();
            if total == 0 {
                continue;
            }
            let mut order = Vec::with_capacity(total);
            let mut buckets = Vec::with_capacity(lists.len());
            for rows in lists.iter_mut() {
                let start = order.len();
                order.append(rows);
                buckets.push(start..order.len());
            }
            let joined = match sources {
                [only] => only.clone(),
                _ => concat_batches(&sources[0].schema(), sources)?,
            };
            let rows = take_record_batch(&joined, &UInt32Array::from(order))?;
            held.push(SplitWindow {
                rows,
                packed,
                buckets,
            });
        }
        Ok(())
    }

    /// Keeps the held windows in memory if the budget and the memory pool
    /// allow, or else spills all of them in one round (a file for text
    /// rows and one for packed rows).
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
        for packed in [false, true] {
            let windows: Vec<&SplitWindow> = held.iter().filter(|w| w.packed == packed).collect();
            if !windows.is_empty() {
                rounds.push(self.spill(&windows, packed)?);
            }
        }
        held.clear();
        self.reservation.resize(0);
        Ok(())
    }

    /// Writes held windows (all text or all packed) to a new temporary file,
    /// one batch per bucket.
    fn spill(&self, held: &[&SplitWindow], packed: bool) -> Result<SpillRound> {
        let schema = match (&self.packing, packed) {
            (Some(packing), true) => &packing.schema,
            _ => &self.schema,
        };
        let file = self.disk.create_tmp_file("BucketedAggregateExec")?;
        let sink = BufWriter::with_capacity(1 << 20, file.open_writer()?);
        let mut writer = FileWriter::try_new(sink, schema)?;
        let mut batches = Vec::with_capacity(self.route.buckets());
        let mut written = 0;
        for bucket in 0..self.route.buckets() {
            let pieces: Vec<RecordBatch> = held.iter().filter_map(|w| w.bucket(bucket)).collect();
            if pieces.is_empty() {
                batches.push(None);
                continue;
            }
            // Compact: a slice of a view column would be written with all of
            // its window's string data.
            let rows = compact(concat_batches(schema, &pieces)?);
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
        Ok(SpillRound {
            file,
            packed,
            batches,
        })
    }
}

/// Gives view columns buffers of their own, holding only their strings:
/// taking and slicing leave them pointing into whole input buffers,
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
struct PartitionBuckets {
    splits: Arc<Vec<SplitInput>>,
    /// Per input partition, per spill round: opened on first use.
    readers: Vec<Vec<Option<FileReader<BufReader<File>>>>>,
    /// The next bucket and the end of this partition's buckets.
    next: usize,
    end: usize,
}

impl PartitionBuckets {
    fn new(splits: Arc<Vec<SplitInput>>, partition: usize) -> Self {
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
                run.push(batch, round.packed);
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
    fn aggregate_each(
        mut self,
        schema: SchemaRef,
        aggregate: Arc<dyn ExecutionPlan>,
        packing: Option<Arc<KeyPacking>>,
        merge_memory: MemoryReservation,
        merged_rows: Count,
        context: Arc<TaskContext>,
    ) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
        futures::stream::iter(std::iter::from_fn(move || self.next_run()))
            .map(move |run| {
                let run = run?;
                let text = aggregate_rows(&run.text, &schema, &aggregate, &context)?;
                let packed = match &packing {
                    Some(packing) if !run.packed.is_empty() => Some(match &packing.merge {
                        Some(merge)
                            if merge_memory
                                .try_resize(merge.memory_for(&run.packed))
                                .is_ok() =>
                        {
                            let merged = packing.unpack(merge.merge(&run.packed)?);
                            merge_memory.resize(0);
                            merged_rows.add(run.packed.iter().map(RecordBatch::num_rows).sum());
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
        let piece = take_record_batch(&batch, &UInt32Array::from(vec![3, 7])).unwrap();
        let compacted = compact(piece.clone());
        assert!(get_record_batch_memory_size(&compacted) < get_record_batch_memory_size(&piece));
        assert_eq!(compacted, piece);
    }

    #[test]
    fn rule_installs_in_a_session_state() {
        use crate::aggregate::{BucketFinalAggregation, Bucketing};
        use datafusion::execution::session_state::SessionStateBuilder;
        use std::sync::Arc;

        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(BucketFinalAggregation::new(
                Bucketing::default(),
            )))
            .build();
        assert!(
            state
                .physical_optimizers()
                .iter()
                .any(|rule| rule.name() == "bucket_final_aggregation")
        );
    }
}
