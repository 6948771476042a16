//! The paper's five findings, each judged on this run's numbers.
//!
//! A finding is "seen" only when the 95% interval of the effect excludes zero in the paper's
//! direction; a mean that points the right way without that is "inconclusive"; one that points
//! the other way is "not seen at this scale"; and a finding with no nodes to measure it is "not
//! measured", never guessed. Findings 1, 2, 4 and 5 are judged per split kind.

use std::ops::RangeInclusive;

use super::analysis::{describe_runs, Analysis, KindCell, Relative};
use super::runs::Run;
use super::statistics::Estimate;
use super::tables::{points_interval, signed_points};
use crate::kinds::paper_reference as paper;

/// Where the paper's 8-layer net shows the co-adaptation dip (its BnB is lowest at n = 4–5).
pub const MIDDLE_LAYERS: RangeInclusive<u32> = 3..=5;
/// Where the paper's AnB has fallen furthest.
pub const HIGH_LAYERS: RangeInclusive<u32> = 6..=7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Seen,
    /// The random-weights control falls but does not reach chance.
    PartlySeen,
    /// The mean points the paper's way but its interval includes zero (or there is none).
    Inconclusive,
    NotSeen,
    NotMeasured,
}

impl Verdict {
    /// The words the summary uses.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Seen => "seen",
            Verdict::PartlySeen => "partly seen",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotSeen => "not seen at this scale",
            Verdict::NotMeasured => "not measured",
        }
    }
    /// The value in the metrics JSON.
    pub fn key(self) -> &'static str {
        match self {
            Verdict::Seen => "seen",
            Verdict::PartlySeen => "partly_seen",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotSeen => "not_seen",
            Verdict::NotMeasured => "not_measured",
        }
    }
}

/// A finding's verdict on one split kind (or a pair of kinds), with the numbers behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub scope: String,
    pub verdict: Verdict,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The name in the metrics JSON.
    pub key: &'static str,
    pub number: u8,
    pub title: &'static str,
    pub claim: &'static str,
    pub paper: &'static str,
    pub judgements: Vec<Judgement>,
}

pub fn findings(analysis: &Analysis) -> Vec<Finding> {
    let per_kind = |judge: &dyn Fn(&Analysis, &str) -> Judgement| -> Vec<Judgement> {
        if analysis.kinds.is_empty() {
            return vec![Judgement {
                scope: "all".into(),
                verdict: Verdict::NotMeasured,
                detail: "no runs.".into(),
            }];
        }
        analysis
            .kinds
            .iter()
            .map(|kind| judge(analysis, kind))
            .collect()
    };
    vec![
        Finding {
            key: "fragile_co_adaptation",
            number: 1,
            title: "Fragile co-adaptation",
            claim: "BnB dips at middle n vs baseB",
            paper: paper::CO_ADAPTATION_NOTE,
            judgements: per_kind(&co_adaptation),
        },
        Finding {
            key: "specificity",
            number: 2,
            title: "Specificity",
            claim: "AnB falls at high n",
            paper: paper::SPECIFICITY_NOTE,
            judgements: per_kind(&specificity),
        },
        Finding {
            key: "dissimilar_tasks",
            number: 3,
            title: "Dissimilar tasks",
            claim: "AnB drops more when A and B are dissimilar",
            paper: paper::DISSIMILAR_NOTE,
            judgements: vec![dissimilar_drop(analysis)],
        },
        Finding {
            key: "random_weights",
            number: 4,
            title: "Random weights",
            claim: "frozen random lower layers collapse accuracy",
            paper: paper::RANDOM_WEIGHTS_NOTE,
            judgements: per_kind(&random_weights),
        },
        Finding {
            key: "lingering_boost",
            number: 5,
            title: "Lingering boost",
            claim: "AnB+ beats baseB",
            paper: paper::LINGERING_BOOST_NOTE,
            judgements: per_kind(&lingering_boost),
        },
    ]
}

