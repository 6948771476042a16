//! Placing a tick's jobs: each one either follows a live job of its key that is already in
//! the scheduler (named by the cache's [`ledger`](super::ledger), or found in the tick's
//! listing by its [`marker`](super::command::marker_line) when no entry names it), or is
//! submitted — the jobs that ask for the same resources after the same jobs together, as
//! arrays where the backend has them. Every submission goes into the ledger as soon as the
//! scheduler answers.
//!
//! When the scheduler refuses jobs over a limit, placing backs off instead of failing nodes:
//! an array over its size limit is split in halves; a refusal over the limit on queued jobs
//! keeps the rest waiting, submits them as this run's jobs end (never more queued than were
//! taken when it refused), and probes now and then (the limit may count other jobs of the
//! user, which end too). Only when nothing of this run is queued and the refusals last for the
//! backend's poll patience do the waiting nodes fail, with the scheduler's words.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::command::{markers, Marker};
use super::ledger::{is_live, Ledger, LedgerJob, Submission};
use super::tracker::PlaceError;
use super::{ClusterBackend, ClusterError, JobId, JobRequest, JobStatus, SubmitLimit};
use crate::hash::{ContentHash, KeyHasher};
use crate::resources::Resources;

/// An array's script holds every job's lines: keep it well under what schedulers take
/// (Slurm's default `max_script_size` is 4 MB).
const MAX_ARRAY_SCRIPT_BYTES: usize = 1 << 20;

/// What placing needs beyond the backend.
pub(super) struct Placing {
    /// The run's cache folder: its ledger is there.
    pub cache_dir: PathBuf,
    /// Where job logs go.
    pub logs: PathBuf,
    /// Where jobs leave their results (`command::destination`): a job found in the scheduler
    /// is followed only when its marker names the same.
    pub destination: String,
}

/// A job for the tracker to place.
pub(super) struct JobToPlace {
    pub node: String,
    /// The key it builds; `None` for a `--detach` job that builds its node by name.
    pub key: Option<ContentHash>,
    /// The pipeline of the run, for the ledger.
    pub pipeline: ContentHash,
    pub pipeline_file: PathBuf,
    /// Its lines, starting with its marker when it has a key.
    pub script: String,
    pub after: Vec<JobId>,
    pub resources: Resources,
    /// Variables for its environment, never its script (the remote's credentials).
    pub environment: Vec<(String, String)>,
    /// Its log is `<logs>/<log_stem>-<id>.log`, its name `tpipe-<log_stem>`.
    pub log_stem: String,
    /// Whether a live job of its key (or, without a key, of its node) may be followed instead
    /// of submitting: not for a retry of a job that failed.
    pub attach: bool,
    /// Whether this run follows the job to its end (and cancels it on Ctrl-C): not a job of
    /// `--detach`, which runs on its own.
    pub follow: bool,
}

/// How a job was placed.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Placed {
    Submitted(JobId),
    /// A job already in the scheduler, submitted by an earlier run or another process.
    Attached(JobId),
}

impl Placed {
    pub(super) fn id(&self) -> &str {
        match self {
            Placed::Submitted(id) | Placed::Attached(id) => id,
        }
    }
}

/// What one tick's placing did.
pub(super) struct Outcome {
    /// Each ticket's placement, and whether the run follows the job.
    pub placed: Vec<(u64, Result<Placed, PlaceError>, bool)>,
    /// Jobs to place at a later tick (the scheduler refused them for now).
    pub waiting: Vec<(u64, JobToPlace)>,
    pub submit_calls: usize,
}

/// Jobs that may share one array: the same resources, after the same jobs, in one pipeline.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ArrayKey {
    resources: Resources,
    after: Vec<JobId>,
    pipeline: ContentHash,
}

/// A refusal over a limit, for the end-of-run warning.
struct Refusals {
    count: usize,
    message: String,
}

