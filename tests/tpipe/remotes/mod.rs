//! Sharing through remotes: two teammates (two project folders, two caches) and a shared
//! folder, a WebDAV server (nginx) or an S3 server (moto), all on this machine. Everything goes
//! through the real binary, as a teammate would use it.

#[cfg(feature = "remote")]
mod authenticated;
#[cfg(feature = "remote")]
mod failing;
pub mod servers;
mod trust;

use std::path::Path;
use std::process::{Command, Output, Stdio};
#[cfg(feature = "remote")]
use std::time::{Duration, Instant};

use serde_json::Value;
use tpipe::remote::{RemoteChoice, RemoteLocation};

use crate::support::{tpipe_binary, Project};

const PIPELINE: &str =
    "nodes:\n  \"n{i}\": { kind: number, matrix: { i: 1..=3 }, value: \"{i}\" }\n  total: { kind: sum, inputs: { items: \"n*\" }, offset: 10 }\n";
const NODES: [&str; 4] = ["n1", "n2", "n3", "total"];

/// The binary in `project`'s folder, with an environment that names no remote and no config of
/// the person running the tests.
fn tpipe(project: &Project, args: &[&str]) -> Command {
    let mut command = Command::new(tpipe_binary());
    command
        .current_dir(project.dir.path())
        .args(args)
        .env("TPIPE_TEST_KINDS", "1");
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") || name.starts_with("TPIPE_") {
            command.env_remove(name);
        }
    }
    command
        .env("TPIPE_TEST_KINDS", "1")
        .env("XDG_CONFIG_HOME", project.path("user-config"))
        .env("HOME", project.dir.path());
    command.stdin(Stdio::null());
    command
}

fn output_of(mut command: Command) -> (Output, String, String) {
    let output = command.output().expect("tpipe runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output, stdout, stderr)
}

/// Runs `tpipe …` expecting success; returns stdout and stderr.
fn ok(project: &Project, args: &[&str], environment: &[(String, String)]) -> (String, String) {
    let mut command = tpipe(project, args);
    command.envs(environment.iter().cloned());
    let (output, stdout, stderr) = output_of(command);
    assert!(
        output.status.success(),
        "`tpipe {}` failed ({}):\n{stdout}\n{stderr}",
        args.join(" "),
        output.status
    );
    (stdout, stderr)
}

/// Runs `tpipe …` expecting exit code `code`; returns stdout and stderr.
fn fails(project: &Project, args: &[&str], code: i32) -> (String, String) {
    let (output, stdout, stderr) = output_of(tpipe(project, args));
    assert_eq!(
        output.status.code(),
        Some(code),
        "`tpipe {}`:\n{stdout}\n{stderr}",
        args.join(" ")
    );
    (stdout, stderr)
}

/// `tpipe run pipeline.yaml --json …`: each node's status word, and the warnings.
fn run(
    project: &Project,
    extra: &[&str],
    environment: &[(String, String)],
) -> (Vec<(String, String)>, Vec<String>) {
    let mut args = vec!["run", "pipeline.yaml", "--json"];
    args.extend_from_slice(extra);
    let (stdout, stderr) = ok(project, &args, environment);
    let summary: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}:\n{stdout}"));
    let statuses = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            (
                node["name"].as_str().unwrap().to_string(),
                node["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let warnings = stderr
        .lines()
        .filter(|line| line.starts_with("warning:"))
        .map(str::to_string)
        .collect();
    (statuses, warnings)
}

fn status<'a>(statuses: &'a [(String, String)], node: &str) -> &'a str {
    &statuses
        .iter()
        .find(|(name, _)| name == node)
        .unwrap_or_else(|| panic!("no node `{node}`"))
        .1
}

fn all(statuses: &[(String, String)], word: &str) -> bool {
    statuses.iter().all(|(_, status)| status == word)
}

