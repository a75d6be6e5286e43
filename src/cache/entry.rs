//! One cached object on disk: files named by the object's identity, its
//! `facts` (what reading the object found besides its records: the
//! header's fields, the malformed lines, how many records) and one Arrow
//! IPC file per column, each holding every record of the object in
//! order (text as `Utf8`, uncompressed: see [`stored_type`]). Columns are added as queries first read them, so an entry holds
//! the columns asked of it so far.
//!
//! Every file is written under a temporary name and renamed into place,
//! so a reader sees whole files or none; a data file counts only once the
//! manifest names it (with its length). Two processes adding columns to
//! one entry at once each write a data file; the last manifest written
//! names only its own, and the other is removed with the entry in time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, StringArray, StringViewArray,
};
use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::convert::fb_to_schema;
use datafusion::arrow::ipc::reader::{FileDecoder, read_footer_length};
use datafusion::arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use datafusion::arrow::ipc::{Block, root_as_footer};

/// The suffix of the file that marks an entry as usable.
pub(super) const FACTS_SUFFIX: &str = "facts";

/// The first line of a facts file; another version's entries are not read.
const FACTS_VERSION: &str = "flowsql-cache-facts 1";

/// What reading an object found besides its records, replayed when the
/// object is read from the cache, so warnings, the scan report and
/// `flowsql_rejects` are the same as from the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ObjectFacts {
    /// The header line's fields, in order.
    pub header: Vec<String>,
    /// The malformed lines, in order.
    pub rejects: Vec<KeptReject>,
    /// Well-formed records: the rows of every column file.
    pub records: u64,
}

/// A malformed line as the scan report keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptReject {
    /// 1-based line number in the object (the header is line 1).
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The line's text as the report keeps it.
    pub text: String,
}

impl ObjectFacts {
    fn to_text(&self) -> String {
        let mut text = format!("{FACTS_VERSION}\nrecords {}\n", self.records);
        text.push_str("header");
        for field in &self.header {
            text.push('\t');
            text.push_str(&escape(field));
        }
        text.push('\n');
        for reject in &self.rejects {
            text.push_str(&format!(
                "reject\t{}\t{}\t{}\n",
                reject.line,
                escape(&reject.reason),
                escape(&reject.text)
            ));
        }
        text.push_str("end\n");
        text
    }

    /// The facts in `text`, or `None` if it is not a whole facts file of
    /// this version.
    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != FACTS_VERSION {
            return None;
        }
        let records = lines.next()?.strip_prefix("records ")?.parse().ok()?;
        let header_line = lines.next()?;
        let header = match header_line.strip_prefix("header") {
            Some("") => Vec::new(),
            Some(fields) => fields
                .strip_prefix('\t')?
                .split('\t')
                .map(unescape)
                .collect::<Option<_>>()?,
            None => return None,
        };
        let mut rejects = Vec::new();
        for line in lines {
            if line == "end" {
                return Some(Self {
                    header,
                    rejects,
                    records,
                });
            }
            let mut parts = line.strip_prefix("reject\t")?.split('\t');
            rejects.push(KeptReject {
                line: parts.next()?.parse().ok()?,
                reason: unescape(parts.next()?)?,
                text: unescape(parts.next()?)?,
            });
        }
        None
    }
}

/// Backslash, tab, line feed and carriage return as `\\`, `\t`, `\n`, `\r`.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\t' => escaped.push_str("\\t"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn unescape(text: &str) -> Option<String> {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            plain.push(c);
            continue;
        }
        plain.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(plain)
}

/// What an entry holds: the object's facts and the data files written
/// so far, each with the columns it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub facts: ObjectFacts,
    files: Vec<DataFile>,
}

/// One data file of an entry: `{entry}.{tag}.arrow`, of `bytes`, holding
/// `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DataFile {
    tag: String,
    bytes: u64,
    columns: Vec<String>,
}

impl Manifest {
    fn to_text(&self) -> String {
        let mut text = self.facts.to_text();
        for file in &self.files {
            text.push_str(&format!("file\t{}\t{}", file.tag, file.bytes));
            for column in &file.columns {
                text.push('\t');
                text.push_str(&escape(column));
            }
            text.push('\n');
        }
        text
    }

