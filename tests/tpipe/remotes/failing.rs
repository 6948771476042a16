//! Issue 21: a server that answers every upload with 500 (nginx's HTML error page, as when its
//! worker cannot write its root) is told once: the run builds everything, says once that it
//! stopped pushing and why it may be, and `cache push` prints one summary, never the page.

use super::servers::WebDavServer;
use super::{all, output_of, run, tpipe};
use crate::support::Project;

const TWELVE: &str =
    "nodes:\n  \"n{i}\": { kind: number, matrix: { i: 1..=12 }, value: \"{i}\" }\n";

#[test]
fn a_server_that_fails_every_upload_stops_the_pushes_once_and_push_sums_it_up() {
    let server = WebDavServer::start();
    let remote = server.url("failing/cache");
    let alice = Project::new(TWELVE);
    let (statuses, warnings) = run(&alice, &["--push", "--remote", &remote], &[]);
    assert!(all(&statuses, "built"), "{statuses:?}");
    let stopped: Vec<&String> = warnings
        .iter()
        .filter(|warning| warning.contains("stopped pushing"))
        .collect();
    assert_eq!(stopped.len(), 1, "{warnings:?}");
    assert!(
        stopped[0].contains("3 uploads in a row failed")
            && stopped[0].contains("HTTP 500 Internal Server Error")
            && stopped[0].contains("client_body_temp_path"),
        "{stopped:?}"
    );
    assert!(
        warnings.len() <= 3,
        "the failures before the stop and the stop itself, nothing per node after: {warnings:?}"
    );
    assert!(
        warnings.iter().all(|warning| !warning.contains('<')),
        "{warnings:?}"
    );

    let (output, stdout, stderr) = output_of(tpipe(
        &alice,
        &["cache", "push", "pipeline.yaml", "--remote", &remote],
    ));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.len() <= 3,
        "one summary, not a stanza per entry:\n{stdout}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.contains("stopped pushing"))
            .count(),
        1,
        "{stdout}"
    );
    assert!(
        stdout.contains("entries not pushed") && stdout.contains("pushed 0 records"),
        "{stdout}"
    );
    assert!(
        !stdout.contains('<') && !stderr.contains('<'),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn a_server_that_fails_every_read_is_asked_no_more_after_a_few_errors_in_a_row() {
    let server = WebDavServer::start();
    let remote = server.url("broken/cache");
    let alice = Project::new(TWELVE);
    let (statuses, warnings) = run(&alice, &["--remote", &remote], &[]);
    assert!(all(&statuses, "built"), "{statuses:?}");
    let given_up: Vec<&String> = warnings
        .iter()
        .filter(|warning| warning.contains("requests in a row failed with a server error"))
        .collect();
    assert_eq!(given_up.len(), 1, "{warnings:?}");
    assert!(given_up[0].contains("not asking it again"), "{given_up:?}");
    // The errors before the third, and lookups already under way on the other threads.
    assert!(warnings.len() <= 5, "{warnings:?}");
    assert!(
        warnings.iter().all(|warning| !warning.contains('<')),
        "{warnings:?}"
    );
}