fn assert_cache_verifies(project: &Project) {
    let (stdout, _) = ok(project, &["cache", "verify", "--cache", "cache"], &[]);
    assert!(stdout.contains(": 0 problems"), "{stdout}");
}

/// Alice builds the pipeline and pushes it; Bob has an empty cache.
fn alice_pushes(remote: &str, environment: &[(String, String)]) -> (Project, Project) {
    let alice = Project::new(PIPELINE);
    let (statuses, _) = run(&alice, &[], &[]);
    assert!(all(&statuses, "built"), "{statuses:?}");
    let stdout = cache_push(&alice, remote, environment);
    assert!(stdout.contains("pushed 4 records and 4 blobs"), "{stdout}");
    (alice, Project::new(PIPELINE))
}

/// `tpipe cache push|pull pipeline.yaml --remote REMOTE`, which must succeed; its stdout.
fn cache_transfer(
    verb: &str,
    project: &Project,
    remote: &str,
    environment: &[(String, String)],
) -> String {
    let args = ["cache", verb, "pipeline.yaml", "--remote", remote];
    ok(project, &args, environment).0
}

fn cache_push(project: &Project, remote: &str, environment: &[(String, String)]) -> String {
    cache_transfer("push", project, remote, environment)
}

fn cache_pull(project: &Project, remote: &str, environment: &[(String, String)]) -> String {
    cache_transfer("pull", project, remote, environment)
}

