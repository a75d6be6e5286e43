//! Writing results: an aligned table that fits the terminal, CSV, TSV,
//! JSON, NDJSON, and Parquet for files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ValueEnum;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result};

use super::chart;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// An aligned text table.
    Table,
    /// Comma-separated values with a header row; NULL is an empty field.
    Csv,
    /// Tab-separated values with a header row; NULL is an empty field.
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// Apache Parquet (files only).
    Parquet,
    /// The result as a chart, in SVG (files only).
    Svg,
    /// The result as a chart, in PNG (files only).
    Png,
}

impl Format {
    /// Parses a format name (`\format csv`).
    pub(crate) fn parse(name: &str) -> Option<Self> {
        <Self as ValueEnum>::from_str(name, true).ok()
    }

    /// The format a file's extension asks for.
    pub(crate) fn from_extension(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Self::Csv),
            "tsv" => Some(Self::Tsv),
            "json" => Some(Self::Json),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "parquet" => Some(Self::Parquet),
            "svg" => Some(Self::Svg),
            "png" => Some(Self::Png),
            "txt" => Some(Self::Table),
            _ => None,
        }
    }

    /// Whether this format is written to files only (`-o`).
    pub(crate) fn files_only(self) -> bool {
        matches!(self, Self::Parquet | Self::Svg | Self::Png)
    }

    /// The format's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Table => "Table",
            Self::Csv => "CSV",
            Self::Tsv => "TSV",
            Self::Json => "JSON",
            Self::Ndjson => "NDJSON",
            Self::Parquet => "Parquet",
            Self::Svg => "SVG",
            Self::Png => "PNG",
        }
    }

    /// The file extension that asks for this format.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Self::Table => "txt",
            Self::Csv => "csv",
            Self::Tsv => "tsv",
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Parquet => "parquet",
            Self::Svg => "svg",
            Self::Png => "png",
        }
    }

    /// The names accepted by `--format` and `\format`.
    pub(crate) fn names() -> Vec<String> {
        Self::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect()
    }
}

/// How a table is laid out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableLayout {
    /// Rows shown at most; the rest are counted in a footer.
    pub(crate) max_rows: Option<usize>,
    /// Characters per line at most (the terminal width).
    pub(crate) max_width: Option<usize>,
    /// Leave out the columns that are NULL in every row (a wide `SELECT *`
    /// over default-format logs has dozens), naming them in a footer.
    pub(crate) hide_null_columns: bool,
}

/// Writes a complete result in `format` to `out`.
pub(crate) fn write_result(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    layout: TableLayout,
) -> Result<()> {
    match format {
        Format::Table => write_table(out, schema, batches, layout),
        Format::Csv => write_delimited(out, schema, batches, b','),
        Format::Tsv => write_delimited(out, schema, batches, b'\t'),
        Format::Json => write_json(out, batches, true),
        Format::Ndjson => write_json(out, batches, false),
        Format::Parquet | Format::Svg | Format::Png => {
            Err(DataFusionError::Configuration(format!(
                "{} output goes to a file: use -o FILE.{}",
                format.name(),
                format.extension()
            )))
        }
    }
}

