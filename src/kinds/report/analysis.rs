//! Runs grouped into cells (a variant at one n) and compared with their own split's base.
//!
//! Two groupings: per split and target task, as the tables list them; and pooled per split
//! kind under the paper's names (both directions, every split of that kind), as the findings
//! and the figure use them. Chance-level runs are in neither mean.

use std::collections::{BTreeMap, BTreeSet};

use super::runs::{Role, Run, RunSet};
use super::statistics::{Estimate, Sample};

/// Accuracy points per unit of top-1.
pub const POINTS: f64 = 100.0;

/// The split and target task whose base a run is compared with.
type BaseKey = (String, String);

fn base_key(run: &Run) -> BaseKey {
    (run.split.clone(), run.target_task.clone())
}

/// A variant's difference from the base, in accuracy points.
#[derive(Clone, Debug, PartialEq)]
pub struct Relative {
    pub estimate: Estimate,
    /// Runs of the variant that had a base to compare with.
    pub runs: usize,
    /// Distinct seeds among them.
    pub seeds: usize,
    /// Base runs behind the comparison.
    pub base_runs: usize,
    /// Runs left out for want of a base on their split and task.
    pub without_base: usize,
}

/// One variant at one n on one split and target task.
#[derive(Clone, Debug)]
pub struct SplitCell<'a> {
    pub split_kind: &'a str,
    pub split: &'a str,
    pub target_task: &'a str,
    pub variant: &'a str,
    pub layers_copied: u32,
    /// Runs in the means (chance-level ones are out).
    pub runs: Vec<&'a Run>,
    pub chance_level_runs: usize,
    pub top1: Option<Sample>,
    pub top5: Option<Sample>,
    /// `None` for the base itself, or when the split has no usable base.
    pub relative: Option<Relative>,
}

/// One paper variant at one n, pooled over a split kind.
#[derive(Clone, Debug)]
pub struct KindCell<'a> {
    pub split_kind: &'a str,
    pub paper_variant: String,
    pub role: Role,
    pub layers_copied: u32,
    pub runs: Vec<&'a Run>,
    /// The same cell's chance-level runs (left out of `runs`).
    pub chance_level: Vec<&'a Run>,
    pub splits: usize,
    pub top1: Option<Sample>,
    pub relative: Option<Relative>,
}

impl KindCell<'_> {
    /// Every run of the cell, chance-level ones included.
    pub fn all_runs(&self) -> Vec<&Run> {
        let mut runs: Vec<&Run> = self
            .runs
            .iter()
            .chain(&self.chance_level)
            .copied()
            .collect();
        runs.sort_by(|first, second| first.node.cmp(&second.node));
        runs
    }
}

pub struct Analysis<'a> {
    pub set: &'a RunSet,
    /// Usable base runs per split and target task.
    pub bases: BTreeMap<BaseKey, Sample>,
    pub split_cells: Vec<SplitCell<'a>>,
    pub kind_cells: Vec<KindCell<'a>>,
    /// Split kinds in name order.
    pub kinds: Vec<&'a str>,
}

