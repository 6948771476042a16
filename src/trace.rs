//! The trace of a run: per node its status, where it ran, when it was queued, started and
//! ended, and what its build cost. `tpipe run` records it through the engine's [`Observer`]
//! seam ([`TraceRecorder`] wraps the terminal's observer) and, once the run is over, adds what
//! the builds measured themselves (the records' `provenance.usage`, host and cluster job), then
//! writes it as JSON lines beside the pipeline's index in the cache:
//! `index/<pipeline id>.runs/<UTC time>.jsonl`, the newest [`TRACES_KEPT`] per pipeline.
//!
//! The first line is a [`RunTrace`], every other line a [`NodeTrace`] (README, "The trace of
//! a run"). Both refuse unknown fields and carry every field (`null` when empty), so a
//! renamed field is a load error, never a silent default.

use std::borrow::Borrow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::exec::{NodeOutcome, NodeStatus, Observer, RunSummary};
use crate::kind::Progress;
use crate::record::Record;
use crate::session::Session;

/// Bumped when a field changes meaning or goes away.
pub const TRACE_FORMAT: u32 = 1;

/// How many traces of one pipeline the cache keeps; older ones are removed after a run.
pub const TRACES_KEPT: usize = 20;

/// The first line of a trace: the run as a whole.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunTrace {
    pub format: u32,
    /// The pipeline file as the command line named it.
    pub pipeline: String,
    pub pipeline_id: String,
    /// The cache the run used (absolute): the records of the nodes are there.
    pub cache: String,
    /// RFC 3339, UTC, milliseconds. Every time of a node is in seconds after this.
    pub started_at: String,
    pub seconds: f64,
    /// The machine that ran `tpipe run`.
    pub host: String,
    pub tpipe_version: String,
    /// `local`, or the cluster backend (`slurm`, …).
    pub executor: String,
    pub jobs: usize,
    pub device_jobs: usize,
    pub detach: bool,
    pub cancelled: bool,
}

/// A line per node the run selected, in build order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeTrace {
    pub name: String,
    pub kind: String,
    /// The node key (`null` when its inputs never got one).
    pub key: Option<String>,
    /// `built`, `cached`, `fetched`, `failed`, `skipped`, `cancelled`, `submitted`, `deferred`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The remote it was fetched from.
    pub remote: Option<String>,
    /// The input it was skipped (or deferred) after.
    pub after: Option<String>,
    /// The nodes it takes as inputs, which it waited for.
    pub inputs: Vec<String>,
    /// The run's worker slot (0-based) that handled it.
    pub slot: Option<usize>,
    /// The cluster job that built it (or, `--detach`, will).
    pub job: Option<String>,
    /// The machine that built it.
    pub host: Option<String>,
    /// When a worker slot took the node up: its inputs were done.
    pub queued: f64,
    /// When its build began (on a cluster: the job's build, worked out from its duration);
    /// `null` when it was not built.
    pub started: Option<f64>,
    /// When the run was done with it (its build, then copying its outputs to `publish:`).
    pub ended: f64,
    /// The build's own duration, as its record says.
    pub build_seconds: Option<f64>,
    /// CPU time and peak resident memory of the process during the build (see
    /// `usage_shared`); `null` for nodes not built in this run.
    pub cpu_seconds: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// Whether another build ran in the same process meanwhile: its work is in the figures.
    pub usage_shared: Option<bool>,
    pub bytes_read: Option<u64>,
    pub bytes_written: Option<u64>,
    /// A training's speed, from its metrics.
    pub images_per_second: Option<f64>,
    pub headline: Option<String>,
}

/// A whole trace: the run, then its nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub run: RunTrace,
    pub nodes: Vec<NodeTrace>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot write the run's trace `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the trace `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}`, line {line}: not a tpipe trace line: {source} (hint: traces are written by `tpipe run`; one of another format is read by the tpipe that wrote it)", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("`{}` is a trace of format {found}; this tpipe reads format {TRACE_FORMAT} (hint: rerun `tpipe run` to write a new one)", path.display())]
    Format { path: PathBuf, found: u32 },
    #[error("`{}` is empty", path.display())]
    Empty { path: PathBuf },
    #[error("no run of `{pipeline}` is traced in the cache at `{}` (hint: `tpipe run {pipeline}` writes one)", cache.display())]
    NoRun { pipeline: String, cache: PathBuf },
}

