//! Actions: one node's build as a self-contained unit of work.
//!
//! An action holds everything a build may read and nothing else: the kind and its version, the
//! parameters in the key, the digests of the input outputs the kind declares it reads (by slot
//! and output name) and the digests of its external files. The node key is the hash of exactly
//! that part (`key::action_key`). Two more parts ride along outside the key: the
//! `settings` (parameters that choose how or where, never what: data paths whose content is in
//! the key, the backend) and the `origin` (node and pipeline names, for people).
//!
//! This module is data only: the key recipe is in `key` ([`Action::key`]), and building an
//! action is `build::build_action`, so neither the cache nor the kinds depend on it through
//! a cycle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::record::{ExternalInput, OutputRef, RecordInput};

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
    /// Every parameter, in the key or not, as the build sees them.
    pub fn all_params(&self) -> Map<String, Value> {
        let mut all = self.settings.clone();
        all.extend(self.params.clone());
        all
    }

    /// Each stored input blob this action reads, with the slot and upstream node it comes from.
    pub fn input_blobs(&self) -> impl Iterator<Item = (&str, usize, &str, &OutputRef)> {
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
