//! The flow-log field catalogue and the per-file header mapping.
//!
//! Every documented field has a fixed column name (the field name with `-`
//! replaced by `_`, as Athena names them) and a fixed Arrow type (the
//! documented Parquet type). The table always shows every catalogue field, so
//! a query written for one format runs over any other (a field a file lacks
//! reads as NULL). Header fields the catalogue does not know become string
//! columns.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::common::{DataFusionError, Result};

/// How the text of one field is turned into a column value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FieldKind {
    /// A 32-bit integer (ports, protocol, flags, small codes).
    Int32,
    /// A 64-bit integer (packets, bytes, Unix-second times).
    Int64,
    /// Text, kept as a string view.
    Text,
}

impl FieldKind {
    /// The Arrow type a column of this kind has.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            FieldKind::Int32 => DataType::Int32,
            FieldKind::Int64 => DataType::Int64,
            FieldKind::Text => DataType::Utf8View,
        }
    }
}

/// One documented flow-log field.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CatalogueField {
    /// The token as it appears in a format string and in file headers (`log-status`).
    pub token: &'static str,
    /// The column's value kind.
    pub kind: FieldKind,
}

macro_rules! fields {
    ($(($token:literal, $kind:ident)),* $(,)?) => {
        &[$(CatalogueField { token: $token, kind: FieldKind::$kind }),*]
    };
}

/// Every documented field, in the order of AWS's field table (v2 default
/// order first). This is also the table's column order.
pub(crate) const CATALOGUE: &[CatalogueField] = fields![
    ("version", Int32),
    ("account-id", Text),
    ("interface-id", Text),
    ("srcaddr", Text),
    ("dstaddr", Text),
    ("srcport", Int32),
    ("dstport", Int32),
    ("protocol", Int32),
    ("packets", Int64),
    ("bytes", Int64),
    ("start", Int64),
    ("end", Int64),
    ("action", Text),
    ("log-status", Text),
    ("vpc-id", Text),
    ("subnet-id", Text),
    ("instance-id", Text),
    ("tcp-flags", Int32),
    ("type", Text),
    ("pkt-srcaddr", Text),
    ("pkt-dstaddr", Text),
    ("region", Text),
    ("az-id", Text),
    ("sublocation-type", Text),
    ("sublocation-id", Text),
    ("pkt-src-aws-service", Text),
    ("pkt-dst-aws-service", Text),
    ("flow-direction", Text),
    ("traffic-path", Int32),
    ("ecs-cluster-arn", Text),
    ("ecs-cluster-name", Text),
    ("ecs-container-instance-arn", Text),
    ("ecs-container-instance-id", Text),
    ("ecs-container-id", Text),
    ("ecs-second-container-id", Text),
    ("ecs-service-name", Text),
    ("ecs-task-definition-arn", Text),
    ("ecs-task-arn", Text),
    ("ecs-task-id", Text),
    ("reject-reason", Text),
    ("resource-id", Text),
    ("encryption-status", Int32),
    ("interface-type", Text),
    ("next-hop-interface-id", Text),
    ("next-hop-subnet-id", Text),
    ("next-hop-az-id", Text),
    ("next-hop-vpc-id", Text),
    ("next-hop-interface-type", Text),
    ("instance-tag", Text),
    ("interface-tag", Text),
    ("asg-tag", Text),
    // Transit Gateway flow logs (version 6) share the delivery layout.
    ("resource-type", Text),
    ("tgw-id", Text),
    ("tgw-attachment-id", Text),
    ("tgw-src-vpc-account-id", Text),
    ("tgw-dst-vpc-account-id", Text),
    ("tgw-src-vpc-id", Text),
    ("tgw-dst-vpc-id", Text),
    ("tgw-src-subnet-id", Text),
    ("tgw-dst-subnet-id", Text),
    ("tgw-src-eni", Text),
    ("tgw-dst-eni", Text),
    ("tgw-src-az-id", Text),
    ("tgw-dst-az-id", Text),
    ("tgw-pair-attachment-id", Text),
    ("packets-lost-no-route", Int64),
    ("packets-lost-blackhole", Int64),
    ("packets-lost-mtu-exceeded", Int64),
    ("packets-lost-ttl-expired", Int64),
];

