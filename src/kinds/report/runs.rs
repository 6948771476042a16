//! Evaluations → typed runs, one per evaluate node. Every field comes from the node's
//! `evaluation.json`, read as its type ([`Evaluation`]); a run whose values are unusable (a
//! top-1 that is no fraction, no variant) is skipped with a reason, so one odd node never sinks
//! the report.

use super::statistics::binomial_upper_tail;
use crate::kinds::artifacts::Evaluation;

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
    /// A base trained as long as a base plus its fine-tuning: the lingering boost's control
    /// for extra training.
    LongBase,
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
    pub seed: u64,
    pub split: String,
    /// The split's relation: what its tasks A and B are to each other.
    pub relation: String,
    /// For the random-weights control, how its frozen layers were drawn (`paper`, `modern`).
    pub random_init: Option<String>,
    /// The target task's classes, in label order.
    pub classes: Vec<String>,
    /// Which images scored it: `test`, or `validation` (for choosing a protocol).
    pub scored_on: String,
    pub top1: f64,
    pub top5: Option<f64>,
    pub images: u64,
    pub num_classes: u64,
    /// One-sided binomial p-value of the run's correct count against guessing (1/classes);
    /// `None` without classes or images.
    pub chance_p_value: Option<f64>,
    /// Not distinguishable from guessing (`chance_p_value` ≥ the report's `chance_alpha`):
    /// listed, and counted by the random-weight control's collapse (see [`Run::in_means`]).
    pub at_chance: bool,
}

impl Run {
    /// Whether the run counts in means and differences. A net at chance is an outcome like any
    /// other (the random-weight control's collapse is the paper's claim; leaving such runs out
    /// would average only the survivors), except a base: a base at chance is a failed
    /// reference, so its unit's variants are measured against the unit's other bases instead.
    pub fn in_means(&self) -> bool {
        !(self.at_chance && self.role == Role::Base)
    }

    /// The paper's name for the run's variant (`baseB`, `BnB`, `AnB+`, `random`, …), whatever
    /// its target task; unknown labels stay as written.
    pub fn paper_variant(&self) -> String {
        paper_variant(
            self.role,
            self.fine_tuned,
            &self.variant,
            self.random_init.as_deref(),
        )
    }

    /// The binomial test of the one chance rule: how likely guessing (1 / classes) is to get
    /// at least this run's correct count on its held-out images.
    fn chance_test(&self) -> Option<f64> {
        if self.images == 0 || self.num_classes == 0 {
            return None;
        }
        let correct = (self.top1 * self.images as f64).round() as u64;
        let guessing = 1.0 / self.num_classes as f64;
        Some(binomial_upper_tail(correct, self.images, guessing))
    }
}

/// The name of a random-weights control whose frozen layers follow the paper's Gaussians;
/// with He init (tpipe's default) it is plain `random`.
pub const RANDOM_PAPER_INIT: &str = "random (paper init)";

/// The paper's name for a role (and the random control's init).
pub fn paper_variant(
    role: Role,
    fine_tuned: bool,
    label: &str,
    random_init: Option<&str>,
) -> String {
    let plus = if fine_tuned { "+" } else { "" };
    match role {
        Role::Base => "baseB".to_string(),
        Role::LongBase => "longbaseB".to_string(),
        Role::Selffer => format!("BnB{plus}"),
        Role::Transfer => format!("AnB{plus}"),
        Role::Random if random_init == Some("paper") => format!("{RANDOM_PAPER_INIT}{plus}"),
        Role::Random => format!("random{plus}"),
        Role::Other => label.to_string(),
    }
}

/// An input the report could not use.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub node: String,
    pub reason: SkipReason,
}

/// Why an evaluation that reads still cannot be a run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SkipReason {
    #[error("`top1` is {0}, not a fraction from 0 to 1")]
    Top1(f64),
    #[error("no `variant` label in its lineage")]
    NoVariant,
    #[error("`layers_copied` is {0}")]
    Layers(usize),
}

/// Every usable run, sorted, with what was skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSet {
    pub runs: Vec<Run>,
    pub skipped: Vec<Skipped>,
}

impl RunSet {
    /// Reads `(node, evaluation)` pairs. A run is at chance when the binomial test against
    /// guessing gives a p-value of at least `chance_alpha`.
    pub fn from_evaluations<'a>(
        inputs: impl IntoIterator<Item = (&'a str, &'a Evaluation)>,
        chance_alpha: f64,
    ) -> RunSet {
        let mut set = RunSet::default();
        for (node, evaluation) in inputs {
            match run_of(node, evaluation, chance_alpha) {
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
        set
    }

    pub fn chance_level(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|run| run.at_chance)
    }

    /// Runs that count toward means (see [`Run::in_means`]).
    pub fn in_means(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|run| run.in_means())
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
    u64,
    &'a str,
);

fn sort_key(run: &Run) -> SortKey<'_> {
    (
        &run.relation,
        &run.split,
        &run.target_task,
        run.role,
        run.fine_tuned,
        &run.variant,
        run.layers_copied,
        run.seed,
        &run.node,
    )
}