impl<'a> Analysis<'a> {
    pub fn new(set: &'a RunSet) -> Analysis<'a> {
        let mut base_values: BTreeMap<BaseKey, Vec<f64>> = BTreeMap::new();
        for run in set.usable().filter(|run| run.role == Role::Base) {
            base_values.entry(base_key(run)).or_default().push(run.top1);
        }
        let bases = base_values
            .iter()
            .filter_map(|(key, values)| Some((key.clone(), Sample::of(values)?)))
            .collect();
        let mut analysis = Analysis {
            set,
            bases,
            split_cells: Vec::new(),
            kind_cells: Vec::new(),
            kinds: Vec::new(),
        };
        analysis.kinds = set
            .runs
            .iter()
            .map(|run| run.split_kind.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        analysis.split_cells = analysis.group_by_split();
        analysis.kind_cells = analysis.group_by_kind();
        analysis
    }

    fn group_by_split(&self) -> Vec<SplitCell<'a>> {
        // Runs are already sorted by split kind, split, task, role, variant and n.
        let mut groups: Vec<Vec<&'a Run>> = Vec::new();
        for run in &self.set.runs {
            let same_cell = groups
                .last()
                .and_then(|group| group.first())
                .is_some_and(|first| {
                    (
                        first.split.as_str(),
                        first.target_task.as_str(),
                        first.variant.as_str(),
                        first.layers_copied,
                    ) == (
                        run.split.as_str(),
                        run.target_task.as_str(),
                        run.variant.as_str(),
                        run.layers_copied,
                    ) && first.split_kind == run.split_kind
                });
            if same_cell {
                groups.last_mut().expect("checked").push(run);
            } else {
                groups.push(vec![run]);
            }
        }
        groups
            .into_iter()
            .map(|group| {
                let first = group[0];
                let runs: Vec<&Run> = group.iter().copied().filter(|run| !run.at_chance).collect();
                let relative = (first.role != Role::Base)
                    .then(|| self.relative_points(&runs))
                    .flatten();
                SplitCell {
                    split_kind: &first.split_kind,
                    split: &first.split,
                    target_task: &first.target_task,
                    variant: &first.variant,
                    layers_copied: first.layers_copied,
                    chance_level_runs: group.len() - runs.len(),
                    top1: Sample::of(&runs.iter().map(|run| run.top1).collect::<Vec<_>>()),
                    top5: Sample::of(&runs.iter().filter_map(|run| run.top5).collect::<Vec<_>>()),
                    relative,
                    runs,
                }
            })
            .collect()
    }

    fn group_by_kind(&self) -> Vec<KindCell<'a>> {
        type KindKey<'k> = (&'k str, Role, bool, String, u32);
        let mut groups: BTreeMap<KindKey<'a>, Vec<&'a Run>> = BTreeMap::new();
        for run in &self.set.runs {
            let key = (
                run.split_kind.as_str(),
                run.role,
                run.fine_tuned,
                run.paper_variant(),
                run.layers_copied,
            );
            groups.entry(key).or_default().push(run);
        }
        groups
            .into_iter()
            .map(
                |((split_kind, role, _, paper_variant, layers_copied), group)| {
                    let (chance_level, runs): (Vec<&Run>, Vec<&Run>) =
                        group.into_iter().partition(|run| run.at_chance);
                    let relative = (role != Role::Base)
                        .then(|| self.relative_points(&runs))
                        .flatten();
                    KindCell {
                        split_kind,
                        paper_variant,
                        role,
                        layers_copied,
                        splits: runs
                            .iter()
                            .map(|run| run.split.as_str())
                            .collect::<BTreeSet<_>>()
                            .len(),
                        top1: Sample::of(&runs.iter().map(|run| run.top1).collect::<Vec<_>>()),
                        relative,
                        runs,
                        chance_level,
                    }
                },
            )
            .collect()
    }

    /// The mean difference, in points, between `runs` and the base of each run's own split and
    /// target task. Its uncertainty counts the spread of the runs and of every base involved.
    pub fn relative_points(&self, runs: &[&Run]) -> Option<Relative> {
        let compared: Vec<(&Run, &Sample)> = runs
            .iter()
            .filter_map(|run| self.bases.get(&base_key(run)).map(|base| (*run, base)))
            .collect();
        if compared.is_empty() {
            return None;
        }
        let differences: Vec<f64> = compared
            .iter()
            .map(|(run, base)| (run.top1 - base.mean) * POINTS)
            .collect();
        let difference_sample = Sample::of(&differences)?;
        let mut runs_per_base: BTreeMap<BaseKey, usize> = BTreeMap::new();
        for (run, _) in &compared {
            *runs_per_base.entry(base_key(run)).or_default() += 1;
        }
        let count = compared.len() as f64;
        let mut samples = vec![(1.0, difference_sample)];
        samples.extend(
            runs_per_base
                .iter()
                .map(|(key, runs)| (-(*runs as f64) / count, self.bases[key].scaled(POINTS))),
        );
        Some(Relative {
            estimate: Estimate::weighted_sum(difference_sample.mean, &samples),
            runs: compared.len(),
            seeds: distinct_seeds(compared.iter().map(|(run, _)| *run)),
            base_runs: runs_per_base.keys().map(|key| self.bases[key].count).sum(),
            without_base: runs.len() - compared.len(),
        })
    }

    /// The difference between two groups of runs, each taken against its own base first, so the
    /// base cancels (used for AnB against BnB at the same n).
    pub fn gap_points(&self, first: &[&Run], second: &[&Run]) -> Option<Estimate> {
        let differences = |runs: &[&Run]| -> Option<Sample> {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|run| {
                    self.bases
                        .get(&base_key(run))
                        .map(|base| (run.top1 - base.mean) * POINTS)
                })
                .collect();
            Sample::of(&values)
        };
        let (first, second) = (differences(first)?, differences(second)?);
        Some(Estimate::weighted_sum(
            first.mean - second.mean,
            &[(1.0, first), (-1.0, second)],
        ))
    }

    pub fn kind_cell(
        &self,
        split_kind: &str,
        paper_variant: &str,
        layers_copied: u32,
    ) -> Option<&KindCell<'a>> {
        self.kind_cells.iter().find(|cell| {
            cell.split_kind == split_kind
                && cell.paper_variant == paper_variant
                && cell.layers_copied == layers_copied
        })
    }

    /// Every n-cell of one paper variant on one split kind, by n.
    pub fn kind_curve(&self, split_kind: &str, paper_variant: &str) -> Vec<&KindCell<'a>> {
        self.kind_cells
            .iter()
            .filter(|cell| cell.split_kind == split_kind && cell.paper_variant == paper_variant)
            .collect()
    }

    /// The split kind the paper's Figure 2 describes: `similar` (random splits) when present,
    /// else the first kind with transferred nets.
    pub fn primary_kind(&self) -> Option<&'a str> {
        if self.kinds.contains(&"similar") {
            return Some("similar");
        }
        self.kinds
            .iter()
            .copied()
            .find(|kind| {
                self.kind_cells
                    .iter()
                    .any(|cell| cell.split_kind == *kind && cell.layers_copied > 0)
            })
            .or_else(|| self.kinds.first().copied())
    }

    /// Distinct (split, target task, variant, n) cells: the report's "variants".
    pub fn variant_count(&self) -> usize {
        self.split_cells.len()
    }
}

