//! Filters on record columns that the decoder applies to each line.
//!
//! A query's filters reach the table as expressions, one per `AND` term.
//! Those that test one record column against literals are compiled into a
//! [`RecordFilter`]: `=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN` and `IN` on
//! integer columns; `=`, `<>`, `IN` and `LIKE 'prefix%'` on text columns;
//! `IS [NOT] NULL` on either; an `OR` of `=`/`IN` on one column. The decoder
//! compares each line's token with the literals and appends only the rows
//! that pass, so a selective query does not build, and then throw away,
//! columns for every record. The filter is a pre-filter: the table reports
//! such filters as inexact, so DataFusion still evaluates them on the rows
//! that pass, and the decoder only has to never drop a row the filter
//! would keep.
//!
//! Every line is still checked in full first: which lines are malformed
//! never depends on the query.

use std::fmt;

use datafusion::arrow::array::{Array, AsArray, UInt64Array};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::datatypes::ArrowNativeType;
use datafusion::arrow::datatypes::{
    ArrowDictionaryKeyType, ArrowPrimitiveType, DataType, Int8Type, Int16Type, Int32Type,
    Int64Type, Schema, UInt8Type, UInt16Type, UInt32Type,
};
use datafusion::common::{Column, HashSet, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::catalogue::FieldKind;
use crate::text_codes;

/// What a column's value must be for a row to pass one test. A NULL passes
/// only [`Condition::IsNull`], as in SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// One of these integers (`=`, `IN`, `OR` of those).
    IntegerIn(Vec<i64>),
    /// Not this integer (`<>`).
    IntegerNot(i64),
    /// From `low` to `high`, both included (`<`, `<=`, `>`, `>=`,
    /// `BETWEEN`).
    IntegerRange(i64, i64),
    /// One of these texts, as bytes.
    TextIn(Vec<Vec<u8>>),
    /// Not this text.
    TextNot(Vec<u8>),
    /// Text starting with these bytes (`LIKE 'prefix%'`).
    TextPrefix(Vec<u8>),
    /// NULL (`-` in the file, or a field the object's format lacks).
    IsNull,
    /// Not NULL.
    IsNotNull,
}

/// A column's value on one line, as the decoder read it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Null,
    Integer(i64),
    Text(&'a [u8]),
}

/// One test on the record column `column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnTest {
    /// The table's name for the column, such as `dstport`.
    pub column: String,
    /// What passes.
    pub condition: Condition,
}

impl ColumnTest {
    /// Whether the test can run on a field of `kind`.
    pub(crate) fn fits(&self, kind: FieldKind) -> bool {
        use Condition::*;
        match &self.condition {
            IntegerIn(_) | IntegerNot(_) | IntegerRange(..) => kind != FieldKind::Text,
            TextIn(_) | TextNot(_) | TextPrefix(_) => kind == FieldKind::Text,
            IsNull | IsNotNull => true,
        }
    }

    /// The test, ready to run on every line.
    pub(crate) fn matcher(&self) -> Matcher {
        let mut matcher = Matcher {
            condition: self.condition.clone(),
            integers: HashSet::default(),
            texts: HashSet::default(),
        };
        match &self.condition {
            Condition::IntegerIn(values) if values.len() > LONG_LIST => {
                matcher.integers.extend(values.iter().copied());
            }
            Condition::TextIn(values) if values.len() > LONG_LIST => {
                matcher.texts.extend(values.iter().cloned());
            }
            _ => {}
        }
        matcher
    }
}

/// Values in a list past which a hash set wins: a thousand addresses must
/// not cost a thousand comparisons per line.
const LONG_LIST: usize = 8;

/// A [`ColumnTest`] as the decoder runs it: a long value list is also a
/// hash set (empty when the list is short).
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    condition: Condition,
    integers: HashSet<i64>,
    texts: HashSet<Vec<u8>>,
}

