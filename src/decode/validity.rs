//! Which of a batch's values are there: a bit per value, set without a
//! branch.
//!
//! Arrow's `NullBufferBuilder` keeps no bitmap until the first null, and
//! from then on appends each bit with a check for room. A flow log's
//! columns have a `-` here and there (a `NODATA` record's addresses,
//! ports and action), so most batches of a column have a null, and its
//! builder pays that check for every value after. [`Validity::push`]
//! sets the bit into the current word and counts the nulls, so a batch
//! without one still has no bitmap.

use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};

/// One batch's validity bits.
pub(super) struct Validity {
    /// A bit per value, set where it is there, 64 values a word.
    words: Vec<u64>,
    len: usize,
    nulls: usize,
    capacity: usize,
}

impl Validity {
    /// Bits for batches of about `capacity` values.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            words: Vec::with_capacity(capacity.div_ceil(64)),
            len: 0,
            nulls: 0,
            capacity,
        }
    }

    /// Appends the next value's bit: set if `there`.
    #[inline(always)]
    pub(super) fn push(&mut self, there: bool) {
        let row = self.len;
        if row.is_multiple_of(64) {
            self.words.push(0);
        }
        let word = self.words.last_mut().expect("a word per 64 values");
        *word |= u64::from(there) << (row % 64);
        self.len += 1;
        self.nulls += usize::from(!there);
    }

    /// The bits pushed so far in this batch, as [`Self::finish`] would
    /// give them, without finishing it.
    pub(super) fn so_far(&self) -> Option<NullBuffer> {
        (self.nulls > 0).then(|| {
            NullBuffer::new(BooleanBuffer::new(
                Buffer::from_slice_ref(&self.words),
                0,
                self.len,
            ))
        })
    }

    /// The bits pushed since the last call, or `None` if every value was
    /// there; the next batch starts empty.
    pub(super) fn finish(&mut self) -> Option<NullBuffer> {
        let words = std::mem::replace(
            &mut self.words,
            Vec::with_capacity(self.capacity.div_ceil(64)),
        );
        let len = std::mem::take(&mut self.len);
        (std::mem::take(&mut self.nulls) > 0)
            .then(|| NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(words), 0, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_come_back_in_order_and_a_batch_without_nulls_has_none() {
        let mut validity = Validity::with_capacity(100);
        for batch in 0..3usize {
            // Across several 64-value words, with nulls in some batches.
            let there: Vec<bool> = (0..150)
                .map(|i| batch == 1 || i % (5 + batch) != 2)
                .collect();
            for &bit in &there {
                validity.push(bit);
            }
            match validity.finish() {
                None => assert!(there.iter().all(|&bit| bit), "batch {batch}"),
                Some(nulls) => {
                    assert_eq!(nulls.len(), there.len());
                    assert_eq!(nulls.iter().collect::<Vec<_>>(), there, "batch {batch}");
                    assert_eq!(
                        nulls.null_count(),
                        there.iter().filter(|&&bit| !bit).count()
                    );
                }
            }
        }
        assert!(validity.finish().is_none());
    }
}
