//! The command line: parses arguments (clap), turns them into one validated configuration, calls
//! the library, and is the only layer that prints.

mod cache_commands;
mod exec_node;
mod executor;
mod jobs;
mod key_commands;
mod progress;
mod remote_commands;
mod table;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tpipe_backend::Backend;

use crate::cache::Cache;
use crate::cluster::JobsLeft;
use crate::exec::{Observer, RunOptions, RunSummary};
use crate::graph::PipelineGraph;
use crate::kind::{BuildOptions, KindRegistry};
use crate::plan::{plan, PlanStatus};
use crate::session::{project_dir_of, Session};

/// Exit codes, documented in the README.
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// A node failed to build, or `cache verify` found damage.
    pub const BUILD_FAILED: u8 = 1;
    /// The pipeline file or the command line is invalid.
    pub const USAGE: u8 = 2;
    /// Interrupted with Ctrl-C or SIGTERM; what finished is cached.
    pub const INTERRUPTED: u8 = 130;
    /// The terminal hung up (SIGHUP); a cluster's jobs were left running, recorded.
    pub const HUNG_UP: u8 = 129;
}

#[derive(Parser, Debug)]
#[command(
    name = "tpipe",
    version,
    about = "Transfer-learning experiments as a content-addressed build graph",
    long_about = "tpipe builds the nodes declared in a YAML pipeline (datasets, splits, trainings, \
transfers, evaluations, reports), caches every result by the hash of what it depends on, and \
rebuilds only what an edit invalidates.\n\nStart with `tpipe run pipelines/quick.yaml`, then edit \
a parameter and run `tpipe plan pipelines/quick.yaml` to see what would rerun and why."
)]
pub struct Cli {
    /// Cache directory (default: `cache/` in the pipeline's project folder, or `cache:` in the YAML).
    #[arg(long, global = true, env = "TPIPE_CACHE", value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Refuse a pipeline that would expand to more nodes than this, before making them
    /// (default 1,000,000, or `max_nodes` in tpipe.toml or ~/.config/tpipe/config.toml; 0: no
    /// limit).
    #[arg(long, global = true, env = "TPIPE_MAX_NODES", value_name = "N")]
    max_nodes: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build every node that is not cached yet.
    ///
    /// Signals: Ctrl-C (SIGINT) and SIGTERM stop starting nodes, cancel the run's queued and
    /// running cluster jobs in one call, and exit with 130 (a second one leaves at once). A
    /// hangup (SIGHUP: the terminal or SSH connection closed) stops writing to the terminal and
    /// exits with 129, leaving the cluster jobs queued and running: they are paid for. Every
    /// submitted job is recorded in the cache as soon as the cluster takes it, so after a hangup
    /// or a kill the next `run` follows the live jobs instead of submitting them again, `tpipe
    /// status FILE` lists them and `tpipe cancel FILE` cancels them.
    Run(RunArgs),
    /// Show which nodes would run and why, without running anything.
    Plan {
        file: PathBuf,
        /// Print one JSON object per node (name, kind, key, status, reasons) for scripts.
        #[arg(long)]
        json: bool,
        /// Plan only these nodes and what they need (globs such as `A*B+` allowed).
        #[arg(long = "target", value_name = "NODE")]
        targets: Vec<String>,
    },
    /// Print the pipeline's graph.
    Dag {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = DagFormat::Text)]
        format: DagFormat,
    },
    /// List the pipeline's nodes that are queued or running on a cluster: job ids, states,
    /// reasons and how long they have waited (from the jobs tpipe recorded in the cache, and one
    /// poll of the cluster).
    Status {
        file: PathBuf,
        /// Only these nodes (globs allowed) and what they need.
        #[arg(long = "target", value_name = "NODE")]
        targets: Vec<String>,
        /// Print one JSON object per job, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Cancel the pipeline's queued and running cluster jobs (one call to the cluster); the next
    /// run submits their nodes again.
    Cancel {
        file: PathBuf,
        /// Only the jobs of these nodes (globs allowed) and of what they need.
        #[arg(long = "target", value_name = "NODE")]
        targets: Vec<String>,
    },
    /// Show the cache record of a node: outputs, metrics and provenance, then, for a trained
    /// net, the last epochs of its training curve.
    Show {
        file: PathBuf,
        node: String,
        /// Print the record alone, as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and maintain the cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// List the node kinds and their parameters.
    Kinds,
    /// The ed25519 keys that sign what `push` uploads.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Write a self-contained HTML page about the last run of a pipeline (or a given trace):
    /// a timeline of the builds, a sortable table of the nodes, cache and remote hits, every
    /// net's training curves and the report's figure and findings.
    ReportRun {
        file: PathBuf,
        /// Read this trace instead of the pipeline's newest (`index/<id>.runs/*.jsonl` in the
        /// cache).
        #[arg(long, value_name = "TRACE")]
        trace: Option<PathBuf>,
        /// Where to write the page (default: `<pipeline>-run.html` in the current folder).
        #[arg(long, short = 'o', value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Build one node from the action stored in the cache under KEY, with no pipeline file:
    /// what a cluster job runs. `tpipe run` stores the action of every node it builds.
    ExecNode {
        /// The node key (64 hex digits, as `tpipe plan --json` shows).
        key: String,
        /// Compute backend for a training node, overriding the action's setting.
        #[arg(long, value_enum)]
        backend: Option<Backend>,
        #[command(flatten)]
        remote: remote_commands::RemoteArgs,
        /// Upload the built node to the remote.
        #[arg(long)]
        push: bool,
        /// Read the action from this JSON file (`-`: stdin) instead of the cache.
        #[arg(long, value_name = "FILE")]
        action: Option<PathBuf>,
    },
    /// Build node NODE of a pipeline text stored in the cache (`--snapshot`), read as if it
    /// were FILE: what a job of `run --detach` runs for a node whose key is known only once
    /// its inputs are built.
    #[command(hide = true)]
    ExecPipelineNode {
        file: PathBuf,
        /// The stored pipeline text's content hash.
        #[arg(long)]
        snapshot: String,
        #[arg(long)]
        node: String,
        #[arg(long, value_enum)]
        backend: Option<Backend>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    file: PathBuf,
    /// Nodes built at the same time (default: number of CPUs).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Training nodes that may run at once (default: as many as `--jobs`; on one GPU, 1 or 2).
    #[arg(long)]
    device_jobs: Option<usize>,
    /// Build only these nodes and what they need (repeatable; globs allowed).
    #[arg(long = "target", value_name = "NODE")]
    targets: Vec<String>,
    /// Rebuild these nodes even if cached (repeatable; globs allowed).
    #[arg(long = "force", value_name = "NODE")]
    force: Vec<String>,
    /// Compute backend for training nodes, overriding the YAML.
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: remote_commands::RemoteArgs,
    /// Use no remote in this run, whatever the configuration says.
    #[arg(long, conflicts_with_all = ["remote", "push"])]
    no_remote: bool,
    /// Upload each node to the remote as it finishes.
    #[arg(long)]
    push: bool,
    /// Where nodes are built: here, or one cluster job per node over the shared cache
    /// (default: `executor.default` in tpipe.toml or ~/.config/tpipe/config.toml, else local).
    #[arg(long, value_parser = executor::executor_words())]
    executor: Option<String>,
    /// With a cluster executor: submit every node that does not build here, each after the
    /// jobs of its inputs, build here what builds here as far as its inputs are built, and
    /// return. A later `run` waits for those jobs and builds the rest.
    #[arg(long)]
    detach: bool,
    /// At the end, write the run's page (as `tpipe report-run` does) to PATH.
    #[arg(long, value_name = "PATH")]
    html: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Make a key pair: the secret key goes into a file only you can read, and the public key
    /// is printed, for the `trusted_keys` of whoever uses what you push.
    Generate {
        /// The key's name, which its signatures carry (`alice-laptop-1`, `lab-ci-1`).
        name: String,
        /// Where to write the secret key (default: NAME.key beside ~/.config/tpipe/config.toml).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the public key of a secret key file.
    Public { file: PathBuf },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// List the records in the cache.
    Ls,
    /// Rehash every blob and check every record and action; reports damage, deletes nothing.
    /// With `--remote`: check the remote's records (format, digest, signatures against
    /// `trusted_keys`) and that their blobs are there with the right sizes.
    Verify {
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
    },
    /// Remove records and blobs that none of the given pipelines reaches.
    Gc {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Collect this remote instead of the local cache. Only this flag names it: gc never
        /// takes a remote from TPIPE_REMOTE or a config file.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// With `--remote`: delete what the dry run listed; `--dry-run` prints the token.
        #[arg(long, value_name = "TOKEN", requires = "remote")]
        confirm: Option<String>,
        /// With `--remote`: keep unreached objects written less than this long ago (a push may
        /// be under way).
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration, requires = "remote")]
        grace: std::time::Duration,
    },
    /// Upload the cached nodes of the given pipelines (or, with no file, the whole cache) to the
    /// remote, skipping what it already has.
    Push {
        files: Vec<PathBuf>,
        #[command(flatten)]
        remote: remote_commands::RemoteArgs,
    },
    /// Download from the remote what the given pipelines need, verifying every blob.
    Pull {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        remote: remote_commands::RemoteArgs,
    },
}

/// Something went wrong that is the user's to fix; carries the exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    fn usage(message: impl std::fmt::Display) -> Failure {
        Failure {
            message: message.to_string(),
            code: exit::USAGE,
        }
    }
    fn failed(message: impl std::fmt::Display) -> Failure {
        Failure {
            message: message.to_string(),
            code: exit::BUILD_FAILED,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::failed(format!("cannot write output: {error}"))
    }
}

/// Entry point for `main`: runs the command and maps the result to an exit code.
pub fn main(registry: KindRegistry) -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli, registry) {
        Ok(code) => ExitCode::from(code),
        Err(failure) if failure.message.contains("Broken pipe") => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "{}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn dispatch(cli: Cli, registry: KindRegistry) -> Result<u8, Failure> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Run(args) => {
            let session = open_session(&args.file, cli.cache.as_deref(), cli.max_nodes, registry)?;
            let code = run_command(&session, args, &mut stdout);
            // The process ends next: freeing the pipeline's nodes one by one would only add to
            // the time of a no-op run.
            std::mem::forget(session);
            code
        }
        Command::Plan {
            file,
            json,
            targets,
        } => {
            let session = open_session(&file, cli.cache.as_deref(), cli.max_nodes, registry)?;
            let selection = session.selection(&targets).map_err(Failure::usage)?;
            let planned = plan(&session, &selection, &[]);
            // One write per buffer, not per line: a plan of a million nodes is a million lines.
            let mut out = std::io::BufWriter::new(&mut stdout);
            if json {
                serde_json::to_writer_pretty(&mut out, &planned.nodes)
                    .map_err(|error| Failure::failed(error.to_string()))?;
                writeln!(out)?;
            } else {
                table::write_plan(&mut out, &planned)?;
                jobs::write_queued_jobs(&session, &planned, &mut out)?;
            }
            out.flush()?;
            let code = if planned.count(PlanStatus::Error) > 0 {
                exit::BUILD_FAILED
            } else {
                exit::SUCCESS
            };
            // The process ends next: freeing every node one by one would only add to its time.
            std::mem::forget(planned);
            std::mem::forget(session);
            Ok(code)
        }
        Command::Dag { file, format } => {
            let (pipeline, graph) = load_pipeline(&file, cli.max_nodes, &registry)?;
            let text = match format {
                DagFormat::Text => graph.render_text(&pipeline),
                DagFormat::Dot => graph.render_dot(&pipeline),
                DagFormat::Mermaid => graph.render_mermaid(&pipeline),
            };
            stdout.write_all(text.as_bytes())?;
            std::mem::forget((pipeline, graph, text));
            Ok(exit::SUCCESS)
        }
        Command::Status {
            file,
            targets,
            json,
        } => {
            let session = open_session(&file, cli.cache.as_deref(), cli.max_nodes, registry)?;
            jobs::status(&session, &targets, json, &mut stdout)
        }
        Command::Cancel { file, targets } => {
            let session = open_session(&file, cli.cache.as_deref(), cli.max_nodes, registry)?;
            jobs::cancel(&session, &targets, &mut stdout)
        }
        Command::Show { file, node, json } => {
            let session = open_session(&file, cli.cache.as_deref(), cli.max_nodes, registry)?;
            cache_commands::show(&session, &node, json, &mut stdout)
        }
        Command::Cache(command) => {
            let cache_dir = cli.cache.clone().unwrap_or_else(|| PathBuf::from("cache"));
            let open_sessions = |files: &[PathBuf]| -> Result<Vec<Session>, Failure> {
                files
                    .iter()
                    .map(|file| {
                        open_session(file, cli.cache.as_deref(), cli.max_nodes, registry.clone())
                    })
                    .collect()
            };
            match command {
                CacheCommand::Ls => cache_commands::list(&open_cache(&cache_dir)?, &mut stdout),
                CacheCommand::Verify { remote: None } => {
                    cache_commands::verify(&open_cache(&cache_dir)?, &mut stdout)
                }
                CacheCommand::Verify {
                    remote: Some(remote),
                } => remote_commands::verify(&remote, &mut stdout),
                CacheCommand::Gc {
                    files,
                    dry_run,
                    remote,
                    confirm,
                    grace,
                } => {
                    let sessions = open_sessions(&files)?;
                    match remote {
                        Some(remote) => {
                            let request = remote_commands::RemoteGcRequest {
                                files: &files,
                                remote: &remote,
                                dry_run,
                                confirm: confirm.as_deref(),
                                grace,
                            };
                            remote_commands::gc(&sessions, &request, &mut stdout)
                        }
                        None => cache_commands::gc(&sessions, dry_run, &mut stdout),
                    }
                }
                CacheCommand::Push { files, remote } => {
                    let sessions = open_sessions(&files)?;
                    remote_commands::push(&sessions, &cache_dir, &remote, &mut stdout)
                }
                CacheCommand::Pull { files, remote } => {
                    let sessions = open_sessions(&files)?;
                    remote_commands::pull(&sessions, &remote, &mut stdout)
                }
            }
        }
        Command::ReportRun {
            file,
            trace,
            output,
        } => {
            let session = open_session(&file, cli.cache.as_deref(), cli.max_nodes, registry)?;
            let trace_path = match trace {
                Some(path) => path,
                None => crate::trace::Trace::latest_path(&session).map_err(Failure::failed)?,
            };
            let trace = crate::trace::Trace::read(&trace_path).map_err(Failure::failed)?;
            let output = output.unwrap_or_else(|| {
                let stem = file.file_stem().unwrap_or_default().to_string_lossy();
                PathBuf::from(format!("{stem}-run.html"))
            });
            write_run_page(&trace, &session, &output)?;
            writeln!(stdout, "{}", output.display())?;
            Ok(exit::SUCCESS)
        }
        Command::Kinds => {
            table::write_kinds(&mut stdout, &registry)?;
            Ok(exit::SUCCESS)
        }
        Command::Key(KeyCommand::Generate { name, output }) => {
            key_commands::generate(&name, output.as_deref(), &mut stdout)
        }
        Command::Key(KeyCommand::Public { file }) => key_commands::public(&file, &mut stdout),
        Command::ExecNode {
            key,
            backend,
            remote,
            push,
            action,
        } => {
            let cache_dir = cli.cache.clone().unwrap_or_else(|| PathBuf::from("cache"));
            let request = exec_node::ExecNodeRequest {
                key: &key,
                cache_dir: &cache_dir,
                backend: backend.map(|backend| backend.word().to_string()),
                remote: &remote,
                push,
                action_file: action.as_deref(),
            };
            exec_node::exec_node(&request, &registry, &mut stdout)
        }
        Command::ExecPipelineNode {
            file,
            snapshot,
            node,
            backend,
        } => {
            let cache_dir = cli.cache.clone().unwrap_or_else(|| PathBuf::from("cache"));
            let backend = backend.map(|backend| backend.word().to_string());
            exec_node::exec_pipeline_node(
                &file,
                &snapshot,
                &node,
                &cache_dir,
                backend,
                registry,
                &mut stdout,
            )
        }
    }
}

