//! How one Parquet object becomes record batches: DataFusion's Parquet
//! reader (its `ParquetSource`, one object at a time through the morsel
//! API), with flowsql's rules around it:
//!
//! - columns bind by name; a field the object lacks is NULL, and a column
//!   the table does not have is named in the scan report ([`ColumnBinding`]);
//! - an integer column of another width is widened, or narrowed with a
//!   check of every value; any other type than the table's is an error
//!   naming the object and the column;
//! - `-` in a string column is NULL, as in text objects;
//! - on S3 an object up to [`MAX_WHOLE_OBJECT`] is fetched whole, in one
//!   GET, when the query reads any of its columns; otherwise (a `count(*)`,
//!   a large object, a local file) only the footer and the needed column
//!   chunks are read, local files directly rather than through the object
//!   store's blocking-thread reads;
//! - a scan that reads no record column (`count(*)`, path columns only)
//!   reads each footer and nothing else, past DataFusion's reader;
//! - a bad object (not Parquet, truncated, corrupt) is a [`Error::BadObject`],
//!   which [`ReadSettings::skip_bad_objects`] passes over.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, RecordBatch, RecordBatchOptions, Scalar, StringViewArray,
};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::nullif;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::{
    DefaultParquetFileReaderFactory, ParquetAccessPlan, ParquetFileReaderFactory,
};
use datafusion::datasource::physical_plan::{
    FileOpenFuture, FileOpener, FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader, ParquetStatisticsPolicy,
};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet};
use datafusion_datasource::morsel::{Morsel, MorselPlanner, Morselizer};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::ObjectStore;
use object_store::path::Path;

use super::row_group_pruning::RowGroupPruning;
use super::text::{ReadSettings, object_display, unreadable};
use crate::catalogue;
use crate::error::Error;
use crate::report::ScanReport;

/// The largest object fetched whole (one GET) when a query reads columns.
/// AWS's 5-minute objects are far smaller; a bigger object is read by
/// column chunk, so only the columns a query needs are fetched.
pub(crate) const MAX_WHOLE_OBJECT: u64 = 16 << 20;

/// Footer bytes fetched with the first request of an object not read
/// whole; a flow-log object's footer (a few dozen columns, one row group
/// per 5 minutes) fits, so its metadata is one GET.
const FOOTER_HINT_BYTES: usize = 16 * 1024;

/// The Parquet half of a scan over one root: DataFusion's `ParquetSource`
/// with the scan's projection and the filters that can prune row groups.
#[derive(Debug, Clone)]
pub(crate) struct ParquetReading {
    config: FileScanConfig,
    settings: ReadSettings,
    /// The query reads at least one column of the objects (not only their
    /// row counts or path columns).
    reads_columns: bool,
    /// Which row groups may hold passing rows, from the footer.
    pruning: Option<Arc<RowGroupPruning>>,
}

impl ParquetReading {
    /// Reads the columns `projection` picks of `table_schema` (record
    /// columns, then path columns), pruning row groups with
    /// `predicate` (which must hold for every row that a `-` string read as
    /// NULL could let through: see [`crate::table`]'s choice of filters).
    pub(crate) fn try_new(
        url: ObjectStoreUrl,
        table_schema: datafusion::datasource::table_schema::TableSchema,
        projection: Option<&Vec<usize>>,
        predicate: Option<Arc<dyn PhysicalExpr>>,
        settings: ReadSettings,
    ) -> Result<Self> {
        let record_columns = table_schema.file_schema().fields().len();
        let reads_columns = match projection {
            Some(indices) => indices.iter().any(|i| *i < record_columns),
            None => true,
        };
        // No page index and no bloom filters: a flow-log object holds five
        // minutes of one flow log, which row-group statistics already
        // summarise, and looking for either costs each object time.
        let source = ParquetSource::new(table_schema)
            .with_metadata_size_hint(FOOTER_HINT_BYTES)
            .with_enable_page_index(false)
            .with_bloom_filter_on_read(false);
        // Row groups are pruned by the predicate here, once per column
        // layout rather than by DataFusion's reader once per object; rows
        // are filtered above the scan (DataFusion's late row filter
        // measured slower on flow logs: benches/RESULTS.md).
        let pruning = predicate.map(|predicate| {
            Arc::new(RowGroupPruning::new(
                predicate,
                Arc::clone(source.table_schema().file_schema()),
            ))
        });
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_projection_indices(projection.cloned())?
            .build();
        Ok(Self {
            config,
            settings,
            reads_columns,
            pruning,
        })
    }

