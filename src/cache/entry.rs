//! One cached object on disk: files named by the object's identity, its
//! `facts` (what reading the object found besides its records: the
//! header's fields, the malformed lines, how many records) and Arrow IPC
//! data files. The columns a read added are kept for every record of the
//! object, in order, in one data file, or for a large object in several
//! (segments of about 8 MiB of columns, each with the next records), each
//! uncompressed and in the narrowest types its own values allow (text as
//! a dictionary, as codes or as `Utf8`: see [`super::column`]). Columns
//! are added as queries first read them, so an entry holds the columns
//! asked of it so far.
//!
//! A read whose columns fit one segment puts that data file inside the
//! facts file, after its text, so most entries are one file: creating
//! and renaming files is much of what a fill costs beyond decoding, and
//! opening them much of what a warm read costs. Adding columns to such
//! an entry writes its facts file again, with the data it held.
//!
//! Every file is written under a temporary name and renamed into place,
//! so a reader sees whole files or none; a data file counts only once the
//! manifest names it (with its length). Two processes adding columns to
//! one entry at once each write their data; the last manifest written
//! names only its own, and the others' separate files are removed with
//! the entry in time.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_empty_array};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::convert::fb_to_schema;
use datafusion::arrow::ipc::reader::{FileDecoder, read_footer_length};
use datafusion::arrow::ipc::writer::{DictionaryHandling, FileWriter, IpcWriteOptions};
use datafusion::arrow::ipc::{Block, root_as_footer};

use super::column::{DictionaryViews, Keeping, as_read, as_table_column, can_hold};
use crate::text_codes::PassedOn;

/// The suffix of the file that marks an entry as usable.
pub(super) const FACTS_SUFFIX: &str = "facts";

/// Data files (and facts files) up to this size are read into memory;
/// larger ones are mapped. Mapping a small file costs more than copying it: its page
/// faults, and unmapping it, which interrupts every other core to flush
/// its address translations.
const READ_AT_MOST: u64 = 1 << 20;

/// The first line of a facts file; another version's entries are not read.
const FACTS_VERSION: &str = "flowsql-cache-facts 2";

/// Where the data inside a facts file begins: after its text, a NUL, and
/// zeros up to a multiple of this (so its arrays stay aligned).
const INLINE_ALIGN: usize = 64;

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
            // A NUL ends a facts file's text (its data follows).
            '\0' => escaped.push_str("\\0"),
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
            '0' => '\0',
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
    /// Where the data inside the facts file lies, which the segments
    /// with an offset are in.
    inline: InlineData,
}

/// The data inside a facts file, after its text: the file, opened when
/// its text was read, and where the data starts. A reader reads only
/// the segments it needs (a count needs none).
#[derive(Debug, Clone, Default)]
struct InlineData {
    file: Option<Arc<File>>,
    start: u64,
}

/// Two manifests are the same if their text is: the data's place aside.
impl PartialEq for InlineData {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for InlineData {}

impl InlineData {
    /// The `bytes` bytes at `at` of the data, or `None` if they are not
    /// all there (a file cut short).
    fn read(&self, at: u64, bytes: u64) -> std::io::Result<Option<Buffer>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let Some(from) = self.start.checked_add(at) else {
            return Ok(None);
        };
        // Reads or maps no further than the file's end.
        let data = read_or_map(file, from, bytes)?;
        // Short: a file cut short, or changed under the reader.
        // Longer: the byte after is the next segment's, not this one's.
        Ok((data.len() as u64 >= bytes).then(|| data.slice_with_length(0, bytes as usize)))
    }
}

/// The columns one read added to an entry: `columns` for every record,
/// in one or more data files (`segments`), each holding the next records
/// in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DataFile {
    columns: Vec<String>,
    segments: Vec<Segment>,
}

/// One data file of an entry, of `bytes`: `{entry}.{tag}.arrow`, or,
/// `at` an offset, inside the facts file's data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    tag: String,
    bytes: u64,
    at: Option<u64>,
}

impl Manifest {
    fn to_text(&self) -> String {
        let mut text = self.facts.to_text();
        for file in &self.files {
            let (first, rest) = file.segments.split_first().expect("a file has a segment");
            match first.at {
                // Inside the facts file: only a file of one segment.
                Some(at) => text.push_str(&format!("inline\t{}\t{at}\t{}", first.tag, first.bytes)),
                None => text.push_str(&format!("file\t{}\t{}", first.tag, first.bytes)),
            }
            for column in &file.columns {
                text.push('\t');
                text.push_str(&escape(column));
            }
            text.push('\n');
            for segment in rest {
                text.push_str(&format!("segment\t{}\t{}\n", segment.tag, segment.bytes));
            }
        }
        text
    }