    fn parse(text: &str) -> Option<Self> {
        let end = text.find("\nend\n")? + "\nend\n".len();
        let facts = ObjectFacts::parse(&text[..end])?;
        let mut files = Vec::new();
        for line in text[end..].lines() {
            let mut parts = line.strip_prefix("file\t")?.split('\t');
            let tag = parts.next()?.to_string();
            if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return None;
            }
            files.push(DataFile {
                tag,
                bytes: parts.next()?.parse().ok()?,
                columns: parts.map(unescape).collect::<Option<_>>()?,
            });
        }
        Some(Self { facts, files })
    }

    fn file_of(&self, column: &str) -> Option<&DataFile> {
        self.files
            .iter()
            .find(|f| f.columns.iter().any(|c| c == column))
    }

    /// The columns of `schema` (index, name) no data file holds.
    pub(crate) fn missing(&self, schema: &Schema) -> Vec<(usize, String)> {
        schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| self.file_of(f.name()).is_none())
            .map(|(i, f)| (i, f.name().clone()))
            .collect()
    }
}

/// One object's cached files in a shard folder shared with other entries
/// (a folder, or a file, per entry and column would cost more: creating
/// files dominated a cold scan's cost): `{name}.facts`, the manifest
/// ([`Manifest`]: facts and which data file holds which columns), and
/// `{name}.{tag}.arrow`, one data file per read that added columns.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    shard: PathBuf,
    name: String,
}

impl Entry {
    pub(super) fn new(shard: PathBuf, name: String) -> Self {
        Self { shard, name }
    }

    fn manifest_path(&self) -> PathBuf {
        self.shard.join(format!("{}.{FACTS_SUFFIX}", self.name))
    }

    fn data_path(&self, tag: &str) -> PathBuf {
        self.shard.join(format!("{}.{tag}.arrow", self.name))
    }

    /// The manifest of a filled entry; `Ok(None)` if it was never filled,
    /// or cannot be read (a cache folder that cannot be used is not a
    /// damaged entry: the object is read from its source).
    pub(crate) fn manifest(&self) -> Result<Option<Manifest>, String> {
        match std::fs::read_to_string(self.manifest_path()) {
            Ok(text) => Manifest::parse(&text)
                .map(Some)
                .ok_or_else(|| "its facts file is damaged".to_string()),
            Err(_) => Ok(None),
        }
    }

    /// Removes the entry (a damaged one); a reader that opened its files
    /// keeps them.
    pub(crate) fn remove(&self) {
        let prefix = format!("{}.", self.name);
        if let Ok(files) = std::fs::read_dir(&self.shard) {
            for file in files.flatten() {
                if file.file_name().to_string_lossy().starts_with(&prefix) {
                    drop(std::fs::remove_file(file.path()));
                }
            }
        }
    }

    /// Marks the entry as just used, for least-recently-used eviction.
    pub(crate) fn touch(&self) {
        if let Ok(file) = File::open(self.manifest_path()) {
            // An entry whose time cannot be set is only evicted sooner.
            drop(file.set_modified(std::time::SystemTime::now()));
        }
    }

