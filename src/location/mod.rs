//! Where a LOCATION's bytes live: the object store for its URL and the
//! prefix inside it.

#[cfg(feature = "cluster")]
mod lazy;
pub(crate) mod s3;

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::error::Error;

pub use s3::S3Options;

/// A resolved LOCATION.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    /// The LOCATION as the user wrote it.
    pub original: String,
    /// The store's URL (`s3://bucket`, `file://`).
    pub url: ObjectStoreUrl,
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The folder inside the store.
    pub prefix: Path,
    /// What the user should know about how it is reached (a corrected
    /// region).
    pub notes: Vec<String>,
}

/// Resolves `s3://bucket[/prefix]` or a local folder. An `s3://` bucket that
/// already has a store registered in `runtime` (a test's in-memory store, a
/// caller's configured client) uses it; otherwise a client is set up as the
/// AWS CLI would ([`s3::bucket_store`]) and registered.
pub(crate) async fn resolve(
    runtime: &RuntimeEnv,
    location: &str,
    s3: &S3Options,
) -> Result<Location> {
    if let Some(rest) = location.strip_prefix("s3://") {
        let url = Url::parse(location)
            .map_err(|e| location_error(location, format!("is not a valid s3:// URL: {e}")))?;
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| location_error(location, "names no bucket".to_string()))?;
        let store_url = ObjectStoreUrl::parse(format!("s3://{bucket}"))?;
        let mut notes = Vec::new();
        let store = match runtime.object_store(&store_url) {
            Ok(store) => store,
            Err(_) => {
                let store: Arc<dyn ObjectStore> =
                    Arc::new(s3::bucket_store(bucket, s3, &mut notes).await?);
                runtime.register_object_store(store_url.as_ref(), Arc::clone(&store));
                store
            }
        };
        let prefix = rest.split_once('/').map_or("", |(_, p)| p);
        return Ok(Location {
            original: location.to_string(),
            url: store_url,
            store,
            prefix: Path::from(prefix.trim_matches('/')),
            notes,
        });
    }
    if let Some((scheme, _)) = location.split_once("://")
        && scheme != "file"
    {
        return Err(location_error(
            location,
            "is neither an s3:// URL nor a local folder (the only two supported)".to_string(),
        ));
    }
    let local = location.strip_prefix("file://").unwrap_or(location);
    let absolute = std::fs::canonicalize(local).map_err(|e| {
        location_error(location, format!("does not exist or cannot be opened: {e}"))
    })?;
    if !absolute.is_dir() {
        return Err(location_error(
            location,
            "is not a folder (point it at the folder that holds AWSLogs/)".to_string(),
        ));
    }
    let url = ObjectStoreUrl::local_filesystem();
    let store = runtime.object_store(&url)?;
    let prefix = Path::from_filesystem_path(&absolute)
        .map_err(|e| location_error(location, format!("is not a usable path: {e}")))?;
    Ok(Location {
        original: location.to_string(),
        url,
        store,
        prefix,
        notes: Vec::new(),
    })
}

/// The store at `url`: for an `s3://` bucket, this process's one store of
/// that bucket with `s3` (set up on its first request, and shared by every
/// plan that names it with the same options); else `runtime`'s.
#[cfg(feature = "cluster")]
pub(crate) fn store_for(
    runtime: &RuntimeEnv,
    url: &ObjectStoreUrl,
    s3: &S3Options,
) -> Result<Arc<dyn ObjectStore>> {
    let parsed = Url::parse(url.as_str())
        .map_err(|e| location_error(url.as_str(), format!("is not a valid URL: {e}")))?;
    match (parsed.scheme(), parsed.host_str()) {
        ("s3", Some(bucket)) => Ok(lazy::bucket_store(bucket, s3)),
        _ => runtime.object_store(url),
    }
}

/// Resolves where a conversion writes: `s3://bucket[/prefix]` as for a
/// LOCATION, or a local folder, which need not exist yet.
pub(crate) async fn resolve_destination(
    runtime: &RuntimeEnv,
    destination: &str,
    s3: &S3Options,
) -> Result<Location> {
    let local = destination.strip_prefix("file://").unwrap_or(destination);
    if destination.starts_with("s3://")
        || local.contains("://")
        || std::path::Path::new(local).exists()
    {
        return resolve(runtime, destination, s3).await;
    }
    // Not there yet: made by the first object written (a dry run or a
    // refused conversion makes nothing). Its nearest existing folder says
    // where it really is (symbolic links resolved).
    let wanted = std::path::absolute(local)
        .map_err(|e| location_error(destination, format!("is not a usable path: {e}")))?;
    let mut existing = wanted.as_path();
    let mut missing = Vec::new();
    while !existing.exists() {
        missing.push(existing.file_name().unwrap_or_default().to_owned());
        existing = existing.parent().unwrap_or(std::path::Path::new("/"));
    }
    let mut absolute = std::fs::canonicalize(existing)
        .map_err(|e| location_error(destination, format!("cannot be opened: {e}")))?;
    if !absolute.is_dir() {
        return Err(location_error(
            destination,
            "is inside a file, not a folder".to_string(),
        ));
    }
    absolute.extend(missing.iter().rev());
    let url = ObjectStoreUrl::local_filesystem();
    let store = runtime.object_store(&url)?;
    let prefix = Path::from_absolute_path(&absolute)
        .map_err(|e| location_error(destination, format!("is not a usable path: {e}")))?;
    Ok(Location {
        original: destination.to_string(),
        url,
        store,
        prefix,
        notes: Vec::new(),
    })
}

/// A LOCATION that cannot be used, and why.
pub(crate) fn location_error(location: &str, reason: String) -> DataFusionError {
    Error::Location {
        location: location.to_string(),
        reason,
    }
    .into()
}
