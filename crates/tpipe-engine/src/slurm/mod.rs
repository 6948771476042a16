//! Slurm, the first cluster backend: each job is a batch script piped to `sbatch`
//! (`script`), one `squeue` per poll tick lists every job of this user, and one `scancel`
//! cancels what a run leaves. Its `[executor.slurm]` section is read in `config`. Everything
//! else about running nodes on a cluster (queue limits, retries, the record as the truth,
//! `--detach`) is the generic [`ClusterRunner`](crate::cluster::ClusterRunner)'s.
//!
//! Jobs are submitted with `--no-requeue`: a requeued job would only find its record and stop,
//! and tpipe resubmits what failed itself.

pub mod config;
mod script;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use crate::cluster::{
    BackendEntry, ClusterBackend, ClusterError, ClusterSettings, Explanation, JobEnd, JobFailure,
    JobId, JobRequest, JobStatus, OpenContext,
};
use crate::resources::Resources;
pub use config::SlurmConfig;
pub use script::{format_memory, format_time, job_script};

/// Slurm in the list of cluster backends.
pub static ENTRY: BackendEntry = BackendEntry {
    name: "slurm",
    title: "Slurm",
    about: "one Slurm job per node, over the shared cache folder",
    job_noun: "Slurm job",
    poll_noun: "squeue call",
    cancel_noun: "scancel",
    settings: config::settings,
    open,
};

/// States after which a job does nothing more (squeue's `%T`).
const TERMINAL_STATES: &[&str] = &[
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
    "SPECIAL_EXIT",
];

/// What went wrong talking to Slurm.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("`{program}` is not on PATH: `--executor slurm` needs Slurm's client commands (on Debian: apt-get install slurm-client), or use `--executor local`")]
    NotOnPath { program: &'static str },
    #[error("cannot run {program}: {source}")]
    Run {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("cannot write the job script to sbatch: {0}")]
    Script(std::io::Error),
    #[error("sbatch refused the job: {0}")]
    Refused(String),
    #[error("sbatch printed no job id: `{0}`")]
    NoJobId(String),
    /// squeue or scancel failed; what it said.
    #[error("{0}")]
    Client(String),
}

impl From<SlurmError> for ClusterError {
    fn from(error: SlurmError) -> ClusterError {
        ClusterError::Backend(Box::new(error))
    }
}

pub struct SlurmBackend {
    config: SlurmConfig,
}

/// Reads the `[executor.slurm]` sections and checks that `sbatch`, `squeue` and `scancel` run.
fn open(
    sections: &crate::cluster::Sections,
    _context: &OpenContext<'_>,
) -> Result<Box<dyn ClusterBackend>, ClusterError> {
    let config = SlurmConfig::read(sections)?;
    for program in ["sbatch", "squeue", "scancel"] {
        let found = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if found.is_err() {
            return Err(SlurmError::NotOnPath { program }.into());
        }
    }
    Ok(Box::new(SlurmBackend { config }))
}

impl SlurmBackend {
    fn sbatch(&self, script: &str, environment: &[(String, String)]) -> Result<JobId, SlurmError> {
        let mut command = Command::new("sbatch");
        command.arg("--parsable");
        // sbatch hands its environment to the job (`--export=ALL`, its default): variables
        // that must not be written into the script travel this way.
        command.envs(environment.iter().map(|(name, value)| (name, value)));
        // Variables of an allocation this run may sit in would leak into the job and confuse
        // its `srun`s (SLURM_CONF only says where the cluster's config is: it stays).
        for (name, _) in std::env::vars_os() {
            if let Some(name) = name.to_str() {
                if name.starts_with("SLURM_") && name != "SLURM_CONF" {
                    command.env_remove(name);
                }
            }
        }
        let program = "sbatch";
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SlurmError::Run { program, source })?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(script.as_bytes())
                .map_err(SlurmError::Script)?;
        }
        let output = child
            .wait_with_output()
            .map_err(|source| SlurmError::Run { program, source })?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(SlurmError::Refused(said));
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
            return Err(SlurmError::NoJobId(text.trim().to_string()));
        }
        Ok(id)
    }
}

impl ClusterBackend for SlurmBackend {
    fn entry(&self) -> &'static BackendEntry {
        &ENTRY
    }

    fn settings(&self) -> &ClusterSettings {
        &self.config.cluster
    }

    fn submit(&self, job: &JobRequest<'_>) -> Result<JobId, ClusterError> {
        Ok(self.sbatch(&job_script(job, &self.config), job.environment)?)
    }

    /// This user's jobs that Slurm still knows, finished ones included.
    fn poll(&self) -> Result<HashMap<JobId, JobStatus>, ClusterError> {
        let output = Command::new("squeue")
            .args(["--me", "--noheader", "--states=all", "--format=%i|%T|%r"])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| SlurmError::Run {
                program: "squeue",
                source,
            })?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(SlurmError::Client(said).into());
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.trim().splitn(3, '|');
                let id = fields.next()?.to_string();
                let state = fields.next()?.to_string();
                let reason = fields.next().unwrap_or_default().to_string();
                let status = JobStatus {
                    ended: TERMINAL_STATES.contains(&state.as_str()),
                    completed: state == "COMPLETED",
                    state,
                    reason,
                };
                Some((id, status))
            })
            .collect())
    }

    fn cancel(&self, ids: &[JobId]) -> Result<(), ClusterError> {
        let output = Command::new("scancel")
            .args(ids)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| SlurmError::Run {
                program: "scancel",
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
            Err(SlurmError::Client(said).into())
        }
    }

    fn explain(&self, failure: &JobFailure<'_>) -> Explanation {
        let (what, fix) = match failure.end {
            JobEnd::Finished(status) => finished(status, failure),
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
        Explanation { what, fix }
    }
}

/// What a job's final Slurm state says happened, and the fix.
fn finished(status: &JobStatus, failure: &JobFailure<'_>) -> (String, String) {
    let resources = failure.resources;
    let log_text = std::fs::read_to_string(failure.log).unwrap_or_default();
    let memory_killed = log_text.contains("exceeded memory limit")
        || log_text.contains("oom-kill")
        || log_text.contains("Out Of Memory");
    match status.state.as_str() {
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
                    .map(format_time)
                    .unwrap_or_else(|| "the partition's default".to_string())
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
        "COMPLETED" => match failure.remote {
            Some(remote) => (
                format!("completed but its record is not on the remote `{remote}`"),
                "check that the compute nodes reach the remote (the log says what the job pushed)"
                    .to_string(),
            ),
            None => (
                "completed but wrote no record".to_string(),
                "check that the cache folder is on a file system the compute nodes share"
                    .to_string(),
            ),
        },
        state => {
            let reason = &status.reason;
            let reason = if reason.is_empty() || reason == "None" {
                String::new()
            } else {
                format!(", {reason}")
            };
            (
                format!("failed ({state}{reason})"),
                "see the log".to_string(),
            )
        }
    }
}

fn memory_fix(resources: &Resources) -> String {
    match resources.mem {
        Some(mem) => format!(
            "raise `mem` (now {}) under the node's `resources:`",
            format_memory(mem)
        ),
        None => {
            "give the node more memory: `mem:` under its `resources:` (e.g. `mem: 16G`)".to_string()
        }
    }
}
