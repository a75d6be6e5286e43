//! Conversion of a delivery, or the part of it a WHERE on path columns
//! picks, into AWS's Hive-compatible Parquet delivery:
//! `AWSLogs/aws-account-id=/aws-service=vpcflowlogs/aws-region=/year=/month=/day=/[hour=/]`,
//! one `….log.parquet` object per source object, named as AWS names them,
//! with AWS's columns and types ([`object`]).
//!
//! It is `COPY vpc_flow_logs TO 'dest'` (or `COPY (SELECT * FROM
//! vpc_flow_logs WHERE <path filters>) TO 'dest'`): [`copy_statement`]
//! recognises those; any other COPY is DataFusion's. The plan is a
//! [`ConvertExec`] over the table's own scan, which it uses only for its
//! listing, so a dry run lists what would be converted. Each object is
//! stored with one PUT once it is complete (on a local disk: written to a
//! temporary name, then renamed), so a conversion stopped half-way leaves
//! no object that looks complete.

mod object;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{TableProvider, TableType, source_as_provider};
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::expr_rewriter::unnormalize_cols;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PhysicalExpr, PlanProperties,
    SendableRecordBatchStream,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{CopyToSource, CopyToStatement};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::location::{self, Location};
use crate::scan::text::{ReadSettings, object_display, unreadable};
use crate::scan::{FlowLogScanExec, FoundObject, ObjectFormat, ObjectListing};
use crate::table::FlowLogTable;
use crate::table::prune::is_path_filter;

/// The conversion `copy` asks for, as a DataFrame whose one row says what
/// was written; `None` when `copy` is not a conversion of a flow-log
/// table (DataFusion's COPY then runs it).
pub(crate) async fn copy_statement(
    ctx: &SessionContext,
    copy: &CopyToStatement,
) -> Result<Option<DataFrame>> {
    // STORED AS PARQUET, or no format and a folder for a target: a target
    // with an extension (`rows.csv`) is a file for DataFusion's COPY.
    let parquet = match copy.stored_as.as_deref() {
        Some(format) => format.eq_ignore_ascii_case("parquet"),
        None => {
            let last = copy
                .target
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("");
            copy.target.ends_with('/') || std::path::Path::new(last).extension().is_none()
        }
    };
    if !parquet || !copy.partitioned_by.is_empty() || !copy.options.is_empty() {
        return Ok(None);
    }
    let select = match &copy.source {
        CopyToSource::Relation(name) => format!("SELECT * FROM {name}"),
        CopyToSource::Query(query) => query.to_string(),
    };
    let plan = ctx.sql(&select).await?.into_optimized_plan()?;
    let Some((provider, filters)) = whole_objects_of(&plan) else {
        return Ok(None);
    };
    let any: &dyn std::any::Any = provider.as_ref();
    let Some(table) = any.downcast_ref::<FlowLogTable>() else {
        return Ok(None);
    };
    let filters = unnormalize_cols(filters);
    if let Some(other) = filters.iter().find(|f| !is_path_filter(f)) {
        let other = other.human_display();
        return Err(DataFusionError::Plan(format!(
            "COPY of the flow-log table converts whole objects, chosen by path columns \
             (aws_account_id, aws_region, date, hour, flow_log_id, file_time); `{other}` is not \
             a filter on them (to write a query's rows instead, select the columns: \
             COPY (SELECT srcaddr, ... WHERE ...) TO ...)"
        )));
    }
    // (Unqualified above, as DataFusion's planner hands filters to a scan.)
    let destination =
        location::resolve_destination(&ctx.runtime_env(), &copy.target, &table.options().s3)
            .await?;
    if let Some(location) = table.overlapping_location(&destination.url, &destination.prefix) {
        return Err(location::location_error(
            &copy.target,
            format!(
                "overlaps the LOCATION {location}; flowsql never writes to a LOCATION: choose a folder outside it"
            ),
        ));
    }
    let state = ctx.state();
    let scan = table.conversion_scan(&state, &filters)?;
    let any: &dyn std::any::Any = scan.as_ref();
    let listing = any
        .downcast_ref::<FlowLogScanExec>()
        .ok_or_else(|| {
            DataFusionError::Internal("a flow-log table's scan is not its own".to_string())
        })?
        .listing();
    let settings = ReadSettings {
        strict: table.options().strict,
        skip_bad_objects: table.options().skip_bad_objects,
        report: table.report(),
        // A conversion reads every object whole, once: the cache would
        // only be filled with columns the Parquet copy holds anyway.
        cache: None,
    };
    let conversion = ConversionTable {
        scan,
        listing,
        destination,
        settings,
    };
    Ok(Some(ctx.read_table(Arc::new(conversion))?))
}

