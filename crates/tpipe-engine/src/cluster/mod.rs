//! Building nodes on a cluster scheduler.
//!
//! A scheduler is a [`ClusterBackend`]: it submits a job (shell lines to run, the jobs it must
//! wait for, the resources it asks for) or an array of jobs alike, polls the states of all jobs
//! in one call, and cancels jobs in one call. [`ClusterRunner`] turns any backend into the
//! scheduler's [`NodeRunner`](crate::exec::NodeRunner): it keeps at most `max_jobs` in the
//! queue, places new jobs and follows every job of a run once per tick (one poll, then one
//! submission per group of jobs with the same resources), records every submission in the
//! cache's [`ledger`] so that a later run follows live jobs of its keys instead of submitting
//! again, retries, trusts the record in the cache rather than the job's state, backs off when
//! the scheduler refuses jobs over a limit, cancels what is left on Ctrl-C (or leaves it running
//! after a hangup), and for `run --detach` submits jobs that wait on their inputs' jobs. Slurm
//! (`slurm/`) is one backend; the test double in `processes.rs` runs each job as a local
//! process through the same trait.
//!
//! A new backend (Kubernetes Jobs, Flux, Ray) is a module implementing [`ClusterBackend`] with a
//! [`BackendEntry`] (its names and how it reads its `[executor.<name>]` section), plus one line
//! in `executors::backends`, the list the command line and the config read. Nothing else
//! names a backend, and this module names none (so it depends on no backend).

pub mod command;
pub mod config;
pub mod ledger;
mod placement;
#[cfg(feature = "testing")]
pub mod processes;
mod runner;
mod tracker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::resources::Resources;

pub use command::JobCommand;
pub use config::{Artifacts, ClusterSettings, ExecutorChoice, ExecutorConfig};
pub use runner::{ClusterRunner, JobsLeft};

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
    /// The job's name (tpipe names its jobs `tpipe-…`).
    pub name: String,
    /// The submission the job came from (an array's id for each of its jobs, else the job's
    /// own id) and its place in that array: with [`ClusterBackend::submitted_script`], which
    /// key a job builds.
    pub submission: JobId,
    pub task: Option<usize>,
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
    /// Submits one job; returns its id. A refusal over one of the scheduler's limits is
    /// [`ClusterError::OverLimit`], so the runner waits and submits again.
    fn submit(&self, job: &JobRequest<'_>) -> Result<JobId, ClusterError>;
    /// At most how many jobs one [`submit_array`](ClusterBackend::submit_array) takes. 1 (the
    /// default): the backend has no arrays, and every job is submitted on its own.
    fn array_limit(&self) -> usize {
        1
    }
    /// Submits jobs with the same resources and `after` in one call, as an array named `name`;
    /// returns each job's id, in order. Each job's script may begin with a
    /// [`command::marker_line`]: the array's script keeps them in the jobs' order, so
    /// [`submitted_script`](ClusterBackend::submitted_script) tells which job builds which key.
    /// Only called with more than one job, and no more than `array_limit`.
    fn submit_array(
        &self,
        name: &str,
        jobs: &[JobRequest<'_>],
    ) -> Result<Vec<JobId>, ClusterError> {
        let _ = name;
        jobs.iter().map(|job| self.submit(job)).collect()
    }
    /// The script that submission `id` runs, when the scheduler keeps it (`None` otherwise):
    /// how a run finds live jobs of its keys that no ledger entry names (its submitter was
    /// killed between submitting and recording, or ran on another machine over the same
    /// remote).
    fn submitted_script(&self, id: &JobId) -> Result<Option<String>, ClusterError> {
        let _ = id;
        Ok(None)
    }
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
    /// One submission (a job or an array), for the end-of-run figures: `sbatch call`.
    pub submit_noun: &'static str,
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
    /// The scheduler refused a submission over one of its limits: it takes the jobs later (as
    /// queued ones end) or in smaller arrays. `message` says so in the scheduler's words.
    #[error("{message}")]
    OverLimit { limit: SubmitLimit, message: String },
}

/// A limit a scheduler refuses submissions over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitLimit {
    /// How many jobs may be queued at once (per user, account or QOS): room comes back as
    /// jobs end.
    QueuedJobs,
    /// How many jobs one array may hold.
    ArraySize,
}

/// Figures of a run on a cluster, for the end-of-run lines and the benchmark.
#[derive(Clone, Debug)]
pub struct ClusterReport {
    pub backend: &'static BackendEntry,
    pub jobs_submitted: Vec<JobId>,
    /// How many submissions those took (fewer than jobs when arrays held several).
    pub submit_calls: usize,
    /// Live jobs of this run's keys that earlier runs had submitted, followed instead of
    /// submitting again.
    pub jobs_attached: Vec<JobId>,
    pub poll_calls: usize,
    /// Jobs cancelled when the run was interrupted.
    pub cancelled_jobs: Vec<JobId>,
    /// Jobs left queued or running (after a hangup), recorded for the next run.
    pub left_jobs: Vec<JobId>,
    /// Problems that did not fail a node (a failing cancel, a limit the scheduler enforced).
    pub warnings: Vec<String>,
}

/// Job ids in the order a person reads them: by number, an array's jobs by their index.
pub fn sort_job_ids(ids: &mut [JobId]) {
    let number = |text: &str| text.parse::<u64>().unwrap_or(u64::MAX);
    ids.sort_by(|left, right| {
        let split = |id: &str| match id.split_once('_') {
            Some((base, index)) => (number(base), number(index)),
            None => (number(id), 0),
        };
        split(left).cmp(&split(right)).then_with(|| left.cmp(right))
    });
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