/// What a run's trace needs to know besides what the observer sees.
pub struct RunContext<'a> {
    pub executor: &'a str,
    pub jobs: usize,
    pub device_jobs: usize,
    pub detach: bool,
}

#[derive(Default, Clone, Copy)]
struct Timing {
    started: Option<f64>,
    ended: f64,
    queued: f64,
    slot: Option<usize>,
}

/// An [`Observer`] that notes when each node is taken up, starts building and ends, and on
/// which worker slot, and passes everything on to `inner`.
pub struct TraceRecorder<'a> {
    inner: &'a dyn Observer,
    session: &'a Session,
    clock: Instant,
    started_at: SystemTime,
    /// By the position of the node in the pipeline (not by a copy of its name).
    timings: Mutex<Vec<Option<Timing>>>,
}

impl<'a> TraceRecorder<'a> {
    pub fn new(inner: &'a dyn Observer, session: &'a Session) -> TraceRecorder<'a> {
        TraceRecorder {
            inner,
            session,
            clock: Instant::now(),
            started_at: SystemTime::now(),
            timings: Mutex::new(vec![None; session.pipeline.nodes.len()]),
        }
    }

    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    /// Changes the timing of node `name`, which starts empty.
    fn note(&self, name: &str, change: impl FnOnce(&mut Timing)) {
        let Some(position) = self.session.position_of(name) else {
            return;
        };
        let mut timings = self.timings.lock().unwrap();
        change(timings[position].get_or_insert_with(Timing::default));
    }

    /// The trace of the finished run: the observed times, and for each node built in this run
    /// what its record says of the build.
    pub fn trace(&self, summary: &RunSummary, context: &RunContext) -> Trace {
        let seconds = self.now();
        Trace {
            run: self.run_line(summary, context, seconds),
            nodes: self.node_lines(summary, seconds).collect(),
        }
    }

    /// Stores the trace of the finished run in the cache (as [`Trace::store`] would store
    /// [`TraceRecorder::trace`]'s), a line at a time: a run of a million nodes never holds
    /// its trace whole.
    pub fn store(&self, summary: &RunSummary, context: &RunContext) -> Result<PathBuf, TraceError> {
        let seconds = self.now();
        store_lines(
            self.session,
            &self.run_line(summary, context, seconds),
            self.node_lines(summary, seconds),
        )
    }

    /// A node line per node of `summary`; a node the run never saw ended at `seconds`.
    fn node_lines<'s>(
        &'s self,
        summary: &'s RunSummary,
        seconds: f64,
    ) -> impl Iterator<Item = NodeTrace> + 's {
        let session = self.session;
        summary.nodes.iter().map(move |outcome| {
            let position = session.position_of(&outcome.name);
            let timing = position
                .and_then(|position| self.timings.lock().unwrap()[position])
                .unwrap_or(Timing {
                    ended: seconds,
                    queued: seconds,
                    ..Timing::default()
                });
            let inputs = position
                .map(|position| {
                    let node = &session.pipeline.nodes[position];
                    node.inputs.values().flatten().cloned().collect()
                })
                .unwrap_or_default();
            let built_record = match outcome.status {
                NodeStatus::Built => outcome
                    .key
                    .and_then(|key| session.cache.read_record(&key).ok().flatten()),
                _ => None,
            };
            node_trace(outcome, timing, inputs, built_record.as_ref())
        })
    }

    fn run_line(&self, summary: &RunSummary, context: &RunContext, seconds: f64) -> RunTrace {
        let session = self.session;
        RunTrace {
            format: TRACE_FORMAT,
            pipeline: session.pipeline.file.display().to_string(),
            pipeline_id: session.pipeline_id.to_hex(),
            cache: std::path::absolute(session.cache.root())
                .unwrap_or_else(|_| session.cache.root().to_path_buf())
                .display()
                .to_string(),
            started_at: humantime::format_rfc3339_millis(self.started_at).to_string(),
            seconds,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            tpipe_version: env!("CARGO_PKG_VERSION").to_string(),
            executor: context.executor.to_string(),
            jobs: context.jobs,
            device_jobs: context.device_jobs,
            detach: context.detach,
            cancelled: summary.cancelled,
        }
    }
}

