//! The table on a cluster: what a plan carries of it ([`TableSpec`]), and
//! its scans cut into shards ([`ShardPlan`]).
//!
//! A cluster's scheduler rebuilds the table from its spec without any
//! request to a store, then plans a scan as the day folders its filters
//! allow (found by the same delimiter listings as in one process). When
//! the days are few enough, it lists each one (a page or so each) and cuts
//! the large ones into key ranges of about a slot's share of the scan, so
//! that no single task holds up the end; the biggest shards go first.
//! Executors rebuild the same scan from the spec, the query's filters and
//! the plan's time, and list and read only their own shards.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::FileScanConfigBuilder;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::listing::{Root, ScanListing, ShardOnly, carried_path, day_folders, sized_objects};
use super::prune::{PathPredicate, TimeWindow};
use super::{FlowLogOptions, FlowLogTable, ScanFilters, scan_readers, table_schema};
use crate::location::{self, S3Options};
use crate::report::ScanReport;
use crate::report::task_counts::TaskCounts;
use crate::scan::ObjectListing;
use crate::scan::exec::ScanReaders;
use crate::scan::shards::{Shard, ShardSource, ShardedTable};
use crate::scan::text::ReadSettings;

/// Slices a day folder is cut into at most.
const MAX_DAY_SLICES: usize = 16;

/// Day folders a scan lists to size them, at most (or twice the cluster's
/// task slots, if more). More days keep every slot busy uncut, and their
/// listings would delay the plan.
const MAX_SIZED_DAYS: usize = 256;

/// Entries a day's sizing listing reads at most (twenty S3 pages); a day
/// with more keeps the rest in a slice of its own.
const MAX_SIZED_ENTRIES: usize = 20_000;

/// A table as a plan carries it to a cluster: its roots, columns and
/// options, and never a secret (each process finds its own credentials).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TableSpec {
    /// Each root: its store's URL and its `AWSLogs/` folder.
    roots: Vec<(String, String)>,
    extra_columns: Vec<String>,
    pruning: bool,
    strict: bool,
    skip_bad_objects: bool,
    time_slack_seconds: i64,
    max_enumerated_days: usize,
    listing_concurrency: usize,
    s3_region: Option<String>,
    s3_endpoint_url: Option<String>,
    s3_no_sign_request: bool,
    s3_max_retries: Option<usize>,
    s3_retry_timeout_ms: Option<u64>,
}

impl FlowLogTable {
    /// The table as a plan carries it.
    pub(crate) fn spec(&self) -> TableSpec {
        let s3 = &self.options.s3;
        TableSpec {
            roots: self
                .roots
                .iter()
                .map(|r| (r.url.as_str().to_string(), r.awslogs.to_string()))
                .collect(),
            extra_columns: self.extra.clone(),
            pruning: self.options.pruning,
            strict: self.options.strict,
            skip_bad_objects: self.options.skip_bad_objects,
            time_slack_seconds: self.options.time_slack_seconds,
            max_enumerated_days: self.options.max_enumerated_days,
            listing_concurrency: self.options.listing_concurrency,
            s3_region: s3.region.clone(),
            s3_endpoint_url: s3.endpoint_url.clone(),
            s3_no_sign_request: s3.no_sign_request,
            s3_max_retries: s3.max_retries,
            s3_retry_timeout_ms: s3.retry_timeout.map(|t| t.as_millis() as u64),
        }
    }

