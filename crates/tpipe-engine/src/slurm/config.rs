//! The `[executor]` section of `tpipe.toml` and `~/.config/tpipe/config.toml`:
//!
//! ```toml
//! [executor]
//! default = "slurm"              # what `tpipe run` uses without `--executor`
//!
//! [executor.slurm]
//! partition = "gpu"
//! account = "lab"
//! qos = "normal"
//! time = "4:00:00"               # a node's time limit unless its `resources:` give one
//! sbatch_args = ["--constraint=ib"]
//! gpus = true                    # the cluster has GPUs: trainings ask for one
//! light_kinds_local = true       # data sets, splits, evaluations, reports stay here
//! max_jobs = 100                 # jobs in Slurm's queue at once
//! artifacts = "shared"           # or "remote": jobs build in scratch through the remote
//! ```
//!
//! The project's file overrides the user's, key by key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where `tpipe run` builds nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorChoice {
    Local,
    Slurm,
}

impl ExecutorChoice {
    pub fn parse(word: &str) -> Option<ExecutorChoice> {
        match word {
            "local" => Some(ExecutorChoice::Local),
            "slurm" => Some(ExecutorChoice::Slurm),
            _ => None,
        }
    }
}

/// Where a job finds its inputs and leaves its outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Artifacts {
    /// The cache folder, on a file system the compute nodes share.
    SharedCache,
    /// The run's remote: a job pulls its inputs into node-local scratch and pushes its
    /// outputs, and the submitting machine reads records only, never intermediate blobs.
    Remote,
}