    /// The reader's metrics (row groups pruned, bytes scanned, ...).
    pub(crate) fn metrics(&self) -> &ExecutionPlanMetricsSet {
        self.config.file_source().metrics()
    }

    /// The row-group predicate, for plan display.
    pub(crate) fn predicate(&self) -> Option<Arc<dyn PhysicalExpr>> {
        self.pruning.as_ref().map(|p| Arc::clone(p.predicate()))
    }

    /// An opener of this root's Parquet objects for one partition.
    pub(crate) fn opener(
        &self,
        store: Arc<dyn ObjectStore>,
        partition: usize,
        batch_size: usize,
        records_read: Count,
    ) -> Result<Arc<dyn FileOpener>> {
        // A local file's ranges cost no round trip: read only the column
        // chunks needed. A remote small object is fetched whole.
        let local = self.config.object_store_url.as_str().starts_with("file://");
        let bytes = Arc::new(ObjectBytesFactory {
            store: Arc::clone(&store),
            report: Arc::clone(&self.settings.report),
            whole: self.reads_columns && !local,
            local,
        });
        let source: &dyn std::any::Any = self.config.file_source().as_ref();
        let parquet = source
            .downcast_ref::<ParquetSource>()
            .ok_or_else(|| DataFusionError::Internal("not a ParquetSource".to_string()))?
            .clone()
            .with_parquet_file_reader_factory(Arc::clone(&bytes) as _);
        let source = FileSource::with_batch_size(&parquet, batch_size);
        let config = FileScanConfigBuilder::from(self.config.clone())
            .with_source(source)
            .build();
        let output = config.projected_schema()?;
        let table_schema = config.file_source().table_schema();
        let dash_columns = dash_columns(&output, table_schema.file_schema());
        // Only path columns (or none, for count(*)): the footer's row count
        // is all that is read.
        let rows_only = (!self.reads_columns).then(|| RowsOnly {
            path_columns: output
                .fields()
                .iter()
                .map(|f| {
                    table_schema
                        .table_partition_cols()
                        .iter()
                        .position(|p| p.name() == f.name())
                        .unwrap_or(usize::MAX)
                })
                .collect(),
            output: Arc::clone(&output),
            batch_size,
            bytes: Arc::clone(&bytes),
        });
        Ok(Arc::new(ParquetOpener {
            config,
            store,
            partition,
            settings: self.settings.clone(),
            dash_columns,
            records_read,
            rows_only,
            pruning: self.pruning.clone(),
            bytes,
        }))
    }
}

/// The output columns that are string record columns, where `-` means
/// "no value".
fn dash_columns(output: &SchemaRef, record_columns: &SchemaRef) -> Vec<usize> {
    output
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, field)| {
            matches!(field.data_type(), DataType::Utf8View)
                && record_columns.index_of(field.name()).is_ok()
        })
        .map(|(index, _)| index)
        .collect()
}

/// Opens Parquet objects of one root for one partition.
struct ParquetOpener {
    config: FileScanConfig,
    store: Arc<dyn ObjectStore>,
    partition: usize,
    settings: ReadSettings,
    dash_columns: Vec<usize>,
    records_read: Count,
    rows_only: Option<RowsOnly>,
    pruning: Option<Arc<RowGroupPruning>>,
    bytes: Arc<ObjectBytesFactory>,
}

/// A scan that reads no record column (`count(*)`, path columns only):
/// each object's rows are counted from its footer alone.
struct RowsOnly {
    output: SchemaRef,
    /// For each output column, its index among the path columns.
    path_columns: Vec<usize>,
    batch_size: usize,
    bytes: Arc<ObjectBytesFactory>,
}

impl RowsOnly {
    /// A batch of `n` rows of `file`'s path-column values.
    fn batch(&self, file: &PartitionedFile, n: usize) -> Result<RecordBatch> {
        let columns = self
            .path_columns
            .iter()
            .map(|&i| {
                let value = file.partition_values.get(i).ok_or_else(|| {
                    DataFusionError::Internal("a path column without a value".to_string())
                })?;
                value.to_array_of_size(n)
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.output),
            columns,
            &options,
        )?)
    }
}

