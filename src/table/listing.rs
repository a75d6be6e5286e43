//! Finding what a scan reads: the `AWSLogs/` folders of a LOCATION, then
//! the accounts, regions and days the query's path filters and time window
//! allow (delimiter listings; the days of a bounded range are named
//! directly), then the objects of each day folder, sent to the scan as soon
//! as their folder's listing returns.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use tokio::sync::{Semaphore, mpsc};

use super::FlowLogOptions;
use super::folders_ahead::{SeenFolders, SentAhead};
use super::layout::{AWS_LOGS, AccountFolder, DatePart, KeyFacts, parse_key};
use super::prune::{Level, PathPredicate, PathValues, TimeWindow, partition_values};
use crate::error::Error;
use crate::location::{self, Location};
use crate::report::ScanReport;
use crate::scan::text::object_display;
use crate::scan::{FoundObject, ObjectFormat, ObjectListing};

/// One `AWSLogs/` folder in one store.
#[derive(Debug, Clone)]
pub(super) struct Root {
    pub(super) url: ObjectStoreUrl,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) awslogs: Path,
    /// Where listings are counted.
    pub(super) report: Arc<ScanReport>,
    /// The folders below `awslogs` that this process's listings found,
    /// shared by the root's clones.
    pub(super) seen: Arc<SeenFolders>,
    /// How this clone's folder listings are made.
    pub(super) folder_listings: FolderListings,
    /// Folder listings in flight at once, shared by the root's clones: a
    /// discovery lists the folders of a level at once, and of several
    /// regions at once.
    listing_permits: Arc<Semaphore>,
}

/// How a [`Root`]'s folder listings are made.
#[derive(Debug, Clone)]
pub(super) enum FolderListings {
    /// Each when it is asked for.
    OnDemand,
    /// From those sent ahead where one was, else when asked for.
    SentAhead(Arc<SentAhead>),
    /// None: each answered from the folders seen, and noted here.
    Rehearsed(Arc<Mutex<Vec<Path>>>),
}

