//! An S3 store set up on its first request.
//!
//! A cluster's processes rebuild a table from a plan in code that cannot
//! wait (DataFusion's codecs are synchronous), while setting up an S3
//! client runs the AWS credential chain, which can. So each bucket's store
//! is registered at once as a [`LazyBucketStore`] and set up, with the
//! process's own credentials, when a listing or read first needs it.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use tokio::sync::OnceCell;

use super::S3Options;
use super::s3;

/// This process's store of `bucket` reached with `options`: one per bucket
/// and options, so that plans naming it share one client (and one run of
/// the credential chain), and a plan with other options (another
/// endpoint) never gets another's.
pub(crate) fn bucket_store(bucket: &str, options: &S3Options) -> Arc<dyn ObjectStore> {
    type Stores = Mutex<HashMap<(String, S3Options), Arc<dyn ObjectStore>>>;
    static STORES: OnceLock<Stores> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Stores::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let store = stores
        .entry((bucket.to_string(), options.clone()))
        .or_insert_with(|| Arc::new(LazyBucketStore::new(bucket, options)));
    Arc::clone(store)
}

/// The store of one bucket, set up on its first request.
pub(crate) struct LazyBucketStore {
    inner: Arc<Setup>,
}

struct Setup {
    bucket: String,
    options: S3Options,
    store: OnceCell<Arc<dyn ObjectStore>>,
}

impl LazyBucketStore {
    fn new(bucket: &str, options: &S3Options) -> Self {
        Self {
            inner: Arc::new(Setup {
                bucket: bucket.to_string(),
                options: options.clone(),
                store: OnceCell::new(),
            }),
        }
    }

    async fn store(&self) -> object_store::Result<Arc<dyn ObjectStore>> {
        self.inner.store().await
    }
}

impl Setup {
    async fn store(&self) -> object_store::Result<Arc<dyn ObjectStore>> {
        self.store
            .get_or_try_init(|| async {
                let mut notes = Vec::new();
                s3::bucket_store(&self.bucket, &self.options, &mut notes)
                    .await
                    .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
                    .map_err(|e| object_store::Error::Generic {
                        store: "S3",
                        source: Box::new(e),
                    })
            })
            .await
            .cloned()
    }
}

impl fmt::Debug for LazyBucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBucketStore")
            .field("bucket", &self.inner.bucket)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for LazyBucketStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmazonS3({})", self.inner.bucket)
    }
}

/// The stream `make` gives once the store is set up.
fn after_setup<T: Send + 'static>(
    lazy: Arc<Setup>,
    make: impl FnOnce(Arc<dyn ObjectStore>) -> BoxStream<'static, object_store::Result<T>>
    + Send
    + 'static,
) -> BoxStream<'static, object_store::Result<T>> {
    futures::stream::once(async move { lazy.store().await.map(make) })
        .try_flatten()
        .boxed()
}

#[async_trait]
impl ObjectStore for LazyBucketStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.store().await?.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.store().await?.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.store().await?.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.store().await?.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        after_setup(Arc::clone(&self.inner), move |store| {
            store.delete_stream(locations)
        })
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let prefix = prefix.cloned();
        match self.inner.store.get() {
            Some(store) => store.list(prefix.as_ref()),
            None => after_setup(Arc::clone(&self.inner), move |store| {
                store.list(prefix.as_ref())
            }),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let prefix = prefix.cloned();
        let offset = offset.clone();
        match self.inner.store.get() {
            Some(store) => store.list_with_offset(prefix.as_ref(), &offset),
            None => after_setup(Arc::clone(&self.inner), move |store| {
                store.list_with_offset(prefix.as_ref(), &offset)
            }),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.store().await?.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.store().await?.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.store().await?.rename_opts(from, to, options).await
    }
}
