//! Which of an aggregate's group keys travel as [`crate::text_codes`]
//! codes from the split to the output, and the aggregate (or merge) over
//! rows that carry them.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::empty::EmptyExec;

use super::packed_merge::PackedMerge;
use crate::text_codes;

/// Text group keys carried as `u64` codes (see [`crate::text_codes`]) from
/// the split to the aggregate's output: a top-talkers row of an
/// address and a sum shrinks from about 28 bytes to 16, and the bucket's
/// table hashes and compares integers. A row whose keys all have codes (or
/// are null) goes to its bucket's packed rows, any other to its text rows;
/// whether a key has a code depends only on the key, so each group's rows
/// all go one way, and the two are aggregated apart.
pub(crate) struct KeyPacking {
    /// The input columns packed: the group keys of text.
    pub(crate) columns: Vec<usize>,
    /// The input's schema with those columns as `UInt64`.
    pub(crate) schema: SchemaRef,
    /// The aggregate, over rows of that schema.
    pub(crate) aggregate: Arc<dyn ExecutionPlan>,
    /// The same aggregation done directly, where it is one of sums,
    /// counts, minimums and maximums by packed keys only.
    pub(crate) merge: Option<PackedMerge>,
    /// The output columns that come out as codes, and their text type.
    outputs: Vec<(usize, DataType)>,
    /// The aggregate's own output schema.
    output_schema: SchemaRef,
}

impl fmt::Debug for KeyPacking {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("KeyPacking")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// Where a batch's codes came from.
pub(crate) struct CodesFrom {
    /// Made by the scan for every column ([`text_codes::recall`]), none
    /// packed here from the text.
    pub(crate) scan: bool,
    /// The scan left out the text of some column's coded values.
    pub(crate) textless: bool,
}

/// Which of a batch's rows go to the packed buckets.
pub(crate) enum PackedRows {
    None,
    All,
    /// The rows whose bit is set.
    Some(BooleanBuffer),
}

impl KeyPacking {
    /// Packing for `aggregate`'s text keys, if it groups by any plain text
    /// column (grouping sets are left alone).
    pub(crate) fn try_new(aggregate: &AggregateExec, input_schema: &SchemaRef) -> Option<Self> {
        let group_by = aggregate.group_expr();
        if !group_by.is_single() {
            return None;
        }
        let mut columns = Vec::new();
        let mut outputs = Vec::new();
        for (position, (expr, _)) in group_by.expr().iter().enumerate() {
            let Some(column) = expr.downcast_ref::<Column>() else {
                continue;
            };
            let data_type = input_schema.field(column.index()).data_type();
            if text_codes::packs(data_type) {
                outputs.push((position, data_type.clone()));
                if !columns.contains(&column.index()) {
                    columns.push(column.index());
                }
            }
        }
        if columns.is_empty() {
            return None;
        }
        let fields = input_schema.fields().iter().enumerate().map(|(i, field)| {
            if columns.contains(&i) {
                Arc::new(field.as_ref().clone().with_data_type(DataType::UInt64))
            } else {
                Arc::clone(field)
            }
        });
        let schema = Arc::new(Schema::new_with_metadata(
            fields.collect::<Vec<_>>(),
            input_schema.metadata().clone(),
        ));
        let packed = AggregateExec::try_new(
            *aggregate.mode(),
            group_by.clone(),
            aggregate.aggr_expr().to_vec(),
            aggregate.filter_expr().to_vec(),
            Arc::new(EmptyExec::new(Arc::clone(&schema))),
            aggregate.input_schema(),
        )
        .ok()?;
        let merge = PackedMerge::try_new(aggregate, &schema, &packed.schema());
        Some(Self {
            columns,
            schema,
            merge,
            aggregate: Arc::new(packed),
            outputs,
            output_schema: aggregate.schema(),
        })
    }

    /// `batch` with its key columns as codes, which rows have codes, and
    /// where the codes came from.
    pub(crate) fn pack(&self, batch: &RecordBatch) -> Result<(RecordBatch, PackedRows, CodesFrom)> {
        let mut columns = batch.columns().to_vec();
        let mut packed: Option<BooleanBuffer> = None;
        let mut from = CodesFrom {
            scan: true,
            textless: false,
        };
        for &column in &self.columns {
            // The scan may have made these codes already: its decoder as it
            // read the text, or the cache (filling it, or read from it).
            // Where the decoder left text out, only its codes hold it.
            let (codes, has_code) = match text_codes::recall(&columns[column]) {
                Some((codes, has_code, textless)) => {
                    from.textless |= textless;
                    (codes, has_code)
                }
                None => {
                    from.scan = false;
                    text_codes::pack_column(columns[column].as_ref())?
                }
            };
            columns[column] = Arc::new(codes);
            packed = Some(match packed {
                Some(rows) => &rows & &has_code,
                None => has_code,
            });
        }
        let rows = match packed {
            Some(rows) => match rows.count_set_bits() {
                0 => PackedRows::None,
                all if all == rows.len() => PackedRows::All,
                _ => PackedRows::Some(rows),
            },
            None => PackedRows::None,
        };
        Ok((
            RecordBatch::try_new(Arc::clone(&self.schema), columns)?,
            rows,
            from,
        ))
    }

    /// An output batch of the packed aggregate with its keys as text again.
    pub(crate) fn unpack(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        for (position, data_type) in &self.outputs {
            let codes = columns[*position].as_primitive();
            columns[*position] = text_codes::unpack_column(codes, data_type)?;
        }
        Ok(RecordBatch::try_new(
            Arc::clone(&self.output_schema),
            columns,
        )?)
    }
}
