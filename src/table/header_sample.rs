//! Header fields the catalogue does not know, sampled from the newest day
//! of every account and region when the table is opened, so they become
//! columns (fields met later are named in a warning instead).

use std::collections::BTreeMap;

use datafusion::common::{DataFusionError, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};

use super::FlowLogOptions;
use super::layout::{AccountFolder, DatePart};
use super::listing::{Root, child_folders, join, list_objects, list_regions};
use super::prune::PathPredicate;
use crate::catalogue::{self, Header};
use chrono::NaiveDate;

/// Reads the header of one object from its first bytes.
async fn read_header(store: &dyn ObjectStore, meta: &ObjectMeta) -> Option<Header> {
    use std::io::Read;
    const HEADER_BYTES: u64 = 64 * 1024;
    let options = GetOptions {
        range: Some(GetRange::Bounded(0..meta.size.min(HEADER_BYTES))),
        ..Default::default()
    };
    let bytes = store
        .get_opts(&meta.location, options)
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    let mut gunzip = flate2::read::MultiGzDecoder::new(&bytes[..]);
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    // A truncated read still yields the complete first line in practice;
    // stop at the first newline either way.
    while !text.contains(&b'\n') && text.len() < HEADER_BYTES as usize {
        match gunzip.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let line = text.split(|b| *b == b'\n').next()?;
    Header::parse(line.strip_suffix(b"\r").unwrap_or(line)).ok()
}

/// Header fields the catalogue does not know, read from one object per flow
/// log in the newest day folder of every account and region. A flow log's
/// format is fixed for its life and its id is in every file name, so one
/// header per flow log is enough.
/// Also returns how many flow-log objects those newest days hold (zero means
/// the roots hold no flow logs at all).
pub(super) async fn sample_unknown_fields(
    roots: &[Root],
    options: &FlowLogOptions,
    extra: &mut Vec<String>,
) -> Result<usize> {
    let concurrency = options.listing_concurrency.max(1);
    let no_filter = PathPredicate::empty();
    let mut objects_seen = 0;
    for root in roots {
        let regions = list_regions(root, &no_filter, concurrency).await?;
        let headers: Vec<(usize, Vec<Header>)> = futures::stream::iter(regions)
            .map(|(account, region)| async move {
                let Some(date) = newest_day(root, &account, &region).await? else {
                    return Ok::<_, DataFusionError>((0, vec![]));
                };
                let folder = join(&root.awslogs, &account.day_folder(&region, date));
                let objects = list_objects(root, &folder).await?;
                let count = objects.len();
                let mut one_per_flow_log: BTreeMap<String, ObjectMeta> = BTreeMap::new();
                for object in objects {
                    one_per_flow_log
                        .entry(object.facts.flow_log_id)
                        .or_insert(object.meta);
                }
                let mut headers = Vec::new();
                for meta in one_per_flow_log.values() {
                    if let Some(header) = read_header(root.store.as_ref(), meta).await {
                        headers.push(header);
                    }
                }
                Ok((count, headers))
            })
            .buffered(concurrency)
            .try_collect()
            .await?;
        objects_seen += headers.iter().map(|(count, _)| count).sum::<usize>();
        for header in headers.iter().flat_map(|(_, h)| h) {
            for token in header.unknown_tokens() {
                let name = catalogue::column_name(token);
                let clashes = catalogue::path_fields().iter().any(|f| f.name() == &name);
                if !clashes && !extra.iter().any(|e| catalogue::column_name(e) == name) {
                    extra.push(token.to_string());
                }
            }
        }
    }
    Ok(objects_seen)
}

/// The newest day folder of one account and region.
async fn newest_day(
    root: &Root,
    account: &AccountFolder,
    region: &str,
) -> Result<Option<NaiveDate>> {
    let store = root.store.as_ref();
    let mut folder = join(&root.awslogs, &account.region_folder(region));
    let mut parts = [0u32; 3];
    for (i, part) in [DatePart::Year, DatePart::Month, DatePart::Day]
        .into_iter()
        .enumerate()
    {
        let newest = child_folders(store, &folder)
            .await?
            .into_iter()
            .filter_map(|name| {
                account
                    .date_part_from_folder_name(part, &name)
                    .map(|v| (v, name))
            })
            .max();
        let Some((value, name)) = newest else {
            return Ok(None);
        };
        parts[i] = value;
        folder = folder.join(name.as_str());
    }
    Ok(NaiveDate::from_ymd_opt(parts[0] as i32, parts[1], parts[2]))
}
