//! The paper's findings, each judged on this run's numbers.
//!
//! Every effect is measured per unit (a split; see `analysis`) and judged against the paper's
//! own effect size, taken from its tables:
//! - *seen*: the interval excludes zero in the paper's direction;
//! - *not seen*: the interval excludes an effect as large as the paper's;
//! - *inconclusive*: neither (or no interval: fewer than two units);
//! - *not measured*: no nodes to measure it, never guessed.
//!
//! Where a finding looks at several n and takes the most favourable (the lowest BnB of
//! n = 3–5), each interval is widened to 1 − 0.05/looks (Bonferroni), so three looks do not
//! buy three chances at "seen". Each verdict states the smallest effect these units could
//! detect with 80% power at that level, given the spread they showed.

use std::ops::RangeInclusive;

use super::analysis::{Analysis, PerUnit, RelationCell};
use super::statistics::{Effect, Interval, CONFIDENCE};
use super::tables::{points_interval, signed_points};
use crate::kinds::paper_reference as paper;

/// Where the paper's 8-layer net shows the co-adaptation dip (its BnB is lowest at n = 4–5).
pub const MIDDLE_LAYERS: RangeInclusive<u32> = 3..=5;
/// Where the paper's AnB has fallen furthest.
pub const HIGH_LAYERS: RangeInclusive<u32> = 6..=7;
/// The layers the lingering boost and its control average over.
pub const ALL_LAYERS: RangeInclusive<u32> = 1..=7;
/// The power the smallest detectable effect is stated at.
pub const POWER: f64 = 0.8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Seen,
    /// The random-weights control falls significantly but does not collapse to chance.
    PartlySeen,
    /// Neither zero nor the paper's effect is excluded (or there is no interval).
    Inconclusive,
    /// The interval excludes an effect as large as the paper's.
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
            Verdict::NotSeen => "not seen",
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

/// A finding's verdict on one relation (or a pair of relations), with the numbers behind it.
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
    /// The paper's own figures for it, computed from `paper_reference`'s tables.
    pub paper: String,
    pub judgements: Vec<Judgement>,
}

pub fn findings(analysis: &Analysis) -> Vec<Finding> {
    let per_relation = |judge: &dyn Fn(&Analysis, &str) -> Judgement| -> Vec<Judgement> {
        if analysis.relations.is_empty() {
            return vec![not_measured("all", "no runs.".into())];
        }
        analysis
            .relations
            .iter()
            .map(|relation| judge(analysis, relation))
            .collect()
    };
    vec![
        Finding {
            key: "fragile_co_adaptation",
            number: 1,
            title: "Fragile co-adaptation",
            claim: "BnB dips at middle n vs baseB",
            paper: paper::co_adaptation_note(),
            judgements: per_relation(&co_adaptation),
        },
        Finding {
            key: "specificity",
            number: 2,
            title: "Specificity",
            claim: "AnB falls at high n",
            paper: paper::specificity_note(),
            judgements: per_relation(&specificity),
        },
        Finding {
            key: "dissimilar_tasks",
            number: 3,
            title: "Dissimilar tasks",
            claim: "AnB drops more when A and B are dissimilar",
            paper: paper::dissimilar_note(),
            judgements: vec![dissimilar_drop(analysis)],
        },
        Finding {
            key: "random_weights",
            number: 4,
            title: "Random weights",
            claim: "frozen random lower layers collapse accuracy",
            paper: paper::random_weights_note(),
            judgements: per_relation(&random_weights),
        },
        Finding {
            key: "lingering_boost",
            number: 5,
            title: "Lingering boost",
            claim: "AnB+ beats baseB",
            paper: paper::lingering_boost_note(),
            judgements: per_relation(&lingering_boost),
        },
        Finding {
            key: "boost_is_transfer",
            number: 6,
            title: "The boost's control",
            claim: "AnB+ beats BnB+, so the boost comes from transfer, not from longer training",
            paper: paper::boost_control_note(),
            judgements: per_relation(&boost_control),
        },
    ]
}

/// One tested effect: where it was measured and its per-unit estimate.
#[derive(Clone, Debug)]
struct Look {
    layers: u32,
    effect: Effect,
    units: usize,
}

impl Look {
    fn of(layers: u32, values: &PerUnit) -> Option<Look> {
        values.sample().map(|sample| Look {
            layers,
            effect: sample.effect(),
            units: sample.count,
        })
    }
}