/// Reads a pipeline file under the node limit of its project (`max_nodes` in the config files,
/// `--max-nodes`), and builds its graph.
fn load_pipeline(
    file: &Path,
    max_nodes: Option<u64>,
    registry: &KindRegistry,
) -> Result<(crate::spec::Pipeline, PipelineGraph), Failure> {
    let config_files: Vec<PathBuf> = crate::remote::config::user_config_path()
        .into_iter()
        .chain([project_dir_of(file).join("tpipe.toml")])
        .collect();
    let limits =
        crate::limits::configured_limits(&config_files, max_nodes).map_err(Failure::usage)?;
    let pipeline = crate::spec::load_with(file, registry, &limits).map_err(Failure::usage)?;
    let graph = PipelineGraph::build(&pipeline).map_err(Failure::usage)?;
    Ok((pipeline, graph))
}

pub(crate) fn open_cache(dir: &Path) -> Result<Cache, Failure> {
    Cache::open(dir).map_err(|error| Failure::failed(format!("cannot open cache: {error}")))
}

/// Loads a pipeline and opens its cache: `--cache`/`TPIPE_CACHE`, else the YAML's `cache:`,
/// else `cache/` in the project folder.
pub fn open_session(
    file: &Path,
    cache_override: Option<&Path>,
    max_nodes: Option<u64>,
    registry: KindRegistry,
) -> Result<Session, Failure> {
    let (pipeline, graph) = load_pipeline(file, max_nodes, &registry)?;
    let project_dir = project_dir_of(file);
    let cache_dir = cache_override
        .map(Path::to_path_buf)
        .or_else(|| pipeline.cache.clone())
        .unwrap_or_else(|| project_dir.join("cache"));
    let cache = open_cache(&cache_dir)?;
    Ok(Session::new(pipeline, graph, registry, cache, project_dir))
}

