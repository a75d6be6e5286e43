//! Results drawn as charts in the terminal (`\chart`, `--chart`).
//!
//! The first column says what kind of chart a result makes:
//!
//! - a date or timestamp: bars over time, one titled panel per numeric
//!   column (each to its own scale), time running left to right at an
//!   even pace (a gap in time is a gap in the chart); where one bar covers
//!   several rows it shows the largest;
//! - anything else: a horizontal bar per row and numeric column, labelled
//!   with the first column's text and the value.
//!
//! Every other numeric column is a series; a column named for bytes is
//! labelled in KiB, MiB and GiB. NULLs draw nothing. The chart fits the
//! [`Area`] it is given, and uses block characters only where the terminal
//! can show them ([`Area::unicode`]); otherwise plain ASCII.

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::print::human_bytes;

pub(crate) mod image;

pub(crate) use image::ImageFormat;

/// Where a chart is drawn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Area {
    /// Columns of text.
    pub(crate) width: usize,
    /// Lines of text, the legend and axis labels included.
    pub(crate) height: usize,
    /// Block characters (`█▇▆…`) can be shown; else ASCII.
    pub(crate) unicode: bool,
}

impl Area {
    /// The terminal's size (80 x 24 when it has none) and whether its
    /// locale is UTF-8.
    pub(crate) fn of_terminal() -> Self {
        let (width, height) = super::exec::terminal_size().unwrap_or((80, 24));
        Self {
            width,
            // Keep the prompt and the summary line in sight.
            height: height.saturating_sub(2),
            unicode: locale_is_utf8(),
        }
    }
}

/// Whether the locale (`LC_ALL`, else `LC_CTYPE`, else `LANG`) is UTF-8.
fn locale_is_utf8() -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
        .map(|value| {
            let value = value.to_ascii_lowercase();
            value.contains("utf-8") || value.contains("utf8")
        })
        .unwrap_or(false)
}

/// The smallest area a chart is drawn in.
const MIN_WIDTH: usize = 30;
const MIN_HEIGHT: usize = 8;
/// The widest chart drawn, whatever `COLUMNS` says.
const MAX_WIDTH: usize = 1000;

/// Draws `batches` as a chart in `area`, or says why they make none.
pub(crate) fn render(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    area: Area,
) -> Result<String, String> {
    let chart = Chart::of(schema, batches)?;
    let mut area = Area {
        width: area.width.clamp(MIN_WIDTH, MAX_WIDTH),
        height: area.height.max(MIN_HEIGHT),
        ..area
    };
    // Series beyond what the height holds (a time panel takes three lines
    // at least, a bar one per row) are named in a note instead.
    let fitting = match &chart.times {
        Some(_) => (area.height.saturating_sub(6) / 3).max(1),
        None => area.height.saturating_sub(4).max(1),
    };
    let (series, hidden) = chart.series.split_at(fitting.min(chart.series.len()));
    if !hidden.is_empty() {
        area.height -= 1;
    }
    let mut out = match &chart.times {
        Some(keys) => over_time(&chart.labels, keys, series, area),
        None => bars(&chart.label_name, &chart.labels, series, area),
    };
    if !hidden.is_empty() {
        let names: Vec<&str> = hidden.iter().map(|s| s.name.as_str()).collect();
        let note = format!(
            "{} more series not shown to fit the terminal: {}",
            hidden.len(),
            names.join(", ")
        );
        out.push_str(&fit(&note, area.width));
        out.push('\n');
    }
    Ok(out)
}

/// A result read as a chart: the first column's labels (and times, if it
/// holds dates or timestamps), and every numeric column after it.
pub(crate) struct Chart {
    label_name: String,
    labels: Vec<String>,
    /// Each row's time in milliseconds, when the first column is a time.
    times: Option<Vec<Option<i64>>>,
    series: Vec<Series>,
}

