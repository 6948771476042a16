//! `tpipe run --executor local|<cluster backend>`: which runner builds the nodes, `--detach`,
//! and the cluster's end-of-run figures. Nothing here names a backend: they come from
//! [`crate::executors::backends`].

use std::io::Write;
use std::sync::Arc;

use crate::cluster::{
    BackendEntry, ClusterBackend, ClusterReport, ClusterRunner, ExecutorChoice, ExecutorConfig,
    JobCommand, JobsLeft, OpenContext,
};
use crate::exec::{LocalRunner, NodeRunner, NodeStatus, RunSummary};
use crate::executors::backends;
use crate::remote::config::user_config_path;
use crate::session::Session;

use super::Failure;

/// `--executor`'s values: `local` and every cluster backend's name.
pub fn executor_words() -> clap::builder::PossibleValuesParser {
    let values: Vec<clap::builder::PossibleValue> = std::iter::once(
        clap::builder::PossibleValue::new("local").help("build in this process (the default)"),
    )
    .chain(
        backends()
            .iter()
            .map(|entry| clap::builder::PossibleValue::new(entry.name).help(entry.about)),
    )
    .collect();
    clap::builder::PossibleValuesParser::new(values)
}

pub enum Runner {
    Local(LocalRunner),
    Cluster(Box<ClusterRunner>),
}

/// The config files that may hold `[executor]`, lowest precedence first.
fn config_files(session: &Session) -> Vec<std::path::PathBuf> {
    user_config_path()
        .into_iter()
        .chain([session.project_dir.join("tpipe.toml")])
        .collect()
}

impl Runner {
    pub fn as_node_runner(&self) -> &dyn NodeRunner {
        match self {
            Runner::Local(runner) => runner,
            Runner::Cluster(runner) => runner.as_ref(),
        }
    }

    /// The executor's word in the run's trace: `local` or the backend's name.
    pub fn name(&self) -> &'static str {
        match self {
            Runner::Local(_) => "local",
            Runner::Cluster(runner) => runner.entry().name,
        }
    }

    /// How many nodes are under way at once unless `--jobs` says: the CPUs here, or on a
    /// cluster as many jobs as may wait in its queue.
    pub fn default_jobs(&self) -> usize {
        match self {
            Runner::Local(_) => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            Runner::Cluster(runner) => runner.max_jobs(),
        }
    }

    /// With `artifacts = "remote"`, hands the run's remote to the cluster runner; returns
    /// whether the run then reads records only from the remote.
    pub fn use_remote_for_artifacts(
        &mut self,
        remote: Option<&Arc<dyn crate::remote::Remote>>,
    ) -> Result<bool, Failure> {
        let Runner::Cluster(runner) = self else {
            return Ok(false);
        };
        if !runner.artifacts_on_remote() {
            return Ok(false);
        }
        let remote = remote.ok_or_else(|| {
            Failure::usage(format!("`artifacts = \"remote\"` in `[executor.{}]` needs a remote (hint: pass `--remote URL`, set TPIPE_REMOTE, or write `remote:` in the pipeline file)", runner.entry().name))
        })?;
        runner.use_remote(remote.clone());
        Ok(true)
    }

    /// `--detach` needs a cluster, over the shared cache folder.
    pub fn check_detach(&self) -> Result<(), Failure> {
        let Runner::Cluster(runner) = self else {
            return Err(Failure::usage(crate::exec::DetachError::NotACluster));
        };
        if runner.artifacts_on_remote() {
            return Err(Failure::usage(
                "`--detach` works over the shared cache folder; it does not take `artifacts = \"remote\"` yet",
            ));
        }
        Ok(())
    }

    /// Stops following a cluster's jobs, cancelling or leaving what still runs (after Ctrl-C or
    /// a hangup), and returns its figures.
    pub fn finish(&self, left: JobsLeft) -> Option<ClusterReport> {
        match self {
            Runner::Local(_) => None,
            Runner::Cluster(runner) => Some(runner.finish(left)),
        }
    }
}

/// Opens the cluster backend `entry` as the config files set it up, for `status`, `cancel`
/// and `plan`.
pub fn open_backend(
    session: &Session,
    entry: &BackendEntry,
) -> Result<Box<dyn ClusterBackend>, crate::cluster::ClusterError> {
    let config = ExecutorConfig::load(&config_files(session), backends())?;
    let context = OpenContext {
        cache_dir: session.cache.root(),
    };
    (entry.open)(config.sections_of(entry), &context)
}