fn run_command(session: &Session, args: RunArgs, stdout: &mut impl Write) -> Result<u8, Failure> {
    let remote = if args.no_remote {
        None
    } else {
        remote_commands::choose_remote(&args.remote, &session.project_dir, Some(session))?
    };
    if args.push {
        match &remote {
            None => return Err(Failure::usage("`--push` needs a remote (hint: pass `--remote URL`, set TPIPE_REMOTE, or write `remote:` in the pipeline file)")),
            Some(remote) if remote.is_read_only() => {
                return Err(Failure::usage(format!("cannot `--push`: {}", crate::remote::RemoteError::ReadOnly { remote: remote.name().to_string() })));
            }
            Some(_) => {}
        }
    }
    let interruption = Interruption::default();
    install_signal_handlers(&interruption);
    let cancel = interruption.cancel.clone();
    let backend = args.backend.map(|backend| backend.word().to_string());
    let remote = remote.map(|remote| remote as Arc<dyn crate::remote::Remote>);
    let mut runner = executor::choose(session, args.executor.as_deref(), backend.clone())?;
    let remote_records_only = runner.use_remote_for_artifacts(remote.as_ref())?;
    if args.detach {
        runner.check_detach()?;
    }
    let jobs = args.jobs.unwrap_or_else(|| runner.default_jobs());
    let options = RunOptions {
        jobs,
        // On a CPU, a training uses about one core: run as many as there are jobs. On a
        // cluster, Slurm decides what runs at once.
        device_jobs: args.device_jobs.unwrap_or(jobs),
        targets: args.targets,
        force: args.force,
        build: BuildOptions { backend },
        cancel: cancel.clone(),
        remote,
        push: args.push,
        remote_records_only,
        detach: args.detach,
    };
    let terminal = progress::TerminalObserver::new(session, &options);
    let observer = crate::trace::TraceRecorder::new(&terminal, session);
    let summary = crate::exec::run_with(session, &options, &observer, runner.as_node_runner());
    let hung_up = interruption.hung_up.load(Ordering::SeqCst);
    let cluster_report = runner.finish(if hung_up {
        JobsLeft::Keep
    } else {
        JobsLeft::Cancel
    });
    let context = crate::trace::RunContext {
        executor: runner.name(),
        jobs,
        device_jobs: options.device_jobs,
        detach: args.detach,
    };
    // The trace is held whole only for the run's page; otherwise it goes to the cache a line
    // at a time.
    let mut trace = None;
    if let Ok(summary) = &summary {
        let stored = if args.html.is_some() {
            let whole = observer.trace(summary, &context);
            let stored = whole.store(session);
            trace = Some(whole);
            stored
        } else {
            observer.store(summary, &context)
        };
        // A run that cannot leave its trace has still built what it built: say so, go on.
        if let Err(error) = stored {
            terminal.warning(&error.to_string());
        }
    }
    let summary: RunSummary = summary.map_err(Failure::usage)?;
    terminal.finish();
    if let Some(report) = cluster_report {
        executor::print_report(&report, &session.pipeline.file);
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *stdout, &summary)
            .map_err(|error| Failure::failed(error.to_string()))?;
        writeln!(stdout)?;
    } else {
        // One write for the whole table, not one per node.
        let mut buffered = std::io::BufWriter::new(&mut *stdout);
        table::write_summary(&mut buffered, &summary)?;
        buffered.flush()?;
    }
    if args.detach {
        executor::report_detached(session, &runner, &summary, stdout)?;
    }
    if let (Some(path), Some(trace)) = (&args.html, &trace) {
        write_run_page(trace, session, path)?;
    }
    Ok(if hung_up {
        exit::HUNG_UP
    } else if summary.cancelled || cancel.load(Ordering::Relaxed) {
        exit::INTERRUPTED
    } else if summary.all_succeeded() {
        exit::SUCCESS
    } else {
        exit::BUILD_FAILED
    })
}

