//! Evaluate nodes' metrics → typed runs. An input whose metrics lack what every table needs
//! (`top1`, `variant`) is skipped with a reason; a missing descriptive field gets a stand-in and
//! a note, so one odd node never sinks the report.

use std::collections::BTreeMap;

use serde_json::Value;

use super::statistics::binomial_upper_tail;

/// What a run measures, in the paper's terms. Both directions (into B and into A) fold onto
/// the same roles, as the paper pools its half-nets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A base net on its own task (baseA on A, baseB on B).
    Base,
    /// Layers copied from a net trained on the same task (BnB).
    Selffer,
    /// Layers copied from a net trained on the other task (AnB).
    Transfer,
    /// Lower layers left at random initial values (the random-weights control).
    Random,
    /// A variant label the report does not know; shown in tables, left out of the findings.
    Other,
}

/// One evaluated net.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub node: String,
    /// The label as the evaluate node wrote it (`AnB+`, `baseA`, …).
    pub variant: String,
    pub role: Role,
    pub fine_tuned: bool,
    pub target_task: String,
    pub layers_copied: u32,
    pub seed: Option<i64>,
    pub split: String,
    pub split_kind: String,
    pub top1: f64,
    pub top5: Option<f64>,
    pub images: Option<u64>,
    pub num_classes: Option<u64>,
    /// One-sided binomial p-value of the run's correct count against guessing (1/classes);
    /// `None` when the class or image count is unknown.
    pub chance_p_value: Option<f64>,
    /// Not distinguishable from guessing (`chance_p_value` ≥ the report's `chance_alpha`):
    /// listed, and left out of every mean, figure and sentence.
    pub at_chance: bool,
}

impl Run {
    /// The paper's name for the run's variant (`baseB`, `BnB`, `AnB+`, `random`, …), whatever
    /// its target task; unknown labels stay as written.
    pub fn paper_variant(&self) -> String {
        paper_variant(self.role, self.fine_tuned, &self.variant)
    }

    /// 1 / classes, when the number of classes is known.
    fn chance_accuracy(&self) -> Option<f64> {
        self.num_classes
            .filter(|classes| *classes > 0)
            .map(|classes| 1.0 / classes as f64)
    }

    /// The binomial test of the one chance rule: how likely guessing is to get at least this
    /// run's correct count on its held-out images.
    fn chance_test(&self) -> Option<f64> {
        let images = self.images.filter(|images| *images > 0)?;
        let correct = (self.top1 * images as f64).round() as u64;
        Some(binomial_upper_tail(
            correct,
            images,
            self.chance_accuracy()?,
        ))
    }
}

/// The paper's name for a role.
pub fn paper_variant(role: Role, fine_tuned: bool, label: &str) -> String {
    let plus = if fine_tuned { "+" } else { "" };
    match role {
        Role::Base => "baseB".to_string(),
        Role::Selffer => format!("BnB{plus}"),
        Role::Transfer => format!("AnB{plus}"),
        Role::Random => format!("random{plus}"),
        Role::Other => label.to_string(),
    }
}

/// An input the report could not use.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub node: String,
    pub reason: String,
}

/// Every usable run, sorted, with what was skipped or filled in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSet {
    pub runs: Vec<Run>,
    pub skipped: Vec<Skipped>,
    /// Descriptive fields that were missing, one line each.
    pub notes: Vec<String>,
}

