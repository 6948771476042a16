//! The controls issue 19 added: validation images carved out of the training pool, scoring on
//! them, a base trained as a control (`role: long_base`), and the random-weights control's
//! init (`random_init`). Needs the `ml` feature (trains tiny nets).

use std::process::Command;

use crate::support::tpipe_binary;

/// A learning rate of 0 leaves every layer where it started, so the random controls' frozen
/// layers show how they were drawn.
const GRID: &str = r#"defaults:
  train: &net
    conv_channels: [4, 4, 4, 4, 4]
    fc_widths: [8, 8]
    epochs: 1
    batch_size: 16
    learning_rate: 0
  transfer: *net

nodes:
  data:
    kind: dataset
    source: synthetic
    classes: 6
    images_per_class: 20
    test_images_per_class: 8
    size: 8

  split:
    kind: split
    inputs: { data: data }
    method: random
    images_per_class: 12
    validation_images_per_class: 5

  plain_split:
    kind: split
    inputs: { data: data }
    method: random

  baseB:
    kind: train
    inputs: { data: split }
    task: B

  longbaseB:
    kind: train
    inputs: { data: split }
    task: B
    role: long_base
    epochs: 2

  "random2_{init}":
    kind: transfer
    matrix: { init: [paper, modern] }
    inputs: { data: split }
    layers_copied: 2
    random_init: "{init}"

  "eval_{model}_{images}":
    kind: evaluate
    matrix: { model: [baseB, longbaseB, random2_paper, random2_modern], images: [test, validation] }
    inputs: { model: "{model}", data: split }
    images: "{images}"

  report:
    kind: report
    inputs: { results: "eval_*_test" }
"#;

fn run(
    project: &std::path::Path,
    args: &[&str],
) -> (std::process::ExitStatus, serde_json::Value, String) {
    let output = Command::new(tpipe_binary())
        .args(args)
        .current_dir(project)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let summary = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        output.status,
        summary,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn record(
    project: &std::path::Path,
    summary: &serde_json::Value,
    node: &str,
) -> tpipe::record::Record {
    let entry = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["name"] == node)
        .unwrap_or_else(|| panic!("no node `{node}` in {summary}"));
    let key = entry["key"].as_str().unwrap().parse().unwrap();
    let cache = tpipe::cache::Cache::open(&project.join("cache")).unwrap();
    cache.read_record(&key).unwrap().unwrap()
}

fn blob(project: &std::path::Path, record: &tpipe::record::Record, output: &str) -> Vec<u8> {
    let cache = tpipe::cache::Cache::open(&project.join("cache")).unwrap();
    cache.read_blob(&record.outputs[output].blob).unwrap()
}

/// The population standard deviation of conv1's weights in a weights file.
fn conv1_spread(weights: &[u8]) -> f64 {
    let file = safetensors::SafeTensors::deserialize(weights).unwrap();
    let values: Vec<f64> = file
        .tensor("conv1.weight")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()) as f64)
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
}

fn evaluation_top1(
    project: &std::path::Path,
    summary: &serde_json::Value,
    node: &str,
) -> serde_json::Value {
    let evaluation = record(project, summary, node);
    let evaluation: serde_json::Value =
        serde_json::from_slice(&blob(project, &evaluation, "evaluation.json")).unwrap();
    evaluation["scores"]["top1"].clone()
}

