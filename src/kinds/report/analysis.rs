//! Runs grouped into cells (a variant at one n), each measured against its own split's base.
//!
//! Two groupings: per split and target task, as the per-split tables list them; and pooled per
//! relation under the paper's names, as the findings, the figure and the pooled table use
//! them. Invariants of the pooled cells:
//! - The unit of replication is the split. A cell holds one value per split: the mean over the
//!   split's target tasks of (variant mean − base mean) on that task. Intervals are Student's t
//!   across those values, so runs that share a base never count as independent.
//! - Where a relation has a single split, its seeds are the units instead (a variant's seed
//!   against the base of the same seed, else the split's base mean).
//! - baseB is one number per relation: the same per-split base values every Δ subtracts,
//!   over the target tasks some transfer targets. A base whose task no transfer targets (baseA
//!   when every transfer goes into B) is listed per split but never pooled into baseB.
//! - Runs at chance count like any other, except a base at chance: it is in no mean, no base
//!   and no unit (`Run::in_means`).

use std::collections::{BTreeMap, BTreeSet};

use super::model::{BlockFit, BlockTable};
use super::runs::{Role, Run, RunSet};
use super::statistics::{Effect, Sample};

/// Accuracy points per unit of top-1.
pub const POINTS: f64 = 100.0;

/// One value per unit of replication (a split, or a seed of a single split), by unit name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerUnit(pub BTreeMap<String, f64>);

impl PerUnit {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values' mean and spread; `None` without values.
    pub fn sample(&self) -> Option<Sample> {
        Sample::of(&self.0.values().copied().collect::<Vec<_>>())
    }
}

/// One variant at one n on one split and target task (the per-split tables).
#[derive(Clone, Debug)]
pub struct SplitCell<'a> {
    pub relation: &'a str,
    pub split: &'a str,
    pub target_task: &'a str,
    pub variant: &'a str,
    pub layers_copied: u32,
    /// Runs in the means: all but a base at chance (see [`Run::in_means`]).
    pub runs: Vec<&'a Run>,
    /// Runs at chance, in the means or not.
    pub chance_level_runs: usize,
    /// Every run of the cell, a base left out at chance included.
    pub total_runs: usize,
    pub top1: Option<Sample>,
    pub top5: Option<Sample>,
    /// Mean difference from the split's base on the same task, in points; `None` for the base
    /// itself or without a usable base. No interval: a split is one unit.
    pub relative: Option<f64>,
}

/// One paper variant at one n, pooled over a relation.
#[derive(Clone, Debug)]
pub struct RelationCell<'a> {
    pub relation: &'a str,
    pub paper_variant: String,
    pub role: Role,
    pub layers_copied: u32,
    /// Runs in the cell's values (for baseB: only bases of targeted tasks; see [`Run::in_means`]).
    pub runs: Vec<&'a Run>,
    /// The cell's runs at chance: in `runs` too, unless they are bases.
    pub chance_level: Vec<&'a Run>,
    /// Per unit, the mean top-1 over the unit's target tasks.
    pub top1: PerUnit,
    /// Per unit, the mean difference from the same unit's base, in points (empty for baseB).
    pub relative: PerUnit,
}

impl RelationCell<'_> {
    /// Every run of the cell, the bases left out at chance included.
    pub fn total_runs(&self) -> usize {
        self.runs.len()
            + self
                .chance_level
                .iter()
                .filter(|run| !run.in_means())
                .count()
    }
}

/// The unit and target task a base mean belongs to.
type BaseKey = (String, String);

pub struct Analysis<'a> {
    pub set: &'a RunSet,
    pub split_cells: Vec<SplitCell<'a>>,
    pub relation_cells: Vec<RelationCell<'a>>,
    /// Relations in name order.
    pub relations: Vec<&'a str>,
    /// Kinds with a single split, whose seeds are the units.
    seed_units: BTreeSet<&'a str>,
    /// Usable base runs' mean top-1 per unit and target task, then per split and target task.
    unit_bases: BTreeMap<BaseKey, f64>,
    split_bases: BTreeMap<BaseKey, f64>,
}

