//! [`FlowLogScanExec`]: the execution plan that lists while it reads.
//!
//! DataFusion's `DataSourceExec` needs every file before the first is read,
//! so a query over years of a large bucket would wait for the whole listing.
//! Here the listing runs as a task beside the readers: each day folder's
//! objects go into a bounded queue as soon as its listing returns, and the
//! plan's partitions take the next object from that queue whenever they
//! finish one, which also spreads uneven objects evenly. Dropping every
//! partition's stream (a finished LIMIT, Ctrl-C, a dropped query) drops the
//! queue and aborts the listing task.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;

use super::parquet::ParquetReading;
use super::queue::{self, Feed, ObjectListing};
use super::read_ahead::{Openers, PartitionReader};
use super::text::FlowLogSource;
use crate::decode::record_filter::RecordFilter;

/// Reads the flow-log objects of one scan while listing them; what
/// [`crate::FlowLogTable`]'s `scan` returns.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::common::Result<()> {
/// use flowsql::{new_context, SessionOptions};
///
/// let location = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bucket");
/// let ctx = new_context(&[location], &SessionOptions::default()).await?;
/// let plan = ctx
///     .sql("SELECT count(*) FROM vpc_flow_logs")
///     .await?
///     .create_physical_plan()
///     .await?;
/// let shown = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
/// assert!(shown.contains("FlowLogScanExec"), "{shown}");
/// // Nothing is listed until the plan runs; list_scans lists without reading.
/// let report = flowsql::scan_report(&ctx, "vpc_flow_logs").await?;
/// report.reset();
/// flowsql::list_scans(&plan).await?;
/// assert!(report.summary().objects_planned > 0);
/// assert_eq!(report.summary().objects_opened, 0);
/// # Ok(())
/// # }
/// ```
pub(crate) struct FlowLogScanExec {
    listing: Arc<dyn ObjectListing>,
    /// One per root: its store URL, projection and text source.
    configs: Vec<FileScanConfig>,
    /// One per root: the reading of its Parquet objects.
    parquet: Vec<ParquetReading>,
    /// The tests the decoder runs on each line (shown in plans).
    record_filter: Arc<RecordFilter>,
    schema: SchemaRef,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
    /// The running execution's queue; partitions join it while it lives.
    feed: Mutex<Option<(Weak<Feed>, Vec<bool>)>>,
}

impl fmt::Debug for FlowLogScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowLogScanExec")
            .field("listing", &self.listing)
            .finish_non_exhaustive()
    }
}

impl FlowLogScanExec {
    /// A scan of what `listing` finds, text objects opened with `configs`
    /// and Parquet objects with `parquet` (one each per root, all with the
    /// same projection), over `partitions` readers.
    pub(crate) fn try_new(
        listing: Arc<dyn ObjectListing>,
        configs: Vec<FileScanConfig>,
        parquet: Vec<ParquetReading>,
        record_filter: Arc<RecordFilter>,
        partitions: usize,
    ) -> Result<Self> {
        let schema = configs
            .first()
            .ok_or_else(|| DataFusionError::Internal("a scan without roots".to_string()))?
            .projected_schema()?;
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions.max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            listing,
            configs,
            parquet,
            record_filter,
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
            feed: Mutex::new(None),
        })
    }

    /// This scan with its decoders making the codes of the text `columns`
    /// as they read them, for a grouping above that packs those columns
    /// (see [`crate::decode::TextDecoder::with_codes`]); with `text_unread`,
    /// leaving out the text of values with a code once the plan passes a
    /// batch on unread (see [`FlowLogSource::with_coded_columns`]).
    pub(crate) fn with_coded_columns(
        &self,
        columns: Vec<String>,
        text_unread: bool,
    ) -> Result<Self> {
        let columns: Arc<[String]> = columns.into();
        let configs = self
            .configs
            .iter()
            .map(|config| {
                // Codes only speed a grouping up: a root of another source
                // is read as it was.
                match config.file_source().downcast_ref::<FlowLogSource>() {
                    Some(source) => {
                        let source = source
                            .clone()
                            .with_coded_columns(Arc::clone(&columns), text_unread);
                        FileScanConfigBuilder::from(config.clone())
                            .with_source(Arc::new(source))
                            .build()
                    }
                    None => config.clone(),
                }
            })
            .collect();
        Self::try_new(
            Arc::clone(&self.listing),
            configs,
            self.parquet.clone(),
            Arc::clone(&self.record_filter),
            self.properties.partitioning.partition_count(),
        )
    }

    /// The text columns the decoders make codes of.
    fn coded_columns(&self) -> &[String] {
        self.text_source().map_or(&[], FlowLogSource::coded_columns)
    }

    /// The first root's text source.
    fn text_source(&self) -> Option<&FlowLogSource> {
        self.configs
            .first()
            .and_then(|config| config.file_source().downcast_ref::<FlowLogSource>())
    }

    /// What the scan reads, for a plan that handles whole objects itself
    /// (a conversion).
    pub(crate) fn listing(&self) -> Arc<dyn ObjectListing> {
        Arc::clone(&self.listing)
    }

    /// Runs the listing to the end without reading any object, so the scan
    /// report counts what the scan would read (a dry run).
    pub(crate) async fn list_only(&self) -> Result<()> {
        queue::list_only(Arc::clone(&self.listing)).await
    }

    /// The feed partition `partition` reads from: the running execution's,
    /// or a new one when this partition already ran (the plan is run
    /// again). `None` when this execution's listing is over and every
    /// other partition has gone: nothing is left for this one.
    fn feed_for(&self, partition: usize) -> Option<Arc<Feed>> {
        let mut guard = self.feed.lock().unwrap_or_else(|e| e.into_inner());
        let partitions = self.properties.partitioning.partition_count();
        if let Some((weak, taken)) = guard.as_mut()
            && !taken[partition]
        {
            taken[partition] = true;
            return weak.upgrade();
        }
        let feed = Feed::start(Arc::clone(&self.listing));
        let mut taken = vec![false; partitions];
        taken[partition] = true;
        *guard = Some((Arc::downgrade(&feed), taken));
        Some(feed)
    }
}

