//! The batch script piped to `sbatch`: `#SBATCH` lines, then the job's lines. Resources are
//! written here in Slurm's syntax (the generic resource type has none).

use std::time::Duration;

use super::SlurmConfig;
use crate::cluster::command::quoted;
use crate::cluster::JobRequest;
use crate::resources::{Gpus, Memory};

/// `--gpus`: `2` or `a100:2`.
fn format_gpus(gpus: &Gpus) -> String {
    match &gpus.gpu_type {
        Some(gpu_type) => format!("{gpu_type}:{}", gpus.count),
        None => gpus.count.to_string(),
    }
}

/// `--mem`: a whole number with K, M, G or T, the largest unit that holds it whole (`16G`).
pub fn format_memory(memory: Memory) -> String {
    memory.to_string()
}

/// `--time`: whole minutes under an hour as `M`, else `H:MM:SS`, with `D-` from a day on.
pub fn format_time(time: Duration) -> String {
    let total = time.as_secs();
    let (days, rest) = (total / 86_400, total % 86_400);
    let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        format!("{days}-{hours}:{minutes:02}:{seconds:02}")
    } else if hours == 0 && seconds == 0 {
        minutes.to_string()
    } else {
        format!("{hours}:{minutes:02}:{seconds:02}")
    }
}

/// The `#SBATCH` lines every job of `job`'s kind gets after its name and log: no requeue,
/// the configured partition, account and QOS, its resources, its dependencies and the extra
/// arguments.
fn common_options(job: &JobRequest<'_>, config: &SlurmConfig) -> Vec<String> {
    // A requeued job would only find its record and stop; tpipe resubmits what failed.
    let mut options = vec!["--no-requeue".to_string()];
    for (flag, value) in [
        ("partition", &config.partition),
        ("account", &config.account),
        ("qos", &config.qos),
    ] {
        if let Some(value) = value {
            options.push(format!("--{flag}={value}"));
        }
    }
    let resources = job.resources;
    if let Some(gpus) = resources.gpus.as_ref().filter(|gpus| gpus.count > 0) {
        options.push(format!("--gpus={}", format_gpus(gpus)));
    }
    if let Some(cpus) = resources.cpus {
        options.push(format!("--cpus-per-task={cpus}"));
    }
    if let Some(mem) = resources.mem {
        options.push(format!("--mem={}", format_memory(mem)));
    }
    if let Some(time) = resources.time {
        options.push(format!("--time={}", format_time(time)));
    }
    if !job.after.is_empty() {
        // A dependent of a failed job is cancelled by Slurm rather than left pending for ever.
        options.push(format!("--dependency=afterok:{}", job.after.join(":")));
        options.push("--kill-on-invalid-dep=yes".to_string());
    }
    options.extend(config.sbatch_args.iter().cloned());
    options
}

fn with_options(options: Vec<String>) -> String {
    let mut script = String::from("#!/bin/sh\n");
    for option in options {
        script.push_str("#SBATCH ");
        script.push_str(&option);
        script.push('\n');
    }
    script
}

fn node_comment(job: &JobRequest<'_>) -> String {
    format!("# tpipe: node `{}`\n", job.node.replace('\n', " "))
}

/// The script for `job`: its `#SBATCH` lines (name, log, resources, dependencies, the
/// configured partition, account, QOS and extra arguments), then its lines.
pub fn job_script(job: &JobRequest<'_>, config: &SlurmConfig) -> String {
    let mut options: Vec<String> = vec![
        format!("--job-name={}", job.name),
        // Slurm puts the job's id where `%j` is: the runner's `<stem>-<id>.log`.
        format!(
            "--output={}",
            job.logs.join(format!("{}-%j.log", job.log_stem)).display()
        ),
    ];
    options.extend(common_options(job, config));
    let mut script = with_options(options);
    script.push_str(&node_comment(job));
    // The build records the job it ran in (`record::ClusterJob`).
    script.push_str(&format!(
        "export {}=\"slurm:$SLURM_JOB_ID\"\n",
        crate::record::CLUSTER_JOB_VARIABLE
    ));
    script.push_str(job.script);
    script.push('\n');
    script
}

