//! The partial stage of a `GROUP BY` on one text key, grouped by the keys'
//! string views where they repeat.
//!
//! A string column read from a Parquet dictionary page holds each row's
//! value as a copy of the dictionary entry's 16-byte view: rows with the
//! same value hold the same view. A short text (12 bytes or less, such as
//! `ACCEPT`) is held whole in its view, so equal short values share views
//! whatever the source. DataFusion's partial aggregation hashes and
//! compares every row's text; [`PartialAggregateByViewExec`] finds each
//! row's group by its view in a small table kept for one batch, and looks
//! the text up only once per distinct view in a batch. Equal views always
//! hold equal text, and a text seen under another view reaches the same
//! group through the lookup, so the groups are those DataFusion would make.
//!
//! Where views do not repeat (each row's own slice of a decoded text
//! object, an address column with a value per row) there is nothing to
//! gain: the first batch of each partition decides, and such an input is
//! handed, first batch included, to the DataFusion aggregate this node
//! replaces. The accumulators are DataFusion's own, fed the same arguments,
//! so every aggregate function computes as it would there.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringViewBuilder};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, HashMap, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputOrderMode, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use super::RECOMPUTE;

/// Groups held before they are emitted as partial states and the table
/// starts again: the final aggregation merges states of a group emitted
/// more than once, so this bounds memory without changing answers.
const MAX_GROUPS: usize = 1 << 16;

/// A first batch with fewer rows than this per distinct view goes to
/// DataFusion's aggregate: its views do not repeat enough to pay.
const MIN_ROWS_PER_VIEW: usize = 4;

/// Slots of the per-batch table of views (a power of two); at most half
/// are filled, and views past that are looked up by their text.
const VIEW_SLOTS: usize = 1 << 11;

/// The metric of input rows grouped by view.
const GROUPED_ROWS: &str = "rows_grouped_by_view";

/// An `AggregateExec(Partial)` by one `Utf8View` key, with no grouping
/// sets, no per-aggregate filters and only aggregates that have a groups
/// accumulator, run by view where its input's views repeat (see the
/// [module docs](self)). Same output schema, partitioning and rows.
#[derive(Debug)]
pub(crate) struct PartialAggregateByViewExec {
    /// The aggregate it replaces: what it computes, its properties, and
    /// what runs an input whose views do not repeat.
    aggregate: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
}