impl FileOpener for ParquetOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let object = object_display(&self.config.object_store_url, &file.object_meta.location);
        let binding = Arc::new(ColumnBinding {
            object: object.clone(),
            report: Arc::clone(&self.settings.report),
            narrowed: Mutex::default(),
        });
        if self.rows_only.is_some() {
            return self.open_rows_only(file, object, binding);
        }
        let config = FileScanConfigBuilder::from(self.config.clone())
            .with_expr_adapter(Some(Arc::clone(&binding) as _))
            .build();
        let morselizer = config.file_source().create_morselizer(
            Arc::clone(&self.store),
            &config,
            self.partition,
        )?;
        let mut reader = ObjectReader {
            object,
            binding,
            settings: self.settings.clone(),
            dash_columns: self.dash_columns.clone(),
            records_read: self.records_read.clone(),
            records: 0,
            planners: Vec::new(),
            morsels: VecDeque::new(),
            current: None,
            done: false,
        };
        let empty = file.object_meta.size == 0;
        let footer = self.pruning.as_ref().map(|pruning| {
            let reader = self.bytes.create_reader(
                self.partition,
                file.clone(),
                Some(FOOTER_HINT_BYTES),
                self.config.file_source().metrics(),
            );
            (Arc::clone(pruning), reader)
        });
        let logical = Arc::clone(self.config.file_source().table_schema().file_schema());
        Ok(async move {
            reader.settings.report.object_opened();
            let started = if empty {
                Err(Fault::Bad(EMPTY.to_string()))
            } else {
                // The footer is read here, in the task that opens the object
                // ahead of its turn.
                match footer {
                    Some((pruning, footer_reader)) => {
                        let binding = Arc::clone(&reader.binding);
                        let pruned = match footer_reader {
                            Ok(footer_reader) => {
                                prune(file, &pruning, footer_reader, &binding, &logical).await
                            }
                            Err(e) => Err(fault(&binding.object, &binding, e)),
                        };
                        match pruned {
                            Ok(Some(file)) => reader.start(&*morselizer, file).await,
                            // No row group can hold a passing row: read nothing.
                            Ok(None) => Ok(()),
                            Err(fault) => Err(fault),
                        }
                    }
                    None => reader.start(&*morselizer, file).await,
                }
            };
            if let Err(fault) = started {
                reader.give_up(fault)?;
            }
            Ok(futures::stream::try_unfold(reader, ObjectReader::next_batch).boxed())
        }
        .boxed())
    }
}

/// Reads `file`'s footer with `footer_reader` and judges its row groups by
/// `pruning`: `None` when none can hold a passing row (its columns are
/// still checked, as a read would), else the file with the row groups to
/// skip and the footer read, which DataFusion's reader then takes from it.
async fn prune(
    mut file: PartitionedFile,
    pruning: &RowGroupPruning,
    mut footer_reader: Box<dyn AsyncFileReader + Send>,
    binding: &ColumnBinding,
    logical: &SchemaRef,
) -> Result<Option<PartitionedFile>, Fault> {
    let metadata = footer_reader
        .get_metadata(None)
        .await
        .map_err(|e| fault(&binding.object, binding, e.into()))?;
    let keep = pruning.row_groups(&metadata);
    if let Some(keep) = &keep {
        if !keep.iter().any(|k| *k) {
            check_columns(&metadata, logical, binding)?;
            return Ok(None);
        }
        if keep.iter().any(|k| !*k) {
            let mut plan = ParquetAccessPlan::new_all(keep.len());
            for (index, _) in keep.iter().enumerate().filter(|(_, k)| !**k) {
                plan.skip(index);
            }
            file.extensions.insert(plan);
        }
    }
    file.extensions.insert(Arc::new(ReadFooter {
        metadata,
        reader: Mutex::new(Some(footer_reader)),
    }));
    Ok(Some(file))
}

/// Checks the columns of the object `metadata` describes as a read of it
/// would (unknown columns named, unreadable types refused), where its rows
/// are not read.
fn check_columns(
    metadata: &ParquetMetaData,
    logical: &SchemaRef,
    binding: &ColumnBinding,
) -> Result<(), Fault> {
    let file_metadata = metadata.file_metadata();
    let physical = parquet_to_arrow_schema(
        file_metadata.schema_descr(),
        file_metadata.key_value_metadata(),
    )
    .map_err(|e| fault(&binding.object, binding, e.into()))?;
    binding
        .check(logical, &physical)
        .map_err(|e| fault(&binding.object, binding, e))
}

