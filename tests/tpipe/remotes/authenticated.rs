//! Issue 21: a WebDAV remote behind nginx's `auth_basic`, over HTTPS with a CA made for the
//! test: credentials from the environment, `~/.netrc` and the credentials file each work, a
//! credentials file others can read is refused, a 401 says where tpipe looked, and the
//! password shows up nowhere.

use std::path::Path;

use super::servers::{TestCa, WebDavOptions, WebDavServer};
use super::trust::user_config;
use super::{all, cache_push, output_of, run, tpipe, PIPELINE};
use crate::support::Project;

const USER: &str = "alice";
/// Looked for in every output, record, log and cache file afterwards.
const PASSWORD: &str = "grep-me-Pa55word-7f3a91";

/// A file only its owner reads, as credentials must be.
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn files_containing(folder: &Path, needle: &str) -> Vec<String> {
    walkdir::WalkDir::new(folder)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .filter(|entry| {
            std::fs::read(entry.path()).is_ok_and(|bytes| {
                bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            })
        })
        .map(|entry| entry.path().display().to_string())
        .collect()
}

#[test]
fn an_https_remote_behind_basic_auth_takes_credentials_from_the_environment_netrc_and_the_credentials_file(
) {
    let certificates = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(certificates.path());
    let server = WebDavServer::start_with(&WebDavOptions {
        tls: Some(&ca),
        basic_auth: Some((USER, PASSWORD)),
    });
    let remote = server.url("team/cache");
    let lab_ca = vec![(
        "SSL_CERT_FILE".to_string(),
        ca.ca_certificate.display().to_string(),
    )];
    let mut printed = String::new();

    // No credentials: refused with where tpipe looked, and nothing uploaded.
    let alice = Project::new(PIPELINE);
    run(&alice, &["--no-remote"], &[]);
    let push = [
        "cache",
        "push",
        "pipeline.yaml",
        "--remote",
        remote.as_str(),
    ];
    let mut command = tpipe(&alice, &push);
    command.envs(lab_ca.clone());
    let (output, stdout, stderr) = output_of(command);
    printed.push_str(&(stdout + &stderr));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("remote `{remote}` refused access: not authenticated (HTTP 401)"))
            && stderr.contains("tpipe sent no credentials: it looked in TPIPE_REMOTE_TOKEN, TPIPE_REMOTE_USER and TPIPE_REMOTE_PASSWORD (not set)")
            && stderr.contains("none named by `credentials`")
            && stderr.contains(".netrc` (no such file)"),
        "{stderr}"
    );
    assert!(
        !server.disk_path("team/cache/records").exists(),
        "nothing was uploaded"
    );

    // The right password, but not the lab's CA: the server's certificate is not trusted.
    let with_password = [
        ("TPIPE_REMOTE_USER".to_string(), USER.to_string()),
        ("TPIPE_REMOTE_PASSWORD".to_string(), PASSWORD.to_string()),
    ];
    let mut command = tpipe(&alice, &push);
    command.envs(with_password.clone());
    let (output, stdout, stderr) = output_of(command);
    printed.push_str(&(stdout + &stderr));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach remote") && stderr.contains("ca_bundle"),
        "{stderr}"
    );

    // From the environment, with the CA from SSL_CERT_FILE.
    let environment: Vec<_> = with_password.into_iter().chain(lab_ca.clone()).collect();
    let stdout = cache_push(&alice, &remote, &environment);
    assert!(stdout.contains("pushed 4 records and 4 blobs"), "{stdout}");
    printed.push_str(&stdout);

    // Bob: from ~/.netrc, with the CA from `ca_bundle` in his config.
    let bob = Project::new(PIPELINE);
    write_private(
        &bob.path(".netrc"),
        &format!("machine 127.0.0.1\n  login {USER}\n  password {PASSWORD}\n"),
    );
    user_config(
        &bob,
        &format!("ca_bundle = \"{}\"\n", ca.ca_certificate.display()),
    );
    let (statuses, warnings) = run(&bob, &["--remote", &remote], &[]);
    assert!(
        all(&statuses, "fetched") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );

    // Carol: from the credentials file her config names.
    let carol = Project::new(PIPELINE);
    let credentials = carol.path("user-config/tpipe/credentials.toml");
    write_private(
        &credentials,
        &format!("[\"127.0.0.1\"]\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n"),
    );
    user_config(
        &carol,
        &format!(
            "credentials = \"credentials.toml\"\nca_bundle = \"{}\"\n",
            ca.ca_certificate.display()
        ),
    );
    let (statuses, warnings) = run(&carol, &["--remote", &remote], &[]);
    assert!(
        all(&statuses, "fetched") && warnings.is_empty(),
        "{statuses:?} {warnings:?}"
    );

    // …but not once others may read it, as ssh refuses such a key.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (output, stdout, stderr) = output_of(tpipe(
        &carol,
        &["run", "pipeline.yaml", "--remote", &remote],
    ));
    printed.push_str(&(stdout + &stderr));
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("can be read or written by others (mode 0644)")
            && stderr.contains(&format!("chmod 600 {}", credentials.display())),
        "{stderr}"
    );

    // The password is in no output, record, provenance, cache file or server log.
    assert!(!printed.contains(PASSWORD), "{printed}");
    for project in [&alice, &bob, &carol] {
        assert_eq!(
            files_containing(&project.path("cache"), PASSWORD),
            Vec::<String>::new()
        );
    }
    assert_eq!(
        files_containing(&server.disk_path("team"), PASSWORD),
        Vec::<String>::new()
    );
    assert!(!server.logs().contains(PASSWORD));
}