/// The verdict on one or more looks at an effect the paper puts at `paper_effect` (its sign
/// is the expected direction), with the corrected confidence level it used.
fn judge(looks: &[Look], paper_effect: f64) -> (Verdict, f64) {
    let confidence = corrected(looks.len());
    let direction = paper_effect.signum();
    let intervals: Vec<Option<Interval>> = looks
        .iter()
        .map(|look| look.effect.interval(confidence))
        .collect();
    let verdict = if intervals
        .iter()
        .flatten()
        .any(|interval| interval.beyond(0.0, direction))
    {
        Verdict::Seen
    } else if !intervals.is_empty()
        && intervals.iter().all(|interval| {
            interval.is_some_and(|interval| interval.beyond(paper_effect, -direction))
        })
    {
        Verdict::NotSeen
    } else {
        Verdict::Inconclusive
    };
    (verdict, confidence)
}

/// The Bonferroni-corrected level for `looks` looks at one question.
fn corrected(looks: usize) -> f64 {
    1.0 - (1.0 - CONFIDENCE) / looks.max(1) as f64
}

/// "95%" or "98.3%".
fn level_text(confidence: f64) -> String {
    let percent = confidence * 100.0;
    if (percent - percent.round()).abs() < 1e-9 {
        format!("{percent:.0}%")
    } else {
        format!("{percent:.1}%")
    }
}

/// "(95% CI [-3.01, -1.19] across 3 splits; smallest detectable: 2.40 points)", or why
/// there is no interval.
fn evidence(
    analysis: &Analysis,
    relation: &str,
    look: &Look,
    confidence: f64,
    looks: usize,
) -> String {
    let units = analysis.units_word(relation, look.units);
    let Some(interval) = look.effect.interval(confidence) else {
        return format!("(no interval: {units})");
    };
    let correction = if looks > 1 {
        format!(", corrected for {looks} looks")
    } else {
        String::new()
    };
    let detectable = look
        .effect
        .detectable(confidence, POWER)
        .map(|size| format!("; smallest detectable effect {size:.2} points"))
        .unwrap_or_default();
    format!(
        "({} CI {}{correction}, across {units}{detectable})",
        level_text(confidence),
        points_interval(Some(interval))
    )
}

/// Why the verdict is what it is, after the numbers, for `looks` intervals judged together.
fn verdict_reason(verdict: Verdict, paper_effect: f64, has_interval: bool, looks: usize) -> String {
    let paper = signed_points(paper_effect);
    match (verdict, looks) {
        (Verdict::Seen, 1) => "the interval excludes zero".into(),
        (Verdict::Seen, _) => "its interval excludes zero".into(),
        (Verdict::NotSeen, 1) => {
            format!("the interval excludes an effect as large as the paper's {paper}")
        }
        (Verdict::NotSeen, _) => {
            format!("all {looks} intervals exclude an effect as large as the paper's {paper}")
        }
        _ if !has_interval => "too few units for an interval".into(),
        (_, 1) => format!("the interval includes zero and the paper's {paper}"),
        _ => format!(
            "none of the {looks} intervals excludes zero, and not all exclude the paper's {paper}"
        ),
    }
}

/// A tested effect in words, with its verdict: "<subject> is 1.20 points above <reference>
/// (95% CI …, across 3 splits; …): the interval excludes zero." `chosen` is the look the
/// sentence reports, one of `looks`, all judged together against `paper_effect`; when the
/// effect is seen, the sentence reports the most extreme look that shows it instead.
fn judged_sentence(
    analysis: &Analysis,
    relation: &str,
    looks: &[Look],
    chosen: &Look,
    paper_effect: f64,
    subject: &str,
    reference: &str,
) -> (Verdict, String) {
    let (verdict, confidence) = judge(looks, paper_effect);
    let direction = paper_effect.signum();
    let shown = (verdict == Verdict::Seen)
        .then(|| {
            looks
                .iter()
                .filter(|look| {
                    look.effect
                        .interval(confidence)
                        .is_some_and(|interval| interval.beyond(0.0, direction))
                })
                .max_by(|first, second| {
                    (first.effect.value * direction).total_cmp(&(second.effect.value * direction))
                })
        })
        .flatten()
        .unwrap_or(chosen);
    let subject = subject.replace("{n}", &shown.layers.to_string());
    let has_interval = shown.effect.interval(confidence).is_some();
    let sentence = format!(
        "{subject} is {} {}: {}.",
        distance(shown.effect.value, reference),
        evidence(analysis, relation, shown, confidence, looks.len()),
        verdict_reason(verdict, paper_effect, has_interval, looks.len())
    );
    (verdict, sentence)
}

/// `judged_sentence` for an effect looked at once.
fn judged_once(
    analysis: &Analysis,
    relation: &str,
    look: &Look,
    paper_effect: f64,
    subject: &str,
    reference: &str,
) -> (Verdict, String) {
    let looks = std::slice::from_ref(look);
    judged_sentence(
        analysis,
        relation,
        looks,
        look,
        paper_effect,
        subject,
        reference,
    )
}

