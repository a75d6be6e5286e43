//! How one object becomes record batches: GET, gunzip (a small object
//! whole, with [`crate::scan::inflate`]; anything else streaming, multi-member),
//! header, decode. [`FlowLogSource`] is DataFusion's `FileSource`
//! for flow-log objects and [`FlowLogOpener`] its `FileOpener`; partition
//! (path) columns are added by DataFusion's `ProjectionOpener`, as for CSV.

use std::fmt;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileOpenFuture, FileOpener, FileScanConfig, FileSource,
};
use datafusion::datasource::projection::{ProjectionOpener, SplitProjection};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExprs;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::{DisplayFormatType, PhysicalExpr};
use flate2::write::MultiGzDecoder;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetResultPayload, ObjectStore};

use crate::cache::ObjectCache;
use crate::cache::entry::{KeptReject, ObjectFacts};
use crate::decode::record_filter::RecordFilter;
use crate::decode::{Codes, Reject, RejectSink, TextDecoder};
use crate::error::Error;
use crate::report::ScanReport;
use crate::scan::cached::CachedOpener;
use crate::scan::inflate;
use crate::text_codes::PassedOn;

/// Bytes read from a local file per step; bounds the text decoded at once.
const LOCAL_READ_BYTES: usize = 256 * 1024;

/// Text handed to the decoder per step when an object was inflated whole,
/// so its batches are produced (and can be consumed) as it goes.
const TEXT_PIECE_BYTES: usize = 256 * 1024;

/// Settings every reader of one table shares.
#[derive(Debug, Clone)]
pub(crate) struct ReadSettings {
    /// Fail on the first malformed line instead of skipping it.
    pub strict: bool,
    /// Give up on a bad object with a warning instead of failing.
    pub skip_bad_objects: bool,
    /// Where counters and malformed-line examples go.
    pub report: Arc<ScanReport>,
    /// The local cache of decoded objects, if it is used.
    pub cache: Option<Arc<ObjectCache>>,
}

/// DataFusion `FileSource` for gzip flow-log text objects.
#[derive(Clone)]
pub(crate) struct FlowLogSource {
    table_schema: TableSchema,
    projection: SplitProjection,
    batch_size: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
    settings: ReadSettings,
    record_filter: Arc<RecordFilter>,
    /// The codes the decoder makes for a grouping above (see
    /// [`TextDecoder::with_codes`]).
    codes: Codes,
}

impl fmt::Debug for FlowLogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowLogSource")
            .field("file_indices", &self.projection.file_indices)
            .field("strict", &self.settings.strict)
            .finish_non_exhaustive()
    }
}

impl FlowLogSource {
    /// A source over `table_schema` (record columns plus path columns).
    pub(crate) fn new(table_schema: TableSchema, settings: ReadSettings) -> Self {
        Self {
            projection: SplitProjection::unprojected(&table_schema),
            table_schema,
            batch_size: None,
            metrics: ExecutionPlanMetricsSet::new(),
            settings,
            record_filter: Arc::default(),
            codes: Codes::None,
        }
    }

    /// Reads only the records that pass `filter`'s tests (see
    /// [`TextDecoder::with_record_filter`]).
    pub(crate) fn with_record_filter(mut self, filter: Arc<RecordFilter>) -> Self {
        self.record_filter = filter;
        self
    }

    /// Makes the codes of `columns` as their values are read (see
    /// [`TextDecoder::with_codes`]). With `text_unread` (nothing above reads
    /// their text but a partial aggregate that has not yet passed a batch
    /// on), the decoders leave out the text of values with a code once a
    /// batch is passed on, where this source's projection reads none
    /// either.
    pub(crate) fn with_coded_columns(mut self, columns: Arc<[String]>, text_unread: bool) -> Self {
        // A coded column is passed on as it was read, under its own name;
        // an expression of one, or the same column under another name,
        // may be read as text above.
        let projection_reads = self.projection.source.iter().any(|projected| {
            let passed_on = projected.expr.downcast_ref::<Column>().is_some()
                && columns.contains(&projected.alias);
            !passed_on
                && collect_columns(&projected.expr)
                    .iter()
                    .any(|column| columns.iter().any(|name| name == column.name()))
        });
        // A fill filters its batches after the decoder (see
        // `scan::cached`): views left out would be copied, not recalled.
        // Any record filter has a filter above it, so no codes are asked
        // for; this is only a guard.
        let filtered = !self.record_filter.is_empty();
        let passed_on = (text_unread && !projection_reads && !filtered).then(PassedOn::default);
        self.codes = Codes::ForGrouping { columns, passed_on };
        self
    }