/// Writes a complete result to `path`, atomically: the file appears only
/// when every row is written.
pub(crate) fn write_file(
    path: &Path,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial).map_err(|e| {
        DataFusionError::Execution(format!("cannot write `{}`: {e}", path.display()))
    })?;
    let written = match format {
        Format::Svg | Format::Png => {
            let image = if format == Format::Svg {
                chart::ImageFormat::Svg
            } else {
                chart::ImageFormat::Png
            };
            chart::Chart::of(schema, batches)
                .and_then(|chart| chart::image::image(&chart, image))
                .map_err(|why| DataFusionError::Execution(format!("no chart: {why}")))
                .and_then(|bytes| {
                    let mut file = file;
                    file.write_all(&bytes)?;
                    file.flush().map_err(DataFusionError::from)
                })
        }
        Format::Parquet => {
            datafusion::parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None)
                .and_then(|mut writer| {
                    batches.iter().try_for_each(|b| writer.write(b))?;
                    writer.close().map(|_| ())
                })
                .map_err(|e| DataFusionError::External(Box::new(e)))
        }
        _ => {
            let mut out = std::io::BufWriter::new(file);
            write_result(&mut out, format, schema, batches, TableLayout::default())
                .and_then(|_| out.flush().map_err(DataFusionError::from))
        }
    };
    match written {
        Ok(()) => std::fs::rename(&partial, path).map_err(|e| {
            DataFusionError::Execution(format!("cannot write `{}`: {e}", path.display()))
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// One value formatter per column of `batch`.
fn formatters<'a>(
    batch: &'a RecordBatch,
    options: &FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>> {
    Ok(batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

/// The widest a column gets in a terminal before its values are cut.
const MAX_COLUMN_WIDTH: usize = 40;

fn cell_text(value: String) -> String {
    if value.contains(['\n', '\r', '\t']) {
        value
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    } else {
        value
    }
}

/// `text` cut to `width` characters, its last one `…` when cut: table
/// cells, and the progress line at the terminal's width.
pub(crate) fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

/// Writes an aligned table. Numbers are right-aligned, NULL shows as
/// `NULL`; columns shrink (values cut with `…`) and, if still too wide,
/// trailing columns are left out to fit `max_width`; rows past `max_rows`
/// are left out. A footer says what was not shown.
pub(crate) fn write_table(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    layout: TableLayout,
) -> Result<()> {
    let total_rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let null_columns: Vec<usize> = if layout.hide_null_columns && total_rows > 0 {
        (0..schema.fields().len())
            .filter(|&i| {
                batches
                    .iter()
                    .all(|b| b.column(i).logical_null_count() == b.num_rows())
            })
            .collect()
    } else {
        vec![]
    };
    if !null_columns.is_empty() {
        let names: Vec<String> = null_columns
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        let kept: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !null_columns.contains(i))
            .collect();
        let kept_schema = Arc::new(schema.project(&kept)?);
        let kept_batches = batches
            .iter()
            .map(|b| b.project(&kept))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let layout = TableLayout {
            hide_null_columns: false,
            ..layout
        };
        write_table(out, &kept_schema, &kept_batches, layout)?;
        let mut listed = names.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
        if names.len() > 8 {
            listed.push_str(", …");
        }
        writeln!(
            out,
            "{} column(s) NULL in every row not shown: {listed} (\\nullcols show shows them)",
            names.len()
        )?;
        return Ok(());
    }
    let shown_rows = layout.max_rows.map_or(total_rows, |m| m.min(total_rows));
    let headers: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let numeric: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| is_numeric(f.data_type()))
        .collect();

    let options = FormatOptions::default()
        .with_display_error(true)
        .with_null("NULL");
    let mut cells: Vec<Vec<String>> = Vec::with_capacity(shown_rows);
    'batches: for batch in batches {
        let formatters = formatters(batch, &options)?;
        for row in 0..batch.num_rows() {
            if cells.len() == shown_rows {
                break 'batches;
            }
            cells.push(
                formatters
                    .iter()
                    .map(|f| cell_text(f.value(row).to_string()))
                    .collect(),
            );
        }
    }

    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Fit the width: cap long columns, then show as many whole columns,
    // left to right, as fit; cut the first one only if it alone is too wide.
    let mut shown_columns = widths.len();
    if let Some(max_width) = layout.max_width {
        for w in widths.iter_mut() {
            *w = (*w).min(MAX_COLUMN_WIDTH);
        }
        let mut used = 1;
        shown_columns = 0;
        for w in &widths {
            if used + w + 3 > max_width {
                break;
            }
            used += w + 3;
            shown_columns += 1;
        }
        if shown_columns == 0 && !widths.is_empty() {
            widths[0] = max_width.saturating_sub(4).max(1);
            shown_columns = 1;
        }
    }

    let rule = {
        let mut line = String::from("+");
        for w in &widths[..shown_columns] {
            line.push_str(&"-".repeat(w + 2));
            line.push('+');
        }
        line
    };
    let render = |values: &[String], align_numbers: bool| -> String {
        let mut line = String::from("|");
        for (i, w) in widths[..shown_columns].iter().enumerate() {
            let text = truncate(&values[i], *w);
            if align_numbers && numeric[i] {
                line.push_str(&format!(" {text:>w$} |"));
            } else {
                line.push_str(&format!(" {text:<w$} |"));
            }
        }
        line
    };
    writeln!(out, "{rule}")?;
    writeln!(out, "{}", render(&headers, false))?;
    writeln!(out, "{rule}")?;
    for row in &cells {
        writeln!(out, "{}", render(row, true))?;
    }
    if !cells.is_empty() {
        writeln!(out, "{rule}")?;
    }
    if shown_rows < total_rows {
        writeln!(
            out,
            "{total_rows} rows, {shown_rows} shown ({} not shown; --maxrows or \\maxrows to change)",
            total_rows - shown_rows
        )?;
    }
    if shown_columns < headers.len() {
        let hidden = &headers[shown_columns..];
        let mut names = hidden
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if hidden.len() > 8 {
            names.push_str(", …");
        }
        writeln!(
            out,
            "{} column(s) not shown to fit the terminal: {names}",
            hidden.len()
        )?;
    }
    Ok(())
}

/// CSV or TSV: a header row, then one line per row. NULL is an empty field
/// and DATE is `YYYY-MM-DD`. CSV quotes fields holding `,`, `"` or a line
/// break; TSV writes tabs and line breaks inside values as `\t`, `\n`.
fn write_delimited(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    delimiter: u8,
) -> Result<()> {
    let field = |value: &str| -> String {
        if delimiter == b'\t' {
            cell_text(value.to_string())
        } else if value.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value.to_string()
        }
    };
    let sep = char::from(delimiter).to_string();
    let names: Vec<String> = schema.fields().iter().map(|f| field(f.name())).collect();
    writeln!(out, "{}", names.join(&sep))?;
    let options = FormatOptions::default()
        .with_null("")
        .with_date_format(Some("%Y-%m-%d"));
    let mut line = String::new();
    for batch in batches {
        let formatters = formatters(batch, &options)?;
        for row in 0..batch.num_rows() {
            line.clear();
            for (i, formatter) in formatters.iter().enumerate() {
                if i > 0 {
                    line.push_str(&sep);
                }
                line.push_str(&field(&formatter.value(row).try_to_string()?));
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
    }
    Ok(())
}

/// JSON (`[{...},...]`) or NDJSON (`{...}` per line); NULL is `null`.
fn write_json(out: &mut dyn Write, batches: &[RecordBatch], array: bool) -> Result<()> {
    let builder = arrow_json::WriterBuilder::new().with_explicit_nulls(true);
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    if array {
        if batches.is_empty() {
            writeln!(out, "[]")?;
            return Ok(());
        }
        let mut writer = builder.build::<_, arrow_json::writer::JsonArray>(&mut *out);
        writer.write_batches(&batches)?;
        writer.finish()?;
        writeln!(out)?;
    } else {
        let mut writer = builder.build::<_, arrow_json::writer::LineDelimited>(&mut *out);
        writer.write_batches(&batches)?;
        writer.finish()?;
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The number of rows in `batches`.
pub(crate) fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn sample() -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("date", DataType::Date32, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a,b"),
                    None,
                    Some("say \"hi\"\tnow"),
                ])),
                Arc::new(Date32Array::from(vec![Some(19737), Some(0), None])),
                Arc::new(Int64Array::from(vec![Some(1), None, Some(300)])),
            ],
        )
        .unwrap();
        (schema, vec![batch])
    }

    fn render(format: Format, layout: TableLayout) -> String {
        let (schema, batches) = sample();
        let mut out = Vec::new();
        write_result(&mut out, format, &schema, &batches, layout).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sizes_and_cut_text() {
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(truncate("short", 5), "short");
        assert_eq!(truncate("longer", 5), "long…");
    }

    #[test]
    fn csv_and_tsv() {
        assert_eq!(
            render(Format::Csv, TableLayout::default()),
            "s,date,n\n\"a,b\",2024-01-15,1\n,1970-01-01,\n\"say \"\"hi\"\"\tnow\",,300\n"
        );
        assert_eq!(
            render(Format::Tsv, TableLayout::default()),
            "s\tdate\tn\na,b\t2024-01-15\t1\n\t1970-01-01\t\nsay \"hi\"\\tnow\t\t300\n"
        );
    }

    #[test]
    fn json_and_ndjson_keep_nulls() {
        assert_eq!(
            render(Format::Ndjson, TableLayout::default()),
            "{\"s\":\"a,b\",\"date\":\"2024-01-15\",\"n\":1}\n{\"s\":null,\"date\":\"1970-01-01\",\"n\":null}\n{\"s\":\"say \\\"hi\\\"\\tnow\",\"date\":null,\"n\":300}\n"
        );
        let json = render(Format::Json, TableLayout::default());
        assert!(json.starts_with("[{\"s\":\"a,b\""), "{json}");
        assert!(json.ends_with("}]\n"), "{json}");
    }

    #[test]
    fn table_aligns_numbers_right_and_shows_null() {
        let expected = [
            "+---------------+------------+------+",
            "| s             | date       | n    |",
            "+---------------+------------+------+",
            "| a,b           | 2024-01-15 |    1 |",
            "| NULL          | 1970-01-01 | NULL |",
            "| say \"hi\"\\tnow | NULL       |  300 |",
            "+---------------+------------+------+",
        ];
        assert_eq!(
            render(Format::Table, TableLayout::default()),
            expected.join("\n") + "\n"
        );
    }

    #[test]
    fn table_fits_width_and_rows() {
        let narrow = render(
            Format::Table,
            TableLayout {
                max_rows: Some(1),
                max_width: Some(20),
                hide_null_columns: false,
            },
        );
        for line in narrow.lines().take(4) {
            assert!(line.chars().count() <= 20, "{line:?}");
        }
        assert!(narrow.contains("3 rows, 1 shown (2 not shown"), "{narrow}");
        assert!(
            narrow.contains("1 column(s) not shown to fit the terminal: n"),
            "{narrow}"
        );
        // Whole columns are kept rather than every column cut short; widths
        // come from the rows shown.
        assert!(narrow.contains("| a,b | 2024-01-15 |"), "{narrow}");
        let tiny = render(
            Format::Table,
            TableLayout {
                max_rows: None,
                max_width: Some(10),
                hide_null_columns: false,
            },
        );
        assert!(tiny.contains("| say \"… |"), "{tiny}");
    }

    #[test]
    fn table_leaves_out_columns_null_in_every_row() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("action", DataType::Utf8, true),
            Field::new("vpc_id", DataType::Utf8, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("tcp_flags", DataType::Int64, true),
        ]));
        let batch = |action: &str, bytes: Option<i64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(vec![Some(action)])),
                    Arc::new(StringArray::from(vec![None::<&str>])),
                    Arc::new(Int64Array::from(vec![bytes])),
                    Arc::new(Int64Array::from(vec![None::<i64>])),
                ],
            )
            .unwrap()
        };
        // NULL in one batch's row only is not NULL in every row.
        let batches = [batch("ACCEPT", Some(10)), batch("REJECT", None)];
        let write = |hide| {
            let mut out = Vec::new();
            let layout = TableLayout {
                hide_null_columns: hide,
                ..TableLayout::default()
            };
            write_result(&mut out, Format::Table, &schema, &batches, layout).unwrap();
            String::from_utf8(out).unwrap()
        };
        let hidden = write(true);
        let lines: Vec<&str> = hidden.lines().collect();
        assert_eq!(lines[1], "| action | bytes |", "{hidden}");
        assert_eq!(lines[4], "| REJECT |  NULL |", "{hidden}");
        assert_eq!(
            lines.last().unwrap(),
            &"2 column(s) NULL in every row not shown: vpc_id, tcp_flags (\\nullcols show shows them)"
        );
        let shown = write(false);
        assert!(shown.lines().nth(1).unwrap().contains("vpc_id"), "{shown}");
        assert!(!shown.contains("not shown"), "{shown}");
        // Every output but the table keeps every column.
        let mut csv = Vec::new();
        let layout = TableLayout {
            hide_null_columns: true,
            ..TableLayout::default()
        };
        write_result(&mut csv, Format::Csv, &schema, &batches, layout).unwrap();
        assert!(
            String::from_utf8(csv)
                .unwrap()
                .starts_with("action,vpc_id,bytes,tcp_flags\n")
        );
    }
}
