//! `report`: reads many `evaluate` nodes and writes what the experiment found.
//!
//! Outputs: `results.csv` (one row per run), `results.md` (means per split, and pooled per
//! relation with the curve model's 95% intervals and their df), `summary.md` (methods, the
//! paper's seven findings as claims with Holm-adjusted verdicts, the variance model,
//! runs at chance listed, the paper's ImageNet numbers beside ours), and `figure.svg`
//! / `figure.png` (the paper's Figures 2 and 3 redrawn from these runs), and `readme.md` (the
//! verdicts and main tables as the block the project README includes verbatim). Every output is a pure
//! function of the inputs' metrics and the parameters, sorted and with fixed number formats, so
//! its blob hash is stable.
//!
//! The contract with `evaluate` nodes is their `evaluation.json`, read as its type
//! ([`Evaluation`]): an input whose file does not read fails the report, naming the file and
//! the node. The report reads no field by name.

mod analysis;
mod figure;
mod findings;
mod model;
mod readme;
mod runs;
mod scaling;
mod statistics;
mod summary;
mod tables;

use serde_json::{json, Map, Value};

use crate::kind::{Artifact, BuildContext, BuildError, BuildOutput, NodeKind};
use crate::kinds::artifacts::Evaluation;
use crate::schema::{Arity, InputSlot, ParamType};
use analysis::Analysis;
use runs::RunSet;

/// The `report` kind.
pub struct Report;

tpipe_engine::kind_params! {
    /// What a report is asked for: the `report` kind's parameters.
    #[derive(PartialEq)]
    pub struct ReportOptions {
        title: String {
            ty: ParamType::Text,
            default: DEFAULT_TITLE,
            doc: "heading of the figure and the Markdown files",
        },
        paper_reference: bool {
            ty: ParamType::Bool,
            default: true,
            doc: "show Yosinski et al.'s ImageNet numbers beside ours (labelled as such)",
        },
        chance_alpha: f64 {
            ty: ParamType::Float { min: Some(0.0), max: Some(1.0) },
            default: 0.05,
            doc: "a run is at chance (listed; a base at chance is in no mean) when a one-sided binomial test of its correct count against 1/classes gives p ≥ this",
        },
    }
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            title: DEFAULT_TITLE.to_string(),
            paper_reference: true,
            chance_alpha: 0.05,
        }
    }
}

const DEFAULT_TITLE: &str = "Transferability of features";

impl NodeKind for Report {
    type Params = ReportOptions;

    fn name(&self) -> &'static str {
        "report"
    }
    /// 2: reads each run from its `evaluation.json` (content), not from its node's metrics.
    /// 3: splits as units of replication, one baseB, the binomial chance rule, verdicts against
    /// the paper's effect sizes, the AnB+ vs BnB+ control. 4: with several looks, a seen effect
    /// is reported at the n that shows it. 5: reads `evaluation.json` as its type (a file that
    /// does not read fails the report); the similar/dissimilar word is `relation` in
    /// `results.csv` and the text. 6: each curve's mixed model (intervals with stated df), the
    /// paper's effects carried over by error rate, Holm-adjusted primary claims, exact power,
    /// the random control per init with its chance proportion, the long-base control, finding 7;
    /// `results.csv` records each run's classes and the images it was scored on. 7: runs at
    /// chance stay in the means (only a base at chance is left out). 8: the summary's first
    /// line counts runs at chance once. 9: finding 7's primary claim is at n = 1–2, where
    /// the paper measured it; every n is a secondary claim.
    fn version(&self) -> u32 {
        9
    }
    fn about(&self) -> &'static str {
        "tables, figures and a written summary of many evaluate nodes, beside the paper's numbers"
    }
    fn inputs(&self) -> Vec<InputSlot> {
        vec![InputSlot {
            name: "results",
            arity: Arity::Many,
            accepts: &["evaluate"],
            doc: "the evaluate nodes to report on",
            reads: &[Evaluation::OUTPUT],
            // Rows are labelled with the evaluate nodes' names, so renaming one reruns the report.
            names_in_key: true,
        }]
    }
    fn build(
        &self,
        options: &ReportOptions,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        let inputs = context
            .inputs
            .get("results")
            .map(Vec::as_slice)
            .unwrap_or_default();
        context.report_progress(0.1, format!("reading {} results", inputs.len()));
        let mut runs = Vec::with_capacity(inputs.len());
        for input in inputs {
            let name = input
                .name
                .clone()
                .ok_or_else(|| BuildError::failed("the report's inputs have no names"))?;
            runs.push((name, context.read_artifact::<Evaluation>(input)?));
        }
        build_report(
            runs.iter()
                .map(|(name, evaluation)| (name.as_str(), evaluation)),
            options,
        )
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        metrics
            .get("headline")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// The report for `(node, evaluation)` pairs: what `build` does once parameters are read.
pub fn build_report<'a>(
    inputs: impl IntoIterator<Item = (&'a str, &'a Evaluation)>,
    options: &ReportOptions,
) -> Result<BuildOutput, BuildError> {
    let set = RunSet::from_evaluations(inputs, options.chance_alpha);
    let analysis = Analysis::new(&set);
    let found = findings::findings(&analysis);
    let headline = headline(&analysis);

    let summary_options = summary::SummaryOptions {
        title: &options.title,
        headline: &headline,
        chance_alpha: options.chance_alpha,
        paper_reference: options.paper_reference,
    };
    let figure = figure::Figure::from_analysis(&analysis, &options.title, options.paper_reference);
    let svg = figure::render_svg(&figure).map_err(BuildError::failed)?;
    let png = figure::render_png(&figure).map_err(BuildError::failed)?;

    let outputs = vec![
        (
            "results.csv".to_string(),
            tables::results_csv(&analysis).into_bytes(),
        ),
        (
            "results.md".to_string(),
            tables::results_markdown(&analysis, &options.title).into_bytes(),
        ),
        (
            "summary.md".to_string(),
            summary::summary_markdown(&analysis, &found, &summary_options).into_bytes(),
        ),
        ("figure.svg".to_string(), svg.into_bytes()),
        ("figure.png".to_string(), png),
        (
            "readme.md".to_string(),
            readme::readme_markdown(&analysis, &found).into_bytes(),
        ),
    ];
    Ok(BuildOutput {
        outputs,
        metrics: metrics(&analysis, &found, headline),
        backend: None,
    })
}

