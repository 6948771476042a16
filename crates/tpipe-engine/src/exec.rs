//! `tpipe run`: builds what is not cached, dependencies first, independent nodes side by side.
//!
//! Deciding *what* to build (keys, cache lookups, failure propagation) happens here; *how* a
//! node is built sits behind [`NodeRunner`], so a cluster runner can replace the local one.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::action::Action;
use crate::build::{build_action, ActionError, ActionRun};
use crate::cache::{Cache, Lookup};
use crate::hash::ContentHash;
use crate::kind::{BuildError, BuildOptions, Progress};
use crate::record::{Record, RecordHead};
use crate::remote::{Remote, RemoteError};
use crate::session::{ResolvedKey, SelectionError, Session};
use crate::spec::NodeSpec;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum NodeStatus {
    Cached,
    Built,
    /// Downloaded from a remote and verified.
    Fetched {
        remote: String,
    },
    Failed {
        error: String,
    },
    /// Not built because a node it needs failed or was skipped.
    Skipped {
        after: String,
    },
    /// Not started because the run was interrupted.
    Cancelled,
    /// `run --detach`: handed to the cluster as job `job`, not built yet.
    Submitted {
        job: String,
    },
    /// `run --detach`: builds on this machine once the jobs it waits on (through `after`) are
    /// done; a later `run` builds it.
    Deferred {
        after: String,
    },
}

impl NodeStatus {
    pub fn word(&self) -> &'static str {
        match self {
            NodeStatus::Cached => "cached",
            NodeStatus::Built => "built",
            NodeStatus::Fetched { .. } => "fetched",
            NodeStatus::Failed { .. } => "failed",
            NodeStatus::Skipped { .. } => "skipped",
            NodeStatus::Cancelled => "cancelled",
            NodeStatus::Submitted { .. } => "submitted",
            NodeStatus::Deferred { .. } => "deferred",
        }
    }
    /// Nothing went wrong: the node is there, or (`--detach`) on its way.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            NodeStatus::Cached
                | NodeStatus::Built
                | NodeStatus::Fetched { .. }
                | NodeStatus::Submitted { .. }
                | NodeStatus::Deferred { .. }
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeOutcome {
    pub name: String,
    pub kind: &'static str,
    #[serde(flatten)]
    pub status: NodeStatus,
    pub seconds: f64,
    pub headline: Option<String>,
    /// Kept as its 32 bytes, written as hex.
    pub key: Option<ContentHash>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    /// In build order.
    pub nodes: Vec<NodeOutcome>,
    pub cancelled: bool,
}

impl RunSummary {
    pub fn count(&self, word: &str) -> usize {
        self.nodes
            .iter()
            .filter(|node| node.status.word() == word)
            .count()
    }
    pub fn all_succeeded(&self) -> bool {
        !self.cancelled && self.nodes.iter().all(|node| node.status.is_success())
    }
}

/// Receives what happens during a run; the CLI draws it.
pub trait Observer: Sync {
    fn node_started(&self, _name: &str, _kind: &str) {}
    fn node_progress(&self, _name: &str, _progress: &Progress) {}
    fn node_finished(&self, _outcome: &NodeOutcome) {}
    fn warning(&self, _message: &str) {}
}

/// An observer that ignores everything (for tests and scripts).
pub struct Quiet;
impl Observer for Quiet {}

