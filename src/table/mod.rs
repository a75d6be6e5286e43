//! [`FlowLogTable`]: the DataFusion table over one or more delivery trees.
//!
//! The table decides *which* objects a query reads: it finds the `AWSLogs/`
//! folders of each LOCATION, lists only the folders the query's path and
//! time filters allow ([`listing`], [`prune`]) and turns keys into
//! path-column values ([`layout`]). The listing of day folders runs while
//! the objects are read ([`crate::scan::FlowLogScanExec`]).

mod folders_ahead;
mod header_sample;
pub(crate) mod layout;
mod listing;
mod partitions;
pub(crate) mod prune;
mod row_groups;
#[cfg(feature = "cluster")]
pub(crate) mod shards;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::physical_plan::FileScanConfigBuilder;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::cache::{CacheOptions, ObjectCache};
use crate::catalogue;
use crate::decode::record_filter::RecordFilter;
use crate::error::Error;
use crate::location;
use crate::report::ScanReport;
use crate::report::field_memory::FieldMemory;
use crate::scan::FlowLogScanExec;
use crate::scan::exec::ScanReaders;
use crate::scan::parquet::ParquetReading;
use crate::scan::text::{FlowLogSource, ReadSettings};
use listing::{Root, ScanListing, find_awslogs, holds_flow_logs, list_accounts};
use prune::{PathPredicate, TimeWindow, is_path_filter};

/// How a [`FlowLogTable`] lists and reads.
#[derive(Debug, Clone)]
pub struct FlowLogOptions {
    /// Use filters to skip folders, files and lines (see
    /// "What a query reads" in the README). Off, every object is listed and read, every
    /// line becomes a row, and DataFusion applies every filter itself (the
    /// answer is the same; tests compare the two).
    pub pruning: bool,
    /// A malformed line fails the query, naming the object and line.
    pub strict: bool,
    /// A corrupt, truncated, empty or header-less object is given up on
    /// with a warning (records read before the fault are kept) instead of
    /// failing the query.
    pub skip_bad_objects: bool,
    /// How far (seconds) a record's `start` or `end` may lie from the
    /// 5-minute time in its file name: the aggregation interval (up to 10
    /// minutes), the 5-minute bucket, clock lag and late delivery.
    pub time_slack_seconds: i64,
    /// The longest bounded date range whose day folders are visited
    /// directly instead of being discovered by listing.
    pub max_enumerated_days: usize,
    /// Listing requests in flight at once: a discovery's folder listings
    /// (accounts' regions, years, months, days) share this many, and so do
    /// the day folders' object listings.
    pub listing_concurrency: usize,
    /// How `s3://` locations are reached.
    pub s3: location::S3Options,
    /// A folder where header fields that no flow-log version documents
    /// are remembered, per table, when a query meets them, so that the
    /// next opening of the same locations has columns for them. `None`:
    /// such fields are only named in the scan report's warnings. (Opening
    /// a tree of more than a few accounts and regions reads no object, so
    /// it cannot find them itself.)
    pub field_memory: Option<PathBuf>,
    /// The local cache of decoded text objects: where it is and how large
    /// it may grow. `None`: every object is read from its source.
    pub cache: Option<CacheOptions>,
}

impl Default for FlowLogOptions {
    fn default() -> Self {
        Self {
            pruning: true,
            strict: false,
            skip_bad_objects: false,
            time_slack_seconds: 3600,
            max_enumerated_days: 3660,
            listing_concurrency: 16,
            s3: location::S3Options::default(),
            field_memory: None,
            cache: None,
        }
    }
}

