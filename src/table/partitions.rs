//! `SHOW PARTITIONS`: the folders that hold flow-log objects, from a
//! listing of the whole tree; no object is read.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::common::Result;

use super::FlowLogTable;
use super::listing::list_all;
use crate::catalogue;

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
        // The folder columns: account, region, date and hour.
        let mut fields: Vec<_> = catalogue::path_fields().into_iter().take(4).collect();
        fields.extend([
            Arc::new(Field::new("objects", DataType::Int64, false)),
            Arc::new(Field::new("compressed_bytes", DataType::Int64, false)),
        ]);
        let schema = Arc::new(Schema::new(fields));
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
