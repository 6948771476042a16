//! `results.csv` (one row per run) and `results.md` (means per split, then pooled per relation,
//! then every run). Fixed number formats and sorted rows, so the bytes depend only on the inputs.

use std::fmt::Write;

use super::analysis::Analysis;
use super::statistics::{Effect, Interval, Sample, CONFIDENCE};
use crate::kinds::artifacts::ResultRow;

/// Quotes a CSV field when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// Top-1 and other fractions.
pub fn fraction(value: f64) -> String {
    format!("{value:.4}")
}

/// A signed difference in points, never "-0.00".
pub fn signed_points(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    format!("{rounded:+.2}")
}

pub fn points_interval(interval: Option<Interval>) -> String {
    match interval {
        Some(interval) => format!(
            "[{}, {}]",
            signed_points(interval.low),
            signed_points(interval.high)
        ),
        None => "—".to_string(),
    }
}

fn fraction_interval(sample: Option<&Sample>) -> String {
    match sample.and_then(|sample| sample.interval(CONFIDENCE)) {
        Some(interval) => format!("[{}, {}]", fraction(interval.low), fraction(interval.high)),
        None => "—".to_string(),
    }
}

/// `results.csv`: one [`ResultRow`] per run (chance-level runs included and flagged), in the
/// report's run order, text quoted where it must be.
pub fn results_csv(analysis: &Analysis) -> String {
    let mut csv = String::from(ResultRow::HEADER);
    csv.push('\n');
    for run in &analysis.set.runs {
        let row = ResultRow {
            node: run.node.clone(),
            relation: run.relation.clone(),
            split: run.split.clone(),
            target_task: run.target_task.clone(),
            variant: run.variant.clone(),
            paper_variant: run.paper_variant(),
            layers_copied: run.layers_copied,
            seed: run.seed,
            top1: run.top1,
            top5: run.top5,
            images: run.images,
            num_classes: run.num_classes,
            chance_level: run.at_chance,
            delta_vs_base_points: analysis.run_relative(run),
            classes: run.classes.join(";"),
            scored_on: run.scored_on.clone(),
        };
        let cells: Vec<String> = row.cells().iter().map(|cell| csv_field(cell)).collect();
        csv.push_str(&cells.join(","));
        csv.push('\n');
    }
    csv
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A pooled cell's mean difference across units, its interval and degrees of freedom (from the
/// curve's model: see `model`).
fn relative_columns(effect: Option<Effect>) -> (String, String, String) {
    match effect {
        Some(effect) => (
            signed_points(effect.value),
            points_interval(effect.interval(CONFIDENCE)),
            effect
                .interval(CONFIDENCE)
                .map(|_| format!("{:.1}", effect.degrees_of_freedom))
                .unwrap_or_else(|| "—".into()),
        ),
        None => ("—".to_string(), "—".to_string(), "—".to_string()),
    }
}

/// `results.md`: methods in one paragraph, means per split, pooled means, every run.
pub fn results_markdown(analysis: &Analysis, title: &str) -> String {
    let set = analysis.set;
    let mut md = String::new();
    let _ = writeln!(md, "# {title}: results\n");
    let _ = writeln!(
        md,
        "{} runs from {} evaluate nodes ({} skipped), {} variants; {} at chance, {} of them bases left out of every mean.\n",
        set.runs.len(),
        set.runs.len() + set.skipped.len(),
        set.skipped.len(),
        analysis.variant_count(),
        set.chance_level().count(),
        set.chance_level().filter(|run| !run.in_means()).count(),
    );
    md.push_str(
        "The unit of replication is the split (or, where a relation has a single split, each of its seeds). \
         Δ is a variant's difference from the base net on the same split and target task, in accuracy points \
         (1 point = 0.01 top-1); a split's Δ averages its target tasks. The per-split tables give each split's \
         own numbers, with no interval for Δ (one split is one unit). The pooled table averages the units: \
         top-1 with a 95% Student t-interval across them (mean ± t(0.975, u − 1)·sd/√u), Δ with the curve \
         model's interval and its df (see the summary's methods); its baseB is the base of the tasks \
         transfers go into, the same one every Δ subtracts. Runs at chance (not distinguishable from guessing \
         by a one-sided binomial test) are counted in `runs` and stay in the means, except a base at chance, \
         which is no reference and is left out. Top-5 is left out for tasks \
         of five classes or fewer, where it is 1 by construction.\n\n",
    );

    let show_top5 = set.runs.iter().any(|run| run.top5.is_some());
    let mut current_split: Option<(&str, &str)> = None;
    for (index, cell) in analysis.split_cells.iter().enumerate() {
        if current_split != Some((cell.relation, cell.split)) {
            current_split = Some((cell.relation, cell.split));
            let _ = writeln!(md, "## Split `{}` ({})\n", cell.split, cell.relation);
            let top5 = if show_top5 { " top-5 mean |" } else { "" };
            let top5_rule = if show_top5 { "---|" } else { "" };
            let _ = writeln!(
                md,
                "| target | variant | n | runs | top-1 mean | 95% interval |{top5} Δ vs base (points) |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|{top5_rule}---|");
        }
        let mut runs = cell.total_runs.to_string();
        if cell.chance_level_runs > 0 {
            let _ = write!(runs, " ({} at chance)", cell.chance_level_runs);
        }
        let top5 = if show_top5 {
            format!(
                " {} |",
                cell.top5
                    .map(|sample| fraction(sample.mean))
                    .unwrap_or_else(|| "—".into())
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |{top5} {} |",
            escape_cell(cell.target_task),
            escape_cell(cell.variant),
            cell.layers_copied,
            runs,
            cell.top1
                .map(|sample| fraction(sample.mean))
                .unwrap_or_else(|| "—".into()),
            fraction_interval(cell.top1.as_ref()),
            cell.relative
                .map(signed_points)
                .unwrap_or_else(|| "—".into()),
        );
        let next = analysis.split_cells.get(index + 1);
        if next.is_none_or(|next| (next.relation, next.split) != (cell.relation, cell.split)) {
            md.push('\n');
        }
    }

    md.push_str("## Pooled by relation\n\n");
    md.push_str(
        "Every unit of a relation together, under the paper's names (BnA counts as AnB, baseA on A as baseB when \
         some transfer goes into A). Means are across units; `units` says what they are. The top-1 interval is \
         Student's t across units; the Δ interval comes from the curve's mixed model (the split random, n fixed), \
         on the degrees of freedom in `df` (see the summary's methods).\n\n",
    );
    md.push_str("| relation | variant | n | runs | units | top-1 mean | 95% interval | Δ vs baseB (points) | 95% interval | df |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for cell in &analysis.relation_cells {
        let effect = (!cell.relative.is_empty())
            .then(|| analysis.level_effect(cell.relation, &cell.paper_variant, cell.layers_copied))
            .flatten();
        let (difference, difference_interval, degrees) = relative_columns(effect);
        let top1 = cell.top1.sample();
        let mut runs = cell.total_runs().to_string();
        if !cell.chance_level.is_empty() {
            let _ = write!(runs, " ({} at chance)", cell.chance_level.len());
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            escape_cell(cell.relation),
            escape_cell(&cell.paper_variant),
            cell.layers_copied,
            runs,
            analysis.units_word(cell.relation, cell.top1.len()),
            top1.map(|sample| fraction(sample.mean))
                .unwrap_or_else(|| "—".into()),
            fraction_interval(top1.as_ref()),
            difference,
            difference_interval,
            degrees,
        );
    }
    md.push_str("\n## Every run\n\n");
    md.push_str("| node | split | target | variant | n | seed | top-1 | top-5 | images | note |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    for run in &set.runs {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            escape_cell(&run.node),
            escape_cell(&run.split),
            escape_cell(&run.target_task),
            escape_cell(&run.variant),
            run.layers_copied,
            run.seed,
            fraction(run.top1),
            run.top5.map(fraction).unwrap_or_else(|| "—".into()),
            run.images,
            match (run.at_chance, run.chance_p_value) {
                (true, Some(p_value)) =>
                    format!("chance level (binomial p = {p_value:.3}), in no mean"),
                (true, None) => "chance level, in no mean".to_string(),
                _ => String::new(),
            },
        );
    }
    if !set.skipped.is_empty() {
        md.push_str("\n## Skipped inputs\n\n");
        for skipped in &set.skipped {
            let _ = writeln!(md, "- `{}`: {}", skipped.node, skipped.reason);
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::super::analysis::tests::{evaluation, set_of};
    use super::*;
    use crate::kinds::artifacts::Evaluation;

    fn sample_inputs() -> Vec<(String, Evaluation)> {
        let mut inputs = Vec::new();
        for seed in 0..3 {
            let wobble = seed as f64 * 0.01;
            inputs.push((
                format!("eval_baseB_s{seed}"),
                evaluation("split_similar_s0", "baseB", 0, seed, 0.80 + wobble),
            ));
            inputs.push((
                format!("eval_AnB_n3_s{seed}"),
                evaluation("split_similar_s0", "AnB", 3, seed, 0.75 + wobble),
            ));
            inputs.push((
                format!("eval_random_n5_s{seed}"),
                evaluation("split_similar_s0", "random", 5, seed, 0.10),
            ));
            inputs.push((
                format!("eval_dis_AnB_n3_s{seed}"),
                evaluation("split_dissimilar", "AnB", 3, seed, 0.5 + wobble),
            ));
        }
        inputs.push((
            "weird,name".to_string(),
            evaluation("split_similar_s0", "BnB", 1, 0, 0.79),
        ));
        inputs
    }

    /// A minimal CSV reader that honours quoted fields.
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|line| {
                let mut fields = vec![String::new()];
                let mut quoted = false;
                let mut characters = line.chars().peekable();
                while let Some(character) = characters.next() {
                    match (character, quoted) {
                        ('"', true) if characters.peek() == Some(&'"') => {
                            characters.next();
                            fields.last_mut().unwrap().push('"');
                        }
                        ('"', _) => quoted = !quoted,
                        (',', false) => fields.push(String::new()),
                        (other, _) => fields.last_mut().unwrap().push(other),
                    }
                }
                fields
            })
            .collect()
    }

    #[test]
    fn csv_has_one_row_per_run_and_parses_back() {
        let inputs = sample_inputs();
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let rows = parse_csv(&results_csv(&analysis));
        assert_eq!(rows.len() - 1, set.runs.len());
        assert_eq!(rows.len() - 1, 13);
        let width = ResultRow::HEADER.split(',').count();
        assert!(
            rows.iter().all(|row| row.len() == width),
            "every row has {width} fields"
        );
        let header = &rows[0];
        let column = |name: &str| header.iter().position(|field| field == name).unwrap();
        let weird = rows
            .iter()
            .find(|row| row[column("node")] == "weird,name")
            .expect("quoted node name");
        assert_eq!(weird[column("variant")], "BnB");
        // One split: its seeds are the units, so seed 0's BnB is paired with seed 0's base.
        assert_eq!(weird[column("delta_vs_base_points")], "-1.0000");
        let random: Vec<&Vec<String>> = rows
            .iter()
            .filter(|row| row[column("variant")] == "random")
            .collect();
        // Runs at chance are outcomes: flagged, and measured against their base like any other.
        assert!(random
            .iter()
            .all(|row| row[column("chance_level")] == "true"
                && !row[column("delta_vs_base_points")].is_empty()));
        let top1: f64 = rows[1][column("top1")].parse().unwrap();
        assert!((0.0..=1.0).contains(&top1));
    }

    #[test]
    fn markdown_tables_are_well_formed_and_list_every_run() {
        let inputs = sample_inputs();
        let set = set_of(&inputs);
        let analysis = Analysis::new(&set);
        let md = results_markdown(&analysis, "Test");
        // Every table row has as many cells as its header.
        let mut expected_cells = None;
        for line in md.lines() {
            if !line.starts_with('|') {
                expected_cells = None;
                continue;
            }
            let cells = line.replace("\\|", "").matches('|').count() - 1;
            match expected_cells {
                None => expected_cells = Some(cells),
                Some(expected) => assert_eq!(cells, expected, "row `{line}`"),
            }
        }
        let run_rows = md
            .split("## Every run")
            .nth(1)
            .unwrap()
            .lines()
            .filter(|line| line.starts_with("| `"))
            .count();
        assert_eq!(run_rows, set.runs.len());
        assert!(md.contains("## Split `split_similar_s0` (similar)"));
        assert!(md.contains("## Split `split_dissimilar` (dissimilar)"));
        assert!(
            md.contains("| B | AnB | 3 | 3 | 0.7600 | [0.7352, 0.7848] | 0.8600 | -5.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| B | random | 5 | 3 (3 at chance) | 0.1"),
            "{md}"
        );
        assert!(
            md.contains("| similar | AnB | 3 | 3 | 3 seeds of one split | 0.7600 | [0.7352, 0.7848] | -5.00 | [-5.00, -5.00] |"),
            "{md}"
        );
        assert!(md.contains("`weird,name`"));
        assert!(md.contains("Student t-interval across them"));
    }

    #[test]
    fn points_never_print_negative_zero() {
        assert_eq!(signed_points(-0.001), "+0.00");
        assert_eq!(signed_points(-2.104), "-2.10");
        assert_eq!(signed_points(1.5), "+1.50");
        assert_eq!(points_interval(None), "—");
    }
}
