//! Trino's conversions and arithmetic on dates and timestamps, where
//! DataFusion lacks the function or has one of that name that differs.
//!
//! | function | Trino's meaning (and ours) |
//! |---|---|
//! | `from_unixtime(s [, zone \| , hours, minutes])` | `timestamp(3) with time zone`, UTC unless a zone is given |
//! | `to_unixtime(t)` | seconds since 1970 as DOUBLE |
//! | `to_iso8601(x)` | `2026-10-01T00:03:20.000Z`; dates as `2026-10-01` |
//! | `from_iso8601_timestamp(s)`, `from_iso8601_date(s)` | parse ISO 8601 text |
//! | `date_format(t, f)`, `date_parse(s, f)` | MySQL specifiers ([`super::mysql_format`]) |
//! | `date_add(unit, n, x)`, `date_diff(unit, a, b)` | calendar arithmetic, units `millisecond` … `year` |
//! | `date(x)` | `CAST(x AS DATE)` |
//!
//! Timestamps with a time zone are Arrow timestamps with that zone, so
//! calendar units (`day` and longer) and formatting follow the zone's wall
//! clock; timestamps without one are read as UTC.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveDateTime, Offset, TimeZone};
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType,
};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use super::mysql_format::MySqlFormat;

const UTC: &str = "UTC";
const MILLIS_PER_DAY: i64 = 86_400_000;

/// Every function of this family.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(FromUnixtime::new()),
        ScalarUDF::new_from_impl(ToUnixtime::new()),
        ScalarUDF::new_from_impl(ToIso8601::new()),
        ScalarUDF::new_from_impl(FromIso8601::new(Iso8601Kind::Timestamp, true)),
        ScalarUDF::new_from_impl(FromIso8601::new(Iso8601Kind::Timestamp, false)),
        ScalarUDF::new_from_impl(FromIso8601::new(Iso8601Kind::Date, true)),
        ScalarUDF::new_from_impl(FromIso8601::new(Iso8601Kind::Date, false)),
        ScalarUDF::new_from_impl(DateFormat::new()),
        ScalarUDF::new_from_impl(DateParse::new(true)),
        ScalarUDF::new_from_impl(DateParse::new(false)),
        ScalarUDF::new_from_impl(DateAdd::new()),
        ScalarUDF::new_from_impl(DateDiff::new()),
        ScalarUDF::new_from_impl(DateOf::new()),
    ]
}

/// The lenient twin of a strict parsing function (for `try(..)`), if `udf`
/// is one.
pub(crate) fn lenient_twin(udf: &ScalarUDF) -> Option<ScalarUDF> {
    let inner = udf.inner();
    if let Some(f) = inner.downcast_ref::<FromIso8601>() {
        return f
            .strict
            .then(|| ScalarUDF::new_from_impl(FromIso8601::new(f.kind, false)));
    }
    if let Some(f) = inner.downcast_ref::<DateParse>() {
        return f
            .strict
            .then(|| ScalarUDF::new_from_impl(DateParse::new(false)));
    }
    None
}

// ---------------------------------------------------------------------------
// Shared helpers

/// Each value as UTC epoch milliseconds, and the zone its wall clock is read
/// in (`None`: UTC). Dates are midnight; text is parsed as a timestamp.
fn instants(array: &ArrayRef) -> Result<(TimestampMillisecondArray, Option<Tz>)> {
    let zone = zone_of(array.data_type())?;
    let utc = cast(
        array,
        &DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
    )?;
    Ok((utc.as_primitive::<TimestampMillisecondType>().clone(), zone))
}

/// The zone a timestamp type's wall clock is read in (`None`: UTC).
fn zone_of(data_type: &DataType) -> Result<Option<Tz>> {
    match data_type {
        DataType::Timestamp(_, Some(zone)) => Ok(Some(parse_zone(zone)?)),
        _ => Ok(None),
    }
}

fn parse_zone(zone: &str) -> Result<Tz> {
    zone.parse::<Tz>()
        .map_err(|e| DataFusionError::Plan(format!("unknown time zone '{zone}': {e}")))
}