    /// Creates one of the entry's files, and its shard folder if need be.
    fn create(&self, path: &Path) -> std::io::Result<File> {
        match File::create(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.shard)?;
                File::create(path)
            }
            created => created,
        }
    }

    /// Opens the data files that hold `schema`'s columns (every one must
    /// be held: see [`Manifest::missing`]), checking their types; `None`
    /// if one is gone (removed by a sweep while the entry was being
    /// filled: the columns are read again, not reported as damaged).
    pub(crate) fn open(
        &self,
        manifest: &Manifest,
        schema: &Schema,
    ) -> Result<Option<Vec<FileCursor>>, String> {
        let mut cursors: Vec<FileCursor> = Vec::new();
        for (index, field) in schema.fields().iter().enumerate() {
            let file = manifest
                .file_of(field.name())
                .ok_or_else(|| format!("it lacks column {}", field.name()))?;
            let at = match cursors.iter().position(|c| c.tag == file.tag) {
                Some(at) => at,
                None => match self.open_data(file)? {
                    Some(cursor) => {
                        cursors.push(cursor);
                        cursors.len() - 1
                    }
                    None => return Ok(None),
                },
            };
            let cursor = &mut cursors[at];
            let stored = Arc::clone(&cursor.schema);
            let position = stored
                .index_of(field.name())
                .map_err(|_| format!("its data file {} lacks column {}", file.tag, field.name()))?;
            if stored.field(position).data_type() != &stored_type(field.data_type()) {
                return Err(format!(
                    "its column {} does not hold {}",
                    field.name(),
                    field.data_type()
                ));
            }
            cursor
                .columns
                .push((position, index, field.data_type().clone()));
        }
        Ok(Some(cursors))
    }

    fn open_data(&self, data: &DataFile) -> Result<Option<FileCursor>, String> {
        let tag = &data.tag;
        let damaged = |e: &dyn std::fmt::Display| format!("its data file {tag} is damaged: {e}");
        let file = match File::open(self.data_path(tag)) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("its data file {tag} cannot be opened: {e}")),
        };
        // SAFETY: a data file is written once, under a name no other
        // writer uses, and only read or unlinked after its manifest names
        // it; an unlinked file stays mapped whole. So the mapping does not
        // change under the reader (unless something outside flowsql
        // rewrites the cache's files in place).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| damaged(&e))?;
        let bytes = map.len();
        if bytes as u64 != data.bytes {
            return Err(damaged(&format_args!(
                "{bytes} bytes where {} were written",
                data.bytes
            )));
        }
        let start =
            std::ptr::NonNull::new(map.as_ptr().cast_mut()).ok_or_else(|| damaged(&"empty"))?;
        // SAFETY: `start` and `bytes` describe `map`, which the buffer owns.
        let buffer = unsafe { Buffer::from_custom_allocation(start, bytes, Arc::new(map)) };
        let (schema, decoder, blocks) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_footer(&buffer)))
                .map_err(|_| damaged(&"a malformed footer"))?
                .map_err(|e| damaged(&e))?;
        Ok(Some(FileCursor {
            tag: tag.to_string(),
            buffer,
            schema,
            decoder,
            blocks,
            next_block: 0,
            columns: Vec::new(),
            current: Vec::new(),
            rows: 0,
            offset: 0,
        }))
    }

    /// A writer of `columns` (those the entry lacks: index in the read's
    /// batches, name) from the batches of a read of the object.
    pub(crate) fn writer(&self, columns: Vec<(usize, String)>, schema: SchemaRef) -> EntryWriter {
        EntryWriter {
            entry: self.clone(),
            columns,
            schema,
            data: None,
            failed: false,
        }
    }
}

/// How a column of `data_type` is stored: text as `Utf8` (offsets and
/// bytes: smaller than views, and checked as UTF-8 in one pass when read),
/// numbers as they are. No compression: reading a cached column is then a
/// copy and a check, several times faster than with LZ4.
fn stored_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        other => other.clone(),
    }
}

/// An IPC file's schema, decoder (its dictionaries read) and record
/// batch blocks, each checked to lie within the file.
fn read_footer(file: &Buffer) -> Result<(SchemaRef, FileDecoder, Vec<Block>), ArrowError> {
    let bad = |what: &str| ArrowError::IpcError(what.to_string());
    if file.len() < 10 {
        return Err(bad("shorter than an IPC file's trailer"));
    }
    let trailer = file.len() - 10;
    let footer_length = read_footer_length(file[trailer..].try_into().expect("10 bytes"))?;
    let footer_start = trailer
        .checked_sub(footer_length)
        .ok_or_else(|| bad("its footer is longer than the file"))?;
    let footer = root_as_footer(&file[footer_start..trailer]).map_err(|e| bad(&e.to_string()))?;
    let schema = Arc::new(fb_to_schema(
        footer.schema().ok_or_else(|| bad("no schema"))?,
    ));
    let in_file = |block: &Block| -> Result<Buffer, ArrowError> {
        let start = usize::try_from(block.offset()).map_err(|_| bad("a negative offset"))?;
        let length = usize::try_from(block.metaDataLength())
            .ok()
            .zip(usize::try_from(block.bodyLength()).ok())
            .and_then(|(meta, body)| meta.checked_add(body))
            .ok_or_else(|| bad("a block of impossible length"))?;
        match start.checked_add(length) {
            Some(end) if end <= footer_start => Ok(file.slice_with_length(start, length)),
            _ => Err(bad("a block beyond the file's data")),
        }
    };
    let mut decoder = FileDecoder::new(Arc::clone(&schema), footer.version());
    for block in footer.dictionaries().iter().flatten() {
        decoder.read_dictionary(block, &in_file(block)?)?;
    }
    let blocks: Vec<Block> = footer.recordBatches().iter().flatten().copied().collect();
    for block in &blocks {
        in_file(block)?;
    }
    Ok((schema, decoder, blocks))
}

