//! A test double of a cluster: every job is a local process that runs the job's lines (so
//! `tpipe exec-node KEY` as a child process), and its state lives in files under
//! `<cache>/process-jobs/<id>/`, so a later tpipe process (a run after `--detach`) follows the
//! jobs of an earlier one. It is a [`ClusterBackend`] like Slurm, and nothing outside this file
//! and its line in [`backends`](super::backends) knows it: the runner, the scheduler and
//! `--detach` are the same code for both, which is what the tests that use it show. Compiled
//! only with the `testing` feature.
//!
//! A job's folder holds `name`, `script` (its lines), `pid` (its process group), `started`
//! (once the jobs it waits on are done) and `exit` (its exit code, `dependency` when one of
//! those failed, or `cancelled`).

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::command::quoted;
use super::config::{check_keys, CommonKeys, SectionKey};
use super::{
    BackendEntry, ClusterBackend, ClusterError, ClusterSettings, Explanation, JobEnd, JobFailure,
    JobId, JobRequest, JobStatus, OpenContext, Sections,
};

/// The test double in the list of cluster backends.
pub static ENTRY: BackendEntry = BackendEntry {
    name: "processes",
    title: "Processes",
    about: "(test builds only) one local process per node, followed like cluster jobs",
    job_noun: "process job",
    submit_noun: "submission",
    poll_noun: "poll",
    cancel_noun: "kill",
    settings,
    open,
};

/// Polls quickly: these jobs are local processes, not hours-long trainings.
fn defaults() -> ClusterSettings {
    ClusterSettings {
        poll_min: Duration::from_millis(50),
        poll_max: Duration::from_millis(500),
        record_patience: Duration::from_secs(5),
        ..ClusterSettings::default()
    }
}

fn settings(sections: &Sections) -> Result<ClusterSettings, ClusterError> {
    let mut settings = defaults();
    for (file, table) in sections {
        let key = SectionKey {
            file,
            backend: ENTRY.name,
        };
        check_keys(table, &[], &key)?;
        key.read::<CommonKeys>(table)?.apply(&mut settings, &key)?;
    }
    Ok(settings)
}

fn open(
    sections: &Sections,
    context: &OpenContext<'_>,
) -> Result<Box<dyn ClusterBackend>, ClusterError> {
    let jobs = context.cache_dir.join("process-jobs");
    std::fs::create_dir_all(&jobs).map_err(|source| ClusterError::Folder {
        path: jobs.clone(),
        source,
    })?;
    Ok(Box::new(Processes {
        settings: settings(sections)?,
        jobs,
    }))
}

pub struct Processes {
    settings: ClusterSettings,
    /// One folder per job, named by its id.
    jobs: PathBuf,
}

impl Processes {
    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
        let path = path.to_path_buf();
        move |source| ClusterError::Write { path, source }
    }

    /// A new job folder: its id is one more than the largest there, taken with `mkdir` so two
    /// processes submitting at once get different ids.
    fn new_job(&self) -> Result<(JobId, PathBuf), ClusterError> {
        loop {
            let next = self.ids().into_iter().max().unwrap_or(0) + 1;
            let folder = self.jobs.join(next.to_string());
            match std::fs::create_dir(&folder) {
                Ok(()) => return Ok((next.to_string(), folder)),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(ClusterError::Folder {
                        path: folder,
                        source,
                    })
                }
            }
        }
    }

    fn ids(&self) -> Vec<u64> {
        std::fs::read_dir(&self.jobs)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect()
    }

    fn status(&self, id: u64) -> JobStatus {
        let folder = self.jobs.join(id.to_string());
        let read = |name: &str| std::fs::read_to_string(folder.join(name)).ok();
        let name = read("name").unwrap_or_default();
        let status = |state: &str, reason: String, ended: bool| JobStatus {
            name: name.clone(),
            submission: id.to_string(),
            task: None,
            state: state.to_string(),
            reason,
            ended,
            completed: state == "COMPLETED",
        };
        let ended = |state: &str, reason: String| status(state, reason, true);
        if let Some(exit) = read("exit") {
            return match exit.trim() {
                "0" => ended("COMPLETED", String::new()),
                "cancelled" => ended("CANCELLED", String::new()),
                "dependency" => ended("CANCELLED", "a job it waited on failed".into()),
                code => ended("FAILED", format!("exit code {code}")),
            };
        }
        let alive = read("pid").is_some_and(|pid| Path::new("/proc").join(pid.trim()).exists());
        let state = match (alive, folder.join("started").exists()) {
            (false, _) => return ended("FAILED", "its process is gone".into()),
            (true, true) => "RUNNING",
            (true, false) => "PENDING",
        };
        status(state, String::new(), false)
    }
}

