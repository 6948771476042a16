//! Damaged cache entries are detected by hash, reported, and rebuilt; nothing damaged is used.

use std::process::Command;

use tpipe::exec::NodeStatus;

use crate::support::{named, status_of, tpipe_binary, Project};

const PIPELINE: &str = "nodes:\n  one: { kind: number, value: 41 }\n  two: { kind: sum, inputs: { items: one }, offset: 1 }\n";

fn blob_of(project: &Project, node: &str) -> std::path::PathBuf {
    let record = project.record_of(node);
    project
        .session()
        .cache
        .blob_path(&record.outputs["value"].blob)
}

#[test]
fn a_corrupted_blob_is_rebuilt_not_used() {
    let project = Project::new(PIPELINE);
    project.run();
    let blob = blob_of(&project, "one");
    std::fs::write(&blob, b"99").unwrap(); // same length, different content
    assert!(
        project
            .plan_text()
            .contains("one: will-run (cache entry damaged: output `value`"),
        "{}",
        project.plan_text()
    );
    let summary = project.run();
    assert_eq!(named(&summary, "built"), vec!["one".to_string()]);
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        b"41",
        "the blob is restored by the rebuild"
    );
    assert_eq!(status_of(&summary, "two"), &NodeStatus::Cached);
}

#[test]
fn a_missing_blob_or_torn_record_is_rebuilt() {
    let project = Project::new(PIPELINE);
    project.run();
    std::fs::remove_file(blob_of(&project, "two")).unwrap();
    assert_eq!(named(&project.run(), "built"), vec!["two".to_string()]);
    let session = project.session();
    let key = project.plan().nodes[0].key.unwrap();
    let record_path = session.cache.record_path(&key);
    let text = std::fs::read(&record_path).unwrap();
    std::fs::write(&record_path, &text[..text.len() / 2]).unwrap();
    assert!(project
        .plan_text()
        .contains("one: will-run (cache entry damaged: record unreadable"));
    assert_eq!(named(&project.run(), "built"), vec!["one".to_string()]);
}

#[test]
fn reading_a_blob_verifies_its_hash() {
    let project = Project::new(PIPELINE);
    project.run();
    let session = project.session();
    let blob = blob_of(&project, "one");
    std::fs::write(&blob, b"xx").unwrap();
    let hash = blob.file_name().unwrap().to_str().unwrap().parse().unwrap();
    let error = session.cache.read_blob(&hash).unwrap_err().to_string();
    assert!(error.contains("is corrupt"), "{error}");
}

#[test]
fn cache_verify_reports_damage_and_deletes_nothing() {
    let project = Project::new(PIPELINE);
    project.run();
    let blob = blob_of(&project, "one");
    std::fs::write(&blob, b"00").unwrap();
    let output = Command::new(tpipe_binary())
        .args(["cache", "verify"])
        .env("TPIPE_CACHE", project.cache_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("corrupt blob"), "{stdout}");
    assert!(stdout.contains("1 problem"), "{stdout}");
    assert!(blob.exists());
}

#[test]
fn gc_removes_only_what_no_pipeline_reaches() {
    let project = Project::new(PIPELINE);
    project.run();
    project.edit("offset: 1", "offset: 2");
    project.run();
    let session = project.session();
    assert_eq!(session.cache.record_keys().unwrap().len(), 3);
    let gc = |extra: &[&str]| {
        let mut command = Command::new(tpipe_binary());
        command
            .args(["cache", "gc"])
            .arg(project.pipeline_file())
            .args(extra)
            .env("TPIPE_TEST_KINDS", "1")
            .env("TPIPE_CACHE", project.cache_dir());
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert!(gc(&["--dry-run"]).contains("would remove 1 records and 1 blobs"));
    assert_eq!(
        session.cache.record_keys().unwrap().len(),
        3,
        "dry run removes nothing"
    );
    assert!(gc(&[]).contains("removed 1 records and 1 blobs"));
    assert_eq!(session.cache.record_keys().unwrap().len(), 2);
    assert_eq!(
        session.cache.action_keys().unwrap(),
        session.cache.record_keys().unwrap(),
        "the removed record's action went with it"
    );
    assert_eq!(named(&project.run(), "cached").len(), 2);
}

/// Issue 21: an action that no longer describes its key is found by `cache verify` (a cluster
/// job or `exec-node` would otherwise trip on it), and the run that builds the node writes it
/// again.
#[test]
fn a_damaged_action_is_reported_by_verify_and_rewritten_by_the_run_that_builds_it() {
    let project = Project::new(PIPELINE);
    project.run();
    let key = project.record_of("one").key;
    let action = project.session().cache.action_path(&key);
    let text = std::fs::read_to_string(&action).unwrap();
    assert!(text.contains("41"), "{text}");
    // One flipped digit: still JSON, but the action of another key.
    std::fs::write(&action, text.replacen("41", "51", 1)).unwrap();
    let verify = || {
        let output = Command::new(tpipe_binary())
            .args(["cache", "verify"])
            .env("TPIPE_CACHE", project.cache_dir())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    };
    let (code, stdout) = verify();
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("damaged action {}", key.short()))
            && stdout.contains("does not describe key")
            && stdout.contains("`tpipe run FILE --force one` writes it again")
            && stdout.contains("2 actions: 1 problem"),
        "{stdout}"
    );
    // A run that finds the node built reads no action, and leaves it as it is…
    assert_eq!(named(&project.run(), "cached").len(), 2);
    assert_eq!(verify().0, Some(1));
    // …one that builds the node writes its action first.
    let summary = project.run_with(tpipe::exec::RunOptions {
        force: vec!["one".to_string()],
        ..tpipe::exec::RunOptions::default()
    });
    assert_eq!(named(&summary, "built"), vec!["one".to_string()]);
    let (code, stdout) = verify();
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(std::fs::read_to_string(&action).unwrap(), text);
}