fn node_trace(
    outcome: &NodeOutcome,
    timing: Timing,
    inputs: Vec<String>,
    record: Option<&Record>,
) -> NodeTrace {
    let (mut error, mut remote, mut after, mut job) = (None, None, None, None);
    match &outcome.status {
        NodeStatus::Failed { error: message } => error = Some(message.clone()),
        NodeStatus::Fetched { remote: name } => remote = Some(name.clone()),
        NodeStatus::Skipped { after: input } | NodeStatus::Deferred { after: input } => {
            after = Some(input.clone())
        }
        NodeStatus::Submitted { job: id } => job = Some(id.clone()),
        NodeStatus::Built | NodeStatus::Cached | NodeStatus::Cancelled => {}
    }
    let provenance = record.map(|record| &record.provenance);
    let usage = provenance.and_then(|provenance| provenance.usage.as_ref());
    let cluster = provenance.and_then(|provenance| provenance.cluster.as_ref());
    if let Some(cluster) = cluster {
        job = Some(cluster.job_id.clone());
    }
    let build_seconds = provenance.map(|provenance| provenance.duration_seconds);
    // A job's build began its duration before the run saw its record; the wait in the queue
    // before it is the job's, not the build's.
    let started = match (cluster, build_seconds) {
        (Some(_), Some(duration)) => timing
            .started
            .map(|submitted| (timing.ended - duration).max(submitted)),
        _ => timing.started,
    };
    let images_per_second = record
        .and_then(|record| record.metrics.to_value().get("images_per_second").cloned())
        .and_then(|value| value.as_f64());
    NodeTrace {
        name: outcome.name.clone(),
        kind: outcome.kind.to_string(),
        key: outcome.key.map(|key| key.to_hex()),
        status: outcome.status.word().to_string(),
        error,
        remote,
        after,
        inputs,
        slot: timing.slot,
        job,
        host: provenance.map(|provenance| provenance.host.clone()),
        queued: timing.queued,
        started,
        ended: timing.ended,
        build_seconds,
        cpu_seconds: usage.map(|usage| usage.cpu_seconds),
        peak_rss_bytes: usage.and_then(|usage| usage.peak_rss_bytes),
        usage_shared: usage.map(|usage| usage.shared),
        bytes_read: usage.map(|usage| usage.bytes_read),
        bytes_written: usage.map(|usage| usage.bytes_written),
        images_per_second,
        headline: outcome.headline.clone(),
    }
}

impl Observer for TraceRecorder<'_> {
    fn node_started(&self, name: &str, kind: &str) {
        let now = self.now();
        self.note(name, |timing| {
            timing.started = Some(now);
            // The scheduler calls this on the worker that handles the node.
            timing.slot = rayon::current_thread_index();
        });
        self.inner.node_started(name, kind);
    }

    fn node_progress(&self, name: &str, progress: &Progress) {
        self.inner.node_progress(name, progress);
    }

    fn node_finished(&self, outcome: &NodeOutcome) {
        let now = self.now();
        self.note(&outcome.name, |timing| {
            timing.ended = now;
            // The outcome's seconds run from when the worker took the node up to its build's
            // end; copying its outputs to `publish:` comes after, so the difference can fall
            // after its start.
            let queued = (now - outcome.seconds).max(0.0);
            timing.queued = timing.started.map_or(queued, |started| queued.min(started));
            if timing.slot.is_none() {
                timing.slot = rayon::current_thread_index();
            }
        });
        self.inner.node_finished(outcome);
    }

    fn warning(&self, message: &str) {
        self.inner.warning(message);
    }
}

/// The folder of a pipeline's traces in `cache_root`.
pub fn traces_dir(cache_root: &Path, pipeline_id: &str) -> PathBuf {
    cache_root.join("index").join(format!("{pipeline_id}.runs"))
}

