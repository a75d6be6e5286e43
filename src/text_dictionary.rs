//! Text as a dictionary: each distinct value once, and a key per value.
//!
//! The local cache keeps text whose values repeat (actions, log
//! statuses, interface, VPC and account ids: a few hundred distinct
//! values among thousands of records) as a dictionary. The encoder is a
//! piece of its own because two stages use it: the cache's writer, on
//! text it is handed as views, and the decoder, which, reading an object
//! that fills the cache, makes such a column's keys as it reads each
//! value instead of views the writer would read again.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int32Array, StringArray, StringViewArray};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::error::ArrowError;
use datafusion::common::HashMap;

/// The first records of an object whose text decides whether it is kept
/// as a dictionary ([`DictionaryEncoder::repeats`]).
pub(crate) const DICTIONARY_SAMPLE: usize = 2048;

/// The most values a dictionary the decoder makes may have before the
/// rest of the object is read as views: every batch's array, and every
/// data file of the object's cache entry, holds all of them.
pub(crate) const DECODER_VALUES_AT_MOST: usize = 4096;

/// Builds one dictionary for a column over all of an object's batches:
/// each batch's keys index into the values found so far, so a data file
/// holds the values once (as deltas in Arrow IPC when written batch by
/// batch) and every batch of the file shares them.
pub(crate) struct DictionaryEncoder {
    /// Values of at most 32 bytes (actions, interface ids, VPC ids), by
    /// their [`Words`]: hashed and compared as integers, not as bytes.
    by_words: HashMap<Words, i32>,
    /// Values met lately and their keys, looked at before `by_words`: a
    /// column's few values are then found without a hash table's probing.
    /// A value goes to the slot a hash of its words gives, moving the one
    /// there to the slot's pair (`slot ^ 1`), and is looked for in both:
    /// two values whose hashes meet (a few among an object's 64 interface
    /// ids) then both stay, instead of putting each other out.
    recent: Box<[(Words, i32); RECENT_SLOTS]>,
    /// The same for values of at most 12 bytes, by their view alone:
    /// looked at first, a comparison or two per record.
    short: Box<[(u128, i32); SHORT_SLOTS]>,
    /// The last short value found by [`Self::key_of_short`] and its key,
    /// looked at before the slots: most records of a column such as
    /// `action` have the value the record before had, found then with one
    /// comparison and no hash or load through `short`.
    last_short: (u128, i32),
    /// Longer values, by their bytes.
    long: HashMap<Box<[u8]>, i32>,
    /// The values' offsets in `bytes` (starting at 0).
    offsets: Vec<i32>,
    bytes: Vec<u8>,
    /// The values as an array, while no value has been added since.
    values: Option<ArrayRef>,
}

impl Default for DictionaryEncoder {
    fn default() -> Self {
        Self {
            by_words: HashMap::default(),
            // No value has these words: a view's length is at most 12.
            recent: Box::new([((u128::MAX, 0, 0), 0); RECENT_SLOTS]),
            // No short value has this view: its length is more than 12.
            short: Box::new([(u128::MAX, 0); SHORT_SLOTS]),
            last_short: (u128::MAX, 0),
            long: HashMap::default(),
            offsets: vec![0],
            bytes: Vec::new(),
            values: None,
        }
    }
}

impl DictionaryEncoder {
    /// An encoder that holds `values`, in their order: it gives each of
    /// them its index as its key, as the encoder that made them did.
    pub(crate) fn with_values(values: &StringArray) -> Result<Self, ArrowError> {
        let mut encoder = Self::default();
        for (index, value) in values.iter().enumerate() {
            let key = encoder.key_of(value.unwrap_or_default().as_bytes())?;
            if key as usize != index {
                return Err(ArrowError::InvalidArgumentError(
                    "a dictionary's values are not distinct".to_string(),
                ));
            }
        }
        Ok(encoder)
    }

    /// Distinct values seen so far.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Bytes of the values seen so far.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Whether `text`'s first [`DICTIONARY_SAMPLE`] values repeat enough
    /// for it to be kept as a dictionary: each value at least twice on
    /// average (the keys and the values once are then smaller than the
    /// text, and a test per value saves at least half the tests). The
    /// sample's values stay in the encoder (found again, not added, when
    /// `text` is encoded).
    pub(crate) fn repeats(&mut self, text: &StringViewArray) -> Result<bool, ArrowError> {
        let sample = text.len().min(DICTIONARY_SAMPLE);
        Ok(self.sample_keys(&text.slice(0, sample))?.is_some())
    }