    /// The table `spec` describes, whose scans are cut into shards. No
    /// request is made: each root's store comes from `runtime`, where an
    /// `s3://` store the process has not registered yet is registered
    /// to be set up on its first request, with this process's credentials.
    pub(crate) fn from_spec(spec: &TableSpec, runtime: &RuntimeEnv) -> Result<Self> {
        let options = FlowLogOptions {
            pruning: spec.pruning,
            strict: spec.strict,
            skip_bad_objects: spec.skip_bad_objects,
            time_slack_seconds: spec.time_slack_seconds,
            max_enumerated_days: spec.max_enumerated_days,
            listing_concurrency: spec.listing_concurrency,
            s3: S3Options {
                profile: None,
                region: spec.s3_region.clone(),
                endpoint_url: spec.s3_endpoint_url.clone(),
                no_sign_request: spec.s3_no_sign_request,
                max_retries: spec.s3_max_retries,
                retry_timeout: spec.s3_retry_timeout_ms.map(Duration::from_millis),
            },
            field_memory: None,
            cache: None,
        };
        let report = Arc::new(ScanReport::remembering_fields(None));
        let roots = spec
            .roots
            .iter()
            .map(|(url, awslogs)| {
                let url = ObjectStoreUrl::parse(url)?;
                Ok(Root::new(
                    url.clone(),
                    location::store_for(runtime, &url, &options.s3)?,
                    carried_path(awslogs),
                    Arc::clone(&report),
                    options.listing_concurrency,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let locations = roots
            .iter()
            .map(|r| (r.url.clone(), r.awslogs.clone()))
            .collect();
        Ok(Self {
            roots,
            locations,
            extra: spec.extra_columns.clone(),
            table_schema: table_schema(&spec.extra_columns),
            options,
            report,
            cache: None,
            notes: Vec::new(),
            sharded: true,
        })
    }

    /// A scan of the day folders `filters` allow, each a shard or cut into
    /// slices by size, each shard a partition of its own, biggest first.
    pub(super) async fn sharded_scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = ShardPlan::try_new(self, state, filters, Utc::now())?;
        let (predicate, window) = if self.options.pruning {
            (plan.filters.predicate.clone(), plan.filters.window)
        } else {
            (PathPredicate::empty(), TimeWindow::ALL)
        };
        let mut folders = Vec::new();
        for (index, root) in self.roots.iter().enumerate() {
            root.check_seen_here().await?;
            let root = root.sending_ahead(&predicate, &window, &self.options).await;
            let mut found = day_folders(&root, &predicate, &window, &self.options).boxed();
            while let Some(folder) = found.next().await {
                folders.push((index, folder?));
            }
        }
        let slots = state.config_options().execution.target_partitions.max(1);
        let shards = if folders.len() <= MAX_SIZED_DAYS.max(2 * slots) {
            let (predicate, window) = (&predicate, &window);
            let days: Vec<SizedDay> = futures::stream::iter(folders)
                .map(|(root, folder)| async move {
                    let (objects, complete) = sized_objects(
                        &self.roots[root],
                        &folder,
                        predicate,
                        window,
                        MAX_SIZED_ENTRIES,
                    )
                    .await?;
                    Ok::<_, DataFusionError>(SizedDay {
                        root,
                        folder: folder.to_string(),
                        objects,
                        complete,
                    })
                })
                .buffered(self.options.listing_concurrency.max(1))
                .try_collect()
                .await?;
            cut_days(days, slots)
        } else {
            // Days enough to keep every slot busy without cutting them.
            folders
                .into_iter()
                .map(|(root, folder)| Shard::whole(root, folder.to_string()))
                .collect()
        };
        // One task per shard: executors take tasks as they free up, so
        // uneven shards spread over the cluster whatever its size.
        let mut groups: Vec<Vec<Shard>> = shards.into_iter().map(|s| vec![s]).collect();
        if groups.is_empty() {
            groups.push(Vec::new());
        }
        self.shards_exec(plan, projection, groups, None)
    }

    /// The scan of `groups` of shards (one group per partition) by `plan`,
    /// returning the table's `columns`, each partition stopping after
    /// `limit` rows if given.
    pub(crate) fn shards_exec(
        &self,
        plan: ShardPlan,
        columns: Option<&Vec<usize>>,
        groups: Vec<Vec<Shard>>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if groups.iter().all(Vec::is_empty) {
            let schema = match columns {
                Some(columns) => Arc::new(self.table_schema.table_schema().project(columns)?),
                None => Arc::clone(self.table_schema.table_schema()),
            };
            // As many partitions as groups: a task given none has none.
            return Ok(Arc::new(
                EmptyExec::new(schema).with_partitions(groups.len()),
            ));
        }
        // Shards are listed and read through the roots' own stores (set up
        // by `from_spec` in the runtime that decoded the plan, which need
        // not be the one that runs it); DataSourceExec only looks this URL
        // up before opening, so it names the store every runtime has.
        let url = ObjectStoreUrl::local_filesystem();
        let source = ShardSource::new(Arc::new(plan), self.table_schema.clone());
        let files = groups
            .into_iter()
            .map(|group| group.iter().map(Shard::file).collect::<Vec<_>>().into())
            .collect();
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_projection_indices(columns.cloned())?
            .with_file_groups(files)
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// One sharded scan of a table: what each of its shards needs to list
/// and read its objects.
pub(crate) struct ShardPlan {
    spec: TableSpec,
    /// The query's filters on the table, as the plan carries them.
    exprs: Vec<Expr>,
    as_of: DateTime<Utc>,
    roots: Vec<Root>,
    table_schema: datafusion::datasource::table_schema::TableSchema,
    options: FlowLogOptions,
    report: Arc<ScanReport>,
    settings: ReadSettings,
    filters: ScanFilters,
    /// What `report` had counted when its counts were last taken.
    counts_taken: Mutex<TaskCounts>,
}

impl fmt::Debug for ShardPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardPlan")
            .field("roots", &self.spec.roots)
            .field("filters", &self.exprs)
            .field("as_of", &self.as_of)
            .finish_non_exhaustive()
    }
}

impl ShardPlan {
    /// The scan of `table` with `filters`, reading objects stored up to
    /// `as_of`.
    pub(crate) fn try_new(
        table: &FlowLogTable,
        state: &dyn Session,
        filters: &[Expr],
        as_of: DateTime<Utc>,
    ) -> Result<Self> {
        Ok(Self {
            spec: table.spec(),
            exprs: filters.to_vec(),
            as_of,
            roots: table.roots.clone(),
            table_schema: table.table_schema.clone(),
            options: table.options.clone(),
            report: Arc::clone(&table.report),
            settings: table.read_settings(),
            filters: ScanFilters::try_new(
                state,
                filters,
                table.options.pruning,
                &table.table_schema,
                table.options.time_slack_seconds,
            )?,
            counts_taken: Mutex::new(TaskCounts::default()),
        })
    }

    /// The table's spec, the filters and the plan's time, for a codec.
    pub(crate) fn parts(&self) -> (&TableSpec, &[Expr], DateTime<Utc>) {
        (&self.spec, &self.exprs, self.as_of)
    }
}

impl ShardedTable for ShardPlan {
    fn listing(&self, shard: &Shard) -> Result<Arc<dyn ObjectListing>> {
        if shard.root >= self.roots.len() {
            return Err(DataFusionError::Internal(format!(
                "a shard of root {} in a table of {} roots",
                shard.root,
                self.roots.len()
            )));
        }
        let listing = ScanListing::new(
            self.roots.clone(),
            self.filters.predicate.clone(),
            self.filters.window,
            self.options.clone(),
            Arc::clone(&self.report),
        )
        .of_shard(ShardOnly {
            shard: shard.clone(),
            as_of: self.as_of,
        });
        Ok(Arc::new(listing))
    }

    fn readers(&self, projection: Option<&Vec<usize>>) -> Result<ScanReaders> {
        scan_readers(
            &self.roots,
            &self.table_schema,
            &self.settings,
            projection,
            &self.filters,
        )
    }

    fn new_counts(&self) -> TaskCounts {
        let mut taken = self.counts_taken.lock().unwrap_or_else(|e| e.into_inner());
        let now = TaskCounts::of(&self.report.summary());
        let new = now.since(&taken);
        *taken = now;
        new
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A day folder, as a listing to size it found it.
struct SizedDay {
    root: usize,
    folder: String,
    /// The objects the scan's filters keep, as (key, size), in key order.
    objects: Vec<(String, u64)>,
    /// Whether those are all of the folder's objects.
    complete: bool,
}

/// The shards of `days` on a cluster of `slots` task slots, biggest first.
/// A day is cut into slices (key ranges of about equal bytes) so that none
/// is much larger than half a slot's share of the scan, which leaves every
/// slot work and no slice holding up the end. Days where nothing is to be
/// read are left out.
fn cut_days(days: Vec<SizedDay>, slots: usize) -> Vec<Shard> {
    let bytes = |objects: &[(String, u64)]| objects.iter().map(|(_, size)| size).sum::<u64>();
    let total: u64 = days.iter().map(|d| bytes(&d.objects)).sum();
    let share = total.div_ceil(2 * slots.max(1) as u64).max(1);
    let mut shards: Vec<(u64, Shard)> = Vec::new();
    for day in days {
        let Some(((last_key, _), before_last)) = day.objects.split_last() else {
            if !day.complete {
                shards.push((0, Shard::whole(day.root, day.folder)));
            }
            continue;
        };
        let day_bytes = bytes(&day.objects);
        let wanted = day_bytes.div_ceil(share).clamp(1, MAX_DAY_SLICES as u64);
        // Where each slice but the last ends: at the key where the day's
        // bytes so far reach that slice's share. A slice ends at its own
        // key, so none is empty.
        let mut ends: Vec<(String, u64)> = Vec::new();
        let mut sum = 0;
        for (key, size) in before_last {
            sum += size;
            if (ends.len() as u64 + 1) < wanted
                && sum * wanted >= day_bytes * (ends.len() as u64 + 1)
            {
                ends.push((key.clone(), sum));
            }
        }
        if !day.complete {
            // Keys past the listed ones: a slice of their own.
            ends.push((last_key.clone(), day_bytes));
        }
        let slices = ends.len() as u32 + 1;
        let mut after: Option<String> = None;
        let mut done = 0;
        for (index, (end, reached)) in ends.into_iter().enumerate() {
            shards.push((
                reached - done,
                Shard {
                    root: day.root,
                    folder: day.folder.clone(),
                    after: after.replace(end.clone()),
                    up_to: Some(end),
                    slice: index as u32 + 1,
                    slices,
                },
            ));
            done = reached;
        }
        // The last slice: the rest (or, past a listing's end, a guess).
        let rest = if day.complete {
            day_bytes - done
        } else {
            share
        };
        shards.push((
            rest,
            Shard {
                root: day.root,
                folder: day.folder,
                after,
                up_to: None,
                slice: slices,
                slices,
            },
        ));
    }
    shards.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
    shards.into_iter().map(|(_, shard)| shard).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(folder: &str, sizes: &[u64]) -> SizedDay {
        SizedDay {
            root: 0,
            folder: folder.to_string(),
            objects: sizes
                .iter()
                .enumerate()
                .map(|(i, size)| (format!("{folder}/{i:03}.log.gz"), *size))
                .collect(),
            complete: true,
        }
    }

    /// Which shard of `shards` holds each object of `day`.
    fn holders(shards: &[Shard], day: &SizedDay) -> Vec<usize> {
        day.objects
            .iter()
            .map(|(key, _)| {
                let holding: Vec<usize> = (0..shards.len())
                    .filter(|i| shards[*i].folder == day.folder && shards[*i].holds(key))
                    .collect();
                assert_eq!(holding.len(), 1, "{key} is in shards {holding:?}");
                holding[0]
            })
            .collect()
    }

    #[test]
    fn a_large_day_is_cut_into_ranges_of_about_equal_bytes_and_goes_first() {
        let big = day("big", &[10; 40]);
        let small = [day("a", &[10; 2]), day("b", &[10; 2]), day("c", &[10; 2])];
        let mut days = vec![day("a", &[10; 2]), day("big", &[10; 40])];
        days.extend([day("b", &[10; 2]), day("c", &[10; 2])]);
        // 460 bytes on 2 slots: slices of at most about 115 bytes.
        let shards = cut_days(days, 2);
        let held = holders(&shards, &big);
        let slices = shards.iter().filter(|s| s.folder == "big").count();
        assert!(slices >= 4, "{shards:?}");
        for slice in 0..slices {
            let objects = held.iter().filter(|h| **h == slice).count();
            assert!((8..=12).contains(&objects), "slice {slice}: {objects}");
        }
        // The big day's slices come first, the small days after, uncut.
        assert!(shards[..slices].iter().all(|s| s.folder == "big"));
        for d in &small {
            let held = holders(&shards, d);
            assert!(held.iter().all(|h| *h == held[0] && *h >= slices));
            assert_eq!(shards[held[0]].slices, 1);
        }
        // A key delivered later, between or past the listed ones, is in
        // exactly one slice.
        for key in ["big/000.log.gz.late", "big/039.log.gz.late", "big/", "bigz"] {
            let n = shards
                .iter()
                .filter(|s| s.folder == "big" && s.holds(key))
                .count();
            assert_eq!(n, 1, "{key}");
        }
    }

    #[test]
    fn days_are_not_cut_past_what_their_objects_allow() {
        // One object is one slice, however large; a day's last object
        // never ends a slice, so no slice is empty.
        let shards = cut_days(vec![day("one", &[1000]), day("other", &[1, 1, 1000])], 4);
        assert_eq!(shards.len(), 2, "{shards:?}");
        let shards = cut_days(vec![day("even", &[10; 100])], 64);
        assert_eq!(shards.len(), MAX_DAY_SLICES, "{shards:?}");
        // Uneven sizes: slices of about equal bytes (each at most its share
        // plus the object that crosses it), not of equal objects.
        let mut sizes = vec![1; 30];
        sizes.extend([100; 3]);
        let uneven = day("uneven", &sizes);
        let shards = cut_days(vec![day("uneven", &sizes)], 2);
        assert_eq!(shards.len(), 3, "{shards:?}");
        let held = holders(&shards, &uneven);
        for slice in 0..shards.len() {
            let bytes: u64 = (0..sizes.len())
                .filter(|i| held[*i] == slice)
                .map(|i| sizes[i])
                .sum();
            assert!(
                (100..=330 / 4 + 100).contains(&bytes),
                "slice {slice}: {bytes}"
            );
        }
    }

    #[test]
    fn days_with_nothing_to_read_are_left_out_and_unlisted_keys_kept() {
        let empty = day("empty", &[]);
        let mut partly = day("partly", &[10; 4]);
        partly.complete = false;
        let shards = cut_days(vec![empty, partly], 1);
        assert!(shards.iter().all(|s| s.folder == "partly"), "{shards:?}");
        // Past the listed keys: a slice of its own, open-ended.
        let tail: Vec<&Shard> = shards.iter().filter(|s| s.holds("partly/999")).collect();
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].up_to, None);
        assert_eq!(tail[0].after.as_deref(), Some("partly/003.log.gz"));
        let mut unlisted = day("unlisted", &[]);
        unlisted.complete = false;
        assert_eq!(cut_days(vec![unlisted], 1).len(), 1);
    }
}
