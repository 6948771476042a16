//! Issue 9: a build reads only what its key covers, so the same YAML gives byte-identical
//! outputs on an empty cache and on one full of history. Each edit below is built on top of
//! everything built before it and, separately, from an empty cache; every output of every node
//! must be the same bytes. Needs the `ml` feature (trains tiny nets).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::tpipe_binary;

/// A small grid with every kind and every way lineage travels: two split labels, bases,
/// frozen and fine-tuned transfers, a random control, evaluations, a report.
const GRID: &str = r#"defaults:
  train: &net
    conv_channels: [4, 4, 4, 4, 4]
    fc_widths: [8, 8]
    epochs: 1
    batch_size: 16
  transfer: *net

nodes:
  data:
    kind: dataset
    source: synthetic
    classes: 6
    images_per_class: 16
    test_images_per_class: 8
    size: 8

  split_similar:
    kind: split
    inputs: { data: data }
    method: random
    relation: similar

  split_dissimilar:
    kind: split
    inputs: { data: data }
    method: groups
    groups_a: [family0]
    groups_b: [family1]

  "base{task}":
    kind: train
    matrix: { task: [A, B] }
    inputs: { data: split_similar }
    task: "{task}"

  A2B:
    kind: transfer
    inputs: { base: baseA, data: split_similar }
    layers_copied: 2
    learning_rate: 0.01

  B2B_plus:
    kind: transfer
    inputs: { base: baseB, data: split_similar }
    layers_copied: 2
    finetune: true

  random2B:
    kind: transfer
    inputs: { data: split_similar }
    layers_copied: 2

  dissimilar_baseA:
    kind: train
    inputs: { data: split_dissimilar }

  dissimilar_A1B:
    kind: transfer
    inputs: { base: dissimilar_baseA, data: split_dissimilar }
    layers_copied: 1

  "eval_{net}":
    kind: evaluate
    matrix: { net: [baseB, A2B, B2B_plus, random2B] }
    inputs: { model: "{net}", data: split_similar }

  eval_dissimilar:
    kind: evaluate
    inputs: { model: dissimilar_A1B, data: split_dissimilar }

  report:
    kind: report
    inputs: { results: "eval_*" }
    publish: results
"#;

fn tpipe(project: &Path, args: &[&str]) -> serde_json::Value {
    let mut command = Command::new(tpipe_binary());
    command.args(args).arg("--json");
    if args[0] == "run" {
        // The default CPU path (byte-stable for any thread count), whatever the machine has.
        command.args(["--backend", "native"]);
    }
    let output = command.current_dir(project).output().expect("tpipe runs");
    assert!(
        output.status.success(),
        "tpipe {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn new_project() -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tpipe.toml"), "").unwrap();
    project
}

/// Builds `yaml` in `project` and returns, per node, its outputs' blob hashes by name.
fn build(project: &Path, yaml: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    std::fs::write(project.join("grid.yaml"), yaml).unwrap();
    let summary = tpipe(project, &["run", "grid.yaml"]);
    let failed: Vec<&serde_json::Value> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["status"] != "built" && node["status"] != "cached")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let cache = tpipe::cache::Cache::open(&project.join("cache")).unwrap();
    summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let key = node["key"].as_str().unwrap().parse().unwrap();
            let record = cache.read_record(&key).unwrap().unwrap();
            let outputs = record
                .outputs
                .iter()
                .map(|(name, output)| (name.clone(), output.blob.to_hex()))
                .collect();
            (node["name"].as_str().unwrap().to_string(), outputs)
        })
        .collect()
}

#[test]
fn every_output_is_the_same_bytes_on_an_empty_cache_and_on_one_with_history() {
    let edits: Vec<(&str, String)> = vec![
        ("the original", GRID.to_string()),
        (
            "a split label",
            GRID.replace("relation: similar", "relation: alike"),
        ),
        (
            "renamed nodes",
            GRID.replace("relation: similar", "relation: alike")
                .replace("A2B", "AtoB")
                .replace("random2B", "random_two"),
        ),
        (
            "reordered blocks",
            GRID.replace("relation: similar", "relation: alike")
                .replace("A2B", "AtoB")
                .replace("random2B", "random_two")
                .replace(
                    "  dissimilar_baseA:\n    kind: train\n    inputs: { data: split_dissimilar }\n\n",
                    "",
                )
                .replace(
                    "  report:\n",
                    "  dissimilar_baseA:\n    kind: train\n    inputs: { data: split_dissimilar }\n\n  report:\n",
                ),
        ),
        (
            "a parameter changed",
            GRID.replace("learning_rate: 0.01", "learning_rate: 0.03"),
        ),
        ("the parameter changed back", GRID.to_string()),
        (
            "a default written out",
            GRID.replace("    layers_copied: 2\n    finetune: true\n", "    layers_copied: 2\n    finetune: true\n    momentum: 0.9\n"),
        ),
    ];
    let history = new_project();
    let mut previous = "";
    for (what, yaml) in &edits {
        assert_ne!(yaml, previous, "edit `{what}` applies");
        previous = yaml;
        let on_history = build(history.path(), yaml);
        let fresh = new_project();
        let on_empty = build(fresh.path(), yaml);
        assert_eq!(
            on_history, on_empty,
            "after {what}: outputs differ between a cache with history and an empty one"
        );
        let read_results =
            |project: &Path| std::fs::read_to_string(project.join("results/results.csv")).unwrap();
        assert_eq!(
            read_results(history.path()),
            read_results(fresh.path()),
            "after {what}"
        );
    }
    // The bug the issue was filed for: a relabelled split reaches the published results.
    let csv = std::fs::read_to_string(history.path().join("results/results.csv")).unwrap();
    assert!(!csv.contains("alike"), "back to the original label:\n{csv}");
    assert!(csv.contains("similar"), "{csv}");
}

/// Relabelling a split reruns the split, the evaluations that read its description and the
/// report, and retrains nothing: trainings read only the images.
#[test]
fn relabelling_a_split_retrains_nothing_and_reaches_the_report() {
    let project = new_project();
    build(project.path(), GRID);
    std::fs::write(
        project.path().join("grid.yaml"),
        GRID.replace("relation: similar", "relation: alike"),
    )
    .unwrap();
    let summary = tpipe(project.path(), &["run", "grid.yaml"]);
    let mut built: Vec<&str> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["status"] == "built")
        .map(|node| node["name"].as_str().unwrap())
        .collect();
    built.sort();
    assert_eq!(
        built,
        [
            "eval_A2B",
            "eval_B2B_plus",
            "eval_baseB",
            "eval_random2B",
            "report",
            "split_similar"
        ]
    );
    let csv = std::fs::read_to_string(project.path().join("results/results.csv")).unwrap();
    assert!(csv.contains("alike"), "{csv}");
}