impl Chart {
    /// Reads `batches` as a chart, or says why they make none.
    pub(crate) fn of(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Self, String> {
        if schema.fields().len() < 2 {
            return Err(
                "a chart needs two columns or more: labels or times first, then numbers".into(),
            );
        }
        let column = |index: usize| -> Result<ArrayRef, String> {
            let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(index).as_ref()).collect();
            if parts.is_empty() {
                return Ok(datafusion::arrow::array::new_empty_array(
                    schema.field(index).data_type(),
                ));
            }
            concat(&parts).map_err(|e| e.to_string())
        };
        let mut series = Vec::new();
        for (index, field) in schema.fields().iter().enumerate().skip(1) {
            if !field.data_type().is_numeric() {
                continue;
            }
            let values = cast(&column(index)?, &DataType::Float64).map_err(|e| e.to_string())?;
            let values = values
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64")
                .iter()
                .map(|v| v.filter(|v| v.is_finite()))
                .collect();
            series.push(Series {
                name: field.name().clone(),
                bytes: field.name().to_ascii_lowercase().contains("bytes"),
                values,
            });
        }
        if series.is_empty() {
            return Err(format!(
                "nothing to chart: no numeric column after `{}`",
                schema.field(0).name()
            ));
        }
        let first = column(0)?;
        let labels = labels(&first)?;
        if labels.is_empty() {
            return Err("nothing to chart: the result has no rows".into());
        }
        let times = time_keys(&first)?;
        if times
            .as_ref()
            .is_some_and(|t| t.iter().all(Option::is_none))
        {
            return Err(format!(
                "nothing to chart: no row has a `{}`",
                schema.field(0).name()
            ));
        }
        Ok(Self {
            label_name: schema.field(0).name().clone(),
            labels,
            times,
            series,
        })
    }
}

pub(crate) struct Series {
    name: String,
    /// Values are bytes: labelled in KiB, MiB, GiB.
    bytes: bool,
    values: Vec<Option<f64>>,
}

impl Series {
    fn label(&self, value: f64) -> String {
        if self.bytes && value >= 0.0 {
            human_bytes(value.round() as u64)
        } else {
            compact_number(value)
        }
    }

    fn max(&self) -> f64 {
        self.values.iter().flatten().fold(0.0f64, |m, v| m.max(*v))
    }

    fn min(&self) -> f64 {
        self.values.iter().flatten().fold(0.0f64, |m, v| m.min(*v))
    }
}

/// `1234567` → `1.2M`; small values as they are.
fn compact_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e15 {
        return format!("{value:.1e}");
    }
    let (scaled, suffix) = match magnitude {
        m if m >= 1e12 => (value / 1e12, "T"),
        m if m >= 1e9 => (value / 1e9, "G"),
        m if m >= 1e6 => (value / 1e6, "M"),
        m if m >= 1e4 => (value / 1e3, "K"),
        _ => (value, ""),
    };
    if suffix.is_empty() {
        if value.fract() == 0.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.2}")
        }
    } else {
        format!("{scaled:.1}{suffix}")
    }
}

/// The first column's values as text (NULL as `NULL`).
fn labels(array: &ArrayRef) -> Result<Vec<String>, String> {
    let options = FormatOptions::default().with_null("NULL");
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(|e| e.to_string())?;
    Ok((0..array.len())
        .map(|i| formatter.value(i).to_string())
        .collect())
}

/// For a date or timestamp column, each row's time as milliseconds (NULL
/// rows `None`); `None` for any other column.
fn time_keys(array: &ArrayRef) -> Result<Option<Vec<Option<i64>>>, String> {
    let as_millis = match array.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))
                .and_then(|a| cast(&a, &DataType::Int64))
                .map_err(|e| e.to_string())?
        }
        _ => return Ok(None),
    };
    let millis = as_millis
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64");
    Ok(Some(millis.iter().collect()))
}

/// Fill characters, one per series, and the eighths of a full block for
/// the first series' bar ends.
const UNICODE_FILLS: [char; 4] = ['█', '▓', '▒', '░'];
const ASCII_FILLS: [char; 4] = ['#', '=', '*', '+'];
const EIGHTHS_ACROSS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const EIGHTHS_UP: [char; 8] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇'];

