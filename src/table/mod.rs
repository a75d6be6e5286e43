//! [`FlowLogTable`]: the DataFusion table over one or more delivery trees.
//!
//! The table decides *which* objects a query reads: it finds the `AWSLogs/`
//! folders of each LOCATION, lists only the folders the query's path and
//! time filters allow (delimiter listings for accounts, regions and, when
//! the date range is open, years/months/days; the days of a bounded range
//! are visited directly) and turns keys into path-column values. The
//! listing of day folders runs while the objects are read
//! ([`crate::scan::FlowLogScanExec`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub(crate) mod layout;
pub(crate) mod prune;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileScanConfigBuilder;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};

use crate::catalogue::{self, Header};
use crate::decode::record_filter::RecordFilter;
use crate::location::{self, Location};
use crate::report::ScanReport;
use crate::scan::FlowLogScanExec;
use crate::scan::text::{FlowLogSource, ReadSettings};
use crate::table::layout::{AWS_LOGS, AccountFolder, DatePart, KeyFacts, parse_key};
use crate::table::prune::{
    Level, PathPredicate, PathValues, TimeWindow, is_path_filter, partition_values,
};

/// How a [`FlowLogTable`] lists and reads.
#[derive(Debug, Clone)]
pub struct FlowLogOptions {
    /// Use filters to skip folders, files and lines (see
    /// [`crate::decode::record_filter`]). Off, every object is listed and read, every
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
    /// Listing requests in flight at once.
    pub listing_concurrency: usize,
    /// How `s3://` locations are reached.
    pub s3: location::S3Options,
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
        }
    }
}

/// One `AWSLogs/` folder in one store.
#[derive(Debug, Clone)]
struct Root {
    url: ObjectStoreUrl,
    store: Arc<dyn ObjectStore>,
    awslogs: Path,
    /// Where listings are counted.
    report: Arc<ScanReport>,
}

impl Root {
    /// The folders directly inside `prefix`, counted in the report.
    async fn child_folders(&self, prefix: &Path) -> Result<Vec<String>> {
        self.report.listed(prefix.as_ref(), true);
        child_folders(self.store.as_ref(), prefix).await
    }
}

