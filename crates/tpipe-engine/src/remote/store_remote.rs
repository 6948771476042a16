//! Cache entries on a [`RemoteStore`]: verified downloads, ordered uploads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::directory::DirectoryStore;
use super::entry::{blob_path, check_blob, check_record, record_path, EntryProblem};
use super::store::{Listed, RemoteStore, StoreError};
use super::{Remote, RemoteError, RemoteLocation, RemoteSettings, RemoteSpec};
use crate::cache::{Cache, CacheError};
use crate::hash::ContentHash;
use crate::record::Record;
use crate::signature::{SigningKey, TrustPolicy};

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
    /// Whose signatures a record fetched from here needs.
    trust: TrustPolicy,
    /// Signs what this remote is sent (`signing_key`).
    signer: Option<SigningKey>,
    /// What a cluster job needs to reach this remote as this process does.
    job_environment: Vec<(String, String)>,
    /// Server errors in a row, of reads and of uploads: at [`SERVER_ERRORS_BEFORE_STOPPING`]
    /// the run stops asking (reads) or pushing (uploads); a success starts the count again.
    read_errors_in_a_row: AtomicU32,
    upload_errors_in_a_row: AtomicU32,
    /// Set once uploads stop for the rest of the run (said once, with its cause).
    stopped_pushing: AtomicBool,
}

/// What an upload does with the record under its key.
enum RecordPlan {
    /// Write this record (ours, signed if we sign).
    Write(Box<Record>),
    /// The remote's record stands: it is ours, or carries our signature.
    Keep,
    /// The remote's record describes other outputs of the same action, which the trust rule
    /// takes: neither our record nor our blobs are needed.
    KeepOtherOutputs,
}

/// How many server errors in a row make a run stop asking a remote, or pushing to it.
pub const SERVER_ERRORS_BEFORE_STOPPING: u32 = 3;

/// The likely server-side cause of an upload refused with `status`, in a server admin's words.
fn upload_hint(status: u16) -> Option<&'static str> {
    match status {
        405 => Some("the server does not take PUT there: turn WebDAV on for that location (nginx: `dav_methods PUT DELETE MKCOL COPY MOVE;`)"),
        409 => Some("the server cannot create the upload's folders (nginx: `create_full_put_path on;`)"),
        413 => Some("the server refuses uploads this large (nginx: `client_max_body_size 0;`)"),
        507 => Some("the server's disk is full"),
        500..=599 => Some("the server could not store the upload: check that its worker can write the remote's folder and its `client_body_temp_path` (nginx), and read the server's error log"),
        _ => None,
    }
}

impl StoreRemote {
    /// Opens the remote a spec names, with the credentials, certificates and keys `settings`
    /// name. Nothing is contacted yet.
    pub fn open(spec: &RemoteSpec, settings: &RemoteSettings) -> Result<StoreRemote, RemoteError> {
        let name = spec.location.to_string();
        let config_error = |reason| RemoteError::Config {
            remote: name.clone(),
            reason: Box::new(reason),
        };
        let access = &settings.access;
        let trust = access.trust_policy().map_err(config_error)?;
        // A remote that is only read is never signed for: its key is not even read.
        let signer = if spec.read_only {
            None
        } else {
            access.signing_key().map_err(config_error)?
        };
        // Only a WebDAV remote finds credentials of ours (S3's are the AWS variables).
        let (store, credentials): (Box<dyn RemoteStore>, _) = match &spec.location {
            RemoteLocation::Directory(path) => (Box::new(DirectoryStore::new(path.clone())), None),
            #[cfg(feature = "remote")]
            RemoteLocation::WebDav(url) => {
                let (store, found) =
                    super::object::ObjectStoreRemote::webdav(url, access).map_err(config_error)?;
                (Box::new(store), found.map(|found| found.credentials))
            }
            #[cfg(feature = "remote")]
            RemoteLocation::S3 { bucket, prefix } => (
                Box::new(
                    super::object::ObjectStoreRemote::s3(bucket, prefix, settings)
                        .map_err(config_error)?,
                ),
                None,
            ),
            #[cfg(not(feature = "remote"))]
            _ => return Err(config_error(super::ConfigProblem::NotCompiledIn)),
        };
        let job_environment = access.job_environment(credentials.as_ref());
        let mut remote = StoreRemote::with_store(name, store, spec.read_only);
        remote.trust = trust;
        remote.signer = signer;
        remote.job_environment = job_environment;
        Ok(remote)
    }

