//! Address group keys through a cluster's shuffle as integers.
//!
//! In one process flowsql's bucketed aggregate carries text keys of digits
//! and dots (IPv4 addresses) as `u64` codes ([`crate::text_codes`]); on a
//! cluster, DataFusion's own aggregate shuffles its partial groups with
//! the addresses as text. This rule, run where the scheduler plans, groups
//! by each address column's code and, for text without a code, the text
//! itself (null when there is a code), and turns the two back into the
//! text above the aggregate. For any text that is the same grouping, so
//! the answers are unchanged; the shuffled rows carry an integer and a
//! null instead of a string.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::{nullif::nullif, zip::zip};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DataFusionError, Result};
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, LogicalPlan, Projection, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::text_codes;

/// The columns whose group keys travel as codes: the flow log's addresses.
const ADDRESS_COLUMNS: [&str; 4] = ["srcaddr", "dstaddr", "pkt_srcaddr", "pkt_dstaddr"];

/// The functions the rewritten plans call, for the scheduler's and the
/// executors' registries.
pub(crate) fn functions() -> [ScalarUDF; 3] {
    [
        ScalarUDF::from(KeyCode::new()),
        ScalarUDF::from(KeyRest::new()),
        ScalarUDF::from(KeyText::new()),
    ]
}

/// Rewrites `GROUP BY srcaddr, ...` into a grouping by codes (see the
/// module's documentation).
#[derive(Debug, Default)]
pub(crate) struct PackedAddressKeys;

impl OptimizerRule for PackedAddressKeys {
    fn name(&self) -> &str {
        "flowsql_packed_address_keys"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else {
            return Ok(Transformed::no(plan));
        };
        let input_schema = aggregate.input.schema();
        let packed: Vec<bool> = aggregate
            .group_expr
            .iter()
            .map(|expr| match expr {
                Expr::Column(column) => {
                    ADDRESS_COLUMNS.contains(&column.name.as_str())
                        && input_schema
                            .qualified_field_from_column(column)
                            // The rebuilt text is nullable: a column that is
                            // not keeps its type only left alone.
                            .is_ok_and(|(_, field)| {
                                field.data_type() == &DataType::Utf8View && field.is_nullable()
                            })
                }
                _ => false,
            })
            .collect();
        if !packed.contains(&true) {
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        let (code, rest, text) = (
            Arc::new(ScalarUDF::from(KeyCode::new())),
            Arc::new(ScalarUDF::from(KeyRest::new())),
            Arc::new(ScalarUDF::from(KeyText::new())),
        );
        let mut group_expr = Vec::new();
        for (i, (expr, packed)) in aggregate.group_expr.iter().zip(&packed).enumerate() {
            if *packed {
                group_expr.push(code.call(vec![expr.clone()]).alias(code_name(i)));
                group_expr.push(rest.call(vec![expr.clone()]).alias(rest_name(i)));
            } else {
                group_expr.push(expr.clone());
            }
        }
        let inner = Aggregate::try_new(
            Arc::clone(&aggregate.input),
            group_expr,
            aggregate.aggr_expr.clone(),
        )?;
        let inner_schema = Arc::clone(&inner.schema);
        // Above it, each output column of the original aggregate, in order.
        let mut exprs = Vec::new();
        let mut at = 0;
        for (i, packed) in packed.iter().enumerate() {
            let (qualifier, field) = aggregate.schema.qualified_field(i);
            if *packed {
                exprs.push(
                    text.call(vec![
                        Expr::Column(Column::from_name(code_name(i))),
                        Expr::Column(Column::from_name(rest_name(i))),
                    ])
                    .alias_qualified(qualifier.cloned(), field.name()),
                );
                at += 2;
            } else {
                exprs.push(Expr::Column(Column::from(inner_schema.qualified_field(at))));
                at += 1;
            }
        }
        for _ in &aggregate.aggr_expr {
            exprs.push(Expr::Column(Column::from(inner_schema.qualified_field(at))));
            at += 1;
        }
        let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(inner)))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    }
}

fn code_name(i: usize) -> String {
    format!("__flowsql_key_code_{i}")
}

