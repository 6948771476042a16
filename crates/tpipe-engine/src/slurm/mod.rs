//! `tpipe run --executor slurm`: every node that is not light becomes one Slurm job that runs
//! `tpipe exec-node KEY` over the shared cache folder, or, with `artifacts = "remote"`, in
//! node-local scratch through the run's remote. The scheduler in `exec` decides what to build
//! exactly as it does locally; this runner only replaces "build it here" with "submit it, wait
//! for its record". `--detach` (the CLI, with [`SlurmRunner::submit_detached`]) submits a whole
//! graph at once; a later run [`attach`](SlurmRunner::attach)es to those jobs.
//!
//! Invariants:
//! - The record in the cache is the truth, not Slurm's state: a job counts as built only when
//!   its record is there, and a record found means built, whatever Slurm says.
//! - One `squeue` call per poll tick for all of this run's jobs, with back-off; `squeue`
//!   failing is tolerated for `squeue_patience` before the waiting nodes fail.
//! - Jobs are submitted with `--no-requeue`, and `exec-node` exits at once when the record
//!   exists, so a requeued or duplicate job is harmless.
//! - On cancellation every job this run submitted and that is not finished is cancelled with
//!   one `scancel`.

pub mod config;
pub mod detached;
mod script;
mod tracker;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::build::ActionError;
use crate::cache::Lookup;
use crate::exec::{LocalRunner, NodeJob, NodeRunner};
use crate::kind::{BuildError, Progress};
use crate::record::Record;
use crate::remote::Remote;
use crate::resources::Resources;
use crate::session::Session;
use crate::spec::NodeSpec;

pub use config::{Artifacts, ExecutorChoice, ExecutorConfig, SlurmConfig};
pub use script::{exec_node_line, exec_pipeline_node_line, job_script};
use tracker::{JobEnd, Tracker};

/// What each job runs: this tpipe binary's `exec-node` over the shared cache.
#[derive(Clone, Debug)]
pub struct JobCommand {
    pub executable: PathBuf,
    pub cache_dir: PathBuf,
    /// `--backend`, passed on to every job.
    pub backend: Option<String>,
}

/// Figures of a run on Slurm, for the end-of-run summary and the benchmark.
#[derive(Clone, Debug, Default)]
pub struct SlurmReport {
    pub jobs_submitted: Vec<String>,
    pub squeue_calls: usize,
    /// Jobs cancelled with `scancel` when the run was interrupted.
    pub cancelled_jobs: Vec<String>,
    /// Problems that did not fail a node (a failing `scancel`, say).
    pub warnings: Vec<String>,
}

pub struct SlurmRunner {
    config: SlurmConfig,
    command: JobCommand,
    logs: PathBuf,
    tracker: Arc<Tracker>,
    submitted: Mutex<Vec<String>>,
    /// Jobs an earlier `--detach` submitted, by node: waited for instead of submitted again.
    attached: Mutex<std::collections::BTreeMap<String, String>>,
    /// With `artifacts = "remote"`: the remote jobs pull from and push to.
    remote: Option<Arc<dyn Remote>>,
    /// Nodes built here run at most as many at once as this machine has CPUs: the run's
    /// `--jobs` is sized for the cluster's queue, not for this machine.
    local_builds: crate::exec::Permits,
}

impl SlurmRunner {
    /// Checks that `sbatch` and `squeue` can be run, and makes the log folder.
    pub fn new(config: SlurmConfig, command: JobCommand) -> Result<SlurmRunner, String> {
        for program in ["sbatch", "squeue", "scancel"] {
            let found = Command::new(program)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if found.is_err() {
                return Err(format!(
                    "`{program}` is not on PATH: `--executor slurm` needs Slurm's client commands \
                     (on Debian: apt-get install slurm-client), or use `--executor local`"
                ));
            }
        }
        let logs = logs_dir(&config, &command.cache_dir);
        std::fs::create_dir_all(&logs)
            .map_err(|error| format!("cannot create `{}`: {error}", logs.display()))?;
        let tracker = Tracker::start(&config);
        Ok(SlurmRunner {
            config,
            command,
            logs,
            tracker,
            submitted: Mutex::new(Vec::new()),
            attached: Mutex::new(Default::default()),
            remote: None,
            local_builds: crate::exec::Permits::new(
                std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(2),
            ),
        })
    }

