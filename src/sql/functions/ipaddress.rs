//! Trino's `IPADDRESS` type: `CAST(x AS IPADDRESS)`, `IPADDRESS '10.0.0.1'`
//! literals, comparison and ordering, and `contains(cidr, address)`.
//!
//! A value is the 16-byte IPv6 form of the address (`FixedSizeBinary(16)`),
//! IPv4 addresses as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), exactly as Trino
//! stores them. Byte order is therefore Trino's order: IPv6 addresses below
//! `::ffff:0:0` sort before every IPv4 address, the rest after.
//!
//! Casts to and from the type are rewritten into the functions here by
//! [`crate::sql::functions::rewrite`], because Arrow's own cast between strings
//! and fixed-size binary copies bytes instead of parsing addresses.
//! Before printing, [`ipaddresses_as_text`] turns such columns back into text.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, FixedSizeBinaryBuilder,
    RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::common::{DataFusionError, Result, exec_err, plan_err};
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast;

use super::flowlog::Cidr;

/// The Arrow type of an `IPADDRESS` value.
pub(crate) const IPADDRESS: DataType = DataType::FixedSizeBinary(16);

/// Whether `data_type` is the `IPADDRESS` type.
pub(crate) fn is_ipaddress(data_type: &DataType) -> bool {
    *data_type == IPADDRESS
}

/// Plans the SQL type name `IPADDRESS` as [`IPADDRESS`].
#[derive(Debug, Default)]
pub(crate) struct IpAddressTypePlanner;

impl TypePlanner for IpAddressTypePlanner {
    fn plan_type_field(&self, sql_type: &ast::DataType) -> Result<Option<FieldRef>> {
        match sql_type {
            ast::DataType::Custom(name, modifiers)
                if modifiers.is_empty() && name.to_string().eq_ignore_ascii_case("ipaddress") =>
            {
                Ok(Some(Arc::new(Field::new("ipaddress", IPADDRESS, true))))
            }
            _ => Ok(None),
        }
    }
}

/// The 16 stored bytes of an address.
pub(crate) fn to_bytes(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address text Trino prints: dotted IPv4 for IPv4-mapped values,
/// RFC 5952 IPv6 otherwise.
pub(crate) fn format_bytes(bytes: &[u8]) -> String {
    let octets: [u8; 16] = bytes.try_into().expect("an IPADDRESS value has 16 bytes");
    Ipv6Addr::from(octets).to_canonical().to_string()
}

/// Parses address text as `CAST(text AS IPADDRESS)` does.
pub(crate) fn parse_address(text: &str) -> Option<[u8; 16]> {
    text.parse::<IpAddr>().ok().map(to_bytes)
}

/// Every function of this family.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ToIpAddress::new(true)),
        ScalarUDF::new_from_impl(ToIpAddress::new(false)),
        ScalarUDF::new_from_impl(IpAddressToText::new()),
        ScalarUDF::new_from_impl(Contains::new()),
    ]
}

/// `CAST(text AS IPADDRESS)` (strict: a malformed address is an error) and
/// `TRY_CAST(text AS IPADDRESS)` (lenient: NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ToIpAddress {
    strict: bool,
    signature: Signature,
}

