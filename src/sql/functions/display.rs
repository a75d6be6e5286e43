//! Functions for reading a result at a glance: `bar(value, max [, width])`
//! draws `value` as a bar of Unicode blocks, `width` characters long (40
//! unless given) when `value` reaches `max`, in eighths of a character, as
//! DuckDB's and ClickHouse's `bar` do.
//!
//! NULL in gives NULL out; a value at or below 0, or a `max` at or below 0,
//! gives an empty bar; a value past `max` gives a full one.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Every function of this family.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(Bar::new())]
}

/// Characters a bar is long at most, so a mistyped width cannot make
/// megabyte cells.
const MAX_WIDTH: i64 = 1000;
const DEFAULT_WIDTH: i64 = 40;

/// The bar for `value` of `max`, `width` characters at full length.
fn bar(value: f64, max: f64, width: i64) -> String {
    // Eighths of a character: a full block, then one of seven partial ones.
    const PARTS: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if value.is_nan() || max.is_nan() || value <= 0.0 || max <= 0.0 {
        return String::new();
    }
    let total = width * 8;
    let eighths = ((value / max) * total as f64)
        .round()
        .clamp(0.0, total as f64) as i64;
    let mut out = "█".repeat((eighths / 8) as usize);
    if eighths % 8 > 0 {
        out.push(PARTS[(eighths % 8) as usize - 1]);
    }
    out
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bar {
    signature: Signature,
}

impl Bar {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Bar {
    fn name(&self) -> &str {
        "bar"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types.len() {
            2 => Ok(vec![DataType::Float64, DataType::Float64]),
            3 => Ok(vec![DataType::Float64, DataType::Float64, DataType::Int64]),
            _ => plan_err!("bar takes (value, max [, width])"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let number = |i: usize| -> Result<Vec<Option<f64>>> {
            Ok(cast(&args.args[i].to_array(rows)?, &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .iter()
                .collect())
        };
        let values = number(0)?;
        let maxes = number(1)?;
        let widths: Vec<Option<i64>> = match args.args.get(2) {
            Some(width) => cast(&width.to_array(rows)?, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .iter()
                .collect(),
            None => vec![Some(DEFAULT_WIDTH); rows],
        };
        let mut out = Vec::with_capacity(rows);
        for ((value, max), width) in values.into_iter().zip(maxes).zip(widths) {
            out.push(match (value, max, width) {
                (Some(value), Some(max), Some(width)) => {
                    if !(1..=MAX_WIDTH).contains(&width) {
                        return exec_err!("bar: width {width} is not between 1 and {MAX_WIDTH}");
                    }
                    Some(bar(value, max, width))
                }
                _ => None,
            });
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_are_drawn_in_eighths() {
        assert_eq!(bar(10.0, 10.0, 4), "████");
        assert_eq!(bar(5.0, 10.0, 4), "██");
        // 1/16 of 4 characters is a quarter of one: two eighths.
        assert_eq!(bar(1.0, 16.0, 4), "▎");
        assert_eq!(bar(1.0, 8.0, 4), "▌");
        assert_eq!(bar(3.0, 8.0, 1), "▍");
        assert_eq!(bar(20.0, 10.0, 3), "███");
        assert_eq!(bar(0.0, 10.0, 3), "");
        assert_eq!(bar(-1.0, 10.0, 3), "");
        assert_eq!(bar(1.0, 0.0, 3), "");
        assert_eq!(bar(f64::NAN, 1.0, 3), "");
    }
}
