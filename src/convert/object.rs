//! One object's conversion: where it goes in AWS's Hive-compatible Parquet
//! layout, and its text records as AWS's Parquet.

use std::io::Read;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::basic::{Compression, GzipLevel};
use datafusion::parquet::file::properties::{WriterProperties, WriterVersion};
use flate2::read::MultiGzDecoder;
use object_store::path::Path;

use crate::catalogue::Header;
use crate::decode::TextDecoder;
use crate::error::Error;
use crate::scan::text::{ReadSettings, ReportRejects};
use crate::table::layout::{AccountFolder, Grammar};

/// The key of `file`'s converted object below `destination`:
/// `AWSLogs/aws-account-id=/aws-service=vpcflowlogs/aws-region=/year=/month=/day=/[hour=/]`
/// and the source's name with `.log.parquet`, as AWS names a Parquet
/// delivery's objects.
pub(super) fn destination_key(destination: &Path, file: &PartitionedFile) -> Result<Path> {
    let values = &file.partition_values;
    let text = |index: usize| match values.get(index) {
        Some(ScalarValue::Utf8(Some(value))) => Ok(value.clone()),
        other => Err(DataFusionError::Internal(format!(
            "path column {index} is {other:?}"
        ))),
    };
    let account = text(0)?;
    let region = text(1)?;
    let date = match values.get(2) {
        Some(ScalarValue::Date32(Some(days))) => {
            chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
        }
        _ => None,
    }
    .ok_or_else(|| DataFusionError::Internal("an object without a date".to_string()))?;
    let folder = AccountFolder {
        grammar: Grammar::Hive,
        account,
    };
    let mut key = format!("AWSLogs/{}", folder.day_folder(&region, date));
    if let Some(ScalarValue::Int32(Some(hour))) = values.get(3) {
        key.push_str(&format!("/hour={hour:02}"));
    }
    let name = file.object_meta.location.filename().unwrap_or_default();
    let stem = name
        .strip_suffix(".log.gz")
        .or_else(|| name.strip_suffix(".log.parquet"))
        .unwrap_or(name);
    let mut path = destination.clone();
    for part in key.split('/') {
        path = path.join(part);
    }
    Ok(path.join(format!("{stem}.log.parquet")))
}