/// "2.10 points below baseB"
fn distance(value: f64, reference: &str) -> String {
    let side = if value < 0.0 { "below" } else { "above" };
    format!("{:.2} points {side} {reference}", value.abs())
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

/// Why a curve has nothing to judge in `range`.
fn missing_reason(variant: &str, curve: &[&RelationCell], range: &RangeInclusive<u32>) -> String {
    if curve.is_empty() {
        return format!("no {variant} nodes.");
    }
    let in_range: Vec<&&RelationCell> = curve
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
            "every {variant} run at n = {} is at chance level.",
            range_text(range)
        );
    }
    "no baseB (a base net on its own task) on the same splits to compare with.".to_string()
}

/// The looks at `variant`'s difference from baseB at each n of `range` that has one.
fn looks_in(
    analysis: &Analysis,
    relation: &str,
    variant: &str,
    range: &RangeInclusive<u32>,
) -> Vec<Look> {
    analysis
        .relation_curve(relation, variant)
        .iter()
        .filter(|cell| range.contains(&cell.layers_copied))
        .filter_map(|cell| Look::of(cell.layers_copied, &cell.relative))
        .collect()
}

fn co_adaptation(analysis: &Analysis, relation: &str) -> Judgement {
    let curve = analysis.relation_curve(relation, "BnB");
    let looks = looks_in(analysis, relation, "BnB", &MIDDLE_LAYERS);
    let Some(lowest) = looks
        .iter()
        .min_by(|first, second| first.effect.value.total_cmp(&second.effect.value))
    else {
        return not_measured(relation, missing_reason("BnB", &curve, &MIDDLE_LAYERS));
    };
    let paper_effect = MIDDLE_LAYERS
        .clone()
        .filter_map(|n| paper::random_split_drop_points("BnB", n))
        .fold(0.0, f64::min);
    let measured: Vec<u32> = looks.iter().map(|look| look.layers).collect();
    // `{n}` becomes the n the sentence reports: the lowest BnB (the lowest that shows a dip,
    // when one does).
    let subject = format!("Over n = {}, at n = {{n}}, BnB", layers_text(&measured));
    let (verdict, mut detail) = judged_sentence(
        analysis,
        relation,
        &looks,
        lowest,
        paper_effect,
        &subject,
        "baseB",
    );
    // The paper's dip recovers at n = 6–7: say where ours ends.
    let high = looks_in(analysis, relation, "BnB", &HIGH_LAYERS);
    if let Some(top) = high.last() {
        detail.push_str(&format!(
            " At n = {} it is {} (95% CI {}).",
            top.layers,
            signed_points(top.effect.value),
            points_interval(top.effect.interval(CONFIDENCE))
        ));
    }
    Judgement {
        scope: relation.to_string(),
        verdict,
        detail,
    }
}

fn specificity(analysis: &Analysis, relation: &str) -> Judgement {
    let curve = analysis.relation_curve(relation, "AnB");
    // The paper's claim is about its deepest transfer: judge the highest n measured.
    let Some(deepest) = looks_in(analysis, relation, "AnB", &HIGH_LAYERS).pop() else {
        return not_measured(relation, missing_reason("AnB", &curve, &HIGH_LAYERS));
    };
    let paper_effect =
        paper::random_split_drop_points("AnB", deepest.layers).expect("n is in 6..=7");
    let subject = format!("At n = {}, AnB", deepest.layers);
    let (verdict, mut detail) = judged_once(
        analysis,
        relation,
        &deepest,
        paper_effect,
        &subject,
        "baseB",
    );
    // What AnB loses beyond BnB at the same n is what the paper calls specificity (the rest is
    // co-adaptation, which BnB shows too). Paired within each unit, so the base cancels.
    let selffer = analysis.relation_cell(relation, "BnB", deepest.layers);
    let transfer = analysis.relation_cell(relation, "AnB", deepest.layers);
    if let (Some(transfer), Some(selffer)) = (transfer, selffer) {
        if let Some(gap) = Look::of(
            deepest.layers,
            &transfer.relative.paired_minus(&selffer.relative),
        ) {
            detail.push_str(&format!(
                " Against BnB at the same n, AnB is {} {}.",
                distance(gap.effect.value, "BnB"),
                evidence(analysis, relation, &gap, CONFIDENCE, 1)
            ));
        }
    }
    Judgement {
        scope: relation.to_string(),
        verdict,
        detail,
    }
}

/// The relation the dissimilar split is compared with: `similar`, else the first other relation.
fn comparison_relation<'a>(analysis: &Analysis<'a>) -> Option<&'a str> {
    if analysis.relations.contains(&"similar") {
        return Some("similar");
    }
    analysis
        .relations
        .iter()
        .copied()
        .find(|relation| *relation != "dissimilar")
}