/// Whether an effect expected below zero (`expect_below`) or above it is there.
fn direction_verdict(estimate: &Estimate, expect_below: bool) -> Verdict {
    let toward_paper = if expect_below {
        -estimate.value
    } else {
        estimate.value
    };
    // Rounding noise around an exact zero is no effect.
    if toward_paper <= 1e-9 {
        return Verdict::NotSeen;
    }
    match estimate.interval() {
        Some(interval) if expect_below && interval.is_below_zero() => Verdict::Seen,
        Some(interval) if !expect_below && interval.is_above_zero() => Verdict::Seen,
        _ => Verdict::Inconclusive,
    }
}

/// "95% CI [-3.01, -1.19]", or why there is none.
fn interval_words(estimate: &Estimate) -> String {
    match estimate.interval() {
        Some(interval) => {
            let borrowed = if estimate.spread_borrowed {
                ", one side's spread borrowed from the other"
            } else {
                ""
            };
            format!("95% CI {}{borrowed}", points_interval(Some(interval)))
        }
        None => "no interval: a single run on each side".to_string(),
    }
}

/// "(95% CI [...]; 3 seeds vs 3 baseB runs)"
fn evidence(relative: &Relative) -> String {
    let base_word = if relative.base_runs == 1 {
        "run"
    } else {
        "runs"
    };
    format!(
        "({}; {} vs {} baseB {base_word})",
        interval_words(&relative.estimate),
        describe_runs(relative.runs, relative.seeds),
        relative.base_runs
    )
}

/// "2.10 points below baseB"
fn distance_from_base(value: f64) -> String {
    let side = if value < 0.0 { "below" } else { "above" };
    format!("{:.2} points {side} baseB", value.abs())
}

/// Why an inconclusive verdict is not "seen".
fn inconclusive_reason(estimate: &Estimate) -> &'static str {
    if estimate.interval().is_some() {
        "the 95% interval includes zero"
    } else {
        "too few runs for an interval"
    }
}

