//! The table on a cluster: what a plan carries of it ([`TableSpec`]), and
//! its scans cut into shards ([`ShardPlan`]).
//!
//! A cluster's scheduler rebuilds the table from its spec without any
//! request to a store, then plans a scan as the day folders its filters
//! allow (found by the same delimiter listings as in one process, never by
//! listing objects), each day cut into a few slices when the query covers
//! fewer days than the cluster has task slots. Executors rebuild the same
//! scan from the spec, the query's filters and the plan's time, and list
//! and read only their own shards.

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
use futures::StreamExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::listing::{Root, ScanListing, ShardOnly, day_folders};
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
const MAX_DAY_PARTS: u32 = 16;

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
                Ok(Root {
                    store: location::store_for(runtime, &url, &options.s3)?,
                    url,
                    awslogs: Path::from(awslogs.as_str()),
                    report: Arc::clone(&report),
                })
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

    /// A scan of the day folders `filters` allow, one shard (or a few
    /// slices) per folder, each a partition of its own.
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
            let mut found = day_folders(root, &predicate, &window, &self.options).boxed();
            while let Some(folder) = found.next().await {
                folders.push((index, folder?.to_string()));
            }
        }
        let slots = state.config_options().execution.target_partitions.max(1);
        // Fewer days than slots: each day cut so that every slot has work.
        let parts = (slots * 2)
            .div_ceil(folders.len().max(1))
            .clamp(1, MAX_DAY_PARTS as usize) as u32;
        let shards: Vec<Shard> = folders
            .into_iter()
            .flat_map(|(root, folder)| {
                (0..parts).map(move |part| Shard {
                    root,
                    folder: folder.clone(),
                    part,
                    parts,
                })
            })
            .collect();
        // One task per shard: executors take tasks as they free up, so
        // uneven days spread over the cluster whatever its size.
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
