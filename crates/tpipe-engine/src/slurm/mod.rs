//! Slurm, the first cluster backend: each job, or each job array (`--array`, for jobs that
//! ask for the same resources), is a batch script piped to `sbatch` (`script`), one `squeue`
//! per poll tick lists every job of this user (an array's jobs one per line), and one `scancel`
//! cancels what a run leaves. `sbatch` refusing jobs over `MaxSubmitJobs` or `MaxArraySize`
//! is told apart from other refusals, so the runner waits or splits instead of failing nodes.
//! Its `[executor.slurm]` section is read in `config`. Everything else about running nodes on
//! a cluster (queue limits, retries, the record as the truth, the ledger, `--detach`) is the
//! generic [`ClusterRunner`](crate::cluster::ClusterRunner)'s.
//!
//! Jobs are submitted with `--no-requeue`: a requeued job would only find its record and stop,
//! and tpipe resubmits what failed itself.

pub mod config;
mod script;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use crate::cluster::{
    BackendEntry, ClusterBackend, ClusterError, ClusterSettings, Explanation, JobEnd, JobFailure,
    JobId, JobRequest, JobStatus, OpenContext, SubmitLimit,
};
use crate::resources::Resources;
pub use config::SlurmConfig;
pub use script::{array_script, format_memory, format_time, job_script};

/// How many jobs an array holds at most, unless the cluster refuses fewer: Slurm's default
/// `MaxArraySize` (1001) allows indexes 0 to 1000.
const ARRAY_LIMIT: usize = 1000;

/// Slurm in the list of cluster backends.
pub static ENTRY: BackendEntry = BackendEntry {
    name: "slurm",
    title: "Slurm",
    about: "one Slurm job per node, over the shared cache folder",
    job_noun: "Slurm job",
    submit_noun: "sbatch call",
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
    #[error("cannot read the script of job {job}: {said}")]
    ScriptOf { job: String, said: String },
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

/// Reads the `[executor.slurm]` sections and checks that `sbatch`, `squeue` and `scancel` run
/// (`scontrol` only helps find jobs no ledger entry names).
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
    /// Submits `script`; `jobs` is how many jobs it holds (an array's size), for the message
    /// when Slurm refuses it over a limit; `environment` goes to the job's environment.
    fn sbatch(
        &self,
        script: &str,
        jobs: usize,
        environment: &[(String, String)],
    ) -> Result<JobId, ClusterError> {
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
            return Err(refusal(&String::from_utf8_lossy(&output.stderr), jobs));
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
            return Err(SlurmError::NoJobId(text.trim().to_string()).into());
        }
        Ok(id)
    }
}

