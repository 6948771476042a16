//! The engine at sweep scale (issue 22): `tpipe plan`, a no-op `tpipe run` and `tpipe dag` of
//! generated pipelines of 1k to 1M nodes, each timed with its peak memory, so that how the
//! cost grows with the pipeline shows.
//!
//! ```sh
//! cargo bench --no-default-features --features kinds --bench scale                  # 1k … 1M
//! cargo bench --no-default-features --features kinds --bench scale -- --sizes 1000,10000 --rounds 5
//! cargo bench --no-default-features --features kinds --bench scale -- --large-rounds 1  # one round past 100k
//! cargo bench --no-default-features --features kinds --bench scale -- --families paper --binary OLD/tpipe --out before
//! cargo bench --no-default-features --features kinds --bench scale -- --sizes 100000 --keep  # to profile
//! ```
//!
//! Two families of pipelines:
//! - `test`: a matrix of cheap test nodes (`number`), a `sum` over each ten of them (its
//!   inputs by pattern, `n{g}_*`), and one total over the sums (`group*`). Leaves repeat ten
//!   values, so the cache holds few records; every node still costs its key and a record read.
//! - `paper`: benches/paper-180.yaml (paper.yaml as issue 22 measured it), the real kinds, with
//!   its seed lists widened (122 nodes per seed) on synthetic data. Its no-op run needs every
//!   node in the cache, so the bench writes a record for every key (all naming one small blob;
//!   about 2.2 KB each, so 2.2 GB of disk at a million nodes, written side by side on the
//!   machine's cores).
//!
//! Each command runs `--rounds` times (3 by default) in a process of its own; the bench prints
//! the medians of wall time, CPU time (user + system) and peak RSS, and writes `scale.csv` and
//! the log-log figure of CPU time and peak RSS, `scale.svg` and `scale.png`, to `--out`
//! (default `target/scale-bench`). The figure shows CPU time rather than wall time because
//! CPU time barely moves when other work shares the machine. `--binary` measures another
//! build of tpipe (an older one, to compare; the `test` family needs a test build, which
//! offers the test kinds), `--families` picks the families, and `--keep` leaves each generated
//! project (its pipeline and cache) in place and prints where, to profile a command on it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plotters::prelude::*;
use serde_json::json;
use tpipe::key::outputs_digest;
use tpipe::record::{Metrics, OutputRef, Provenance, Record, RECORD_FORMAT};

/// The largest paper grid whose cache the bench fills for a no-op run (see the module docs).
const MOST_RECORDS_WRITTEN: u64 = 1_100_000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Family {
    Test,
    Paper,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Test => "test",
            Family::Paper => "paper",
        }
    }
}

/// One measured process: wall time, CPU time, peak resident memory.
#[derive(Clone, Copy, Debug)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
}

struct Row {
    family: Family,
    nodes: usize,
    command: &'static str,
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
}

struct Options {
    sizes: Vec<u64>,
    rounds: usize,
    /// Rounds at sizes past 100k nodes, where one round takes long and CPU time varies little.
    large_rounds: usize,
    out: PathBuf,
    families: Vec<Family>,
    /// The tpipe binary to measure.
    binary: PathBuf,
    /// Leave each generated project (pipeline and filled cache) in place, to profile.
    keep: bool,
}

