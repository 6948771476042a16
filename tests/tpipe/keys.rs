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
        .map(|node| format!("{} {}", node.name, node.key.unwrap()))
        .collect();
    expect![[r#"
        one a959c955f7570219b469e489e7815f353e250fe3b20b48b224c43fc8c7734666
        two a63cf7e62c3bb0bcaa33132a18f8955115296e7c3c6bac3b9a4afb9b0880612a
        both 18bd99420228d03c54488841472b3b8f0d6606bb6aae7e3cbbd729845569e35f"#]]
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
