//! Building nodes on a cluster scheduler.
//!
//! A scheduler is a [`ClusterBackend`]: it submits a job (shell lines to run, the jobs it must
//! wait for, the resources it asks for), polls the states of all jobs in one call, and cancels
//! jobs in one call. [`ClusterRunner`] turns any backend into the scheduler's
//! [`NodeRunner`](crate::exec::NodeRunner): it keeps at most `max_jobs` in the queue, follows
//! every job of a run with one poll per tick, retries, trusts the record in the cache rather
//! than the job's state, cancels what is left on Ctrl-C, and for `run --detach` submits jobs
//! that wait on their inputs' jobs. Slurm (`slurm/`) is one backend; the test double in
//! `processes.rs` runs each job as a local process through the same trait.
//!
//! A new backend (Kubernetes Jobs, Flux, Ray) is a module implementing [`ClusterBackend`] with a
//! [`BackendEntry`] (its names and how it reads its `[executor.<name>]` section), plus one line
//! in `executors::backends`, the list the command line and the config read. Nothing else
//! names a backend, and this module names none (so it depends on no backend).

pub mod command;
pub mod config;
pub mod detached;
#[cfg(feature = "testing")]
pub mod processes;
mod runner;
mod tracker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::resources::Resources;

pub use command::JobCommand;
pub use config::{Artifacts, ClusterSettings, ExecutorChoice, ExecutorConfig};
pub use runner::ClusterRunner;

/// The backends a build knows (`executors::backends`), as the config and the command line
/// take them.
pub type Backends = [&'static BackendEntry];

/// The backend named `name` in `backends`, if there is one.
pub fn backend_named(backends: &Backends, name: &str) -> Option<&'static BackendEntry> {
    backends.iter().copied().find(|entry| entry.name == name)
}

/// A job's id, as its scheduler writes it.
pub type JobId = String;

/// One job to submit.
pub struct JobRequest<'a> {
    /// A short name for the scheduler's listings (`tpipe-<key prefix>`).
    pub name: &'a str,
    /// The node it builds, for a comment in the job.
    pub node: &'a str,
    /// What the job runs: POSIX shell lines (see [`command`]).
    pub script: &'a str,
    /// Jobs that must complete first; if one fails, this one must never run.
    pub after: &'a [JobId],
    /// The job's output goes to `<logs>/<log_stem>-<id>.log` (see [`latest_log`]).
    pub logs: &'a Path,
    pub log_stem: &'a str,
    /// What the job asks for, after the executor's defaults.
    pub resources: &'a Resources,
    /// Variables for the job's environment, never for its script (which a scheduler may keep
    /// and show): what reaching the run's remote takes (`Remote::job_environment`).
    pub environment: &'a [(String, String)],
}

/// A job's state in its scheduler's own words.
#[derive(Clone, Debug, PartialEq)]
pub struct JobStatus {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `TIMEOUT`, …
    pub state: String,
    /// Why it is in that state, when the scheduler says.
    pub reason: String,
    /// Whether the state is final.
    pub ended: bool,
    /// Whether it ended with its command done: only then is a record that is not there yet
    /// waited for (a shared file system may show it late).
    pub completed: bool,
}

/// How a followed job ended, as far as its scheduler tells.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEnd {
    Finished(JobStatus),
    /// No longer listed by a poll although it was submitted before the poll.
    Gone,
    /// Polling kept failing for longer than its patience; the poll's last error.
    PollFailed(String),
    /// This run was interrupted while the job waited.
    Cancelled,
}

/// A job that ended without its node's record, for the backend to explain.
pub struct JobFailure<'a> {
    pub id: &'a str,
    pub end: &'a JobEnd,
    pub log: &'a Path,
    pub resources: &'a Resources,
    /// The remote the job worked through (`artifacts = "remote"`).
    pub remote: Option<&'a str>,
}

