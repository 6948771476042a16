//! Issue 21: signed records and trusted keys. Whoever can write a remote no longer decides
//! what everyone trains on: with `trusted_keys` set, a fetched record is used only when a
//! trusted key signed its key and content; any other is refused like a damaged entry (a
//! warning naming the node and the signer) and built here.

use std::path::{Path, PathBuf};

use super::{all, give_action_to_job, ok, output_of, run, status, tpipe, PIPELINE};
use crate::support::Project;

/// `tpipe key generate NAME --output FILE` in `project`: the secret key's file and the public
/// key it prints.
pub(super) fn generate_key(project: &Project, name: &str) -> (PathBuf, String) {
    let file = project.path(&format!("{name}.key"));
    let (stdout, _) = ok(
        project,
        &["key", "generate", name, "--output", file.to_str().unwrap()],
        &[],
    );
    let public = stdout
        .lines()
        .find_map(|line| line.strip_prefix("public key: "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    (file, public)
}

/// Writes the user's config of `project` (`~/.config/tpipe/config.toml` in the tests).
pub(super) fn user_config(project: &Project, text: &str) {
    let path = project.path("user-config/tpipe/config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A teammate who builds the pipeline and pushes it to `remote`, signing with `key`.
fn pushed_by(remote: &Path, key: Option<&Path>) -> Project {
    let teammate = Project::new(PIPELINE);
    if let Some(key) = key {
        user_config(&teammate, &format!("signing_key = \"{}\"\n", key.display()));
    }
    run(&teammate, &["--no-remote"], &[]);
    let (stdout, _) = ok(
        &teammate,
        &[
            "cache",
            "push",
            "pipeline.yaml",
            "--remote",
            remote.to_str().unwrap(),
        ],
        &[],
    );
    assert!(stdout.contains("pushed 4 records"), "{stdout}");
    teammate
}

/// Bob, who trusts `trusted` (in the project's tpipe.toml, which his team shares).
fn bob_trusting(trusted: &str, extra: &str) -> Project {
    let bob = Project::new(PIPELINE);
    std::fs::write(
        bob.path("tpipe.toml"),
        format!("trusted_keys = [\"{trusted}\"]\n{extra}"),
    )
    .unwrap();
    bob
}

fn remote_record(remote: &Path, key: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(remote.join(format!("records/{key}.json"))).unwrap())
        .unwrap()
}

#[test]
fn a_record_signed_by_a_trusted_key_is_used_and_unsigned_or_untrusted_ones_are_built_here() {
    let keys = Project::new(PIPELINE);
    let (ci_key, ci_public) = generate_key(&keys, "ci");
    let (laptop_key, _) = generate_key(&keys, "laptop");
    let remotes = tempfile::tempdir().unwrap();
    let by_ci = remotes.path().join("by-ci");
    let alice = pushed_by(&by_ci, Some(&ci_key));
    let n1 = alice.record_of("n1").key.to_hex();
    let signatures = remote_record(&by_ci, &n1)["signatures"].clone();
    assert!(
        signatures[0].as_str().unwrap().starts_with("ci:"),
        "{signatures}"
    );

    // Signed by the trusted key: used, and `show` says who signed it.
    let bob = bob_trusting(&ci_public, "");
    let remote = by_ci.to_str().unwrap();
    let (statuses, warnings) = run(&bob, &["--remote", remote], &[]);
    assert!(
        all(&statuses, "fetched") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );
    let (stdout, _) = ok(&bob, &["show", "pipeline.yaml", "n1"], &[]);
    assert!(stdout.contains("signed by `ci` (trusted)"), "{stdout}");
    let (stdout, _) = ok(&bob, &["cache", "verify", "--remote", remote], &[]);
    assert!(
        stdout.contains("signed by a trusted key: 4 by `ci`") && stdout.contains(": 0 problems"),
        "{stdout}"
    );

    // Signed by a key Bob does not trust, or not signed: each refused, naming the signer, and
    // built here.
    for (key, expected) in [
        (
            Some(laptop_key.as_path()),
            "it is signed by `laptop`, not by a trusted key (`ci`)",
        ),
        (
            None,
            "it is not signed, and only records signed by a trusted key (`ci`) are used",
        ),
    ] {
        let other = remotes.path().join(if key.is_some() {
            "by-laptop"
        } else {
            "unsigned"
        });
        pushed_by(&other, key);
        let bob = bob_trusting(&ci_public, "");
        let (statuses, warnings) = run(&bob, &["--remote", other.to_str().unwrap()], &[]);
        assert!(all(&statuses, "built"), "{statuses:?}");
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        for node in ["n1", "n2", "n3", "total"] {
            assert!(
                warnings
                    .iter()
                    .any(|warning| warning.contains(&format!("node `{node}`"))
                        && warning.contains(expected)
                        && warning.contains("building it locally")),
                "{node}: {warnings:?}"
            );
        }
        let (output, stdout, _) = output_of(tpipe(
            &bob,
            &["cache", "verify", "--remote", other.to_str().unwrap()],
        ));
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains(expected) && stdout.contains("4 problems"),
            "{stdout}"
        );
        // A team that does not sign keeps today's behaviour.
        let lenient = bob_trusting(&ci_public, "require_signatures = false\n");
        let (statuses, _) = run(&lenient, &["--remote", other.to_str().unwrap()], &[]);
        assert!(all(&statuses, "fetched"), "{statuses:?}");
    }

    // A blob digest changed behind the signature (the record still consistent in itself): the
    // signature no longer matches, whatever `require_signatures` says.
    let tampered = remotes.path().join("tampered");
    let alice = pushed_by(&tampered, Some(&ci_key));
    let mut record = alice.record_of("n1");
    let forged = b"9";
    let forged_blob = tpipe::hash::ContentHash::of_bytes(forged);
    let hex = forged_blob.to_hex();
    std::fs::create_dir_all(tampered.join("blobs").join(&hex[..2])).unwrap();
    std::fs::write(tampered.join("blobs").join(&hex[..2]).join(&hex), forged).unwrap();
    let output = record.outputs.get_mut("value").unwrap();
    output.blob = forged_blob;
    output.size = 1;
    record.content = tpipe::key::outputs_digest(&record.outputs);
    record.signatures = remote_record(&tampered, &n1)["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|signature| signature.as_str().unwrap().to_string())
        .collect();
    std::fs::write(
        tampered.join(format!("records/{n1}.json")),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
    for extra in ["", "require_signatures = false\n"] {
        let bob = bob_trusting(&ci_public, extra);
        let (statuses, warnings) = run(&bob, &["--remote", tampered.to_str().unwrap()], &[]);
        assert_eq!(status(&statuses, "n1"), "built", "{statuses:?}");
        assert_eq!(status(&statuses, "total"), "fetched", "{statuses:?}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("node `n1`")
                && warnings[0].contains("its signature by `ci` does not match its key and content"),
            "{warnings:?}"
        );
        assert_eq!(bob.record_of("total").metrics.to_value()["value"], 16);
    }
}

#[test]
fn pushing_with_a_signing_key_signs_entries_the_remote_had_unsigned() {
    let keys = Project::new(PIPELINE);
    let (ci_key, ci_public) = generate_key(&keys, "ci");
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap();
    let alice = pushed_by(shared.path(), None);
    user_config(&alice, &format!("signing_key = \"{}\"\n", ci_key.display()));
    let (stdout, _) = ok(
        &alice,
        &["cache", "push", "pipeline.yaml", "--remote", remote],
        &[],
    );
    assert!(
        stdout.contains("pushed 4 records and 0 blobs"),
        "the records are rewritten signed, the blobs stay: {stdout}"
    );
    let (stdout, _) = ok(
        &alice,
        &["cache", "push", "pipeline.yaml", "--remote", remote],
        &[],
    );
    assert!(stdout.contains("4 already there"), "{stdout}");
    let bob = bob_trusting(&ci_public, "");
    let (statuses, warnings) = run(&bob, &["--remote", remote], &[]);
    assert!(
        all(&statuses, "fetched") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );
}

/// What a cluster job runs applies the same rule to the inputs it fetches: its trust settings
/// come through its environment (`TPIPE_TRUSTED_KEYS`), as the runner passes them.
#[test]
fn exec_node_refuses_an_input_no_trusted_key_signed() {
    let keys = Project::new(PIPELINE);
    let (_, ci_public) = generate_key(&keys, "ci");
    let shared = tempfile::tempdir().unwrap();
    let remote = shared.path().to_str().unwrap().to_string();
    let alice = pushed_by(shared.path(), None);
    let job = Project::new(PIPELINE);
    let key = give_action_to_job(&alice, "total", &job);
    let mut command = tpipe(
        &job,
        &[
            "exec-node",
            &key,
            "--cache",
            "job-cache",
            "--remote",
            &remote,
        ],
    );
    command.env("TPIPE_TRUSTED_KEYS", &ci_public);
    let (output, stdout, stderr) = output_of(command);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("warning: input `n1`") && stdout.contains("it is not signed"),
        "{stdout}"
    );
    assert!(!job
        .path("job-cache/records")
        .join(format!("{key}.json"))
        .exists());
}
