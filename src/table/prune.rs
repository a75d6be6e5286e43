//! Which folders and files a query needs.
//!
//! Two mechanisms, both conservative (they may keep a file that has no
//! matching row, never drop one that has):
//!
//! * [`PathPredicate`]: the filters that use only path columns. They are
//!   evaluated exactly, level by level while listing (accounts, regions,
//!   days) and finally on every file.
//! * [`TimeWindow`]: bounds on `start`, `end`, `date` and `file_time`, turned
//!   into a window of file-name times (widened by a slack for the
//!   aggregation interval and late delivery) and a range of day folders.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Int32Array, RecordBatch, StringArray,
    TimestampSecondArray,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::physical_plan::PhysicalExpr;

use crate::catalogue::{self, AWS_ACCOUNT_ID, AWS_REGION, DATE, FILE_TIME};

const DAY_SECONDS: i64 = 86_400;

/// Whether a filter can be answered from path columns alone (and so is
/// applied exactly by the table).
pub(crate) fn is_path_filter(expr: &Expr) -> bool {
    let names: Vec<&str> = catalogue::path_column_names().collect();
    expr_applicable_for_cols(&names, expr)
}

/// Path facts known for one candidate folder or file. `None` means "not
/// known at this level".
#[derive(Debug, Clone, Default)]
pub(crate) struct PathValues {
    /// Account folder.
    pub account: Option<String>,
    /// Region folder.
    pub region: Option<String>,
    /// Day folder.
    pub date: Option<NaiveDate>,
    /// Hour folder; `Some(None)` for a daily layout.
    pub hour: Option<Option<u32>>,
    /// Flow-log id from the file name.
    pub flow_log_id: Option<String>,
    /// File-name time.
    pub file_time: Option<NaiveDateTime>,
}

/// Which path columns a [`PathValues`] level knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// Account known.
    Account,
    /// Account and region known.
    Region,
    /// Account, region and date known.
    Day,
    /// Everything known.
    File,
}

impl Level {
    fn known_columns(self) -> Vec<&'static str> {
        match self {
            Level::Account => vec![AWS_ACCOUNT_ID],
            Level::Region => vec![AWS_ACCOUNT_ID, AWS_REGION],
            Level::Day => vec![AWS_ACCOUNT_ID, AWS_REGION, DATE],
            Level::File => catalogue::path_column_names().collect(),
        }
    }
}

/// The path-only filters of a query, compiled once per listing level.
#[derive(Debug, Clone)]
pub(crate) struct PathPredicate {
    schema: SchemaRef,
    /// One compiled conjunction per [`Level`], `None` when no filter applies there.
    by_level: [Option<Arc<dyn PhysicalExpr>>; 4],
}

impl PathPredicate {
    /// Compiles the path-only conjuncts among `filters`.
    pub(crate) fn try_new(state: &dyn Session, filters: &[Expr]) -> Result<Self> {
        let schema = Arc::new(Schema::new(catalogue::path_fields()));
        let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
        let path_filters: Vec<&Expr> = filters
            .iter()
            .flat_map(|f| split_conjunction(f))
            .filter(|f| is_path_filter(f))
            .collect();
        let mut by_level: [Option<Arc<dyn PhysicalExpr>>; 4] = Default::default();
        for (i, level) in [Level::Account, Level::Region, Level::Day, Level::File]
            .into_iter()
            .enumerate()
        {
            let applicable = path_filters
                .iter()
                .filter(|f| expr_applicable_for_cols(&level.known_columns(), f))
                .map(|f| (*f).clone())
                .reduce(Expr::and);
            by_level[i] = applicable
                .map(|expr| state.create_physical_expr(unqualified(expr)?, &df_schema))
                .transpose()?;
        }
        Ok(Self { schema, by_level })
    }

    /// A predicate with no filters: keeps everything.
    pub(crate) fn empty() -> Self {
        Self {
            schema: Arc::new(Schema::new(catalogue::path_fields())),
            by_level: Default::default(),
        }
    }

    /// The candidates that may hold matching files; `facts` gives each
    /// candidate's path values at `level`.
    pub(crate) fn retain<T>(
        &self,
        level: Level,
        candidates: Vec<T>,
        facts: impl Fn(&T) -> PathValues,
    ) -> Result<Vec<T>> {
        let values: Vec<PathValues> = candidates.iter().map(facts).collect();
        let keep = self.keep(level, &values)?;
        Ok(candidates
            .into_iter()
            .zip(keep)
            .filter_map(|(candidate, keep)| keep.then_some(candidate))
            .collect())
    }