    /// `sample`'s keys (at most [`DICTIONARY_SAMPLE`] values) if it repeats
    /// as [`Self::repeats`] tells, found in the one pass that tells it.
    pub(crate) fn sample_keys(
        &mut self,
        sample: &StringViewArray,
    ) -> Result<Option<Int32Array>, ArrowError> {
        debug_assert!(
            sample.len() <= DICTIONARY_SAMPLE,
            "a sample of {}",
            sample.len()
        );
        self.encode_at_most(sample, sample.len() / 2)
    }

    /// The values seen so far, as one array (the same one until a value is
    /// added).
    pub(crate) fn values(&mut self) -> Result<ArrayRef, ArrowError> {
        if let Some(values) = &self.values {
            return Ok(Arc::clone(values));
        }
        let values: ArrayRef = Arc::new(StringArray::try_new(
            OffsetBuffer::new(ScalarBuffer::from(self.offsets.clone())),
            Buffer::from(self.bytes.clone()),
            None,
        )?);
        self.values = Some(Arc::clone(&values));
        Ok(values)
    }

    /// `text` as keys into the values seen so far (this batch's included).
    pub(crate) fn encode(&mut self, text: &StringViewArray) -> Result<Int32Array, ArrowError> {
        Ok(self
            .encode_at_most(text, usize::MAX)?
            .expect("no limit on values"))
    }

    /// [`DictionaryEncoder::encode`], or `None` as soon as there are more
    /// than `most` values.
    fn encode_at_most(
        &mut self,
        text: &StringViewArray,
        most: usize,
    ) -> Result<Option<Int32Array>, ArrowError> {
        let buffers = text.data_buffers();
        let nulls = text.nulls();
        let mut keys = Vec::with_capacity(text.len());
        for (i, &view) in text.views().iter().enumerate() {
            let len = view as u32 as usize;
            // A short value met lately is found by its view alone, before
            // any null check (a null's key is never read, and this one is
            // a real key all the same).
            let slot = short_slot(view);
            if len <= 12
                && let Some(key) = self.recent_short(view, slot)
            {
                keys.push(key);
                continue;
            }
            if nulls.is_some_and(|nulls| nulls.is_null(i)) {
                keys.push(0);
                continue;
            }
            let key = if len <= 12 {
                self.short_miss(view, slot)?
            } else {
                let buffer = buffers[(view >> 64) as u32 as usize].as_slice();
                let offset = (view >> 96) as u32 as usize;
                self.key_of_longer(&buffer[offset..offset + len])?
            };
            if self.len() > most {
                return Ok(None);
            }
            keys.push(key);
        }
        Ok(Some(Int32Array::new(
            ScalarBuffer::from(keys),
            text.nulls().cloned(),
        )))
    }

    /// The key of a value of at most 12 bytes, given as its string view
    /// (its length, then its bytes).
    #[inline(always)]
    pub(crate) fn key_of_short(&mut self, view: u128) -> Result<i32, ArrowError> {
        if self.last_short.0 == view {
            return Ok(self.last_short.1);
        }
        let slot = short_slot(view);
        let key = match self.recent_short(view, slot) {
            Some(key) => key,
            None => self.short_miss(view, slot)?,
        };
        self.last_short = (view, key);
        Ok(key)
    }

    /// The key of any value.
    #[inline]
    pub(crate) fn key_of(&mut self, value: &[u8]) -> Result<i32, ArrowError> {
        if value.len() <= 12 {
            let mut bytes = [0u8; 16];
            bytes[..value.len()].copy_from_slice(value);
            return self.key_of_short(value.len() as u128 | u128::from_le_bytes(bytes) << 32);
        }
        self.key_of_longer(value)
    }

    #[inline(always)]
    fn recent_short(&self, view: u128, slot: usize) -> Option<i32> {
        if self.short[slot].0 == view {
            return Some(self.short[slot].1);
        }
        if self.short[slot ^ 1].0 == view {
            return Some(self.short[slot ^ 1].1);
        }
        None
    }

    /// The key of a short value not in its slots, which it then takes.
    #[inline(never)]
    fn short_miss(&mut self, view: u128, slot: usize) -> Result<i32, ArrowError> {
        // A short value's view is its words: no need to find its bytes.
        let key = self.key_of_words((view, 0, 0), |view| {
            let len = view.0 as u32 as usize;
            (view.0 >> 32).to_le_bytes()[..len].to_vec()
        })?;
        self.short[slot ^ 1] = self.short[slot];
        self.short[slot] = (view, key);
        Ok(key)
    }