/// Path column: the account that owns the flow log (from the key).
pub(crate) const AWS_ACCOUNT_ID: &str = "aws_account_id";
/// Path column: the region folder of the key.
pub(crate) const AWS_REGION: &str = "aws_region";
/// Path column: the UTC day folder of the key.
pub(crate) const DATE: &str = "date";
/// Path column: the UTC hour folder of the key (NULL for daily layouts).
pub(crate) const HOUR: &str = "hour";
/// Path column: the flow-log id from the file name.
pub(crate) const FLOW_LOG_ID: &str = "flow_log_id";
/// Path column: the 5-minute time from the file name.
pub(crate) const FILE_TIME: &str = "file_time";

/// The path columns, in table order, with their types and nullability.
/// Each is constant per object (it comes from the key), so they are
/// DataFusion partition columns. The one list: everything else derives
/// from it.
const PATH_COLUMNS: [(&str, DataType, bool); 6] = [
    (AWS_ACCOUNT_ID, DataType::Utf8, false),
    (AWS_REGION, DataType::Utf8, false),
    (DATE, DataType::Date32, false),
    (HOUR, DataType::Int32, true),
    (FLOW_LOG_ID, DataType::Utf8, false),
    (
        FILE_TIME,
        DataType::Timestamp(TimeUnit::Second, None),
        false,
    ),
];

/// The path columns as fields, in table order.
pub(crate) fn path_fields() -> Vec<FieldRef> {
    PATH_COLUMNS
        .iter()
        .map(|(name, data_type, nullable)| {
            Arc::new(Field::new(*name, data_type.clone(), *nullable))
        })
        .collect()
}

/// The path column names, in table order.
pub(crate) fn path_column_names() -> impl Iterator<Item = &'static str> {
    PATH_COLUMNS.iter().map(|(name, _, _)| *name)
}

/// The column name for a header token: `-` becomes `_`.
pub(crate) fn column_name(token: &str) -> String {
    token.replace('-', "_")
}

/// Looks a header token up in the catalogue.
pub(crate) fn catalogue_field(token: &str) -> Option<&'static CatalogueField> {
    CATALOGUE.iter().find(|f| f.token == token)
}

/// Looks a column name (a Parquet object's, say) up in the catalogue.
pub(crate) fn catalogue_column(name: &str) -> Option<&'static CatalogueField> {
    CATALOGUE.iter().find(|f| column_name(f.token) == name)
}

/// The record columns of a table: the whole catalogue, then any extra
/// (non-catalogue) header fields as string columns, in the order given.
pub(crate) fn file_schema(extra_tokens: &[String]) -> SchemaRef {
    let mut fields: Vec<Field> = CATALOGUE
        .iter()
        .map(|f| Field::new(column_name(f.token), f.kind.data_type(), true))
        .collect();
    for token in extra_tokens {
        fields.push(Field::new(column_name(token), DataType::Utf8View, true));
    }
    Arc::new(Schema::new(fields))
}

/// Whether a header field the catalogue does not know can be a column of
/// its own: spelled like a field, and not named like a path column.
pub(crate) fn can_be_extra_column(token: &str) -> bool {
    let name = column_name(token);
    catalogue_field(token).is_none()
        && is_field_token(token)
        && !path_column_names().any(|p| p == name)
}

/// Whether `token` is spelled like a flow-log field name: lowercase ASCII
/// letters, digits and `-`, starting with a letter.
fn is_field_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// The parsed first line of a flow-log object: its field tokens in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    tokens: Vec<String>,
}

