//! Writes flow-log records as AWS writes a Parquet delivery: the schema
//! `LogFormatSchema.LogFormatInfo` with one optional column per field of
//! the flow log's format (the field name with `-` replaced by `_`), INT32,
//! INT64 or UTF-8 strings as in AWS's field table, GZIP column chunks,
//! format version 1, dictionary pages, statistics, one row group, and
//! parquet-mr's `created_by`.

use std::io::Write;
use std::sync::Arc;

use datafusion::parquet::basic::{Compression, GzipLevel};
use datafusion::parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use datafusion::parquet::errors::{ParquetError, Result};
use datafusion::parquet::file::properties::{WriterProperties, WriterVersion};
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::parquet::schema::parser::parse_message_type;

use crate::catalogue::{FieldKind, catalogue_field, column_name};

/// What AWS's writer says it is.
pub const AWS_CREATED_BY: &str =
    "parquet-mr version 1.11.1 (build 765bd5cd7fdef2af1cecd0755000694b992bfadd)";

/// How a missing value (`-` in the text) of a string field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingStrings {
    /// As a Parquet NULL.
    Null,
    /// As the string `-`, as in the text.
    Dash,
}

/// Writes `records` (each the space-separated fields of one text line, in
/// `header`'s order; `-` where a value is missing) as one Parquet object to
/// `out`. Integer fields that are not integers are an error.
pub fn write_aws_parquet<W: Write + Send>(
    out: W,
    header: &[&str],
    records: &[Vec<&str>],
    missing_strings: MissingStrings,
) -> Result<()> {
    let kinds: Vec<FieldKind> = header
        .iter()
        .map(|token| catalogue_field(token).map_or(FieldKind::Text, |f| f.kind))
        .collect();
    let columns: Vec<String> = header
        .iter()
        .zip(&kinds)
        .map(|(token, kind)| {
            let physical = match kind {
                FieldKind::Int32 => "int32",
                FieldKind::Int64 => "int64",
                FieldKind::Text => "binary",
            };
            let annotation = if *kind == FieldKind::Text {
                " (STRING)"
            } else {
                ""
            };
            format!("  optional {physical} {}{annotation};", column_name(token))
        })
        .collect();
    let schema = parse_message_type(&format!(
        "message LogFormatSchema.LogFormatInfo {{\n{}\n}}",
        columns.join("\n")
    ))?;
    let properties = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::GZIP(GzipLevel::default()))
        .set_dictionary_enabled(true)
        .set_created_by(AWS_CREATED_BY.to_string())
        .set_max_row_group_row_count(Some(records.len().max(1)))
        .build();
    let mut writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))?;
    let mut row_group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = row_group.next_column()? {
        let mut levels = Vec::with_capacity(records.len());
        let value = |record: &Vec<&str>| -> Result<Option<String>> {
            let text = record.get(index).copied().ok_or_else(|| {
                ParquetError::General(format!("a record has no field {}", header[index]))
            })?;
            Ok((text != "-").then(|| text.to_string()))
        };
        match kinds[index] {
            FieldKind::Int32 => {
                let mut values = Vec::new();
                for record in records {
                    match value(record)? {
                        Some(text) => {
                            values.push(parse::<i32>(&text, header[index])?);
                            levels.push(1);
                        }
                        None => levels.push(0),
                    }
                }
                column
                    .typed::<Int32Type>()
                    .write_batch(&values, Some(&levels), None)?;
            }
            FieldKind::Int64 => {
                let mut values = Vec::new();
                for record in records {
                    match value(record)? {
                        Some(text) => {
                            values.push(parse::<i64>(&text, header[index])?);
                            levels.push(1);
                        }
                        None => levels.push(0),
                    }
                }
                column
                    .typed::<Int64Type>()
                    .write_batch(&values, Some(&levels), None)?;
            }
            FieldKind::Text => {
                let mut values = Vec::new();
                for record in records {
                    match value(record)? {
                        Some(text) => {
                            values.push(ByteArray::from(text.into_bytes()));
                            levels.push(1);
                        }
                        None if missing_strings == MissingStrings::Dash => {
                            values.push(ByteArray::from("-"));
                            levels.push(1);
                        }
                        None => levels.push(0),
                    }
                }
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, Some(&levels), None)?;
            }
        }
        column.close()?;
        index += 1;
    }
    row_group.close()?;
    writer.close()?;
    Ok(())
}

fn parse<T: std::str::FromStr>(text: &str, field: &str) -> Result<T> {
    text.parse()
        .map_err(|_| ParquetError::General(format!("field {field}: `{text}` is not an integer")))
}
