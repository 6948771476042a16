//! A throwaway project folder with a pipeline, a cache and helpers to run and plan it.

use std::path::{Path, PathBuf};

use tpipe::exec::{NodeStatus, Quiet, RunOptions, RunSummary};
use tpipe::graph::PipelineGraph;
use tpipe::plan::{plan, Plan};
use tpipe::record::Record;
use tpipe::session::Session;

pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(yaml: &str) -> Project {
        let project = Project {
            dir: tempfile::tempdir().expect("temporary folder"),
        };
        std::fs::write(project.dir.path().join("tpipe.toml"), "").unwrap();
        project.set_pipeline(yaml);
        project
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn pipeline_file(&self) -> PathBuf {
        self.path("pipeline.yaml")
    }

    pub fn set_pipeline(&self, yaml: &str) {
        std::fs::write(self.pipeline_file(), yaml).unwrap();
    }

    /// Replaces `from` with `to` in the pipeline file (must occur).
    pub fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.pipeline_file()).unwrap();
        assert!(text.contains(from), "`{from}` not in pipeline:\n{text}");
        self.set_pipeline(&text.replacen(from, to, 1));
    }

    pub fn session(&self) -> Session {
        let registry = tpipe_engine::testing::registry();
        let pipeline = tpipe::spec::load(&self.pipeline_file(), &registry)
            .unwrap_or_else(|error| panic!("{error}"));
        let graph = PipelineGraph::build(&pipeline).unwrap_or_else(|error| panic!("{error}"));
        let cache = tpipe::cache::Cache::open(&self.path("cache")).unwrap();
        Session::new(
            pipeline,
            graph,
            registry,
            cache,
            self.dir.path().to_path_buf(),
        )
    }

    pub fn run_with(&self, options: RunOptions) -> RunSummary {
        tpipe::exec::run(&self.session(), &options, &Quiet).expect("run starts")
    }

    pub fn run(&self) -> RunSummary {
        self.run_with(RunOptions::default())
    }

    pub fn plan(&self) -> Plan {
        let session = self.session();
        let everything = session.selection(&[]).unwrap();
        plan(&session, &everything, &[])
    }

    /// `name: status (reasons)` per node, one per line, for snapshots.
    pub fn plan_text(&self) -> String {
        let mut text = String::new();
        for node in self.plan().nodes {
            let status = serde_json::to_value(&node.status).unwrap();
            let reasons: Vec<String> = node.reasons.iter().map(ToString::to_string).collect();
            text.push_str(&format!("{}: {}", node.name, status.as_str().unwrap()));
            if !reasons.is_empty() {
                text.push_str(&format!(" ({})", reasons.join("; ")));
            }
            if let Some(error) = node.error {
                text.push_str(&format!(" [{error}]"));
            }
            text.push('\n');
        }
        text
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.path("cache")
    }

    /// The cache record of `node` under its current key; panics if it is not cached.
    pub fn record_of(&self, node: &str) -> Record {
        let key = self
            .plan()
            .nodes
            .iter()
            .find(|planned| planned.name == node)
            .unwrap_or_else(|| panic!("no node `{node}`"))
            .key
            .unwrap();
        self.session()
            .cache
            .read_record(&key)
            .unwrap()
            .unwrap_or_else(|| panic!("`{node}` is not cached"))
    }
}

/// The names of the nodes with a given status word (`built`, `cached`, …), in build order.
pub fn named(summary: &RunSummary, word: &str) -> Vec<String> {
    summary
        .nodes
        .iter()
        .filter(|node| node.status.word() == word)
        .map(|node| node.name.clone())
        .collect()
}

pub fn status_of<'a>(summary: &'a RunSummary, name: &str) -> &'a NodeStatus {
    &summary
        .nodes
        .iter()
        .find(|node| node.name == name)
        .unwrap_or_else(|| panic!("no node `{name}`"))
        .status
}

pub fn tpipe_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tpipe"))
}

/// A finished command's stdout and stderr, as text.
pub fn text(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The line of the summary table for `node`.
pub fn summary_line<'a>(stdout: &'a str, node: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(node))
        .unwrap_or_else(|| panic!("no line for `{node}` in:\n{stdout}"))
}

/// Sends signal `name` (`INT`, `TERM`, `HUP`) to a child process.
pub fn send_signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}
