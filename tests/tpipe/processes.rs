//! The real binary in separate processes: a killed run resumes, two runs share one cache.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{tpipe_binary, Project};

fn grid(log: &std::path::Path, sleep_ms: u64) -> String {
    format!(
        "defaults:\n  number: {{ log: \"{log}\", sleep_ms: {sleep_ms} }}\n  sum: {{ log: \"{log}\" }}\nnodes:\n  \"n{{i}}\":\n    kind: number\n    matrix: {{ i: 1..=8 }}\n    value: \"{{i}}\"\n  total:\n    kind: sum\n    inputs: {{ items: \"n*\" }}\n",
        log = log.display()
    )
}

fn tpipe(project: &Project) -> Command {
    let mut command = Command::new(tpipe_binary());
    command
        .current_dir(project.dir.path())
        .env("TPIPE_TEST_KINDS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `output`, after checking that its process succeeded (its stderr otherwise).
fn succeeded(output: std::process::Output) -> std::process::Output {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn build_log(project: &Project) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(project.path("build.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn a_killed_run_resumes_with_what_finished() {
    let project = Project::new("");
    project.set_pipeline(&grid(&project.path("build.log"), 300));
    let mut child = tpipe(&project)
        .args(["run", "pipeline.yaml", "--jobs", "1"])
        .spawn()
        .unwrap();
    // Wait until at least two nodes have finished building, then kill without warning.
    let started = Instant::now();
    while project.session().cache.record_keys().unwrap().len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished_before = project.session().cache.record_keys().unwrap().len();
    assert!(finished_before < 9, "the run was killed before the end");
    let output = succeeded(
        tpipe(&project)
            .args(["run", "pipeline.yaml", "--json"])
            .output()
            .unwrap(),
    );
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let cached = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["status"] == "cached")
        .count();
    assert!(
        cached >= finished_before,
        "what finished before the kill is reused ({cached} < {finished_before})"
    );
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 9);
}

#[test]
fn two_processes_on_one_cache_build_each_node_once() {
    let project = Project::new("");
    project.set_pipeline(&grid(&project.path("build.log"), 50));
    let first = tpipe(&project)
        .args(["run", "pipeline.yaml", "--jobs", "2"])
        .spawn()
        .unwrap();
    let second = tpipe(&project)
        .args(["run", "pipeline.yaml", "--jobs", "2"])
        .spawn()
        .unwrap();
    for child in [first, second] {
        succeeded(child.wait_with_output().unwrap());
    }
    let mut expected: Vec<String> = (1..=8).map(|i| format!("n{i}")).collect();
    expected.push("total".into());
    expected.sort();
    assert_eq!(
        build_log(&project),
        expected,
        "every node built exactly once across both processes"
    );
    assert_eq!(project.session().cache.record_keys().unwrap().len(), 9);
}

#[test]
fn exit_codes_follow_the_readme() {
    let project = Project::new("nodes:\n  a: { kind: number, value: 1 }\n");
    assert_eq!(
        tpipe(&project)
            .args(["run", "pipeline.yaml"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(0)
    );
    project.set_pipeline("nodes:\n  a: { kind: number, value: 1, fail: true }\n");
    assert_eq!(
        tpipe(&project)
            .args(["run", "pipeline.yaml"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    project.set_pipeline("nodes:\n  a: { kind: numbr, value: 1 }\n");
    let output = tpipe(&project)
        .args(["run", "pipeline.yaml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("pipeline.yaml:2:14"));
}

/// A record with the fields that say when and where it was built blanked out: the rest must
/// not depend on which process built it.
fn without_when_and_where(record_bytes: &[u8]) -> serde_json::Value {
    let mut record: serde_json::Value = serde_json::from_slice(record_bytes).unwrap();
    // `usage` (issue 23): what the build cost, measured, so never the same twice.
    for field in [
        "host",
        "started_at",
        "finished_at",
        "duration_seconds",
        "usage",
    ] {
        record["provenance"][field] = serde_json::Value::Null;
    }
    record
}

/// Issue 9: `exec-node` builds a node in another process from the cache alone (no pipeline
/// file, another working folder) and writes the record `run` wrote.
#[test]
fn exec_node_rebuilds_a_node_from_its_stored_action_alone() {
    let project = Project::new("");
    project.set_pipeline(&grid(&project.path("build.log"), 0));
    succeeded(
        tpipe(&project)
            .args(["run", "pipeline.yaml"])
            .output()
            .unwrap(),
    );
    let record = project.record_of("total");
    let key = record.key.to_hex();
    let session = project.session();
    let record_path = session.cache.record_path(&record.key);
    let in_process = std::fs::read(&record_path).unwrap();
    std::fs::remove_file(&record_path).unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let cache_dir = project.cache_dir();
    let exec = |key: &str| {
        Command::new(tpipe_binary())
            .current_dir(elsewhere.path())
            .env("TPIPE_TEST_KINDS", "1")
            .args(["exec-node", key, "--cache"])
            .arg(&cache_dir)
            .output()
            .unwrap()
    };
    succeeded(exec(&key));
    let rebuilt = std::fs::read(&record_path).unwrap();
    assert_eq!(
        without_when_and_where(&rebuilt),
        without_when_and_where(&in_process)
    );
    let mut expected: Vec<String> = (1..=8).map(|i| format!("n{i}")).collect();
    expected.extend(["total".to_string(), "total".to_string()]);
    expected.sort();
    assert_eq!(build_log(&project), expected, "the action really ran again");

    // A second job for the same key (a requeue) finds the record and builds nothing.
    let output = exec(&key);
    assert!(String::from_utf8_lossy(&output.stdout).contains("already built"));
    assert_eq!(build_log(&project).len(), 10);

    // An input blob gone: a clear error naming the slot, the node and the output.
    std::fs::remove_file(&record_path).unwrap();
    let n3 = project.record_of("n3");
    std::fs::remove_file(session.cache.blob_path(&n3.outputs["value"].blob)).unwrap();
    let output = exec(&key);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("input `items` (node `n3`), output `value`: blob")
            && stderr.contains("is missing in the cache"),
        "{stderr}"
    );

    // A key with no stored action is a usage error that says where actions come from.
    let output = exec(&"0".repeat(64));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no action"));

    // `--action FILE` (what a job in node-local scratch gets) must describe the key asked for.
    let n1 = project.record_of("n1");
    let action_file = project.path("action.json");
    std::fs::copy(session.cache.action_path(&record.key), &action_file).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(tpipe_binary())
        .env("TPIPE_TEST_KINDS", "1")
        .args(["exec-node", &n1.key.to_hex(), "--cache"])
        .arg(scratch.path())
        .arg("--action")
        .arg(&action_file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "--action describes key {}, not {}",
            record.key.short(),
            n1.key.short()
        )),
        "{stderr}"
    );
}