impl PartialAggregateByViewExec {
    /// Takes the place of `plan` when it is an aggregate this can run.
    pub(crate) fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Option<Self> {
        let aggregate = plan.downcast_ref::<AggregateExec>()?;
        let group_by = aggregate.group_expr();
        let input = aggregate.input().schema();
        let one_text_key = group_by.is_single()
            && group_by.expr().len() == 1
            && group_by.expr()[0].0.data_type(&input).ok() == Some(DataType::Utf8View);
        let accumulators = aggregate.aggr_expr().iter().all(|expr| {
            expr.groups_accumulator_supported()
                && !expr.is_distinct()
                && expr.order_bys().is_empty()
        });
        let eligible = *aggregate.mode() == AggregateMode::Partial
            && *aggregate.input_order_mode() == InputOrderMode::Linear
            && aggregate.limit_options().is_none()
            && aggregate.filter_expr().iter().all(Option::is_none)
            && one_text_key
            && accumulators;
        eligible.then(|| Self {
            aggregate: Arc::clone(plan),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The aggregate it replaces, which runs an input whose views do not
    /// repeat (and then passes the scan's arrays on once it stops
    /// aggregating, as anywhere).
    pub(super) fn aggregate(&self) -> &AggregateExec {
        self.aggregate
            .downcast_ref::<AggregateExec>()
            .expect("built over an AggregateExec")
    }

    fn input(&self) -> &Arc<dyn ExecutionPlan> {
        self.aggregate().input()
    }
}

impl DisplayAs for PartialAggregateByViewExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PartialAggregateByViewExec: ")?;
        self.aggregate.fmt_as(t, f)
    }
}

impl ExecutionPlan for PartialAggregateByViewExec {
    fn name(&self) -> &str {
        "PartialAggregateByViewExec"
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
        Self::try_new(&aggregate)
            .map(|exec| Arc::new(exec) as Arc<dyn ExecutionPlan>)
            .ok_or_else(|| {
                DataFusionError::Internal("PartialAggregateByViewExec lost its aggregate".into())
            })
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let aggregate = Arc::clone(&self.aggregate).reset_state()?;
        Ok(Arc::new(Self {
            aggregate,
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    /// Rows out; input rows grouped by view, and the time spent grouping
    /// and accumulating them (an input handed to DataFusion's aggregate
    /// counts in neither).
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let aggregate = self.aggregate();
        let schema = self.schema();
        let mut input = self.input().execute(partition, Arc::clone(&context))?;
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let grouping = Grouping {
            key: Arc::clone(&aggregate.group_expr().expr()[0].0),
            arguments: aggregate
                .aggr_expr()
                .iter()
                .map(|expr| expr.expressions())
                .collect(),
            accumulators: aggregate
                .aggr_expr()
                .iter()
                .map(|expr| expr.create_groups_accumulator())
                .collect::<Result<_>>()?,
            groups: GroupsByView::new(),
            schema: Arc::clone(&schema),
            batch_size: context.session_config().batch_size().max(1),
            elapsed_compute: MetricBuilder::new(&self.metrics).elapsed_compute(partition),
            grouped_rows: MetricBuilder::new(&self.metrics).counter(GROUPED_ROWS, partition),
        };
        let template = Arc::clone(&self.aggregate);
        let input_properties = Arc::clone(self.input().properties());
        let output = futures::stream::once(async move {
            let first = match input.next().await {
                Some(batch) => batch?,
                None => return Ok(grouping.run(input, None).boxed()),
            };
            if grouping.views_repeat(&first)? {
                return Ok(grouping.run(input, Some(first)).boxed());
            }
            // Hand the whole input, first batch included, to DataFusion.
            let replayed = futures::stream::once(async move { Ok(first) }).chain(input);
            let replay = Arc::new(Replay {
                properties: input_properties,
                stream: Mutex::new(Some(Box::pin(RecordBatchStreamAdapter::new(
                    template.children()[0].schema(),
                    replayed,
                )))),
            });
            let aggregate = template.replace_children(vec![replay], RECOMPUTE)?;
            Ok::<_, DataFusionError>(aggregate.execute(partition, context)?.boxed())
        })
        .try_flatten()
        .inspect_ok(move |batch| output_rows.add(batch.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, output)))
    }
}

/// One partition's partial aggregation by view.
struct Grouping {
    key: Arc<dyn PhysicalExpr>,
    /// Each aggregate's arguments, evaluated per batch.
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: GroupsByView,
    schema: SchemaRef,
    batch_size: usize,
    elapsed_compute: Time,
    grouped_rows: Count,
}

impl Grouping {
    /// Whether `batch`'s keys repeat their views enough to group by them.
    fn views_repeat(&self, batch: &RecordBatch) -> Result<bool> {
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        let views = keys.as_string_view().views();
        let mut seen = ViewTable::new();
        let mut distinct = 0;
        for &view in views.iter() {
            if seen.find(view).is_none() {
                distinct += 1;
                if !seen.insert(view, 0) {
                    return Ok(false);
                }
            }
        }
        Ok(distinct * MIN_ROWS_PER_VIEW <= views.len())
    }

    /// Aggregates `first` and then the rest of `input`, emitting partial
    /// states whenever [`MAX_GROUPS`] groups are held, and at the end.
    fn run(
        self,
        input: SendableRecordBatchStream,
        first: Option<RecordBatch>,
    ) -> futures::stream::BoxStream<'static, Result<RecordBatch>> {
        let batches = futures::stream::iter(first.map(Ok)).chain(input);
        let state = (self, batches.boxed(), Vec::<RecordBatch>::new(), false);
        futures::stream::try_unfold(
            state,
            |(mut this, mut batches, mut ready, mut done)| async move {
                loop {
                    if let Some(batch) = ready.pop() {
                        return Ok(Some((batch, (this, batches, ready, done))));
                    }
                    if done {
                        return Ok(None);
                    }
                    let next = batches.next().await.transpose()?;
                    let elapsed_compute = this.elapsed_compute.clone();
                    let _timer = elapsed_compute.timer();
                    match next {
                        Some(batch) => {
                            this.add(&batch)?;
                            if this.groups.len() >= MAX_GROUPS {
                                ready = this.emit()?;
                            }
                        }
                        None => {
                            done = true;
                            ready = this.emit()?;
                        }
                    }
                }
            },
        )
        .boxed()
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        self.grouped_rows.add(rows);
        let keys = self.key.evaluate(batch)?.into_array(rows)?;
        self.groups.intern(&keys);
        let (indices, groups) = (&self.groups.indices, self.groups.len());
        for (accumulator, arguments) in self.accumulators.iter_mut().zip(&self.arguments) {
            let values = arguments
                .iter()
                .map(|argument| argument.evaluate(batch)?.into_array(rows))
                .collect::<Result<Vec<ArrayRef>>>()?;
            accumulator.update_batch(&values, indices, None, groups)?;
        }
        Ok(())
    }

    /// Every group held, as partial states in batches of at most the
    /// session's batch size, last batch first; the groups start again.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        if self.groups.len() == 0 {
            return Ok(Vec::new());
        }
        let mut columns = vec![self.groups.emit()];
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        let all = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let mut batches: Vec<RecordBatch> = (0..all.num_rows())
            .step_by(self.batch_size)
            .map(|start| all.slice(start, self.batch_size.min(all.num_rows() - start)))
            .collect();
        batches.reverse();
        Ok(batches)
    }
}