/// A DataFusion table over flow logs delivered to S3 (or a local copy).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::common::Result<()> {
/// use std::sync::Arc;
/// use datafusion::prelude::SessionContext;
/// use flowsql::{FlowLogOptions, FlowLogTable};
///
/// let ctx = SessionContext::new();
/// let location = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bucket/flow-logs");
/// let table = FlowLogTable::try_new(&ctx.runtime_env(), &[location], FlowLogOptions::default()).await?;
/// ctx.register_table("vpc_flow_logs", Arc::new(table))?;
/// let batches = ctx
///     .sql("SELECT count(*) FROM vpc_flow_logs WHERE action = 'REJECT'")
///     .await?
///     .collect()
///     .await?;
/// assert_eq!(batches[0].num_rows(), 1);
/// # Ok(())
/// # }
/// ```
pub struct FlowLogTable {
    roots: Vec<Root>,
    /// Each LOCATION's store and folder, which nothing may write into.
    locations: Vec<(
        datafusion::execution::object_store::ObjectStoreUrl,
        object_store::path::Path,
    )>,
    /// The header fields with columns that the catalogue does not know.
    extra: Vec<String>,
    table_schema: TableSchema,
    options: FlowLogOptions,
    report: Arc<ScanReport>,
    cache: Option<Arc<ObjectCache>>,
    notes: Vec<String>,
    /// Scans are cut into shards for a cluster (the table a cluster's
    /// scheduler reads from a plan).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    sharded: bool,
}