impl Root {
    /// A root whose folder listings are made at most `concurrency` at once.
    pub(super) fn new(
        url: ObjectStoreUrl,
        store: Arc<dyn ObjectStore>,
        awslogs: Path,
        report: Arc<ScanReport>,
        concurrency: usize,
    ) -> Self {
        Self {
            url,
            store,
            awslogs,
            report,
            seen: Arc::default(),
            folder_listings: FolderListings::OnDemand,
            listing_permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Counts a listing of `prefix` in the report, named as a user would
    /// write it.
    fn count_listing(&self, prefix: &Path, one_level: bool) {
        self.report
            .listed(&object_display(&self.url, prefix), one_level);
    }

    /// The listed object at `meta`, if its key is a flow-log file's.
    fn flow_log_object(&self, meta: ObjectMeta) -> Option<ListedObject> {
        let relative = meta
            .location
            .as_ref()
            .strip_prefix(self.awslogs.as_ref())?
            .strip_prefix('/')?;
        let facts = parse_key(relative)?;
        Some(ListedObject { meta, facts })
    }

    /// Fails unless this process sees the root's `AWSLogs/` folder. On a
    /// cluster, a local LOCATION must be at the same path on every machine,
    /// and one missing on the scheduler's or an executor's would read as
    /// empty: rows silently left out. (An S3 root is the same bucket for
    /// every process; a missing one fails on its own.)
    #[cfg(feature = "cluster")]
    pub(super) async fn check_seen_here(&self) -> Result<()> {
        if self.url != ObjectStoreUrl::local_filesystem() {
            return Ok(());
        }
        let folder = object_store::local::LocalFileSystem::new()
            .path_to_filesystem(&self.awslogs)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let why = match std::fs::metadata(&folder) {
            Ok(found) if found.is_dir() => return Ok(()),
            Ok(_) => "it is not a folder".to_string(),
            Err(e) => e.to_string(),
        };
        let process = std::env::args()
            .next()
            .and_then(|arg| {
                std::path::Path::new(&arg)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "flowsql".to_string());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| format!(" on {}", name.trim()))
            .unwrap_or_default();
        Err(DataFusionError::Execution(format!(
            "{process}{host} cannot read {} ({why}): on a cluster, a local LOCATION must be at \
             the same path for the client, the scheduler and every executor",
            folder.display()
        )))
    }

    /// The folders directly inside `prefix`, counted in the report, and
    /// remembered (see [`super::folders_ahead`]).
    pub(super) async fn child_folders(&self, prefix: &Path) -> Result<Vec<String>> {
        let sent = match &self.folder_listings {
            FolderListings::Rehearsed(asked) => {
                asked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(prefix.clone());
                return Ok(self.seen.children(prefix));
            }
            FolderListings::SentAhead(sent) => sent.take(prefix).await,
            FolderListings::OnDemand => None,
        };
        let folders = match sent {
            Some(listed) => listed?,
            None => self.list_child_folders(prefix).await?,
        };
        self.seen.remember(prefix, &folders);
        Ok(folders)
    }

    /// This root with its folder listings made as `listings` says.
    pub(super) fn with_folder_listings(&self, listings: FolderListings) -> Root {
        Root {
            folder_listings: listings,
            ..self.clone()
        }
    }

    /// One listing of the folders directly inside `prefix`, when a permit
    /// allows, counted in the report.
    pub(super) async fn list_child_folders(&self, prefix: &Path) -> Result<Vec<String>> {
        let _permit = self
            .listing_permits
            .acquire()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.report.listed(&object_display(&self.url, prefix), true);
        let folders = child_folders(self.store.as_ref(), prefix).await?;
        self.report.listed_entries(folders.len());
        Ok(folders)
    }
}

/// An object the listing found, with what its key says.
#[derive(Debug, Clone)]
pub(super) struct ListedObject {
    pub(super) meta: ObjectMeta,
    pub(super) facts: KeyFacts,
}

/// What one scan lists: the table's roots and the filters that prune them.
#[derive(Debug)]
pub(super) struct ScanListing {
    roots: Vec<Root>,
    predicate: PathPredicate,
    window: TimeWindow,
    options: FlowLogOptions,
    report: Arc<ScanReport>,
    /// Only this shard's objects (a distributed scan's task).
    #[cfg(feature = "cluster")]
    shard: Option<ShardOnly>,
}

/// The part of a listing one shard of a distributed scan reads.
#[cfg(feature = "cluster")]
#[derive(Debug)]
pub(super) struct ShardOnly {
    pub(super) shard: crate::scan::shards::Shard,
    /// Objects stored later than the plan are left out, so a retried task
    /// reads what the first attempt read.
    pub(super) as_of: chrono::DateTime<chrono::Utc>,
}

impl ScanListing {
    /// The listing of `roots` that `predicate` and `window` prune.
    pub(super) fn new(
        roots: Vec<Root>,
        predicate: PathPredicate,
        window: TimeWindow,
        options: FlowLogOptions,
        report: Arc<ScanReport>,
    ) -> Self {
        Self {
            roots,
            predicate,
            window,
            options,
            report,
            #[cfg(feature = "cluster")]
            shard: None,
        }
    }

    /// The listing of one shard only.
    #[cfg(feature = "cluster")]
    pub(super) fn of_shard(mut self, shard: ShardOnly) -> Self {
        self.shard = Some(shard);
        self
    }

    /// The folders whose objects are sent, for the root with index `index`.
    fn folders<'a>(
        &'a self,
        index: usize,
        root: &'a Root,
    ) -> futures::stream::BoxStream<'a, Result<Path>> {
        #[cfg(feature = "cluster")]
        if let Some(only) = &self.shard {
            let folders = if only.shard.root == index {
                vec![Ok(carried_path(&only.shard.folder))]
            } else {
                Vec::new()
            };
            return futures::stream::iter(folders).boxed();
        }
        let _ = index;
        if self.options.pruning {
            day_folders(root, &self.predicate, &self.window, &self.options).boxed()
        } else {
            futures::stream::iter([Ok(root.awslogs.clone())]).boxed()
        }
    }