pub struct RunOptions {
    /// How many nodes build at the same time.
    pub jobs: usize,
    /// How many of those may use the compute device (training nodes) at once.
    pub device_jobs: usize,
    /// Build these (globs allowed) and what they need; empty means everything.
    pub targets: Vec<String>,
    /// Rebuild these even when cached.
    pub force: Vec<String>,
    pub build: BuildOptions,
    /// Set from another thread (Ctrl-C) to stop starting nodes.
    pub cancel: Arc<AtomicBool>,
    pub remote: Option<Arc<dyn Remote>>,
    /// Upload each node to the remote once it is built.
    pub push: bool,
    /// A node the remote has counts as done from its record alone: its blobs stay there (a
    /// cluster executor with `artifacts = "remote"`; only published outputs are downloaded).
    pub remote_records_only: bool,
    /// `run --detach`: every node the runner does not build here is handed to the cluster
    /// (after its inputs' jobs) and not waited for; nodes that build here do so when their
    /// inputs are built, and are deferred when those are jobs still to run.
    pub detach: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            jobs: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            device_jobs: 1,
            targets: Vec::new(),
            force: Vec::new(),
            build: BuildOptions::default(),
            cancel: Arc::new(AtomicBool::new(false)),
            remote: None,
            push: false,
            remote_records_only: false,
            detach: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Selection(#[from] SelectionError),
    #[error("--force `{pattern}` matches no node that this run builds")]
    ForceMatchesNothing { pattern: String },
    #[error("cannot start worker threads: {0}")]
    Threads(String),
}

/// Why a node's outputs could not be copied to its `publish:` folder (a warning, never a
/// failed node).
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("{0}")]
    Folder(std::io::Error),
    #[error("{0}")]
    Fetch(#[from] crate::remote::RemoteError),
    #[error("{0}")]
    Read(#[from] crate::cache::CacheError),
    #[error("cannot write `{}`: {source}", file.display())]
    Write {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// One node to build: its action, stored in the cache under its key before the runner is called.
pub struct NodeJob<'a> {
    pub session: &'a Session,
    /// The node as the pipeline declares it: a runner reads its `resources`, never its
    /// parameters (the action has what the build reads).
    pub node: &'a NodeSpec,
    pub key: ContentHash,
    pub action: &'a Action,
    pub options: &'a BuildOptions,
    pub cancel: &'a AtomicBool,
    pub progress: &'a (dyn Fn(Progress) + Sync),
}

/// A node `run --detach` hands to the cluster without waiting.
pub struct DetachJob<'a> {
    pub session: &'a Session,
    pub node: &'a NodeSpec,
    pub work: DetachedWork,
    /// The jobs of this node's inputs that are not built yet; it must start after them.
    pub after: Vec<String>,
    /// Set when the run is interrupted (a submission waiting for room stops waiting).
    pub cancel: &'a AtomicBool,
}

/// What a detached job builds.
pub enum DetachedWork {
    /// The node's action, stored in the cache under `key`: its inputs are built.
    Action { key: ContentHash },
    /// The node by name, from the pipeline as it is now: its key waits on inputs that jobs
    /// are still to build.
    PipelineNode,
}

#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    #[error("`--detach` needs a cluster executor (hint: add `--executor slurm`)")]
    NotACluster,
    #[error("interrupted before it was submitted")]
    Cancelled,
    #[error("{0}")]
    Submit(Box<dyn std::error::Error + Send + Sync>),
}

/// Where a node is built. The local runner builds the action in this process; a cluster runner
/// submits `tpipe exec-node KEY` to run the same [`build_action`] on another machine over a
/// shared cache.
pub trait NodeRunner: Sync {
    fn run_node(&self, job: NodeJob<'_>) -> Result<Record, ActionError>;

    /// Whether `node` is built in this process. Only then does the scheduler hold the node's
    /// cache lock while it builds: a job elsewhere takes that lock itself (`exec-node`), and
    /// would wait forever on one held here. Under `--detach`, the nodes that do not build here
    /// are the ones handed to the cluster.
    fn builds_here(&self, _session: &Session, _node: &NodeSpec) -> bool {
        true
    }

    /// `run --detach`: submits the node and returns its job's id at once. Only a cluster
    /// runner can.
    fn detach_node(&self, _job: DetachJob<'_>) -> Result<String, DetachError> {
        Err(DetachError::NotACluster)
    }
}

pub struct LocalRunner;

impl NodeRunner for LocalRunner {
    fn run_node(&self, job: NodeJob<'_>) -> Result<Record, ActionError> {
        build_action(
            job.action,
            &job.session.registry,
            &job.session.cache,
            &ActionRun {
                options: job.options,
                cancel: job.cancel,
                progress: job.progress,
            },
        )
    }
}

/// A counting semaphore for the device limit (and a cluster runner's local builds).
pub(crate) struct Permits {
    free: Mutex<usize>,
    released: Condvar,
}

impl Permits {
    pub(crate) fn new(count: usize) -> Permits {
        Permits {
            free: Mutex::new(count.max(1)),
            released: Condvar::new(),
        }
    }

    pub(crate) fn acquire(&self) -> PermitGuard<'_> {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.released.wait(free).unwrap();
        }
        *free -= 1;
        PermitGuard(self)
    }
}

pub(crate) struct PermitGuard<'a>(&'a Permits);
impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap() += 1;
        self.0.released.notify_one();
    }
}

/// Why a node's inputs give no records to build it from.
enum Upstream {
    /// An input failed or was skipped, or the run was interrupted: this is the node's status.
    Stopped(NodeStatus),
    /// `--detach`: inputs on their way (jobs, or nodes deferred to a later run).
    Pending(Pending),
}

