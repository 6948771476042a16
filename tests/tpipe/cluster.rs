//! The cluster seam, through its test double: `--executor processes` runs each job as a local
//! process (`tpipe exec-node KEY`) behind the same `ClusterBackend` trait as Slurm, so the
//! generic runner (queue, polling, retries, the record as the truth, cancelling, `--detach`)
//! is tested here on any machine, without Slurm.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{send_signal, summary_line, text, tpipe_binary, Project};

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
        planned
            .contains("on Processes (queued or running; `tpipe status pipeline.yaml` shows more):"),
        "{planned}"
    );

    let (stdout, stderr) = succeed(&project, ON_THE_CLUSTER);
    assert!(stderr.contains("processes: 0 jobs submitted"), "{stderr}");
    assert!(summary_line(&stdout, "light").contains("= 4"), "{stdout}");
    let (planned, _) = succeed(&project, &["plan", "pipeline.yaml"]);
    assert!(!planned.contains("queued or running"), "{planned}");
}

/// Runs three slow jobs on the test double and sends signal `name`: every job is cancelled,
/// in one call, and the run exits with 130.
fn a_signal_cancels_every_job_the_run_follows(name: &str) {
    let project = Project::new(
        "nodes:
  \"slow{i}\": { kind: number, matrix: { i: 1..=3 }, value: \"{i}\", sleep_ms: 120000, resources: { local: false } }
",
    );
    let (stdout, stderr, code) = signalled_run(&project, name);
    assert_eq!(code, Some(130), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("processes: cancelled jobs 1 2 3 (kill)"),
        "{stderr}"
    );
    assert_eq!(job_exits(&project), ["cancelled"; 3]);
}

#[test]
fn ctrl_c_cancels_every_job_the_run_follows() {
    a_signal_cancels_every_job_the_run_follows("INT");
}

/// Issue 24: every job is in the cache's ledger from its submission on, so a run killed with
/// SIGKILL leaves nothing untracked, and its rerun follows the jobs instead of submitting them
/// again.
#[test]
fn a_killed_run_leaves_its_jobs_recorded_and_a_rerun_follows_them_instead_of_submitting_again() {
    let project = Project::new(SLOW_TRIO);
    let mut child = tpipe(&project, ON_THE_CLUSTER).spawn().unwrap();
    wait_for_jobs(&project, 3);
    child.kill().unwrap();
    child.wait().unwrap();
    a_rerun_follows_the_three_jobs_and_submits_only_total(&project);
}

/// The job folders of the test double: one per job ever submitted.
fn job_folders(project: &Project) -> usize {
    std::fs::read_dir(project.path("cache/process-jobs"))
        .map(|folders| folders.count())
        .unwrap_or(0)
}

