//! Pipelines at sweep scale (issue 22): a typo that widens a matrix a thousandfold is one
//! located error, answered before its nodes are made and in little memory; a matrix past the
//! node limit is refused at its line unless `--max-nodes` or `max_nodes` in tpipe.toml lifts
//! the limit.

use std::process::{Command, Output, Stdio};

use crate::support::{text, tpipe_binary, Project};

/// The memory the binary may map, in kibibytes: a regression that makes the nodes of a
/// million-value matrix fails here instead of swapping the machine.
const MEMORY_BUDGET_KIB: u64 = 1_000_000;

/// `tpipe ARGS` in `project`, under [`MEMORY_BUDGET_KIB`] of address space.
fn tpipe_in_budget(project: &Project, args: &[&str]) -> Output {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -v {MEMORY_BUDGET_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(tpipe_binary())
        .args(args)
        .current_dir(project.dir.path())
        .env("TPIPE_TEST_KINDS", "1")
        .env("XDG_CONFIG_HOME", project.dir.path())
        .env_remove("TPIPE_MAX_NODES")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.output().expect("tpipe starts")
}

/// The `error:` lines of a failed command's stderr.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect()
}

#[test]
fn a_matrix_of_a_million_values_out_of_range_is_one_located_error_in_little_memory() {
    // `modulo` takes integers from 0: every value but the last is refused.
    let project = Project::new(
        "nodes:\n  \"n{i}\":\n    kind: number\n    matrix: { i: -999999..=0 }\n    value: 1\n    modulo: \"{i}\"\n",
    );
    let output = tpipe_in_budget(&project, &["plan", "pipeline.yaml"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        ["error: parameter `modulo`: expected an integer ≥ 0, found `-999999` … `-1` (in 999,999 nodes of block `n{i}`: `n-999999`, `n-999998`, `n-999997`, …)"],
        "{stderr}"
    );
    assert!(stderr.contains("--> pipeline.yaml:6:13"), "{stderr}");
    assert!(stderr.contains("1 error in the pipeline file"), "{stderr}");
}

#[cfg(feature = "kinds")]
#[test]
fn the_typo_of_issue_22_in_paper_yaml_is_one_grouped_error() {
    // `n: 1..=99999` for `1..=7` in the transfers' matrix of the grid the issue was found on
    // (paper.yaml as it was then, kept as benches/paper-180.yaml).
    let paper = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/paper-180.yaml"
    ))
    .unwrap();
    let transfers = "matrix: { source: [A, B], n: 1..=7, plus: { false: \"\", true: \"+\" }, seed: [0, 1, 2] }\n    inputs: { base: \"base{source}_s{seed}\"";
    assert!(paper.contains(transfers));
    let project =
        Project::new(&paper.replacen(transfers, &transfers.replacen("1..=7", "1..=99999", 1), 1));
    let output = tpipe_in_budget(&project, &["plan", "pipeline.yaml"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        ["error: parameter `layers_copied`: expected an integer from 1 to 7, found `8` … `99999` (in 1,199,904 nodes of block `{source}{n}B{plus}_s{seed}`: `A8B_s0`, `B8B_s0`, `A8B_s1`, …)"],
        "{stderr}"
    );
}

/// A block of `count` leaves and a sum over them.
fn wide(count: u64) -> String {
    format!(
        "nodes:\n  \"n{{i}}\":\n    kind: number\n    matrix: {{ i: 1..={count} }}\n    value: 1\n  total:\n    kind: sum\n    inputs: {{ items: \"n*\" }}\n"
    )
}

#[test]
fn a_matrix_past_the_node_limit_is_refused_at_its_line_and_max_nodes_lifts_it() {
    let project = Project::new(&wide(2_000));
    let refused = tpipe_in_budget(&project, &["plan", "pipeline.yaml", "--max-nodes", "1000"]);
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        ["error: block `n{i}` would make 2,000 nodes, more than the limit of 1,000"],
        "{stderr}"
    );
    assert!(stderr.contains("--> pipeline.yaml:4:5"), "{stderr}");
    assert!(stderr.contains("--max-nodes"), "{stderr}");

    let lifted = tpipe_in_budget(&project, &["plan", "pipeline.yaml", "--max-nodes", "5000"]);
    let (stdout, stderr) = text(&lifted);
    assert!(lifted.status.success(), "{stderr}");
    assert!(stdout.contains("2000 will run, 1 may run"), "{stdout}");

    // Together the blocks may pass the limit where none does alone.
    let together = tpipe_in_budget(&project, &["dag", "pipeline.yaml", "--max-nodes", "2000"]);
    let (_, stderr) = text(&together);
    assert_eq!(together.status.code(), Some(2), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        ["error: the pipeline would make 2,001 nodes, more than the limit of 2,000 (block `n{i}` makes 2,000 of them)"],
        "{stderr}"
    );
}

#[test]
fn the_node_limit_is_read_from_tpipe_toml_and_the_flag_overrides_it() {
    let project = Project::new(&wide(50));
    std::fs::write(project.path("tpipe.toml"), "max_nodes = 20\n").unwrap();
    let refused = tpipe_in_budget(&project, &["dag", "pipeline.yaml"]);
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("more than the limit of 20"), "{stderr}");
    let lifted = tpipe_in_budget(&project, &["dag", "pipeline.yaml", "--max-nodes", "0"]);
    assert!(lifted.status.success(), "{}", text(&lifted).1);
    std::fs::write(project.path("tpipe.toml"), "max_nodes = \"many\"\n").unwrap();
    let unreadable = tpipe_in_budget(&project, &["dag", "pipeline.yaml"]);
    let (_, stderr) = text(&unreadable);
    assert_eq!(unreadable.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tpipe.toml"), "{stderr}");
}

#[test]
fn the_default_limit_refuses_a_runaway_matrix_before_making_its_nodes() {
    // Two billion nodes: counted, never made.
    let project = Project::new(&wide(2_000_000_000));
    let output = tpipe_in_budget(&project, &["run", "pipeline.yaml"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        ["error: block `n{i}` would make 2,000,000,000 nodes, more than the limit of 1,000,000"],
        "{stderr}"
    );
}
