//! `readme.md`: the report's findings and main tables as a block the project README includes
//! verbatim, so the README quotes the report and never re-types a number. A test compares the
//! README's block with the committed `results/paper/readme.md`; `scripts/sync-readme` copies it.

use std::fmt::Write;

use super::analysis::Analysis;
use super::findings::{interval_text, Claim, Evidence, Finding, Verdict};
use super::tables::{fraction, points_interval, signed_points};

/// The cell of one claim's numbers: ours with its interval and df, or the chance count.
fn ours(claim: &Claim) -> String {
    match &claim.evidence {
        Evidence::Effect(measured) => {
            let effect = &measured.effect;
            match effect.interval(super::statistics::CONFIDENCE) {
                Some(interval) => format!(
                    "{} {} (df {:.1})",
                    signed_points(effect.value),
                    points_interval(Some(interval)),
                    effect.degrees_of_freedom
                ),
                None => format!(
                    "{} ({})",
                    signed_points(effect.value),
                    interval_text(effect)
                ),
            }
        }
        Evidence::Collapse(proportion) => format!(
            "{} of {} at chance [{:.0}%, {:.0}%]",
            proportion.at_chance,
            proportion.runs,
            100.0 * proportion.interval.low,
            100.0 * proportion.interval.high
        ),
        Evidence::Missing(_) => "—".to_string(),
    }
}

/// The paper's side of a claim: carried over by error rate, with the ImageNet figure.
fn paper(claim: &Claim) -> String {
    match &claim.evidence {
        Evidence::Effect(measured) => format!(
            "{} (ImageNet {})",
            signed_points(measured.paper.error_rate),
            signed_points(measured.paper.imagenet)
        ),
        Evidence::Collapse(_) => "near chance".to_string(),
        Evidence::Missing(_) => "—".to_string(),
    }
}

fn verdict_cell(claim: &Claim) -> String {
    let words = claim.verdict.words();
    let bold = if claim.primary {
        format!("**{words}**")
    } else {
        words.to_string()
    };
    match (&claim.evidence, claim.verdict) {
        (Evidence::Effect(measured), Verdict::Inconclusive) => match measured.units_needed {
            Some(units) => format!("{bold}: ~{units} units needed"),
            None => bold,
        },
        _ => bold,
    }
}

/// The block: the verdicts, then the primary relation's mean top-1 and Δ with intervals.
pub fn readme_markdown(analysis: &Analysis, findings: &[Finding]) -> String {
    let mut md = String::new();
    md.push_str(
        "Every claim of the paper, judged on this run (primary claims in bold, Holm-adjusted across the report; \
         differences from baseB in accuracy points with 95% intervals and their degrees of freedom; the paper's \
         effect carried over to our baseB by error rate, its ImageNet figure in brackets). `summary.md` gives \
         each sentence in full.\n\n",
    );
    md.push_str("| finding | claim | where | verdict | ours | paper, carried over |\n");
    md.push_str("|---|---|---|---|---|---|\n");
    for finding in findings {
        for claim in &finding.claims {
            let _ = writeln!(
                md,
                "| {}. {} | {} | {} | {} | {} | {} |",
                finding.number,
                finding.title,
                claim.statement,
                claim.scope,
                verdict_cell(claim),
                ours(claim),
                paper(claim)
            );
        }
    }
    let Some(primary) = analysis.primary_relation() else {
        return md;
    };
    let variants: Vec<String> = [
        "BnB",
        "AnB",
        "BnB+",
        "AnB+",
        "random",
        super::runs::RANDOM_PAPER_INIT,
    ]
    .into_iter()
    .filter(|variant| !analysis.relation_curve(primary, variant).is_empty())
    .map(str::to_string)
    .collect();
    if variants.is_empty() {
        return md;
    }
    let base = analysis.base(primary);
    let _ = writeln!(
        md,
        "\nMean top-1 on the `{primary}` relation's target tasks ({}; baseB {}):\n",
        base.map_or_else(
            || "no base".to_string(),
            |base| analysis.units_word(primary, base.top1.len())
        ),
        base.and_then(|base| base.top1.sample())
            .map_or_else(|| "—".to_string(), |sample| fraction(sample.mean)),
    );
    let _ = writeln!(md, "| n | {} |", variants.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(variants.len()));
    for n in 1..=7 {
        let cells: Vec<String> = variants
            .iter()
            .map(|variant| {
                analysis
                    .relation_cell(primary, variant, n)
                    .and_then(|cell| cell.top1.sample())
                    .map_or_else(|| "—".to_string(), |sample| fraction(sample.mean))
            })
            .collect();
        let _ = writeln!(md, "| {n} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        md,
        "\nThe same as differences from baseB in points, with the curve model's 95% intervals (df in `results.md`):\n"
    );
    let _ = writeln!(md, "| n | {} |", variants.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(variants.len()));
    for n in 1..=7 {
        let cells: Vec<String> = variants
            .iter()
            .map(|variant| match analysis.level_effect(primary, variant, n) {
                Some(effect) => format!(
                    "{} {}",
                    signed_points(effect.value),
                    points_interval(effect.interval(super::statistics::CONFIDENCE))
                ),
                None => "—".to_string(),
            })
            .collect();
        let _ = writeln!(md, "| {n} | {} |", cells.join(" | "));
    }
    md
}
