//! `tpipe cache push|pull`, `tpipe cache gc --remote`, and choosing the remote for `run`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::cache_commands::human_bytes;
use super::{exit, Failure};
use crate::cache::Cache;
use crate::remote::gc::{execute_remote_gc, plan_remote_gc, RemoteGcError};
use crate::remote::transfer::{self, PullStatus, TransferObserver};
use crate::remote::{RemoteChoice, RemoteError, RemoteSettings, StoreRemote};
use crate::session::{project_dir_of, Session};

/// The remote options shared by `run`, `cache push` and `cache pull`.
#[derive(clap::Args, Debug, Default)]
pub struct RemoteArgs {
    /// The remote to use: a folder, file:///path, http(s)://host/path (WebDAV) or
    /// s3://bucket/prefix. Overrides TPIPE_REMOTE, tpipe.toml, ~/.config/tpipe/config.toml and
    /// `remote:` in the pipeline file, in that order.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Only read from the remote, never write to it.
    #[arg(long)]
    pub remote_read_only: bool,
}

fn remote_failure(error: RemoteError) -> Failure {
    match error {
        RemoteError::Config { .. } => Failure::usage(error),
        _ => Failure::failed(error),
    }
}

/// The remote in effect for a project folder and (optionally) a pipeline file's `remote:`.
pub fn choose_remote(
    args: &RemoteArgs,
    project_dir: &Path,
    session: Option<&Session>,
) -> Result<Option<Arc<StoreRemote>>, Failure> {
    let mut choice = RemoteChoice::from_environment(project_dir);
    choice.pipeline = session.and_then(|session| {
        let dir = session
            .pipeline
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        session.pipeline.remote.clone().map(|text| (text, dir))
    });
    choice.flag = args.remote.clone();
    choice.flag_read_only |= args.remote_read_only;
    let Some(spec) = choice.resolve().map_err(remote_failure)? else {
        return Ok(None);
    };
    let settings = choice
        .settings(RemoteSettings::from_environment())
        .map_err(remote_failure)?;
    let remote = StoreRemote::open(&spec, &settings).map_err(remote_failure)?;
    Ok(Some(Arc::new(remote)))
}

fn require_remote(remote: Option<Arc<StoreRemote>>) -> Result<Arc<StoreRemote>, Failure> {
    remote.ok_or_else(|| {
        Failure::usage(
            "no remote is configured (hint: pass `--remote URL`, set TPIPE_REMOTE, write `remote = \"…\"` in tpipe.toml, \
             or `remote:` in the pipeline file)",
        )
    })
}

/// The project folder of the working folder (for config files when no pipeline is given).
fn working_project_dir() -> PathBuf {
    let working = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    project_dir_of(&working.join("tpipe.yaml"))
}