    /// For each candidate, whether it may hold matching files.
    fn keep(&self, level: Level, candidates: &[PathValues]) -> Result<Vec<bool>> {
        let Some(expr) = &self.by_level[level as usize] else {
            return Ok(vec![true; candidates.len()]);
        };
        if candidates.is_empty() {
            return Ok(vec![]);
        }
        let batch = path_batch(&self.schema, candidates)?;
        let result = expr.evaluate(&batch)?.into_array(candidates.len())?;
        let mask: &BooleanArray = result.as_boolean();
        // NULL (unknown) counts as "no match", as in a WHERE clause.
        Ok((0..mask.len())
            .map(|i| mask.is_valid(i) && mask.value(i))
            .collect())
    }
}

/// Drops table qualifiers from column references: the predicate is
/// evaluated against the bare path-column schema.
fn unqualified(expr: Expr) -> Result<Expr> {
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) => Transformed::yes(Expr::Column(Column::from_name(c.name))),
            other => Transformed::no(other),
        })
    })
    .data()
}

/// Path values as partition-column scalars, in table order.
pub(crate) fn partition_values(values: &PathValues) -> Vec<ScalarValue> {
    vec![
        ScalarValue::Utf8(values.account.clone()),
        ScalarValue::Utf8(values.region.clone()),
        ScalarValue::Date32(values.date.map(days_since_epoch)),
        ScalarValue::Int32(values.hour.flatten().map(|h| h as i32)),
        ScalarValue::Utf8(values.flow_log_id.clone()),
        ScalarValue::TimestampSecond(values.file_time.map(|t| t.and_utc().timestamp()), None),
    ]
}

fn path_batch(schema: &SchemaRef, rows: &[PathValues]) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.account.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.region.as_deref()),
        )),
        Arc::new(Date32Array::from_iter(
            rows.iter().map(|r| r.date.map(days_since_epoch)),
        )),
        Arc::new(Int32Array::from_iter(
            rows.iter().map(|r| r.hour.flatten().map(|h| h as i32)),
        )),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.flow_log_id.as_deref()),
        )),
        Arc::new(TimestampSecondArray::from_iter(
            rows.iter()
                .map(|r| r.file_time.map(|t| t.and_utc().timestamp())),
        )),
    ];
    // Unknown values are NULL; the level's conjunction never reads them, so
    // the non-nullable flags of the table schema are relaxed here.
    let relaxed = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(relaxed, columns)?)
}

/// Days since 1970-01-01, the Date32 encoding.
pub(crate) fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
}

/// An inclusive range of integers; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Range {
    /// Lowest value that may match.
    pub lo: Option<i64>,
    /// Highest value that may match.
    pub hi: Option<i64>,
}

impl Range {
    /// Everything.
    pub(crate) const ALL: Range = Range { lo: None, hi: None };

    fn intersect(self, other: Range) -> Range {
        Range {
            lo: max_opt(self.lo, other.lo),
            hi: min_opt(self.hi, other.hi),
        }
    }

    fn hull(self, other: Range) -> Range {
        Range {
            lo: self.lo.zip(other.lo).map(|(a, b)| a.min(b)),
            hi: self.hi.zip(other.hi).map(|(a, b)| a.max(b)),
        }
    }

    fn widen(self, by: i64) -> Range {
        Range {
            lo: self.lo.map(|v| v.saturating_sub(by)),
            hi: self.hi.map(|v| v.saturating_add(by)),
        }
    }

