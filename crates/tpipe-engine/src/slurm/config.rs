//! The `[executor.slurm]` section: the keys every cluster backend takes
//! ([`CommonKeys`](crate::cluster::config::CommonKeys)) and Slurm's own:
//!
//! ```toml
//! [executor.slurm]
//! partition = "gpu"
//! account = "lab"
//! qos = "normal"
//! sbatch_args = ["--constraint=ib"]
//! squeue_patience_seconds = 300   # how long squeue may keep failing
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::ENTRY;
use crate::cluster::config::{check_keys, CommonKeys, SectionKey};
use crate::cluster::{ClusterError, ClusterSettings, Sections};

/// How tpipe uses a Slurm cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlurmConfig {
    pub cluster: ClusterSettings,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// More `sbatch` arguments, one per element, for every job.
    pub sbatch_args: Vec<String>,
}

/// Slurm's own keys as one file writes them.
#[derive(Debug, Default, Deserialize)]
struct SlurmKeys {
    partition: Option<String>,
    account: Option<String>,
    qos: Option<String>,
    sbatch_args: Option<Vec<String>>,
    squeue_patience_seconds: Option<f64>,
}

const SLURM_KEYS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "sbatch_args",
    "squeue_patience_seconds",
];

impl SlurmConfig {
    /// Reads `[executor.slurm]` tables, lowest precedence first: later files override earlier
    /// ones key by key; an error names its file.
    pub fn read(sections: &Sections) -> Result<SlurmConfig, ClusterError> {
        let mut config = SlurmConfig::default();
        for (file, table) in sections {
            let key = SectionKey {
                file,
                backend: ENTRY.name,
            };
            check_keys(table, SLURM_KEYS, &key)?;
            key.read::<CommonKeys>(table)?
                .apply(&mut config.cluster, &key)?;
            let own: SlurmKeys = key.read(table)?;
            if let Some(seconds) = own.squeue_patience_seconds {
                config.cluster.poll_patience = key.seconds(seconds, "squeue_patience_seconds")?;
            }
            config.partition = own.partition.or(config.partition.take());
            config.account = own.account.or(config.account.take());
            config.qos = own.qos.or(config.qos.take());
            if let Some(arguments) = own.sbatch_args {
                config.sbatch_args = arguments;
            }
        }
        Ok(config)
    }
}

/// The settings every backend has, from the `[executor.slurm]` tables.
pub(super) fn settings(
    sections: &[(PathBuf, toml::Table)],
) -> Result<ClusterSettings, ClusterError> {
    Ok(SlurmConfig::read(sections)?.cluster)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn later_sections_override_earlier_ones_key_by_key() {
        let sections = vec![
            (
                PathBuf::from("user.toml"),
                table("partition = \"cpu\"\naccount = \"lab\"\nsqueue_patience_seconds = 9\n"),
            ),
            (
                PathBuf::from("tpipe.toml"),
                table("partition = \"gpu\"\ngpus = true\ntime = \"2:00:00\"\n"),
            ),
        ];
        let config = SlurmConfig::read(&sections).unwrap();
        assert_eq!(config.partition.as_deref(), Some("gpu"));
        assert_eq!(config.account.as_deref(), Some("lab"));
        assert!(config.cluster.gpus);
        assert_eq!(config.cluster.poll_patience, Duration::from_secs(9));
        assert_eq!(config.cluster.time, Some(Duration::from_secs(7200)));
    }

    #[test]
    fn bad_values_name_the_file_and_the_key() {
        let sections = vec![(PathBuf::from("tpipe.toml"), table("max_jobs = 0\n"))];
        let error = SlurmConfig::read(&sections).unwrap_err().to_string();
        assert_eq!(
            error,
            "`tpipe.toml`: `executor.slurm.max_jobs` must be at least 1"
        );
        let sections = vec![(
            PathBuf::from("tpipe.toml"),
            table("artifacts = \"cloud\"\n"),
        )];
        let error = SlurmConfig::read(&sections).unwrap_err().to_string();
        assert!(
            error.contains("`executor.slurm.artifacts` must be \"shared\""),
            "{error}"
        );
    }
}
