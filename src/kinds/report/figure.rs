//! `figure.svg` and `figure.png`: the paper's Figure 2 (top-1 against n, a dot per run, a line
//! per variant mean) and Figure 3 (the drop from baseB for the similar and dissimilar splits and
//! for random weights), with the paper's ImageNet numbers as faint dashed lines.
//!
//! What to draw is worked out first into plain data ([`Figure`]), so it can be tested without
//! pixels; plotters then draws the same data on either backend. Text is drawn with DejaVu Sans,
//! which ships inside the binary (`font/`, with its licence), so the same inputs give the same
//! SVG and PNG bytes on every machine, whatever fonts it has installed; see [`ensure_font`].

use std::error::Error;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::analysis::Analysis;
use super::runs::{Role, RANDOM_PAPER_INIT};
use super::statistics::{Interval, CONFIDENCE};
use crate::kinds::paper_reference as paper;

pub const WIDTH: u32 = 1600;
pub const HEIGHT: u32 = 860;

/// DejaVu Sans 2.37 (Debian's `fonts-dejavu-core`), under the Bitstream Vera licence in
/// `font/LICENSE-DejaVu`. Shipped rather than looked up so figures are byte-stable.
const FONT: &[u8] = include_bytes!("font/DejaVuSans.ttf");
const FONT_FAMILY: &str = "sans-serif";

/// Why a figure could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    #[error("the shipped font is not a TrueType font")]
    Font,
    #[error("cannot draw the {format} figure: {detail}")]
    Draw {
        format: &'static str,
        detail: String,
    },
    #[error("cannot encode the PNG figure: {0}")]
    Encode(#[from] image::ImageError),
}

/// Registers the shipped font with plotters, once per process.
pub fn ensure_font() -> Result<(), FigureError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = REGISTERED.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| plotters::style::register_font(FONT_FAMILY, style, FONT).is_ok())
    });
    if *registered {
        Ok(())
    } else {
        Err(FigureError::Font)
    }
}

// The paper's Figure 2 colours: blue for selffers, red for transfers, lighter when fine-tuned.
const BASE_COLOR: RGBColor = RGBColor(20, 20, 20);
const SELFFER_COLOR: RGBColor = RGBColor(31, 90, 200);
const SELFFER_TUNED_COLOR: RGBColor = RGBColor(90, 170, 235);
const TRANSFER_COLOR: RGBColor = RGBColor(200, 30, 30);
const TRANSFER_TUNED_COLOR: RGBColor = RGBColor(240, 140, 40);
const DISSIMILAR_COLOR: RGBColor = RGBColor(130, 40, 160);
const RANDOM_COLOR: RGBColor = RGBColor(40, 140, 70);
const OTHER_RELATION_COLORS: [RGBColor; 3] = [
    RGBColor(0, 140, 140),
    RGBColor(150, 110, 0),
    RGBColor(200, 60, 140),
];

/// One variant's runs and means in the Figure 2 panel.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantCurve {
    pub name: &'static str,
    pub color: RGBColor,
    /// (n shifted a little per variant so dots do not hide each other, top-1)
    pub dots: Vec<(f64, f64)>,
    pub means: Vec<(f64, f64)>,
}

/// A curve of differences from baseB, in points, with its 95% intervals.
#[derive(Clone, Debug, PartialEq)]
pub struct DropCurve {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64, Option<Interval>)>,
}

/// A paper curve, drawn dashed and faint.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperCurve {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub title: String,
    pub accuracy_relation: Option<String>,
    pub base_dots: Vec<(f64, f64)>,
    pub base_mean: Option<f64>,
    pub variants: Vec<VariantCurve>,
    pub accuracy_range: (f64, f64),
    /// Shown on a right-hand axis of its own: ImageNet accuracies are not on our scale.
    pub paper_accuracy: Vec<PaperCurve>,
    pub chance_level_not_plotted: usize,
    pub drops: Vec<DropCurve>,
    pub paper_drops: Vec<PaperCurve>,
    pub drop_range: (f64, f64),
}

const PAPER_ACCURACY_RANGE: (f64, f64) = (0.50, 0.68);