/// "12 variants, 84 runs"
fn headline(analysis: &Analysis) -> String {
    let variants = analysis.variant_count();
    let runs = analysis.set.runs.len();
    let variant_word = if variants == 1 { "variant" } else { "variants" };
    let run_word = if runs == 1 { "run" } else { "runs" };
    let mut headline = format!("{variants} {variant_word}, {runs} {run_word}");
    let chance_level = analysis.set.chance_level().count();
    if chance_level > 0 {
        headline.push_str(&format!(", {chance_level} at chance"));
    }
    headline
}

/// Six decimals are plenty for accuracies and points, and keep `tpipe show` readable.
fn rounded(value: f64) -> Value {
    json!((value * 1e6).round() / 1e6)
}

fn interval_json(interval: Option<statistics::Interval>) -> (Value, Value) {
    match interval {
        Some(interval) => (rounded(interval.low), rounded(interval.high)),
        None => (Value::Null, Value::Null),
    }
}

/// A pooled cell's Δ across units, with its 95% interval and degrees of freedom (from the
/// curve's model).
fn relative_json(entry: &mut Map<String, Value>, effect: Option<statistics::Effect>) {
    if let Some(effect) = effect {
        let (low, high) = interval_json(effect.interval(statistics::CONFIDENCE));
        entry.insert("delta_points".into(), rounded(effect.value));
        entry.insert("delta_low".into(), low);
        entry.insert("delta_high".into(), high);
        entry.insert("delta_df".into(), rounded(effect.degrees_of_freedom));
    }
}

/// A claim in the metrics JSON: verdict, numbers, the paper's size carried over.
fn claim_json(claim: &findings::Claim) -> Value {
    let mut entry = Map::new();
    entry.insert("verdict".into(), json!(claim.verdict.key()));
    entry.insert("primary".into(), json!(claim.primary));
    if let Some(p) = claim.decisive_p {
        entry.insert("p".into(), rounded(p));
    }
    match &claim.evidence {
        findings::Evidence::Effect(measured) => {
            let (low, high) = interval_json(measured.effect.interval(statistics::CONFIDENCE));
            entry.insert("points".into(), rounded(measured.effect.value));
            entry.insert("low".into(), low);
            entry.insert("high".into(), high);
            entry.insert("df".into(), rounded(measured.effect.degrees_of_freedom));
            entry.insert("units".into(), json!(measured.units));
            entry.insert(
                "paper_error_rate_points".into(),
                rounded(measured.paper.error_rate),
            );
            entry.insert(
                "paper_log_odds_points".into(),
                rounded(measured.paper.log_odds),
            );
            entry.insert(
                "paper_imagenet_points".into(),
                rounded(measured.paper.imagenet),
            );
            if let Some(units) = measured.units_needed {
                entry.insert("units_needed".into(), json!(units));
            }
        }
        findings::Evidence::Collapse(proportion) => {
            entry.insert("at_chance".into(), json!(proportion.at_chance));
            entry.insert("runs".into(), json!(proportion.runs));
        }
        findings::Evidence::Missing(why) => {
            entry.insert("why".into(), json!(why));
        }
    }
    Value::Object(entry)
}