    /// With `artifacts = "remote"`, jobs work in node-local scratch through `remote`.
    pub fn use_remote(&mut self, remote: Arc<dyn Remote>) {
        self.remote = Some(remote);
    }

    /// Whether artifacts travel through the remote rather than the shared cache folder.
    pub fn artifacts_on_remote(&self) -> bool {
        self.config.artifacts == Artifacts::Remote
    }

    /// Waits for these jobs of an earlier `--detach` (node → job id) instead of submitting
    /// their nodes again.
    pub fn attach(&self, jobs: std::collections::BTreeMap<String, String>) {
        *self.attached.lock().unwrap() = jobs;
    }

    pub fn command(&self) -> &JobCommand {
        &self.command
    }

    /// Submits one job for `node` that runs `exec_line` after the jobs `after` complete, and
    /// returns its id (`--detach`). Its log is `<log_name>-<id>.log`.
    pub fn submit_detached(
        &self,
        session: &Session,
        node: &NodeSpec,
        exec_line: &str,
        log_name: &str,
        after: &[String],
    ) -> Result<String, String> {
        let uses_device = session.kind_of(node).uses_device();
        let resources = self.job_resources(&node.resources, uses_device);
        let script = job_script(&script::JobScript {
            job_name: &format!("tpipe-{log_name}"),
            node: &node.name,
            exec_line,
            after,
            log_pattern: &self.logs.join(format!("{log_name}-%j.log")),
            resources: &resources,
            config: &self.config,
        });
        let id = self.submit(&script)?;
        self.submitted.lock().unwrap().push(id.clone());
        Ok(id)
    }

    /// How many of this run's jobs may be in Slurm's queue at once.
    pub fn max_jobs(&self) -> usize {
        self.config.max_jobs
    }

    /// Cancels what is still queued or running (Ctrl-C) and stops polling; returns the figures.
    pub fn finish(&self) -> SlurmReport {
        let cancelled = self.tracker.cancel_unfinished();
        let (squeue_calls, warnings) = self.tracker.stop();
        SlurmReport {
            jobs_submitted: self.submitted.lock().unwrap().clone(),
            squeue_calls,
            cancelled_jobs: cancelled,
            warnings,
        }
    }

    /// The resources a job asks for: the node's, then the executor's defaults.
    fn job_resources(&self, resources: &Resources, uses_device: bool) -> Resources {
        let defaults = Resources {
            gpus: (self.config.gpus && uses_device).then_some(crate::resources::Gpus {
                count: 1,
                gpu_type: None,
            }),
            time: self.config.time.clone(),
            ..Resources::default()
        };
        resources.clone().or(&defaults)
    }