/// Writes the page of a run (`report-run`, `run --html`).
fn write_run_page(
    trace: &crate::trace::Trace,
    session: &Session,
    path: &Path,
) -> Result<(), Failure> {
    crate::run_page::write_page(trace, &session.cache, path).map_err(|error| {
        Failure::failed(format!(
            "cannot write the run's page `{}`: {error}",
            path.display()
        ))
    })
}

/// What the signals of the run asked for: set from the signal thread, read at the run's end.
#[derive(Clone, Default)]
struct Interruption {
    /// Stop starting nodes; what runs stops at its next check (every signal sets it).
    cancel: Arc<AtomicBool>,
    /// The first signal was a hangup: leave the cluster's jobs running instead of cancelling.
    hung_up: Arc<AtomicBool>,
}

/// SIGINT (Ctrl-C) and SIGTERM (`timeout`, systemd, `kill`): stop starting nodes, let running
/// ones stop at their next check, and cancel the cluster jobs this run follows; a second one
/// leaves at once (the cache stays consistent either way: records are written last). SIGHUP
/// (the terminal is gone): stop writing to it and stop the same way, but leave the cluster jobs
/// queued and running: they are paid for, recorded in the cache, and the next run follows them.
fn install_signal_handlers(interruption: &Interruption) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    listen(&[SIGINT, SIGTERM, SIGHUP], interruption);
}