pub(super) struct Placer {
    backend: Arc<dyn ClusterBackend>,
    ledger: Ledger,
    logs: PathBuf,
    destination: String,
    /// The markers of submissions read back from the scheduler, by submission.
    scripts: HashMap<JobId, Vec<Marker>>,
    /// The largest array to submit: the backend's limit, halved on each refusal over it.
    array_cap: usize,
    /// How many of this run's jobs may be queued at once, learned from a refusal.
    queue_cap: Option<usize>,
    /// After a refusal: the current pause, and when to try (probe) again.
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Since when submissions are refused while nothing of this run is queued.
    refused_idle_since: Option<Instant>,
    queue_refusals: Option<Refusals>,
    array_refusals: Option<(usize, Refusals)>,
    warnings: Vec<String>,
}

impl Placer {
    pub(super) fn new(backend: Arc<dyn ClusterBackend>, placing: Placing) -> Placer {
        let settings = backend.settings();
        Placer {
            ledger: Ledger::open(&placing.cache_dir),
            logs: placing.logs,
            destination: placing.destination,
            scripts: HashMap::new(),
            array_cap: backend.array_limit().max(1),
            queue_cap: None,
            backoff: settings.poll_min,
            retry_at: None,
            refused_idle_since: None,
            queue_refusals: None,
            array_refusals: None,
            warnings: Vec::new(),
            backend,
        }
    }

    pub(super) fn set_destination(&mut self, destination: String) {
        self.destination = destination;
    }

    /// When refused jobs may be tried again.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// What the jobs still waiting to be placed are told.
    pub(super) fn notice(&self) -> Option<String> {
        let refusals = self.queue_refusals.as_ref()?;
        Some(format!(
            "waiting for room in the {} queue ({})",
            self.backend.entry().title,
            refusals.message
        ))
    }

    /// Problems to report at the end of the run.
    pub(super) fn warnings(&mut self) -> Vec<String> {
        let entry = self.backend.entry();
        let mut warnings = std::mem::take(&mut self.warnings);
        if let Some(refusals) = &self.queue_refusals {
            let cap = self.queue_cap.unwrap_or(0);
            warnings.push(format!(
                "{} refused {} submission{} over a limit on queued jobs ({}); tpipe waited and submitted the rest as its jobs ended, with at most {cap} queued at once (hint: `max_jobs = {}` under `[executor.{}]` stays under the limit)",
                entry.title,
                refusals.count,
                if refusals.count == 1 { "" } else { "s" },
                refusals.message,
                cap.max(1),
                entry.name,
            ));
        }
        if let Some((size, refusals)) = &self.array_refusals {
            warnings.push(format!(
                "{} refused an array of {size} jobs ({}); tpipe submitted arrays of at most {}",
                entry.title, refusals.message, self.array_cap
            ));
        }
        warnings
    }

    /// Removes the ledger's entries whose jobs are all over: `over` (what this run saw end or
    /// cancelled) or, by the run's last listing, any other.
    pub(super) fn tidy_ledger(
        &mut self,
        over: &HashSet<JobId>,
        listing: Option<(&HashMap<JobId, JobStatus>, SystemTime)>,
    ) {
        self.ledger.refresh();
        self.ledger.prune(self.backend.entry().name, over, listing);
    }

    /// Places a tick's jobs, given the tick's listing and how many of this run's jobs are
    /// queued.
    pub(super) fn place(
        &mut self,
        jobs: Vec<(u64, JobToPlace)>,
        listing: Option<(&HashMap<JobId, JobStatus>, SystemTime)>,
        mut queued: usize,
    ) -> Outcome {
        self.ledger.refresh();
        let mut outcome = Outcome {
            placed: Vec::new(),
            waiting: Vec::new(),
            submit_calls: 0,
        };
        let mut recovered: Option<HashMap<ContentHash, JobId>> = None;
        let mut found_here: Vec<(JobToPlace, JobId)> = Vec::new();
        let mut to_submit: Vec<(u64, JobToPlace)> = Vec::new();
        // Two nodes of one key in one tick (identical actions): one job for both.
        let mut leaders: HashMap<ContentHash, u64> = HashMap::new();
        let mut followers: Vec<(u64, u64, JobToPlace)> = Vec::new();
        for (ticket, job) in jobs {
            if job.attach {
                if let Some(found) = self.live_job(&job, listing, &mut recovered) {
                    let follow = job.follow;
                    if found.recovered {
                        found_here.push((job, found.id.clone()));
                    }
                    outcome
                        .placed
                        .push((ticket, Ok(Placed::Attached(found.id)), follow));
                    continue;
                }
                if let Some(leader) = job.key.and_then(|key| leaders.get(&key).copied()) {
                    followers.push((ticket, leader, job));
                    continue;
                }
            }
            if let Some(key) = job.key {
                leaders.entry(key).or_insert(ticket);
            }
            to_submit.push((ticket, job));
        }
        self.record_found(found_here);
        self.submit_all(to_submit, &mut queued, &mut outcome);
        for (ticket, leader, job) in followers {
            let answer = outcome
                .placed
                .iter()
                .find(|(placed, _, _)| *placed == leader)
                .map(|(_, answer, _)| answer);
            let answer = match answer {
                Some(Ok(placed)) => Ok(Placed::Attached(placed.id().to_string())),
                Some(Err(PlaceError::Refused(message))) => {
                    Err(PlaceError::Refused(message.clone()))
                }
                Some(Err(PlaceError::Cancelled)) => Err(PlaceError::Cancelled),
                None => {
                    // The leader waits for room in the queue: so does its follower, and the
                    // next tick gives them one job again.
                    outcome.waiting.push((ticket, job));
                    continue;
                }
            };
            outcome.placed.push((ticket, answer, job.follow));
        }
        outcome
    }

