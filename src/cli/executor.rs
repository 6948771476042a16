//! `tpipe run --executor local|slurm`: which runner builds the nodes.

use clap::ValueEnum;

use crate::exec::{LocalRunner, NodeRunner};
use crate::remote::config::user_config_path;
use crate::session::Session;
use crate::slurm::{ExecutorChoice, ExecutorConfig, JobCommand, SlurmReport, SlurmRunner};

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