fn padded(
    values: impl IntoIterator<Item = f64>,
    minimum_span: f64,
    clamp: Option<(f64, f64)>,
) -> (f64, f64) {
    let (mut low, mut high) = values
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
            (low.min(value), high.max(value))
        });
    if !low.is_finite() {
        (low, high) = (0.0, 1.0);
    }
    let span = (high - low).max(minimum_span);
    let middle = (low + high) / 2.0;
    (low, high) = (middle - span * 0.6, middle + span * 0.6);
    if let Some((floor, ceiling)) = clamp {
        (low, high) = (low.max(floor), high.min(ceiling));
    }
    (low, high)
}

fn relation_color(relation: &str, index: usize) -> RGBColor {
    match relation {
        "similar" => TRANSFER_COLOR,
        "dissimilar" => DISSIMILAR_COLOR,
        _ => OTHER_RELATION_COLORS[index % OTHER_RELATION_COLORS.len()],
    }
}

impl Figure {
    pub fn from_analysis(analysis: &Analysis, title: &str, paper_reference: bool) -> Figure {
        let accuracy_relation = analysis.primary_relation();
        let primary = accuracy_relation.unwrap_or_default();
        let mut figure = Figure {
            title: title.to_string(),
            accuracy_relation: accuracy_relation.map(str::to_string),
            base_dots: Vec::new(),
            base_mean: None,
            variants: Vec::new(),
            accuracy_range: (0.0, 1.0),
            paper_accuracy: Vec::new(),
            chance_level_not_plotted: 0,
            drops: Vec::new(),
            paper_drops: Vec::new(),
            drop_range: (-1.0, 1.0),
        };

        // baseB is the same per-split base every Δ subtracts (see `analysis`).
        if let Some(base) = analysis.base(primary) {
            figure.base_dots = base.runs.iter().map(|run| (0.0, run.top1)).collect();
            figure.base_mean = base.top1.sample().map(|sample| sample.mean);
        }
        let variants = [
            ("BnB", SELFFER_COLOR, -0.15),
            ("BnB+", SELFFER_TUNED_COLOR, -0.05),
            ("AnB", TRANSFER_COLOR, 0.05),
            ("AnB+", TRANSFER_TUNED_COLOR, 0.15),
        ];
        for (name, color, offset) in variants {
            let curve = analysis.relation_curve(primary, name);
            if curve.is_empty() {
                continue;
            }
            let dots = curve
                .iter()
                .flat_map(|cell| {
                    cell.runs
                        .iter()
                        .map(move |run| (cell.layers_copied as f64 + offset, run.top1))
                })
                .collect();
            let means = curve
                .iter()
                .filter_map(|cell| {
                    cell.top1
                        .sample()
                        .map(|sample| (cell.layers_copied as f64, sample.mean))
                })
                .collect();
            figure.variants.push(VariantCurve {
                name,
                color,
                dots,
                means,
            });
            if paper_reference {
                let points = paper::random_split_series(name, true)
                    .into_iter()
                    .map(|(n, accuracy)| (n as f64, accuracy))
                    .collect();
                figure.paper_accuracy.push(PaperCurve {
                    label: format!("paper (ImageNet) {name}"),
                    color,
                    points,
                });
            }
        }
        figure.chance_level_not_plotted = analysis
            .relation_cells
            .iter()
            .filter(|cell| cell.role != Role::Other)
            .map(|cell| {
                cell.chance_level
                    .iter()
                    .filter(|run| !run.in_means())
                    .count()
            })
            .sum();
        let accuracies = figure
            .base_dots
            .iter()
            .chain(figure.variants.iter().flat_map(|curve| &curve.dots))
            .map(|(_, top1)| *top1);
        figure.accuracy_range = padded(accuracies, 0.02, Some((0.0, 1.0)));

        // Figure 3: AnB on every relation, and random weights. Chance-level runs are in no
        // point here either; the note under the figure counts them.
        for (index, relation) in analysis.relations.iter().enumerate() {
            let color = relation_color(relation, index);
            let points = drop_points(analysis, relation, "AnB");
            if !points.is_empty() {
                figure.drops.push(DropCurve {
                    label: format!("AnB, {relation}"),
                    color,
                    points,
                });
            }
        }
        for (variant, init) in [("random", ""), (RANDOM_PAPER_INIT, "paper init, ")] {
            for relation in &analysis.relations {
                let points = drop_points(analysis, relation, variant);
                if !points.is_empty() {
                    let label = format!("random weights, {init}{relation}");
                    let color = match (*relation == primary, init.is_empty()) {
                        (true, true) => RANDOM_COLOR,
                        (false, true) => RGBColor(110, 170, 110),
                        (true, false) => RGBColor(150, 110, 40),
                        (false, false) => RGBColor(200, 160, 90),
                    };
                    figure.drops.push(DropCurve {
                        label,
                        color,
                        points,
                    });
                }
            }
        }
        if paper_reference {
            let series = |values: &dyn Fn(u32) -> Option<f64>| -> Vec<(f64, f64)> {
                (1..=7)
                    .filter_map(|n| values(n).map(|value| (n as f64, value)))
                    .collect()
            };
            figure.paper_drops = vec![
                PaperCurve {
                    label: "paper (ImageNet) AnB, random split".into(),
                    color: TRANSFER_COLOR,
                    points: series(&|n| paper::random_split_drop_points("AnB", n)),
                },
                PaperCurve {
                    label: "paper (ImageNet) AnB, dissimilar".into(),
                    color: DISSIMILAR_COLOR,
                    points: series(&paper::dissimilar_drop_points),
                },
                PaperCurve {
                    label: "paper (ImageNet) random weights, n = 1–2".into(),
                    color: RANDOM_COLOR,
                    points: series(&paper::random_weights_drop_points),
                },
            ];
        }
        let drop_values = figure
            .drops
            .iter()
            .flat_map(|curve| curve.points.iter())
            .flat_map(|(_, value, interval)| {
                [
                    Some(*value),
                    interval.map(|interval| interval.low),
                    interval.map(|interval| interval.high),
                ]
            })
            .flatten()
            .chain(
                figure
                    .paper_drops
                    .iter()
                    .flat_map(|curve| curve.points.iter().map(|(_, value)| *value)),
            )
            .chain([0.0]);
        figure.drop_range = padded(drop_values, 2.0, None);
        figure
    }
}