#[test]
fn credentials_are_never_sent_over_plain_http_to_another_machine() {
    let alice = Project::new(PIPELINE);
    let mut command = tpipe(
        &alice,
        &[
            "cache",
            "push",
            "pipeline.yaml",
            "--remote",
            "http://dav.example.org/cache",
        ],
    );
    command
        .env("TPIPE_REMOTE_USER", USER)
        .env("TPIPE_REMOTE_PASSWORD", PASSWORD);
    let (output, stdout, stderr) = output_of(command);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing to send credentials (the password of user `alice` from the environment (TPIPE_REMOTE_*)) over plain http:// to `dav.example.org` (hint: use https://)"),
        "{stderr}"
    );
    assert!(!format!("{stdout}{stderr}").contains(PASSWORD));
}

/// A lab's own CA serves an S3 endpoint of its own (MinIO, Ceph) as it serves WebDAV: the
/// bundle is read for S3 too, and one that is not there is a clear error, not ignored.
#[test]
fn an_s3_remote_reads_the_labs_ca_bundle_too() {
    let server = super::servers::S3Server::start();
    let remote = server.url("team/cache");
    let certificates = tempfile::tempdir().unwrap();
    let ca = TestCa::generate(certificates.path());
    let alice = Project::new(PIPELINE);
    run(&alice, &["--no-remote"], &[]);

    let missing = certificates.path().join("no-such-ca.pem");
    let mut command = tpipe(
        &alice,
        &["cache", "push", "pipeline.yaml", "--remote", &remote],
    );
    command
        .envs(server.environment())
        .env("TPIPE_CA_BUNDLE", &missing);
    let (output, _, stderr) = output_of(command);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot read the CA bundle `{}`",
            missing.display()
        )) && stderr.contains("TPIPE_CA_BUNDLE"),
        "{stderr}"
    );

    let mut environment = server.environment();
    environment.push((
        "TPIPE_CA_BUNDLE".to_string(),
        ca.ca_certificate.display().to_string(),
    ));
    let stdout = cache_push(&alice, &remote, &environment);
    assert!(stdout.contains("pushed 4 records and 4 blobs"), "{stdout}");
}