/// How tpipe uses a Slurm cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// The time limit of a node whose `resources:` give none.
    pub time: Option<String>,
    /// More `sbatch` arguments, one per element, for every job.
    pub sbatch_args: Vec<String>,
    /// The cluster has GPUs: a kind that uses the compute device asks for one unless its
    /// `resources:` say otherwise.
    pub gpus: bool,
    /// Kinds that do not use the compute device build on the submitting machine unless their
    /// `resources:` say `local: false` (like Snakemake's local rules).
    pub light_kinds_local: bool,
    /// At most this many of this run's jobs are in Slurm's queue at once.
    pub max_jobs: usize,
    /// The first and the longest wait between two `squeue` calls.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// How long `squeue` may keep failing before the run gives up on its jobs.
    pub squeue_patience: Duration,
    /// How long a finished job's record may take to show on a shared file system.
    pub record_patience: Duration,
    /// Where job logs go; `None`: `slurm-logs/` in the cache folder.
    pub logs: Option<PathBuf>,
    pub artifacts: Artifacts,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            partition: None,
            account: None,
            qos: None,
            time: None,
            sbatch_args: Vec::new(),
            gpus: false,
            light_kinds_local: true,
            max_jobs: 100,
            poll_min: Duration::from_secs(2),
            poll_max: Duration::from_secs(60),
            squeue_patience: Duration::from_secs(300),
            record_patience: Duration::from_secs(60),
            logs: None,
            artifacts: Artifacts::SharedCache,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutorSection {
    default: Option<String>,
    slurm: Option<SlurmSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlurmSection {
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    time: Option<String>,
    sbatch_args: Option<Vec<String>>,
    gpus: Option<bool>,
    light_kinds_local: Option<bool>,
    max_jobs: Option<usize>,
    poll_min_seconds: Option<f64>,
    poll_max_seconds: Option<f64>,
    squeue_patience_seconds: Option<f64>,
    record_patience_seconds: Option<f64>,
    logs: Option<PathBuf>,
    artifacts: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigWithExecutor {
    executor: Option<ExecutorSection>,
}

/// The executor settings in effect: the default executor and the Slurm settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutorConfig {
    pub default: Option<ExecutorChoice>,
    pub slurm: SlurmConfig,
}

impl ExecutorConfig {
    /// Reads the `[executor]` sections of `files` (lowest precedence first); a missing file is
    /// skipped, a malformed section is an error naming the file.
    pub fn load(files: &[PathBuf]) -> Result<ExecutorConfig, String> {
        let mut config = ExecutorConfig::default();
        for path in files {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
            };
            let file: ConfigWithExecutor = toml::from_str(&text).map_err(|error| {
                format!(
                    "`{}`: the `[executor]` section is not valid: {}",
                    path.display(),
                    error.to_string().trim_end()
                )
            })?;
            let Some(section) = file.executor else {
                continue;
            };
            config.apply(section, path)?;
        }
        Ok(config)
    }

    fn apply(&mut self, section: ExecutorSection, path: &Path) -> Result<(), String> {
        if let Some(word) = section.default {
            self.default = Some(ExecutorChoice::parse(&word).ok_or_else(|| {
                format!(
                    "`{}`: `executor.default` must be \"local\" or \"slurm\", found \"{word}\"",
                    path.display()
                )
            })?);
        }
        let Some(slurm) = section.slurm else {
            return Ok(());
        };
        let target = &mut self.slurm;
        let seconds = |value: Option<f64>, name: &str| -> Result<Option<Duration>, String> {
            value
                .map(|seconds| {
                    Duration::try_from_secs_f64(seconds).map_err(|_| {
                        format!(
                            "`{}`: `executor.slurm.{name}` must be a positive number of seconds",
                            path.display()
                        )
                    })
                })
                .transpose()
        };
        macro_rules! take {
            ($field:ident) => {
                if let Some(value) = slurm.$field {
                    target.$field = value.into();
                }
            };
        }
        take!(partition);
        take!(account);
        take!(qos);
        take!(time);
        take!(sbatch_args);
        take!(gpus);
        take!(light_kinds_local);
        take!(max_jobs);
        take!(logs);
        if let Some(poll) = seconds(slurm.poll_min_seconds, "poll_min_seconds")? {
            target.poll_min = poll;
        }
        if let Some(poll) = seconds(slurm.poll_max_seconds, "poll_max_seconds")? {
            target.poll_max = poll;
        }
        if let Some(patience) = seconds(slurm.squeue_patience_seconds, "squeue_patience_seconds")? {
            target.squeue_patience = patience;
        }
        if let Some(patience) = seconds(slurm.record_patience_seconds, "record_patience_seconds")? {
            target.record_patience = patience;
        }
        if let Some(word) = slurm.artifacts {
            target.artifacts = match word.as_str() {
                "shared" => Artifacts::SharedCache,
                "remote" => Artifacts::Remote,
                _ => {
                    return Err(format!(
                        "`{}`: `executor.slurm.artifacts` must be \"shared\" (the cache folder) or \"remote\" (the run's remote), found \"{word}\"",
                        path.display()
                    ))
                }
            };
        }
        if target.max_jobs == 0 {
            return Err(format!(
                "`{}`: `executor.slurm.max_jobs` must be at least 1",
                path.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_file_overrides_the_user_file_key_by_key() {
        let folder = tempfile::tempdir().unwrap();
        let user = folder.path().join("user.toml");
        let project = folder.path().join("tpipe.toml");
        std::fs::write(
            &user,
            "remote = \"/elsewhere\"\n[executor.slurm]\npartition = \"cpu\"\naccount = \"lab\"\n",
        )
        .unwrap();
        std::fs::write(
            &project,
            "[executor]\ndefault = \"slurm\"\n[executor.slurm]\npartition = \"gpu\"\ngpus = true\npoll_min_seconds = 0.5\n",
        )
        .unwrap();
        let config =
            ExecutorConfig::load(&[user, project, folder.path().join("missing.toml")]).unwrap();
        assert_eq!(config.default, Some(ExecutorChoice::Slurm));
        assert_eq!(config.slurm.partition.as_deref(), Some("gpu"));
        assert_eq!(config.slurm.account.as_deref(), Some("lab"));
        assert!(config.slurm.gpus);
        assert_eq!(config.slurm.poll_min, Duration::from_millis(500));
    }

    #[test]
    fn a_misspelt_key_names_the_file() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("tpipe.toml");
        std::fs::write(&file, "[executor.slurm]\npartiton = \"gpu\"\n").unwrap();
        let error = ExecutorConfig::load(&[file]).unwrap_err();
        assert!(error.contains("tpipe.toml"), "{error}");
        assert!(error.contains("partiton"), "{error}");
    }
}