fn dissimilar_drop(analysis: &Analysis) -> Judgement {
    let scope = "dissimilar vs similar";
    if !analysis.relations.contains(&"dissimilar") {
        return not_measured(scope, "no split with `relation: dissimilar`.".into());
    }
    let Some(other) = comparison_relation(analysis) else {
        return not_measured(
            scope,
            "no similar (random) split to compare the dissimilar one with.".into(),
        );
    };
    let scope = format!("dissimilar vs {other}");
    let common = analysis
        .relation_curve("dissimilar", "AnB")
        .iter()
        .filter_map(|cell| {
            let theirs = analysis.relation_cell(other, "AnB", cell.layers_copied)?;
            Some((
                cell.layers_copied,
                cell.relative.sample()?,
                theirs.relative.sample()?,
            ))
        })
        .max_by_key(|(layers, _, _)| *layers);
    let Some((layers, dissimilar, comparison)) = common else {
        return not_measured(
            &scope,
            format!("no n at which both the dissimilar and the {other} split have AnB runs and a baseB."),
        );
    };
    // The two relations' units are different splits: independent groups, Welch's interval.
    let gap = Look {
        layers,
        effect: Effect::welch(&dissimilar, &comparison),
        units: dissimilar.count.min(comparison.count),
    };
    let paper_effect = paper::dissimilar_drop_points(layers)
        .zip(paper::random_split_drop_points("AnB", layers))
        .map(|(dissimilar, random)| dissimilar - random)
        .unwrap_or(-1.0);
    let (verdict, confidence) = judge(std::slice::from_ref(&gap), paper_effect);
    let side = if gap.effect.value < 0.0 {
        "more"
    } else {
        "less"
    };
    let interval = match gap.effect.interval(confidence) {
        Some(interval) => format!(
            "Welch {} CI {}",
            level_text(confidence),
            points_interval(Some(interval))
        ),
        None => "no interval: a relation with a single unit".to_string(),
    };
    let detectable = gap
        .effect
        .detectable(confidence, POWER)
        .map(|size| format!("; smallest detectable difference {size:.2} points"))
        .unwrap_or_default();
    let detail = format!(
        "At n = {layers}, AnB is {} on the dissimilar split ({}) and {} on the {other} split ({}): a drop {:.2} points {side} when the tasks are dissimilar ({interval}{detectable}): {}.",
        distance(dissimilar.mean, "baseB"),
        analysis.units_word("dissimilar", dissimilar.count),
        distance(comparison.mean, "baseB"),
        analysis.units_word(other, comparison.count),
        gap.effect.value.abs(),
        verdict_reason(verdict, paper_effect, gap.effect.interval(confidence).is_some(), 1)
    );
    Judgement {
        scope,
        verdict,
        detail,
    }
}

fn random_weights(analysis: &Analysis, relation: &str) -> Judgement {
    let curve = analysis.relation_curve(relation, "random");
    let Some(deepest) = curve.last() else {
        return not_measured(relation, "no random-weight (`random`) nodes.".into());
    };
    // Chance-level runs are in no mean; how many there are is itself the collapse.
    let counts: Vec<String> = curve
        .iter()
        .filter(|cell| !cell.chance_level.is_empty())
        .map(|cell| {
            format!(
                "{} of {} at n = {}",
                cell.chance_level.len(),
                cell.total_runs(),
                cell.layers_copied
            )
        })
        .collect();
    let chance_text = if counts.is_empty() {
        "No run is at chance.".to_string()
    } else {
        format!("Runs at chance: {}.", counts.join(", "))
    };
    let n = deepest.layers_copied;
    if deepest.chance_level.len() * 2 > deepest.total_runs() {
        return Judgement {
            scope: relation.to_string(),
            verdict: Verdict::Seen,
            detail: format!(
                "At n = {n}, {} of {} random-weight nets are at chance. {chance_text}",
                deepest.chance_level.len(),
                deepest.total_runs()
            ),
        };
    }
    let Some(look) = Look::of(n, &deepest.relative) else {
        return not_measured(
            relation,
            "no baseB (a base net on its own task) on the same splits to compare with.".into(),
        );
    };
    // Below chance the paper gives only a range; its smallest measured drop is at n = 2.
    let paper_effect = paper::random_weights_drop_points(2).expect("n = 2 is tabled");
    let (verdict, confidence) = judge(std::slice::from_ref(&look), paper_effect);
    let verdict = match verdict {
        // A significant fall that is not a collapse.
        Verdict::Seen => Verdict::PartlySeen,
        other => other,
    };
    let reason = match verdict {
        Verdict::PartlySeen => "they fall, but most runs stay above chance".to_string(),
        other => verdict_reason(
            other,
            paper_effect,
            look.effect.interval(confidence).is_some(),
            1,
        ),
    };
    Judgement {
        scope: relation.to_string(),
        verdict,
        detail: format!(
            "At n = {n}, random-weight nets above chance are {} {}: {reason}. {chance_text}",
            distance(look.effect.value, "baseB"),
            evidence(analysis, relation, &look, confidence, 1),
        ),
    }
}

