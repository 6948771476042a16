//! Issue 23: the trace every `tpipe run` leaves in the cache, and the run's page
//! (`tpipe report-run`, `tpipe run --html`) opened in a real browser: Debian's `chromium`,
//! headless, from a `file://` URL with the network disabled (scripts/test installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::tpipe;
use crate::support::{text, Project};

/// Runs `args` (the test kinds offered); returns the exit status's success, stdout and stderr.
fn run(project: &Project, args: &[&str]) -> (bool, String, String) {
    let output = tpipe(project, args).output().unwrap();
    let (stdout, stderr) = text(&output);
    (output.status.success(), stdout, stderr)
}

/// The traces of the project's pipeline in its cache, oldest first, as JSON lines.
pub fn traces(cache: &Path) -> Vec<(serde_json::Value, Vec<serde_json::Value>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cache.join("index"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .flat_map(|folder| std::fs::read_dir(folder.path()).unwrap().flatten())
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "jsonl")
        })
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            let mut lines = text
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap());
            let run = lines.next().expect("a run line");
            (run, lines.collect())
        })
        .collect()
}

fn node<'a>(nodes: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    nodes
        .iter()
        .find(|node| node["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in the trace"))
}

/// Every node's times are in order; a node not built in the run has no build figures.
pub fn assert_consistent(nodes: &[serde_json::Value]) {
    for node in nodes {
        let queued = node["queued"].as_f64().unwrap();
        let ended = node["ended"].as_f64().unwrap();
        assert!(queued >= 0.0 && ended >= queued, "{node}");
        match node["status"].as_str().unwrap() {
            "built" => {
                let started = node["started"].as_f64().expect("a built node started");
                assert!(started >= queued && ended >= started, "{node}");
                assert!(node["cpu_seconds"].as_f64().unwrap() >= 0.0, "{node}");
                assert!(node["bytes_written"].as_u64().unwrap() > 0, "{node}");
                assert!(node["build_seconds"].as_f64().unwrap() >= 0.0, "{node}");
                assert!(node["host"].is_string(), "{node}");
            }
            "cached" | "fetched" | "skipped" => {
                for field in ["started", "build_seconds", "cpu_seconds", "peak_rss_bytes"] {
                    assert!(node[field].is_null(), "{field} of {node}");
                }
            }
            _ => {}
        }
    }
}

const GRID: &str = "nodes:
  one: { kind: number, value: 41 }
  two: { kind: number, value: 1 }
  both: { kind: sum, inputs: { items: [one, two] }, offset: 1 }
  last: { kind: sum, inputs: { items: both } }
  broken: { kind: number, value: 3, fail: true }
  after_broken: { kind: sum, inputs: { items: broken } }
";

#[test]
fn a_run_leaves_a_trace_of_every_node_with_consistent_times_and_a_rerun_traces_everything_cached() {
    let project = Project::new(GRID);
    let (succeeded, stdout, stderr) = run(&project, &["run", "pipeline.yaml", "--json"]);
    assert!(!succeeded, "`broken` fails the run:\n{stderr}");
    // `--json` keeps working beside the trace.
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 6);

    let traces = traces(&project.path("cache"));
    assert_eq!(traces.len(), 1);
    let (run_line, nodes) = &traces[0];
    assert_eq!(run_line["format"], 1);
    assert_eq!(run_line["executor"], "local");
    assert_eq!(nodes.len(), 6, "one line per node");
    assert_consistent(nodes);
    for name in ["one", "two", "both", "last"] {
        assert_eq!(node(nodes, name)["status"], "built", "{name}");
    }
    assert_eq!(node(nodes, "broken")["status"], "failed");
    assert!(node(nodes, "broken")["error"].is_string());
    assert_eq!(node(nodes, "after_broken")["status"], "skipped");
    assert_eq!(node(nodes, "after_broken")["after"], "broken");
    assert_eq!(
        node(nodes, "both")["inputs"],
        serde_json::json!(["one", "two"])
    );
    // A sum waits for its inputs.
    let both = node(nodes, "both");
    for input in ["one", "two"] {
        assert!(both["queued"].as_f64() >= node(nodes, input)["ended"].as_f64());
    }

    project.edit("  broken: { kind: number, value: 3, fail: true }\n", "");
    project.edit(
        "  after_broken: { kind: sum, inputs: { items: broken } }\n",
        "",
    );
    let (succeeded, _, stderr) = run(&project, &["run", "pipeline.yaml"]);
    assert!(succeeded, "{stderr}");
    let traces = self::traces(&project.path("cache"));
    let (_, rerun) = traces.last().unwrap();
    assert_eq!(rerun.len(), 4);
    assert!(
        rerun.iter().all(|node| node["status"] == "cached"),
        "{rerun:?}"
    );
    assert_consistent(rerun);
}