    /// The key of a value of more than 12 bytes.
    fn key_of_longer(&mut self, value: &[u8]) -> Result<i32, ArrowError> {
        match longer_value_words(value) {
            Some(words) => self.key_of_words(words, |_| value.to_vec()),
            None => match self.long.get(value) {
                Some(&key) => Ok(key),
                None => {
                    let key = self.add(value)?;
                    self.long.insert(value.into(), key);
                    Ok(key)
                }
            },
        }
    }

    /// The key of the value of `words`, whose bytes `bytes` gives if it
    /// is new.
    #[inline]
    fn key_of_words(
        &mut self,
        words: Words,
        bytes: impl FnOnce(&Words) -> Vec<u8>,
    ) -> Result<i32, ArrowError> {
        let slot = recent_slot(&words);
        if self.recent[slot].0 == words {
            return Ok(self.recent[slot].1);
        }
        if self.recent[slot ^ 1].0 == words {
            return Ok(self.recent[slot ^ 1].1);
        }
        let key = match self.by_words.get(&words) {
            Some(&key) => key,
            None => {
                let key = self.add(&bytes(&words))?;
                self.by_words.insert(words, key);
                key
            }
        };
        self.recent[slot ^ 1] = self.recent[slot];
        self.recent[slot] = (words, key);
        Ok(key)
    }

    fn add(&mut self, value: &[u8]) -> Result<i32, ArrowError> {
        let too_many = || ArrowError::ComputeError("a dictionary past 2 GiB".to_string());
        let key = i32::try_from(self.len()).map_err(|_| too_many())?;
        self.bytes.extend_from_slice(value);
        let end = i32::try_from(self.bytes.len()).map_err(|_| too_many())?;
        self.offsets.push(end);
        self.values = None;
        Ok(key)
    }
}

/// A text value of at most 32 bytes as words that give every byte of it:
/// a value of at most 12 bytes as its view (length and bytes) and zeros,
/// a longer one as [`longer_value_words`] gives it.
type Words = (u128, u128, u32);

/// Slots of [`DictionaryEncoder::recent`].
const RECENT_SLOTS: usize = 256;

/// Slots of [`DictionaryEncoder::short`].
const SHORT_SLOTS: usize = 256;