    /// A job building what `job` builds: the ledger's latest for its key (or, for a job that
    /// builds its node by name, for its node), unless it is over without completing; else a
    /// live one the listing shows whose marker names its key and this run's destination.
    fn live_job(
        &mut self,
        job: &JobToPlace,
        listing: Option<(&HashMap<JobId, JobStatus>, SystemTime)>,
        recovered: &mut Option<HashMap<ContentHash, JobId>>,
    ) -> Option<Found> {
        // A `--detach` job that builds the node by name builds its key too.
        let entry = job
            .key
            .and_then(|key| self.ledger.for_key(&key))
            .or_else(|| self.ledger.for_node(&job.pipeline, &job.node));
        let backend = self.backend.entry().name;
        if let Some(entry) = entry.filter(|entry| !entry.cancelled && entry.backend == backend) {
            let worth_following = match listing {
                // A job that completed is followed too: its record may have come just now.
                Some((listing, listed_at)) => match listing.get(&entry.id) {
                    Some(status) => !status.ended || status.completed,
                    None => is_live(&entry.id, entry.submitted, listing, listed_at),
                },
                // The scheduler did not answer: follow the job; the next poll says whether it
                // is over, and then its node is submitted anew.
                None => true,
            };
            if worth_following {
                return Some(Found {
                    id: entry.id,
                    recovered: false,
                });
            }
        }
        let (key, (listing, _)) = (job.key?, listing?);
        let recovered = recovered.get_or_insert_with(|| self.recover(listing));
        recovered.get(&key).map(|id| Found {
            id: id.clone(),
            recovered: true,
        })
    }

    /// Live tpipe jobs in `listing` that no ledger entry names and whose markers name this
    /// run's destination: key → job. Each submission's script is read once per run.
    fn recover(&mut self, listing: &HashMap<JobId, JobStatus>) -> HashMap<ContentHash, JobId> {
        let mut found = HashMap::new();
        for (id, status) in listing {
            if status.ended || !status.name.starts_with("tpipe-") || self.ledger.knows(id) {
                continue;
            }
            if !self.scripts.contains_key(&status.submission) {
                // Asked once per run: a script that cannot be read names no key (at worst the
                // node gets a duplicate job, which writes the same bytes).
                let script = self.backend.submitted_script(&status.submission);
                let read = script
                    .ok()
                    .flatten()
                    .as_deref()
                    .map(markers)
                    .unwrap_or_default();
                self.scripts.insert(status.submission.clone(), read);
            }
            let marker = self.scripts[&status.submission].get(status.task.unwrap_or(0));
            let Some(marker) = marker.filter(|marker| marker.destination == self.destination)
            else {
                continue;
            };
            if let Ok(key) = marker.key.parse() {
                found.insert(key, id.clone());
            }
        }
        found
    }

