//! Text objects read through the local cache ([`crate::cache`]): an
//! object whose entry holds every column the query reads is read from it;
//! any other is read from its source, every record of it, and the columns
//! the entry lacks are written as the batches pass.
//!
//! The query's record filter runs on an entry's columns as they are kept,
//! before text is made into views: a dictionary's values are tested once
//! each, and views are made only for the records that pass. A read that
//! fills an entry runs it the same way on the columns as the entry's writer
//! keeps them. As from the source, the filter is a pre-filter (DataFusion's
//! filter above the scan still applies the query's filters).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{FilterBuilder, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileOpenFuture, FileOpener};
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

use crate::cache::entry::{Entry, EntryWriter, FileCursor, ObjectFacts, Run, next_run};
use crate::cache::{DecodedAsTable, ObjectCache};
use crate::decode::Codes;
use crate::decode::record_filter::Matcher;
use crate::error::Error;

use super::text::{FlowLogOpener, SharedFindings, object_display};

/// A text object's reader that goes through the cache.
pub(crate) struct CachedOpener {
    source: Arc<FlowLogOpener>,
    cache: Arc<ObjectCache>,
    store_url: ObjectStoreUrl,
    /// The record filter's tests: the column each tests (index in the
    /// source's columns), and the test.
    tests: Arc<[(usize, Matcher)]>,
}

impl CachedOpener {
    pub(crate) fn new(
        source: Arc<FlowLogOpener>,
        cache: Arc<ObjectCache>,
        store_url: ObjectStoreUrl,
    ) -> Self {
        let schema = source.schema();
        let tests = source
            .record_filter()
            .tests()
            .iter()
            .filter_map(|test| Some((schema.index_of(&test.column).ok()?, test.matcher())))
            .collect();
        Self {
            source,
            cache,
            store_url,
            tests,
        }
    }
}

/// What the cache holds of one object, for the columns a query reads.
enum Lookup {
    /// Every column, opened.
    Hit(ObjectFacts, Vec<FileCursor>),
    /// Not all of them: the columns to add (index in the query's columns,
    /// name).
    Missing(Vec<(usize, String)>),
    /// An entry that cannot be read, and why.
    Damaged(String),
}

fn look_up(entry: &Entry, schema: &SchemaRef) -> Lookup {
    let manifest = match entry.manifest() {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return Lookup::Missing(all_columns(schema)),
        Err(why) => return Lookup::Damaged(why),
    };
    let missing = manifest.missing(schema);
    if !missing.is_empty() {
        return Lookup::Missing(missing);
    }
    match entry.open(&manifest, schema) {
        Ok(Some(files)) => Lookup::Hit(manifest.facts, files),
        Ok(None) => Lookup::Missing(all_columns(schema)),
        Err(why) => Lookup::Damaged(why),
    }
}

fn all_columns(schema: &SchemaRef) -> Vec<(usize, String)> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (i, f.name().clone()))
        .collect()
}

impl FileOpener for CachedOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        let entry = self.cache.entry(self.store_url.as_str(), &file.object_meta);
        let object = object_display(&self.store_url, &file.object_meta.location);
        let source = Arc::clone(&self.source);
        let cache = Arc::clone(&self.cache);
        let tests = Arc::clone(&self.tests);
        Ok(async move {
            let schema = Arc::clone(source.schema());
            let missing = match look_up(&entry, &schema) {
                // Under `strict` the first malformed line is an error where
                // the read reaches it (after some rows, which a LIMIT may
                // settle for): only the object itself can say where.
                Lookup::Hit(facts, _) if source.settings().strict && !facts.rejects.is_empty() => {
                    all_columns(&schema)
                }
                Lookup::Hit(facts, files) => {
                    cache.hit();
                    entry.touch();
                    let report = &source.settings().report;
                    report.object_opened();
                    report.object_from_cache(file.object_meta.size);
                    source.report_facts(&object, &facts)?;
                    let reading = EntryReading {
                        rows_left: facts.records,
                        tests,
                        files,
                        schema,
                        source,
                        object,
                        entry,
                    };
                    return Ok(futures::stream::try_unfold(reading, EntryReading::next).boxed());
                }
                Lookup::Missing(missing) => missing,
                Lookup::Damaged(why) => {
                    let report = &source.settings().report;
                    report.damaged_cache_entry(&object, why);
                    entry.remove();
                    all_columns(&schema)
                }
            };
            cache.missed();
            source.settings().report.object_missing_cache();
            let findings = SharedFindings::default();
            let batches = source
                .open_object(file, Some(Arc::clone(&findings)))?
                .await?;
            let filling = Filling {
                writer: Some(entry.writer(missing, Arc::clone(&schema))),
                batches,
                findings,
                cache,
                tests,
                as_table: DecodedAsTable::new(Arc::clone(&schema)),
                schema,
            };
            Ok(futures::stream::try_unfold(filling, Filling::next).boxed())
        }
        .boxed())
    }
}

