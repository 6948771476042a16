//! The content-addressed store under `cache/`.
//!
//! Layout:
//! ```text
//! cache/
//!   blobs/ab/abcdef…    artifact bytes, named by their content hash
//!   records/<key>.json  one record per node key (outputs, metrics, provenance)
//!   index/<id>.json     per pipeline file: node name → last key (for `plan`'s reasons)
//!   locks/<key>.lock    per-node build locks
//!   tmp/                temporary files, renamed into place
//!   stat-cache.json     file stamps → hashes
//! ```
//!
//! Contract: writes are atomic (temporary file, fsync, rename) and a record is written only
//! after all its blobs, so a crash never leaves a record that points at a missing or
//! half-written blob. Every blob read is verified against its name. During a run a damaged entry
//! is a miss plus a warning, never a crash and never used; the cache never deletes anything
//! except through `gc`.

pub mod stat_cache;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::action::{Action, ACTION_FORMAT};
use crate::hash::ContentHash;
use crate::record::{OutputRef, Record, RecordFields, RecordHead, RECORD_FORMAT};
use stat_cache::StatCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blob {hash} is missing from the cache (`{path}`)")]
    MissingBlob { hash: ContentHash, path: PathBuf },
    #[error("blob `{path}` is corrupt: its content hashes to {actual}, not {expected}")]
    CorruptBlob {
        path: PathBuf,
        expected: ContentHash,
        actual: ContentHash,
    },
    #[error("record `{path}` is corrupt: {reason}")]
    CorruptRecord {
        path: PathBuf,
        reason: RecordProblem,
    },
    #[error("`{path}` is not an action: {source}")]
    NotAnAction {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("`{path}` does not describe key {key} in action format {ACTION_FORMAT}")]
    ActionForAnotherKey { path: PathBuf, key: String },
}

/// Why a record's bytes cannot stand for a key.
#[derive(Debug, thiserror::Error)]
pub enum RecordProblem {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("it describes key {key} in format {format}")]
    AnotherKey { key: String, format: u32 },
    #[error("its content digest does not match its outputs")]
    Digest,
}

impl CacheError {
    fn io<'p>(
        action: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(std::io::Error) -> CacheError + 'p {
        move |source| CacheError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why a record cannot be used.
#[derive(Clone, Debug, PartialEq)]
pub enum EntryDamage {
    UnreadableRecord(String),
    MissingBlob { output: String, blob: ContentHash },
    CorruptBlob { output: String, blob: ContentHash },
}

impl std::fmt::Display for EntryDamage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryDamage::UnreadableRecord(reason) => {
                write!(formatter, "record unreadable: {reason}")
            }
            EntryDamage::MissingBlob { output, blob } => {
                write!(
                    formatter,
                    "output `{output}` (blob {}) is missing",
                    blob.short()
                )
            }
            EntryDamage::CorruptBlob { output, blob } => {
                write!(
                    formatter,
                    "output `{output}` (blob {}) is corrupt",
                    blob.short()
                )
            }
        }
    }
}

/// What the cache holds for a key: the whole record, or only its [`RecordHead`].
pub enum Lookup<R = Record> {
    Hit(Box<R>),
    Miss,
    Damaged(EntryDamage),
}

pub struct Cache {
    root: PathBuf,
    stat_cache: StatCache,
}

static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `destination` so that readers see either the old file or the whole new one.
pub fn write_atomically(
    temporary_dir: &Path,
    destination: &Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    write_atomically_with(temporary_dir, destination, |file| file.write_all(bytes))
}

