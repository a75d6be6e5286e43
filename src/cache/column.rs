//! How an entry keeps a column, and how it is read back in the table's
//! type.
//!
//! A text column whose values repeat (interface ids, actions, account
//! ids: a few hundred distinct values among thousands of records) is kept
//! as a dictionary: each distinct value once, and a key per record. Read
//! back, the records of one value share one 16-byte view, so a grouping
//! by string view finds their group without hashing text, and a record
//! filter tests each distinct value once instead of each record. A text
//! column whose values mostly differ is kept as `Utf8`, or, when every
//! value is short text of digits and dots (IPv4 addresses), as the texts'
//! `u64` codes ([`crate::text_codes`]): 8 bytes a value instead of 13 or
//! so, and codes are made several values at a time.
//! Either way a reader checks the text as UTF-8 once per value kept, not
//! once per view.
//!
//! Keys and integers are kept in the narrowest type that holds the
//! object's values (ports in 2 bytes, most dictionaries' keys in 1), and
//! a column with no value (a field the object's header lacks) as NULLs
//! that take no space: writing a cache entry costs mostly the bytes
//! written, and a filter tests the narrow values as they are. Nothing is
//! compressed: reading a cached column is then a copy and a check,
//! several times faster than with LZ4.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, RecordBatch, RecordBatchOptions, StringArray,
    StringViewArray, UInt64Array, new_null_array,
};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{
    ArrowDictionaryKeyType, DataType, Int32Type, SchemaRef, UInt8Type, UInt16Type, UInt64Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::HashSet;

use crate::narrow_integers::{narrowed, narrower_types, narrowest, narrowest_for, widened};
use crate::text_codes::{self, PassedOn};
use crate::text_dictionary::{DICTIONARY_SAMPLE, DictionaryEncoder};

/// Whether a data file's column of `stored` type can give a table column
/// of `table` type.
pub(super) fn can_hold(stored: &DataType, table: &DataType) -> bool {
    match (stored, table) {
        (DataType::Null, _) => true,
        (DataType::Utf8 | DataType::UInt64, DataType::Utf8View) => true,
        (DataType::Dictionary(key, value), DataType::Utf8View) => {
            **value == DataType::Utf8 && KEY_TYPES.contains(&**key)
        }
        (stored, table @ (DataType::Int32 | DataType::Int64)) => {
            stored == table || narrower_types(table).contains(stored)
        }
        (stored, table) => stored == table,
    }
}

/// The most values a dictionary may have for a batch's records to be
/// tested through it ([`Keeping::testable`]): each batch's test makes the
/// values an array again if some were added, and tests every one. A
/// column sampled as repeating whose values keep coming (rare) would cost
/// that for every batch, growing with the values; past this, its records
/// are left to DataFusion's filter.
const TESTED_VALUES_AT_MOST: usize = 4096;

/// Dictionary keys, narrowest first.
const KEY_TYPES: [DataType; 3] = [DataType::UInt8, DataType::UInt16, DataType::Int32];

/// How a data file keeps one of the table's columns.
pub(super) enum Keeping {
    /// Text whose values repeat, as a dictionary: each batch's column
    /// becomes keys (`Int32`) into the values the encoder has found.
    Dictionary(Box<DictionaryEncoder>),
    /// Text the decoder made a dictionary of (as it does, reading an
    /// object that fills the cache, for text whose values repeat): each
    /// batch's keys as they are, and the newest batch's values, which
    /// begin with every earlier batch's.
    Keys { values: ArrayRef },
    /// Text whose values mostly differ: as codes (`UInt64`) where every
    /// value of the file has one; otherwise `Utf8` (smaller than views,
    /// and checked as UTF-8 in one pass when read).
    Text,
    /// Anything else as it is (integers possibly narrowed when written).
    AsIs,
}

impl Keeping {
    /// How to keep a column, given its first batch; the first batch's
    /// column as kept (see [`Keeping::keep`]).
    pub(super) fn choose(first: &ArrayRef) -> Result<(Self, ArrayRef), ArrowError> {
        if let Some(made) = first.as_dictionary_opt::<Int32Type>() {
            let values = Arc::clone(made.values());
            return Ok((Self::Keys { values }, Arc::new(made.keys().clone())));
        }
        let Some(text) = first.as_string_view_opt() else {
            return Ok((Self::AsIs, Arc::clone(first)));
        };
        // Each value at least twice on average among the first records
        // (see `DictionaryEncoder::repeats`). Addresses are counted by
        // their codes; other text by the encoder, which stops once it has
        // found more than half the sample's size.
        let sample = text.len().min(DICTIONARY_SAMPLE);
        // Found through the text encoder, the sample's values stay in it;
        // found through codes, the encoder starts empty. Codes the decoder
        // made are counted as they are (its text may have been left out).
        let mut encoder = DictionaryEncoder::default();
        let counted = match text_codes::peek(first) {
            Some((codes, coded, _)) => {
                distinct_at_most(&codes.slice(0, sample), &coded.slice(0, sample), sample / 2)
            }
            None => codes_at_most(&text.slice(0, sample), sample / 2),
        };
        // Text left out by the decoder is made again only where the
        // encoder reads it (repeating addresses): addresses kept as codes
        // never need it. Text that was not left out is read as it is.
        let repeats = match counted {
            Some(repeats) => repeats,
            None => encoder.repeats(readable(first)?.as_string_view())?,
        };
        if repeats {
            // The sample's values, if the encoder has them, are found
            // again, not added.
            let keys = encoder.encode(readable(first)?.as_string_view())?;
            return Ok((Self::Dictionary(Box::new(encoder)), Arc::new(keys)));
        }
        Ok((Self::Text, keep_text(first)?))
    }

    /// A batch's column as [`Keeping::keep`] gave it, in a form the record
    /// filter can test: a dictionary's keys with the values found so far
    /// (the batch's records are then tested by a test of each value),
    /// anything else as it is (codes are tested as codes). `None` for a
    /// dictionary of more than [`TESTED_VALUES_AT_MOST`] values.
    pub(super) fn testable(&mut self, kept: &ArrayRef) -> Result<Option<ArrayRef>, ArrowError> {
        match self {
            Self::Dictionary(encoder) if encoder.len() > TESTED_VALUES_AT_MOST => Ok(None),
            // SAFETY: `keep` made these keys with this encoder, which has
            // lost no value since.
            Self::Dictionary(encoder) => {
                Ok(Some(unsafe { dictionary_of(kept, encoder.values()?)? }))
            }
            Self::Keys { values } if values.len() > TESTED_VALUES_AT_MOST => Ok(None),
            // SAFETY: the decoder made these keys into its values, of which
            // `values` are the newest.
            Self::Keys { values } => Ok(Some(unsafe { dictionary_of(kept, Arc::clone(values))? })),
            Self::Text | Self::AsIs => Ok(Some(Arc::clone(kept))),
        }
    }

    /// Starts afresh for the next data file of the same column: each file's
    /// dictionary holds only the values its own batches use (the values of
    /// every earlier file again would grow with the square of the files).
    /// A dictionary the decoder made holds the values of every file so far
    /// (at most
    /// [`crate::text_dictionary::DECODER_VALUES_AT_MOST`] and a batch's).
    pub(super) fn next_file(&mut self) {
        if let Self::Dictionary(encoder) = self {
            **encoder = DictionaryEncoder::default();
        }
    }

    /// One batch's column as kept until it is written: a dictionary's
    /// keys, text as codes or `Utf8`, anything else as it is.
    pub(super) fn keep(&mut self, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
        match self {
            Self::Dictionary(encoder) => {
                let column = readable(column)?;
                let text = column.as_string_view_opt().ok_or_else(|| {
                    ArrowError::CastError(format!("{} is not text", column.data_type()))
                })?;
                Ok(Arc::new(encoder.encode(text)?))
            }
            Self::Keys { values } => match column.as_dictionary_opt::<Int32Type>() {
                Some(made) => {
                    // Earlier batches' keys are stored with these values.
                    if !Arc::ptr_eq(made.values(), values) && !begins_with(made.values(), values) {
                        return Err(ArrowError::InvalidArgumentError(
                            "a dictionary's values do not begin with the last batch's".to_string(),
                        ));
                    }
                    *values = Arc::clone(made.values());
                    Ok(Arc::new(made.keys().clone()))
                }
                None => {
                    // The decoder stopped making keys (too many values):
                    // the rest of the object's keys come from an encoder
                    // that gives the values so far the same keys.
                    let encoder = DictionaryEncoder::with_values(values.as_string::<i32>())?;
                    *self = Self::Dictionary(Box::new(encoder));
                    self.keep(column)
                }
            },
            Self::Text => keep_text(column),
            Self::AsIs => Ok(Arc::clone(column)),
        }
    }

    /// The column's type in a data file that holds exactly the batches
    /// `kept` (keys into the values the encoder has found so far): keys
    /// and integers as narrow as they can be, text as codes if every value
    /// has one.
    pub(super) fn stored_type(
        &self,
        table: &DataType,
        kept: &[&ArrayRef],
    ) -> Result<DataType, ArrowError> {
        // A field the object's header lacks: NULL in every record.
        if kept
            .iter()
            .all(|column| column.null_count() == column.len())
        {
            return Ok(DataType::Null);
        }
        Ok(match self {
            Self::Dictionary(encoder) => dictionary_type(encoder.len()),
            Self::Keys { values } => dictionary_type(values.len()),
            Self::Text
                if kept
                    .iter()
                    .all(|column| column.data_type() == &DataType::UInt64) =>
            {
                DataType::UInt64
            }
            Self::Text => DataType::Utf8,
            Self::AsIs => narrowest_for(table, kept.iter().copied())?,
        })
    }

    /// A kept column as the data file's `stored` type, which
    /// [`Keeping::stored_type`] chose for the same kept columns (integers
    /// are narrowed without a check that they fit).
    pub(super) fn stored(
        &mut self,
        kept: &ArrayRef,
        stored: &DataType,
    ) -> Result<ArrayRef, ArrowError> {
        match (self, stored) {
            (_, DataType::Null) => Ok(new_null_array(stored, kept.len())),
            (keeping @ (Self::Dictionary(_) | Self::Keys { .. }), DataType::Dictionary(key, _)) => {
                // Keys narrowed by `as` conversions: `stored_type` chose a
                // key type that holds every key (arrow's cast would check
                // each one).
                let keys = if kept.data_type() == key.as_ref() {
                    Arc::clone(kept)
                } else {
                    narrowed(kept, key)
                        .ok_or_else(|| ArrowError::CastError(format!("dictionary keys as {key}")))?
                };
                let values = match keeping {
                    Self::Dictionary(encoder) => encoder.values()?,
                    Self::Keys { values } => Arc::clone(values),
                    Self::Text | Self::AsIs => unreachable!("matched above"),
                };
                // SAFETY: `keep` made these keys with this encoder, which
                // has lost no value since (a new file's starts afresh only
                // after this one is written), or the decoder made them
                // into its values, of which these are the newest; and
                // narrowing kept every key.
                unsafe { dictionary_of(&keys, values) }
            }
            (_, stored) if kept.data_type() == stored => Ok(Arc::clone(kept)),
            (Self::Text, DataType::Utf8) => {
                // Codes among other text.
                text_codes::unpack_column(kept.as_primitive::<UInt64Type>(), &DataType::Utf8)
                    .map_err(|e| ArrowError::ComputeError(e.to_string()))
            }
            // Integers whose range `stored_type` found to fit.
            (Self::AsIs, stored) => match narrowed(kept, stored) {
                Some(narrow) => Ok(narrow),
                None => cast(kept, stored),
            },
            (_, stored) => cast(kept, stored),
        }
    }
}

/// Whether `text` has at most `most` distinct values, told by their codes
/// (integers, hashed several times faster than text: most columns kept
/// as text are addresses, each object's sample of them mostly distinct);
/// `None` if a value has no code.
fn codes_at_most(text: &StringViewArray, most: usize) -> Option<bool> {
    // Text that is not addresses (actions, interface ids) is told by its
    // first value, without packing the whole sample.
    if let Some(first) = text.iter().flatten().next() {
        text_codes::pack(first.as_bytes())?;
    }
    let (codes, coded) = text_codes::pack_column(text).ok()?;
    distinct_at_most(&codes, &coded, most)
}

/// Whether `codes` hold at most `most` distinct values; `None` if a value
/// has no code (`coded` unset).
fn distinct_at_most(codes: &UInt64Array, coded: &BooleanBuffer, most: usize) -> Option<bool> {
    if coded.count_set_bits() != coded.len() {
        return None;
    }
    let mut seen = HashSet::with_capacity(most + 1);
    for code in codes.iter().flatten() {
        if seen.insert(code) && seen.len() > most {
            return Some(false);
        }
    }
    Some(true)
}

/// A batch's text column as [`Keeping::Text`] keeps it until it is
/// written: codes if every value has one, else `Utf8`.
fn keep_text(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if column.data_type() == &DataType::Utf8View {
        let (codes, coded) = text_codes::pack_and_remember(column)
            .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
        if coded.count_set_bits() == coded.len() {
            return Ok(Arc::new(codes));
        }
    }
    cast(&readable(column)?, &DataType::Utf8)
}

/// `keys` (`UInt8`, `UInt16` or `Int32`) as a dictionary of `values`.
///
/// # Safety
///
/// Every key that is not null must index `values`.
unsafe fn dictionary_of(keys: &ArrayRef, values: ArrayRef) -> Result<ArrayRef, ArrowError> {
    /// `keys` of type `K` with `values`, unchecked (the caller's promise).
    unsafe fn with<K: ArrowDictionaryKeyType>(keys: &ArrayRef, values: ArrayRef) -> ArrayRef {
        let keys = keys.as_primitive::<K>().clone();
        // SAFETY: every key that is not null indexes `values` (the
        // caller's promise), which is what `try_new` checks.
        Arc::new(unsafe { DictionaryArray::<K>::new_unchecked(keys, values) })
    }
    // SAFETY: passed on from the caller.
    Ok(match keys.data_type() {
        DataType::UInt8 => unsafe { with::<UInt8Type>(keys, values) },
        DataType::UInt16 => unsafe { with::<UInt16Type>(keys, values) },
        DataType::Int32 => unsafe { with::<Int32Type>(keys, values) },
        other => {
            return Err(ArrowError::CastError(format!(
                "dictionary keys are not kept as {other}"
            )));
        }
    })
}

/// Whether the text values `newer` begin with the text values `older`.
fn begins_with(newer: &ArrayRef, older: &ArrayRef) -> bool {
    let (Some(newer), Some(older)) = (newer.as_string_opt::<i32>(), older.as_string_opt::<i32>())
    else {
        return false;
    };
    let offsets = older.value_offsets();
    let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
    newer.len() >= older.len()
        && newer.value_offsets()[..offsets.len()] == *offsets
        && newer.values().get(first..last) == older.values().get(first..last)
}

/// The type of a dictionary of `values` values: keys as narrow as they
/// can be.
fn dictionary_type(values: usize) -> DataType {
    let key = narrowest(&KEY_TYPES, 0, values as i64 - 1).unwrap_or(DataType::Int32);
    DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8))
}

