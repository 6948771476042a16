//! The `[executor]` section of `tpipe.toml` and `~/.config/tpipe/config.toml`:
//!
//! ```toml
//! [executor]
//! default = "slurm"              # what `tpipe run` uses without `--executor`
//!
//! [executor.slurm]               # one table per cluster backend, named after it
//! time = "4:00:00"               # a node's time limit unless its `resources:` give one
//! gpus = true                    # the cluster has GPUs: trainings ask for one
//! light_kinds_local = true       # data sets, splits, evaluations, reports stay here
//! max_jobs = 100                 # jobs in the queue at once
//! artifacts = "shared"           # or "remote": jobs build in scratch through the remote
//! partition = "gpu"              # …and the backend's own keys (see its module)
//! ```
//!
//! The keys every backend takes are read here ([`CommonKeys`]); a backend reads its own and
//! names them in [`check_keys`], so a misspelt key is an error naming its file whatever
//! executor runs. The project's file overrides the user's, key by key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{backend_named, BackendEntry, Backends, ClusterError};

/// Where `tpipe run` builds nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorChoice {
    /// In this process.
    Local,
    /// One job per node on a cluster backend.
    Cluster(&'static BackendEntry),
}

impl ExecutorChoice {
    /// `local`, or the name of one of `backends`.
    pub fn parse(word: &str, backends: &Backends) -> Option<ExecutorChoice> {
        match word {
            "local" => Some(ExecutorChoice::Local),
            name => backend_named(backends, name).map(ExecutorChoice::Cluster),
        }
    }

    /// Every word [`ExecutorChoice::parse`] takes, `local` first.
    pub fn words(backends: &Backends) -> Vec<&'static str> {
        std::iter::once("local")
            .chain(backends.iter().map(|entry| entry.name))
            .collect()
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

/// What every cluster backend's section sets.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    /// The time limit of a node whose `resources:` give none.
    pub time: Option<Duration>,
    /// The cluster has GPUs: a kind that uses the compute device asks for one unless its
    /// `resources:` say otherwise.
    pub gpus: bool,
    /// Kinds that do not use the compute device build on the submitting machine unless their
    /// `resources:` say `local: false` (like Snakemake's local rules).
    pub light_kinds_local: bool,
    /// At most this many of a run's jobs are in the queue at once.
    pub max_jobs: usize,
    /// The first and the longest wait between two polls.
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// How long polling may keep failing before the run gives up on its jobs.
    pub poll_patience: Duration,
    /// How long a completed job's record may take to show on a shared file system.
    pub record_patience: Duration,
    /// Where job logs go; `None`: `<backend>-logs/` in the cache folder.
    pub logs: Option<PathBuf>,
    pub artifacts: Artifacts,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            time: None,
            gpus: false,
            light_kinds_local: true,
            max_jobs: 100,
            poll_min: Duration::from_secs(2),
            poll_max: Duration::from_secs(60),
            poll_patience: Duration::from_secs(300),
            record_patience: Duration::from_secs(60),
            logs: None,
            artifacts: Artifacts::SharedCache,
        }
    }
}

/// The keys of [`ClusterSettings`] as one file writes them; absent keys leave a setting as it
/// is. Poll patience is the backend's to name (Slurm: `squeue_patience_seconds`).
#[derive(Debug, Default, Deserialize)]
pub struct CommonKeys {
    time: Option<String>,
    gpus: Option<bool>,
    light_kinds_local: Option<bool>,
    max_jobs: Option<usize>,
    poll_min_seconds: Option<f64>,
    poll_max_seconds: Option<f64>,
    record_patience_seconds: Option<f64>,
    logs: Option<PathBuf>,
    artifacts: Option<String>,
}

impl CommonKeys {
    /// The names, for [`check_keys`].
    pub const NAMES: &'static [&'static str] = &[
        "time",
        "gpus",
        "light_kinds_local",
        "max_jobs",
        "poll_min_seconds",
        "poll_max_seconds",
        "record_patience_seconds",
        "logs",
        "artifacts",
    ];

    /// Sets what this file's section sets, checking each value.
    pub fn apply(
        self,
        settings: &mut ClusterSettings,
        key: &SectionKey,
    ) -> Result<(), ClusterError> {
        if let Some(time) = self.time {
            let seconds = crate::resources::duration_seconds(time.trim())
                .ok_or_else(|| key.problem(ConfigProblem::Time { found: time }))?;
            settings.time = Some(Duration::from_secs(seconds));
        }
        if let Some(gpus) = self.gpus {
            settings.gpus = gpus;
        }
        if let Some(local) = self.light_kinds_local {
            settings.light_kinds_local = local;
        }
        if let Some(max_jobs) = self.max_jobs {
            if max_jobs == 0 {
                return Err(key.problem(ConfigProblem::NoJobs {
                    section: key.section(),
                }));
            }
            settings.max_jobs = max_jobs;
        }
        if let Some(seconds) = self.poll_min_seconds {
            settings.poll_min = key.seconds(seconds, "poll_min_seconds")?;
        }
        if let Some(seconds) = self.poll_max_seconds {
            settings.poll_max = key.seconds(seconds, "poll_max_seconds")?;
        }
        if let Some(seconds) = self.record_patience_seconds {
            settings.record_patience = key.seconds(seconds, "record_patience_seconds")?;
        }
        if let Some(logs) = self.logs {
            settings.logs = Some(logs);
        }
        if let Some(word) = self.artifacts {
            settings.artifacts = match word.as_str() {
                "shared" => Artifacts::SharedCache,
                "remote" => Artifacts::Remote,
                _ => {
                    return Err(key.problem(ConfigProblem::Artifacts {
                        section: key.section(),
                        found: word,
                    }))
                }
            };
        }
        Ok(())
    }
}

