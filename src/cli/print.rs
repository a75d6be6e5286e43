//! Writing results: an aligned table or CSV.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::{
    pretty_format_batches_with_options, pretty_format_batches_with_schema,
};
use datafusion::common::Result;

/// Writes batches as an aligned text table; NULL shows as `NULL`.
pub fn write_table(out: &mut dyn Write, schema: SchemaRef, batches: &[RecordBatch]) -> Result<()> {
    let non_empty: Vec<RecordBatch> = batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .cloned()
        .collect();
    if non_empty.is_empty() {
        writeln!(out, "{}", pretty_format_batches_with_schema(schema, &[])?)?;
    } else {
        let options = FormatOptions::default()
            .with_display_error(true)
            .with_null("NULL");
        writeln!(
            out,
            "{}",
            pretty_format_batches_with_options(&non_empty, &options)?
        )?;
    }
    Ok(())
}

/// Writes CSV: a header row, then one line per row. NULL is an empty field,
/// DATE is `YYYY-MM-DD`; fields holding `,`, `"` or a line break are quoted.
#[derive(Debug)]
pub struct CsvWriter {
    wrote_header: bool,
}

impl Default for CsvWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvWriter {
    /// A writer that has not written its header yet.
    pub fn new() -> Self {
        Self {
            wrote_header: false,
        }
    }

    /// Writes the header row if it has not been written yet.
    pub fn header(&mut self, out: &mut dyn Write, schema: &SchemaRef) -> Result<()> {
        if !self.wrote_header {
            let names: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| csv_field(f.name()))
                .collect();
            writeln!(out, "{}", names.join(","))?;
            self.wrote_header = true;
        }
        Ok(())
    }

    /// Writes one batch (and the header first, if needed).
    pub fn batch(&mut self, out: &mut dyn Write, batch: &RecordBatch) -> Result<()> {
        self.header(out, &batch.schema())?;
        let options = FormatOptions::default()
            .with_null("")
            .with_date_format(Some("%Y-%m-%d"));
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut line = String::new();
        for row in 0..batch.num_rows() {
            line.clear();
            for (i, formatter) in formatters.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(&csv_field(&formatter.value(row).try_to_string()?));
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    }
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn csv_nulls_dates_and_quoting() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("date", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a,b"),
                    None,
                    Some("say \"hi\""),
                ])),
                Arc::new(Date32Array::from(vec![Some(19737), Some(0), None])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        CsvWriter::new().batch(&mut out, &batch).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "s,date\n\"a,b\",2024-01-15\n,1970-01-01\n\"say \"\"hi\"\"\",\n"
        );
    }
}
