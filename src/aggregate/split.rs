//! Phase one: one input partition's rows split into the buckets of every
//! output partition, a window of rows at a time, and held in memory up to
//! a budget or spilled to temporary files past it.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanBufferBuilder, PrimitiveArray,
    RecordBatch, RecordBatchOptions, UInt32Array, downcast_primitive,
};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::{concat, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::disk_manager::DiskManager;
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::execution::{SendableRecordBatchStream, SpillFile};
use datafusion::physical_plan::metrics::{Count, SpillMetrics, Time};
use datafusion::physical_plan::spill::get_record_batch_memory_size;
use futures::TryStreamExt;

use super::packing::{CodesFrom, KeyPacking, PackedRows};
use super::routing::{Route, WindowLists};
use crate::narrow_integers::{narrowed, narrowest_for, widened};

/// Splits one input partition's rows into the buckets of every output
/// partition.
pub(crate) struct Splitter {
    pub(crate) route: Route,
    pub(crate) window_rows: usize,
    /// This input partition's share of
    /// [`Bucketing::memory_budget`](super::Bucketing::memory_budget).
    pub(crate) memory_budget: usize,
    pub(crate) schema: SchemaRef,
    pub(crate) packing: Option<Arc<KeyPacking>>,
    pub(crate) disk: Arc<DiskManager>,
    pub(crate) spill_metrics: SpillMetrics,
    pub(crate) split_time: Time,
    /// Rows split with their keys packed.
    pub(crate) packed_rows: Count,
    /// Rows whose keys' codes the scan made ([`crate::text_codes::recall`]).
    pub(crate) recalled_rows: Count,
    /// Of those, rows of batches whose coded keys had no text.
    pub(crate) textless_rows: Count,
    /// Covers the split windows held in memory.
    pub(crate) reservation: MemoryReservation,
}

/// One window's text or packed rows in bucket order, and where each
/// bucket's rows are.
pub(crate) struct SplitWindow {
    rows: RecordBatch,
    pub(crate) packed: bool,
    buckets: Vec<Range<usize>>,
}

impl SplitWindow {
    pub(crate) fn bucket(&self, bucket: usize) -> Option<RecordBatch> {
        let range = &self.buckets[bucket];
        (!range.is_empty()).then(|| self.rows.slice(range.start, range.len()))
    }
}

/// Split rows written out together when the held windows passed the budget:
/// one Arrow IPC file of text or of packed rows, with a batch per bucket.
/// Integer columns (the aggregates' states: sums, counts) are written as
/// narrow as the round's values allow: flow-log sums and counts mostly
/// need one to four of their eight bytes, and a spill costs the bytes it
/// writes and reads back.
pub(crate) struct SpillRound {
    /// Keeps the temporary file until the round is read.
    pub(crate) file: Arc<dyn SpillFile>,
    pub(crate) packed: bool,
    /// Per bucket, the index of its batch in the file, if it had rows.
    pub(crate) batches: Vec<Option<usize>>,
    /// The split's schema, where the file's has narrower integers.
    widen_to: Option<SchemaRef>,
}

impl SpillRound {
    /// A batch read from the file, in the split's own types.
    pub(crate) fn restored(&self, batch: RecordBatch) -> Result<RecordBatch> {
        match &self.widen_to {
            Some(schema) => widened_rows(batch, schema),
            None => Ok(batch),
        }
    }

    pub(crate) fn open(&self) -> Result<FileReader<BufReader<File>>> {
        let path = self.file.path().ok_or_else(|| {
            DataFusionError::NotImplemented(
                "BucketedAggregateExec spills only to local temporary files".to_string(),
            )
        })?;
        let reader = FileReader::try_new_buffered(File::open(path)?, None)?;
        // SAFETY: the file was written by this operator from arrays that
        // were valid, and only it reads the file. Validating it again would
        // check the UTF-8 of every string, which shows in the profile of a
        // large aggregation.
        Ok(unsafe { reader.with_skip_validation(true) })
    }
}

/// One input partition's split rows: windows held in memory, and spill
/// rounds.
pub(crate) struct SplitInput {
    pub(crate) held: Vec<SplitWindow>,
    pub(crate) rounds: Vec<SpillRound>,
    /// Covers `held`; kept only to be freed with it.
    _reservation: MemoryReservation,
}

impl Splitter {
    pub(crate) async fn split(self, mut input: SendableRecordBatchStream) -> Result<SplitInput> {
        // The window's batches, and the same with keys packed.
        let mut window: Vec<RecordBatch> = Vec::new();
        let mut packed_window: Vec<RecordBatch> = Vec::new();
        let mut window_rows = 0;
        let mut lists = WindowLists::new(self.route.lists());
        let mut held = Vec::new();
        let mut rounds = Vec::new();
        let mut hashes = Vec::new();
        while let Some(mut batch) = input.try_next().await? {
            if batch.num_rows() == 0 {
                continue;
            }
            let _timer = self.split_time.timer();
            let packed = match &self.packing {
                Some(packing) => {
                    let (packed_batch, rows, codes) = packing.pack(&batch)?;
                    let CodesFrom { scan, textless } = codes;
                    if scan {
                        self.recalled_rows.add(batch.num_rows());
                    }
                    if textless {
                        self.textless_rows.add(batch.num_rows());
                        // Rows not packed (a key without a code) are split
                        // and aggregated as text: the text left out of
                        // their coded keys is made again.
                        if !matches!(rows, PackedRows::All) {
                            batch = Self::with_text(&batch)?;
                        }
                    }
                    self.packed_rows.add(match &rows {
                        PackedRows::None => 0,
                        PackedRows::All => batch.num_rows(),
                        PackedRows::Some(rows) => rows.count_set_bits(),
                    });
                    packed_window.push(packed_batch);
                    rows
                }
                None => PackedRows::None,
            };
            self.route.add(
                &batch,
                packed_window.last(),
                &packed,
                &mut hashes,
                &mut lists,
            )?;
            window_rows += batch.num_rows();
            window.push(batch);
            if window_rows >= self.window_rows {
                self.split_window(&window, &packed_window, &lists, &mut held)?;
                lists.clear();
                window.clear();
                packed_window.clear();
                window_rows = 0;
                self.hold_or_spill(&mut held, &mut rounds)?;
            }
        }
        if !window.is_empty() {
            let _timer = self.split_time.timer();
            self.split_window(&window, &packed_window, &lists, &mut held)?;
            self.hold_or_spill(&mut held, &mut rounds)?;
        }
        Ok(SplitInput {
            held,
            rounds,
            _reservation: self.reservation,
        })
    }

    /// `batch` with the text its decoder left out made again from the codes.
    fn with_text(batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = batch
            .columns()
            .iter()
            .map(crate::text_codes::readable)
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }

    /// Puts the window's text rows and its packed rows in bucket order,
    /// each as one batch, onto `held`: a counting sort of the rows' lists
    /// gives each row its place, and [`placed_rows`] moves it there.
    fn split_window(
        &self,
        window: &[RecordBatch],
        packed_window: &[RecordBatch],
        lists: &WindowLists,
        held: &mut Vec<SplitWindow>,
    ) -> Result<()> {
        let buckets = self.route.buckets();
        for (first_list, sources, packed) in [(0, window, false), (buckets, packed_window, true)] {
            let counts = &lists.counts[first_list..first_list + buckets];
            let total = counts.iter().map(|&rows| rows as usize).sum();
            if total == 0 {
                continue;
            }
            let mut next = Vec::with_capacity(buckets);
            let mut ranges = Vec::with_capacity(buckets);
            let mut start = 0;
            for &rows in counts {
                next.push(start as u32);
                ranges.push(start..start + rows as usize);
                start += rows as usize;
            }
            let places: Vec<u32> = lists
                .of_row
                .iter()
                .map(|&list| match (list as usize).wrapping_sub(first_list) {
                    bucket if bucket < buckets => {
                        let place = next[bucket];
                        next[bucket] += 1;
                        place
                    }
                    _ => LEFT_OUT,
                })
                .collect();
            held.push(SplitWindow {
                rows: placed_rows(sources, &places, total)?,
                packed,
                buckets: ranges,
            });
        }
        Ok(())
    }

    /// Keeps the held windows in memory if the budget and the memory pool
    /// allow, or else spills all of them in one round (a file for text
    /// rows and one for packed rows).
    fn hold_or_spill(
        &self,
        held: &mut Vec<SplitWindow>,
        rounds: &mut Vec<SpillRound>,
    ) -> Result<()> {
        let held_bytes = held
            .iter()
            .map(|window| get_record_batch_memory_size(&window.rows))
            .sum();
        if held_bytes <= self.memory_budget && self.reservation.try_resize(held_bytes).is_ok() {
            return Ok(());
        }
        for packed in [false, true] {
            let windows: Vec<&SplitWindow> = held.iter().filter(|w| w.packed == packed).collect();
            if !windows.is_empty() {
                rounds.push(self.spill(&windows, packed)?);
            }
        }
        held.clear();
        self.reservation.resize(0);
        Ok(())
    }

    /// Writes held windows (all text or all packed) to a new temporary file,
    /// one batch per bucket.
    fn spill(&self, held: &[&SplitWindow], packed: bool) -> Result<SpillRound> {
        let schema = match (&self.packing, packed) {
            (Some(packing), true) => &packing.schema,
            _ => &self.schema,
        };
        let written_schema = narrowest_schema(schema, held)?;
        let file = self.disk.create_tmp_file("BucketedAggregateExec")?;
        let sink = BufWriter::with_capacity(1 << 20, file.open_writer()?);
        let mut writer = FileWriter::try_new(sink, &written_schema)?;
        let mut batches = Vec::with_capacity(self.route.buckets());
        let mut written = 0;
        for bucket in 0..self.route.buckets() {
            let pieces: Vec<RecordBatch> = held.iter().filter_map(|w| w.bucket(bucket)).collect();
            if pieces.is_empty() {
                batches.push(None);
                continue;
            }
            // Compact: a slice of a view column would be written with all of
            // its window's string data.
            let rows = compact(concat_batches(schema, &pieces)?);
            let rows = narrowed_rows(rows, &written_schema)?;
            writer.write(&rows)?;
            self.spill_metrics.spilled_rows.add(rows.num_rows());
            batches.push(Some(written));
            written += 1;
        }
        writer.finish()?;
        let mut sink = writer
            .into_inner()?
            .into_inner()
            .map_err(|e| DataFusionError::IoError(e.into_error()))?;
        sink.finish()?;
        self.spill_metrics.spill_file_count.add(1);
        self.spill_metrics
            .spilled_bytes
            .add(file.size().unwrap_or_default() as usize);
        let widen_to = (written_schema != *schema).then(|| Arc::clone(schema));
        Ok(SpillRound {
            file,
            packed,
            batches,
            widen_to,
        })
    }
}

/// A window row's place that leaves it out: it belongs to the other half
/// (text or packed) of the window.
const LEFT_OUT: u32 = u32::MAX;

/// The rows of `sources` (a window's batches, one place per row in
/// `places`) as one batch of `total` rows, each row at its place. A column
/// of fixed-width values is scattered to the places in one pass. Any other
/// (the text rows' views) is joined into one array and taken in place
/// order with one `take` (one call per bucket costs more than the copy;
/// an interleave of (batch, row) pairs cost more than the take); view
/// columns keep pointing into the input's string buffers, which hold
/// these rows' strings anyway, and spilling compacts them.
fn placed_rows(sources: &[RecordBatch], places: &[u32], total: usize) -> Result<RecordBatch> {
    let schema = sources[0].schema();
    let mut order: Option<UInt32Array> = None;
    let columns = (0..schema.fields().len())
        .map(|i| {
            let pieces: Vec<&dyn Array> = sources
                .iter()
                .map(|batch| batch.column(i).as_ref())
                .collect();
            if let Some(column) = scattered(&pieces, places, total) {
                return Ok(column);
            }
            let order = order.get_or_insert_with(|| place_order(places, total));
            let joined = match sources {
                [only] => Arc::clone(only.column(i)),
                _ => concat(&pieces)?,
            };
            Ok(take(&joined, order, None)?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(total));
    Ok(RecordBatch::try_new_with_options(
        schema, columns, &options,
    )?)
}

/// The window position of the row at each place.
fn place_order(places: &[u32], total: usize) -> UInt32Array {
    let mut order = vec![0u32; total];
    for (position, &place) in places.iter().enumerate() {
        if place != LEFT_OUT {
            order[place as usize] = position as u32;
        }
    }
    UInt32Array::from(order)
}

/// A column of fixed-width values (`pieces`, one per batch) scattered to
/// `places`, or `None` for any other type.
fn scattered(pieces: &[&dyn Array], places: &[u32], total: usize) -> Option<ArrayRef> {
    macro_rules! scatter_as {
        ($t:ty, $pieces:ident, $places:ident, $total:ident) => {
            Some(scattered_primitives::<$t>($pieces, $places, $total))
        };
    }
    downcast_primitive! {
        pieces[0].data_type() => (scatter_as, pieces, places, total),
        _ => None
    }
}

/// [`scattered`] for a column of `T`.
fn scattered_primitives<T: ArrowPrimitiveType>(
    pieces: &[&dyn Array],
    places: &[u32],
    total: usize,
) -> ArrayRef {
    let mut values = vec![T::default_value(); total];
    let mut validity: Option<BooleanBufferBuilder> = None;
    let mut first = 0;
    for piece in pieces {
        let piece = piece.as_primitive::<T>();
        let piece_places = &places[first..first + piece.len()];
        first += piece.len();
        for (&place, &value) in piece_places.iter().zip(piece.values().iter()) {
            if place != LEFT_OUT {
                values[place as usize] = value;
            }
        }
        if let Some(nulls) = piece.nulls().filter(|nulls| nulls.null_count() > 0) {
            let validity = validity.get_or_insert_with(|| {
                let mut all_valid = BooleanBufferBuilder::new(total);
                all_valid.append_n(total, true);
                all_valid
            });
            for (row, &place) in piece_places.iter().enumerate() {
                if nulls.is_null(row) && place != LEFT_OUT {
                    validity.set_bit(place as usize, false);
                }
            }
        }
    }
    let nulls = validity.map(|mut validity| NullBuffer::new(validity.finish()));
    Arc::new(
        PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls)
            .with_data_type(pieces[0].data_type().clone()),
    )
}

/// `schema` with each integer column as narrow as every value of `held`
/// (whose windows are all the rows of a round) allows.
fn narrowest_schema(schema: &SchemaRef, held: &[&SplitWindow]) -> Result<SchemaRef> {
    let mut narrowed_any = false;
    let fields = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let columns = held.iter().map(|window| window.rows.column(i));
            let narrow = narrowest_for(field.data_type(), columns)?;
            if narrow == *field.data_type() {
                return Ok(Arc::clone(field));
            }
            narrowed_any = true;
            Ok(Arc::new(field.as_ref().clone().with_data_type(narrow)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(if narrowed_any {
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    } else {
        Arc::clone(schema)
    })
}

/// Spilled `rows` back in `schema`'s types, wider integers than theirs.
fn widened_rows(rows: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    rows_as(rows, schema, widened)
}

/// `rows` in `schema`'s types, narrower integers than theirs where
/// [`narrowest_schema`] found every value fits.
fn narrowed_rows(rows: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if rows.schema() == *schema {
        return Ok(rows);
    }
    rows_as(rows, schema, narrowed)
}

/// `rows` with each column whose type is not its field's in `schema`
/// converted by `convert`.
fn rows_as(
    rows: RecordBatch,
    schema: &SchemaRef,
    convert: fn(&ArrayRef, &DataType) -> Option<ArrayRef>,
) -> Result<RecordBatch> {
    let columns = rows
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                return Ok(Arc::clone(column));
            }
            convert(column, field.data_type()).ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "a spilled column of {} cannot be converted to {}",
                    column.data_type(),
                    field.data_type()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Gives view columns buffers of their own, holding only their strings:
/// taking and slicing leave them pointing into whole input buffers,
/// which Arrow IPC would write out in full.
fn compact(batch: RecordBatch) -> RecordBatch {
    let needs_gc = |column: &ArrayRef| match column.data_type() {
        DataType::Utf8View => !column.as_string_view().data_buffers().is_empty(),
        DataType::BinaryView => !column.as_binary_view().data_buffers().is_empty(),
        _ => false,
    };
    if !batch.columns().iter().any(needs_gc) {
        return batch;
    }
    let columns = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Utf8View => Arc::new(column.as_string_view().gc()) as ArrayRef,
            DataType::BinaryView => Arc::new(column.as_binary_view().gc()) as ArrayRef,
            _ => Arc::clone(column),
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).expect("same columns, compacted")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_integers_are_as_narrow_as_the_round_and_read_back_whole() {
        use datafusion::arrow::array::{Int32Array, Int64Array, UInt64Array};
        use datafusion::arrow::datatypes::Field;
        let schema = Arc::new(Schema::new(vec![
            Field::new("code", DataType::UInt64, true),
            Field::new("sum", DataType::Int64, true),
            Field::new("count", DataType::Int64, false),
            Field::new("time", DataType::Int64, true),
            Field::new("port", DataType::Int32, true),
        ]));
        let window = |codes: Vec<u64>, sums: Vec<Option<i64>>, counts: Vec<i64>, times, ports| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(UInt64Array::from(codes)),
                Arc::new(Int64Array::from(sums)),
                Arc::new(Int64Array::from(counts)),
                Arc::new(Int64Array::from(times)),
                Arc::new(Int32Array::from(ports)),
            ];
            SplitWindow {
                rows: RecordBatch::try_new(Arc::clone(&schema), columns).unwrap(),
                packed: true,
                buckets: std::iter::once(0..2).collect(),
            }
        };
        // The round's range decides, over all its windows: a sum past
        // `i16` in the second, a negative one in the first; a time past
        // `u32` stays wide, as do codes (no narrower type is tried).
        let first = window(
            vec![1, u64::MAX],
            vec![Some(-5), None],
            vec![1, 2],
            vec![Some(1_700_000_000_000), None],
            vec![Some(22), Some(443)],
        );
        let second = window(
            vec![7, 8],
            vec![Some(40_000), Some(0)],
            vec![3, 255],
            vec![None, Some(0)],
            vec![None, Some(65_535)],
        );
        let written = narrowest_schema(&schema, &[&first, &second]).unwrap();
        let types: Vec<&DataType> = written.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [
                &DataType::UInt64,
                &DataType::Int32,
                &DataType::UInt8,
                &DataType::Int64,
                &DataType::UInt16
            ]
        );
        assert_eq!(
            written.field(1).is_nullable(),
            schema.field(1).is_nullable()
        );
        assert!(!written.field(2).is_nullable());
        for window in [&first, &second] {
            let narrow = narrowed_rows(window.rows.clone(), &written).unwrap();
            assert_eq!(narrow.schema(), written);
            assert!(
                get_record_batch_memory_size(&narrow) < get_record_batch_memory_size(&window.rows)
            );
            assert_eq!(widened_rows(narrow, &schema).unwrap(), window.rows);
        }
        // Values that need every byte leave the schema as it is.
        let wide = window(
            vec![0, 0],
            vec![Some(i64::MIN), Some(i64::MAX)],
            vec![0, i64::MAX],
            vec![Some(i64::MIN), None],
            vec![Some(i32::MIN), Some(i32::MAX)],
        );
        assert!(Arc::ptr_eq(
            &narrowest_schema(&schema, &[&wide]).unwrap(),
            &schema
        ));
    }

    #[test]
    fn compact_gives_views_their_own_buffers() {
        use datafusion::arrow::array::StringViewArray;
        use datafusion::arrow::compute::take_record_batch;
        use datafusion::arrow::datatypes::{Field, Schema};
        let long: Vec<String> = (0..100)
            .map(|i| format!("a string longer than twelve {i}"))
            .collect();
        let array = StringViewArray::from_iter_values(long.iter());
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(array)]).unwrap();
        let piece = take_record_batch(&batch, &UInt32Array::from(vec![3, 7])).unwrap();
        let compacted = compact(piece.clone());
        assert!(get_record_batch_memory_size(&compacted) < get_record_batch_memory_size(&piece));
        assert_eq!(compacted, piece);
    }

    #[test]
    fn placed_rows_puts_each_row_at_its_place_and_leaves_the_rest_out() {
        use datafusion::arrow::array::{
            BooleanArray, Decimal128Array, Int64Array, StringViewArray, TimestampSecondArray,
            UInt64Array,
        };
        use datafusion::arrow::compute::take_record_batch;
        use datafusion::arrow::datatypes::{Field, TimeUnit};
        let stamp = DataType::Timestamp(TimeUnit::Second, Some("+02:00".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("code", DataType::UInt64, false),
            Field::new("sum", DataType::Int64, true),
            Field::new("text", DataType::Utf8View, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("amount", DataType::Decimal128(20, 3), true),
            Field::new("at", stamp.clone(), true),
        ]));
        let batch = |first: u64, rows: usize| {
            let row = |i: usize| first + i as u64;
            let columns: Vec<ArrayRef> = vec![
                Arc::new(UInt64Array::from_iter_values((0..rows).map(row))),
                Arc::new(Int64Array::from_iter(
                    (0..rows).map(|i| (row(i) % 3 != 0).then(|| -(row(i) as i64))),
                )),
                Arc::new(StringViewArray::from_iter((0..rows).map(|i| {
                    (row(i) % 4 != 1).then(|| format!("a text longer than a view's {}", row(i)))
                }))),
                Arc::new(BooleanArray::from_iter(
                    (0..rows).map(|i| (row(i) % 5 != 2).then_some(row(i) % 2 == 0)),
                )),
                Arc::new(
                    Decimal128Array::from_iter(
                        (0..rows).map(|i| (row(i) % 7 != 3).then_some(row(i) as i128 * 1001)),
                    )
                    .with_precision_and_scale(20, 3)
                    .unwrap(),
                ),
                Arc::new(
                    TimestampSecondArray::from_iter_values((0..rows).map(|i| row(i) as i64))
                        .with_timezone("+02:00"),
                ),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        };
        let window = [batch(0, 5), batch(5, 1), batch(6, 9)];
        // Window rows 0..15: some left out (the other half's), the rest at
        // places that reverse and interleave them.
        let places: Vec<u32> = (0..15u32)
            .map(|row| match row % 4 {
                3 => LEFT_OUT,
                _ => row,
            })
            .collect();
        let kept: Vec<u32> = places.iter().copied().filter(|&p| p != LEFT_OUT).collect();
        let total = kept.len();
        // Places must be 0..total: rank them.
        let places: Vec<u32> = places
            .iter()
            .map(|&p| match p {
                LEFT_OUT => LEFT_OUT,
                p => (total - 1 - kept.iter().position(|&k| k == p).unwrap()) as u32,
            })
            .collect();
        let placed = placed_rows(&window, &places, total).unwrap();
        // Expected: the window joined, and row `r` taken where its place is.
        let mut by_place: Vec<(u32, u32)> = places
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != LEFT_OUT)
            .map(|(row, &p)| (p, row as u32))
            .collect();
        by_place.sort();
        let joined = concat_batches(&schema, &window).unwrap();
        let expected = take_record_batch(
            &joined,
            &UInt32Array::from_iter_values(by_place.iter().map(|&(_, row)| row)),
        )
        .unwrap();
        assert_eq!(placed.num_rows(), 12);
        assert_eq!(placed, expected);
        assert_eq!(placed.column(5).data_type(), &stamp);
        assert!(placed.column(1).null_count() > 0);
        // One batch alone, every row kept.
        let places: Vec<u32> = (0..5).rev().collect();
        let placed = placed_rows(&window[..1], &places, 5).unwrap();
        let reversed =
            take_record_batch(&window[0], &UInt32Array::from(vec![4, 3, 2, 1, 0])).unwrap();
        assert_eq!(placed, reversed);
    }
}