fn layers_text(layers: &[u32]) -> String {
    let contiguous = layers.windows(2).all(|pair| pair[1] == pair[0] + 1);
    match layers {
        [] => "none".to_string(),
        [only] => only.to_string(),
        [first, .., last] if contiguous => format!("{first}–{last}"),
        _ => layers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn range_text(range: &RangeInclusive<u32>) -> String {
    format!("{}–{}", range.start(), range.end())
}

fn not_measured(scope: &str, detail: String) -> Judgement {
    Judgement {
        scope: scope.to_string(),
        verdict: Verdict::NotMeasured,
        detail,
    }
}

/// The cells of `curve` in `range` that have a comparison with the base, deepest first.
fn measured_in<'c, 'a>(
    curve: &[&'c KindCell<'a>],
    range: &RangeInclusive<u32>,
) -> Vec<(&'c KindCell<'a>, &'c Relative)> {
    let mut cells: Vec<(&KindCell, &Relative)> = curve
        .iter()
        .filter(|cell| range.contains(&cell.layers_copied))
        .filter_map(|cell| cell.relative.as_ref().map(|relative| (*cell, relative)))
        .collect();
    cells.sort_by(|(first, first_relative), (second, second_relative)| {
        first_relative
            .estimate
            .value
            .total_cmp(&second_relative.estimate.value)
            .then(first.layers_copied.cmp(&second.layers_copied))
    });
    cells
}

/// Why a curve has nothing to judge in `range`.
fn missing_reason(variant: &str, curve: &[&KindCell], range: &RangeInclusive<u32>) -> String {
    if curve.is_empty() {
        return format!("no {variant} nodes.");
    }
    let in_range: Vec<&&KindCell> = curve
        .iter()
        .filter(|cell| range.contains(&cell.layers_copied))
        .collect();
    if in_range.is_empty() {
        let present: Vec<u32> = curve.iter().map(|cell| cell.layers_copied).collect();
        return format!(
            "no {variant} nodes at n = {} (only n = {}).",
            range_text(range),
            layers_text(&present)
        );
    }
    if in_range.iter().all(|cell| cell.runs.is_empty()) {
        return format!(
            "every {variant} run at n = {} stayed at chance level.",
            range_text(range)
        );
    }
    "no baseB (a base net on its own task) on the same splits to compare with.".to_string()
}

/// A dip-shaped finding: the deepest cell of `variant` in `range`, below baseB.
fn judge_drop(
    analysis: &Analysis,
    kind: &str,
    variant: &str,
    range: &RangeInclusive<u32>,
) -> Result<(Judgement, u32), Judgement> {
    let curve = analysis.kind_curve(kind, variant);
    let measured = measured_in(&curve, range);
    let Some((cell, relative)) = measured.first() else {
        return Err(not_measured(kind, missing_reason(variant, &curve, range)));
    };
    let verdict = direction_verdict(&relative.estimate, true);
    let n = cell.layers_copied;
    let detail = match verdict {
        Verdict::NotSeen => format!(
            "{variant} is not below baseB at n = {}: at its lowest, n = {n}, it is {} {}.",
            range_text(range),
            distance_from_base(relative.estimate.value),
            evidence(relative)
        ),
        Verdict::Inconclusive => format!(
            "{variant} is {} at n = {n} {}, but {}.",
            distance_from_base(relative.estimate.value),
            evidence(relative),
            inconclusive_reason(&relative.estimate)
        ),
        _ => format!(
            "{variant} is {} at n = {n} {}.",
            distance_from_base(relative.estimate.value),
            evidence(relative)
        ),
    };
    Ok((
        Judgement {
            scope: kind.to_string(),
            verdict,
            detail,
        },
        n,
    ))
}

fn co_adaptation(analysis: &Analysis, kind: &str) -> Judgement {
    let (mut judgement, dip_layers) = match judge_drop(analysis, kind, "BnB", &MIDDLE_LAYERS) {
        Ok(judged) => judged,
        Err(not_measured) => return not_measured,
    };
    if judgement.verdict == Verdict::NotSeen {
        return judgement;
    }
    // The paper's dip recovers at n = 6–7: say whether ours does.
    let curve = analysis.kind_curve(kind, "BnB");
    let top = curve
        .iter()
        .filter(|cell| cell.layers_copied > dip_layers && HIGH_LAYERS.contains(&cell.layers_copied))
        .filter_map(|cell| {
            cell.relative
                .as_ref()
                .map(|relative| (cell.layers_copied, relative))
        })
        .max_by_key(|(layers, _)| *layers);
    if let Some((layers, relative)) = top {
        let state = match relative.estimate.interval() {
            Some(interval) if interval.high >= 0.0 => "level with baseB again",
            Some(_) => "still below baseB",
            None => "no interval",
        };
        judgement.detail.push_str(&format!(
            " At n = {layers} it is {} points ({}): {state}.",
            signed_points(relative.estimate.value),
            points_interval(relative.estimate.interval())
        ));
    }
    judgement
}

fn specificity(analysis: &Analysis, kind: &str) -> Judgement {
    let (mut judgement, layers) = match judge_drop(analysis, kind, "AnB", &HIGH_LAYERS) {
        Ok(judged) => judged,
        Err(not_measured) => return not_measured,
    };
    // What AnB loses beyond BnB at the same n is what the paper calls specificity (the rest is
    // co-adaptation, which BnB shows too).
    let transfer = analysis.kind_cell(kind, "AnB", layers);
    let selffer = analysis.kind_cell(kind, "BnB", layers);
    if let (Some(transfer), Some(selffer)) = (transfer, selffer) {
        if let Some(gap) = analysis.gap_points(&transfer.runs, &selffer.runs) {
            let side = if gap.value < 0.0 { "below" } else { "above" };
            judgement.detail.push_str(&format!(
                " Against BnB at n = {layers}, AnB is {:.2} points {side} ({}).",
                gap.value.abs(),
                interval_words(&gap)
            ));
        }
    }
    judgement
}

/// The kind the dissimilar split is compared with: `similar`, else the first other kind.
fn comparison_kind<'a>(analysis: &Analysis<'a>) -> Option<&'a str> {
    if analysis.kinds.contains(&"similar") {
        return Some("similar");
    }
    analysis
        .kinds
        .iter()
        .copied()
        .find(|kind| *kind != "dissimilar")
}

