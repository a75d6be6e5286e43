//! The local columnar cache of decoded text objects.
//!
//! Reading a gzip text object is mostly inflate and decoding; the same
//! object read again gives the same records. So, once a query has read an
//! object whole, the columns it decoded are kept on local disk as Arrow
//! IPC files, and a later query that needs only columns the cache
//! holds reads them instead of the object: no GET, no inflate, no decode.
//! Columns a query reads that the entry lacks are added as it reads them.
//!
//! An entry is named by the object's identity: the store, the key, and
//! the size, modification time and ETag the listing gives, so a changed or
//! replaced object has another entry and is read from its source (the old
//! one is evicted in time). Only objects read to their end are kept (every
//! file is renamed into place once whole); objects that are bad or skipped
//! never enter. Reading an entry replays what reading the object reported
//! (its header's fields, its malformed lines), so answers, warnings and
//! `flowsql_rejects` are the same with or without the cache.
//!
//! The cache is bounded: past its size, the entries used least recently
//! are removed (by the process that wrote past it, in the background).
//! Several processes may read and fill it at once: files are written
//! under temporary names and renamed, readers keep what they opened even
//! if it is removed meanwhile, and an entry that cannot be read is removed
//! and its object read from the source.

mod column;
pub(crate) mod entry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use md5::{Digest, Md5};
use object_store::ObjectMeta;

use entry::Entry;

pub(crate) use column::DecodedAsTable;

/// The cache's folder under the user's cache folder, by format version:
/// entries another version wrote are not read, and a sweep or a clear
/// removes them (see [`OLDER_FOLDERS`]).
const OBJECTS_FOLDER: &str = "objects-v4";

/// The folders of earlier versions of the cache's format.
const OLDER_FOLDERS: [&str; 3] = ["objects-v1", "objects-v2", "objects-v3"];

/// The file of hit and miss counts, one line per process that read through
/// the cache.
const STATS_FILE: &str = "hits";

/// A sweep removes entries until the cache is this share of its size, so
/// the next sweep is not due at once.
const SWEEP_TO_PERCENT: u64 = 80;

/// Where the cache is and how large it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// The folder of the cache (the command line uses
    /// `$XDG_CACHE_HOME/flowsql`, else `~/.cache/flowsql`).
    pub folder: PathBuf,
    /// Bytes the cache may hold on disk before the least recently used
    /// entries are removed.
    pub max_bytes: u64,
}

/// The default limit of the cache's size on disk.
pub const DEFAULT_CACHE_BYTES: u64 = 10 << 30;

impl CacheOptions {
    /// The cache in `folder`, of the default size.
    pub fn in_folder(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
            max_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// What the cache holds, and how often it answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Objects with an entry.
    pub entries: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Objects read from the cache, over every process that used it.
    pub hits: u64,
    /// Objects read from their source while the cache was in use.
    pub misses: u64,
}

impl CacheUsage {
    /// What the cache in `options.folder` holds now.
    pub fn of(options: &CacheOptions) -> std::io::Result<Self> {
        let root = options.folder.join(OBJECTS_FOLDER);
        let mut usage = Self::default();
        for entry in entries(&root)? {
            usage.entries += 1;
            usage.bytes += entry.bytes;
        }
        if let Ok(text) = std::fs::read_to_string(root.join(STATS_FILE)) {
            for line in text.lines() {
                let mut counts = line.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
                usage.hits += counts.next().unwrap_or(0);
                usage.misses += counts.next().unwrap_or(0);
            }
        }
        Ok(usage)
    }

    /// Removes every entry and the counts of the cache in
    /// `options.folder`; returns what it held.
    pub fn clear(options: &CacheOptions) -> std::io::Result<Self> {
        let usage = Self::of(options)?;
        remove_older_versions(&options.folder)?;
        let root = options.folder.join(OBJECTS_FOLDER);
        match std::fs::remove_dir_all(&root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(usage),
        }
    }