impl fmt::Debug for FlowLogTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowLogTable")
            .field(
                "roots",
                &self
                    .roots
                    .iter()
                    .map(|r| r.awslogs.to_string())
                    .collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The table's columns: every documented field, then `extra`, then the
/// path columns.
fn table_schema(extra: &[String]) -> TableSchema {
    TableSchema::builder(catalogue::file_schema(extra))
        .with_table_partition_cols(catalogue::path_fields())
        .build()
}

/// The remembered header fields that become columns: those the catalogue
/// does not know, once per column name, and none that would shadow a path
/// column.
fn extra_columns(tokens: Vec<String>) -> Vec<String> {
    let mut extra: Vec<String> = Vec::new();
    for token in tokens {
        let name = catalogue::column_name(&token);
        let repeated = extra.iter().any(|e| catalogue::column_name(e) == name);
        if catalogue::can_be_extra_column(&token) && !repeated {
            extra.push(token);
        }
    }
    extra
}

impl FlowLogTable {
    /// Opens the delivery trees at `locations` (`s3://bucket[/prefix]` or
    /// local folders, each the folder above `AWSLogs/`, `AWSLogs/` itself, or
    /// a folder whose subfolders hold `AWSLogs/`) as one table.
    ///
    /// The columns are every documented flow-log field, plus the fields
    /// the catalogue does not know that earlier queries met (see
    /// [`FlowLogOptions::field_memory`]) or, in a tree of a few accounts
    /// and regions, that the newest day of each shows, plus the path
    /// columns. Opening a big tree costs a few listings whatever it holds:
    /// finding `AWSLogs/`, its accounts, and one account's regions.
    pub async fn try_new(
        runtime: &RuntimeEnv,
        locations: &[impl AsRef<str>],
        options: FlowLogOptions,
    ) -> Result<Self> {
        if locations.is_empty() {
            return Err(Error::NoLocation.into());
        }
        let concurrency = options.listing_concurrency.max(1);
        let memory = options
            .field_memory
            .as_ref()
            .map(|folder| Arc::new(FieldMemory::open(folder, locations)));
        let mut tokens = memory.as_ref().map(|m| m.fields()).unwrap_or_default();
        let report = Arc::new(ScanReport::remembering_fields(memory));
        let mut roots = Vec::new();
        let mut folders = Vec::new();
        // Each root's accounts, listed once for the sample and the check.
        let mut accounts = Vec::new();
        // Each location as the user named it, and its roots' indexes.
        let mut named = Vec::new();
        let mut notes = Vec::new();
        for location in locations {
            let location = location::resolve(runtime, location.as_ref(), &options.s3).await?;
            notes.extend(location.notes.iter().cloned());
            folders.push((location.url.clone(), location.prefix.clone()));
            let first = roots.len();
            for root in find_awslogs(&location, &report, concurrency).await? {
                accounts.push(list_accounts(&root, &PathPredicate::empty()).await?);
                roots.push(root);
            }
            named.push((location.original.clone(), first..roots.len()));
        }
        let mut table = Self {
            roots,
            locations: folders,
            extra: Vec::new(),
            table_schema: table_schema(&[]),
            options,
            report,
            cache: None,
            notes,
            sharded: false,
        };
        if let Some(cache) = &table.options.cache {
            match table.cache_unusable(&cache.folder) {
                Some(why) => table.notes.push(format!(
                    "the local cache is off: its folder {} {why}",
                    cache.folder.display()
                )),
                None => table.cache = Some(Arc::new(ObjectCache::new(cache))),
            }
        }
        // After the cache is set up: a sampled object it holds is not read.
        let sample = header_sample::sample_unknown_fields(
            &table.roots,
            &accounts,
            &table.options,
            &table.report,
            table.cache.as_deref(),
        )
        .await?;
        // A location the sample found no flow-log object in (a big tree is
        // not sampled) is searched for one, or refused.
        for (original, indexes) in named {
            let mut any = indexes.clone().any(|i| sample.found[i]);
            for i in indexes {
                if any {
                    break;
                }
                any = holds_flow_logs(&table.roots[i], &accounts[i], concurrency).await?;
            }
            if !any {
                return Err(location::location_error(
                    &original,
                    "holds no flow-log files: no AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{MM}/{dd}/ folder with .log.gz or .log.parquet objects".to_string(),
                ));
            }
        }
        tokens.extend(sample.unknown);
        table.extra = extra_columns(tokens);
        table.table_schema = table_schema(&table.extra);
        Ok(table)
    }

    /// What the user should know about how the locations are reached (for
    /// example a region corrected to the bucket's own).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The counters and malformed-line examples of this table's scans.
    pub fn report(&self) -> Arc<ScanReport> {
        Arc::clone(&self.report)
    }

    /// The LOCATION (as a user names it) that a conversion writing below
    /// `prefix` of the store at `url` would write into, or whose folder it
    /// would hold, if any.
    pub(crate) fn overlapping_location(
        &self,
        url: &datafusion::execution::object_store::ObjectStoreUrl,
        prefix: &object_store::path::Path,
    ) -> Option<String> {
        self.locations
            .iter()
            .find(|(location_url, location)| {
                location_url == url
                    && (prefix.prefix_matches(location) || location.prefix_matches(prefix))
            })
            .map(|(url, location)| crate::scan::text::object_display(url, location))
    }

    /// Why the cache cannot live in `folder`, if it cannot: it lies in a
    /// local LOCATION (flowsql never writes to one), or cannot be made.
    fn cache_unusable(&self, folder: &std::path::Path) -> Option<String> {
        let absolute = match std::path::absolute(folder) {
            Ok(absolute) => absolute,
            Err(e) => return Some(format!("cannot be resolved: {e}")),
        };
        if let Some(location) = self.local_location_holding(&absolute) {
            return Some(format!(
                "lies in the LOCATION {location}, and flowsql never writes to a LOCATION"
            ));
        }
        match std::fs::create_dir_all(&absolute) {
            Ok(()) => None,
            Err(e) => Some(format!("cannot be made: {e}")),
        }
    }

    /// The local LOCATION that holds the absolute `folder`, if one does
    /// (or if where it leads cannot be told).
    fn local_location_holding(&self, folder: &std::path::Path) -> Option<String> {
        // The folder may not exist yet: its nearest existing ancestor,
        // resolved (links, `..`), then the rest of it.
        let mut existing = folder;
        let mut rest = Vec::new();
        let resolved = loop {
            if let Ok(resolved) = std::fs::canonicalize(existing) {
                break resolved;
            }
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent;
                }
                _ => return Some("(where it leads cannot be told)".to_string()),
            }
        };
        let absolute = rest
            .iter()
            .rev()
            .fold(resolved, |path, part| path.join(part));
        let segments: Vec<String> = absolute
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let folder = object_store::path::Path::from_iter(segments);
        let local = datafusion::execution::object_store::ObjectStoreUrl::local_filesystem();
        self.overlapping_location(&local, &folder)
    }

    /// The options the table was opened with.
    pub fn options(&self) -> &FlowLogOptions {
        &self.options
    }
}