/// `--detach`: the inputs of a node that are on their way.
#[derive(Default)]
struct Pending {
    /// The first such input, for the node's status.
    first: Option<String>,
    /// The jobs building inputs.
    jobs: Vec<String>,
    /// Whether an input is itself deferred (it builds here later, so no job can wait on it).
    deferred: bool,
}

/// What the run knows so far, each by the position of its node in the pipeline (not by a copy
/// of its name: a run of a million nodes would hold a million copies).
struct State {
    /// Dependencies not finished yet, per selected position.
    waiting_on: Vec<usize>,
    records: Vec<Option<Arc<RecordHead>>>,
    outcomes: Vec<Option<NodeOutcome>>,
}

struct Scheduler<'a> {
    session: &'a Session,
    options: &'a RunOptions,
    observer: &'a dyn Observer,
    runner: &'a dyn NodeRunner,
    /// Positions to rebuild even when cached, sorted.
    forced: Vec<usize>,
    device: Permits,
    state: Mutex<State>,
}

/// Builds the pipeline with the local runner.
pub fn run(
    session: &Session,
    options: &RunOptions,
    observer: &dyn Observer,
) -> Result<RunSummary, RunError> {
    run_with(session, options, observer, &LocalRunner)
}

pub fn run_with(
    session: &Session,
    options: &RunOptions,
    observer: &dyn Observer,
    runner: &dyn NodeRunner,
) -> Result<RunSummary, RunError> {
    let selected = session.selection(&options.targets)?;
    let mut forced = Vec::new();
    for pattern in &options.force {
        let matched: Vec<usize> = selected
            .iter()
            .copied()
            .filter(|position| {
                crate::spec::matrix::wildcard_matches(
                    pattern,
                    &session.pipeline.nodes[*position].name,
                )
            })
            .collect();
        if matched.is_empty() {
            return Err(RunError::ForceMatchesNothing {
                pattern: pattern.clone(),
            });
        }
        forced.extend(matched);
    }
    // Looked up for every node: sorted, so `--force '*'` stays linear.
    forced.sort_unstable();
    forced.dedup();
    let node_count = session.pipeline.nodes.len();
    // Nodes outside the selection wait on nothing and are never handed a dependent.
    let mut waiting_on = vec![0; node_count];
    for &position in &selected {
        waiting_on[position] = session
            .graph
            .dependencies(&session.pipeline, position)
            .len();
    }
    let mut outcomes = Vec::with_capacity(node_count);
    outcomes.resize_with(node_count, || None);
    let scheduler = Scheduler {
        session,
        options,
        observer,
        runner,
        forced,
        device: Permits::new(options.device_jobs),
        state: Mutex::new(State {
            waiting_on,
            records: vec![None; node_count],
            outcomes,
        }),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.max(1))
        .thread_name(|index| format!("tpipe-node-{index}"))
        .build()
        .map_err(|error| RunError::Threads(error.to_string()))?;
    pool.scope(|scope| {
        let ready: Vec<usize> = {
            let state = scheduler.state.lock().unwrap();
            selected
                .iter()
                .copied()
                .filter(|&position| state.waiting_on[position] == 0)
                .collect()
        };
        for position in ready {
            let scheduler = &scheduler;
            scope.spawn(move |scope| scheduler.process(scope, position));
        }
    });
    let state = scheduler.state.into_inner().unwrap();
    let index_updates = state
        .records
        .iter()
        .enumerate()
        .filter_map(|(position, record)| {
            let record = record.as_ref()?;
            Some((session.pipeline.nodes[position].name.as_str(), record.key))
        });
    if let Err(error) = session
        .cache
        .update_index(&session.pipeline_id, index_updates)
    {
        observer.warning(&format!("could not update the cache index: {error}"));
    }
    if let Err(error) = session.cache.save_stat_cache() {
        observer.warning(&format!("could not save the stat cache: {error}"));
    }
    let mut outcomes = state.outcomes;
    let nodes = selected
        .iter()
        .filter_map(|&position| outcomes[position].take())
        .collect();
    Ok(RunSummary {
        nodes,
        cancelled: options.cancel.load(Ordering::Relaxed),
    })
}