    /// `root` with its folder listings sent ahead, where its folders are
    /// discovered (not a shard's, not with pruning off).
    async fn sending_ahead(&self, root: &Root) -> Option<Root> {
        #[cfg(feature = "cluster")]
        if self.shard.is_some() {
            return None;
        }
        if !self.options.pruning {
            return None;
        }
        Some(
            root.sending_ahead(&self.predicate, &self.window, &self.options)
                .await,
        )
    }

    /// Whether this listing's shard (if any) reads `object`.
    fn in_shard(&self, object: &ObjectMeta) -> bool {
        #[cfg(feature = "cluster")]
        if let Some(only) = &self.shard {
            return object.last_modified <= only.as_of
                && only.shard.holds(object.location.as_ref());
        }
        let _ = object;
        true
    }

    /// A shard's slice: the key it starts after, where its listing can
    /// start, and its last key, past which its listing can stop.
    fn shard_range(&self) -> (Option<Path>, Option<&str>) {
        #[cfg(feature = "cluster")]
        if let Some(only) = &self.shard {
            let after = only.shard.after.as_deref().map(carried_path);
            return (after, only.shard.up_to.as_deref());
        }
        (None, None)
    }

    async fn send_all(&self, found: &mpsc::Sender<Result<FoundObject>>) -> Result<()> {
        let concurrency = self.options.listing_concurrency.max(1);
        #[cfg(feature = "cluster")]
        if let Some(only) = &self.shard
            && let Some(root) = self.roots.get(only.shard.root)
        {
            root.check_seen_here().await?;
        }
        for (index, root) in self.roots.iter().enumerate() {
            let ahead = self.sending_ahead(root).await;
            let root = ahead.as_ref().unwrap_or(root);
            // Accounts, regions and days are discovered as a stream, so the
            // first day folders are listed, and their objects read, while
            // later accounts are still being discovered.
            let folders = self.folders(index, root);
            let (after, up_to) = self.shard_range();
            let after = after.as_ref();
            let mut listings = folders
                .map(|folder| async move { list_objects_after(root, &folder?, after, up_to).await })
                .buffered(concurrency);
            while let Some(objects) = listings.next().await {
                for (format, file) in self.to_read(objects?)? {
                    self.report.planned(1, file.object_meta.size);
                    let object = FoundObject {
                        store: index,
                        format,
                        file,
                    };
                    if found.send(Ok(object)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// The listed objects that the path filters and the time window keep.
    fn to_read(&self, objects: Vec<ListedObject>) -> Result<Vec<(ObjectFormat, PartitionedFile)>> {
        let objects = objects
            .into_iter()
            .filter(|o| self.in_shard(&o.meta))
            .collect();
        Ok(kept_objects(&self.predicate, &self.window, objects)?
            .into_iter()
            .map(|o| {
                let values = partition_values(&path_values(&o.facts));
                let file = PartitionedFile::new_from_meta(o.meta).with_partition_values(values);
                (o.facts.format, file)
            })
            .collect())
    }
}

#[async_trait]
impl ObjectListing for ScanListing {
    fn store(&self, root: usize) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.roots[root].store)
    }

    fn store_url(&self, root: usize) -> ObjectStoreUrl {
        self.roots[root].url.clone()
    }

    /// Sends each object down `found` as soon as the listing of its day
    /// folder returns, so reading starts while later days are still being
    /// listed.
    async fn run(&self, found: &mpsc::Sender<Result<FoundObject>>) {
        if let Err(e) = self.send_all(found).await {
            let _ = found.send(Err(e)).await;
        }
    }

    /// Each root's `AWSLogs/`.
    fn display(&self) -> Vec<String> {
        self.roots
            .iter()
            .map(|r| object_display(&r.url, &r.awslogs))
            .collect()
    }
}

/// The listed objects that the path filters and the time window keep.
fn kept_objects(
    predicate: &PathPredicate,
    window: &TimeWindow,
    objects: Vec<ListedObject>,
) -> Result<Vec<ListedObject>> {
    let mut kept = predicate.retain(Level::File, objects, |o| path_values(&o.facts))?;
    kept.retain(|o| window.keeps_file_time(o.facts.file_time));
    Ok(kept)
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
    Error::Listing {
        prefix: prefix.to_string(),
        store: store.to_string(),
        problem: location::s3::classify(&error),
    }
    .into()
}

/// The names of the folders directly inside `prefix`.
pub(super) async fn child_folders(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<String>> {
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

/// A path a plan carries as text: a `Path`'s own (already encoded) text,
/// which `Path::from` would encode again.
#[cfg(feature = "cluster")]
pub(super) fn carried_path(text: &str) -> Path {
    Path::parse(text).unwrap_or_else(|_| Path::from(text))
}

pub(super) fn join(base: &Path, relative: &str) -> Path {
    relative
        .split('/')
        .filter(|s| !s.is_empty())
        .fold(base.clone(), |path, part| path.clone().join(part))
}

/// Finds the `AWSLogs/` folders of a LOCATION: the LOCATION itself if it is
/// one, its `AWSLogs/` child, or else the `AWSLogs/` folders one level down
/// (a bucket whose flow logs sit under one or more prefixes).
pub(super) async fn find_awslogs(
    location: &Location,
    report: &Arc<ScanReport>,
    concurrency: usize,
) -> Result<Vec<Root>> {
    let root = |awslogs: Path| {
        Root::new(
            location.url.clone(),
            Arc::clone(&location.store),
            awslogs,
            Arc::clone(report),
            concurrency,
        )
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
        .buffered(concurrency)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await?;
    if nested.is_empty() {
        return Err(location::location_error(
            &location.original,
            "holds no flow logs: expected an AWSLogs/ folder in it (LOCATION/AWSLogs/{account}/vpcflowlogs/...) or in one of its subfolders".to_string(),
        ));
    }
    Ok(nested.into_iter().map(root).collect())
}

/// Every flow-log object below a root (pruning off).
pub(super) async fn list_all(root: &Root) -> Result<Vec<ListedObject>> {
    list_objects(root, &root.awslogs).await
}

/// Every flow-log object below `prefix`, recursively.
pub(super) async fn list_objects(root: &Root, prefix: &Path) -> Result<Vec<ListedObject>> {
    list_objects_after(root, prefix, None, None).await
}

/// Every flow-log object below `prefix`, recursively, whose key comes
/// after `after` (if given), and, from a store that lists in key order
/// (S3), up to `up_to` (a caller keeps only those from any store).
async fn list_objects_after(
    root: &Root,
    prefix: &Path,
    after: Option<&Path>,
    up_to: Option<&str>,
) -> Result<Vec<ListedObject>> {
    root.count_listing(prefix, false);
    let listing = match after {
        // S3 starts such a listing at the key itself.
        Some(after) => root.store.list_with_offset(Some(prefix), after),
        None => root.store.list(Some(prefix)),
    };
    let in_key_order = root.url.as_str().starts_with("s3://");
    let metas: Vec<ObjectMeta> = listing
        .try_take_while(|meta| {
            let within = match up_to {
                Some(last) if in_key_order => meta.location.as_ref() <= last,
                _ => true,
            };
            futures::future::ready(Ok(within))
        })
        .try_collect()
        .await
        .map_err(|e| listing_error(root.store.as_ref(), prefix, e))?;
    root.report.listed_entries(metas.len());
    Ok(metas
        .into_iter()
        .filter_map(|meta| root.flow_log_object(meta))
        .collect::<Vec<_>>())
    .inspect(|objects| root.report.objects_listed(objects.len() as u64))
}

/// The flow-log objects of `folder` that `predicate` and `window` keep, as
/// (key, size) in key order, from at most `max_entries` listed entries;
/// and whether that was all of them.
#[cfg(feature = "cluster")]
pub(super) async fn sized_objects(
    root: &Root,
    folder: &Path,
    predicate: &PathPredicate,
    window: &TimeWindow,
    max_entries: usize,
) -> Result<(Vec<(String, u64)>, bool)> {
    root.count_listing(folder, false);
    let metas: Vec<ObjectMeta> = root
        .store
        .list(Some(folder))
        .take(max_entries + 1)
        .try_collect()
        .await
        .map_err(|e| listing_error(root.store.as_ref(), folder, e))?;
    let complete = metas.len() <= max_entries;
    root.report.listed_entries(metas.len());
    let objects = metas
        .into_iter()
        .take(max_entries)
        .filter_map(|meta| root.flow_log_object(meta))
        .collect();
    let mut kept: Vec<(String, u64)> = kept_objects(predicate, window, objects)?
        .into_iter()
        .map(|o| (o.meta.location.to_string(), o.meta.size))
        .collect();
    // Stores other than S3 need not list in key order.
    kept.sort_unstable();
    Ok((kept, complete))
}

/// The accounts below a root that the predicate allows (one delimiter
/// listing of `AWSLogs/`).
pub(super) async fn list_accounts(
    root: &Root,
    predicate: &PathPredicate,
) -> Result<Vec<AccountFolder>> {
    let accounts: Vec<AccountFolder> = root
        .child_folders(&root.awslogs)
        .await?
        .iter()
        .filter_map(|name| AccountFolder::from_folder_name(name))
        .collect();
    predicate.retain(Level::Account, accounts, |a| PathValues {
        account: Some(a.account.clone()),
        ..Default::default()
    })
}

/// The flow-log regions of one account that the predicate allows (one
/// delimiter listing of its `vpcflowlogs/` folder).
pub(super) async fn list_regions(
    root: &Root,
    account: &AccountFolder,
    predicate: &PathPredicate,
) -> Result<Vec<String>> {
    let folder = join(&root.awslogs, &account.regions_folder());
    let regions: Vec<String> = root
        .child_folders(&folder)
        .await?
        .iter()
        .filter_map(|name| account.region_from_folder_name(name))
        .collect();
    predicate.retain(Level::Region, regions, |r| PathValues {
        account: Some(account.account.clone()),
        region: Some(r.clone()),
        ..Default::default()
    })
}

/// The accounts, and then regions, below a root that the predicate allows,
/// as they are found: the regions of `concurrency` accounts are listed at
/// once.
fn regions<'a>(
    root: &'a Root,
    predicate: &'a PathPredicate,
    concurrency: usize,
) -> impl Stream<Item = Result<(AccountFolder, String)>> + Send + 'a {
    futures::stream::once(list_accounts(root, predicate))
        .map_ok(|accounts| {
            futures::stream::iter(accounts.into_iter().map(Ok::<_, DataFusionError>))
        })
        .try_flatten()
        .map(move |account: Result<AccountFolder>| async move {
            let account = account?;
            let regions = list_regions(root, &account, predicate).await?;
            Ok::<_, DataFusionError>(
                regions
                    .into_iter()
                    .map(|region| Ok::<_, DataFusionError>((account.clone(), region)))
                    .collect::<Vec<_>>(),
            )
        })
        .buffered(concurrency)
        .map_ok(futures::stream::iter)
        .try_flatten()
}

/// Whether a root holds flow logs: a flow-log object in a region of one
/// of its `accounts`. Accounts are tried in growing batches (1, 2, 4, ...
/// up to `concurrency` at once), and a region's listing stops at its first
/// flow-log object, so a bucket of flow logs costs three listings however
/// many accounts it holds, and a bucket of other logs (or of Parquet
/// objects only) is still answered in full.
pub(super) async fn holds_flow_logs(
    root: &Root,
    accounts: &[AccountFolder],
    concurrency: usize,
) -> Result<bool> {
    let mut rest = accounts;
    let mut batch = 1;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        let found: Vec<bool> = futures::stream::iter(now)
            .map(|account| account_holds_flow_logs(root, account))
            .buffer_unordered(batch)
            .try_collect()
            .await?;
        if found.contains(&true) {
            return Ok(true);
        }
        rest = later;
        batch = (batch * 2).min(concurrency);
    }
    Ok(false)
}

/// Whether one of an account's regions holds a flow-log object.
async fn account_holds_flow_logs(root: &Root, account: &AccountFolder) -> Result<bool> {
    for region in list_regions(root, account, &PathPredicate::empty()).await? {
        let folder = join(&root.awslogs, &account.region_folder(&region));
        if holds_flow_log_object(root, &folder).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `prefix` holds a flow-log object, listing no further than the
/// first one.
async fn holds_flow_log_object(root: &Root, prefix: &Path) -> Result<bool> {
    root.count_listing(prefix, false);
    let mut listing = root.store.list(Some(prefix));
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| listing_error(root.store.as_ref(), prefix, e))?;
        if root.flow_log_object(meta).is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The day folders of one account and region that the window allows, found
/// by delimiter listings of years, then months, then days: each level's
/// folders are listed at once (`concurrency` at a time), so a region of two
/// years costs three rounds of listings, not one per month.
async fn discover_days(
    root: &Root,
    account: &AccountFolder,
    region: &str,
    window: &TimeWindow,
    concurrency: usize,
) -> Result<Vec<NaiveDate>> {
    let region_folder = join(&root.awslogs, &account.region_folder(region));
    let years: Vec<(i32, Path)> = root
        .child_folders(&region_folder)
        .await?
        .into_iter()
        .filter_map(|name| {
            let year = account.date_part_from_folder_name(DatePart::Year, &name)? as i32;
            let first = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let last = NaiveDate::from_ymd_opt(year, 12, 31)?;
            let folder = region_folder.clone().join(name.as_str());
            window.keeps_days(first, last).then_some((year, folder))
        })
        .collect();
    let months: Vec<Vec<(i32, u32, Path)>> = futures::stream::iter(years)
        .map(|(year, year_folder)| async move {
            let months = root.child_folders(&year_folder).await?;
            Ok::<_, DataFusionError>(
                months
                    .into_iter()
                    .filter_map(|name| {
                        let month = account.date_part_from_folder_name(DatePart::Month, &name)?;
                        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
                        let folder = year_folder.clone().join(name.as_str());
                        window
                            .keeps_days(first, last_day_of_month(first))
                            .then_some((year, month, folder))
                    })
                    .collect(),
            )
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let days: Vec<Vec<NaiveDate>> = futures::stream::iter(months.into_iter().flatten())
        .map(|(year, month, month_folder)| async move {
            let days = root.child_folders(&month_folder).await?;
            Ok::<_, DataFusionError>(
                days.into_iter()
                    .filter_map(|name| {
                        let day = account.date_part_from_folder_name(DatePart::Day, &name)?;
                        let date = NaiveDate::from_ymd_opt(year, month, day)?;
                        // A folder spelled differently (`5` for `05`) is not AWS's.
                        let spelled = account
                            .day_folder(region, date)
                            .ends_with(&format!("/{name}"));
                        (window.keeps_days(date, date) && spelled).then_some(date)
                    })
                    .collect(),
            )
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    Ok(days.into_iter().flatten().collect())
}

fn last_day_of_month(first: NaiveDate) -> NaiveDate {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).unwrap_or(first)
}

/// The day folders below a root that the predicate and window allow, as
/// they are found (delimiter listings of accounts and regions; the days of
/// a short bounded range named directly, others found by listing years,
/// months and days).
pub(super) fn day_folders<'a>(
    root: &'a Root,
    predicate: &'a PathPredicate,
    window: &'a TimeWindow,
    options: &FlowLogOptions,
) -> impl Stream<Item = Result<Path>> + Send + 'a {
    let concurrency = options.listing_concurrency.max(1);
    let enumerated = window.enumerable_days(options.max_enumerated_days);
    regions(root, predicate, concurrency)
        .map(move |found| {
            let enumerated = enumerated.clone();
            async move {
                let (account, region) = found?;
                let days = match enumerated {
                    Some(days) => days,
                    None => discover_days(root, &account, &region, window, concurrency).await?,
                };
                let days = predicate.retain(Level::Day, days, |d| PathValues {
                    account: Some(account.account.clone()),
                    region: Some(region.clone()),
                    date: Some(*d),
                    ..Default::default()
                })?;
                Ok::<_, DataFusionError>(
                    days.into_iter()
                        .map(|date| {
                            Ok::<_, DataFusionError>(join(
                                &root.awslogs,
                                &account.day_folder(&region, date),
                            ))
                        })
                        .collect::<Vec<_>>(),
                )
            }
        })
        .buffered(concurrency)
        .map_ok(futures::stream::iter)
        .try_flatten()
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