    fn parse(text: &str) -> Option<Self> {
        let end = text.find("\nend\n")? + "\nend\n".len();
        let facts = ObjectFacts::parse(&text[..end])?;
        let mut files: Vec<DataFile> = Vec::new();
        for line in text[end..].lines() {
            let (kind, rest) = line.split_once('\t')?;
            let mut parts = rest.split('\t');
            let tag = parts.next()?.to_string();
            if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return None;
            }
            let at = match kind {
                "inline" => Some(parts.next()?.parse().ok()?),
                _ => None,
            };
            let segment = Segment {
                tag,
                bytes: parts.next()?.parse().ok()?,
                at,
            };
            match kind {
                "file" | "inline" => files.push(DataFile {
                    columns: parts.map(unescape).collect::<Option<_>>()?,
                    segments: vec![segment],
                }),
                "segment" if parts.next().is_none() => match files.last_mut()? {
                    file if file.segments[0].at.is_none() => file.segments.push(segment),
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some(Self {
            facts,
            files,
            inline: InlineData::default(),
        })
    }

    /// Writes the facts file's bytes to `sink`: the text, and after it
    /// `data`, the data the segments with an offset are in (written as
    /// it is, not copied after the text first); returns the bytes
    /// written.
    fn write_file(&self, data: &[u8], sink: &mut impl Write) -> std::io::Result<u64> {
        let mut text = self.to_text().into_bytes();
        if data.is_empty() {
            sink.write_all(&text)?;
            return Ok(text.len() as u64);
        }
        text.push(0);
        text.resize(data_start(text.len() - 1) as usize, 0);
        sink.write_all(&text)?;
        sink.write_all(data)?;
        Ok((text.len() + data.len()) as u64)
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
/// ([`Manifest`]: facts and which data files hold which columns) with
/// the data of each read that kept its columns in one segment, and
/// `{name}.{tag}.arrow`, the segments of a read that needed several.
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
        let Ok(file) = File::open(self.manifest_path()) else {
            return Ok(None);
        };
        // Its text, read until the NUL that ends it or the file's end;
        // the data after it is read as segments need it.
        let mut head = Vec::new();
        let mut want: usize = 16 << 10;
        let text_end = loop {
            let read = (&file)
                .take((want - head.len()) as u64)
                .read_to_end(&mut head);
            if read.is_err() {
                return Ok(None);
            }
            if let Some(nul) = head.iter().position(|&b| b == 0) {
                break Some(nul);
            }
            if head.len() < want {
                break None;
            }
            want *= 4;
        };
        let damaged = || "its facts file is damaged".to_string();
        let text =
            std::str::from_utf8(&head[..text_end.unwrap_or(head.len())]).map_err(|_| damaged())?;
        let mut manifest = Manifest::parse(text).ok_or_else(damaged)?;
        if let Some(text_end) = text_end {
            manifest.inline = InlineData {
                file: Some(Arc::new(file)),
                start: data_start(text_end),
            };
        }
        Ok(Some(manifest))
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
            let tag = &file.segments[0].tag;
            let at = match cursors.iter().position(|c| &c.tag == tag) {
                Some(at) => at,
                None => {
                    let mut segments = VecDeque::with_capacity(file.segments.len());
                    for segment in &file.segments {
                        match self.open_data(segment, &manifest.inline)? {
                            Some(opened) => segments.push_back(opened),
                            None => return Ok(None),
                        }
                    }
                    cursors.push(FileCursor::new(tag.clone(), segments));
                    cursors.len() - 1
                }
            };
            let cursor = &mut cursors[at];
            let lacks = |tag: &str| format!("its data file {tag} lacks column {}", field.name());
            let first = &cursor.segments[0];
            let position = first
                .schema
                .index_of(field.name())
                .map_err(|_| lacks(&first.tag))?;
            for segment in &cursor.segments {
                // Every segment has the same columns in the same order.
                if segment.schema.fields().get(position).map(|f| f.name()) != Some(field.name()) {
                    return Err(lacks(&segment.tag));
                }
                if !can_hold(
                    segment.schema.field(position).data_type(),
                    field.data_type(),
                ) {
                    return Err(format!(
                        "its column {} in data file {} does not hold {}",
                        field.name(),
                        segment.tag,
                        field.data_type()
                    ));
                }
            }
            cursor.columns.push((position, index));
            cursor.dictionaries.push(DictionaryViews::default());
        }
        Ok(Some(cursors))
    }

    /// Opens one data file: its own file, or its part of the facts
    /// file's data (`inline`).
    fn open_data(&self, data: &Segment, inline: &InlineData) -> Result<Option<OpenedFile>, String> {
        let tag = &data.tag;
        let damaged = |e: &dyn std::fmt::Display| format!("its data file {tag} is damaged: {e}");
        let buffer = match data.at {
            Some(at) => inline
                .read(at, data.bytes)
                .map_err(|e| damaged(&e))?
                .ok_or_else(|| damaged(&"it ends past its facts file"))?,
            None => {
                let file = match File::open(self.data_path(tag)) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(format!("its data file {tag} cannot be opened: {e}")),
                };
                read_or_map(&file, 0, data.bytes).map_err(|e| damaged(&e))?
            }
        };
        if buffer.len() as u64 != data.bytes {
            return Err(damaged(&format_args!(
                "{} bytes where {} were written",
                buffer.len(),
                data.bytes
            )));
        }
        let (schema, decoder, blocks) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_footer(&buffer)))
                .map_err(|_| damaged(&"a malformed footer"))?
                .map_err(|e| damaged(&e))?;
        Ok(Some(OpenedFile {
            tag: tag.to_string(),
            buffer,
            schema,
            decoder,
            blocks,
        }))
    }

    /// A writer of `columns` (those the entry lacks: index in the read's
    /// batches, name) from the batches of a read of the object.
    pub(crate) fn writer(&self, columns: Vec<(usize, String)>, schema: SchemaRef) -> EntryWriter {
        EntryWriter {
            entry: self.clone(),
            columns,
            schema,
            keeping: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            written: Vec::new(),
            inline: None,
            failed: false,
        }
    }
}

