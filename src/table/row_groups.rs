//! Which of a query's filters may prune a Parquet object's row groups.
//!
//! DataFusion's Parquet reader skips a row group when its statistics show
//! no row can pass the predicate. It judges the file's values, but flowsql
//! reads a `-` in a string column as NULL, so a filter that a NULL passes
//! (`vpc_id IS NULL`, `coalesce(...)`) would skip row groups holding rows
//! that pass. Only filters that no NULL string can pass are given to it:
//! for those a `-` read as `-` can only keep more, and the filter above
//! the scan still decides every row.
//!
//! Filters on path columns are left out: the listing has already applied
//! them to whole objects, and a predicate over record columns alone prunes
//! every object of one column layout alike, so the reader builds it once
//! per layout rather than once per object.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_plan::PhysicalExpr;

/// The physical predicate over `table` (record and path columns) made of
/// the conjuncts of `filters` that read record columns only and are safe
/// to prune with; `None` if none is.
pub(super) fn parquet_predicate(
    state: &dyn Session,
    filters: &[Expr],
    table: &SchemaRef,
    record_columns: &SchemaRef,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    let safe: Vec<Expr> = filters
        .iter()
        .flat_map(split_conjunction)
        .filter(|e| {
            !e.is_volatile()
                && e.column_refs()
                    .iter()
                    .all(|c| record_columns.field_with_name(&c.name).is_ok())
                && no_null_string_passes(e, record_columns)
        })
        .cloned()
        .collect();
    let Some(predicate) = conjunction(safe) else {
        return Ok(None);
    };
    let schema = DFSchema::try_from(table.as_ref().clone())?;
    Ok(Some(state.create_physical_expr(predicate, &schema)?))
}

/// Whether `expr` is false or NULL whenever a string record column it
/// reads is NULL (trivially so when it reads none).
fn no_null_string_passes(expr: &Expr, record_columns: &SchemaRef) -> bool {
    let is_string = |e: &Expr| match e {
        Expr::Column(c) => record_columns
            .field_with_name(&c.name)
            .is_ok_and(|f| matches!(f.data_type(), DataType::Utf8View)),
        _ => false,
    };
    let reads_strings = expr
        .column_refs()
        .iter()
        .any(|c| is_string(&Expr::Column((*c).clone())));
    if !reads_strings {
        return true;
    }
    let literal = |e: &Expr| matches!(e, Expr::Literal(value, _) if !value.is_null());
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => {
                no_null_string_passes(left, record_columns)
                    && no_null_string_passes(right, record_columns)
            }
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::LikeMatch
            | Operator::NotLikeMatch
            | Operator::ILikeMatch
            | Operator::NotILikeMatch => {
                (is_string(left) && literal(right)) || (literal(left) && is_string(right))
            }
            _ => false,
        },
        Expr::Like(like) => is_string(&like.expr) && literal(&like.pattern),
        Expr::InList(list) => is_string(&list.expr) && list.list.iter().all(literal),
        Expr::IsNotNull(inner) => is_string(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::{col, lit};

    fn records() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("action", DataType::Utf8View, true),
            Field::new("srcport", DataType::Int32, true),
        ]))
    }

    #[test]
    fn only_filters_no_null_passes_prune() {
        let schema = records();
        let safe = [
            col("action").eq(lit("ACCEPT")),
            col("action").not_eq(lit("REJECT")),
            col("action").in_list(vec![lit("A"), lit("B")], false),
            col("action").like(lit("ACC%")),
            col("action").is_not_null(),
            col("srcport").is_null(),
            col("srcport").gt(lit(10)).or(col("action").eq(lit("A"))),
        ];
        for e in safe {
            assert!(no_null_string_passes(&e, &schema), "{e}");
        }
        let unsafe_ = [
            col("action").is_null(),
            col("action").eq(lit("A")).or(col("action").is_null()),
            datafusion::functions::expr_fn::coalesce(vec![col("action"), lit("x")]).eq(lit("x")),
            col("action").eq(col("action")),
        ];
        for e in unsafe_ {
            assert!(!no_null_string_passes(&e, &schema), "{e}");
        }
    }
}
