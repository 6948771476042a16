//! `tpipe cache push` and `tpipe cache pull`: many entries at once, side by side.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;

use super::{PushOutcome, RemoteError, StoreRemote};
use crate::cache::{Cache, Lookup};
use crate::hash::ContentHash;
use crate::plan::{plan, PlanStatus};
use crate::record::RecordHead;
use crate::session::{ResolvedKey, SelectionError, Session, Walked};
use crate::spec::NodeSpec;

/// Transfers are network-bound, not CPU-bound: more of them than cores.
const TRANSFER_THREADS: usize = 8;

/// Receives progress; the CLI draws it.
pub trait TransferObserver: Sync {
    fn start(&self, _label: &str, _total: usize) {}
    fn advance(&self, _item: &str) {}
    fn finish(&self) {}
}

/// Draws nothing (tests, scripts).
pub struct Silent;
impl TransferObserver for Silent {}

pub(crate) fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(TRANSFER_THREADS)
        .thread_name(|index| format!("tpipe-transfer-{index}"))
        .build()
        .expect("transfer threads start")
}

#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    pub records_uploaded: usize,
    pub blobs_uploaded: usize,
    pub bytes_uploaded: u64,
    pub already_there: usize,
    /// The entries that could not be pushed, by why (one reason, however many entries).
    pub failures: BTreeMap<String, Vec<String>>,
    /// Why pushing stopped, when a server kept failing uploads.
    pub stopped: Option<String>,
    /// Entries not tried once pushing had stopped.
    pub not_tried: usize,
}

impl PushReport {
    fn failed(&mut self, key: &ContentHash, why: String) {
        self.failures.entry(why).or_default().push(key.short());
    }

    pub fn failed_entries(&self) -> usize {
        self.failures.values().map(Vec::len).sum::<usize>() + self.not_tried
    }
}

/// The keys of the nodes of `session` that are in the local cache now.
pub fn cached_keys(session: &Session) -> Result<Vec<ContentHash>, SelectionError> {
    let everything = session.selection(&[])?;
    Ok(plan(session, &everything, &[])
        .nodes
        .into_iter()
        .filter(|node| node.status == PlanStatus::Cached)
        .filter_map(|node| node.key)
        .collect())
}

