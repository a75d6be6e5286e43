//! Trino's string functions where DataFusion lacks one or differs:
//! `regexp_extract(s, pattern [, group])` (the first match, NULL when none)
//! and `split_part(s, delimiter, index)` (NULL past the last field, where
//! DataFusion gives an empty string).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

/// Every function of this family.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(RegexpExtract::new()),
        ScalarUDF::new_from_impl(SplitPart::new()),
    ]
}

/// Each argument as text, one value per row (a literal repeated).
fn text_column(value: &ColumnarValue, rows: usize) -> Result<StringArray> {
    Ok(cast(&value.to_array(rows)?, &DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

fn integer_column(value: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    Ok(cast(&value.to_array(rows)?, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .iter()
        .collect())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

impl RegexpExtract {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types.len() {
            2 => Ok(vec![DataType::Utf8, DataType::Utf8]),
            3 => Ok(vec![DataType::Utf8, DataType::Utf8, DataType::Int64]),
            _ => plan_err!("regexp_extract takes (string, pattern [, group])"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let strings = text_column(&args.args[0], rows)?;
        let patterns = text_column(&args.args[1], rows)?;
        let groups = match args.args.get(2) {
            Some(group) => integer_column(group, rows)?,
            None => vec![Some(0); rows],
        };
        // Patterns are nearly always literals: compile each distinct one once.
        let mut compiled: Option<(String, Regex)> = None;
        let mut out = Vec::with_capacity(rows);
        for (row, group) in groups.iter().enumerate() {
            let Some(group) = *group else {
                out.push(None);
                continue;
            };
            if strings.is_null(row) || patterns.is_null(row) {
                out.push(None);
                continue;
            }
            let pattern = patterns.value(row);
            if compiled.as_ref().is_none_or(|(p, _)| p != pattern) {
                let regex = Regex::new(pattern).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "regexp_extract: bad pattern '{pattern}': {e}"
                    ))
                })?;
                compiled = Some((pattern.to_string(), regex));
            }
            let regex = &compiled.as_ref().expect("compiled above").1;
            if group < 0 || group as usize >= regex.captures_len() {
                return exec_err!(
                    "regexp_extract: pattern '{pattern}' has {} group(s); group {group} does not exist",
                    regex.captures_len() - 1
                );
            }
            out.push(
                regex
                    .captures(strings.value(row))
                    .and_then(|c| c.get(group as usize))
                    .map(|m| m.as_str().to_string()),
            );
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SplitPart {
    signature: Signature,
}

impl SplitPart {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SplitPart {
    fn name(&self) -> &str {
        "split_part"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 {
            return plan_err!("split_part takes (string, delimiter, index)");
        }
        Ok(vec![DataType::Utf8, DataType::Utf8, DataType::Int64])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let strings = text_column(&args.args[0], rows)?;
        let delimiters = text_column(&args.args[1], rows)?;
        let indexes = integer_column(&args.args[2], rows)?;
        let mut out = Vec::with_capacity(rows);
        for (row, index) in indexes.iter().enumerate() {
            let (Some(index), false, false) =
                (*index, strings.is_null(row), delimiters.is_null(row))
            else {
                out.push(None);
                continue;
            };
            if index < 1 {
                return exec_err!("split_part: the index must be 1 or more, not {index}");
            }
            let (string, delimiter) = (strings.value(row), delimiters.value(row));
            // Trino splits into characters when the delimiter is empty.
            let field = if delimiter.is_empty() {
                string.chars().nth(index as usize - 1).map(String::from)
            } else {
                string
                    .split(delimiter)
                    .nth(index as usize - 1)
                    .map(str::to_string)
            };
            out.push(field);
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(out))))
    }
}
