//! Cache entries on a [`RemoteStore`]: verified downloads, ordered uploads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use super::directory::DirectoryStore;
use super::entry::{blob_path, check_blob, check_record, record_path, EntryProblem};
use super::store::{Listed, RemoteStore, StoreError};
use super::{Remote, RemoteError, RemoteLocation, RemoteSettings, RemoteSpec};
use crate::cache::{Cache, CacheError};
use crate::hash::ContentHash;
use crate::record::Record;

/// What a fetch brought in.
#[derive(Debug)]
pub struct FetchOutcome {
    pub record: Record,
    pub bytes_downloaded: u64,
}

/// What a push did.
#[derive(Debug, PartialEq)]
pub enum PushOutcome {
    /// The remote had the record and every blob it names.
    AlreadyThere,
    Uploaded {
        record: bool,
        blobs: usize,
        bytes: u64,
    },
}

pub struct StoreRemote {
    name: String,
    store: Box<dyn RemoteStore>,
    read_only: bool,
    /// Set on the first failure to reach the remote; later calls fail at once.
    gave_up: AtomicBool,
}

impl StoreRemote {
    /// Opens the remote a spec names. Nothing is contacted yet.
    pub fn open(spec: &RemoteSpec, settings: &RemoteSettings) -> Result<StoreRemote, RemoteError> {
        let name = spec.location.to_string();
        let store: Box<dyn RemoteStore> = match &spec.location {
            RemoteLocation::Directory(path) => Box::new(DirectoryStore::new(path.clone())),
            #[cfg(feature = "remote")]
            RemoteLocation::WebDav(url) => Box::new(
                super::object::ObjectStoreRemote::webdav(url).map_err(|reason| {
                    RemoteError::Config {
                        remote: name.clone(),
                        reason,
                    }
                })?,
            ),
            #[cfg(feature = "remote")]
            RemoteLocation::S3 { bucket, prefix } => Box::new(
                super::object::ObjectStoreRemote::s3(bucket, prefix, settings).map_err(
                    |reason| RemoteError::Config {
                        remote: name.clone(),
                        reason,
                    },
                )?,
            ),
            #[cfg(not(feature = "remote"))]
            _ => {
                let _ = settings;
                return Err(RemoteError::Config {
                    remote: name,
                    reason: super::ConfigProblem::NotCompiledIn,
                });
            }
        };
        Ok(StoreRemote::with_store(name, store, spec.read_only))
    }