impl Header {
    /// Parses a header line. Runs of spaces, trailing spaces and a trailing
    /// `\r` separate nothing extra.
    pub fn parse(line: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(line).map_err(|_| {
            DataFusionError::Execution("the header line is not UTF-8 text".to_string())
        })?;
        let tokens: Vec<String> = text.split_ascii_whitespace().map(str::to_string).collect();
        if tokens.is_empty() {
            return Err(DataFusionError::Execution(
                "the header line is empty".to_string(),
            ));
        }
        if let Some(bad) = tokens.iter().find(|t| !is_field_token(t)) {
            return Err(DataFusionError::Execution(format!(
                "the first line is not a flow-log header (`{}` is not a field name)",
                truncate_for_message(bad)
            )));
        }
        if !tokens.iter().any(|t| catalogue_field(t).is_some()) {
            return Err(DataFusionError::Execution(
                "the first line is not a flow-log header (it names no documented field)"
                    .to_string(),
            ));
        }
        let mut seen = HashMap::new();
        for token in &tokens {
            if seen.insert(column_name(token), ()).is_some() {
                return Err(DataFusionError::Execution(format!(
                    "the header names field `{token}` twice"
                )));
            }
        }
        Ok(Self { tokens })
    }

    /// The field tokens, in file order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The header's columns in file order with the table's types, text
    /// fields as `text` (for decoding or converting one object on its own).
    pub fn arrow_schema(&self, text: DataType) -> SchemaRef {
        Arc::new(Schema::new(
            self.tokens
                .iter()
                .map(|t| {
                    let data_type = match catalogue_field(t).map_or(FieldKind::Text, |f| f.kind) {
                        FieldKind::Text => text.clone(),
                        kind => kind.data_type(),
                    };
                    Field::new(column_name(t), data_type, true)
                })
                .collect::<Vec<_>>(),
        ))
    }

    /// The tokens that the catalogue does not know.
    pub fn unknown_tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens
            .iter()
            .map(String::as_str)
            .filter(|t| catalogue_field(t).is_none())
    }
}

/// Shortens a value for an error message.
pub(crate) fn truncate_for_message(text: &str) -> String {
    const MAX: usize = 80;
    if text.len() <= MAX {
        text.to_string()
    } else {
        format!("{}…", &text[..text.floor_char_boundary(MAX)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_are_unique_and_athena_shaped() {
        let mut names: Vec<String> = CATALOGUE.iter().map(|f| column_name(f.token)).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(names.iter().all(|n| !n.contains('-')));
        for path in path_fields() {
            assert!(!names.contains(path.name()), "{} clashes", path.name());
        }
    }

    #[test]
    fn documented_types() {
        let schema = file_schema(&[]);
        let ty = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
        assert_eq!(ty("version"), DataType::Int32);
        assert_eq!(ty("srcport"), DataType::Int32);
        assert_eq!(ty("protocol"), DataType::Int32);
        assert_eq!(ty("tcp_flags"), DataType::Int32);
        assert_eq!(ty("traffic_path"), DataType::Int32);
        assert_eq!(ty("packets"), DataType::Int64);
        assert_eq!(ty("bytes"), DataType::Int64);
        assert_eq!(ty("start"), DataType::Int64);
        assert_eq!(ty("end"), DataType::Int64);
        assert_eq!(ty("log_status"), DataType::Utf8View);
    }

    #[test]
    fn header_rejects_data_lines_and_duplicates() {
        assert!(Header::parse(b"version version").is_err());
        assert!(Header::parse(b"").is_err());
        assert!(Header::parse(b"- eni-1 10.0.0.1").is_err());
        let header = Header::parse(b"version  custom-thing log-status ").unwrap();
        assert_eq!(
            header.unknown_tokens().collect::<Vec<_>>(),
            ["custom-thing"]
        );
    }

    #[test]
    fn header_parse_example() {
        use crate::catalogue::Header;
        let header = Header::parse(b"version account-id log-status\r").unwrap();
        assert_eq!(header.tokens(), ["version", "account-id", "log-status"]);
        assert!(Header::parse(b"2 123456789010 eni-1 OK").is_err());
    }

    #[test]
    fn header_arrow_schema_example() {
        use crate::catalogue::Header;
        use datafusion::arrow::datatypes::DataType;
        let header = Header::parse(b"version srcaddr bytes").unwrap();
        let schema = header.arrow_schema(DataType::Utf8);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Int64);
    }
}
