//! The execution plan node that finishes a grouped aggregation one bucket
//! at a time: which aggregates it can take, how EXPLAIN shows it, its
//! metrics, and its two phases. The first output partition executed starts
//! phase one, the split of every input partition ([`super::split`]); each
//! output partition then waits for it and finishes its own buckets
//! ([`super::finish`]).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{
    ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, SpillMetrics,
};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, InputOrderMode,
    PlanProperties,
};
use futures::future::{BoxFuture, FutureExt, Shared, TryFutureExt};
use futures::{StreamExt, TryStreamExt};

use super::finish::PartitionBuckets;
use super::keep_top::KeepTop;
use super::packing::KeyPacking;
use super::routing::Route;
use super::split::{SplitInput, Splitter};
use super::{BUCKETS, Bucketing, RECOMPUTE};

/// The largest TopK fetch the aggregate filters for ([`super::keep_top`]).
const MAX_KEEP_TOP: usize = 4096;

/// An `AggregateExec(FinalPartitioned)` and the hash `RepartitionExec` that
/// feeds it, run as one (see the [module docs](super)). Same output and
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
    /// The groups a TopK above can choose, where one orders by a merged
    /// aggregate ([`super::keep_top`]).
    keep_top: Option<KeepTop>,
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
            keep_top: None,
            metrics: ExecutionPlanMetricsSet::new(),
            split: Arc::default(),
        })
    }

    /// This aggregate letting through only the groups that `keep` (a TopK
    /// directly above, by an output column) can choose; `None` unless the
    /// groups are merged by code ([`super::packed_merge`]), the column is
    /// one of the merged aggregates and the fetch is at most
    /// [`MAX_KEEP_TOP`].
    pub(crate) fn keeping_top(&self, keep: KeepTop) -> Option<Self> {
        let merged = self
            .packing
            .as_ref()
            .is_some_and(|packing| packing.merge.is_some());
        let keys = self
            .aggregate
            .downcast_ref::<AggregateExec>()?
            .group_expr()
            .expr()
            .len();
        let schema = self.schema();
        let aggregate_column = keep.column >= keys
            && keep.column < schema.fields().len()
            && matches!(
                schema.field(keep.column).data_type(),
                DataType::Int64 | DataType::UInt64
            );
        // Past a few thousand rows the TopK would keep most groups of a
        // run anyway, and the best values held per partition grow with
        // the fetch, outside the memory pool.
        if !merged || !aggregate_column || keep.fetch == 0 || keep.fetch > MAX_KEEP_TOP {
            return None;
        }
        Some(Self {
            keep_top: Some(keep),
            ..self.fresh()
        })
    }

    /// The same plan node with no state: a split not started, no metrics.
    fn fresh(&self) -> Self {
        Self {
            aggregate: Arc::clone(&self.aggregate),
            repartition: Arc::clone(&self.repartition),
            route_keys: self.route_keys.clone(),
            partitions: self.partitions,
            bucketing: self.bucketing,
            packing: self.packing.clone(),
            route_by_code: self.route_by_code,
            keep_top: self.keep_top,
            metrics: ExecutionPlanMetricsSet::new(),
            split: Arc::default(),
        }
    }

    /// Routes rows with packed keys by a hash of their codes, where `on`
    /// and the repartition hashes plain columns (which the codes stand in
    /// for). Nothing above may then pair this plan's partitions with
    /// another input's: a key lands in a partition of its own, not the one
    /// the repartition would have picked. The rule turns it on for plans
    /// with no node of two inputs. Hashing codes costs a fraction of
    /// hashing the text, even with DataFusion's hash, and less again with
    /// the mixer of `routing::hash_code_columns`.
    pub(crate) fn with_code_routing(mut self, on: bool) -> Self {
        self.route_by_code = on
            && self.packing.is_some()
            && self
                .route_keys
                .iter()
                .all(|key| key.downcast_ref::<Column>().is_some());
        self
    }

    /// Whether rows with packed keys are routed by their codes; then this
    /// reads no text of theirs.
    pub(crate) fn routes_by_code(&self) -> bool {
        self.route_by_code
    }

    pub(crate) fn input(&self) -> &Arc<dyn ExecutionPlan> {
        self.repartition.children()[0]
    }

    /// The names, in [`Self::input`]'s schema, of the text keys this
    /// carries as codes.
    pub(crate) fn packed_columns(&self) -> Vec<String> {
        let schema = self.input().schema();
        self.packing.as_ref().map_or_else(Vec::new, |packing| {
            packing
                .columns
                .iter()
                .map(|&i| schema.field(i).name().clone())
                .collect()
        })
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
                recalled_rows: MetricBuilder::new(&self.metrics).counter("recalled_rows", i),
                textless_rows: MetricBuilder::new(&self.metrics).counter("textless_rows", i),
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
            if let Some(keep) = &self.keep_top {
                let order = if keep.descending { "DESC" } else { "ASC" };
                let name = self.schema().field(keep.column).name().clone();
                write!(f, "keep_top=[{} by {name} {order}], ", keep.fetch)?;
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
                Arc::new(Self {
                    keep_top: self.keep_top,
                    ..bucketed.with_code_routing(self.route_by_code)
                }) as Arc<dyn ExecutionPlan>
            })
            .ok_or_else(|| {
                DataFusionError::Internal("BucketedAggregateExec lost its aggregate".to_string())
            })
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).reset_state()?;
        Ok(Arc::new(Self {
            aggregate,
            ..self.fresh()
        }))
    }

    /// Rows out; spills (count, bytes, rows); rows split with packed keys,
    /// those merged by code, and those dropped before the merge as unable
    /// to reach a TopK above (`outranked_rows`);
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
        let keep_top = self.keep_top;
        let aggregate_time =
            MetricBuilder::new(&self.metrics).subset_time("aggregate_time", partition);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let merged_rows = MetricBuilder::new(&self.metrics).counter("merged_rows", partition);
        let outranked_rows = MetricBuilder::new(&self.metrics).counter("outranked_rows", partition);
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
                keep_top,
                merge_memory,
                merged_rows,
                outranked_rows,
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