impl Matcher {
    /// Whether `value` passes.
    pub(crate) fn passes(&self, value: Value<'_>) -> bool {
        use Condition::*;
        match (&self.condition, value) {
            (IsNull, Value::Null) => true,
            (_, Value::Null) | (IsNull, _) => false,
            (IsNotNull, _) => true,
            (IntegerIn(values), Value::Integer(v)) if self.integers.is_empty() => {
                values.contains(&v)
            }
            (IntegerIn(_), Value::Integer(v)) => self.integers.contains(&v),
            (IntegerNot(value), Value::Integer(v)) => v != *value,
            (IntegerRange(low, high), Value::Integer(v)) => (*low..=*high).contains(&v),
            (TextIn(values), Value::Text(t)) if self.texts.is_empty() => {
                values.iter().any(|v| v == t)
            }
            (TextIn(_), Value::Text(t)) => self.texts.contains(t),
            (TextNot(value), Value::Text(t)) => t != value,
            (TextPrefix(prefix), Value::Text(t)) => t.starts_with(prefix),
            // A test that does not fit the field never runs (see `fits`).
            _ => true,
        }
    }
}

impl Matcher {
    /// Which of `codes` pass, each the [`crate::text_codes`] code of a
    /// text (the local cache's form of an address column), tested on the
    /// codes themselves, without making the text: only text of at most 15
    /// digits and dots has a code, so a text without one equals none of
    /// them, and a prefix of `p` characters is a code's lowest `4p` bits.
    pub(crate) fn passing_codes(&self, codes: &UInt64Array) -> BooleanBuffer {
        use Condition::*;
        let values = codes.values();
        let nulls = codes.nulls();
        let valid = |i: usize| nulls.is_none_or(|nulls| nulls.is_valid(i));
        let each = |test: &dyn Fn(u64) -> bool| {
            BooleanBuffer::collect_bool(values.len(), |i| valid(i) && test(values[i]))
        };
        match &self.condition {
            IsNull => BooleanBuffer::collect_bool(values.len(), |i| !valid(i)),
            TextIn(texts) => {
                let wanted: Vec<u64> = texts.iter().filter_map(|t| text_codes::pack(t)).collect();
                match wanted.as_slice() {
                    [] => each(&|_| false),
                    [one] => each(&|code| code == *one),
                    few if few.len() <= LONG_LIST => each(&|code| few.contains(&code)),
                    many => {
                        let set: HashSet<u64> = many.iter().copied().collect();
                        each(&|code| set.contains(&code))
                    }
                }
            }
            TextNot(text) => match text_codes::pack(text) {
                Some(not) => each(&|code| code != not),
                None => each(&|_| true),
            },
            TextPrefix(prefix) => match text_codes::pack(prefix) {
                Some(start) => {
                    // At most 15 characters: a shift of at most 60.
                    let low = (1u64 << (4 * prefix.len())) - 1;
                    each(&|code| code & low == start)
                }
                None => each(&|_| false),
            },
            // As `passes`: a test that does not fit text passes any value.
            IsNotNull | IntegerIn(_) | IntegerNot(_) | IntegerRange(..) => each(&|_| true),
        }
    }

    /// Which records of `column` pass, tested on the column as it is (the
    /// local cache's form of an object: integers, text, or a dictionary of
    /// text, whose values are tested once each); `None` for a column of
    /// another type, which is not tested here.
    pub(crate) fn passing(&self, column: &dyn Array) -> Option<BooleanBuffer> {
        fn integers<T: ArrowPrimitiveType>(column: &dyn Array) -> &[T::Native] {
            column.as_primitive::<T>().values()
        }
        // For these types the physical nulls are the logical ones.
        let nulls = column.nulls();
        Some(match column.data_type() {
            DataType::Int8 => self.integers(nulls, integers::<Int8Type>(column)),
            DataType::Int16 => self.integers(nulls, integers::<Int16Type>(column)),
            DataType::Int32 => self.integers(nulls, integers::<Int32Type>(column)),
            DataType::Int64 => self.integers(nulls, integers::<Int64Type>(column)),
            DataType::UInt8 => self.integers(nulls, integers::<UInt8Type>(column)),
            DataType::UInt16 => self.integers(nulls, integers::<UInt16Type>(column)),
            DataType::UInt32 => self.integers(nulls, integers::<UInt32Type>(column)),
            DataType::Utf8 => {
                let text = column.as_string::<i32>();
                self.each(nulls, text.len(), |i| Value::Text(text.value(i).as_bytes()))
            }
            DataType::Utf8View => {
                let text = column.as_string_view();
                self.each(nulls, text.len(), |i| Value::Text(text.value(i).as_bytes()))
            }
            DataType::Null => {
                let passes = self.passes(Value::Null);
                BooleanBuffer::collect_bool(column.len(), |_| passes)
            }
            DataType::Dictionary(key, _) => match **key {
                DataType::UInt8 => self.dictionary::<UInt8Type>(column)?,
                DataType::UInt16 => self.dictionary::<UInt16Type>(column)?,
                DataType::Int32 => self.dictionary::<Int32Type>(column)?,
                _ => return None,
            },
            _ => return None,
        })
    }

