//! Folder listings sent ahead: over S3 every listing is a round trip, and
//! finding a tree's day folders takes one level after another (accounts,
//! regions, years, months, days), five round trips before the first
//! object is listed. Each root remembers the folders its last listings
//! found ([`SeenFolders`]); before a discovery, the same discovery is
//! rehearsed over them, with no request, and every folder listing it makes
//! is sent at once ([`SentAhead`]). The real discovery then takes each
//! listing from there as it comes to it, so the levels it already knew
//! cost about one round trip in all.
//!
//! Answers are as fresh as without it: every folder listing the discovery
//! uses is made during this discovery; what was seen before only chooses
//! which to send early. A folder that is new since is listed when the
//! discovery finds it, as before; a listing sent for a folder that is gone
//! is not used.

use std::sync::{Arc, Mutex, PoisonError};

use datafusion::common::{DataFusionError, HashMap, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::StreamExt;
use object_store::path::Path;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::FlowLogOptions;
use super::listing::{FolderListings, Root, child_folders, day_folders};
use super::prune::{PathPredicate, TimeWindow};
use crate::scan::text::object_display;

/// The child folders of each folder below a root, as last listed by this
/// process: shared by every scan of a table.
#[derive(Debug, Default)]
pub(super) struct SeenFolders {
    children: Mutex<HashMap<Path, Vec<String>>>,
}

impl SeenFolders {
    /// What `folder` held when last listed; nothing if it never was.
    pub(super) fn children(&self, folder: &Path) -> Vec<String> {
        let children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        children.get(folder).cloned().unwrap_or_default()
    }

    pub(super) fn remember(&self, folder: &Path, found: &[String]) {
        let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        children.insert(folder.clone(), found.to_vec());
    }
}

/// One discovery's folder listings, sent before it asks for them.
#[derive(Debug, Default)]
pub(super) struct SentAhead {
    listings: Mutex<HashMap<Path, JoinHandle<Result<Vec<String>>>>>,
}

impl SentAhead {
    /// The listing of `folder`, if one was sent: each is taken once.
    pub(super) async fn take(&self, folder: &Path) -> Option<Result<Vec<String>>> {
        let sent = self
            .listings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(folder)?;
        Some(match sent.await {
            Ok(listed) => listed,
            Err(e) => Err(DataFusionError::External(Box::new(e))),
        })
    }
}

impl Drop for SentAhead {
    /// Listings the discovery did not use are not waited for.
    fn drop(&mut self) {
        let listings = self
            .listings
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for sent in listings.values() {
            sent.abort();
        }
    }
}

impl Root {
    /// This root for one discovery of the day folders that `predicate` and
    /// `window` allow, with the folder listings it will make (as far as the
    /// folders seen last time tell) already sent, up to four times
    /// `listing_concurrency` at once. A local folder is listed in no time,
    /// and is left as it is.
    pub(super) async fn sending_ahead(
        &self,
        predicate: &PathPredicate,
        window: &TimeWindow,
        options: &FlowLogOptions,
    ) -> Root {
        let remote = self.url != ObjectStoreUrl::local_filesystem();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return self.clone();
        };
        if !remote || !matches!(self.folder_listings, FolderListings::OnDemand) {
            return self.clone();
        }
        let asked = Arc::new(Mutex::new(Vec::new()));
        let rehearsal = Root {
            folder_listings: FolderListings::Rehearsed(Arc::clone(&asked)),
            ..self.clone()
        };
        // Over what was seen, with no request: errors are the real
        // discovery's to give.
        let _ = day_folders(&rehearsal, predicate, window, options)
            .collect::<Vec<_>>()
            .await;
        let asked = std::mem::take(&mut *asked.lock().unwrap_or_else(PoisonError::into_inner));
        let permits = Arc::new(Semaphore::new(4 * options.listing_concurrency.max(1)));
        let mut listings = HashMap::new();
        for folder in asked {
            if listings.contains_key(&folder) {
                continue;
            }
            let (store, url, report) = (
                Arc::clone(&self.store),
                self.url.clone(),
                Arc::clone(&self.report),
            );
            let (permits, listed) = (Arc::clone(&permits), folder.clone());
            let sent = runtime.spawn(async move {
                let _permit = permits.acquire_owned().await;
                report.listed(&object_display(&url, &listed), true);
                let found = child_folders(store.as_ref(), &listed).await?;
                report.listed_entries(found.len());
                Ok(found)
            });
            listings.insert(folder, sent);
        }
        Root {
            folder_listings: FolderListings::SentAhead(Arc::new(SentAhead {
                listings: Mutex::new(listings),
            })),
            ..self.clone()
        }
    }
}