    /// Whether `[lo, hi]` overlaps this range.
    pub(crate) fn overlaps(self, lo: i64, hi: i64) -> bool {
        self.lo.is_none_or(|l| hi >= l) && self.hi.is_none_or(|h| lo <= h)
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A literal as an integer in the column's unit, rounded outwards: `floor`
/// for a lower bound and `ceil` for an upper one keep the range conservative.
fn literal_value(value: &ScalarValue, unit: Unit, round_up: bool) -> Option<i64> {
    let div = |v: i64, per_second: i64| {
        if round_up {
            v.div_euclid(per_second) + i64::from(v.rem_euclid(per_second) != 0)
        } else {
            v.div_euclid(per_second)
        }
    };
    match (unit, value) {
        (Unit::Days, ScalarValue::Date32(Some(d))) => Some(i64::from(*d)),
        (Unit::Seconds, ScalarValue::TimestampSecond(Some(v), _)) => Some(*v),
        (Unit::Seconds, ScalarValue::TimestampMillisecond(Some(v), _)) => Some(div(*v, 1_000)),
        (Unit::Seconds, ScalarValue::TimestampMicrosecond(Some(v), _)) => Some(div(*v, 1_000_000)),
        (Unit::Seconds, ScalarValue::TimestampNanosecond(Some(v), _)) => {
            Some(div(*v, 1_000_000_000))
        }
        (Unit::Integer, ScalarValue::Int64(Some(v))) => Some(*v),
        (Unit::Integer, ScalarValue::Int32(Some(v))) => Some(i64::from(*v)),
        (Unit::Integer, ScalarValue::Int16(Some(v))) => Some(i64::from(*v)),
        (Unit::Integer, ScalarValue::Int8(Some(v))) => Some(i64::from(*v)),
        (Unit::Integer, ScalarValue::UInt32(Some(v))) => Some(i64::from(*v)),
        (Unit::Integer, ScalarValue::UInt64(Some(v))) => i64::try_from(*v).ok(),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Days,
    Seconds,
    Integer,
}

fn literal_of(expr: &Expr) -> Option<&ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value),
        _ => None,
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::Column(c) if c.name == name)
}

/// The values of `column` that can satisfy `expr` (conservatively).
fn column_range(expr: &Expr, column: &str, unit: Unit) -> Range {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => {
                column_range(left, column, unit).intersect(column_range(right, column, unit))
            }
            Operator::Or => {
                column_range(left, column, unit).hull(column_range(right, column, unit))
            }
            _ => {
                let (op, value) = if is_column(left, column) {
                    match literal_of(right) {
                        Some(v) => (*op, v),
                        None => return Range::ALL,
                    }
                } else if is_column(right, column) {
                    match (literal_of(left), op.swap()) {
                        (Some(v), Some(swapped)) => (swapped, v),
                        _ => return Range::ALL,
                    }
                } else {
                    return Range::ALL;
                };
                comparison_range(op, value, unit)
            }
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_column(expr, column) => {
            let lo = literal_of(low).and_then(|v| literal_value(v, unit, false));
            let hi = literal_of(high).and_then(|v| literal_value(v, unit, true));
            Range { lo, hi }
        }
        Expr::InList(list) if !list.negated && is_column(&list.expr, column) => list
            .list
            .iter()
            .map(|item| match literal_of(item) {
                Some(v) => comparison_range(Operator::Eq, v, unit),
                None => Range::ALL,
            })
            .reduce(Range::hull)
            .unwrap_or(Range::ALL),
        _ => Range::ALL,
    }
}

fn comparison_range(op: Operator, value: &ScalarValue, unit: Unit) -> Range {
    let lo = literal_value(value, unit, false);
    let hi = literal_value(value, unit, true);
    match op {
        Operator::Eq => Range { lo, hi },
        Operator::Gt | Operator::GtEq => Range { lo, hi: None },
        Operator::Lt | Operator::LtEq => Range { lo: None, hi },
        _ => Range::ALL,
    }
}

/// The file-name times and day folders a query can need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    /// File-name times (Unix seconds) that may hold matching records.
    pub file_time: Range,
    /// Day folders (days since 1970-01-01) that may hold matching files.
    pub days: Range,
}

impl TimeWindow {
    /// No restriction.
    pub(crate) const ALL: TimeWindow = TimeWindow {
        file_time: Range::ALL,
        days: Range::ALL,
    };

    /// Derives the window from a query's filters. `slack_seconds` is how far
    /// a record's `start` or `end` may lie from its file-name time.
    pub(crate) fn from_filters(filters: &[Expr], slack_seconds: i64) -> Self {
        let mut file_time = Range::ALL;
        let mut days = Range::ALL;
        for filter in filters {
            for (column, unit) in [("start", Unit::Integer), ("end", Unit::Integer)] {
                file_time =
                    file_time.intersect(column_range(filter, column, unit).widen(slack_seconds));
            }
            file_time = file_time.intersect(column_range(filter, FILE_TIME, Unit::Seconds));
            days = days.intersect(column_range(filter, DATE, Unit::Days));
        }
        let from_times = Range {
            lo: file_time.lo.map(|s| s.div_euclid(DAY_SECONDS)),
            hi: file_time.hi.map(|s| s.div_euclid(DAY_SECONDS)),
        };
        TimeWindow {
            file_time,
            days: days.intersect(from_times),
        }
    }