#[test]
fn validation_images_long_bases_and_random_inits_reach_their_artifacts() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tpipe.toml"), "").unwrap();
    std::fs::write(project.path().join("grid.yaml"), GRID).unwrap();
    let (status, summary, stderr) = run(
        project.path(),
        &["run", "grid.yaml", "--json", "--backend", "native"],
    );
    assert!(status.success(), "{stderr}");

    // Validation images: 5 per class of task B's 3 classes, disjoint from the 12 that train.
    let validation = record(project.path(), &summary, "eval_baseB_validation");
    let evaluation: serde_json::Value =
        serde_json::from_slice(&blob(project.path(), &validation, "evaluation.json")).unwrap();
    assert_eq!(evaluation["data"]["images"], "validation");
    assert_eq!(evaluation["scores"]["count"], 15);
    let test = record(project.path(), &summary, "eval_baseB_test");
    let evaluation: serde_json::Value =
        serde_json::from_slice(&blob(project.path(), &test, "evaluation.json")).unwrap();
    assert_eq!(evaluation["data"]["images"], "test");
    assert_eq!(evaluation["scores"]["count"], 24);

    // Trainings on a split with validation images score them after every epoch; the last
    // epoch's figure is what evaluating the trained net on them gives.
    let base = record(project.path(), &summary, "baseB").metrics.to_value();
    assert_eq!(base["validation_images"], 15);
    let validation_top1 = evaluation_top1(project.path(), &summary, "eval_baseB_validation");
    assert_eq!(
        base["epoch_validation_accuracies"],
        serde_json::json!([validation_top1])
    );
    let long = record(project.path(), &summary, "longbaseB")
        .metrics
        .to_value();
    let per_epoch = long["epoch_validation_accuracies"].as_array().unwrap();
    assert_eq!(per_epoch.len(), 2, "{per_epoch:?}");
    assert_eq!(
        per_epoch[1],
        evaluation_top1(project.path(), &summary, "eval_longbaseB_validation")
    );

    // The long base is named as a control; the random controls carry their init.
    let long = record(project.path(), &summary, "eval_longbaseB_test");
    let long: serde_json::Value =
        serde_json::from_slice(&blob(project.path(), &long, "evaluation.json")).unwrap();
    assert_eq!(long["net"]["variant"], "longbaseB");
    let paper = record(project.path(), &summary, "random2_paper");
    let modern = record(project.path(), &summary, "random2_modern");
    let paper_weights = blob(project.path(), &paper, "weights.safetensors");
    let modern_weights = blob(project.path(), &modern, "weights.safetensors");
    // The paper's Gaussians have std 0.01; He init for conv1 (fan-in 9) has √(2/9) ≈ 0.47.
    let (paper_spread, modern_spread) =
        (conv1_spread(&paper_weights), conv1_spread(&modern_weights));
    assert!((paper_spread - 0.01).abs() < 0.004, "{paper_spread}");
    assert!(modern_spread > 0.25, "{modern_spread}");
    let lineage = |weights: &[u8]| -> serde_json::Value {
        let (_, header) = safetensors::SafeTensors::read_metadata(weights).unwrap();
        serde_json::from_str(&header.metadata().as_ref().unwrap()["tpipe.lineage"]).unwrap()
    };
    assert_eq!(lineage(&paper_weights)["random_init"], "paper");
    assert_eq!(lineage(&modern_weights)["random_init"], "modern");

    // The report names both controls and says which images it scored on.
    let report = record(project.path(), &summary, "report");
    let csv = String::from_utf8(blob(project.path(), &report, "results.csv")).unwrap();
    assert!(csv.contains(",longbaseB,"), "{csv}");
    assert!(csv.contains(",random (paper init),"), "{csv}");
    assert!(
        csv.lines().skip(1).all(|line| line.ends_with(",test")),
        "{csv}"
    );
}

#[test]
fn scoring_validation_images_of_a_split_without_them_says_how_to_get_them() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tpipe.toml"), "").unwrap();
    let grid = GRID.replace(
        "inputs: { model: \"{model}\", data: split }",
        "inputs: { model: \"{model}\", data: plain_split }",
    );
    std::fs::write(project.path().join("grid.yaml"), grid).unwrap();
    let (status, _, stderr) = run(
        project.path(),
        &[
            "run",
            "grid.yaml",
            "--backend",
            "native",
            "--target",
            "eval_baseB_validation",
        ],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("has no validation images to score on (hint: set `validation_images_per_class` on the split)"),
        "{stderr}"
    );
}

#[test]
fn random_init_on_a_transfer_from_a_base_is_refused_before_anything_builds() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tpipe.toml"), "").unwrap();
    let grid = GRID.replace(
        "    inputs: { data: split }\n    layers_copied: 2\n    random_init: \"{init}\"",
        "    inputs: { base: baseB, data: split }\n    layers_copied: 2\n    random_init: \"{init}\"",
    );
    std::fs::write(project.path().join("grid.yaml"), grid).unwrap();
    let (status, _, stderr) = run(project.path(), &["plan", "grid.yaml"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`random_init` draws the frozen layers of a random-weights control"),
        "{stderr}"
    );
    assert!(
        stderr.contains("remove the `base` input for a random-weights control"),
        "{stderr}"
    );
}
