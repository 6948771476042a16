//! `tpipe run --executor slurm` against a real Slurm: each test starts its own one-node
//! cluster (munged, slurmctld, slurmd with two fake GPUs) under a temporary folder with
//! `tests/slurm/cluster.sh`, and stops it when done. A missing install fails with the command
//! that installs it (scripts/test installs it): a test that quietly skipped would hide a broken
//! executor. `jobs` holds the tests of a run outliving its terminal (issue 24), `arrays` those
//! of sweeps: job arrays and the cluster's limits (issue 22).

mod arrays;
mod jobs;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{send_signal, summary_line, text, tpipe_binary, Project};

const CLUSTER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slurm/cluster.sh");

/// Polls quickly: these jobs take a second, not hours.
const FAST_POLLING: &str = "[executor.slurm]\npoll_min_seconds = 0.2\npoll_max_seconds = 1\ngpus = true\nrecord_patience_seconds = 5\n";

struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// A cluster set up by `tests/slurm/cluster.sh`'s variables (`TPIPE_SLURM_CPUS`, …).
    fn start_with(settings: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tpipe-slurm-")
            .tempdir()
            .expect("temporary folder");
        let output = Command::new("bash")
            .arg(CLUSTER_SCRIPT)
            .arg("start")
            .arg(dir.path())
            .envs(settings.iter().copied())
            .output()
            .expect("run tests/slurm/cluster.sh");
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => {}
            Some(2) => panic!("Slurm is not installed; the Slurm executor tests need it (install: `apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge`, or run scripts/test):\n{stderr}"),
            _ => panic!("the test cluster did not start:\n{stderr}"),
        }
        Cluster {
            conf: dir.path().join("slurm.conf"),
            dir,
        }
    }

    /// A tpipe command that talks to this cluster, in `project`.
    fn tpipe(&self, project: &Project, args: &[&str]) -> Command {
        let mut command = Command::new(tpipe_binary());
        command
            .current_dir(project.dir.path())
            .env("SLURM_CONF", &self.conf)
            .env("TPIPE_TEST_KINDS", "1")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Every job the cluster knows, finished ones included, an array's one by one: (id, state,
    /// name).
    fn jobs(&self) -> Vec<(String, String, String)> {
        let output = Command::new("squeue")
            .env("SLURM_CONF", &self.conf)
            .args(["--noheader", "--states=all", "--array", "--format=%i|%T|%j"])
            .output()
            .expect("run squeue");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.trim().split('|');
                Some((
                    fields.next()?.to_string(),
                    fields.next()?.to_string(),
                    fields.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// Waits until `count` jobs are RUNNING; returns their ids.
    fn wait_for_running(&self, count: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let running: Vec<String> = self
                .jobs()
                .into_iter()
                .filter(|(_, state, _)| state == "RUNNING")
                .map(|(id, _, _)| id)
                .collect();
            if running.len() >= count {
                return running;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{count} jobs never ran: {:?}",
                self.jobs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn scancel(&self, id: &str) {
        let status = Command::new("scancel")
            .env("SLURM_CONF", &self.conf)
            .arg(id)
            .status()
            .expect("run scancel");
        assert!(status.success());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(CLUSTER_SCRIPT)
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// Until `done` says so (checked every 100 ms), at most `seconds`.
fn wait_until(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "waited {seconds} s for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wrappers of Slurm's commands that log every call (its arguments, one line) to
/// `<folder>/<program>.calls` and run the real command.
struct Wrappers {
    folder: PathBuf,
}

impl Wrappers {
    fn new(project: &Project, programs: &[&str]) -> Wrappers {
        let folder = project.path("counting-bin");
        std::fs::create_dir_all(&folder).unwrap();
        for program in programs {
            let script = format!(
                "#!/bin/sh\necho \"$*\" >> {log}\nexec {real} \"$@\"\n",
                log = folder.join(format!("{program}.calls")).display(),
                real = real_program(program),
            );
            install_script(&folder.join(program), &script);
        }
        Wrappers { folder }
    }

    /// The calls made so far, one line of arguments each (not tpipe's `--version` checks).
    fn calls(&self, program: &str) -> Vec<String> {
        std::fs::read_to_string(self.folder.join(format!("{program}.calls")))
            .unwrap_or_default()
            .lines()
            .filter(|line| *line != "--version")
            .map(str::to_string)
            .collect()
    }

    /// Puts the wrappers first on `command`'s PATH.
    fn apply(&self, command: &mut Command) {
        with_path_first(command, &self.folder);
    }
}

/// Where the real `program` is.
fn real_program(program: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap()
        .stdout;
    String::from_utf8(found).unwrap().trim().to_string()
}

fn install_script(path: &Path, script: &str) {
    std::fs::write(path, script).unwrap();
    Command::new("chmod").arg("+x").arg(path).status().unwrap();
}

fn with_path_first(command: &mut Command, folder: &Path) {
    let path = format!("{}:{}", folder.display(), std::env::var("PATH").unwrap());
    command.env("PATH", path);
}

fn slurm_project(yaml: &str) -> Project {
    let project = Project::new(yaml);
    std::fs::write(project.path("tpipe.toml"), FAST_POLLING).unwrap();
    project
}

/// Runs the project's pipeline through Slurm, which must succeed; returns stdout and stderr.
fn run_through_slurm(cluster: &Cluster, project: &Project) -> (String, String) {
    let output = cluster
        .tpipe(project, &["run", "pipeline.yaml", "--executor", "slurm"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Runs `yaml` through Slurm, which must fail; returns the project and `node`'s summary line.
fn run_expecting_failure(cluster: &Cluster, yaml: &str, node: &str) -> (Project, String) {
    let project = slurm_project(yaml);
    let output = cluster
        .tpipe(&project, &["run", "pipeline.yaml", "--executor", "slurm"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let line = summary_line(&stdout, node).to_string();
    (project, line)
}

fn run_json(command: &mut Command) -> serde_json::Value {
    let output = command.arg("--json").output().expect("run tpipe");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// Node name → (key, outputs as name → blob) of a run's summary and its cache.
fn built_outputs(project: &Project, summary: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut built = Vec::new();
    for node in summary["nodes"].as_array().unwrap() {
        let name = node["name"].as_str().unwrap().to_string();
        let key = node["key"].as_str().unwrap().to_string();
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(project.path(&format!("cache/records/{key}.json"))).unwrap(),
        )
        .unwrap();
        built.push((name, key, record["outputs"].to_string()));
    }
    built
}

/// Builds `yaml` through Slurm and, in another project, locally; checks that both give the same
/// keys and outputs; returns the Slurm project and its run's JSON summary.
fn built_through_slurm_as_here(cluster: &Cluster, yaml: &str) -> (Project, serde_json::Value) {
    let on_slurm = slurm_project(yaml);
    let here = slurm_project(yaml);
    let slurm_summary =
        run_json(&mut cluster.tpipe(&on_slurm, &["run", "pipeline.yaml", "--executor", "slurm"]));
    let local_summary = run_json(&mut cluster.tpipe(&here, &["run", "pipeline.yaml"]));
    assert_eq!(
        built_outputs(&on_slurm, &slurm_summary),
        built_outputs(&here, &local_summary)
    );
    (on_slurm, slurm_summary)
}

fn slurm_job_of(project: &Project, key: &str) -> serde_json::Value {
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.path(&format!("cache/records/{key}.json"))).unwrap(),
    )
    .unwrap();
    let job = record["provenance"]["cluster"].clone();
    assert!(job.is_null() || job["engine"] == "slurm", "{record}");
    job
}

const SMALL_GRID: &str = "nodes:
  one: { kind: number, value: 41, resources: { local: false } }
  two: { kind: number, value: 1, resources: { local: false, gpus: 1, cpus: 1, mem: 200M, time: 5 } }
  both: { kind: sum, inputs: { items: [one, two] }, offset: 1, resources: { local: false } }
  last: { kind: sum, inputs: { items: both } }
";

#[test]
fn a_grid_through_slurm_builds_what_a_local_run_builds_and_a_second_run_submits_nothing() {
    let cluster = Cluster::start();
    let (on_slurm, slurm_summary) = built_through_slurm_as_here(&cluster, SMALL_GRID);
    // Three nodes went to Slurm, the light `last` stayed here; the GPU node got a GPU.
    assert_eq!(cluster.jobs().len(), 3, "{:?}", cluster.jobs());
    let key_of = |summary: &serde_json::Value, name: &str| {
        summary["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|node| node["name"] == name)
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let gpu_job = slurm_job_of(&on_slurm, &key_of(&slurm_summary, "two"));
    assert_eq!(gpu_job["cuda_visible_devices"], "0", "{gpu_job}");
    assert!(slurm_job_of(&on_slurm, &key_of(&slurm_summary, "one"))["job_id"].is_string());
    assert!(slurm_job_of(&on_slurm, &key_of(&slurm_summary, "last")).is_null());
    // The run's trace (issue 23) names each node's job and host, and the job's own figures.
    let (run, nodes) = crate::run_page::traces(&on_slurm.path("cache"))
        .pop()
        .unwrap();
    assert_eq!(run["executor"], "slurm");
    crate::run_page::assert_consistent(&nodes);
    for node in &nodes {
        let on_slurm = node["name"] != "last";
        assert_eq!(node["job"].is_string(), on_slurm, "{node}");
        assert!(node["host"].is_string(), "{node}");
        assert!(node["cpu_seconds"].is_number(), "{node}");
    }

    let (stdout, stderr) = run_through_slurm(&cluster, &on_slurm);
    assert!(stdout.contains("4 cached"), "{stdout}");
    assert!(
        stderr.contains("slurm: 0 jobs submitted, 0 squeue calls"),
        "{stderr}"
    );
    assert_eq!(cluster.jobs().len(), 3);
}

#[cfg(feature = "ml")]
#[test]
fn the_quick_pipeline_through_slurm_gives_the_keys_and_outputs_of_a_local_run() {
    let cluster = Cluster::start();
    let yaml =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/quick.yaml"))
            .unwrap();
    // Results go into the project folder, not the repository's.
    let yaml = yaml.replace("publish: results/quick", "publish: published");
    let (on_slurm, slurm_summary) = built_through_slurm_as_here(&cluster, &yaml);
    let trainings: Vec<&serde_json::Value> = slurm_summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["kind"] == "train" || node["kind"] == "transfer")
        .collect();
    assert!(!trainings.is_empty());
    for node in trainings {
        let job = slurm_job_of(&on_slurm, node["key"].as_str().unwrap());
        assert!(
            job["cuda_visible_devices"].is_string(),
            "{} asked for a GPU: {job}",
            node["name"]
        );
    }
}

#[test]
fn a_job_cancelled_from_outside_fails_its_node_skips_its_dependents_and_the_rest_is_built() {
    let cluster = Cluster::start();
    let project = slurm_project(
        "nodes:
  slow: { kind: number, value: 1, sleep_ms: 120000, resources: { local: false } }
  after: { kind: sum, inputs: { items: slow } }
  other: { kind: number, value: 2 }
",
    );
    let child = cluster
        .tpipe(&project, &["run", "pipeline.yaml", "--executor", "slurm"])
        .spawn()
        .unwrap();
    let running = cluster.wait_for_running(1);
    cluster.scancel(&running[0]);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let slow = summary_line(&stdout, "slow");
    assert!(slow.contains("failed"), "{slow}");
    assert!(
        slow.contains(&format!(
            "Slurm job {}, CANCELLED was cancelled outside tpipe",
            running[0]
        )),
        "{slow}"
    );
    assert!(
        summary_line(&stdout, "after").contains("skipped"),
        "{stdout}"
    );
    assert!(summary_line(&stdout, "other").contains("built"), "{stdout}");
}

#[test]
fn a_job_over_its_memory_fails_with_the_reason_and_the_fix_after_its_retries() {
    let cluster = Cluster::start();
    let (project, line) = run_expecting_failure(
        &cluster,
        "nodes:
  greedy: { kind: number, value: 1, hog_mb: 400, sleep_ms: 5000, resources: { local: false, mem: 50M, retries: 1 } }
",
        "greedy",
    );
    assert!(line.contains("memory"), "{line}");
    assert!(line.contains("raise `mem` (now 50M)"), "{line}");
    assert!(line.contains("(after 2 attempts)"), "{line}");
    assert_eq!(cluster.jobs().len(), 2, "one retry: {:?}", cluster.jobs());
    // `tpipe show` points at the last job's log and shows how it ended.
    let show = cluster
        .tpipe(&project, &["show", "pipeline.yaml", "greedy"])
        .output()
        .unwrap();
    let (shown, _) = text(&show);
    assert!(shown.contains("its last Slurm job's log: "), "{shown}");
    assert!(
        shown.contains("-2.log"),
        "the second attempt's log: {shown}"
    );
    assert!(shown.contains("exceeded memory limit"), "{shown}");
}

#[test]
fn a_job_over_its_time_limit_fails_with_the_reason_and_the_fix() {
    let cluster = Cluster::start();
    // One minute is Slurm's smallest limit; it kills the job 60-90 s after it starts.
    let (_, line) = run_expecting_failure(
        &cluster,
        "nodes:
  long: { kind: number, value: 1, sleep_ms: 300000, resources: { local: false, time: 1 } }
",
        "long",
    );
    assert!(line.contains("TIMEOUT hit its time limit (1)"), "{line}");
    assert!(line.contains("raise `time`"), "{line}");
}

#[test]
fn ctrl_c_cancels_every_job_the_run_submitted() {
    let cluster = Cluster::start();
    let project = slurm_project(
        "nodes:
  \"slow{i}\": { kind: number, matrix: { i: 1..=3 }, value: \"{i}\", sleep_ms: 120000, resources: { local: false } }
",
    );
    let child = cluster
        .tpipe(&project, &["run", "pipeline.yaml", "--executor", "slurm"])
        .spawn()
        .unwrap();
    // Two run (the node has two CPUs), the third waits in the queue.
    cluster.wait_for_running(2);
    let started = Instant::now();
    while cluster.jobs().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            cluster.jobs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    send_signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    // The three nodes ask for the same resources: one array of three jobs (two, if the
    // three did not become ready within one gathering pause).
    let cancelled = stderr
        .lines()
        .find_map(|line| line.strip_prefix("slurm: cancelled jobs "))
        .and_then(|line| line.strip_suffix(" (scancel); the next run resumes from what finished"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(cancelled.split(' ').count(), 3, "{stderr}");
    assert!(cancelled.starts_with("1_0 "), "{stderr}");
    let started = Instant::now();
    loop {
        let jobs = cluster.jobs();
        if jobs.iter().all(|(_, state, _)| state == "CANCELLED") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "jobs left: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn detach_submits_the_whole_graph_and_a_later_run_waits_for_those_jobs() {
    let cluster = Cluster::start();
    // `local: false`: `--detach` honours where a node builds, and these light test kinds would
    // otherwise build here (see `cluster::detach_builds_here_what_builds_here…`).
    let project = slurm_project(
        "nodes:
  one: { kind: number, value: 1, sleep_ms: 10000, resources: { local: false } }
  two: { kind: sum, inputs: { items: one }, offset: 1, resources: { local: false } }
  three: { kind: sum, inputs: { items: two }, offset: 1, resources: { local: false } }
",
    );
    let detached = cluster
        .tpipe(
            &project,
            &["run", "pipeline.yaml", "--executor", "slurm", "--detach"],
        )
        .output()
        .unwrap();
    let (stdout, stderr) = text(&detached);
    assert!(detached.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 jobs submitted"), "{stdout}");
    // Every node went to Slurm, each after its input's job; nothing is built yet.
    assert_eq!(cluster.jobs().len(), 3, "{:?}", cluster.jobs());
    let plan = cluster
        .tpipe(&project, &["plan", "pipeline.yaml"])
        .output()
        .unwrap();
    let (planned, _) = text(&plan);
    assert!(
        planned.contains("on Slurm (queued or running; `tpipe status pipeline.yaml` shows more):"),
        "{planned}"
    );
    for (node, job) in [("one", "1"), ("two", "2"), ("three", "3")] {
        assert!(
            planned
                .lines()
                .any(|line| line.split_whitespace().take(3).eq([node, "job", job])),
            "{node} as job {job}: {planned}"
        );
    }
    let (stdout, stderr) = run_through_slurm(&cluster, &project);
    assert!(stderr.contains("slurm: 0 jobs submitted"), "{stderr}");
    assert!(summary_line(&stdout, "three").contains("= 3"), "{stdout}");
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), 3, "nothing submitted again: {jobs:?}");
    assert!(
        jobs.iter().all(|(_, state, _)| state == "COMPLETED"),
        "{jobs:?}"
    );
    let again = cluster
        .tpipe(&project, &["plan", "pipeline.yaml"])
        .output()
        .unwrap();
    assert!(
        !text(&again).0.contains("on Slurm"),
        "the jobs are forgotten once built"
    );
}

/// The files under `folder`, recursively (none when it does not exist).
fn files_under(folder: &std::path::Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(folder)
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

#[test]
fn through_a_remote_jobs_build_in_scratch_and_only_published_outputs_come_down() {
    let cluster = Cluster::start();
    let yaml = SMALL_GRID.replace(
        "last: { kind: sum, inputs: { items: both } }",
        "last: { kind: sum, inputs: { items: both }, publish: published }",
    );
    let on_slurm = slurm_project(&yaml);
    let remote = on_slurm.path("remote");
    std::fs::create_dir(&remote).unwrap();
    std::fs::write(
        on_slurm.path("tpipe.toml"),
        format!(
            "remote = \"{}\"\n{FAST_POLLING}artifacts = \"remote\"\n",
            remote.display()
        ),
    )
    .unwrap();
    let summary =
        run_json(&mut cluster.tpipe(&on_slurm, &["run", "pipeline.yaml", "--executor", "slurm"]));
    // Every node went to Slurm (the light `last` too: here it would download its input).
    assert_eq!(cluster.jobs().len(), 4, "{:?}", cluster.jobs());
    // The submitting cache holds only the published node's entry, fetched to publish it.
    assert_eq!(files_under(&on_slurm.path("cache/records")).len(), 1);
    assert_eq!(files_under(&on_slurm.path("cache/blobs")).len(), 1);
    assert_eq!(
        std::fs::read_to_string(on_slurm.path("published/value")).unwrap(),
        "43"
    );
    // The remote has what a local run builds, byte for byte.
    let here = slurm_project(&yaml);
    let local_summary = run_json(&mut cluster.tpipe(&here, &["run", "pipeline.yaml"]));
    for (name, key, outputs) in built_outputs(&here, &local_summary) {
        let on_remote: serde_json::Value = serde_json::from_slice(
            &std::fs::read(remote.join(format!("records/{key}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(on_remote["outputs"].to_string(), outputs, "{name}");
    }
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 4);
    // Again: every node is found on the remote by its record; nothing is submitted.
    let (stdout, stderr) = run_through_slurm(&cluster, &on_slurm);
    assert!(stdout.contains("1 cached, 3 fetched"), "{stdout}");
    assert!(stderr.contains("slurm: 0 jobs submitted"), "{stderr}");
    assert_eq!(files_under(&on_slurm.path("cache/blobs")).len(), 1);
}

/// A folder with an `squeue` that fails its first `failures` calls, then runs the real one.
fn flaky_squeue(project: &Project, failures: u32) -> PathBuf {
    let folder = project.path("flaky-bin");
    std::fs::create_dir_all(&folder).unwrap();
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v squeue"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let script = format!(
        "#!/bin/sh\ncount_file={count}\ncount=$(cat \"$count_file\" 2>/dev/null || echo 0)\necho $((count + 1)) > \"$count_file\"\nif [ \"$count\" -lt {failures} ]; then echo 'slurm_load_jobs error: Socket timed out' >&2; exit 1; fi\nexec {real} \"$@\"\n",
        count = folder.join("calls").display(),
        real = real.trim(),
    );
    let path = folder.join("squeue");
    std::fs::write(&path, script).unwrap();
    Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    folder
}

#[test]
fn a_failing_squeue_is_tolerated_for_its_patience_then_the_waiting_nodes_fail() {
    let cluster = Cluster::start();
    let yaml = "nodes:\n  one: { kind: number, value: 1, resources: { local: false } }\n";
    let with_path = |project: &Project, folder: &std::path::Path| {
        let mut command = cluster.tpipe(project, &["run", "pipeline.yaml", "--executor", "slurm"]);
        let path = format!("{}:{}", folder.display(), std::env::var("PATH").unwrap());
        command.env("PATH", path);
        command
    };
    // Three failed calls, then squeue answers: the run does not notice beyond a delay.
    let patient = slurm_project(yaml);
    let folder = flaky_squeue(&patient, 3);
    let output = with_path(&patient, &folder).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(summary_line(&stdout, "one").contains("built"), "{stdout}");
    // squeue failing for longer than `squeue_patience_seconds`: the node fails, saying why.
    let impatient = slurm_project(yaml);
    std::fs::write(
        impatient.path("tpipe.toml"),
        format!("{FAST_POLLING}squeue_patience_seconds = 1\n"),
    )
    .unwrap();
    let folder = flaky_squeue(&impatient, 1_000);
    let output = with_path(&impatient, &folder).output().unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let line = summary_line(&stdout, "one");
    assert!(
        line.contains(
            "could not be followed: squeue kept failing (slurm_load_jobs error: Socket timed out)"
        ),
        "{line}"
    );
}

#[test]
fn resources_never_change_a_key() {
    let plain = Project::new("nodes:\n  one: { kind: number, value: 1 }\n");
    let with_resources = Project::new(
        "defaults:\n  number: { resources: { time: 60 } }\nnodes:\n  one: { kind: number, value: 1, resources: { gpus: a100:2, cpus: 8, mem: 64G, retries: 3, local: false } }\n",
    );
    let key = |project: &Project| project.plan().nodes[0].key.unwrap();
    assert_eq!(key(&plain), key(&with_resources));
    let session = with_resources.session();
    let resources = &session.pipeline.nodes[0].resources;
    assert_eq!(
        resources.time,
        Some(Duration::from_secs(3600)),
        "the kind's default applies"
    );
    let gpus = resources.gpus.as_ref().unwrap();
    assert_eq!((gpus.count, gpus.gpu_type.as_deref()), (2, Some("a100")));
}

/// Issue 21: through an HTTPS WebDAV remote behind basic auth, with signatures required. The
/// jobs reach the remote with the run's credentials and apply its trust rule from their
/// environment alone (sbatch here exports only named variables: no HOME, no config file), sign
/// what they push, and the entries a teammate pushed unsigned are refused and built by jobs.
/// The password is in no job script, log or output.
#[cfg(feature = "remote")]
#[test]
fn through_an_authenticated_remote_jobs_get_the_runs_credentials_and_trust_rule_in_their_environment(
) {
    use crate::remotes::servers::{TestCa, WebDavOptions, WebDavServer};
    const PASSWORD: &str = "slurm-grep-me-Pa55word-0c4e";
    let cluster = Cluster::start();
    let certificates = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(certificates.path());
    let server = WebDavServer::start_with(&WebDavOptions {
        tls: Some(&ca),
        basic_auth: Some(("alice", PASSWORD)),
    });
    let remote = server.url("cache");
    // Nothing of the person running the tests: config, netrc and remote are this test's.
    let isolated = |command: &mut Command, project: &Project| {
        for (name, _) in std::env::vars() {
            if name.starts_with("TPIPE_") || name.starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        command
            .env("TPIPE_TEST_KINDS", "1")
            .env("HOME", project.dir.path())
            .env("XDG_CONFIG_HOME", project.path("user-config"));
    };
    let mut printed = String::new();

    // A teammate pushed the whole grid unsigned (credentials from the environment).
    let teammate = slurm_project(SMALL_GRID);
    let mut push = cluster.tpipe(
        &teammate,
        &["run", "pipeline.yaml", "--push", "--remote", &remote],
    );
    isolated(&mut push, &teammate);
    push.env("TPIPE_REMOTE_USER", "alice")
        .env("TPIPE_REMOTE_PASSWORD", PASSWORD)
        .env("SSL_CERT_FILE", &ca.ca_certificate);
    let output = push.output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    // Our project trusts only `ci`, whose key signs our pushes; credentials in a file.
    let project = slurm_project(SMALL_GRID);
    let key_file = project.path("user-config/tpipe/ci.key");
    let mut generate = cluster.tpipe(
        &project,
        &[
            "key",
            "generate",
            "ci",
            "--output",
            key_file.to_str().unwrap(),
        ],
    );
    isolated(&mut generate, &project);
    let output = generate.output().unwrap();
    let (stdout, _) = text(&output);
    let public = stdout
        .lines()
        .find_map(|line| line.strip_prefix("public key: "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    let credentials = project.path("user-config/tpipe/credentials.toml");
    std::fs::write(
        &credentials,
        format!("[\"127.0.0.1\"]\nuser = \"alice\"\npassword = \"{PASSWORD}\"\n"),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        project.path("user-config/tpipe/config.toml"),
        format!(
            "credentials = \"credentials.toml\"\nca_bundle = \"{}\"\nsigning_key = \"ci.key\"\n",
            ca.ca_certificate.display()
        ),
    )
    .unwrap();
    let exported = "PATH,TPIPE_TEST_KINDS,TPIPE_REMOTE_USER,TPIPE_REMOTE_PASSWORD,TPIPE_CA_BUNDLE,TPIPE_SIGNING_KEY,TPIPE_TRUSTED_KEYS,TPIPE_REQUIRE_SIGNATURES";
    std::fs::write(
        project.path("tpipe.toml"),
        format!(
            "remote = \"{remote}\"\ntrusted_keys = [\"{public}\"]\n{FAST_POLLING}artifacts = \"remote\"\nsbatch_args = [\"--export={exported}\"]\n"
        ),
    )
    .unwrap();
    let mut command = cluster.tpipe(&project, &["run", "pipeline.yaml", "--executor", "slurm"]);
    isolated(&mut command, &project);
    let output = command.output().unwrap();
    let (stdout, stderr) = text(&output);
    printed.push_str(&format!("{stdout}{stderr}"));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // Every node was refused as unsigned (the first three as the run looked them up, `last`
    // once its input was rebuilt with the same content) and built by a job.
    for node in ["one", "two", "both", "last"] {
        assert!(
            stderr
                .lines()
                .any(|line| line.contains(&format!("node `{node}`"))
                    && line.contains("it is not signed")),
            "{node}: {stderr}"
        );
        assert!(summary_line(&stdout, node).contains("built"), "{stdout}");
    }
    assert_eq!(cluster.jobs().len(), 4, "{:?}", cluster.jobs());
    // What the jobs pushed carries our signature, so the next run takes it as it is.
    for record in std::fs::read_dir(server.disk_path("cache/records")).unwrap() {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(record.unwrap().path()).unwrap()).unwrap();
        assert!(
            record["signatures"][0].as_str().unwrap().starts_with("ci:"),
            "{record}"
        );
    }
    let mut again = cluster.tpipe(&project, &["run", "pipeline.yaml", "--executor", "slurm"]);
    isolated(&mut again, &project);
    let output = again.output().unwrap();
    let (stdout, stderr) = text(&output);
    printed.push_str(&format!("{stdout}{stderr}"));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("4 fetched") && stderr.contains("slurm: 0 jobs submitted"),
        "{stdout}\n{stderr}"
    );

    // The password went through the jobs' environment only: not in a script Slurm kept, a
    // job's log, the cache or anything printed.
    assert!(!printed.contains(PASSWORD), "{printed}");
    let mut scripts = 0;
    for file in files_under(cluster.dir.path())
        .into_iter()
        .chain(files_under(&project.path("cache")))
    {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let is_script = file.file_name().is_some_and(|name| name == "script");
        scripts += usize::from(is_script);
        if is_script || file.starts_with(project.path("cache")) {
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|window| window == PASSWORD.as_bytes()),
                "{}",
                file.display()
            );
        }
    }
    assert!(
        scripts >= 4,
        "Slurm keeps each job's script under its state folder"
    );
}
