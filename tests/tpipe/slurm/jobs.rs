//! Issue 24, a Slurm run outlives its terminal: every job is recorded in the cache's ledger as
//! it is submitted, so a rerun after `kill -9` follows the live jobs instead of submitting
//! them again (even when the ledger was lost: the jobs' names and scripts say what they build);
//! `tpipe status` lists the live jobs and `tpipe cancel` cancels them.

use super::*;

/// Four nodes that take a while (they ask for the same: one array), two that wait for them,
/// and a light one that builds here.
const SLOW_GRID: &str = "nodes:
  \"n{i}\": { kind: number, matrix: { i: 1..=4 }, value: \"{i}\", sleep_ms: 8000, resources: { local: false } }
  low: { kind: sum, inputs: { items: [n1, n2] }, resources: { local: false } }
  high: { kind: sum, inputs: { items: [n3, n4] }, resources: { local: false } }
  total: { kind: sum, inputs: { items: [low, high] } }
";
const SLOW_GRID_ON_SLURM: usize = 6;

/// Four CPUs, so the four slow jobs run at once.
fn cluster() -> Cluster {
    Cluster::start_with(&[("TPIPE_SLURM_CPUS", "4")])
}

/// How many jobs the ledger in the project's cache names.
fn ledger_jobs(project: &Project) -> usize {
    files_under(&project.path("cache/cluster-jobs"))
        .iter()
        .map(|file| {
            let entry: serde_json::Value =
                serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
            entry["jobs"].as_array().unwrap().len()
        })
        .sum()
}

/// Starts a run of the slow grid, waits until its four jobs are in the queue, and kills it
/// with SIGKILL.
fn run_and_kill(cluster: &Cluster, project: &Project) {
    let mut child = cluster
        .tpipe(project, &["run", "pipeline.yaml", "--executor", "slurm"])
        .spawn()
        .unwrap();
    wait_until(60, "the four jobs", || cluster.jobs().len() >= 4);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The rerun builds the rest, and what it builds is what a local run builds.
fn rerun_builds_what_a_local_run_builds(cluster: &Cluster, project: &Project) {
    let summary =
        run_json(&mut cluster.tpipe(project, &["run", "pipeline.yaml", "--executor", "slurm"]));
    let here = slurm_project(SLOW_GRID);
    let local = run_json(&mut cluster.tpipe(&here, &["run", "pipeline.yaml"]));
    assert_eq!(
        built_outputs(project, &summary),
        built_outputs(&here, &local)
    );
}

#[test]
fn after_kill_9_a_rerun_follows_the_live_jobs_and_each_node_is_submitted_once() {
    let cluster = cluster();
    let project = slurm_project(SLOW_GRID);
    run_and_kill(&cluster, &project);
    // Recorded as soon as sbatch answered, before anything was built.
    assert_eq!(ledger_jobs(&project), 4);
    assert!(cluster
        .jobs()
        .iter()
        .all(|(_, state, _)| state != "CANCELLED"));
    rerun_builds_what_a_local_run_builds(&cluster, &project);
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), SLOW_GRID_ON_SLURM, "{jobs:?}");
    assert_eq!(
        ledger_jobs(&project),
        0,
        "the ledger forgets jobs that are over"
    );
}

#[test]
fn a_rerun_finds_live_jobs_by_their_scripts_when_the_ledger_lost_them() {
    let cluster = cluster();
    let project = slurm_project(SLOW_GRID);
    run_and_kill(&cluster, &project);
    // As if the run had died between sbatch answering and the ledger being written.
    std::fs::remove_dir_all(project.path("cache/cluster-jobs")).unwrap();
    let output = cluster
        .tpipe(&project, &["run", "pipeline.yaml", "--executor", "slurm"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), SLOW_GRID_ON_SLURM, "{jobs:?}\n{stderr}");
    assert!(summary_line(&stdout, "total").contains("= 10"), "{stdout}");
}