/// One backend's section in one file: what errors about it name.
pub struct SectionKey<'a> {
    pub file: &'a Path,
    pub backend: &'static str,
}

impl SectionKey<'_> {
    /// `executor.slurm`
    pub fn section(&self) -> String {
        format!("executor.{}", self.backend)
    }

    pub fn problem(&self, problem: ConfigProblem) -> ClusterError {
        ClusterError::Config {
            file: self.file.to_path_buf(),
            problem,
        }
    }

    /// A number of seconds from the key `name`.
    pub fn seconds(&self, seconds: f64, name: &str) -> Result<Duration, ClusterError> {
        Duration::try_from_secs_f64(seconds).map_err(|_| {
            self.problem(ConfigProblem::Seconds {
                key: format!("{}.{name}", self.section()),
            })
        })
    }

    /// The section read into `T` (whose fields are options), keys it does not name ignored.
    pub fn read<T: serde::de::DeserializeOwned>(
        &self,
        table: &toml::Table,
    ) -> Result<T, ClusterError> {
        T::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
            self.problem(ConfigProblem::Invalid {
                section: self.section(),
                detail: error.to_string().trim_end().to_string(),
            })
        })
    }
}

/// Refuses a key that neither [`CommonKeys`] nor the backend (`own`) names, with the nearest
/// valid one as a hint.
pub fn check_keys(
    table: &toml::Table,
    own: &'static [&'static str],
    key: &SectionKey,
) -> Result<(), ClusterError> {
    let valid = || CommonKeys::NAMES.iter().chain(own).copied();
    for name in table.keys() {
        if !valid().any(|valid| valid == name) {
            return Err(key.problem(ConfigProblem::UnknownKey {
                section: key.section(),
                key: name.clone(),
                nearest: crate::schema::nearest_name(name, valid()),
            }));
        }
    }
    Ok(())
}

/// What is wrong in an `[executor]` section.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error("the `[executor]` section is not valid: {0}")]
    Toml(String),
    #[error("the `[{section}]` section is not valid: {detail}")]
    Invalid { section: String, detail: String },
    #[error("`executor.default` must be {}, found \"{found}\"", quoted(.words))]
    Default {
        found: String,
        words: Vec<&'static str>,
    },
    #[error("unknown executor `{name}` in `[executor.{name}]`{}", hint(.nearest, || format!("executors are {}", quoted(.words))))]
    UnknownExecutor {
        name: String,
        nearest: Option<&'static str>,
        words: Vec<&'static str>,
    },
    #[error("unknown key `{key}` in `[{section}]`{}", hint(.nearest, String::new))]
    UnknownKey {
        section: String,
        key: String,
        nearest: Option<&'static str>,
    },
    #[error("`{key}` must be a positive number of seconds")]
    Seconds { key: String },
    #[error(
        "`time` must be a time limit such as `90`, `2:00:00` or `1-12:00:00`, found \"{found}\""
    )]
    Time { found: String },
    #[error("`{section}.max_jobs` must be at least 1")]
    NoJobs { section: String },
    #[error("`{section}.artifacts` must be \"shared\" (the cache folder) or \"remote\" (the run's remote), found \"{found}\"")]
    Artifacts { section: String, found: String },
}