impl DisplayAs for FlowLogScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "FlowLogScanExec: roots=[{}], columns=[{}], listed while read",
                    self.listing.display().join(", "),
                    self.schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
                if !self.record_filter.is_empty() {
                    write!(f, ", record_filter=[{}]", self.record_filter)?;
                }
                if !self.coded_columns().is_empty() {
                    write!(f, ", coded=[{}]", self.coded_columns().join(", "))?;
                    if self
                        .text_source()
                        .is_some_and(FlowLogSource::leaves_text_out)
                    {
                        write!(f, ", coded_text=left_out_once_passed_on")?;
                    }
                }
                if let Some(predicate) = self.parquet.first().and_then(ParquetReading::predicate) {
                    write!(f, ", parquet_predicate=[{predicate}]")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => write!(f, "roots={}", self.configs.len()),
        }
    }
}

impl ExecutionPlan for FlowLogScanExec {
    fn name(&self) -> &str {
        "FlowLogScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "FlowLogScanExec has no children".to_string(),
            ))
        }
    }

    /// Rows out (after the record filter), and the sources' records read.
    fn metrics(&self) -> Option<MetricsSet> {
        let mut metrics = self.metrics.clone_inner();
        for config in &self.configs {
            for metric in config.file_source().metrics().clone_inner().iter() {
                metrics.push(Arc::clone(metric));
            }
        }
        for reading in &self.parquet {
            for metric in reading.metrics().clone_inner().iter() {
                metrics.push(Arc::clone(metric));
            }
        }
        Some(metrics)
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::try_new(
            Arc::clone(&self.listing),
            self.configs.clone(),
            self.parquet.clone(),
            Arc::clone(&self.record_filter),
            self.properties.partitioning.partition_count(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(feed) = self.feed_for(partition) else {
            let empty = futures::stream::empty();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                empty,
            )));
        };
        let batch_size = context.session_config().batch_size();
        // Named as the text reader's counter: DataFusion adds them up.
        let parquet_records = MetricBuilder::new(&self.metrics).counter("records_read", partition);
        let readers = ScanReaders {
            configs: self.configs.clone(),
            parquet: self.parquet.clone(),
        };
        let openers = readers.openers(
            self.listing.as_ref(),
            partition,
            batch_size,
            parquet_records,
        )?;
        let reader = PartitionReader::new(feed, openers);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let batches =
            futures::stream::unfold(reader, PartitionReader::next_batch).inspect(move |batch| {
                if let Ok(batch) = batch {
                    output_rows.add(batch.num_rows());
                }
            });
        Ok(Box::pin(cooperative(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches.boxed(),
        ))))
    }
}

/// The readers of a scan's objects: one per root for text objects (a
/// `FileScanConfig` of a [`super::text::FlowLogSource`]) and one for
/// Parquet objects, all with the scan's projection.
#[derive(Debug, Clone)]
pub(crate) struct ScanReaders {
    pub(crate) configs: Vec<FileScanConfig>,
    pub(crate) parquet: Vec<ParquetReading>,
}

impl ScanReaders {
    /// The openers one partition reads the objects of `listing` with, one
    /// pair per root; Parquet records are counted in `parquet_records`.
    pub(super) fn openers(
        &self,
        listing: &dyn ObjectListing,
        partition: usize,
        batch_size: usize,
        parquet_records: Count,
    ) -> Result<Vec<Openers>> {
        self.configs
            .iter()
            .zip(&self.parquet)
            .enumerate()
            .map(|(root, (config, parquet))| {
                let store = listing.store(root);
                let source = config.file_source().with_batch_size(batch_size);
                Ok(Openers {
                    text: source.create_file_opener(Arc::clone(&store), config, partition)?,
                    parquet: parquet.opener(
                        store,
                        partition,
                        batch_size,
                        parquet_records.clone(),
                    )?,
                })
            })
            .collect()
    }
}

/// Runs the listing of every flow-log scan in `plan` without reading, so
/// the tables' scan reports say what executing it would read.
pub async fn list_scans(plan: &Arc<dyn ExecutionPlan>) -> Result<()> {
    let mut pending = vec![Arc::clone(plan)];
    while let Some(node) = pending.pop() {
        let any: &dyn std::any::Any = node.as_ref();
        if let Some(scan) = any.downcast_ref::<FlowLogScanExec>() {
            scan.list_only().await?;
        }
        pending.extend(node.children().into_iter().cloned());
    }
    Ok(())
}