/// The flow-log table `plan` reads and its filters, when `plan` is a
/// `SELECT *` of it with at most a WHERE.
fn whole_objects_of(plan: &LogicalPlan) -> Option<(Arc<dyn TableProvider>, Vec<Expr>)> {
    let mut node = plan;
    let mut filters = Vec::new();
    loop {
        match node {
            LogicalPlan::Projection(projection)
                if projection.expr.len() == projection.input.schema().fields().len()
                    && projection
                        .expr
                        .iter()
                        .zip(projection.input.schema().columns())
                        .all(|(e, c)| matches!(e, Expr::Column(col) if col.name == c.name)) =>
            {
                node = &projection.input;
            }
            LogicalPlan::SubqueryAlias(alias) => node = &alias.input,
            LogicalPlan::Filter(filter) => {
                filters.extend(split_conjunction(&filter.predicate).into_iter().cloned());
                node = &filter.input;
            }
            LogicalPlan::TableScan(scan) => {
                let provider = source_as_provider(&scan.source).ok()?;
                let any: &dyn std::any::Any = provider.as_ref();
                any.downcast_ref::<FlowLogTable>()?;
                let all_columns = scan.projection.as_ref().is_none_or(|p| {
                    p.len() == provider.schema().fields().len()
                        && p.iter().enumerate().all(|(i, c)| i == *c)
                });
                filters.extend(scan.filters.iter().cloned());
                return (all_columns && scan.fetch.is_none()).then_some((provider, filters));
            }
            _ => return None,
        }
    }
}

/// A table of one row, what a conversion wrote, whose scan converts.
#[derive(Debug)]
struct ConversionTable {
    scan: Arc<dyn ExecutionPlan>,
    listing: Arc<dyn ObjectListing>,
    destination: Location,
    settings: ReadSettings,
}

fn result_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("objects_written", DataType::Int64, false),
        Field::new("records", DataType::Int64, false),
        Field::new("bytes_written", DataType::Int64, false),
        Field::new("destination", DataType::Utf8, false),
    ]))
}

#[async_trait]
impl TableProvider for ConversionTable {
    fn schema(&self) -> SchemaRef {
        result_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(ConvertExec::new(
            Arc::clone(&self.scan),
            Arc::clone(&self.listing),
            self.destination.clone(),
            self.settings.clone(),
            projection.cloned(),
        )))
    }
}

/// Converts the objects its child scan lists. The child is never run: it
/// is there so that a dry run ([`crate::list_scans`]) finds its listing.
#[derive(Debug)]
struct ConvertExec {
    scan: Arc<dyn ExecutionPlan>,
    listing: Arc<dyn ObjectListing>,
    destination: Location,
    settings: ReadSettings,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
}

impl ConvertExec {
    fn new(
        scan: Arc<dyn ExecutionPlan>,
        listing: Arc<dyn ObjectListing>,
        destination: Location,
        settings: ReadSettings,
        projection: Option<Vec<usize>>,
    ) -> Self {
        let schema = match &projection {
            Some(p) => Arc::new(
                result_schema()
                    .project(p)
                    .unwrap_or_else(|_| Schema::empty()),
            ),
            None => result_schema(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            scan,
            listing,
            destination,
            settings,
            projection,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for ConvertExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ConvertExec: to AWS's Parquet layout at {}",
            object_display(&self.destination.url, &self.destination.prefix)
        )
    }
}

impl ExecutionPlan for ConvertExec {
    fn name(&self) -> &str {
        "ConvertExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.scan]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("ConvertExec needs its scan".to_string()))?;
        Ok(Arc::new(Self::new(
            scan,
            Arc::clone(&self.listing),
            self.destination.clone(),
            self.settings.clone(),
            self.projection.clone(),
        )))
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let listing = Arc::clone(&self.listing);
        let destination = self.destination.clone();
        let settings = self.settings.clone();
        let projection = self.projection.clone();
        let parallel = context.session_config().target_partitions().max(1);
        let schema = self.properties.eq_properties.schema().clone();
        let converted = futures::stream::once(async move {
            let totals = convert_all(listing, &destination, &settings, parallel).await?;
            let batch = RecordBatch::try_new(
                result_schema(),
                vec![
                    Arc::new(Int64Array::from(vec![totals.objects as i64])),
                    Arc::new(Int64Array::from(vec![totals.records as i64])),
                    Arc::new(Int64Array::from(vec![totals.bytes as i64])),
                    Arc::new(StringArray::from(vec![object_display(
                        &destination.url,
                        &destination.prefix,
                    )])),
                ],
            )?;
            match projection {
                Some(p) => Ok(batch.project(&p)?),
                None => Ok(batch),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, converted)))
    }
}

/// What a conversion wrote.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    objects: u64,
    records: u64,
    bytes: u64,
}