    pub fn with_store(name: String, store: Box<dyn RemoteStore>, read_only: bool) -> StoreRemote {
        StoreRemote {
            name,
            store,
            read_only,
            gave_up: AtomicBool::new(false),
            trust: TrustPolicy::default(),
            signer: None,
            job_environment: Vec::new(),
            read_errors_in_a_row: AtomicU32::new(0),
            upload_errors_in_a_row: AtomicU32::new(0),
            stopped_pushing: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The rule records fetched from this remote must pass.
    pub fn trust_policy(&self) -> &TrustPolicy {
        &self.trust
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
            StoreError::Server { message: cause, .. } | StoreError::Failed(cause) => {
                RemoteError::Transfer {
                    remote: self.name.clone(),
                    action,
                    path: path.to_string(),
                    cause,
                }
            }
        }
    }

    /// A read's result, counting server errors in a row: after a few the remote is given up
    /// for the run, as if unreachable.
    fn counted_read<T>(
        &self,
        action: &'static str,
        path: &str,
        result: Result<T, StoreError>,
    ) -> Result<T, RemoteError> {
        match result {
            Ok(value) => {
                self.read_errors_in_a_row.store(0, Ordering::Relaxed);
                Ok(value)
            }
            Err(StoreError::Server { status, message }) if status >= 500 => {
                let in_a_row = self.read_errors_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
                let error = if in_a_row >= SERVER_ERRORS_BEFORE_STOPPING {
                    StoreError::Unreachable(format!(
                        "{in_a_row} requests in a row failed with a server error, the last ({action} `{path}`) with {message}"
                    ))
                } else {
                    StoreError::Server { status, message }
                };
                Err(self.store_error(action, path, error))
            }
            Err(error) => Err(self.store_error(action, path, error)),
        }
    }

    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        self.counted_read("download", path, self.store.get(path))
    }

    fn size(&self, path: &str) -> Result<Option<u64>, RemoteError> {
        self.counted_read("look up", path, self.store.size(path))
    }

