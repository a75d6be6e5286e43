//! Header fields (or Parquet columns) the catalogue does not know, sampled
//! when a small table is opened, so they are columns from its first query.
//!
//! Only a tree of at most [`SAMPLED_REGIONS`] accounts x regions is
//! sampled (the newest day of each): the walk to a newest day costs three
//! listings per region, which a bucket of hundreds of accounts cannot pay
//! before every query. A bigger tree learns such fields where queries read
//! them (the scan report names them, and a field memory makes them columns
//! from the next opening). A sampled day that holds a flow-log object also
//! shows the tree holds flow logs: the opening then needs no other listing
//! for that.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};

use super::FlowLogOptions;
use super::layout::{AccountFolder, DatePart, ObjectFormat};
use super::listing::{Root, join, list_objects, list_regions};
use super::prune::PathPredicate;
use crate::cache::ObjectCache;
use crate::catalogue::Header;
use crate::report::ScanReport;
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

/// The header of one object as its entry in the local cache keeps it, if
/// it has one: a warm opening then sends no GET.
fn cached_header(cache: &ObjectCache, root: &Root, meta: &ObjectMeta) -> Option<Header> {
    let facts = cache.entry(root.url.as_str(), meta).manifest().ok()??.facts;
    Header::parse(facts.header.join(" ").as_bytes()).ok()
}

/// The fields of one Parquet object, as header tokens, from its footer.
async fn read_parquet_fields(
    store: &Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
) -> Option<Vec<String>> {
    use datafusion::datasource::listing::PartitionedFile;
    use datafusion::datasource::physical_plan::parquet::{
        DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
    };
    use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
    let mut reader = DefaultParquetFileReaderFactory::new(Arc::clone(store))
        .create_reader(
            0,
            PartitionedFile::new_from_meta(meta.clone()),
            Some(64 * 1024),
            &ExecutionPlanMetricsSet::new(),
        )
        .ok()?;
    let metadata = reader.get_metadata(None).await.ok()?;
    let schema = metadata.file_metadata().schema_descr();
    Some(
        schema
            .root_schema()
            .get_fields()
            .iter()
            .map(|field| field.name().replace('_', "-"))
            .collect(),
    )
}

/// The most accounts x regions whose newest day is sampled.
pub(super) const SAMPLED_REGIONS: usize = 8;

/// What the opening's sample found.
#[derive(Debug, Default)]
pub(super) struct Sample {
    /// Header fields (or Parquet columns) the catalogue does not know.
    pub(super) unknown: Vec<String>,
    /// Per root, whether a sampled day folder held a flow-log object: such
    /// a root needs no other listing to show it holds flow logs.
    pub(super) found: Vec<bool>,
}

/// Header fields the catalogue does not know, read from one object per
/// flow log in the newest day folder of every account and region, when the
/// roots hold at most [`SAMPLED_REGIONS`] of them (accounts, then
/// accounts x regions); none otherwise. A flow log's format is fixed for
/// its life and its id is in every file name, so one header per flow log
/// is enough. Every sampled object's fields go to `report`
/// ([`ScanReport::fields_recorded`]). The accounts' regions are listed at
/// once, and so are the regions' walks to their newest day.
pub(super) async fn sample_unknown_fields(
    roots: &[Root],
    accounts: &[Vec<AccountFolder>],
    options: &FlowLogOptions,
    report: &ScanReport,
    cache: Option<&ObjectCache>,
) -> Result<Sample> {
    let concurrency = options.listing_concurrency.max(1);
    let mut sample = Sample {
        unknown: Vec::new(),
        found: vec![false; roots.len()],
    };
    if accounts.iter().map(Vec::len).sum::<usize>() > SAMPLED_REGIONS {
        return Ok(sample);
    }
    let no_filter = PathPredicate::empty();
    let no_filter = &no_filter;
    let each_account = roots
        .iter()
        .zip(accounts)
        .enumerate()
        .flat_map(|(index, (root, accounts))| accounts.iter().map(move |a| (index, root, a)));
    let regions: Vec<Vec<(usize, AccountFolder, String)>> = futures::stream::iter(each_account)
        .map(|(index, root, account)| async move {
            let regions = list_regions(root, account, no_filter).await?;
            Ok::<_, DataFusionError>(
                regions
                    .into_iter()
                    .map(|region| (index, account.clone(), region))
                    .collect(),
            )
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let pairs: Vec<_> = regions.into_iter().flatten().collect();
    if pairs.len() > SAMPLED_REGIONS {
        return Ok(sample);
    }
    let per_region: Vec<(usize, bool, Vec<String>)> = futures::stream::iter(pairs)
        .map(|(index, account, region)| async move {
            let root = &roots[index];
            let Some(date) = newest_day(root, &account, &region).await? else {
                return Ok::<_, DataFusionError>((index, false, vec![]));
            };
            let folder = join(&root.awslogs, &account.day_folder(&region, date));
            // A flow log that switched format has objects of both.
            let mut one_per_flow_log: BTreeMap<(String, bool), (ObjectMeta, ObjectFormat)> =
                BTreeMap::new();
            let objects = list_objects(root, &folder).await?;
            let found = !objects.is_empty();
            for object in objects {
                let parquet = object.facts.format == ObjectFormat::Parquet;
                one_per_flow_log
                    .entry((object.facts.flow_log_id, parquet))
                    .or_insert((object.meta, object.facts.format));
            }
            let mut unknown = Vec::new();
            for (meta, format) in one_per_flow_log.values() {
                match format {
                    ObjectFormat::Text => {
                        let cached = cache.and_then(|cache| cached_header(cache, root, meta));
                        let header = match cached {
                            Some(header) => Some(header),
                            None => read_header(root.store.as_ref(), meta).await,
                        };
                        if let Some(header) = header {
                            report.fields_recorded(header.tokens().iter().map(String::as_str));
                            unknown.extend(header.unknown_tokens().map(str::to_string));
                        }
                    }
                    ObjectFormat::Parquet => {
                        if let Some(fields) = read_parquet_fields(&root.store, meta).await {
                            report.fields_recorded(fields.iter().map(String::as_str));
                            unknown.extend(
                                fields
                                    .into_iter()
                                    .filter(|f| crate::catalogue::catalogue_field(f).is_none()),
                            );
                        }
                    }
                }
            }
            Ok((index, found, unknown))
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    for (index, found, unknown) in per_region {
        sample.found[index] |= found;
        sample.unknown.extend(unknown);
    }
    Ok(sample)
}

/// The newest day folder of one account and region.
async fn newest_day(
    root: &Root,
    account: &AccountFolder,
    region: &str,
) -> Result<Option<NaiveDate>> {
    let mut folder = join(&root.awslogs, &account.region_folder(region));
    let mut parts = [0u32; 3];
    for (i, part) in [DatePart::Year, DatePart::Month, DatePart::Day]
        .into_iter()
        .enumerate()
    {
        let newest = root
            .child_folders(&folder)
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