/// The groups of one partition: each distinct key text (and NULL) a group
/// index, found by view through a table kept for one batch.
struct GroupsByView {
    by_text: HashMap<Box<str>, u32>,
    null_group: Option<u32>,
    values: StringViewBuilder,
    count: usize,
    /// This batch's group indices, one per row.
    indices: Vec<usize>,
    views: ViewTable,
}

impl GroupsByView {
    fn new() -> Self {
        Self {
            by_text: HashMap::default(),
            null_group: None,
            values: StringViewBuilder::new(),
            count: 0,
            indices: Vec::new(),
            views: ViewTable::new(),
        }
    }

    fn len(&self) -> usize {
        self.count
    }

    /// Finds the group index of each row of `keys` (a `Utf8View` array),
    /// in [`Self::indices`].
    fn intern(&mut self, keys: &ArrayRef) {
        let keys = keys.as_string_view();
        self.views.next_batch();
        self.indices.clear();
        self.indices.reserve(keys.len());
        let views = keys.views();
        for (row, &view) in views.iter().enumerate() {
            let group = if keys.is_null(row) {
                self.null_group()
            } else if let Some(group) = self.views.find(view) {
                group
            } else {
                let group = self.text_group(keys.value(row));
                self.views.insert(view, group);
                group
            };
            self.indices.push(group as usize);
        }
    }

    fn null_group(&mut self) -> u32 {
        if let Some(group) = self.null_group {
            return group;
        }
        let group = self.new_group();
        self.values.append_null();
        self.null_group = Some(group);
        group
    }

    fn text_group(&mut self, text: &str) -> u32 {
        if let Some(&group) = self.by_text.get(text) {
            return group;
        }
        let group = self.new_group();
        self.values.append_value(text);
        self.by_text.insert(text.into(), group);
        group
    }

    fn new_group(&mut self) -> u32 {
        let group = self.count as u32;
        self.count += 1;
        group
    }