fn rest_name(i: usize) -> String {
    format!("__flowsql_key_rest_{i}")
}

/// `flowsql_key_code(text)`: the text's code, or null (for null, and for
/// text that has no code).
#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyCode {
    signature: Signature,
}

impl KeyCode {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KeyCode {
    fn name(&self) -> &str {
        "flowsql_key_code"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let texts = args.args[0].to_array(args.number_rows)?;
        let (codes, coded) = text_codes::pack_column(texts.as_ref())?;
        // Null where the text is null or has no code.
        let without_code = BooleanArray::new(!&coded, None);
        let codes = nullif(&codes, &without_code)?;
        Ok(ColumnarValue::Array(codes))
    }
}

/// `flowsql_key_rest(text)`: the text where it has no code, else null; as
/// `Utf8`, whose nulls take 4 bytes a row in the shuffle (a view's 16).
#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyRest {
    signature: Signature,
}

impl KeyRest {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KeyRest {
    fn name(&self) -> &str {
        "flowsql_key_rest"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let texts = args.args[0].to_array(args.number_rows)?;
        let (_, coded) = text_codes::pack_column(texts.as_ref())?;
        let rest = nullif(&texts, &BooleanArray::new(coded, None))?;
        Ok(ColumnarValue::Array(cast(&rest, &DataType::Utf8)?))
    }
}

/// `flowsql_key_text(code, rest)`: the text of `code`, or `rest` where the
/// code is null, as `Utf8View` (the address columns' type).
#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyText {
    signature: Signature,
}

impl KeyText {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KeyText {
    fn name(&self) -> &str {
        "flowsql_key_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8View)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let codes = args.args[0].to_array(args.number_rows)?;
        let rest = cast(
            &args.args[1].to_array(args.number_rows)?,
            &DataType::Utf8View,
        )?;
        let codes: &UInt64Array = codes
            .as_primitive_opt()
            .ok_or_else(|| DataFusionError::Internal("flowsql_key_text: codes".to_string()))?;
        let texts = text_codes::unpack_column(codes, rest.data_type())?;
        let has_code = BooleanArray::new(
            codes.nulls().map_or_else(
                || datafusion::arrow::buffer::BooleanBuffer::new_set(codes.len()),
                |nulls| nulls.inner().clone(),
            ),
            None,
        );
        Ok(ColumnarValue::Array(zip(&has_code, &texts, &rest)?))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{ArrayRef, StringViewArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    use super::*;

    fn call(udf: &dyn ScalarUDFImpl, args: Vec<ArrayRef>) -> ArrayRef {
        let rows = args[0].len();
        let arg_fields = args
            .iter()
            .map(|a| Arc::new(Field::new("a", a.data_type().clone(), true)))
            .collect();
        let types: Vec<DataType> = args.iter().map(|a| a.data_type().clone()).collect();
        let return_field = Arc::new(Field::new("r", udf.return_type(&types).unwrap(), true));
        let result = udf
            .invoke_with_args(ScalarFunctionArgs {
                args: args.into_iter().map(ColumnarValue::Array).collect(),
                arg_fields,
                number_rows: rows,
                return_field,
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap();
        result.to_array(rows).unwrap()
    }

    #[test]
    fn code_and_rest_give_back_every_text() {
        let texts: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("10.0.0.1"),
            None,
            Some("2001:db8::1"),
            Some("192.168.100.200"),
            Some("-"),
            Some(""),
            Some("010.0.0.1"),
        ]));
        let codes = call(&KeyCode::new(), vec![Arc::clone(&texts)]);
        let rest = call(&KeyRest::new(), vec![Arc::clone(&texts)]);
        // Digits-and-dots text has a code and no rest; other text the reverse.
        assert!(codes.is_valid(0) && rest.is_null(0));
        assert!(codes.is_null(1) && rest.is_null(1));
        assert!(codes.is_null(2) && rest.is_valid(2));
        assert_ne!(
            codes
                .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                .value(0),
            codes
                .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                .value(6),
        );
        let back = call(&KeyText::new(), vec![codes, rest]);
        assert_eq!(back.as_ref(), texts.as_ref());
    }
}