/// `column` as text to read (see [`text_codes::readable`]).
fn readable(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    text_codes::readable(column).map_err(|e| ArrowError::ComputeError(e.to_string()))
}

/// Batches the decoder made for a read that fills the cache, made the
/// table's types again: the columns it made dictionaries of as views,
/// each dictionary's views made once.
pub(crate) struct DecodedAsTable {
    schema: SchemaRef,
    /// Each column's last dictionary's views.
    dictionaries: Vec<DictionaryViews>,
}

impl DecodedAsTable {
    /// For batches of the table's `schema`.
    pub(crate) fn new(schema: SchemaRef) -> Self {
        let dictionaries = std::iter::repeat_with(DictionaryViews::default)
            .take(schema.fields().len())
            .collect();
        Self {
            schema,
            dictionaries,
        }
    }

    /// `batch` in the table's types.
    pub(crate) fn batch(&mut self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        if batch.schema_ref() == &self.schema {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .zip(&mut self.dictionaries)
            .map(|((column, field), dictionaries)| {
                as_table_column(&as_read(column, dictionaries)?, field.data_type(), None)
            })
            .collect::<Result<_, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)
    }
}

/// The views of the last dictionary a reader met, made again only when
/// another dictionary comes (a data file has one per column).
#[derive(Default)]
pub(super) struct DictionaryViews {
    /// The dictionary's values, kept so that no other array can take
    /// their buffers' places, and their views.
    last: Option<(ArrayRef, ArrayRef)>,
}