/// An object being read from its cache entry.
struct EntryReading {
    files: Vec<FileCursor>,
    schema: SchemaRef,
    rows_left: u64,
    tests: Arc<[(usize, Matcher)]>,
    source: Arc<FlowLogOpener>,
    object: String,
    entry: Entry,
}

impl EntryReading {
    async fn next(mut self) -> Result<Option<(RecordBatch, Self)>> {
        match self.next_batch() {
            Ok(Some(batch)) => Ok(Some((batch, self))),
            Ok(None) => {
                self.source.settings().report.object_finished();
                Ok(None)
            }
            Err(why) => {
                // Part of the object has been returned; reading the rest
                // from the source would need its records in the same
                // order and its warnings not repeated, so the statement
                // fails instead, and the next one reads the source.
                self.entry.remove();
                Err(DataFusionError::from(Error::BadObject {
                    object: self.object,
                    reason: format!(
                        "has a damaged copy in the cache ({why}); the copy has been removed, so \
                         running the statement again reads the object itself"
                    ),
                }))
            }
        }
    }

    /// The next batch of records that pass the record filter; `None` at
    /// the end of the entry.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, String> {
        let batch_size = self.source.batch_size();
        loop {
            let Some(run) = next_run(
                &mut self.files,
                &self.schema,
                batch_size,
                &mut self.rows_left,
            )?
            else {
                return Ok(None);
            };
            self.source.count_records(run.rows as u64);
            let passing =
                keep_passing(&self.tests, &self.schema, run).map_err(|e| e.to_string())?;
            if passing.rows > 0 {
                let coded = match self.source.codes() {
                    Codes::ForGrouping {
                        columns,
                        passed_on: Some(passed_on),
                    } => Some((&columns[..], passed_on)),
                    _ => None,
                };
                return passing
                    .into_batch(&self.schema, coded)
                    .map(Some)
                    .map_err(|e| e.to_string());
            }
        }
    }
}

/// Which records pass every test that can run on the columns `kept_column`
/// gives (by index in `schema`, which has the table's types), as the cache
/// keeps them; `None` if no test can run.
fn passing<'a>(
    tests: &[(usize, Matcher)],
    schema: &SchemaRef,
    kept_column: impl Fn(usize) -> Option<&'a ArrayRef>,
) -> Option<BooleanBuffer> {
    let mut passing: Option<BooleanBuffer> = None;
    for (column, matcher) in tests {
        let Some(kept) = kept_column(*column) else {
            continue;
        };
        let these = match kept.as_primitive_opt::<UInt64Type>() {
            // Text kept as codes, tested as codes.
            Some(codes) if schema.field(*column).data_type() == &DataType::Utf8View => {
                Some(matcher.passing_codes(codes))
            }
            _ => matcher.passing(kept.as_ref()),
        };
        if let Some(these) = these {
            passing = Some(match passing {
                Some(before) => &before & &these,
                None => these,
            });
        }
    }
    passing
}

/// The records of `run` (columns as `schema` gives them) that pass every
/// test that can run on its columns.
fn keep_passing(
    tests: &[(usize, Matcher)],
    schema: &SchemaRef,
    run: Run,
) -> Result<Run, ArrowError> {
    let Some(passing) = passing(tests, schema, |column| run.columns.get(column)) else {
        return Ok(run);
    };
    let rows = passing.count_set_bits();
    if rows == run.rows {
        return Ok(run);
    }
    let filter = FilterBuilder::new(&BooleanArray::new(passing, None))
        .optimize()
        .build();
    let columns = run
        .columns
        .iter()
        .map(|column| filter.filter(column))
        .collect::<Result<_, _>>()?;
    Ok(Run { columns, rows })
}

