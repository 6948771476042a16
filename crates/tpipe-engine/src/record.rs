//! The record stored per node key: what the node produced and how.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::hash::ContentHash;

/// Bumped when the record layout or the meaning of its key changes incompatibly.
/// 2: keys are hashes of actions (only the input outputs a kind reads count).
pub const RECORD_FORMAT: u32 = 2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutputRef {
    pub blob: ContentHash,
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RecordInput {
    pub slot: String,
    pub node: String,
    pub key: ContentHash,
    /// The content digest of that node's outputs, which is what our key depends on.
    pub content: ContentHash,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExternalInput {
    pub path: String,
    pub content: ContentHash,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Provenance {
    pub tool_version: String,
    pub backend: Option<String>,
    pub host: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub pipeline: String,
    /// Every parameter, including those left out of the key (paths, backend).
    pub all_params: Map<String, Value>,
    /// Set when the record was fetched from a remote instead of built here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched_from: Option<String>,
    /// Set when the node was built inside a cluster job. Records written before cluster
    /// backends had a trait call it `slurm` and carry no engine: they were Slurm's.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "slurm")]
    pub cluster: Option<ClusterJob>,
    /// CPU time, peak memory and bytes of the build (`usage.rs`); absent in records written
    /// before tpipe measured builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::BuildUsage>,
}

/// The cluster job a node was built in, and the devices its scheduler gave it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct ClusterJob {
    /// The backend's name (`slurm`, …).
    #[serde(default = "slurm_name")]
    pub engine: String,
    pub job_id: String,
    /// `CUDA_VISIBLE_DEVICES` inside the job, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_visible_devices: Option<String>,
}

fn slurm_name() -> String {
    "slurm".to_string()
}

/// The variable a cluster backend's job script sets to `<engine>:<job id>` (see
/// `slurm::script`, `cluster::processes`), so that the build knows its job without knowing
/// any scheduler.
pub const CLUSTER_JOB_VARIABLE: &str = "TPIPE_CLUSTER_JOB";

impl ClusterJob {
    /// The job this process runs in, from `TPIPE_CLUSTER_JOB`.
    pub fn of_this_process() -> Option<ClusterJob> {
        let value = std::env::var(CLUSTER_JOB_VARIABLE).ok()?;
        let (engine, job_id) = value.split_once(':')?;
        Some(ClusterJob {
            engine: engine.to_string(),
            job_id: job_id.to_string(),
            cuda_visible_devices: std::env::var("CUDA_VISIBLE_DEVICES").ok(),
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub format: u32,
    pub key: ContentHash,
    pub node: String,
    pub kind: String,
    pub kind_version: u32,
    /// The parameters that went into the key, after defaults.
    pub params: Map<String, Value>,
    pub inputs: Vec<RecordInput>,
    pub external: Vec<ExternalInput>,
    pub outputs: BTreeMap<String, OutputRef>,
    /// Digest of `outputs`; dependents' keys use it (early cutoff).
    pub content: ContentHash,
    pub metrics: Metrics,
    /// The kind's one-line summary of the metrics, worked out when the node was built, so a
    /// run that only finds records need not parse their metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    /// `name:base64` ed25519 signatures over the key and the content digest, added by `push`
    /// with a `signing_key` (see `signature`). A record built here carries none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<String>,
    pub provenance: Provenance,
}

/// The part of a record that a run and the nodes downstream need: where the outputs are, their
/// digest and the summary line. A run that finds a node cached parses only this much of its
/// record (serde skips the rest without building it), which is most of what a no-op run costs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RecordHead {
    pub format: u32,
    pub key: ContentHash,
    pub outputs: HeadOutputs,
    pub content: ContentHash,
    #[serde(default)]
    pub headline: Option<String>,
}

impl Record {
    pub fn head(&self) -> RecordHead {
        RecordHead {
            format: self.format,
            key: self.key,
            outputs: HeadOutputs::from(self.outputs.clone()),
            content: self.content,
            headline: self.headline.clone(),
        }
    }
}

/// A record head's outputs by name, in name order, as a slice: a run and a plan hold a head
/// for every cached node, and a `BTreeMap` allocates room for eleven entries where a node has
/// one to five (issue 22: most of a plan's memory per node).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(from = "BTreeMap<String, OutputRef>")]
pub struct HeadOutputs(Box<[(String, OutputRef)]>);

impl From<BTreeMap<String, OutputRef>> for HeadOutputs {
    fn from(outputs: BTreeMap<String, OutputRef>) -> HeadOutputs {
        HeadOutputs(outputs.into_iter().collect())
    }
}

/// `(name, output)` of each output, in name order, as a `BTreeMap` gives them.
pub type OutputEntries<'a> = std::iter::Map<
    std::slice::Iter<'a, (String, OutputRef)>,
    fn(&'a (String, OutputRef)) -> (&'a String, &'a OutputRef),
>;

impl HeadOutputs {
    pub fn get(&self, name: &str) -> Option<&OutputRef> {
        self.0
            .binary_search_by(|(own, _)| own.as_str().cmp(name))
            .ok()
            .map(|index| &self.0[index].1)
    }

    pub fn iter(&self) -> OutputEntries<'_> {
        self.0.iter().map(|(name, output)| (name, output))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(name, _)| name)
    }

    pub fn values(&self) -> impl Iterator<Item = &OutputRef> {
        self.0.iter().map(|(_, output)| output)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a HeadOutputs {
    type Item = (&'a String, &'a OutputRef);
    type IntoIter = OutputEntries<'a>;

    fn into_iter(self) -> OutputEntries<'a> {
        self.iter()
    }
}

/// What the cache checks of any record it parses, whole or head only.
pub(crate) trait RecordFields: serde::de::DeserializeOwned {
    fn format(&self) -> u32;
    fn key(&self) -> &ContentHash;
    /// `(name, output)` in name order.
    fn outputs(&self) -> Box<dyn Iterator<Item = (&String, &OutputRef)> + '_>;
    fn content(&self) -> &ContentHash;
}

macro_rules! record_fields {
    ($type:ty) => {
        impl RecordFields for $type {
            fn format(&self) -> u32 {
                self.format
            }
            fn key(&self) -> &ContentHash {
                &self.key
            }
            fn outputs(&self) -> Box<dyn Iterator<Item = (&String, &OutputRef)> + '_> {
                Box::new(self.outputs.iter())
            }
            fn content(&self) -> &ContentHash {
                &self.content
            }
        }
    };
}
record_fields!(Record);
record_fields!(RecordHead);

/// A record's metrics, kept as the JSON text they were stored as. A no-op run reads every
/// record of a pipeline and needs none of their metrics, so they are parsed only when asked
/// for (`show`, the summary's headline is stored beside them).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metrics(Box<serde_json::value::RawValue>);

impl Metrics {
    pub fn from_value(value: &Value) -> Metrics {
        Metrics(serde_json::value::to_raw_value(value).expect("JSON values always serialise"))
    }

    /// The metrics as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("stored metrics are JSON")
    }
}

impl PartialEq for Metrics {
    fn eq(&self, other: &Metrics) -> bool {
        self.0.get() == other.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_before_cluster_backends_reads_its_slurm_job() {
        let older = serde_json::json!({
            "tool_version": "0.1.0", "backend": null, "host": "node7",
            "started_at": "2026-12-01T10:00:00Z", "finished_at": "2026-12-01T10:00:01Z",
            "duration_seconds": 1.0, "pipeline": "paper.yaml", "all_params": {},
            "slurm": { "job_id": "4242", "cuda_visible_devices": "0" }
        });
        let provenance: Provenance = serde_json::from_value(older).unwrap();
        assert_eq!(
            provenance.cluster,
            Some(ClusterJob {
                engine: "slurm".to_string(),
                job_id: "4242".to_string(),
                cuda_visible_devices: Some("0".to_string()),
            })
        );
        let written = serde_json::to_value(&provenance).unwrap();
        assert_eq!(written["cluster"]["engine"], "slurm");
    }
}