/// An object's footer, read to prune its row groups, and the reader that
/// read it (holding the whole object where it was fetched whole): the
/// reader DataFusion's Parquet reader gets for the object.
struct ReadFooter {
    metadata: Arc<ParquetMetaData>,
    reader: Mutex<Option<Box<dyn AsyncFileReader + Send>>>,
}

impl ReadFooter {
    fn take_reader(&self) -> Option<Box<dyn AsyncFileReader + Send>> {
        let reader = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(Box::new(WithFooter {
            metadata: Arc::clone(&self.metadata),
            inner: reader,
        }))
    }
}

/// A reader whose footer is already read.
struct WithFooter {
    metadata: Arc<ParquetMetaData>,
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for WithFooter {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, ParquetError>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        _: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        futures::future::ready(Ok(Arc::clone(&self.metadata))).boxed()
    }
}

impl ParquetOpener {
    /// Opens an object of which only the row count is needed: one read of
    /// its footer (statistics left undecoded), whose columns are still
    /// checked as a full read would.
    fn open_rows_only(
        &self,
        file: PartitionedFile,
        object: String,
        binding: Arc<ColumnBinding>,
    ) -> Result<FileOpenFuture> {
        let rows_only = self.rows_only.as_ref().expect("rows-only scan");
        let mut reader = rows_only.bytes.create_reader(
            self.partition,
            file.clone(),
            None,
            self.config.file_source().metrics(),
        )?;
        let output = Arc::clone(&rows_only.output);
        let logical = Arc::clone(self.config.file_source().table_schema().file_schema());
        let batches = RowsOnly {
            output: Arc::clone(&output),
            path_columns: rows_only.path_columns.clone(),
            batch_size: rows_only.batch_size,
            bytes: Arc::clone(&rows_only.bytes),
        };
        let settings = self.settings.clone();
        let records_read = self.records_read.clone();
        let size = file.object_meta.size;
        Ok(async move {
            settings.report.object_opened();
            let counted = async {
                if size == 0 {
                    return Err(Fault::Bad(EMPTY.to_string()));
                }
                let options = ArrowReaderOptions::new()
                    .with_column_stats_policy(ParquetStatisticsPolicy::SkipAll)
                    .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll)
                    .with_encoding_stats_policy(ParquetStatisticsPolicy::SkipAll);
                let metadata = reader
                    .get_metadata(Some(&options))
                    .await
                    .map_err(|e| fault(&object, &binding, e.into()))?;
                check_columns(&metadata, &logical, &binding)?;
                // The row groups' counts, not the file's own field: they
                // are what a full read would return.
                let rows: i64 = metadata
                    .row_groups()
                    .iter()
                    .map(|g| g.num_rows().max(0))
                    .sum();
                Ok(rows as u64)
            }
            .await;
            let rows = match counted {
                Ok(rows) => {
                    settings.report.add_records(rows);
                    records_read.add(rows as usize);
                    settings.report.object_finished();
                    rows
                }
                Err(fault) => {
                    give_up(&object, &settings, 0, fault)?;
                    0
                }
            };
            // Made as they are taken: a footer's count is not memory.
            let sizes = (0..rows)
                .step_by(batches.batch_size.max(1))
                .map(move |start| (rows - start).min(batches.batch_size.max(1) as u64));
            let made = sizes.map(move |n| batches.batch(&file, n as usize));
            Ok(futures::stream::iter(made).boxed())
        }
        .boxed())
    }
}

const EMPTY: &str = "is empty (0 bytes); a Parquet object is at least 12 bytes";

/// The state of one Parquet object being read.
struct ObjectReader {
    object: String,
    binding: Arc<ColumnBinding>,
    settings: ReadSettings,
    dash_columns: Vec<usize>,
    records_read: Count,
    records: u64,
    /// Work DataFusion's reader has planned but not yet split into morsels.
    planners: Vec<Box<dyn MorselPlanner>>,
    /// Decodable pieces (row groups), in order.
    morsels: VecDeque<Box<dyn Morsel>>,
    current: Option<BoxStream<'static, Result<RecordBatch>>>,
    done: bool,
}

/// Why reading a Parquet object stopped.
enum Fault {
    /// The object is bad: skippable.
    Bad(String),
    /// Anything else (the store failed, flowsql's own error).
    Failed(DataFusionError),
}

