//! Actions: one node's build as a self-contained unit of work.
//!
//! An action holds everything a build may read and nothing else: the kind and its version, the
//! parameters in the key, the digests of the input outputs the kind declares it reads (by slot
//! and output name) and the digests of its external files. The node key is the hash of exactly
//! that part ([`crate::key::action_key`]). Two more parts ride along outside the key: the
//! `settings` (parameters that choose how or where, never what: data paths whose content is in
//! the key, the backend) and the `origin` (node and pipeline names, for people).
//!
//! [`build_action`] is the one way a node is built: `tpipe run` calls it in-process, and
//! `tpipe exec-node KEY` calls it from the action stored in the cache, in another process or on
//! another machine, with no pipeline at hand. Both write the same record.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cache::record::{
    ExternalInput, Metrics, OutputRef, Provenance, Record, RecordInput, RECORD_FORMAT,
};
use crate::cache::Cache;
use crate::hash::ContentHash;
use crate::kind::{BuildContext, BuildError, BuildOptions, InputArtifact, KindRegistry, Progress};

/// Bumped when the stored action layout changes incompatibly.
pub const ACTION_FORMAT: u32 = 1;

/// One upstream node as an action records it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ActionInput {
    /// The upstream node's name, only where the slot declares `names_in_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The outputs the slot reads, by name.
    pub outputs: BTreeMap<String, OutputRef>,
}

/// Where an action came from. Not in the key: for records, messages and logs only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Origin {
    pub node: String,
    pub pipeline: String,
    /// Relative paths in settings are resolved against this folder.
    pub project_dir: String,
    /// Which upstream node (and record) fed each slot, in slot order.
    pub inputs: Vec<RecordInput>,
}

/// A node's build, complete: see the module documentation for which parts are in the key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub format: u32,
    pub kind: String,
    pub kind_version: u32,
    /// The parameters in the key, after defaults, minus those unused with these settings.
    pub params: Map<String, Value>,
    /// Slot → one entry per input node, in the order the pipeline lists them.
    pub inputs: BTreeMap<String, Vec<ActionInput>>,
    /// Files read from outside the cache: their content is in the key, their path is not.
    pub external: Vec<ExternalInput>,
    /// Not in the key: every other parameter (paths, backend, unused parameters).
    pub settings: Map<String, Value>,
    /// Not in the key.
    pub origin: Origin,
}

impl Action {
    /// The node key: the hash of the parts of this action that are in the key.
    pub fn key(&self) -> ContentHash {
        crate::key::action_key(self)
    }

    /// Every parameter, in the key or not, as the build sees them.
    pub fn all_params(&self) -> Map<String, Value> {
        let mut all = self.settings.clone();
        all.extend(self.params.clone());
        all
    }

    /// Each stored input blob this action reads, with the slot and upstream node it comes from.
    fn input_blobs(&self) -> impl Iterator<Item = (&str, usize, &str, &OutputRef)> {
        self.inputs.iter().flat_map(|(slot, inputs)| {
            inputs.iter().enumerate().flat_map(move |(index, input)| {
                input.outputs.iter().map(move |(output, reference)| {
                    (slot.as_str(), index, output.as_str(), reference)
                })
            })
        })
    }

    /// The upstream node (name, key) behind `slot` #`index`, from the origin.
    pub fn upstream(&self, slot: &str, index: usize) -> Option<&RecordInput> {
        self.origin
            .inputs
            .iter()
            .filter(|input| input.slot == slot)
            .nth(index)
    }

    /// The upstream node's name behind `slot` #`index`, for messages.
    pub fn upstream_name(&self, slot: &str, index: usize) -> &str {
        self.upstream(slot, index)
            .map_or("?", |input| input.node.as_str())
    }
}

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
            other => other,
        })?;
    let duration = clock.elapsed();
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
            slurm: crate::cache::record::SlurmProvenance::of_this_process(),
        },
    };
    cache
        .write_record(&record)
        .map_err(|error| BuildError::failed(error.to_string()))?;
    Ok(record)
}