    /// Uploads one object. A server that fails uploads in a row ([`SERVER_ERRORS_BEFORE_STOPPING`]
    /// 5xx), or refuses one in a way every other will be too (405, 409, 507), stops this run's
    /// pushing to it: said once, with the likely cause on the server.
    fn upload(&self, path: &str, bytes: Vec<u8>) -> Result<(), RemoteError> {
        let (status, message) = match self.store.put(path, bytes) {
            Ok(()) => {
                self.upload_errors_in_a_row.store(0, Ordering::Relaxed);
                return Ok(());
            }
            Err(StoreError::Server { status, message }) => (status, message),
            Err(error) => return Err(self.store_error("upload", path, error)),
        };
        let in_a_row = self.upload_errors_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
        let hint = upload_hint(status);
        let every_upload_fails = matches!(status, 405 | 409 | 507);
        if every_upload_fails || (status >= 500 && in_a_row >= SERVER_ERRORS_BEFORE_STOPPING) {
            if self.stopped_pushing.swap(true, Ordering::SeqCst) {
                return Err(RemoteError::NotPushing {
                    remote: self.name.clone(),
                });
            }
            let cause = if every_upload_fails {
                format!("uploading `{path}` failed with {message}")
            } else {
                format!("{in_a_row} uploads in a row failed, the last (`{path}`) with {message}")
            };
            return Err(RemoteError::StoppedPushing {
                remote: self.name.clone(),
                cause,
                hint: hint.unwrap_or("read the server's error log"),
            });
        }
        let cause = match (status, hint) {
            (413, Some(hint)) => format!("{message} (hint: {hint})"),
            _ => message,
        };
        Err(RemoteError::Transfer {
            remote: self.name.clone(),
            action: "upload",
            path: path.to_string(),
            cause,
        })
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

    /// The record for `key` as the remote has it, checked for integrity (it parses, names
    /// `key`, its digest matches its outputs) but not for trust; `None` if the remote lacks it.
    /// What gc and `cache verify --remote` read.
    pub fn read_record(&self, key: &ContentHash) -> Result<Option<Record>, RemoteError> {
        self.check_reachable()?;
        let path = record_path(key);
        let Some(bytes) = self.get(&path)? else {
            return Ok(None);
        };
        check_record(key, &bytes)
            .map(Some)
            .map_err(|reason| self.invalid(key, reason))
    }

    /// The record for `key`, checked (integrity, then the trust rule) but not admitted
    /// anywhere; `None` if the remote lacks it.
    pub fn fetch_record(&self, key: &ContentHash) -> Result<Option<Record>, RemoteError> {
        let record = self.read_record(key)?;
        if let Some(record) = &record {
            self.trust
                .check(record)
                .map_err(|problem| self.invalid(key, EntryProblem::Untrusted(problem)))?;
        }
        Ok(record)
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
            let bytes = self.get(&path)?.ok_or_else(|| {
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

    /// What to do about the record the remote has under our key, when we sign.
    fn signed_record_plan(
        &self,
        signer: &SigningKey,
        ours: &Record,
    ) -> Result<RecordPlan, RemoteError> {
        let mut signed = ours.clone();
        signer.sign_record(&mut signed);
        let Some(bytes) = self.get(&record_path(&ours.key))? else {
            return Ok(RecordPlan::Write(Box::new(signed)));
        };
        let Ok(theirs) = check_record(&ours.key, &bytes) else {
            // A damaged record is replaced by a whole one.
            return Ok(RecordPlan::Write(Box::new(signed)));
        };
        if theirs.content != ours.content {
            // Another build of the same action: a trusted one stays, any other gives way.
            return Ok(match self.trust.check(&theirs) {
                Ok(Some(_)) => RecordPlan::KeepOtherOutputs,
                _ => RecordPlan::Write(Box::new(signed)),
            });
        }
        let our_signature = signed.signatures.last().expect("just signed").clone();
        if theirs.signatures.contains(&our_signature) {
            return Ok(RecordPlan::Keep);
        }
        // The same outputs: every signature they carry stays beside ours.
        let mut merged = theirs.signatures;
        merged.retain(|signature| !signed.signatures.contains(signature));
        merged.extend(signed.signatures);
        signed.signatures = merged;
        Ok(RecordPlan::Write(Box::new(signed)))
    }

    /// Uploads an entry of `cache`: each missing blob (read back and verified first), then the
    /// record, signed when a `signing_key` is set. What the remote already has is skipped.
    pub fn push_entry(&self, record: &Record, cache: &Cache) -> Result<PushOutcome, RemoteError> {
        if self.read_only {
            return Err(RemoteError::ReadOnly {
                remote: self.name.clone(),
            });
        }
        if self.stopped_pushing.load(Ordering::Relaxed) {
            return Err(RemoteError::NotPushing {
                remote: self.name.clone(),
            });
        }
        self.check_reachable()?;
        self.store
            .prepare_for_upload()
            .map_err(|error| self.store_error("create", "", error))?;
        // Where this copy came from is ours to know; the shared record says how it was built.
        let mut shared = record.clone();
        shared.provenance.fetched_from = None;
        let record_path = record_path(&record.key);
        let plan = match &self.signer {
            Some(signer) => self.signed_record_plan(signer, &shared)?,
            None if self.size(&record_path)?.is_none() => RecordPlan::Write(Box::new(shared)),
            None => RecordPlan::Keep,
        };
        let to_write = match plan {
            // Its outputs are not ours: ours are not needed there.
            RecordPlan::KeepOtherOutputs => return Ok(PushOutcome::AlreadyThere),
            RecordPlan::Keep => None,
            RecordPlan::Write(record) => Some(*record),
        };
        let mut blobs = 0;
        let mut bytes_uploaded = 0;
        let mut seen = BTreeSet::new();
        for reference in record.outputs.values() {
            if !seen.insert(reference.blob) {
                continue;
            }
            let path = blob_path(&reference.blob);
            if self.size(&path)? == Some(reference.size) {
                continue;
            }
            let bytes = cache
                .read_blob(&reference.blob)
                .map_err(|error| self.cache_error(error))?;
            bytes_uploaded += bytes.len() as u64;
            self.upload(&path, bytes)?;
            blobs += 1;
        }
        let Some(shared) = to_write else {
            return Ok(if blobs == 0 {
                PushOutcome::AlreadyThere
            } else {
                PushOutcome::Uploaded {
                    record: false,
                    blobs,
                    bytes: bytes_uploaded,
                }
            });
        };
        let bytes = serde_json::to_vec_pretty(&shared).expect("records always serialise");
        bytes_uploaded += bytes.len() as u64;
        self.upload(&record_path, bytes)?;
        Ok(PushOutcome::Uploaded {
            record: true,
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

    fn job_environment(&self) -> Vec<(String, String)> {
        self.job_environment.clone()
    }
}