/// The runner for this run: `--executor`, else `executor.default` from the config files.
pub fn choose(
    session: &Session,
    flag: Option<&str>,
    backend: Option<String>,
) -> Result<Runner, Failure> {
    let config =
        ExecutorConfig::load(&config_files(session), backends()).map_err(Failure::usage)?;
    let choice = match flag {
        Some(word) => ExecutorChoice::parse(word, backends())
            .ok_or_else(|| Failure::usage(format!("unknown executor `{word}`")))?,
        None => config.default.unwrap_or(ExecutorChoice::Local),
    };
    let ExecutorChoice::Cluster(entry) = choice else {
        return Ok(Runner::Local(LocalRunner));
    };
    let executable = std::env::current_exe()
        .map_err(|error| Failure::failed(format!("cannot find the tpipe binary: {error}")))?;
    // Jobs run in other folders, maybe on other machines: they get absolute paths.
    let cache_dir = std::fs::canonicalize(session.cache.root()).map_err(|error| {
        Failure::failed(format!(
            "cannot resolve the cache folder `{}`: {error}",
            session.cache.root().display()
        ))
    })?;
    let context = OpenContext {
        cache_dir: &cache_dir,
    };
    let cluster = (entry.open)(config.sections_of(entry), &context).map_err(Failure::usage)?;
    let command = JobCommand {
        executable,
        cache_dir,
        backend,
    };
    let runner = ClusterRunner::new(cluster, command).map_err(Failure::usage)?;
    Ok(Runner::Cluster(Box::new(runner)))
}

/// Job ids for a message: all of them, or the first few and how many in all.
pub fn id_list(ids: &[String]) -> String {
    const SHOWN: usize = 12;
    if ids.len() <= SHOWN {
        return ids.join(" ");
    }
    format!("{} … ({} in all)", ids[..SHOWN - 2].join(" "), ids.len())
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// What the cluster did for this run, on stderr after the progress display.
pub fn print_report(report: &ClusterReport, file: &std::path::Path) {
    let name = report.backend.name;
    let submitted = report.jobs_submitted.len();
    let mut line = format!("{name}: {submitted} job{} submitted", plural(submitted));
    if submitted > 0 && report.submit_calls != submitted {
        line.push_str(&format!(
            " in {} {}{}",
            report.submit_calls,
            report.backend.submit_noun,
            plural(report.submit_calls)
        ));
    }
    line.push_str(&format!(
        ", {} {}{}",
        report.poll_calls,
        report.backend.poll_noun,
        plural(report.poll_calls),
    ));
    let attached = report.jobs_attached.len();
    if attached > 0 {
        line.push_str(&format!(
            "; followed {attached} job{} submitted earlier",
            plural(attached)
        ));
    }
    eprintln!("{line}");
    if !report.cancelled_jobs.is_empty() {
        eprintln!(
            "{name}: cancelled job{} {} ({}); the next run resumes from what finished",
            plural(report.cancelled_jobs.len()),
            id_list(&report.cancelled_jobs),
            report.backend.cancel_noun,
        );
    }
    if !report.left_jobs.is_empty() {
        eprintln!(
            "{name}: hangup: left job{} {} queued or running; `tpipe status {}` lists them, and the next run follows them",
            plural(report.left_jobs.len()),
            id_list(&report.left_jobs),
            file.display(),
        );
    }
    for warning in &report.warnings {
        eprintln!("warning: {name}: {warning}");
    }
}

/// After a `run --detach`: how many jobs it left to the cluster, and how to follow them.
pub fn report_detached(
    session: &Session,
    runner: &Runner,
    summary: &RunSummary,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let Runner::Cluster(runner) = runner else {
        return Ok(());
    };
    let count = summary
        .nodes
        .iter()
        .filter(|node| matches!(node.status, NodeStatus::Submitted { .. }))
        .count();
    writeln!(
        out,
        "\n{count} job{} submitted; `tpipe status {}` lists them, and `tpipe run --executor {}` follows them",
        plural(count),
        session.pipeline.file.display(),
        runner.entry().name
    )?;
    Ok(())
}