/// A column as a data file holds it, as a reader hands it on: a
/// dictionary's values as views (made once per dictionary), anything else
/// as it is, to be made the table's type by [`as_table_column`] once the
/// record filter has run.
pub(super) fn as_read(
    column: &ArrayRef,
    dictionaries: &mut DictionaryViews,
) -> Result<ArrayRef, ArrowError> {
    let Some(dictionary) = column.as_any_dictionary_opt() else {
        return Ok(Arc::clone(column));
    };
    let values = dictionary.values();
    let views = match &dictionaries.last {
        Some((seen, views)) if seen.to_data().ptr_eq(&values.to_data()) => Arc::clone(views),
        _ => {
            let text = values
                .as_string_opt::<i32>()
                .ok_or_else(|| ArrowError::IpcError("a dictionary of other than text".into()))?;
            let views: ArrayRef = Arc::new(text_as_views(text));
            dictionaries.last = Some((Arc::clone(values), Arc::clone(&views)));
            views
        }
    };
    Ok(dictionary.with_values(views))
}

/// A column as [`as_read`] hands it on, in the table's type. Addresses
/// kept as codes are remembered for a grouping above; with `passed_on`
/// (a column of such a grouping whose plan reads no text of it once a
/// batch is passed on) set, they are handed on without text.
pub(super) fn as_table_column(
    column: &ArrayRef,
    table: &DataType,
    passed_on: Option<&PassedOn>,
) -> Result<ArrayRef, ArrowError> {
    if column.data_type() == table {
        return Ok(Arc::clone(column));
    }
    if let Some(dictionary) = column.as_any_dictionary_opt() {
        return take(dictionary.values(), dictionary.keys(), None);
    }
    match (column.data_type(), table) {
        (DataType::Utf8, _) => Ok(Arc::new(text_as_views(column.as_string::<i32>()))),
        (DataType::UInt64, DataType::Utf8View) => {
            let codes = column.as_primitive::<UInt64Type>();
            // A grouping by addresses above the scan finds these codes
            // instead of making them again from the text. Copied: they are
            // a slice of the whole data file, which the memo must not keep.
            let values = codes.values().to_vec();
            let nulls = codes.nulls().map(|nulls| {
                let bits = Buffer::from_slice_ref(nulls.inner().sliced().as_slice());
                NullBuffer::new(BooleanBuffer::new(bits, 0, nulls.len()))
            });
            let to_error =
                |e: datafusion::common::DataFusionError| ArrowError::ComputeError(e.to_string());
            if let Some(passed_on) = passed_on.filter(|passed_on| passed_on.leaves_text_out()) {
                let text = text_codes::textless_column(values.len(), nulls);
                text_codes::remember_textless(&text, values, passed_on.clone())
                    .map_err(to_error)?;
                return Ok(text);
            }
            let text = text_codes::unpack_column(codes, table).map_err(to_error)?;
            let owned = UInt64Array::new(ScalarBuffer::from(values), nulls);
            text_codes::remember(
                &text,
                owned,
                BooleanBuffer::new_set(codes.len()),
                passed_on.cloned(),
            );
            Ok(text)
        }
        _ => match widened(column, table) {
            Some(wide) => Ok(wide),
            None => cast(column, table),
        },
    }
}