/// Each n's mean difference from baseB across units, with its 95% interval from the curve's
/// model (the same numbers as the tables and the findings).
fn drop_points(
    analysis: &Analysis,
    relation: &str,
    variant: &str,
) -> Vec<(f64, f64, Option<Interval>)> {
    analysis
        .curve_levels(relation, variant)
        .into_iter()
        .filter(|n| *n >= 1)
        .filter_map(|n| {
            let effect = analysis.level_effect(relation, variant, n)?;
            Some((n as f64, effect.value, effect.interval(CONFIDENCE)))
        })
        .collect()
}

type DrawResult = Result<(), Box<dyn Error>>;

/// Height of the strip under each chart that holds its legend, so no legend hides data.
const LEGEND_HEIGHT: u32 = 125;
const LEGEND_ROW: i32 = 21;

fn label_font(size: u32) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// How a legend entry's sample is drawn.
#[derive(Clone, Copy)]
enum Sample {
    Line(RGBAColor, u32),
    Dashed(RGBAColor),
    LineWithDot(RGBAColor),
    HollowCircle(RGBAColor),
}

struct LegendEntry {
    label: String,
    sample: Sample,
}

fn entry(label: impl Into<String>, sample: Sample) -> LegendEntry {
    LegendEntry {
        label: label.into(),
        sample,
    }
}

