//! A transfer's random stream is its own: with the same `seed:` as its base, its fresh layers
//! do not start where the base's started (issue 11). Needs the `ml` feature (trains tiny nets).

use std::collections::BTreeMap;
use std::process::Command;

use crate::support::tpipe_binary;

/// A learning rate of 0 leaves every parameter where it started, exposing each net's
/// initialisation: the base's from `seed: 0`, the transfer's fresh layers from its stream.
const GRID: &str = r#"defaults:
  train: &net
    conv_channels: [4, 4, 4, 4, 4]
    fc_widths: [8, 8]
    epochs: 1
    batch_size: 16
    learning_rate: 0
    seed: 0
  transfer: *net

nodes:
  data:
    kind: dataset
    source: synthetic
    classes: 6
    images_per_class: 16
    test_images_per_class: 8
    size: 8

  split:
    kind: split
    inputs: { data: data }
    method: random

  baseB:
    kind: train
    inputs: { data: split }
    task: B

  B2B_plus:
    kind: transfer
    inputs: { base: baseB, data: split }
    layers_copied: 2
    finetune: true
"#;

/// Every tensor of a node's weights, by name, as raw little-endian bytes.
fn tensors(
    project: &std::path::Path,
    summary: &serde_json::Value,
    node: &str,
) -> BTreeMap<String, Vec<u8>> {
    let entry = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == node)
        .unwrap_or_else(|| panic!("no node `{node}` in {summary}"));
    let key = entry["key"].as_str().unwrap().parse().unwrap();
    let cache = tpipe::cache::Cache::open(&project.join("cache")).unwrap();
    let record = cache.read_record(&key).unwrap().unwrap();
    let blob = &record.outputs["weights.safetensors"].blob;
    let bytes = cache.read_blob(blob).unwrap();
    let weights = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    weights
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect()
}

#[test]
fn a_transfer_does_not_start_from_its_bases_initial_weights() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tpipe.toml"), "").unwrap();
    std::fs::write(project.path().join("grid.yaml"), GRID).unwrap();
    let output = Command::new(tpipe_binary())
        .args(["run", "grid.yaml", "--json", "--backend", "native"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let base = tensors(project.path(), &summary, "baseB");
    let transfer = tensors(project.path(), &summary, "B2B_plus");
    for layer in ["conv1", "conv2"] {
        let name = format!("{layer}.weight");
        assert_eq!(
            transfer[&name], base[&name],
            "`{name}` is copied from the base"
        );
    }
    for layer in ["conv3", "conv4", "conv5", "fc6", "fc7", "fc8"] {
        let name = format!("{layer}.weight");
        assert_ne!(
            transfer[&name], base[&name],
            "`{name}` is fresh: drawn from the transfer's own stream, not the base's"
        );
    }
}