/// `text` as views over its own bytes: a view per value, made in one
/// pass (arrow's cast goes through a builder, at several times the cost),
/// with the bytes shared, not copied.
fn text_as_views(text: &StringArray) -> StringViewArray {
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
    // SAFETY: `text` is a valid Utf8 array (the IPC reader validated it:
    // offsets in bounds and on character boundaries, bytes UTF-8), so each
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

/// Reads one data file a batch at a time and hands out its rows in runs
/// of any length, so columns from data files written by different reads
/// (with different batch boundaries) line up.
pub(crate) struct FileCursor {
    tag: String,
    /// The whole file, mapped.
    buffer: Buffer,
    schema: SchemaRef,
    decoder: FileDecoder,
    blocks: Vec<Block>,
    next_block: usize,
    /// The columns read from this file: (position in the file, position in
    /// the output, the table's type).
    columns: Vec<(usize, usize, DataType)>,
    /// The current batch's columns, in the order of `columns`.
    current: Vec<ArrayRef>,
    rows: usize,
    offset: usize,
}

impl FileCursor {
    /// Rows left in the current batch, reading the next one if it is
    /// spent; 0 at the end of the file.
    fn available(&mut self) -> Result<usize, ArrowError> {
        while self.offset >= self.rows {
            let Some(block) = self.blocks.get(self.next_block) else {
                return Ok(0);
            };
            self.next_block += 1;
            let length = block.metaDataLength() as usize + block.bodyLength() as usize;
            let data = self
                .buffer
                .slice_with_length(block.offset() as usize, length);
            // arrow's decoder asserts on some malformed blocks: a damaged
            // file must not take the process down.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.decoder.read_record_batch(block, &data)
            }))
            .map_err(|_| ArrowError::IpcError("a malformed block".to_string()))?;
            let batch =
                decoded?.ok_or_else(|| ArrowError::IpcError("an empty block".to_string()))?;
            self.current = self
                .columns
                .iter()
                .map(|(position, _, data_type)| {
                    let column = batch.column(*position);
                    match (column.data_type(), data_type) {
                        (stored, wanted) if stored == wanted => Ok(Arc::clone(column)),
                        (DataType::Utf8, DataType::Utf8View) => {
                            Ok(Arc::new(text_as_views(column.as_string::<i32>())) as ArrayRef)
                        }
                        (_, wanted) => cast(column, wanted),
                    }
                })
                .collect::<Result<_, _>>()?;
            self.rows = batch.num_rows();
            self.offset = 0;
        }
        Ok(self.rows - self.offset)
    }

    /// The next `rows` rows of each column, into their output places.
    fn take(&mut self, rows: usize, out: &mut [Option<ArrayRef>]) {
        for ((_, output, _), column) in self.columns.iter().zip(&self.current) {
            out[*output] = Some(column.slice(self.offset, rows));
        }
        self.offset += rows;
    }
}

/// The next batch of up to `batch_size` rows from `files` (the columns in
/// `schema`'s order); `None` at the end. With no columns (a `count(*)`),
/// rows come from `rows_left`, the records the facts give.
pub(crate) fn next_batch(
    files: &mut [FileCursor],
    schema: &SchemaRef,
    batch_size: usize,
    rows_left: &mut u64,
) -> Result<Option<RecordBatch>, String> {
    let mut rows = usize::try_from(*rows_left)
        .unwrap_or(usize::MAX)
        .min(batch_size);
    for file in files.iter_mut() {
        let available = file.available().map_err(|e| e.to_string())?;
        rows = rows.min(available);
    }
    if rows == 0 {
        if *rows_left > 0 {
            return Err(format!("its columns end {rows_left} records early"));
        }
        for file in files.iter_mut() {
            if file.available().map_err(|e| e.to_string())? > 0 {
                return Err("its columns hold more records than its facts say".to_string());
            }
        }
        return Ok(None);
    }
    let mut arrays = vec![None; schema.fields().len()];
    for file in files.iter_mut() {
        file.take(rows, &mut arrays);
    }
    let arrays = arrays
        .into_iter()
        .map(|a| a.ok_or_else(|| "a column has no data file".to_string()))
        .collect::<Result<_, _>>()?;
    *rows_left -= rows as u64;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map(Some)
    .map_err(|e| e.to_string())
}

