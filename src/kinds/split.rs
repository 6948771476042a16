//! `split`: divides a dataset's classes into tasks A and B and writes each task's training and
//! held-out images (`a_train`, `a_test`, `b_train`, `b_test`), relabelled 0..k-1, and, when
//! asked, validation images carved out of the training pool (`a_validation`, `b_validation`).
//!
//! ```yaml
//! similar:    { kind: split, inputs: { data: fashion }, method: random, seed: 0 }     # relation: similar
//! dissimilar:
//!   kind: split
//!   inputs: { data: fashion }
//!   method: classes
//!   classes_a: [T-shirt/top, Pullover, Dress, Coat, Shirt]      # tops and dresses
//!   classes_b: [Trouser, Sandal, Sneaker, Bag, Ankle boot]      # trousers, footwear, bags
//! ```

use serde_json::Value;

use crate::data::split::{split, SplitMethod, SplitOptions, Task};
use crate::data::Dataset;
use crate::kind::{Artifact, BuildContext, BuildError, BuildOutput, NodeKind, ParamProblem};
use crate::kinds::artifacts::{DatasetDescription, SplitDescription, TaskDescription};
use crate::schema::{Arity, Choice, InputSlot, ParamType};

pub struct SplitKind;

tpipe_engine::choice_enum! {
    /// How a split divides the classes.
    pub enum Method { Random = "random", Classes = "classes", Groups = "groups" }
}

tpipe_engine::kind_params! {
    /// The `split` kind's parameters.
    pub struct SplitParams {
        method: Method {
            ty: ParamType::Choice(Method::WORDS),
            default: "random",
            doc: "`random`: a seeded shuffle of the classes; `classes`: the classes named in `classes_a`/`classes_b`; \
                  `groups`: the coarse groups named in `groups_a`/`groups_b`",
        },
        seed: u64 {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "the random division of classes, and which images are kept under the caps",
        },
        size_a: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "random: classes in task A (0: half, rounded down)",
        },
        size_b: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "random: classes in task B (0: all the others)",
        },
        classes_a: Vec<String> {
            ty: ParamType::list_of(ParamType::Text),
            default: Vec::<String>::new(),
            doc: "classes: task A's classes, by name or number, in label order",
        },
        classes_b: Vec<String> {
            ty: ParamType::list_of(ParamType::Text),
            default: Vec::<String>::new(),
            doc: "classes: task B's classes (empty: every class not in A)",
        },
        groups_a: Vec<String> {
            ty: ParamType::list_of(ParamType::Text),
            default: Vec::<String>::new(),
            doc: "groups: coarse groups (CIFAR-100 super-classes, synthetic families) whose classes form task A",
        },
        groups_b: Vec<String> {
            ty: ParamType::list_of(ParamType::Text),
            default: Vec::<String>::new(),
            doc: "groups: task B's groups (empty: every class outside A's groups)",
        },
        images_per_class: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "at most this many training images per class (0: all)",
        },
        test_images_per_class: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "at most this many held-out images per class (0: all)",
        },
        validation_images_per_class: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "images per class carved out of the training pool for validation (`a_validation`, `b_validation`), \
                  disjoint from the training images and leaving them unchanged under `images_per_class`; 0: none",
        },
        relation: String {
            ty: ParamType::Text,
            default: "",
            doc: "what tasks A and B are to each other, as reports group splits: `similar`, `dissimilar` or a word of \
                  yours (empty: `similar` for random splits, `dissimilar` otherwise)",
        },
    }
}

impl SplitParams {
    /// The `relation`, else `similar` for random splits and `dissimilar` for the others.
    fn resolved_relation(&self) -> String {
        match (self.relation.as_str(), self.method) {
            ("", Method::Random) => "similar".to_string(),
            ("", _) => "dissimilar".to_string(),
            (relation, _) => relation.to_string(),
        }
    }

    /// Whether the seed draws anything: a random division, or images kept under a cap.
    fn seed_is_used(&self) -> bool {
        self.method == Method::Random
            || self.images_per_class > 0
            || self.test_images_per_class > 0
            || self.validation_images_per_class > 0
    }