/// `text` as views over its own bytes: a view per value, made in one
/// pass (arrow's cast goes through a builder, at several times the cost),
/// with the bytes shared, not copied.
pub(super) fn text_as_views(text: &StringArray) -> StringViewArray {
    let offsets = text.value_offsets();
    let bytes = text.values();
    let data = bytes.as_slice();
    let views: Vec<u128> = offsets
        .windows(2)
        .map(|pair| {
            let (start, end) = (pair[0] as usize, pair[1] as usize);
            let length = end - start;
            // The 16 bytes from the value's start, as one load where the
            // buffer has them (a short value's bytes, then zeros).
            let head = match data.get(start..start + 16) {
                Some(sixteen) => u128::from_le_bytes(sixteen.try_into().expect("16 bytes")),
                None => {
                    let mut sixteen = [0u8; 16];
                    let rest = &data[start..];
                    sixteen[..rest.len()].copy_from_slice(rest);
                    u128::from_le_bytes(sixteen)
                }
            };
            if length <= 12 {
                let kept = if length == 0 {
                    0
                } else {
                    head & (u128::MAX >> (128 - 8 * length))
                };
                (kept << 32) | length as u128
            } else {
                let prefix = head & u128::from(u32::MAX);
                // Buffer 0 (the only one) at `start`.
                length as u128 | (prefix << 32) | ((start as u128) << 96)
            }
        })
        .collect();
    // SAFETY: `text` is a valid Utf8 array (offsets in bounds and on
    // character boundaries, bytes UTF-8: the IPC reader validated a data
    // file's, `StringArray::try_new` the decoder's dictionary values), so each
    // view covers one whole value: inline, its bytes copied with its
    // length; otherwise its length, first four bytes, buffer 0 and offset
    // into that same buffer, which is below 2^32 for i32 offsets.
    unsafe {
        StringViewArray::new_unchecked(
            ScalarBuffer::from(views),
            vec![bytes.clone()],
            text.nulls().cloned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::DictionaryArray;

    #[test]
    fn text_becomes_views_of_the_same_values() {
        let values = [
            Some(""),
            None,
            Some("ACCEPT"),
            Some("exactly12chr"),
            Some("thirteen char"),
            Some("eni-0123456789abcdef0"),
            Some("é"),
            Some("2001:db8::ffff:ffff:ffff:ffff"),
        ];
        let text = StringArray::from(values.to_vec());
        // Every value near the buffer's end (no 16 bytes left) and far from it.
        let many: Vec<Option<&str>> = values
            .iter()
            .cycle()
            .take(5 * values.len())
            .copied()
            .collect();
        let long = StringArray::from(many.clone());
        let views = text_as_views(&long);
        views.to_data().validate_full().unwrap();
        assert_eq!(views, many.iter().copied().collect::<StringViewArray>());
        for (offset, length) in [(0, values.len()), (2, 5), (5, 0)] {
            let slice = text.slice(offset, length);
            let views = text_as_views(&slice);
            views.to_data().validate_full().unwrap();
            let expected: StringViewArray =
                values[offset..offset + length].iter().copied().collect();
            assert_eq!(views, expected);
        }
    }

    /// Writes `batches` of one column as a data file does, reads them back
    /// through the reader's steps, and checks every value.
    fn round_trip(table: &DataType, batches: &[ArrayRef]) -> DataType {
        round_trip_as(table, batches, batches)
    }

    /// [`round_trip`] of `written`, which must read back as `batches`.
    fn round_trip_as(table: &DataType, written: &[ArrayRef], batches: &[ArrayRef]) -> DataType {
        use datafusion::arrow::array::RecordBatch;
        use datafusion::arrow::datatypes::{Field, Schema};
        use datafusion::arrow::ipc::reader::FileReader;
        use datafusion::arrow::ipc::writer::{DictionaryHandling, FileWriter, IpcWriteOptions};

        let (mut keeping, first) = Keeping::choose(&written[0]).unwrap();
        let mut kept = vec![first];
        for batch in &written[1..] {
            kept.push(keeping.keep(batch).unwrap());
        }
        let all: Vec<&ArrayRef> = kept.iter().collect();
        let stored_type = keeping.stored_type(table, &all).unwrap();
        let schema = Schema::new(vec![Field::new("c", stored_type.clone(), true)]);
        let mut file = Vec::new();
        {
            let mut writer = FileWriter::try_new_with_options(
                &mut file,
                &schema,
                IpcWriteOptions::default().with_dictionary_handling(DictionaryHandling::Delta),
            )
            .unwrap();
            for column in &kept {
                let stored = keeping.stored(column, &stored_type).unwrap();
                let batch =
                    RecordBatch::try_new(Arc::clone(writer.schema()), vec![stored]).unwrap();
                writer.write(&batch).unwrap();
            }
            writer.finish().unwrap();
        }
        let reader = FileReader::try_new(std::io::Cursor::new(file), None).unwrap();
        let mut dictionaries = DictionaryViews::default();
        for (batch, expected) in reader.zip(batches) {
            let read = as_read(batch.unwrap().column(0), &mut dictionaries).unwrap();
            let back = as_table_column(&read, table, None).unwrap();
            back.to_data().validate_full().unwrap();
            assert_eq!(&back, expected);
        }
        stored_type
    }

    fn texts(values: &[Option<&str>]) -> ArrayRef {
        Arc::new(values.iter().copied().collect::<StringViewArray>())
    }

    #[test]
    fn text_that_repeats_is_kept_as_a_dictionary_with_narrow_keys() {
        let batches = [
            texts(&[
                Some("ACCEPT"),
                None,
                Some("eni-0123456789abcdef0"),
                Some("ACCEPT"),
            ]),
            texts(&[
                None,
                Some("thirteen char"),
                None,
                Some("a value longer than thirty-two bytes, by its bytes"),
            ]),
            texts(&[
                Some("a value longer than thirty-two bytes, by its bytes"),
                Some("thirteen char"),
                Some("thirteen chars"),
                Some("eni-0123456789abcdef0"),
                Some(""),
                Some("REJECT"),
                Some("eni-fedcba98765432100"),
                Some(""),
            ]),
        ];
        let dictionary = |key| DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8));
        // The keys are as narrow as the values allow.
        assert_eq!(
            round_trip(&DataType::Utf8View, &batches),
            dictionary(DataType::UInt8)
        );
        let many: Vec<String> = (0..300).map(|i| format!("value {}", i % 299)).collect();
        let many: Vec<Option<&str>> = many
            .iter()
            .map(|v| Some(v.as_str()))
            .chain(many.iter().map(|v| Some(v.as_str())))
            .collect();
        assert_eq!(
            round_trip(&DataType::Utf8View, &[texts(&many)]),
            dictionary(DataType::UInt16)
        );
    }

    #[test]
    fn keys_the_decoder_made_are_kept_as_they_are_and_views_after_them_too() {
        // As the decoder hands them on: a dictionary for each batch, whose
        // values begin with the last one's; then views, once it stopped.
        let batches = [
            texts(&[Some("ACCEPT"), None, Some("REJECT"), Some("ACCEPT")]),
            texts(&[Some("eni-0123456789abcdef0"), Some("REJECT"), None]),
            texts(&[
                Some("NODATA"),
                Some("eni-0123456789abcdef0"),
                Some("ACCEPT"),
            ]),
        ];
        let mut encoder = DictionaryEncoder::default();
        let mut written: Vec<ArrayRef> = batches[..2]
            .iter()
            .map(|batch| {
                let keys = encoder.encode(batch.as_string_view()).unwrap();
                let values = encoder.values().unwrap();
                Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).unwrap()) as ArrayRef
            })
            .collect();
        written.push(Arc::clone(&batches[2]));
        let (mut keeping, kept) = Keeping::choose(&written[0]).unwrap();
        assert!(matches!(keeping, Keeping::Keys { .. }));
        // Tested as the dictionary it is.
        let testable = keeping.testable(&kept).unwrap().expect("two values");
        assert_eq!(&cast(&testable, &DataType::Utf8View).unwrap(), &batches[0]);
        let dictionary = DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8));
        assert_eq!(
            round_trip_as(&DataType::Utf8View, &written, &batches),
            dictionary
        );
    }

    #[test]
    fn keys_the_decoder_made_span_files_and_must_keep_their_values() {
        let made = |encoder: &mut DictionaryEncoder, values: &[Option<&str>]| -> ArrayRef {
            let keys = encoder.encode(texts(values).as_string_view()).unwrap();
            let values = encoder.values().unwrap();
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values).unwrap())
        };
        let mut encoder = DictionaryEncoder::default();
        let first = [Some("ACCEPT"), Some("REJECT"), Some("ACCEPT")];
        let second = [Some("NODATA"), None, Some("ACCEPT")];
        let (mut keeping, kept_first) = Keeping::choose(&made(&mut encoder, &first)).unwrap();
        // A second data file: the decoder's dictionary goes on.
        keeping.next_file();
        let kept_second = keeping.keep(&made(&mut encoder, &second)).unwrap();
        for (kept, expected) in [(kept_first, &first[..]), (kept_second, &second[..])] {
            let stored_type = keeping.stored_type(&DataType::Utf8View, &[&kept]).unwrap();
            let stored = keeping.stored(&kept, &stored_type).unwrap();
            let back = cast(&stored, &DataType::Utf8View).unwrap();
            assert_eq!(&back, &texts(expected));
        }
        // Values that do not begin with the last batch's are refused.
        let other = made(&mut DictionaryEncoder::default(), &[Some("SKIPDATA")]);
        assert!(keeping.keep(&other).is_err());
    }

    #[test]
    fn text_left_out_by_the_decoder_is_kept_from_its_codes() {
        let repeating: Vec<String> = (0..400)
            .map(|i| format!("10.0.{}.{}", i % 3, i % 7))
            .collect();
        let distinct: Vec<String> = (0..400)
            .map(|i| format!("172.16.{}.{}", i / 256, i % 256))
            .collect();
        let dictionary = DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8));
        for (values, stored) in [(repeating, dictionary), (distinct, DataType::UInt64)] {
            let values: Vec<Option<&str>> = values
                .iter()
                .map(|value| Some(value.as_str()))
                .chain([None])
                .collect();
            let halves = [texts(&values[..200]), texts(&values[200..])];
            // As the decoder hands them on: empty views, codes remembered.
            let textless: Vec<ArrayRef> = halves
                .iter()
                .map(|half| {
                    let codes = half
                        .as_string_view()
                        .iter()
                        .map(|text| {
                            text.map_or(0, |text| text_codes::pack(text.as_bytes()).unwrap())
                        })
                        .collect();
                    let column = text_codes::textless_column(half.len(), half.nulls().cloned());
                    text_codes::remember_textless(&column, codes, PassedOn::default()).unwrap();
                    column
                })
                .collect();
            assert_eq!(
                round_trip_as(&DataType::Utf8View, &textless, &halves),
                stored
            );
        }
    }

    #[test]
    fn a_dictionary_is_testable_up_to_its_most_tested_values() {
        // A sample that repeats: kept as a dictionary.
        let first: Vec<Option<&str>> = vec![Some("ACCEPT"), Some("REJECT"), None, Some("ACCEPT")];
        let (mut keeping, kept) = Keeping::choose(&texts(&first)).unwrap();
        assert!(matches!(keeping, Keeping::Dictionary(_)));
        let testable = keeping.testable(&kept).unwrap().expect("two values");
        let back = as_table_column(&testable, &DataType::Utf8View, None).unwrap();
        assert_eq!(
            cast(&back, &DataType::Utf8View).unwrap().as_ref(),
            texts(&first).as_ref()
        );
        // Then values that keep coming: past the most, no longer tested.
        let distinct: Vec<String> = (0..TESTED_VALUES_AT_MOST)
            .map(|i| format!("v{i}"))
            .collect();
        let distinct = texts(
            &distinct
                .iter()
                .map(|v| Some(v.as_str()))
                .collect::<Vec<_>>(),
        );
        let kept = keeping.keep(&distinct).unwrap();
        assert!(keeping.testable(&kept).unwrap().is_none());
    }

    #[test]
    fn text_that_does_not_repeat_is_kept_as_utf8() {
        let batches = [
            texts(&[
                Some("10.0.0.1"),
                Some("2001:db8::ffff:ffff:ffff:ffff"),
                None,
                Some(""),
            ]),
            texts(&[Some("10.0.0.1")]),
        ];
        assert_eq!(round_trip(&DataType::Utf8View, &batches), DataType::Utf8);
    }

    #[test]
    fn text_of_digits_and_dots_is_kept_as_codes_when_every_value_has_one() {
        let addresses: Vec<String> = (0..3000u32)
            .map(|i| std::net::Ipv4Addr::from(0xAC10_0000 + i * 7919).to_string())
            .collect();
        let batch = |range: std::ops::Range<usize>| -> ArrayRef {
            let values: Vec<Option<&str>> = addresses[range]
                .iter()
                .enumerate()
                .map(|(i, a)| (i % 10 != 3).then_some(a.as_str()))
                .collect();
            texts(&values)
        };
        let batches = [batch(0..2500), batch(2500..3000)];
        assert_eq!(round_trip(&DataType::Utf8View, &batches), DataType::UInt64);
        // One batch of other text makes the whole file text.
        let other = texts(&[Some("2001:db8::1"), Some("10.0.0.1"), Some("")]);
        for batches in [
            [Arc::clone(&batches[0]), Arc::clone(&other)],
            [other, Arc::clone(&batches[1])],
        ] {
            assert_eq!(round_trip(&DataType::Utf8View, &batches), DataType::Utf8);
        }
    }

    #[test]
    fn codes_tell_repeating_addresses_as_the_text_encoder_does() {
        // Addresses of 7 to 12 characters (inside a view) and of 13 to 15.
        for (first, distinct) in [0x0A00_0000, 0xC0A8_6464]
            .into_iter()
            .flat_map(|first| [1, 2, 1023, 1024, 1025, 2000].map(|d| (first, d)))
        {
            let values: Vec<Option<String>> = (0..DICTIONARY_SAMPLE)
                .map(|i| {
                    let address = first + (i % distinct) as u32 * 13;
                    (i % 97 != 5).then(|| std::net::Ipv4Addr::from(address).to_string())
                })
                .collect();
            let text: StringViewArray = values.iter().map(|v| v.as_deref()).collect();
            let most = DICTIONARY_SAMPLE / 2;
            let found = values.iter().flatten().collect::<HashSet<_>>().len();
            let by_text = DictionaryEncoder::default().repeats(&text).unwrap();
            assert_eq!(by_text, found <= most, "{distinct}");
            assert_eq!(codes_at_most(&text, most), Some(by_text), "{distinct}");
        }
        let empty = StringViewArray::from(Vec::<&str>::new());
        assert_eq!(codes_at_most(&empty, 0), Some(true));
        let other: StringViewArray = [Some("10.0.0.1"), None, Some("eni-1")]
            .into_iter()
            .collect();
        assert_eq!(codes_at_most(&other, 2), None);
        // Told by its first value, after a NULL.
        let names: StringViewArray = [None, Some("eni-1"), Some("10.0.0.1")]
            .into_iter()
            .collect();
        assert_eq!(codes_at_most(&names, 2), None);
        // Addresses that repeat are kept as a dictionary, not as codes.
        let few: Vec<Option<&str>> = (0..3000)
            .map(|i| Some(["10.0.0.1", "10.0.0.2", "192.168.1.10"][i % 3]))
            .collect();
        assert_eq!(
            round_trip(&DataType::Utf8View, &[texts(&few)]),
            DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8))
        );
    }

    #[test]
    fn addresses_read_back_as_text_leave_their_codes_for_a_grouping() {
        let code = |text: &str| text_codes::pack(text.as_bytes()).unwrap();
        // As a data file gives them: a slice of a longer column, with
        // whatever value under a null.
        let file = UInt64Array::from(vec![
            Some(code("10.9.9.9")),
            Some(code("10.0.0.1")),
            None,
            Some(code("192.168.100.200")),
        ]);
        let mut values = file.values().to_vec();
        values[2] = 12345;
        let file = UInt64Array::new(values.into(), file.nulls().cloned());
        let kept: ArrayRef = Arc::new(file.slice(1, 3));
        let text = as_table_column(&kept, &DataType::Utf8View, None).unwrap();
        let expected: StringViewArray = [Some("10.0.0.1"), None, Some("192.168.100.200")]
            .into_iter()
            .collect();
        assert_eq!(text.as_string_view(), &expected);
        let (recalled, packed) = text_codes::pack_or_recall(&text).unwrap();
        // The codes read, not codes made again (which hold 0 under a null),
        // and the same as those for every record.
        assert_eq!(
            recalled.values(),
            kept.as_primitive::<UInt64Type>().values()
        );
        let (made, made_packed) = text_codes::pack_column(text.as_ref()).unwrap();
        assert_ne!(recalled.values(), made.values());
        assert_eq!((recalled, packed), (made, made_packed));
    }

    #[test]
    fn integers_are_kept_as_narrow_as_their_values() {
        use datafusion::arrow::array::{Int32Array, Int64Array};
        let ports: ArrayRef = Arc::new(Int32Array::from(vec![Some(22), None, Some(65535)]));
        assert_eq!(round_trip(&DataType::Int32, &[ports]), DataType::UInt16);
        // Every narrower type, at the ends of its range, from either width.
        let ints: [(Vec<Option<i32>>, DataType); 4] = [
            (vec![Some(255), None, Some(0)], DataType::UInt8),
            (vec![Some(-128), Some(127)], DataType::Int8),
            (vec![Some(0), Some(65535), Some(7)], DataType::UInt16),
            (vec![Some(-32768), Some(32767), None], DataType::Int16),
        ];
        for (values, expected) in ints {
            let column: ArrayRef = Arc::new(Int32Array::from(values));
            assert_eq!(round_trip(&DataType::Int32, &[column]), expected);
        }
        let cases: [(Vec<Option<i64>>, DataType); 7] = [
            (vec![Some(0), Some(255)], DataType::UInt8),
            (vec![Some(-128), Some(127)], DataType::Int8),
            (vec![Some(-32768), Some(32767)], DataType::Int16),
            (vec![Some(65535), Some(0)], DataType::UInt16),
            (
                vec![Some(i64::from(i32::MIN)), Some(i64::from(i32::MAX))],
                DataType::Int32,
            ),
            (
                vec![Some(1_700_000_000), Some(4_294_967_295)],
                DataType::UInt32,
            ),
            (vec![Some(-1), Some(i64::MAX), None], DataType::Int64),
        ];
        for (values, expected) in cases {
            let column: ArrayRef = Arc::new(Int64Array::from(values));
            assert_eq!(round_trip(&DataType::Int64, &[column]), expected);
        }
        let nothing: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        assert_eq!(
            round_trip(&DataType::Int64, &[Arc::clone(&nothing), nothing]),
            DataType::Null
        );
        let no_text = texts(&[None, None, None]);
        assert_eq!(round_trip(&DataType::Utf8View, &[no_text]), DataType::Null);
    }
}
