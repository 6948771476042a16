//! [`ClusterRunner`]: any [`ClusterBackend`] as the scheduler's [`NodeRunner`].
//!
//! Invariants:
//! - The record in the cache is the truth, not the scheduler's state: a job counts as built
//!   only when its record is there, and a record found means built, whatever the job says.
//! - One poll per tick for all of a run's jobs, with back-off; polling failing is tolerated
//!   for the backend's `poll_patience` before the waiting nodes fail. New jobs are placed in
//!   the tick too: submissions per tick grow with the kinds of resources asked for, not with
//!   the number of jobs.
//! - Every job a run submits is in the cache's ledger once the scheduler has answered, and a
//!   run follows a live job of a key it needs instead of submitting again, whichever process
//!   submitted it.
//! - `exec-node` exits at once when the record exists, so a requeued or duplicate job is
//!   harmless.
//! - On cancellation every job this run follows and that has not ended is cancelled in one
//!   call; after a hangup they are left running, recorded for the next run.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::command::{
    destination, exec_node_in_scratch_lines, exec_node_line, exec_pipeline_node_line, marker_line,
};
use super::ledger::Ledger;
use super::placement::{JobToPlace, Placed, Placing};
use super::tracker::{PlaceError, Tracker};
use super::{
    log_tail, logs_dir, Artifacts, BackendEntry, ClusterBackend, ClusterError, ClusterReport,
    Explanation, JobCommand, JobEnd, JobFailure, JobId,
};
use crate::build::ActionError;
use crate::cache::Lookup;
use crate::exec::{
    DetachError, DetachJob, DetachedWork, LocalRunner, NodeJob, NodeRunner, Permits,
};
use crate::hash::ContentHash;
use crate::kind::{BuildError, Progress};
use crate::record::Record;
use crate::remote::Remote;
use crate::resources::{Gpus, Resources};
use crate::session::Session;
use crate::spec::NodeSpec;

/// What a run does with its jobs still queued or running when it ends early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobsLeft {
    /// Cancel them, in one call (Ctrl-C, SIGTERM).
    Cancel,
    /// Leave them (a hangup: they are paid for); the ledger has them, and the next run
    /// follows them.
    Keep,
}

pub struct ClusterRunner {
    backend: Arc<dyn ClusterBackend>,
    command: JobCommand,
    logs: std::path::PathBuf,
    tracker: Arc<Tracker>,
    /// (pipeline id, node) of the jobs earlier runs left in the ledger: such a node waits for
    /// its job rather than building here.
    earlier_nodes: HashSet<(String, String)>,
    /// With `artifacts = "remote"`: the remote jobs pull from and push to.
    remote: Option<Arc<dyn Remote>>,
    /// Nodes built here run at most as many at once as this machine has CPUs: the run's
    /// `--jobs` is sized for the cluster's queue, not for this machine.
    local_builds: Permits,
    /// `--detach`: the pipeline text stored in the cache, once, for jobs that build a node by
    /// name because its key waits on inputs not built yet.
    snapshot: Mutex<Option<ContentHash>>,
}

impl ClusterRunner {
    /// Makes the log folder, reads the ledger and starts following jobs.
    pub fn new(
        backend: Box<dyn ClusterBackend>,
        command: JobCommand,
    ) -> Result<ClusterRunner, ClusterError> {
        let backend: Arc<dyn ClusterBackend> = Arc::from(backend);
        let logs = logs_dir(backend.entry(), backend.settings(), &command.cache_dir);
        std::fs::create_dir_all(&logs).map_err(|source| ClusterError::Folder {
            path: logs.clone(),
            source,
        })?;
        let earlier_nodes = Ledger::open(&command.cache_dir)
            .entries()
            .filter(|entry| !entry.cancelled && entry.backend == backend.entry().name)
            .map(|entry| (entry.pipeline, entry.node))
            .collect();
        let placing = Placing {
            cache_dir: command.cache_dir.clone(),
            logs: logs.clone(),
            destination: destination(&command, None),
        };
        let tracker = Tracker::start(backend.clone(), placing);
        Ok(ClusterRunner {
            backend,
            command,
            logs,
            tracker,
            earlier_nodes,
            remote: None,
            local_builds: Permits::new(
                std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(2),
            ),
            snapshot: Mutex::new(None),
        })
    }