impl ObjectReader {
    /// Starts DataFusion's reading of `file`: its footer, and the first
    /// morsel.
    async fn start(
        &mut self,
        morselizer: &dyn Morselizer,
        file: PartitionedFile,
    ) -> Result<(), Fault> {
        let planner = morselizer.plan_file(file).map_err(|e| self.fault(e))?;
        self.planners.push(planner);
        self.plan_until_morsel().await
    }

    async fn next_batch(mut self) -> Result<Option<(RecordBatch, Self)>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let step = match &mut self.current {
                Some(batches) => match batches.next().await {
                    Some(Ok(batch)) => match self.received(batch) {
                        Ok(batch) => return Ok(Some((batch, self))),
                        Err(e) => Err(self.fault(e)),
                    },
                    Some(Err(e)) => Err(self.fault(e)),
                    None => {
                        self.current = None;
                        Ok(())
                    }
                },
                None => match self.morsels.pop_front() {
                    Some(morsel) => {
                        self.current = Some(morsel.into_stream());
                        Ok(())
                    }
                    None if self.planners.is_empty() => {
                        self.done = true;
                        self.settings.report.object_finished();
                        Ok(())
                    }
                    None => self.plan_until_morsel().await,
                },
            };
            if let Err(fault) = step {
                self.give_up(fault)?;
            }
        }
    }

    /// Runs DataFusion's planning (footer, pruning, I/O for row groups)
    /// until a morsel is ready or nothing is left to plan.
    async fn plan_until_morsel(&mut self) -> Result<(), Fault> {
        while self.morsels.is_empty() {
            let Some(planner) = self.planners.pop() else {
                return Ok(());
            };
            let Some(mut plan) = planner.plan().map_err(|e| self.fault(e))? else {
                continue;
            };
            self.morsels.extend(plan.take_morsels());
            let ready = plan.take_ready_planners();
            if let Some(pending) = plan.take_pending_planner() {
                let planner = pending.await.map_err(|e| self.fault(e))?;
                self.planners.push(planner);
            }
            self.planners.extend(ready.into_iter().rev());
        }
        Ok(())
    }

    /// Counts a batch's records and reads `-` strings as NULL.
    fn received(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows() as u64;
        self.records += rows;
        self.settings.report.add_records(rows);
        self.records_read.add(rows as usize);
        if self.dash_columns.is_empty() {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        for &index in &self.dash_columns {
            columns[index] = dash_as_null(&columns[index])?;
        }
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    /// Classifies an error DataFusion's reader raised for this object.
    fn fault(&self, error: DataFusionError) -> Fault {
        fault(&self.object, &self.binding, error)
    }

    /// Fails on `fault`, or, for a bad object when bad objects are
    /// skipped, reports it and ends this object's batches.
    fn give_up(&mut self, fault: Fault) -> Result<()> {
        self.done = true;
        self.current = None;
        self.planners.clear();
        self.morsels.clear();
        give_up(&self.object, &self.settings, self.records, fault)
    }
}

/// Classifies an error DataFusion's reader raised for `object`.
fn fault(object: &str, binding: &ColumnBinding, error: DataFusionError) -> Fault {
    match Error::find(&error) {
        // Raised by the column binding, which knows the object is bad.
        Some(Error::BadObject { reason, .. }) => return Fault::Bad(reason.clone()),
        Some(_) => return Fault::Failed(error),
        None => {}
    }
    if let Some(store_error) = store_error(&error) {
        return Fault::Failed(unreadable(object, store_error));
    }
    if matches!(
        error.find_root(),
        DataFusionError::ResourcesExhausted(_) | DataFusionError::ExecutionJoin(_)
    ) {
        // Not the object's fault: never passed over as a bad object.
        return Fault::Failed(error);
    }
    let narrowed = binding.narrowed.lock().unwrap_or_else(|e| e.into_inner());
    let message = error.to_string();
    if message.contains("Cast error") && !narrowed.is_empty() {
        return Fault::Bad(format!(
            "has a value out of range in column {}: {}",
            narrowed.join(", "),
            message.trim_start_matches("Arrow error: ")
        ));
    }
    Fault::Bad(format!(
        "is not a readable Parquet flow-log object: {message}"
    ))
}

/// Fails on `fault`, or, for a bad object when bad objects are skipped,
/// reports it (with the `records` read before it) and goes on.
fn give_up(object: &str, settings: &ReadSettings, records: u64, fault: Fault) -> Result<()> {
    match fault {
        Fault::Failed(e) => Err(e),
        Fault::Bad(reason) => {
            let error = Error::BadObject {
                object: object.to_string(),
                reason,
            };
            if !settings.skip_bad_objects {
                return Err(error.into());
            }
            settings
                .report
                .skipped_object(object, error.to_string(), records);
            Ok(())
        }
    }
}

/// `array` with every `-` made NULL (no copy when there is none).
fn dash_as_null(array: &ArrayRef) -> Result<ArrayRef> {
    // A short string's view holds it inline, zero-padded, after its length:
    // comparing whole views finds a `-` without a comparison kernel, and
    // most chunks hold none.
    const DASH_VIEW: u128 = 1 | ((b'-' as u128) << 32);
    if let Some(views) = array.as_any().downcast_ref::<StringViewArray>()
        && !views.views().contains(&DASH_VIEW)
    {
        return Ok(Arc::clone(array));
    }
    let dash = Scalar::new(StringViewArray::from(vec!["-"]));
    let is_dash = eq(array, &dash)?;
    if is_dash.true_count() == 0 {
        return Ok(Arc::clone(array));
    }
    Ok(nullif(array.as_ref(), &is_dash)?)
}

/// The object-store error behind `error`, if a fetch is what failed.
fn store_error(error: &DataFusionError) -> Option<&object_store::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(store) = e.downcast_ref::<object_store::Error>() {
            return Some(store);
        }
        if let Some(DataFusionError::ObjectStore(store)) = e.downcast_ref::<DataFusionError>() {
            return Some(store);
        }
        if let Some(ParquetError::External(inner)) = e.downcast_ref::<ParquetError>() {
            current = Some(inner.as_ref());
            continue;
        }
        current = e.source();
    }
    None
}