    /// The text columns the decoder makes codes of.
    pub(crate) fn coded_columns(&self) -> &[String] {
        match &self.codes {
            Codes::ForGrouping { columns, .. } => columns,
            Codes::None | Codes::ForCache { .. } => &[],
        }
    }

    /// Whether the decoders leave out the text of coded values once a
    /// batch is passed on.
    pub(crate) fn leaves_text_out(&self) -> bool {
        matches!(
            self.codes,
            Codes::ForGrouping {
                passed_on: Some(_),
                ..
            }
        )
    }
}

impl FileSource for FlowLogSource {
    fn create_file_opener(
        &self,
        object_store: Arc<dyn ObjectStore>,
        base_config: &FileScanConfig,
        partition: usize,
    ) -> Result<Arc<dyn FileOpener>> {
        let file_schema = self.table_schema.file_schema();
        // Before the record filter; the scan's output_rows are after it.
        let records_read = MetricBuilder::new(&self.metrics).counter("records_read", partition);
        let source = Arc::new(FlowLogOpener {
            store: object_store,
            store_url: base_config.object_store_url.clone(),
            schema: Arc::new(file_schema.project(&self.projection.file_indices)?),
            table_columns: file_schema.clone(),
            batch_size: self.batch_size.unwrap_or(8192),
            settings: self.settings.clone(),
            record_filter: Arc::clone(&self.record_filter),
            codes: self.codes.for_partition(),
            records_read,
        });
        let opener: Arc<dyn FileOpener> = match &self.settings.cache {
            Some(cache) => Arc::new(CachedOpener::new(
                source,
                Arc::clone(cache),
                base_config.object_store_url.clone(),
            )),
            None => source,
        };
        ProjectionOpener::try_new(self.projection.clone(), opener, file_schema)
    }

    fn table_schema(&self) -> &TableSchema {
        &self.table_schema
    }

    fn with_batch_size(&self, batch_size: usize) -> Arc<dyn FileSource> {
        let mut source = self.clone();
        source.batch_size = Some(batch_size);
        Arc::new(source)
    }

    fn try_pushdown_projection(
        &self,
        projection: &ProjectionExprs,
    ) -> Result<Option<Arc<dyn FileSource>>> {
        let mut source = self.clone();
        let merged = self.projection.source.try_merge(projection)?;
        source.projection = SplitProjection::new(self.table_schema.file_schema(), &merged);
        Ok(Some(Arc::new(source)))
    }

    fn projection(&self) -> Option<&ProjectionExprs> {
        Some(&self.projection.source)
    }

    fn metrics(&self) -> &ExecutionPlanMetricsSet {
        &self.metrics
    }

    fn file_type(&self) -> &str {
        "vpcflowlogs"
    }

    /// A gzip object cannot be split: one object is one unit of work.
    fn supports_repartitioning(&self) -> bool {
        false
    }

    fn fmt_extra(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, ", strict={}", self.settings.strict)?;
                if !self.record_filter.is_empty() {
                    write!(f, ", record_filter=[{}]", self.record_filter)?;
                }
                if self.settings.skip_bad_objects {
                    write!(f, ", skip_bad_objects=true")?;
                }
                Ok(())
            }
            DisplayFormatType::TreeRender => Ok(()),
        }
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        datafusion::physical_plan::apply_expression_roots(self.projection.source.iter(), f)
    }
}

