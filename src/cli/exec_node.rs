//! `tpipe exec-node KEY`: builds one stored action from the cache, with no pipeline at hand.
//! This is what a cluster job runs; `tpipe run` builds through the same `build_action`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::build::{build_action, ActionError, ActionRun};
use crate::cache::Lookup;
use crate::hash::ContentHash;
use crate::kind::{BuildOptions, KindRegistry, Progress};
use crate::remote::Remote;

use super::{exit, remote_commands, Failure};

pub struct ExecNodeRequest<'a> {
    pub key: &'a str,
    pub cache_dir: &'a Path,
    pub backend: Option<String>,
    pub remote: &'a remote_commands::RemoteArgs,
    /// Upload the built node to the remote.
    pub push: bool,
    /// The action as JSON in this file (`-`: stdin), stored in the cache before the build: a
    /// job whose cache starts empty (node-local scratch) gets its action this way.
    pub action_file: Option<&'a Path>,
}

pub fn exec_node(
    request: &ExecNodeRequest,
    registry: &KindRegistry,
    out: &mut impl Write,
) -> Result<u8, Failure> {
    let key: ContentHash = request.key.parse().map_err(|error| {
        Failure::usage(format!(
            "{error} (hint: `tpipe plan --json` shows each node's key)"
        ))
    })?;
    let cache = super::open_cache(request.cache_dir)?;
    if let Some(file) = request.action_file {
        store_given_action(&cache, &key, file)?;
    }
    let remote = remote_commands::choose_remote(request.remote, Path::new("."), None)?;
    // A record already there means another job (or a requeue) built it: nothing to do.
    if let Lookup::Hit(record) = cache.lookup(&key) {
        writeln!(out, "{} ({}) is already built", record.node, key.short())?;
        return Ok(exit::SUCCESS);
    }
    let action = cache
        .read_action(&key)
        .map_err(Failure::failed)?
        .ok_or_else(|| {
            Failure::usage(ActionError::NotStored {
                key: key.to_hex(),
                cache: request.cache_dir.to_path_buf(),
            })
        })?;
    if let Some(remote) = &remote {
        for line in crate::remote::fetch_missing_inputs(&action, &cache, remote.as_ref()) {
            writeln!(out, "{line}")?;
        }
    }
    let _lock = cache
        .lock_node(&key)
        .map_err(|error| Failure::failed(error.to_string()))?;
    if let Lookup::Hit(record) = cache.lookup(&key) {
        writeln!(out, "{} ({}) is already built", record.node, key.short())?;
        return Ok(exit::SUCCESS);
    }
    let options = BuildOptions {
        backend: request.backend.clone(),
    };
    let cancel = Arc::new(AtomicBool::new(false));
    super::install_interrupt_handler(cancel.clone());
    let progress = |_: Progress| {};
    let record = build_action(
        &action,
        registry,
        &cache,
        &ActionRun {
            options: &options,
            cancel: &cancel,
            progress: &progress,
        },
    )
    .map_err(|error| match error {
        ActionError::Build(crate::kind::BuildError::Cancelled) => Failure {
            message: format!("{}: interrupted", action.origin.node),
            code: exit::INTERRUPTED,
        },
        other => Failure::failed(format!("node `{}`: {other}", action.origin.node)),
    })?;
    if request.push {
        let remote = remote.as_ref().ok_or_else(|| {
            Failure::usage(
                "`--push` needs a remote (hint: pass `--remote URL` or set TPIPE_REMOTE)",
            )
        })?;
        remote.push(&record, &cache).map_err(|error| {
            Failure::failed(format!("node `{}`: not pushed: {error}", record.node))
        })?;
    }
    writeln!(
        out,
        "built {} ({}) in {:.1} s",
        record.node,
        key.short(),
        record.provenance.duration_seconds
    )?;
    Ok(exit::SUCCESS)
}

/// `tpipe exec-pipeline-node FILE --snapshot HASH --node NAME`: builds one node of a pipeline
/// text stored in the cache, read as if it were FILE (so relative paths and the project folder
/// are FILE's). A detached job runs this for a node whose key depends on inputs that were not
/// built when it was submitted; by the time it starts they are (`afterok`).
pub fn exec_pipeline_node(
    file: &Path,
    snapshot: &str,
    node: &str,
    cache_dir: &Path,
    backend: Option<String>,
    registry: KindRegistry,
    out: &mut impl Write,
) -> Result<u8, Failure> {
    let cache = super::open_cache(cache_dir)?;
    let snapshot: ContentHash = snapshot
        .parse()
        .map_err(|error| Failure::usage(format!("--snapshot: {error}")))?;
    let bytes = cache.read_blob(&snapshot).map_err(|error| {
        Failure::failed(format!(
            "the pipeline snapshot is not in the cache: {error}"
        ))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::failed("the pipeline snapshot is not UTF-8 text"))?;
    // The run that stored this text read it under its own node limit: no other applies here.
    let no_limit = crate::spec::Limits {
        max_nodes: u64::MAX,
    };
    let pipeline =
        crate::spec::parse_with(file, &text, &registry, &no_limit).map_err(Failure::usage)?;
    let graph = crate::graph::PipelineGraph::build(&pipeline).map_err(Failure::usage)?;
    let project_dir = crate::session::project_dir_of(file);
    let session = crate::session::Session::new(pipeline, graph, registry, cache, project_dir);
    let options = crate::exec::RunOptions {
        jobs: 1,
        device_jobs: 1,
        targets: vec![node.to_string()],
        build: BuildOptions { backend },
        ..crate::exec::RunOptions::default()
    };
    let summary =
        crate::exec::run(&session, &options, &crate::exec::Quiet).map_err(Failure::usage)?;
    for outcome in &summary.nodes {
        let detail = match &outcome.status {
            crate::exec::NodeStatus::Failed { error } => format!(": {error}"),
            crate::exec::NodeStatus::Skipped { after } => format!(" (needs `{after}`)"),
            _ => String::new(),
        };
        writeln!(out, "{} {}{detail}", outcome.status.word(), outcome.name)?;
    }
    Ok(if summary.all_succeeded() {
        exit::SUCCESS
    } else {
        exit::BUILD_FAILED
    })
}

/// Reads an action from `file` (`-`: stdin) and stores it under `key`, refusing one that does not
/// hash to `key`: it would build something else than asked.
fn store_given_action(
    cache: &crate::cache::Cache,
    key: &ContentHash,
    file: &Path,
) -> Result<(), Failure> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|error| {
            Failure::failed(format!("cannot read the action from stdin: {error}"))
        })?;
        text
    } else {
        std::fs::read_to_string(file).map_err(|error| {
            Failure::failed(format!(
                "cannot read the action `{}`: {error}",
                file.display()
            ))
        })?
    };
    let action: crate::action::Action = serde_json::from_str(&text)
        .map_err(|error| Failure::usage(format!("--action: not an action: {error}")))?;
    if action.format != crate::action::ACTION_FORMAT || action.key() != *key {
        return Err(Failure::usage(format!(
            "--action describes key {}, not {}",
            action.key().short(),
            key.short()
        )));
    }
    cache
        .write_action(key, &action)
        .map_err(|error| Failure::failed(error.to_string()))
}