/// Writes the columns an entry lacks, as one data file, while the object
/// is read from its source; [`EntryWriter::commit`] adds the file to the
/// manifest once the whole object has been read (until then no reader
/// looks at it). Dropped without a commit, it leaves nothing.
pub(crate) struct EntryWriter {
    entry: Entry,
    /// Each missing column's index in the read's batches, and its name.
    columns: Vec<(usize, String)>,
    schema: SchemaRef,
    /// Started by the first batch (or the commit, if none came).
    data: Option<DataWriter>,
    /// A write failed: the entry is left as it was.
    failed: bool,
}

struct DataWriter {
    tag: String,
    /// Written here, renamed to `path` at the commit.
    temporary: PathBuf,
    path: PathBuf,
    writer: FileWriter<BufWriter<File>>,
}

impl EntryWriter {
    /// Adds one batch of the read (all its columns; only the missing ones
    /// are kept). A failure to write stops the filling, not the query.
    pub(crate) fn write(&mut self, batch: &RecordBatch) {
        if self.failed || self.columns.is_empty() {
            return;
        }
        if self.try_write(batch).is_err() {
            self.fail();
        }
    }

    fn try_write(&mut self, batch: &RecordBatch) -> Result<(), String> {
        if self.data.is_none() {
            self.data = Some(self.start()?);
        }
        let data = self.data.as_mut().expect("started above");
        let schema = Arc::clone(data.writer.schema());
        let columns = self
            .columns
            .iter()
            .zip(schema.fields())
            .map(|((index, _), field)| {
                let column = batch.column(*index);
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    cast(column, field.data_type())
                }
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let stored = RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())?;
        data.writer.write(&stored).map_err(|e| e.to_string())
    }

    fn start(&self) -> Result<DataWriter, String> {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|(index, _)| {
                let column = self.schema.field(*index);
                Field::new(
                    column.name(),
                    stored_type(column.data_type()),
                    column.is_nullable(),
                )
            })
            .collect();
        let tag = unique_tag();
        let path = self.entry.data_path(&tag);
        let temporary = temporary_name(&path);
        let file = self.entry.create(&temporary).map_err(|e| e.to_string())?;
        Ok(DataWriter {
            tag,
            temporary,
            path,
            writer: FileWriter::try_new_with_options(
                BufWriter::with_capacity(256 * 1024, file),
                &Schema::new(fields),
                IpcWriteOptions::default(),
            )
            .map_err(|e| e.to_string())?,
        })
    }

    /// Gives up filling: the entry is left as it was.
    fn fail(&mut self) {
        self.failed = true;
        self.remove_data();
    }

    fn remove_data(&mut self) {
        if let Some(data) = self.data.take() {
            drop(std::fs::remove_file(&data.temporary));
            drop(std::fs::remove_file(&data.path));
        }
    }

    /// Finishes the data file and adds it to the manifest (writing the
    /// manifest, with `facts`, if there is none); returns the bytes
    /// written. Nothing is committed if a write failed.
    pub(crate) fn commit(mut self, facts: &ObjectFacts) -> u64 {
        if self.failed {
            return 0;
        }
        if !self.columns.is_empty() && self.data.is_none() {
            match self.start() {
                Ok(data) => self.data = Some(data),
                Err(_) => {
                    self.fail();
                    return 0;
                }
            }
        }
        match self.try_commit(facts) {
            Ok(bytes) => bytes,
            Err(_) => {
                self.fail();
                0
            }
        }
    }

    fn try_commit(&mut self, facts: &ObjectFacts) -> Result<u64, String> {
        let mut bytes = 0;
        // Another process may have filled the entry meanwhile: its
        // manifest is kept and this read's file added to it.
        let mut manifest = self
            .entry
            .manifest()
            .ok()
            .flatten()
            .unwrap_or_else(|| Manifest {
                facts: facts.clone(),
                files: Vec::new(),
            });
        // Another read of the same object version found the same facts;
        // if not (an object rewritten in place keeping its size, time and
        // ETag), its columns are not put beside this read's.
        if manifest.facts != *facts {
            return Err("the object's facts differ from its entry's".to_string());
        }
        // Files a sweep removed are forgotten.
        manifest
            .files
            .retain(|file| self.entry.data_path(&file.tag).exists());
        if let Some(data) = &mut self.data {
            data.writer.finish().map_err(|e| e.to_string())?;
            let inner = data.writer.get_mut();
            inner.flush().map_err(|e| e.to_string())?;
            let written = inner.get_ref().metadata().map_err(|e| e.to_string())?.len();
            std::fs::rename(&data.temporary, &data.path).map_err(|e| e.to_string())?;
            bytes += written;
            manifest.files.push(DataFile {
                tag: data.tag.clone(),
                bytes: written,
                columns: self.columns.iter().map(|(_, name)| name.clone()).collect(),
            });
        }
        let text = manifest.to_text();
        let path = self.entry.manifest_path();
        let temporary = temporary_name(&path);
        self.entry
            .create(&temporary)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|e| e.to_string())?;
        std::fs::rename(&temporary, &path).map_err(|e| e.to_string())?;
        bytes += text.len() as u64;
        // Committed: the data file stays.
        self.data = None;
        Ok(bytes)
    }
}