fn quoted(words: &[&str]) -> String {
    words
        .iter()
        .map(|word| format!("\"{word}\""))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// ` (hint: did you mean `x`?)`, else ` (hint: <otherwise>)` when that is not empty.
fn hint(nearest: &Option<&'static str>, otherwise: impl Fn() -> String) -> String {
    match nearest {
        Some(nearest) => format!(" (hint: did you mean `{nearest}`?)"),
        None => {
            let text = otherwise();
            if text.is_empty() {
                text
            } else {
                format!(" (hint: {text})")
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigWithExecutor {
    executor: Option<toml::Table>,
}

/// The executor settings in effect: the default executor, and each backend's sections.
#[derive(Clone, Debug, Default)]
pub struct ExecutorConfig {
    pub default: Option<ExecutorChoice>,
    /// Per backend, its `[executor.<name>]` tables, lowest precedence first, with their files.
    pub sections: BTreeMap<&'static str, Vec<(PathBuf, toml::Table)>>,
}

impl ExecutorConfig {
    /// Reads the `[executor]` sections of `files` (lowest precedence first); a missing file is
    /// skipped, a malformed section is an error naming the file. Every section of `backends`
    /// is checked here, whichever executor the run then uses.
    pub fn load(files: &[PathBuf], backends: &Backends) -> Result<ExecutorConfig, ClusterError> {
        let mut config = ExecutorConfig::default();
        for path in files {
            let problem = |problem| ClusterError::Config {
                file: path.clone(),
                problem,
            };
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(problem(ConfigProblem::Read(error))),
            };
            let file: ConfigWithExecutor = toml::from_str(&text).map_err(|error| {
                problem(ConfigProblem::Toml(
                    error.to_string().trim_end().to_string(),
                ))
            })?;
            for (name, value) in file.executor.unwrap_or_default() {
                config.take(path, name, value, backends)?;
            }
        }
        Ok(config)
    }

    /// One key of one file's `[executor]`: `default`, or a backend's table.
    fn take(
        &mut self,
        path: &Path,
        name: String,
        value: toml::Value,
        backends: &Backends,
    ) -> Result<(), ClusterError> {
        let problem = |problem| ClusterError::Config {
            file: path.to_path_buf(),
            problem,
        };
        if name == "default" {
            let word = value.as_str().unwrap_or_default().to_string();
            let choice = ExecutorChoice::parse(&word, backends).ok_or_else(|| {
                problem(ConfigProblem::Default {
                    found: word,
                    words: ExecutorChoice::words(backends),
                })
            })?;
            self.default = Some(choice);
            return Ok(());
        }
        let Some(entry) = backend_named(backends, &name) else {
            let names = backends.iter().map(|entry| entry.name);
            let nearest = crate::schema::nearest_name(&name, names);
            let words = ExecutorChoice::words(backends);
            return Err(problem(ConfigProblem::UnknownExecutor {
                name,
                nearest,
                words,
            }));
        };
        let toml::Value::Table(table) = value else {
            return Err(problem(ConfigProblem::Invalid {
                section: format!("executor.{name}"),
                detail: "it must be a table".into(),
            }));
        };
        let section = vec![(path.to_path_buf(), table)];
        // Read now, so a mistake is found whatever executor runs.
        (entry.settings)(&section)?;
        let sections = self.sections.entry(entry.name).or_default();
        sections.extend(section);
        Ok(())
    }

    /// The sections of `entry`, lowest precedence first (none: its defaults).
    pub fn sections_of(&self, entry: &BackendEntry) -> &[(PathBuf, toml::Table)] {
        self.sections.get(entry.name).map_or(&[], Vec::as_slice)
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
            "remote = \"/elsewhere\"\n[executor.slurm]\npartition = \"cpu\"\naccount = \"lab\"\nmax_jobs = 7\n",
        )
        .unwrap();
        std::fs::write(
            &project,
            "[executor]\ndefault = \"slurm\"\n[executor.slurm]\npartition = \"gpu\"\ngpus = true\npoll_min_seconds = 0.5\n",
        )
        .unwrap();
        let files = [user, project, folder.path().join("missing.toml")];
        let config = ExecutorConfig::load(&files, crate::executors::backends()).unwrap();
        let slurm = &crate::slurm::ENTRY;
        assert_eq!(config.default, Some(ExecutorChoice::Cluster(slurm)));
        let settings = (slurm.settings)(config.sections_of(slurm)).unwrap();
        assert!(settings.gpus);
        assert_eq!(settings.max_jobs, 7);
        assert_eq!(settings.poll_min, Duration::from_millis(500));
    }

    #[test]
    fn a_misspelt_key_or_executor_names_the_file_and_the_nearest_word() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("tpipe.toml");
        std::fs::write(&file, "[executor.slurm]\npartiton = \"gpu\"\n").unwrap();
        let backends = crate::executors::backends();
        let error = ExecutorConfig::load(std::slice::from_ref(&file), backends)
            .unwrap_err()
            .to_string();
        assert!(error.contains("tpipe.toml"), "{error}");
        assert!(error.contains("partiton"), "{error}");
        assert!(error.contains("did you mean `partition`?"), "{error}");
        std::fs::write(&file, "[executor.slrum]\n").unwrap();
        let error = ExecutorConfig::load(&[file], backends)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "unknown executor `slrum` in `[executor.slrum]` (hint: did you mean `slurm`?)"
            ),
            "{error}"
        );
    }
}