/// Binds an object's columns to the table's by name, per object: checks
/// their types, names columns the table lacks in the scan report, and
/// remembers which integer columns are narrowed (for the error if a value
/// does not fit).
#[derive(Debug)]
struct ColumnBinding {
    object: String,
    report: Arc<ScanReport>,
    narrowed: Mutex<Vec<String>>,
}

/// How a file column of one type is read into a table column of another.
#[derive(Debug, PartialEq, Eq)]
enum Conversion {
    /// Every value fits.
    Lossless,
    /// Each value is checked; one that does not fit is an error.
    Checked,
    /// Not read: the object is bad.
    Refused,
}

/// The documented rule for reading a file column typed `file` into a
/// table column typed `table`.
fn conversion(file: &DataType, table: &DataType) -> Conversion {
    use DataType::*;
    match (table, file) {
        (t, f) if t == f => Conversion::Lossless,
        (Int32, Int8 | Int16 | UInt8 | UInt16) => Conversion::Lossless,
        (Int32, Int64 | UInt32 | UInt64) => Conversion::Checked,
        (Int64, Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32) => Conversion::Lossless,
        (Int64, UInt64) => Conversion::Checked,
        (Utf8View, Utf8 | LargeUtf8) => Conversion::Lossless,
        // Bytes without a String annotation: checked to be UTF-8.
        (Utf8View, Binary | LargeBinary | BinaryView) => Conversion::Checked,
        // Numbers, times and booleans as their text (a column the catalogue
        // does not know is a string column whatever the writer chose).
        (Utf8View, f) if f.is_primitive() || *f == Boolean => Conversion::Lossless,
        _ => Conversion::Refused,
    }
}

/// How a table column's type is named to users (as in `\d`).
fn sql_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int32 => "int",
        DataType::Int64 => "bigint",
        _ => "string",
    }
}

impl PhysicalExprAdapterFactory for ColumnBinding {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        self.check(&logical_file_schema, &physical_file_schema)?;
        DefaultPhysicalExprAdapterFactory.create(logical_file_schema, physical_file_schema)
    }
}