    /// Which records of a dictionary pass: each value tested once.
    fn dictionary<K: ArrowDictionaryKeyType>(&self, column: &dyn Array) -> Option<BooleanBuffer> {
        let dictionary = column.as_dictionary::<K>();
        let value_passes = self.passing(dictionary.values().as_ref())?;
        // Looked up by key for every record: a byte per value, not a bit.
        let value_passes: Vec<bool> = value_passes.iter().collect();
        let keys = dictionary.keys();
        // Keys were checked against the values when read; a null's key may
        // be anything.
        let by_key = BooleanBuffer::collect_bool(keys.len(), |i| {
            let key = keys.values()[i].as_usize();
            value_passes.get(key).copied().unwrap_or(true)
        });
        Some(match keys.nulls() {
            None => by_key,
            Some(nulls) if self.passes(Value::Null) => &by_key | &!nulls.inner(),
            Some(nulls) => &by_key & nulls.inner(),
        })
    }

    /// Which of `values` pass, one comparison per value for the common
    /// tests (a loop the compiler can vectorize), [`Matcher::passes`] for
    /// the others.
    fn integers<T: Copy + Into<i64>>(
        &self,
        nulls: Option<&NullBuffer>,
        values: &[T],
    ) -> BooleanBuffer {
        let records = values.len();
        let compared = match &self.condition {
            Condition::IntegerIn(list) if list.len() == 1 => {
                let wanted = list[0];
                BooleanBuffer::collect_bool(records, |i| values[i].into() == wanted)
            }
            Condition::IntegerNot(unwanted) => {
                BooleanBuffer::collect_bool(records, |i| values[i].into() != *unwanted)
            }
            Condition::IntegerRange(low, high) => BooleanBuffer::collect_bool(records, |i| {
                let value = values[i].into();
                *low <= value && value <= *high
            }),
            _ => return self.each(nulls, records, |i| Value::Integer(values[i].into())),
        };
        // These tests fail on NULL.
        match nulls {
            Some(nulls) if nulls.null_count() > 0 => &compared & nulls.inner(),
            _ => compared,
        }
    }

    /// Whether each of `records` records passes, given its value (asked
    /// only of records that are not NULL).
    fn each<'a>(
        &self,
        nulls: Option<&NullBuffer>,
        records: usize,
        value: impl Fn(usize) -> Value<'a>,
    ) -> BooleanBuffer {
        match nulls {
            Some(nulls) if nulls.null_count() > 0 => {
                let null_passes = self.passes(Value::Null);
                BooleanBuffer::collect_bool(records, |i| {
                    if nulls.is_null(i) {
                        null_passes
                    } else {
                        self.passes(value(i))
                    }
                })
            }
            _ => BooleanBuffer::collect_bool(records, |i| self.passes(value(i))),
        }
    }
}

impl fmt::Display for ColumnTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = &self.column;
        let quoted =
            |text: &[u8]| format!("'{}'", String::from_utf8_lossy(text).replace('\'', "''"));
        let list = |items: Vec<String>| items.join(", ");
        match &self.condition {
            Condition::IntegerIn(values) => {
                let items = values.iter().map(i64::to_string).collect();
                write!(f, "{column} IN ({})", list(items))
            }
            Condition::IntegerNot(value) => write!(f, "{column} <> {value}"),
            Condition::IntegerRange(low, i64::MAX) => write!(f, "{column} >= {low}"),
            Condition::IntegerRange(i64::MIN, high) => write!(f, "{column} <= {high}"),
            Condition::IntegerRange(low, high) => write!(f, "{column} BETWEEN {low} AND {high}"),
            Condition::TextIn(values) => {
                let items = values.iter().map(|v| quoted(v)).collect();
                write!(f, "{column} IN ({})", list(items))
            }
            Condition::TextNot(value) => write!(f, "{column} <> {}", quoted(value)),
            Condition::TextPrefix(prefix) => {
                write!(
                    f,
                    "{column} LIKE {}",
                    quoted(&[prefix.as_slice(), b"%"].concat())
                )
            }
            Condition::IsNull => write!(f, "{column} IS NULL"),
            Condition::IsNotNull => write!(f, "{column} IS NOT NULL"),
        }
    }
}