fn options() -> Options {
    let mut options = Options {
        sizes: vec![1_000, 10_000, 100_000, 1_000_000],
        rounds: 3,
        large_rounds: 3,
        out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/scale-bench")),
        families: vec![Family::Test, Family::Paper],
        binary: PathBuf::from(env!("CARGO_BIN_EXE_tpipe")),
        keep: false,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().expect("a value after the flag");
        match argument.as_str() {
            "--sizes" => {
                options.sizes = value()
                    .split(',')
                    .map(|size| size.trim().parse().expect("sizes are numbers"))
                    .collect()
            }
            "--rounds" => options.rounds = value().parse().expect("rounds is a number"),
            "--large-rounds" => options.large_rounds = value().parse().expect("rounds is a number"),
            "--out" => options.out = PathBuf::from(value()),
            "--binary" => options.binary = PathBuf::from(value()),
            "--keep" => options.keep = true,
            "--families" => {
                options.families = value()
                    .split(',')
                    .map(|family| match family.trim() {
                        "test" => Family::Test,
                        "paper" => Family::Paper,
                        other => panic!("no family `{other}` (test, paper)"),
                    })
                    .collect()
            }
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    options
}

/// About `nodes` cheap test nodes: groups of ten leaves, a sum per group, one total.
fn test_pipeline(nodes: u64) -> String {
    let groups = ((nodes.saturating_sub(1)) / 11).max(1);
    format!(
        "nodes:\n  \"n{{group}}_{{i}}\":\n    kind: number\n    matrix: {{ group: 1..={groups}, i: 0..=9 }}\n    value: \"{{i}}\"\n  \"group{{g}}\":\n    kind: sum\n    matrix: {{ g: 1..={groups} }}\n    inputs: {{ items: \"n{{g}}_*\" }}\n  total:\n    kind: sum\n    inputs: {{ items: \"group*\" }}\n"
    )
}

/// benches/paper-180.yaml with its seed lists widened to about `nodes` nodes, on synthetic data.
fn paper_pipeline(nodes: u64) -> String {
    let paper = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/paper-180.yaml"
    ))
    .expect("benches/paper-180.yaml");
    let seeds = ((nodes.saturating_sub(2)) as f64 / 122.0).round().max(1.0) as u64;
    paper
        .replace("seed: [0, 1, 2]", &format!("seed: 0..={}", seeds - 1))
        .replace("source: fashion-mnist", "source: synthetic")
        .lines()
        .filter(|line| !line.trim_start().starts_with("publish:"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Runs `binary ARGS` in `project` and measures it; panics if it fails.
fn measure(binary: &Path, project: &Path, args: &[&str]) -> Sample {
    let stderr_file = project.join("stderr.txt");
    let started = Instant::now();
    // Reaped by `wait4` below, which also gives its resource use; `Child::wait` cannot.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(binary)
        .args(args)
        .current_dir(project)
        .env("TPIPE_TEST_KINDS", "1")
        .env("XDG_RUNTIME_DIR", "/tmp")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("tpipe starts");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // `wait4` gives this one child's resource use (peak RSS, CPU time), which `Child::wait`
    // does not.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, child.id() as libc::pid_t, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "`tpipe {}` failed:\n{}",
        args.join(" "),
        std::fs::read_to_string(&stderr_file).unwrap_or_default()
    );
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec as u64) + Duration::from_micros(value.tv_usec as u64)
    };
    Sample {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss as u64,
    }
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

fn measure_rounds(
    binary: &Path,
    project: &Path,
    args: &[&str],
    rounds: usize,
) -> (Duration, Duration, u64) {
    let samples: Vec<Sample> = (0..rounds)
        .map(|_| measure(binary, project, args))
        .collect();
    (
        median(samples.iter().map(|sample| sample.wall).collect()),
        median(samples.iter().map(|sample| sample.cpu).collect()),
        median(samples.iter().map(|sample| sample.peak_rss_kib).collect()),
    )
}

/// Records written so far, for unique temporary names.
static WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes a record for every node of the pipeline in `project`, each naming one small blob,
/// so that a run finds everything cached (written without fsync: this is a bench's cache).
fn fill_cache(project: &Path) -> usize {
    let registry = tpipe::kinds::builtin_registry();
    let file = project.join("pipeline.yaml");
    let limits = tpipe::spec::Limits {
        max_nodes: u64::MAX,
    };
    let pipeline = tpipe::spec::load_with(&file, &registry, &limits).unwrap();
    let graph = tpipe::graph::PipelineGraph::build(&pipeline).unwrap();
    let cache = tpipe::cache::Cache::open(&project.join("cache")).unwrap();
    let blob = cache.put_blob(b"an output").unwrap();
    let session =
        tpipe::session::Session::new(pipeline, graph, registry, cache, project.to_path_buf());
    let order = session.selection(&[]).unwrap();
    let lookup = |node: &tpipe::spec::NodeSpec, resolved: &tpipe::session::ResolvedKey| {
        let outputs: std::collections::BTreeMap<String, OutputRef> =
            [("out".to_string(), blob.clone())].into();
        let action = &resolved.action;
        let mut all_params = action.params.clone();
        all_params.extend(action.settings.clone());
        let record = Record {
            format: RECORD_FORMAT,
            key: resolved.key,
            node: node.name.clone(),
            kind: action.kind.clone(),
            kind_version: action.kind_version,
            params: action.params.clone(),
            inputs: action.origin.inputs.clone(),
            external: action.external.clone(),
            content: outputs_digest(&outputs),
            outputs,
            metrics: Metrics::from_value(&json!({ "top1": 0.5 })),
            headline: Some("top-1 50.0%".into()),
            signatures: Vec::new(),
            provenance: Provenance {
                tool_version: "bench".into(),
                pipeline: "pipeline.yaml".into(),
                all_params,
                ..Provenance::default()
            },
        };
        let bytes = serde_json::to_vec_pretty(&record).unwrap();
        // Nodes of a wave are filled side by side, and two nodes may share a key: each writes
        // a file of its own and renames it into place (the same bytes, whichever lands last).
        let path = session.cache.record_path(&resolved.key);
        let unique = WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = path.with_extension(format!("{unique}.part"));
        std::fs::write(&temporary, bytes).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
        Ok::<_, std::convert::Infallible>((Some(Arc::new(record.head())), ()))
    };
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    let Ok(walked) = session.walk_keys(&order, &lookup, Some(&pool));
    walked.count()
}

fn project_for(family: Family, nodes: u64) -> (tempfile::TempDir, usize) {
    let project = tempfile::Builder::new()
        .prefix("tpipe-scale-")
        .tempdir()
        .expect("temporary folder");
    // The paper grid of a million nodes is just past the default limit.
    std::fs::write(project.path().join("tpipe.toml"), "max_nodes = 0\n").unwrap();
    let yaml = match family {
        Family::Test => test_pipeline(nodes),
        Family::Paper => paper_pipeline(nodes),
    };
    std::fs::write(project.path().join("pipeline.yaml"), yaml).unwrap();
    let count = in_helper(&["--count-nodes", family.name()], project.path())
        .trim()
        .parse()
        .expect("a count of nodes");
    (project, count)
}

/// The number of nodes of the pipeline in `project`.
fn count_nodes(family: Family, project: &Path) -> usize {
    let registry = match family {
        Family::Test => tpipe_engine::testing::registry(),
        Family::Paper => tpipe::kinds::builtin_registry(),
    };
    let limits = tpipe::spec::Limits {
        max_nodes: u64::MAX,
    };
    tpipe::spec::load_with(&project.join("pipeline.yaml"), &registry, &limits)
        .expect("the generated pipeline is valid")
        .nodes
        .len()
}

/// Runs this bench binary with `arguments` and `project` in a process of its own, and returns
/// what it printed. What loads a large pipeline runs there, not here: a measured command is
/// spawned from this process, and Linux counts the peak RSS of the spawning process in the
/// child's (until it execs), so a bench grown large would show in the small pipelines' figures.
fn in_helper(arguments: &[&str], project: &Path) -> String {
    let output = Command::new(std::env::current_exe().expect("the bench's own path"))
        .args(arguments)
        .arg(project)
        .stderr(Stdio::inherit())
        .output()
        .expect("the bench's helper starts");
    assert!(output.status.success(), "the bench's helper failed");
    String::from_utf8(output.stdout).expect("the helper prints text")
}

/// `--count-nodes FAMILY DIR` and `--fill-cache DIR`: the helper's side of [`in_helper`].
fn run_helper(arguments: &[String]) -> bool {
    match arguments {
        [flag, family, project] if flag == "--count-nodes" => {
            let family = if family == "test" {
                Family::Test
            } else {
                Family::Paper
            };
            println!("{}", count_nodes(family, Path::new(project)));
            true
        }
        [flag, project] if flag == "--fill-cache" => {
            println!("{}", fill_cache(Path::new(project)));
            true
        }
        _ => false,
    }
}

fn bench(options: &Options, family: Family, nodes: u64, rows: &mut Vec<Row>) {
    let binary = options.binary.as_path();
    let rounds = if nodes > 100_000 {
        options.large_rounds
    } else {
        options.rounds
    };
    let (project, count) = project_for(family, nodes);
    let dir = project.path();
    let mut record = |command: &'static str,
                      (wall, cpu, peak_rss_kib): (Duration, Duration, u64)| {
        println!(
            "{:<6} {:>9} nodes  {:<11} wall {:>9.3} s  cpu {:>9.3} s  peak RSS {:>8.1} MB  ({:.2} KB/node)",
            family.name(),
            count,
            command,
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            peak_rss_kib as f64 / 1024.0,
            peak_rss_kib as f64 / count as f64
        );
        rows.push(Row {
            family,
            nodes: count,
            command,
            wall,
            cpu,
            peak_rss_kib,
        });
    };
    record(
        "dag",
        measure_rounds(binary, dir, &["dag", "pipeline.yaml"], rounds),
    );
    let cache_filled = match family {
        // A first run builds the few distinct keys.
        Family::Test => {
            measure(binary, dir, &["run", "pipeline.yaml"]);
            true
        }
        Family::Paper if nodes <= MOST_RECORDS_WRITTEN => {
            in_helper(&["--fill-cache"], dir);
            // Writes the index of last keys and warms the stat cache, as a first run would.
            measure(binary, dir, &["run", "pipeline.yaml"]);
            true
        }
        Family::Paper => false,
    };
    let plan_label = if cache_filled { "plan" } else { "plan, empty" };
    record(
        plan_label,
        measure_rounds(binary, dir, &["plan", "pipeline.yaml"], rounds),
    );
    if cache_filled {
        record(
            "no-op run",
            measure_rounds(binary, dir, &["run", "pipeline.yaml"], rounds),
        );
    }
    if options.keep {
        println!("kept {}", project.keep().display());
    }
}

/// The font the report ships, for the figure's text.
const FONT: &[u8] = include_bytes!("../src/kinds/report/font/DejaVuSans.ttf");

const FIGURE_SIZE: (u32, u32) = (1200, 520);

/// A figure's value with the digits that matter at its size.
fn short_value(value: f64) -> String {
    match value {
        value if value >= 10.0 => format!("{value:.0}"),
        value if value >= 1.0 => format!("{value:.1}"),
        value => format!("{value:.3}"),
    }
}

/// `1000` as `1k`, `1000000` as `1M`.
fn short_count(count: f64) -> String {
    match count {
        count if count >= 1e6 => format!("{}M", count / 1e6),
        count if count >= 1e3 => format!("{}k", count / 1e3),
        count => format!("{count}"),
    }
}

/// Writes the figure as `scale.svg` and `scale.png` into `folder`.
fn write_figure(rows: &[Row], folder: &Path) -> Result<(), Box<dyn std::error::Error>> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| "the shipped font is not a TrueType font")?;
    draw(
        SVGBackend::new(&folder.join("scale.svg"), FIGURE_SIZE).into_drawing_area(),
        rows,
    )?;
    let (width, height) = FIGURE_SIZE;
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut pixels, FIGURE_SIZE).into_drawing_area(),
        rows,
    )?;
    image::save_buffer(
        folder.join("scale.png"),
        &pixels,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    rows: &[Row],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let most_nodes = rows.iter().map(|row| row.nodes).max().unwrap_or(1) as f64 * 1.5;
    let series: Vec<(Family, &str)> = {
        let mut series: Vec<(Family, &str)> = Vec::new();
        for row in rows {
            if !series.contains(&(row.family, row.command)) {
                series.push((row.family, row.command));
            }
        }
        series
    };
    let colour = |index: usize| Palette99::pick(index).to_rgba();
    type Panel<'a, DB> = (
        &'a DrawingArea<DB, plotters::coord::Shift>,
        &'a str,
        &'a str,
        fn(&Row) -> f64,
    );
    let panels: [Panel<DB>; 2] = [
        (&left, "CPU time, user + system (s)", "CPU time", |row| {
            row.cpu.as_secs_f64()
        }),
        (&right, "peak RSS (MB)", "peak memory", |row| {
            row.peak_rss_kib as f64 / 1024.0
        }),
    ];
    for (area, y_label, title, value) in panels {
        let values: Vec<f64> = rows.iter().map(value).collect();
        let low = values.iter().cloned().fold(f64::INFINITY, f64::min) / 3.0;
        let high = values.iter().cloned().fold(0.0, f64::max) * 1.5;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("tpipe {title} by pipeline size (log-log)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((500.0..most_nodes).log_scale(), (low..high).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("nodes")
            .y_desc(y_label)
            .x_labels(5)
            .y_labels(8)
            .x_label_formatter(&|nodes| short_count(*nodes))
            .y_label_formatter(&|value| short_value(*value))
            .light_line_style(WHITE)
            .label_style(("sans-serif", 13))
            .draw()?;
        // What linear growth looks like: a slope of one, through the costliest point.
        let highest = rows
            .iter()
            .max_by(|a, b| value(a).total_cmp(&value(b)))
            .expect("rows to draw");
        let (far_nodes, far_value) = (highest.nodes as f64, value(highest));
        let near_nodes = rows.iter().map(|row| row.nodes).min().unwrap_or(1) as f64;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new(
                [near_nodes, far_nodes].map(|nodes| (nodes, far_value * nodes / far_nodes)),
                grey.stroke_width(1),
            ))?
            .label("∝ nodes (linear)")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], grey.stroke_width(1)));
        for (index, (family, command)) in series.iter().enumerate() {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|row| row.family == *family && row.command == *command)
                .map(|row| (row.nodes as f64, value(row)))
                .collect();
            let style = colour(index);
            chart
                .draw_series(LineSeries::new(points.clone(), style.stroke_width(2)))?
                .label(format!("{} {command}", family.name()))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], style.stroke_width(2))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(|point| Circle::new(*point, 3, style.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .label_font(("sans-serif", 13))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if run_helper(&arguments) {
        return;
    }
    let options = options();
    std::fs::create_dir_all(&options.out).expect("the output folder");
    let mut rows = Vec::new();
    for &family in &options.families {
        for &nodes in &options.sizes {
            bench(&options, family, nodes, &mut rows);
        }
    }
    let mut csv = String::from("family,nodes,command,wall_seconds,cpu_seconds,peak_rss_kib\n");
    for row in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{:.4},{:.4},{}",
            row.family.name(),
            row.nodes,
            row.command,
            row.wall.as_secs_f64(),
            row.cpu.as_secs_f64(),
            row.peak_rss_kib
        );
    }
    std::fs::write(options.out.join("scale.csv"), csv).expect("the CSV");
    match write_figure(&rows, &options.out) {
        Ok(()) => println!(
            "\nwrote scale.csv, scale.svg and scale.png into {}",
            options.out.display()
        ),
        Err(error) => eprintln!("cannot draw the figure: {error}"),
    }
}
