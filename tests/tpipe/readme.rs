//! The README quotes the committed report and never re-types it: its results block is
//! `results/paper/readme.md` byte for byte (`scripts/sync-readme` copies it).

use std::path::Path;

const BEGIN: &str = "<!-- results/paper/readme.md begins: written by the report, copied by scripts/sync-readme; do not edit -->";
const END: &str = "<!-- results/paper/readme.md ends -->";

#[test]
fn the_readme_quotes_the_committed_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let report = std::fs::read_to_string(root.join("results/paper/readme.md")).unwrap();
    let start = readme
        .find(BEGIN)
        .map(|at| at + BEGIN.len() + 1)
        .expect("README.md has the begin marker");
    let stop = readme[start..]
        .find(END)
        .map(|at| start + at)
        .expect("README.md has the end marker after the begin marker");
    assert!(
        readme[start..stop] == report,
        "README.md's results block differs from results/paper/readme.md (hint: run scripts/sync-readme)"
    );
    // The block is the report's own: it names its verdicts and the curve model's intervals.
    assert!(report.contains("| finding | claim | where | verdict | ours | paper, carried over |"));
}