/// The role, whether fine-tuned, and the target task a variant label implies.
pub fn classify(variant: &str) -> (Role, bool, Option<String>) {
    let fine_tuned = variant.ends_with('+');
    let stem = variant.trim_end_matches('+');
    if let Some(task) = stem
        .strip_prefix("longbase")
        .filter(|task| !task.is_empty())
    {
        return if fine_tuned {
            (Role::Other, false, None)
        } else {
            (Role::LongBase, false, Some(task.to_string()))
        };
    }
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

/// The run an evaluation describes, or why it cannot be used.
fn run_of(node: &str, evaluation: &Evaluation, chance_alpha: f64) -> Result<Run, SkipReason> {
    let (net, data, scores) = (&evaluation.net, &evaluation.data, &evaluation.scores);
    let top1 = scores.top1;
    if !(0.0..=1.0).contains(&top1) {
        return Err(SkipReason::Top1(top1));
    }
    if net.variant.is_empty() {
        return Err(SkipReason::NoVariant);
    }
    let (role, fine_tuned, _) = classify(&net.variant);
    let layers_copied =
        u32::try_from(net.layers_copied).map_err(|_| SkipReason::Layers(net.layers_copied))?;
    let num_classes = data.num_classes as u64;
    let mut run = Run {
        node: node.to_string(),
        variant: net.variant.clone(),
        role,
        fine_tuned,
        target_task: data.task.clone(),
        layers_copied,
        seed: net.seed,
        split: data.split.clone(),
        relation: data.relation.clone(),
        random_init: net.random_init.clone(),
        classes: data.classes.clone(),
        scored_on: data.images.clone(),
        top1,
        // Top-5 of a task with five classes or fewer is 1 by construction: no information.
        top5: Some(scores.top5).filter(|_| num_classes > 5),
        images: scores.count as u64,
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
    use super::super::analysis::tests::evaluation;
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
        assert_eq!(
            classify("longbaseB"),
            (Role::LongBase, false, Some("B".into()))
        );
        assert_eq!(classify("scratch").0, Role::Other);
        assert_eq!(classify("AnBnC").0, Role::Other);
    }

    /// An evaluation of `variant` with these scores on `classes` classes.
    fn scored(variant: &str, top1: f64, count: usize, classes: usize) -> Evaluation {
        let mut evaluation = evaluation("s", variant, 5, 0, top1);
        evaluation.scores.count = count;
        evaluation.data.num_classes = classes;
        evaluation
    }

    #[test]
    fn both_directions_get_the_papers_names() {
        let (into_a, base_a) = (
            evaluation("s", "BnA+", 3, 0, 0.5),
            evaluation("s", "baseA", 0, 0, 0.5),
        );
        let set = RunSet::from_evaluations([("a", &into_a), ("b", &base_a)], 0.05);
        let names: Vec<String> = set.runs.iter().map(Run::paper_variant).collect();
        assert_eq!(names, ["baseB", "AnB+"]);
    }

    #[test]
    fn runs_with_unusable_values_are_skipped_with_a_reason() {
        let percent = scored("baseB", 85.0, 1000, 10);
        let unnamed = scored("", 0.4, 1000, 10);
        let set = RunSet::from_evaluations([("percent", &percent), ("unnamed", &unnamed)], 0.05);
        assert!(set.runs.is_empty());
        let reasons: Vec<(&str, String)> = set
            .skipped
            .iter()
            .map(|skipped| (skipped.node.as_str(), skipped.reason.to_string()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "percent",
                    "`top1` is 85, not a fraction from 0 to 1".to_string()
                ),
                ("unnamed", "no `variant` label in its lineage".to_string()),
            ]
        );
    }

    #[test]
    fn chance_level_is_a_binomial_test_against_guessing() {
        // 562 of 2,500 right on 5 classes is 0.2248: about 3 standard errors above 0.20
        // (p = 0.0012), so it left chance even though it is below 1/5 + 0.05.
        let clear = scored("random", 0.2248, 2500, 5);
        // 520 of 2,500 (p = 0.165) and 13 of 50 (p = 0.19 on 5 classes) are not distinguishable.
        let close_to_guessing = scored("random", 0.208, 2500, 5);
        let small_test = scored("random", 0.26, 50, 5);
        let below = scored("random", 0.05, 1000, 10);
        let set = RunSet::from_evaluations(
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
        let strict = RunSet::from_evaluations([("clear", &clear)], 0.01);
        assert_eq!(strict.chance_level().count(), 0);
        let lax = RunSet::from_evaluations([("clear", &clear)], 0.002);
        assert_eq!(lax.chance_level().count(), 0);
        let laxest = RunSet::from_evaluations([("clear", &clear)], 0.0011);
        assert_eq!(laxest.chance_level().count(), 1);
    }

    #[test]
    fn top5_is_dropped_for_five_classes_or_fewer() {
        let (five, ten) = (scored("baseB", 0.8, 100, 5), scored("baseB", 0.8, 100, 10));
        let set = RunSet::from_evaluations([("five", &five), ("ten", &ten)], 0.05);
        let top5: Vec<(&str, Option<f64>)> = set
            .runs
            .iter()
            .map(|run| (run.node.as_str(), run.top5))
            .collect();
        assert_eq!(top5, [("five", None), ("ten", Some(0.9))]);
    }

    #[test]
    fn runs_are_sorted_by_split_variant_layers_and_seed() {
        let run =
            |variant: &str, layers: u32, seed: i64| evaluation("s", variant, layers, seed, 0.5);
        let inputs = [
            ("e", run("AnB", 2, 0)),
            ("d", run("AnB", 1, 1)),
            ("c", run("AnB", 1, 0)),
            ("b", run("BnB", 7, 0)),
            ("a", run("baseB", 0, 0)),
        ];
        let set = RunSet::from_evaluations(
            inputs.iter().map(|(node, evaluation)| (*node, evaluation)),
            0.05,
        );
        let order: Vec<&str> = set.runs.iter().map(|run| run.node.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
    }
}
