//! Integers written in fewer bytes where their values allow, and read back
//! in their own type: a cache entry's integer columns, and the sums an
//! aggregate spills. Most flow-log integers are small (ports fit 2 bytes,
//! a record's packets often 1), and what these writers cost is mostly the
//! bytes written.
//!
//! Both directions are `as` conversions over a whole column, which the
//! compiler vectorizes. Arrow's cast checks each value, one at a time,
//! even where the type it casts to holds every value of the other.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type,
};
use datafusion::arrow::error::ArrowError;

/// The integer types narrower than `wide` (`Int32` or `Int64`), narrowest
/// first; none for any other type.
pub(crate) fn narrower_types(wide: &DataType) -> &'static [DataType] {
    const NARROWER: [DataType; 6] = [
        DataType::UInt8,
        DataType::Int8,
        DataType::UInt16,
        DataType::Int16,
        DataType::UInt32,
        DataType::Int32,
    ];
    match wide {
        DataType::Int64 => &NARROWER,
        DataType::Int32 => &NARROWER[..4],
        _ => &[],
    }
}

/// The smallest of `types` that holds every integer from `low` to `high`.
pub(crate) fn narrowest(types: &[DataType], low: i64, high: i64) -> Option<DataType> {
    types
        .iter()
        .find(|t| {
            let (min, max) = match t {
                DataType::UInt8 => (0, i64::from(u8::MAX)),
                DataType::Int8 => (i64::from(i8::MIN), i64::from(i8::MAX)),
                DataType::UInt16 => (0, i64::from(u16::MAX)),
                DataType::Int16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
                DataType::UInt32 => (0, i64::from(u32::MAX)),
                DataType::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                _ => return false,
            };
            min <= low && high <= max
        })
        .cloned()
}

/// The narrowest type that holds every value of `columns`, all of type
/// `wide`: `wide` itself if no narrower one does, or if `wide` has none.
/// Columns with no value (empty, or all NULL) fit any type.
pub(crate) fn narrowest_for<'a>(
    wide: &DataType,
    columns: impl IntoIterator<Item = &'a ArrayRef>,
) -> Result<DataType, ArrowError> {
    let types = narrower_types(wide);
    if types.is_empty() {
        return Ok(wide.clone());
    }
    let mut range: Option<(i64, i64)> = None;
    for column in columns {
        if column.null_count() == column.len() {
            continue;
        }
        let (low, high) = match column.data_type() {
            DataType::Int32 => {
                let (low, high) = slots_range(column.as_primitive::<Int32Type>().values());
                (i64::from(low), i64::from(high))
            }
            DataType::Int64 => slots_range(column.as_primitive::<Int64Type>().values()),
            _ => {
                let column = cast(column, &DataType::Int64)?;
                let column = column.as_primitive::<Int64Type>();
                match (min(column), max(column)) {
                    (Some(low), Some(high)) => (low, high),
                    _ => continue,
                }
            }
        };
        range = Some(match range {
            Some((l, h)) => (l.min(low), h.max(high)),
            None => (low, high),
        });
    }
    let (low, high) = range.unwrap_or((0, 0));
    Ok(narrowest(types, low, high).unwrap_or_else(|| wide.clone()))
}

/// The least and greatest of `values`, a column's every slot, nulls'
/// included: a null's slot may only widen the type chosen (whatever `as`
/// makes of it, it stays a null), while one pass over every slot, which
/// the compiler vectorizes, costs a fraction of arrow's `min` and `max`,
/// two passes that skip nulls a bit at a time. `values` has at least one
/// slot.
fn slots_range<T: Copy + Ord>(values: &[T]) -> (T, T) {
    let first = values[0];
    values
        .iter()
        .fold((first, first), |(low, high), &v| (low.min(v), high.max(v)))
}

/// `wide` (`Int32` or `Int64`) as the narrower integer type `narrow`, for
/// values known to fit (as [`narrowest_for`] finds them). `None` for other
/// types.
pub(crate) fn narrowed(wide: &ArrayRef, narrow: &DataType) -> Option<ArrayRef> {
    fn from<S>(wide: &ArrayRef, narrow: &DataType) -> Option<ArrayRef>
    where
        S: ArrowPrimitiveType,
        S::Native: ThroughI64,
    {
        Some(match narrow {
            DataType::UInt8 => convert::<S, UInt8Type>(wide),
            DataType::Int8 => convert::<S, Int8Type>(wide),
            DataType::UInt16 => convert::<S, UInt16Type>(wide),
            DataType::Int16 => convert::<S, Int16Type>(wide),
            DataType::UInt32 => convert::<S, UInt32Type>(wide),
            DataType::Int32 => convert::<S, Int32Type>(wide),
            _ => return None,
        })
    }
    match wide.data_type() {
        DataType::Int32 => from::<Int32Type>(wide, narrow),
        DataType::Int64 => from::<Int64Type>(wide, narrow),
        _ => None,
    }
}

/// `narrow` (an integer type [`narrower_types`] gives for `wide`) back as
/// `wide`. `None` for other types.
pub(crate) fn widened(narrow: &ArrayRef, wide: &DataType) -> Option<ArrayRef> {
    fn to<T>(narrow: &ArrayRef) -> Option<ArrayRef>
    where
        T: ArrowPrimitiveType,
        T::Native: ThroughI64,
    {
        Some(match narrow.data_type() {
            DataType::UInt8 => convert::<UInt8Type, T>(narrow),
            DataType::Int8 => convert::<Int8Type, T>(narrow),
            DataType::UInt16 => convert::<UInt16Type, T>(narrow),
            DataType::Int16 => convert::<Int16Type, T>(narrow),
            DataType::UInt32 => convert::<UInt32Type, T>(narrow),
            DataType::Int32 => convert::<Int32Type, T>(narrow),
            _ => return None,
        })
    }
    if !narrower_types(wide).contains(narrow.data_type()) {
        return None;
    }
    match wide {
        DataType::Int32 => to::<Int32Type>(narrow),
        DataType::Int64 => to::<Int64Type>(narrow),
        _ => None,
    }
}

