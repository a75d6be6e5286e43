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

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::{FileOpener, FileScanConfig};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coop::cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio::task::JoinError;

use crate::decode::record_filter::RecordFilter;
use crate::table::{FoundObject, ScanListing};

/// Objects listed ahead of the readers at most; bounds the listing's memory.
const QUEUE_OBJECTS: usize = 4096;

/// Objects each partition opens ahead of the one it reads once the store
/// has proved slow. On S3 every GET waits tens of milliseconds for its
/// first byte while decoding an object takes a few; enough GETs in flight
/// hide that wait.
const READ_AHEAD_OBJECTS: usize = 8;

/// How long a partition waits for an object to open before it reads
/// [`READ_AHEAD_OBJECTS`] ahead instead of one. A local file opens well
/// within it, so a `LIMIT` over local files opens no more than it needs.
const WIDEN_READ_AHEAD_AFTER: std::time::Duration = std::time::Duration::from_millis(5);

/// Listed (compressed) bytes each partition opens ahead at most, so a run
/// of large objects does not hold many of them in memory.
const READ_AHEAD_BYTES: u64 = 16 << 20;

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
    listing: Arc<ScanListing>,
    /// One per root: its store URL, projection and file source.
    configs: Vec<FileScanConfig>,
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

/// The queue of listed objects that one execution's partitions share, and
/// the task filling it.
struct Feed {
    objects: tokio::sync::Mutex<mpsc::Receiver<Result<FoundObject>>>,
    _listing: SpawnedTask<()>,
}

impl Feed {
    fn start(listing: Arc<ScanListing>) -> Arc<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE_OBJECTS);
        let task = SpawnedTask::spawn(async move { listing.run(&sender).await });
        Arc::new(Self {
            objects: tokio::sync::Mutex::new(receiver),
            _listing: task,
        })
    }

    /// The next object to read; `None` once the listing is done and the
    /// queue is empty.
    async fn next(&self) -> Option<Result<FoundObject>> {
        self.objects.lock().await.recv().await
    }

    /// The next object if one is queued now, without waiting.
    fn try_next(&self) -> Option<Result<FoundObject>> {
        self.objects.try_lock().ok()?.try_recv().ok()
    }
}

impl FlowLogScanExec {
    /// A scan of what `listing` finds, opened with `configs` (one per root,
    /// all with the same projection), over `partitions` readers.
    pub(crate) fn try_new(
        listing: Arc<ScanListing>,
        configs: Vec<FileScanConfig>,
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
            record_filter,
            schema,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: Arc::new(properties),
            feed: Mutex::new(None),
        })
    }

    /// Runs the listing to the end without reading any object, so the scan
    /// report counts what the scan would read (`--dry-run`).
    pub(crate) async fn list_only(&self) -> Result<()> {
        let (sender, mut receiver) = mpsc::channel(QUEUE_OBJECTS);
        let listing = Arc::clone(&self.listing);
        let run = async move { listing.run(&sender).await };
        let drain = async move {
            while let Some(found) = receiver.recv().await {
                found?;
            }
            Ok(())
        };
        futures::future::join(run, drain).await.1
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
                    self.listing.roots_display().join(", "),
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
        Some(metrics)
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::try_new(
            Arc::clone(&self.listing),
            self.configs.clone(),
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
        let openers: Vec<Arc<dyn FileOpener>> = self
            .configs
            .iter()
            .enumerate()
            .map(|(root, config)| {
                let source = config.file_source().with_batch_size(batch_size);
                source.create_file_opener(self.listing.store(root), config, partition)
            })
            .collect::<Result<_>>()?;
        let reader = PartitionReader {
            feed,
            openers,
            current: None,
            ahead: VecDeque::new(),
            depth: 1,
            listed_all: false,
        };
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

type Batches = BoxStream<'static, Result<RecordBatch>>;

/// One partition's reading: the object being read and, while it is read,
/// the next ones already being opened (for S3, their GETs under way): one,
/// or up to [`READ_AHEAD_OBJECTS`] and [`READ_AHEAD_BYTES`] once an open
/// has been slow.
struct PartitionReader {
    feed: Arc<Feed>,
    openers: Vec<Arc<dyn FileOpener>>,
    current: Option<Batches>,
    /// Objects being opened, in the order they are to be read, with their
    /// listed sizes.
    ahead: VecDeque<(u64, SpawnedTask<Result<Batches>>)>,
    /// How many objects to open ahead: 1 until an open is slow.
    depth: usize,
    /// The feed has said the listing is over and its queue empty.
    listed_all: bool,
}

impl PartitionReader {
    async fn next_batch(mut self) -> Option<(Result<RecordBatch>, Self)> {
        loop {
            if self.current.is_some() {
                self.read_ahead();
                let current = self.current.as_mut().expect("checked above");
                match current.next().await {
                    Some(batch) => return Some((batch, self)),
                    None => self.current = None,
                }
            }
            let opening = match self.ahead.pop_front() {
                Some((_, opening)) => opening,
                None => {
                    let found = self.feed.next().await?;
                    self.start_opening(found)
                }
            };
            match self.wait_reading_ahead(opening).await {
                Ok(Ok(batches)) => self.current = Some(batches),
                Ok(Err(e)) => return Some((Err(e), self)),
                Err(e) => {
                    return Some((Err(DataFusionError::ExecutionJoin(Box::new(e))), self));
                }
            }
        }
    }

    /// Waits for `opening` to open, meanwhile opening the objects the
    /// listing finds, within the read-ahead limits; if the wait is long,
    /// the limits widen, so on a slow store the first objects of a scan,
    /// and any after a slow GET, are requested together.
    async fn wait_reading_ahead(
        &mut self,
        mut opening: SpawnedTask<Result<Batches>>,
    ) -> Result<Result<Batches>, JoinError> {
        loop {
            self.read_ahead();
            let room = self.has_room_ahead() && !self.listed_all;
            let narrow = self.depth < READ_AHEAD_OBJECTS;
            let feed = Arc::clone(&self.feed);
            tokio::select! {
                biased;
                opened = &mut opening => return opened,
                () = tokio::time::sleep(WIDEN_READ_AHEAD_AFTER), if narrow => {
                    self.depth = READ_AHEAD_OBJECTS;
                }
                found = feed.next(), if room => match found {
                    Some(found) => self.open_ahead(found),
                    None => self.listed_all = true,
                },
            }
        }
    }

    /// Starts opening the objects queued now, within the read-ahead limits.
    fn read_ahead(&mut self) {
        while self.has_room_ahead() {
            let Some(found) = self.feed.try_next() else {
                break;
            };
            self.open_ahead(found);
        }
    }

    fn has_room_ahead(&self) -> bool {
        let bytes: u64 = self.ahead.iter().map(|(size, _)| size).sum();
        self.ahead.len() < self.depth && bytes < READ_AHEAD_BYTES
    }

    fn open_ahead(&mut self, found: Result<FoundObject>) {
        let size = found.as_ref().map_or(0, |(_, file)| file.object_meta.size);
        let opening = self.start_opening(found);
        self.ahead.push_back((size, opening));
    }

    /// Opens an object in its own task, so it proceeds while the current
    /// one is read; dropping the task (with the reader) cancels it.
    fn start_opening(&self, found: Result<FoundObject>) -> SpawnedTask<Result<Batches>> {
        let opened = found.and_then(|(root, file)| self.openers[root].open(file));
        SpawnedTask::spawn(async move { opened?.await })
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
