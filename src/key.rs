//! How node keys and output digests are derived. The recipe is here; the hash function itself
//! is named only in `hash.rs`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::cache::record::{ExternalInput, OutputRef};
use crate::hash::{ContentHash, KeyHasher};

/// Everything a node's key depends on.
pub struct KeyMaterial<'a> {
    pub kind: &'a str,
    pub kind_version: u32,
    /// Only the parameters that are part of the key, after defaults were filled in.
    pub params: &'a Map<String, Value>,
    /// Per input slot, the content digests of the nodes it reads, in the order written.
    pub inputs: &'a BTreeMap<String, Vec<ContentHash>>,
    pub external: &'a [ExternalInput],
}

pub fn node_key(material: &KeyMaterial) -> ContentHash {
    let mut hasher = KeyHasher::new("tpipe node key");
    hasher.part("kind", material.kind.as_bytes());
    hasher.part("kind version", &material.kind_version.to_le_bytes());
    // serde_json's Map is ordered by key (no `preserve_order`), so this text is canonical.
    let params = serde_json::to_string(material.params).expect("JSON values always serialise");
    hasher.part("params", params.as_bytes());
    for (slot, contents) in material.inputs {
        hasher.part("input slot", slot.as_bytes());
        for content in contents {
            hasher.part("input content", content.to_hex().as_bytes());
        }
    }
    for external in material.external {
        // The path is left out on purpose: moving a data set does not change what it holds.
        hasher.part("external content", external.content.to_hex().as_bytes());
    }
    hasher.finish()
}

/// The digest of a node's outputs: names and blob hashes.
pub fn outputs_digest(outputs: &BTreeMap<String, OutputRef>) -> ContentHash {
    let mut hasher = KeyHasher::new("tpipe outputs");
    for (name, output) in outputs {
        hasher.part("name", name.as_bytes());
        hasher.part("blob", output.blob.to_hex().as_bytes());
    }
    hasher.finish()
}

/// Identifies a pipeline file (by its absolute path) for the per-pipeline index of last keys.
pub fn pipeline_id(canonical_path: &str) -> ContentHash {
    KeyHasher::new("tpipe pipeline")
        .part("path", canonical_path.as_bytes())
        .finish()
}