/// An integer type that `as` converts to and from `i64`, which holds every
/// value of each.
trait ThroughI64: Copy {
    fn to_i64(self) -> i64;
    fn from_i64(value: i64) -> Self;
}

macro_rules! through_i64 {
    ($($t:ty),*) => {$(
        impl ThroughI64 for $t {
            #[inline]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline]
            fn from_i64(value: i64) -> Self {
                value as $t
            }
        }
    )*};
}

through_i64!(u8, i8, u16, i16, u32, i32, i64);

/// Every value of `column` (of type `S`) as type `T`, by `as` conversions
/// through `i64`: exact for every value `T` holds, negatives included.
fn convert<S, T>(column: &ArrayRef) -> ArrayRef
where
    S: ArrowPrimitiveType,
    T: ArrowPrimitiveType,
    S::Native: ThroughI64,
    T::Native: ThroughI64,
{
    let values = column.as_primitive::<S>();
    let converted = values.unary::<_, T>(|v| T::Native::from_i64(v.to_i64()));
    debug_assert!(
        values
            .iter()
            .zip(converted.iter())
            .all(|(v, n)| v.map(ThroughI64::to_i64) == n.map(ThroughI64::to_i64)),
        "a value of {} does not fit {}",
        S::DATA_TYPE,
        T::DATA_TYPE
    );
    Arc::new(converted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, Int64Array};
    use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};

    fn column(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    #[test]
    fn the_narrowest_type_holds_every_value_of_every_column() {
        let of = |columns: &[ArrayRef]| narrowest_for(&DataType::Int64, columns).unwrap();
        assert_eq!(of(&[column(&[Some(0), Some(255)])]), DataType::UInt8);
        assert_eq!(
            of(&[column(&[Some(0)]), column(&[Some(256), None])]),
            DataType::UInt16
        );
        assert_eq!(of(&[column(&[Some(-1), Some(127)])]), DataType::Int8);
        assert_eq!(of(&[column(&[Some(-129)])]), DataType::Int16);
        assert_eq!(
            of(&[column(&[Some(i64::from(u32::MAX))])]),
            DataType::UInt32
        );
        assert_eq!(of(&[column(&[Some(i64::from(i32::MIN))])]), DataType::Int32);
        assert_eq!(
            of(&[column(&[Some(i64::from(u32::MAX) + 1)])]),
            DataType::Int64
        );
        // No value at all: the narrowest.
        assert_eq!(of(&[column(&[None]), column(&[])]), DataType::UInt8);
        // A type with nothing narrower stays as it is.
        let text: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec!["a"]));
        assert_eq!(
            narrowest_for(&DataType::Utf8, [&text]).unwrap(),
            DataType::Utf8
        );
    }

    #[test]
    fn narrowed_and_widened_give_back_every_value_and_null() {
        let ends = [
            (DataType::UInt8, 0, i64::from(u8::MAX)),
            (DataType::Int8, i64::from(i8::MIN), i64::from(i8::MAX)),
            (DataType::UInt16, 0, i64::from(u16::MAX)),
            (DataType::Int16, i64::from(i16::MIN), i64::from(i16::MAX)),
            (DataType::UInt32, 0, i64::from(u32::MAX)),
            (DataType::Int32, i64::from(i32::MIN), i64::from(i32::MAX)),
        ];
        for (narrow, low, high) in ends {
            let wide = column(&[Some(low), None, Some(high), Some(0)]);
            assert_eq!(
                narrowest_for(&DataType::Int64, [&wide]).unwrap(),
                narrow,
                "{low}..={high}"
            );
            let stored = narrowed(&wide, &narrow).unwrap();
            assert_eq!(stored.data_type(), &narrow);
            assert_eq!(stored.null_count(), 1);
            assert_eq!(&widened(&stored, &DataType::Int64).unwrap(), &wide);
            // The same values from and back to Int32, where they fit it.
            if let Ok(wide32) = cast(&wide, &DataType::Int32)
                && wide32.null_count() == 1
                && narrower_types(&DataType::Int32).contains(&narrow)
            {
                let stored = narrowed(&wide32, &narrow).unwrap();
                assert_eq!(&widened(&stored, &DataType::Int32).unwrap(), &wide32);
            }
        }
        // A null whose slot holds a value beyond the others' range (as
        // a filter or a cast may leave it): the values and the null come
        // back, whichever type the slot makes it choose.
        let values = ScalarBuffer::from(vec![5i64, -70_000, 300]);
        let nulls = NullBuffer::from(vec![true, false, true]);
        let wide: ArrayRef = Arc::new(Int64Array::new(values, Some(nulls)));
        let narrow = narrowest_for(&DataType::Int64, [&wide]).unwrap();
        let stored = narrowed(&wide, &narrow).unwrap();
        assert_eq!(&widened(&stored, &DataType::Int64).unwrap(), &wide);
        // Only the integer types narrower than the wide one.
        let wide32: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        assert!(widened(&wide32, &DataType::Int32).is_none());
        assert!(widened(&column(&[Some(1)]), &DataType::Int32).is_none());
        assert!(narrowed(&wide32, &DataType::Int64).is_none());
    }
}