/// Pushes the entries of `keys` from `cache`. Stops at the first failure to reach the remote;
/// other failures are collected per entry.
pub fn push(
    remote: &StoreRemote,
    cache: &Cache,
    keys: &[ContentHash],
    observer: &dyn TransferObserver,
) -> Result<PushReport, RemoteError> {
    if remote.is_read_only() {
        return Err(RemoteError::ReadOnly {
            remote: remote.name().to_string(),
        });
    }
    observer.start("push", keys.len());
    let results: Vec<(ContentHash, Result<PushOutcome, PushFailure>)> = pool().install(|| {
        keys.par_iter()
            .map(|key| {
                let result = match cache.lookup(key) {
                    Lookup::Hit(record) => remote.push_entry(&record, cache).map_err(PushFailure::Remote),
                    Lookup::Miss => Err(PushFailure::Local("not in the local cache".into())),
                    Lookup::Damaged(damage) => {
                        Err(PushFailure::Local(format!("the local entry is damaged ({damage}); not pushed (hint: `tpipe run` rebuilds it)")))
                    }
                };
                observer.advance(&key.short());
                (*key, result)
            })
            .collect()
    });
    observer.finish();
    let mut report = PushReport::default();
    let mut unreachable = None;
    for (key, result) in results {
        match result {
            Ok(PushOutcome::AlreadyThere) => report.already_there += 1,
            Ok(PushOutcome::Uploaded {
                record,
                blobs,
                bytes,
            }) => {
                report.records_uploaded += usize::from(record);
                report.already_there += usize::from(!record);
                report.blobs_uploaded += blobs;
                report.bytes_uploaded += bytes;
            }
            // One unreachable remote explains every other failure: it is the command's error.
            Err(PushFailure::Remote(error)) if error.is_remote_wide() => {
                keep_first_cause(&mut unreachable, error)
            }
            Err(PushFailure::Remote(error @ RemoteError::StoppedPushing { .. })) => {
                report.stopped = Some(error.to_string());
                report.not_tried += 1;
            }
            Err(PushFailure::Remote(RemoteError::NotPushing { .. })) => report.not_tried += 1,
            Err(PushFailure::Remote(error)) => report.failed(&key, error.without_path()),
            Err(PushFailure::Local(reason)) => report.failed(&key, reason),
        }
    }
    match unreachable {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

/// Among failures to reach the remote, the one that says why (not "gave up after an earlier one").
fn keep_first_cause(kept: &mut Option<RemoteError>, error: RemoteError) {
    if kept
        .as_ref()
        .is_none_or(|kept| matches!(kept, RemoteError::GaveUp { .. }))
    {
        *kept = Some(error);
    }
}

enum PushFailure {
    Remote(RemoteError),
    Local(String),
}

/// How one node fared in a pull.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum PullStatus {
    Cached,
    Fetched {
        bytes: u64,
    },
    /// The remote does not have it; it must be built.
    NotOnRemote,
    /// Its key depends on a node that is neither cached nor on the remote.
    AfterMissing {
        node: String,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Default, Serialize)]
pub struct PullReport {
    /// In build order.
    pub nodes: Vec<(String, PullStatus)>,
}

impl PullReport {
    pub fn count(&self, matches: impl Fn(&PullStatus) -> bool) -> usize {
        self.nodes
            .iter()
            .filter(|(_, status)| matches(status))
            .count()
    }
}

/// What a lookup found for one node while walking a pipeline's keys.
pub(crate) enum Found {
    Record(Arc<RecordHead>, PullStatus),
    Missing(PullStatus),
}

/// Derives a pipeline's keys level by level ([`Session::walk_keys`]): every node whose inputs
/// are known is looked up (side by side), and what it finds makes the next level's keys known.
/// `lookup` gets the node's name and key. Stops at the first failure to reach the remote.
pub(crate) fn walk_keys(
    session: &Session,
    observer: &dyn TransferObserver,
    lookup: &(dyn Fn(&str, &ContentHash) -> Result<Found, RemoteError> + Sync),
) -> Result<Vec<(String, Option<ContentHash>, PullStatus)>, RemoteError> {
    let order = session
        .selection(&[])
        .expect("selecting every node cannot fail");
    observer.start("pull", order.len());
    // Nodes of one level fail side by side when the remote goes away: keep the clearest cause.
    let unreachable: Mutex<Option<RemoteError>> = Mutex::new(None);
    let look = |node: &NodeSpec, resolved: &ResolvedKey| {
        let found = lookup(&node.name, &resolved.key);
        observer.advance(&node.name);
        match found {
            Ok(Found::Record(record, status)) => Ok((Some(record), status)),
            Ok(Found::Missing(status)) => Ok((None, status)),
            Err(error) => {
                keep_first_cause(&mut unreachable.lock().unwrap(), error);
                Err(())
            }
        }
    };
    let walked = session.walk_keys(&order, &look, Some(&pool()));
    let mut walked = match walked {
        Ok(walked) => walked,
        Err(()) => {
            observer.finish();
            return Err(unreachable
                .into_inner()
                .unwrap()
                .expect("a stopped walk kept its cause"));
        }
    };
    let outcome = order
        .iter()
        .map(|position| {
            let name = session.pipeline.nodes[*position].name.clone();
            match walked.take(*position).expect("every node is walked") {
                Walked::Resolved { key, status } => (name, Some(key), status),
                Walked::After { node } => {
                    observer.advance(&name);
                    (name, None, PullStatus::AfterMissing { node })
                }
                Walked::Failed { error } => {
                    observer.advance(&name);
                    (
                        name,
                        None,
                        PullStatus::Failed {
                            error: error.to_string(),
                        },
                    )
                }
            }
        })
        .collect();
    observer.finish();
    Ok(outcome)
}

/// Fetches what `session`'s pipeline needs and the local cache lacks. Entries that fail
/// verification are reported per node; an unreachable remote stops the pull.
pub fn pull(
    remote: &StoreRemote,
    session: &Session,
    observer: &dyn TransferObserver,
) -> Result<PullReport, RemoteError> {
    let cache = &session.cache;
    let lookup = |_name: &str, key: &ContentHash| -> Result<Found, RemoteError> {
        if let Lookup::Hit(record) = cache.lookup_head(key) {
            return Ok(Found::Record(Arc::from(record), PullStatus::Cached));
        }
        match remote.fetch_entry(key, cache) {
            Ok(Some(fetched)) => Ok(Found::Record(
                Arc::new(fetched.record.head()),
                PullStatus::Fetched {
                    bytes: fetched.bytes_downloaded,
                },
            )),
            Ok(None) => Ok(Found::Missing(PullStatus::NotOnRemote)),
            Err(error) if error.is_remote_wide() => Err(error),
            Err(error) => Ok(Found::Missing(PullStatus::Failed {
                error: error.to_string(),
            })),
        }
    };
    let walked = walk_keys(session, observer, &lookup)?;
    let updates: BTreeMap<String, ContentHash> = walked
        .iter()
        .filter(|(_, _, status)| matches!(status, PullStatus::Cached | PullStatus::Fetched { .. }))
        .filter_map(|(name, key, _)| key.map(|key| (name.clone(), key)))
        .collect();
    // Like a run, a pull records the keys it reached so `plan` can explain later changes.
    let _ = cache.update_index(
        &session.pipeline_id,
        updates.iter().map(|(name, key)| (name.as_str(), *key)),
    );
    let _ = cache.save_stat_cache();
    Ok(PullReport {
        nodes: walked
            .into_iter()
            .map(|(name, _, status)| (name, status))
            .collect(),
    })
}
