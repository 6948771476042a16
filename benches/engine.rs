//! No-op `tpipe run` and `tpipe plan` on a fully cached 100-node pipeline.
//!
//! Run with `cargo bench --bench engine` (uses the release profile). Prints wall times of the
//! real binary (process start included), median and min of 30 runs, plus the in-process time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;

/// 90 leaf nodes in a matrix, 9 sums over groups of ten, one total: 100 nodes.
fn pipeline() -> String {
    let mut yaml = String::from("nodes:\n  \"n{group}_{i}\":\n    kind: number\n    matrix: { group: 1..=9, i: 0..=9 }\n    value: \"{i}\"\n");
    yaml.push_str("  \"group{g}\":\n    kind: sum\n    matrix: { g: 1..=9 }\n    inputs: { items: \"n{g}_*\" }\n");
    yaml.push_str("  total:\n    kind: sum\n    inputs: { items: \"group*\" }\n");
    yaml
}

fn time_command(binary: &Path, project: &Path, args: &[&str]) -> Vec<Duration> {
    (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            let output = Command::new(binary)
                .args(args)
                .current_dir(project)
                .env("TPIPE_TEST_KINDS", "1")
                .output()
                .expect("tpipe runs");
            let elapsed = started.elapsed();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            elapsed
        })
        .collect()
}

fn describe(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{label:<44} median {:>7.2} ms   min {:>7.2} ms   ({} runs)",
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times.len()
    );
}

fn main() {
    let binary = Path::new(env!("CARGO_BIN_EXE_tpipe"));
    let project = tempfile::tempdir().expect("temporary folder");
    std::fs::write(project.path().join("tpipe.toml"), "").unwrap();
    std::fs::write(project.path().join("pipeline.yaml"), pipeline()).unwrap();
    let first = Command::new(binary)
        .args(["run", "pipeline.yaml"])
        .current_dir(project.path())
        .env("TPIPE_TEST_KINDS", "1")
        .output()
        .unwrap();
    assert!(first.status.success());
    // Leaves with equal values share one key, so fewer than 100 builds happen: content addressing.

    describe(
        "no-op `tpipe run` (100 cached nodes, process)",
        time_command(binary, project.path(), &["run", "pipeline.yaml"]),
    );
    describe(
        "`tpipe plan` (100 cached nodes, process)",
        time_command(binary, project.path(), &["plan", "pipeline.yaml"]),
    );

    let registry = tpipe_engine::testing::registry();
    let in_process: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            let file = project.path().join("pipeline.yaml");
            let pipeline = tpipe::spec::load(&file, &registry).unwrap();
            let graph = tpipe::graph::PipelineGraph::build(&pipeline).unwrap();
            let cache = tpipe::cache::Cache::open(&project.path().join("cache")).unwrap();
            let session = tpipe::session::Session::new(
                pipeline,
                graph,
                registry.clone(),
                cache,
                project.path().to_path_buf(),
            );
            let summary = tpipe::exec::run(
                &session,
                &tpipe::exec::RunOptions::default(),
                &tpipe::exec::Quiet,
            )
            .unwrap();
            assert_eq!(summary.count("cached"), 100);
            started.elapsed()
        })
        .collect();
    describe("no-op run, in process (load + plan + check)", in_process);
}