    pub fn entry(&self) -> &'static BackendEntry {
        self.backend.entry()
    }

    /// With `artifacts = "remote"`, jobs work in node-local scratch through `remote`.
    pub fn use_remote(&mut self, remote: Arc<dyn Remote>) {
        self.tracker
            .set_destination(destination(&self.command, Some(&remote.describe())));
        self.remote = Some(remote);
    }

    /// Whether artifacts travel through the remote rather than the shared cache folder.
    pub fn artifacts_on_remote(&self) -> bool {
        self.backend.settings().artifacts == Artifacts::Remote
    }

    /// How many of this run's jobs may be in the queue at once.
    pub fn max_jobs(&self) -> usize {
        self.backend.settings().max_jobs
    }

    /// Stops following jobs: cancels what is still queued or running (after Ctrl-C), or
    /// leaves it (after a hangup); tidies the ledger; returns the figures.
    pub fn finish(&self, left: JobsLeft) -> ClusterReport {
        let report = self.tracker.finish(left == JobsLeft::Cancel);
        ClusterReport {
            backend: self.entry(),
            jobs_submitted: report.submitted,
            submit_calls: report.submit_calls,
            jobs_attached: report.attached,
            poll_calls: report.poll_calls,
            cancelled_jobs: report.cancelled,
            left_jobs: report.left,
            warnings: report.warnings,
        }
    }

    /// The resources a job asks for: the node's, then the executor's defaults.
    /// What a job needs in its environment to reach this run's remote (its credentials),
    /// never written into its script.
    fn job_environment(&self) -> Vec<(String, String)> {
        self.remote
            .as_ref()
            .map(|remote| remote.job_environment())
            .unwrap_or_default()
    }

    fn job_resources(&self, resources: &Resources, uses_device: bool) -> Resources {
        let settings = self.backend.settings();
        let defaults = Resources {
            gpus: (settings.gpus && uses_device).then_some(Gpus {
                count: 1,
                gpu_type: None,
            }),
            time: settings.time,
            ..Resources::default()
        };
        resources.clone().or(&defaults)
    }

    /// Where this run's jobs leave their results, as their markers say.
    fn destination(&self) -> String {
        let remote = self.remote.as_ref().map(|remote| remote.describe());
        destination(&self.command, remote.as_deref())
    }

    fn progress(&self, job: &NodeJob<'_>, message: String) {
        (job.progress)(Progress {
            fraction: 0.0,
            message,
        });
    }

    /// Places the node's job (a live one of its key, or a new one) and waits for its end; the
    /// record decides whether it was built.
    fn run_on_cluster(
        &self,
        job: &NodeJob<'_>,
        resources: &Resources,
    ) -> Result<Record, ActionError> {
        let job_noun = self.entry().job_noun;
        let node = &job.action.origin.node;
        let key = job.key.to_hex();
        let key_prefix = &key[..12];
        let attempts = 1 + resources.retries.unwrap_or(0);
        let lines = match &self.remote {
            Some(remote) => exec_node_in_scratch_lines(
                &self.command,
                &key,
                &remote.describe(),
                &serde_json::to_string(job.action).expect("actions always serialise"),
            ),
            None => exec_node_line(&self.command, &key),
        };
        // The job reaches the remote with this run's credentials, through its environment.
        let environment = self.job_environment();
        let script = format!("{}\n{lines}", marker_line(&key, &self.destination()));
        let mut attempt = 0;
        // Only the first placement may follow a job already there: a retry follows its own.
        let mut may_attach = true;
        let mut last_error = String::new();
        while attempt < attempts {
            let _slot = self.tracker.queue_slot(self.max_jobs(), job.cancel);
            if job.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(BuildError::Cancelled.into());
            }
            let to_place = JobToPlace {
                node: node.clone(),
                key: Some(job.key),
                pipeline: job.session.pipeline_id,
                pipeline_file: job.session.pipeline.file.clone(),
                script: script.clone(),
                after: Vec::new(),
                resources: resources.clone(),
                environment: environment.clone(),
                log_stem: key_prefix.to_string(),
                attach: may_attach,
                follow: true,
            };
            may_attach = false;
            let placed = match self.tracker.place(to_place, job.cancel, job.progress) {
                Ok(placed) => placed,
                Err(PlaceError::Cancelled) => return Err(BuildError::Cancelled.into()),
                Err(PlaceError::Refused(message)) => return Err(BuildError::failed(message).into()),
            };
            let id = placed.id().to_string();
            let attached = matches!(placed, Placed::Attached(_));
            if attached {
                self.progress(job, format!("{job_noun} {id} (submitted earlier)"));
            } else {
                attempt += 1;
                self.progress(job, format!("{job_noun} {id}"));
            }
            let log = self.logs.join(format!("{key_prefix}-{id}.log"));
            let end = self.tracker.wait(&id, job.cancel, job.progress);
            match end {
                JobEnd::Cancelled => return Err(BuildError::Cancelled.into()),
                JobEnd::Gone | JobEnd::Finished(_) => {
                    if let Some(record) = self.wait_for_record(job, &end) {
                        return Ok(record);
                    }
                }
                JobEnd::PollFailed(_) => {}
            }
            if attached {
                // It ended without this node's record: submit as if it had never been.
                continue;
            }
            last_error = self.failure_message(&id, &end, &log, resources);
            if attempt < attempts {
                self.progress(
                    job,
                    format!(
                        "{job_noun} {id} failed; submitting again ({attempt}/{})",
                        attempts - 1
                    ),
                );
            }
        }
        if attempts > 1 {
            // On the first line, which the summary table shows.
            let first_line_end = last_error.find('\n').unwrap_or(last_error.len());
            last_error.insert_str(first_line_end, &format!(" (after {attempts} attempts)"));
        }
        Err(BuildError::failed(last_error).into())
    }

    /// A finished job's record, waited for a little: on a shared file system (or a remote) the
    /// job's last write may show here later than the scheduler reports the job done. Through a
    /// remote only the record is read; its blobs stay there.
    fn wait_for_record(&self, job: &NodeJob<'_>, end: &JobEnd) -> Option<Record> {
        // Only a job that says it completed is worth waiting for; any other end checks once.
        let patience = match end {
            JobEnd::Finished(status) if status.completed => self.backend.settings().record_patience,
            _ => Duration::ZERO,
        };
        let started = Instant::now();
        loop {
            let found = match &self.remote {
                Some(remote) => remote.fetch_record(&job.key).ok().flatten(),
                None => match job.session.cache.lookup(&job.key) {
                    Lookup::Hit(record) => Some(*record),
                    _ => None,
                },
            };
            if found.is_some() || started.elapsed() >= patience {
                return found;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Why a job left no record, with what to do about it (the backend's words) and the end of
    /// its log.
    fn failure_message(&self, id: &str, end: &JobEnd, log: &Path, resources: &Resources) -> String {
        let remote = self.remote.as_ref().map(|remote| remote.describe());
        let Explanation { what, fix } = self.backend.explain(&JobFailure {
            id,
            end,
            log,
            resources,
            remote: remote.as_deref(),
        });
        let state = match end {
            JobEnd::Finished(status) => format!(", {}", status.state),
            _ => String::new(),
        };
        let tail = log_tail(log, 8);
        let mut message = format!(
            "{} {id}{state} {what}: {fix}. Log: {}",
            self.entry().job_noun,
            log.display()
        );
        if !tail.is_empty() {
            message.push_str("\n  ");
            message.push_str(&tail.join("\n  "));
        }
        message
    }

    /// The pipeline text in the cache (stored on first use), for jobs that read it.
    fn snapshot(&self, session: &Session) -> Result<ContentHash, DetachError> {
        let mut snapshot = self.snapshot.lock().unwrap();
        if let Some(hash) = *snapshot {
            return Ok(hash);
        }
        let hash = session
            .cache
            .put_blob(session.pipeline.text.as_bytes())
            .map_err(|error| DetachError::Submit(Box::new(error)))?
            .blob;
        *snapshot = Some(hash);
        Ok(hash)
    }
}

impl NodeRunner for ClusterRunner {
    fn run_node(&self, job: NodeJob<'_>) -> Result<Record, ActionError> {
        if self.builds_here(job.session, job.node) {
            let _permit = self.local_builds.acquire();
            let Some(remote) = &self.remote else {
                return LocalRunner.run_node(job);
            };
            // Built here while the jobs use the remote: read the inputs from it, and leave
            // the outputs there for the jobs downstream.
            for line in
                crate::remote::fetch_missing_inputs(job.action, &job.session.cache, remote.as_ref())
            {
                if line.starts_with("warning") {
                    self.progress(&job, line);
                }
            }
            let (node, session) = (job.node.name.clone(), job.session);
            let record = LocalRunner.run_node(job)?;
            remote.push(&record, &session.cache).map_err(|error| {
                BuildError::failed(format!("node `{node}` built here but not pushed: {error}"))
            })?;
            return Ok(record);
        }
        let uses_device = job.session.kind_of(job.node).uses_device();
        let resources = self.job_resources(&job.node.resources, uses_device);
        self.run_on_cluster(&job, &resources)
    }

    /// A node stays on the submitting machine when its `resources:` say `local: true`, or
    /// when its kind is light (`NodeKind::runs_on_cluster`) and light kinds stay local, unless
    /// the ledger has a job of an earlier run for it.
    fn builds_here(&self, session: &Session, node: &NodeSpec) -> bool {
        // A job is already on its way for this node, light or not: follow it.
        let named = (session.pipeline_id.to_hex(), node.name.clone());
        if self.earlier_nodes.contains(&named) {
            return false;
        }
        let heavy = session.kind_of(node).runs_on_cluster();
        // Through a remote, a light node built here would download its inputs: it goes to
        // the cluster too unless it says `local: true`.
        let light_here = self.backend.settings().light_kinds_local && self.remote.is_none();
        node.resources.local.unwrap_or(!heavy && light_here)
    }

    /// Places the node's job after `job.after` (a live one of its key or node, or a new one)
    /// and returns at once.
    fn detach_node(&self, job: DetachJob<'_>) -> Result<JobId, DetachError> {
        let (script, stem, key) = match job.work {
            DetachedWork::Action { key } => {
                let hex = key.to_hex();
                let marker = marker_line(&hex, &self.destination());
                let line = exec_node_line(&self.command, &hex);
                (
                    format!("{marker}\n{line}"),
                    hex[..12].to_string(),
                    Some(key),
                )
            }
            DetachedWork::PipelineNode => {
                let snapshot = self.snapshot(job.session)?;
                let file = std::fs::canonicalize(&job.session.pipeline.file)
                    .map_err(|error| DetachError::Submit(Box::new(error)))?;
                let line = exec_pipeline_node_line(
                    &self.command,
                    &file,
                    &snapshot.to_hex(),
                    &job.node.name,
                );
                (line, job.node.name.clone(), None)
            }
        };
        let uses_device = job.session.kind_of(job.node).uses_device();
        let to_place = JobToPlace {
            node: job.node.name.clone(),
            key,
            pipeline: job.session.pipeline_id,
            pipeline_file: job.session.pipeline.file.clone(),
            script,
            after: job.after,
            resources: self.job_resources(&job.node.resources, uses_device),
            environment: self.job_environment(),
            log_stem: stem,
            attach: true,
            follow: false,
        };
        match self.tracker.place(to_place, job.cancel, &|_| {}) {
            Ok(placed) => Ok(placed.id().to_string()),
            Err(PlaceError::Cancelled) => Err(DetachError::Cancelled),
            Err(PlaceError::Refused(message)) => Err(DetachError::Submit(message.into())),
        }
    }
}