/// The script of an array named `name` of `jobs` (which share resources and dependencies):
/// `--array=0-N`, then one `case` branch per job, in order, with its lines. Slurm writes each
/// job's output to `<name>-<array id>_<index>.log`; the branch links the runner's
/// `<stem>-<array id>_<index>.log` to it, so a job's log is found by its key as for a job of its
/// own.
pub fn array_script(name: &str, jobs: &[JobRequest<'_>], config: &SlurmConfig) -> String {
    let first = &jobs[0];
    let stem = name.trim_start_matches("tpipe-");
    let mut options: Vec<String> = vec![
        format!("--job-name={name}"),
        format!(
            "--output={}",
            first.logs.join(format!("{stem}-%A_%a.log")).display()
        ),
        format!("--array=0-{}", jobs.len() - 1),
    ];
    options.extend(common_options(first, config));
    let mut script = with_options(options);
    script.push_str("job=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n");
    script.push_str(&format!(
        "export {}=\"slurm:$job\"\n",
        crate::record::CLUSTER_JOB_VARIABLE
    ));
    script.push_str("case \"$SLURM_ARRAY_TASK_ID\" in\n");
    for (index, job) in jobs.iter().enumerate() {
        let log = |stem: &str| quoted(&job.logs.join(format!("{stem}-")).to_string_lossy());
        script.push_str(&format!("{index})\n"));
        script.push_str(&node_comment(job));
        script.push_str(&format!(
            "ln -sf {}\"$job.log\" {}\"$job.log\"\n",
            quoted(&format!("{stem}-")),
            log(job.log_stem)
        ));
        script.push_str(job.script);
        script.push_str("\n;;\n");
    }
    script.push_str("esac\n");
    script
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::json;

    use super::*;
    use crate::cluster::command::{exec_node_line, JobCommand};
    use crate::resources::Resources;

    #[test]
    fn resources_and_settings_become_sbatch_lines_and_paths_are_quoted() {
        let resources = Resources::parse(
            &json!({"gpus": "a100:2", "cpus": 4, "mem": "16G", "time": "2:00:00"}),
        )
        .unwrap();
        let config = SlurmConfig {
            partition: Some("gpu".into()),
            sbatch_args: vec!["--constraint=ib".into()],
            ..SlurmConfig::default()
        };
        let command = JobCommand {
            executable: PathBuf::from("/opt/tpipe/bin/tpipe"),
            cache_dir: PathBuf::from("/shared/it's/cache"),
            backend: Some("wgpu".into()),
        };
        let script = job_script(
            &JobRequest {
                name: "tpipe-0123456789ab",
                node: "train_baseA",
                script: &exec_node_line(&command, "0123456789abcdef"),
                after: &["12".to_string(), "13".to_string()],
                logs: Path::new("/shared/logs"),
                log_stem: "0123456789ab",
                resources: &resources,
                environment: &[],
            },
            &config,
        );
        let expected = "#!/bin/sh
#SBATCH --job-name=tpipe-0123456789ab
#SBATCH --output=/shared/logs/0123456789ab-%j.log
#SBATCH --no-requeue
#SBATCH --partition=gpu
#SBATCH --gpus=a100:2
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=2:00:00
#SBATCH --dependency=afterok:12:13
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --constraint=ib
# tpipe: node `train_baseA`
export TPIPE_CLUSTER_JOB=\"slurm:$SLURM_JOB_ID\"
exec '/opt/tpipe/bin/tpipe' exec-node 0123456789abcdef --cache '/shared/it'\\''s/cache' --backend 'wgpu'
";
        assert_eq!(script, expected);
    }

    #[test]
    fn an_array_runs_each_jobs_lines_in_its_branch_and_links_its_log_to_the_jobs_key() {
        let resources = Resources::parse(&json!({"cpus": 2})).unwrap();
        let job = |node: &'static str, stem: &'static str, script: &'static str| JobRequest {
            name: "ignored",
            node,
            script,
            after: &[],
            logs: Path::new("/shared/logs"),
            log_stem: stem,
            resources: &resources,
            environment: &[],
        };
        let jobs = [
            job(
                "a",
                "aaaaaaaaaaaa",
                "# tpipe-builds aaaa into cache /c\nexec tpipe exec-node aaaa",
            ),
            job(
                "b",
                "bbbbbbbbbbbb",
                "# tpipe-builds bbbb into cache /c\nexec tpipe exec-node bbbb",
            ),
        ];
        let script = array_script("tpipe-0123456789ab", &jobs, &SlurmConfig::default());
        let expected = "#!/bin/sh
#SBATCH --job-name=tpipe-0123456789ab
#SBATCH --output=/shared/logs/0123456789ab-%A_%a.log
#SBATCH --array=0-1
#SBATCH --no-requeue
#SBATCH --cpus-per-task=2
job=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"
export TPIPE_CLUSTER_JOB=\"slurm:$job\"
case \"$SLURM_ARRAY_TASK_ID\" in
0)
# tpipe: node `a`
ln -sf '0123456789ab-'\"$job.log\" '/shared/logs/aaaaaaaaaaaa-'\"$job.log\"
# tpipe-builds aaaa into cache /c
exec tpipe exec-node aaaa
;;
1)
# tpipe: node `b`
ln -sf '0123456789ab-'\"$job.log\" '/shared/logs/bbbbbbbbbbbb-'\"$job.log\"
# tpipe-builds bbbb into cache /c
exec tpipe exec-node bbbb
;;
esac
";
        assert_eq!(script, expected);
        // The markers say which job builds which key, in order.
        let keys: Vec<String> = crate::cluster::command::markers(&script)
            .into_iter()
            .map(|marker| marker.key)
            .collect();
        assert_eq!(keys, ["aaaa", "bbbb"]);
    }

    #[test]
    fn times_are_written_as_slurm_reads_them() {
        let minutes = |minutes: u64| format_time(Duration::from_secs(60 * minutes));
        assert_eq!(minutes(1), "1");
        assert_eq!(minutes(59), "59");
        assert_eq!(minutes(60), "1:00:00");
        assert_eq!(format_time(Duration::from_secs(90)), "0:01:30");
        assert_eq!(minutes(36 * 60), "1-12:00:00");
    }
}
