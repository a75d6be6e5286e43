//! SQL behaviour as sqllogictest files (`tests/slt/*.slt`), each run against
//! a fresh session over the fixture tree.

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

use crate::support::*;

struct FlowSql {
    ctx: SessionContext,
}

#[async_trait]
impl sqllogictest::AsyncDB for FlowSql {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let df = flowsql::sql(&self.ctx, sql).await?;
        let types: Vec<DefaultColumnType> = df
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
                    DefaultColumnType::FloatingPoint
                }
                _ => DefaultColumnType::Text,
            })
            .collect();
        let batches = df.collect().await?;
        if types.is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let rows = batches_to_rows(&batches)
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| {
                        if v.is_empty() {
                            "(empty)".to_string()
                        } else {
                            v
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "flowsql"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// The `.slt` files, in name order.
fn slt_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn sql_logic_tests() {
    let files = slt_files();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    // Each file without the cache, then twice through one cache folder:
    // answers filling it, then answers read from it, must be the same.
    let folder = cache_folder();
    for (pass, cache) in [
        ("", None),
        (" (cache filling)", Some(&folder)),
        (" (cache filled)", Some(&folder)),
    ] {
        for file in &files {
            let mut runner = sqllogictest::Runner::new(|| async {
                Ok(FlowSql {
                    ctx: match cache {
                        Some(folder) => cached_context(&bucket(), true, folder).await,
                        None => local_context(&bucket(), true).await,
                    },
                })
            });
            if let Err(e) = runner.run_file_async(file).await {
                failures.push(format!("{}{pass}: {e}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every file again on a cluster in this process (Ballista's standalone
/// mode), with its adaptive planner on and off.
#[cfg(feature = "cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_logic_tests_on_a_cluster() {
    let files = slt_files();
    let mut failures = Vec::new();
    for adaptive in ["true", "false"] {
        for file in &files {
            let mut runner = sqllogictest::Runner::new(|| async {
                let config = flowsql::cluster::session_config()
                    .set_str("ballista.planner.adaptive.enabled", adaptive)
                    .with_target_partitions(4);
                let ctx = flowsql::cluster::standalone(
                    &[bucket().to_str().unwrap()],
                    &options(true),
                    config,
                )
                .await?;
                Ok(FlowSql { ctx })
            });
            if let Err(e) = runner.run_file_async(file).await {
                failures.push(format!("{} (adaptive {adaptive}): {e}", file.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