/// How many different seeds a group of runs has (runs without a seed count once each).
pub fn distinct_seeds<'r>(runs: impl IntoIterator<Item = &'r Run>) -> usize {
    let mut seeds = BTreeSet::new();
    let mut unseeded = 0;
    for run in runs {
        match run.seed {
            Some(seed) => {
                seeds.insert(seed);
            }
            None => unseeded += 1,
        }
    }
    seeds.len() + unseeded
}

/// "3 seeds", or "6 runs (3 seeds)" when seeds repeat across splits or directions.
pub fn describe_runs(runs: usize, seeds: usize) -> String {
    let seeds_word = if seeds == 1 { "seed" } else { "seeds" };
    if runs == seeds {
        format!("{runs} {seeds_word}")
    } else {
        let runs_word = if runs == 1 { "run" } else { "runs" };
        format!("{runs} {runs_word} ({seeds} {seeds_word})")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Metrics as an evaluate node writes them.
    pub(crate) fn metrics(split: &str, variant: &str, layers: u32, seed: i64, top1: f64) -> Value {
        let split_kind = if split.contains("dissimilar") {
            "dissimilar"
        } else {
            "similar"
        };
        json!({
            "top1": top1, "top5": (top1 + 0.1).min(1.0), "count": 1000, "num_classes": 10,
            "variant": variant, "layers_copied": layers, "seed": seed,
            "split": split, "split_kind": split_kind, "target_task": "B",
        })
    }

    pub(crate) fn set_of(inputs: &[(String, Value)]) -> RunSet {
        RunSet::from_metrics(
            inputs
                .iter()
                .map(|(node, metrics)| (node.as_str(), metrics)),
            0.05,
        )
    }

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn cells_group_by_split_variant_and_n() {
        let inputs = vec![
            ("b0".to_string(), metrics("s_similar", "baseB", 0, 0, 0.80)),
            ("b1".to_string(), metrics("s_similar", "baseB", 0, 1, 0.82)),
            ("a0".to_string(), metrics("s_similar", "AnB", 3, 0, 0.70)),
            ("a1".to_string(), metrics("s_similar", "AnB", 3, 1, 0.72)),
            ("a2".to_string(), metrics("s_similar", "AnB", 4, 0, 0.60)),
            ("d0".to_string(), metrics("s_dissimilar", "AnB", 3, 0, 0.50)),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let cells: Vec<(&str, &str, u32, usize)> = analysis
            .split_cells
            .iter()
            .map(|cell| {
                (
                    cell.split,
                    cell.variant,
                    cell.layers_copied,
                    cell.runs.len(),
                )
            })
            .collect();
        assert_eq!(
            cells,
            [
                ("s_dissimilar", "AnB", 3, 1),
                ("s_similar", "baseB", 0, 2),
                ("s_similar", "AnB", 3, 2),
                ("s_similar", "AnB", 4, 1)
            ]
        );
        assert_eq!(analysis.kinds, ["dissimilar", "similar"]);
        assert_eq!(analysis.variant_count(), 4);
        // The dissimilar split has no base of its own, so no difference.
        assert!(analysis.split_cells[0].relative.is_none());
        let anb = &analysis.split_cells[2];
        close(anb.top1.unwrap().mean, 0.71);
        close(anb.relative.as_ref().unwrap().estimate.value, -10.0);
        assert_eq!(anb.relative.as_ref().unwrap().base_runs, 2);
    }

    #[test]
    fn each_variant_is_compared_with_its_own_splits_base() {
        let inputs = vec![
            ("b_s0".to_string(), metrics("s0", "baseB", 0, 0, 0.80)),
            ("b_s1".to_string(), metrics("s1", "baseB", 0, 0, 0.60)),
            ("x_s0".to_string(), metrics("s0", "BnB", 2, 0, 0.78)),
            ("x_s1".to_string(), metrics("s1", "BnB", 2, 0, 0.58)),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let pooled = analysis.kind_cell("similar", "BnB", 2).unwrap();
        assert_eq!((pooled.runs.len(), pooled.splits), (2, 2));
        let relative = pooled.relative.as_ref().unwrap();
        // Both are 2 points below their own base; pooling raw accuracy would mislead.
        close(relative.estimate.value, -2.0);
        assert_eq!(relative.base_runs, 2);
    }

    #[test]
    fn chance_level_runs_stay_out_of_means_and_bases() {
        let inputs = vec![
            ("b0".to_string(), metrics("s", "baseB", 0, 0, 0.80)),
            ("b_failed".to_string(), metrics("s", "baseB", 0, 1, 0.10)),
            ("r0".to_string(), metrics("s", "random", 5, 0, 0.11)),
            ("r1".to_string(), metrics("s", "random", 5, 1, 0.40)),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        assert_eq!(analysis.bases[&("s".to_string(), "B".to_string())].count, 1);
        let random = analysis.kind_cell("similar", "random", 5).unwrap();
        assert_eq!(random.runs.len(), 1);
        assert_eq!(random.chance_level.len(), 1);
        assert_eq!(random.all_runs().len(), 2);
        close(random.top1.unwrap().mean, 0.40);
    }

    #[test]
    fn gap_between_two_groups_cancels_the_base() {
        let inputs = vec![
            ("b".to_string(), metrics("s", "baseB", 0, 0, 0.80)),
            ("a0".to_string(), metrics("s", "AnB", 7, 0, 0.60)),
            ("a1".to_string(), metrics("s", "AnB", 7, 1, 0.62)),
            ("s0".to_string(), metrics("s", "BnB", 7, 0, 0.78)),
            ("s1".to_string(), metrics("s", "BnB", 7, 1, 0.80)),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let transfer = &analysis.kind_cell("similar", "AnB", 7).unwrap().runs;
        let selffer = &analysis.kind_cell("similar", "BnB", 7).unwrap().runs;
        let gap = analysis.gap_points(transfer, selffer).unwrap();
        close(gap.value, -18.0);
        // Only the spread within each group counts: 0.01·√2·100 / √2 per side.
        close(gap.standard_error().unwrap(), 2f64.sqrt());
    }

    #[test]
    fn run_counts_read_as_seeds_when_each_run_is_one_seed() {
        assert_eq!(describe_runs(3, 3), "3 seeds");
        assert_eq!(describe_runs(1, 1), "1 seed");
        assert_eq!(describe_runs(6, 3), "6 runs (3 seeds)");
    }
}