/// The slot of a short value's `view` in [`DictionaryEncoder::short`].
#[inline(always)]
fn short_slot(view: u128) -> usize {
    ((view as u64 ^ (view >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

/// The [`Words`] of a value of 13 to 32 bytes: its first and last 16
/// bytes (the first zero-padded if shorter) and its length. A value of at
/// most 12 bytes has its view as words (with zeros), so the two never meet.
#[inline(always)]
fn longer_value_words(value: &[u8]) -> Option<Words> {
    let len = value.len();
    let word = |bytes: &[u8]| u128::from_le_bytes(bytes.try_into().expect("16 bytes"));
    match len {
        13..=15 => {
            let mut first = [0u8; 16];
            first[..len].copy_from_slice(value);
            Some((u128::from_le_bytes(first), 0, len as u32))
        }
        16..=32 => Some((word(&value[..16]), word(&value[len - 16..]), len as u32)),
        _ => None,
    }
}

/// The slot of `words` in [`DictionaryEncoder::recent`].
#[inline(always)]
fn recent_slot(words: &Words) -> usize {
    let (a, b, len) = *words;
    let mixed = (a as u64 ^ (a >> 64) as u64 ^ (b as u64).rotate_left(21))
        ^ ((b >> 64) as u64).rotate_left(42)
        ^ u64::from(len);
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::buffer::NullBuffer;

    #[test]
    fn each_value_keeps_its_key_among_short_long_and_null_values() {
        // Short values (in the view), a longer one and nulls, in no order.
        let choices = [
            Some("ACCEPT"),
            Some("REJECT"),
            None,
            Some("OK"),
            Some(""),
            Some("NODATA"),
            Some("SKIPDATA"),
            Some("eni-0123456789abcdef0"),
        ];
        let values: Vec<Option<&str>> = (0..1000)
            .map(|i| choices[(i * 7 + i / 3) % choices.len()])
            .collect();
        let text: StringViewArray = values.iter().copied().collect();
        let mut encoder = DictionaryEncoder::default();
        let keys = encoder.encode(&text).unwrap();
        let dictionary = encoder.values().unwrap();
        let dictionary = dictionary.as_string::<i32>();
        for (row, value) in values.iter().enumerate() {
            match value {
                None => assert!(keys.is_null(row), "row {row}"),
                Some(value) => {
                    assert_eq!(
                        dictionary.value(keys.value(row) as usize),
                        *value,
                        "row {row}"
                    )
                }
            }
        }
        assert_eq!(encoder.len(), 7);
    }

    /// A value by `n % 3`: short text, an interface id (13 to 32 bytes),
    /// or text of more than 32 bytes.
    fn value_of(n: u64) -> String {
        match n % 3 {
            0 => format!("{n}"),
            1 => format!("eni-{n:017x}"),
            _ => format!("subnet-{n:017x}-with-more-than-32-bytes"),
        }
    }

    /// Asserts that each row's key names the row's value among the
    /// encoder's values.
    fn assert_keys_name_values(
        encoder: &mut DictionaryEncoder,
        keys: &Int32Array,
        values: &[String],
    ) {
        let dictionary = encoder.values().unwrap();
        let dictionary = dictionary.as_string::<i32>();
        for (row, value) in values.iter().enumerate() {
            assert_eq!(
                dictionary.value(keys.value(row) as usize),
                value,
                "row {row}"
            );
        }
    }

    #[test]
    fn keys_found_one_value_at_a_time_are_the_keys_of_the_whole_column() {
        // Runs of one value and alternations, short and long, so that the
        // last value found, the slots and the tables all give keys.
        let values: Vec<String> = (0..5_000u64)
            .map(|i| {
                // `n % 3` picks short (0) or long text.
                let n = match i % 100 {
                    0..20 => 3,            // a run of short text
                    20..40 => 1,           // a run of long text
                    40..55 => (i % 2) * 3, // two short values in turn
                    55..70 => i % 2,       // short and long in turn
                    _ => (i * 7919) % 300, // many
                };
                value_of(n)
            })
            .collect();
        let text: StringViewArray = values.iter().map(|v| Some(v.as_str())).collect();
        let whole = DictionaryEncoder::default().encode(&text).unwrap();
        let mut one_at_a_time = DictionaryEncoder::default();
        for (row, value) in values.iter().enumerate() {
            let key = match text.views()[row] {
                view if value.len() <= 12 => one_at_a_time.key_of_short(view),
                _ => one_at_a_time.key_of(value.as_bytes()),
            };
            assert_eq!(key.unwrap(), whole.value(row), "row {row}: {value}");
        }
        // Both give each value its own key.
        assert_keys_name_values(&mut one_at_a_time, &whole, &values);
    }

    #[test]
    fn values_that_meet_in_the_recent_slots_keep_their_keys() {
        // More values than slots, short and long, met again in an order
        // that makes values share slots and move between them.
        let values: Vec<String> = (0..20_000u64)
            .map(|i| value_of((i * 7919 + i / 5) % 700))
            .collect();
        let text: StringViewArray = values.iter().map(|v| Some(v.as_str())).collect();
        let mut encoder = DictionaryEncoder::default();
        let keys = encoder.encode(&text).unwrap();
        assert_keys_name_values(&mut encoder, &keys, &values);
        assert_eq!(encoder.len(), 700);
    }

    #[test]
    fn a_null_adds_no_value_whatever_its_view_holds() {
        // Arrays that nulled values out (as `nullif` does) keep their views.
        let text: StringViewArray = [
            "ACCEPT",
            "SECRET",
            "REJECT",
            "ACCEPT",
            "HIDDEN-LONGER-VALUE",
        ]
        .into_iter()
        .map(Some)
        .collect();
        let nulls = NullBuffer::from(vec![true, false, true, false, false]);
        let (views, buffers, _) = text.into_parts();
        let text = StringViewArray::new(views, buffers, Some(nulls));
        let mut encoder = DictionaryEncoder::default();
        let keys = encoder.encode(&text).unwrap();
        let dictionary = encoder.values().unwrap();
        let dictionary = dictionary.as_string::<i32>();
        assert_eq!(
            dictionary.iter().flatten().collect::<Vec<_>>(),
            ["ACCEPT", "REJECT"]
        );
        assert_eq!(keys.nulls(), text.nulls());
        assert_eq!(dictionary.value(keys.value(0) as usize), "ACCEPT");
        assert_eq!(dictionary.value(keys.value(2) as usize), "REJECT");
    }
}
