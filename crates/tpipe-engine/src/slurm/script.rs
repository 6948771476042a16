//! The batch script piped to `sbatch`: `#SBATCH` lines, then the `exec-node` command.

use std::path::Path;

use super::{JobCommand, SlurmConfig};
use crate::resources::Resources;

pub struct JobScript<'a> {
    pub job_name: &'a str,
    pub node: &'a str,
    /// What the job runs: [`exec_node_line`] or [`exec_pipeline_node_line`].
    pub exec_line: &'a str,
    /// Jobs that must complete first (`--dependency=afterok:…`); a dependent of a failed job
    /// is cancelled by Slurm rather than left pending for ever.
    pub after: &'a [String],
    /// `--output`, with Slurm's `%j` for the job id.
    pub log_pattern: &'a Path,
    /// The resources after the executor's defaults.
    pub resources: &'a Resources,
    pub config: &'a SlurmConfig,
}

/// Quotes a word for `sh`: inside single quotes nothing is special but the quote itself.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub fn job_script(job: &JobScript) -> String {
    let mut options: Vec<String> = vec![
        format!("--job-name={}", job.job_name),
        format!("--output={}", job.log_pattern.display()),
        // A requeued job would only find its record and stop; tpipe resubmits what failed.
        "--no-requeue".to_string(),
    ];
    let config = job.config;
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
        options.push(format!("--gpus={}", gpus.sbatch_value()));
    }
    if let Some(cpus) = resources.cpus {
        options.push(format!("--cpus-per-task={cpus}"));
    }
    if let Some(mem) = &resources.mem {
        options.push(format!("--mem={mem}"));
    }
    if let Some(time) = &resources.time {
        options.push(format!("--time={time}"));
    }
    if !job.after.is_empty() {
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
    script.push_str(job.exec_line);
    script.push('\n');
    script
}

/// Builds the stored action `key`: for a node whose inputs are all built, so its key is known.
pub fn exec_node_line(command: &JobCommand, key: &str) -> String {
    let mut line = format!(
        "exec {} exec-node {key} --cache {}",
        quoted(&command.executable.to_string_lossy()),
        quoted(&command.cache_dir.to_string_lossy())
    );
    push_backend(&mut line, command);
    line
}

/// Builds node `node` of the pipeline text stored in the cache as blob `snapshot`, read as if
/// it were `pipeline`: for a detached node whose key is known only once its inputs are built.
pub fn exec_pipeline_node_line(
    command: &JobCommand,
    pipeline: &Path,
    snapshot: &str,
    node: &str,
) -> String {
    let mut line = format!(
        "exec {} exec-pipeline-node {} --snapshot {snapshot} --node {} --cache {}",
        quoted(&command.executable.to_string_lossy()),
        quoted(&pipeline.to_string_lossy()),
        quoted(node),
        quoted(&command.cache_dir.to_string_lossy())
    );
    push_backend(&mut line, command);
    line
}

/// Builds the action `key` in node-local scratch through `remote`: the action travels in the
/// script, the inputs come from the remote, the outputs go back to it, and the scratch folder
/// is removed when the job ends.
pub fn exec_node_in_scratch_lines(
    command: &JobCommand,
    key: &str,
    remote: &str,
    action_json: &str,
) -> String {
    let terminator = format!("TPIPE_ACTION_{}", &key[..16]);
    let mut line = format!(
        "scratch=\"${{TMPDIR:-/tmp}}/tpipe-job-$SLURM_JOB_ID\"\n\
         trap 'rm -rf \"$scratch\"' EXIT\n\
         {} exec-node {key} --cache \"$scratch\" --remote {} --push --action -",
        quoted(&command.executable.to_string_lossy()),
        quoted(remote)
    );
    push_backend(&mut line, command);
    line.push_str(&format!(" <<'{terminator}'\n{action_json}\n{terminator}"));
    line
}

fn push_backend(line: &mut String, command: &JobCommand) {
    if let Some(backend) = &command.backend {
        line.push_str(&format!(" --backend {}", quoted(backend)));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

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
        let script = job_script(&JobScript {
            job_name: "tpipe-0123456789ab",
            node: "train_baseA",
            exec_line: &exec_node_line(&command, "0123456789abcdef"),
            after: &["12".to_string(), "13".to_string()],
            log_pattern: Path::new("/shared/logs/0123456789ab-%j.log"),
            resources: &resources,
            config: &config,
        });
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
exec '/opt/tpipe/bin/tpipe' exec-node 0123456789abcdef --cache '/shared/it'\\''s/cache' --backend 'wgpu'
";
        assert_eq!(script, expected);
    }
}