/// The tests a row must all pass (an `AND` of [`ColumnTest`]s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    tests: Vec<ColumnTest>,
}

impl RecordFilter {
    /// Compiles the filters (each one an `AND` term) that are tests on the
    /// record columns of `records`; the others are left to DataFusion.
    pub fn from_filters(filters: &[Expr], records: &Schema) -> Self {
        let tests = filters
            .iter()
            .filter_map(|f| column_test(f, records))
            .map(|mut test| {
                // Value lists in one order, without repeats, whatever the
                // query's: plans show the same test the same way.
                match &mut test.condition {
                    Condition::IntegerIn(values) => {
                        values.sort_unstable();
                        values.dedup();
                    }
                    Condition::TextIn(values) => {
                        values.sort_unstable();
                        values.dedup();
                    }
                    _ => {}
                }
                test
            })
            .collect();
        Self { tests }
    }

    /// The tests, in the order of the filters.
    pub fn tests(&self) -> &[ColumnTest] {
        &self.tests
    }

    /// Whether there is nothing to test.
    pub fn is_empty(&self) -> bool {
        self.tests.is_empty()
    }
}

impl fmt::Display for RecordFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, test) in self.tests.iter().enumerate() {
            write!(f, "{}{test}", if i == 0 { "" } else { " AND " })?;
        }
        Ok(())
    }
}

/// `expr` as a test on one record column, if it is one.
fn column_test(expr: &Expr, records: &Schema) -> Option<ColumnTest> {
    let on = |column: &Column| -> Option<(String, bool)> {
        let field = records.field_with_name(&column.name).ok()?;
        let integer = match field.data_type() {
            DataType::Int32 | DataType::Int64 => true,
            DataType::Utf8View | DataType::Utf8 => false,
            _ => return None,
        };
        Some((column.name.clone(), integer))
    };
    let test = |column: String, condition| Some(ColumnTest { column, condition });
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            // Only a union of value lists on one column is again a list.
            let (left, right) = (column_test(left, records)?, column_test(right, records)?);
            if left.column != right.column {
                return None;
            }
            let condition = match (left.condition, right.condition) {
                (Condition::IntegerIn(mut a), Condition::IntegerIn(b)) => {
                    a.extend(b);
                    Condition::IntegerIn(a)
                }
                (Condition::TextIn(mut a), Condition::TextIn(b)) => {
                    a.extend(b);
                    Condition::TextIn(a)
                }
                _ => return None,
            };
            test(left.column, condition)
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, literal, op) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
                (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.swap()?),
                _ => return None,
            };
            let (column, integer_column) = on(column)?;
            let condition = if integer_column {
                let v = integer(literal)?;
                match op {
                    Operator::Eq => Condition::IntegerIn(vec![v]),
                    Operator::NotEq => Condition::IntegerNot(v),
                    // An empty range (past the ends) passes nothing, as it should.
                    Operator::Gt => Condition::IntegerRange(v.checked_add(1)?, i64::MAX),
                    Operator::GtEq => Condition::IntegerRange(v, i64::MAX),
                    Operator::Lt => Condition::IntegerRange(i64::MIN, v.checked_sub(1)?),
                    Operator::LtEq => Condition::IntegerRange(i64::MIN, v),
                    _ => return None,
                }
            } else {
                let v = text(literal)?;
                match op {
                    Operator::Eq => Condition::TextIn(vec![v]),
                    Operator::NotEq => Condition::TextNot(v),
                    _ => return None,
                }
            };
            test(column, condition)
        }
        Expr::InList(list) if !list.negated => {
            let Expr::Column(column) = list.expr.as_ref() else {
                return None;
            };
            let (column, integer_column) = on(column)?;
            let literals = list.list.iter().map(|item| match item {
                Expr::Literal(v, _) => Some(v),
                _ => None,
            });
            let condition = if integer_column {
                Condition::IntegerIn(literals.map(|v| integer(v?)).collect::<Option<_>>()?)
            } else {
                Condition::TextIn(literals.map(|v| text(v?)).collect::<Option<_>>()?)
            };
            test(column, condition)
        }
        Expr::Between(between) if !between.negated => {
            let (Expr::Column(column), Expr::Literal(low, _), Expr::Literal(high, _)) = (
                between.expr.as_ref(),
                between.low.as_ref(),
                between.high.as_ref(),
            ) else {
                return None;
            };
            let (column, integer_column) = on(column)?;
            if !integer_column {
                return None;
            }
            test(
                column,
                Condition::IntegerRange(integer(low)?, integer(high)?),
            )
        }
        Expr::Like(like)
            if !like.negated && !like.case_insensitive && like.escape_char.is_none() =>
        {
            let (Expr::Column(column), Expr::Literal(pattern, _)) =
                (like.expr.as_ref(), like.pattern.as_ref())
            else {
                return None;
            };
            let (column, integer_column) = on(column)?;
            if integer_column {
                return None;
            }
            let pattern = text(pattern)?;
            // Only a plain prefix: no `_`, no escapes, one `%` at the end.
            let prefix = pattern.strip_suffix(b"%")?;
            if prefix.iter().any(|b| matches!(b, b'%' | b'_' | b'\\')) {
                return None;
            }
            test(column, Condition::TextPrefix(prefix.to_vec()))
        }
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
            let Expr::Column(column) = inner.as_ref() else {
                return None;
            };
            let (column, _) = on(column)?;
            let condition = if matches!(expr, Expr::IsNull(_)) {
                Condition::IsNull
            } else {
                Condition::IsNotNull
            };
            test(column, condition)
        }
        _ => None,
    }
}

