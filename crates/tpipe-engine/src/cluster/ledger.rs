//! The ledger of submitted jobs: every submission a run makes (one job, or an array of them)
//! is written to `cluster-jobs/<backend>-<first job id>.json` in the cache as soon as the
//! scheduler has answered with its ids, in attached and detached runs alike. So no job is left
//! untracked when its submitter dies: a later run follows the live jobs of its keys instead of
//! submitting them again, `tpipe status` lists them and `tpipe cancel` cancels them (marking
//! them, so a rerun submits anew). An entry is removed once every job in it has ended.
//!
//! Entries are written whole (temporary file and rename) and read whole; they only save work
//! (a lost entry costs a duplicate job, whose build writes the same bytes), so an unreadable
//! one is skipped.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{ClusterError, JobId, JobStatus};
use crate::hash::ContentHash;

/// The ledger's folder in the cache.
pub const FOLDER: &str = "cluster-jobs";
const FORMAT: u32 = 1;

/// One submission: the jobs one call to the scheduler made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub format: u32,
    /// The cluster backend (its `name`).
    pub backend: String,
    /// The id of the pipeline file whose run submitted it (`key::pipeline_id`), and its path.
    pub pipeline: String,
    pub pipeline_file: String,
    /// When the scheduler took it (RFC 3339).
    pub submitted_at: String,
    pub jobs: Vec<LedgerJob>,
}

/// One job of a submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerJob {
    pub id: JobId,
    pub node: String,
    /// The key it builds; `None` for a `--detach` job that builds its node by name because its
    /// inputs were not built when it was submitted.
    pub key: Option<String>,
    /// `tpipe cancel` cancelled it: a later run submits its node anew.
    #[serde(default)]
    pub cancelled: bool,
}

impl Submission {
    pub fn new(
        backend: &str,
        pipeline: &ContentHash,
        pipeline_file: &Path,
        jobs: Vec<LedgerJob>,
    ) -> Submission {
        Submission {
            format: FORMAT,
            backend: backend.to_string(),
            pipeline: pipeline.to_hex(),
            pipeline_file: pipeline_file.display().to_string(),
            submitted_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            jobs,
        }
    }

    /// When it was submitted; the epoch when the entry does not say (so it counts as old).
    pub fn submitted(&self) -> SystemTime {
        humantime::parse_rfc3339(&self.submitted_at).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// The file it is kept in: named by the backend and its first job, so two submissions
    /// never share one.
    fn file_name(&self) -> String {
        let first = self.jobs.first().map_or("none", |job| job.id.as_str());
        let safe: String = format!("{}-{first}", self.backend)
            .chars()
            .map(|character| match character {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' => character,
                _ => '-',
            })
            .collect();
        format!("{safe}.json")
    }
}

/// A job the ledger names, with what its submission says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub backend: String,
    pub id: JobId,
    pub node: String,
    pub key: Option<ContentHash>,
    pub pipeline: String,
    pub submitted: SystemTime,
    pub cancelled: bool,
}

/// Whether the scheduler's listing shows `id` as still to run or running. A job missing from
/// a listing taken after it was submitted is over (the scheduler forgot it); one submitted after
/// the listing was taken (within the second an entry's time is written to) is not known to be
/// over.
pub fn is_live(
    id: &str,
    submitted: SystemTime,
    listing: &HashMap<JobId, JobStatus>,
    listed_at: SystemTime,
) -> bool {
    match listing.get(id) {
        Some(status) => !status.ended,
        None => submitted + Duration::from_secs(1) >= listed_at,
    }
}

/// The ledger of a cache, read into memory: its entries by file, and indexes by key, by node
/// (for jobs without a key) and by job id.
#[derive(Debug)]
pub struct Ledger {
    folder: PathBuf,
    temporary: PathBuf,
    files: HashMap<String, Submission>,
    /// When each file was last changed, as read: a file rewritten since is read again.
    changed: HashMap<String, Option<SystemTime>>,
    by_key: HashMap<ContentHash, (String, usize)>,
    by_node: HashMap<(String, String), (String, usize)>,
    by_job: HashMap<JobId, (String, usize)>,
}

impl Ledger {
    /// The ledger of the cache at `cache_dir`, as it is now (empty when there is none yet).
    pub fn open(cache_dir: &Path) -> Ledger {
        let mut ledger = Ledger {
            folder: cache_dir.join(FOLDER),
            temporary: cache_dir.join("tmp"),
            files: HashMap::new(),
            changed: HashMap::new(),
            by_key: HashMap::new(),
            by_node: HashMap::new(),
            by_job: HashMap::new(),
        };
        ledger.refresh();
        ledger
    }

