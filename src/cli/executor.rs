//! `tpipe run --executor local|slurm`: which runner builds the nodes.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use clap::ValueEnum;

use crate::cache::Lookup;
use crate::exec::{LocalRunner, NodeRunner};
use crate::plan::{Plan, PlanStatus};
use crate::remote::config::user_config_path;
use crate::session::{ResolvedKey, Session, Walked};
use crate::slurm::detached::DetachedJobs;
use crate::slurm::{
    exec_node_line, exec_pipeline_node_line, ExecutorChoice, ExecutorConfig, JobCommand,
    SlurmReport, SlurmRunner,
};

use super::Failure;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExecutorArg {
    /// Build in this process (the default).
    Local,
    /// One Slurm job per node, over the shared cache folder.
    Slurm,
}

pub enum Runner {
    Local(LocalRunner),
    Slurm(Box<SlurmRunner>),
}

impl Runner {
    pub fn as_node_runner(&self) -> &dyn NodeRunner {
        match self {
            Runner::Local(runner) => runner,
            Runner::Slurm(runner) => runner.as_ref(),
        }
    }

    /// How many nodes are under way at once unless `--jobs` says: the CPUs here, or on a
    /// cluster as many jobs as may wait in its queue.
    pub fn default_jobs(&self) -> usize {
        match self {
            Runner::Local(_) => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            Runner::Slurm(runner) => runner.max_jobs(),
        }
    }

    /// With `artifacts = "remote"`, hands the run's remote to the Slurm runner; returns whether
    /// the run then reads records only from the remote.
    pub fn use_remote_for_artifacts(
        &mut self,
        remote: Option<&Arc<dyn crate::remote::Remote>>,
    ) -> Result<bool, Failure> {
        let Runner::Slurm(runner) = self else {
            return Ok(false);
        };
        if !runner.artifacts_on_remote() {
            return Ok(false);
        }
        let remote = remote.ok_or_else(|| {
            Failure::usage("`artifacts = \"remote\"` in `[executor.slurm]` needs a remote (hint: pass `--remote URL`, set TPIPE_REMOTE, or write `remote:` in the pipeline file)")
        })?;
        runner.use_remote(remote.clone());
        Ok(true)
    }

    /// A Slurm run waits for the jobs the last `--detach` of this pipeline submitted.
    pub fn attach_detached(&self, session: &Session) {
        if let Runner::Slurm(runner) = self {
            let detached = DetachedJobs::load(&session.cache, &session.pipeline_id);
            runner.attach(detached.jobs);
        }
    }

    /// After a run that built everything, the detached jobs are history.
    pub fn forget_detached(&self, session: &Session) {
        if let Runner::Slurm(_) = self {
            DetachedJobs::remove(&session.cache, &session.pipeline_id);
        }
    }

    /// Cancels what a cluster still runs for this run (after Ctrl-C) and returns its figures.
    pub fn finish(&self) -> Option<SlurmReport> {
        match self {
            Runner::Local(_) => None,
            Runner::Slurm(runner) => Some(runner.finish()),
        }
    }
}

/// The runner for this run: `--executor`, else `executor.default` from the config files.
pub fn choose(
    session: &Session,
    flag: Option<ExecutorArg>,
    backend: Option<String>,
) -> Result<Runner, Failure> {
    let files: Vec<_> = user_config_path()
        .into_iter()
        .chain([session.project_dir.join("tpipe.toml")])
        .collect();
    let config = ExecutorConfig::load(&files).map_err(Failure::usage)?;
    let choice = match flag {
        Some(ExecutorArg::Local) => ExecutorChoice::Local,
        Some(ExecutorArg::Slurm) => ExecutorChoice::Slurm,
        None => config.default.unwrap_or(ExecutorChoice::Local),
    };
    if choice == ExecutorChoice::Local {
        return Ok(Runner::Local(LocalRunner));
    }
    let executable = std::env::current_exe()
        .map_err(|error| Failure::failed(format!("cannot find the tpipe binary: {error}")))?;
    // Jobs run in other folders, maybe on other machines: they get absolute paths.
    let cache_dir = std::fs::canonicalize(session.cache.root()).map_err(|error| {
        Failure::failed(format!(
            "cannot resolve the cache folder `{}`: {error}",
            session.cache.root().display()
        ))
    })?;
    let runner = SlurmRunner::new(
        config.slurm,
        JobCommand {
            executable,
            cache_dir,
            backend,
        },
    )
    .map_err(Failure::usage)?;
    Ok(Runner::Slurm(Box::new(runner)))
}