fn is_temporal(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

/// The wall-clock time of an instant in `zone`.
fn local_time(millis: i64, zone: Option<&Tz>) -> Option<NaiveDateTime> {
    let utc = DateTime::from_timestamp_millis(millis)?;
    Some(match zone {
        Some(zone) => utc.with_timezone(zone).naive_local(),
        None => utc.naive_utc(),
    })
}

/// The instant of a wall-clock time in `zone` (the earlier one in a DST
/// overlap, the time after a DST gap).
fn instant_of(local: NaiveDateTime, zone: Option<&Tz>) -> Option<i64> {
    match zone {
        None => Some(local.and_utc().timestamp_millis()),
        Some(zone) => zone
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.timestamp_millis()),
    }
}

/// The scalar text argument `index`, which must be a literal.
fn literal_text<'a>(
    args: &'a ReturnFieldArgs,
    index: usize,
    what: &str,
) -> Result<Option<&'a str>> {
    match args.scalar_arguments.get(index).copied().flatten() {
        Some(value) => Ok(value.try_as_str().flatten()),
        None => plan_err!("{what} must be a literal"),
    }
}

fn text_arg(value: &ColumnarValue, rows: usize) -> Result<StringArray> {
    let array = cast(&value.to_array(rows)?, &DataType::Utf8)?;
    Ok(array.as_string::<i32>().clone())
}

/// The units of `date_add` and `date_diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    fn parse(text: &str) -> Result<Self> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "millisecond" => Unit::Millisecond,
            "second" => Unit::Second,
            "minute" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            "quarter" => Unit::Quarter,
            "year" => Unit::Year,
            other => {
                return plan_err!(
                    "'{other}' is not a unit: use millisecond, second, minute, hour, day, week, month, quarter or year"
                );
            }
        })
    }

    /// Length in milliseconds of a fixed-length unit; months and longer
    /// depend on the calendar.
    fn fixed_millis(self) -> Option<i64> {
        match self {
            Unit::Millisecond => Some(1),
            Unit::Second => Some(1_000),
            Unit::Minute => Some(60_000),
            Unit::Hour => Some(3_600_000),
            Unit::Day => Some(MILLIS_PER_DAY),
            Unit::Week => Some(7 * MILLIS_PER_DAY),
            Unit::Month | Unit::Quarter | Unit::Year => None,
        }
    }

    fn months(self) -> i64 {
        match self {
            Unit::Quarter => 3,
            Unit::Year => 12,
            _ => 1,
        }
    }

    fn is_calendar(self) -> bool {
        matches!(
            self,
            Unit::Day | Unit::Week | Unit::Month | Unit::Quarter | Unit::Year
        )
    }
}

fn add_months(t: NaiveDateTime, months: i64) -> Option<NaiveDateTime> {
    let magnitude = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        t.checked_add_months(magnitude)
    } else {
        t.checked_sub_months(magnitude)
    }
}

/// Whole months from `a` to `b`, as Joda (and so Trino) counts them: step
/// back when adding the months to `a` overshoots `b`.
fn months_between(a: NaiveDateTime, b: NaiveDateTime) -> Option<i64> {
    let mut months =
        i64::from(b.year() - a.year()) * 12 + i64::from(b.month()) - i64::from(a.month());
    if months > 0 && add_months(a, months)? > b {
        months -= 1;
    } else if months < 0 && add_months(a, months)? < b {
        months += 1;
    }
    Some(months)
}

fn unit_arg(args: &ReturnFieldArgs, function: &str) -> Result<Unit> {
    match literal_text(args, 0, &format!("the unit of {function}"))? {
        Some(unit) => Unit::parse(unit),
        None => plan_err!("the unit of {function} must not be NULL"),
    }
}

fn scalar_unit(value: &ColumnarValue) -> Result<Unit> {
    match value {
        ColumnarValue::Scalar(s) => match s.try_as_str().flatten() {
            Some(unit) => Unit::parse(unit),
            None => plan_err!("the unit must be a text literal"),
        },
        ColumnarValue::Array(_) => plan_err!("the unit must be a literal"),
    }
}

