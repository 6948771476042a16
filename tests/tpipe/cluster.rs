//! The cluster seam, through its test double: `--executor processes` runs each job as a local
//! process (`tpipe exec-node KEY`) behind the same `ClusterBackend` trait as Slurm, so the
//! generic runner (queue, polling, retries, the record as the truth, cancelling, `--detach`)
//! is tested here on any machine, without Slurm.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{summary_line, text, tpipe_binary, Project};

pub(crate) fn tpipe(project: &Project, args: &[&str]) -> Command {
    let mut command = Command::new(tpipe_binary());
    command
        .current_dir(project.dir.path())
        .env("TPIPE_TEST_KINDS", "1")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `args` in `project`, which must succeed; returns stdout and stderr.
fn succeed(project: &Project, args: &[&str]) -> (String, String) {
    let output = tpipe(project, args).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

const ON_THE_CLUSTER: &[&str] = &["run", "pipeline.yaml", "--executor", "processes"];

/// Node → (key, outputs) of every node of a JSON summary, read from the project's cache.
fn outputs(project: &Project, stdout: &str) -> Vec<(String, String, String)> {
    let summary: serde_json::Value = serde_json::from_str(stdout).unwrap();
    summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let key = node["key"].as_str().unwrap().to_string();
            let record: serde_json::Value = serde_json::from_slice(
                &std::fs::read(project.path(&format!("cache/records/{key}.json"))).unwrap(),
            )
            .unwrap();
            let name = node["name"].as_str().unwrap().to_string();
            (name, key, record["outputs"].to_string())
        })
        .collect()
}

const SMALL_GRID: &str = "nodes:
  one: { kind: number, value: 41, resources: { local: false } }
  two: { kind: number, value: 1, resources: { local: false, mem: 200M, time: 5 } }
  both: { kind: sum, inputs: { items: [one, two] }, offset: 1, resources: { local: false } }
  last: { kind: sum, inputs: { items: both } }
";

#[test]
fn a_grid_on_the_cluster_builds_what_a_local_run_builds_and_reruns_only_what_an_edit_touches() {
    let on_cluster = Project::new(SMALL_GRID);
    let here = Project::new(SMALL_GRID);
    let (cluster_json, stderr) = succeed(
        &on_cluster,
        &["run", "pipeline.yaml", "--executor", "processes", "--json"],
    );
    // Three nodes went to the cluster, the light `last` stayed here.
    assert!(stderr.contains("processes: 3 jobs submitted"), "{stderr}");
    let (local_json, _) = succeed(&here, &["run", "pipeline.yaml", "--json"]);
    assert_eq!(
        outputs(&on_cluster, &cluster_json),
        outputs(&here, &local_json)
    );

    let (stdout, stderr) = succeed(&on_cluster, ON_THE_CLUSTER);
    assert!(stdout.contains("4 cached"), "{stdout}");
    assert!(
        stderr.contains("processes: 0 jobs submitted, 0 polls"),
        "{stderr}"
    );

    on_cluster.edit("value: 1,", "value: 2,");
    let (stdout, stderr) = succeed(&on_cluster, ON_THE_CLUSTER);
    assert!(stdout.contains("3 built, 1 cached"), "{stdout}");
    assert!(stderr.contains("processes: 2 jobs submitted"), "{stderr}");
    assert!(summary_line(&stdout, "last").contains("= 44"), "{stdout}");
}

#[test]
fn a_failing_job_fails_its_node_with_its_log_skips_its_dependents_and_the_rest_is_built() {
    let project = Project::new(
        "nodes:
  broken: { kind: number, value: 1, fail: true, resources: { local: false, retries: 1 } }
  after: { kind: sum, inputs: { items: broken } }
  other: { kind: number, value: 2, resources: { local: false } }
",
    );
    let output = tpipe(&project, ON_THE_CLUSTER).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let broken = summary_line(&stdout, "broken");
    assert!(
        broken.contains(", FAILED failed (exit code 1): see the log.")
            && broken.contains("(after 2 attempts)"),
        "{broken}"
    );
    // The job's log is quoted under the table: the build's own error.
    assert!(
        stdout.contains("failed on purpose (`fail: true`)"),
        "{stdout}"
    );
    assert!(
        summary_line(&stdout, "after").contains("skipped"),
        "{stdout}"
    );
    assert!(summary_line(&stdout, "other").contains("built"), "{stdout}");
}

/// `--detach` goes through the scheduler of a run: a node that builds here does so when its
/// inputs are built, the others become jobs (after their inputs' jobs), and a node that builds
/// here after a job waits for the next run, which follows the jobs instead of submitting again.
#[test]
fn detach_builds_here_what_builds_here_submits_the_rest_and_a_later_run_waits_for_them() {
    let project = Project::new(
        "nodes:
  data: { kind: number, value: 1 }
  heavy: { kind: sum, inputs: { items: data }, offset: 1, sleep_ms: 1500, resources: { local: false } }
  after: { kind: sum, inputs: { items: heavy }, offset: 1, resources: { local: false } }
  light: { kind: sum, inputs: { items: after }, offset: 1 }
",
    );
    let (stdout, _) = succeed(
        &project,
        &[
            "run",
            "pipeline.yaml",
            "--executor",
            "processes",
            "--detach",
        ],
    );
    assert!(summary_line(&stdout, "data").contains("built"), "{stdout}");
    assert!(
        summary_line(&stdout, "heavy").contains("submitted"),
        "{stdout}"
    );
    assert!(
        summary_line(&stdout, "after").contains("submitted"),
        "{stdout}"
    );
    assert!(
        summary_line(&stdout, "light").contains("deferred"),
        "{stdout}"
    );
    assert!(stdout.contains("2 jobs submitted;"), "{stdout}");

    let (planned, _) = succeed(&project, &["plan", "pipeline.yaml"]);
    assert!(
        planned.contains("on Processes (from `run --detach`):"),
        "{planned}"
    );

    let (stdout, stderr) = succeed(&project, ON_THE_CLUSTER);
    assert!(stderr.contains("processes: 0 jobs submitted"), "{stderr}");
    assert!(summary_line(&stdout, "light").contains("= 4"), "{stdout}");
    let (planned, _) = succeed(&project, &["plan", "pipeline.yaml"]);
    assert!(!planned.contains("from `run --detach`"), "{planned}");
}

#[test]
fn ctrl_c_cancels_every_job_the_run_follows() {
    let project = Project::new(
        "nodes:
  \"slow{i}\": { kind: number, matrix: { i: 1..=3 }, value: \"{i}\", sleep_ms: 120000, resources: { local: false } }
",
    );
    let child = tpipe(&project, ON_THE_CLUSTER).spawn().unwrap();
    let started = |id: u32| {
        project
            .path(&format!("cache/process-jobs/{id}/started"))
            .exists()
    };
    let clock = Instant::now();
    while !(1..=3).all(started) {
        assert!(
            clock.elapsed() < Duration::from_secs(30),
            "the jobs never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("processes: cancelled jobs 1 2 3 (kill)"),
        "{stderr}"
    );
    for id in 1..=3 {
        let exit = project.path(&format!("cache/process-jobs/{id}/exit"));
        assert_eq!(std::fs::read_to_string(exit).unwrap(), "cancelled");
    }
}