/// What AWS's writer does: format version 1, GZIP column chunks,
/// dictionary pages, statistics; flowsql names itself as the writer.
fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::GZIP(GzipLevel::default()))
        .set_dictionary_enabled(true)
        .set_created_by(format!("flowsql version {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Text read from the gunzip per step.
const STEP_BYTES: usize = 256 * 1024;

/// Converts one gzip text object (`body`, named `object`) to AWS's
/// Parquet: one optional column per field of its header, in its order,
/// with AWS's names and types. Malformed lines are skipped and reported
/// (or fail, under `strict`) as when queried. `Ok(None)`: the object is
/// bad and was skipped as [`ReadSettings::skip_bad_objects`] asks.
pub(super) fn text_to_parquet(
    object: &str,
    body: &[u8],
    settings: &ReadSettings,
) -> Result<Option<(Vec<u8>, u64)>> {
    finish(object, convert_text(object, body, settings), settings)
}

/// A conversion's result, a bad object skipped or failing as the settings say.
fn finish<T>(object: &str, result: Result<T, Fault>, settings: &ReadSettings) -> Result<Option<T>> {
    match result {
        Ok(converted) => Ok(Some(converted)),
        Err(Fault::Bad(reason)) if settings.skip_bad_objects => {
            let error = Error::BadObject {
                object: object.to_string(),
                reason,
            };
            settings.report.skipped_object(object, error.to_string(), 0);
            Ok(None)
        }
        Err(Fault::Bad(reason)) => Err(Error::BadObject {
            object: object.to_string(),
            reason,
        }
        .into()),
        Err(Fault::Failed(e)) => Err(e),
    }
}

/// The rows of a Parquet object (which is copied as it is), from its
/// footer; `Ok(None)`: not readable Parquet, and skipped as
/// [`ReadSettings::skip_bad_objects`] asks.
pub(super) fn parquet_rows(
    object: &str,
    body: &bytes::Bytes,
    settings: &ReadSettings,
) -> Result<Option<u64>> {
    let footer = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(body)
        .map_err(|e| Fault::Bad(format!("is not a readable Parquet flow-log object: {e}")))
        .map(|m| m.file_metadata().num_rows().max(0) as u64);
    let rows = finish(object, footer, settings)?;
    if let Some(rows) = rows {
        settings.report.add_records(rows);
    }
    Ok(rows)
}

enum Fault {
    Bad(String),
    Failed(DataFusionError),
}

fn convert_text(
    object: &str,
    body: &[u8],
    settings: &ReadSettings,
) -> Result<(Vec<u8>, u64), Fault> {
    if body.is_empty() {
        return Err(Fault::Bad(
            "is empty (0 bytes); a flow-log object is gzip data".to_string(),
        ));
    }
    let gzip_error = |e: std::io::Error| {
        Fault::Bad(format!(
            "is not valid gzip data (corrupt or truncated): {e}"
        ))
    };
    let mut gunzip = MultiGzDecoder::new(body);
    let mut text = Vec::new();
    // The header decides the columns, so it is read before the decoder is made.
    while !text.contains(&b'\n') {
        if read_step(&mut gunzip, &mut text).map_err(gzip_error)? == 0 {
            break;
        }
    }
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let header = Header::parse(first.strip_suffix(b"\r").unwrap_or(first))
        .map_err(|e| Fault::Bad(format!("is not a flow-log object: {}", message(e))))?;
    // Strings as views, as the decoder builds them; Parquet stores them as
    // UTF-8 byte arrays either way.
    let schema: SchemaRef = header.arrow_schema(DataType::Utf8View);
    let mut decoder = TextDecoder::new(
        Arc::clone(&schema),
        8192,
        Box::new(ReportRejects::new(object, settings)),
    );
    let options = ArrowWriterOptions::new()
        .with_properties(writer_properties())
        .with_skip_arrow_metadata(true)
        .with_schema_root("LogFormatSchema.LogFormatInfo".to_string());
    let failed = |e: DataFusionError| Fault::Failed(e);
    let mut writer = ArrowWriter::try_new_with_options(Vec::new(), schema, options)
        .map_err(|e| failed(e.into()))?;
    let mut write_batches = |decoder: &mut TextDecoder| -> Result<()> {
        while let Some(batch) = decoder.next_batch() {
            writer.write(&batch)?;
        }
        Ok(())
    };
    loop {
        decoder.feed(&text).map_err(failed)?;
        write_batches(&mut decoder).map_err(failed)?;
        text.clear();
        if read_step(&mut gunzip, &mut text).map_err(gzip_error)? == 0 {
            break;
        }
    }
    decoder.finish().map_err(failed)?;
    write_batches(&mut decoder).map_err(failed)?;
    let records = decoder.rows_decoded();
    settings.report.add_records(records);
    let bytes = writer.into_inner().map_err(|e| failed(e.into()))?;
    Ok((bytes, records))
}

/// Appends up to [`STEP_BYTES`] of text; the bytes read (0 at the end).
fn read_step(gunzip: &mut impl Read, text: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = text.len();
    text.resize(start + STEP_BYTES, 0);
    let read = gunzip.read(&mut text[start..]);
    let n = *read.as_ref().unwrap_or(&0);
    text.truncate(start + n);
    read
}

fn message(error: DataFusionError) -> String {
    match error {
        DataFusionError::Execution(message) => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectMeta;

    #[test]
    fn keys_follow_aws_hive_layout_and_names() {
        let file = |name: &str, hour: Option<i32>| {
            PartitionedFile::new_from_meta(ObjectMeta {
                location: Path::from(format!(
                    "in/AWSLogs/1/vpcflowlogs/eu-west-1/2024/03/05/{name}"
                )),
                last_modified: chrono::Utc::now(),
                size: 1,
                e_tag: None,
                version: None,
            })
            .with_partition_values(vec![
                ScalarValue::Utf8(Some("111122223333".into())),
                ScalarValue::Utf8(Some("eu-west-1".into())),
                ScalarValue::Date32(Some(19787)),
                ScalarValue::Int32(hour),
                ScalarValue::Utf8(Some("fl-1".into())),
                ScalarValue::Null,
            ])
        };
        let name = "111122223333_vpcflowlogs_eu-west-1_fl-1_20240305T0105Z_ab12.log.gz";
        assert_eq!(
            destination_key(&Path::from("out/x"), &file(name, Some(1)))
                .unwrap()
                .as_ref(),
            "out/x/AWSLogs/aws-account-id=111122223333/aws-service=vpcflowlogs/aws-region=eu-west-1/\
             year=2024/month=03/day=05/hour=01/111122223333_vpcflowlogs_eu-west-1_fl-1_20240305T0105Z_ab12.log.parquet"
        );
        assert_eq!(
            destination_key(&Path::from(""), &file(name, None))
                .unwrap()
                .as_ref(),
            "AWSLogs/aws-account-id=111122223333/aws-service=vpcflowlogs/aws-region=eu-west-1/\
             year=2024/month=03/day=05/111122223333_vpcflowlogs_eu-west-1_fl-1_20240305T0105Z_ab12.log.parquet"
        );
    }
}
