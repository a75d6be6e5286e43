//! The same charts as files (`-o FILE.svg`, `-o FILE.png`), drawn by
//! plotters: one panel per numeric column, bars over time or a bar per
//! row, as in the terminal.
//!
//! Text in a PNG is drawn with the DejaVu Sans font shipped beside this
//! file (its licence is `DejaVuSans-LICENSE`), so no system font is
//! needed. PNG files are written here from plotters' RGB buffer: the `png`
//! crate (behind plotters' own encoder) would turn on flate2's default
//! features, which the Parquet reader shares, and rebuild DataFusion for a
//! few lines of container format.

use std::io::Write;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Chart, Series};

/// The image's width, and each panel's height, in pixels.
const WIDTH: u32 = 1000;
const PANEL_HEIGHT: u32 = 320;
/// The most panels (numeric columns) drawn; an image of more would be
/// unreadable (and large).
const MAX_PANELS: usize = 16;

/// An image file format a chart can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageFormat {
    Svg,
    Png,
}

/// The chart as an image in `format`.
pub(crate) fn image(chart: &Chart, format: ImageFormat) -> Result<Vec<u8>, String> {
    register_font();
    if chart.series.len() > MAX_PANELS {
        return Err(format!(
            "{} numeric columns; an image shows at most {MAX_PANELS}",
            chart.series.len()
        ));
    }
    let height = PANEL_HEIGHT * chart.series.len() as u32;
    match format {
        ImageFormat::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
                draw(&root, chart)?;
            }
            Ok(svg.into_bytes())
        }
        ImageFormat::Png => {
            let mut rgb = vec![0u8; WIDTH as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (WIDTH, height)).into_drawing_area();
                draw(&root, chart)?;
            }
            Ok(png(&rgb, WIDTH, height))
        }
    }
}

/// Makes the shipped font plotters' `sans-serif`, once.
fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The font is known good; a failure would only mean no text.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("DejaVuSans.ttf"),
        );
    });
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(fail)?;
    let panels = root.split_evenly((chart.series.len(), 1));
    for (index, (panel, series)) in panels.iter().zip(&chart.series).enumerate() {
        let color = Palette99::pick(index).to_rgba();
        match &chart.times {
            Some(times) => over_time(panel, chart, times, series, color).map_err(fail)?,
            None => bars(panel, chart, series, color).map_err(fail)?,
        }
    }
    root.present().map_err(fail)
}

type Drawn<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The y (or x) range a series' values are drawn on: from 0 (or its
/// smallest value, if negative) to a little above its largest.
fn value_range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let low = values.clone().fold(0.0f64, f64::min);
    let high = values.fold(0.0f64, f64::max);
    let high = if high > low {
        (high + high.abs() * 0.05).min(f64::MAX)
    } else {
        low + 1.0
    };
    (low, high)
}

fn over_time<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    chart: &Chart,
    times: &[Option<i64>],
    series: &Series,
    color: RGBAColor,
) -> Drawn<DB> {
    let mut points: Vec<(i64, f64)> = times
        .iter()
        .zip(&series.values)
        .filter_map(|(t, v)| Some(((*t)?, (*v)?)))
        .collect();
    points.sort_by_key(|(t, _)| *t);
    // Every panel spans the times of all rows, so the panels line up.
    let first = times.iter().flatten().min().copied().unwrap_or(0);
    let last = times.iter().flatten().max().copied().unwrap_or(0);
    let mut sorted: Vec<i64> = times.iter().flatten().copied().collect();
    sorted.sort_unstable();
    // A bar is as wide as the smallest step between two times (times near
    // the ends of i64 saturate rather than overflow).
    let step = sorted
        .windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]))
        .filter(|gap| *gap > 0)
        .min()
        .unwrap_or(60_000);
    let days = points.iter().all(|(t, _)| t % 86_400_000 == 0);
    let (low, high) = value_range(points.iter().map(|p| p.1));
    let mut plot = ChartBuilder::on(panel)
        .caption(&series.name, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(90)
        .build_cartesian_2d(
            first.saturating_sub(step / 2)..last.saturating_add(step / 2),
            low..high,
        )?;
    plot.configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|ms| time_label(*ms, days))
        .y_label_formatter(&|v| series.label(*v))
        .x_desc(&chart.label_name)
        .draw()?;
    let half = (step / 5 * 2).max(1);
    plot.draw_series(points.iter().map(|(t, v)| {
        Rectangle::new(
            [(t.saturating_sub(half), 0.0), (t.saturating_add(half), *v)],
            color.filled(),
        )
    }))?;
    Ok(())
}

/// A time in milliseconds as a label: the day alone when every time is a
/// whole day.
fn time_label(ms: i64, days: bool) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(time) if days => time.format("%Y-%m-%d").to_string(),
        Some(time) => time.format("%Y-%m-%d %H:%M").to_string(),
        None => ms.to_string(),
    }
}

fn bars<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    chart: &Chart,
    series: &Series,
    color: RGBAColor,
) -> Drawn<DB> {
    let rows = chart.labels.len();
    let (low, high) = value_range(series.values.iter().flatten().copied());
    // The first row at the top: row i is drawn at y = rows - 1 - i.
    let label = |y: &f64| -> String {
        let y = *y;
        let row = rows as f64 - 1.0 - y.round();
        if (y - y.round()).abs() > 0.01 || row < 0.0 || row >= rows as f64 {
            return String::new();
        }
        super::fit(&chart.labels[row as usize], 28)
    };
    let mut plot = ChartBuilder::on(panel)
        .caption(&series.name, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(220)
        .build_cartesian_2d(low..high, -0.5..(rows as f64 - 0.5))?;
    plot.configure_mesh()
        .disable_y_mesh()
        .x_labels(6)
        .y_labels(rows.min(30))
        .x_label_formatter(&|v| series.label(*v))
        .y_label_formatter(&label)
        .y_desc(&chart.label_name)
        .draw()?;
    plot.draw_series(series.values.iter().enumerate().filter_map(|(i, v)| {
        let y = (rows - 1 - i) as f64;
        v.map(|v| Rectangle::new([(0.0, y - 0.35), (v, y + 0.35)], color.filled()))
    }))?;
    Ok(())
}

/// An 8-bit RGB image as a PNG file: the signature, the header, the
/// pixels' rows (each unfiltered) deflated in one IDAT chunk, the end.
fn png(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no
    // interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    let mut pixels = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    for row in rgb.chunks(width as usize * 3) {
        // Writing to a Vec cannot fail.
        pixels.write_all(&[0]).expect("write to memory");
        pixels.write_all(row).expect("write to memory");
    }
    chunk(
        &mut out,
        b"IDAT",
        &pixels.finish().expect("write to memory"),
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// One PNG chunk: length, type, data and the CRC of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}