/// What `sbatch` refusing a submission of `jobs` jobs means: a limit the runner waits out
/// (`MaxSubmitJobs` of an association or QOS: "AssocMaxSubmitJobLimit",
/// "QOSMaxSubmitJobPerUserLimit", …), an array over `MaxArraySize` ("Invalid job array
/// specification"), or anything else, which fails the node.
fn refusal(stderr: &str, jobs: usize) -> ClusterError {
    let said = stderr
        .lines()
        .map(|line| line.trim().trim_start_matches("sbatch: error: ").trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if said.contains("MaxSubmitJob") {
        return ClusterError::OverLimit {
            limit: SubmitLimit::QueuedJobs,
            message: format!("sbatch: {said}"),
        };
    }
    if jobs > 1 && said.contains("Invalid job array specification") {
        return ClusterError::OverLimit {
            limit: SubmitLimit::ArraySize,
            message: format!("sbatch: {said}: more than the cluster's MaxArraySize"),
        };
    }
    SlurmError::Refused(said).into()
}

impl ClusterBackend for SlurmBackend {
    fn entry(&self) -> &'static BackendEntry {
        &ENTRY
    }

    fn settings(&self) -> &ClusterSettings {
        &self.config.cluster
    }

    fn submit(&self, job: &JobRequest<'_>) -> Result<JobId, ClusterError> {
        self.sbatch(&job_script(job, &self.config), 1, job.environment)
    }

    fn array_limit(&self) -> usize {
        ARRAY_LIMIT
    }

    /// One `sbatch --array=0-N`; its jobs are `<id>_<index>`.
    fn submit_array(
        &self,
        name: &str,
        jobs: &[JobRequest<'_>],
    ) -> Result<Vec<JobId>, ClusterError> {
        // One sbatch, one environment: an array's jobs come from one run, whose remote (the
        // only source of job variables) is the same for all of them.
        let environment = jobs.first().map_or(&[][..], |job| job.environment);
        let id = self.sbatch(
            &array_script(name, jobs, &self.config),
            jobs.len(),
            environment,
        )?;
        Ok((0..jobs.len())
            .map(|index| format!("{id}_{index}"))
            .collect())
    }

    /// `scontrol write batch_script ID -`: what the job (an array's every job) runs.
    fn submitted_script(&self, id: &JobId) -> Result<Option<String>, ClusterError> {
        let script = client("scontrol", &["write", "batch_script", id, "-"]).map_err(|error| {
            SlurmError::ScriptOf {
                job: id.clone(),
                said: error.to_string(),
            }
        })?;
        Ok(Some(script))
    }

    /// This user's jobs that Slurm still knows, finished ones included, an array's jobs one
    /// per line (`--array`).
    fn poll(&self) -> Result<HashMap<JobId, JobStatus>, ClusterError> {
        let arguments = [
            "--me",
            "--noheader",
            "--states=all",
            "--array",
            "--format=%i|%T|%F|%K|%r|%j",
        ];
        Ok(client("squeue", &arguments)?
            .lines()
            .filter_map(parse_squeue_line)
            .collect())
    }

    fn cancel(&self, ids: &[JobId]) -> Result<(), ClusterError> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        client("scancel", &ids)?;
        Ok(())
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

/// Runs one of Slurm's client commands; its standard output, or what it said when it failed.
fn client(program: &'static str, arguments: &[&str]) -> Result<String, SlurmError> {
    let output = Command::new(program)
        .args(arguments)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SlurmError::Run { program, source })?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(SlurmError::Client(said));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One line of `squeue --format=%i|%T|%F|%K|%r|%j`: the name last, as it may hold a `|`.
fn parse_squeue_line(line: &str) -> Option<(JobId, JobStatus)> {
    let mut fields = line.trim().splitn(6, '|');
    let id = fields.next()?.to_string();
    let state = fields.next()?.to_string();
    let submission = fields.next().unwrap_or(&id).to_string();
    // `N/A` for a job outside an array.
    let task = fields.next().and_then(|index| index.parse().ok());
    let reason = fields.next().unwrap_or_default().to_string();
    let name = fields.next().unwrap_or_default().to_string();
    let status = JobStatus {
        name,
        submission,
        task,
        ended: TERMINAL_STATES.contains(&state.as_str()),
        completed: state == "COMPLETED",
        state,
        reason,
    };
    Some((id, status))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_give_each_jobs_array_and_index() {
        let (id, status) = parse_squeue_line("7_3|PENDING|7|3|Resources|tpipe-0123|x").unwrap();
        assert_eq!(id, "7_3");
        assert_eq!(
            (
                status.submission.as_str(),
                status.task,
                status.name.as_str()
            ),
            ("7", Some(3), "tpipe-0123|x")
        );
        assert!(!status.ended);
        let (_, status) = parse_squeue_line("12|COMPLETED|12|N/A|None|tpipe-ab").unwrap();
        assert_eq!(
            (status.task, status.ended, status.completed),
            (None, true, true)
        );
    }

    #[test]
    fn refusals_over_a_limit_are_told_apart_from_other_refusals() {
        let limit = |stderr: &str, jobs: usize| match refusal(stderr, jobs) {
            ClusterError::OverLimit { limit, message } => Some((limit, message)),
            _ => None,
        };
        let submit_limit = "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)\n";
        let (kind, message) = limit(submit_limit, 1).unwrap();
        assert_eq!(kind, SubmitLimit::QueuedJobs);
        assert!(
            message.starts_with("sbatch: QOSMaxSubmitJobPerUserLimit; Batch job"),
            "{message}"
        );
        let array = "sbatch: error: Batch job submission failed: Invalid job array specification\n";
        assert_eq!(limit(array, 40).unwrap().0, SubmitLimit::ArraySize);
        assert!(limit(array, 1).is_none(), "not an array");
        let other = "sbatch: error: Batch job submission failed: Requested node configuration is not available\n";
        assert!(limit(other, 1).is_none());
        assert_eq!(
            refusal(other, 1).to_string(),
            "sbatch refused the job: Batch job submission failed: Requested node configuration is not available"
        );
    }
}
