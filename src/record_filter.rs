//! Filters on record columns that the decoder applies to each line.
//!
//! A query's filters reach the table as expressions; those of the form
//! `column = literal`, `column IN (literals)`, or an `OR` of such tests on
//! one column, are compiled into a [`RecordFilter`]. The decoder compares
//! the line's token with the literals and appends only the rows that pass,
//! so a selective query does not build, and then throw away, columns for
//! every record. The filter is a pre-filter: the table reports such filters
//! as inexact, so DataFusion still evaluates them on the rows that pass,
//! and the decoder only has to never drop a row the filter would keep.
//!
//! Every line is still checked in full first: which lines are malformed
//! never depends on the query.

use std::fmt;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::schema::FieldKind;

/// The values a column must hold for a row to pass one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Integer column values.
    Integers(Vec<i64>),
    /// Text column values, as bytes.
    Texts(Vec<Vec<u8>>),
}

/// One test: the record column `column` holds one of `values` (so a NULL
/// never passes, as in SQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnTest {
    /// The table's name for the column, such as `dstport`.
    pub column: String,
    /// What passes.
    pub accepted: Accepted,
}

impl ColumnTest {
    /// Whether the test can run on a field of `kind`.
    pub(crate) fn fits(&self, kind: FieldKind) -> bool {
        matches!(
            (&self.accepted, kind),
            (Accepted::Texts(_), FieldKind::Text)
                | (Accepted::Integers(_), FieldKind::Int32 | FieldKind::Int64)
        )
    }

    /// Whether a text token (not `-`) passes.
    pub(crate) fn accepts_text(&self, token: &[u8]) -> bool {
        match &self.accepted {
            Accepted::Texts(values) => values.iter().any(|v| v == token),
            Accepted::Integers(_) => false,
        }
    }

    /// Whether an integer value passes.
    pub(crate) fn accepts_integer(&self, value: i64) -> bool {
        match &self.accepted {
            Accepted::Integers(values) => values.contains(&value),
            Accepted::Texts(_) => false,
        }
    }
}

impl fmt::Display for ColumnTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} IN (", self.column)?;
        match &self.accepted {
            Accepted::Integers(values) => {
                for (i, v) in values.iter().enumerate() {
                    write!(f, "{}{v}", if i == 0 { "" } else { ", " })?;
                }
            }
            Accepted::Texts(values) => {
                for (i, v) in values.iter().enumerate() {
                    let text = String::from_utf8_lossy(v).replace('\'', "''");
                    write!(f, "{}'{text}'", if i == 0 { "" } else { ", " })?;
                }
            }
        }
        write!(f, ")")
    }
}

/// The tests a row must all pass (an `AND` of [`ColumnTest`]s).
///
/// ```
/// use datafusion::arrow::datatypes::{DataType, Field, Schema};
/// use datafusion::prelude::{col, lit};
/// use flowsql::record_filter::RecordFilter;
///
/// let records = Schema::new(vec![
///     Field::new("dstport", DataType::Int32, true),
///     Field::new("action", DataType::Utf8View, true),
/// ]);
/// let filters = [
///     col("dstport").in_list(vec![lit(22), lit(3389)], false),
///     col("action").eq(lit("REJECT")),
///     col("dstport").gt(lit(1024)), // not a test the decoder runs
/// ];
/// let filter = RecordFilter::from_filters(&filters, &records);
/// assert_eq!(filter.to_string(), "dstport IN (22, 3389) AND action IN ('REJECT')");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    tests: Vec<ColumnTest>,
}

impl RecordFilter {
    /// Compiles the filters (each one an `AND` term) that are tests on the
    /// record columns of `records`; the others are left to DataFusion.
    pub fn from_filters(filters: &[Expr], records: &Schema) -> Self {
        let tests = filters
            .iter()
            .filter_map(|f| column_test(f, records))
            .collect();
        Self { tests }
    }

    /// The tests, in the order of the filters.
    pub fn tests(&self) -> &[ColumnTest] {
        &self.tests
    }

    /// Whether there is nothing to test.
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }
}

impl fmt::Display for RecordFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, test) in self.tests.iter().enumerate() {
            write!(f, "{}{test}", if i == 0 { "" } else { " AND " })?;
        }
        Ok(())
    }
}