impl RunSet {
    /// Reads `(node, metrics)` pairs. A run is at chance when the binomial test against
    /// guessing gives a p-value of at least `chance_alpha`.
    pub fn from_metrics<'a>(
        inputs: impl IntoIterator<Item = (&'a str, &'a Value)>,
        chance_alpha: f64,
    ) -> RunSet {
        let mut set = RunSet::default();
        let mut missing: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for (node, metrics) in inputs {
            match parse_run(node, metrics, chance_alpha, &mut missing) {
                Ok(run) => set.runs.push(run),
                Err(reason) => set.skipped.push(Skipped {
                    node: node.to_string(),
                    reason,
                }),
            }
        }
        set.runs.sort_by(|first, second| {
            sort_key(first)
                .partial_cmp(&sort_key(second))
                .expect("keys hold no NaN")
        });
        set.skipped
            .sort_by(|first, second| first.node.cmp(&second.node));
        for (field, mut nodes) in missing {
            nodes.sort();
            let consequence = match field {
                "split" => "grouped under split `?`",
                "split_kind" => "labelled `unlabelled`",
                "target_task" => "target task taken from the variant label, else `?`",
                "layers_copied" => "taken as 0 (a base)",
                "num_classes" | "count" => "cannot be checked for chance-level accuracy",
                "seed" => "counted as runs without a seed",
                _ => "left blank",
            };
            set.notes.push(format!(
                "`{field}` missing in {} run(s), {consequence}: {}",
                nodes.len(),
                quoted_list(&nodes)
            ));
        }
        set
    }

    pub fn chance_level(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|run| run.at_chance)
    }

    /// Runs that count toward means.
    pub fn usable(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|run| !run.at_chance)
    }
}

/// `a`, `b` and `c`, shortened past 8 names.
pub fn quoted_list(names: &[String]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(8)
        .map(|name| format!("`{name}`"))
        .collect();
    let mut text = shown.join(", ");
    if names.len() > shown.len() {
        text.push_str(&format!(" and {} more", names.len() - shown.len()));
    }
    text
}

type SortKey<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Role,
    bool,
    &'a str,
    u32,
    i64,
    &'a str,
);

fn sort_key(run: &Run) -> SortKey<'_> {
    (
        &run.split_kind,
        &run.split,
        &run.target_task,
        run.role,
        run.fine_tuned,
        &run.variant,
        run.layers_copied,
        run.seed.unwrap_or(i64::MIN),
        &run.node,
    )
}

/// The role, whether fine-tuned, and the target task a variant label implies.
pub fn classify(variant: &str) -> (Role, bool, Option<String>) {
    let fine_tuned = variant.ends_with('+');
    let stem = variant.trim_end_matches('+');
    if let Some(task) = stem.strip_prefix("base").filter(|task| !task.is_empty()) {
        return if fine_tuned {
            (Role::Other, false, None)
        } else {
            (Role::Base, false, Some(task.to_string()))
        };
    }
    if stem == "random" {
        return (Role::Random, fine_tuned, None);
    }
    // `AnB`: the source task, `n`, the target task. Task names are single words, so the label
    // is readable only when exactly one `n` splits it into two non-empty parts.
    let cuts: Vec<usize> = stem
        .match_indices('n')
        .map(|(index, _)| index)
        .filter(|index| *index > 0 && *index + 1 < stem.len())
        .collect();
    if let [cut] = cuts[..] {
        let (source, target) = (&stem[..cut], &stem[cut + 1..]);
        let role = if source == target {
            Role::Selffer
        } else {
            Role::Transfer
        };
        return (role, fine_tuned, Some(target.to_string()));
    }
    (Role::Other, fine_tuned, None)
}

