//! `tpipe status FILE` and `tpipe cancel FILE`: a pipeline's jobs that are queued or running on
//! a cluster, from the cache's ledger and one poll per backend; and `plan`'s lines about them.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::executor::{id_list, open_backend};
use super::{exit, Failure};
use crate::cluster::ledger::{is_live, Ledger};
use crate::cluster::{backend_named, BackendEntry, ClusterBackend, JobId};
use crate::executors::backends;
use crate::plan::{plan, Plan, PlanStatus};
use crate::session::Session;

/// A job of the pipeline that is queued or running.
#[derive(Clone, Debug, Serialize)]
pub struct QueuedJob {
    pub node: String,
    /// The cluster backend it is on.
    pub executor: String,
    pub job: JobId,
    pub state: String,
    pub reason: String,
    /// Seconds since it was submitted.
    pub waited_seconds: u64,
}

/// One backend's live jobs of the pipeline, with the backend opened to act on them.
struct BackendJobs {
    entry: &'static BackendEntry,
    backend: Box<dyn ClusterBackend>,
    jobs: Vec<QueuedJob>,
}

/// The jobs of `planned`'s nodes that the ledger names and their scheduler lists as queued or
/// running (one poll per backend); the ledger loses the entries it shows are over. Nothing is
/// polled when the ledger names no job of these nodes.
fn live_jobs(session: &Session, planned: &Plan) -> Result<Vec<BackendJobs>, Failure> {
    let mut ledger = Ledger::open(session.cache.root());
    let nodes: Vec<(&str, Option<crate::hash::ContentHash>)> = planned
        .nodes
        .iter()
        .map(|node| (node.name.as_str(), node.key))
        .collect();
    let mut by_backend: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for (node, entry) in ledger.jobs_of(&session.pipeline_id, &nodes) {
        if !entry.cancelled {
            by_backend
                .entry(entry.backend.clone())
                .or_default()
                .push((node, entry));
        }
    }
    if by_backend.is_empty() {
        return Ok(Vec::new());
    }
    let order: BTreeMap<&str, usize> = planned
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| (node.name.as_str(), index))
        .collect();
    let mut found = Vec::new();
    for (name, entries) in by_backend {
        // A backend this build does not have (a test build's) has no jobs to show here.
        let Some(entry) = backend_named(backends(), &name) else {
            continue;
        };
        let backend = open_backend(session, entry).map_err(Failure::usage)?;
        let listed_at = SystemTime::now();
        let listing = backend
            .poll()
            .map_err(|error| Failure::failed(format!("{}: {error}", entry.title)))?;
        let mut jobs: Vec<QueuedJob> = entries
            .into_iter()
            .filter(|(_, job)| is_live(&job.id, job.submitted, &listing, listed_at))
            .map(|(node, job)| {
                let status = listing.get(&job.id);
                QueuedJob {
                    node,
                    executor: name.clone(),
                    state: status.map_or("SUBMITTED".into(), |status| status.state.clone()),
                    reason: status.map_or(String::new(), |status| status.reason.clone()),
                    waited_seconds: SystemTime::now()
                        .duration_since(job.submitted)
                        .unwrap_or_default()
                        .as_secs(),
                    job: job.id,
                }
            })
            .collect();
        jobs.sort_by_key(|job| order.get(job.node.as_str()).copied());
        ledger.prune(&name, &HashSet::new(), Some((&listing, listed_at)));
        found.push(BackendJobs {
            entry,
            backend,
            jobs,
        });
    }
    Ok(found)
}

fn plan_of(session: &Session, targets: &[String]) -> Result<Plan, Failure> {
    let selection = session.selection(targets).map_err(Failure::usage)?;
    Ok(plan(session, &selection, &[]))
}