/// A progress bar on a terminal; nothing otherwise.
struct TransferBar {
    terminal: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl TransferBar {
    fn new() -> TransferBar {
        TransferBar {
            terminal: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }
}

impl TransferObserver for TransferBar {
    fn start(&self, label: &str, total: usize) {
        if self.terminal {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            *self.bar.lock().unwrap() = Some(bar);
        }
    }
    fn advance(&self, item: &str) {
        if let Some(bar) = &*self.bar.lock().unwrap() {
            bar.set_message(item.to_string());
            bar.inc(1);
        }
    }
    fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}

/// `tpipe cache push [FILE…]`: the cached nodes of the pipelines, or the whole cache.
pub fn push(
    sessions: &[Session],
    cache_dir: &Path,
    args: &RemoteArgs,
    out: &mut impl Write,
) -> Result<u8, Failure> {
    let project_dir = sessions
        .first()
        .map(|session| session.project_dir.clone())
        .unwrap_or_else(working_project_dir);
    let remote = require_remote(choose_remote(args, &project_dir, sessions.first())?)?;
    let opened;
    let (cache, keys): (&Cache, Vec<_>) = if sessions.is_empty() {
        opened = super::open_cache(cache_dir)?;
        (&opened, opened.record_keys().map_err(Failure::failed)?)
    } else {
        if sessions
            .iter()
            .any(|session| session.cache.root() != sessions[0].cache.root())
        {
            return Err(Failure::usage("the pipelines given to `cache push` use different caches; push them one cache at a time"));
        }
        let mut keys = Vec::new();
        for session in sessions {
            keys.extend(transfer::cached_keys(session).map_err(Failure::usage)?);
        }
        keys.sort();
        keys.dedup();
        (&sessions[0].cache, keys)
    };
    let report =
        transfer::push(&remote, cache, &keys, &TransferBar::new()).map_err(remote_failure)?;
    // One line per reason, however many entries share it.
    for (why, entries) in &report.failures {
        writeln!(
            out,
            "not pushed: {} ({}): {why}",
            count_of(entries.len(), "entry", "entries"),
            listed_briefly(entries)
        )?;
    }
    if let Some(stopped) = &report.stopped {
        writeln!(
            out,
            "{stopped}; {} not pushed",
            count_of(report.not_tried, "entry", "entries")
        )?;
    }
    writeln!(
        out,
        "pushed {} records and {} blobs ({}) to `{}`; {} already there",
        report.records_uploaded,
        report.blobs_uploaded,
        human_bytes(report.bytes_uploaded),
        remote.name(),
        report.already_there
    )?;
    Ok(if report.failed_entries() == 0 {
        exit::SUCCESS
    } else {
        exit::BUILD_FAILED
    })
}

fn count_of(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// The first few of a list, then how many more.
fn listed_briefly(items: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = items[..items.len().min(SHOWN)].join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
}

/// `tpipe cache pull FILE…`: what the pipelines need, level by level.
pub fn pull(sessions: &[Session], args: &RemoteArgs, out: &mut impl Write) -> Result<u8, Failure> {
    let first = sessions.first().expect("clap requires a file");
    let remote = require_remote(choose_remote(args, &first.project_dir, Some(first))?)?;
    let mut failed = 0;
    for session in sessions {
        let report =
            transfer::pull(&remote, session, &TransferBar::new()).map_err(remote_failure)?;
        let mut bytes = 0;
        for (name, status) in &report.nodes {
            match status {
                PullStatus::Cached => {}
                PullStatus::Fetched { bytes: fetched } => {
                    bytes += fetched;
                    writeln!(out, "fetched   {name} ({})", human_bytes(*fetched))?;
                }
                PullStatus::NotOnRemote => writeln!(
                    out,
                    "missing   {name}: not on the remote; `tpipe run` builds it"
                )?,
                PullStatus::AfterMissing { node } => writeln!(
                    out,
                    "unknown   {name}: its key depends on `{node}`, which is not built"
                )?,
                PullStatus::Failed { error } => {
                    failed += 1;
                    writeln!(out, "failed    {name}: {error}")?;
                }
            }
        }
        writeln!(
            out,
            "`{}`: fetched {} nodes ({}) from `{}`; {} already cached; {} not on the remote{}",
            session.pipeline.file.display(),
            report.count(|status| matches!(status, PullStatus::Fetched { .. })),
            human_bytes(bytes),
            remote.name(),
            report.count(|status| *status == PullStatus::Cached),
            report.count(|status| *status == PullStatus::NotOnRemote),
            match report.count(|status| matches!(status, PullStatus::AfterMissing { .. })) {
                0 => String::new(),
                after => format!(" (and {after} after those)"),
            }
        )?;
    }
    Ok(if failed == 0 {
        exit::SUCCESS
    } else {
        exit::BUILD_FAILED
    })
}

/// `tpipe cache verify --remote URL`: the remote's records as a fetch would judge them, and
/// their blobs' presence and sizes.
pub fn verify(remote: &str, out: &mut impl Write) -> Result<u8, Failure> {
    let args = RemoteArgs {
        remote: Some(remote.to_string()),
        remote_read_only: true,
    };
    let remote = require_remote(choose_remote(&args, &working_project_dir(), None)?)?;
    let report = crate::remote::verify::verify_remote(&remote, &TransferBar::new())
        .map_err(remote_failure)?;
    for problem in &report.problems {
        writeln!(out, "{problem}")?;
    }
    let signers: Vec<String> = report
        .trusted_signers
        .iter()
        .map(|(signer, count)| format!("{count} by `{signer}`"))
        .collect();
    let policy = remote.trust_policy();
    let trust = if policy.trusted_keys().is_empty() {
        "no trusted_keys set: signatures are not checked".to_string()
    } else {
        format!(
            "signed by a trusted key: {}; used unsigned: {}",
            if signers.is_empty() {
                "none".to_string()
            } else {
                signers.join(", ")
            },
            report.accepted_unsigned
        )
    };
    writeln!(
        out,
        "checked {} records and {} blobs on `{}` ({trust}): {} problem{}",
        report.records,
        report.blobs,
        remote.name(),
        report.problems.len(),
        if report.problems.len() == 1 { "" } else { "s" }
    )?;
    Ok(if report.problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::BUILD_FAILED
    })
}

/// What `cache gc --remote` was asked to do.
pub struct RemoteGcRequest<'a> {
    pub files: &'a [PathBuf],
    pub remote: &'a str,
    pub dry_run: bool,
    pub confirm: Option<&'a str>,
    pub grace: Duration,
}

/// `tpipe cache gc FILE… --remote R`: `--dry-run` lists and prints a token; `--confirm TOKEN`
/// deletes, only if the list is still the one the token names.
pub fn gc(
    sessions: &[Session],
    request: &RemoteGcRequest,
    out: &mut impl Write,
) -> Result<u8, Failure> {
    if !request.dry_run && request.confirm.is_none() {
        return Err(Failure::usage(format!(
            "`cache gc --remote` deletes from a shared remote: run it with `--dry-run` first, check the list, \
             then rerun with the `--confirm TOKEN` it prints (remote `{}`)",
            request.remote
        )));
    }
    let first = sessions.first().expect("clap requires a file");
    // Only an explicit `--remote` is collected; TPIPE_REMOTE and config files never are.
    let args = RemoteArgs {
        remote: Some(request.remote.to_string()),
        remote_read_only: false,
    };
    let remote = require_remote(choose_remote(&args, &first.project_dir, None)?)?;
    if remote.is_read_only() && !request.dry_run {
        return Err(Failure::failed(RemoteError::ReadOnly {
            remote: remote.name().to_string(),
        }));
    }
    let plan =
        plan_remote_gc(&remote, sessions, request.grace, &TransferBar::new()).map_err(|error| {
            match error {
                RemoteGcError::Remote(error) => remote_failure(error),
                other => Failure::failed(other),
            }
        })?;
    let count = plan.dead_records.len() + plan.dead_blobs.len();
    let kept = format!(
        "kept {} records and {} blobs{}",
        plan.kept_records,
        plan.kept_blobs,
        if plan.too_recent > 0 {
            format!(
                " ({} unreached but newer than the grace period)",
                plan.too_recent
            )
        } else {
            String::new()
        }
    );
    if request.dry_run {
        if count == 0 {
            writeln!(out, "nothing to remove from `{}`; {kept}", remote.name())?;
            return Ok(exit::SUCCESS);
        }
        writeln!(out, "would remove from `{}`:", remote.name())?;
        for object in plan.dead_records.iter().chain(&plan.dead_blobs) {
            writeln!(out, "  {}  ({})", object.path, human_bytes(object.size))?;
        }
        writeln!(
            out,
            "would remove {} records and {} blobs ({}); {kept}",
            plan.dead_records.len(),
            plan.dead_blobs.len(),
            human_bytes(plan.bytes())
        )?;
        let files: Vec<String> = request
            .files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        writeln!(
            out,
            "to delete exactly these, run: tpipe cache gc {} --remote {} --confirm {}",
            files.join(" "),
            request.remote,
            plan.token
        )?;
        return Ok(exit::SUCCESS);
    }
    let confirm = request.confirm.expect("checked above");
    if confirm != plan.token {
        return Err(Failure::failed(format!(
            "not deleting anything from `{}`: what gc would remove has changed since the dry run that printed `{confirm}` \
             (it is now `{}`); run `--dry-run` again and check the list",
            remote.name(),
            plan.token
        )));
    }
    let removed = execute_remote_gc(&remote, &plan, &TransferBar::new()).map_err(remote_failure)?;
    writeln!(
        out,
        "removed {} records and {} blobs ({}) from `{}`; {kept}",
        plan.dead_records.len(),
        removed - plan.dead_records.len(),
        human_bytes(plan.bytes()),
        remote.name()
    )?;
    Ok(exit::SUCCESS)
}