/// Writes a trace of `run` and `nodes` into the cache (atomically) and removes the oldest
/// beyond [`TRACES_KEPT`]; returns its path.
fn store_lines<N: Borrow<NodeTrace>>(
    session: &Session,
    run: &RunTrace,
    nodes: impl IntoIterator<Item = N>,
) -> Result<PathBuf, TraceError> {
    let folder = traces_dir(session.cache.root(), &run.pipeline_id);
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TraceError::Write { path, source }
    };
    std::fs::create_dir_all(&folder).map_err(write_error(&folder))?;
    // Sortable by name: the newest last. Two runs in the same millisecond are told apart
    // by the process id.
    let stamp = run.started_at.replace(':', "");
    let path = folder.join(format!("{stamp}-{}.jsonl", std::process::id()));
    crate::cache::write_atomically_with(&session.cache.temporary_dir(), &path, |file| {
        let mut out = std::io::BufWriter::new(file);
        write_lines(&mut out, run, nodes)?;
        out.flush()
    })
    .map_err(write_error(&path))?;
    let mut older = trace_files(&folder);
    if older.len() > TRACES_KEPT {
        older.truncate(older.len() - TRACES_KEPT);
        for old in older {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(path)
}

/// The JSON lines of a trace: the run, then a line per node.
fn write_lines<N: Borrow<NodeTrace>>(
    out: &mut impl Write,
    run: &RunTrace,
    nodes: impl IntoIterator<Item = N>,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, run)?;
    out.write_all(b"\n")?;
    for node in nodes {
        serde_json::to_writer(&mut *out, node.borrow())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

impl Trace {
    /// Writes the trace into the cache (atomically) and removes the oldest beyond
    /// [`TRACES_KEPT`]; returns its path.
    pub fn store(&self, session: &Session) -> Result<PathBuf, TraceError> {
        store_lines(session, &self.run, &self.nodes)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_lines(&mut bytes, &self.run, &self.nodes).expect("a Vec takes every write");
        bytes
    }

    pub fn read(path: &Path) -> Result<Trace, TraceError> {
        let file = std::fs::File::open(path).map_err(|source| TraceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines = std::io::BufReader::new(file).lines().enumerate();
        let parse_error = |line: usize| {
            let path = path.to_path_buf();
            move |source| TraceError::Parse {
                path,
                line: line + 1,
                source,
            }
        };
        let read_error = |source| TraceError::Read {
            path: path.to_path_buf(),
            source,
        };
        let Some((number, first)) = lines.next() else {
            return Err(TraceError::Empty {
                path: path.to_path_buf(),
            });
        };
        let first = first.map_err(read_error)?;
        // The format first, so that another format says so rather than naming a field.
        #[derive(Deserialize)]
        struct FormatOnly {
            format: u32,
        }
        let format: FormatOnly = serde_json::from_str(&first).map_err(parse_error(number))?;
        if format.format != TRACE_FORMAT {
            return Err(TraceError::Format {
                path: path.to_path_buf(),
                found: format.format,
            });
        }
        let run: RunTrace = serde_json::from_str(&first).map_err(parse_error(number))?;
        let mut nodes = Vec::new();
        for (number, line) in lines {
            let line = line.map_err(read_error)?;
            if line.trim().is_empty() {
                continue;
            }
            nodes.push(serde_json::from_str(&line).map_err(parse_error(number))?);
        }
        Ok(Trace { run, nodes })
    }

    /// The newest trace of `session`'s pipeline.
    pub fn latest_path(session: &Session) -> Result<PathBuf, TraceError> {
        let folder = traces_dir(session.cache.root(), &session.pipeline_id.to_hex());
        trace_files(&folder).pop().ok_or_else(|| TraceError::NoRun {
            pipeline: session.pipeline.file.display().to_string(),
            cache: session.cache.root().to_path_buf(),
        })
    }
}

/// The traces in `folder`, oldest first.
fn trace_files(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "jsonl")
        })
        .collect();
    files.sort();
    files
}