/// Up to `most` bytes of `file` from `from`, fewer at its end. Reads by
/// position, so readers sharing one open file do not move each other's.
#[cfg(unix)]
fn read_at(file: &File, from: u64, most: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0; usize::try_from(most).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < bytes.len() {
        match file.read_at(&mut bytes[filled..], from + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// [`read_at`] where files have no positional read: through the file's
/// own position.
#[cfg(not(unix))]
fn read_at(file: &File, from: u64, most: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut bytes = Vec::new();
    let mut reader = file;
    reader.seek(SeekFrom::Start(from))?;
    reader.take(most).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Where a facts file's data starts, its text ending at `text_end`:
/// after the NUL there, at the next multiple of [`INLINE_ALIGN`].
fn data_start(text_end: usize) -> u64 {
    (text_end + 1).next_multiple_of(INLINE_ALIGN) as u64
}

/// The `bytes` bytes of `file` from `from` (at most one more, so that a
/// data file that grew is found): read if few, mapped if not (see
/// [`READ_AT_MOST`]).
fn read_or_map(file: &File, from: u64, bytes: u64) -> std::io::Result<Buffer> {
    if bytes <= READ_AT_MOST {
        return read_at(file, from, bytes + 1).map(Buffer::from_vec);
    }
    // Only what the file holds is mapped: a page past its end would
    // fault when read. A file cut short then maps short, and is found.
    let held = file.metadata()?.len().saturating_sub(from);
    let length = usize::try_from(bytes.saturating_add(1).min(held)).unwrap_or(usize::MAX);
    if length == 0 {
        return Ok(Buffer::default());
    }
    // SAFETY: an entry's files are written once, under a name no other
    // writer uses, and only read or unlinked (or replaced by a rename)
    // after they are whole; an unlinked file stays mapped whole. So the
    // mapping does not change under the reader (unless something outside
    // flowsql rewrites the cache's files in place).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(from)
            .len(length)
            .map(file)
    }?;
    let Some(start) = std::ptr::NonNull::new(map.as_ptr().cast_mut()) else {
        return Ok(Buffer::default());
    };
    let length = map.len();
    // SAFETY: `start` and `length` describe `map`, which the buffer owns.
    Ok(unsafe { Buffer::from_custom_allocation(start, length, Arc::new(map)) })
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

/// One data file, its footer read.
struct OpenedFile {
    tag: String,
    /// The whole file, read or mapped.
    buffer: Buffer,
    schema: SchemaRef,
    decoder: FileDecoder,
    blocks: Vec<Block>,
}

/// Reads the data files of some columns (one read's segments, in order) a
/// batch at a time and hands out their rows in runs of any length, so
/// columns from data files written by different reads (with different
/// batch boundaries) line up.
pub(crate) struct FileCursor {
    /// The first segment's tag, which names the cursor.
    tag: String,
    /// The segments not yet spent, the one being read first; all are
    /// opened at once, so that a file a sweep removed is found before any
    /// record is read.
    segments: VecDeque<OpenedFile>,
    /// The next batch of the segment being read.
    next_block: usize,
    /// The columns read: (position in every segment, position in the
    /// output).
    columns: Vec<(usize, usize)>,
    /// Each column's dictionary as views, if the segment keeps it as a
    /// dictionary.
    dictionaries: Vec<DictionaryViews>,
    /// The current batch's columns, in the order of `columns`, as
    /// [`Run`] describes them.
    current: Vec<ArrayRef>,
    rows: usize,
    offset: usize,
}

impl FileCursor {
    fn new(tag: String, segments: VecDeque<OpenedFile>) -> Self {
        Self {
            tag,
            segments,
            next_block: 0,
            columns: Vec::new(),
            dictionaries: Vec::new(),
            current: Vec::new(),
            rows: 0,
            offset: 0,
        }
    }

    /// Rows left in the current batch, reading the next one (from the next
    /// segment if this one is spent) if it is spent; 0 at the end of the
    /// last segment.
    fn available(&mut self) -> Result<usize, ArrowError> {
        while self.offset >= self.rows {
            let Some(file) = self.segments.front() else {
                return Ok(0);
            };
            let Some(block) = file.blocks.get(self.next_block) else {
                // A spent segment's buffer or mapping is let go (batches
                // still in use keep what they point into), and the next
                // segment has dictionaries of its own.
                self.segments.pop_front();
                self.next_block = 0;
                self.dictionaries.fill_with(DictionaryViews::default);
                continue;
            };
            self.next_block += 1;
            let length = block.metaDataLength() as usize + block.bodyLength() as usize;
            let data = file
                .buffer
                .slice_with_length(block.offset() as usize, length);
            // arrow's decoder asserts on some malformed blocks: a damaged
            // file must not take the process down.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                file.decoder.read_record_batch(block, &data)
            }))
            .map_err(|_| ArrowError::IpcError("a malformed block".to_string()))?;
            let batch =
                decoded?.ok_or_else(|| ArrowError::IpcError("an empty block".to_string()))?;
            self.current = self
                .columns
                .iter()
                .zip(&mut self.dictionaries)
                .map(|((position, _), dictionary)| as_read(batch.column(*position), dictionary))
                .collect::<Result<_, _>>()?;
            self.rows = batch.num_rows();
            self.offset = 0;
        }
        Ok(self.rows - self.offset)
    }

    /// The next `rows` rows of each column, into their output places.
    fn take(&mut self, rows: usize, out: &mut [Option<ArrayRef>]) {
        for ((_, output), column) in self.columns.iter().zip(&self.current) {
            out[*output] = Some(column.slice(self.offset, rows));
        }
        self.offset += rows;
    }
}

/// A run of an entry's records, each column as the data file keeps it
/// (text as `Utf8` or as a dictionary of views, so that a filter can test
/// it before views are made for every record): see [`Run::into_batch`].
pub(crate) struct Run {
    pub columns: Vec<ArrayRef>,
    pub rows: usize,
}

impl Run {
    /// The run as a batch of `schema`, the table's types; with `coded`,
    /// the columns a grouping above packs and the flag set once the plan
    /// passes their batches on unread (see [`as_table_column`]).
    pub(crate) fn into_batch(
        self,
        schema: &SchemaRef,
        coded: Option<(&[String], &PassedOn)>,
    ) -> Result<RecordBatch, ArrowError> {
        let columns = self
            .columns
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                let passed_on = coded
                    .filter(|(columns, _)| columns.contains(field.name()))
                    .map(|(_, passed_on)| passed_on);
                // A key kept as other than codes (text that is not
                // addresses) has rows that will not be packed.
                if let Some(passed_on) = passed_on
                    && column.data_type() != &DataType::UInt64
                {
                    passed_on.found_key_without_codes();
                }
                as_table_column(column, field.data_type(), passed_on)
            })
            .collect::<Result<_, _>>()?;
        RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )
    }
}