macro_rules! plain_udf {
    ($ty:ident) => {
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct $ty {
            signature: Signature,
        }
    };
}

// ---------------------------------------------------------------------------
// from_unixtime / to_unixtime

plain_udf!(FromUnixtime);

impl FromUnixtime {
    fn new() -> Self {
        use DataType::*;
        Self {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![Float64]),
                    TypeSignature::Exact(vec![Float64, Utf8]),
                    TypeSignature::Exact(vec![Float64, Int64, Int64]),
                ],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for FromUnixtime {
    fn name(&self) -> &str {
        "from_unixtime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let zone = match args.arg_fields.len() {
            1 => UTC.to_string(),
            2 => match literal_text(&args, 1, "the time zone of from_unixtime")? {
                Some(zone) => {
                    parse_zone(zone)?;
                    zone.to_string()
                }
                None => UTC.to_string(),
            },
            _ => {
                let number = |i: usize| -> Result<i64> {
                    match args.scalar_arguments.get(i).copied().flatten() {
                        Some(ScalarValue::Int64(Some(v))) => Ok(*v),
                        _ => plan_err!("the hours and minutes of from_unixtime must be literals"),
                    }
                };
                let (hours, minutes) = (number(1)?, number(2)?);
                let sign = if hours < 0 || minutes < 0 { '-' } else { '+' };
                let zone = format!("{sign}{:02}:{:02}", hours.abs(), minutes.abs());
                parse_zone(&zone)?;
                zone
            }
        };
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Timestamp(TimeUnit::Millisecond, Some(zone.into())),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let seconds = args.args[0].to_array(args.number_rows)?;
        let millis: Vec<Option<i64>> = seconds
            .as_primitive::<Float64Type>()
            .iter()
            .map(|s| s.map(|s| (s * 1000.0).round() as i64))
            .collect();
        let zone = match args.return_field.data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        Ok(ColumnarValue::Array(Arc::new(
            TimestampMillisecondArray::from(millis).with_timezone_opt(zone),
        )))
    }
}

plain_udf!(ToUnixtime);

impl ToUnixtime {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToUnixtime {
    fn name(&self) -> &str {
        "to_unixtime"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !is_temporal(&arg_types[0]) && !arg_types[0].is_null() {
            return plan_err!("to_unixtime takes a timestamp, not {}", arg_types[0]);
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let micros = cast(
            &array,
            &DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        )?;
        let seconds: Float64Array = micros
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .map(|m| m.map(|m| m as f64 / 1e6))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(seconds)))
    }
}

// ---------------------------------------------------------------------------
// ISO 8601

plain_udf!(ToIso8601);