/// Starts a run of the slow grid with Slurm's commands counted, waits until its four jobs are
/// in the queue, and sends it signal `name`; returns what it printed and its exit code.
fn run_and_signal(
    cluster: &Cluster,
    project: &Project,
    wrappers: &Wrappers,
    name: &str,
) -> (String, Option<i32>) {
    let mut command = cluster.tpipe(project, &["run", "pipeline.yaml", "--executor", "slurm"]);
    wrappers.apply(&mut command);
    let child = command.spawn().unwrap();
    wait_until(60, "the four jobs", || cluster.jobs().len() >= 4);
    send_signal(&child, name);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&output);
    (format!("{stdout}\n{stderr}"), output.status.code())
}

#[test]
fn a_hangup_leaves_the_jobs_running_and_a_rerun_submits_nothing_for_them() {
    let cluster = cluster();
    let project = slurm_project(SLOW_GRID);
    let wrappers = Wrappers::new(&project, &["sbatch", "scancel"]);
    let (printed, code) = run_and_signal(&cluster, &project, &wrappers, "HUP");
    assert_eq!(code, Some(129), "{printed}");
    assert!(printed.contains("slurm: hangup: left jobs"), "{printed}");
    assert!(wrappers.calls("scancel").is_empty(), "{printed}");
    assert_eq!(ledger_jobs(&project), 4);
    assert!(
        cluster
            .jobs()
            .iter()
            .all(|(_, state, _)| state != "CANCELLED"),
        "{:?}",
        cluster.jobs()
    );
    let sbatch_before = wrappers.calls("sbatch").len();
    let mut rerun = cluster.tpipe(&project, &["run", "pipeline.yaml", "--executor", "slurm"]);
    wrappers.apply(&mut rerun);
    let output = rerun.output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("followed 4 jobs submitted earlier"),
        "{stderr}"
    );
    assert!(summary_line(&stdout, "total").contains("= 10"), "{stdout}");
    // Only `low` and `high` were submitted by the rerun.
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), SLOW_GRID_ON_SLURM, "{jobs:?}");
    assert!(
        wrappers.calls("sbatch").len() - sbatch_before <= 2,
        "{stderr}"
    );
}

#[test]
fn sigterm_cancels_the_runs_jobs_in_one_scancel_and_exits_130() {
    let cluster = cluster();
    let project = slurm_project(SLOW_GRID);
    let wrappers = Wrappers::new(&project, &["scancel"]);
    let (printed, code) = run_and_signal(&cluster, &project, &wrappers, "TERM");
    assert_eq!(code, Some(130), "{printed}");
    assert!(printed.contains("slurm: cancelled jobs "), "{printed}");
    assert_eq!(wrappers.calls("scancel").len(), 1, "{printed}");
    wait_until(30, "every job cancelled", || {
        cluster
            .jobs()
            .iter()
            .all(|(_, state, _)| state == "CANCELLED")
    });
    assert_eq!(
        ledger_jobs(&project),
        0,
        "the ledger forgets cancelled jobs"
    );
}

/// The ids of the jobs Slurm has queued or running.
fn live_ids(cluster: &Cluster) -> Vec<String> {
    let mut ids: Vec<String> = cluster
        .jobs()
        .into_iter()
        .filter(|(_, state, _)| state == "PENDING" || state == "RUNNING")
        .map(|(id, _, _)| id)
        .collect();
    ids.sort();
    ids
}

/// `tpipe status --json`: (node, job, state) of each job it lists.
fn status_of(cluster: &Cluster, project: &Project) -> Vec<(String, String, String)> {
    let listed = run_json(&mut cluster.tpipe(project, &["status", "pipeline.yaml"]));
    let mut jobs: Vec<(String, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            let field = |name: &str| job[name].as_str().unwrap().to_string();
            (field("node"), field("job"), field("state"))
        })
        .collect();
    jobs.sort();
    jobs
}