/// `exec-node` (what a cluster job runs): Ctrl-C only, as the first of the signals above;
/// the scheduler's SIGTERM ends the job at once, as it always did.
fn install_interrupt_handler(cancel: Arc<AtomicBool>) {
    let interruption = Interruption {
        cancel,
        hung_up: Arc::default(),
    };
    listen(&[signal_hook::consts::SIGINT], &interruption);
}

/// Handles `wanted` on a thread of its own, as [`install_signal_handlers`] says.
fn listen(wanted: &[std::ffi::c_int], interruption: &Interruption) {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new(wanted) else {
        return;
    };
    let Interruption { cancel, hung_up } = interruption.clone();
    let _ = std::thread::Builder::new()
        .name("tpipe-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    silence_terminal();
                    // Only when nothing asked to cancel first: a Ctrl-C still cancels.
                    if !cancel.load(Ordering::SeqCst) {
                        hung_up.store(true, Ordering::SeqCst);
                        cancel.store(true, Ordering::SeqCst);
                    }
                    continue;
                }
                if cancel.swap(true, Ordering::SeqCst) {
                    let code = if hung_up.load(Ordering::SeqCst) {
                        exit::HUNG_UP
                    } else {
                        exit::INTERRUPTED
                    };
                    std::process::exit(code as i32);
                }
                let name = if signal == SIGTERM { "SIGTERM" } else { "Ctrl-C" };
                let _ = writeln!(
                    std::io::stderr(),
                    "\ninterrupted ({name}): finishing what is running and cancelling this run's cluster jobs; press Ctrl-C again to stop at once"
                );
            }
        });
}

/// Points standard output and error, where they are the terminal that hung up, at /dev/null:
/// writing to a lost terminal fails (and `eprintln!` panics on that), while the run still has
/// to finish its bookkeeping. A redirection to a file keeps receiving the output.
fn silence_terminal() {
    use std::io::IsTerminal;
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    // dup2 replaces the descriptor at once: no other thread ever sees it closed.
    if std::io::stdout().is_terminal() {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if std::io::stderr().is_terminal() {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}
