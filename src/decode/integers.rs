//! An integer column's values as they are appended, with their nulls.
//!
//! Arrow's `PrimitiveBuilder` appends a value and its validity with a
//! branch each (whether the value is there, whether a validity bitmap is
//! kept yet). A flow log's numbers are nearly all there, but a `-` here
//! and there (a `NODATA` record's ports) makes those branches miss now
//! and then; [`Integers::append`] has none: the value (or zero) is
//! stored and its bit pushed onto a [`Validity`], so a batch without a
//! null has no validity bitmap.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, PrimitiveArray};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::datatypes::ArrowPrimitiveType;

use super::validity::Validity;

/// One batch's values of an integer column of type `T`.
pub(super) struct Integers<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    validity: Validity,
    capacity: usize,
}

impl<T: ArrowPrimitiveType> Integers<T> {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            values: Vec::with_capacity(capacity),
            validity: Validity::with_capacity(capacity),
            capacity,
        }
    }

    /// Appends `value`, or a null.
    #[inline(always)]
    pub(super) fn append(&mut self, value: Option<T::Native>) {
        self.validity.push(value.is_some());
        self.values.push(value.unwrap_or_default());
    }

    /// The values appended since the last call, as an array; the next
    /// batch starts empty.
    pub(super) fn finish(&mut self) -> ArrayRef {
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(self.capacity));
        let nulls = self.validity.finish();
        Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, Int64Array};
    use datafusion::arrow::datatypes::Int64Type;

    #[test]
    fn values_and_nulls_come_back_in_order_batch_after_batch() {
        let mut integers = Integers::<Int64Type>::with_capacity(100);
        for batch in 0..3i64 {
            // Across several 64-value words, with nulls in some batches.
            let values: Vec<Option<i64>> = (0..150i64)
                .map(|i| (batch == 0 || i % (7 + batch) != 3).then_some(i * batch - 5))
                .collect();
            for value in &values {
                integers.append(*value);
            }
            let array = integers.finish();
            let array = array.as_primitive::<Int64Type>();
            assert_eq!(array, &Int64Array::from(values));
            assert_eq!(array.nulls().is_none(), batch == 0, "batch {batch}");
        }
        assert_eq!(integers.finish().len(), 0);
    }
}