fn metrics(analysis: &Analysis, found: &[findings::Finding], headline: String) -> Value {
    let mut means = Map::new();
    for cell in &analysis.split_cells {
        let mut entry = Map::new();
        entry.insert("runs".into(), json!(cell.runs.len()));
        if let Some(top1) = cell.top1 {
            let (low, high) = interval_json(top1.interval(statistics::CONFIDENCE));
            entry.insert("top1".into(), rounded(top1.mean));
            entry.insert("top1_low".into(), low);
            entry.insert("top1_high".into(), high);
        }
        if let Some(top5) = cell.top5 {
            entry.insert("top5".into(), rounded(top5.mean));
        }
        if let Some(delta) = cell.relative {
            entry.insert("delta_points".into(), rounded(delta));
        }
        let key = format!(
            "{} {} {} n={}",
            cell.split, cell.target_task, cell.variant, cell.layers_copied
        );
        means.insert(key, Value::Object(entry));
    }
    let mut pooled = Map::new();
    for cell in &analysis.relation_cells {
        let mut entry = Map::new();
        entry.insert("runs".into(), json!(cell.runs.len()));
        entry.insert("chance_level_runs".into(), json!(cell.chance_level.len()));
        entry.insert("units".into(), json!(cell.top1.len()));
        if let Some(top1) = cell.top1.sample() {
            entry.insert("top1".into(), rounded(top1.mean));
        }
        relative_json(
            &mut entry,
            analysis
                .level_effect(cell.relation, &cell.paper_variant, cell.layers_copied)
                .filter(|_| cell.layers_copied > 0 || cell.paper_variant != "baseB"),
        );
        pooled.insert(
            format!(
                "{} {} n={}",
                cell.relation, cell.paper_variant, cell.layers_copied
            ),
            Value::Object(entry),
        );
    }
    let findings: Map<String, Value> = found
        .iter()
        .map(|finding| {
            let verdicts: Map<String, Value> = finding
                .claims
                .iter()
                .map(|claim| (format!("{} {}", claim.scope, claim.key), claim_json(claim)))
                .collect();
            (finding.key.to_string(), Value::Object(verdicts))
        })
        .collect();
    json!({
        "headline": headline,
        "runs": analysis.set.runs.len(),
        "variants": analysis.variant_count(),
        "chance_level_runs": analysis.set.chance_level().map(|run| run.node.clone()).collect::<Vec<_>>(),
        "skipped_inputs": analysis.set.skipped.iter().map(|skipped| skipped.node.clone()).collect::<Vec<_>>(),
        "means": means,
        "pooled": pooled,
        "findings": findings,
    })
}

#[cfg(test)]
mod tests {
    use super::analysis::tests::evaluation;
    use super::*;
    use crate::schema::Params;

    /// A full synthetic grid like the paper's: two splits, three seeds, every variant, with the
    /// paper's effects built in (and one failed run).
    pub(crate) fn paper_like_grid() -> Vec<(String, Evaluation)> {
        let mut inputs = Vec::new();
        let wobble = |seed: i64, n: u32| {
            [-0.004, 0.001, 0.003][seed as usize] + 0.001 * ((n as i64 * 7 + seed) % 3) as f64
        };
        for (split, base, high_n_drop) in [
            ("split_similar_s0", 0.86, 0.006),
            ("split_dissimilar", 0.83, 0.02),
        ] {
            for seed in 0..3i64 {
                let node = |variant: &str, n: u32| {
                    format!("eval_{split}_{variant}_n{n}_s{seed}").replace('+', "plus")
                };
                inputs.push((
                    node("baseB", 0),
                    evaluation(split, "baseB", 0, seed, base + wobble(seed, 0)),
                ));
                for n in 1..=7u32 {
                    let dip = match n {
                        4 => 0.015,
                        5 => 0.025,
                        3 => 0.006,
                        _ => 0.0,
                    };
                    let specific = high_n_drop * n.saturating_sub(3) as f64;
                    let cells = [
                        ("BnB", base - dip),
                        ("AnB", base - dip - specific),
                        ("BnB+", base + 0.001),
                        ("AnB+", base + 0.012),
                        ("random", if n <= 2 { base - 0.12 * n as f64 } else { 0.11 }),
                    ];
                    for (variant, top1) in cells {
                        if split.contains("dissimilar") && variant != "AnB" {
                            continue;
                        }
                        let top1 = if variant == "random" && n > 2 {
                            top1
                        } else {
                            top1 + wobble(seed, n)
                        };
                        inputs.push((node(variant, n), evaluation(split, variant, n, seed, top1)));
                    }
                }
            }
        }
        inputs
    }