impl Drop for EntryWriter {
    fn drop(&mut self) {
        self.remove_data();
    }
}

/// A tag no other writer, in this process or another, uses at once.
fn unique_tag() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{n}-{nanos:x}", std::process::id())
}

/// A name in the same folder that no other process writes to, and that
/// no reader looks for.
fn temporary_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", unique_tag()));
    path.with_file_name(name)
}

/// Whether a file name is one [`temporary_name`] made.
pub(super) fn is_temporary(name: &str) -> bool {
    name.contains(".partial-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_survive_their_text_form() {
        let facts = ObjectFacts {
            header: vec!["version".into(), "weird\tfield\\".into()],
            rejects: vec![KeptReject {
                line: 7,
                reason: "expected 2 fields as the header says, found 3".into(),
                text: "2 a\tb\r \\n".into(),
            }],
            records: 12,
        };
        assert_eq!(ObjectFacts::parse(&facts.to_text()), Some(facts.clone()));
        let empty = ObjectFacts::default();
        assert_eq!(ObjectFacts::parse(&empty.to_text()), Some(empty));
        let text = facts.to_text();
        // A facts file cut short is not taken for a whole one.
        assert_eq!(ObjectFacts::parse(&text[..text.len() - 4]), None);
        assert_eq!(
            ObjectFacts::parse(&text.replace("cache-facts 1", "cache-facts 0")),
            None
        );
    }

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

    #[test]
    fn a_manifest_survives_its_text_form() {
        let manifest = Manifest {
            facts: ObjectFacts {
                header: vec!["version".into()],
                rejects: Vec::new(),
                records: 3,
            },
            files: vec![
                DataFile {
                    tag: "12-0-ff".into(),
                    bytes: 1000,
                    columns: vec!["srcaddr".into(), "odd\tname".into()],
                },
                DataFile {
                    tag: "12-1-ff".into(),
                    bytes: 200,
                    columns: vec!["bytes".into()],
                },
            ],
        };
        let text = manifest.to_text();
        let back = Manifest::parse(&text).unwrap();
        assert_eq!(back, manifest);
        assert_eq!(back.file_of("bytes").unwrap().tag, "12-1-ff");
        let schema = Schema::new(vec![
            Field::new("bytes", DataType::Int64, true),
            Field::new("action", DataType::Utf8View, true),
        ]);
        assert_eq!(back.missing(&schema), vec![(1, "action".to_string())]);
        assert_eq!(
            Manifest::parse(&text.replace("file\t12-0-ff", "file\t../x")),
            None
        );
    }
}