/// A non-NULL text literal's bytes.
fn text(scalar: &ScalarValue) -> Option<Vec<u8>> {
    Some(scalar.try_as_str()??.as_bytes().to_vec())
}

/// A non-NULL integer literal's value.
fn integer(scalar: &ScalarValue) -> Option<i64> {
    match scalar {
        ScalarValue::Int8(v) => v.map(i64::from),
        ScalarValue::Int16(v) => v.map(i64::from),
        ScalarValue::Int32(v) => v.map(i64::from),
        ScalarValue::Int64(v) => *v,
        ScalarValue::UInt8(v) => v.map(i64::from),
        ScalarValue::UInt16(v) => v.map(i64::from),
        ScalarValue::UInt32(v) => v.map(i64::from),
        ScalarValue::UInt64(v) => v.and_then(|v| i64::try_from(v).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::prelude::{cast, col, lit};

    fn records() -> Schema {
        Schema::new(vec![
            Field::new("dstport", DataType::Int32, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("action", DataType::Utf8View, true),
            Field::new("srcaddr", DataType::Utf8View, true),
        ])
    }

    fn compiled(filter: Expr) -> Option<String> {
        let filter = RecordFilter::from_filters(&[filter], &records());
        (!filter.is_empty()).then(|| filter.to_string())
    }

    #[test]
    fn comparisons_lists_prefixes_and_null_checks_compile() {
        let cases = [
            (col("dstport").eq(lit(22)), "dstport IN (22)"),
            (lit("REJECT").eq(col("action")), "action IN ('REJECT')"),
            (
                col("bytes").in_list(vec![lit(1i64), lit(2u8)], false),
                "bytes IN (1, 2)",
            ),
            (
                col("srcaddr")
                    .eq(lit("10.0.0.1"))
                    .or(col("srcaddr").in_list(vec![lit("10.0.0.2"), lit("o'k")], false)),
                "srcaddr IN ('10.0.0.1', '10.0.0.2', 'o''k')",
            ),
            (col("dstport").not_eq(lit(22)), "dstport <> 22"),
            (col("action").not_eq(lit("ACCEPT")), "action <> 'ACCEPT'"),
            (col("bytes").gt(lit(1000i64)), "bytes >= 1001"),
            (col("bytes").gt_eq(lit(1000i64)), "bytes >= 1000"),
            (col("dstport").lt(lit(1024)), "dstport <= 1023"),
            (lit(1024).gt(col("dstport")), "dstport <= 1023"),
            (col("dstport").lt_eq(lit(1024)), "dstport <= 1024"),
            (
                col("bytes").between(lit(10i64), lit(20i64)),
                "bytes BETWEEN 10 AND 20",
            ),
            (col("srcaddr").like(lit("10.%")), "srcaddr LIKE '10.%'"),
            (col("action").is_null(), "action IS NULL"),
            (col("bytes").is_not_null(), "bytes IS NOT NULL"),
        ];
        for (filter, want) in cases {
            assert_eq!(compiled(filter.clone()).as_deref(), Some(want), "{filter}");
        }
    }

    #[test]
    fn anything_else_is_left_to_datafusion() {
        for filter in [
            col("dstport").in_list(vec![lit(22)], true),
            col("dstport").in_list(vec![lit(22), col("bytes")], false),
            col("dstport").eq(col("bytes")),
            cast(col("dstport"), DataType::Int64).eq(lit(22i64)),
            col("dstport").eq(lit(ScalarValue::Int32(None))),
            col("dstport").eq(lit("22")),
            col("action").eq(lit(1)),
            col("action").gt(lit("A")),
            col("dstport").eq(lit(22)).or(col("bytes").eq(lit(22))),
            col("dstport").eq(lit(22)).or(col("dstport").gt(lit(22))),
            col("aws_region").eq(lit("eu-west-1")),
            col("dstport").eq(lit(u64::MAX)),
            col("bytes").gt(lit(i64::MAX)),
            col("bytes").not_between(lit(1i64), lit(2i64)),
            col("srcaddr").like(lit("%.5")),
            col("srcaddr").like(lit("10._.%")),
            col("srcaddr").like(lit("10\\%%")),
            col("srcaddr").like(lit("10.%.%")),
            col("srcaddr").not_like(lit("10.%")),
            col("srcaddr").ilike(lit("10.%")),
            col("dstport").like(lit("2%")),
            (col("dstport") + lit(1)).eq(lit(23)),
        ] {
            assert_eq!(compiled(filter.clone()), None, "{filter}");
        }
    }

    #[test]
    fn long_lists_find_exactly_their_members() {
        let ports = (0..100).rev().map(|p| lit(p * 3)).collect();
        let addresses = (0..100).rev().map(|i| lit(format!("10.0.0.{i}"))).collect();
        let filter = RecordFilter::from_filters(
            &[
                col("dstport").in_list(ports, false),
                col("srcaddr").in_list(addresses, false),
            ],
            &records(),
        );
        let [ports, addresses] = filter.tests() else {
            panic!("two tests: {filter}")
        };
        for v in -1..400 {
            let member = (0..300).contains(&v) && v % 3 == 0;
            assert_eq!(ports.matcher().passes(Value::Integer(v)), member, "{v}");
        }
        for i in 0..200 {
            let address = format!("10.0.0.{i}");
            let passes = addresses.matcher().passes(Value::Text(address.as_bytes()));
            assert_eq!(passes, i < 100);
        }
    }

    #[test]
    fn conditions_treat_null_as_sql_does() {
        use Value::{Integer, Null, Text};
        let test = |condition| ColumnTest {
            column: "c".to_string(),
            condition,
        };
        let passing = |t: &ColumnTest, values: &[Value<'_>]| {
            values
                .iter()
                .map(|v| t.matcher().passes(*v))
                .collect::<Vec<_>>()
        };
        let ints = [Null, Integer(-1), Integer(0), Integer(5)];
        assert_eq!(
            passing(&test(Condition::IntegerIn(vec![0, 5])), &ints),
            [false, false, true, true]
        );
        assert_eq!(
            passing(&test(Condition::IntegerNot(0)), &ints),
            [false, true, false, true]
        );
        assert_eq!(
            passing(&test(Condition::IntegerRange(0, 4)), &ints),
            [false, false, true, false]
        );
        assert_eq!(
            passing(&test(Condition::IsNull), &ints),
            [true, false, false, false]
        );
        assert_eq!(
            passing(&test(Condition::IsNotNull), &ints),
            [false, true, true, true]
        );
        let texts = [Null, Text(b"10.0.0.1"), Text(b"100.1.1.1"), Text(b"1")];
        assert_eq!(
            passing(&test(Condition::TextPrefix(b"10.".to_vec())), &texts),
            [false, true, false, false]
        );
        assert_eq!(
            passing(&test(Condition::TextNot(b"1".to_vec())), &texts),
            [false, true, true, false]
        );
        assert_eq!(
            passing(&test(Condition::TextIn(vec![b"1".to_vec()])), &texts),
            [false, false, false, true]
        );
    }

    #[test]
    fn a_column_passes_as_each_of_its_values_does() {
        use datafusion::arrow::array::{
            ArrayRef, DictionaryArray, Int32Array, Int64Array, StringArray, StringViewArray,
            UInt8Array, UInt16Array,
        };
        use std::sync::Arc;
        let test = |condition| ColumnTest {
            column: "c".to_string(),
            condition,
        };
        let one_by_one = |matcher: &Matcher, values: &[Value<'_>]| -> Vec<bool> {
            values.iter().map(|v| matcher.passes(*v)).collect()
        };
        let bits = |b: BooleanBuffer| b.iter().collect::<Vec<_>>();
        // Each condition on each column: as the matcher finds each value.
        let check = |conditions: Vec<Condition>, values: &[Value<'_>], columns: &[ArrayRef]| {
            for condition in conditions {
                let matcher = test(condition).matcher();
                let expected = one_by_one(&matcher, values);
                for column in columns {
                    let passing = matcher.passing(column.as_ref()).expect("tested");
                    assert_eq!(
                        bits(passing),
                        expected,
                        "{:?} on {}",
                        matcher.condition,
                        column.data_type()
                    );
                }
            }
        };

        let ints = [Some(0_i64), None, Some(5), Some(255), Some(22)];
        let values: Vec<Value<'_>> = ints
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Integer))
            .collect();
        let columns: [ArrayRef; 4] = [
            Arc::new(Int64Array::from(ints.to_vec())),
            Arc::new(Int32Array::from_iter(
                ints.iter().map(|v| v.map(|v| v as i32)),
            )),
            Arc::new(UInt8Array::from_iter(
                ints.iter().map(|v| v.map(|v| v as u8)),
            )),
            Arc::new(UInt16Array::from_iter(
                ints.iter().map(|v| v.map(|v| v as u16)),
            )),
        ];
        check(
            vec![
                Condition::IntegerIn(vec![22]),
                Condition::IntegerIn(vec![0, 5, 7]),
                Condition::IntegerNot(5),
                Condition::IntegerRange(1, 255),
                Condition::IsNull,
                Condition::IsNotNull,
            ],
            &values,
            &columns,
        );

        let texts = [
            Some("REJECT"),
            None,
            Some("ACCEPT"),
            Some("eni-0123456789abcdef0"),
            Some("REJECT"),
        ];
        let values: Vec<Value<'_>> = texts
            .iter()
            .map(|v| v.map_or(Value::Null, |t| Value::Text(t.as_bytes())))
            .collect();
        // The same texts as a dictionary: values once, a NULL key, keys of
        // two widths.
        let dictionary_values: ArrayRef = Arc::new(StringViewArray::from(vec![
            "ACCEPT",
            "REJECT",
            "eni-0123456789abcdef0",
        ]));
        let keys = [Some(1), None, Some(0), Some(2), Some(1)];
        let columns: [ArrayRef; 4] = [
            Arc::new(StringArray::from(texts.to_vec())),
            Arc::new(StringViewArray::from(texts.to_vec())),
            Arc::new(
                DictionaryArray::<UInt8Type>::try_new(
                    UInt8Array::from(keys.iter().map(|k| k.map(|k| k as u8)).collect::<Vec<_>>()),
                    Arc::clone(&dictionary_values),
                )
                .unwrap(),
            ),
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(
                    Int32Array::from(keys.to_vec()),
                    dictionary_values,
                )
                .unwrap(),
            ),
        ];
        check(
            vec![
                Condition::TextIn(vec![b"REJECT".to_vec()]),
                Condition::TextNot(b"ACCEPT".to_vec()),
                Condition::TextPrefix(b"eni-".to_vec()),
                Condition::IsNull,
                Condition::IsNotNull,
            ],
            &values,
            &columns,
        );
        // A dictionary of no values whose keys are all NULL (a field an
        // object lacks, as a filling reader tests it), and a NULL key that
        // points past the values.
        let no_values: ArrayRef = Arc::new(StringViewArray::from(Vec::<&str>::new()));
        let one_value: ArrayRef = Arc::new(StringViewArray::from(vec!["REJECT"]));
        for (keys, values) in [
            (Int32Array::from(vec![None, None]), no_values),
            (
                Int32Array::new(vec![0, 7].into(), Some(vec![true, false].into())),
                one_value,
            ),
        ] {
            let nulls = keys.nulls().cloned();
            let dictionary = DictionaryArray::<Int32Type>::try_new(keys, values).unwrap();
            for (condition, null_passes) in [
                (Condition::IsNull, true),
                (Condition::IsNotNull, false),
                (Condition::TextIn(vec![b"REJECT".to_vec()]), false),
            ] {
                let passing = test(condition.clone())
                    .matcher()
                    .passing(&dictionary)
                    .unwrap();
                let want: Vec<bool> = (0..dictionary.len())
                    .map(|i| {
                        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                            null_passes
                        } else {
                            condition != Condition::IsNull
                        }
                    })
                    .collect();
                assert_eq!(bits(passing), want, "{condition:?}");
            }
        }
        // A column of NULLs (as the cache keeps a field an object lacks).
        let nulls = datafusion::arrow::array::NullArray::new(3);
        assert_eq!(
            bits(test(Condition::IsNull).matcher().passing(&nulls).unwrap()),
            [true; 3]
        );
        assert_eq!(
            bits(
                test(Condition::IntegerIn(vec![1]))
                    .matcher()
                    .passing(&nulls)
                    .unwrap()
            ),
            [false; 3]
        );
        // A type the decoder never makes is not tested here.
        let floats = datafusion::arrow::array::Float64Array::from(vec![1.0]);
        assert!(test(Condition::IsNull).matcher().passing(&floats).is_none());
    }

    #[test]
    fn record_filter_from_filters_example() {
        use crate::decode::record_filter::RecordFilter;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::prelude::{col, lit};

        let records = Schema::new(vec![
            Field::new("dstport", DataType::Int32, true),
            Field::new("action", DataType::Utf8View, true),
        ]);
        let filters = [
            col("dstport").in_list(vec![lit(22), lit(3389)], false),
            col("action").eq(lit("REJECT")),
            col("dstport").gt(lit(1024)),
            col("action").like(lit("%ECT")), // not a test the decoder runs
        ];
        let filter = RecordFilter::from_filters(&filters, &records);
        assert_eq!(
            filter.to_string(),
            "dstport IN (22, 3389) AND action IN ('REJECT') AND dstport >= 1025"
        );
    }

    /// Codes are tested as the text they stand for: every condition, on
    /// values with and without codes, against `passes` on the text.
    #[test]
    fn codes_pass_as_their_text_does() {
        let texts: Vec<Option<&str>> = vec![
            Some("10.0.1.5"),
            None,
            Some("10.0.15.1"),
            Some("10.0.1.50"),
            Some("1"),
            Some(""),
            Some("255.255.255.255"),
            Some("123456789012345"),
            Some("0.0.0.0"),
            Some("10.0.1"),
        ];
        let codes: UInt64Array = texts
            .iter()
            .map(|t| t.map(|t| text_codes::pack(t.as_bytes()).unwrap()))
            .collect();
        let bytes = |values: &[&str]| -> Vec<Vec<u8>> {
            values.iter().map(|v| v.as_bytes().to_vec()).collect()
        };
        let mut many: Vec<String> = (0..20).map(|i| format!("10.0.1.{i}")).collect();
        many.push("2001:db8::1".into());
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let conditions = [
            Condition::TextIn(bytes(&["10.0.1.5"])),
            Condition::TextIn(bytes(&["10.0.1.5", "1", "", "2001:db8::1"])),
            Condition::TextIn(bytes(&["2001:db8::1", "eni-1"])),
            Condition::TextIn(bytes(&many)),
            Condition::TextNot(b"10.0.1.5".to_vec()),
            Condition::TextNot(b"2001:db8::1".to_vec()),
            Condition::TextPrefix(b"10.0.1".to_vec()),
            Condition::TextPrefix(b"10.0.1.".to_vec()),
            Condition::TextPrefix(b"".to_vec()),
            Condition::TextPrefix(b"1".to_vec()),
            Condition::TextPrefix(b"255.255.255.255".to_vec()),
            Condition::TextPrefix(b"123456789012345".to_vec()),
            Condition::TextPrefix(b"1234567890123456".to_vec()),
            Condition::TextPrefix(b"10.a".to_vec()),
            Condition::IsNull,
            Condition::IsNotNull,
            Condition::IntegerIn(vec![1]),
        ];
        for condition in conditions {
            let matcher = ColumnTest {
                column: "srcaddr".into(),
                condition: condition.clone(),
            }
            .matcher();
            let expected: Vec<bool> = texts
                .iter()
                .map(|t| matcher.passes(t.map_or(Value::Null, |t| Value::Text(t.as_bytes()))))
                .collect();
            let got: Vec<bool> = matcher.passing_codes(&codes).iter().collect();
            assert_eq!(got, expected, "{condition:?}");
        }
    }
}
