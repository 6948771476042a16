//! `summary.md`: what the run shows about each of the paper's findings, which runs were left out
//! and why, and the paper's ImageNet figures beside ours.

use std::fmt::Write;

use super::analysis::{Analysis, RelationCell};
use super::findings::{claim_sentence, Finding, Verdict, POWER};
use super::runs::quoted_list;
use super::tables::{fraction, signed_points};
use crate::kinds::paper_reference as paper;

pub struct SummaryOptions<'a> {
    pub title: &'a str,
    pub headline: &'a str,
    pub chance_alpha: f64,
    pub paper_reference: bool,
}

pub fn summary_markdown(
    analysis: &Analysis,
    findings: &[Finding],
    options: &SummaryOptions,
) -> String {
    let set = analysis.set;
    let mut md = String::new();
    let _ = writeln!(md, "# {}: summary\n", options.title);
    let relations: Vec<String> = analysis
        .relations
        .iter()
        .map(|relation| {
            let runs: Vec<_> = set
                .runs
                .iter()
                .filter(|run| run.relation == *relation)
                .collect();
            let splits: std::collections::BTreeSet<&str> =
                runs.iter().map(|run| run.split.as_str()).collect();
            let split_word = if splits.len() == 1 { "split" } else { "splits" };
            format!(
                "{relation} ({} {split_word}, {} runs)",
                splits.len(),
                runs.len()
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "{}; {} bases at chance left out of every mean, {} inputs skipped. Relations: {}.\n",
        options.headline,
        set.chance_level().filter(|run| !run.in_means()).count(),
        set.skipped.len(),
        if relations.is_empty() {
            "none".to_string()
        } else {
            relations.join(", ")
        },
    );
    let family = findings
        .iter()
        .flat_map(|finding| &finding.claims)
        .filter(|claim| claim.primary && claim.verdict != Verdict::NotMeasured)
        .count();
    let scored_on = set
        .runs
        .first()
        .map_or("test", |run| run.scored_on.as_str());
    let _ = writeln!(
        md,
        "How to read it (methods). The runs were scored on the {scored_on} images. The unit of replication is the split \
         (a relation with a single split uses its seeds). Each variant is compared with the base net of its own split and \
         target task, in accuracy points (1 point = 0.01 top-1), and averaged within the split: a curve is a table of \
         units × n. Each curve is fitted with a linear mixed model, the split a random effect and n a fixed one \
         (REML, in closed form for this balanced design); a level's interval uses the curve's pooled variance with \
         Satterthwaite's degrees of freedom, or the level's own spread across units (on units − 1) where that is \
         larger, and an average over n rests on the units' averages. Every interval is a 95% Student t-interval and \
         says its degrees of freedom (df). Two relations are compared with Welch's combination; paired contrasts \
         (AnB − BnB, AnB+ − BnB+) are fitted on the per-unit differences. baseB is the base of the tasks transfers \
         go into, one value per relation. A run is at chance when a one-sided binomial test of its correct count \
         against 1/classes gives p ≥ {}: it is listed below and stays in every mean (chance is an outcome, and the \
         random-weight control's collapse is one), except a base at chance, a failed reference, which is left out \
         (its unit's variants are measured against the unit's other bases).\n\n\
         Each finding is tested as the paper states it. The paper's effect is carried over to this data set by error \
         rate (an effect of e points on the paper's baseB of r is e·(1 − ours)/(1 − r) here); the log-odds rule{} is \
         given beside it. A claim is *seen* when a two-sided t-test against zero rejects with \
         the effect in the paper's direction, *not seen* when a one-sided test rejects an effect as large as the \
         paper's carried-over one, and *inconclusive* otherwise, with the number of units that would decide it at \
         {:.0}% power (exact noncentral t). {} one family: their p-values are \
         Holm-adjusted (the tests against zero, and those against the paper's size, each as a family); secondary \
         claims give unadjusted p-values. Smallest detectable effects are exact (noncentral t, {:.0}% power, \
         two-sided 5%).{}\n",
        options.chance_alpha,
        if options.paper_reference { " (and the ImageNet figure)" } else { "" },
        POWER * 100.0,
        if family == 1 {
            "The one primary claim is".to_string()
        } else {
            format!("The {family} primary claims are")
        },
        POWER * 100.0,
        if options.paper_reference {
            format!(" The paper's figures are computed from its tables ({}).", paper::SOURCE)
        } else {
            String::new()
        },
    );

    md.push_str("## Findings\n\n");
    for finding in findings {
        let _ = writeln!(
            md,
            "### {}. {}: {}\n",
            finding.number, finding.title, finding.claim
        );
        for claim in &finding.claims {
            let role = if claim.primary { "" } else { " (secondary)" };
            let _ = writeln!(
                md,
                "- **{}: {}.**{role} {}: {}",
                claim.scope,
                claim.verdict.words(),
                claim.statement,
                claim_sentence(claim, family, options.paper_reference)
            );
        }
        if options.paper_reference {
            let _ = writeln!(md, "- Paper (ImageNet, CaffeNet): {}.", finding.paper);
        }
        md.push('\n');
    }

    variance_components(&mut md, analysis);

    md.push_str("## Runs at chance (in every mean but a base's)\n\n");
    let chance_level: Vec<_> = set.chance_level().collect();
    if chance_level.is_empty() {
        md.push_str("None: every run whose class and image counts are known is above chance.\n");
    } else {
        for run in chance_level {
            let (classes, images) = (run.num_classes, run.images);
            let _ = writeln!(
                md,
                "- `{}` ({}, n = {}): top-1 {} on {images} images, {} right; guessing among {classes} gets at least as many with p = {:.3} (≥ {}){}",
                run.node,
                run.variant,
                run.layers_copied,
                fraction(run.top1),
                (run.top1 * images as f64).round(),
                run.chance_p_value.unwrap_or(1.0),
                options.chance_alpha,
                if run.in_means() { "" } else { "; a base: left out" },
            );
        }
    }
    md.push('\n');

    if !set.skipped.is_empty() {
        md.push_str("## Skipped inputs\n\n");
        for skipped in &set.skipped {
            let _ = writeln!(md, "- `{}` skipped: {}.", skipped.node, skipped.reason);
        }
        let unknown: Vec<String> = set
            .runs
            .iter()
            .filter(|run| run.role == super::runs::Role::Other)
            .map(|run| run.node.clone())
            .collect();
        if !unknown.is_empty() {
            let _ = writeln!(md, "- Variant labels the report does not know (in the tables, not in the findings): {}.", quoted_list(&unknown));
        }
        md.push('\n');
    }

    if options.paper_reference {
        paper_tables(&mut md, analysis);
    }
    md
}

fn cell_fraction(cell: Option<&RelationCell>) -> String {
    cell.and_then(|cell| cell.top1.sample())
        .map(|sample| fraction(sample.mean))
        .unwrap_or_else(|| "—".into())
}

fn cell_points(cell: Option<&RelationCell>) -> String {
    cell.and_then(|cell| cell.relative.sample())
        .map(|sample| signed_points(sample.mean))
        .unwrap_or_else(|| "—".into())
}

/// Runs in the cell, with how many are at chance.
fn cell_runs(cell: Option<&RelationCell>) -> String {
    match cell {
        None => "0".into(),
        Some(cell) if cell.chance_level.is_empty() => cell.runs.len().to_string(),
        Some(cell) => format!(
            "{} ({} at chance)",
            cell.total_runs(),
            cell.chance_level.len()
        ),
    }
}

/// The paper's numbers next to ours: Figure 2's curves, then Figure 3's drops.
fn paper_tables(md: &mut String, analysis: &Analysis) {
    let primary = analysis.primary_relation().unwrap_or("similar");
    let _ = writeln!(md, "## Paper (ImageNet, CaffeNet) beside this run\n");
    let _ = writeln!(
        md,
        "The paper's columns are ImageNet figures ({}; 500/500-class random splits, mean of the 10 best evaluations), \
         not targets for this data set. Ours are the `{primary}` relation, averaged over its units. Δ is in points \
         against each side's own baseB: ours is the mean of the per-split differences, so with every cell measured \
         on every split, our Δ = our top-1 − our baseB.\n",
        paper::SOURCE
    );
    md.push_str("| variant | n | paper top-1 (ImageNet) | paper Δ (points) | our top-1 | our Δ (points) | our runs |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    let base = analysis.base(primary);
    let _ = writeln!(
        md,
        "| baseB | 0 | {} | — | {} | — | {} |",
        fraction(paper::BASE_B),
        cell_fraction(base),
        cell_runs(base)
    );
    for variant in ["BnB", "AnB", "BnB+", "AnB+"] {
        for n in 1..=7 {
            let ours = analysis.relation_cell(primary, variant, n);
            let _ = writeln!(
                md,
                "| {variant} | {n} | {} | {} | {} | {} | {} |",
                paper::random_split_accuracy(variant, n)
                    .map(fraction)
                    .unwrap_or_else(|| "—".into()),
                paper::random_split_drop_points(variant, n)
                    .map(signed_points)
                    .unwrap_or_else(|| "—".into()),
                cell_fraction(ours),
                cell_points(ours),
                cell_runs(ours),
            );
        }
    }
    md.push('\n');

    let other = if analysis.relations.contains(&"similar") {
        "similar"
    } else {
        primary
    };
    let _ = writeln!(
        md,
        "Figure 3's drops in points. Paper dissimilar: natural ↔ man-made, both directions averaged. Paper random weights: \
         against the 1000-class net ({}); beyond n = 2 the paper gives only a range, {}–{} top-1. Our columns leave \
         chance-level runs out, as every mean does; the last column counts them.\n",
        fraction(paper::WHOLE_NET),
        fraction(paper::RANDOM_WEIGHTS_HIGH_RANGE.0),
        fraction(paper::RANDOM_WEIGHTS_HIGH_RANGE.1),
    );
    let _ = writeln!(
        md,
        "| n | paper AnB, random split | our AnB, {other} | paper AnB, dissimilar | our AnB, dissimilar | paper random weights | our random weights, {primary} | our random-weight runs at chance |"
    );
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for n in 1..=7 {
        let random = analysis.relation_cell(primary, "random", n);
        let random_ours = cell_points(random);
        let random_chance = random
            .map(|cell| format!("{} of {}", cell.chance_level.len(), cell.total_runs()))
            .unwrap_or_else(|| "—".into());
        let random_paper = paper::random_weights_drop_points(n)
            .map(signed_points)
            .unwrap_or_else(|| "near chance".into());
        let _ = writeln!(
            md,
            "| {n} | {} | {} | {} | {} | {random_paper} | {random_ours} | {random_chance} |",
            paper::random_split_drop_points("AnB", n)
                .map(signed_points)
                .unwrap_or_else(|| "—".into()),
            cell_points(analysis.relation_cell(other, "AnB", n)),
            paper::dissimilar_drop_points(n)
                .map(signed_points)
                .unwrap_or_else(|| "—".into()),
            cell_points(analysis.relation_cell("dissimilar", "AnB", n)),
        );
    }
}

/// Each curve's fitted variance components: what the intervals and the sizing rest on.
fn variance_components(md: &mut String, analysis: &Analysis) {
    let _ = writeln!(md, "## Variance model\n");
    md.push_str(
        "Each curve's fit: its units and levels, the spread between units (σ_unit) and within them (σ_residual), in \
         points, with the mean squares' degrees of freedom. σ_unit = 0 means the units varied less than the \
         residual (REML's boundary), and the residual then pools both.\n\n",
    );
    md.push_str("| relation | curve | units | levels (n) | σ_unit | σ_residual | df units | df residual |\n");
    md.push_str("|---|---|---|---|---|---|---|---|\n");
    for relation in &analysis.relations {
        let mut variants: Vec<String> = analysis
            .relation_cells
            .iter()
            .filter(|cell| cell.relation == *relation && cell.layers_copied > 0)
            .map(|cell| cell.paper_variant.clone())
            .collect();
        variants.dedup();
        for variant in variants {
            let Some(fit) = analysis.curve_fit(relation, &variant) else {
                continue;
            };
            let levels: Vec<String> = fit.levels.iter().map(u32::to_string).collect();
            let _ = writeln!(
                md,
                "| {relation} | {variant} | {} | {} | {:.3} | {:.3} | {:.0} | {:.0} |",
                fit.units,
                levels.join(","),
                fit.unit_variance.sqrt(),
                fit.residual_variance.sqrt(),
                fit.df_units,
                fit.df_residual,
            );
        }
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::super::analysis::tests::{evaluation, set_of};
    use super::super::findings::findings;
    use super::*;
    use crate::kinds::artifacts::Evaluation;

    fn render(inputs: &[(String, Evaluation)], paper_reference: bool) -> String {
        let set = set_of(inputs);
        let analysis = Analysis::new(&set);
        let found = findings(&analysis);
        let options = SummaryOptions {
            title: "T",
            headline: "2 variants, 4 runs",
            chance_alpha: 0.05,
            paper_reference,
        };
        summary_markdown(&analysis, &found, &options)
    }

    fn inputs() -> Vec<(String, Evaluation)> {
        vec![
            ("b0".into(), evaluation("s", "baseB", 0, 0, 0.80)),
            ("b1".into(), evaluation("s", "baseB", 0, 1, 0.82)),
            ("r0".into(), evaluation("s", "random", 4, 0, 0.12)),
            ("r1".into(), evaluation("s", "random", 4, 1, 0.105)),
            ("broken".into(), evaluation("s", "AnB", 1, 0, 85.0)),
        ]
    }

    #[test]
    fn summary_lists_chance_level_runs_and_skipped_inputs() {
        let md = render(&inputs(), true);
        // 120 of 1,000 right on 10 classes: binom.sf(119, 1000, 0.1) = 0.022 is below 0.05,
        // so r0 is above chance; 105 of 1,000 (p = 0.32) is not.
        assert!(
            md.contains("- `r1` (random, n = 4): top-1 0.1050 on 1000 images, 105 right; guessing among 10 gets at least as many with p = 0.3"),
            "{md}"
        );
        assert!(!md.contains("- `r0` (random"), "{md}");
        assert!(
            md.contains("- `broken` skipped: `top1` is 85, not a fraction from 0 to 1."),
            "{md}"
        );
        assert!(
            md.contains(
                "2 variants, 4 runs; 0 bases at chance left out of every mean, 1 inputs skipped."
            ),
            "{md}"
        );
        assert!(
            md.contains("- **similar, He init: inconclusive.** random frozen layers leave most nets at chance for n = 3–7: 1 of 2 runs at n = 3–7 are at chance (50%, 95% Clopper–Pearson CI [1%, 99%]"),
            "{md}"
        );
        assert!(
            md.contains("- **similar, He init: not measured.** random frozen layers are below baseB at n = 1–2 (their mean): no random runs at n = 1–2"),
            "{md}"
        );
        assert!(md.contains("### 1. Fragile co-adaptation: BnB dips at middle n vs baseB"));
        assert!(
            md.contains("- **all: not measured.** BnB dips at n = 3–5: no BnB nodes."),
            "{md}"
        );
        assert!(md.contains("Holm-adjusted"), "{md}");
    }

    #[test]
    fn paper_figures_are_labelled_imagenet_and_can_be_left_out() {
        let with_paper = render(&inputs(), true);
        assert!(with_paper.contains("## Paper (ImageNet, CaffeNet) beside this run"));
        assert!(
            with_paper.contains("| baseB | 0 | 0.6251 | — | 0.8100 | — | 2 |"),
            "{with_paper}"
        );
        assert!(
            with_paper.contains("| AnB | 7 | 0.5425 | -8.26 | — | — | 0 |"),
            "{with_paper}"
        );
        assert!(
            with_paper.contains("| 4 | -2.53 | — | -7.30 | — | near chance | -69.75 | 1 of 2 |"),
            "{with_paper}"
        );
        assert!(with_paper.contains("- Paper (ImageNet, CaffeNet): BnB dips"));
        let without = render(&inputs(), false);
        assert!(!without.contains("ImageNet"), "{without}");
    }
}