impl<'a> Analysis<'a> {
    pub fn new(set: &'a RunSet) -> Analysis<'a> {
        let relations: Vec<&str> = set
            .runs
            .iter()
            .map(|run| run.relation.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let seed_units = relations
            .iter()
            .copied()
            .filter(|relation| {
                set.runs
                    .iter()
                    .filter(|run| run.relation == *relation)
                    .map(|run| run.split.as_str())
                    .collect::<BTreeSet<_>>()
                    .len()
                    == 1
            })
            .collect();
        let mut analysis = Analysis {
            set,
            split_cells: Vec::new(),
            relation_cells: Vec::new(),
            relations,
            seed_units,
            unit_bases: BTreeMap::new(),
            split_bases: BTreeMap::new(),
        };
        let mut unit_values: BTreeMap<BaseKey, Vec<f64>> = BTreeMap::new();
        let mut split_values: BTreeMap<BaseKey, Vec<f64>> = BTreeMap::new();
        for run in set.in_means().filter(|run| run.role == Role::Base) {
            let task = run.target_task.clone();
            unit_values
                .entry((analysis.unit(run), task.clone()))
                .or_default()
                .push(run.top1);
            split_values
                .entry((run.split.clone(), task))
                .or_default()
                .push(run.top1);
        }
        let means = |values: BTreeMap<BaseKey, Vec<f64>>| {
            values
                .into_iter()
                .map(|(key, values)| (key, values.iter().sum::<f64>() / values.len() as f64))
                .collect()
        };
        analysis.unit_bases = means(unit_values);
        analysis.split_bases = means(split_values);
        analysis.split_cells = analysis.group_by_split();
        analysis.relation_cells = analysis.group_by_relation();
        analysis
    }

    /// The unit of replication a run belongs to.
    fn unit(&self, run: &Run) -> String {
        if self.seed_units.contains(run.relation.as_str()) {
            // Named with their split, so units of different relations never meet.
            format!("{}, seed {}", run.split, run.seed)
        } else {
            run.split.clone()
        }
    }

    /// Whether a relation's units are the seeds of its single split.
    pub fn units_are_seeds(&self, relation: &str) -> bool {
        self.seed_units.contains(relation)
    }

    /// The base a run is measured against: its unit's, else its split's (on the same task).
    fn base_of(&self, unit: &str, run: &Run) -> Option<f64> {
        let task = run.target_task.clone();
        self.unit_bases
            .get(&(unit.to_string(), task.clone()))
            .or_else(|| self.split_bases.get(&(run.split.clone(), task)))
            .copied()
    }

    fn group_by_split(&self) -> Vec<SplitCell<'a>> {
        // Runs are already sorted by relation, split, task, role, variant and n.
        let mut groups: Vec<Vec<&'a Run>> = Vec::new();
        for run in &self.set.runs {
            let same_cell = groups
                .last()
                .and_then(|group| group.first())
                .is_some_and(|first| {
                    (
                        first.relation.as_str(),
                        first.split.as_str(),
                        first.target_task.as_str(),
                        first.variant.as_str(),
                        first.layers_copied,
                    ) == (
                        run.relation.as_str(),
                        run.split.as_str(),
                        run.target_task.as_str(),
                        run.variant.as_str(),
                        run.layers_copied,
                    )
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
                let runs: Vec<&Run> = group.iter().copied().filter(|run| run.in_means()).collect();
                let top1 = Sample::of(&runs.iter().map(|run| run.top1).collect::<Vec<_>>());
                let base = self
                    .split_bases
                    .get(&(first.split.clone(), first.target_task.clone()));
                let relative = match (first.role, top1, base) {
                    (Role::Base, _, _) => None,
                    (_, Some(top1), Some(base)) => Some((top1.mean - base) * POINTS),
                    _ => None,
                };
                SplitCell {
                    relation: &first.relation,
                    split: &first.split,
                    target_task: &first.target_task,
                    variant: &first.variant,
                    layers_copied: first.layers_copied,
                    chance_level_runs: group.iter().filter(|run| run.at_chance).count(),
                    total_runs: group.len(),
                    top1,
                    top5: Sample::of(&runs.iter().filter_map(|run| run.top5).collect::<Vec<_>>()),
                    relative,
                    runs,
                }
            })
            .collect()
    }

    /// The (split, target task) pairs that some non-base run targets, per relation.
    fn targeted(&self) -> BTreeSet<(&'a str, &'a str)> {
        self.set
            .runs
            .iter()
            .filter(|run| run.role != Role::Base)
            .map(|run| (run.split.as_str(), run.target_task.as_str()))
            .collect()
    }

    fn group_by_relation(&self) -> Vec<RelationCell<'a>> {
        let targeted = self.targeted();
        let relations_with_targets: BTreeSet<&str> = self
            .set
            .runs
            .iter()
            .filter(|run| run.role != Role::Base)
            .map(|run| run.relation.as_str())
            .collect();
        type RelationKey<'k> = (&'k str, Role, bool, String, u32);
        let mut groups: BTreeMap<RelationKey<'a>, Vec<&'a Run>> = BTreeMap::new();
        for run in &self.set.runs {
            // baseB is the base of the tasks transfers go into; in a relation without transfers,
            // every base is.
            let pooled = run.role != Role::Base
                || !relations_with_targets.contains(run.relation.as_str())
                || targeted.contains(&(run.split.as_str(), run.target_task.as_str()));
            if !pooled {
                continue;
            }
            let key = (
                run.relation.as_str(),
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
                |((relation, role, _, paper_variant, layers_copied), group)| {
                    let chance_level: Vec<&Run> =
                        group.iter().copied().filter(|run| run.at_chance).collect();
                    let runs: Vec<&Run> = group.into_iter().filter(|run| run.in_means()).collect();
                    let (top1, relative) = self.unit_values(&runs, role != Role::Base);
                    RelationCell {
                        relation,
                        paper_variant,
                        role,
                        layers_copied,
                        runs,
                        chance_level,
                        top1,
                        relative,
                    }
                },
            )
            .collect()
    }

    /// Per unit: the mean top-1 over target tasks, and (when `relative`) the mean over target
    /// tasks of (runs' mean − base), in points. A unit without a base has no relative value.
    fn unit_values(&self, runs: &[&Run], relative: bool) -> (PerUnit, PerUnit) {
        let mut per_task: BTreeMap<(String, &str), Vec<&Run>> = BTreeMap::new();
        for run in runs {
            per_task
                .entry((self.unit(run), run.target_task.as_str()))
                .or_default()
                .push(run);
        }
        let mut top1: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut difference: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for ((unit, _), runs) in per_task {
            let mean = runs.iter().map(|run| run.top1).sum::<f64>() / runs.len() as f64;
            top1.entry(unit.clone()).or_default().push(mean);
            if let Some(base) = relative.then(|| self.base_of(&unit, runs[0])).flatten() {
                difference
                    .entry(unit)
                    .or_default()
                    .push((mean - base) * POINTS);
            }
        }
        let average = |values: BTreeMap<String, Vec<f64>>| {
            PerUnit(
                values
                    .into_iter()
                    .map(|(unit, values)| (unit, values.iter().sum::<f64>() / values.len() as f64))
                    .collect(),
            )
        };
        (average(top1), average(difference))
    }

    pub fn relation_cell(
        &self,
        relation: &str,
        paper_variant: &str,
        layers_copied: u32,
    ) -> Option<&RelationCell<'a>> {
        self.relation_cells.iter().find(|cell| {
            cell.relation == relation
                && cell.paper_variant == paper_variant
                && cell.layers_copied == layers_copied
        })
    }

