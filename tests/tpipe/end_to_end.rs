//! pipelines/quick.yaml through the real binary: the whole grid trains, the report is written,
//! and an edit reruns exactly the nodes it invalidates. Needs the `ml` feature (burn).

use std::process::Command;

use crate::support::tpipe_binary;

fn tpipe(project: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let output = Command::new(tpipe_binary())
        .args(args)
        .arg("--json")
        .current_dir(project)
        .output()
        .expect("tpipe runs");
    assert!(
        output.status.success(),
        "tpipe {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON summary")
}

fn with_status<'a>(summary: &'a serde_json::Value, status: &str) -> Vec<&'a str> {
    let nodes = summary
        .get("nodes")
        .unwrap_or(summary)
        .as_array()
        .expect("a list of nodes");
    nodes
        .iter()
        .filter(|node| node["status"] == status)
        .map(|node| node["name"].as_str().unwrap())
        .collect()
}

#[test]
fn quick_pipeline_builds_the_grid_and_its_report_and_reruns_only_what_an_edit_touches() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("tpipe.toml"), "").unwrap();
    let quick =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/quick.yaml"))
            .unwrap();
    let file = project.path().join("quick.yaml");
    std::fs::write(&file, &quick).unwrap();

    let first = tpipe(project.path(), &["run", "quick.yaml"]);
    assert_eq!(with_status(&first, "failed"), Vec::<&str>::new());
    let evaluations: Vec<&serde_json::Value> = first["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["kind"] == "evaluate")
        .collect();
    assert_eq!(
        evaluations.len(),
        2 + 28 + 7 + 8,
        "bases, AnB/BnB(+) for n = 1..7, random controls, dissimilar"
    );
    for evaluation in &evaluations {
        let headline = evaluation["headline"].as_str().unwrap_or_default();
        assert!(
            headline.starts_with("top-1 0."),
            "{}: {headline}",
            evaluation["name"]
        );
    }

    // The report: tables that parse, a figure, a summary that speaks to the paper's findings.
    let results = project.path().join("results/quick");
    let csv = std::fs::read_to_string(results.join("results.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + evaluations.len(),
        "one CSV row per evaluated net:\n{csv}"
    );
    let png = std::fs::read(results.join("figure.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(std::fs::read_to_string(results.join("figure.svg"))
        .unwrap()
        .contains("<svg"));
    let summary = std::fs::read_to_string(results.join("summary.md")).unwrap();
    for finding in [
        "Fragile co-adaptation",
        "Specificity",
        "Dissimilar",
        "Random weights",
        "Lingering boost",
    ] {
        assert!(summary.contains(finding), "summary lacks `{finding}`");
    }

    // A learning rate for the fine-tuned and frozen transfers only: the bases, random controls
    // and the dissimilar split stay cached.
    let edited = quick.replace(
        "    layers_copied: \"{n}\"\n    finetune: \"{plus}\"\n",
        "    layers_copied: \"{n}\"\n    finetune: \"{plus}\"\n    learning_rate: 0.01\n",
    );
    assert_ne!(edited, quick, "the edit applies");
    std::fs::write(&file, edited).unwrap();
    let plan = tpipe(project.path(), &["plan", "quick.yaml"]);
    let will_run = with_status(&plan, "will-run");
    assert_eq!(
        will_run.len(),
        28,
        "exactly the 28 transfers will run: {will_run:?}"
    );
    assert!(will_run.iter().all(|name| !name.starts_with("eval")
        && !name.starts_with("random")
        && !name.starts_with("base")));
    let second = tpipe(project.path(), &["run", "quick.yaml"]);
    let mut built = with_status(&second, "built");
    built.sort();
    let mut expected: Vec<String> = Vec::new();
    for source in ["A", "B"] {
        for n in 1..=7 {
            for plus in ["", "+"] {
                expected.push(format!("{source}{n}B{plus}_s0"));
                expected.push(format!("eval_{source}{n}B{plus}_s0"));
            }
        }
    }
    expected.push("report".into());
    expected.sort();
    assert_eq!(built, expected);
}