/// What the cluster did for this run, on stderr after the progress display.
pub fn print_report(report: &SlurmReport) {
    eprintln!(
        "slurm: {} job{} submitted, {} squeue call{}",
        report.jobs_submitted.len(),
        if report.jobs_submitted.len() == 1 {
            ""
        } else {
            "s"
        },
        report.squeue_calls,
        if report.squeue_calls == 1 { "" } else { "s" },
    );
    if !report.cancelled_jobs.is_empty() {
        eprintln!(
            "slurm: cancelled job{} {} (scancel); the next run resumes from what finished",
            if report.cancelled_jobs.len() == 1 {
                ""
            } else {
                "s"
            },
            report.cancelled_jobs.join(" ")
        );
    }
    for warning in &report.warnings {
        eprintln!("warning: slurm: {warning}");
    }
}

/// `run --detach`: submits every node still to build, each after its inputs' jobs, records the
/// job ids for `plan` and a later `run`, and returns.
pub fn detach(
    session: &Session,
    runner: &Runner,
    targets: &[String],
    out: &mut impl Write,
) -> Result<u8, Failure> {
    let Runner::Slurm(runner) = runner else {
        return Err(Failure::usage(
            "`--detach` needs the Slurm executor (hint: add `--executor slurm`)",
        ));
    };
    if runner.artifacts_on_remote() {
        return Err(Failure::usage(
            "`--detach` works over the shared cache folder; it does not take `artifacts = \"remote\"` yet",
        ));
    }
    let selection = session.selection(targets).map_err(Failure::usage)?;
    // Jobs whose key is known only later read the pipeline as it is now, not as it is edited.
    let snapshot = session
        .cache
        .put_blob(session.pipeline.text.as_bytes())
        .map_err(|error| Failure::failed(error.to_string()))?
        .blob;
    let pipeline_file = std::fs::canonicalize(&session.pipeline.file)
        .map_err(|error| Failure::failed(format!("cannot resolve the pipeline file: {error}")))?;
    let lookup = |_: &crate::spec::NodeSpec, resolved: &ResolvedKey| {
        let found = match session.cache.lookup_head(&resolved.key) {
            Lookup::Hit(record) => Some(Arc::from(record)),
            _ => None,
        };
        Ok::<_, std::convert::Infallible>((found, ()))
    };
    let Ok(mut walked) = session.walk_keys(&selection, &lookup, None);
    let mut jobs: BTreeMap<String, String> = BTreeMap::new();
    let mut rows = Vec::new();
    for position in selection {
        let node = &session.pipeline.nodes[position];
        let (exec_line, log_name) = match walked.remove(&position).expect("every node is walked") {
            Walked::Resolved {
                record: Some(_), ..
            } => continue,
            Walked::Resolved { resolved, .. } => {
                session
                    .cache
                    .write_action(&resolved.key, &resolved.action)
                    .map_err(|error| Failure::failed(error.to_string()))?;
                let key = resolved.key.to_hex();
                (
                    exec_node_line(runner.command(), &key),
                    key[..12].to_string(),
                )
            }
            Walked::After { .. } => (
                exec_pipeline_node_line(
                    runner.command(),
                    &pipeline_file,
                    &snapshot.to_hex(),
                    &node.name,
                ),
                node.name.clone(),
            ),
            Walked::Failed { error } => {
                return Err(Failure::failed(format!(
                    "node `{}`: {error}; nothing was submitted after it",
                    node.name
                )))
            }
        };
        let after: Vec<String> = node
            .inputs
            .values()
            .flatten()
            .filter_map(|input| jobs.get(input).cloned())
            .collect();
        let id = runner
            .submit_detached(session, node, &exec_line, &log_name, &after)
            .map_err(|error| Failure::failed(format!("node `{}`: {error}", node.name)))?;
        rows.push(format!("{:<24} job {id}", node.name));
        jobs.insert(node.name.clone(), id);
    }
    let detached = DetachedJobs {
        pipeline: session.pipeline.file.display().to_string(),
        jobs,
    };
    detached
        .save(&session.cache, &session.pipeline_id)
        .map_err(Failure::failed)?;
    for row in &rows {
        writeln!(out, "{row}")?;
    }
    writeln!(
        out,
        "\n{} job{} submitted; `tpipe plan` shows them, and `tpipe run --executor slurm` waits for them",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )?;
    Ok(super::exit::SUCCESS)
}

/// After `plan`'s table: the nodes still to build that a detached job is working on.
pub fn write_detached_jobs(
    session: &Session,
    planned: &Plan,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let detached = DetachedJobs::load(&session.cache, &session.pipeline_id);
    if detached.jobs.is_empty() {
        return Ok(());
    }
    let states = match crate::slurm::job_states() {
        Ok(states) => states,
        Err(error) => {
            writeln!(out, "\n(detached Slurm jobs: squeue failed: {error})")?;
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
                .map(|(state, _)| state.as_str())
                .unwrap_or("no longer in squeue");
            lines.push(format!("  {:<24} job {id} {state}", node.name));
        }
    }
    if !lines.is_empty() {
        writeln!(out, "\non Slurm (from `run --detach`):")?;
        for line in lines {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}