    /// Hits as a share of the objects read through the cache, if any were.
    pub fn hit_rate(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }
}

/// The cache as a table's scans use it.
#[derive(Debug)]
pub(crate) struct ObjectCache {
    root: PathBuf,
    max_bytes: u64,
    /// Bytes this process wrote since its last sweep began.
    written: Arc<AtomicU64>,
    sweeping: Arc<AtomicBool>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ObjectCache {
    pub(crate) fn new(options: &CacheOptions) -> Self {
        Self {
            root: options.folder.join(OBJECTS_FOLDER),
            max_bytes: options.max_bytes,
            written: Arc::new(AtomicU64::new(0)),
            sweeping: Arc::new(AtomicBool::new(false)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The entry of the object `meta` names in the store at `store_url`.
    pub(crate) fn entry(&self, store_url: &str, meta: &ObjectMeta) -> Entry {
        let key = hex_md5(&[store_url.as_bytes(), meta.location.as_ref().as_bytes()]);
        let modified = meta
            .last_modified
            .timestamp_nanos_opt()
            .unwrap_or(meta.last_modified.timestamp());
        let identity = hex_md5(&[
            meta.size.to_string().as_bytes(),
            modified.to_string().as_bytes(),
            meta.e_tag.as_deref().unwrap_or("").as_bytes(),
            meta.version.as_deref().unwrap_or("").as_bytes(),
        ]);
        Entry::new(
            self.root.join(&key[..2]),
            format!("{key}-{}", &identity[..16]),
        )
    }

    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn missed(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes `bytes` written; past a tenth of the limit since the last
    /// sweep began, sweeps in the background. Bytes written while a sweep
    /// runs are left to it: when it ends, it sweeps again if they passed a
    /// tenth of the limit, since their writer may write no more (the last
    /// objects of a query) and the cache would stay past its size.
    pub(crate) fn added(&self, bytes: u64) {
        let written = self.written.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if written < self.max_bytes / 10 || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let root = self.root.clone();
        let max_bytes = self.max_bytes;
        let written = Arc::clone(&self.written);
        let sweeping = Arc::clone(&self.sweeping);
        std::thread::spawn(move || {
            loop {
                written.store(0, Ordering::Relaxed);
                // A sweep that fails leaves the cache larger until the next.
                drop(sweep(&root, max_bytes));
                sweeping.store(false, Ordering::Release);
                if written.load(Ordering::Relaxed) < max_bytes / 10
                    || sweeping.swap(true, Ordering::AcqRel)
                {
                    break;
                }
            }
        });
    }

    /// Removes the least recently used entries until the cache is within
    /// its size (now, in this thread).
    #[cfg(test)]
    pub(crate) fn sweep_now(&self) -> std::io::Result<()> {
        sweep(&self.root, self.max_bytes)
    }
}

impl Drop for ObjectCache {
    /// Adds this process's hits and misses to the cache's counts.
    fn drop(&mut self) {
        let hits = *self.hits.get_mut();
        let misses = *self.misses.get_mut();
        if hits + misses == 0 {
            return;
        }
        let appended = std::fs::create_dir_all(&self.root).and_then(|()| {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.root.join(STATS_FILE))?;
            // One short write, so processes appending at once do not mix lines.
            file.write_all(format!("{hits} {misses}\n").as_bytes())
        });
        drop(appended);
    }
}

fn hex_md5(parts: &[&[u8]]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Removes what earlier versions of the cache's format left in `folder`.
fn remove_older_versions(folder: &Path) -> std::io::Result<()> {
    for older in OLDER_FOLDERS {
        match std::fs::remove_dir_all(folder.join(older)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// One entry's files as a sweep sees them.
struct EntryOnDisk {
    files: Vec<PathBuf>,
    bytes: u64,
    used: SystemTime,
    /// Its facts file exists: it is not a first filling under way.
    filled: bool,
}

/// Every entry under `root` (its files share the name before the first
/// `.`); temporary files older than an hour (left by a process that was
/// killed) are removed on the way.
fn entries(root: &Path) -> std::io::Result<Vec<EntryOnDisk>> {
    let mut found = Vec::new();
    let shards = match std::fs::read_dir(root) {
        Ok(shards) => shards,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let stale = SystemTime::now() - std::time::Duration::from_secs(3600);
    for shard in shards.flatten() {
        if !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let mut by_name: std::collections::BTreeMap<String, EntryOnDisk> = Default::default();
        for file in std::fs::read_dir(shard.path())?.flatten() {
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let file_name = file.file_name();
            let file_name = file_name.to_string_lossy();
            if entry::is_temporary(&file_name) {
                if modified < stale {
                    drop(std::fs::remove_file(file.path()));
                }
                continue;
            }
            let name = file_name.split('.').next().unwrap_or_default().to_string();
            let entry = by_name.entry(name).or_insert_with(|| EntryOnDisk {
                files: Vec::new(),
                bytes: 0,
                used: SystemTime::UNIX_EPOCH,
                filled: false,
            });
            entry.filled |= file_name.ends_with(entry::FACTS_SUFFIX);
            entry.files.push(file.path());
            entry.bytes += metadata.len();
            // The facts file's time is the entry's last use (a hit touches
            // it); a column added later also counts as a use.
            entry.used = entry.used.max(modified);
        }
        found.extend(by_name.into_values());
    }
    Ok(found)
}

/// Removes the least recently used entries until the cache holds at most
/// [`SWEEP_TO_PERCENT`] of `max_bytes`, if it holds more than `max_bytes`.
fn sweep(root: &Path, max_bytes: u64) -> std::io::Result<()> {
    if let Some(folder) = root.parent() {
        remove_older_versions(folder)?;
    }
    let mut found = entries(root)?;
    let mut total: u64 = found.iter().map(|e| e.bytes).sum();
    if total <= max_bytes {
        return Ok(());
    }
    let target = max_bytes / 100 * SWEEP_TO_PERCENT;
    let filling_since = SystemTime::now() - std::time::Duration::from_secs(600);
    found.sort_by_key(|e| e.used);
    for entry in found {
        if total <= target {
            break;
        }
        // A first filling under way (data, no facts yet) is left to finish.
        if !entry.filled && entry.used > filling_since {
            continue;
        }
        // A reader that opened the entry's files keeps them until it is done.
        for file in &entry.files {
            drop(std::fs::remove_file(file));
        }
        total -= entry.bytes;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str, size: u64, e_tag: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            location: object_store::path::Path::from(key),
            last_modified: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            size,
            e_tag: e_tag.map(str::to_string),
            version: None,
        }
    }

    #[test]
    fn an_entry_is_named_by_the_objects_identity() {
        let cache = ObjectCache::new(&CacheOptions::in_folder("/cache"));
        let name = |url: &str, m: &ObjectMeta| format!("{:?}", cache.entry(url, m));
        let one = meta("AWSLogs/1/a.log.gz", 10, Some("x"));
        assert_eq!(name("s3://b/", &one), name("s3://b/", &one.clone()));
        assert_ne!(name("s3://b/", &one), name("s3://c/", &one));
        assert_ne!(
            name("s3://b/", &one),
            name("s3://b/", &meta("AWSLogs/1/a.log.gz", 11, Some("x")))
        );
        assert_ne!(
            name("s3://b/", &one),
            name("s3://b/", &meta("AWSLogs/1/a.log.gz", 10, Some("y")))
        );
        assert_ne!(
            name("s3://b/", &one),
            name("s3://b/", &meta("AWSLogs/1/b.log.gz", 10, Some("x")))
        );
    }

    #[test]
    fn a_sweep_removes_the_least_recently_used_entries_past_the_size() {
        let folder = tempfile::tempdir().unwrap();
        let options = CacheOptions {
            folder: folder.path().to_path_buf(),
            max_bytes: 2500,
        };
        let root = folder.path().join(OBJECTS_FOLDER);
        let now = SystemTime::now();
        std::fs::create_dir_all(root.join("ab")).unwrap();
        // An earlier version's entry, never read, and removed by the sweep.
        let older = folder.path().join(OLDER_FOLDERS[0]).join("cd");
        std::fs::create_dir_all(&older).unwrap();
        std::fs::write(older.join("cd0.facts"), "x").unwrap();
        for (i, age) in [30u64, 10, 20].into_iter().enumerate() {
            let file = root.join("ab").join(format!("ab{i}.facts"));
            std::fs::write(&file, vec![b'x'; 1000]).unwrap();
            std::fs::File::open(&file)
                .unwrap()
                .set_modified(now - std::time::Duration::from_secs(age))
                .unwrap();
        }
        let before = CacheUsage::of(&options).unwrap();
        assert_eq!((before.entries, before.bytes), (3, 3000));
        ObjectCache::new(&options).sweep_now().unwrap();
        // Over 2500 bytes: down to 80% (2000), the oldest (ab0) first.
        let left: Vec<_> = std::fs::read_dir(root.join("ab"))
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!folder.path().join(OLDER_FOLDERS[0]).exists());
        assert!(!left.contains(&"ab0.facts".to_string()), "{left:?}");
        assert_eq!(CacheUsage::clear(&options).unwrap().entries, 2);
        assert_eq!(CacheUsage::of(&options).unwrap(), CacheUsage::default());
    }
}
