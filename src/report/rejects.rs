//! `flowsql_rejects`: the malformed lines the last statement skipped, as a
//! table (object, line, reason, text), like DuckDB's rejects table.
//!
//! "Last statement" is the most recent one that read flow-log objects:
//! querying this table reads none, so it does not clear what it shows.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::{MalformedLine, ScanReport};

/// The rejects table over one flow-log table's [`ScanReport`];
/// [`crate::new_context`] registers it as `flowsql_rejects`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::common::Result<()> {
/// use datafusion::arrow::array::AsArray;
/// use datafusion::arrow::datatypes::Int64Type;
/// use flowsql::{new_context, SessionOptions};
///
/// // A fixture object with two malformed lines.
/// let location = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/malformed");
/// let ctx = new_context(&[location], &SessionOptions::default()).await?;
/// ctx.sql("SELECT count(*) FROM vpc_flow_logs").await?.collect().await?;
/// let rejects = ctx
///     .sql("SELECT line FROM flowsql_rejects ORDER BY line")
///     .await?
///     .collect()
///     .await?;
/// let lines: Vec<i64> = rejects[0].column(0).as_primitive::<Int64Type>().values().to_vec();
/// assert_eq!(lines, [3, 4]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub(crate) struct RejectsTable {
    /// `None` on a cluster, where the lines stay in the executors.
    report: Option<Arc<ScanReport>>,
    schema: SchemaRef,
}

/// Why a session on a cluster has no rejects to show.
const NOT_ON_A_CLUSTER: &str = "flowsql_rejects is not kept with --cluster: \
     the malformed lines a query skips stay in the executors' processes; \
     run the query without --cluster to list them";

impl RejectsTable {
    /// A table showing the lines `report` kept.
    pub(crate) fn new(report: Arc<ScanReport>) -> Self {
        Self {
            report: Some(report),
            schema: Self::columns(),
        }
    }

    /// The table of a session on a cluster: reading it fails, saying why.
    #[cfg(feature = "cluster")]
    pub(crate) fn on_a_cluster() -> Self {
        Self {
            report: None,
            schema: Self::columns(),
        }
    }

    fn columns() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("object", DataType::Utf8, false),
            Field::new("line", DataType::Int64, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("text", DataType::Utf8, false),
        ]))
    }

    fn batch(&self, lines: &[MalformedLine]) -> Result<RecordBatch> {
        let objects = StringArray::from_iter_values(lines.iter().map(|l| l.object.as_str()));
        let numbers = Int64Array::from_iter_values(
            lines
                .iter()
                .map(|l| i64::try_from(l.line).unwrap_or(i64::MAX)),
        );
        let reasons = StringArray::from_iter_values(lines.iter().map(|l| l.reason.as_str()));
        let texts = StringArray::from_iter_values(lines.iter().map(|l| l.text.as_str()));
        Ok(RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![
                Arc::new(objects),
                Arc::new(numbers),
                Arc::new(reasons),
                Arc::new(texts),
            ],
        )?)
    }
}

#[async_trait]
impl TableProvider for RejectsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
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
        let Some(report) = &self.report else {
            return datafusion::common::plan_err!("{NOT_ON_A_CLUSTER}");
        };
        let batch = self.batch(&report.last_statement_rejects())?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?)
    }
}