fn dissimilar_drop(analysis: &Analysis) -> Judgement {
    let scope = "dissimilar vs similar";
    if !analysis.kinds.contains(&"dissimilar") {
        return not_measured(scope, "no split with `split_kind: dissimilar`.".into());
    }
    let Some(other) = comparison_kind(analysis) else {
        return not_measured(
            scope,
            "no similar (random) split to compare the dissimilar one with.".into(),
        );
    };
    let scope = format!("dissimilar vs {other}");
    let measured = |kind: &str| -> Vec<(u32, Relative)> {
        analysis
            .kind_curve(kind, "AnB")
            .iter()
            .filter_map(|cell| {
                cell.relative
                    .clone()
                    .map(|relative| (cell.layers_copied, relative))
            })
            .collect()
    };
    let (dissimilar, comparison) = (measured("dissimilar"), measured(other));
    let common = dissimilar
        .iter()
        .filter_map(|(layers, relative)| {
            comparison
                .iter()
                .find(|(other_layers, _)| other_layers == layers)
                .map(|(_, other)| (*layers, relative, other))
        })
        .max_by_key(|(layers, _, _)| *layers);
    let Some((layers, dissimilar, comparison)) = common else {
        return not_measured(
            &scope,
            format!("no n at which both the dissimilar and the {other} split have AnB runs and a baseB."),
        );
    };
    let gap = dissimilar.estimate.minus(&comparison.estimate);
    let verdict = direction_verdict(&gap, true);
    let mut detail = format!(
        "At n = {layers}, AnB is {} on the dissimilar split ({}) and {} on the {other} split ({}): ",
        distance_from_base(dissimilar.estimate.value),
        describe_runs(dissimilar.runs, dissimilar.seeds),
        distance_from_base(comparison.estimate.value),
        describe_runs(comparison.runs, comparison.seeds),
    );
    let gap_side = if gap.value < 0.0 { "more" } else { "less" };
    detail.push_str(&format!(
        "a drop {:.2} points {gap_side} when the tasks are dissimilar ({})",
        gap.value.abs(),
        interval_words(&gap)
    ));
    if verdict == Verdict::Inconclusive {
        detail.push_str(&format!(", but {}", inconclusive_reason(&gap)));
    }
    detail.push('.');
    Judgement {
        scope,
        verdict,
        detail,
    }
}

fn random_weights(analysis: &Analysis, kind: &str) -> Judgement {
    let curve = analysis.kind_curve(kind, "random");
    if curve.is_empty() {
        return not_measured(kind, "no random-weight (`random`) nodes.".into());
    }
    // A collapse shows as runs that never leave chance, which every mean leaves out: count them.
    let collapsed: Vec<(u32, usize, usize)> = curve
        .iter()
        .map(|cell| {
            (
                cell.layers_copied,
                cell.chance_level.len(),
                cell.runs.len() + cell.chance_level.len(),
            )
        })
        .filter(|(_, at_chance, total)| at_chance * 2 > *total)
        .collect();
    let with_all_runs = |cell: &KindCell| {
        analysis
            .relative_points(&cell.all_runs())
            .map(|relative| (cell.layers_copied, relative))
    };
    if let Some((first, _, _)) = collapsed.first() {
        let at_chance: usize = collapsed.iter().map(|(_, at_chance, _)| at_chance).sum();
        let total: usize = collapsed.iter().map(|(_, _, total)| total).sum();
        let layers: Vec<u32> = collapsed.iter().map(|(layers, _, _)| *layers).collect();
        let mut detail = format!(
            "From n = {first} on, random-weight nets stay at chance: {at_chance} of {total} runs at n = {} never rose above 1/classes + the margin.",
            layers_text(&layers)
        );
        let below = curve
            .iter()
            .filter(|cell| cell.layers_copied < *first)
            .filter_map(|cell| with_all_runs(cell))
            .next_back();
        if let Some((layers, relative)) = below {
            detail.push_str(&format!(
                " At n = {layers} they are {} {}.",
                distance_from_base(relative.estimate.value),
                evidence(&relative)
            ));
        }
        return Judgement {
            scope: kind.to_string(),
            verdict: Verdict::Seen,
            detail,
        };
    }
    let deepest = curve.iter().filter_map(|cell| with_all_runs(cell)).min_by(
        |(first_layers, first), (second_layers, second)| {
            first
                .estimate
                .value
                .total_cmp(&second.estimate.value)
                .then(first_layers.cmp(second_layers))
        },
    );
    let Some((layers, relative)) = deepest else {
        return not_measured(
            kind,
            "no baseB (a base net on its own task) on the same splits to compare with.".into(),
        );
    };
    let chance_known = curve
        .iter()
        .flat_map(|cell| cell.all_runs())
        .any(|run: &Run| run.num_classes.is_some());
    let chance_note = if chance_known {
        ""
    } else {
        " (chance level unknown: no `num_classes`)"
    };
    let (verdict, detail) = match direction_verdict(&relative.estimate, true) {
        Verdict::Seen => (
            Verdict::PartlySeen,
            format!(
                "Random-weight nets fall to {} at n = {layers} {}, but stay above chance{chance_note}.",
                distance_from_base(relative.estimate.value),
                evidence(&relative)
            ),
        ),
        Verdict::Inconclusive => (
            Verdict::Inconclusive,
            format!(
                "Random-weight nets are {} at n = {layers} {}, but {}.",
                distance_from_base(relative.estimate.value),
                evidence(&relative),
                inconclusive_reason(&relative.estimate)
            ),
        ),
        verdict => (
            verdict,
            format!(
                "Random-weight nets are not below baseB: at their lowest, n = {layers}, they are {} {}.",
                distance_from_base(relative.estimate.value),
                evidence(&relative)
            ),
        ),
    };
    Judgement {
        scope: kind.to_string(),
        verdict,
        detail,
    }
}