    /// The groups' keys, in group order; the groups start again.
    fn emit(&mut self) -> ArrayRef {
        let values = Arc::new(self.values.finish()) as ArrayRef;
        self.by_text.clear();
        self.null_group = None;
        self.count = 0;
        // Views found in this batch name groups that no longer exist.
        self.views.next_batch();
        values
    }
}

/// A small open-addressing table from a string view to a group index,
/// emptied in O(1) between batches (a view names bytes of its own batch's
/// buffers only) by a batch number in each slot.
struct ViewTable {
    slots: Box<[Slot]>,
    batch: u32,
    filled: usize,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    view: u128,
    group: u32,
    batch: u32,
}

impl ViewTable {
    fn new() -> Self {
        Self {
            slots: vec![Slot::default(); VIEW_SLOTS].into_boxed_slice(),
            // Slots start at batch 0, so no slot is filled for batch 1.
            batch: 1,
            filled: 0,
        }
    }

    fn next_batch(&mut self) {
        self.filled = 0;
        self.batch = self.batch.wrapping_add(1);
        if self.batch == 0 {
            self.slots.fill(Slot::default());
            self.batch = 1;
        }
    }

    fn home(view: u128) -> usize {
        let mixed = (view as u64) ^ ((view >> 64) as u64).rotate_left(29);
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - VIEW_SLOTS.trailing_zeros())) as usize
    }

    fn find(&self, view: u128) -> Option<u32> {
        let mut slot = Self::home(view);
        loop {
            let entry = &self.slots[slot];
            if entry.batch != self.batch {
                return None;
            }
            if entry.view == view {
                return Some(entry.group);
            }
            slot = (slot + 1) & (VIEW_SLOTS - 1);
        }
    }

    /// Remembers `view`'s group, unless the table is half full (then the
    /// view's rows are found by their text); false when it was not kept.
    fn insert(&mut self, view: u128, group: u32) -> bool {
        if self.filled * 2 >= VIEW_SLOTS {
            return false;
        }
        let mut slot = Self::home(view);
        while self.slots[slot].batch == self.batch {
            slot = (slot + 1) & (VIEW_SLOTS - 1);
        }
        self.slots[slot] = Slot {
            view,
            group,
            batch: self.batch,
        };
        self.filled += 1;
        true
    }
}

/// A stream already started, as a plan's input: the DataFusion aggregate
/// this node hands an input to reads it from here.
struct Replay {
    properties: Arc<PlanProperties>,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl DisplayAs for Replay {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Replay")
    }
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Replay")
    }
}

