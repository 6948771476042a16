//! After an edit, exactly the nodes the edit invalidates rerun.

use expect_test::expect;
use tpipe::exec::{NodeStatus, RunOptions};

use crate::support::{named, status_of, Project};

const PIPELINE: &str = r#"
defaults:
  sum: { offset: 0 }
nodes:
  base:
    kind: number
    value: 1
  "leaf{i}":
    kind: sum
    matrix: { i: 1..=3 }
    inputs: { items: base }
    offset: "{i}"
  solo:
    kind: sum
    inputs: { items: base }
    offset: 7
  total:
    kind: sum
    inputs: { items: "leaf*" }
  lonely:
    kind: number
    value: 5
    modulo: 100
    note: "a"
  cutoff:
    kind: number
    value: 7
    modulo: 10
  after_cutoff:
    kind: sum
    inputs: { items: cutoff }
"#;

/// (what the case shows, text to replace, replacement, nodes expected to be built).
const CASES: &[(&str, &str, &str, &[&str])] = &[
    (
        "editing a leaf's parameter reruns only that leaf",
        "offset: 7",
        "offset: 8",
        &["solo"],
    ),
    (
        "editing the shared base reruns it and everything below",
        "value: 1",
        "value: 2",
        &["base", "leaf1", "leaf2", "leaf3", "solo", "total"],
    ),
    (
        "editing a node nobody reads reruns only it",
        "value: 5",
        "value: 6",
        &["lonely"],
    ),
    (
        "editing a default reruns only the nodes that use it",
        "sum: { offset: 0 }",
        "sum: { offset: 100 }",
        &["total", "after_cutoff"],
    ),
    (
        "extending a matrix range by one runs only the new node and its reader",
        "1..=3",
        "1..=4",
        &["leaf4", "total"],
    ),
    (
        "writing a default explicitly changes no key",
        "value: 5",
        "value: 5\n    fail: false",
        &[],
    ),
    (
        "editing a parameter the node does not read changes no key",
        "note: \"a\"",
        "note: \"b\"",
        &[],
    ),
    (
        "an upstream rerun with identical output does not rerun its readers",
        "value: 7",
        "value: 17",
        &["cutoff"],
    ),
    (
        "reformatting the YAML changes nothing",
        "    value: 1\n",
        "    value:   1   # same\n",
        &[],
    ),
];

#[test]
fn each_edit_reruns_exactly_what_it_invalidates() {
    for (behaviour, from, to, expected) in CASES {
        let project = Project::new(PIPELINE);
        let first = project.run();
        assert!(
            first.all_succeeded(),
            "{behaviour}: first run failed: {first:?}"
        );
        project.edit(from, to);
        let second = project.run();
        assert_eq!(named(&second, "built"), expected.to_vec(), "{behaviour}");
        assert_eq!(
            named(&second, "failed"),
            Vec::<String>::new(),
            "{behaviour}"
        );
    }
}

#[test]
fn a_second_run_builds_nothing() {
    let project = Project::new(PIPELINE);
    assert_eq!(named(&project.run(), "built").len(), 9);
    let again = project.run();
    assert_eq!(named(&again, "built"), Vec::<String>::new());
    assert_eq!(named(&again, "cached").len(), 9);
}