    fn submit(&self, script: &str) -> Result<String, String> {
        let mut command = Command::new("sbatch");
        command.arg("--parsable");
        // Variables of an allocation this run may sit in would leak into the job and confuse
        // its `srun`s (SLURM_CONF only says where the cluster's config is: it stays).
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str() {
                if name.starts_with("SLURM_") && name != "SLURM_CONF" {
                    command.env_remove(name);
                }
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot run sbatch: {error}"))?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(script.as_bytes())
                .map_err(|error| format!("cannot write the job script to sbatch: {error}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|error| format!("sbatch did not finish: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "sbatch refused the job: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        // `--parsable` prints `ID` or `ID;cluster`.
        let text = String::from_utf8_lossy(&output.stdout);
        let id = text
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() || !id.chars().all(|character| character.is_ascii_digit()) {
            return Err(format!("sbatch printed no job id: `{}`", text.trim()));
        }
        Ok(id)
    }

    /// Submits the node's job and waits for its end; the record decides whether it was built.
    fn run_on_slurm(
        &self,
        job: &NodeJob<'_>,
        resources: &Resources,
    ) -> Result<Record, ActionError> {
        let node = &job.action.origin.node;
        let key_prefix = &job.key.to_hex()[..12];
        let attempts = 1 + resources.retries.unwrap_or(0);
        let mut last_error = String::new();
        // A job an earlier `--detach` submitted for this node: follow it first.
        let detached = self.attached.lock().unwrap().remove(node.as_str());
        if let Some(id) = detached {
            (job.progress)(Progress {
                fraction: 0.0,
                message: format!("Slurm job {id} (detached)"),
            });
            let end = self.tracker.wait(&id, job.cancel, job.progress);
            if end == JobEnd::Cancelled {
                return Err(BuildError::Cancelled.into());
            }
            if let Some(record) = self.wait_for_record(job, &end) {
                return Ok(record);
            }
            // It ended without this node's record: build it as if never submitted.
        }
        let exec_line = match &self.remote {
            Some(remote) => script::exec_node_in_scratch_lines(
                &self.command,
                &job.key.to_hex(),
                &remote.describe(),
                &serde_json::to_string(job.action).expect("actions always serialise"),
            ),
            None => exec_node_line(&self.command, &job.key.to_hex()),
        };
        for attempt in 1..=attempts {
            let log_pattern = self.logs.join(format!("{key_prefix}-%j.log"));
            let script = job_script(&script::JobScript {
                job_name: &format!("tpipe-{key_prefix}"),
                node,
                exec_line: &exec_line,
                after: &[],
                log_pattern: &log_pattern,
                resources,
                config: &self.config,
            });
            let _slot = self.tracker.queue_slot(self.config.max_jobs, job.cancel);
            if job.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(BuildError::Cancelled.into());
            }
            let id = self.submit(&script).map_err(BuildError::failed)?;
            self.submitted.lock().unwrap().push(id.clone());
            let log = self.logs.join(format!("{key_prefix}-{id}.log"));
            (job.progress)(Progress {
                fraction: 0.0,
                message: format!("Slurm job {id}"),
            });
            let end = self.tracker.wait(&id, job.cancel, job.progress);
            match end {
                JobEnd::Cancelled => return Err(BuildError::Cancelled.into()),
                JobEnd::Gone | JobEnd::Finished { .. } => {
                    if let Some(record) = self.wait_for_record(job, &end) {
                        return Ok(record);
                    }
                }
                JobEnd::PollFailed(_) => {}
            }
            let remote = self.remote.as_ref().map(|remote| remote.describe());
            last_error = failure_message(&id, &end, &log, resources, remote.as_deref());
            if attempt < attempts {
                (job.progress)(Progress {
                    fraction: 0.0,
                    message: format!(
                        "Slurm job {id} failed; submitting again ({attempt}/{})",
                        attempts - 1
                    ),
                });
            }
        }
        if attempts > 1 {
            // On the first line, which the summary table shows.
            let first_line_end = last_error.find('\n').unwrap_or(last_error.len());
            last_error.insert_str(first_line_end, &format!(" (after {attempts} attempts)"));
        }
        Err(BuildError::failed(last_error).into())
    }
}

impl NodeRunner for SlurmRunner {
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
                    (job.progress)(Progress {
                        fraction: 0.0,
                        message: line,
                    });
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
        self.run_on_slurm(&job, &resources)
    }

    /// A node stays on the submitting machine when its `resources:` say `local: true`, or
    /// when its kind is light (`NodeKind::runs_on_cluster`) and light kinds stay local, unless a
    /// detached job is building it.
    fn builds_here(&self, session: &Session, node: &NodeSpec) -> bool {
        // A detached job is already on its way for this node, light or not: wait for it.
        if self.attached.lock().unwrap().contains_key(&node.name) {
            return false;
        }
        let heavy = session.kind_of(node).runs_on_cluster();
        // Through a remote, a light node built here would download its inputs: it goes to
        // Slurm too unless it says `local: true`.
        let light_here = self.config.light_kinds_local && self.remote.is_none();
        node.resources.local.unwrap_or(!heavy && light_here)
    }
}

/// The state and reason of every job of this user that Slurm still knows (finished ones too).
pub fn job_states() -> Result<std::collections::HashMap<String, (String, String)>, String> {
    tracker::list_jobs()
}

/// The folder job logs go to for the cache at `cache_dir`.
pub fn logs_dir(config: &SlurmConfig, cache_dir: &Path) -> PathBuf {
    config
        .logs
        .clone()
        .unwrap_or_else(|| cache_dir.join("slurm-logs"))
}

/// The log of the latest Slurm job that built (or tried to build) `key`, if any: named by the
/// key's prefix, or by the node's name for a job `--detach` submitted before the key was known.
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

impl SlurmRunner {
    /// A finished job's record, waited for a little: on a shared file system (or a remote) the
    /// job's last write may show here later than Slurm reports the job done. Through a remote
    /// only the record is read; its blobs stay there.
    fn wait_for_record(&self, job: &NodeJob<'_>, end: &JobEnd) -> Option<Record> {
        // Only a job that says it completed is worth waiting for; any other end checks once.
        let patience = match end {
            JobEnd::Finished { state, .. } if state == "COMPLETED" => self.config.record_patience,
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
}

/// Why a job did not leave a record, with what to do about it and the end of its log.
fn failure_message(
    id: &str,
    end: &JobEnd,
    log: &Path,
    resources: &Resources,
    remote: Option<&str>,
) -> String {
    let log_text = std::fs::read_to_string(log).unwrap_or_default();
    let memory_killed = log_text.contains("exceeded memory limit")
        || log_text.contains("oom-kill")
        || log_text.contains("Out Of Memory");
    let (what, fix) = match end {
        JobEnd::Finished { state, reason } => match state.as_str() {
            "OUT_OF_MEMORY" => ("ran out of memory".to_string(), memory_fix(resources)),
            _ if memory_killed => (
                "was killed for using more memory than it asked for".to_string(),
                memory_fix(resources),
            ),
            "TIMEOUT" | "DEADLINE" => (
                format!(
                    "hit its time limit ({})",
                    resources
                        .time
                        .as_deref()
                        .unwrap_or("the partition's default")
                ),
                "raise `time` under the node's `resources:` (e.g. `time: 4:00:00`)".to_string(),
            ),
            "NODE_FAIL" | "BOOT_FAIL" => (
                "lost its compute node".to_string(),
                "run again, or set `retries:` under the node's `resources:` to resubmit by itself"
                    .to_string(),
            ),
            "PREEMPTED" | "REVOKED" => (
                "was preempted".to_string(),
                "run again, or set `retries:` under the node's `resources:`".to_string(),
            ),
            "CANCELLED" => (
                "was cancelled outside tpipe (scancel?)".to_string(),
                "run again to resubmit it".to_string(),
            ),
            "COMPLETED" => match remote {
                Some(remote) => (
                    format!("completed but its record is not on the remote `{remote}`"),
                    "check that the compute nodes reach the remote (the log says what the job pushed)".to_string(),
                ),
                None => (
                    "completed but wrote no record".to_string(),
                    "check that the cache folder is on a file system the compute nodes share".to_string(),
                ),
            },
            _ => (
                format!(
                    "failed ({state}{})",
                    if reason.is_empty() || reason == "None" {
                        String::new()
                    } else {
                        format!(", {reason}")
                    }
                ),
                "see the log".to_string(),
            ),
        },
        JobEnd::Gone => (
            "left Slurm's queue without writing its record".to_string(),
            "see the log; raise the cluster's MinJobAge if jobs vanish before tpipe sees them end"
                .to_string(),
        ),
        JobEnd::PollFailed(error) => (
            format!("could not be followed: squeue kept failing ({error})"),
            "check `squeue`; the job may still finish, and the next run picks up its record"
                .to_string(),
        ),
        JobEnd::Cancelled => ("was cancelled".to_string(), String::new()),
    };
    let state = match end {
        JobEnd::Finished { state, .. } => format!(", {state}"),
        _ => String::new(),
    };
    let tail = log_tail(log, 8);
    let mut message = format!(
        "Slurm job {id}{state} {what}: {fix}. Log: {}",
        log.display()
    );
    if !tail.is_empty() {
        message.push_str("\n  ");
        message.push_str(&tail.join("\n  "));
    }
    message
}

fn memory_fix(resources: &Resources) -> String {
    match &resources.mem {
        Some(mem) => format!("raise `mem` (now {mem}) under the node's `resources:`"),
        None => {
            "give the node more memory: `mem:` under its `resources:` (e.g. `mem: 16G`)".to_string()
        }
    }
}
