//! One partition's reading: the object being read and, while it is read,
//! the next ones already being opened, so that on S3 the first-byte waits
//! of several GETs overlap.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::FileOpener;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::task::JoinError;

use super::queue::{Feed, FoundObject, ObjectFormat};

/// Objects each partition opens ahead of the one it reads once the store
/// has proved slow. On S3 every GET waits tens of milliseconds for its
/// first byte while decoding an object takes a few; enough GETs in flight
/// hide that wait.
const READ_AHEAD_OBJECTS: usize = 8;

/// How long a partition waits for an object to open before it reads
/// [`READ_AHEAD_OBJECTS`] ahead instead of one. A local file opens well
/// within it, so a `LIMIT` over local files opens no more than it needs.
const WIDEN_READ_AHEAD_AFTER: std::time::Duration = std::time::Duration::from_millis(5);

/// How many objects in a row a partition may find not yet open when it
/// finishes the one before, before it reads [`READ_AHEAD_OBJECTS`] ahead:
/// objects that take no time to read (a `count(*)` over Parquet, which
/// reads footers only) would otherwise be opened one after another.
const WIDEN_READ_AHEAD_AFTER_WAITS: usize = 4;

/// Listed (compressed) bytes each partition opens ahead at most, so a run
/// of large objects does not hold many of them in memory.
const READ_AHEAD_BYTES: u64 = 16 << 20;

type Batches = BoxStream<'static, Result<RecordBatch>>;

/// The readers of one store's objects, one per format.
pub(super) struct Openers {
    pub text: Arc<dyn FileOpener>,
    pub parquet: Arc<dyn FileOpener>,
}

impl Openers {
    fn open(
        &self,
        found: FoundObject,
    ) -> Result<datafusion::datasource::physical_plan::FileOpenFuture> {
        match found.format {
            ObjectFormat::Text => self.text.open(found.file),
            ObjectFormat::Parquet => self.parquet.open(found.file),
        }
    }
}

/// One partition's reading: the object being read and, while it is read,
/// the next ones already being opened (for S3, their GETs under way): one,
/// or up to [`READ_AHEAD_OBJECTS`] and [`READ_AHEAD_BYTES`] once an open
/// has been slow.
pub(super) struct PartitionReader {
    feed: Arc<Feed>,
    openers: Vec<Openers>,
    current: Option<Batches>,
    /// Objects being opened, in the order they are to be read, with their
    /// listed sizes.
    ahead: VecDeque<(u64, SpawnedTask<Result<Batches>>)>,
    /// How many objects to open ahead: 1 until an open is slow.
    depth: usize,
    /// The feed has said the listing is over and its queue empty.
    listed_all: bool,
    /// Objects in a row that were not open yet when their turn came.
    waits: usize,
}

impl PartitionReader {
    /// A reader of the objects `feed` gives, opened with `openers` (one per
    /// store index of the listing).
    pub(super) fn new(feed: Arc<Feed>, openers: Vec<Openers>) -> Self {
        Self {
            feed,
            openers,
            current: None,
            ahead: VecDeque::new(),
            depth: 1,
            listed_all: false,
            waits: 0,
        }
    }

    pub(super) async fn next_batch(mut self) -> Option<(Result<RecordBatch>, Self)> {
        loop {
            if self.current.is_some() {
                self.read_ahead();
                let current = self.current.as_mut().expect("checked above");
                match current.next().await {
                    Some(batch) => return Some((batch, self)),
                    None => self.current = None,
                }
            }
            let opening = match self.ahead.pop_front() {
                Some((_, opening)) => opening,
                None => {
                    let found = self.feed.next().await?;
                    self.start_opening(found)
                }
            };
            match self.wait_reading_ahead(opening).await {
                Ok(Ok(batches)) => self.current = Some(batches),
                Ok(Err(e)) => return Some((Err(e), self)),
                Err(e) => {
                    return Some((Err(DataFusionError::ExecutionJoin(Box::new(e))), self));
                }
            }
        }
    }

    /// Waits for `opening` to open, meanwhile opening the objects the
    /// listing finds, within the read-ahead limits; if the wait is long, or
    /// objects keep being not yet open when their turn comes, the limits
    /// widen, so on a slow store the first objects of a scan,
    /// and any after a slow GET, are requested together.
    async fn wait_reading_ahead(
        &mut self,
        mut opening: SpawnedTask<Result<Batches>>,
    ) -> Result<Result<Batches>, JoinError> {
        if let std::task::Poll::Ready(opened) = futures::poll!(&mut opening) {
            self.waits = 0;
            return opened;
        }
        self.waits += 1;
        if self.waits >= WIDEN_READ_AHEAD_AFTER_WAITS {
            self.depth = READ_AHEAD_OBJECTS;
        }
        loop {
            self.read_ahead();
            let room = self.has_room_ahead() && !self.listed_all;
            let narrow = self.depth < READ_AHEAD_OBJECTS;
            let feed = Arc::clone(&self.feed);
            tokio::select! {
                biased;
                opened = &mut opening => return opened,
                () = tokio::time::sleep(WIDEN_READ_AHEAD_AFTER), if narrow => {
                    self.depth = READ_AHEAD_OBJECTS;
                }
                found = feed.next(), if room => match found {
                    Some(found) => self.open_ahead(found),
                    None => self.listed_all = true,
                },
            }
        }
    }

    /// Starts opening the objects queued now, within the read-ahead limits.
    fn read_ahead(&mut self) {
        while self.has_room_ahead() {
            let Some(found) = self.feed.try_next() else {
                break;
            };
            self.open_ahead(found);
        }
    }

    fn has_room_ahead(&self) -> bool {
        let bytes: u64 = self.ahead.iter().map(|(size, _)| size).sum();
        self.ahead.len() < self.depth && bytes < READ_AHEAD_BYTES
    }

    fn open_ahead(&mut self, found: Result<FoundObject>) {
        let size = found.as_ref().map_or(0, |o| o.file.object_meta.size);
        let opening = self.start_opening(found);
        self.ahead.push_back((size, opening));
    }

    /// Opens an object in its own task, so it proceeds while the current
    /// one is read; dropping the task (with the reader) cancels it.
    fn start_opening(&self, found: Result<FoundObject>) -> SpawnedTask<Result<Batches>> {
        let opened = found.and_then(|o| self.openers[o.store].open(o));
        SpawnedTask::spawn(async move { opened?.await })
    }
}
