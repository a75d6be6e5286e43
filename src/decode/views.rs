//! A text column's values as string views, copied from the record line
//! with fixed-size moves.
//!
//! Arrow's `StringViewBuilder` copies each value with a call to `memcpy` of
//! its length, twice for a value longer than a view's 12 inline bytes (into
//! the view's prefix and into the data buffer). A flow log's text values
//! are short (addresses, interface ids, actions) and lie inside a line with
//! more bytes after them, so [`TextViews::append`] moves a fixed number of
//! bytes: 16 read at once and masked make an inline view (at the line's
//! end, the 16 that end with the value, shifted), and a longer value of up
//! to 32 bytes is stored as 32 bytes of which only its own count. Longer
//! values near the line's end, values longer than 32 bytes, and values of
//! lines shorter than 16 bytes take the general path.

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ByteView, DictionaryArray, Int32Array, MAX_INLINE_VIEW_LEN,
    StringViewArray,
};
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::arrow::datatypes::Int32Type;
use datafusion::arrow::error::ArrowError;
use datafusion::common::Result;

use super::MAX_LINE_BYTES;
use super::validity::Validity;
use crate::text_codes;
use crate::text_dictionary::{DECODER_VALUES_AT_MOST, DICTIONARY_SAMPLE, DictionaryEncoder};

/// Bytes a view holds inline; longer values go to a data buffer.
const INLINE: usize = MAX_INLINE_VIEW_LEN as usize;
/// Bytes read at once for an inline view.
const WORD: usize = 16;
/// Bytes moved at once for a longer value (addresses of 13 to 15 bytes,
/// interface ids of 21).
const MOVED: usize = 32;
/// A data buffer's first size, and the most a later one doubles to (the
/// sizes arrow's builder uses: a batch's few long values take little, and
/// a column of long ones, more buffers of up to 2 MiB).
const FIRST_BLOCK: usize = 8 << 10;
const LARGEST_BLOCK: usize = 2 << 20;

/// Builds one batch's string views at a time; see the module's doc.
pub(super) struct TextViews {
    views: Vec<u128>,
    validity: Validity,
    in_progress: Vec<u8>,
    completed: Vec<Buffer>,
    next_block: usize,
    capacity: usize,
    /// Each value's [`text_codes`] code, where the column is one a
    /// grouping above will pack, or the cache's writer keep
    /// ([`TextViews::with_codes`]).
    codes: Option<Vec<u64>>,
    /// For a grouping, the last array whose codes were remembered.
    last_coded: Option<Weak<dyn Array>>,
    for_grouping: bool,
    /// For a grouping whose plan passes this scan partition's batches on
    /// unread once a partial aggregate stops aggregating: set when it does
    /// (see [`text_codes::PassedOn`]).
    passed_on: Option<text_codes::PassedOn>,
    /// Whether this batch's values with a code get an empty view: their
    /// code stands in for their text.
    leave_text_out: bool,
    /// Whether a value of this batch got one.
    left_out: bool,
    /// Whether the column's values are made dictionary keys instead of
    /// views (see [`Self::with_dictionary`]).
    dictionary: Dictionary,
}

/// A column's dictionary, for the cache's writer.
enum Dictionary {
    /// Views, to the end of the object.
    Never,
    /// Views for the first batch, which decides.
    Undecided,
    /// Each value's key, as it is appended.
    Keys(Box<KeyMaking>),
}

/// The keys of a batch's values, and the encoder that makes them.
struct KeyMaking {
    encoder: DictionaryEncoder,
    keys: Vec<i32>,
    /// Why a key could not be made (a dictionary larger than an array
    /// holds, which [`keys_fit`] rules out), told when the batch is
    /// finished.
    failed: Option<ArrowError>,
}

impl KeyMaking {
    /// Keys from now on, starting with `keys`, made with `encoder`.
    fn new(encoder: DictionaryEncoder, keys: Vec<i32>) -> Box<Self> {
        Box::new(Self {
            encoder,
            keys,
            failed: None,
        })
    }

    #[inline(always)]
    fn push(&mut self, key: Result<i32, ArrowError>) {
        match key {
            Ok(key) => self.keys.push(key),
            Err(error) => {
                self.keys.push(0);
                self.failed.get_or_insert(error);
            }
        }
    }

