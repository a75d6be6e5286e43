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
//! discovery finds it, as before. A listing sent for a folder that is gone
//! is still made (and counted), but not used.
//!
//! Sent listings share the root's listing permits with the discovery's
//! own, so no more are in flight than `listing_concurrency`; and at most
//! [`MOST_SENT_AHEAD`] are sent, the first the discovery will ask for, so
//! a query that stops early (a `LIMIT`) has not paid for the listings of
//! a whole big tree. Dropping the discovery aborts those not yet made.

use std::sync::{Arc, Mutex, PoisonError};

use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, HashMap, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::StreamExt;
use object_store::path::Path;

use super::FlowLogOptions;
use super::listing::{FolderListings, Root, day_folders};
use super::prune::{PathPredicate, TimeWindow};

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

/// The most folder listings one discovery sends ahead: every level of a
/// tree of a few hundred folders, and not the months of years of a big
/// bucket before the query has read anything.
const MOST_SENT_AHEAD: usize = 256;

/// One discovery's folder listings, sent before it asks for them; those
/// not taken are aborted when it is dropped.
#[derive(Debug)]
pub(super) struct SentAhead {
    listings: Mutex<HashMap<Path, SpawnedTask<Result<Vec<String>>>>>,
}

impl SentAhead {
    /// The listing of `folder`, if one was sent: each is taken once.
    pub(super) async fn take(&self, folder: &Path) -> Option<Result<Vec<String>>> {
        let sent = self
            .listings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(folder)?;
        Some(match sent.join_unwind().await {
            Ok(listed) => listed,
            Err(e) => Err(DataFusionError::External(Box::new(e))),
        })
    }
}

impl Root {
    /// This root for one discovery of the day folders that `predicate` and
    /// `window` allow, with the folder listings it will make (as far as the
    /// folders seen last time tell) already sent. A local folder is listed
    /// in no time, and is left as it is.
    pub(super) async fn sending_ahead(
        &self,
        predicate: &PathPredicate,
        window: &TimeWindow,
        options: &FlowLogOptions,
    ) -> Root {
        let remote = self.url != ObjectStoreUrl::local_filesystem();
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        if !remote || !in_runtime || !matches!(self.folder_listings, FolderListings::OnDemand) {
            return self.clone();
        }
        let asked = Arc::new(Mutex::new(Vec::new()));
        let rehearsal = self.with_folder_listings(FolderListings::Rehearsed(Arc::clone(&asked)));
        // Over what was seen, with no request: errors are the real
        // discovery's to give.
        let _ = day_folders(&rehearsal, predicate, window, options)
            .collect::<Vec<_>>()
            .await;
        let asked = std::mem::take(&mut *asked.lock().unwrap_or_else(PoisonError::into_inner));
        let mut listings = HashMap::new();
        for folder in asked {
            if listings.len() == MOST_SENT_AHEAD {
                break;
            }
            if listings.contains_key(&folder) {
                continue;
            }
            let root = self.clone();
            let listed = folder.clone();
            let sent = SpawnedTask::spawn(async move { root.list_child_folders(&listed).await });
            listings.insert(folder, sent);
        }
        self.with_folder_listings(FolderListings::SentAhead(Arc::new(SentAhead {
            listings: Mutex::new(listings),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ScanReport;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    async fn put(store: &InMemory, region: &str, day: &str) {
        let account = "111122223333";
        let stamp = day.replace('/', "");
        let key = format!(
            "AWSLogs/{account}/vpcflowlogs/{region}/{day}/\
             {account}_vpcflowlogs_{region}_fl-1_{stamp}T0000Z_abcd1234.log.gz"
        );
        store
            .put(&Path::from(key), PutPayload::from_static(b"x"))
            .await
            .unwrap();
    }

    async fn discover(root: &Root) -> Vec<String> {
        let options = FlowLogOptions::default();
        day_folders(root, &PathPredicate::empty(), &TimeWindow::ALL, &options)
            .map_ok(|folder| folder.to_string())
            .try_collect()
            .await
            .unwrap()
    }

    /// The listings sent are those of the folders seen, and a discovery
    /// that takes them finds what a discovery with none finds: new folders
    /// at every level included.
    #[tokio::test]
    async fn listings_sent_from_the_folders_seen_find_the_new_ones_too() {
        let store = Arc::new(InMemory::new());
        let root = Root::new(
            ObjectStoreUrl::parse("memory://").unwrap(),
            Arc::clone(&store) as Arc<dyn ObjectStore>,
            Path::from("AWSLogs"),
            Arc::new(ScanReport::remembering_fields(None)),
            4,
        );
        put(&store, "us-east-1", "2024/01/15").await;
        put(&store, "us-east-1", "2024/02/01").await;
        assert_eq!(discover(&root).await.len(), 2);

        put(&store, "us-east-1", "2024/02/02").await;
        put(&store, "us-east-1", "2025/01/01").await;
        put(&store, "eu-west-1", "2024/01/15").await;
        let ahead = root
            .sending_ahead(
                &PathPredicate::empty(),
                &TimeWindow::ALL,
                &FlowLogOptions::default(),
            )
            .await;
        let FolderListings::SentAhead(sent) = &ahead.folder_listings else {
            panic!("nothing sent ahead from a store of another machine");
        };
        let mut sent_for: Vec<String> = sent
            .listings
            .lock()
            .unwrap()
            .keys()
            .map(|folder| folder.to_string())
            .collect();
        sent_for.sort();
        let region = "AWSLogs/111122223333/vpcflowlogs/us-east-1";
        assert_eq!(
            sent_for,
            [
                "AWSLogs".to_string(),
                "AWSLogs/111122223333/vpcflowlogs".to_string(),
                region.to_string(),
                format!("{region}/2024"),
                format!("{region}/2024/01"),
                format!("{region}/2024/02"),
            ]
        );
        let found = discover(&ahead).await;
        assert_eq!(found.len(), 5, "{found:?}");
        let fresh = Root::new(
            root.url.clone(),
            Arc::clone(&root.store),
            root.awslogs.clone(),
            Arc::clone(&root.report),
            4,
        );
        assert_eq!(found, discover(&fresh).await);
        // Every listing sent was taken.
        assert!(sent.listings.lock().unwrap().is_empty());
    }
}
