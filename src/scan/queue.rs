//! The queue between listing and reading: a listing sends each object to
//! read as soon as it is found, and the plan's partitions take the next
//! object whenever they finish one, so reading starts before the listing
//! ends and uneven objects spread evenly over the partitions.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::Result;
use datafusion::common::runtime::SpawnedTask;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::ObjectStore;
use tokio::sync::mpsc;

/// One object to read.
#[derive(Debug)]
pub(crate) struct FoundObject {
    /// The index of the store it is in (see [`ObjectListing::store`]).
    pub store: usize,
    /// How it is stored, which picks its reader.
    pub format: ObjectFormat,
    /// The object, with its path-column values.
    pub file: PartitionedFile,
}

/// How a flow-log object is stored, from its name's ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ObjectFormat {
    /// `.log.gz`: gzip text, a header line then one record per line.
    Text,
    /// `.log.parquet`: a Parquet file, one column per field.
    Parquet,
}

impl ObjectFormat {
    /// The format of the object named `name` and the name without its
    /// ending, if it ends as a flow-log object's name does.
    pub(crate) fn of_name(name: &str) -> Option<(Self, &str)> {
        if let Some(stem) = name.strip_suffix(".log.gz") {
            Some((Self::Text, stem))
        } else {
            name.strip_suffix(".log.parquet")
                .map(|stem| (Self::Parquet, stem))
        }
    }
}

/// Where a scan's objects come from. The scan knows nothing of folders,
/// layouts or pruning: it reads what the listing sends.
#[async_trait]
pub(crate) trait ObjectListing: fmt::Debug + Send + Sync {
    /// The store of the objects sent with index `index`.
    fn store(&self, index: usize) -> Arc<dyn ObjectStore>;

    /// The URL of the store with index `index`, to name its objects.
    fn store_url(&self, index: usize) -> ObjectStoreUrl;

    /// Sends every object to read down `found`, each as soon as it is
    /// known; a failed listing is sent as an error. Returns early once
    /// nobody receives.
    async fn run(&self, found: &mpsc::Sender<Result<FoundObject>>);

    /// Where the listing looks, for plan display.
    fn display(&self) -> Vec<String>;
}

/// Objects listed ahead of the readers at most; bounds the listing's memory.
const QUEUE_OBJECTS: usize = 4096;

/// The queue of listed objects that one execution's partitions share, and
/// the task filling it.
pub(super) struct Feed {
    objects: tokio::sync::Mutex<mpsc::Receiver<Result<FoundObject>>>,
    _listing: SpawnedTask<()>,
}

impl Feed {
    pub(super) fn start(listing: Arc<dyn ObjectListing>) -> Arc<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE_OBJECTS);
        let task = SpawnedTask::spawn(async move { listing.run(&sender).await });
        Arc::new(Self {
            objects: tokio::sync::Mutex::new(receiver),
            _listing: task,
        })
    }

    /// The next object to read; `None` once the listing is done and the
    /// queue is empty.
    pub(super) async fn next(&self) -> Option<Result<FoundObject>> {
        self.objects.lock().await.recv().await
    }

    /// The next object if one is queued now, without waiting.
    pub(super) fn try_next(&self) -> Option<Result<FoundObject>> {
        self.objects.try_lock().ok()?.try_recv().ok()
    }
}

/// Runs `listing` to the end without reading any object, so the scan
/// report counts what a scan would read (a dry run).
pub(super) async fn list_only(listing: Arc<dyn ObjectListing>) -> Result<()> {
    let (sender, mut receiver) = mpsc::channel(QUEUE_OBJECTS);
    let run = async move { listing.run(&sender).await };
    let drain = async move {
        while let Some(found) = receiver.recv().await {
            found?;
        }
        Ok(())
    };
    futures::future::join(run, drain).await.1
}