/// The whole trip: push, fetch into an empty cache, nothing built, identical results.
fn round_trip(remote: &str, environment: &[(String, String)]) {
    let (alice, bob) = alice_pushes(remote, environment);
    let stdout = cache_push(&alice, remote, environment);
    assert!(
        stdout.contains("pushed 0 records and 0 blobs (0 B)") && stdout.contains("4 already there"),
        "a second push skips everything: {stdout}"
    );

    let (statuses, warnings) = run(&bob, &["--remote", remote], environment);
    assert!(all(&statuses, "fetched"), "{statuses:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
    for node in NODES {
        let (ours, theirs) = (alice.record_of(node), bob.record_of(node));
        let remote_name = RemoteLocation::parse(remote, Path::new("/"))
            .unwrap()
            .to_string();
        assert_eq!(
            theirs.provenance.fetched_from.as_deref(),
            Some(remote_name.as_str()),
            "node `{node}`"
        );
        let mut without_origin = theirs.clone();
        without_origin.provenance.fetched_from = None;
        assert_eq!(
            without_origin, ours,
            "node `{node}`: the fetched record is the pushed one"
        );
        for output in ours.outputs.values() {
            assert_eq!(
                bob.session().cache.read_blob(&output.blob).unwrap(),
                alice.session().cache.read_blob(&output.blob).unwrap()
            );
        }
    }
    assert_eq!(bob.record_of("total").metrics.to_value()["value"], 16);
    assert_cache_verifies(&bob);
    let (statuses, _) = run(&bob, &["--remote", remote], environment);
    assert!(all(&statuses, "cached"), "{statuses:?}");
}

#[test]
fn a_shared_folder_round_trip_fetches_everything_and_builds_nothing() {
    let shared = tempfile::tempdir().unwrap();
    // The first push creates the folder.
    let remote = shared.path().join("team-cache");
    round_trip(&format!("file://{}", remote.display()), &[]);
    assert!(
        std::fs::read_dir(remote.join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "no upload is left half-done"
    );
}

#[test]
fn a_shared_folder_that_is_not_there_is_a_warning_for_run_and_an_error_for_push() {
    let unmounted = tempfile::tempdir().unwrap().path().join("share/tpipe");
    let remote = unmounted.to_str().unwrap();
    let alice = Project::new(PIPELINE);
    let (statuses, warnings) = run(&alice, &["--remote", remote], &[]);
    assert!(all(&statuses, "built"), "{statuses:?}");
    assert_eq!(warnings.len(), 1, "asked once: {warnings:?}");
    assert!(
        warnings[0].contains("does not exist (hint: is the share mounted?)"),
        "{warnings:?}"
    );
    let (_, stderr) = fails(&alice, &["cache", "push", "--remote", remote], 1);
    assert!(
        stderr.contains(&format!("cannot reach remote `{remote}`")),
        "{stderr}"
    );
    assert!(
        !unmounted.exists(),
        "no local folder stands in for the share"
    );
}

#[cfg(feature = "remote")]
#[test]
fn a_webdav_round_trip_fetches_everything_and_builds_nothing() {
    let server = servers::WebDavServer::start();
    round_trip(&server.url("team/cache"), &[]);
}

#[cfg(feature = "remote")]
#[test]
fn an_s3_round_trip_fetches_everything_and_builds_nothing() {
    let server = servers::S3Server::start();
    round_trip(&server.url("team/cache"), &server.environment());
}

#[test]
fn run_push_uploads_each_node_and_pull_fetches_level_by_level() {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap();
    let alice = Project::new(PIPELINE);
    let (statuses, warnings) = run(&alice, &["--push", "--remote", remote], &[]);
    assert!(
        all(&statuses, "built") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );
    assert_eq!(
        std::fs::read_dir(shared.path().join("records"))
            .unwrap()
            .count(),
        4
    );

    let bob = Project::new(PIPELINE);
    let stdout = cache_pull(&bob, remote, &[]);
    assert!(
        stdout.contains("fetched 4 nodes"),
        "`total`'s key is known only once n1..n3 are fetched:\n{stdout}"
    );
    assert!(
        bob.plan_text()
            .lines()
            .all(|line| line.ends_with(": cached")),
        "{}",
        bob.plan_text()
    );
    let (statuses, _) = run(&bob, &["--no-remote"], &[]);
    assert!(all(&statuses, "cached"), "{statuses:?}");
}

#[test]
fn pull_reports_what_the_remote_lacks_and_what_depends_on_it() {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap();
    let (alice, bob) = alice_pushes(remote, &[]);
    let n2 = alice.record_of("n2");
    std::fs::remove_file(shared.path().join(format!("records/{}.json", n2.key))).unwrap();
    let stdout = cache_pull(&bob, remote, &[]);
    assert!(
        stdout.contains("missing   n2: not on the remote"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unknown   total: its key depends on `n2`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fetched 2 nodes")
            && stdout.contains("1 not on the remote (and 1 after those)"),
        "{stdout}"
    );
}

#[test]
fn no_remote_ignores_the_configured_remote() {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap();
    let (_alice, bob) = alice_pushes(remote, &[]);
    let environment = [("TPIPE_REMOTE".to_string(), remote.to_string())];
    let (statuses, _) = run(&bob, &["--no-remote"], &environment);
    assert!(all(&statuses, "built"), "{statuses:?}");
}

/// Alice's entries on a shared folder, damaged by `damage`; Bob's run must notice, warn, build
/// the damaged node itself and leave a clean cache.
fn bob_survives(damage: impl FnOnce(&Path, &Project), damaged_node: &str, expected_warning: &str) {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap();
    let (alice, bob) = alice_pushes(remote, &[]);
    damage(shared.path(), &alice);
    let (statuses, warnings) = run(&bob, &["--remote", remote], &[]);
    assert_eq!(status(&statuses, damaged_node), "built", "{statuses:?}");
    for node in NODES.iter().filter(|node| **node != damaged_node) {
        assert_eq!(status(&statuses, node), "fetched", "{statuses:?}");
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("node `{damaged_node}`"))
            && warnings[0].contains(expected_warning),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("building it locally"), "{warnings:?}");
    assert_eq!(bob.record_of(damaged_node).provenance.fetched_from, None);
    assert_eq!(bob.record_of("total").metrics.to_value()["value"], 16);
    assert_cache_verifies(&bob);
}

fn remote_blob(shared: &Path, alice: &Project, node: &str) -> std::path::PathBuf {
    let hex = alice.record_of(node).outputs["value"].blob.to_hex();
    shared.join("blobs").join(&hex[..2]).join(hex)
}

fn remote_record(shared: &Path, alice: &Project, node: &str) -> std::path::PathBuf {
    shared
        .join("records")
        .join(format!("{}.json", alice.record_of(node).key))
}

#[test]
fn a_tampered_blob_on_the_remote_is_rejected_and_built_locally() {
    bob_survives(
        |shared, alice| std::fs::write(remote_blob(shared, alice, "n1"), b"9").unwrap(),
        "n1",
        "is corrupt: its content hashes to",
    );
}

#[test]
fn a_truncated_upload_is_rejected_and_built_locally() {
    bob_survives(
        |shared, alice| std::fs::write(remote_blob(shared, alice, "total"), b"1").unwrap(),
        "total",
        "has 1 bytes where the record says 2 (a truncated or unfinished upload)",
    );
}

#[test]
fn a_record_whose_blob_is_a_path_is_rejected() {
    bob_survives(
        |shared, alice| {
            let path = remote_record(shared, alice, "n2");
            let text = std::fs::read_to_string(&path).unwrap();
            let blob = alice.record_of("n2").outputs["value"].blob.to_hex();
            std::fs::write(&path, text.replace(&blob, "../../../../../../etc/passwd")).unwrap();
        },
        "n2",
        "record unreadable",
    );
}

#[test]
fn a_record_whose_output_name_leaves_the_folder_is_rejected() {
    bob_survives(
        |shared, alice| {
            // A consistent record (its digest recomputed) whose output would be published as `../escape`.
            let mut record = alice.record_of("n3");
            let output = record.outputs.remove("value").unwrap();
            record.outputs.insert("../escape".into(), output);
            record.content = tpipe::key::outputs_digest(&record.outputs);
            std::fs::write(
                remote_record(shared, alice, "n3"),
                serde_json::to_vec_pretty(&record).unwrap(),
            )
            .unwrap();
        },
        "n3",
        "output name `../escape` is not a plain file name",
    );
}

#[test]
fn a_record_filed_under_another_key_is_rejected() {
    bob_survives(
        |shared, alice| {
            std::fs::copy(
                remote_record(shared, alice, "n1"),
                remote_record(shared, alice, "n3"),
            )
            .map(drop)
            .unwrap()
        },
        "n3",
        "record unreadable: it describes key",
    );
}

#[cfg(feature = "remote")]
#[test]
fn a_webdav_server_stopped_mid_run_is_a_warning_and_the_rest_builds_locally() {
    let pipeline =
        "nodes:\n  early: { kind: number, value: 5 }\n  slow: { kind: number, value: 6, sleep_ms: 1500 }\n  late: { kind: sum, inputs: { items: slow } }\n";
    let mut server = servers::WebDavServer::start();
    let remote = server.url("cache");
    let alice = Project::new(pipeline);
    run(&alice, &["--push", "--remote", &remote], &[]);
    // The remote has `early` and `late` but not `slow`, which Bob must build (slowly).
    std::fs::remove_file(
        server
            .disk_path("cache")
            .join(format!("records/{}.json", alice.record_of("slow").key)),
    )
    .unwrap();

    let bob = Project::new(pipeline);
    let started = Instant::now();
    let child = tpipe(
        &bob,
        &["run", "pipeline.yaml", "--json", "--remote", &remote],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    while bob.session().cache.record_keys().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "`early` was never fetched"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop();
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a dead server must not hang the run"
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let statuses: Vec<(&str, &str)> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            (
                node["name"].as_str().unwrap(),
                node["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![("early", "fetched"), ("slow", "built"), ("late", "built")]
    );
    let unreachable: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("cannot reach remote"))
        .collect();
    assert_eq!(
        unreachable.len(),
        1,
        "asked once, then left alone:\n{stderr}"
    );
    assert!(
        unreachable[0].contains("not asking it again during this run"),
        "{stderr}"
    );
    assert_cache_verifies(&bob);
}

#[cfg(feature = "remote")]
#[test]
fn a_remote_that_refuses_access_is_one_warning_for_run_and_an_error_for_push() {
    let server = servers::WebDavServer::start();
    let remote = server.url("forbidden/cache");
    let alice = Project::new(PIPELINE);
    let (statuses, warnings) = run(&alice, &["--remote", &remote], &[]);
    assert!(all(&statuses, "built"), "{statuses:?}");
    let refused = warnings
        .iter()
        .filter(|warning| warning.contains("refused access: permission denied (HTTP 403)"))
        .count();
    assert!(
        (1..=3).contains(&refused) && refused == warnings.len(),
        "only the lookups already under way may fail: {warnings:?}"
    );
    let (_, stderr) = fails(
        &alice,
        &["cache", "push", "pipeline.yaml", "--remote", &remote],
        1,
    );
    assert!(
        stderr.contains(&format!("remote `{remote}` refused access"))
            && stderr.contains("HTTP 403"),
        "{stderr}"
    );
}

#[cfg(feature = "remote")]
#[test]
fn a_server_that_only_serves_reads_is_fetched_from_and_refuses_uploads() {
    let server = servers::WebDavServer::start();
    // Filled behind the server's back, as its admin would: a remote is laid out like a folder.
    std::fs::create_dir_all(server.disk_path("read-only")).unwrap();
    let (_alice, bob) = alice_pushes(server.disk_path("read-only/cache").to_str().unwrap(), &[]);
    let remote = server.url("read-only/cache");
    let (statuses, warnings) = run(&bob, &["--remote", &remote], &[]);
    assert!(
        all(&statuses, "fetched") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );

    bob.edit("offset: 10", "offset: 11");
    let (statuses, warnings) = run(&bob, &["--remote", &remote, "--push"], &[]);
    assert_eq!(status(&statuses, "total"), "built", "{statuses:?}");
    assert_eq!(
        warnings.len(),
        1,
        "the cached nodes are already there; only `total` needs an upload: {warnings:?}"
    );
    assert!(
        warnings[0].contains("node `total`: not pushed: remote")
            && warnings[0].contains("HTTP 403"),
        "{warnings:?}"
    );
    let (_, stderr) = fails(
        &bob,
        &["cache", "push", "pipeline.yaml", "--remote", &remote],
        1,
    );
    assert!(
        stderr.contains("refused access") && stderr.contains("HTTP 403"),
        "{stderr}"
    );
}

#[cfg(feature = "remote")]
#[test]
fn a_server_that_never_answers_times_out_and_is_asked_once() {
    let silent = servers::SilentServer::start();
    let bob = Project::new(PIPELINE);
    let started = Instant::now();
    let (statuses, warnings) = run(
        &bob,
        &[
            "--remote",
            &format!("http://127.0.0.1:{}/cache", silent.port),
        ],
        &[],
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
    assert!(all(&statuses, "built"), "{statuses:?}");
    let unreachable = warnings
        .iter()
        .filter(|warning| warning.contains("cannot reach remote"))
        .count();
    assert!(
        (1..=3).contains(&unreachable),
        "only the lookups already under way may fail: {warnings:?}"
    );
    assert_cache_verifies(&bob);
}

#[test]
fn a_read_only_remote_refuses_push_and_is_still_read() {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap().to_string();
    let config = format!("remote = \"{remote}\"\nremote_read_only = true\n");

    let alice = Project::new(PIPELINE);
    run(&alice, &["--no-remote"], &[]);
    std::fs::write(alice.path("tpipe.toml"), &config).unwrap();
    let (_, stderr) = fails(&alice, &["cache", "push", "pipeline.yaml"], 1);
    assert!(
        stderr.contains(&format!("remote `{remote}` is read-only")),
        "{stderr}"
    );
    let (_, stderr) = fails(&alice, &["run", "pipeline.yaml", "--push"], 2);
    assert!(
        stderr.contains("cannot `--push`") && stderr.contains("is read-only"),
        "{stderr}"
    );
    std::fs::write(alice.path("tpipe.toml"), "").unwrap();
    let (_, stderr) = fails(
        &alice,
        &[
            "cache",
            "push",
            "pipeline.yaml",
            "--remote",
            &remote,
            "--remote-read-only",
        ],
        1,
    );
    assert!(stderr.contains("is read-only"), "{stderr}");
    assert!(
        !shared.path().join("records").exists(),
        "nothing was written"
    );

    ok(
        &alice,
        &["cache", "push", "pipeline.yaml", "--remote", &remote],
        &[],
    );
    let bob = Project::new(PIPELINE);
    std::fs::write(bob.path("tpipe.toml"), &config).unwrap();
    let (statuses, warnings) = run(&bob, &[], &[]);
    assert!(
        all(&statuses, "fetched") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );
}

fn files_under(folder: &Path) -> Vec<String> {
    let mut files: Vec<String> = walkdir::WalkDir::new(folder)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| {
            entry
                .path()
                .strip_prefix(folder)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn gc_never_deletes_from_a_remote_without_a_dry_run_and_its_token() {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap().to_string();
    let alice = Project::new(PIPELINE);
    run(&alice, &["--push", "--remote", &remote], &[]);
    alice.edit("offset: 10", "offset: 20");
    run(&alice, &["--push", "--remote", &remote], &[]);
    let before = files_under(shared.path());
    assert_eq!(
        before
            .iter()
            .filter(|file| file.starts_with("records/"))
            .count(),
        5
    );

    // A local gc with a remote configured everywhere leaves the remote alone.
    std::fs::write(alice.path("tpipe.toml"), format!("remote = \"{remote}\"\n")).unwrap();
    let mut local = tpipe(&alice, &["cache", "gc", "pipeline.yaml"]);
    local.env("TPIPE_REMOTE", &remote);
    let (output, stdout, _) = output_of(local);
    assert!(
        output.status.success() && stdout.contains("removed 1 records"),
        "{stdout}"
    );
    assert_eq!(files_under(shared.path()), before);

    let (_, stderr) = fails(
        &alice,
        &["cache", "gc", "pipeline.yaml", "--remote", &remote],
        2,
    );
    assert!(stderr.contains("run it with `--dry-run` first"), "{stderr}");
    let (stdout, _) = ok(
        &alice,
        &[
            "cache",
            "gc",
            "pipeline.yaml",
            "--remote",
            &remote,
            "--dry-run",
        ],
        &[],
    );
    assert!(
        stdout.contains("nothing to remove")
            && stdout.contains("2 unreached but newer than the grace period"),
        "{stdout}"
    );

    let (stdout, _) = ok(
        &alice,
        &[
            "cache",
            "gc",
            "pipeline.yaml",
            "--remote",
            &remote,
            "--dry-run",
            "--grace",
            "0s",
        ],
        &[],
    );
    let old_total = record_of_key_line(&stdout);
    assert!(
        stdout.contains("would remove 1 records and 1 blobs"),
        "{stdout}"
    );
    assert!(old_total.starts_with("records/"), "{stdout}");
    let token = stdout
        .rsplit("--confirm ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        files_under(shared.path()),
        before,
        "a dry run deletes nothing"
    );

    let (_, stderr) = fails(
        &alice,
        &[
            "cache",
            "gc",
            "pipeline.yaml",
            "--remote",
            &remote,
            "--grace",
            "0s",
            "--confirm",
            "0123456789ab",
        ],
        1,
    );
    assert!(stderr.contains("not deleting anything"), "{stderr}");
    assert_eq!(files_under(shared.path()), before);

    let (stdout, _) = ok(
        &alice,
        &[
            "cache",
            "gc",
            "pipeline.yaml",
            "--remote",
            &remote,
            "--grace",
            "0s",
            "--confirm",
            &token,
        ],
        &[],
    );
    assert!(stdout.contains("removed 1 records and 1 blobs"), "{stdout}");
    let after = files_under(shared.path());
    assert_eq!(after.len(), before.len() - 2);
    assert!(!after.contains(&old_total));

    let bob = Project::new(PIPELINE);
    bob.edit("offset: 10", "offset: 20");
    let (statuses, _) = run(&bob, &["--remote", &remote], &[]);
    assert!(
        all(&statuses, "fetched"),
        "what the pipeline reaches survives: {statuses:?}"
    );
}

/// The first path a gc dry run lists.
fn record_of_key_line(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("  "))
        .and_then(|line| line.split("  ").next())
        .unwrap_or_default()
        .to_string()
}

/// Three teammates push the same nodes at once (one with `cache push` of its whole cache);
/// `on_disk` is where the remote keeps its files.
fn pushing_at_once_leaves_one_whole_entry_per_node(remote: &str, on_disk: &Path) {
    let teammates: Vec<Project> = (0..3).map(|_| Project::new(PIPELINE)).collect();
    for teammate in &teammates {
        run(teammate, &["--no-remote"], &[]);
    }
    let pushes: Vec<_> = teammates
        .iter()
        .enumerate()
        .map(|(index, teammate)| {
            let args: &[&str] = if index == 0 {
                &["cache", "push", "--remote", remote]
            } else {
                &["cache", "push", "pipeline.yaml", "--remote", remote]
            };
            tpipe(teammate, args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for push in pushes {
        let output = push.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let files: Vec<String> = files_under(on_disk)
        .into_iter()
        .filter(|file| !file.starts_with("tmp/"))
        .collect();
    assert_eq!(files.len(), 8, "4 records and 4 blobs: {files:?}");
    assert!(
        files_under(&on_disk.join("tmp")).is_empty(),
        "no upload left half-done"
    );
    let bob = Project::new(PIPELINE);
    let (statuses, warnings) = run(&bob, &["--remote", remote], &[]);
    assert!(
        all(&statuses, "fetched") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );
    assert_cache_verifies(&bob);
}

#[test]
fn teammates_pushing_the_same_nodes_at_once_to_a_folder_leave_one_whole_entry_each() {
    let shared = tempfile::tempdir().unwrap();
    pushing_at_once_leaves_one_whole_entry_per_node(shared.path().to_str().unwrap(), shared.path());
}

#[cfg(feature = "remote")]
#[test]
fn teammates_pushing_the_same_nodes_at_once_to_webdav_leave_one_whole_entry_each() {
    let server = servers::WebDavServer::start();
    pushing_at_once_leaves_one_whole_entry_per_node(
        &server.url("cache"),
        &server.disk_path("cache"),
    );
}

/// Which remote wins, from each combination of sources.
#[test]
fn the_flag_beats_the_environment_beats_config_files_beats_the_pipeline() {
    let folder = tempfile::tempdir().unwrap();
    let user = folder.path().join("user/config.toml");
    let project = folder.path().join("project/tpipe.toml");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    std::fs::create_dir_all(project.parent().unwrap()).unwrap();
    let check = |user_text: Option<&str>,
                 project_text: Option<&str>,
                 environment: Option<&str>,
                 flag: Option<&str>,
                 expected: Option<(&str, bool)>| {
        for (path, text) in [(&user, user_text), (&project, project_text)] {
            match text {
                Some(text) => std::fs::write(path, text).unwrap(),
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let choice = RemoteChoice {
            pipeline: Some(("from-yaml".into(), folder.path().join("pipelines"))),
            user_config: Some(user.clone()),
            project_config: Some(project.clone()),
            environment: environment.map(str::to_string),
            flag: flag.map(str::to_string),
            working_dir: folder.path().join("here"),
            ..RemoteChoice::default()
        };
        let spec = choice
            .resolve()
            .unwrap()
            .map(|spec| (spec.location, spec.read_only));
        let expected = expected.map(|(text, read_only)| {
            (
                RemoteLocation::parse(text, folder.path()).unwrap(),
                read_only,
            )
        });
        assert_eq!(spec, expected, "user {user_text:?}, project {project_text:?}, environment {environment:?}, flag {flag:?}");
    };
    check(None, None, None, None, Some(("pipelines/from-yaml", false)));
    check(
        Some("remote = \"s3://user/cache\""),
        None,
        None,
        None,
        Some(("s3://user/cache", false)),
    );
    check(
        Some("remote = \"s3://user/cache\""),
        Some("remote = \"https://dav/team\""),
        None,
        None,
        Some(("https://dav/team", false)),
    );
    check(
        Some("remote_read_only = true"),
        Some("remote = \"shared\""),
        None,
        None,
        Some(("project/shared", true)),
    );
    check(
        None,
        Some("remote = \"shared\""),
        Some("file:///env/cache"),
        None,
        Some(("file:///env/cache", false)),
    );
    check(
        None,
        Some("remote = \"shared\""),
        Some("file:///env/cache"),
        Some("flag"),
        Some(("here/flag", false)),
    );

    std::fs::write(&project, "remote = [").unwrap();
    let error = RemoteChoice {
        project_config: Some(project.clone()),
        ..RemoteChoice::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("tpipe.toml") && error.contains("not valid TOML"),
        "{error}"
    );
    let error = RemoteChoice {
        flag: Some("ftp://host/x".into()),
        ..RemoteChoice::default()
    }
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("unknown kind of remote `ftp://`") && error.contains("named by --remote"),
        "{error}"
    );
}

/// Copies the action of `builder`'s `node` into `job-cache/` of `job`, as a job on another
/// machine gets it (and nothing else); returns the node's key.
fn give_action_to_job(builder: &Project, node: &str, job: &Project) -> String {
    let key = builder.record_of(node).key;
    std::fs::create_dir_all(job.path("job-cache/actions")).unwrap();
    std::fs::copy(
        builder.session().cache.action_path(&key),
        job.path(&format!("job-cache/actions/{key}.json")),
    )
    .unwrap();
    key.to_hex()
}

/// Issue 9: a job on another machine has only the action and a remote: `exec-node` fetches the
/// inputs the action reads from the remote, builds, and pushes the result.
#[test]
fn exec_node_fetches_its_inputs_from_the_remote_and_pushes_its_result() {
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap().to_string();
    let (alice, job) = alice_pushes(&remote, &[]);
    let total = alice.record_of("total");
    let key = give_action_to_job(&alice, "total", &job);
    // The remote does not have `total` yet, so the job must build it.
    let remote_record = shared.path().join(format!("records/{key}.json"));
    std::fs::remove_file(&remote_record).unwrap();
    let (stdout, _) = ok(
        &job,
        &[
            "exec-node",
            &key,
            "--cache",
            "job-cache",
            "--remote",
            &remote,
            "--push",
        ],
        &[],
    );
    assert!(stdout.contains("fetched input `n1`"), "{stdout}");
    assert!(stdout.contains("built total"), "{stdout}");
    let job_cache = tpipe::cache::Cache::open(&job.path("job-cache")).unwrap();
    let rebuilt = job_cache.read_record(&total.key).unwrap().unwrap();
    assert_eq!(
        (
            &rebuilt.outputs,
            &rebuilt.content,
            &rebuilt.inputs,
            &rebuilt.params
        ),
        (&total.outputs, &total.content, &total.inputs, &total.params)
    );
    assert!(remote_record.exists(), "the job pushed its result");
}