fn parse_run(
    node: &str,
    metrics: &Value,
    chance_alpha: f64,
    missing: &mut BTreeMap<&'static str, Vec<String>>,
) -> Result<Run, String> {
    if !metrics.is_object() {
        return Err("its metrics are not a JSON object".to_string());
    }
    let top1 = metrics
        .get("top1")
        .and_then(Value::as_f64)
        .ok_or("no numeric `top1` in its metrics")?;
    if !(0.0..=1.0).contains(&top1) {
        return Err(format!("`top1` is {top1}, not a fraction from 0 to 1"));
    }
    let variant = metrics
        .get("variant")
        .and_then(Value::as_str)
        .filter(|label| !label.is_empty());
    let variant = variant
        .ok_or("no `variant` label in its metrics")?
        .to_string();
    let (role, fine_tuned, implied_task) = classify(&variant);

    let mut note_missing =
        |field: &'static str| missing.entry(field).or_default().push(node.to_string());
    let text = |field: &str| {
        metrics.get(field).and_then(|value| match value {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
    };

    let layers_copied = match metrics.get("layers_copied").and_then(Value::as_u64) {
        Some(layers) => {
            u32::try_from(layers).map_err(|_| format!("`layers_copied` is {layers}"))?
        }
        None if role == Role::Base => 0,
        None => return Err(format!("variant `{variant}` has no `layers_copied`")),
    };
    let split = text("split").unwrap_or_else(|| {
        note_missing("split");
        "?".to_string()
    });
    let split_kind = text("split_kind").unwrap_or_else(|| {
        note_missing("split_kind");
        "unlabelled".to_string()
    });
    let target_task = text("target_task").or(implied_task).unwrap_or_else(|| {
        note_missing("target_task");
        "?".to_string()
    });
    let seed = metrics.get("seed").and_then(Value::as_i64);
    if seed.is_none() {
        note_missing("seed");
    }
    let num_classes = metrics.get("num_classes").and_then(Value::as_u64);
    if num_classes.is_none() {
        note_missing("num_classes");
    }
    let images = metrics.get("count").and_then(Value::as_u64);
    if images.is_none() {
        note_missing("count");
    }
    // Top-5 of a task with five classes or fewer is 1 by construction: no information.
    let top5 = metrics
        .get("top5")
        .and_then(Value::as_f64)
        .filter(|_| num_classes.is_none_or(|classes| classes > 5));
    let mut run = Run {
        node: node.to_string(),
        variant,
        role,
        fine_tuned,
        target_task,
        layers_copied,
        seed,
        split,
        split_kind,
        top1,
        top5,
        images,
        num_classes,
        chance_p_value: None,
        at_chance: false,
    };
    run.chance_p_value = run.chance_test();
    run.at_chance = run
        .chance_p_value
        .is_some_and(|p_value| p_value >= chance_alpha);
    Ok(run)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn variant_labels_map_to_the_papers_roles() {
        assert_eq!(classify("baseB"), (Role::Base, false, Some("B".into())));
        assert_eq!(classify("baseA"), (Role::Base, false, Some("A".into())));
        assert_eq!(classify("BnB"), (Role::Selffer, false, Some("B".into())));
        assert_eq!(classify("AnB+"), (Role::Transfer, true, Some("B".into())));
        assert_eq!(classify("BnA"), (Role::Transfer, false, Some("A".into())));
        assert_eq!(classify("AnA+"), (Role::Selffer, true, Some("A".into())));
        assert_eq!(classify("random"), (Role::Random, false, None));
        assert_eq!(classify("random+"), (Role::Random, true, None));
        assert_eq!(classify("scratch").0, Role::Other);
        assert_eq!(classify("AnBnC").0, Role::Other);
    }

    #[test]
    fn both_directions_get_the_papers_names() {
        let set = RunSet::from_metrics(
            [
                (
                    "a",
                    &json!({ "top1": 0.5, "variant": "BnA+", "layers_copied": 3 }),
                ),
                ("b", &json!({ "top1": 0.5, "variant": "baseA" })),
            ],
            0.05,
        );
        let names: Vec<String> = set.runs.iter().map(Run::paper_variant).collect();
        assert_eq!(names, ["baseB", "AnB+"]);
    }

    #[test]
    fn runs_without_top1_or_variant_are_skipped_with_a_reason() {
        let set = RunSet::from_metrics(
            [
                ("no_top1", &json!({ "variant": "AnB", "layers_copied": 1 })),
                ("no_variant", &json!({ "top1": 0.4 })),
                ("percent", &json!({ "top1": 85.0, "variant": "baseB" })),
                ("no_layers", &json!({ "top1": 0.4, "variant": "AnB" })),
                ("not_object", &json!(3)),
            ],
            0.05,
        );
        assert!(set.runs.is_empty());
        let reasons: Vec<(&str, &str)> = set
            .skipped
            .iter()
            .map(|skipped| (skipped.node.as_str(), skipped.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("no_layers", "variant `AnB` has no `layers_copied`"),
                ("no_top1", "no numeric `top1` in its metrics"),
                ("no_variant", "no `variant` label in its metrics"),
                ("not_object", "its metrics are not a JSON object"),
                ("percent", "`top1` is 85, not a fraction from 0 to 1"),
            ]
        );
    }

    #[test]
    fn missing_descriptive_fields_get_stand_ins_and_notes() {
        let set = RunSet::from_metrics(
            [(
                "bare",
                &json!({ "top1": 0.4, "variant": "AnB", "layers_copied": 2 }),
            )],
            0.05,
        );
        let run = &set.runs[0];
        assert_eq!(
            (
                run.split.as_str(),
                run.split_kind.as_str(),
                run.target_task.as_str()
            ),
            ("?", "unlabelled", "B")
        );
        assert!(
            !run.at_chance,
            "chance cannot be judged without `num_classes`"
        );
        assert_eq!(
            set.notes,
            [
                "`count` missing in 1 run(s), cannot be checked for chance-level accuracy: `bare`",
                "`num_classes` missing in 1 run(s), cannot be checked for chance-level accuracy: `bare`",
                "`seed` missing in 1 run(s), counted as runs without a seed: `bare`",
                "`split` missing in 1 run(s), grouped under split `?`: `bare`",
                "`split_kind` missing in 1 run(s), labelled `unlabelled`: `bare`",
            ]
        );
    }

    #[test]
    fn chance_level_is_a_binomial_test_against_guessing() {
        let metrics = |top1: f64, count: u64, classes: u64| json!({ "top1": top1, "count": count, "variant": "random", "layers_copied": 5, "num_classes": classes });
        // 562 of 2,500 right on 5 classes is 0.2248: about 3 standard errors above 0.20
        // (p = 0.0012), so it left chance even though it is below 1/5 + 0.05.
        let clear = metrics(0.2248, 2500, 5);
        // 520 of 2,500 (p = 0.165) and 13 of 50 (p = 0.19 on 5 classes) are not distinguishable.
        let (close_to_guessing, small_test) = (metrics(0.208, 2500, 5), metrics(0.26, 50, 5));
        let below = metrics(0.05, 1000, 10);
        let set = RunSet::from_metrics(
            [
                ("clear", &clear),
                ("close", &close_to_guessing),
                ("small", &small_test),
                ("below", &below),
            ],
            0.05,
        );
        let flagged: Vec<&str> = set.chance_level().map(|run| run.node.as_str()).collect();
        assert_eq!(flagged, ["below", "close", "small"]);
        let clear_run = set.runs.iter().find(|run| run.node == "clear").unwrap();
        assert!((clear_run.chance_p_value.unwrap() - 0.0012020161098077623).abs() < 1e-9);
        // A stricter level flags more.
        let strict = RunSet::from_metrics([("clear", &clear)], 0.01);
        assert_eq!(strict.chance_level().count(), 0);
        let lax = RunSet::from_metrics([("clear", &clear)], 0.002);
        assert_eq!(lax.chance_level().count(), 0);
        let laxest = RunSet::from_metrics([("clear", &clear)], 0.0011);
        assert_eq!(laxest.chance_level().count(), 1);
    }

    #[test]
    fn top5_is_dropped_for_five_classes_or_fewer() {
        let metrics = |classes: u64| json!({ "top1": 0.8, "top5": 1.0, "count": 100, "variant": "baseB", "num_classes": classes });
        let (five, ten) = (metrics(5), metrics(10));
        let set = RunSet::from_metrics([("five", &five), ("ten", &ten)], 0.05);
        let top5: Vec<(&str, Option<f64>)> = set
            .runs
            .iter()
            .map(|run| (run.node.as_str(), run.top5))
            .collect();
        assert_eq!(top5, [("five", None), ("ten", Some(1.0))]);
    }

    #[test]
    fn runs_are_sorted_by_split_variant_layers_and_seed() {
        let run = |variant: &str, layers: u32, seed: i64| json!({ "top1": 0.5, "variant": variant, "layers_copied": layers, "seed": seed, "split": "s", "split_kind": "similar" });
        let inputs = [
            ("e", run("AnB", 2, 0)),
            ("d", run("AnB", 1, 1)),
            ("c", run("AnB", 1, 0)),
            ("b", run("BnB", 7, 0)),
            ("a", run("baseB", 0, 0)),
        ];
        let set = RunSet::from_metrics(inputs.iter().map(|(node, metrics)| (*node, metrics)), 0.05);
        let order: Vec<&str> = set.runs.iter().map(|run| run.node.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
    }
}