/// The next run of up to `batch_size` records from `files` (the columns
/// in `schema`'s order); `None` at the end. With no columns (a
/// `count(*)`), records come from `rows_left`, the records the facts give.
pub(crate) fn next_run(
    files: &mut [FileCursor],
    schema: &SchemaRef,
    batch_size: usize,
    rows_left: &mut u64,
) -> Result<Option<Run>, String> {
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
    let columns = arrays
        .into_iter()
        .map(|a| a.ok_or_else(|| "a column has no data file".to_string()))
        .collect::<Result<_, _>>()?;
    *rows_left -= rows as u64;
    Ok(Some(Run { columns, rows }))
}

/// Writes the columns an entry lacks while the object is read from its
/// source, as data files of at most about [`PENDING_AT_MOST`] bytes of
/// columns each (segments, each in the narrowest types its own values
/// allow); [`EntryWriter::commit`] adds them to the manifest once the
/// whole object has been read (until then no reader looks at them).
/// Dropped without a commit, it leaves nothing.
pub(crate) struct EntryWriter {
    entry: Entry,
    /// Each missing column's index in the read's batches, and its name.
    columns: Vec<(usize, String)>,
    schema: SchemaRef,
    /// How each of `columns` is kept: chosen by the first batch.
    keeping: Vec<Keeping>,
    /// Batches (their `columns`, as kept) not yet written.
    pending: Vec<Vec<ArrayRef>>,
    pending_bytes: usize,
    /// The segments written so far, in order.
    written: Vec<WrittenSegment>,
    /// The only segment, when there is one: its tag and data, written
    /// inside the facts file at the commit.
    inline: Option<(String, Vec<u8>)>,
    /// A write failed: the entry is left as it was.
    failed: bool,
}

/// The most bytes of kept batches a writer holds before it writes them as
/// a segment. An object's columns usually fit in one (tens of thousands
/// of records); a larger object's segments each keep its addresses as
/// codes unless that segment holds other text, and its keys and integers
/// as narrow as that segment's values allow.
const PENDING_AT_MOST: usize = 8 << 20;

/// A segment written under a temporary name, renamed at the commit.
struct WrittenSegment {
    tag: String,
    temporary: PathBuf,
    path: PathBuf,
    bytes: u64,
}

impl EntryWriter {
    /// Adds one batch of the read (all its columns; only the missing ones
    /// are kept). A failure to write stops the filling, not the query.
    ///
    /// Returns the columns it keeps for which `tested` (given an index in
    /// the batch) says yes, by index, as the record filter can test them
    /// ([`Keeping::testable`]): made from what the writer keeps, they cost
    /// little to test.
    pub(crate) fn write(
        &mut self,
        batch: &RecordBatch,
        tested: impl Fn(usize) -> bool,
    ) -> Vec<(usize, ArrayRef)> {
        if self.failed || self.columns.is_empty() {
            return Vec::new();
        }
        match self.try_write(batch, tested) {
            Ok(testable) => testable,
            Err(_) => {
                self.fail();
                Vec::new()
            }
        }
    }

    fn try_write(
        &mut self,
        batch: &RecordBatch,
        tested: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, ArrayRef)>, String> {
        let kept = if self.keeping.is_empty() {
            let (keeping, kept) = self
                .columns
                .iter()
                .map(|(index, _)| Keeping::choose(batch.column(*index)))
                .collect::<Result<(Vec<_>, Vec<_>), _>>()
                .map_err(|e| e.to_string())?;
            self.keeping = keeping;
            kept
        } else {
            self.columns
                .iter()
                .zip(&mut self.keeping)
                .map(|((index, _), keeping)| keeping.keep(batch.column(*index)))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?
        };
        // Before a segment is written: a dictionary starts afresh then.
        let testable = self
            .columns
            .iter()
            .zip(&mut self.keeping)
            .zip(&kept)
            .filter(|(((index, _), _), _)| tested(*index))
            .filter_map(|(((index, _), keeping), kept)| {
                keeping
                    .testable(kept)
                    .map(|testable| testable.map(|testable| (*index, testable)))
                    .transpose()
            })
            .collect::<Result<_, ArrowError>>()
            .map_err(|e| e.to_string())?;
        self.pending_bytes += kept
            .iter()
            .map(|c| c.get_array_memory_size())
            .sum::<usize>();
        self.pending.push(kept);
        if self.pending_bytes > PENDING_AT_MOST {
            self.write_segment()?;
        }
        Ok(testable)
    }