#[test]
fn plan_says_why_each_node_would_run() {
    let project = Project::new(PIPELINE);
    project.run();
    project.edit("value: 1", "value: 2");
    project.edit("offset: 7", "offset: 9");
    project.edit("value: 5", "value: 6");
    expect![[r#"
        base: will-run (parameter `value` changed from 1 to 2)
        leaf1: may-run (after `base`)
        leaf2: may-run (after `base`)
        leaf3: may-run (after `base`)
        solo: may-run (after `base`)
        total: may-run (after `base`)
        lonely: will-run (parameter `value` changed from 5 to 6)
        cutoff: cached
        after_cutoff: cached
    "#]]
    .assert_eq(&project.plan_text());
}

#[test]
fn plan_names_new_nodes_changed_inputs_and_forced_nodes() {
    let project = Project::new(PIPELINE);
    project.run();
    project.edit("1..=3", "1..=4");
    project.run_with(RunOptions {
        targets: vec!["leaf4".into()],
        ..RunOptions::default()
    });
    expect![[r#"
        base: cached
        leaf1: cached
        leaf2: cached
        leaf3: cached
        leaf4: cached
        solo: cached
        total: will-run (input `items` now reads different nodes)
        lonely: cached
        cutoff: cached
        after_cutoff: cached
    "#]]
    .assert_eq(&project.plan_text());
    project.set_pipeline(&format!(
        "{PIPELINE}  fresh:\n    kind: number\n    value: 3\n"
    ));
    assert!(project.plan_text().contains("fresh: will-run (new node)"));
}

#[test]
fn a_failure_stops_only_its_dependents_and_the_next_run_resumes() {
    let project = Project::new(PIPELINE);
    project.edit("offset: 7", "offset: 7\n    fail: true");
    project.edit("  \"leaf{i}\":", "  \"leaf{i}\":\n    exclude: [{ i: 2 }]");
    project.edit(
        "  total:\n    kind: sum",
        "  total:\n    kind: sum\n    fail: true",
    );
    let first = project.run();
    assert!(matches!(
        status_of(&first, "solo"),
        NodeStatus::Failed { .. }
    ));
    assert!(matches!(
        status_of(&first, "total"),
        NodeStatus::Failed { .. }
    ));
    assert_eq!(status_of(&first, "lonely"), &NodeStatus::Built);
    assert!(!first.all_succeeded());
    project.edit("offset: 7\n    fail: true", "offset: 7");
    let second = project.run();
    assert_eq!(named(&second, "built"), vec!["solo".to_string()]);
    assert!(matches!(
        status_of(&second, "total"),
        NodeStatus::Failed { .. }
    ));
}

#[test]
fn dependents_of_a_failed_node_are_skipped_naming_it() {
    let project = Project::new("nodes:\n  a: { kind: number, value: 1, fail: true }\n  b: { kind: sum, inputs: { items: a } }\n  c: { kind: sum, inputs: { items: b } }\n  d: { kind: number, value: 2 }\n");
    let summary = project.run();
    assert_eq!(
        status_of(&summary, "b"),
        &NodeStatus::Skipped { after: "a".into() }
    );
    assert_eq!(
        status_of(&summary, "c"),
        &NodeStatus::Skipped { after: "a".into() }
    );
    assert_eq!(status_of(&summary, "d"), &NodeStatus::Built);
}

#[test]
fn target_builds_only_what_it_needs_and_force_rebuilds() {
    let project = Project::new(PIPELINE);
    let summary = project.run_with(RunOptions {
        targets: vec!["solo".into()],
        ..RunOptions::default()
    });
    assert_eq!(
        named(&summary, "built"),
        vec!["base".to_string(), "solo".to_string()]
    );
    let forced = project.run_with(RunOptions {
        targets: vec!["solo".into()],
        force: vec!["base".into()],
        ..RunOptions::default()
    });
    assert_eq!(
        named(&forced, "built"),
        vec!["base".to_string()],
        "same output: solo stays cached"
    );
}

#[test]
fn external_data_is_keyed_by_content_not_path_or_timestamp() {
    let project = Project::new("nodes:\n  digest: { kind: file_digest, path: data }\n  after: { kind: sum, inputs: { items: digest } }\n");
    std::fs::create_dir_all(project.path("data/class_a")).unwrap();
    std::fs::write(project.path("data/class_a/1.bin"), b"12345").unwrap();
    assert_eq!(named(&project.run(), "built").len(), 2);
    // Rewriting identical bytes (new mtime) reruns nothing.
    std::fs::write(project.path("data/class_a/1.bin"), b"12345").unwrap();
    assert_eq!(named(&project.run(), "built"), Vec::<String>::new());
    // New content reruns the reader of the data, and the plan says so.
    std::fs::write(project.path("data/class_a/1.bin"), b"54321").unwrap();
    assert!(
        project.plan_text().contains("digest: will-run (data `"),
        "{}",
        project.plan_text()
    );
    assert_eq!(
        named(&project.run(), "built"),
        vec!["digest".to_string()],
        "same length: `after` is cut off"
    );
    // A new file in the folder changes its content too.
    std::fs::write(project.path("data/class_a/2.bin"), b"1").unwrap();
    assert_eq!(
        named(&project.run(), "built"),
        vec!["digest".to_string(), "after".to_string()]
    );
}

#[test]
fn parallel_runs_respect_dependencies() {
    let yaml = "nodes:\n  \"n{i}\": { kind: number, matrix: { i: 1..=12 }, value: \"{i}\", sleep_ms: 5 }\n  total: { kind: sum, inputs: { items: \"n*\" } }\n";
    let project = Project::new(yaml);
    let summary = project.run_with(RunOptions {
        jobs: 4,
        ..RunOptions::default()
    });
    assert!(summary.all_succeeded());
    let session = project.session();
    let total = session
        .cache
        .read_record(&summary.nodes.last().unwrap().key.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(total.metrics.to_value()["value"], 78);
}

/// Issue 9: entries written by an older tpipe (an older key scheme) are misses with a note in
/// the plan, never errors, and the next run builds anew.
#[test]
fn entries_from_an_older_key_scheme_are_misses_with_a_note() {
    let project = Project::new("nodes:\n  one: { kind: number, value: 1 }\n");
    project.run();
    // Make the cached record look like an older tpipe's, under a key this tpipe no longer
    // derives: the index still names it as `one`'s last key.
    let record = project.record_of("one");
    let session = project.session();
    let path = session.cache.record_path(&record.key);
    let mut old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    old["format"] = serde_json::json!(1);
    std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
    project.edit("value: 1", "value: 2");
    expect![[r#"
        one: will-run (the cached result was made by an older tpipe (its keys changed); building anew)
    "#]]
    .assert_eq(&project.plan_text());
    assert_eq!(named(&project.run(), "built"), ["one"]);
}