/// Opens one flow-log object and streams its records as batches of the
/// projected record columns.
pub(crate) struct FlowLogOpener {
    store: Arc<dyn ObjectStore>,
    store_url: ObjectStoreUrl,
    schema: SchemaRef,
    table_columns: SchemaRef,
    batch_size: usize,
    settings: ReadSettings,
    record_filter: Arc<RecordFilter>,
    codes: Codes,
    records_read: Count,
}

/// How an object is named to the user: a local path or a full URL.
pub(crate) fn object_display(store_url: &ObjectStoreUrl, location: &Path) -> String {
    let base = store_url.as_str();
    if base.starts_with("file://") {
        format!("/{location}")
    } else {
        format!("{}/{location}", base.trim_end_matches('/'))
    }
}

impl FileOpener for FlowLogOpener {
    fn open(&self, file: PartitionedFile) -> Result<FileOpenFuture> {
        self.open_object(file, None)
    }
}

/// What one read of an object found besides its records, for the cache:
/// filled in as the object is read, `complete` once it has been read to
/// its end (not skipped, not stopped early).
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub facts: ObjectFacts,
    pub complete: bool,
}

pub(crate) type SharedFindings = Arc<Mutex<Findings>>;

impl FlowLogOpener {
    /// The projected record columns this opener's batches hold.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub(crate) fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The codes its decoders make, and for whom.
    pub(crate) fn codes(&self) -> &Codes {
        &self.codes
    }

    /// The tests every record read must pass (a pre-filter: see
    /// [`RecordFilter`]).
    pub(crate) fn record_filter(&self) -> &RecordFilter {
        &self.record_filter
    }

    pub(crate) fn settings(&self) -> &ReadSettings {
        &self.settings
    }

    /// Opens `file`. With `findings`, every record is read (the record
    /// filter is not applied: the cache keeps whole objects) and what the
    /// read finds is noted there.
    pub(crate) fn open_object(
        &self,
        file: PartitionedFile,
        findings: Option<SharedFindings>,
    ) -> Result<FileOpenFuture> {
        let store = Arc::clone(&self.store);
        let location = file.object_meta.location.clone();
        let listed = file.object_meta.clone();
        let size = file.object_meta.size;
        let read_whole = size <= inflate::MAX_WHOLE_OBJECT;
        let object = object_display(&self.store_url, &location);
        let schema = Arc::clone(&self.schema);
        let table_columns = Arc::clone(&self.table_columns);
        let batch_size = self.batch_size;
        let settings = self.settings.clone();
        let (record_filter, codes) = match findings {
            Some(_) => (Arc::default(), self.codes.for_cache()),
            None => (Arc::clone(&self.record_filter), self.codes.clone()),
        };
        let records_read = self.records_read.clone();
        Ok(async move {
            let result = store
                .get_opts(&location, GetOptions::default())
                .await
                .map_err(|e| unreadable(&object, &e))?;
            settings.report.object_opened();
            // The cache names an entry by the object as listed: one replaced
            // since is read, but not cached under the old name.
            let findings = findings.filter(|_| same_version(&result.meta, &listed));
            let read_error = |e: object_store::Error| unreadable(&object, &e);
            // A small object is read whole here, in the task that opens it
            // ahead of time, so its GET overlaps the reading of the objects
            // before it; it is inflated when its turn comes.
            let input = match result.payload {
                GetResultPayload::File(file, _) if read_whole => {
                    Input::Whole(read_file(file, size).map_err(read_error)?)
                }
                GetResultPayload::File(file, _) => Input::Chunks(local_chunks(file)),
                GetResultPayload::Stream(stream) if read_whole => {
                    Input::Whole(collect_body(stream, size).await.map_err(read_error)?)
                }
                GetResultPayload::Stream(stream) => Input::Chunks(stream),
            };
            let sink = DecoderSink {
                decoder: TextDecoder::new(
                    schema,
                    batch_size,
                    Box::new(ReportRejects {
                        findings: findings.clone(),
                        ..ReportRejects::new(&object, &settings)
                    }),
                )
                .with_record_filter(record_filter)
                .with_codes(codes),
                error: None,
            };
            let reader = ObjectReader {
                object,
                input,
                gunzip: MultiGzDecoder::new(sink),
                compressed_bytes: 0,
                records_reported: 0,
                records_read,
                header_checked: false,
                finished: false,
                table_columns,
                settings,
                findings,
            };
            Ok(futures::stream::try_unfold(reader, ObjectReader::next_batch).boxed())
        }
        .boxed())
    }
}