    /// Writes the pending batches as the next segment, to a file of its
    /// own under a temporary name.
    fn write_segment(&mut self) -> Result<(), String> {
        let tag = unique_tag();
        let path = self.entry.data_path(&tag);
        let temporary = temporary_name(&path);
        let file = self.entry.create(&temporary).map_err(|e| e.to_string())?;
        // A sweep removes temporary files left for an hour: the segments
        // written before are marked as in use too.
        let now = std::time::SystemTime::now();
        for earlier in &self.written {
            File::open(&earlier.temporary)
                .and_then(|file| file.set_modified(now))
                .map_err(|e| e.to_string())?;
        }
        // Named before the first write, so a failure removes it.
        self.written.push(WrittenSegment {
            tag,
            temporary,
            path,
            bytes: 0,
        });
        let sink = self.encode_segment(BufWriter::with_capacity(256 * 1024, file))?;
        let file = sink.into_inner().map_err(|e| e.into_error().to_string())?;
        let bytes = file.metadata().map_err(|e| e.to_string())?.len();
        self.written.last_mut().expect("pushed above").bytes = bytes;
        Ok(())
    }

    /// Keeps the pending batches, the read's only segment, in memory, to
    /// be written inside the facts file.
    fn keep_segment_inline(&mut self) -> Result<(), String> {
        // The columns as kept in memory are about the size written, or
        // larger (integers and keys are narrowed): room for them first
        // spares copying the data each time it outgrows its buffer.
        let room = self.pending_bytes + (64 << 10);
        let data = self.encode_segment(Vec::with_capacity(room))?;
        self.inline = Some((unique_tag(), data));
        Ok(())
    }

    /// The pending batches as an Arrow IPC file written to `sink`, in the
    /// narrowest types their values allow.
    fn encode_segment<W: Write>(&mut self, sink: W) -> Result<W, String> {
        if self.keeping.is_empty() {
            // An object without records: its columns' types as if empty.
            self.keeping = self
                .columns
                .iter()
                .map(|(index, _)| {
                    let empty = new_empty_array(self.schema.field(*index).data_type());
                    Keeping::choose(&empty).map(|(keeping, _)| keeping)
                })
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let fields = self
            .columns
            .iter()
            .zip(&self.keeping)
            .enumerate()
            .map(|(at, ((index, _), keeping))| {
                let column = self.schema.field(*index);
                let kept: Vec<&ArrayRef> = pending.iter().map(|batch| &batch[at]).collect();
                let stored = keeping.stored_type(column.data_type(), &kept)?;
                Ok(Field::new(column.name(), stored, column.is_nullable()))
            })
            .collect::<Result<Vec<_>, ArrowError>>()
            .map_err(|e| e.to_string())?;
        let schema = Arc::new(Schema::new(fields));
        let mut writer = FileWriter::try_new_with_options(
            sink,
            &schema,
            // The batches of a segment share their dictionaries' values:
            // each is written once.
            IpcWriteOptions::default().with_dictionary_handling(DictionaryHandling::Delta),
        )
        .map_err(|e| e.to_string())?;
        for kept in pending {
            let columns = kept
                .iter()
                .zip(&mut self.keeping)
                .zip(schema.fields())
                .map(|((column, keeping), field)| keeping.stored(column, field.data_type()))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let stored =
                RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| e.to_string())?;
            writer.write(&stored).map_err(|e| e.to_string())?;
        }
        writer.finish().map_err(|e| e.to_string())?;
        for keeping in &mut self.keeping {
            keeping.next_file();
        }
        writer.into_inner().map_err(|e| e.to_string())
    }

    /// Gives up filling: the entry is left as it was.
    fn fail(&mut self) {
        self.failed = true;
        self.remove_data();
    }

    fn remove_data(&mut self) {
        for segment in self.written.drain(..) {
            drop(std::fs::remove_file(&segment.temporary));
            drop(std::fs::remove_file(&segment.path));
        }
    }