/// A fine-tuned curve's difference from baseB averaged over n within each unit.
fn averaged_relative(
    analysis: &Analysis,
    relation: &str,
    variant: &str,
    range: &RangeInclusive<u32>,
) -> (PerUnit, Vec<u32>) {
    let cells: Vec<&RelationCell> = analysis
        .relation_curve(relation, variant)
        .into_iter()
        .filter(|cell| range.contains(&cell.layers_copied) && !cell.relative.is_empty())
        .collect();
    let layers = cells.iter().map(|cell| cell.layers_copied).collect();
    (
        PerUnit::averaged(cells.iter().map(|cell| &cell.relative)),
        layers,
    )
}

fn lingering_boost(analysis: &Analysis, relation: &str) -> Judgement {
    let curve = analysis.relation_curve(relation, "AnB+");
    let (boost, layers) = averaged_relative(analysis, relation, "AnB+", &ALL_LAYERS);
    let Some(look) = Look::of(0, &boost) else {
        return not_measured(relation, missing_reason("AnB+", &curve, &ALL_LAYERS));
    };
    let paper_effect = paper::random_split_mean_points("AnB+", ALL_LAYERS);
    let subject = format!(
        "Averaged over n = {} within each unit, AnB+",
        layers_text(&layers)
    );
    let (verdict, mut detail) =
        judged_once(analysis, relation, &look, paper_effect, &subject, "baseB");
    let (high, high_layers) = averaged_relative(analysis, relation, "AnB+", &(5..=7));
    if let (Some(high), true) = (Look::of(0, &high), layers.len() > high_layers.len()) {
        detail.push_str(&format!(
            " Over n = {} alone: {} (95% CI {}; the paper: {}).",
            layers_text(&high_layers),
            signed_points(high.effect.value),
            points_interval(high.effect.interval(CONFIDENCE)),
            signed_points(paper::random_split_mean_points("AnB+", 5..=7))
        ));
    }
    Judgement {
        scope: relation.to_string(),
        verdict,
        detail,
    }
}

fn boost_control(analysis: &Analysis, relation: &str) -> Judgement {
    let (_, transfer_layers) = averaged_relative(analysis, relation, "AnB+", &ALL_LAYERS);
    let (_, selffer_layers) = averaged_relative(analysis, relation, "BnB+", &ALL_LAYERS);
    if transfer_layers.is_empty() || selffer_layers.is_empty() {
        let missing = if transfer_layers.is_empty() {
            "AnB+"
        } else {
            "BnB+"
        };
        return not_measured(
            relation,
            format!("no {missing} runs with a baseB to compare with."),
        );
    }
    // Averaged over the n both curves have, within each unit, then paired.
    let common: Vec<u32> = transfer_layers
        .iter()
        .copied()
        .filter(|n| selffer_layers.contains(n))
        .collect();
    let over = |variant: &str| {
        PerUnit::averaged(
            common
                .iter()
                .filter_map(|n| analysis.relation_cell(relation, variant, *n))
                .map(|cell| &cell.relative),
        )
    };
    let (transfer, selffer) = (over("AnB+"), over("BnB+"));
    let Some(look) = Look::of(0, &transfer.paired_minus(&selffer)) else {
        return not_measured(relation, "AnB+ and BnB+ share no unit.".into());
    };
    let paper_effect = paper::random_split_mean_points("AnB+", ALL_LAYERS)
        - paper::random_split_mean_points("BnB+", ALL_LAYERS);
    let subject = format!(
        "Averaged over n = {} and paired within each unit, AnB+",
        layers_text(&common)
    );
    let (verdict, mut detail) =
        judged_once(analysis, relation, &look, paper_effect, &subject, "BnB+");
    if let Some(extra) = Look::of(0, &selffer) {
        detail.push_str(&format!(
            " BnB+ itself, which only trains the base's own layers longer, is {} (95% CI {}).",
            distance(extra.effect.value, "baseB"),
            points_interval(extra.effect.interval(CONFIDENCE))
        ));
    }
    Judgement {
        scope: relation.to_string(),
        verdict,
        detail,
    }
}

#[cfg(test)]
mod tests {

    use super::super::analysis::tests::{evaluation, set_of};
    use super::*;
    use crate::kinds::artifacts::Evaluation;

