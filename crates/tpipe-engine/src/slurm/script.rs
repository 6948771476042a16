//! The batch script piped to `sbatch`: `#SBATCH` lines, then the job's lines. Resources are
//! written here in Slurm's syntax (the generic resource type has none).

use std::time::Duration;

use super::SlurmConfig;
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
        // A requeued job would only find its record and stop; tpipe resubmits what failed.
        "--no-requeue".to_string(),
    ];
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
    let mut script = String::from("#!/bin/sh\n");
    for option in options {
        script.push_str("#SBATCH ");
        script.push_str(&option);
        script.push('\n');
    }
    script.push_str(&format!(
        "# tpipe: node `{}`\n",
        job.node.replace('\n', " ")
    ));
    // The build records the job it ran in (`record::ClusterJob`).
    script.push_str(&format!(
        "export {}=\"slurm:$SLURM_JOB_ID\"\n",
        crate::record::CLUSTER_JOB_VARIABLE
    ));
    script.push_str(job.script);
    script.push('\n');
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
    fn times_are_written_as_slurm_reads_them() {
        let minutes = |minutes: u64| format_time(Duration::from_secs(60 * minutes));
        assert_eq!(minutes(1), "1");
        assert_eq!(minutes(59), "59");
        assert_eq!(minutes(60), "1:00:00");
        assert_eq!(format_time(Duration::from_secs(90)), "0:01:30");
        assert_eq!(minutes(36 * 60), "1-12:00:00");
    }
}