/// Like [`write_atomically`], for a file written piece by piece by `write` (a trace of a
/// million nodes is not held in memory whole first).
pub fn write_atomically_with(
    temporary_dir: &Path,
    destination: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let unique = format!(
        "{}-{}-{}",
        std::process::id(),
        TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed),
        destination
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("file")
    );
    let temporary = temporary_dir.join(unique);
    let result = (|| {
        let mut file = File::create(&temporary)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&temporary, destination)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Parses a record's bytes and checks that they describe `key` in this format and that the
/// content digest matches the outputs. Shared by the cache and by remotes, which run it on every
/// record they download.
pub fn parse_record(key: &ContentHash, bytes: &[u8]) -> Result<Record, RecordProblem> {
    parse_record_as(key, bytes)
}

fn parse_record_as<R: RecordFields>(key: &ContentHash, bytes: &[u8]) -> Result<R, RecordProblem> {
    let record: R = serde_json::from_slice(bytes)?;
    if record.key() != key || record.format() != RECORD_FORMAT {
        return Err(RecordProblem::AnotherKey {
            key: record.key().short(),
            format: record.format(),
        });
    }
    if crate::key::outputs_digest_of(record.outputs()) != *record.content() {
        return Err(RecordProblem::Digest);
    }
    Ok(record)
}

impl Cache {
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        for sub in ["blobs", "records", "actions", "index", "locks", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(CacheError::io("create", &dir))?;
        }
        let stat_cache = StatCache::load(root.join("stat-cache.json"));
        Ok(Cache {
            root: root.to_path_buf(),
            stat_cache,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn stat_cache(&self) -> &StatCache {
        &self.stat_cache
    }

    pub fn temporary_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("blobs").join(&hex[..2]).join(hex)
    }

    pub fn record_path(&self, key: &ContentHash) -> PathBuf {
        self.root.join("records").join(format!("{key}.json"))
    }

    /// Stores bytes as a blob and returns their hash. An existing intact blob is kept.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<OutputRef, CacheError> {
        let hash = ContentHash::of_bytes(bytes);
        let path = self.blob_path(&hash);
        let intact = std::fs::metadata(&path)
            .is_ok_and(|metadata| metadata.len() == bytes.len() as u64)
            && self
                .stat_cache
                .hash_file(&path)
                .is_ok_and(|actual| actual == hash);
        if !intact {
            let parent = path.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(parent).map_err(CacheError::io("create", parent))?;
            write_atomically(&self.temporary_dir(), &path, bytes)
                .map_err(CacheError::io("write", &path))?;
        }
        Ok(OutputRef {
            blob: hash,
            size: bytes.len() as u64,
        })
    }

    /// Reads a blob and checks that its content matches its name.
    pub fn read_blob(&self, hash: &ContentHash) -> Result<Vec<u8>, CacheError> {
        let path = self.blob_path(hash);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(CacheError::MissingBlob { hash: *hash, path });
            }
            Err(source) => {
                return Err(CacheError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let actual = ContentHash::of_bytes(&bytes);
        if actual != *hash {
            return Err(CacheError::CorruptBlob {
                path,
                expected: *hash,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Checks a blob without reading it when its stamp is unchanged since it was last hashed.
    pub fn blob_is_intact(&self, output: &OutputRef) -> Result<bool, EntryDamageKind> {
        let path = self.blob_path(&output.blob);
        match std::fs::metadata(&path) {
            Err(_) => Err(EntryDamageKind::Missing),
            Ok(metadata) if metadata.len() != output.size => Err(EntryDamageKind::Corrupt),
            Ok(metadata) => match self.stat_cache.hash_file_with(&path, &metadata) {
                Ok(actual) if actual == output.blob => Ok(true),
                Ok(_) => Err(EntryDamageKind::Corrupt),
                Err(_) => Err(EntryDamageKind::Missing),
            },
        }
    }

    /// Reads and parses the record for `key` without checking its blobs.
    pub fn read_record(&self, key: &ContentHash) -> Result<Option<Record>, CacheError> {
        self.read_record_as(key)
    }

    fn read_record_as<R: RecordFields>(&self, key: &ContentHash) -> Result<Option<R>, CacheError> {
        let path = self.record_path(key);
        // Not `fs::read`: its size hint costs a `statx` per record, and a no-op run reads
        // every record of the pipeline.
        let read = File::open(&path).and_then(|mut file| {
            let mut bytes = Vec::with_capacity(16 * 1024);
            std::io::Read::read_to_end(&mut file, &mut bytes).map(|_| bytes)
        });
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        parse_record_as(key, &bytes)
            .map(Some)
            .map_err(|reason| CacheError::CorruptRecord { path, reason })
    }

    /// A record whose blobs are all present and intact.
    pub fn lookup(&self, key: &ContentHash) -> Lookup {
        self.lookup_as(key)
    }

    /// Like [`Cache::lookup`], parsing only the record's head: for a run and the key walk,
    /// which need nothing more of a cached node.
    pub fn lookup_head(&self, key: &ContentHash) -> Lookup<RecordHead> {
        self.lookup_as(key)
    }

    fn lookup_as<R: RecordFields>(&self, key: &ContentHash) -> Lookup<R> {
        let record = match self.read_record_as::<R>(key) {
            Ok(Some(record)) => record,
            Ok(None) => return Lookup::Miss,
            Err(error) => return Lookup::Damaged(EntryDamage::UnreadableRecord(error.to_string())),
        };
        for (output, reference) in record.outputs() {
            match self.blob_is_intact(reference) {
                Ok(_) => {}
                Err(EntryDamageKind::Missing) => {
                    return Lookup::Damaged(EntryDamage::MissingBlob {
                        output: output.clone(),
                        blob: reference.blob,
                    });
                }
                Err(EntryDamageKind::Corrupt) => {
                    return Lookup::Damaged(EntryDamage::CorruptBlob {
                        output: output.clone(),
                        blob: reference.blob,
                    });
                }
            }
        }
        Lookup::Hit(Box::new(record))
    }

    /// Writes a record. Its blobs must already be stored.
    pub fn write_record(&self, record: &Record) -> Result<(), CacheError> {
        let path = self.record_path(&record.key);
        let bytes = serde_json::to_vec_pretty(record).expect("records always serialise");
        write_atomically(&self.temporary_dir(), &path, &bytes)
            .map_err(CacheError::io("write", &path))
    }

    pub fn action_path(&self, key: &ContentHash) -> PathBuf {
        self.root.join("actions").join(format!("{key}.json"))
    }

    /// Stores the action whose key is `key`, so `tpipe exec-node` can build it elsewhere.
    pub fn write_action(&self, key: &ContentHash, action: &Action) -> Result<(), CacheError> {
        let path = self.action_path(key);
        let bytes = serde_json::to_vec_pretty(action).expect("actions always serialise");
        write_atomically(&self.temporary_dir(), &path, &bytes)
            .map_err(CacheError::io("write", &path))
    }

    /// The stored action for `key`; `Ok(None)` when there is none. An action whose content does
    /// not hash to `key` is refused: it would build something else than its name says.
    pub fn read_action(&self, key: &ContentHash) -> Result<Option<Action>, CacheError> {
        let path = self.action_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let action: Action = match serde_json::from_slice(&bytes) {
            Ok(action) => action,
            Err(source) => return Err(CacheError::NotAnAction { path, source }),
        };
        if action.format != ACTION_FORMAT || action.key() != *key {
            return Err(CacheError::ActionForAnotherKey {
                path,
                key: key.short(),
            });
        }
        Ok(Some(action))
    }

    /// Takes the per-node build lock for `key`, waiting for another process that holds it.
    /// The kernel releases it if the holder dies, so a killed run never leaves a stale lock.
    pub fn lock_node(&self, key: &ContentHash) -> Result<NodeLock, CacheError> {
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let file = File::create(&path).map_err(CacheError::io("create", &path))?;
        file.lock().map_err(CacheError::io("lock", &path))?;
        Ok(NodeLock { _file: file })
    }

    /// Every record key in the cache.
    pub fn record_keys(&self) -> Result<Vec<ContentHash>, CacheError> {
        self.keys_in("records")
    }

    /// Every key with a stored action (built or not).
    pub fn action_keys(&self) -> Result<Vec<ContentHash>, CacheError> {
        self.keys_in("actions")
    }

    /// The keys named by `<key>.json` files in one of the cache's folders.
    fn keys_in(&self, folder: &str) -> Result<Vec<ContentHash>, CacheError> {
        let dir = self.root.join(folder);
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(CacheError::io("list", &dir))? {
            let entry = entry.map_err(CacheError::io("list", &dir))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(key) = stem.parse() {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Every blob in the cache, with its path.
    pub fn blobs(&self) -> Result<Vec<(ContentHash, PathBuf)>, CacheError> {
        let mut blobs = Vec::new();
        for entry in walkdir::WalkDir::new(self.root.join("blobs")).sort_by_file_name() {
            let entry = entry.map_err(|error| CacheError::Io {
                action: "list",
                path: self.root.join("blobs"),
                source: std::io::Error::other(error),
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            if let Some(hash) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse().ok())
            {
                blobs.push((hash, entry.path().to_path_buf()));
            }
        }
        Ok(blobs)
    }

    /// Removes a record and the action stored beside it.
    pub fn remove_record(&self, key: &ContentHash) -> Result<(), CacheError> {
        for path in [self.record_path(key), self.action_path(key)] {
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CacheError::Io {
                        action: "remove",
                        path,
                        source: error,
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The last key each node of a pipeline file had, to explain why a node reruns.
    pub fn read_index(&self, pipeline: &ContentHash) -> BTreeMap<String, ContentHash> {
        std::fs::read(self.index_path(pipeline))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Sets the last key of each node in `updates`; writes the index only when one changed.
    pub fn update_index<'a>(
        &self,
        pipeline: &ContentHash,
        updates: impl IntoIterator<Item = (&'a str, ContentHash)>,
    ) -> Result<(), CacheError> {
        let mut index = self.read_index(pipeline);
        let mut changed = false;
        for (name, key) in updates {
            // Looked up first: a no-op run changes nothing and copies no name.
            match index.get_mut(name) {
                Some(last) if *last == key => {}
                Some(last) => {
                    *last = key;
                    changed = true;
                }
                None => {
                    index.insert(name.to_string(), key);
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(());
        }
        let path = self.index_path(pipeline);
        let bytes = serde_json::to_vec_pretty(&index).expect("index always serialises");
        write_atomically(&self.temporary_dir(), &path, &bytes)
            .map_err(CacheError::io("write", &path))
    }

    fn index_path(&self, pipeline: &ContentHash) -> PathBuf {
        self.root.join("index").join(format!("{pipeline}.json"))
    }

    /// Persists the stat cache; a failure only costs rehashing next time.
    pub fn save_stat_cache(&self) -> Result<(), CacheError> {
        let path = self.root.join("stat-cache.json");
        self.stat_cache
            .save(&self.temporary_dir())
            .map_err(CacheError::io("write", &path))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryDamageKind {
    Missing,
    Corrupt,
}

/// Held while a node builds; dropping it releases the lock.
pub struct NodeLock {
    _file: File,
}