/// An object being read from its source while its entry is filled.
///
/// The source gives every record (the entry keeps them all); those that
/// fail the record filter are dropped here, tested as the writer keeps
/// their columns (a dictionary's values once a batch, addresses as codes),
/// so DataFusion's filter above does not test every record's text again.
/// Text the decoder made a dictionary of for the writer is made views
/// after that, for the records that pass.
struct Filling {
    batches: BoxStream<'static, Result<RecordBatch>>,
    /// Dropped (leaving nothing) when the read fails.
    writer: Option<EntryWriter>,
    findings: SharedFindings,
    cache: Arc<ObjectCache>,
    tests: Arc<[(usize, Matcher)]>,
    schema: SchemaRef,
    as_table: DecodedAsTable,
}

impl Filling {
    async fn next(mut self) -> Result<Option<(RecordBatch, Self)>> {
        loop {
            match self.batches.next().await {
                Some(Ok(batch)) => {
                    let Some(writer) = &mut self.writer else {
                        let batch = self.as_table.batch(batch)?;
                        return Ok(Some((batch, self)));
                    };
                    let tests = &self.tests;
                    let testable = writer.write(&batch, |column| {
                        tests.iter().any(|(tested, _)| *tested == column)
                    });
                    let kept_column = |column| {
                        testable
                            .iter()
                            .find_map(|(index, kept)| (*index == column).then_some(kept))
                    };
                    let batch = match passing(&self.tests, &self.schema, kept_column) {
                        Some(passing) if passing.count_set_bits() < batch.num_rows() => {
                            filter_record_batch(&batch, &BooleanArray::new(passing, None))?
                        }
                        _ => batch,
                    };
                    if batch.num_rows() > 0 {
                        let batch = self.as_table.batch(batch)?;
                        return Ok(Some((batch, self)));
                    }
                }
                Some(Err(e)) => {
                    self.writer = None;
                    return Err(e);
                }
                None => {
                    let findings = self.findings.lock().unwrap_or_else(|e| e.into_inner());
                    if findings.complete
                        && let Some(writer) = self.writer.take()
                    {
                        self.cache.added(writer.commit(&findings.facts));
                    }
                    return Ok(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::record_filter::{ColumnTest, Condition};
    use crate::text_codes;
    use datafusion::arrow::array::{ArrayRef, StringViewArray, UInt32Array};
    use datafusion::arrow::datatypes::UInt32Type;
    use datafusion::arrow::datatypes::{Field, Schema};

    /// Text kept as codes is tested as the text it stands for, beside a
    /// narrowed integer column.
    #[test]
    fn coded_text_is_tested_as_its_text() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("srcaddr", DataType::Utf8View, true),
            Field::new("bytes", DataType::Int64, true),
        ]));
        let addresses: StringViewArray =
            [Some("10.0.1.5"), None, Some("10.0.15.1"), Some("10.0.1.5")]
                .into_iter()
                .collect();
        let (codes, _) = text_codes::pack_column(&addresses).unwrap();
        let run = || Run {
            columns: vec![
                Arc::new(codes.clone()) as ArrayRef,
                Arc::new(UInt32Array::from(vec![1, 2, 3, 4])),
            ],
            rows: 4,
        };
        let test = |column: &str, condition| {
            let index = schema.index_of(column).unwrap();
            let test = ColumnTest {
                column: column.to_string(),
                condition,
            };
            (index, test.matcher())
        };
        let cases = [
            (
                test("srcaddr", Condition::TextIn(vec![b"10.0.1.5".to_vec()])),
                vec![1, 4],
            ),
            (
                test("srcaddr", Condition::TextPrefix(b"10.0.1".to_vec())),
                vec![1, 3, 4],
            ),
            (test("srcaddr", Condition::IsNull), vec![2]),
            (test("bytes", Condition::IntegerRange(2, 3)), vec![2, 3]),
        ];
        for (test, expected) in cases {
            let passing = keep_passing(&[test], &schema, run()).unwrap();
            let bytes = passing.columns[1].as_primitive::<UInt32Type>();
            assert_eq!(bytes.values().to_vec(), expected);
        }
    }
}