impl ColumnBinding {
    /// Checks an object's columns (`physical_file_schema`) against the
    /// table's (`logical_file_schema`), reporting those the table lacks.
    fn check(
        &self,
        logical_file_schema: &SchemaRef,
        physical_file_schema: &datafusion::arrow::datatypes::Schema,
    ) -> Result<()> {
        let mut narrowed = Vec::new();
        for field in physical_file_schema.fields() {
            let Ok(table_field) = logical_file_schema.field_with_name(field.name()) else {
                // Named as a header token, as for text objects.
                self.report
                    .hidden_field(&self.object, &field.name().replace('_', "-"));
                continue;
            };
            match conversion(field.data_type(), table_field.data_type()) {
                Conversion::Lossless => {}
                Conversion::Checked => narrowed.push(format!("`{}`", field.name())),
                Conversion::Refused => {
                    return Err(Error::BadObject {
                        object: self.object.clone(),
                        reason: format!(
                            "has column `{}` of type {}, which flowsql does not read as {}",
                            field.name(),
                            field.data_type(),
                            sql_type(table_field.data_type())
                        ),
                    }
                    .into());
                }
            }
        }
        let documented = physical_file_schema
            .fields()
            .iter()
            .any(|f| catalogue::catalogue_column(f.name()).is_some());
        if !documented {
            let names: Vec<&str> = physical_file_schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            return Err(Error::BadObject {
                object: self.object.clone(),
                reason: format!(
                    "is not a flow-log object: its columns ({}) name no documented field",
                    catalogue::truncate_for_message(&names.join(", "))
                ),
            }
            .into());
        }
        self.report.fields_recorded(
            physical_file_schema
                .fields()
                .iter()
                .map(|f| f.name().as_str()),
        );
        *self.narrowed.lock().unwrap_or_else(|e| e.into_inner()) = narrowed;
        Ok(())
    }
}

/// Creates each object's byte source: the whole object in one GET when it
/// is small and columns are read, otherwise ranged reads.
#[derive(Debug)]
struct ObjectBytesFactory {
    store: Arc<dyn ObjectStore>,
    report: Arc<ScanReport>,
    /// Fetch objects up to [`MAX_WHOLE_OBJECT`] whole.
    whole: bool,
    /// The store is the local file system: read files directly.
    local: bool,
}

impl ParquetFileReaderFactory for ObjectBytesFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        if let Some(reader) = file
            .extensions
            .get::<Arc<ReadFooter>>()
            .and_then(|footer| footer.take_reader())
        {
            return Ok(reader);
        }
        let size = file.object_meta.size;
        if self.whole && size <= MAX_WHOLE_OBJECT {
            return Ok(Box::new(WholeObject {
                store: Arc::clone(&self.store),
                location: file.object_meta.location.clone(),
                size,
                body: None,
                report: Arc::clone(&self.report),
            }));
        }
        if self.local {
            let path = object_store::local::LocalFileSystem::new()
                .path_to_filesystem(&file.object_meta.location)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            return Ok(Box::new(LocalFile {
                path,
                file: None,
                size,
                report: Arc::clone(&self.report),
            }));
        }
        let ranged = DefaultParquetFileReaderFactory::new(Arc::clone(&self.store)).create_reader(
            partition_index,
            file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(CountedRanges {
            inner: ranged,
            size,
            report: Arc::clone(&self.report),
        }))
    }
}

/// An object fetched whole on first use; every range is a slice of it.
struct WholeObject {
    store: Arc<dyn ObjectStore>,
    location: Path,
    size: u64,
    body: Option<Bytes>,
    report: Arc<ScanReport>,
}

impl WholeObject {
    async fn body(&mut self) -> Result<Bytes, ParquetError> {
        if let Some(body) = &self.body {
            return Ok(body.clone());
        }
        let body = self
            .store
            .get_opts(&self.location, object_store::GetOptions::default())
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?
            .bytes()
            .await
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        if body.len() as u64 != self.size {
            return Err(ParquetError::General(format!(
                "the object is {} bytes, not the {} listed (it changed while read)",
                body.len(),
                self.size
            )));
        }
        self.report.add_compressed_bytes(body.len() as u64);
        self.body = Some(body.clone());
        Ok(body)
    }
}

impl AsyncFileReader for WholeObject {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        async move {
            let body = self.body().await?;
            if range.start > range.end || range.end > body.len() as u64 {
                return Err(ParquetError::EOF(format!(
                    "range {range:?} is past the end of a {}-byte object",
                    body.len()
                )));
            }
            Ok(body.slice(range.start as usize..range.end as usize))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        async move {
            let body = self.body().await?;
            let reader = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                .with_page_index_policy(PageIndexPolicy::Skip);
            Ok(Arc::new(reader.parse_and_finish(&body)?))
        }
        .boxed()
    }
}

/// A local file, its ranges read where they are asked for: a footer or a
/// column chunk from the page cache costs less than handing the read to
/// another thread, which the object store's local reads do.
struct LocalFile {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    report: Arc<ScanReport>,
}

