//! What a cluster job runs: this tpipe binary's `exec-node` (or, for a detached node whose key
//! waits on its inputs, `exec-pipeline-node`) over the shared cache, as POSIX shell lines that
//! any scheduler can run, after a comment line that says which key the job builds and for which
//! cache or remote ([`marker_line`]): what a run reads back from the scheduler to follow a job
//! that no ledger entry names.

use std::path::{Path, PathBuf};

/// The binary, cache and backend every job of a run uses.
#[derive(Clone, Debug)]
pub struct JobCommand {
    pub executable: PathBuf,
    pub cache_dir: PathBuf,
    /// `--backend`, passed on to every job (the backend's word; the engine does not read it).
    pub backend: Option<String>,
}

/// Quotes a word for `sh`: inside single quotes nothing is special but the quote itself.
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
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
    // `$$`, the job shell's process id, keeps two jobs on one machine apart.
    let mut line = format!(
        "scratch=\"${{TMPDIR:-/tmp}}/tpipe-job-$$\"\n\
         trap 'rm -rf \"$scratch\"' EXIT\n\
         {} exec-node {key} --cache \"$scratch\" --remote {} --push --action -",
        quoted(&command.executable.to_string_lossy()),
        quoted(remote)
    );
    push_backend(&mut line, command);
    line.push_str(&format!(" <<'{terminator}'\n{action_json}\n{terminator}"));
    line
}

/// Where a job's result lands, as its marker names it: `cache <folder>` (the shared cache
/// folder) or `remote <url>` (jobs that work through a remote). A run follows a job it finds
/// only when this matches its own.
pub fn destination(command: &JobCommand, remote: Option<&str>) -> String {
    let text = match remote {
        Some(remote) => format!("remote {remote}"),
        None => format!("cache {}", command.cache_dir.display()),
    };
    text.replace(['\n', '\r'], " ")
}

const MARKER: &str = "# tpipe-builds ";

/// The comment line that opens the lines of a job building `key` into `destination`.
pub fn marker_line(key: &str, destination: &str) -> String {
    format!("{MARKER}{key} into {destination}")
}

/// A job's marker, read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub key: String,
    pub destination: String,
}

/// The markers of a submitted script, in order: one per job (an array's, in its jobs' order).
pub fn markers(script: &str) -> Vec<Marker> {
    script
        .lines()
        .filter_map(|line| {
            let (key, destination) = line.strip_prefix(MARKER)?.split_once(" into ")?;
            Some(Marker {
                key: key.to_string(),
                destination: destination.to_string(),
            })
        })
        .collect()
}

fn push_backend(line: &mut String, command: &JobCommand) {
    if let Some(backend) = &command.backend {
        line.push_str(&format!(" --backend {}", quoted(backend)));
    }
}
