//! Remembers file hashes by (size, mtime, inode), so a no-op run never rehashes data or blobs
//! it has already hashed. A stale or lost stat cache only costs time, never correctness: an
//! entry is used only while the file's size, modification time and inode are unchanged.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::hash::ContentHash;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct FileStamp {
    size: u64,
    modified_ns: i128,
    inode: u64,
}

impl FileStamp {
    fn of(metadata: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            size: metadata.len(),
            modified_ns: metadata.mtime() as i128 * 1_000_000_000 + metadata.mtime_nsec() as i128,
            inode: metadata.ino(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    stamp: FileStamp,
    hash: ContentHash,
}

#[derive(Default, Serialize, Deserialize)]
struct Entries {
    // Hashed, not ordered: a no-op run looks up every blob, and ordered paths compare component
    // by component.
    files: HashMap<PathBuf, Entry>,
}

pub struct StatCache {
    file: PathBuf,
    entries: Mutex<Entries>,
    dirty: Mutex<bool>,
}

impl StatCache {
    /// Loads the stat cache stored at `file`; a missing or unreadable one starts empty.
    pub fn load(file: PathBuf) -> StatCache {
        let entries = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        StatCache {
            file,
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    /// The content hash of `path`, rehashing only when its stamp changed.
    pub fn hash_file(&self, path: &Path) -> std::io::Result<ContentHash> {
        self.hash_file_with(path, &std::fs::metadata(path)?)
    }

    /// [`StatCache::hash_file`] for a caller that already has the file's metadata.
    pub fn hash_file_with(
        &self,
        path: &Path,
        metadata: &std::fs::Metadata,
    ) -> std::io::Result<ContentHash> {
        let stamp = FileStamp::of(metadata);
        if let Some(entry) = self.entries.lock().unwrap().files.get(path) {
            if entry.stamp == stamp {
                return Ok(entry.hash);
            }
        }
        let hash = ContentHash::of_file(path)?;
        // Only remember the hash if the file did not change while we read it.
        if FileStamp::of(&std::fs::metadata(path)?) == stamp {
            self.entries
                .lock()
                .unwrap()
                .files
                .insert(path.to_path_buf(), Entry { stamp, hash });
            *self.dirty.lock().unwrap() = true;
        }
        Ok(hash)
    }

    /// Hashes a file or a whole directory tree (walked in sorted order, relative paths
    /// included, so renaming a class folder changes the hash).
    pub fn hash_path(&self, path: &Path) -> std::io::Result<ContentHash> {
        let metadata = std::fs::metadata(path)?;
        if !metadata.is_dir() {
            return self.hash_file(path);
        }
        let mut hasher = crate::hash::KeyHasher::new("tpipe directory");
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            let entry = entry.map_err(std::io::Error::other)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let relative = entry.path().strip_prefix(path).unwrap_or(entry.path());
            hasher.part("path", relative.to_string_lossy().as_bytes());
            hasher.part("content", self.hash_file(entry.path())?.to_hex().as_bytes());
        }
        Ok(hasher.finish())
    }

    /// Writes the stat cache back if anything was added (atomically; a lost race only means
    /// some files are hashed again next time).
    pub fn save(&self, temporary_dir: &Path) -> std::io::Result<()> {
        if !*self.dirty.lock().unwrap() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&*self.entries.lock().unwrap())?;
        super::write_atomically(temporary_dir, &self.file, &bytes)?;
        *self.dirty.lock().unwrap() = false;
        Ok(())
    }
}
