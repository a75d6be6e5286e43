//! `typeof(x)`: the Trino name of an expression's type.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::ipaddress::is_ipaddress;

/// Every function of this family.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(TypeOf {
        signature: Signature::any(1, Volatility::Immutable),
    })]
}

/// The Trino spelling of an Arrow type, as `typeof` and `DESCRIBE` users
/// expect (`bigint`, `varchar`, `timestamp(3) with time zone`, `ipaddress`).
/// Types Trino lacks (unsigned integers) keep DataFusion's name.
pub(crate) fn trino_type_name(data_type: &DataType) -> String {
    let precision = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    match data_type {
        t if is_ipaddress(t) => "ipaddress".into(),
        DataType::Null => "unknown".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "integer".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "varchar".into(),
        DataType::Binary
        | DataType::BinaryView
        | DataType::LargeBinary
        | DataType::FixedSizeBinary(_) => "varbinary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(unit, None) => format!("timestamp({})", precision(unit)),
        DataType::Timestamp(unit, Some(_)) => {
            format!("timestamp({}) with time zone", precision(unit))
        }
        DataType::Time32(unit) | DataType::Time64(unit) => format!("time({})", precision(unit)),
        DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::YearMonth) => {
            "interval year to month".into()
        }
        DataType::Interval(_) | DataType::Duration(_) => "interval day to second".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("array({})", trino_type_name(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map({}, {})",
                trino_type_name(kv[0].data_type()),
                trino_type_name(kv[1].data_type())
            ),
            other => trino_type_name(other),
        },
        DataType::Struct(fields) => format!(
            "row({})",
            fields
                .iter()
                .map(|f| format!("{} {}", f.name(), trino_type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Dictionary(_, value) => trino_type_name(value),
        other => other.to_string(),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TypeOf {
    signature: Signature,
}

impl ScalarUDFImpl for TypeOf {
    fn name(&self) -> &str {
        "typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = trino_type_name(args.arg_fields[0].data_type());
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trino_type_names() {
        use crate::sql::functions::types::trino_type_name;
        use datafusion::arrow::datatypes::{DataType, TimeUnit};
        assert_eq!(trino_type_name(&DataType::Int64), "bigint");
        assert_eq!(
            trino_type_name(&DataType::Timestamp(
                TimeUnit::Millisecond,
                Some("UTC".into())
            )),
            "timestamp(3) with time zone"
        );
    }
}
