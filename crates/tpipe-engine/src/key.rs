//! How node keys and output digests are derived. The recipe is here; the hash function itself
//! is named only in `hash.rs`.

use std::collections::BTreeMap;

use crate::action::Action;
use crate::hash::{ContentHash, KeyHasher};
use crate::record::OutputRef;

impl Action {
    /// The node key: the hash of the parts of this action that are in the key
    /// ([`action_key`]).
    pub fn key(&self) -> ContentHash {
        action_key(self)
    }
}

/// The key of an action: the hash of its kind, kind version, in-key parameters, the digests of
/// the input outputs it reads (with the input names where its slots declare them) and its
/// external files' content. Settings and origin are left out on purpose.
pub fn action_key(action: &Action) -> ContentHash {
    let mut hasher = KeyHasher::new("tpipe action");
    hasher.part("kind", action.kind.as_bytes());
    hasher.part("kind version", &action.kind_version.to_le_bytes());
    // serde_json's Map is ordered by key (no `preserve_order`), so this text is canonical.
    let params = serde_json::to_string(&action.params).expect("JSON values always serialise");
    hasher.part("params", params.as_bytes());
    for (slot, inputs) in &action.inputs {
        hasher.part("input slot", slot.as_bytes());
        for input in inputs {
            // Marks where each input starts, so inputs reading nothing still count.
            hasher.part("input", &[]);
            if let Some(name) = &input.name {
                hasher.part("input name", name.as_bytes());
            }
            for (output, reference) in &input.outputs {
                hasher.part("output", output.as_bytes());
                hasher.part("blob", &reference.blob.hex_bytes());
            }
        }
    }
    for external in &action.external {
        // The path is left out on purpose: moving a data set does not change what it holds.
        hasher.part("external content", &external.content.hex_bytes());
    }
    hasher.finish()
}

/// The digest of a node's outputs: names and blob hashes.
pub fn outputs_digest(outputs: &BTreeMap<String, OutputRef>) -> ContentHash {
    outputs_digest_of(outputs)
}

/// [`outputs_digest`] of `(name, output)` pairs in name order.
pub fn outputs_digest_of<'a>(
    outputs: impl IntoIterator<Item = (&'a String, &'a OutputRef)>,
) -> ContentHash {
    let mut hasher = KeyHasher::new("tpipe outputs");
    for (name, output) in outputs {
        hasher.part("name", name.as_bytes());
        hasher.part("blob", &output.blob.hex_bytes());
    }
    hasher.finish()
}

/// Identifies a pipeline file (by its absolute path) for the per-pipeline index of last keys.
pub fn pipeline_id(canonical_path: &str) -> ContentHash {
    KeyHasher::new("tpipe pipeline")
        .part("path", canonical_path.as_bytes())
        .finish()
}