/// An object the listing found, with what its key says.
#[derive(Debug, Clone)]
struct ListedObject {
    meta: ObjectMeta,
    facts: KeyFacts,
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
    table_schema: TableSchema,
    options: FlowLogOptions,
    report: Arc<ScanReport>,
    notes: Vec<String>,
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

impl FlowLogTable {
    /// Opens the delivery trees at `locations` (`s3://bucket[/prefix]` or
    /// local folders, each the folder above `AWSLogs/`, `AWSLogs/` itself, or
    /// a folder whose subfolders hold `AWSLogs/`) as one table.
    ///
    /// The columns are every documented flow-log field, plus any field the
    /// catalogue does not know that the newest day of each account and
    /// region shows in its headers, plus the path columns.
    pub async fn try_new(
        runtime: &RuntimeEnv,
        locations: &[impl AsRef<str>],
        options: FlowLogOptions,
    ) -> Result<Self> {
        if locations.is_empty() {
            return Err(DataFusionError::Configuration(
                "no LOCATION given: name an s3://bucket/prefix or a local folder holding AWSLogs/"
                    .to_string(),
            ));
        }
        let mut roots = Vec::new();
        let mut extra = Vec::new();
        let mut notes = Vec::new();
        let report = Arc::new(ScanReport::default());
        for location in locations {
            let location = location::resolve(runtime, location.as_ref(), &options.s3).await?;
            notes.extend(location.notes.iter().cloned());
            let found = find_awslogs(&location, &report).await?;
            if sample_unknown_fields(&found, &options, &mut extra).await? == 0 {
                return Err(DataFusionError::Configuration(format!(
                    "location `{}` holds no flow-log files: no AWSLogs/{{account}}/vpcflowlogs/{{region}}/{{yyyy}}/{{MM}}/{{dd}}/ folder with .log.gz objects",
                    location.original
                )));
            }
            roots.extend(found);
        }
        let table_schema = TableSchema::builder(catalogue::file_schema(&extra))
            .with_table_partition_cols(catalogue::path_fields())
            .build();
        Ok(Self {
            roots,
            table_schema,
            options,
            report,
            notes,
        })
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
        let (predicate, window, record_filter) = if self.options.pruning {
            (
                PathPredicate::try_new(state, filters)?,
                TimeWindow::from_filters(filters, self.options.time_slack_seconds),
                RecordFilter::from_filters(filters, self.table_schema.file_schema()),
            )
        } else {
            let everything = RecordFilter::default();
            (
                PathPredicate::try_new(state, &[])?,
                TimeWindow::ALL,
                everything,
            )
        };
        let record_filter = Arc::new(record_filter);
        let target_partitions = state.config_options().execution.target_partitions.max(1);
        let listing = ScanListing {
            roots: self.roots.clone(),
            predicate,
            window,
            options: self.options.clone(),
            report: Arc::clone(&self.report),
        };
        let settings = ReadSettings {
            strict: self.options.strict,
            skip_bad_objects: self.options.skip_bad_objects,
            report: Arc::clone(&self.report),
        };
        let configs = self
            .roots
            .iter()
            .map(|root| {
                let source = FlowLogSource::new(self.table_schema.clone(), settings.clone())
                    .with_record_filter(Arc::clone(&record_filter));
                Ok(
                    FileScanConfigBuilder::new(root.url.clone(), Arc::new(source))
                        .with_projection_indices(projection.cloned())?
                        .build(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(FlowLogScanExec::try_new(
            Arc::new(listing),
            configs,
            record_filter,
            target_partitions,
        )?))
    }
}

/// What one scan lists: the table's roots and the filters that prune them.
#[derive(Debug)]
pub(crate) struct ScanListing {
    roots: Vec<Root>,
    predicate: PathPredicate,
    window: TimeWindow,
    options: FlowLogOptions,
    report: Arc<ScanReport>,
}

/// One object to read: the index of its root and the file.
pub(crate) type FoundObject = (usize, PartitionedFile);

impl ScanListing {
    /// Where each root's objects are, by root index.
    pub(crate) fn store(&self, root: usize) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.roots[root].store)
    }

    /// Lists the objects the scan reads and sends each down `found` as soon
    /// as the listing of its day folder returns, so reading starts while
    /// later days are still being listed. A failed listing is sent as an
    /// error. Returns early once nobody receives.
    pub(crate) async fn run(&self, found: &tokio::sync::mpsc::Sender<Result<FoundObject>>) {
        if let Err(e) = self.send_all(found).await {
            let _ = found.send(Err(e)).await;
        }
    }

    async fn send_all(&self, found: &tokio::sync::mpsc::Sender<Result<FoundObject>>) -> Result<()> {
        let concurrency = self.options.listing_concurrency.max(1);
        for (index, root) in self.roots.iter().enumerate() {
            let folders = if self.options.pruning {
                day_folders(root, &self.predicate, &self.window, &self.options).await?
            } else {
                vec![root.awslogs.clone()]
            };
            let mut listings = futures::stream::iter(folders)
                .map(|folder| async move { list_objects(root, &folder).await })
                .buffered(concurrency);
            while let Some(objects) = listings.next().await {
                for file in self.to_read(objects?)? {
                    self.report.planned(1, file.object_meta.size);
                    if found.send(Ok((index, file))).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// The listed objects that the path filters and the time window keep.
    fn to_read(&self, objects: Vec<ListedObject>) -> Result<Vec<PartitionedFile>> {
        let values: Vec<PathValues> = objects.iter().map(|o| path_values(&o.facts)).collect();
        let keep = self.predicate.keep(Level::File, &values)?;
        Ok(objects
            .into_iter()
            .zip(values)
            .zip(keep)
            .filter(|((o, _), keep)| *keep && self.window.keeps_file_time(o.facts.file_time))
            .map(|((o, v), _)| {
                PartitionedFile::new_from_meta(o.meta).with_partition_values(partition_values(&v))
            })
            .collect())
    }

    /// Where the listing looks, for plan display: each root's `AWSLogs/`.
    pub(crate) fn roots_display(&self) -> Vec<String> {
        self.roots
            .iter()
            .map(|r| crate::scan::text::object_display(&r.url, &r.awslogs))
            .collect()
    }
}

/// The path-column values of a listed key.
fn path_values(facts: &KeyFacts) -> PathValues {
    PathValues {
        account: Some(facts.account.clone()),
        region: Some(facts.region.clone()),
        date: Some(facts.date),
        hour: Some(facts.hour),
        flow_log_id: Some(facts.flow_log_id.clone()),
        file_time: Some(facts.file_time),
    }
}

fn listing_error(
    store: &dyn ObjectStore,
    prefix: &Path,
    error: object_store::Error,
) -> DataFusionError {
    DataFusionError::Execution(format!(
        "cannot list `{prefix}` in {store}: {}",
        location::s3::explain(&error)
    ))
}

/// The names of the folders directly inside `prefix`.
async fn child_folders(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<String>> {
    let listing = store
        .list_with_delimiter(Some(prefix))
        .await
        .map_err(|e| listing_error(store, prefix, e))?;
    Ok(listing
        .common_prefixes
        .into_iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect())
}

fn join(base: &Path, relative: &str) -> Path {
    relative
        .split('/')
        .filter(|s| !s.is_empty())
        .fold(base.clone(), |path, part| path.clone().join(part))
}

/// Finds the `AWSLogs/` folders of a LOCATION: the LOCATION itself if it is
/// one, its `AWSLogs/` child, or else the `AWSLogs/` folders one level down
/// (a bucket whose flow logs sit under one or more prefixes).
async fn find_awslogs(location: &Location, report: &Arc<ScanReport>) -> Result<Vec<Root>> {
    let root = |awslogs: Path| Root {
        url: location.url.clone(),
        store: Arc::clone(&location.store),
        awslogs,
        report: Arc::clone(report),
    };
    if location.prefix.filename() == Some(AWS_LOGS) {
        return Ok(vec![root(location.prefix.clone())]);
    }
    let store = location.store.as_ref();
    let children = child_folders(store, &location.prefix).await?;
    if children.iter().any(|c| c == AWS_LOGS) {
        return Ok(vec![root(location.prefix.clone().join(AWS_LOGS))]);
    }
    let nested: Vec<Path> = futures::stream::iter(children)
        .map(|child| {
            let folder = location.prefix.clone().join(child.as_str());
            async move {
                let inner = child_folders(store, &folder).await?;
                Ok::<_, DataFusionError>(
                    inner
                        .iter()
                        .any(|c| c == AWS_LOGS)
                        .then(|| folder.join(AWS_LOGS)),
                )
            }
        })
        .buffered(16)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await?;
    if nested.is_empty() {
        return Err(DataFusionError::Configuration(format!(
            "location `{}` holds no flow logs: expected an AWSLogs/ folder in it (LOCATION/AWSLogs/{{account}}/vpcflowlogs/...) or in one of its subfolders",
            location.original
        )));
    }
    Ok(nested.into_iter().map(root).collect())
}

/// Every flow-log object below a root (pruning off).
async fn list_all(root: &Root) -> Result<Vec<ListedObject>> {
    list_objects(root, &root.awslogs).await
}

/// Every flow-log object below `prefix`, recursively.
async fn list_objects(root: &Root, prefix: &Path) -> Result<Vec<ListedObject>> {
    root.report.listed(prefix.as_ref(), false);
    let metas: Vec<ObjectMeta> = root
        .store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| listing_error(root.store.as_ref(), prefix, e))?;
    let base = root.awslogs.as_ref();
    Ok(metas
        .into_iter()
        .filter_map(|meta| {
            let relative = meta
                .location
                .as_ref()
                .strip_prefix(base)?
                .strip_prefix('/')?;
            let facts = parse_key(relative)?;
            Some(ListedObject { meta, facts })
        })
        .collect::<Vec<_>>())
    .inspect(|objects| root.report.objects_listed(objects.len() as u64))
}

/// The accounts, and then regions, below a root that the predicate allows.
async fn list_regions(
    root: &Root,
    predicate: &PathPredicate,
    concurrency: usize,
) -> Result<Vec<(AccountFolder, String)>> {
    let accounts: Vec<AccountFolder> = root
        .child_folders(&root.awslogs)
        .await?
        .iter()
        .filter_map(|name| AccountFolder::from_folder_name(name))
        .collect();
    let values: Vec<PathValues> = accounts
        .iter()
        .map(|a| PathValues {
            account: Some(a.account.clone()),
            ..Default::default()
        })
        .collect();
    let keep = predicate.keep(Level::Account, &values)?;
    let accounts = accounts
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(a, _)| a);
    let nested: Vec<Vec<(AccountFolder, String)>> = futures::stream::iter(accounts)
        .map(|account| async move {
            let folder = join(&root.awslogs, &account.regions_folder());
            let regions: Vec<String> = root
                .child_folders(&folder)
                .await?
                .iter()
                .filter_map(|name| account.region_from_folder_name(name))
                .collect();
            let values: Vec<PathValues> = regions
                .iter()
                .map(|r| PathValues {
                    account: Some(account.account.clone()),
                    region: Some(r.clone()),
                    ..Default::default()
                })
                .collect();
            let keep = predicate.keep(Level::Region, &values)?;
            Ok::<_, DataFusionError>(
                regions
                    .into_iter()
                    .zip(keep)
                    .filter(|(_, k)| *k)
                    .map(|(r, _)| (account.clone(), r))
                    .collect(),
            )
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok(nested.into_iter().flatten().collect())
}

/// The day folders of one account and region that the window allows, found
/// by delimiter listings of years, months and days.
async fn discover_days(
    root: &Root,
    account: &AccountFolder,
    region: &str,
    window: &TimeWindow,
) -> Result<Vec<NaiveDate>> {
    let region_folder = join(&root.awslogs, &account.region_folder(region));
    let mut days = Vec::new();
    for year_name in root.child_folders(&region_folder).await? {
        let Some(year) = account.date_part_from_folder_name(DatePart::Year, &year_name) else {
            continue;
        };
        let (Some(first), Some(last)) = (
            NaiveDate::from_ymd_opt(year as i32, 1, 1),
            NaiveDate::from_ymd_opt(year as i32, 12, 31),
        ) else {
            continue;
        };
        if !window.keeps_days(first, last) {
            continue;
        }
        let year_folder = region_folder.clone().join(year_name.as_str());
        for month_name in root.child_folders(&year_folder).await? {
            let Some(month) = account.date_part_from_folder_name(DatePart::Month, &month_name)
            else {
                continue;
            };
            let Some(first) = NaiveDate::from_ymd_opt(year as i32, month, 1) else {
                continue;
            };
            let last = last_day_of_month(first);
            if !window.keeps_days(first, last) {
                continue;
            }
            let month_folder = year_folder.clone().join(month_name.as_str());
            for day_name in root.child_folders(&month_folder).await? {
                let Some(day) = account.date_part_from_folder_name(DatePart::Day, &day_name) else {
                    continue;
                };
                if let Some(date) = NaiveDate::from_ymd_opt(year as i32, month, day)
                    && window.keeps_days(date, date)
                    // A folder spelled differently (`5` for `05`) is not AWS's.
                    && account.day_folder(region, date).ends_with(&format!("/{day_name}"))
                {
                    days.push(date);
                }
            }
        }
    }
    Ok(days)
}

fn last_day_of_month(first: NaiveDate) -> NaiveDate {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).unwrap_or(first)
}

/// The day folders below a root that the predicate and window allow, found
/// with delimiter listings (or, for a short bounded range, named directly).
async fn day_folders(
    root: &Root,
    predicate: &PathPredicate,
    window: &TimeWindow,
    options: &FlowLogOptions,
) -> Result<Vec<Path>> {
    let concurrency = options.listing_concurrency.max(1);
    let regions = list_regions(root, predicate, concurrency).await?;
    let enumerated = window.enumerable_days(options.max_enumerated_days);
    let day_lists: Vec<Vec<(AccountFolder, String, NaiveDate)>> = futures::stream::iter(regions)
        .map(|(account, region)| {
            let enumerated = enumerated.clone();
            async move {
                let days = match enumerated {
                    Some(days) => days,
                    None => discover_days(root, &account, &region, window).await?,
                };
                let values: Vec<PathValues> = days
                    .iter()
                    .map(|d| PathValues {
                        account: Some(account.account.clone()),
                        region: Some(region.clone()),
                        date: Some(*d),
                        ..Default::default()
                    })
                    .collect();
                let keep = predicate.keep(Level::Day, &values)?;
                Ok::<_, DataFusionError>(
                    days.into_iter()
                        .zip(keep)
                        .filter(|(_, k)| *k)
                        .map(|(d, _)| (account.clone(), region.clone(), d))
                        .collect(),
                )
            }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok(day_lists
        .into_iter()
        .flatten()
        .map(|(account, region, date)| join(&root.awslogs, &account.day_folder(&region, date)))
        .collect())
}

/// Reads the header of one object from its first bytes.
async fn read_header(store: &dyn ObjectStore, meta: &ObjectMeta) -> Option<Header> {
    use std::io::Read;
    const HEADER_BYTES: u64 = 64 * 1024;
    let options = GetOptions {
        range: Some(GetRange::Bounded(0..meta.size.min(HEADER_BYTES))),
        ..Default::default()
    };
    let bytes = store
        .get_opts(&meta.location, options)
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    let mut gunzip = flate2::read::MultiGzDecoder::new(&bytes[..]);
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    // A truncated read still yields the complete first line in practice;
    // stop at the first newline either way.
    while !text.contains(&b'\n') && text.len() < HEADER_BYTES as usize {
        match gunzip.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let line = text.split(|b| *b == b'\n').next()?;
    Header::parse(line.strip_suffix(b"\r").unwrap_or(line)).ok()
}

/// Header fields the catalogue does not know, read from one object per flow
/// log in the newest day folder of every account and region. A flow log's
/// format is fixed for its life and its id is in every file name, so one
/// header per flow log is enough.
/// Also returns how many flow-log objects those newest days hold (zero means
/// the roots hold no flow logs at all).
async fn sample_unknown_fields(
    roots: &[Root],
    options: &FlowLogOptions,
    extra: &mut Vec<String>,
) -> Result<usize> {
    let concurrency = options.listing_concurrency.max(1);
    let no_filter = PathPredicate::empty();
    let mut objects_seen = 0;
    for root in roots {
        let regions = list_regions(root, &no_filter, concurrency).await?;
        let headers: Vec<(usize, Vec<Header>)> = futures::stream::iter(regions)
            .map(|(account, region)| async move {
                let Some(date) = newest_day(root, &account, &region).await? else {
                    return Ok::<_, DataFusionError>((0, vec![]));
                };
                let folder = join(&root.awslogs, &account.day_folder(&region, date));
                let objects = list_objects(root, &folder).await?;
                let count = objects.len();
                let mut one_per_flow_log: BTreeMap<String, ObjectMeta> = BTreeMap::new();
                for object in objects {
                    one_per_flow_log
                        .entry(object.facts.flow_log_id)
                        .or_insert(object.meta);
                }
                let mut headers = Vec::new();
                for meta in one_per_flow_log.values() {
                    if let Some(header) = read_header(root.store.as_ref(), meta).await {
                        headers.push(header);
                    }
                }
                Ok((count, headers))
            })
            .buffered(concurrency)
            .try_collect()
            .await?;
        objects_seen += headers.iter().map(|(count, _)| count).sum::<usize>();
        for header in headers.iter().flat_map(|(_, h)| h) {
            for token in header.unknown_tokens() {
                let name = catalogue::column_name(token);
                let clashes = catalogue::path_fields().iter().any(|f| f.name() == &name);
                if !clashes && !extra.iter().any(|e| catalogue::column_name(e) == name) {
                    extra.push(token.to_string());
                }
            }
        }
    }
    Ok(objects_seen)
}

/// The newest day folder of one account and region.
async fn newest_day(
    root: &Root,
    account: &AccountFolder,
    region: &str,
) -> Result<Option<NaiveDate>> {
    let store = root.store.as_ref();
    let mut folder = join(&root.awslogs, &account.region_folder(region));
    let mut parts = [0u32; 3];
    for (i, part) in [DatePart::Year, DatePart::Month, DatePart::Day]
        .into_iter()
        .enumerate()
    {
        let newest = child_folders(store, &folder)
            .await?
            .into_iter()
            .filter_map(|name| {
                account
                    .date_part_from_folder_name(part, &name)
                    .map(|v| (v, name))
            })
            .max();
        let Some((value, name)) = newest else {
            return Ok(None);
        };
        parts[i] = value;
        folder = folder.join(name.as_str());
    }
    Ok(NaiveDate::from_ymd_opt(parts[0] as i32, parts[1], parts[2]))
}

impl FlowLogTable {
    /// The account, region, day and hour folders that hold flow-log objects,
    /// with their object counts and compressed bytes (`SHOW PARTITIONS`).
    /// Lists the whole tree; reads no object.
    pub async fn partitions(&self) -> Result<datafusion::arrow::array::RecordBatch> {
        use datafusion::arrow::array::{
            Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
        };
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        type Key = (String, String, NaiveDate, Option<u32>);
        let mut folders: BTreeMap<Key, (i64, i64)> = BTreeMap::new();
        for root in &self.roots {
            for object in list_all(root).await? {
                let f = object.facts;
                let entry = folders
                    .entry((f.account, f.region, f.date, f.hour))
                    .or_default();
                entry.0 += 1;
                entry.1 += object.meta.size as i64;
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new(catalogue::AWS_ACCOUNT_ID, DataType::Utf8, false),
            Field::new(catalogue::AWS_REGION, DataType::Utf8, false),
            Field::new(catalogue::DATE, DataType::Date32, false),
            Field::new(catalogue::HOUR, DataType::Int32, true),
            Field::new("objects", DataType::Int64, false),
            Field::new("compressed_bytes", DataType::Int64, false),
        ]));
        let keys: Vec<&Key> = folders.keys().collect();
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    keys.iter().map(|k| k.0.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    keys.iter().map(|k| k.1.as_str()),
                )),
                Arc::new(Date32Array::from_iter_values(
                    keys.iter()
                        .map(|k| crate::table::prune::days_since_epoch(k.2)),
                )),
                Arc::new(Int32Array::from_iter(
                    keys.iter().map(|k| k.3.map(|h| h as i32)),
                )),
                Arc::new(Int64Array::from_iter_values(folders.values().map(|v| v.0))),
                Arc::new(Int64Array::from_iter_values(folders.values().map(|v| v.1))),
            ],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_ends() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(last_day_of_month(d(2024, 2, 1)), d(2024, 2, 29));
        assert_eq!(last_day_of_month(d(2023, 12, 1)), d(2023, 12, 31));
    }
}