    /// Writes the last segment and adds the segments to the manifest
    /// (writing the manifest, with `facts`, if there is none); returns the
    /// bytes written. Nothing is committed if a write failed.
    pub(crate) fn commit(mut self, facts: &ObjectFacts) -> u64 {
        if self.failed {
            return 0;
        }
        let last =
            !self.columns.is_empty() && (!self.pending.is_empty() || self.written.is_empty());
        // The only segment goes inside the facts file.
        let wrote_last = match (last, self.written.is_empty()) {
            (false, _) => Ok(()),
            (true, true) => self.keep_segment_inline(),
            (true, false) => self.write_segment(),
        };
        if wrote_last.is_err() {
            self.fail();
            return 0;
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
                ..Manifest::default()
            });
        // Another read of the same object version found the same facts;
        // if not (an object rewritten in place keeping its size, time and
        // ETag), its columns are not put beside this read's.
        if manifest.facts != *facts {
            return Err("the object's facts differ from its entry's".to_string());
        }
        // Files a sweep removed are forgotten.
        manifest.files.retain(|file| {
            file.segments
                .iter()
                .all(|segment| segment.at.is_some() || self.entry.data_path(&segment.tag).exists())
        });
        // The new facts file holds the data the old one held (for the
        // files it keeps), then this read's.
        let mut inline = Vec::new();
        let old_inline = std::mem::take(&mut manifest.inline);
        manifest.files.retain_mut(|file| {
            let segment = &mut file.segments[0];
            let Some(at) = segment.at else {
                return true;
            };
            // Data that cannot be read: its columns are read again.
            let Ok(Some(data)) = old_inline.read(at, segment.bytes) else {
                return false;
            };
            segment.at = Some(append_inline(&mut inline, &data));
            true
        });
        if let Some((tag, data)) = self.inline.take() {
            let bytes = data.len() as u64;
            // A new entry's only data: kept as it is, not copied.
            let at = if inline.is_empty() {
                inline = data;
                0
            } else {
                append_inline(&mut inline, &data)
            };
            manifest.files.push(DataFile {
                columns: self.columns.iter().map(|(_, name)| name.clone()).collect(),
                segments: vec![Segment {
                    tag,
                    bytes,
                    at: Some(at),
                }],
            });
        }
        if !self.written.is_empty() {
            for segment in &self.written {
                std::fs::rename(&segment.temporary, &segment.path).map_err(|e| e.to_string())?;
                bytes += segment.bytes;
            }
            manifest.files.push(DataFile {
                columns: self.columns.iter().map(|(_, name)| name.clone()).collect(),
                segments: self
                    .written
                    .iter()
                    .map(|segment| Segment {
                        tag: segment.tag.clone(),
                        bytes: segment.bytes,
                        at: None,
                    })
                    .collect(),
            });
        }
        let path = self.entry.manifest_path();
        let temporary = temporary_name(&path);
        let written = self
            .entry
            .create(&temporary)
            .and_then(|mut created| manifest.write_file(&inline, &mut created))
            .and_then(|written| std::fs::rename(&temporary, &path).map(|()| written));
        match written {
            Ok(written) => bytes += written,
            Err(e) => {
                drop(std::fs::remove_file(&temporary));
                return Err(e.to_string());
            }
        }
        // Committed: the data files stay.
        self.written.clear();
        Ok(bytes)
    }
}

impl Drop for EntryWriter {
    fn drop(&mut self) {
        self.remove_data();
    }
}