#[test]
fn a_cluster_run_traces_the_job_and_host_that_built_each_node() {
    let project = Project::new(
        "nodes:
  one: { kind: number, value: 41, resources: { local: false } }
  both: { kind: sum, inputs: { items: [one] }, resources: { local: false } }
",
    );
    let (succeeded, _, stderr) = run(
        &project,
        &["run", "pipeline.yaml", "--executor", "processes"],
    );
    assert!(succeeded, "{stderr}");
    let (run_line, nodes) = traces(&project.path("cache")).pop().unwrap();
    assert_eq!(run_line["executor"], "processes");
    assert_consistent(&nodes);
    for node in &nodes {
        assert!(node["job"].is_string(), "{node}");
        assert!(node["host"].is_string(), "{node}");
        // The job measured its own build.
        assert_eq!(node["usage_shared"], false, "{node}");
        assert!(node["peak_rss_bytes"].as_u64().unwrap() > 0, "{node}");
    }
}

/// What headless Chromium made of a page: its DOM after scripts ran, and what it logged.
pub struct Rendered {
    pub dom: String,
    pub log: String,
}

/// Opens `page` in headless Chromium with the network disabled (every host name resolves to
/// nothing, and any proxy is a closed port), dumps the DOM, and saves a screenshot.
pub fn open_in_chromium(page: &Path, screenshot: &Path) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let chromium = |extra: &[String]| {
        let output = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect(
                "chromium runs (Debian's `chromium` package; scripts/test installs it: \
                 apt-get install chromium)",
            );
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    let dumped = chromium(&["--dump-dom".to_string()]);
    std::fs::create_dir_all(screenshot.parent().unwrap()).unwrap();
    chromium(&[
        "--window-size=1400,1600".to_string(),
        format!("--screenshot={}", screenshot.display()),
    ]);
    let png = std::fs::read(screenshot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    Rendered {
        dom: String::from_utf8(dumped.stdout).unwrap(),
        log: String::from_utf8_lossy(&dumped.stderr).into_owned(),
    }
}

/// The page ran its scripts to the end and nothing went wrong: no console message at all
/// (the page logs none of its own), an empty error box.
pub fn assert_rendered_cleanly(rendered: &Rendered) {
    let console: Vec<&str> = rendered
        .log
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .collect();
    assert!(console.is_empty(), "the page logged: {console:#?}");
    assert!(
        rendered.dom.contains("data-ready=\"yes\""),
        "the page's script did not finish"
    );
    assert!(
        rendered.dom.contains("<div id=\"page-errors\"></div>"),
        "the page reported errors"
    );
}

/// How many times `needle` occurs in `haystack`.
pub fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// Where the browser tests keep their screenshots (`target/tmp/run-page/`).
pub fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("run-page")
        .join(name)
}