    /// One run per split and cell, three splits per relation (`similar s0..s2`,
    /// `dissimilar s0..s2`), as paper.yaml has them; `top1(split, variant, n, index)`.
    fn grid(
        relations: &[&str],
        variants: &[(&str, &[u32])],
        top1: impl Fn(&str, &str, u32, i64) -> f64,
    ) -> Vec<(String, Evaluation)> {
        let mut inputs = Vec::new();
        for relation in relations {
            for index in 0..3 {
                let split = format!("{relation} s{index}");
                inputs.push((
                    format!("{split}_baseB"),
                    evaluation(&split, "baseB", 0, index, top1(relation, "baseB", 0, index)),
                ));
                for (variant, layers) in variants {
                    for n in layers.iter() {
                        inputs.push((
                            format!("{split}_{variant}_n{n}"),
                            evaluation(
                                &split,
                                variant,
                                *n,
                                index,
                                top1(relation, variant, *n, index),
                            ),
                        ));
                    }
                }
            }
        }
        inputs
    }

    /// Bases that differ by split (which pairing cancels) plus a small spread of the effect.
    fn around(mean: f64, index: i64) -> f64 {
        mean + [-0.002, 0.0, 0.002][index as usize]
    }
    fn base(index: i64) -> f64 {
        [0.78, 0.80, 0.82][index as usize]
    }

    fn judge_all(inputs: &[(String, Evaluation)], key: &str) -> Vec<Judgement> {
        let set = set_of(inputs);
        let analysis = Analysis::new(&set);
        findings(&analysis)
            .into_iter()
            .find(|finding| finding.key == key)
            .unwrap()
            .judgements
    }

    fn judged(inputs: &[(String, Evaluation)], key: &str) -> Judgement {
        judge_all(inputs, key).remove(0)
    }

    const EVERY_N: &[u32] = &[1, 2, 3, 4, 5, 6, 7];

    #[test]
    fn looks_verdicts_and_the_correction() {
        let look = |values: &[f64]| {
            Look::of(
                0,
                &PerUnit(
                    values
                        .iter()
                        .enumerate()
                        .map(|(unit, value)| (unit.to_string(), *value))
                        .collect(),
                ),
            )
            .unwrap()
        };
        // Mean −2, sd 0.1, three units: far from zero → seen.
        assert_eq!(judge(&[look(&[-2.1, -2.0, -1.9])], -3.0).0, Verdict::Seen);
        // Mean +0.5 with a tight interval that excludes −3: not seen.
        assert_eq!(judge(&[look(&[0.4, 0.5, 0.6])], -3.0).0, Verdict::NotSeen);
        // A wide interval covering both zero and −3: inconclusive.
        assert_eq!(
            judge(&[look(&[-4.0, 0.0, 2.0])], -3.0).0,
            Verdict::Inconclusive
        );
        // One unit: no interval, inconclusive whatever the mean.
        assert_eq!(judge(&[look(&[-9.0])], -3.0).0, Verdict::Inconclusive);
        // Mean −1, sd 0.3: the 95% interval [−1.75, −0.25] excludes zero, but corrected for
        // three looks (98.33%, t = 7.65) it is [−2.32, +0.32].
        let marginal = look(&[-1.3, -1.0, -0.7]);
        assert_eq!(
            judge(std::slice::from_ref(&marginal), -3.0),
            (Verdict::Seen, 0.95)
        );
        let three = [marginal, look(&[0.0, 0.1, 0.2]), look(&[0.3, 0.4, 0.5])];
        // All three corrected intervals still exclude the paper's −3: not seen.
        assert_eq!(judge(&three, -3.0).0, Verdict::NotSeen);
        // Against a paper effect of −1.5, which [−2.32, +0.32] includes: inconclusive.
        let (verdict, confidence) = judge(&three, -1.5);
        assert_eq!(verdict, Verdict::Inconclusive);
        assert!((confidence - (1.0 - 0.05 / 3.0)).abs() < 1e-12);
        assert_eq!(level_text(confidence), "98.3%");
    }

