//! How flowsql's table and scans travel in a cluster's plans.
//!
//! The client sends the scheduler a logical plan, in which the table is its
//! [`TableSpec`]; the scheduler sends each task a physical plan, in which a
//! sharded scan is the spec, the query's filters (DataFusion's own
//! encoding), the plan's time, the columns and that task's shards. Both
//! wrap Ballista's codecs, which handle everything else, and carry the
//! flowsql version, so a process of another version refuses the plan
//! instead of misreading it.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::Serializeable;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use crate::aggregate::{BucketedAggregateExec, PartialAggregateByViewExec};
use crate::scan::FlowLogScanExec;
use crate::scan::shards::{Shard, ShardSource};
use crate::table::FlowLogTable;
use crate::table::shards::{ShardPlan, TableSpec};

/// What every flowsql payload starts with; Ballista's own never do (they
/// are protobuf messages, whose first byte is a field tag).
const MAGIC: &[u8] = b"\0flowsql\0";

/// The table as the logical plan carries it.
#[derive(Serialize, Deserialize)]
struct TablePayload {
    flowsql: String,
    table: TableSpec,
}

/// A sharded scan as a task's physical plan carries it.
#[derive(Serialize, Deserialize)]
struct ScanPayload {
    flowsql: String,
    table: TableSpec,
    /// Each filter in DataFusion's protobuf encoding.
    filters: Vec<Vec<u8>>,
    as_of_micros: i64,
    columns: Option<Vec<usize>>,
    /// Rows each partition may stop after (a pushed-down LIMIT).
    limit: Option<usize>,
    groups: Vec<Vec<Shard>>,
}

fn write_payload(payload: &impl Serialize, buf: &mut Vec<u8>) -> Result<()> {
    buf.extend_from_slice(MAGIC);
    serde_json::to_writer(buf, payload)
        .map_err(|e| DataFusionError::Internal(format!("cannot encode a flowsql plan: {e}")))
}

/// The flowsql payload in `buf`, if it holds one.
fn read_payload<T: for<'a> Deserialize<'a>>(buf: &[u8]) -> Option<Result<T>> {
    let body = buf.strip_prefix(MAGIC)?;
    Some(serde_json::from_slice::<T>(body).map_err(|e| {
        DataFusionError::Plan(format!(
            "a plan from a client or scheduler of another flowsql version cannot be read \
             (this process runs flowsql {}): {e}",
            env!("CARGO_PKG_VERSION")
        ))
    }))
}

fn check_version(theirs: &str) -> Result<()> {
    if theirs == env!("CARGO_PKG_VERSION") {
        return Ok(());
    }
    Err(DataFusionError::Plan(format!(
        "the plan comes from flowsql {theirs}, and this process runs flowsql {}: \
         run the same version on the client, the scheduler and the executors",
        env!("CARGO_PKG_VERSION")
    )))
}

/// Ballista's logical codec with flowsql's table.
#[derive(Debug, Default)]
pub(crate) struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let Some(payload) = read_payload::<TablePayload>(buf) else {
            return self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx);
        };
        let payload = payload?;
        check_version(&payload.flowsql)?;
        let table = FlowLogTable::from_spec(&payload.table, &ctx.runtime_env())?;
        Ok(Arc::new(table))
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let any: &dyn std::any::Any = node.as_ref();
        match any.downcast_ref::<FlowLogTable>() {
            Some(table) => write_payload(
                &TablePayload {
                    flowsql: env!("CARGO_PKG_VERSION").to_string(),
                    table: table.spec(),
                },
                buf,
            ),
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }
}

/// Ballista's physical codec with flowsql's sharded scan.
#[derive(Debug, Default)]
pub(crate) struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(payload) = read_payload::<ScanPayload>(buf) else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let payload = payload?;
        check_version(&payload.flowsql)?;
        let table = FlowLogTable::from_spec(&payload.table, &ctx.runtime_env())?;
        let filters = payload
            .filters
            .iter()
            .map(|bytes| Expr::from_bytes_with_ctx(bytes, ctx))
            .collect::<Result<Vec<_>>>()?;
        let as_of = DateTime::<Utc>::from_timestamp_micros(payload.as_of_micros)
            .ok_or_else(|| DataFusionError::Plan("a plan's time is out of range".to_string()))?;
        let state = SessionStateBuilder::new()
            .with_config(ctx.session_config().clone())
            .with_runtime_env(ctx.runtime_env())
            .build();
        let plan = ShardPlan::try_new(&table, &state, &filters, as_of)?;
        table.shards_exec(
            plan,
            payload.columns.as_ref(),
            payload.groups,
            payload.limit,
        )
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let any: &dyn std::any::Any = node.as_ref();
        if any.is::<FlowLogScanExec>()
            || any.is::<BucketedAggregateExec>()
            || any.is::<PartialAggregateByViewExec>()
        {
            return Err(DataFusionError::Internal(format!(
                "{} runs in one process only, and the cluster's session planned it",
                node.name()
            )));
        }
        let Some(config) = any
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        let Some(source) = config.file_source().downcast_ref::<ShardSource>() else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        let plan = source
            .table()
            .as_any()
            .downcast_ref::<ShardPlan>()
            .ok_or_else(|| DataFusionError::Internal("a shard source of no plan".to_string()))?;
        let (table, filters, as_of) = plan.parts();
        let groups = config
            .file_groups
            .iter()
            .map(|group| {
                group
                    .files()
                    .iter()
                    .map(|file| Shard::of(file).cloned())
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let payload = ScanPayload {
            flowsql: env!("CARGO_PKG_VERSION").to_string(),
            table: table.clone(),
            filters: filters
                .iter()
                .map(|f| f.to_bytes().map(|b| b.to_vec()))
                .collect::<Result<_>>()?,
            as_of_micros: as_of.timestamp_micros(),
            columns: source.columns().cloned(),
            limit: config.limit,
            groups,
        };
        write_payload(&payload, buf)
    }
}
