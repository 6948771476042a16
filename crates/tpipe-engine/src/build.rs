//! Building an action: the one way a node is built. `tpipe run` calls [`build_action`]
//! in-process, and `tpipe exec-node KEY` calls it from the action stored in the cache, in another
//! process or on another machine, with no pipeline at hand. Both write the same record.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use crate::action::Action;
use crate::cache::Cache;
use crate::kind::{BuildContext, BuildError, BuildOptions, InputArtifact, KindRegistry, Progress};
use crate::record::{Metrics, OutputRef, Provenance, Record, RECORD_FORMAT};

/// Why an action could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no action {key} in the cache at `{cache}` (hint: `tpipe run` stores the action of every node it builds)")]
    NotStored { key: String, cache: PathBuf },
    #[error("action {key} in the cache is unreadable: {detail}")]
    Unreadable { key: String, detail: String },
    #[error("action {key} is for kind `{kind}`, which this tpipe does not have")]
    UnknownKind { key: String, kind: String },
    #[error("action {key} is for `{kind}` version {wanted}, but this tpipe builds version {have} (hint: run it with the tpipe that wrote it, or rerun `tpipe run` to make a new action)")]
    KindVersion {
        key: String,
        kind: String,
        wanted: u32,
        have: u32,
    },
    #[error("input `{slot}` (node `{node}`), output `{output}`: blob {blob} is {state} in the cache (hint: `tpipe cache pull` or rebuild `{node}` with `tpipe run`)")]
    InputBlob {
        slot: String,
        node: String,
        output: String,
        blob: String,
        state: &'static str,
    },
    #[error("{0}")]
    Build(#[from] BuildError),
}

/// What reaches a build besides its action; none of it is in the key.
pub struct ActionRun<'a> {
    pub options: &'a BuildOptions,
    pub cancel: &'a AtomicBool,
    pub progress: &'a (dyn Fn(Progress) + Sync),
}

/// Builds `action` against `cache`: checks that every input blob it reads is there and intact,
/// runs the kind, stores the outputs (blobs first) and then the record, and returns the record.
pub fn build_action(
    action: &Action,
    registry: &KindRegistry,
    cache: &Cache,
    run: &ActionRun,
) -> Result<Record, ActionError> {
    let key = action.key();
    let kind = registry
        .get(&action.kind)
        .ok_or_else(|| ActionError::UnknownKind {
            key: key.to_hex(),
            kind: action.kind.clone(),
        })?;
    if kind.version() != action.kind_version {
        return Err(ActionError::KindVersion {
            key: key.to_hex(),
            kind: action.kind.clone(),
            wanted: action.kind_version,
            have: kind.version(),
        });
    }
    for (slot, index, output, reference) in action.input_blobs() {
        let state = match cache.blob_is_intact(reference) {
            Ok(true) => continue,
            Ok(false) => "damaged",
            Err(_) => "missing",
        };
        return Err(ActionError::InputBlob {
            slot: slot.to_string(),
            node: action.upstream_name(slot, index).to_string(),
            output: output.to_string(),
            blob: reference.blob.short(),
            state,
        });
    }
    let params = action.all_params();
    let inputs = action
        .inputs
        .iter()
        .map(|(slot, inputs)| {
            let artifacts = inputs
                .iter()
                .enumerate()
                .map(|(index, input)| InputArtifact {
                    slot: slot.clone(),
                    index,
                    name: input.name.clone(),
                    outputs: input.outputs.clone(),
                })
                .collect();
            (slot.clone(), artifacts)
        })
        .collect();
    let context = BuildContext {
        node: &action.origin.node,
        params: &params,
        inputs,
        external: action
            .external
            .iter()
            .map(|external| (PathBuf::from(&external.path), external.content))
            .collect(),
        project_dir: Path::new(&action.origin.project_dir),
        options: run.options,
        cancel: run.cancel,
        progress: run.progress,
        cache,
    };
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let meter = crate::usage::Meter::start();
    let output = std::panic::catch_unwind(AssertUnwindSafe(|| kind.build(&context)))
        .map_err(|panic| {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            BuildError::failed(format!("the `{}` kind panicked: {text}", kind.name()))
        })?
        .map_err(|error| match error {
            // Name the node behind the slot: the build itself never sees it.
            BuildError::Input {
                slot,
                index,
                source,
            } => {
                let node = action.upstream_name(&slot, index);
                BuildError::failed(format!("input `{slot}` (node `{node}`): {source}"))
            }
            BuildError::Artifact {
                slot,
                index,
                output,
                source,
            } => {
                let node = action.upstream_name(&slot, index);
                BuildError::failed(format!(
                    "input `{slot}` (node `{node}`), `{output}`: {source} (hint: rebuild `{node}` with this tpipe: `tpipe run --force {node}`)"
                ))
            }
            other => other,
        })?;
    let duration = clock.elapsed();
    let bytes_read = action.input_blobs().map(|(.., input)| input.size).sum();
    let bytes_written = output
        .outputs
        .iter()
        .map(|(_, bytes)| bytes.len() as u64)
        .sum();
    let usage = meter.finish(bytes_read, bytes_written);
    // Blobs first, the record last: a crash in between leaves only unreferenced blobs.
    let mut outputs = BTreeMap::new();
    for (name, bytes) in &output.outputs {
        let reference: OutputRef = cache
            .put_blob(bytes)
            .map_err(|error| BuildError::failed(error.to_string()))?;
        outputs.insert(name.clone(), reference);
    }
    let record = Record {
        format: RECORD_FORMAT,
        key,
        node: action.origin.node.clone(),
        kind: action.kind.clone(),
        kind_version: action.kind_version,
        params: action.params.clone(),
        inputs: action.origin.inputs.clone(),
        external: action.external.clone(),
        content: crate::key::outputs_digest(&outputs),
        outputs,
        headline: kind.headline(&output.metrics),
        signatures: Vec::new(),
        metrics: Metrics::from_value(&output.metrics),
        provenance: Provenance {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: output.backend,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
            finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_seconds: duration.as_secs_f64(),
            pipeline: action.origin.pipeline.clone(),
            all_params: params,
            fetched_from: None,
            cluster: crate::record::ClusterJob::of_this_process(),
            usage: Some(usage),
        },
    };
    cache
        .write_record(&record)
        .map_err(|error| BuildError::failed(error.to_string()))?;
    Ok(record)
}
