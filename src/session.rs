//! The one place that wires a ready [`SessionContext`]: stores, the flow-log
//! table and its settings. Every front end (one-shot, REPL, library) uses it.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::aggregate::{BucketFinalAggregation, Bucketing, PartialAggregationByView};
use crate::sql::functions::ipaddress::IpAddressTypePlanner;

use crate::report::REJECTS_TABLE;
use crate::report::ScanReport;
use crate::report::rejects::RejectsTable;
use crate::table::{FlowLogOptions, FlowLogTable};

/// The default table name, as in AWS's Athena documentation.
pub const DEFAULT_TABLE_NAME: &str = "vpc_flow_logs";

/// What [`new_context`] builds.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The name the table is registered under.
    pub table_name: String,
    /// How the table lists and reads.
    pub table: FlowLogOptions,
    /// Rows per record batch (DataFusion's default when `None`).
    pub batch_size: Option<usize>,
    /// Bytes that sorts, joins and aggregations may hold; past it they
    /// spill to temporary files (or fail, saying so, where they cannot).
    /// `None`: no limit.
    pub memory_limit: Option<usize>,
    /// How grouped aggregations are finished one hash bucket at a time
    /// (the bucketed final aggregation); `None` leaves DataFusion's own
    /// final aggregation in place.
    pub bucketing: Option<Bucketing>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            table_name: DEFAULT_TABLE_NAME.to_string(),
            table: FlowLogOptions::default(),
            batch_size: None,
            memory_limit: None,
            bucketing: Some(Bucketing::default()),
        }
    }
}

/// Makes a session with the flow logs at `locations` registered as one
/// table, and beside it `flowsql_rejects`, the malformed lines the last
/// statement that read objects skipped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::common::Result<()> {
/// use flowsql::{new_context, SessionOptions};
///
/// let location = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bucket");
/// let ctx = new_context(&[location], &SessionOptions::default()).await?;
/// let df = ctx
///     .sql("SELECT aws_region, count(*) AS n FROM vpc_flow_logs GROUP BY aws_region ORDER BY aws_region")
///     .await?;
/// let batches = df.collect().await?;
/// assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() >= 2);
/// # Ok(())
/// # }
/// ```
pub async fn new_context(
    locations: &[impl AsRef<str>],
    options: &SessionOptions,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(true);
    // Athena (Trino) sorts NULLs last in both directions, so a top-N by
    // bytes does not open with NODATA rows; DataFusion's default follows
    // Postgres (NULLs first when descending).
    config.options_mut().sql_parser.default_null_ordering = "nulls_last".to_string();
    if let Some(batch_size) = options.batch_size {
        config = config.with_batch_size(batch_size);
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        // DataFusion's greedy pool, which names the largest consumers when
        // a statement cannot fit.
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.build_arc()?)
        .with_default_features()
        .with_type_planner(Arc::new(IpAddressTypePlanner))
        .with_physical_optimizer_rule(Arc::new(PartialAggregationByView));
    if let Some(bucketing) = options.bucketing {
        state =
            state.with_physical_optimizer_rule(Arc::new(BucketFinalAggregation::new(bucketing)));
    }
    let state = state.build();
    let ctx = SessionContext::new_with_state(state);
    crate::sql::functions::register_all(&ctx)?;
    let table = FlowLogTable::try_new(&ctx.runtime_env(), locations, options.table.clone()).await?;
    let rejects = RejectsTable::new(table.report());
    ctx.register_table(options.table_name.as_str(), Arc::new(table))?;
    ctx.register_table(REJECTS_TABLE, Arc::new(rejects))?;
    Ok(ctx)
}

/// What the user should know about how the flow-log table registered as
/// `table_name` reaches its locations (for example a corrected region).
pub async fn table_notes(ctx: &SessionContext, table_name: &str) -> Result<Vec<String>> {
    let provider = ctx.table_provider(table_name).await?;
    let any: &dyn std::any::Any = provider.as_ref();
    Ok(any
        .downcast_ref::<FlowLogTable>()
        .map(|t| t.notes().to_vec())
        .unwrap_or_default())
}

/// For each column of the flow-log table registered as `table_name`, in
/// table order, whether the flow-log formats seen so far record it:
/// `"path"` (its value comes from the object's key), `"yes"` (the header or
/// footer of some object seen records the field), `"no"` (none does: the
/// column is NULL in every record read so far) or `"not yet seen"` (no
/// object has been sampled or read yet). `None` when `table_name` is not a
/// flow-log table.
pub async fn recorded_columns(
    ctx: &SessionContext,
    table_name: &str,
) -> Result<Option<Vec<(String, &'static str)>>> {
    let provider = ctx.table_provider(table_name).await?;
    let any: &dyn std::any::Any = provider.as_ref();
    let Some(table) = any.downcast_ref::<FlowLogTable>() else {
        return Ok(None);
    };
    let recorded = table.report().recorded_columns();
    let path: Vec<&str> = crate::catalogue::path_column_names().collect();
    Ok(Some(
        provider
            .schema()
            .fields()
            .iter()
            .map(|field| {
                let name = field.name();
                let origin = if path.contains(&name.as_str()) {
                    "path"
                } else {
                    match &recorded {
                        None => "not yet seen",
                        Some(recorded) if recorded.contains(name) => "yes",
                        Some(_) => "no",
                    }
                };
                (name.clone(), origin)
            })
            .collect(),
    ))
}

/// The scan report of the flow-log table registered as `table_name`.
pub async fn scan_report(ctx: &SessionContext, table_name: &str) -> Result<Arc<ScanReport>> {
    let provider = ctx.table_provider(table_name).await?;
    let any: &dyn std::any::Any = provider.as_ref();
    any.downcast_ref::<FlowLogTable>()
        .map(FlowLogTable::report)
        .ok_or_else(|| DataFusionError::Plan(format!("`{table_name}` is not a flow-log table")))
}