#[async_trait]
impl TableProvider for FlowLogTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.table_schema.table_schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if !self.options.pruning {
                    TableProviderFilterPushDown::Unsupported
                } else if is_path_filter(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        // The LIMIT above the scan stops it by dropping its streams.
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        #[cfg(feature = "cluster")]
        if self.sharded {
            return self.sharded_scan(state, projection, filters).await;
        }
        self.build_scan(state, projection, filters, self.options.pruning)
    }
}

impl FlowLogTable {
    /// The scan of the objects whose path columns pass `filters`, listed
    /// with them whatever [`FlowLogOptions::pruning`] says: a conversion
    /// chooses its objects by them.
    pub(crate) fn conversion_scan(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.build_scan(state, None, filters, true)
    }

    fn build_scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        pruning: bool,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters = ScanFilters::try_new(
            state,
            filters,
            pruning,
            &self.table_schema,
            self.options.time_slack_seconds,
        )?;
        let target_partitions = state.config_options().execution.target_partitions.max(1);
        let options = FlowLogOptions {
            pruning,
            ..self.options.clone()
        };
        let settings = self.read_settings();
        let readers = scan_readers(
            &self.roots,
            &self.table_schema,
            &settings,
            projection,
            &filters,
        )?;
        let listing = ScanListing::new(
            self.roots.clone(),
            filters.predicate,
            filters.window,
            options,
            Arc::clone(&self.report),
        );
        Ok(Arc::new(FlowLogScanExec::try_new(
            Arc::new(listing),
            readers.configs,
            readers.parquet,
            filters.record_filter,
            target_partitions,
        )?))
    }

    fn read_settings(&self) -> ReadSettings {
        ReadSettings {
            strict: self.options.strict,
            skip_bad_objects: self.options.skip_bad_objects,
            report: Arc::clone(&self.report),
            cache: self.cache.clone(),
        }
    }
}

/// What a scan's filters become: the path predicate and time window that
/// prune the listing, the record filter the decoder runs on each line,
/// and the predicate that prunes Parquet row groups.
pub(crate) struct ScanFilters {
    predicate: PathPredicate,
    window: TimeWindow,
    record_filter: Arc<RecordFilter>,
    parquet_predicate: Option<Arc<dyn datafusion::physical_plan::PhysicalExpr>>,
}

impl ScanFilters {
    /// The pruning `filters` allow; none when `pruning` is off.
    fn try_new(
        state: &dyn Session,
        filters: &[Expr],
        pruning: bool,
        table_schema: &TableSchema,
        time_slack_seconds: i64,
    ) -> Result<Self> {
        if !pruning {
            return Ok(Self {
                predicate: PathPredicate::try_new(state, &[])?,
                window: TimeWindow::ALL,
                record_filter: Arc::default(),
                parquet_predicate: None,
            });
        }
        Ok(Self {
            predicate: PathPredicate::try_new(state, filters)?,
            window: TimeWindow::from_filters(filters, time_slack_seconds),
            record_filter: Arc::new(RecordFilter::from_filters(
                filters,
                table_schema.file_schema(),
            )),
            parquet_predicate: row_groups::parquet_predicate(
                state,
                filters,
                table_schema.table_schema(),
                table_schema.file_schema(),
            )?,
        })
    }
}

/// The readers of `roots`' objects (text and Parquet, one each per root)
/// for `projection` of the table's columns.
fn scan_readers(
    roots: &[Root],
    table_schema: &TableSchema,
    settings: &ReadSettings,
    projection: Option<&Vec<usize>>,
    filters: &ScanFilters,
) -> Result<ScanReaders> {
    let configs = roots
        .iter()
        .map(|root| {
            let source = FlowLogSource::new(table_schema.clone(), settings.clone())
                .with_record_filter(Arc::clone(&filters.record_filter));
            Ok(
                FileScanConfigBuilder::new(root.url.clone(), Arc::new(source))
                    .with_projection_indices(projection.cloned())?
                    .build(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let parquet = roots
        .iter()
        .map(|root| {
            ParquetReading::try_new(
                root.url.clone(),
                table_schema.clone(),
                projection,
                filters.parquet_predicate.clone(),
                settings.clone(),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ScanReaders { configs, parquet })
}