    fn build(inputs: &[(String, Evaluation)], options: &ReportOptions) -> BuildOutput {
        build_report(
            inputs
                .iter()
                .map(|(node, metrics)| (node.as_str(), metrics)),
            options,
        )
        .expect("the report builds")
    }

    fn output<'a>(built: &'a BuildOutput, name: &str) -> &'a [u8] {
        &built
            .outputs
            .iter()
            .find(|(output, _)| output == name)
            .unwrap_or_else(|| panic!("no output `{name}`"))
            .1
    }

    #[test]
    fn writes_every_output_with_a_headline() {
        let built = build(&paper_like_grid(), &ReportOptions::default());
        let names: Vec<&str> = built
            .outputs
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "results.csv",
                "results.md",
                "summary.md",
                "figure.svg",
                "figure.png",
                "readme.md"
            ]
        );
        // 3 seeds × (1 + 7 × 5) on the similar split, 3 × (1 + 7) on the dissimilar one.
        assert_eq!(built.metrics["runs"], 132);
        assert_eq!(
            built.metrics["headline"],
            "44 variants, 132 runs, 15 at chance"
        );
        assert_eq!(
            Report.headline(&built.metrics).as_deref(),
            Some("44 variants, 132 runs, 15 at chance")
        );
        assert_eq!(
            built.metrics["chance_level_runs"].as_array().unwrap().len(),
            15
        );
        let pooled = &built.metrics["pooled"]["similar AnB n=7"];
        assert_eq!(pooled["runs"], 3);
        assert_eq!(pooled["delta_points"], -2.4);
        assert_eq!(
            built.metrics["means"]["split_similar_s0 B baseB n=0"]["runs"],
            3
        );
        assert_eq!(
            built.metrics["findings"]["fragile_co_adaptation"]["similar dip"]["verdict"],
            "seen"
        );
        assert_eq!(
            built.metrics["findings"]["fragile_co_adaptation"]["similar dip"]["primary"],
            true
        );
    }

    #[test]
    fn the_summary_reports_each_built_in_effect() {
        let built = build(&paper_like_grid(), &ReportOptions::default());
        let summary = String::from_utf8(output(&built, "summary.md").to_vec()).unwrap();
        for expected in [
            "### 1. Fragile co-adaptation: BnB dips at middle n vs baseB\n\n- **similar: seen.** BnB is below baseB at n = 3–5 (their mean): BnB averaged over n = 3–5 is 1.53 points below baseB (95% CI [-1.76, -1.31], df 2.8, across 3 seeds of one split",
            "### 2. Specificity: AnB falls at high n\n\n- **dissimilar: seen.**",
            "- **dissimilar vs similar: seen.** AnB falls further below baseB at n = 7 when A and B are dissimilar: AnB's drop at n = 7 on the dissimilar split is 5.60 points below its drop on the similar split",
            "- **similar, He init: seen.** random frozen layers leave most nets at chance for n = 3–7: 15 of 15 runs at n = 3–7 are at chance",
            "### 5. Lingering boost: AnB+ beats baseB\n\n- **similar: seen.** AnB+ is above baseB over n = 1–7 (their mean): AnB+ averaged over n = 1–7 is 1.20 points above baseB",
            "- **similar: seen.** AnB+ is above BnB+ over n = 1–7 (their mean, paired): AnB+ averaged over n = 1–7 is 1.10 points above BnB+",
            "Holm-adjusted over 8 primary claims",
            "- `eval_split_similar_s0_random_n3_s0` (random, n = 3): top-1 0.1100 on 1000 images, 110 right; guessing among 10 gets at least as many with p = 0.158 (≥ 0.05)",
        ] {
            assert!(summary.contains(expected), "missing `{expected}` in\n{summary}");
        }
    }

    #[test]
    fn same_inputs_give_the_same_bytes_in_any_order() {
        let inputs = paper_like_grid();
        let first = build(&inputs, &ReportOptions::default());
        let mut reversed = inputs.clone();
        reversed.reverse();
        let second = build(&reversed, &ReportOptions::default());
        for ((name, bytes), (other_name, other_bytes)) in first.outputs.iter().zip(&second.outputs)
        {
            assert_eq!(name, other_name);
            assert!(
                bytes == other_bytes,
                "`{name}` differs between two builds of the same inputs"
            );
        }
        assert_eq!(first.metrics, second.metrics);
    }

    #[test]
    fn svg_is_well_formed_and_names_every_series() {
        let built = build(&paper_like_grid(), &ReportOptions::default());
        let svg = std::str::from_utf8(output(&built, "figure.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}",
            &svg[..80]
        );
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
        for label in [
            "BnB (line: mean, dots: seeds)",
            "BnB+ (line: mean, dots: seeds)",
            "AnB (line: mean, dots: seeds)",
            "AnB+ (line: mean, dots: seeds)",
            "baseB (circles: seeds, thin line: mean)",
            "AnB, similar (bars: 95% CI)",
            "AnB, dissimilar (bars: 95% CI)",
            "random weights, similar (bars: 95% CI)",
            "paper (ImageNet), right axis, same colours",
            "paper (ImageNet) AnB, random split",
            "paper (ImageNet) AnB, dissimilar",
            "paper (ImageNet) random weights, n = 1–2",
            "paper top-1 (ImageNet, CaffeNet), dashed",
            "Transferability of features",
        ] {
            assert!(svg.contains(label), "the SVG lacks `{label}`");
        }
        let plain = build(
            &paper_like_grid(),
            &ReportOptions {
                paper_reference: false,
                ..ReportOptions::default()
            },
        );
        let plain_svg = std::str::from_utf8(output(&plain, "figure.svg")).unwrap();
        assert!(!plain_svg.contains("ImageNet"));
    }

    #[test]
    fn png_decodes_at_the_figure_size() {
        let built = build(&paper_like_grid(), &ReportOptions::default());
        let png = output(&built, "figure.png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoded =
            image::load_from_memory_with_format(png, image::ImageFormat::Png).expect("a valid PNG");
        assert_eq!(
            (decoded.width(), decoded.height()),
            (figure::WIDTH, figure::HEIGHT)
        );
        // Not a blank canvas: some pixels are dark (text, lines).
        let dark = decoded
            .to_luma8()
            .pixels()
            .filter(|pixel| pixel.0[0] < 100)
            .count();
        assert!(dark > 5_000, "only {dark} dark pixels");
    }

    #[test]
    fn a_report_with_no_usable_inputs_still_builds() {
        let broken = evaluation("s", "AnB", 1, 0, 85.0);
        let built = build_report([("broken", &broken)], &ReportOptions::default()).unwrap();
        assert_eq!(built.metrics["headline"], "0 variants, 0 runs");
        assert_eq!(built.metrics["skipped_inputs"], json!(["broken"]));
        let summary = String::from_utf8(output(&built, "summary.md").to_vec()).unwrap();
        assert!(
            summary.contains("- **all: not measured.** BnB dips at n = 3–5: no BnB nodes."),
            "{summary}"
        );
        assert_eq!(
            String::from_utf8(output(&built, "results.csv").to_vec())
                .unwrap()
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn the_kind_declares_its_params_and_input() {
        let names: Vec<&str> = ReportOptions::specs()
            .iter()
            .map(|param| param.name)
            .collect();
        assert_eq!(names, ["title", "paper_reference", "chance_alpha"]);
        let inputs = Report.inputs();
        assert_eq!(
            (inputs[0].name, inputs[0].arity, inputs[0].accepts),
            ("results", Arity::Many, &["evaluate"][..])
        );
    }

    /// Writes a sample report from the synthetic grid to `TPIPE_REPORT_SAMPLE_DIR`, for looking
    /// at the figure by eye. Not a check, so it only runs when asked:
    /// `TPIPE_REPORT_SAMPLE_DIR=/tmp/sample cargo nextest run --no-default-features --run-ignored only write_sample`
    #[test]
    #[ignore = "writes a sample report for viewing; set TPIPE_REPORT_SAMPLE_DIR and run ignored tests"]
    fn write_sample_report_when_asked() {
        let folder = std::env::var_os("TPIPE_REPORT_SAMPLE_DIR")
            .expect("set TPIPE_REPORT_SAMPLE_DIR to the folder to write the sample report to");
        let built = build(&paper_like_grid(), &ReportOptions::default());
        std::fs::create_dir_all(&folder).unwrap();
        for (name, bytes) in &built.outputs {
            std::fs::write(std::path::Path::new(&folder).join(name), bytes).unwrap();
        }
        assert!(std::path::Path::new(&folder).join("figure.png").exists());
    }
}