    /// Reads the entries other processes wrote or rewrote since, and forgets those they
    /// removed.
    pub fn refresh(&mut self) {
        let Ok(listing) = std::fs::read_dir(&self.folder) else {
            return;
        };
        let mut present = HashSet::new();
        for entry in listing.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.ends_with(".json") {
                continue;
            }
            present.insert(name.clone());
            let changed = entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok();
            if self.files.contains_key(&name) && self.changed.get(&name) == Some(&changed) {
                continue;
            }
            self.forget(&name);
            self.changed.insert(name.clone(), changed);
            let read = std::fs::read(entry.path())
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Submission>(&bytes).ok())
                .filter(|submission| submission.format == FORMAT);
            if let Some(submission) = read {
                self.insert(name, submission);
            }
        }
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|name| !present.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            self.forget(&name);
        }
    }

    fn insert(&mut self, file: String, submission: Submission) {
        let when = submission.submitted();
        for (index, job) in submission.jobs.iter().enumerate() {
            let place = (file.clone(), index);
            self.by_job.insert(job.id.clone(), place.clone());
            let newer = |current: Option<&(String, usize)>| {
                current.is_none_or(|(other, _)| {
                    self.files
                        .get(other)
                        .is_none_or(|other| other.submitted() <= when)
                })
            };
            match job.key.as_deref().and_then(|key| key.parse().ok()) {
                Some(key) => {
                    if newer(self.by_key.get(&key)) {
                        self.by_key.insert(key, place);
                    }
                }
                None => {
                    let node = (submission.pipeline.clone(), job.node.clone());
                    if newer(self.by_node.get(&node)) {
                        self.by_node.insert(node, place);
                    }
                }
            }
        }
        self.files.insert(file, submission);
    }

    fn forget(&mut self, file: &str) {
        self.changed.remove(file);
        let Some(submission) = self.files.remove(file) else {
            return;
        };
        for job in &submission.jobs {
            if self
                .by_job
                .get(&job.id)
                .is_some_and(|(other, _)| other == file)
            {
                self.by_job.remove(&job.id);
            }
        }
        self.by_key.retain(|_, (other, _)| other != file);
        self.by_node.retain(|_, (other, _)| other != file);
    }

    fn entry_at(&self, (file, index): &(String, usize)) -> Option<Entry> {
        let submission = self.files.get(file)?;
        let job = submission.jobs.get(*index)?;
        Some(Entry {
            backend: submission.backend.clone(),
            id: job.id.clone(),
            node: job.node.clone(),
            key: job.key.as_deref().and_then(|key| key.parse().ok()),
            pipeline: submission.pipeline.clone(),
            submitted: submission.submitted(),
            cancelled: job.cancelled,
        })
    }

    /// The latest job submitted for `key`, if the ledger has one.
    pub fn for_key(&self, key: &ContentHash) -> Option<Entry> {
        self.by_key.get(key).and_then(|place| self.entry_at(place))
    }

    /// The latest job submitted, without a key, for node `node` of pipeline `pipeline`.
    pub fn for_node(&self, pipeline: &ContentHash, node: &str) -> Option<Entry> {
        self.by_node
            .get(&(pipeline.to_hex(), node.to_string()))
            .and_then(|place| self.entry_at(place))
    }

    /// Whether the ledger names job `id`.
    pub fn knows(&self, id: &str) -> bool {
        self.by_job.contains_key(id)
    }

    /// Every job the ledger names.
    pub fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.files.iter().flat_map(move |(file, submission)| {
            (0..submission.jobs.len())
                .filter_map(move |index| self.entry_at(&(file.clone(), index)))
        })
    }

    /// The jobs of a pipeline's `nodes` (each with its current key, when known): those its
    /// runs submitted for them, and those of their current keys whoever submitted them; each
    /// with the name of its node in this pipeline.
    pub fn jobs_of(
        &self,
        pipeline: &ContentHash,
        nodes: &[(&str, Option<ContentHash>)],
    ) -> Vec<(String, Entry)> {
        let pipeline = pipeline.to_hex();
        let names: HashSet<&str> = nodes.iter().map(|(name, _)| *name).collect();
        let by_key: HashMap<ContentHash, &str> = nodes
            .iter()
            .filter_map(|(name, key)| Some(((*key)?, *name)))
            .collect();
        self.entries()
            .filter_map(|entry| {
                if entry.pipeline == pipeline && names.contains(entry.node.as_str()) {
                    return Some((entry.node.clone(), entry));
                }
                let name = by_key.get(entry.key.as_ref()?)?;
                Some((name.to_string(), entry))
            })
            .collect()
    }

    /// Writes a submission, right after the scheduler took it.
    pub fn record(&mut self, submission: Submission) -> Result<(), ClusterError> {
        std::fs::create_dir_all(&self.folder).map_err(|source| ClusterError::Folder {
            path: self.folder.clone(),
            source,
        })?;
        let name = submission.file_name();
        let path = self.folder.join(&name);
        self.write(&path, &submission)?;
        self.forget(&name);
        self.remember_written(&name);
        self.insert(name, submission);
        Ok(())
    }

    /// Notes the time of a file this process just wrote, so `refresh` does not read it back.
    fn remember_written(&mut self, file: &str) {
        let changed = std::fs::metadata(self.folder.join(file))
            .and_then(|metadata| metadata.modified())
            .ok();
        self.changed.insert(file.to_string(), changed);
    }

    fn write(&self, path: &Path, submission: &Submission) -> Result<(), ClusterError> {
        let bytes = serde_json::to_vec_pretty(submission).expect("submissions always serialise");
        std::fs::create_dir_all(&self.temporary).map_err(|source| ClusterError::Folder {
            path: self.temporary.clone(),
            source,
        })?;
        crate::cache::write_atomically(&self.temporary, path, &bytes).map_err(|source| {
            ClusterError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Marks jobs `tpipe cancel` cancelled, so no run follows them again.
    pub fn mark_cancelled(&mut self, ids: &HashSet<JobId>) -> Result<(), ClusterError> {
        let files: HashSet<String> = ids
            .iter()
            .filter_map(|id| self.by_job.get(id).map(|(file, _)| file.clone()))
            .collect();
        for file in files {
            let Some(mut submission) = self.files.get(&file).cloned() else {
                continue;
            };
            for job in &mut submission.jobs {
                job.cancelled |= ids.contains(&job.id);
            }
            self.write(&self.folder.join(&file), &submission)?;
            self.forget(&file);
            self.remember_written(&file);
            self.insert(file, submission);
        }
        Ok(())
    }

    /// Removes the entries of `backend` whose every job is over: cancelled by `tpipe cancel`,
    /// in `ended`, or over in `listing` (taken at `listed_at`), when there is one.
    pub fn prune(
        &mut self,
        backend: &str,
        ended: &HashSet<JobId>,
        listing: Option<(&HashMap<JobId, JobStatus>, SystemTime)>,
    ) {
        let over: Vec<String> = self
            .files
            .iter()
            .filter(|(_, submission)| submission.backend == backend)
            .filter(|(_, submission)| {
                let submitted = submission.submitted();
                submission.jobs.iter().all(|job| {
                    job.cancelled
                        || ended.contains(&job.id)
                        || listing.is_some_and(|(listing, listed_at)| {
                            !is_live(&job.id, submitted, listing, listed_at)
                        })
                })
            })
            .map(|(file, _)| file.clone())
            .collect();
        for file in over {
            let _ = std::fs::remove_file(self.folder.join(&file));
            self.forget(&file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(ended: bool) -> JobStatus {
        JobStatus {
            name: "tpipe-x".into(),
            submission: "1".into(),
            task: None,
            state: if ended { "COMPLETED" } else { "RUNNING" }.into(),
            reason: String::new(),
            ended,
            completed: ended,
        }
    }

    fn job(id: &str, node: &str, key: Option<&ContentHash>) -> LedgerJob {
        LedgerJob {
            id: id.into(),
            node: node.into(),
            key: key.map(ContentHash::to_hex),
            cancelled: false,
        }
    }

    #[test]
    fn entries_are_found_by_key_node_and_job_and_pruned_when_every_job_is_over() {
        let cache = tempfile::tempdir().unwrap();
        let pipeline = ContentHash::of_bytes(b"pipeline");
        let (a, b) = (ContentHash::of_bytes(b"a"), ContentHash::of_bytes(b"b"));
        let mut ledger = Ledger::open(cache.path());
        let file = Path::new("p.yaml");
        ledger
            .record(Submission::new(
                "slurm",
                &pipeline,
                file,
                vec![job("7_0", "a", Some(&a)), job("7_1", "b", Some(&b))],
            ))
            .unwrap();
        ledger
            .record(Submission::new(
                "slurm",
                &pipeline,
                file,
                vec![job("9", "c", None)],
            ))
            .unwrap();
        // Another process reads what this one wrote.
        let mut other = Ledger::open(cache.path());
        assert_eq!(other.for_key(&b).unwrap().id, "7_1");
        assert_eq!(other.for_node(&pipeline, "c").unwrap().id, "9");
        assert!(other.for_node(&pipeline, "a").is_none(), "a has a key");
        assert!(other.knows("7_0") && !other.knows("8"));

        other
            .mark_cancelled(&HashSet::from(["7_1".to_string()]))
            .unwrap();
        ledger.refresh();
        assert!(!ledger.for_key(&a).unwrap().cancelled);
        let later = SystemTime::now() + Duration::from_secs(5);
        let listing = HashMap::from([("7_0".to_string(), status(false))]);
        // 7_0 still runs: its submission stays; 9 is not listed any more: its entry goes.
        ledger.prune("slurm", &HashSet::new(), Some((&listing, later)));
        assert!(ledger.for_key(&a).is_some());
        assert!(ledger.for_node(&pipeline, "c").is_none());
        let listing = HashMap::from([("7_0".to_string(), status(true))]);
        ledger.prune("slurm", &HashSet::new(), Some((&listing, later)));
        assert_eq!(ledger.entries().count(), 0);
        assert_eq!(
            std::fs::read_dir(cache.path().join(FOLDER))
                .unwrap()
                .count(),
            0
        );
    }
}