    fn options(&self) -> SplitOptions {
        let method = match self.method {
            Method::Classes => SplitMethod::Classes {
                a: self.classes_a.clone(),
                b: self.classes_b.clone(),
            },
            Method::Groups => SplitMethod::Groups {
                a: self.groups_a.clone(),
                b: self.groups_b.clone(),
            },
            Method::Random => SplitMethod::Random {
                size_a: self.size_a,
                size_b: self.size_b,
            },
        };
        SplitOptions {
            method,
            seed: self.seed,
            images_per_class: self.images_per_class,
            test_images_per_class: self.test_images_per_class,
            validation_images_per_class: self.validation_images_per_class,
        }
    }
}

/// The Fashion-MNIST split recommended as "dissimilar": garments worn on the upper body (and
/// dresses) against trousers, footwear and bags.
pub const FASHION_MNIST_DISSIMILAR_A: [&str; 5] =
    ["T-shirt/top", "Pullover", "Dress", "Coat", "Shirt"];
pub const FASHION_MNIST_DISSIMILAR_B: [&str; 5] =
    ["Trouser", "Sandal", "Sneaker", "Bag", "Ankle boot"];

/// A parameter only one method reads: its name, that method, and whether it is set (a
/// non-empty list or a size above 0).
type MethodParam = (&'static str, Method, fn(&SplitParams) -> bool);

/// The parameters only one method reads.
const METHOD_PARAMS: &[MethodParam] = &[
    ("size_a", Method::Random, |params| params.size_a > 0),
    ("size_b", Method::Random, |params| params.size_b > 0),
    ("classes_a", Method::Classes, |params| {
        !params.classes_a.is_empty()
    }),
    ("classes_b", Method::Classes, |params| {
        !params.classes_b.is_empty()
    }),
    ("groups_a", Method::Groups, |params| {
        !params.groups_a.is_empty()
    }),
    ("groups_b", Method::Groups, |params| {
        !params.groups_b.is_empty()
    }),
];

fn task_description(task: &Task) -> TaskDescription {
    TaskDescription {
        classes: task.train.class_names.clone(),
        original_labels: task.classes.clone(),
        train_images: task.train.count,
        test_images: task.test.count,
        validation_images: task.validation.as_ref().map_or(0, |set| set.count),
    }
}

impl NodeKind for SplitKind {
    type Params = SplitParams;

    fn name(&self) -> &'static str {
        "split"
    }

    /// 2: writes `split.json` (label, method, classes), the split's lineage as content.
    /// 3: a split whose seed draws its images has the seed in its id, whatever its method.
    /// 4: `split.json` is a typed artifact with a format (`artifacts::SplitDescription`), and
    /// the similar/dissimilar word is `relation` (the parameter too). 5: validation images
    /// (`a_validation`, `b_validation`), counted in `split.json` (format 2).
    fn version(&self) -> u32 {
        5
    }

    fn about(&self) -> &'static str {
        "divide a dataset's classes into tasks A and B (random halves, named classes, or coarse groups)"
    }

    fn inputs(&self) -> Vec<InputSlot> {
        vec![InputSlot {
            name: "data",
            arity: Arity::One,
            accepts: &["dataset"],
            doc: "the dataset whose classes are divided",
            reads: &["train", "test", DatasetDescription::OUTPUT],
            names_in_key: false,
        }]
    }

    fn check(&self, typed: &SplitParams) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        let method = typed.method;
        for &(param, reader, is_set) in METHOD_PARAMS {
            if is_set(typed) && method != reader {
                problems.push(
                    ParamProblem::new(
                        param,
                        format!(
                            "`{param}` is only read with `method: {}`, but this split uses `{}`",
                            reader.word(),
                            method.word()
                        ),
                    )
                    .with_hint(format!(
                        "set `method: {}` or remove `{param}`",
                        reader.word()
                    )),
                );
            }
        }
        let (a_param, b_param, what, a, b) = match method {
            Method::Classes => (
                "classes_a",
                "classes_b",
                "classes",
                &typed.classes_a,
                &typed.classes_b,
            ),
            Method::Groups => (
                "groups_a",
                "groups_b",
                "groups",
                &typed.groups_a,
                &typed.groups_b,
            ),
            Method::Random => return problems,
        };
        if a.is_empty() {
            let example = if what == "classes" {
                "[T-shirt/top, Pullover, Dress, Coat, Shirt]"
            } else {
                "[vehicles_1, vehicles_2]"
            };
            problems.push(
                ParamProblem::new(
                    a_param,
                    format!("`method: {}` needs the {what} of task A", method.word()),
                )
                .with_hint(format!("add `{a_param}: {example}`")),
            );
        }
        for (param, list) in [(a_param, a), (b_param, b)] {
            if let Some((_, twice)) = list
                .iter()
                .enumerate()
                .find(|(position, name)| list[..*position].contains(name))
            {
                problems.push(ParamProblem::new(
                    param,
                    format!("`{twice}` is listed twice in `{param}`"),
                ));
            }
        }
        if let Some(shared) = a.iter().find(|name| b.contains(name)) {
            problems.push(
                ParamProblem::new(
                    b_param,
                    format!("`{shared}` is in both `{a_param}` and `{b_param}`"),
                )
                .with_hint("each class belongs to one task"),
            );
        }
        problems
    }

    fn unused_params(&self, typed: &SplitParams) -> Vec<&'static str> {
        let mut unused: Vec<&'static str> = METHOD_PARAMS
            .iter()
            .filter(|(_, reader, _)| *reader != typed.method)
            .map(|(param, _, _)| *param)
            .collect();
        // Without random division or caps nothing is drawn at random.
        if !typed.seed_is_used() {
            unused.push("seed");
        }
        unused
    }

    fn build(
        &self,
        params: &SplitParams,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        let data = context.input("data")?;
        let read = |part: &str| -> Result<Dataset, BuildError> {
            let bytes = context.read(data, part)?;
            Dataset::from_bytes(&bytes).map_err(|error| {
                BuildError::failed(format!("{}, output `{part}`: {error}", data.describe()))
            })
        };
        let (train, test) = (read("train")?, read("test")?);
        let dataset: DatasetDescription = context.read_artifact(data)?;
        let options = params.options();
        let tasks = split(&train, &test, &options)
            .map_err(|error| BuildError::failed(format!("cannot split the data: {error}")))?;
        let relation = params.resolved_relation();
        // Splits of one relation differ by seed wherever the seed draws something (the
        // classes, or the images kept under a cap): the report pairs runs within one split, so
        // each seed's split needs an id of its own. An unused seed is not in the key, so it
        // must not reach the content either.
        let seed = params.seed_is_used().then_some(options.seed);
        let id = match seed {
            Some(seed) => format!("{relation} s{seed}"),
            None => relation.clone(),
        };
        let description = SplitDescription {
            format: SplitDescription::FORMAT,
            id,
            relation,
            method: params.method.word().to_string(),
            seed,
            dataset: dataset.source,
            a: task_description(&tasks.a),
            b: task_description(&tasks.b),
        };
        let mut outputs = vec![
            ("a_train".into(), tasks.a.train.to_bytes()),
            ("a_test".into(), tasks.a.test.to_bytes()),
            ("b_train".into(), tasks.b.train.to_bytes()),
            ("b_test".into(), tasks.b.test.to_bytes()),
            (SplitDescription::OUTPUT.into(), description.to_bytes()),
        ];
        for (name, task) in [("a_validation", &tasks.a), ("b_validation", &tasks.b)] {
            if let Some(validation) = &task.validation {
                outputs.push((name.into(), validation.to_bytes()));
            }
        }
        Ok(BuildOutput {
            outputs,
            metrics: serde_json::to_value(&description).expect("artifacts always serialise"),
            backend: None,
        })
    }

    fn headline(&self, metrics: &Value) -> Option<String> {
        let task = |name: &str| -> Option<String> {
            let task = metrics.get(name)?;
            let classes = task.get("classes")?.as_array()?.len();
            Some(format!(
                "{} {classes} classes ({}+{})",
                name.to_uppercase(),
                task.get("train_images")?,
                task.get("test_images")?
            ))
        };
        Some(format!("{}, {}", task("a")?, task("b")?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::cache::Cache;
    use crate::data::synthetic::{generate, SyntheticOptions};
    use crate::kind::{InputArtifact, KindRegistry};
    use crate::kinds::dataset::tests::{build_with, params_with, typed_with};
    use crate::kinds::dataset::DatasetKind;

    /// A cache holding a small synthetic dataset, and the input artifact that points at it.
    fn dataset_input(cache: &Cache) -> BTreeMap<String, Vec<InputArtifact>> {
        let sets = generate(&SyntheticOptions {
            images_per_class: 10,
            test_images_per_class: 4,
            size: 8,
            ..SyntheticOptions::default()
        })
        .unwrap();
        let mut outputs: BTreeMap<String, _> = [("train", &sets.train), ("test", &sets.test)]
            .into_iter()
            .map(|(name, set)| (name.to_string(), cache.put_blob(&set.to_bytes()).unwrap()))
            .collect();
        let summary = |set: &Dataset| crate::kinds::artifacts::SetSummary {
            images: set.count,
            per_class: set.class_counts(),
        };
        let description = DatasetDescription {
            format: DatasetDescription::FORMAT,
            source: "synthetic".into(),
            classes: sets.train.num_classes(),
            class_names: sets.train.class_names.clone(),
            image_shape: [sets.train.channels, sets.train.height, sets.train.width],
            train: summary(&sets.train),
            test: summary(&sets.test),
            groups: Some(sets.train.coarse_names.clone()),
        };
        outputs.insert(
            DatasetDescription::OUTPUT.to_string(),
            cache.put_blob(&description.to_bytes()).unwrap(),
        );
        let artifact = InputArtifact {
            slot: "data".into(),
            index: 0,
            name: None,
            outputs,
        };
        BTreeMap::from([("data".to_string(), vec![artifact])])
    }

    fn build(overrides: Value) -> Result<BuildOutput, BuildError> {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        build_with(
            &SplitKind,
            &params_with(&SplitKind, overrides),
            dataset_input(&cache),
            &cache,
            dir.path(),
        )
    }

    fn blob(output: &BuildOutput, name: &str) -> Dataset {
        Dataset::from_bytes(
            &output
                .outputs
                .iter()
                .find(|(output, _)| output == name)
                .unwrap()
                .1,
        )
        .unwrap()
    }

    #[test]
    fn a_split_writes_four_relabelled_sets_and_names_the_classes() {
        let output =
            build(json!({ "method": "groups", "groups_a": ["family0"], "images_per_class": 6 }))
                .unwrap();
        let names: Vec<&str> = output
            .outputs
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "a_train",
                "a_test",
                "b_train",
                "b_test",
                SplitDescription::OUTPUT
            ]
        );
        // The split's lineage travels as content: relation, method, data set, classes.
        let description = SplitDescription::from_bytes(&output.outputs[4].1).unwrap();
        assert_eq!(description.relation, "dissimilar");
        // The cap draws images with the seed, so seeds give different splits with their own ids.
        assert_eq!(description.id, "dissimilar s0");
        assert_eq!(description.dataset, "synthetic");
        assert_eq!(
            description.seed,
            Some(0),
            "the cap draws its images with the seed"
        );
        assert_eq!(
            description.b.classes,
            ["f1c0", "f1c1", "f1c2", "f1c3", "f1c4"]
        );
        let a_train = blob(&output, "a_train");
        assert_eq!(
            a_train.class_names,
            vec!["f0c0", "f0c1", "f0c2", "f0c3", "f0c4"]
        );
        assert_eq!(a_train.class_counts(), vec![6; 5]);
        assert_eq!(blob(&output, "b_test").class_counts(), vec![4; 5]);
        assert_eq!(
            output.metrics["a"]["original_labels"],
            json!([0, 1, 2, 3, 4])
        );
        assert_eq!(
            output.metrics["b"]["classes"],
            json!(["f1c0", "f1c1", "f1c2", "f1c3", "f1c4"])
        );
        assert_eq!(
            SplitKind.headline(&output.metrics).unwrap(),
            "A 5 classes (30+20), B 5 classes (30+20)"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_blobs() {
        let first = build(json!({ "seed": 7, "images_per_class": 3 })).unwrap();
        let second = build(json!({ "seed": 7, "images_per_class": 3 })).unwrap();
        assert_eq!(first.outputs, second.outputs);
        assert_ne!(
            build(json!({ "seed": 8, "images_per_class": 3 }))
                .unwrap()
                .outputs,
            first.outputs
        );
    }

    #[test]
    fn an_unknown_class_fails_the_build_naming_it_and_the_valid_ones() {
        let Err(BuildError::Failed(message)) =
            build(json!({ "method": "classes", "classes_a": ["f0c0", "f3c1"] }))
        else {
            panic!("the build should fail");
        };
        let message = message.to_string();
        assert!(
            message.starts_with(
                "cannot split the data: classes_a names class `f3c1`, which the dataset does not have"
            ),
            "{message}"
        );
        assert!(message.contains("(its classes: f0c0, f0c1,"), "{message}");
    }

    #[test]
    fn check_catches_what_the_parameters_alone_show() {
        let check = |overrides: Value| SplitKind.check(&typed_with(&SplitKind, overrides));
        let problems = check(json!({ "method": "classes" }));
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].message,
            "`method: classes` needs the classes of task A"
        );
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("add `classes_a: [T-shirt/top, Pullover, Dress, Coat, Shirt]`")
        );

        let problems = check(
            json!({ "method": "classes", "classes_a": ["Bag", "Coat"], "classes_b": ["Coat"] }),
        );
        assert_eq!(
            problems[0].message,
            "`Coat` is in both `classes_a` and `classes_b`"
        );

        let problems = check(json!({ "method": "groups", "groups_a": ["x", "x"] }));
        assert_eq!(problems[0].message, "`x` is listed twice in `groups_a`");

        let problems = check(json!({ "classes_a": ["Bag"] }));
        assert_eq!(
            problems[0].message,
            "`classes_a` is only read with `method: classes`, but this split uses `random`"
        );
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("set `method: classes` or remove `classes_a`")
        );

        assert!(check(json!({})).is_empty());
    }

    #[test]
    fn the_key_leaves_out_what_the_method_does_not_read() {
        let unused = |overrides: Value| SplitKind.unused_params(&typed_with(&SplitKind, overrides));
        assert_eq!(
            unused(json!({})),
            vec!["classes_a", "classes_b", "groups_a", "groups_b"]
        );
        assert_eq!(
            unused(json!({ "method": "classes" })),
            vec!["size_a", "size_b", "groups_a", "groups_b", "seed"]
        );
        assert!(!unused(json!({ "method": "classes", "images_per_class": 100 })).contains(&"seed"));
    }

    /// The documented Fashion-MNIST split resolves against the real class names.
    #[test]
    fn the_recommended_fashion_mnist_split_names_real_classes() {
        let mut all: Vec<&str> = FASHION_MNIST_DISSIMILAR_A
            .iter()
            .chain(&FASHION_MNIST_DISSIMILAR_B)
            .copied()
            .collect();
        all.sort_unstable();
        let mut names = crate::data::fashion_mnist::CLASS_NAMES.to_vec();
        names.sort_unstable();
        assert_eq!(all, names);
    }

    /// Both kinds through the spec layer: numbers in class lists become names, defaults apply,
    /// and check problems come back as diagnostics.
    #[test]
    fn pipelines_using_both_kinds_validate() {
        let mut registry = KindRegistry::new();
        registry.register(DatasetKind).register(SplitKind);
        let text = "nodes:\n  data: { kind: dataset, source: synthetic }\n  halves: { kind: split, inputs: { data: data }, method: classes, classes_a: [0, 1] }\n";
        let pipeline = crate::spec::parse(Path::new("pipeline.yaml"), text, &registry).unwrap();
        let halves = pipeline.node("halves").unwrap();
        assert_eq!(halves.params["classes_a"], json!(["0", "1"]));
        assert_eq!(halves.params["images_per_class"], json!(0));

        let text = "nodes:\n  data: { kind: dataset, source: cifar10 }\n";
        let errors = crate::spec::parse(Path::new("pipeline.yaml"), text, &registry).unwrap_err();
        let rendered = errors.to_string();
        assert!(
            rendered.contains("source `cifar10` needs `path`"),
            "{rendered}"
        );
    }
}
