//! Issue 22, Slurm at sweep scale: ready nodes that ask for the same go to Slurm as job
//! arrays, so a few `sbatch` calls submit hundreds of jobs; the cluster's limits
//! (`MaxArraySize`, `MaxSubmitJobs`) are met with smaller arrays and back-off, never with
//! failed nodes.

use super::*;

/// The first value of a sweep (the test kind refuses 13).
const FIRST: usize = 100;

/// `count` nodes that ask for the same (so they may share arrays) and one that sums them.
fn sweep(count: usize, sleep_ms: u64) -> Project {
    let last = FIRST + count - 1;
    let project = slurm_project(&format!(
        "nodes:
  \"n{{i}}\": {{ kind: number, matrix: {{ i: {FIRST}..={last} }}, value: \"{{i}}\", sleep_ms: {sleep_ms}, resources: {{ local: false }} }}
  total: {{ kind: sum, inputs: {{ items: \"n*\" }} }}
"
    ));
    // Every node in flight at once: the queue limit is not what these tests are about.
    std::fs::write(
        project.path("tpipe.toml"),
        format!("{FAST_POLLING}max_jobs = 1000\n"),
    )
    .unwrap();
    project
}

/// Runs the sweep with `folder` first on PATH; it must succeed and sum its values.
fn run_sweep(cluster: &Cluster, project: &Project, folder: &Path, count: usize) -> String {
    let mut command = cluster.tpipe(project, &["run", "pipeline.yaml", "--executor", "slurm"]);
    with_path_first(&mut command, folder);
    let output = command.output().unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let total = count * (2 * FIRST + count - 1) / 2;
    assert!(
        summary_line(&stdout, "total").contains(&format!("= {total}")),
        "{stdout}"
    );
    stderr
}

/// The tpipe jobs the cluster knows, an array's one by one.
fn tpipe_jobs(cluster: &Cluster) -> Vec<String> {
    cluster
        .jobs()
        .into_iter()
        .filter(|(_, _, name)| name.starts_with("tpipe-"))
        .map(|(id, _, _)| id)
        .collect()
}

#[test]
fn several_hundred_ready_nodes_go_to_slurm_in_a_few_sbatch_calls() {
    let cluster =
        Cluster::start_with(&[("TPIPE_SLURM_CPUS", "32"), ("TPIPE_SLURM_MEM_MB", "32000")]);
    let project = sweep(300, 0);
    let wrappers = Wrappers::new(&project, &["sbatch"]);
    let stderr = run_sweep(&cluster, &project, &wrappers.folder, 300);
    let calls = wrappers.calls("sbatch").len();
    // One array per gathering of ready nodes, not one job per node.
    assert!(calls <= 10, "{calls} sbatch calls for 300 jobs:\n{stderr}");
    assert!(
        stderr.contains(&format!("slurm: 300 jobs submitted in {calls} sbatch call")),
        "{stderr}"
    );
    let jobs = tpipe_jobs(&cluster);
    assert_eq!(jobs.len(), 300);
    // A tick that gathered a single ready node submits it alone, with no array index (when
    // it happens depends on timing); each such job took a call of its own.
    let alone = jobs.iter().filter(|id| !id.contains('_')).count();
    assert!(alone < calls, "{alone} jobs outside arrays: {jobs:?}");
}

#[test]
fn arrays_over_the_clusters_max_array_size_are_halved_until_it_takes_them() {
    let cluster = Cluster::start_with(&[
        ("TPIPE_SLURM_CPUS", "16"),
        ("TPIPE_SLURM_MEM_MB", "16000"),
        ("TPIPE_SLURM_MAX_ARRAY_SIZE", "16"),
    ]);
    let project = sweep(40, 0);
    let wrappers = Wrappers::new(&project, &["sbatch"]);
    let stderr = run_sweep(&cluster, &project, &wrappers.folder, 40);
    assert!(
        stderr.contains("Slurm refused an array of")
            && stderr
                .contains("Invalid job array specification: more than the cluster's MaxArraySize"),
        "{stderr}"
    );
    let jobs = tpipe_jobs(&cluster);
    assert_eq!(jobs.len(), 40);
    // A job alone (a tick that gathered one ready node) has no index: it is no array at all.
    for (id, index) in jobs
        .iter()
        .filter_map(|id| Some((id, id.split_once('_')?.1)))
    {
        let index: usize = index.parse().unwrap();
        assert!(index < 16, "{id}: an array over MaxArraySize");
    }
    assert!(
        jobs.iter().any(|id| id.contains('_')),
        "no arrays: {jobs:?}"
    );
    // Halving reaches a size Slurm takes in a few refusals.
    assert!(wrappers.calls("sbatch").len() <= 12, "{stderr}");
}

/// An `sbatch` that refuses, in Slurm's words, a submission that would put more than `limit`
/// of this user's jobs in the queue (what `MaxSubmitJobs` on a QOS does), logging each refusal
/// to `<folder>/refused`.
fn sbatch_with_submit_limit(project: &Project, limit: usize) -> PathBuf {
    let folder = project.path("limited-bin");
    std::fs::create_dir_all(&folder).unwrap();
    let script = format!(
        r#"#!/bin/sh
[ "$1" = --version ] && exec {sbatch} "$@"
script=$(cat)
jobs=1
last=$(printf '%s\n' "$script" | sed -n 's/^#SBATCH --array=0-\([0-9]*\)$/\1/p')
[ -n "$last" ] && jobs=$((last + 1))
queued=$({squeue} --me --noheader --array --states=PENDING,RUNNING,CONFIGURING,COMPLETING | wc -l)
if [ $((queued + jobs)) -gt {limit} ]; then
  echo "$jobs" >> {folder}/refused
  echo 'sbatch: error: QOSMaxSubmitJobPerUserLimit' >&2
  echo "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)" >&2
  exit 1
fi
printf '%s\n' "$script" | exec {sbatch} "$@"
"#,
        squeue = real_program("squeue"),
        sbatch = real_program("sbatch"),
        folder = folder.display(),
    );
    install_script(&folder.join("sbatch"), &script);
    folder
}

#[test]
fn a_cluster_that_refuses_jobs_over_its_submit_limit_gets_them_as_room_comes_back() {
    let cluster = Cluster::start_with(&[("TPIPE_SLURM_CPUS", "4")]);
    let project = sweep(16, 1000);
    let folder = sbatch_with_submit_limit(&project, 6);
    // Another job of the user's fills the limit first: tpipe waits for room, probing.
    for _ in 0..6 {
        let output = Command::new("sbatch")
            .env("SLURM_CONF", &cluster.conf)
            .args([
                "--parsable",
                "--job-name=other",
                "--output=/dev/null",
                "--wrap=sleep 4",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let stderr = run_sweep(&cluster, &project, &folder, 16);
    assert_eq!(tpipe_jobs(&cluster).len(), 16);
    let refused = std::fs::read_to_string(folder.join("refused")).unwrap_or_default();
    let refusals = refused.lines().count();
    // Refused at first, then backing off: a few probes, not one call per tick per node.
    assert!(
        (1..=40).contains(&refusals),
        "{refusals} refusals:\n{stderr}"
    );
    assert!(
        stderr.contains("over a limit on queued jobs (sbatch: QOSMaxSubmitJobPerUserLimit")
            && stderr.contains("(hint: `max_jobs = "),
        "{stderr}"
    );
}
