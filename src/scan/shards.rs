//! A scan cut into shards, for a cluster.
//!
//! [`crate::scan::FlowLogScanExec`] lists while it reads and lets its
//! partitions share one queue: fine in one process, but a distributed
//! scheduler hands each task a fixed part of a leaf's work, and it can only
//! cut up DataFusion's own `DataSourceExec` over file groups. So a
//! distributed scan is a `DataSourceExec` whose "files" are [`Shard`]s: a
//! day folder of one account and region, or a range of its keys. A task
//! lists its shards' folders itself and reads their objects with the same
//! readers, read-ahead and queue as one process does, and keeps only
//! objects stored before the plan was made, so a retried task reads what
//! the first attempt read.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileOpenFuture, FileOpener, FileScanConfig, FileSource,
};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::{DisplayFormatType, PhysicalExpr};
use futures::{FutureExt, StreamExt};
use object_store::ObjectStore;

use super::exec::ScanReaders;
use super::queue::{Feed, ObjectListing};
use super::read_ahead::PartitionReader;
use crate::report::task_counts::TaskCounts;

/// One unit of a distributed scan's work: the objects of one folder of one
/// root, or a slice of them (a range of their keys).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Shard {
    /// The index of the root (an `AWSLogs/` folder of a store).
    pub(crate) root: usize,
    /// The folder whose objects the shard reads.
    pub(crate) folder: String,
    /// The slice: objects whose key comes after this one (all if `None`)...
    pub(crate) after: Option<String>,
    /// ...and not after this one (all if `None`).
    pub(crate) up_to: Option<String>,
    /// Which slice of the folder this is (from 1), of how many, as EXPLAIN
    /// shows it.
    pub(crate) slice: u32,
    pub(crate) slices: u32,
}

impl Shard {
    /// The shard reading all of `folder`.
    pub(crate) fn whole(root: usize, folder: String) -> Self {
        Self {
            root,
            folder,
            after: None,
            up_to: None,
            slice: 1,
            slices: 1,
        }
    }

    /// The shard as a `DataSourceExec`'s file, named for EXPLAIN.
    pub(crate) fn file(&self) -> PartitionedFile {
        let name = if self.slices > 1 {
            format!("{} (slice {} of {})", self.folder, self.slice, self.slices)
        } else {
            self.folder.clone()
        };
        let mut file = PartitionedFile::new(name, 0);
        file.extensions.insert(self.clone());
        file
    }

    /// The shard a `DataSourceExec`'s file stands for.
    pub(crate) fn of(file: &PartitionedFile) -> Result<&Shard> {
        file.extensions.get::<Shard>().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "{} is not a flow-log shard",
                file.object_meta.location
            ))
        })
    }

    /// Whether the object at `key` is in this shard's slice. The slices of
    /// a folder cover every key once, however many objects arrive later.
    pub(crate) fn holds(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|after| key > after)
            && self.up_to.as_deref().is_none_or(|last| key <= last)
    }
}

/// What a sharded scan needs from its table.
pub(crate) trait ShardedTable: fmt::Debug + Send + Sync + Any {
    /// The listing of one shard's objects.
    fn listing(&self, shard: &Shard) -> Result<Arc<dyn ObjectListing>>;

    /// The readers of each root's objects, for `projection` of the
    /// table's columns (record columns, then path columns).
    fn readers(&self, projection: Option<&Vec<usize>>) -> Result<ScanReaders>;

    /// What the table's scans counted (objects, bytes, malformed lines...)
    /// since this was last asked, however many tasks share the table.
    fn new_counts(&self) -> TaskCounts;

    /// The table, for a codec that writes it down.
    fn as_any(&self) -> &dyn Any;
}

/// DataFusion `FileSource` whose files are [`Shard`]s.
#[derive(Debug, Clone)]
pub(crate) struct ShardSource {
    table: Arc<dyn ShardedTable>,
    table_schema: TableSchema,
    /// Indices of the table's columns the scan returns; `None`: all.
    columns: Option<Vec<usize>>,
    projection: Option<ProjectionExprs>,
    batch_size: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
}

