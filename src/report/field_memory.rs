//! Header fields the catalogue does not know, remembered between runs.
//!
//! A table's columns are fixed when it is opened, and opening a big tree
//! reads no object (a bucket may hold thousands of accounts). So there a
//! field no flow-log version documents is met only when a query reads an
//! object that has it:
//! that query names it in a warning, and the field is written here, one per
//! line in a small file per table (its locations), so the next time the
//! same locations are opened it is a column.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The remembered fields of one table.
#[derive(Debug)]
pub(crate) struct FieldMemory {
    file: PathBuf,
    fields: Mutex<BTreeSet<String>>,
}

impl FieldMemory {
    /// The memory of the table over `locations`, kept in `folder`.
    pub(crate) fn open(folder: &Path, locations: &[impl AsRef<str>]) -> Self {
        let file = folder.join(file_name(locations));
        let fields = std::fs::read_to_string(&file)
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default();
        Self {
            file,
            fields: Mutex::new(fields),
        }
    }

    /// The fields remembered so far, in name order.
    pub(crate) fn fields(&self) -> Vec<String> {
        let fields = self.fields.lock().unwrap_or_else(|e| e.into_inner());
        fields.iter().cloned().collect()
    }

    /// Remembers `field` for the next opening. A memory that cannot be
    /// written costs only that: the warning of this run still names the
    /// field.
    pub(crate) fn remember(&self, field: &str) {
        let mut fields = self.fields.lock().unwrap_or_else(|e| e.into_inner());
        if !fields.insert(field.to_string()) {
            return;
        }
        let appended = std::fs::create_dir_all(self.file.parent().unwrap_or(Path::new(".")))
            .and_then(|()| {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.file)?;
                // One write of one line, so runs appending at once do not
                // interleave within a line.
                file.write_all(format!("{field}\n").as_bytes())
            });
        drop(appended);
    }
}

/// A file name for a table's locations: readable where it can be, with a
/// hash (FNV-1a, stable across builds) that tells apart locations whose
/// readable parts agree.
fn file_name(locations: &[impl AsRef<str>]) -> String {
    let joined: Vec<&str> = locations.iter().map(AsRef::as_ref).collect();
    let joined = joined.join("\n");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in joined.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = joined
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    format!("{readable}-{hash:016x}.fields")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_each_field_once_across_openings() {
        let folder = tempfile::tempdir().unwrap();
        let memory = FieldMemory::open(folder.path(), &["s3://bucket/logs"]);
        assert!(memory.fields().is_empty());
        memory.remember("brand-new-field");
        memory.remember("brand-new-field");
        memory.remember("another");
        let again = FieldMemory::open(folder.path(), &["s3://bucket/logs"]);
        assert_eq!(again.fields(), ["another", "brand-new-field"]);
        let text = std::fs::read_to_string(&again.file).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        // Another table has a memory of its own.
        let other = FieldMemory::open(folder.path(), &["s3://bucket/logs2"]);
        assert!(other.fields().is_empty());
    }
}