/// `tpipe status FILE`: the pipeline's nodes queued or running on a cluster.
pub fn status(
    session: &Session,
    targets: &[String],
    json: bool,
    out: &mut impl Write,
) -> Result<u8, Failure> {
    let planned = plan_of(session, targets)?;
    let found = live_jobs(session, &planned)?;
    let jobs: Vec<&QueuedJob> = found.iter().flat_map(|backend| &backend.jobs).collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &jobs)
            .map_err(|error| Failure::failed(error.to_string()))?;
        writeln!(out)?;
        return Ok(exit::SUCCESS);
    }
    let file = session.pipeline.file.display();
    if jobs.is_empty() {
        writeln!(out, "no job of {file} is queued or running")?;
        return Ok(exit::SUCCESS);
    }
    let width = jobs
        .iter()
        .map(|job| job.node.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<width$}  {:<12} {:<10} {:<12} {:<20} waited",
        "node", "executor", "job", "state", "reason"
    )?;
    for job in &jobs {
        let reason = if job.reason.is_empty() || job.reason == "None" {
            "-"
        } else {
            &job.reason
        };
        writeln!(
            out,
            "{:<width$}  {:<12} {:<10} {:<12} {:<20} {}",
            job.node,
            job.executor,
            job.job,
            job.state,
            reason,
            humantime::format_duration(Duration::from_secs(job.waited_seconds))
        )?;
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for job in &jobs {
        *counts.entry(job.state.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(state, count)| format!("{count} {}", state.to_lowercase()))
        .collect();
    writeln!(
        out,
        "\n{} job{} ({}); `tpipe cancel {file}` cancels them",
        jobs.len(),
        if jobs.len() == 1 { "" } else { "s" },
        counts.join(", ")
    )?;
    Ok(exit::SUCCESS)
}

/// `tpipe cancel FILE`: cancels the pipeline's queued and running jobs, one call per backend,
/// and marks them in the ledger, so the next run submits their nodes anew.
pub fn cancel(session: &Session, targets: &[String], out: &mut impl Write) -> Result<u8, Failure> {
    let planned = plan_of(session, targets)?;
    let found = live_jobs(session, &planned)?;
    let file = session.pipeline.file.display();
    let mut ledger = Ledger::open(session.cache.root());
    let mut cancelled_any = false;
    for BackendJobs {
        entry,
        backend,
        jobs,
    } in found
    {
        if jobs.is_empty() {
            continue;
        }
        let mut ids: Vec<JobId> = jobs.iter().map(|job| job.job.clone()).collect();
        crate::cluster::sort_job_ids(&mut ids);
        backend.cancel(&ids).map_err(|error| {
            Failure::failed(format!(
                "{} {} failed: {error}",
                entry.cancel_noun,
                id_list(&ids)
            ))
        })?;
        ledger
            .mark_cancelled(&ids.iter().cloned().collect())
            .map_err(Failure::failed)?;
        writeln!(
            out,
            "cancelled {} {} job{} of {file} ({}: {}); the next run submits their nodes again",
            ids.len(),
            entry.title,
            if ids.len() == 1 { "" } else { "s" },
            entry.cancel_noun,
            id_list(&ids)
        )?;
        cancelled_any = true;
    }
    if !cancelled_any {
        writeln!(out, "no job of {file} is queued or running")?;
    }
    Ok(exit::SUCCESS)
}

/// After `plan`'s table: the nodes still to build that a queued or running job is building.
pub fn write_queued_jobs(
    session: &Session,
    planned: &Plan,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let found = match live_jobs(session, planned) {
        Ok(found) => found,
        Err(failure) => {
            writeln!(out, "\n(jobs on a cluster: {})", failure.message)?;
            return Ok(());
        }
    };
    if found.is_empty() {
        return Ok(());
    }
    let cached: HashSet<&str> = planned
        .nodes
        .iter()
        .filter(|node| node.status == PlanStatus::Cached)
        .map(|node| node.name.as_str())
        .collect();
    for BackendJobs { entry, jobs, .. } in found {
        let lines: Vec<String> = jobs
            .iter()
            .filter(|job| !cached.contains(job.node.as_str()))
            .map(|job| format!("  {:<24} job {} {}", job.node, job.job, job.state))
            .collect();
        if !lines.is_empty() {
            writeln!(
                out,
                "\non {} (queued or running; `tpipe status {}` shows more):",
                entry.title,
                session.pipeline.file.display()
            )?;
            for line in lines {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}