impl ToIso8601 {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToIso8601 {
    fn name(&self) -> &str {
        "to_iso8601"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !is_temporal(&arg_types[0]) && !arg_types[0].is_null() {
            return plan_err!("to_iso8601 takes a date or timestamp, not {}", arg_types[0]);
        }
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let data_type = array.data_type().clone();
        if matches!(data_type, DataType::Date32 | DataType::Date64) {
            let (days, _) = instants(&array)?;
            let text: StringArray = days
                .iter()
                .map(|t| {
                    t.and_then(|t| local_time(t, None))
                        .map(|t| t.format("%Y-%m-%d").to_string())
                })
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(text)));
        }
        let zone = zone_of(&data_type)?;
        // Trino prints as many fraction digits as the type has.
        let fraction = match &data_type {
            DataType::Timestamp(TimeUnit::Second, _) => "",
            DataType::Timestamp(TimeUnit::Millisecond, _) => "%.3f",
            DataType::Timestamp(TimeUnit::Microsecond, _) => "%.6f",
            _ => "%.9f",
        };
        let naive_format = format!("%Y-%m-%dT%H:%M:%S{fraction}");
        let zoned_format = format!("{naive_format}%:z");
        // Nanoseconds keep every digit a microsecond or nanosecond type has.
        let precise = cast(
            &array,
            &DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
        )?;
        let text: StringArray = precise
            .as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>()
            .iter()
            .map(|t| {
                let utc = DateTime::from_timestamp_nanos(t?);
                Some(match &zone {
                    Some(zone) => {
                        let local = utc.with_timezone(zone);
                        if local.offset().fix().local_minus_utc() == 0 {
                            format!("{}Z", local.format(&naive_format))
                        } else {
                            local.format(&zoned_format).to_string()
                        }
                    }
                    None => utc.naive_utc().format(&naive_format).to_string(),
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(text)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Iso8601Kind {
    Timestamp,
    Date,
}

/// `from_iso8601_timestamp` and `from_iso8601_date`; the lenient twins
/// (used by `try`) give NULL for text that does not parse.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FromIso8601 {
    kind: Iso8601Kind,
    strict: bool,
    signature: Signature,
}

impl FromIso8601 {
    fn new(kind: Iso8601Kind, strict: bool) -> Self {
        Self {
            kind,
            strict,
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

/// Parses ISO 8601 timestamps: a date, optionally `T` and a time with an
/// optional fraction, optionally `Z` or an offset. No offset means UTC.
fn parse_iso8601_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M%#z",
        "%Y-%m-%dT%H%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.timestamp_millis());
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&format!("{text}:00"), "%Y-%m-%dT%H:%M") {
        return Some(t.and_utc().timestamp_millis());
    }
    parse_iso8601_date(text).map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis())
}

/// Parses ISO 8601 dates: calendar (`2020-05-11`), week (`2020-W10`,
/// `2020-W10-3`) and ordinal (`2020-123`) forms, and `2020-05` or `2020`.
fn parse_iso8601_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(d);
    }
    if let Some((year, week)) = text.split_once("-W") {
        let (week, day) = week.split_once('-').unwrap_or((week, "1"));
        let weekday = chrono::Weekday::try_from(day.parse::<u8>().ok()?.checked_sub(1)?).ok()?;
        return NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, weekday);
    }
    match text.split_once('-') {
        Some((year, rest)) if rest.len() == 3 => {
            NaiveDate::from_yo_opt(year.parse().ok()?, rest.parse().ok()?)
        }
        Some((year, month)) if month.len() == 2 => {
            NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
        }
        None if text.len() == 4 => NaiveDate::from_ymd_opt(text.parse().ok()?, 1, 1),
        _ => None,
    }
}

impl ScalarUDFImpl for FromIso8601 {
    fn name(&self) -> &str {
        match (self.kind, self.strict) {
            (Iso8601Kind::Timestamp, true) => "from_iso8601_timestamp",
            (Iso8601Kind::Timestamp, false) => "try_from_iso8601_timestamp",
            (Iso8601Kind::Date, true) => "from_iso8601_date",
            (Iso8601Kind::Date, false) => "try_from_iso8601_date",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Iso8601Kind::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
            Iso8601Kind::Date => DataType::Date32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let text = text_arg(&args.args[0], args.number_rows)?;
        let mut values = Vec::with_capacity(text.len());
        for value in text.iter() {
            let Some(value) = value else {
                values.push(None);
                continue;
            };
            let parsed = match self.kind {
                Iso8601Kind::Timestamp => parse_iso8601_timestamp(value),
                Iso8601Kind::Date => parse_iso8601_date(value).map(|d| {
                    i64::from((d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32)
                }),
            };
            if parsed.is_none() && self.strict {
                return exec_err!(
                    "{}: '{value}' is not an ISO 8601 {}",
                    self.name(),
                    match self.kind {
                        Iso8601Kind::Timestamp =>
                            "timestamp (such as 2020-05-11T11:15:05.055+01:00)",
                        Iso8601Kind::Date => "date (such as 2020-05-11)",
                    }
                );
            }
            values.push(parsed);
        }
        Ok(ColumnarValue::Array(match self.kind {
            Iso8601Kind::Timestamp => {
                Arc::new(TimestampMillisecondArray::from(values).with_timezone(UTC))
            }
            Iso8601Kind::Date => Arc::new(
                values
                    .into_iter()
                    .map(|d| d.map(|d| d as i32))
                    .collect::<Date32Array>(),
            ),
        }))
    }
}

// ---------------------------------------------------------------------------
// date_format / date_parse

/// Parsed formats, parsed once when the format is a literal.
fn formats(value: &ColumnarValue, rows: usize) -> Result<Vec<Option<MySqlFormat>>> {
    match value {
        ColumnarValue::Scalar(s) => {
            let format = s
                .try_as_str()
                .flatten()
                .map(MySqlFormat::parse)
                .transpose()?;
            Ok(vec![format; 1])
        }
        ColumnarValue::Array(_) => text_arg(value, rows)?
            .iter()
            .map(|f| f.map(MySqlFormat::parse).transpose())
            .collect(),
    }
}

fn format_at(formats: &[Option<MySqlFormat>], row: usize) -> Option<&MySqlFormat> {
    if formats.len() == 1 {
        formats[0].as_ref()
    } else {
        formats[row].as_ref()
    }
}

plain_udf!(DateFormat);

impl DateFormat {
    fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if !is_temporal(&arg_types[0]) && !arg_types[0].is_null() {
            return plan_err!(
                "date_format takes a timestamp and a format such as '%Y-%m-%d %H:%i:%s', not {}",
                arg_types[0]
            );
        }
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let (instants, zone) = instants(&args.args[0].to_array(rows)?)?;
        let formats = formats(&args.args[1], rows)?;
        let text: StringArray = instants
            .iter()
            .enumerate()
            .map(|(row, t)| {
                let local = local_time(t?, zone.as_ref())?;
                Some(format_at(&formats, row)?.format(&local))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(text)))
    }
}

/// `date_parse(text, format)`, a `timestamp(3)`; the lenient twin (used by
/// `try`) gives NULL for text that does not match.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateParse {
    strict: bool,
    signature: Signature,
}

impl DateParse {
    fn new(strict: bool) -> Self {
        Self {
            strict,
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateParse {
    fn name(&self) -> &str {
        if self.strict {
            "date_parse"
        } else {
            "try_date_parse"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = text_arg(&args.args[0], rows)?;
        let formats = formats(&args.args[1], rows)?;
        let mut out = Vec::with_capacity(text.len());
        for (row, value) in text.iter().enumerate() {
            let (Some(value), Some(format)) = (value, format_at(&formats, row)) else {
                out.push(None);
                continue;
            };
            match format.parse_datetime(value) {
                Ok(t) => out.push(Some(t.and_utc().timestamp_millis())),
                Err(_) if !self.strict => out.push(None),
                Err(reason) => return exec_err!("date_parse: cannot parse '{value}': {reason}"),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(
            TimestampMillisecondArray::from(out),
        )))
    }
}

// ---------------------------------------------------------------------------
// date_add / date_diff / date

plain_udf!(DateAdd);

impl DateAdd {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateAdd {
    fn name(&self) -> &str {
        "date_add"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 {
            return plan_err!("date_add takes (unit, value, timestamp)");
        }
        Ok(vec![DataType::Utf8, DataType::Int64, arg_types[2].clone()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("date_add's type comes from return_field_from_args")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let unit = unit_arg(&args, "date_add")?;
        let data_type = args.arg_fields[2].data_type();
        match data_type {
            DataType::Date32 | DataType::Date64 if !unit.is_calendar() => {
                return plan_err!(
                    "date_add cannot add {unit:?} units to a DATE; cast it to TIMESTAMP first"
                );
            }
            t if is_temporal(t) || t.is_null() => {}
            t => return plan_err!("date_add takes a date or timestamp, not {t}"),
        }
        Ok(Arc::new(Field::new(self.name(), data_type.clone(), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let unit = scalar_unit(&args.args[0])?;
        let amounts = args.args[1].to_array(rows)?;
        let amounts = amounts.as_primitive::<Int64Type>();
        let target = args.args[2].to_array(rows)?;
        let (instants, zone) = instants(&target)?;
        let mut out = Vec::with_capacity(rows);
        for (t, n) in instants.iter().zip(amounts.iter()) {
            let (Some(t), Some(n)) = (t, n) else {
                out.push(None);
                continue;
            };
            let moved = match unit.fixed_millis() {
                Some(step) if !unit.is_calendar() => {
                    n.checked_mul(step).and_then(|d| t.checked_add(d))
                }
                Some(_) => {
                    let days = if unit == Unit::Week { n * 7 } else { n };
                    local_time(t, zone.as_ref())
                        .and_then(|l| l.checked_add_signed(chrono::Duration::days(days)))
                        .and_then(|l| instant_of(l, zone.as_ref()))
                }
                None => local_time(t, zone.as_ref())
                    .and_then(|l| add_months(l, n * unit.months()))
                    .and_then(|l| instant_of(l, zone.as_ref())),
            };
            match moved {
                Some(moved) => out.push(Some(moved)),
                None => return exec_err!("date_add: {n} {unit:?}s from {t} ms is out of range"),
            }
        }
        let zone_name = match target.data_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let moved = TimestampMillisecondArray::from(out).with_timezone_opt(zone_name);
        Ok(ColumnarValue::Array(cast(&moved, target.data_type())?))
    }
}

plain_udf!(DateDiff);

impl DateDiff {
    fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateDiff {
    fn name(&self) -> &str {
        "date_diff"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 {
            return plan_err!("date_diff takes (unit, timestamp1, timestamp2)");
        }
        for t in &arg_types[1..] {
            if !is_temporal(t) && !t.is_null() {
                return plan_err!("date_diff takes dates or timestamps, not {t}");
            }
        }
        Ok(vec![
            DataType::Utf8,
            arg_types[1].clone(),
            arg_types[2].clone(),
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let unit = scalar_unit(&args.args[0])?;
        let (from, zone) = instants(&args.args[1].to_array(rows)?)?;
        let (to, _) = instants(&args.args[2].to_array(rows)?)?;
        let diffs: Int64Array = from
            .iter()
            .zip(to.iter())
            .map(|(a, b)| {
                let (a, b) = (a?, b?);
                match unit.fixed_millis() {
                    Some(step) => Some((b - a) / step),
                    None => {
                        let months = months_between(
                            local_time(a, zone.as_ref())?,
                            local_time(b, zone.as_ref())?,
                        )?;
                        Some(months / unit.months())
                    }
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(diffs)))
    }
}

// `date(x)`, Trino's name for `CAST(x AS DATE)`.
plain_udf!(DateOf);

impl DateOf {
    fn new() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DateOf {
    fn name(&self) -> &str {
        "date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn simplify(&self, mut args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        Ok(ExprSimplifyResult::Simplified(
            datafusion::logical_expr::cast(args.remove(0), DataType::Date32),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        args.args[0].cast_to(&DataType::Date32, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_forms() {
        let at = |s: &str| {
            parse_iso8601_timestamp(s).map(|ms| local_time(ms, None).unwrap().to_string())
        };
        assert_eq!(
            at("2020-05-11T11:15:05").as_deref(),
            Some("2020-05-11 11:15:05")
        );
        assert_eq!(
            at("2020-05-11T11:15:05.055+01:00").as_deref(),
            Some("2020-05-11 10:15:05.055")
        );
        assert_eq!(
            at("2020-05-11T11:15Z").as_deref(),
            Some("2020-05-11 11:15:00")
        );
        assert_eq!(at("2020-05-11").as_deref(), Some("2020-05-11 00:00:00"));
        assert_eq!(at("11:15"), None);
        let date = |s: &str| parse_iso8601_date(s).map(|d| d.to_string());
        assert_eq!(date("2020-W10").as_deref(), Some("2020-03-02"));
        assert_eq!(date("2020-123").as_deref(), Some("2020-05-02"));
        assert_eq!(date("2020-02-30"), None);
    }

    #[test]
    fn month_differences_count_whole_months() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        let months = |a: &str, b: &str| months_between(t(a), t(b)).unwrap();
        assert_eq!(months("2020-01-31 00:00", "2020-02-29 00:00"), 1);
        assert_eq!(months("2020-01-15 12:00", "2020-02-15 11:00"), 0);
        assert_eq!(months("2020-03-15 00:00", "2020-01-16 00:00"), -1);
    }
}
