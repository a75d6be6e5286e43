//! Trino's date and time field functions, which DataFusion lacks by these
//! names: each is `date_part` with Trino's field and a BIGINT result.
//!
//! | function | field | Trino's meaning |
//! |---|---|---|
//! | `day_of_week(x)`, `dow(x)` | `isodow` | ISO day of the week, Monday = 1 … Sunday = 7 |
//! | `day_of_year(x)`, `doy(x)` | `doy` | 1 … 366 |
//! | `year`, `quarter`, `month` | | calendar fields |
//! | `week(x)`, `week_of_year(x)` | `week` | ISO week of the year |
//! | `day(x)`, `day_of_month(x)` | `day` | 1 … 31 |
//! | `hour`, `minute`, `second` | | time fields |

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::datetime::date_part;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, cast, lit,
};

/// (name, aliases, date_part field)
const FIELDS: &[(&str, &[&str], &str)] = &[
    ("day_of_week", &["dow"], "isodow"),
    ("day_of_year", &["doy"], "doy"),
    ("year", &[], "year"),
    ("quarter", &[], "quarter"),
    ("month", &[], "month"),
    ("week", &["week_of_year"], "week"),
    ("day", &["day_of_month"], "day"),
    ("hour", &[], "hour"),
    ("minute", &[], "minute"),
    ("second", &[], "second"),
];

/// Every function of this family.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    FIELDS
        .iter()
        .map(|(name, aliases, field)| {
            ScalarUDF::new_from_impl(DateField {
                name,
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                field,
                signature: Signature::any(1, Volatility::Immutable),
            })
        })
        .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateField {
    name: &'static str,
    aliases: Vec<String>,
    field: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for DateField {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    /// Becomes `CAST(date_part(field, x) AS BIGINT)`, so the optimizer sees
    /// an ordinary expression.
    fn simplify(&self, mut args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let arg = args.remove(0);
        Ok(ExprSimplifyResult::Simplified(cast(
            date_part().call(vec![lit(self.field), arg]),
            DataType::Int64,
        )))
    }

    /// Used only where expressions are not simplified first.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let udf = date_part();
        let field = ScalarValue::Utf8(Some(self.field.to_string()));
        let arg_fields = vec![
            Arc::new(Field::new("field", DataType::Utf8, false)),
            Arc::clone(&args.arg_fields[0]),
        ];
        let return_field = udf.return_field_from_args(ReturnFieldArgs {
            arg_fields: &arg_fields,
            scalar_arguments: &[Some(&field), None],
        })?;
        let value = udf.invoke_with_args(ScalarFunctionArgs {
            args: vec![ColumnarValue::Scalar(field), args.args[0].clone()],
            arg_fields,
            number_rows: args.number_rows,
            return_field,
            config_options: args.config_options,
        })?;
        value.cast_to(&DataType::Int64, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Date32Array};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::common::config::ConfigOptions;

    #[test]
    fn invoking_without_simplification_gives_the_same_values() {
        let udf = functions()
            .into_iter()
            .find(|f| f.name() == "day_of_week")
            .unwrap();
        // 2024-01-14 (Sunday) and 2024-01-15 (Monday), as days since 1970.
        let dates = Date32Array::from(vec![Some(19736), Some(19737), None]);
        let out = udf
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![ColumnarValue::Array(Arc::new(dates))],
                arg_fields: vec![Arc::new(Field::new("d", DataType::Date32, true))],
                number_rows: 3,
                return_field: Arc::new(Field::new("out", DataType::Int64, true)),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap()
            .to_array(3)
            .unwrap();
        let values: Vec<Option<i64>> = out.as_primitive::<Int64Type>().iter().collect();
        assert_eq!(values, [Some(7), Some(1), None]);
    }
}