    /// Whether a file with this name time may hold matching records.
    pub(crate) fn keeps_file_time(&self, time: NaiveDateTime) -> bool {
        let t = time.and_utc().timestamp();
        self.file_time.overlaps(t, t)
    }

    /// Whether the days `[first, last]` may hold matching files.
    pub(crate) fn keeps_days(&self, first: NaiveDate, last: NaiveDate) -> bool {
        self.days.overlaps(
            i64::from(days_since_epoch(first)),
            i64::from(days_since_epoch(last)),
        )
    }

    /// The day folders to visit directly, when the window is bounded and
    /// holds at most `max_days` days.
    pub(crate) fn enumerable_days(&self, max_days: usize) -> Option<Vec<NaiveDate>> {
        let (lo, hi) = (self.days.lo?, self.days.hi?);
        if lo > hi {
            return Some(vec![]);
        }
        if (hi - lo) as usize >= max_days {
            return None;
        }
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
        (lo..=hi)
            .map(|d| epoch.checked_add_signed(chrono::Duration::days(d)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{col, lit};

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn date_lit(s: &str) -> Expr {
        lit(ScalarValue::Date32(Some(days_since_epoch(date(s)))))
    }

    #[test]
    fn ranges_from_comparisons() {
        let f = col("start")
            .gt_eq(lit(1_000_000i64))
            .and(col("end").lt(lit(1_000_500i64)));
        let w = TimeWindow::from_filters(&[f], 100);
        assert_eq!(
            w.file_time,
            Range {
                lo: Some(999_900),
                hi: Some(1_000_600)
            }
        );

        let f = col("date").between(date_lit("2024-01-15"), date_lit("2024-01-16"));
        let w = TimeWindow::from_filters(&[f], 3600);
        assert_eq!(
            w.enumerable_days(10).unwrap(),
            [date("2024-01-15"), date("2024-01-16")]
        );

        // OR of two days: the hull; OR with an unrelated filter: unbounded.
        let f = col("date")
            .eq(date_lit("2024-01-15"))
            .or(col("date").eq(date_lit("2024-01-20")));
        assert_eq!(
            TimeWindow::from_filters(&[f], 0)
                .enumerable_days(100)
                .unwrap()
                .len(),
            6
        );
        let f = col("date")
            .eq(date_lit("2024-01-15"))
            .or(col("action").eq(lit("REJECT")));
        assert_eq!(TimeWindow::from_filters(&[f], 0), TimeWindow::ALL);

        // Literal on the left; IN lists; negations are not ranges.
        let f = lit(5i64).lt(col("end"));
        assert_eq!(TimeWindow::from_filters(&[f], 0).file_time.lo, Some(5));
        let f = col("end").in_list(vec![lit(10i64), lit(40i64)], false);
        assert_eq!(
            TimeWindow::from_filters(&[f], 0).file_time,
            Range {
                lo: Some(10),
                hi: Some(40)
            }
        );
        let f = col("end").in_list(vec![lit(10i64)], true);
        assert_eq!(TimeWindow::from_filters(&[f], 0), TimeWindow::ALL);
    }

    #[test]
    fn sub_second_timestamps_round_outwards() {
        let v = ScalarValue::TimestampMillisecond(Some(1_500), None);
        assert_eq!(literal_value(&v, Unit::Seconds, false), Some(1));
        assert_eq!(literal_value(&v, Unit::Seconds, true), Some(2));
    }

    #[test]
    fn time_window_to_days() {
        // 2024-01-16 00:10 with a one-hour slack reaches back into the 15th.
        let t = date("2024-01-16")
            .and_hms_opt(0, 10, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        let w = TimeWindow::from_filters(&[col("start").gt_eq(lit(t))], 3600);
        assert!(w.keeps_days(date("2024-01-15"), date("2024-01-15")));
        assert!(!w.keeps_days(date("2024-01-14"), date("2024-01-14")));
        assert!(w.enumerable_days(1000).is_none(), "no upper bound");
    }
}