/// Waits until jobs 1 to `count` of the test double have started.
fn wait_for_jobs(project: &Project, count: u32) {
    let started = |id: u32| {
        project
            .path(&format!("cache/process-jobs/{id}/started"))
            .exists()
    };
    let clock = Instant::now();
    while !(1..=count).all(started) {
        assert!(
            clock.elapsed() < Duration::from_secs(30),
            "the jobs never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tpipe status --json`: (node, job) of each job it lists.
fn listed(project: &Project) -> Vec<(String, String)> {
    let (stdout, _) = succeed(project, &["status", "pipeline.yaml", "--json"]);
    let jobs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    jobs.as_array()
        .unwrap()
        .iter()
        .map(|job| {
            let field = |name: &str| job[name].as_str().unwrap().to_string();
            (field("node"), field("job"))
        })
        .collect()
}

/// Issue 24: `tpipe status` lists the live jobs of a pipeline, whichever run submitted them;
/// `tpipe cancel` cancels them and marks them, so the next run submits their nodes anew.
#[test]
fn status_lists_the_live_jobs_and_cancel_cancels_them_so_a_rerun_submits_them_again() {
    let project = Project::new(
        "nodes:
  \"slow{i}\": { kind: number, matrix: { i: 1..=2 }, value: \"{i}\", sleep_ms: 120000, resources: { local: false } }
  quick: { kind: number, value: 7, resources: { local: false } }
",
    );
    let detach = [
        "run",
        "pipeline.yaml",
        "--executor",
        "processes",
        "--detach",
    ];
    let (stdout, _) = succeed(&project, &detach);
    assert!(stdout.contains("3 jobs submitted;"), "{stdout}");
    // `quick`'s job ends at once; the slow ones stay.
    let quick = Instant::now();
    while listed(&project).len() != 2 {
        assert!(
            quick.elapsed() < Duration::from_secs(30),
            "{:?}",
            listed(&project)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let jobs = listed(&project);
    let nodes: Vec<&str> = jobs.iter().map(|(node, _)| node.as_str()).collect();
    assert_eq!(nodes, ["slow1", "slow2"]);
    let (table, _) = succeed(&project, &["status", "pipeline.yaml"]);
    assert!(table.contains("2 jobs (2 running)"), "{table}");

    let (stdout, _) = succeed(&project, &["cancel", "pipeline.yaml", "--target", "slow2"]);
    let slow2 = &jobs[1].1;
    assert!(
        stdout.contains(&format!(
            "cancelled 1 Processes job of pipeline.yaml (kill: {slow2})"
        )),
        "{stdout}"
    );
    assert_eq!(listed(&project), [jobs[0].clone()]);
    succeed(&project, &["cancel", "pipeline.yaml"]);
    assert!(listed(&project).is_empty());
    let (table, _) = succeed(&project, &["status", "pipeline.yaml"]);
    assert!(
        table.contains("no job of pipeline.yaml is queued or running"),
        "{table}"
    );

    let (stdout, _) = succeed(&project, &detach);
    assert!(stdout.contains("2 jobs submitted;"), "{stdout}");
    assert_eq!(job_folders(&project), 5);
    succeed(&project, &["cancel", "pipeline.yaml"]);
}

const SLOW_TRIO: &str = "nodes:
  \"slow{i}\": { kind: number, matrix: { i: 1..=3 }, value: \"{i}\", sleep_ms: 8000, resources: { local: false } }
  total: { kind: sum, inputs: { items: \"slow*\" }, resources: { local: false } }
";

/// Issue 24: a hangup (the terminal closed) leaves the jobs running, recorded: the process
/// exits with 129 without cancelling them, and the next run follows them instead of
/// submitting them again.
#[test]
fn a_hangup_leaves_the_jobs_running_and_a_rerun_follows_them() {
    let project = Project::new(SLOW_TRIO);
    let (stdout, stderr, code) = signalled_run(&project, "HUP");
    assert_eq!(code, Some(129), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("processes: hangup: left jobs 1 2 3 queued or running"),
        "{stderr}"
    );
    assert!(
        job_exits(&project).iter().all(|exit| exit != "cancelled"),
        "{:?}",
        job_exits(&project)
    );
    a_rerun_follows_the_three_jobs_and_submits_only_total(&project);
}

/// Issue 24: SIGTERM (what `timeout` and systemd send) cancels like Ctrl-C, in one call.
#[test]
fn sigterm_cancels_every_job_the_run_follows_like_ctrl_c() {
    a_signal_cancels_every_job_the_run_follows("TERM");
}

/// Runs the project's pipeline on the test double, waits until its jobs 1 to 3 have started,
/// and sends it signal `name`; returns its stdout, stderr and exit code.
fn signalled_run(project: &Project, name: &str) -> (String, String, Option<i32>) {
    let child = tpipe(project, ON_THE_CLUSTER).spawn().unwrap();
    wait_for_jobs(project, 3);
    send_signal(&child, name);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&output);
    (stdout, stderr, output.status.code())
}

/// What the `exit` files of the test double's jobs 1 to 3 say (empty while one runs).
fn job_exits(project: &Project) -> Vec<String> {
    (1..=3)
        .map(|id| {
            let exit = project.path(&format!("cache/process-jobs/{id}/exit"));
            std::fs::read_to_string(exit).unwrap_or_default()
        })
        .collect()
}

/// A rerun of [`SLOW_TRIO`] follows the three slow jobs an earlier run left and submits only
/// `total`'s: each node is submitted once over both runs.
fn a_rerun_follows_the_three_jobs_and_submits_only_total(project: &Project) {
    let (stdout, stderr) = succeed(project, ON_THE_CLUSTER);
    assert!(
        stderr.contains("processes: 1 job submitted")
            && stderr.contains("followed 3 jobs submitted earlier"),
        "{stderr}"
    );
    assert!(summary_line(&stdout, "total").contains("= 6"), "{stdout}");
    assert_eq!(job_folders(project), 4, "each node submitted once");
}