/// Entries in two columns, then an optional note on its own line.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    note: Option<&str>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (width, _) = area.dim_in_pixel();
    let column_width = (width as i32 - 90) / 2;
    let rows = entries.len().div_ceil(2) as i32;
    for (index, legend) in entries.iter().enumerate() {
        let (column, row) = ((index as i32) / rows, (index as i32) % rows);
        let (x, y) = (80 + column * column_width, 12 + row * LEGEND_ROW);
        let line = vec![(x, y), (x + 28, y)];
        match legend.sample {
            Sample::Line(color, width) => {
                area.draw(&PathElement::new(line, color.stroke_width(width)))?
            }
            Sample::Dashed(color) => {
                area.draw(&DashedPathElement::new(line, 6, 4, color.stroke_width(2)))?
            }
            Sample::LineWithDot(color) => {
                area.draw(&PathElement::new(line, color.stroke_width(2)))?;
                area.draw(&Circle::new((x + 14, y), 4, color.filled()))?;
            }
            Sample::HollowCircle(color) => {
                area.draw(&Circle::new((x + 14, y), 4, color.stroke_width(2)))?
            }
        }
        area.draw_text(
            &legend.label,
            &label_font(13).pos(Pos::new(HPos::Left, VPos::Center)),
            (x + 36, y),
        )?;
    }
    if let Some(note) = note {
        area.draw_text(
            note,
            &label_font(13).color(&BLACK.mix(0.7)),
            (80, 12 + rows * LEGEND_ROW),
        )?;
    }
    Ok(())
}

/// Draws the figure on any plotters backend.
pub fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, figure: &Figure) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(&figure.title, label_font(26))?;
    let (left, right) = root.split_horizontally(WIDTH / 2);
    draw_accuracy_panel(&left, figure)?;
    draw_drop_panel(&right, figure)?;
    root.present()?;
    Ok(())
}

fn split_off_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
) -> (DrawingArea<DB, Shift>, DrawingArea<DB, Shift>) {
    let height = area.dim_in_pixel().1;
    area.split_vertically(height.saturating_sub(LEGEND_HEIGHT))
}

fn draw_accuracy_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    figure: &Figure,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (area, legend_area) = split_off_legend(panel);
    let relation = figure.accuracy_relation.as_deref().unwrap_or("none");
    let caption =
        format!("Top-1 on the target task vs layers copied ({relation} splits), cf. paper Fig. 2");
    let (low, high) = figure.accuracy_range;
    let mut builder = ChartBuilder::on(&area);
    builder
        .caption(caption, label_font(17))
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(64);
    if !figure.paper_accuracy.is_empty() {
        builder.right_y_label_area_size(64);
    }
    let mut chart = builder
        .build_cartesian_2d(-0.5f64..7.5f64, low..high)?
        .set_secondary_coord(
            -0.5f64..7.5f64,
            PAPER_ACCURACY_RANGE.0..PAPER_ACCURACY_RANGE.1,
        );
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(9)
        .x_label_formatter(&whole_number_label)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .x_desc("n: layers copied (0 = baseB)")
        .y_desc("top-1 (ours)")
        .label_style(label_font(14))
        .axis_desc_style(label_font(15))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    let mut legend = Vec::new();
    if !figure.paper_accuracy.is_empty() {
        chart
            .configure_secondary_axes()
            .y_desc("paper top-1 (ImageNet, CaffeNet), dashed")
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(label_font(14).color(&BLACK.mix(0.6)))
            .axis_desc_style(label_font(15).color(&BLACK.mix(0.6)))
            .draw()?;
        for curve in &figure.paper_accuracy {
            let style = curve.color.mix(0.45).stroke_width(2);
            chart.draw_secondary_series(DashedLineSeries::new(
                curve.points.clone(),
                7,
                5,
                style,
            ))?;
        }
        chart.draw_secondary_series(std::iter::once(Circle::new(
            (0.0, paper::BASE_B),
            4,
            BLACK.mix(0.45).stroke_width(1),
        )))?;
    }
    if let Some(mean) = figure.base_mean {
        chart.draw_series(DashedLineSeries::new(
            vec![(-0.5, mean), (7.5, mean)],
            3,
            4,
            BLACK.mix(0.5).stroke_width(1),
        ))?;
        chart.draw_series(
            figure
                .base_dots
                .iter()
                .map(|point| Circle::new(*point, 4, BASE_COLOR.stroke_width(2))),
        )?;
        legend.push(entry(
            "baseB (circles: seeds, thin line: mean)",
            Sample::HollowCircle(BASE_COLOR.to_rgba()),
        ));
    }
    for curve in &figure.variants {
        let color = curve.color;
        chart.draw_series(
            curve
                .dots
                .iter()
                .map(|point| Circle::new(*point, 3, color.mix(0.55).filled())),
        )?;
        chart.draw_series(LineSeries::new(curve.means.clone(), color.stroke_width(2)))?;
        chart.draw_series(
            curve
                .means
                .iter()
                .map(|point| Circle::new(*point, 5, color.filled())),
        )?;
        legend.push(entry(
            format!("{} (line: mean, dots: seeds)", curve.name),
            Sample::LineWithDot(color.to_rgba()),
        ));
    }
    if !figure.paper_accuracy.is_empty() {
        legend.push(entry(
            "paper (ImageNet), right axis, same colours",
            Sample::Dashed(BLACK.mix(0.45)),
        ));
    }
    if figure.variants.is_empty() && figure.base_dots.is_empty() {
        let (width, height) = area.dim_in_pixel();
        area.draw_text(
            "no runs to plot",
            &label_font(18),
            (width as i32 / 2 - 60, height as i32 / 2),
        )?;
    }
    let note = (figure.chance_level_not_plotted > 0).then(|| {
        format!(
            "{} chance-level runs not plotted (see summary.md)",
            figure.chance_level_not_plotted
        )
    });
    draw_legend(&legend_area, &legend, note.as_deref())
}