/// Reads a local file in blocks. Local reads are short and usually served
/// from the page cache, so they run inline, as DataFusion's CSV reader does.
fn local_chunks(mut file: std::fs::File) -> BoxStream<'static, object_store::Result<Bytes>> {
    let blocks = std::iter::from_fn(move || {
        let mut buf = vec![0u8; LOCAL_READ_BYTES];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(Bytes::from(buf)))
            }
            Err(source) => Some(Err(local_read_error(source))),
        }
    });
    futures::stream::iter(blocks).boxed()
}

/// Reads a local file whole in one read into a buffer of its listed size
/// (no zeroed blocks, no copy between them).
fn read_file(mut file: std::fs::File, size: u64) -> object_store::Result<Bytes> {
    let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.read_to_end(&mut body).map_err(local_read_error)?;
    Ok(Bytes::from(body))
}

fn local_read_error(source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(source),
    }
}

/// Reads a GET's body into one buffer of the object's listed size.
async fn collect_body(
    mut chunks: BoxStream<'static, object_store::Result<Bytes>>,
    size: u64,
) -> object_store::Result<Bytes> {
    let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk?);
    }
    Ok(Bytes::from(body))
}

/// An object the store would not give (after retries).
pub(crate) fn unreadable(object: &str, error: &object_store::Error) -> DataFusionError {
    Error::Unreadable {
        object: object.to_string(),
        problem: crate::location::s3::classify(error),
    }
    .into()
}

/// An object that is not a readable flow-log object.
fn bad_object(object: &str, reason: String) -> Fault {
    Fault::BadObject(
        Error::BadObject {
            object: object.to_string(),
            reason,
        }
        .into(),
    )
}

/// Receives decompressed text from the gunzip writer.
struct DecoderSink {
    decoder: TextDecoder,
    /// The decoder's own error, kept so it is not reported as a gzip error.
    error: Option<DataFusionError>,
}