    /// `keys` as a dictionary of the values found so far.
    fn dictionary(&mut self, keys: Int32Array) -> Result<ArrayRef> {
        if let Some(error) = self.failed.take() {
            return Err(error.into());
        }
        let values = self.encoder.values()?;
        // SAFETY: the encoder made every key into its values.
        Ok(Arc::new(unsafe {
            DictionaryArray::<Int32Type>::new_unchecked(keys, values)
        }))
    }
}

impl TextViews {
    /// Views for batches of about `capacity` rows.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            views: Vec::with_capacity(capacity),
            validity: Validity::with_capacity(capacity),
            in_progress: Vec::new(),
            completed: Vec::new(),
            next_block: FIRST_BLOCK,
            capacity,
            codes: None,
            last_coded: None,
            for_grouping: false,
            passed_on: None,
            leave_text_out: false,
            left_out: false,
            dictionary: Dictionary::Never,
        }
    }

    /// For the cache's writer: if the first batch's values are text that
    /// is not addresses and repeats (as the writer would keep it: see
    /// [`DictionaryEncoder::repeats`]), that batch and every batch after
    /// come as a dictionary (`Int32` keys into `Utf8` values), each value
    /// made its key as it is appended. The writer then keeps the keys as
    /// they are, instead of reading views to make them; the read's own
    /// batches are made views again only for the records that pass the
    /// query's record filter. Past [`DECODER_VALUES_AT_MOST`] values, the
    /// rest of the object comes as views.
    pub(super) fn with_dictionary(mut self) -> Self {
        self.dictionary = Dictionary::Undecided;
        self
    }

    /// Also makes each value's code, from the bytes already read for its
    /// view: cheaper than packing the views afterwards, which reads them
    /// again (and a long value from its buffer). Codes stop, for the rest
    /// of the object: `for_grouping`, once a batch's went unused (see
    /// [`Self::codes`]) or a batch had none; for the cache's writer, at the
    /// first value without one (it keeps codes only of a column whose every
    /// value has one).
    pub(super) fn with_codes(mut self, for_grouping: bool) -> Self {
        self.codes = Some(Vec::with_capacity(self.capacity));
        self.for_grouping = for_grouping;
        self
    }

    /// For a grouping: once `passed_on` is set, each batch after leaves
    /// out the text of its values that have a code, which is half the work
    /// of reading an address and which nothing reads (see
    /// [`text_codes::remember_textless`]).
    pub(super) fn leaving_text_out(mut self, passed_on: text_codes::PassedOn) -> Self {
        self.passed_on = Some(passed_on);
        self
    }

    #[inline]
    fn push_code(&mut self, word: u128, len: usize) {
        self.push(|| text_codes::word_code(word, len));
    }

    /// Pushes `code()`, while codes are made.
    #[inline(always)]
    fn push(&mut self, code: impl FnOnce() -> u64) {
        let for_grouping = self.for_grouping;
        if let Some(codes) = self.codes.as_mut() {
            let code = code();
            codes.push(code);
            if code == text_codes::NO_CODE && !for_grouping {
                self.stop_codes();
            }
        }
    }

    /// For the cache's writer, codes stop at a value without one: the
    /// text left out of this batch's values is put back first, from their
    /// codes, so the column is whole text again.
    #[cold]
    fn stop_codes(&mut self) {
        let codes = self.codes.take().unwrap_or_default();
        // No value so far had a code: text that is not addresses.
        if let Some(passed_on) = &self.passed_on
            && codes.iter().all(|&code| code == text_codes::NO_CODE)
        {
            passed_on.found_key_without_codes();
        }
        if self.left_out {
            // The value being appended may have its code and no view yet.
            for (row, &code) in codes.iter().enumerate().take(self.views.len()) {
                // An empty view with a code: text left out (a null's or
                // an empty text's code gives its own empty view back).
                if self.views[row] == 0 && code != text_codes::NO_CODE {
                    self.views[row] = self.view_of_code(code);
                }
            }
            self.left_out = false;
        }
        self.leave_text_out = false;
    }

    /// The view of the text whose code is `code`, its bytes stored in the
    /// buffer in progress if it is longer than a view holds.
    fn view_of_code(&mut self, code: u64) -> u128 {
        let (bytes, len) = text_codes::text_of(code);
        if len <= INLINE {
            // `len` is at most 12: the shift is less than 128.
            let value = u128::from_le_bytes(bytes) & ((1u128 << (8 * len)) - 1);
            return len as u128 | value << 32;
        }
        let offset = self.room_for(len);
        self.in_progress.extend_from_slice(&bytes[..len]);
        self.long_view(&bytes[..len], offset)
    }

    /// At a batch's first value. Codes stop, for the rest of this object,
    /// at a batch after the last one was passed up and dropped with its
    /// codes unused: a partial aggregate that is still aggregating makes
    /// arrays of its own. Text is left out once a grouping has recalled
    /// codes made with [`Self::passed_on`].
    #[cold]
    fn start_batch(&mut self) {
        if self
            .last_coded
            .as_ref()
            .is_some_and(text_codes::dropped_unused)
        {
            self.codes = None;
        }
        self.leave_text_out = self.codes.is_some()
            && self
                .passed_on
                .as_ref()
                .is_some_and(text_codes::PassedOn::leaves_text_out);
    }

    /// Appends only the code of the text `line[start..end]`, with an empty
    /// view, if it has one (and the line has 16 bytes to read it in).
    #[inline(always)]
    fn append_code_only(&mut self, line: &[u8], start: usize, end: usize) -> bool {
        let len = end - start;
        if len > text_codes::MAX_LEN {
            return false;
        }
        let word = match line.get(start..start + WORD) {
            Some(word) => u128::from_le_bytes(word.try_into().expect("a word is 16 bytes")),
            // Near the line's end: the 16 bytes that end with the value.
            None => match end.checked_sub(WORD) {
                Some(from) => {
                    let word = line[from..end].try_into().expect("a word is 16 bytes");
                    // `len` is at most 15, so the shift is 8 to 128 bits.
                    u128::from_le_bytes(word)
                        .checked_shr(8 * (WORD - len) as u32)
                        .unwrap_or(0)
                }
                None => return false,
            },
        };
        let code = text_codes::word_code(word, len);
        let Some(codes) = self.codes.as_mut().filter(|_| code != text_codes::NO_CODE) else {
            return false;
        };
        codes.push(code);
        self.views.push(0);
        self.validity.push(true);
        self.left_out = true;
        true
    }

    /// Appends the text `line[start..end]`, which the caller has checked to
    /// be UTF-8.
    #[inline]
    pub(super) fn append(&mut self, line: &[u8], start: usize, end: usize) {
        if self.makes_keys() {
            return self.append_key(line, start, end);
        }
        if self.views.is_empty() {
            self.start_batch();
        }
        if self.leave_text_out && self.append_code_only(line, start, end) {
            return;
        }
        let len = end - start;
        if let Some(view) = short_view(line, start, end) {
            self.views.push(view);
            self.push_code(view >> 32, len);
        } else if len > INLINE
            && len <= MOVED
            && let Some(bytes) = line.get(start..start + MOVED)
        {
            let bytes: [u8; MOVED] = bytes.try_into().expect("a move is 32 bytes");
            let offset = self.room_for(MOVED);
            // SAFETY: `room_for` made room for 32 more bytes; only the
            // value's own `len` of them become part of the buffer.
            unsafe {
                let end_of_data = self.in_progress.as_mut_ptr().add(offset);
                std::ptr::write_unaligned(end_of_data.cast::<[u8; MOVED]>(), bytes);
                self.in_progress.set_len(offset + len);
            }
            self.views.push(self.long_view(&bytes[..len], offset));
            let first = u128::from_le_bytes(bytes[..WORD].try_into().expect("16 of 32 bytes"));
            self.push_code(first, len);
        } else {
            return self.append_slice(&line[start..end]);
        }
        self.validity.push(true);
    }

    /// Whether the next value is appended as a key: the column's
    /// dictionary decided at the first batch's sample, whether the value
    /// at its end is text or a null.
    #[inline(always)]
    fn makes_keys(&mut self) -> bool {
        match self.dictionary {
            Dictionary::Keys(_) => true,
            Dictionary::Undecided if self.views.len() == DICTIONARY_SAMPLE => {
                self.decide_at_sample();
                matches!(self.dictionary, Dictionary::Keys(_))
            }
            Dictionary::Never | Dictionary::Undecided => false,
        }
    }

    /// Appends the key of the text `line[start..end]`: a short value by
    /// its view, made as [`Self::append`] makes it.
    #[inline(always)]
    fn append_key(&mut self, line: &[u8], start: usize, end: usize) {
        let Dictionary::Keys(making) = &mut self.dictionary else {
            unreachable!("called while making keys")
        };
        let key = match short_view(line, start, end) {
            Some(view) => making.encoder.key_of_short(view),
            None => making.encoder.key_of(&line[start..end]),
        };
        making.push(key);
        self.validity.push(true);
    }

    /// Appends a value of any length, wherever it lies.
    fn append_slice(&mut self, value: &[u8]) {
        let len = value.len();
        self.push(|| text_codes::pack(value).unwrap_or(text_codes::NO_CODE));
        if len <= INLINE {
            let mut bytes = [0u8; WORD];
            bytes[..len].copy_from_slice(value);
            self.views
                .push(len as u128 | u128::from_le_bytes(bytes) << 32);
        } else {
            let offset = self.room_for(len);
            self.in_progress.extend_from_slice(value);
            self.views.push(self.long_view(value, offset));
        }
        self.validity.push(true);
    }

    pub(super) fn append_null(&mut self) {
        if self.makes_keys()
            && let Dictionary::Keys(making) = &mut self.dictionary
        {
            making.keys.push(0);
            self.validity.push(false);
            return;
        }
        if self.views.is_empty() {
            self.start_batch();
        }
        // Any code but NO_CODE: a NULL packs (it has no text to lose).
        self.push(|| 0);
        self.views.push(0);
        self.validity.push(false);
    }

    /// The view of `value` (more than 12 bytes), at `offset` of the buffer
    /// in progress.
    fn long_view(&self, value: &[u8], offset: usize) -> u128 {
        ByteView::new(value.len() as u32, &value[..4])
            .with_buffer_index(self.completed.len() as u32)
            .with_offset(offset as u32)
            .as_u128()
    }

    /// The offset where `bytes` more bytes fit in the buffer in progress,
    /// starting a new buffer if they do not fit the current one.
    fn room_for(&mut self, bytes: usize) -> usize {
        if self.in_progress.capacity() - self.in_progress.len() < bytes {
            self.finish_block();
            let size = self.next_block.max(bytes);
            self.next_block = (self.next_block * 2).min(LARGEST_BLOCK);
            self.in_progress = Vec::with_capacity(size);
        }
        self.in_progress.len()
    }

    fn finish_block(&mut self) {
        if !self.in_progress.is_empty() {
            let block = std::mem::take(&mut self.in_progress);
            assert!(
                block.len() <= u32::MAX as usize,
                "a view's offset is 32 bits"
            );
            self.completed.push(Buffer::from_vec(block));
        }
    }

    /// The views appended since the last call, as an array; their codes,
    /// if made, are remembered for the grouping that packs this array
    /// ([`text_codes::recall`]).
    pub(super) fn finish(&mut self) -> Result<ArrayRef> {
        if let Dictionary::Keys(_) = self.dictionary {
            return self.finish_keys();
        }
        self.finish_block();
        let views = std::mem::replace(&mut self.views, Vec::with_capacity(self.capacity));
        let buffers = std::mem::take(&mut self.completed);
        let nulls = self.validity.finish();
        self.next_block = FIRST_BLOCK;
        // SAFETY: every view is inline with its length and bytes, or names a
        // buffer of `buffers` and an offset and length within it (a buffer's
        // length fits 32 bits: `finish_block` checks), with its first four
        // bytes as its prefix; the values are UTF-8 (the caller's
        // promise); a NULL's view, and that of a value whose text was left
        // out, is zero (empty text).
        let array: ArrayRef = Arc::new(unsafe {
            StringViewArray::new_unchecked(ScalarBuffer::from(views), buffers, nulls)
        });
        if let Some(codes) = self.codes.take() {
            // Codes also stop when no value had one (text that is not
            // addresses).
            let none = codes.iter().all(|&code| code == text_codes::NO_CODE);
            // A key none of whose values has a code, nulls aside (an
            // action's `-`): its rows will not be packed.
            if let Some(passed_on) = &self.passed_on
                && codes.contains(&text_codes::NO_CODE)
                && codes
                    .iter()
                    .enumerate()
                    .all(|(row, &code)| code == text_codes::NO_CODE || array.is_null(row))
            {
                passed_on.found_key_without_codes();
            }
            match self.passed_on.clone().filter(|_| self.left_out) {
                Some(passed_on) => text_codes::remember_textless(&array, codes, passed_on)?,
                None => text_codes::remember_made(&array, codes, self.passed_on.clone())?,
            }
            self.left_out = false;
            if !none {
                self.codes = Some(Vec::with_capacity(self.capacity));
                if self.for_grouping {
                    self.last_coded = Some(Arc::downgrade(&array));
                }
            }
        }
        if let Dictionary::Undecided = self.dictionary {
            return self.decide_dictionary(array);
        }
        Ok(array)
    }

    /// At the first batch's [`DICTIONARY_SAMPLE`]th value: keys from then
    /// on, those of the values so far too, if they are text without codes
    /// (codes stop at the first value without one) that repeats (as
    /// [`DictionaryEncoder::repeats`] tells) and the dictionary, with the
    /// sample's values, has room for every value a batch may add.
    #[cold]
    fn decide_at_sample(&mut self) {
        self.dictionary = Dictionary::Never;
        if self.codes.is_some() {
            return;
        }
        // The sample as an array (the buffer in progress is the last one
        // its views name).
        let mut buffers = self.completed.clone();
        if !self.in_progress.is_empty() {
            buffers.push(Buffer::from_slice_ref(&self.in_progress));
        }
        // SAFETY: as in `finish`, for the views appended so far.
        let sample = unsafe {
            StringViewArray::new_unchecked(
                ScalarBuffer::from(self.views.clone()),
                buffers,
                self.validity.so_far(),
            )
        };
        let mut encoder = DictionaryEncoder::default();
        let Ok(Some(keys)) = encoder.sample_keys(&sample) else {
            return;
        };
        if !keys_fit(self.capacity, encoder.bytes()) {
            return;
        }
        let mut kept = Vec::with_capacity(self.capacity);
        kept.extend_from_slice(keys.values());
        self.views.clear();
        self.in_progress = Vec::new();
        self.completed.clear();
        self.next_block = FIRST_BLOCK;
        self.dictionary = Dictionary::Keys(KeyMaking::new(encoder, kept));
    }

    /// After a first batch shorter than [`DICTIONARY_SAMPLE`]: the batch
    /// as a dictionary, and keys from then on, if its values are text
    /// without codes that repeats.
    fn decide_dictionary(&mut self, array: ArrayRef) -> Result<ArrayRef> {
        self.dictionary = Dictionary::Never;
        let text = array.as_string_view();
        if self.codes.is_some() {
            return Ok(array);
        }
        let mut encoder = DictionaryEncoder::default();
        let Some(keys) = encoder.sample_keys(text)? else {
            return Ok(array);
        };
        if !keys_fit(self.capacity, encoder.bytes()) {
            return Ok(array);
        }
        let mut making = KeyMaking::new(encoder, Vec::with_capacity(self.capacity));
        let dictionary = making.dictionary(keys);
        self.dictionary = Dictionary::Keys(making);
        dictionary
    }

    /// The keys appended since the last call, as a dictionary of the
    /// values found so far.
    fn finish_keys(&mut self) -> Result<ArrayRef> {
        let Dictionary::Keys(making) = &mut self.dictionary else {
            unreachable!("called while making keys")
        };
        let keys = std::mem::replace(&mut making.keys, Vec::with_capacity(self.capacity));
        let keys = Int32Array::new(ScalarBuffer::from(keys), self.validity.finish());
        let dictionary = making.dictionary(keys);
        let encoder = &making.encoder;
        if encoder.len() > DECODER_VALUES_AT_MOST || !keys_fit(self.capacity, encoder.bytes()) {
            self.dictionary = Dictionary::Never;
        }
        dictionary
    }
}