impl ClusterBackend for Processes {
    fn entry(&self) -> &'static BackendEntry {
        &ENTRY
    }

    fn settings(&self) -> &ClusterSettings {
        &self.settings
    }

    fn submit(&self, job: &JobRequest<'_>) -> Result<JobId, ClusterError> {
        let (id, folder) = self.new_job()?;
        let name = folder.join("name");
        std::fs::write(&name, job.name).map_err(self.io(&name))?;
        let script = folder.join("script");
        std::fs::write(&script, job.script).map_err(self.io(&script))?;
        let log = job.logs.join(format!("{}-{id}.log", job.log_stem));
        let exit = |code: &str| {
            let file = quoted(&folder.join("exit").to_string_lossy());
            format!("echo {code} > {file}.tmp && mv {file}.tmp {file}")
        };
        let mut wrapper = String::new();
        for after in job.after {
            let done = quoted(&self.jobs.join(after).join("exit").to_string_lossy());
            wrapper.push_str(&format!(
                "while [ ! -f {done} ]; do sleep 0.05; done\n\
                 if [ \"$(cat {done})\" != 0 ]; then {}; exit 1; fi\n",
                exit("dependency")
            ));
        }
        wrapper.push_str(&format!(
            "touch {}\n{}={} sh {} > {} 2>&1\n{}\n",
            quoted(&folder.join("started").to_string_lossy()),
            crate::record::CLUSTER_JOB_VARIABLE,
            quoted(&format!("processes:{id}")),
            quoted(&script.to_string_lossy()),
            quoted(&log.to_string_lossy()),
            exit("$?")
        ));
        // A group of its own: the job outlives the tpipe that submitted it (`--detach`), and a
        // cancel stops the whole group.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(wrapper)
            .envs(job.environment.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(self.io(&script))?;
        let pid = folder.join("pid");
        std::fs::write(&pid, child.id().to_string()).map_err(self.io(&pid))?;
        // Reaped by a thread of its own, so the job leaves no zombie while this tpipe runs.
        std::thread::spawn(move || child.wait());
        Ok(id)
    }

    fn poll(&self) -> Result<HashMap<JobId, JobStatus>, ClusterError> {
        Ok(self
            .ids()
            .into_iter()
            .map(|id| (id.to_string(), self.status(id)))
            .collect())
    }

    fn submitted_script(&self, id: &JobId) -> Result<Option<String>, ClusterError> {
        Ok(std::fs::read_to_string(self.jobs.join(id).join("script")).ok())
    }

    fn cancel(&self, ids: &[JobId]) -> Result<(), ClusterError> {
        for id in ids {
            let folder = self.jobs.join(id);
            let exit = folder.join("exit");
            if !exit.exists() {
                std::fs::write(&exit, "cancelled").map_err(self.io(&exit))?;
            }
            if let Ok(pid) = std::fs::read_to_string(folder.join("pid")) {
                let group = format!("-{}", pid.trim());
                let _ = Command::new("kill")
                    .args(["-TERM", "--", &group])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        Ok(())
    }

    fn explain(&self, failure: &JobFailure<'_>) -> Explanation {
        let (what, fix) = match failure.end {
            JobEnd::Finished(status) => match status.state.as_str() {
                "COMPLETED" => ("completed but wrote no record", "see the log"),
                "CANCELLED" => ("was cancelled", "run again"),
                _ => ("failed", "see the log"),
            },
            JobEnd::Gone => ("is gone", "see the log"),
            JobEnd::PollFailed(_) => ("could not be followed", "see its folder"),
            JobEnd::Cancelled => ("was cancelled", ""),
        };
        let reason = match failure.end {
            JobEnd::Finished(status) if !status.reason.is_empty() => {
                format!(" ({})", status.reason)
            }
            _ => String::new(),
        };
        Explanation {
            what: format!("{what}{reason}"),
            fix: fix.to_string(),
        }
    }
}
