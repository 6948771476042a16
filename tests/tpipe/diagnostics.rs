//! Bad pipeline files: every problem reported at once, each pointing at its text.

use std::path::Path;

use expect_test::{expect, Expect};
use tpipe::graph::PipelineGraph;

fn check(yaml: &str, expected: Expect) {
    check_with(&tpipe_engine::testing::registry(), yaml, expected);
}

/// Like `check`, against the kinds `tpipe` ships (dataset, split, train, …).
#[cfg(feature = "kinds")]
fn check_builtin(yaml: &str, expected: Expect) {
    check_with(&tpipe::kinds::builtin_registry(), yaml, expected);
}

fn check_with(registry: &tpipe::kind::KindRegistry, yaml: &str, expected: Expect) {
    let rendered = match tpipe::spec::parse(Path::new("pipeline.yaml"), yaml, registry) {
        Err(errors) => errors.to_string(),
        Ok(pipeline) => match PipelineGraph::build(&pipeline) {
            Err(errors) => errors.to_string(),
            Ok(_) => "no errors".to_string(),
        },
    };
    expected.assert_eq(&rendered);
}

#[test]
fn misspelt_parameter_kind_and_reference_are_all_reported_with_hints() {
    check(
        r#"nodes:
  a:
    kind: number
    valeu: 1
  b:
    kind: summ
  c:
    kind: sum
    inputs: { items: aa }
"#,
        expect![[r#"
            error: unknown parameter `valeu` for kind `number` (in node `a`)
             --> pipeline.yaml:4:5
              |
            4 |     valeu: 1
              |     ^^^^^
              = hint: did you mean `value`?

            error: missing parameter `value` (the number; expected an integer) (in node `a`)
             --> pipeline.yaml:2:3
              |
            2 |   a:
              |   ^
              = hint: add `value: …` to the node or to `defaults: { number: … }`

            error: unknown kind `summ` (in node `b`)
             --> pipeline.yaml:6:11
              |
            6 |     kind: summ
              |           ^^^^
              = hint: did you mean `sum`?

            error: input `items` refers to unknown node `aa` (in node `c`)
             --> pipeline.yaml:9:22
              |
            9 |     inputs: { items: aa }
              |                      ^^
              = hint: did you mean `a`?

            4 errors in the pipeline file"#]],
    );
}

#[test]
fn a_cycle_prints_its_whole_path() {
    check(
        "nodes:\n  a: { kind: sum, inputs: { items: c } }\n  b: { kind: sum, inputs: { items: a } }\n  c: { kind: sum, inputs: { items: b } }\n",
        expect![[r#"
            error: node `a` has a circular dependency `a -> b -> c -> a` (in node `a`)
             --> pipeline.yaml:2:3
              |
            2 |   a: { kind: sum, inputs: { items: c } }
              |   ^
              = hint: a node cannot read its own output, directly or through others

            1 error in the pipeline file"#]],
    );
}

#[test]
fn wrong_types_are_reported_once_per_place_even_in_a_matrix() {
    check(
        r#"nodes:
  "n{i}":
    kind: number
    matrix: { i: [1, 2, 3] }
    value: "x{i}"
    fail: maybe
"#,
        expect![[r#"
            error: parameter `fail`: expected true or false, found `maybe` (in 3 nodes of block `n{i}`: `n1`, `n2`, `n3`)
             --> pipeline.yaml:6:11
              |
            6 |     fail: maybe
              |           ^^^^^

            error: parameter `value`: expected an integer, found `x1`, `x2`, `x3` (in 3 nodes of block `n{i}`: `n1`, `n2`, `n3`)
             --> pipeline.yaml:5:12
              |
            5 |     value: "x{i}"
              |            ^^^^^^

            2 errors in the pipeline file"#]],
    );
}

#[test]
fn unsafe_names_and_matrix_mistakes() {
    check(
        r#"nodes:
  "bad/name":
    kind: number
    value: 1
  "n{j}":
    kind: number
    matrix: { i: 1..7 }
    value: 1
  "m{i}":
    kind: number
    matrix: { i: [1, 2], k: [a, b] }
    value: 13
"#,
        expect![[r#"
            error: node name `bad/name` contains a path separator (in node `bad/name`)
             --> pipeline.yaml:2:3
              |
            2 |   "bad/name":
              |   ^^^^^^^^^^
              = hint: use letters, digits and `_ - + . =`

            error: `1..7` is ambiguous: write `1..=7` (inclusive) or a list (in node `n{j}`)
             --> pipeline.yaml:7:18
              |
            7 |     matrix: { i: 1..7 }
              |                  ^^^^

            error: `{j}` in the node name is not a matrix variable (in node `n{j}`)
             --> pipeline.yaml:5:3
              |
            5 |   "n{j}":
              |   ^^^^^^
              = hint: add a `matrix:` that defines it

            error: matrix variable `k` does not appear in the node name `m{i}`, so its nodes would share one name (in node `m{i}`)
             --> pipeline.yaml:9:3
              |
            9 |   "m{i}":
              |   ^^^^^^
              = hint: add `{k}` to the name

            4 errors in the pipeline file"#]],
    );
}

#[test]
fn unknown_top_level_keys_inputs_and_duplicate_names() {
    check(
        r#"node:
  a: { kind: number, value: 1 }
nodes:
  a: { kind: number, value: 1 }
  b: { kind: sum, inputs: { itemz: a } }
  c: { kind: sum, inputs: { items: "zz*" } }
"#,
        expect![[r#"
            error: unknown top-level key `node`
             --> pipeline.yaml:1:1
              |
            1 | node:
              | ^^^^
              = hint: did you mean `nodes`?

            error: kind `sum` has no input `itemz` (in node `b`)
             --> pipeline.yaml:5:29
              |
            5 |   b: { kind: sum, inputs: { itemz: a } }
              |                             ^^^^^
              = hint: did you mean `items`?

            error: node `b` needs input `items` (numbers to add) (in node `b`)
             --> pipeline.yaml:5:3
              |
            5 |   b: { kind: sum, inputs: { itemz: a } }
              |   ^
              = hint: add `inputs: { items: <node> }`

            error: pattern `zz*` in input `items` matches no node (in node `c`)
             --> pipeline.yaml:6:36
              |
            6 |   c: { kind: sum, inputs: { items: "zz*" } }
              |                                    ^^^^^

            4 errors in the pipeline file"#]],
    );
}

#[test]
fn invalid_yaml_points_at_the_syntax_error() {
    check(
        "nodes:\n  a: { kind: number, value: 1\n  b: 2\n",
        expect![[r#"
        error: invalid YAML: did not find expected ',' or '}'
         --> pipeline.yaml:3:4
          |
        3 |   b: 2
          |    ^

        1 error in the pipeline file"#]],
    );
}

#[test]
fn a_valid_grid_has_no_errors() {
    check(
        r#"defaults:
  sum: { offset: 1 }
nodes:
  "src{s}":
    kind: number
    matrix: { s: [A, B] }
    value: 1
  "{s}{n}B{plus}":
    kind: sum
    matrix: { s: [A, B], n: 1..=7, plus: { false: "", true: "+" } }
    inputs: { items: "src{s}" }
    fail: "{plus}"
"#,
        expect!["no errors"],
    );
}

#[test]
#[cfg(feature = "kinds")]
fn a_misspelt_backend_lists_the_backends() {
    check_builtin(
        r#"nodes:
  data:
    kind: dataset
    source: synthetic
  split:
    kind: split
    inputs: { data: data }
  baseB:
    kind: train
    task: B
    backend: troch
    inputs: { data: split }
"#,
        expect![[r#"
            error: parameter `backend`: expected one of `auto`, `cpu`, `native`, `flex`, `torch`, `wgpu`, found `troch` (hint: did you mean `torch`?) (in node `baseB`)
              --> pipeline.yaml:11:14
               |
            11 |     backend: troch
               |              ^^^^^

            1 error in the pipeline file"#]],
    );
}

#[test]
#[cfg(feature = "kinds")]
fn shipped_pipelines_and_examples_are_valid() {
    let registry = tpipe::kinds::builtin_registry();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for folder in ["pipelines", "examples"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|extension| extension == "yaml")
            {
                let pipeline = tpipe::spec::load(&path, &registry)
                    .unwrap_or_else(|error| panic!("{}:\n{error}", path.display()));
                PipelineGraph::build(&pipeline)
                    .unwrap_or_else(|error| panic!("{}:\n{error}", path.display()));
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "found only {checked} pipeline files");
}

/// Issue 9: a transfer whose network differs from its base's fails at `plan`, before the base
/// trains, pointing at the `base:` reference.
#[test]
#[cfg(feature = "kinds")]
fn a_transfer_whose_network_differs_from_its_base_is_reported_before_anything_trains() {
    check_builtin(
        r#"nodes:
  data: { kind: dataset, source: synthetic }
  halves: { kind: split, inputs: { data: data } }
  baseA: { kind: train, inputs: { data: halves }, fc_widths: [64, 64] }
  A3B:
    kind: transfer
    inputs: { base: baseA, data: halves }
    layers_copied: 3
"#,
        expect![[r#"
            error: parameter `fc_widths` is [512,512] here but [64,64] in base `baseA`; copied layers need the same network (in node `A3B`)
             --> pipeline.yaml:7:21
              |
            7 |     inputs: { base: baseA, data: halves }
              |                     ^^^^^
              = hint: set `fc_widths` in `defaults:` for both `train` and `transfer`

            1 error in the pipeline file"#]],
    );
}

#[test]
fn bad_resources_point_at_their_field_in_nodes_and_defaults() {
    check(
        r#"defaults:
  number: { resources: { time: 1h } }
nodes:
  a:
    kind: number
    value: 1
    resources:
      gpu: 1
      mem: 4 GB
      gpus: two
"#,
        expect![[r#"
            error: `time` must be a Slurm time limit such as `90`, `2:00:00` or `1-12:00:00`, found "1h"
             --> pipeline.yaml:2:32
              |
            2 |   number: { resources: { time: 1h } }
              |                                ^^
              = hint: minutes, or hours:minutes:seconds, optionally after `days-`

            error: unknown resource `gpu` (in node `a`)
             --> pipeline.yaml:8:7
              |
            8 |       gpu: 1
              |       ^^^
              = hint: did you mean `gpus`?

            error: `gpus` must be a count or `type:count`, found "two" (in node `a`)
              --> pipeline.yaml:10:13
               |
            10 |       gpus: two
               |             ^^^
               = hint: for example `gpus: 1`, `gpus: a100:2` or `gpus: {count: 2, type: a100}`

            error: `mem` must be a size such as `4G` or `500M`, found "4 GB" (in node `a`)
             --> pipeline.yaml:9:12
              |
            9 |       mem: 4 GB
              |            ^
              = hint: a whole number with K, M, G or T (megabytes without a suffix)

            4 errors in the pipeline file"#]],
    );
}

#[test]
fn mistakes_a_matrix_repeats_are_one_error_each_with_their_count_values_and_first_nodes() {
    check(
        r#"nodes:
  "n{i}":
    kind: number
    matrix: { i: -3..=5 }
    value: 1
    modulo: "{i}"
  "sum{j}":
    kind: sum
    matrix: { j: 1..=40 }
    inputs: { items: "m{j}" }
"#,
        expect![[r#"
            error: parameter `modulo`: expected an integer ≥ 0, found `-3` … `-1` (in 3 nodes of block `n{i}`: `n-3`, `n-2`, `n-1`)
             --> pipeline.yaml:6:13
              |
            6 |     modulo: "{i}"
              |             ^^^^^

            error: input `items` refers to unknown node `m1`, `m2`, `m3`, … (in 40 nodes of block `sum{j}`: `sum1`, `sum2`, `sum3`, …)
              --> pipeline.yaml:10:22
               |
            10 |     inputs: { items: "m{j}" }
               |                      ^^^^^^
               = hint: did you mean `sum1`?

            2 errors in the pipeline file"#]],
    );
}

#[test]
fn cycles_of_a_matrix_are_one_error_and_a_long_cycle_is_shortened() {
    // `c1` reads `c2`, …, `c30` reads `c1`: the value of `{i}` is the next node's name.
    let ring: Vec<String> = (1..=30)
        .map(|index| format!("c{}: \"{index}\"", index % 30 + 1))
        .collect();
    let yaml = format!(
        "nodes:\n  \"self{{k}}\":\n    kind: sum\n    matrix: {{ k: [a, b, c, d] }}\n    inputs: {{ items: \"self{{k}}\" }}\n  \"c{{i}}\":\n    kind: sum\n    matrix: {{ i: {{ {} }} }}\n    inputs: {{ items: \"{{i}}\" }}\n",
        ring.join(", ")
    );
    check(
        &yaml,
        expect![[r#"
        error: node `selfa` has a circular dependency `selfa -> selfa` (in 4 nodes of block `self{k}`: `selfa`, `selfb`, `selfc`, …)
         --> pipeline.yaml:2:3
          |
        2 |   "self{k}":
          |   ^^^^^^^^^
          = hint: a node cannot read its own output, directly or through others

        error: node `c30` has a circular dependency `c30 -> c29 -> c28 -> c27 -> c26 -> c25 -> c24 -> c23 -> c22 -> c21 -> … (20 more) -> c30` (in node `c30`)
         --> pipeline.yaml:6:3
          |
        6 |   "c{i}":
          |   ^^^^^^
          = hint: a node cannot read its own output, directly or through others

        2 errors in the pipeline file"#]],
    );
}

#[test]
fn a_pipeline_past_the_node_limit_is_refused_before_its_nodes_are_made() {
    let registry = tpipe_engine::testing::registry();
    let yaml = "nodes:\n  \"n{i}_{j}\":\n    kind: number\n    matrix: { i: 1..=1000000, j: [a, b, c] }\n    exclude: [{ j: b }]\n    value: \"{i}\"\n";
    let limits = tpipe::spec::Limits { max_nodes: 1_000 };
    let errors = tpipe::spec::parse_with(Path::new("pipeline.yaml"), yaml, &registry, &limits)
        .unwrap_err()
        .to_string();
    expect![[r#"
        error: block `n{i}_{j}` would make 2,000,000 nodes, more than the limit of 1,000
         --> pipeline.yaml:4:5
          |
        4 |     matrix: { i: 1..=1000000, j: [a, b, c] }
          |     ^^^^^^
          = hint: `i` has 1,000,000 values: a typo? if so many nodes are meant, raise the limit with `--max-nodes N` or `max_nodes = N` in tpipe.toml (now 1,000)

        1 error in the pipeline file"#]]
    .assert_eq(&errors);
}

#[test]
fn beyond_twenty_errors_the_rest_are_summarised_by_their_lines() {
    let mut yaml = String::from("nodes:\n");
    for index in 0..25 {
        yaml.push_str(&format!("  n{index}: {{ kind: number, value: x }}\n"));
    }
    let registry = tpipe_engine::testing::registry();
    let errors = tpipe::spec::parse(Path::new("pipeline.yaml"), &yaml, &registry)
        .unwrap_err()
        .to_string();
    assert_eq!(errors.matches("\nerror: ").count() + 1, 20, "{errors}");
    assert!(
        errors.ends_with("… and 5 more errors not shown, at lines 22, 23, 24, 25, 26 (fix the ones above first)\n\n25 errors in the pipeline file"),
        "{errors}"
    );
}