impl<'a> Scheduler<'a> {
    fn process<'s>(&'s self, scope: &rayon::Scope<'s>, position: usize) {
        let node = &self.session.pipeline.nodes[position];
        let clock = Instant::now();
        let (status, record, key) = self.decide_and_build(node, position);
        let outcome = NodeOutcome {
            name: node.name.clone(),
            kind: node.kind,
            headline: record.as_ref().and_then(|record| record.headline.clone()),
            status,
            seconds: clock.elapsed().as_secs_f64(),
            key,
        };
        if let (Some(record), Some(publish)) = (&record, &node.publish) {
            if let Err(error) = self.publish(record, &self.session.project_dir.join(publish)) {
                self.observer.warning(&format!(
                    "node `{}`: could not publish outputs to `{}`: {error}",
                    node.name,
                    publish.display()
                ));
            }
        }
        self.observer.node_finished(&outcome);
        let mut ready = Vec::new();
        // Worked out before the lock, which the other workers wait for.
        let dependents = self
            .session
            .graph
            .dependents(&self.session.pipeline, position);
        {
            let mut state = self.state.lock().unwrap();
            state.records[position] = record;
            state.outcomes[position] = Some(outcome);
            for dependent in dependents {
                // A dependent outside the selection waits on nothing here.
                let waiting = &mut state.waiting_on[dependent];
                if *waiting > 0 {
                    *waiting -= 1;
                    if *waiting == 0 {
                        ready.push(dependent);
                    }
                }
            }
        }
        for dependent in ready {
            scope.spawn(move |scope| self.process(scope, dependent));
        }
    }

    fn decide_and_build(
        &self,
        node: &NodeSpec,
        position: usize,
    ) -> (NodeStatus, Option<Arc<RecordHead>>, Option<ContentHash>) {
        let upstream = match self.upstream_records(node) {
            Ok(upstream) => upstream,
            Err(Upstream::Stopped(status)) => return (status, None, None),
            Err(Upstream::Pending(pending)) => {
                return (self.detach_pending(node, pending), None, None)
            }
        };
        if self.options.cancel.load(Ordering::Relaxed) {
            return (NodeStatus::Cancelled, None, None);
        }
        let resolved = match self
            .session
            .resolve_key(node, &|index| upstream.get(index).cloned())
        {
            Ok(resolved) => resolved,
            Err(error) => {
                let error = error.to_string();
                return (NodeStatus::Failed { error }, None, None);
            }
        };
        let key = Some(resolved.key);
        let forced = self.forced.binary_search(&position).is_ok();
        if !forced {
            if let Some(record) = self.usable_record(node, &resolved) {
                // `--push` shares what was built before too; the remote skips what it has.
                self.push_cached_to_remote(node, &resolved.key);
                return (NodeStatus::Cached, Some(record), key);
            }
            if let Some((record, remote)) = self.fetch_from_remote(node, &resolved) {
                return (NodeStatus::Fetched { remote }, Some(record), key);
            }
        }
        let builds_here = self.runner.builds_here(self.session, node);
        if self.options.detach && !builds_here {
            let status = self.detach_resolved(node, &resolved);
            return (status, None, key);
        }
        let kind = self.session.kind_of(node);
        let _device_permit = kind.uses_device().then(|| self.device.acquire());
        if self.options.cancel.load(Ordering::Relaxed) {
            return (NodeStatus::Cancelled, None, key);
        }
        // Another process may be building the same key: wait for it, then use its result.
        let _lock = match builds_here.then(|| self.session.cache.lock_node(&resolved.key)) {
            None => None,
            Some(Ok(lock)) => Some(lock),
            Some(Err(error)) => {
                let error = error.to_string();
                return (NodeStatus::Failed { error }, None, key);
            }
        };
        if !forced {
            if let Some(record) = self.usable_record(node, &resolved) {
                return (NodeStatus::Cached, Some(record), key);
            }
        }
        let (status, record) = self.build(node, &resolved);
        (status, record, key)
    }

    /// The records of `node`'s inputs, or why it cannot be built now: an input failed or was
    /// skipped (or the run was interrupted), or (`--detach`) inputs are on their way.
    /// The records come in the order of `node.inputs`, slot by slot.
    fn upstream_records(&self, node: &NodeSpec) -> Result<Vec<Arc<RecordHead>>, Upstream> {
        // Found by name before the lock, which the other workers wait for.
        let sources: Vec<(&String, usize)> = node
            .inputs
            .values()
            .flatten()
            .map(|source| {
                (
                    source,
                    self.session.position_of(source).expect("inputs exist"),
                )
            })
            .collect();
        let state = self.state.lock().unwrap();
        let mut pending = Pending::default();
        let mut records = Vec::with_capacity(sources.len());
        for (source, source_position) in sources {
            if let Some(record) = &state.records[source_position] {
                records.push(record.clone());
                continue;
            }
            let status = state.outcomes[source_position]
                .as_ref()
                .map(|outcome| &outcome.status);
            match status {
                Some(NodeStatus::Submitted { job }) => pending.jobs.push(job.clone()),
                Some(NodeStatus::Deferred { .. }) => pending.deferred = true,
                _ if self.options.cancel.load(Ordering::Relaxed) => {
                    return Err(Upstream::Stopped(NodeStatus::Cancelled))
                }
                Some(NodeStatus::Skipped { after }) => {
                    let after = after.clone();
                    return Err(Upstream::Stopped(NodeStatus::Skipped { after }));
                }
                _ => {
                    let after = source.clone();
                    return Err(Upstream::Stopped(NodeStatus::Skipped { after }));
                }
            }
            pending.first.get_or_insert_with(|| source.clone());
        }
        if pending.first.is_some() {
            return Err(Upstream::Pending(pending));
        }
        // Only this node's inputs: cloning every record so far would make a run quadratic.
        Ok(records)
    }

    /// `--detach`, some inputs still on their way: a node that builds here waits for a later
    /// run; any other becomes a job after its inputs' jobs, building itself by name.
    fn detach_pending(&self, node: &NodeSpec, pending: Pending) -> NodeStatus {
        let after = pending.first.expect("pending inputs have a first");
        if pending.deferred || self.runner.builds_here(self.session, node) {
            return NodeStatus::Deferred { after };
        }
        self.detach(DetachJob {
            session: self.session,
            node,
            work: DetachedWork::PipelineNode,
            after: pending.jobs,
            cancel: &self.options.cancel,
        })
    }

    /// `--detach`, inputs built: the action goes into the cache and a job builds it.
    fn detach_resolved(&self, node: &NodeSpec, resolved: &ResolvedKey) -> NodeStatus {
        if let Err(error) = self
            .session
            .cache
            .write_action(&resolved.key, &resolved.action)
        {
            let error = error.to_string();
            return NodeStatus::Failed { error };
        }
        self.detach(DetachJob {
            session: self.session,
            node,
            work: DetachedWork::Action { key: resolved.key },
            after: Vec::new(),
            cancel: &self.options.cancel,
        })
    }

    fn detach(&self, job: DetachJob<'_>) -> NodeStatus {
        match self.runner.detach_node(job) {
            Ok(job) => NodeStatus::Submitted { job },
            Err(DetachError::Cancelled) => NodeStatus::Cancelled,
            Err(error) => NodeStatus::Failed {
                error: error.to_string(),
            },
        }
    }

    /// Stores the action, then builds it through the runner on a thread of its own.
    fn build(
        &self,
        node: &NodeSpec,
        resolved: &ResolvedKey,
    ) -> (NodeStatus, Option<Arc<RecordHead>>) {
        // The action goes into the cache first, so the same build can be repeated elsewhere
        // (`tpipe exec-node`) from the cache alone.
        if let Err(error) = self
            .session
            .cache
            .write_action(&resolved.key, &resolved.action)
        {
            let error = error.to_string();
            return (NodeStatus::Failed { error }, None);
        }
        self.observer.node_started(&node.name, node.kind);
        let progress = |progress: Progress| self.observer.node_progress(&node.name, &progress);
        let job = NodeJob {
            session: self.session,
            node,
            key: resolved.key,
            action: &resolved.action,
            options: &self.options.build,
            cancel: &self.options.cancel,
            progress: &progress,
        };
        // The build runs on a plain thread, not on this rayon worker: a kind that uses rayon
        // itself (burn's CPU backend does) would otherwise let this worker steal and run a
        // whole other node while waiting inside its own parallel loop, nesting the builds and
        // serialising them.
        let runner = self.runner;
        let result = std::thread::scope(|threads| {
            std::thread::Builder::new()
                .name(format!("tpipe-build-{}", node.name))
                .spawn_scoped(threads, move || runner.run_node(job))
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(BuildError::failed("the build thread panicked").into())
                    })
                })
                .unwrap_or_else(|error| {
                    Err(BuildError::failed(format!("cannot start a build thread: {error}")).into())
                })
        });
        match result {
            Ok(record) => {
                self.push_to_remote(node, &record);
                (NodeStatus::Built, Some(Arc::new(record.head())))
            }
            Err(ActionError::Build(BuildError::Cancelled)) => (NodeStatus::Cancelled, None),
            Err(error) => {
                let error = error.to_string();
                (NodeStatus::Failed { error }, None)
            }
        }
    }

    fn usable_record(&self, node: &NodeSpec, resolved: &ResolvedKey) -> Option<Arc<RecordHead>> {
        match self.session.cache.lookup_head(&resolved.key) {
            Lookup::Hit(record) => Some(Arc::from(record)),
            Lookup::Miss => None,
            Lookup::Damaged(damage) => {
                self.observer.warning(&format!(
                    "node `{}`: cache entry {} is damaged ({damage}); rebuilding it",
                    node.name,
                    resolved.key.short()
                ));
                None
            }
        }
    }

    fn fetch_from_remote(
        &self,
        node: &NodeSpec,
        resolved: &ResolvedKey,
    ) -> Option<(Arc<RecordHead>, String)> {
        let remote = self.options.remote.as_ref()?;
        if self.options.remote_records_only {
            return match remote.fetch_record(&resolved.key) {
                Ok(Some(record)) => Some((Arc::new(record.head()), remote.describe())),
                Ok(None) => None,
                Err(error) => {
                    self.observer
                        .warning(&format!("node `{}`: {error}; building it", node.name));
                    None
                }
            };
        }
        match remote.fetch(&resolved.key, &self.session.cache) {
            Ok(true) => match self.session.cache.lookup_head(&resolved.key) {
                Lookup::Hit(record) => Some((Arc::from(record), remote.describe())),
                _ => None,
            },
            Ok(false) => None,
            Err(error) => {
                self.observer.warning(&format!(
                    "node `{}`: {error}; building it locally",
                    node.name
                ));
                None
            }
        }
    }

    /// With `--push`, uploads the entry of a node found in the cache. Only then is its whole
    /// record read: a run that finds the node cached read its head alone.
    fn push_cached_to_remote(&self, node: &NodeSpec, key: &ContentHash) {
        if self.options.remote.is_none() || !self.options.push {
            return;
        }
        match self.session.cache.lookup(key) {
            Lookup::Hit(record) => self.push_to_remote(node, &record),
            _ => self.observer.warning(&format!(
                "node `{}`: not pushed: its cache entry went away",
                node.name
            )),
        }
    }

    /// With `--push`, uploads a node's entry; a failure is a warning, never a failed node.
    fn push_to_remote(&self, node: &NodeSpec, record: &Record) {
        let Some(remote) = self.options.remote.as_ref().filter(|_| self.options.push) else {
            return;
        };
        // A node built in a job through the remote is there already, and only there.
        if self.options.remote_records_only {
            return;
        }
        match remote.push(record, &self.session.cache) {
            Ok(()) => {}
            // Said once already, when the remote went away or pushing stopped.
            Err(RemoteError::GaveUp { .. } | RemoteError::NotPushing { .. }) => {}
            Err(error @ RemoteError::StoppedPushing { .. }) => {
                self.observer.warning(&error.to_string());
            }
            Err(error) => self
                .observer
                .warning(&format!("node `{}`: not pushed: {error}", node.name)),
        }
    }

    /// Copies a node's outputs into a folder the user reads, skipping files already identical.
    fn publish(&self, record: &RecordHead, folder: &Path) -> Result<(), PublishError> {
        std::fs::create_dir_all(folder).map_err(PublishError::Folder)?;
        let cache: &Cache = &self.session.cache;
        // Outputs left on the remote (`remote_records_only`) come down to be published.
        let missing = record
            .outputs
            .values()
            .any(|output| cache.blob_is_intact(output).is_err());
        if let (true, Some(remote)) = (missing, &self.options.remote) {
            remote.fetch(&record.key, cache)?;
        }
        for (name, output) in &record.outputs {
            let destination = folder.join(name);
            let same = std::fs::metadata(&destination)
                .is_ok_and(|metadata| metadata.len() == output.size)
                && cache
                    .stat_cache()
                    .hash_file(&destination)
                    .is_ok_and(|hash| hash == output.blob);
            if same {
                continue;
            }
            let bytes = cache.read_blob(&output.blob)?;
            crate::cache::write_atomically(&cache.temporary_dir(), &destination, &bytes).map_err(
                |source| PublishError::Write {
                    file: destination.clone(),
                    source,
                },
            )?;
        }
        Ok(())
    }
}