#[test]
fn status_lists_exactly_the_live_jobs_cancel_leaves_none_and_a_rerun_submits_them_again() {
    let cluster = cluster();
    let project = slurm_project(
        "nodes:
  \"slow{i}\": { kind: number, matrix: { i: 1..=2 }, value: \"{i}\", sleep_ms: 120000, resources: { local: false } }
  quick: { kind: number, value: 9, resources: { local: false, cpus: 1 } }
",
    );
    let detach = ["run", "pipeline.yaml", "--executor", "slurm", "--detach"];
    let output = cluster.tpipe(&project, &detach).output().unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    // `quick` ends at once; the two slow jobs stay.
    wait_until(60, "two live jobs", || {
        live_ids(&cluster).len() == 2 && cluster.jobs().len() == 3
    });
    let listed = status_of(&cluster, &project);
    let nodes: Vec<&str> = listed.iter().map(|(node, _, _)| node.as_str()).collect();
    assert_eq!(nodes, ["slow1", "slow2"]);
    let mut ids: Vec<String> = listed.iter().map(|(_, id, _)| id.clone()).collect();
    ids.sort();
    assert_eq!(ids, live_ids(&cluster));
    let table = cluster
        .tpipe(&project, &["status", "pipeline.yaml"])
        .output()
        .unwrap();
    let (table, _) = text(&table);
    assert!(table.contains("2 jobs ("), "{table}");
    assert!(
        table.contains("`tpipe cancel pipeline.yaml` cancels them"),
        "{table}"
    );

    let (stdout, _) = text(
        &cluster
            .tpipe(&project, &["cancel", "pipeline.yaml", "--target", "slow1"])
            .output()
            .unwrap(),
    );
    assert!(
        stdout.contains("cancelled 1 Slurm job of pipeline.yaml"),
        "{stdout}"
    );
    let listed = status_of(&cluster, &project);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].0, "slow2");

    let (stdout, _) = text(
        &cluster
            .tpipe(&project, &["cancel", "pipeline.yaml"])
            .output()
            .unwrap(),
    );
    assert!(stdout.contains("cancelled 1 Slurm job"), "{stdout}");
    wait_until(30, "no live job", || live_ids(&cluster).is_empty());
    assert!(status_of(&cluster, &project).is_empty());

    // The cancelled nodes are submitted again; `quick` is built.
    let output = cluster.tpipe(&project, &detach).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 jobs submitted;"), "{stdout}");
    assert_eq!(cluster.jobs().len(), 5, "{:?}", cluster.jobs());
    assert_eq!(status_of(&cluster, &project).len(), 2);
}

/// With `artifacts = "remote"` the machine that submitted may die, and a rerun may come from
/// another machine that shares only the remote (here: another project folder with a cache of
/// its own, so no ledger entry): it finds the live jobs of its keys in Slurm's queue by their
/// scripts, which name the remote, and follows them.
#[test]
fn through_a_remote_a_rerun_from_another_machine_follows_the_jobs_of_a_killed_run() {
    let cluster = cluster();
    let yaml = "nodes:
  \"n{i}\": { kind: number, matrix: { i: 1..=3 }, value: \"{i}\", sleep_ms: 8000 }
  total: { kind: sum, inputs: { items: \"n*\" } }
";
    let remote = tempfile::tempdir().unwrap();
    let config = format!(
        "remote = \"{}\"\n{FAST_POLLING}artifacts = \"remote\"\n",
        remote.path().display()
    );
    let first = slurm_project(yaml);
    std::fs::write(first.path("tpipe.toml"), &config).unwrap();
    let mut child = cluster
        .tpipe(&first, &["run", "pipeline.yaml", "--executor", "slurm"])
        .spawn()
        .unwrap();
    wait_until(60, "three jobs", || cluster.jobs().len() >= 3);
    child.kill().unwrap();
    child.wait().unwrap();

    let second = slurm_project(yaml);
    std::fs::write(second.path("tpipe.toml"), &config).unwrap();
    let (stdout, stderr) = run_through_slurm(&cluster, &second);
    assert!(
        stderr.contains("slurm: 1 job submitted")
            && stderr.contains("followed 3 jobs submitted earlier"),
        "{stderr}"
    );
    assert!(summary_line(&stdout, "total").contains("= 6"), "{stdout}");
    assert_eq!(cluster.jobs().len(), 4, "{:?}", cluster.jobs());
}