    #[test]
    fn a_clear_bnb_dip_is_seen_with_its_size_and_the_correction() {
        let inputs = grid(
            &["similar"],
            &[("BnB", EVERY_N)],
            |_, variant, n, index| match (variant, n) {
                ("BnB", 4) => base(index) - 0.05 + around(0.0, index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "fragile_co_adaptation");
        assert_eq!(
            (judgement.scope.as_str(), judgement.verdict),
            ("similar", Verdict::Seen)
        );
        assert!(
            judgement.detail.starts_with(
                "Over n = 3–5, at n = 4, BnB is 5.00 points below baseB (98.3% CI [-5."
            ),
            "{}",
            judgement.detail
        );
        assert!(
            judgement
                .detail
                .contains("corrected for 3 looks, across 3 splits;"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("; smallest detectable effect "),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("At n = 7 it is +0.00"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn a_seen_dip_is_reported_at_the_n_that_shows_it() {
        // n = 3 is lowest but too noisy to exclude zero; n = 4 is a tight 2-point dip.
        let noisy = |index: i64| [-0.10, 0.0, 0.10][index as usize];
        let inputs = grid(
            &["similar"],
            &[("BnB", &[3, 4])],
            |_, variant, n, index| match (variant, n) {
                ("BnB", 3) => base(index) - 0.10 + noisy(index),
                ("BnB", 4) => base(index) - 0.02 + around(0.0, index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "fragile_co_adaptation");
        assert_eq!(judgement.verdict, Verdict::Seen);
        assert!(
            judgement
                .detail
                .starts_with("Over n = 3–4, at n = 4, BnB is 2.00 points below baseB (97.5% CI"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("corrected for 2 looks"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn a_flat_bnb_curve_with_a_tight_interval_is_not_seen() {
        let inputs = grid(
            &["similar"],
            &[("BnB", EVERY_N)],
            |_, variant, _, index| match variant {
                "BnB" => base(index) + around(0.003, index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "fragile_co_adaptation");
        assert_eq!(judgement.verdict, Verdict::NotSeen);
        assert!(
            judgement
                .detail
                .contains("all 3 intervals exclude an effect as large as the paper's -3.16"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn a_small_noisy_dip_is_inconclusive() {
        let noisy = |index: i64| [-0.03, 0.0, 0.03][index as usize];
        let inputs = grid(
            &["similar"],
            &[("BnB", &[4])],
            |_, variant, _, index| match variant {
                "BnB" => base(index) - 0.005 + noisy(index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "fragile_co_adaptation");
        assert_eq!(judgement.verdict, Verdict::Inconclusive);
        assert!(
            judgement
                .detail
                .contains("the interval includes zero and the paper's -3.16"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn findings_without_nodes_are_not_measured() {
        let inputs = grid(&["similar"], &[("BnB", &[1, 2])], |_, _, _, index| {
            base(index)
        });
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let verdicts: Vec<(&str, Verdict, String)> = findings(&analysis)
            .iter()
            .map(|finding| {
                (
                    finding.key,
                    finding.judgements[0].verdict,
                    finding.judgements[0].detail.clone(),
                )
            })
            .collect();
        assert_eq!(
            verdicts,
            [
                (
                    "fragile_co_adaptation",
                    Verdict::NotMeasured,
                    "no BnB nodes at n = 3–5 (only n = 1–2).".to_string()
                ),
                (
                    "specificity",
                    Verdict::NotMeasured,
                    "no AnB nodes.".to_string()
                ),
                (
                    "dissimilar_tasks",
                    Verdict::NotMeasured,
                    "no split with `relation: dissimilar`.".to_string()
                ),
                (
                    "random_weights",
                    Verdict::NotMeasured,
                    "no random-weight (`random`) nodes.".to_string()
                ),
                (
                    "lingering_boost",
                    Verdict::NotMeasured,
                    "no AnB+ nodes.".to_string()
                ),
                (
                    "boost_is_transfer",
                    Verdict::NotMeasured,
                    "no AnB+ runs with a baseB to compare with.".to_string()
                ),
            ]
        );
    }

    #[test]
    fn anb_falling_at_high_n_is_seen_and_compared_with_bnb() {
        let inputs = grid(
            &["similar"],
            &[("AnB", EVERY_N), ("BnB", EVERY_N)],
            |_, variant, n, index| match (variant, n) {
                ("AnB", n) if n >= 5 => base(index) - 0.03 * (n - 4) as f64 + around(0.0, index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "specificity");
        assert_eq!(judgement.verdict, Verdict::Seen);
        assert!(
            judgement
                .detail
                .starts_with("At n = 7, AnB is 9.00 points below baseB (95% CI"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement
                .detail
                .contains("Against BnB at the same n, AnB is 9.00 points below BnB"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn anb_holding_up_at_high_n_is_not_seen() {
        let inputs = grid(
            &["similar"],
            &[("AnB", &[6, 7])],
            |_, variant, _, index| match variant {
                "AnB" => base(index) + around(0.005, index),
                _ => base(index),
            },
        );
        assert_eq!(judged(&inputs, "specificity").verdict, Verdict::NotSeen);
    }

    #[test]
    fn a_larger_drop_on_the_dissimilar_splits_is_seen_with_welch() {
        let inputs = grid(
            &["similar", "dissimilar"],
            &[("AnB", &[7])],
            |relation, variant, _, index| match (relation, variant) {
                ("dissimilar", "AnB") => base(index) - 0.20 + around(0.0, index),
                (_, "AnB") => base(index) - 0.08 + around(0.0, 2 - index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "dissimilar_tasks");
        assert_eq!(
            (judgement.scope.as_str(), judgement.verdict),
            ("dissimilar vs similar", Verdict::Seen)
        );
        assert!(
            judgement.detail.starts_with(
                "At n = 7, AnB is 20.00 points below baseB on the dissimilar split (3 splits) and 8.00 points below baseB on the similar split (3 splits): a drop 12.00 points more when the tasks are dissimilar (Welch 95% CI ["
            ),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn an_equal_drop_on_both_kinds_is_not_seen() {
        let inputs = grid(
            &["similar", "dissimilar"],
            &[("AnB", &[7])],
            |_, variant, _, index| match variant {
                "AnB" => base(index) - 0.10 + around(0.0, index),
                _ => base(index),
            },
        );
        assert_eq!(
            judged(&inputs, "dissimilar_tasks").verdict,
            Verdict::NotSeen
        );
    }

    #[test]
    fn random_weights_at_chance_are_a_collapse_counted_not_averaged() {
        let inputs = grid(
            &["similar"],
            &[("random", &[1, 3, 5])],
            |_, variant, n, index| match (variant, n) {
                ("random", 1) => base(index) - 0.10,
                ("random", _) => 0.10,
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "random_weights");
        assert_eq!(judgement.verdict, Verdict::Seen);
        assert_eq!(
            judgement.detail,
            "At n = 5, 3 of 3 random-weight nets are at chance. Runs at chance: 3 of 3 at n = 3, 3 of 3 at n = 5."
        );
    }

    #[test]
    fn random_weights_that_fall_but_stay_above_chance_are_partly_seen() {
        let inputs = grid(
            &["similar"],
            &[("random", &[1, 3])],
            |_, variant, n, index| match (variant, n) {
                ("random", 3) => base(index) - 0.30 + around(0.0, index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "random_weights");
        assert_eq!(judgement.verdict, Verdict::PartlySeen);
        assert!(
            judgement.detail.starts_with(
                "At n = 3, random-weight nets above chance are 30.00 points below baseB"
            ),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.ends_with("No run is at chance."),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn anb_plus_above_base_is_a_lingering_boost_averaged_within_each_split() {
        let inputs = grid(
            &["similar"],
            &[("AnB+", EVERY_N)],
            |_, variant, n, index| match variant {
                "AnB+" => base(index) + 0.010 + 0.001 * n as f64 + around(0.0, index),
                _ => base(index),
            },
        );
        let judgement = judged(&inputs, "lingering_boost");
        assert_eq!(judgement.verdict, Verdict::Seen);
        assert!(
            judgement.detail.starts_with(
                "Averaged over n = 1–7 within each unit, AnB+ is 1.40 points above baseB (95% CI"
            ),
            "{}",
            judgement.detail
        );
        // Seven n per split do not make 21 units: the interval is across the 3 splits.
        assert!(
            judgement.detail.contains("across 3 splits"),
            "{}",
            judgement.detail
        );
        assert!(
            judgement.detail.contains("Over n = 5–7 alone: +1.60"),
            "{}",
            judgement.detail
        );
    }

    #[test]
    fn a_boost_that_bnb_plus_matches_is_not_transfer() {
        let inputs = grid(
            &["similar"],
            &[("AnB+", EVERY_N), ("BnB+", EVERY_N)],
            |_, variant, _, index| match variant {
                "AnB+" | "BnB+" => base(index) + 0.015 + around(0.0, index),
                _ => base(index),
            },
        );
        assert_eq!(judged(&inputs, "lingering_boost").verdict, Verdict::Seen);
        let control = judged(&inputs, "boost_is_transfer");
        assert_eq!(control.verdict, Verdict::NotSeen);
        assert!(
            control.detail.starts_with(
                "Averaged over n = 1–7 and paired within each unit, AnB+ is 0.00 points"
            ),
            "{}",
            control.detail
        );
        assert!(
            control.detail.contains("BnB+ itself, which only trains the base's own layers longer, is 1.50 points above baseB"),
            "{}",
            control.detail
        );
    }

    #[test]
    fn each_split_kind_is_judged_on_its_own() {
        let inputs = grid(
            &["similar", "dissimilar"],
            &[("BnB", &[4])],
            |relation, variant, _, index| match (relation, variant) {
                ("similar", "BnB") => base(index) - 0.03 + around(0.0, index),
                _ => base(index) + around(0.0, index) * 0.1,
            },
        );
        let verdicts: Vec<(String, Verdict)> = judge_all(&inputs, "fragile_co_adaptation")
            .into_iter()
            .map(|judgement| (judgement.scope, judgement.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("dissimilar".to_string(), Verdict::NotSeen),
                ("similar".to_string(), Verdict::Seen)
            ]
        );
    }
}