    /// Records the jobs found in the scheduler that no entry named, so later runs and
    /// `tpipe status` find them in the ledger.
    fn record_found(&mut self, found: Vec<(JobToPlace, JobId)>) {
        let Some((first, _)) = found.first() else {
            return;
        };
        let (pipeline, file) = (first.pipeline, first.pipeline_file.clone());
        let jobs = found
            .into_iter()
            .map(|(job, id)| ledger_job(&job, id))
            .collect();
        let submission = Submission::new(self.backend.entry().name, &pipeline, &file, jobs);
        self.record(submission);
    }

    fn record(&mut self, submission: Submission) {
        if let Err(error) = self.ledger.record(submission) {
            let warning = format!(
                "could not record submitted jobs in the cache ({error}): a later run may submit them again"
            );
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
    }

    /// Submits `jobs`, grouped by [`ArrayKey`] in the order they came, as far as the
    /// scheduler takes them; what it refuses for now goes to `outcome.waiting`.
    fn submit_all(
        &mut self,
        jobs: Vec<(u64, JobToPlace)>,
        queued: &mut usize,
        outcome: &mut Outcome,
    ) {
        let mut groups: Vec<Vec<(u64, JobToPlace)>> = Vec::new();
        let mut group_of: HashMap<ArrayKey, usize> = HashMap::new();
        for (ticket, job) in jobs {
            let key = ArrayKey {
                resources: job.resources.clone(),
                after: job.after.clone(),
                pipeline: job.pipeline,
            };
            let index = *group_of.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[index].push((ticket, job));
        }
        let mut stopped = false;
        for group in groups {
            let mut rest = group;
            while !rest.is_empty() && !stopped {
                let (size, probe) = self.chunk_size(&rest, *queued);
                if size == 0 {
                    break;
                }
                let chunk: Vec<(u64, JobToPlace)> = rest.drain(..size).collect();
                outcome.submit_calls += 1;
                match self.submit_chunk(&chunk) {
                    Ok(ids) => {
                        *queued += ids.len();
                        self.accepted(*queued, probe);
                        let jobs = chunk
                            .iter()
                            .zip(&ids)
                            .map(|((_, job), id)| ledger_job(job, id.clone()))
                            .collect();
                        let (pipeline, file) = (chunk[0].1.pipeline, &chunk[0].1.pipeline_file);
                        let entry = self.backend.entry().name;
                        self.record(Submission::new(entry, &pipeline, file, jobs));
                        for ((ticket, job), id) in chunk.into_iter().zip(ids) {
                            let placed = Ok(Placed::Submitted(id));
                            outcome.placed.push((ticket, placed, job.follow));
                        }
                    }
                    Err(ClusterError::OverLimit { limit, message }) => {
                        // Back in front, to be tried smaller now or later.
                        let mut back = chunk;
                        back.append(&mut rest);
                        rest = back;
                        stopped = self.refused(limit, message, size, *queued);
                        if stopped && self.out_of_patience(*queued) {
                            let message = self.notice().unwrap_or_default();
                            let patience =
                                humantime::format_duration(self.backend.settings().poll_patience);
                            for (ticket, job) in rest.drain(..) {
                                let message = format!("{message}, for {patience}: giving up");
                                let refused = Err(PlaceError::Refused(message));
                                outcome.placed.push((ticket, refused, job.follow));
                            }
                        }
                    }
                    Err(error) => {
                        let message = error.to_string();
                        for (ticket, job) in chunk {
                            let refused = Err(PlaceError::Refused(message.clone()));
                            outcome.placed.push((ticket, refused, job.follow));
                        }
                    }
                }
            }
            outcome.waiting.extend(rest);
        }
    }

    /// How many of `rest` the next submission takes: within the array cap, the script size,
    /// and the room learned in the queue; and whether it is a probe (one job once a back-off
    /// has passed, though no room is known).
    fn chunk_size(&self, rest: &[(u64, JobToPlace)], queued: usize) -> (usize, bool) {
        let room = match self.queue_cap {
            None => usize::MAX,
            Some(cap) => cap.saturating_sub(queued),
        };
        let probe = room == 0 && self.retry_at.is_some_and(|at| Instant::now() >= at);
        let room = if probe { 1 } else { room };
        let mut bytes = 0;
        let by_bytes = rest
            .iter()
            .take_while(|(_, job)| {
                bytes += job.script.len() + 256;
                bytes <= MAX_ARRAY_SCRIPT_BYTES
            })
            .count()
            .max(1);
        let size = rest.len().min(self.array_cap).min(room).min(by_bytes);
        (size, probe)
    }

    /// The scheduler took jobs: `queued` of this run's are in its queue now.
    fn accepted(&mut self, queued: usize, probe: bool) {
        self.refused_idle_since = None;
        if probe {
            // Room came back (other jobs of the user ended): try for all of it again.
            self.queue_cap = None;
            self.retry_at = None;
            self.backoff = self.backend.settings().poll_min;
        } else if let Some(cap) = &mut self.queue_cap {
            *cap = (*cap).max(queued);
        }
    }

    /// The scheduler refused `size` jobs over `limit`; returns whether this tick submits no
    /// more.
    fn refused(&mut self, limit: SubmitLimit, message: String, size: usize, queued: usize) -> bool {
        match limit {
            SubmitLimit::ArraySize if size > 1 => {
                self.array_cap = (size / 2).max(1);
                let refusals = &mut self.array_refusals;
                match refusals {
                    Some((_, refusals)) => refusals.count += 1,
                    None => *refusals = Some((size, Refusals { count: 1, message })),
                }
                false
            }
            _ if size > 1 => {
                // Maybe fewer fit: try half at once.
                self.queue_cap = Some(queued + size / 2);
                self.count_queue_refusal(message);
                false
            }
            _ => {
                self.queue_cap = Some(queued);
                self.count_queue_refusal(message);
                let now = Instant::now();
                self.backoff = match self.retry_at {
                    None => self.backend.settings().poll_min,
                    Some(_) => (self.backoff * 2).min(self.backend.settings().poll_max),
                };
                self.retry_at = Some(now + self.backoff);
                if queued == 0 {
                    self.refused_idle_since.get_or_insert(now);
                }
                true
            }
        }
    }

    fn count_queue_refusal(&mut self, message: String) {
        match &mut self.queue_refusals {
            Some(refusals) => {
                refusals.count += 1;
                refusals.message = message;
            }
            None => self.queue_refusals = Some(Refusals { count: 1, message }),
        }
    }

    /// Whether refusals have lasted the poll patience with nothing of this run queued.
    fn out_of_patience(&self, queued: usize) -> bool {
        queued == 0
            && self
                .refused_idle_since
                .is_some_and(|since| since.elapsed() >= self.backend.settings().poll_patience)
    }

    /// One submission: a job alone, or an array.
    fn submit_chunk(&self, chunk: &[(u64, JobToPlace)]) -> Result<Vec<JobId>, ClusterError> {
        let names: Vec<String> = chunk
            .iter()
            .map(|(_, job)| format!("tpipe-{}", job.log_stem))
            .collect();
        let requests: Vec<JobRequest<'_>> = chunk
            .iter()
            .zip(&names)
            .map(|((_, job), name)| JobRequest {
                name,
                node: &job.node,
                script: &job.script,
                after: &job.after,
                logs: &self.logs,
                log_stem: &job.log_stem,
                resources: &job.resources,
                environment: &job.environment,
            })
            .collect();
        if let [request] = requests.as_slice() {
            return self.backend.submit(request).map(|id| vec![id]);
        }
        let mut hasher = KeyHasher::new("tpipe job array");
        for (_, job) in chunk {
            hasher.part("job", job.log_stem.as_bytes());
        }
        let name = format!("tpipe-{}", hasher.finish().short());
        let ids = self.backend.submit_array(&name, &requests)?;
        if ids.len() != chunk.len() {
            return Err(ClusterError::Backend(
                format!(
                    "{} answered {} ids for an array of {} jobs",
                    self.backend.entry().title,
                    ids.len(),
                    chunk.len()
                )
                .into(),
            ));
        }
        Ok(ids)
    }
}

/// A live job found for a job to place.
struct Found {
    id: JobId,
    /// Found in the listing, not in the ledger.
    recovered: bool,
}

fn ledger_job(job: &JobToPlace, id: JobId) -> LedgerJob {
    LedgerJob {
        id,
        node: job.node.clone(),
        key: job.key.map(|key| key.to_hex()),
        cancelled: false,
    }
}