impl ExecutionPlan for Replay {
    fn name(&self) -> &str {
        "Replay"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _: usize, _: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| DataFusionError::Internal("a replayed input runs once".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringViewArray};
    use datafusion::arrow::compute::take;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::Result;
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::{ExecutionPlan, collect};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::{GROUPED_ROWS, MAX_GROUPS, PartialAggregateByViewExec};
    use crate::aggregate::PartialAggregationByView;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8View, true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    fn batch(keys: ArrayRef, start: i64) -> RecordBatch {
        let values: Int64Array = (0..keys.len() as i64)
            .map(|i| (i % 7 != 3).then_some((start + i) % 1000))
            .collect();
        RecordBatch::try_new(schema(), vec![keys, Arc::new(values)]).unwrap()
    }

    /// Keys whose views repeat, as read from a Parquet dictionary page: each
    /// row a copy of one of `dictionary`'s views (or NULL).
    fn repeating(dictionary: &[&str], rows: usize, seed: usize) -> ArrayRef {
        let dictionary: StringViewArray = dictionary.iter().map(|s| Some(*s)).collect();
        let indices: datafusion::arrow::array::UInt32Array = (0..rows)
            .map(|i| {
                let pick = (i * 7 + seed) % (dictionary.len() + 1);
                (pick < dictionary.len()).then_some(pick as u32)
            })
            .collect();
        take(&dictionary, &indices, None).unwrap()
    }

    /// Keys each with a view of its own, as decoded from text.
    fn distinct(prefix: &str, rows: usize, offset: usize) -> ArrayRef {
        Arc::new(
            (0..rows)
                .map(|i| Some(format!("{prefix}-{:012}", (i + offset) % 90_000)))
                .collect::<StringViewArray>(),
        )
    }

    const ENIS: [&str; 5] = [
        "eni-0000000000000001a",
        "eni-0000000000000002b",
        "ACCEPT",
        "REJECT",
        "",
    ];

    async fn answers(by_view: bool, sql: &str) -> Result<(String, usize)> {
        let partitions = vec![
            // Views repeat, with other views for the same texts in each batch.
            vec![
                batch(repeating(&ENIS, 8192, 0), 0),
                batch(repeating(&ENIS[1..], 8192, 3), 5),
                batch(repeating(&["eni-0000000000000001a", "other"], 100, 1), 9),
            ],
            // Views repeat at first, then every row is a group of its own:
            // more groups than are held at once.
            vec![
                batch(repeating(&ENIS, 8192, 2), 1),
                batch(distinct("eni", 40_000, 0), 2),
                batch(distinct("eni", 40_000, 40_000), 3),
                batch(repeating(&ENIS, 500, 4), 4),
            ],
            // No view repeats: DataFusion's aggregate takes it.
            vec![
                batch(distinct("eni", 8192, 70_000), 6),
                batch(repeating(&ENIS, 8192, 5), 7),
            ],
        ];
        let table = MemTable::try_new(schema(), partitions)?;
        let config = SessionConfig::new().with_target_partitions(3);
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config);
        if by_view {
            state = state.with_physical_optimizer_rule(Arc::new(PartialAggregationByView));
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table("t", Arc::new(table))?;
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await?;
        Ok((
            pretty_format_batches(&batches)?.to_string(),
            rows_by_view(&plan),
        ))
    }

    /// Input rows the plan's partial aggregations grouped by view.
    fn rows_by_view(plan: &Arc<dyn ExecutionPlan>) -> usize {
        let own = plan
            .downcast_ref::<PartialAggregateByViewExec>()
            .and_then(|exec| exec.metrics()?.sum_by_name(GROUPED_ROWS))
            .map(|rows| rows.as_usize())
            .unwrap_or(0);
        own + plan.children().into_iter().map(rows_by_view).sum::<usize>()
    }

    #[tokio::test]
    async fn groups_by_view_as_datafusion_groups_by_text() -> Result<()> {
        // Each query, and the fewest input rows its partial aggregations
        // group by view: with all rows, partitions 0 and 1 (whose 80,000
        // texts are emitted more than once); a filter's output batches mix
        // partition 1's repeating and distinct rows, and only partition 0
        // is grouped by view.
        let queries = [
            (
                "SELECT k, count(*), count(v), sum(v), min(v), max(v), avg(v) FROM t GROUP BY k ORDER BY k",
                3 * 8192 + 100 + 80_000 + 500,
            ),
            (
                "SELECT k, count(*) AS n FROM t WHERE v > 500 GROUP BY k ORDER BY n DESC, k LIMIT 7",
                1,
            ),
            (
                "SELECT count(*), sum(n) FROM (SELECT k, count(*) AS n FROM t GROUP BY k)",
                3 * 8192 + 100 + 80_000 + 500,
            ),
        ];
        // Partition 1 holds more groups than are held at once.
        const { assert!(80_000 > MAX_GROUPS) };
        for (sql, fewest) in queries {
            let (expected, none) = answers(false, sql).await?;
            let (actual, rows) = answers(true, sql).await?;
            assert_eq!(none, 0, "{sql}");
            assert_eq!(actual, expected, "{sql}");
            assert!(rows >= fewest, "{sql}: {rows} rows grouped by view");
        }
        Ok(())
    }
}