fn lingering_boost(analysis: &Analysis, kind: &str) -> Judgement {
    let curve: Vec<&KindCell> = analysis
        .kind_curve(kind, "AnB+")
        .into_iter()
        .filter(|cell| cell.layers_copied >= 1)
        .collect();
    if curve.is_empty() {
        return not_measured(kind, "no AnB+ nodes.".into());
    }
    let runs: Vec<&Run> = curve
        .iter()
        .flat_map(|cell| cell.runs.iter().copied())
        .collect();
    let Some(relative) = analysis.relative_points(&runs) else {
        let reason = if runs.is_empty() {
            "every AnB+ run stayed at chance level."
        } else {
            "no baseB (a base net on its own task) on the same splits to compare with."
        };
        return not_measured(kind, reason.into());
    };
    let layers: Vec<u32> = curve
        .iter()
        .filter(|cell| !cell.runs.is_empty())
        .map(|cell| cell.layers_copied)
        .collect();
    let verdict = direction_verdict(&relative.estimate, false);
    let mut detail = format!(
        "Averaged over n = {}, AnB+ is {} {}",
        layers_text(&layers),
        distance_from_base(relative.estimate.value),
        evidence(&relative)
    );
    if verdict == Verdict::Inconclusive {
        detail.push_str(&format!(
            ", but {}",
            inconclusive_reason(&relative.estimate)
        ));
    }
    detail.push('.');
    let best = measured_in(&curve, &(1..=u32::MAX)).into_iter().last();
    if let (Some((cell, best)), true) = (best, layers.len() > 1) {
        detail.push_str(&format!(
            " Best single n: {} at n = {} ({}).",
            signed_points(best.estimate.value),
            cell.layers_copied,
            points_interval(best.estimate.interval())
        ));
    }
    Judgement {
        scope: kind.to_string(),
        verdict,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::analysis::tests::{metrics, set_of};
    use super::*;

    /// Three seeds per cell; `top1(variant, n, seed)` sets each run's accuracy.
    fn grid(
        splits: &[&str],
        variants: &[(&str, &[u32])],
        top1: impl Fn(&str, &str, u32, i64) -> f64,
    ) -> Vec<(String, Value)> {
        let mut inputs = Vec::new();
        for split in splits {
            for seed in 0..3 {
                inputs.push((
                    format!("{split}_baseB_s{seed}"),
                    metrics(split, "baseB", 0, seed, top1(split, "baseB", 0, seed)),
                ));
                for (variant, layers) in variants {
                    for n in layers.iter() {
                        let node = format!("{split}_{variant}_n{n}_s{seed}");
                        inputs.push((
                            node,
                            metrics(split, variant, *n, seed, top1(split, variant, *n, seed)),
                        ));
                    }
                }
            }
        }
        inputs
    }

    /// A small spread around `mean`, the same for every cell.
    fn around(mean: f64, seed: i64) -> f64 {
        mean + [-0.002, 0.0, 0.002][seed as usize]
    }

    fn judge(inputs: &[(String, Value)], key: &str) -> Vec<Judgement> {
        let set = set_of(inputs);
        let analysis = Analysis::new(&set);
        findings(&analysis)
            .into_iter()
            .find(|finding| finding.key == key)
            .unwrap()
            .judgements
    }

    const ALL_LAYERS: &[u32] = &[1, 2, 3, 4, 5, 6, 7];

    #[test]
    fn a_clear_bnb_dip_is_reported_as_seen_with_its_size() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("BnB", ALL_LAYERS)],
            |_, variant, n, seed| match (variant, n) {
                ("BnB", 4) => around(0.779, seed),
                _ => around(0.800, seed),
            },
        );
        let judgements = judge(&inputs, "fragile_co_adaptation");
        assert_eq!(judgements.len(), 1);
        let judgement = &judgements[0];
        assert_eq!(
            (judgement.scope.as_str(), judgement.verdict),
            ("similar", Verdict::Seen)
        );
        assert!(
            judgement
                .detail
                .starts_with("BnB is 2.10 points below baseB at n = 4 (95% CI [-2."),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("3 seeds vs 3 baseB runs"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("At n = 7 it is +0.00 points"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("level with baseB again"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn a_flat_bnb_curve_is_not_seen_at_this_scale() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("BnB", ALL_LAYERS)],
            |_, variant, n, seed| match variant {
                "BnB" => around(0.801 + n as f64 * 0.0001, seed),
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "fragile_co_adaptation")[0];
        assert_eq!(judgement.verdict, Verdict::NotSeen);
        assert_eq!(judgement.verdict.words(), "not seen at this scale");
        assert!(
            judgement.detail.starts_with(
                "BnB is not below baseB at n = 3–5: at its lowest, n = 3, it is 0.13 points above"
            ),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn a_small_noisy_dip_is_inconclusive() {
        let noisy = |mean: f64, seed: i64| mean + [-0.02, 0.0, 0.02][seed as usize];
        let inputs = grid(
            &["split_similar_s0"],
            &[("BnB", &[4])],
            |_, variant, _, seed| match variant {
                "BnB" => noisy(0.795, seed),
                _ => noisy(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "fragile_co_adaptation")[0];
        assert_eq!(judgement.verdict, Verdict::Inconclusive);
        assert!(
            judgement
                .detail
                .ends_with("but the 95% interval includes zero."),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn findings_without_nodes_are_not_measured() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("BnB", &[1, 2])],
            |_, _, _, seed| around(0.8, seed),
        );
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let all = findings(&analysis);
        let verdicts: Vec<(&str, Verdict, &str)> = all
            .iter()
            .map(|finding| {
                (
                    finding.key,
                    finding.judgements[0].verdict,
                    finding.judgements[0].detail.as_str(),
                )
            })
            .collect();
        assert_eq!(
            verdicts,
            [
                (
                    "fragile_co_adaptation",
                    Verdict::NotMeasured,
                    "no BnB nodes at n = 3–5 (only n = 1–2)."
                ),
                ("specificity", Verdict::NotMeasured, "no AnB nodes."),
                (
                    "dissimilar_tasks",
                    Verdict::NotMeasured,
                    "no split with `split_kind: dissimilar`."
                ),
                (
                    "random_weights",
                    Verdict::NotMeasured,
                    "no random-weight (`random`) nodes."
                ),
                ("lingering_boost", Verdict::NotMeasured, "no AnB+ nodes."),
            ]
        );
    }

    #[test]
    fn anb_falling_at_high_n_is_seen_and_compared_with_bnb() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("AnB", ALL_LAYERS), ("BnB", ALL_LAYERS)],
            |_, variant, n, seed| match (variant, n) {
                ("AnB", n) if n >= 5 => around(0.800 - 0.03 * (n - 4) as f64, seed),
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "specificity")[0];
        assert_eq!(judgement.verdict, Verdict::Seen);
        assert!(
            judgement
                .detail
                .starts_with("AnB is 9.00 points below baseB at n = 7"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement
                .detail
                .contains("Against BnB at n = 7, AnB is 9.00 points below"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn anb_holding_up_at_high_n_is_not_seen() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("AnB", &[6, 7])],
            |_, variant, _, seed| match variant {
                "AnB" => around(0.805, seed),
                _ => around(0.800, seed),
            },
        );
        assert_eq!(judge(&inputs, "specificity")[0].verdict, Verdict::NotSeen);
    }

    #[test]
    fn a_larger_drop_on_the_dissimilar_split_is_seen() {
        let inputs = grid(
            &["split_similar_s0", "split_dissimilar"],
            &[("AnB", &[7])],
            |split, variant, _, seed| match (split.contains("dissimilar"), variant) {
                (true, "AnB") => around(0.600, seed),
                (false, "AnB") => around(0.720, seed),
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "dissimilar_tasks")[0];
        assert_eq!(
            (judgement.scope.as_str(), judgement.verdict),
            ("dissimilar vs similar", Verdict::Seen)
        );
        assert!(
            judgement.detail.starts_with(
                "At n = 7, AnB is 20.00 points below baseB on the dissimilar split (3 seeds) and 8.00 points below baseB on the similar split (3 seeds): a drop 12.00 points more"
            ),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn an_equal_drop_on_both_splits_is_not_seen() {
        let inputs = grid(
            &["split_similar_s0", "split_dissimilar"],
            &[("AnB", &[7])],
            |_, variant, _, seed| match variant {
                "AnB" => around(0.700, seed),
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "dissimilar_tasks")[0];
        assert_ne!(judgement.verdict, Verdict::Seen);
    }

    #[test]
    fn random_weights_at_chance_are_a_collapse_even_though_means_leave_them_out() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("random", &[1, 3, 5])],
            |_, variant, n, seed| match (variant, n) {
                ("random", 1) => around(0.700, seed),
                ("random", _) => 0.10,
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "random_weights")[0];
        assert_eq!(judgement.verdict, Verdict::Seen);
        assert!(
            judgement.detail.starts_with(
                "From n = 3 on, random-weight nets stay at chance: 6 of 6 runs at n = 3, 5"
            ),
            "{}",
            judgement.detail
        );
        assert!(
            judgement
                .detail
                .contains("At n = 1 they are 10.00 points below baseB"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn random_weights_that_fall_but_stay_above_chance_are_partly_seen() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("random", &[1, 3])],
            |_, variant, n, seed| match (variant, n) {
                ("random", 3) => around(0.500, seed),
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "random_weights")[0];
        assert_eq!(judgement.verdict, Verdict::PartlySeen);
        assert!(
            judgement
                .detail
                .contains("30.00 points below baseB at n = 3"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn anb_plus_above_base_is_a_lingering_boost() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("AnB+", ALL_LAYERS)],
            |_, variant, n, seed| match variant {
                "AnB+" => around(0.810 + 0.001 * n as f64, seed),
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "lingering_boost")[0];
        assert_eq!(judgement.verdict, Verdict::Seen);
        assert!(
            judgement
                .detail
                .starts_with("Averaged over n = 1–7, AnB+ is 1.40 points above baseB"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement
                .detail
                .contains("21 runs (3 seeds) vs 3 baseB runs"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("Best single n: +1.70 at n = 7"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn anb_plus_below_base_is_not_seen() {
        let inputs = grid(
            &["split_similar_s0"],
            &[("AnB+", &[3])],
            |_, variant, _, seed| match variant {
                "AnB+" => around(0.790, seed),
                _ => around(0.800, seed),
            },
        );
        let judgement = &judge(&inputs, "lingering_boost")[0];
        assert_eq!(judgement.verdict, Verdict::NotSeen);
        assert!(
            judgement
                .detail
                .starts_with("Averaged over n = 3, AnB+ is 1.00 points below baseB"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn each_split_kind_is_judged_on_its_own() {
        let inputs = grid(
            &["split_similar_s0", "split_dissimilar"],
            &[("BnB", &[4])],
            |split, variant, _, seed| match (split.contains("dissimilar"), variant) {
                (false, "BnB") => around(0.770, seed),
                _ => around(0.800, seed),
            },
        );
        let judgements = judge(&inputs, "fragile_co_adaptation");
        let verdicts: Vec<(&str, Verdict)> = judgements
            .iter()
            .map(|judgement| (judgement.scope.as_str(), judgement.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [("dissimilar", Verdict::NotSeen), ("similar", Verdict::Seen)]
        );
    }
}
