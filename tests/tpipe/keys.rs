//! Keys are stable across runs, processes and machines: these goldens pin them. If one changes
//! on purpose (a new key scheme), bump `hash::KEY_SCHEME_VERSION` and update them.

use expect_test::expect;

use crate::support::Project;

#[test]
fn golden_keys() {
    let project = Project::new(
        "nodes:\n  one: { kind: number, value: 1 }\n  two: { kind: number, value: 2, modulo: 3 }\n  both: { kind: sum, inputs: { items: [one, two] }, offset: 4 }\n",
    );
    project.run();
    let keys: Vec<String> = project
        .plan()
        .nodes
        .iter()
        .map(|node| format!("{} {}", node.name, node.key.clone().unwrap()))
        .collect();
    expect![[r#"
        one 893ba5e2043c33867d00187cf40123cee7e5bea87e683bfb7170d1c738550bb6
        two 5e3796de484e8e282f14c77294b8d9783c77f724f3d89cc46b8f24b37d39420d
        both 2e0a98c287fbaf5ae214bad4a25d3e861224d02cd272f208c822f3404294f0fd"#]]
    .assert_eq(&keys.join("\n"));
}

#[test]
fn keys_do_not_depend_on_where_the_project_lives() {
    let yaml =
        "nodes:\n  one: { kind: number, value: 1 }\n  two: { kind: sum, inputs: { items: one } }\n";
    let first = Project::new(yaml);
    let second = Project::new(yaml);
    first.run();
    second.run();
    let keys = |project: &Project| {
        project
            .plan()
            .nodes
            .into_iter()
            .map(|node| node.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&first), keys(&second));
}