/// Ticks of the n axis: labels at whole numbers only.
fn whole_number_label(x: &f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

fn draw_drop_panel<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    figure: &Figure,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (area, legend_area) = split_off_legend(panel);
    let (low, high) = figure.drop_range;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "Difference from baseB vs layers copied, cf. paper Fig. 3",
            label_font(17),
        )
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(0.5f64..7.5f64, low..high)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(8)
        .x_label_formatter(&whole_number_label)
        .y_label_formatter(&|y| format!("{y:+.0}"))
        .x_desc("n: layers copied")
        .y_desc("top-1 minus own baseB (accuracy points)")
        .label_style(label_font(14))
        .axis_desc_style(label_font(15))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    chart.draw_series(LineSeries::new(
        vec![(0.5, 0.0), (7.5, 0.0)],
        BLACK.mix(0.6).stroke_width(1),
    ))?;
    let mut legend = vec![entry("baseB (0)", Sample::Line(BLACK.mix(0.6), 1))];
    for curve in &figure.drops {
        let color = curve.color;
        let bars = curve.points.iter().filter_map(|(n, _, interval)| {
            interval.map(|interval| {
                PathElement::new(
                    vec![(*n, interval.low), (*n, interval.high)],
                    color.mix(0.6).stroke_width(2),
                )
            })
        });
        chart.draw_series(bars)?;
        let line: Vec<(f64, f64)> = curve
            .points
            .iter()
            .map(|(n, value, _)| (*n, *value))
            .collect();
        chart.draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?;
        chart.draw_series(
            line.iter()
                .map(|point| Circle::new(*point, 5, color.filled())),
        )?;
        legend.push(entry(
            format!("{} (bars: 95% CI)", curve.label),
            Sample::LineWithDot(color.to_rgba()),
        ));
    }
    for curve in &figure.paper_drops {
        let style = curve.color.mix(0.45).stroke_width(2);
        chart.draw_series(DashedLineSeries::new(curve.points.clone(), 7, 5, style))?;
        legend.push(entry(
            curve.label.clone(),
            Sample::Dashed(curve.color.mix(0.45)),
        ));
    }
    if figure.drops.is_empty() {
        area.draw_text(
            "no AnB or random-weight runs with a baseB",
            &label_font(18),
            (120, area.dim_in_pixel().1 as i32 / 2),
        )?;
    }
    draw_legend(&legend_area, &legend, None)
}

/// The figure as SVG text.
pub fn render_svg(figure: &Figure) -> Result<String, FigureError> {
    ensure_font()?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        // plotters' drawing errors are boxed trait objects: kept as their text.
        draw(&root, figure).map_err(|error| FigureError::Draw {
            format: "SVG",
            detail: error.to_string(),
        })?;
    }
    Ok(svg)
}

/// The figure as PNG bytes (drawn into an RGB buffer, encoded with `image`).
pub fn render_png(figure: &Figure) -> Result<Vec<u8>, FigureError> {
    ensure_font()?;
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, figure).map_err(|error| FigureError::Draw {
            format: "PNG",
            detail: error.to_string(),
        })?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &pixels,
        WIDTH,
        HEIGHT,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(png)
}