/// Converts every object `listing` finds, `parallel` at a time.
async fn convert_all(
    listing: Arc<dyn ObjectListing>,
    destination: &Location,
    settings: &ReadSettings,
    parallel: usize,
) -> Result<Totals> {
    let (sender, mut receiver) = mpsc::channel(64);
    let lister = Arc::clone(&listing);
    let _listing = SpawnedTask::spawn(async move { lister.run(&sender).await });
    let found = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    found
        .map(|found: Result<FoundObject>| {
            let listing = Arc::clone(&listing);
            let destination = destination.clone();
            let settings = settings.clone();
            async move {
                let found = found?;
                let source = listing.store(found.store);
                let url = listing.store_url(found.store);
                // Each object in its own task, so gunzip, decoding and
                // Parquet encoding use every core.
                SpawnedTask::spawn(async move {
                    convert_one(found, source, url, &destination, &settings).await
                })
                .join_unwind()
                .await
                .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))?
            }
        })
        .buffer_unordered(parallel)
        .try_fold(Totals::default(), |total, one| async move {
            Ok(Totals {
                objects: total.objects + one.objects,
                records: total.records + one.records,
                bytes: total.bytes + one.bytes,
            })
        })
        .await
}

/// Converts one object (a Parquet one is copied: it is already AWS's).
async fn convert_one(
    found: FoundObject,
    source: Arc<dyn ObjectStore>,
    source_url: ObjectStoreUrl,
    destination: &Location,
    settings: &ReadSettings,
) -> Result<Totals> {
    let location = found.file.object_meta.location.clone();
    let name = object_display(&source_url, &location);
    let key = object::destination_key(&destination.prefix, &found.file)?;
    let body = async {
        source
            .get_opts(&location, object_store::GetOptions::default())
            .await?
            .bytes()
            .await
    }
    .await
    .map_err(|e| unreadable(&name, &e))?;
    settings.report.object_opened();
    settings.report.add_compressed_bytes(body.len() as u64);
    let converted = match found.format {
        ObjectFormat::Text => {
            // Gunzip, decoding and encoding: CPU work, off the runtime's
            // threads, so listings, writes and Ctrl-C are not held up.
            let (name, settings) = (name.clone(), settings.clone());
            let body = body.clone();
            tokio::task::spawn_blocking(move || object::text_to_parquet(&name, &body, &settings))
                .await
                .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??
        }
        ObjectFormat::Parquet => {
            object::parquet_rows(&name, &body, settings)?.map(|rows| (body.to_vec(), rows))
        }
    };
    let Some((bytes, records)) = converted else {
        return Ok(Totals::default());
    };
    let size = bytes.len() as u64;
    write(&destination.store, &key, bytes).await.map_err(|e| {
        DataFusionError::from(Error::Unwritable {
            object: object_display(&destination.url, &key),
            problem: location::s3::classify(&e),
        })
    })?;
    settings.report.object_finished();
    Ok(Totals {
        objects: 1,
        records,
        bytes: size,
    })
}

/// Stores a complete object with one PUT (on a local disk a temporary
/// file renamed into place), so it appears whole or not at all.
async fn write(
    store: &Arc<dyn ObjectStore>,
    key: &Path,
    bytes: Vec<u8>,
) -> object_store::Result<()> {
    store
        .put_opts(key, bytes.into(), object_store::PutOptions::default())
        .await
        .map(|_| ())
}