    pub fn with_store(name: String, store: Box<dyn RemoteStore>, read_only: bool) -> StoreRemote {
        StoreRemote {
            name,
            store,
            read_only,
            gave_up: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn store_error(&self, action: &'static str, path: &str, error: StoreError) -> RemoteError {
        match error {
            StoreError::Unreachable(cause) => {
                // Only the first failure is reported: nodes fetching in parallel may fail at
                // the same moment, and the run should say it once.
                if self.gave_up.swap(true, Ordering::SeqCst) {
                    return RemoteError::GaveUp {
                        remote: self.name.clone(),
                    };
                }
                RemoteError::Unreachable {
                    remote: self.name.clone(),
                    cause,
                }
            }
            StoreError::Refused(cause) => {
                // Only the first failure is reported: nodes fetching in parallel may fail at
                // the same moment, and the run should say it once.
                if self.gave_up.swap(true, Ordering::SeqCst) {
                    return RemoteError::GaveUp {
                        remote: self.name.clone(),
                    };
                }
                RemoteError::Refused {
                    remote: self.name.clone(),
                    cause,
                }
            }
            StoreError::Failed(cause) => RemoteError::Transfer {
                remote: self.name.clone(),
                action,
                path: path.to_string(),
                cause,
            },
        }
    }

    fn invalid(&self, key: &ContentHash, reason: EntryProblem) -> RemoteError {
        RemoteError::Invalid {
            remote: self.name.clone(),
            key: key.short(),
            reason,
        }
    }

    fn cache_error(&self, source: CacheError) -> RemoteError {
        RemoteError::Cache {
            remote: self.name.clone(),
            source,
        }
    }

    fn check_reachable(&self) -> Result<(), RemoteError> {
        if self.gave_up.load(Ordering::Relaxed) {
            Err(RemoteError::GaveUp {
                remote: self.name.clone(),
            })
        } else {
            Ok(())
        }
    }

    /// The record for `key`, checked but not admitted anywhere; `None` if the remote lacks it.
    pub fn fetch_record(&self, key: &ContentHash) -> Result<Option<Record>, RemoteError> {
        self.check_reachable()?;
        let path = record_path(key);
        let Some(bytes) = self
            .store
            .get(&path)
            .map_err(|error| self.store_error("download", &path, error))?
        else {
            return Ok(None);
        };
        check_record(key, &bytes)
            .map(Some)
            .map_err(|reason| self.invalid(key, reason))
    }

    /// Downloads the entry for `key`, verifies all of it, and only then admits it into `cache`:
    /// blobs first, the record (marked `fetched_from`) last. `None` if the remote lacks it.
    pub fn fetch_entry(
        &self,
        key: &ContentHash,
        cache: &Cache,
    ) -> Result<Option<FetchOutcome>, RemoteError> {
        let Some(mut record) = self.fetch_record(key)? else {
            return Ok(None);
        };
        let mut verified = Vec::new();
        let mut seen = BTreeSet::new();
        let mut bytes_downloaded = 0;
        for (output, reference) in &record.outputs {
            if !seen.insert(reference.blob) || cache.blob_is_intact(reference).is_ok() {
                continue;
            }
            let path = blob_path(&reference.blob);
            let bytes = self
                .store
                .get(&path)
                .map_err(|error| self.store_error("download", &path, error))?
                .ok_or_else(|| {
                    self.invalid(
                        key,
                        EntryProblem::MissingBlob {
                            output: output.clone(),
                            blob: reference.blob.short(),
                        },
                    )
                })?;
            check_blob(output, reference, &bytes).map_err(|reason| self.invalid(key, reason))?;
            bytes_downloaded += bytes.len() as u64;
            verified.push(bytes);
        }
        // Everything checked: nothing of a bad entry ever reaches the cache.
        for bytes in verified {
            cache
                .put_blob(&bytes)
                .map_err(|error| self.cache_error(error))?;
        }
        record.provenance.fetched_from = Some(self.name.clone());
        cache
            .write_record(&record)
            .map_err(|error| self.cache_error(error))?;
        Ok(Some(FetchOutcome {
            record,
            bytes_downloaded,
        }))
    }

    /// Uploads an entry of `cache`: each missing blob (read back and verified first), then the
    /// record. What the remote already has is skipped.
    pub fn push_entry(&self, record: &Record, cache: &Cache) -> Result<PushOutcome, RemoteError> {
        if self.read_only {
            return Err(RemoteError::ReadOnly {
                remote: self.name.clone(),
            });
        }
        self.check_reachable()?;
        self.store
            .prepare_for_upload()
            .map_err(|error| self.store_error("create", "", error))?;
        let record_path = record_path(&record.key);
        let has_record = self
            .store
            .size(&record_path)
            .map_err(|error| self.store_error("look up", &record_path, error))?
            .is_some();
        let mut blobs = 0;
        let mut bytes_uploaded = 0;
        let mut seen = BTreeSet::new();
        for reference in record.outputs.values() {
            if !seen.insert(reference.blob) {
                continue;
            }
            let path = blob_path(&reference.blob);
            let remote_size = self
                .store
                .size(&path)
                .map_err(|error| self.store_error("look up", &path, error))?;
            if remote_size == Some(reference.size) {
                continue;
            }
            let bytes = cache
                .read_blob(&reference.blob)
                .map_err(|error| self.cache_error(error))?;
            bytes_uploaded += bytes.len() as u64;
            self.store
                .put(&path, bytes)
                .map_err(|error| self.store_error("upload", &path, error))?;
            blobs += 1;
        }
        if has_record && blobs == 0 {
            return Ok(PushOutcome::AlreadyThere);
        }
        if !has_record {
            // Where this copy came from is ours to know; the shared record says how it was built.
            let mut shared = record.clone();
            shared.provenance.fetched_from = None;
            let bytes = serde_json::to_vec_pretty(&shared).expect("records always serialise");
            bytes_uploaded += bytes.len() as u64;
            self.store
                .put(&record_path, bytes)
                .map_err(|error| self.store_error("upload", &record_path, error))?;
        }
        Ok(PushOutcome::Uploaded {
            record: !has_record,
            blobs,
            bytes: bytes_uploaded,
        })
    }

    /// Every record on the remote, by key.
    pub fn list_records(&self) -> Result<Vec<(ContentHash, Listed)>, RemoteError> {
        self.check_reachable()?;
        let listed = self
            .store
            .list("records")
            .map_err(|error| self.store_error("list", "records", error))?;
        Ok(listed
            .into_iter()
            .filter_map(|object| {
                let name = object
                    .path
                    .strip_prefix("records/")?
                    .strip_suffix(".json")?;
                let key = name.parse().ok()?;
                Some((key, object))
            })
            .collect())
    }

    /// Every blob on the remote, by hash.
    pub fn list_blobs(&self) -> Result<Vec<(ContentHash, Listed)>, RemoteError> {
        self.check_reachable()?;
        let listed = self
            .store
            .list("blobs")
            .map_err(|error| self.store_error("list", "blobs", error))?;
        Ok(listed
            .into_iter()
            .filter_map(|object| {
                let hash: ContentHash = object.path.rsplit('/').next()?.parse().ok()?;
                (object.path == blob_path(&hash)).then_some((hash, object))
            })
            .collect())
    }

    pub fn delete(&self, path: &str) -> Result<(), RemoteError> {
        if self.read_only {
            return Err(RemoteError::ReadOnly {
                remote: self.name.clone(),
            });
        }
        self.check_reachable()?;
        self.store
            .delete(path)
            .map_err(|error| self.store_error("delete", path, error))
    }
}

impl Remote for StoreRemote {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn fetch_record(&self, key: &ContentHash) -> Result<Option<Record>, RemoteError> {
        StoreRemote::fetch_record(self, key)
    }

    /// During a run: after the first failure to reach the remote (or its first refusal), later
    /// lookups are quiet misses.
    fn fetch(&self, key: &ContentHash, cache: &Cache) -> Result<bool, RemoteError> {
        if self.gave_up.load(Ordering::Relaxed) {
            return Ok(false);
        }
        match self.fetch_entry(key, cache) {
            Ok(outcome) => Ok(outcome.is_some()),
            Err(RemoteError::Unreachable { remote, cause }) => Err(RemoteError::Unreachable {
                remote,
                cause: format!("{cause} (not asking it again during this run)"),
            }),
            Err(RemoteError::Refused { remote, cause }) => Err(RemoteError::Refused {
                remote,
                cause: format!("{cause}; not asking it again during this run"),
            }),
            Err(RemoteError::GaveUp { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn push(&self, record: &Record, cache: &Cache) -> Result<(), RemoteError> {
        if self.gave_up.load(Ordering::Relaxed) {
            return Err(RemoteError::GaveUp {
                remote: self.name.clone(),
            });
        }
        self.push_entry(record, cache).map(|_| ())
    }
}