#[test]
fn the_run_page_opens_in_chromium_with_a_bar_per_built_node_and_no_error() {
    let project = Project::new(GRID);
    let page = project.path("run.html");
    let page_arg = page.display().to_string();
    let (succeeded, _, _) = run(&project, &["run", "pipeline.yaml", "--html", &page_arg]);
    assert!(!succeeded, "`broken` fails");
    let screenshot = screenshot_path("test-kinds.png");
    let rendered = open_in_chromium(&page, &screenshot);
    assert_rendered_cleanly(&rendered);
    let dom = &rendered.dom;
    assert_eq!(
        count(dom, "data-status=\"built\""),
        4,
        "a bar per built node"
    );
    assert_eq!(
        count(dom, "class=\"bar failed"),
        1,
        "the failed build's bar"
    );
    assert!(dom.contains("<b>4</b> built"));
    assert!(dom.contains("Failures"));
    assert!(dom.contains("No trained net in this run."));
    assert_eq!(count(dom, "<tr class="), 6, "a table row per node");

    // `report-run` writes the same page from the trace in the cache.
    project.edit("  broken: { kind: number, value: 3, fail: true }\n", "");
    project.edit(
        "  after_broken: { kind: sum, inputs: { items: broken } }\n",
        "",
    );
    assert!(run(&project, &["run", "pipeline.yaml"]).0);
    let (succeeded, stdout, stderr) = run(
        &project,
        &["report-run", "pipeline.yaml", "--output", "again.html"],
    );
    assert!(succeeded, "{stderr}");
    assert_eq!(stdout.trim(), "again.html");
    let again = std::fs::read_to_string(project.path("again.html")).unwrap();
    assert!(again.contains("<b>4</b> cached"));
    assert!(again.contains("Nothing was built in this run"));
}

#[test]
fn report_run_before_any_run_says_how_to_get_a_trace() {
    let project = Project::new(GRID);
    let (succeeded, _, stderr) = run(&project, &["report-run", "pipeline.yaml"]);
    assert!(!succeeded);
    assert!(
        stderr.contains("no run of") && stderr.contains("hint: `tpipe run"),
        "{stderr}"
    );
}

/// pipelines/quick.yaml, trained for real: its trace, its rerun's trace, and its page in the
/// browser with a curve panel per trained net. The screenshot stays in `target/tmp/run-page/`.
#[cfg(feature = "ml")]
#[test]
fn the_quick_pipeline_page_shows_a_bar_per_built_node_and_a_curve_panel_per_trained_net() {
    let quick =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/quick.yaml"))
            .unwrap();
    let project = Project::new(&quick);
    let quick_run = |extra: &[&str]| {
        let output = Command::new(crate::support::tpipe_binary())
            .current_dir(project.dir.path())
            .args(["run", "pipeline.yaml"])
            .args(extra)
            .output()
            .unwrap();
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
    };
    quick_run(&["--html", "quick-run.html"]);
    let (_, nodes) = traces(&project.path("cache")).pop().unwrap();
    assert_consistent(&nodes);
    let built = nodes
        .iter()
        .filter(|node| node["status"] == "built")
        .count();
    assert_eq!(built, nodes.len(), "a first run builds everything");
    let trained: Vec<&str> = nodes
        .iter()
        .filter(|node| node["kind"] == "train" || node["kind"] == "transfer")
        .map(|node| node["name"].as_str().unwrap())
        .collect();
    assert_eq!(trained.len(), 2 + 28 + 7 + 2 + 7);
    for name in &trained {
        let speed = node(&nodes, name)["images_per_second"].as_f64();
        assert!(speed.is_some_and(|speed| speed > 0.0), "{name}");
    }

    let rendered = open_in_chromium(
        &project.path("quick-run.html"),
        &screenshot_path("quick.png"),
    );
    assert_rendered_cleanly(&rendered);
    let dom = &rendered.dom;
    assert_eq!(
        count(dom, "data-status=\"built\""),
        built,
        "a bar per built node"
    );
    assert_eq!(
        count(dom, "<figure class=\"net"),
        trained.len(),
        "a panel per trained net"
    );
    for name in &trained {
        assert!(
            dom.contains(&format!("<figure class=\"net\" data-node=\"{name}\""))
                || dom.contains(&format!(
                    "<figure class=\"net stalled\" data-node=\"{name}\""
                )),
            "no panel for `{name}`"
        );
    }
    assert!(
        dom.contains("class=\"bar critical"),
        "the critical path is marked"
    );
    assert!(
        dom.contains("Report <code>report</code>"),
        "the report's figure and findings"
    );

    // Nothing to do the second time: the trace says every node came from the cache.
    quick_run(&[]);
    let (_, rerun) = traces(&project.path("cache")).pop().unwrap();
    assert_eq!(rerun.len(), nodes.len());
    assert!(rerun.iter().all(|node| node["status"] == "cached"));
    assert_consistent(&rerun);
}