/// Appends `data` to a facts file's data at the next aligned offset,
/// and returns that offset.
fn append_inline(inline: &mut Vec<u8>, data: &[u8]) -> u64 {
    inline.resize(inline.len().next_multiple_of(INLINE_ALIGN), 0);
    let at = inline.len() as u64;
    inline.extend_from_slice(data);
    at
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
                text: "2 a\tb\r \\n\0".into(),
            }],
            records: 12,
        };
        assert_eq!(ObjectFacts::parse(&facts.to_text()), Some(facts.clone()));
        let empty = ObjectFacts::default();
        assert_eq!(ObjectFacts::parse(&empty.to_text()), Some(empty));
        let text = facts.to_text();
        assert!(!text.contains('\0'), "a NUL would end the text");
        // A facts file cut short is not taken for a whole one.
        assert_eq!(ObjectFacts::parse(&text[..text.len() - 4]), None);
        assert_eq!(
            ObjectFacts::parse(&text.replace(FACTS_VERSION, "flowsql-cache-facts 0")),
            None
        );
    }

    /// Fills an entry with `batches` (every column), reads it back, and
    /// returns the batches read, each segment's column types, and each
    /// segment's dictionary values by column (0 for other columns).
    fn fill_and_read(
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> (
        Vec<RecordBatch>,
        Vec<Vec<datafusion::arrow::datatypes::DataType>>,
        Vec<Vec<usize>>,
    ) {
        let folder = tempfile::tempdir().unwrap();
        let entry = Entry::new(folder.path().join("ab"), "object".into());
        let columns = (0..schema.fields().len())
            .map(|i| (i, schema.field(i).name().clone()))
            .collect();
        let mut writer = entry.writer(columns, Arc::clone(schema));
        for batch in batches {
            // What the writer gives for the record filter holds the batch's
            // values, a dictionary's included.
            for (index, testable) in writer.write(batch, |_| true) {
                let table = schema.field(index).data_type();
                let values = as_table_column(&testable, table, None)
                    .and_then(|column| datafusion::arrow::compute::cast(&column, table))
                    .unwrap();
                assert_eq!(
                    values.as_ref(),
                    batch.column(index).as_ref(),
                    "column {index}"
                );
            }
        }
        let records = batches.iter().map(|b| b.num_rows() as u64).sum();
        let facts = ObjectFacts {
            records,
            ..ObjectFacts::default()
        };
        assert!(writer.commit(&facts) > 0);
        let manifest = entry.manifest().unwrap().unwrap();
        assert!(manifest.missing(schema).is_empty());
        let mut files = entry.open(&manifest, schema).unwrap().unwrap();
        let stored = files[0]
            .segments
            .iter()
            .map(|segment| {
                segment
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect()
            })
            .collect();
        let dictionary_values = files[0]
            .segments
            .iter()
            .map(|segment| {
                let file = std::io::Cursor::new(segment.buffer.as_slice());
                let mut reader =
                    datafusion::arrow::ipc::reader::FileReader::try_new(file, None).unwrap();
                let first = reader.next().unwrap().unwrap();
                first
                    .columns()
                    .iter()
                    .map(|c| {
                        use datafusion::arrow::array::AsArray;
                        c.as_any_dictionary_opt().map_or(0, |d| d.values().len())
                    })
                    .collect()
            })
            .collect();
        let mut rows_left = records;
        let mut read = Vec::new();
        while let Some(run) = next_run(&mut files, schema, 1000, &mut rows_left).unwrap() {
            read.push(run.into_batch(schema, None).unwrap());
        }
        (read, stored, dictionary_values)
    }

    #[test]
    fn an_entry_gives_back_its_records_from_one_file_or_from_segments() {
        use datafusion::arrow::array::{Int32Array, Int64Array, StringViewArray};
        use datafusion::arrow::compute::concat_batches;
        use datafusion::arrow::datatypes::DataType;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("dstport", DataType::Int32, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("interface_id", DataType::Utf8View, true),
            Field::new("srcaddr", DataType::Utf8View, true),
            Field::new("vpc_id", DataType::Utf8View, true),
        ]));
        // Records `first..first + rows`; the record `ipv6`, if among them,
        // has an IPv6 source address; bytes are small up to record 700,000;
        // a VPC id lasts 2,000 records.
        let batch = |rows: usize, first: usize, ipv6: Option<usize>| {
            let n = |i: usize| i + first;
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int32Array::from_iter(
                        (0..rows).map(|i| (n(i) % 7 != 0).then_some((n(i) % 1000) as i32)),
                    )),
                    Arc::new(Int64Array::from_iter_values((0..rows).map(|i| {
                        if n(i) < 700_000 {
                            (n(i) % 60_000) as i64
                        } else {
                            (n(i) as i64) * 100_003
                        }
                    }))),
                    Arc::new(StringViewArray::from_iter((0..rows).map(|i| {
                        (n(i) % 11 != 0).then(|| format!("eni-{:017x}", n(i) % 300))
                    }))),
                    Arc::new(StringViewArray::from_iter_values((0..rows).map(|i| {
                        if Some(n(i)) == ipv6 {
                            "2001:db8::1".to_string()
                        } else {
                            format!("10.{}.{}.{}", n(i) >> 16, (n(i) >> 8) & 255, n(i) & 255)
                        }
                    }))),
                    Arc::new(StringViewArray::from_iter_values(
                        (0..rows).map(|i| format!("vpc-{:017x}", n(i) / 2000)),
                    )),
                ],
            )
            .unwrap()
        };
        let dictionary = |key| DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8));
        // A small object is one data file, as narrow as its values allow.
        let small = [batch(3000, 0, None), batch(2500, 3000, None)];
        let (read, stored, _) = fill_and_read(&schema, &small);
        assert_eq!(
            concat_batches(&schema, &read).unwrap(),
            concat_batches(&schema, &small).unwrap()
        );
        assert_eq!(
            stored,
            [[
                DataType::UInt16,
                DataType::UInt16,
                dictionary(DataType::UInt16),
                // Every value an IPv4 address: codes.
                DataType::UInt64,
                dictionary(DataType::UInt8),
            ]]
        );
        // A large one (past the bytes a writer holds) is segments, each as
        // narrow as its own values allow; one IPv6 address makes only its
        // own segment keep text.
        let ipv6 = 500_000;
        let large: Vec<RecordBatch> = (0..40)
            .map(|b| batch(20_000, b * 20_000, Some(ipv6)))
            .collect();
        let (read, stored, dictionary_values) = fill_and_read(&schema, &large);
        assert_eq!(
            concat_batches(&schema, &read).unwrap(),
            concat_batches(&schema, &large).unwrap()
        );
        assert!(stored.len() > 2, "{} segments", stored.len());
        let with_ipv6: Vec<bool> = stored.iter().map(|s| s[3] == DataType::Utf8).collect();
        assert_eq!(
            with_ipv6.iter().filter(|&&text| text).count(),
            1,
            "{stored:?}"
        );
        assert!(!with_ipv6[0], "{stored:?}");
        for segment in &stored {
            assert_eq!(segment[0], DataType::UInt16, "{stored:?}");
            assert_eq!(segment[2], dictionary(DataType::UInt16), "{stored:?}");
            assert!(
                matches!(segment[3], DataType::UInt64 | DataType::Utf8),
                "{stored:?}"
            );
        }
        // Each segment's dictionary holds the values of its own records
        // (400 VPC ids in all, each in one segment or two), not those of
        // the segments before it too.
        let vpcs: Vec<usize> = dictionary_values.iter().map(|d| d[4]).collect();
        assert!(vpcs.iter().sum::<usize>() <= 400 + vpcs.len(), "{vpcs:?}");
        assert!(vpcs.iter().all(|&n| n > 0), "{vpcs:?}");
        // Bytes narrower in the first segment than in the last.
        assert_eq!(stored[0][1], DataType::UInt16, "{stored:?}");
        assert_eq!(stored[stored.len() - 1][1], DataType::Int64, "{stored:?}");
    }

    #[test]
    fn a_file_shorter_than_its_length_maps_short_and_read_ends_at_its_end() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("data");
        let bytes: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let big = 3 * READ_AT_MOST;
        // Mapped: only what the file holds, from the offset asked.
        let whole = read_or_map(&file, 0, big).unwrap();
        assert_eq!(whole.as_slice(), bytes.as_slice());
        let from = READ_AT_MOST / 2;
        let tail = read_or_map(&file, from, big).unwrap();
        assert_eq!(tail.as_slice(), &bytes[from as usize..]);
        assert_eq!(read_or_map(&file, 4 << 20, big).unwrap().len(), 0);
        // Read: at most one byte past what was asked.
        let read = read_or_map(&file, 10, 100).unwrap();
        assert_eq!(read.as_slice(), &bytes[10..111]);
    }

    #[test]
    fn columns_added_to_a_one_file_entry_keep_the_data_it_held() {
        use datafusion::arrow::array::{Int32Array, StringViewArray};
        use datafusion::arrow::datatypes::DataType;
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("dstport", DataType::Int32, true),
            Field::new("action", DataType::Utf8View, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from_iter(
                    (0..5000).map(|i| (i % 9 != 0).then_some(i % 1024)),
                )),
                Arc::new(StringViewArray::from_iter((0..5000).map(|i| {
                    (i % 13 != 0).then_some(if i % 3 == 0 { "REJECT" } else { "ACCEPT" })
                }))),
            ],
        )
        .unwrap();
        let facts = ObjectFacts {
            records: 5000,
            ..ObjectFacts::default()
        };
        let folder = tempfile::tempdir().unwrap();
        let entry = Entry::new(folder.path().join("ab"), "object".into());
        // One read keeps the port, a later one adds the action.
        for (index, name) in [(0, "dstport"), (1, "action")] {
            let mut writer = entry.writer(vec![(index, name.into())], Arc::clone(&schema));
            writer.write(&batch, |_| false);
            assert!(writer.commit(&facts) > 0);
        }
        let files: Vec<_> = std::fs::read_dir(folder.path().join("ab"))
            .unwrap()
            .map(|f| f.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files, ["object.facts"], "one file holds the entry");
        let manifest = entry.manifest().unwrap().unwrap();
        assert!(manifest.missing(&schema).is_empty());
        assert!(
            manifest
                .files
                .iter()
                .all(|file| file.segments[0].at.is_some())
        );
        let mut cursors = entry.open(&manifest, &schema).unwrap().unwrap();
        let mut rows_left = facts.records;
        let mut read = Vec::new();
        while let Some(run) = next_run(&mut cursors, &schema, 1000, &mut rows_left).unwrap() {
            read.push(run.into_batch(&schema, None).unwrap());
        }
        let read = datafusion::arrow::compute::concat_batches(&schema, &read).unwrap();
        assert_eq!(read, batch);

        // Its data cut short inside the facts file: damaged, not misread.
        let path = folder.path().join("ab").join("object.facts");
        let length = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(length - 100)
            .unwrap();
        let manifest = entry.manifest().unwrap().unwrap();
        let why = entry.open(&manifest, &schema).err().unwrap();
        assert!(why.contains("damaged"), "{why}");
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
                    columns: vec!["srcaddr".into(), "odd\tname".into()],
                    segments: vec![segment("12-0-ff", 1000)],
                },
                DataFile {
                    columns: vec!["bytes".into()],
                    segments: vec![
                        segment("12-1-ff", 200),
                        segment("12-2-ff", 300),
                        segment("12-3-ff", 10),
                    ],
                },
                DataFile {
                    columns: vec!["action".into()],
                    segments: vec![Segment {
                        at: Some(128),
                        ..segment("12-4-ff", 20)
                    }],
                },
            ],
            inline: InlineData::default(),
        };
        let text = manifest.to_text();
        let back = Manifest::parse(&text).unwrap();
        assert_eq!(back, manifest);
        // With data inside the facts file, after its text and a NUL.
        let data: Vec<u8> = (1..=200u8).collect();
        let mut file = Vec::new();
        let written = manifest.write_file(&data, &mut file).unwrap();
        assert_eq!(written, file.len() as u64);
        assert_eq!(&file[..text.len() + 1], format!("{text}\0").as_bytes());
        assert_eq!(&file[data_start(text.len()) as usize..], data);
        assert_eq!(back.file_of("bytes").unwrap().segments[2].tag, "12-3-ff");
        let schema = Schema::new(vec![
            Field::new("bytes", datafusion::arrow::datatypes::DataType::Int64, true),
            Field::new(
                "dstport",
                datafusion::arrow::datatypes::DataType::Int32,
                true,
            ),
        ]);
        assert_eq!(back.missing(&schema), vec![(1, "dstport".to_string())]);
        for damaged in [
            text.replace("file\t12-0-ff", "file\t../x"),
            text.replace("segment\t12-2-ff\t300", "segment\t12-2-ff\t300\tbytes"),
            text.replace("segment\t12-2-ff", "other\t12-2-ff"),
            // A file inside the facts file has one segment.
            format!("{text}segment\t12-5-ff\t10\n"),
            text.replace("inline\t12-4-ff\t128", "inline\t12-4-ff\tx"),
            // A segment before any file.
            text.replace(
                "file\t12-0-ff\t1000\tsrcaddr\todd\\tname",
                "segment\t12-0-ff\t1000",
            ),
        ] {
            assert_ne!(damaged, text);
            assert_eq!(Manifest::parse(&damaged), None, "{damaged}");
        }
    }

    fn segment(tag: &str, bytes: u64) -> Segment {
        Segment {
            tag: tag.into(),
            bytes,
            at: None,
        }
    }
}