impl ShardSource {
    pub(crate) fn new(table: Arc<dyn ShardedTable>, table_schema: TableSchema) -> Self {
        Self {
            table,
            table_schema,
            columns: None,
            projection: None,
            batch_size: None,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The table whose shards this source reads.
    pub(crate) fn table(&self) -> &Arc<dyn ShardedTable> {
        &self.table
    }

    /// The table's columns the scan returns; `None`: all.
    pub(crate) fn columns(&self) -> Option<&Vec<usize>> {
        self.columns.as_ref()
    }
}

impl FileSource for ShardSource {
    fn create_file_opener(
        &self,
        _object_store: Arc<dyn ObjectStore>,
        _base_config: &FileScanConfig,
        partition: usize,
    ) -> Result<Arc<dyn FileOpener>> {
        let readers = self.table.readers(self.columns.as_ref())?;
        let counters = TaskCounts::default()
            .named()
            .map(|(name, _)| MetricBuilder::new(&self.metrics).counter(name, partition));
        Ok(Arc::new(ShardOpener {
            table: Arc::clone(&self.table),
            readers,
            partition,
            batch_size: self.batch_size.unwrap_or(8192),
            metrics: self.metrics.clone(),
            counters: Arc::new(counters),
        }))
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        let mut source = self.clone();
        source.batch_size = Some(batch_size);
        Arc::new(source)
    }

    /// Takes a projection of plain columns (which the readers build
    /// directly); anything else stays above the scan.
    fn try_pushdown_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> Result<Option<Arc<dyn FileSource>>> {
        let mut columns = Vec::new();
        for expr in projection.iter() {
            let Some(column) = expr.expr.downcast_ref::<Column>() else {
                return Ok(None);
            };
            let index = match &self.columns {
                Some(current) => match current.get(column.index()) {
                    Some(index) => *index,
                    None => return Ok(None),
                },
                None => column.index(),
            };
            let field = self.table_schema.table_schema().field(index);
            if expr.alias != *field.name() {
                return Ok(None);
            }
            columns.push(index);
        }
        let mut source = self.clone();
        source.projection = Some(ProjectionExprs::from_indices(
            &columns,
            self.table_schema.table_schema(),
        ));
        source.columns = Some(columns);
        Ok(Some(Arc::new(source)))
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        self.projection.as_ref()
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "vpcflowlogs shards"
    }

    /// A shard is one unit of work: its objects are found by listing it.
    fn supports_repartitioning(&self) -> bool {
        false
    }

    fn fmt_extra(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, ", listed by each task")
            }
            DisplayFormatType::TreeRender => Ok(()),
        }
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.projection {
            Some(projection) => {
                datafusion::physical_plan::apply_expression_roots(projection.iter(), f)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    }
}

/// Opens shards: lists each one and reads its objects.
struct ShardOpener {
    table: Arc<dyn ShardedTable>,
    readers: ScanReaders,
    partition: usize,
    batch_size: usize,
    metrics: ExecutionPlanMetricsSet,
    /// The metrics that carry the table's counts to the client, in the
    /// order of [`TaskCounts::named`].
    counters: Arc<[Count]>,
}

impl FileOpener for ShardOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let shard = Shard::of(&file)?;
        let listing = self.table.listing(shard)?;
        let records = MetricBuilder::new(&self.metrics).counter("records_read", self.partition);
        let openers =
            self.readers
                .openers(listing.as_ref(), self.partition, self.batch_size, records)?;
        let counting = CountsToMetrics {
            table: Arc::clone(&self.table),
            counters: Arc::clone(&self.counters),
        };
        Ok(async move {
            let reader = PartitionReader::new(Feed::start(listing), openers);
            let batches = futures::stream::unfold(reader, PartitionReader::next_batch);
            // The counts go into the metrics when the shard's stream is
            // dropped: at its end, or when the task stops early.
            Ok(batches
                .map(move |batch| {
                    let _ = &counting;
                    batch.map_err(as_message)
                })
                .boxed())
        }
        .boxed())
    }
}

/// `error` as its message alone: Ballista sends a failed task's error to
/// the client as its `Debug` text, in which the client finds the message
/// of an `Execution` error. An I/O error stays as it is: Ballista retries
/// a task that failed on one.
fn as_message(error: DataFusionError) -> DataFusionError {
    if matches!(error.find_root(), DataFusionError::IoError(_)) {
        return error;
    }
    let message = match crate::error::Error::find(&error) {
        Some(flowsql) => flowsql.to_string(),
        None => match error.find_root() {
            DataFusionError::Execution(message) => message.clone(),
            root => root.to_string(),
        },
    };
    DataFusionError::Execution(message)
}

/// Moves a sharded table's new counts into a task's metrics when dropped.
/// A cluster's executors send a task's metrics to the scheduler when it
/// ends; the client sums them over the job.
struct CountsToMetrics {
    table: Arc<dyn ShardedTable>,
    counters: Arc<[Count]>,
}

impl Drop for CountsToMetrics {
    fn drop(&mut self) {
        let counts = self.table.new_counts();
        for ((_, value), counter) in counts.named().iter().zip(self.counters.iter()) {
            counter.add(*value as usize);
        }
    }
}