impl Write for DecoderSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.decoder.feed(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.error = Some(e);
                Err(std::io::Error::other("decoding stopped"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a text object's malformed lines go: the scan report, or, under
/// `strict`, an error.
pub(crate) struct ReportRejects {
    object: String,
    settings: ReadSettings,
    /// Where the cache keeps them, when the object is being cached.
    findings: Option<SharedFindings>,
}

impl ReportRejects {
    pub(crate) fn new(object: &str, settings: &ReadSettings) -> Self {
        Self {
            object: object.to_string(),
            settings: settings.clone(),
            findings: None,
        }
    }

    /// Reports a malformed line as the report keeps it (from the cache).
    pub(crate) fn kept(&self, reject: &KeptReject) -> Result<()> {
        if self.settings.strict {
            return Err(Error::MalformedLine {
                object: self.object.clone(),
                line: reject.line,
                reason: reject.reason.clone(),
            }
            .into());
        }
        self.settings.report.malformed(&self.object, reject);
        Ok(())
    }
}

impl RejectSink for ReportRejects {
    fn reject(&mut self, line: u64, reason: Reject, raw: &[u8]) -> Result<()> {
        let kept = KeptReject {
            line,
            reason: reason.to_string(),
            text: crate::report::kept_text(raw),
        };
        if let Some(findings) = &self.findings {
            let mut findings = findings.lock().unwrap_or_else(|e| e.into_inner());
            findings.facts.rejects.push(kept.clone());
        }
        self.kept(&kept)
    }
}

/// Where an object's text comes from.
enum Input {
    /// The whole compressed object, not yet inflated.
    Whole(Bytes),
    /// Compressed chunks, gunzipped as they arrive.
    Chunks(BoxStream<'static, object_store::Result<Bytes>>),
    /// The object's text, inflated whole; `fed` bytes of it are decoded.
    Text { text: Vec<u8>, fed: usize },
}

/// The state of one object being read.
struct ObjectReader {
    object: String,
    input: Input,
    /// Streaming gunzip; it owns the decoder, which whole text is fed to directly.
    gunzip: MultiGzDecoder<DecoderSink>,
    compressed_bytes: u64,
    records_reported: u64,
    /// This execution's well-formed records (the report counts the table's).
    records_read: Count,
    header_checked: bool,
    finished: bool,
    table_columns: SchemaRef,
    settings: ReadSettings,
    findings: Option<SharedFindings>,
}

impl ObjectReader {
    async fn next_batch(mut self) -> Result<Option<(RecordBatch, Self)>> {
        loop {
            if let Some(batch) = self.gunzip.get_mut().decoder.next_batch() {
                return Ok(Some((batch, self)));
            }
            if self.finished {
                return Ok(None);
            }
            let step = match &mut self.input {
                Input::Whole(body) => {
                    let body = std::mem::take(body);
                    self.inflate_whole(body);
                    Ok(())
                }
                Input::Chunks(chunks) => match chunks.next().await {
                    Some(Ok(bytes)) => self.feed(&bytes),
                    Some(Err(e)) => return Err(unreadable(&self.object, &e)),
                    None => self.finish(),
                },
                Input::Text { text, fed } if *fed < text.len() => {
                    let end = text.len().min(*fed + TEXT_PIECE_BYTES);
                    let decoded = self.gunzip.get_mut().decoder.feed(&text[*fed..end]);
                    *fed = end;
                    decoded.map_err(|e| self.decoder_fault(e))
                }
                Input::Text { .. } => self.finish(),
            };
            match step {
                Ok(()) => {}
                Err(Fault::BadObject(e)) if self.settings.skip_bad_objects => self.skip(e),
                Err(Fault::BadObject(e) | Fault::Failed(e)) => return Err(e),
            }
            self.after_step();
        }
    }

    /// Inflates a whole object in one call if it can; otherwise its bytes
    /// go through the streaming gunzip, which reports what is wrong.
    fn inflate_whole(&mut self, body: Bytes) {
        match inflate::gunzip_single_member(&body, inflate::MAX_WHOLE_TEXT) {
            Some(text) => {
                self.compressed_bytes = body.len() as u64;
                self.settings.report.add_compressed_bytes(body.len() as u64);
                self.input = Input::Text { text, fed: 0 };
            }
            None => self.input = Input::Chunks(futures::stream::iter([Ok(body)]).boxed()),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), Fault> {
        self.compressed_bytes += bytes.len() as u64;
        self.settings
            .report
            .add_compressed_bytes(bytes.len() as u64);
        self.gunzip.write_all(bytes).map_err(|e| self.gzip_error(e))
    }

    fn finish(&mut self) -> Result<(), Fault> {
        self.finished = true;
        self.settings.report.object_finished();
        if self.compressed_bytes == 0 {
            return Err(bad_object(
                &self.object,
                "is empty (0 bytes); a flow-log object is gzip data".to_string(),
            ));
        }
        if let Input::Chunks(_) = self.input {
            self.gunzip.try_finish().map_err(|e| self.gzip_error(e))?;
        }
        let decoder = &mut self.gunzip.get_mut().decoder;
        let finished = decoder.finish();
        if finished.is_ok()
            && let Some(findings) = &self.findings
        {
            let mut findings = findings.lock().unwrap_or_else(|e| e.into_inner());
            findings.facts.records = decoder.rows_decoded();
            findings.complete = true;
        }
        finished.map_err(|e| self.decoder_fault(e))
    }

    /// Classifies an error the decoder raised: before the header is read
    /// the object is bad; past it only strict mode's malformed lines fail.
    fn decoder_fault(&mut self, error: DataFusionError) -> Fault {
        if Error::find(&error).is_some() {
            // Ours, such as a strict-mode malformed line: it names the object.
            return Fault::Failed(error);
        }
        let message = match error {
            DataFusionError::Execution(message) => message,
            other => other.to_string(),
        };
        if self.gunzip.get_mut().decoder.header().is_some() {
            Fault::Failed(DataFusionError::Execution(format!(
                "{}: {message}",
                self.object
            )))
        } else {
            bad_object(&self.object, format!("is not a flow-log object: {message}"))
        }
    }

    /// Gives up on a bad object: the rows decoded before the fault are
    /// still returned, the rest is left unread, and the report names it.
    fn skip(&mut self, error: DataFusionError) {
        self.finished = true;
        if let Some(findings) = &self.findings {
            findings.lock().unwrap_or_else(|e| e.into_inner()).complete = false;
        }
        let decoder = &mut self.gunzip.get_mut().decoder;
        decoder.flush_rows();
        let records = decoder.rows_decoded();
        let reason = match Error::find(&error) {
            Some(ours) => ours.to_string(),
            None => error.to_string(),
        };
        self.settings
            .report
            .skipped_object(&self.object, reason, records);
    }

    /// Accounts records and checks the header once it has been read.
    fn after_step(&mut self) {
        let decoder = &self.gunzip.get_ref().decoder;
        let rows = decoder.rows_decoded();
        self.settings
            .report
            .add_records(rows - self.records_reported);
        self.records_read
            .add((rows - self.records_reported) as usize);
        self.records_reported = rows;
        if !self.header_checked
            && let Some(header) = decoder.header()
        {
            self.header_checked = true;
            report_header(
                &self.object,
                header.tokens(),
                &self.table_columns,
                &self.settings,
            );
            if let Some(findings) = &self.findings {
                let mut findings = findings.lock().unwrap_or_else(|e| e.into_inner());
                findings.facts.header = header.tokens().to_vec();
            }
        }
    }

    fn gzip_error(&mut self, error: std::io::Error) -> Fault {
        if let Some(e) = self.gunzip.get_mut().error.take() {
            return self.decoder_fault(e);
        }
        bad_object(
            &self.object,
            format!("is not valid gzip data (corrupt or truncated): {error}"),
        )
    }
}

/// Whether a GET's object is the version the listing gave: the same size
/// and ETag, or, where either lacks an ETag, modification time. (S3's
/// listing and GET give times at different precisions; its ETags agree.)
fn same_version(got: &object_store::ObjectMeta, listed: &object_store::ObjectMeta) -> bool {
    got.size == listed.size
        && match (&got.e_tag, &listed.e_tag) {
            (Some(got), Some(listed)) => got == listed,
            _ => got.last_modified == listed.last_modified,
        }
}

/// Tells the report which fields an object's header records, and names
/// those the table has no column for.
fn report_header(
    object: &str,
    fields: &[String],
    table_columns: &SchemaRef,
    settings: &ReadSettings,
) {
    settings
        .report
        .fields_recorded(fields.iter().map(String::as_str));
    for field in fields {
        let name = crate::catalogue::column_name(field);
        if table_columns.index_of(&name).is_err() {
            settings.report.hidden_field(object, field);
        }
    }
}

impl FlowLogOpener {
    /// Reports what reading the object found besides its records, as the
    /// cache kept it: its header's fields and its malformed lines (under
    /// `strict`, the first of them is the error).
    pub(crate) fn report_facts(&self, object: &str, facts: &ObjectFacts) -> Result<()> {
        report_header(object, &facts.header, &self.table_columns, &self.settings);
        let rejects = ReportRejects::new(object, &self.settings);
        for reject in &facts.rejects {
            rejects.kept(reject)?;
        }
        Ok(())
    }

    /// Counts records read, in the scan's metrics and the report.
    pub(crate) fn count_records(&self, records: u64) {
        self.records_read.add(records as usize);
        self.settings.report.add_records(records);
    }
}

/// Why reading an object stopped.
enum Fault {
    /// The object itself is bad (not gzip, truncated, empty, no header):
    /// [`crate::FlowLogOptions::skip_bad_objects`] may pass over it.
    BadObject(DataFusionError),
    /// Anything else, such as a strict-mode malformed line.
    Failed(DataFusionError),
}