    /// Every n-cell of one paper variant on one relation, by n.
    pub fn relation_curve(&self, relation: &str, paper_variant: &str) -> Vec<&RelationCell<'a>> {
        self.relation_cells
            .iter()
            .filter(|cell| cell.relation == relation && cell.paper_variant == paper_variant)
            .collect()
    }

    /// baseB of a relation: the per-unit base values every Δ of the relation subtracts.
    pub fn base(&self, relation: &str) -> Option<&RelationCell<'a>> {
        self.relation_cell(relation, "baseB", 0)
    }

    /// The relation the paper's Figure 2 describes: `similar` (random splits) when present,
    /// else the first relation with transferred nets.
    pub fn primary_relation(&self) -> Option<&'a str> {
        if self.relations.contains(&"similar") {
            return Some("similar");
        }
        self.relations
            .iter()
            .copied()
            .find(|relation| {
                self.relation_cells
                    .iter()
                    .any(|cell| cell.relation == *relation && cell.layers_copied > 0)
            })
            .or_else(|| self.relations.first().copied())
    }

    /// The per-unit differences from baseB of `variant` on `relation` at `levels` (those its
    /// curve has), for the units that have every one of them: the table its model is fitted
    /// on, and the units left out for a missing level (a chance-level cell, a missing node).
    pub fn block_table(
        &self,
        relation: &str,
        variant: &str,
        levels: &[u32],
    ) -> Option<(BlockTable, Vec<String>)> {
        let cells: Vec<&RelationCell> = levels
            .iter()
            .filter_map(|n| self.relation_cell(relation, variant, *n))
            .filter(|cell| !cell.relative.is_empty())
            .collect();
        if cells.is_empty() {
            return None;
        }
        let all_units: BTreeSet<&String> = cells
            .iter()
            .flat_map(|cell| cell.relative.0.keys())
            .collect();
        let (complete, dropped): (Vec<&String>, Vec<&String>) = all_units
            .into_iter()
            .partition(|unit| cells.iter().all(|cell| cell.relative.0.contains_key(*unit)));
        let table = BlockTable {
            units: complete.iter().map(|unit| unit.to_string()).collect(),
            levels: cells.iter().map(|cell| cell.layers_copied).collect(),
            values: complete
                .iter()
                .map(|unit| cells.iter().map(|cell| cell.relative.0[*unit]).collect())
                .collect(),
        };
        Some((table, dropped.into_iter().cloned().collect()))
    }

    /// The levels (n) of `variant`'s curve on `relation` that have a difference from baseB.
    pub fn curve_levels(&self, relation: &str, variant: &str) -> Vec<u32> {
        self.relation_curve(relation, variant)
            .iter()
            .filter(|cell| !cell.relative.is_empty())
            .map(|cell| cell.layers_copied)
            .collect()
    }

    /// The model of `variant`'s whole curve on `relation` (see `model`): fitted on every
    /// level, over the units that have them all; where fewer than two units do, over the
    /// levels every unit has.
    pub fn curve_fit(&self, relation: &str, variant: &str) -> Option<BlockFit> {
        let levels = self.curve_levels(relation, variant);
        let (table, _) = self.block_table(relation, variant, &levels)?;
        if table.units.len() >= 2 {
            return BlockFit::fit(&table);
        }
        let shared: Vec<u32> = levels
            .into_iter()
            .filter(|n| {
                self.relation_cell(relation, variant, *n)
                    .is_some_and(|cell| cell.relative.len() >= 2)
            })
            .collect();
        let (table, _) = self.block_table(relation, variant, &shared)?;
        BlockFit::fit(&table)
    }

    /// `variant`'s difference from baseB at `n` on `relation`, from its curve's model (a level
    /// the model left out has its own units' t-interval).
    pub fn level_effect(&self, relation: &str, variant: &str, n: u32) -> Option<Effect> {
        if let Some(effect) = self
            .curve_fit(relation, variant)
            .and_then(|fit| fit.level(n))
        {
            return Some(effect);
        }
        let cell = self.relation_cell(relation, variant, n)?;
        Some(cell.relative.sample()?.effect())
    }

    /// The mean top-1 of a relation's baseB over its units: what the paper's effects are
    /// carried over to.
    pub fn base_accuracy(&self, relation: &str) -> Option<f64> {
        Some(self.base(relation)?.top1.sample()?.mean)
    }

    /// A single run's difference from its unit's base, in points (for the CSV).
    pub fn run_relative(&self, run: &Run) -> Option<f64> {
        (run.role != Role::Base)
            .then(|| self.base_of(&self.unit(run), run))
            .flatten()
            .map(|base| (run.top1 - base) * POINTS)
    }

    /// Distinct (split, target task, variant, n) cells: the report's "variants".
    pub fn variant_count(&self) -> usize {
        self.split_cells.len()
    }

    /// "3 splits" or "3 seeds of one split": what a relation's intervals are taken across.
    pub fn units_word(&self, relation: &str, units: usize) -> String {
        let (one, many) = if self.units_are_seeds(relation) {
            ("seed of one split", "seeds of one split")
        } else {
            ("split", "splits")
        };
        format!("{units} {}", if units == 1 { one } else { many })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kind::Artifact;
    use crate::kinds::artifacts::{EvaluatedData, Evaluation, Lineage, Scores};

    /// An evaluation as an evaluate node writes it (10 classes, 1,000 held-out images).
    pub(crate) fn evaluation(
        split: &str,
        variant: &str,
        layers: u32,
        seed: i64,
        top1: f64,
    ) -> Evaluation {
        let relation = if split.contains("dissimilar") {
            "dissimilar"
        } else {
            "similar"
        };
        let target = super::super::runs::classify(variant)
            .2
            .unwrap_or_else(|| "B".to_string());
        Evaluation {
            format: Evaluation::FORMAT,
            net: Lineage {
                format: Lineage::FORMAT,
                variant: variant.to_string(),
                task: target.clone(),
                source_task: variant.chars().next().map(String::from).unwrap_or_default(),
                layers_copied: layers as usize,
                fine_tuned: variant.ends_with('+'),
                seed: seed as u64,
                random_init: (variant == "random").then(|| "modern".to_string()),
                base: None,
            },
            data: EvaluatedData {
                split: split.to_string(),
                relation: relation.to_string(),
                dataset: "synthetic".to_string(),
                task: target,
                classes: (0..10).map(|class| format!("c{class}")).collect(),
                num_classes: 10,
                images: "test".to_string(),
            },
            scores: Scores {
                top1,
                top5: (top1 + 0.1).min(1.0),
                count: 1000,
                per_class_accuracy: vec![Some(top1); 10],
                confusion: Vec::new(),
            },
        }
    }

    pub(crate) fn set_of(inputs: &[(String, Evaluation)]) -> RunSet {
        RunSet::from_evaluations(
            inputs
                .iter()
                .map(|(node, evaluation)| (node.as_str(), evaluation)),
            0.05,
        )
    }

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "expected {expected}, got {actual}"
        );
    }

    fn input(
        node: &str,
        split: &str,
        variant: &str,
        layers: u32,
        seed: i64,
        top1: f64,
    ) -> (String, Evaluation) {
        (
            node.to_string(),
            evaluation(split, variant, layers, seed, top1),
        )
    }

    #[test]
    fn cells_group_by_split_variant_and_n() {
        let inputs = vec![
            input("b0", "s_similar", "baseB", 0, 0, 0.80),
            input("b1", "s_similar", "baseB", 0, 1, 0.82),
            input("a0", "s_similar", "AnB", 3, 0, 0.70),
            input("a1", "s_similar", "AnB", 3, 1, 0.72),
            input("a2", "s_similar", "AnB", 4, 0, 0.60),
            input("d0", "s_dissimilar", "AnB", 3, 0, 0.50),
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
        assert_eq!(analysis.relations, ["dissimilar", "similar"]);
        assert_eq!(analysis.variant_count(), 4);
        // The dissimilar split has no base of its own, so no difference.
        assert!(analysis.split_cells[0].relative.is_none());
        close(analysis.split_cells[2].relative.unwrap(), -10.0);
    }

    #[test]
    fn the_unit_is_the_split_and_differences_are_paired_within_it() {
        // Three splits whose bases differ by 10 points; every BnB is 1 point below its own.
        let mut inputs = Vec::new();
        for (split, base) in [("s0", 0.70), ("s1", 0.80), ("s2", 0.90)] {
            inputs.push(input(&format!("b_{split}"), split, "baseB", 0, 0, base));
            inputs.push(input(
                &format!("x_{split}"),
                split,
                "BnB",
                2,
                0,
                base - 0.01,
            ));
        }
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let cell = analysis.relation_cell("similar", "BnB", 2).unwrap();
        let relative = cell.relative.sample().unwrap();
        assert_eq!(relative.count, 3);
        close(relative.mean, -1.0);
        // Pairing removes the bases' spread entirely: a zero-width interval.
        let interval = relative.interval(0.95).unwrap();
        close(interval.low, -1.0);
        close(interval.high, -1.0);
        close(cell.top1.sample().unwrap().mean, 0.79);
        close(
            analysis
                .base("similar")
                .unwrap()
                .top1
                .sample()
                .unwrap()
                .mean,
            0.80,
        );
    }

    #[test]
    fn runs_within_a_split_are_averaged_before_the_split_counts_once() {
        let inputs = vec![
            input("b0", "s0", "baseB", 0, 0, 0.80),
            input("x0", "s0", "BnB", 2, 0, 0.78),
            input("x1", "s0", "BnB", 2, 1, 0.76),
            input("b1", "s1", "baseB", 0, 0, 0.60),
            input("y0", "s1", "BnB", 2, 0, 0.61),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let relative = &analysis
            .relation_cell("similar", "BnB", 2)
            .unwrap()
            .relative;
        assert_eq!(relative.len(), 2);
        close(relative.0["s0"], -3.0);
        close(relative.0["s1"], 1.0);
    }

    #[test]
    fn a_base_no_transfer_targets_is_not_pooled_into_base_b() {
        let inputs = vec![
            input("bA", "s0", "baseA", 0, 0, 0.95),
            input("bB", "s0", "baseB", 0, 0, 0.85),
            input("t", "s0", "AnB", 3, 0, 0.84),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let base = analysis.base("similar").unwrap();
        assert_eq!(base.runs.len(), 1);
        close(base.top1.sample().unwrap().mean, 0.85);
        // It stays in its split's table.
        assert!(analysis
            .split_cells
            .iter()
            .any(|cell| cell.variant == "baseA"));
    }

    #[test]
    fn both_directions_of_a_split_are_one_unit() {
        let inputs = vec![
            input("bA", "d_dissimilar", "baseA", 0, 0, 0.90),
            input("bB", "d_dissimilar", "baseB", 0, 0, 0.80),
            input("AB", "d_dissimilar", "AnB", 7, 0, 0.70),
            input("BA", "d_dissimilar", "BnA", 7, 0, 0.70),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let base = analysis.base("dissimilar").unwrap();
        assert_eq!(base.runs.len(), 2);
        close(base.top1.sample().unwrap().mean, 0.85);
        let relative = &analysis
            .relation_cell("dissimilar", "AnB", 7)
            .unwrap()
            .relative;
        // One seed of one split: the unit is that seed; −10 and −20 average to −15.
        assert_eq!(relative.len(), 1);
        close(relative.0["d_dissimilar, seed 0"], -15.0);
    }

    #[test]
    fn a_single_split_uses_its_seeds_as_units_paired_by_seed() {
        let inputs = vec![
            input("b0", "s", "baseB", 0, 0, 0.80),
            input("b1", "s", "baseB", 0, 1, 0.70),
            input("x0", "s", "BnB", 2, 0, 0.79),
            input("x1", "s", "BnB", 2, 1, 0.69),
            input("x2", "s", "BnB", 2, 2, 0.74),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        assert!(analysis.units_are_seeds("similar"));
        let relative = &analysis
            .relation_cell("similar", "BnB", 2)
            .unwrap()
            .relative;
        close(relative.0["s, seed 0"], -1.0);
        close(relative.0["s, seed 1"], -1.0);
        // Seed 2 has no base of its own: the split's base mean, 0.75.
        close(relative.0["s, seed 2"], -1.0);
    }

    #[test]
    fn seed_units_of_two_single_split_kinds_never_meet() {
        // Both relations have one split, so both use seed 0 as a unit: each must keep its own base.
        let inputs = vec![
            input("s_base", "s", "baseB", 0, 0, 0.80),
            input("s_x", "s", "BnB", 2, 0, 0.79),
            input("d_base", "d_dissimilar", "baseB", 0, 0, 0.60),
            input("d_x", "d_dissimilar", "BnB", 2, 0, 0.58),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let relative = |relation| {
            analysis
                .relation_cell(relation, "BnB", 2)
                .unwrap()
                .relative
                .sample()
                .unwrap()
                .mean
        };
        close(relative("similar"), -1.0);
        close(relative("dissimilar"), -2.0);
    }

    #[test]
    fn runs_at_chance_stay_in_means_but_a_base_at_chance_is_no_reference() {
        let inputs = vec![
            input("b0", "s", "baseB", 0, 0, 0.80),
            input("b_failed", "s", "baseB", 0, 1, 0.10),
            input("r0", "s", "random", 5, 0, 0.11),
            input("r1", "s", "random", 5, 1, 0.40),
        ];
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let base = analysis.base("similar").unwrap();
        assert_eq!(
            (base.runs.len(), base.chance_level.len(), base.total_runs()),
            (1, 1, 2)
        );
        let random = analysis.relation_cell("similar", "random", 5).unwrap();
        // The random run at chance is an outcome: in the mean, and counted as at chance.
        assert_eq!((random.runs.len(), random.chance_level.len()), (2, 1));
        assert_eq!(random.total_runs(), 2);
        close(random.top1.sample().unwrap().mean, (0.11 + 0.40) / 2.0);
        close(random.relative.0["s, seed 0"], -69.0);
        // Seed 1's base failed: its random run is measured against the split's base mean.
        close(random.relative.0["s, seed 1"], -40.0);
    }

    #[test]
    fn curves_become_complete_tables_and_their_model() {
        // Three splits; split s2 lacks BnB at n = 2, so the complete-case table leaves it out.
        let mut inputs = Vec::new();
        for (split, base) in [("s0", 0.70), ("s1", 0.80), ("s2", 0.90)] {
            inputs.push(input(&format!("b_{split}"), split, "baseB", 0, 0, base));
            for n in [1, 2] {
                if split == "s2" && n == 2 {
                    continue;
                }
                inputs.push(input(
                    &format!("{split}_{n}"),
                    split,
                    "BnB",
                    n,
                    0,
                    base - 0.01 * n as f64,
                ));
            }
        }
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        assert_eq!(analysis.curve_levels("similar", "BnB"), [1, 2]);
        let (table, dropped) = analysis.block_table("similar", "BnB", &[1, 2]).unwrap();
        assert_eq!(table.units, ["s0", "s1"]);
        assert_eq!(dropped, ["s2"]);
        for row in &table.values {
            close(row[0], -1.0);
            close(row[1], -2.0);
        }
        let effect = analysis.level_effect("similar", "BnB", 2).unwrap();
        close(effect.value, -2.0);
        close(analysis.base_accuracy("similar").unwrap(), 0.80);
    }
}
