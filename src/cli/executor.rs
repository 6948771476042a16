//! `tpipe run --executor local|<cluster backend>`: which runner builds the nodes, `--detach`,
//! and the cluster's end-of-run figures. Nothing here names a backend: they come from
//! [`crate::cluster::backends`].

use std::io::Write;
use std::sync::Arc;

use crate::cluster::detached::DetachedJobs;
use crate::cluster::{
    ClusterReport, ClusterRunner, ExecutorChoice, ExecutorConfig, JobCommand, OpenContext,
};
use crate::exec::{LocalRunner, NodeRunner, NodeStatus, RunSummary};
use crate::executors::backends;
use crate::plan::{Plan, PlanStatus};
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

    /// A cluster run waits for the jobs the last `--detach` of this pipeline submitted there.
    pub fn attach_detached(&self, session: &Session) {
        if let Runner::Cluster(runner) = self {
            let detached = DetachedJobs::load(&session.cache, &session.pipeline_id);
            if detached.backend == runner.entry().name {
                runner.attach(detached.jobs);
            }
        }
    }

    /// After a run that built everything, the detached jobs are history.
    pub fn forget_detached(&self, session: &Session) {
        if let Runner::Cluster(_) = self {
            DetachedJobs::remove(&session.cache, &session.pipeline_id);
        }
    }

    /// Cancels what a cluster still runs for this run (after Ctrl-C) and returns its figures.
    pub fn finish(&self) -> Option<ClusterReport> {
        match self {
            Runner::Local(_) => None,
            Runner::Cluster(runner) => Some(runner.finish()),
        }
    }
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

/// What the cluster did for this run, on stderr after the progress display.
pub fn print_report(report: &ClusterReport) {
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    let name = report.backend.name;
    let submitted = report.jobs_submitted.len();
    eprintln!(
        "{name}: {submitted} job{} submitted, {} {}{}",
        plural(submitted),
        report.poll_calls,
        report.backend.poll_noun,
        plural(report.poll_calls),
    );
    if !report.cancelled_jobs.is_empty() {
        eprintln!(
            "{name}: cancelled job{} {} ({}); the next run resumes from what finished",
            plural(report.cancelled_jobs.len()),
            report.cancelled_jobs.join(" "),
            report.backend.cancel_noun,
        );
    }
    for warning in &report.warnings {
        eprintln!("warning: {name}: {warning}");
    }
}

/// After a `run --detach`: records the jobs it submitted, for `plan` and a later `run`, and
/// says how to follow them.
pub fn record_detached(
    session: &Session,
    runner: &Runner,
    summary: &RunSummary,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let Runner::Cluster(runner) = runner else {
        return Ok(());
    };
    let jobs: std::collections::BTreeMap<String, String> = summary
        .nodes
        .iter()
        .filter_map(|node| match &node.status {
            NodeStatus::Submitted { job } => Some((node.name.clone(), job.clone())),
            _ => None,
        })
        .collect();
    let count = jobs.len();
    let detached = DetachedJobs {
        pipeline: session.pipeline.file.display().to_string(),
        backend: runner.entry().name.to_string(),
        jobs,
    };
    detached
        .save(&session.cache, &session.pipeline_id)
        .map_err(Failure::failed)?;
    writeln!(
        out,
        "\n{count} job{} submitted; `tpipe plan` shows them, and `tpipe run --executor {}` waits for them",
        if count == 1 { "" } else { "s" },
        runner.entry().name
    )?;
    Ok(())
}

/// After `plan`'s table: the nodes still to build that a detached job is working on.
pub fn write_detached_jobs(
    session: &Session,
    planned: &Plan,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let detached = DetachedJobs::load(&session.cache, &session.pipeline_id);
    let Some(entry) = crate::cluster::backend_named(backends(), &detached.backend) else {
        return Ok(());
    };
    if detached.jobs.is_empty() {
        return Ok(());
    }
    let polled = ExecutorConfig::load(&config_files(session), backends()).and_then(|config| {
        let context = OpenContext {
            cache_dir: session.cache.root(),
        };
        (entry.open)(config.sections_of(entry), &context)?.poll()
    });
    let states = match polled {
        Ok(states) => states,
        Err(error) => {
            writeln!(out, "\n(detached {} jobs: {error})", entry.title)?;
            return Ok(());
        }
    };
    let mut lines = Vec::new();
    for node in &planned.nodes {
        if node.status == PlanStatus::Cached {
            continue;
        }
        if let Some(id) = detached.jobs.get(&node.name) {
            let state = states
                .get(id)
                .map(|status| status.state.as_str())
                .unwrap_or("no longer listed");
            lines.push(format!("  {:<24} job {id} {state}", node.name));
        }
    }
    if !lines.is_empty() {
        writeln!(out, "\non {} (from `run --detach`):", entry.title)?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