/// Whether a dictionary of `bytes` bytes of values has room for every
/// value a batch of `capacity` rows may add (each at most a line), so a
/// key cannot fail to be made: a fill must never fail the query.
fn keys_fit(capacity: usize, bytes: usize) -> bool {
    capacity
        .checked_mul(MAX_LINE_BYTES)
        .and_then(|most| most.checked_add(bytes))
        .is_some_and(|most| most <= i32::MAX as usize)
}

/// The string view of the text `line[start..end]` if it is at most 12
/// bytes long (and the line has 16 bytes to read it in): 16 bytes read at
/// once and masked, or near the line's end (a line's last fields, such as
/// `action` and `log-status`) the 16 bytes that end with the value,
/// shifted down. Copying the value into a zeroed word and reading that
/// back would stall on store forwarding.
#[inline(always)]
fn short_view(line: &[u8], start: usize, end: usize) -> Option<u128> {
    let len = end - start;
    if len > INLINE {
        return None;
    }
    let value = match line.get(start..start + WORD) {
        Some(word) => {
            let word = u128::from_le_bytes(word.try_into().expect("a word is 16 bytes"));
            // `len` is at most 12, so the shift is less than 128.
            word & ((1u128 << (8 * len)) - 1)
        }
        None if len > 0 => {
            let word = &line[end.checked_sub(WORD)?..end];
            let word = u128::from_le_bytes(word.try_into().expect("a word is 16 bytes"));
            // `len` is 1 to 12, so the shift is 32 to 120 bits.
            word >> (8 * (WORD - len))
        }
        None => return None,
    };
    Some(len as u128 | value << 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    /// A line of `words` joined by spaces, each word appended where it
    /// lies, twice (a batch, then another from the same builder), each
    /// batch checked by reading the array back.
    fn round_trip(words: &[Option<String>], capacity: usize) {
        let texts: Vec<Option<&str>> = words.iter().map(Option::as_deref).collect();
        let mut views = TextViews::with_capacity(capacity);
        for _batch in 0..2 {
            let array = batch(&mut views, &texts);
            let array = array.as_string_view();
            array.to_data().validate_full().expect("valid views");
            assert_eq!(array.len(), words.len());
            for (i, word) in words.iter().enumerate() {
                let value = array.is_valid(i).then(|| array.value(i));
                assert_eq!(value, word.as_deref(), "value {i}");
            }
        }
    }

    #[test]
    fn values_of_every_length_near_and_far_from_the_end() {
        // Every length from empty to 40, each followed by more of the line
        // and, in the second line, each last on its line.
        let words: Vec<Option<String>> = (0..=40)
            .map(|n| Some((0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()))
            .collect();
        round_trip(&words, 4);
        for word in &words {
            // Alone on its line, and last on a line of more than 16 bytes.
            round_trip(std::slice::from_ref(word), 1);
            round_trip(&[words[17].clone(), word.clone()], 2);
        }
    }

    /// Appends `words` (NULL for `None`), each where it lies on one line
    /// (a NULL as `-`), and finishes the batch.
    fn batch(views: &mut TextViews, words: &[Option<&str>]) -> ArrayRef {
        let line = words
            .iter()
            .map(|w| w.unwrap_or("-"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut start = 0;
        for word in words {
            let len = word.map_or(1, str::len);
            match word {
                Some(_) => views.append(line.as_bytes(), start, start + len),
                None => views.append_null(),
            }
            start += len + 1;
        }
        views.finish().unwrap()
    }

    #[test]
    fn codes_made_with_the_views_are_the_views_codes() {
        // Addresses of 7 to 15 bytes (inline and in the buffer), far from
        // the line's end and at it, NULLs, text without a code, a long
        // value, and a value on a line shorter than 16 bytes.
        let words = [
            Some("10.0.1.5"),
            None,
            Some("172.31.255.255"),
            Some("eni-0123456789abcdef0"),
            Some("1.2.3.4"),
            Some("010.1.2.3"),
            Some("ACCEPT"),
            Some("0123456789.0123456789.0123456789.0123456789"),
            None,
            Some("255.255.255.255"),
            Some("9.9.9.9"),
        ];
        let mut views = TextViews::with_capacity(4).with_codes(true);
        for words in [&words[..], &words[..1], &words[9..]] {
            let array = batch(&mut views, words);
            let (codes, packed, _) = text_codes::recall(&array).expect("codes made");
            assert_eq!(
                (codes, packed),
                text_codes::pack_column(array.as_ref()).unwrap(),
                "{words:?}"
            );
        }
    }

    #[test]
    fn codes_stop_when_the_last_were_not_used_or_none_had_one() {
        let addresses = [Some("10.0.1.5"), Some("172.31.255.255")];
        let mut views = TextViews::with_capacity(4).with_codes(true);
        let used = batch(&mut views, &addresses);
        assert!(text_codes::recall(&used).is_some());
        drop(used);
        // Batches made before the last is used or dropped keep their codes.
        let ahead = batch(&mut views, &addresses);
        let unused = batch(&mut views, &addresses);
        assert!(text_codes::recall(&ahead).is_some());
        drop(unused);
        let after = batch(&mut views, &addresses);
        assert!(text_codes::recall(&after).is_none());

        // For the cache's writer, codes stop at the first value without.
        let mut views = TextViews::with_capacity(4).with_codes(false);
        let mixed = batch(
            &mut views,
            &[Some("10.0.0.1"), Some("ACCEPT"), Some("10.0.0.2")],
        );
        let after = batch(&mut views, &addresses);
        assert!(text_codes::recall(&mixed).is_none());
        assert!(text_codes::recall(&after).is_none());

        let mut views = TextViews::with_capacity(4).with_codes(true);
        let text = batch(&mut views, &[Some("ACCEPT"), Some("REJECT")]);
        let after = batch(&mut views, &addresses);
        assert!(text_codes::recall(&after).is_none());
        assert!(text_codes::recall(&text).is_some());
    }

    /// `array`'s values as text, whatever it holds them as.
    fn values_of(array: &ArrayRef) -> Vec<Option<String>> {
        let text = datafusion::arrow::compute::cast(array, &DataType::Utf8View).unwrap();
        text.as_string_view()
            .iter()
            .map(|value| value.map(str::to_string))
            .collect()
    }

    #[test]
    fn text_that_repeats_comes_as_a_dictionary_for_the_cache() {
        // Three values among eight: a dictionary.
        let repeating = [
            Some("ACCEPT"),
            Some("eni-0123456789abcdef0"),
            None,
            Some("ACCEPT"),
            Some("REJECT"),
            Some("eni-0123456789abcdef0"),
            Some("REJECT"),
            Some("ACCEPT"),
        ];
        let mut views = TextViews::with_capacity(8)
            .with_codes(false)
            .with_dictionary();
        // Each value far from the line's end and at it (the batch's last).
        let batches = [
            repeating.to_vec(),
            vec![
                Some("a value longer than thirty-two bytes, by its bytes"),
                Some("thirteen char"),
                Some("ACCEPT"),
            ],
            vec![
                Some("REJECT"),
                Some("thirteen char"),
                Some("NODATA"),
                Some(""),
                Some("a value longer than thirty-two bytes, by its bytes"),
            ],
        ];
        let mut last_values = vec![];
        for words in &batches {
            let array = batch(&mut views, words);
            let dictionary = array
                .as_dictionary_opt::<Int32Type>()
                .expect("a dictionary");
            array.to_data().validate_full().unwrap();
            let expected: Vec<Option<String>> =
                words.iter().map(|w| w.map(str::to_string)).collect();
            assert_eq!(values_of(&array), expected);
            // Values once each, in the order met, every batch's beginning
            // with the last one's (the cache's writer stores earlier
            // batches' keys with the newest values).
            let values = values_of(dictionary.values());
            let distinct: std::collections::HashSet<_> = values.iter().collect();
            assert_eq!(distinct.len(), values.len());
            assert_eq!(values[..last_values.len()], last_values[..]);
            last_values = values;
        }
        // Past the most values, the next batch comes as views.
        let many: Vec<String> = (0..=DECODER_VALUES_AT_MOST)
            .map(|i| format!("v{i}"))
            .collect();
        let many: Vec<Option<&str>> = many.iter().map(|v| Some(v.as_str())).collect();
        let array = batch(&mut views, &many);
        assert!(array.as_dictionary_opt::<Int32Type>().is_some());
        let array = batch(&mut views, &repeating);
        assert_eq!(array.data_type(), &DataType::Utf8View);
        assert_eq!(
            values_of(&array),
            repeating.map(|w| w.map(str::to_string)).to_vec()
        );

        // Text that does not repeat, or addresses, stay views.
        let distinct = [Some("a"), Some("b"), Some("c"), Some("a")];
        let addresses = [Some("10.0.0.1"), Some("10.0.0.1"), None, Some("10.0.0.1")];
        for first in [&distinct, &addresses] {
            let mut views = TextViews::with_capacity(4)
                .with_codes(false)
                .with_dictionary();
            for _ in 0..2 {
                let array = batch(&mut views, first);
                assert_eq!(array.data_type(), &DataType::Utf8View);
            }
        }
    }

    #[test]
    fn a_long_first_batch_is_decided_at_its_sample() {
        // Repeating values, short, 13 to 32 bytes, longer, and NULLs, of
        // which the sample is a part: keys from its end on, and its own.
        let choices = [
            Some("ACCEPT"),
            None,
            Some("eni-0123456789abcdef0"),
            Some("REJECT"),
            Some("thirteen char"),
            Some("a value longer than thirty-two bytes, by its bytes"),
        ];
        let repeating: Vec<Option<&str>> = (0..DICTIONARY_SAMPLE + 700)
            .map(|i| choices[(i * 7 + i / 5) % choices.len()])
            .collect();
        let distinct: Vec<String> = (0..DICTIONARY_SAMPLE + 700)
            .map(|i| format!("v{i}"))
            .collect();
        let distinct: Vec<Option<&str>> = distinct.iter().map(|v| Some(v.as_str())).collect();
        // A NULL where the sample ends is appended as a key too.
        let mut null_at_the_end = repeating.clone();
        null_at_the_end[DICTIONARY_SAMPLE] = None;
        for (words, keyed) in [
            (&repeating, true),
            (&null_at_the_end, true),
            (&distinct, false),
        ] {
            let mut views = TextViews::with_capacity(words.len())
                .with_codes(false)
                .with_dictionary();
            for _ in 0..2 {
                let array = batch(&mut views, words);
                array.to_data().validate_full().unwrap();
                assert_eq!(array.as_dictionary_opt::<Int32Type>().is_some(), keyed);
                let expected: Vec<Option<String>> =
                    words.iter().map(|w| w.map(str::to_string)).collect();
                assert_eq!(values_of(&array), expected);
            }
        }
    }

    #[test]
    fn the_dictionary_is_decided_once_the_sample_is_read() {
        let line = (0..DICTIONARY_SAMPLE)
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        for (distinct, then_null, keys) in [
            (false, false, true),
            (false, true, true),
            (true, false, false),
        ] {
            let mut views = TextViews::with_capacity(4 * DICTIONARY_SAMPLE)
                .with_codes(false)
                .with_dictionary();
            for i in 0..DICTIONARY_SAMPLE {
                // `v0` over and over, or `v0`, `v1`, ...
                let at = if distinct { i } else { 0 };
                let start = line.split(' ').take(at).map(|w| w.len() + 1).sum();
                let len = format!("v{at}").len();
                views.append(line.as_bytes(), start, start + len);
            }
            assert!(matches!(views.dictionary, Dictionary::Undecided));
            match then_null {
                true => views.append_null(),
                false => views.append(line.as_bytes(), 0, 2),
            }
            assert_eq!(matches!(views.dictionary, Dictionary::Keys(_)), keys);
            let array = views.finish().unwrap();
            assert_eq!(array.as_dictionary_opt::<Int32Type>().is_some(), keys);
            assert_eq!(array.len(), DICTIONARY_SAMPLE + 1);
            assert_eq!(array.is_null(DICTIONARY_SAMPLE), then_null);
        }
    }

    #[test]
    fn nulls_between_values() {
        let words = vec![
            None,
            Some("10.0.1.5".to_string()),
            None,
            Some("172.31.255.255".to_string()),
            Some("eni-0123456789abcdef0".to_string()),
            None,
        ];
        round_trip(&words, 8);
    }

    #[test]
    fn long_values_fill_several_buffers() {
        // 13 to 16 bytes each: several blocks' worth.
        let words: Vec<Option<String>> = (0..20_000)
            .map(|i| {
                Some(format!(
                    "{:.<13}",
                    format!("172.16.{}.{}", i % 256, i / 256)
                ))
            })
            .collect();
        round_trip(&words, 1024);
        round_trip(&words[..3], 1024);
    }
}