/// A cluster scheduler, as [`ClusterRunner`] uses it.
pub trait ClusterBackend: Send + Sync {
    /// Its names and how it is set up.
    fn entry(&self) -> &'static BackendEntry;
    /// The settings every backend has (queue limit, polling, defaults of resources).
    fn settings(&self) -> &ClusterSettings;
    /// Submits one job; returns its id.
    fn submit(&self, job: &JobRequest<'_>) -> Result<JobId, ClusterError>;
    /// Every job of this user the scheduler still knows, ended ones included, in one call: a
    /// run polls once per tick for all its jobs, however many. A job submitted before the call
    /// and missing from the answer is gone.
    fn poll(&self) -> Result<HashMap<JobId, JobStatus>, ClusterError>;
    /// Cancels these jobs, in one call.
    fn cancel(&self, ids: &[JobId]) -> Result<(), ClusterError>;
    /// Why the job left no record and what to do about it, in the scheduler's terms. The
    /// runner adds the log's path and its last lines.
    fn explain(&self, failure: &JobFailure<'_>) -> Explanation;
}

/// A failed job explained: what happened (`hit its time limit (1)`) and the fix.
pub struct Explanation {
    pub what: String,
    pub fix: String,
}

/// Where [`ClusterBackend::open`](BackendEntry::open) finds what it needs beyond its section.
pub struct OpenContext<'a> {
    /// The run's cache folder (absolute): default home of job logs and job state.
    pub cache_dir: &'a Path,
}

/// A backend's entry in [`backends`]: its names, and how it reads its `[executor.<name>]`.
pub struct BackendEntry {
    /// `--executor <name>`, `[executor.<name>]`, and the prefix of its end-of-run lines.
    pub name: &'static str,
    /// Its name in sentences: `Slurm`.
    pub title: &'static str,
    /// One line for `--executor`'s help.
    pub about: &'static str,
    /// A job of it, in messages: `Slurm job`.
    pub job_noun: &'static str,
    /// One poll, for the end-of-run figures: `squeue call`.
    pub poll_noun: &'static str,
    /// The command that cancels, for the end-of-run figures: `scancel`.
    pub cancel_noun: &'static str,
    /// Reads its sections (lowest precedence first, each with its file, whose name any error
    /// gives) into the settings every backend has, checking the rest of each section too.
    pub settings: fn(&Sections) -> Result<ClusterSettings, ClusterError>,
    /// Reads its sections and opens it: checks that its client works, makes its folders.
    pub open: OpenBackend,
}

/// How a [`BackendEntry`] opens its backend.
pub type OpenBackend =
    fn(&Sections, &OpenContext<'_>) -> Result<Box<dyn ClusterBackend>, ClusterError>;

/// A backend's `[executor.<name>]` tables, lowest precedence first, each with its file.
pub type Sections = [(PathBuf, toml::Table)];

impl std::fmt::Debug for BackendEntry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "BackendEntry({})", self.name)
    }
}

impl PartialEq for BackendEntry {
    fn eq(&self, other: &BackendEntry) -> bool {
        self.name == other.name
    }
}

impl Eq for BackendEntry {}

/// Why a cluster could not be used or followed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A config file's `[executor]` section, naming the file.
    #[error("`{}`: {problem}", file.display())]
    Config {
        file: PathBuf,
        problem: config::ConfigProblem,
    },
    #[error("cannot create `{}`: {source}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The backend's own error (its client missing, a submission refused, a poll failing).
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// Figures of a run on a cluster, for the end-of-run lines and the benchmark.
#[derive(Clone, Debug)]
pub struct ClusterReport {
    pub backend: &'static BackendEntry,
    pub jobs_submitted: Vec<JobId>,
    pub poll_calls: usize,
    /// Jobs cancelled when the run was interrupted.
    pub cancelled_jobs: Vec<JobId>,
    /// Problems that did not fail a node (a failing cancel, say).
    pub warnings: Vec<String>,
}

/// The folder a backend's job logs go to for the cache at `cache_dir`: `logs` from its
/// settings, else `<name>-logs/` in the cache.
pub fn logs_dir(entry: &BackendEntry, settings: &ClusterSettings, cache_dir: &Path) -> PathBuf {
    settings
        .logs
        .clone()
        .unwrap_or_else(|| cache_dir.join(format!("{}-logs", entry.name)))
}

/// The log of the latest job that built (or tried to build) `key`, if any: named by the key's
/// prefix, or by the node's name for a job `--detach` submitted before the key was known.
pub fn latest_log(logs: &Path, key: &crate::hash::ContentHash, node: &str) -> Option<PathBuf> {
    latest_log_named(logs, &key.to_hex()[..12]).or_else(|| latest_log_named(logs, node))
}

fn latest_log_named(logs: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}-");
    std::fs::read_dir(logs)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|entry| {
            entry
                .metadata()
                .and_then(|metadata| metadata.modified())
                .ok()
        })
        .map(|entry| entry.path())
}

/// The last `lines` lines of a log.
pub fn log_tail(log: &Path, lines: usize) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut tail: Vec<String> = text.lines().rev().take(lines).map(str::to_string).collect();
    tail.reverse();
    tail
}