impl LocalFile {
    fn read(&mut self, range: Range<u64>) -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        // A corrupt footer may ask for any range: never allocate past the file.
        if range.start > range.end || range.end > self.size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "range {range:?} is past the end of a {}-byte object",
                    self.size
                ),
            ));
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(std::fs::File::open(&self.path)?),
        };
        let mut buffer = vec![0u8; range.end.saturating_sub(range.start) as usize];
        file.read_exact_at(&mut buffer, range.start)?;
        self.report.add_compressed_bytes(buffer.len() as u64);
        Ok(Bytes::from(buffer))
    }
}

impl AsyncFileReader for LocalFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        let read = self.read(range).map_err(|e| {
            ParquetError::External(Box::new(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            }))
        });
        futures::future::ready(read).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        let size = self.size;
        read_footer(self, size, options)
    }
}

/// Reads the footer of the `size`-byte object behind `bytes` (and what
/// `options` ask for beside it), fetching [`FOOTER_HINT_BYTES`] first, so
/// the footer's bytes go through `bytes` and are counted there.
fn read_footer<'a, R: AsyncFileReader + Send>(
    bytes: &'a mut R,
    size: u64,
    options: Option<&'a ArrowReaderOptions>,
) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
    let mut reader = ParquetMetaDataReader::new()
        .with_metadata_options(options.map(|o| o.metadata_options().clone()))
        .with_prefetch_hint(Some(FOOTER_HINT_BYTES));
    if let Some(options) = options {
        reader = reader
            .with_column_index_policy(options.column_index_policy())
            .with_offset_index_policy(options.offset_index_policy());
    }
    async move { Ok(Arc::new(reader.load_and_finish(bytes, size).await?)) }.boxed()
}

/// DataFusion's ranged reader, counting the bytes it fetches (the footer
/// included, which it reads through this reader's `get_bytes`).
struct CountedRanges {
    inner: Box<dyn AsyncFileReader + Send>,
    size: u64,
    report: Arc<ScanReport>,
}

impl AsyncFileReader for CountedRanges {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, ParquetError>> {
        self.report
            .add_compressed_bytes(range.end.saturating_sub(range.start));
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, Result<Vec<Bytes>, ParquetError>> {
        let bytes: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        self.report.add_compressed_bytes(bytes);
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>, ParquetError>> {
        let size = self.size;
        read_footer(self, size, options)
    }
}

impl fmt::Debug for ParquetOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParquetOpener").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    #[test]
    fn conversions_widen_check_or_refuse() {
        use DataType::*;
        assert_eq!(conversion(&Int32, &Int64), Conversion::Lossless);
        assert_eq!(conversion(&Int64, &Int32), Conversion::Checked);
        assert_eq!(conversion(&UInt64, &Int64), Conversion::Checked);
        assert_eq!(conversion(&Utf8, &Utf8View), Conversion::Lossless);
        assert_eq!(conversion(&Binary, &Utf8View), Conversion::Checked);
        assert_eq!(conversion(&Utf8, &Int32), Conversion::Refused);
        assert_eq!(conversion(&Float64, &Int64), Conversion::Refused);
        assert_eq!(conversion(&Float64, &Utf8View), Conversion::Lossless);
        assert_eq!(conversion(&Boolean, &Utf8View), Conversion::Lossless);
        let list = List(Arc::new(datafusion::arrow::datatypes::Field::new(
            "x", Int32, true,
        )));
        assert_eq!(conversion(&list, &Utf8View), Conversion::Refused);
        assert_eq!(conversion(&Boolean, &Int32), Conversion::Refused);
    }

    #[test]
    fn dashes_become_null() {
        let array: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("-"),
            None,
            Some("ACCEPT"),
            Some("--"),
        ]));
        let out = dash_as_null(&array).unwrap();
        assert_eq!(out.null_count(), 2);
        assert!(out.is_null(0) && out.is_null(1) && out.is_valid(2) && out.is_valid(3));
        // Among long strings too; and an array without one is passed on as it is.
        let long: ArrayRef = Arc::new(StringViewArray::from(vec![
            "eni-0123456789abcdef0",
            "-",
            "eni-0123456789abcdef1",
        ]));
        let out = dash_as_null(&long).unwrap();
        assert!(out.is_valid(0) && out.is_null(1) && out.is_valid(2));
        let none: ArrayRef = Arc::new(StringViewArray::from(vec!["eni-0123456789abcdef0", "-1"]));
        assert!(Arc::ptr_eq(&dash_as_null(&none).unwrap(), &none));
    }
}