/// A horizontal bar per row and series.
fn bars(label_name: &str, labels: &[String], series: &[Series], area: Area) -> String {
    let fills = if area.unicode {
        UNICODE_FILLS
    } else {
        ASCII_FILLS
    };
    let bar_char = if area.unicode { '│' } else { '|' };
    let per_row = series.len();
    // Lines: the legend, then each row's series.
    let room = area.height.saturating_sub(2).max(per_row);
    let shown = (room / per_row).min(labels.len()).max(1);
    let label_width = labels[..shown]
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .max(label_name.chars().count())
        .min(area.width / 3);
    let value_width = series
        .iter()
        .flat_map(|s| {
            s.values[..shown]
                .iter()
                .flatten()
                .map(|v| s.label(*v).len())
        })
        .max()
        .unwrap_or(1);
    let bar_width = area
        .width
        .saturating_sub(label_width + value_width + 4)
        .max(1);
    let magnitudes: Vec<f64> = series.iter().map(|s| s.max().max(-s.min())).collect();
    let mut out = String::new();
    out.push_str(&legend(series, &fills, area.width));
    for (row, label) in labels[..shown].iter().enumerate() {
        for (index, s) in series.iter().enumerate() {
            let label = if index == 0 {
                fit(label, label_width)
            } else {
                String::new()
            };
            let cells = match s.values[row] {
                Some(value) => {
                    // Bars are as long as the value's magnitude; the label
                    // carries its sign.
                    let largest = magnitudes[index];
                    let eighths = if largest > 0.0 {
                        (value.abs() / largest * (bar_width * 8) as f64).round() as usize
                    } else {
                        0
                    };
                    let mut bar: String =
                        std::iter::repeat_n(fills[index % 4], eighths / 8).collect();
                    if area.unicode && index == 0 && eighths % 8 != 0 {
                        bar.push(EIGHTHS_ACROSS[eighths % 8]);
                    } else if eighths % 8 >= 4 {
                        bar.push(fills[index % 4]);
                    }
                    format!("{bar} {}", s.label(value))
                }
                None => "NULL".to_string(),
            };
            let line = format!("{label:>label_width$} {bar_char}{cells}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    if shown < labels.len() {
        let note = format!(
            "… {} more row(s) not shown to fit the terminal",
            labels.len() - shown
        );
        out.push_str(&fit(&note, area.width));
        out.push('\n');
    }
    out
}

/// The legend line: each series' fill and name, and with several, that
/// each has its own scale.
fn legend(series: &[Series], fills: &[char; 4], width: usize) -> String {
    let names: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {}", fills[i % 4], s.name))
        .collect();
    let mut line = names.join("  ");
    if series.len() > 1 {
        line.push_str("  (own scales)");
    }
    let mut line = fit(&line, width);
    line.push('\n');
    line
}

/// Text cut to `width` columns, with `…` where cut.
fn fit(text: &str, width: usize) -> String {
    // A line break or other control character in a label would break the
    // chart's lines.
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() <= width {
        return text;
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Bars over time: one panel per series, time left to right.
fn over_time(labels: &[String], keys: &[Option<i64>], series: &[Series], area: Area) -> String {
    // Rows in time order; rows without a time are left out.
    let mut order: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].is_some()).collect();
    order.sort_by_key(|&i| keys[i]);
    let fills = if area.unicode {
        UNICODE_FILLS
    } else {
        ASCII_FILLS
    };
    // Each series' scale, over the rows drawn (a row without a time is
    // not), and the axis labels' width.
    let scales: Vec<(f64, f64)> = series
        .iter()
        .map(|s| {
            let drawn = || order.iter().filter_map(|&r| s.values[r]);
            (
                drawn().fold(0.0f64, f64::min),
                drawn().fold(0.0f64, f64::max),
            )
        })
        .collect();
    let axis_width = series
        .iter()
        .zip(&scales)
        .map(|(s, (bottom, top))| s.label(*top).len().max(s.label(*bottom).len()))
        .max()
        .unwrap_or(1);
    let plot_width = area.width.saturating_sub(axis_width + 2).max(1);
    // Time runs left to right in `slots` bars, each `row_width` columns
    // wide and covering an equal span of time, so gaps in time are gaps in
    // the chart. That span is the smallest step between two rows' times
    // (a `date_trunc` result's unit) when the width holds every step, else
    // what the width allows.
    let (start, end) = match (order.first(), order.last()) {
        (Some(&first), Some(&last)) => (keys[first].unwrap_or(0), keys[last].unwrap_or(0)),
        _ => (0, 0),
    };
    // Differences in i128: times near either end of i64 do not overflow.
    let span = end as i128 - start as i128;
    let step = order
        .windows(2)
        .filter_map(|pair| Some(keys[pair[1]]? as i128 - keys[pair[0]]? as i128))
        .filter(|gap| *gap > 0)
        .min();
    let steps = step.map(|step| usize::try_from(span / step + 1).unwrap_or(usize::MAX));
    let (slots, row_width) = match steps {
        Some(steps) if steps <= plot_width => (steps, (plot_width / steps).clamp(1, 8)),
        Some(_) => (plot_width, 1),
        None => (1, 8.min(plot_width)),
    };
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); slots];
    for &row in &order {
        let offset = keys[row].unwrap_or(start) as i128 - start as i128;
        let slot = if span > 0 {
            (offset as f64 / span as f64 * (slots - 1) as f64).round() as usize
        } else {
            0
        };
        columns[slot.min(slots - 1)].push(row);
    }
    // Trailing slots no row reaches are not drawn.
    while columns.len() > 1 && columns.last().is_some_and(Vec::is_empty) {
        columns.pop();
    }
    let merged = columns.iter().any(|rows| rows.len() > 1);
    // Lines: the legend, each panel's rows and a line between panels, the
    // time axis and its labels.
    let notes = usize::from(merged) + usize::from(keys.len() > order.len());
    let panel_height = (area.height.saturating_sub(2 + notes + series.len()) / series.len()).max(2);
    let vertical = if area.unicode { '┤' } else { '|' };
    let fill = fills[0];
    let mut out = String::new();
    for (index, s) in series.iter().enumerate() {
        // Each panel is titled with its series, drawn to its own scale.
        let title = fit(&s.name, area.width.saturating_sub(axis_width + 2));
        out.push_str(&format!("{:axis_width$}  {title}\n", ""));
        let (bottom, top) = scales[index];
        let range = top - bottom;
        // Each column's value: the largest of the rows it covers.
        let heights: Vec<Option<usize>> = columns
            .iter()
            .map(|rows| {
                rows.iter()
                    .filter_map(|&r| s.values[r])
                    .reduce(f64::max)
                    .map(|v| {
                        if range > 0.0 {
                            ((v - bottom) / range * (panel_height * 8) as f64).round() as usize
                        } else if v > 0.0 {
                            panel_height * 8
                        } else {
                            0
                        }
                    })
            })
            .collect();
        for line in (0..panel_height).rev() {
            let axis = if line == panel_height - 1 {
                s.label(top)
            } else if line == 0 {
                s.label(bottom)
            } else {
                String::new()
            };
            let mut text = format!("{axis:>axis_width$} {vertical}");
            for height in &heights {
                let cell = match height {
                    Some(h) if *h >= (line + 1) * 8 => fill,
                    Some(h) if *h > line * 8 => {
                        if area.unicode {
                            EIGHTHS_UP[h - line * 8]
                        } else if h - line * 8 >= 4 {
                            fill
                        } else {
                            ' '
                        }
                    }
                    _ => ' ',
                };
                text.extend(std::iter::repeat_n(cell, row_width));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
    }
    // The time axis: first and last times under the ends.
    let drawn = columns.len() * row_width;
    let corner = if area.unicode { '└' } else { '+' };
    let rule = if area.unicode { '─' } else { '-' };
    out.push_str(&format!(
        "{:axis_width$} {corner}{}\n",
        "",
        std::iter::repeat_n(rule, drawn).collect::<String>()
    ));
    let (Some(first), Some(last)) = (order.first(), order.last()) else {
        return out;
    };
    let first = &labels[*first];
    let last = &labels[*last];
    // The last time ends under the last bar, or further right if the two
    // need the room.
    let room = drawn.max(first.chars().count() + last.chars().count() + 1);
    let gap = room.saturating_sub(first.chars().count() + last.chars().count());
    let line = if first == last {
        first.clone()
    } else {
        format!("{first}{:gap$}{last}", "")
    };
    out.push_str(&format!(
        "{:axis_width$}  {}\n",
        "",
        fit(&line, area.width.saturating_sub(axis_width + 2))
    ));
    let untimed = keys.len() - order.len();
    if untimed > 0 {
        out.push_str(&format!(
            "{:axis_width$}  {untimed} row(s) without a time not drawn\n",
            ""
        ));
    }
    if merged {
        out.push_str(&format!(
            "{:axis_width$}  bars that cover several rows show the largest\n",
            ""
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, TimestampSecondArray, UInt64Array};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        (schema, vec![batch])
    }

    const UNICODE: Area = Area {
        width: 40,
        height: 12,
        unicode: true,
    };

    fn draw(columns: Vec<(&str, ArrayRef)>, area: Area) -> String {
        let (schema, batches) = batch(columns);
        render(&schema, &batches, area).unwrap()
    }

    fn fits(chart: &str, area: Area) {
        for line in chart.lines() {
            assert!(line.chars().count() <= area.width, "too wide: {line:?}");
        }
        assert!(chart.lines().count() <= area.height, "too tall:\n{chart}");
    }

    #[test]
    fn categories_draw_horizontal_bars_with_byte_units() {
        let chart = draw(
            vec![
                (
                    "srcaddr",
                    Arc::new(StringArray::from(vec!["10.0.0.1", "10.0.0.22", "10.0.0.3"])),
                ),
                (
                    "total_bytes",
                    Arc::new(UInt64Array::from(vec![4 << 30, 2 << 30, 300 << 20])),
                ),
            ],
            UNICODE,
        );
        assert_eq!(
            chart,
            "█ total_bytes\n\
             \x2010.0.0.1 │██████████████████ 4.0 GiB\n\
             10.0.0.22 │█████████ 2.0 GiB\n\
             \x2010.0.0.3 │█▍ 300.0 MiB\n"
        );
        fits(&chart, UNICODE);
    }

    #[test]
    fn several_series_nulls_and_plain_text() {
        let area = Area {
            unicode: false,
            ..UNICODE
        };
        let chart = draw(
            vec![
                (
                    "action",
                    Arc::new(StringArray::from(vec![
                        Some("ACCEPT"),
                        Some("REJECT"),
                        None,
                    ])),
                ),
                (
                    "flows",
                    Arc::new(Int64Array::from(vec![Some(900), None, Some(30)])),
                ),
                (
                    "packets",
                    Arc::new(Int64Array::from(vec![Some(50_000), Some(1_000), Some(2)])),
                ),
            ],
            area,
        );
        assert_eq!(
            chart,
            "# flows  = packets  (own scales)\n\
             ACCEPT |######################### 900\n\
             \x20      |========================= 50.0K\n\
             REJECT |NULL\n\
             \x20      |= 1000\n\
             \x20 NULL |# 30\n\
             \x20      | 2\n"
        );
        fits(&chart, area);
    }

    #[test]
    fn times_draw_bars_left_to_right() {
        let chart = draw(
            vec![
                (
                    "minute",
                    Arc::new(TimestampSecondArray::from(vec![180, 0, 60, 120])),
                ),
                (
                    "rejects",
                    Arc::new(Int64Array::from(vec![Some(8), Some(2), None, Some(4)])),
                ),
            ],
            Area {
                width: 48,
                height: 8,
                unicode: true,
            },
        );
        // 2 at 00:00, none at 00:01, 4 and 8 after, in eighths of a line.
        assert_eq!(
            chart,
            "   rejects\n\
             8 ┤                        ████████\n\
             \x20 ┤                        ████████\n\
             \x20 ┤                ▄▄▄▄▄▄▄▄████████\n\
             \x20 ┤▂▂▂▂▂▂▂▂        ████████████████\n\
             0 ┤████████        ████████████████\n\
             \x20 └────────────────────────────────\n\
             \x20  1970-01-01T00:00:00 1970-01-01T00:03:00\n"
        );
    }

    #[test]
    fn a_gap_in_time_is_a_gap_in_the_chart() {
        let area = Area {
            width: 48,
            height: MIN_HEIGHT,
            unicode: false,
        };
        let chart = draw(
            vec![
                ("t", Arc::new(TimestampSecondArray::from(vec![0, 60, 240]))),
                ("n", Arc::new(Int64Array::from(vec![1, 1, 1]))),
            ],
            area,
        );
        // Minutes 0 and 1, nothing for minutes 2 and 3, then minute 4.
        let bottom = chart.lines().find(|l| l.starts_with("0 |")).unwrap();
        assert_eq!(
            bottom,
            format!("0 |{}{}{}", "#".repeat(16), " ".repeat(16), "#".repeat(8))
        );
        fits(&chart, area);
    }

    #[test]
    fn one_row_and_a_huge_range_fit() {
        for rows in [1usize, 100_000] {
            let area = Area {
                width: 60,
                height: 14,
                unicode: true,
            };
            let times: Vec<i64> = (0..rows as i64).map(|i| i * 60).collect();
            let values: Vec<i64> = (0..rows as i64).map(|i| i * 1000).collect();
            let chart = draw(
                vec![
                    ("t", Arc::new(TimestampSecondArray::from(times))),
                    ("bytes", Arc::new(Int64Array::from(values.clone()))),
                    ("flows", Arc::new(Int64Array::from(values))),
                ],
                area,
            );
            fits(&chart, area);
            assert!(
                chart.contains("  bytes\n") && chart.contains("  flows\n"),
                "{chart}"
            );
            if rows > 1 {
                assert!(chart.contains("cover several rows"), "{chart}");
            }
        }
    }

    #[test]
    fn odd_results_still_fit() {
        let area = Area {
            width: 40,
            height: 12,
            unicode: true,
        };
        // Ten series: those that do not fit are named instead.
        let many: Vec<(String, ArrayRef)> = (0..10)
            .map(|i| {
                let values: ArrayRef = Arc::new(Int64Array::from(vec![i, -i, i * 1000]));
                (format!("series_{i}"), values)
            })
            .collect();
        for first in [
            Arc::new(StringArray::from(vec!["a", "b\nc", "d"])) as ArrayRef,
            Arc::new(TimestampSecondArray::from(vec![0, 60, 120])) as ArrayRef,
        ] {
            let mut columns: Vec<(&str, ArrayRef)> = vec![("first", first)];
            columns.extend(many.iter().map(|(n, a)| (n.as_str(), Arc::clone(a))));
            let chart = draw(columns, area);
            fits(&chart, area);
            assert!(chart.contains("more series not shown"), "{chart}");
        }
        // Times at both ends of i64, a name longer than the width, a value
        // near f64's largest, negatives.
        let chart = draw(
            vec![
                (
                    "t",
                    Arc::new(datafusion::arrow::array::TimestampMillisecondArray::from(
                        vec![i64::MIN + 1, 0, i64::MAX],
                    )),
                ),
                (
                    "a_very_long_generated_column_name_that_does_not_fit",
                    Arc::new(Float64Array::from(vec![1e300, -1e300, 0.0])),
                ),
            ],
            area,
        );
        fits(&chart, area);
        let chart = draw(
            vec![
                ("k", Arc::new(StringArray::from(vec!["up", "down"]))),
                ("delta", Arc::new(Int64Array::from(vec![10, -20]))),
            ],
            area,
        );
        // Bars as long as the magnitude; the sign in the label.
        assert!(
            chart.contains("down │█████████████████████████████ -20"),
            "{chart}"
        );
        assert!(chart.contains("  up │██████████████▌ 10"), "{chart}");
    }

    #[test]
    fn what_makes_no_chart_is_named() {
        let (schema, batches) = batch(vec![
            ("a", Arc::new(StringArray::from(vec!["x"]))),
            ("b", Arc::new(StringArray::from(vec!["y"]))),
        ]);
        let error = render(&schema, &batches, UNICODE).unwrap_err();
        assert!(error.contains("no numeric column after `a`"), "{error}");
        let (schema, batches) = batch(vec![("a", Arc::new(Int64Array::from(vec![1])))]);
        assert!(render(&schema, &batches, UNICODE).is_err());
        let (schema, batches) = batch(vec![
            ("t", Arc::new(TimestampSecondArray::from(vec![None, None]))),
            ("n", Arc::new(Int64Array::from(vec![1, 2]))),
        ]);
        let error = render(&schema, &batches, UNICODE).unwrap_err();
        assert!(error.contains("no row has a `t`"), "{error}");
    }
}