/// `expr` as a test on one record column, if it is one.
fn column_test(expr: &Expr, records: &Schema) -> Option<ColumnTest> {
    let (column, values) = match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (left, right) = (column_test(left, records)?, column_test(right, records)?);
            if left.column != right.column {
                return None;
            }
            let accepted = match (left.accepted, right.accepted) {
                (Accepted::Integers(mut a), Accepted::Integers(b)) => {
                    a.extend(b);
                    Accepted::Integers(a)
                }
                (Accepted::Texts(mut a), Accepted::Texts(b)) => {
                    a.extend(b);
                    Accepted::Texts(a)
                }
                _ => return None,
            };
            return Some(ColumnTest {
                column: left.column,
                accepted,
            });
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), literal @ Expr::Literal(..))
            | (literal @ Expr::Literal(..), Expr::Column(c)) => (c, vec![literal]),
            _ => return None,
        },
        Expr::InList(list) if !list.negated => match list.expr.as_ref() {
            Expr::Column(c) => (c, list.list.iter().collect()),
            _ => return None,
        },
        _ => return None,
    };
    let field = records.field_with_name(&column.name).ok()?;
    let scalars = values.into_iter().map(|v| match v {
        Expr::Literal(scalar, _) => Some(scalar),
        _ => None,
    });
    let accepted = match field.data_type() {
        DataType::Int32 | DataType::Int64 => {
            Accepted::Integers(scalars.map(|s| integer(s?)).collect::<Option<_>>()?)
        }
        DataType::Utf8View | DataType::Utf8 => Accepted::Texts(
            scalars
                .map(|s| Some(s?.try_as_str()??.as_bytes().to_vec()))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    };
    Some(ColumnTest {
        column: column.name.clone(),
        accepted,
    })
}

/// A non-NULL integer literal's value.
fn integer(scalar: &ScalarValue) -> Option<i64> {
    match scalar {
        ScalarValue::Int8(v) => v.map(i64::from),
        ScalarValue::Int16(v) => v.map(i64::from),
        ScalarValue::Int32(v) => v.map(i64::from),
        ScalarValue::Int64(v) => *v,
        ScalarValue::UInt8(v) => v.map(i64::from),
        ScalarValue::UInt16(v) => v.map(i64::from),
        ScalarValue::UInt32(v) => v.map(i64::from),
        ScalarValue::UInt64(v) => v.and_then(|v| i64::try_from(v).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::prelude::{cast, col, lit};

    fn records() -> Schema {
        Schema::new(vec![
            Field::new("dstport", DataType::Int32, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("action", DataType::Utf8View, true),
            Field::new("srcaddr", DataType::Utf8View, true),
        ])
    }

    fn compiled(filter: Expr) -> Option<String> {
        let filter = RecordFilter::from_filters(&[filter], &records());
        (!filter.is_empty()).then(|| filter.to_string())
    }

    #[test]
    fn equalities_lists_and_ors_on_one_column_compile() {
        assert_eq!(
            compiled(col("dstport").eq(lit(22))).as_deref(),
            Some("dstport IN (22)")
        );
        assert_eq!(
            compiled(lit("REJECT").eq(col("action"))).as_deref(),
            Some("action IN ('REJECT')")
        );
        assert_eq!(
            compiled(col("bytes").in_list(vec![lit(1i64), lit(2u8)], false)).as_deref(),
            Some("bytes IN (1, 2)")
        );
        assert_eq!(
            compiled(
                col("srcaddr")
                    .eq(lit("10.0.0.1"))
                    .or(col("srcaddr").in_list(vec![lit("10.0.0.2"), lit("o'k")], false))
            )
            .as_deref(),
            Some("srcaddr IN ('10.0.0.1', '10.0.0.2', 'o''k')")
        );
    }

    #[test]
    fn anything_else_is_left_to_datafusion() {
        for filter in [
            col("dstport").not_eq(lit(22)),
            col("dstport").gt(lit(22)),
            col("dstport").in_list(vec![lit(22)], true),
            col("dstport").in_list(vec![lit(22), col("bytes")], false),
            col("dstport").eq(col("bytes")),
            cast(col("dstport"), DataType::Int64).eq(lit(22i64)),
            col("dstport").eq(lit(ScalarValue::Int32(None))),
            col("dstport").eq(lit("22")),
            col("action").eq(lit(1)),
            col("dstport").eq(lit(22)).or(col("bytes").eq(lit(22))),
            col("dstport").eq(lit(22)).or(col("bytes").gt(lit(22))),
            col("aws_region").eq(lit("eu-west-1")),
            col("dstport").eq(lit(u64::MAX)),
        ] {
            assert_eq!(compiled(filter.clone()), None, "{filter}");
        }
    }

    #[test]
    fn only_the_understood_terms_are_kept() {
        let filter = RecordFilter::from_filters(
            &[col("bytes").gt(lit(0)), col("dstport").eq(lit(443))],
            &records(),
        );
        assert_eq!(filter.tests().len(), 1);
        assert!(filter.tests()[0].accepts_integer(443));
        assert!(!filter.tests()[0].accepts_integer(22));
        assert!(!filter.tests()[0].accepts_text(b"443"));
    }
}
