//! `tpipe cache gc FILE… --remote R`: removes from a remote what none of the given pipelines
//! reaches. Deleting from a shared store is never done on one command: a dry run lists what would
//! go and prints a token (a digest of that list); only a rerun with `--confirm TOKEN`, while the
//! list is still the same, deletes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;

use super::transfer::{walk_keys, Found, PullStatus, TransferObserver};
use super::{Listed, RemoteError, StoreRemote};
use crate::cache::Lookup;
use crate::hash::ContentHash;
use crate::session::Session;

/// What a remote gc would remove and keep.
#[derive(Debug)]
pub struct RemoteGcPlan {
    pub dead_records: Vec<Listed>,
    pub dead_blobs: Vec<Listed>,
    pub kept_records: usize,
    pub kept_blobs: usize,
    /// Unreached, but written within the grace period: perhaps a push still under way.
    pub too_recent: usize,
    /// Names the exact list of what would be removed; `--confirm` must repeat it.
    pub token: String,
}

impl RemoteGcPlan {
    pub fn bytes(&self) -> u64 {
        self.dead_records
            .iter()
            .chain(&self.dead_blobs)
            .map(|object| object.size)
            .sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteGcError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(
        "cannot tell what node `{node}` of `{pipeline}` would keep on the remote: {reason} \
         (hint: gc needs every key of the pipelines it is given; fix this or leave that pipeline out)"
    )]
    UnknownKey {
        pipeline: String,
        node: String,
        reason: String,
    },
}

/// Works out what the remote holds that `sessions` no longer reach. Keys are derived the way a
/// teammate's run would: from the remote's records where it has them, else from the local cache.
pub fn plan_remote_gc(
    remote: &StoreRemote,
    sessions: &[Session],
    grace: Duration,
    observer: &dyn TransferObserver,
) -> Result<RemoteGcPlan, RemoteGcError> {
    let mut live_keys = BTreeSet::new();
    let mut live_blobs = BTreeSet::new();
    for session in sessions {
        let lookup = |_name: &str, key: &ContentHash| -> Result<Found, RemoteError> {
            let on_remote = match remote.read_record(key) {
                Ok(found) => found,
                Err(error) if error.is_remote_wide() => return Err(error),
                // A damaged or untrusted entry the pipelines reach is kept: this is not the place
                // to judge it (its blobs stay with it).
                Err(_) => {
                    return Ok(match session.cache.lookup_head(key) {
                        Lookup::Hit(record) => {
                            Found::Record(Arc::from(record), PullStatus::Fetched { bytes: 0 })
                        }
                        _ => Found::Missing(PullStatus::Fetched { bytes: 0 }),
                    })
                }
            };
            if let Some(record) = on_remote {
                return Ok(Found::Record(
                    Arc::new(record.head()),
                    PullStatus::Fetched { bytes: 0 },
                ));
            }
            Ok(match session.cache.lookup_head(key) {
                Lookup::Hit(record) => Found::Record(Arc::from(record), PullStatus::Cached),
                _ => Found::Missing(PullStatus::NotOnRemote),
            })
        };
        let walked = walk_keys(session, observer, &lookup)?;
        for (name, key, status) in walked {
            match status {
                PullStatus::Failed { error } => {
                    return Err(RemoteGcError::UnknownKey {
                        pipeline: session.pipeline.file.display().to_string(),
                        node: name,
                        reason: error,
                    });
                }
                PullStatus::Fetched { .. } => {
                    live_keys.insert(key.expect("found nodes have keys"));
                }
                _ => {}
            }
        }
    }
    // The blobs of the live records as the remote has them (a teammate's build of a key may
    // differ from ours).
    let remote_records = remote.list_records()?;
    for (key, _) in &remote_records {
        if live_keys.contains(key) {
            if let Ok(Some(record)) = remote.read_record(key) {
                live_blobs.extend(record.outputs.values().map(|output| output.blob));
            }
        }
    }
    let remote_blobs = remote.list_blobs()?;
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let recent = |object: &Listed| object.modified.is_some_and(|modified| modified > cutoff);
    let mut plan = RemoteGcPlan {
        dead_records: Vec::new(),
        dead_blobs: Vec::new(),
        kept_records: 0,
        kept_blobs: 0,
        too_recent: 0,
        token: String::new(),
    };
    for (key, object) in remote_records {
        if live_keys.contains(&key) {
            plan.kept_records += 1;
        } else if recent(&object) {
            plan.too_recent += 1;
        } else {
            plan.dead_records.push(object);
        }
    }
    for (hash, object) in remote_blobs {
        if live_blobs.contains(&hash) {
            plan.kept_blobs += 1;
        } else if recent(&object) {
            plan.too_recent += 1;
        } else {
            plan.dead_blobs.push(object);
        }
    }
    plan.dead_records.sort_by(|a, b| a.path.cmp(&b.path));
    plan.dead_blobs.sort_by(|a, b| a.path.cmp(&b.path));
    let listing: String = plan
        .dead_records
        .iter()
        .chain(&plan.dead_blobs)
        .map(|object| format!("{}\n", object.path))
        .collect();
    plan.token = ContentHash::of_bytes(listing.as_bytes()).short();
    Ok(plan)
}

/// Deletes what `plan` lists: records first, so no record is left pointing at a deleted blob.
/// Returns how many objects were removed.
pub fn execute_remote_gc(
    remote: &StoreRemote,
    plan: &RemoteGcPlan,
    observer: &dyn TransferObserver,
) -> Result<usize, RemoteError> {
    observer.start("delete", plan.dead_records.len() + plan.dead_blobs.len());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(8)
        .build()
        .expect("delete threads start");
    let mut removed = 0;
    for group in [&plan.dead_records, &plan.dead_blobs] {
        let results: Vec<Result<(), RemoteError>> = pool.install(|| {
            group
                .par_iter()
                .map(|object| {
                    let result = remote.delete(&object.path);
                    observer.advance(&object.path);
                    result
                })
                .collect()
        });
        for result in results {
            result?;
            removed += 1;
        }
    }
    observer.finish();
    Ok(removed)
}
