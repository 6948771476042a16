//! The command line: parses arguments (clap), turns them into one validated configuration, calls
//! the library, and is the only layer that prints.

mod cache_commands;
mod exec_node;
mod executor;
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
    /// Interrupted with Ctrl-C; what finished is cached.
    pub const INTERRUPTED: u8 = 130;
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build every node that is not cached yet.
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
    /// Rehash every blob and check every record; reports damage, deletes nothing.
    Verify,
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
            let session = open_session(&args.file, cli.cache.as_deref(), registry)?;
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
            let session = open_session(&file, cli.cache.as_deref(), registry)?;
            let selection = session.selection(&targets).map_err(Failure::usage)?;
            let planned = plan(&session, &selection, &[]);
            if json {
                serde_json::to_writer_pretty(&mut stdout, &planned.nodes)
                    .map_err(|error| Failure::failed(error.to_string()))?;
                writeln!(stdout)?;
            } else {
                table::write_plan(&mut stdout, &planned)?;
                executor::write_detached_jobs(&session, &planned, &mut stdout)?;
            }
            Ok(if planned.count(PlanStatus::Error) > 0 {
                exit::BUILD_FAILED
            } else {
                exit::SUCCESS
            })
        }
        Command::Dag { file, format } => {
            let (pipeline, graph) = load_pipeline(&file, &registry)?;
            let text = match format {
                DagFormat::Text => graph.render_text(&pipeline),
                DagFormat::Dot => graph.render_dot(&pipeline),
                DagFormat::Mermaid => graph.render_mermaid(&pipeline),
            };
            stdout.write_all(text.as_bytes())?;
            Ok(exit::SUCCESS)
        }
        Command::Show { file, node, json } => {
            let session = open_session(&file, cli.cache.as_deref(), registry)?;
            cache_commands::show(&session, &node, json, &mut stdout)
        }
        Command::Cache(command) => {
            let cache_dir = cli.cache.clone().unwrap_or_else(|| PathBuf::from("cache"));
            match command {
                CacheCommand::Ls => cache_commands::list(&open_cache(&cache_dir)?, &mut stdout),
                CacheCommand::Verify => {
                    cache_commands::verify(&open_cache(&cache_dir)?, &mut stdout)
                }
                CacheCommand::Gc {
                    files,
                    dry_run,
                    remote,
                    confirm,
                    grace,
                } => {
                    let mut sessions = Vec::new();
                    for file in &files {
                        sessions.push(open_session(file, cli.cache.as_deref(), registry.clone())?);
                    }
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
                    let mut sessions = Vec::new();
                    for file in &files {
                        sessions.push(open_session(file, cli.cache.as_deref(), registry.clone())?);
                    }
                    remote_commands::push(&sessions, &cache_dir, &remote, &mut stdout)
                }
                CacheCommand::Pull { files, remote } => {
                    let mut sessions = Vec::new();
                    for file in &files {
                        sessions.push(open_session(file, cli.cache.as_deref(), registry.clone())?);
                    }
                    remote_commands::pull(&sessions, &remote, &mut stdout)
                }
            }
        }
        Command::ReportRun {
            file,
            trace,
            output,
        } => {
            let session = open_session(&file, cli.cache.as_deref(), registry)?;
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

fn load_pipeline(
    file: &Path,
    registry: &KindRegistry,
) -> Result<(crate::spec::Pipeline, PipelineGraph), Failure> {
    let pipeline = crate::spec::load(file, registry).map_err(Failure::usage)?;
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
    registry: KindRegistry,
) -> Result<Session, Failure> {
    let (pipeline, graph) = load_pipeline(file, &registry)?;
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
    let cancel = Arc::new(AtomicBool::new(false));
    install_interrupt_handler(cancel.clone());
    let backend = args.backend.map(|backend| backend.word().to_string());
    let remote = remote.map(|remote| remote as Arc<dyn crate::remote::Remote>);
    let mut runner = executor::choose(session, args.executor.as_deref(), backend.clone())?;
    let remote_records_only = runner.use_remote_for_artifacts(remote.as_ref())?;
    if args.detach {
        runner.check_detach()?;
    } else {
        runner.attach_detached(session);
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
    let observer = crate::trace::TraceRecorder::new(&terminal);
    let summary = crate::exec::run_with(session, &options, &observer, runner.as_node_runner());
    let cluster_report = runner.finish();
    let trace = summary.as_ref().ok().map(|summary| {
        let context = crate::trace::RunContext {
            executor: runner.name(),
            jobs,
            device_jobs: options.device_jobs,
            detach: args.detach,
        };
        observer.trace(session, summary, &context)
    });
    if let Some(trace) = &trace {
        // A run that cannot leave its trace has still built what it built: say so, go on.
        if let Err(error) = trace.store(session) {
            terminal.warning(&error.to_string());
        }
    }
    if !args.detach && summary.as_ref().is_ok_and(RunSummary::all_succeeded) {
        runner.forget_detached(session);
    }
    let summary: RunSummary = summary.map_err(Failure::usage)?;
    terminal.finish();
    if let Some(report) = cluster_report {
        executor::print_report(&report);
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
        executor::record_detached(session, &runner, &summary, stdout)?;
    }
    if let (Some(path), Some(trace)) = (&args.html, &trace) {
        write_run_page(trace, session, path)?;
    }
    Ok(if summary.cancelled || cancel.load(Ordering::Relaxed) {
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

/// First Ctrl-C: stop starting nodes and let running ones stop at their next check. Second:
/// leave at once (the cache stays consistent either way: records are written last).
fn install_interrupt_handler(cancel: Arc<AtomicBool>) {
    let _ = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            std::process::exit(exit::INTERRUPTED as i32);
        }
        let _ = writeln!(
            std::io::stderr(),
            "\ninterrupted: finishing what is running; press Ctrl-C again to stop at once"
        );
    });
}