impl ToIpAddress {
    /// The cast; `strict` decides whether a malformed address fails.
    pub(crate) fn new(strict: bool) -> Self {
        Self {
            strict,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// The function's name for the given strictness.
    pub(crate) fn name_for(strict: bool) -> &'static str {
        if strict {
            "cast_to_ipaddress"
        } else {
            "try_cast_to_ipaddress"
        }
    }

    /// Whether this instance fails on malformed input.
    pub(crate) fn is_strict(&self) -> bool {
        self.strict
    }
}

impl ScalarUDFImpl for ToIpAddress {
    fn name(&self) -> &str {
        Self::name_for(self.strict)
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(IPADDRESS)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        if is_ipaddress(array.data_type()) {
            return Ok(ColumnarValue::Array(array));
        }
        let text = datafusion::arrow::compute::cast(&array, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let mut out = FixedSizeBinaryBuilder::with_capacity(text.len(), 16);
        for value in text.iter() {
            match value {
                None => out.append_null(),
                Some(value) => match parse_address(value.trim()) {
                    Some(bytes) => out.append_value(bytes)?,
                    None if self.strict => {
                        return exec_err!(
                            "cannot cast '{value}' to IPADDRESS: not an IPv4 or IPv6 address (TRY_CAST gives NULL instead)"
                        );
                    }
                    None => out.append_null(),
                },
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `CAST(ipaddress AS VARCHAR)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct IpAddressToText {
    signature: Signature,
}

impl IpAddressToText {
    /// The function's name.
    pub(crate) const NAME: &'static str = "ipaddress_to_varchar";

    /// The function.
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl Default for IpAddressToText {
    fn default() -> Self {
        Self {
            signature: Signature::exact(vec![IPADDRESS], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IpAddressToText {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(Arc::new(addresses_to_text(
            array.as_fixed_size_binary(),
        ))))
    }
}

fn addresses_to_text(addresses: &FixedSizeBinaryArray) -> StringArray {
    addresses.iter().map(|v| v.map(format_bytes)).collect()
}

/// Trino's `contains`: `contains(cidr, ipaddress)` tests network membership
/// and `contains(array, element)` array membership. Trino has no string
/// `contains`, so DataFusion's substring test of that name is replaced; a
/// call with two strings is an error that says what to write instead.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Contains {
    signature: Signature,
}

impl Contains {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Contains {
    fn name(&self) -> &str {
        "contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match (&arg_types[0], &arg_types[1]) {
            (DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..), _) => {
                Ok(DataType::Boolean)
            }
            (network, address)
                if is_ipaddress(address) && (network.is_string() || network.is_null()) =>
            {
                Ok(DataType::Boolean)
            }
            (network, DataType::Null) if network.is_string() || network.is_null() => {
                Ok(DataType::Boolean)
            }
            (a, b) if a.is_string() && b.is_string() => plan_err!(
                "contains(network, address) needs an IPADDRESS: write contains('10.0.0.0/8', CAST(x AS IPADDRESS)) or cidr_contains('10.0.0.0/8', x); for a substring test use strpos(s, t) > 0"
            ),
            (a, b) => plan_err!(
                "contains takes (varchar CIDR, ipaddress) or (array, element), not ({a}, {b})"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        if matches!(
            args.arg_fields[0].data_type(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
        ) {
            return datafusion::functions_nested::array_has::array_has_udf().invoke_with_args(args);
        }
        let networks =
            datafusion::arrow::compute::cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let networks = networks.as_string::<i32>();
        let addresses = args.args[1].to_array(rows)?;
        if addresses.data_type().is_null() {
            return Ok(ColumnarValue::Array(Arc::new(BooleanArray::new_null(rows))));
        }
        let addresses = addresses.as_fixed_size_binary();
        // A literal CIDR is parsed once.
        let constant = match &args.args[0] {
            ColumnarValue::Scalar(_) if !networks.is_empty() && networks.is_valid(0) => {
                Some(Cidr::parse(networks.value(0))?)
            }
            _ => None,
        };
        let mut out = BooleanArray::builder(rows);
        for row in 0..rows {
            if networks.is_null(row) || addresses.is_null(row) {
                out.append_null();
                continue;
            }
            let network = match &constant {
                Some(network) => *network,
                None => Cidr::parse(networks.value(row))?,
            };
            let octets: [u8; 16] = addresses.value(row).try_into().map_err(|_| {
                DataFusionError::Execution("an IPADDRESS value has 16 bytes".into())
            })?;
            out.append_value(network.contains(Ipv6Addr::from(octets).to_canonical()));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// Replaces every `IPADDRESS` column of `batches` by its text, for output
/// formats that would otherwise print 16 raw bytes.
pub fn ipaddresses_as_text(
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
) -> Result<(Arc<Schema>, Vec<RecordBatch>)> {
    if !schema.fields().iter().any(|f| is_ipaddress(f.data_type())) {
        return Ok((Arc::clone(schema), batches.to_vec()));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_ipaddress(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let text_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let batches = batches
        .iter()
        .map(|batch| {
            let columns: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .map(|c| -> ArrayRef {
                    if is_ipaddress(c.data_type()) {
                        Arc::new(addresses_to_text(c.as_fixed_size_binary()))
                    } else {
                        Arc::clone(c)
                    }
                })
                .collect();
            RecordBatch::try_new(Arc::clone(&text_schema), columns).map_err(DataFusionError::from)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((text_schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_of_stored_bytes_is_trinos() {
        let mut addresses: Vec<[u8; 16]> =
            ["10.0.0.9", "10.0.0.10", "::1", "2001:db8::1", "1.2.3.4"]
                .iter()
                .map(|a| parse_address(a).unwrap())
                .collect();
        addresses.sort();
        let sorted: Vec<String> = addresses.iter().map(|b| format_bytes(b)).collect();
        assert_eq!(
            sorted,
            ["::1", "1.2.3.4", "10.0.0.9", "10.0.0.10", "2001:db8::1"]
        );
    }

    #[test]
    fn malformed_text_does_not_parse() {
        for text in ["10.0.0", "10.0.0.256", "", "fe80::1::2", "10.0.0.1/8"] {
            assert_eq!(parse_address(text), None, "{text}");
        }
    }

    #[test]
    fn formats_addresses_as_trino_prints_them() {
        use crate::sql::functions::ipaddress::{format_bytes, to_bytes};
        let v4 = to_bytes("10.0.0.1".parse().unwrap());
        assert_eq!(format_bytes(&v4), "10.0.0.1");
        let v6 = to_bytes("2001:DB8:0:0:0:0:0:1".parse().unwrap());
        assert_eq!(format_bytes(&v6), "2001:db8::1");
    }
}
