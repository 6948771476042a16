//! Training curves: a small panel per trained net (loss, train accuracy, learning rate and,
//! where the record has it, validation accuracy per epoch), grouped by variant and n, on
//! shared scales so that a net that did not converge stands out; those are framed in red.

use std::fmt::Write;

use serde_json::Value;

use super::escape;

const WIDTH: f64 = 146.0;
const HEIGHT: f64 = 70.0;

/// One trained net's curves, from its record's metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct NetCurves {
    pub name: String,
    /// In the paper's notation (`baseA`, `AnB+`, …), from the metrics' lineage.
    pub variant: Option<String>,
    pub layers_copied: Option<u64>,
    pub seed: Option<u64>,
    pub losses: Vec<f64>,
    pub accuracies: Vec<f64>,
    pub learning_rates: Vec<f64>,
    /// Per epoch, where the training scored a validation set.
    pub validation_accuracies: Vec<f64>,
    pub train_accuracy: Option<f64>,
    pub num_classes: Option<u64>,
}

fn numbers(metrics: &Value, field: &str) -> Vec<f64> {
    metrics
        .get(field)
        .and_then(Value::as_array)
        .map(|values| values.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

impl NetCurves {
    /// The curves of a node whose metrics have per-epoch losses (a training); `None` for any
    /// other node.
    pub fn from_metrics(name: &str, metrics: &Value) -> Option<NetCurves> {
        let losses = numbers(metrics, "epoch_losses");
        if losses.is_empty() {
            return None;
        }
        Some(NetCurves {
            name: name.to_string(),
            variant: metrics
                .get("variant")
                .and_then(Value::as_str)
                .map(str::to_string),
            layers_copied: metrics.get("layers_copied").and_then(Value::as_u64),
            seed: metrics.get("seed").and_then(Value::as_u64),
            losses,
            accuracies: numbers(metrics, "epoch_accuracies"),
            learning_rates: numbers(metrics, "epoch_learning_rates"),
            validation_accuracies: numbers(metrics, "epoch_validation_accuracies"),
            train_accuracy: metrics.get("train_accuracy").and_then(Value::as_f64),
            num_classes: metrics.get("num_classes").and_then(Value::as_u64),
        })
    }

    /// Why the net looks unconverged, if it does: its loss hardly fell, or it ends near chance.
    pub fn not_converged(&self) -> Option<String> {
        let last_accuracy = self.train_accuracy.or(self.accuracies.last().copied());
        if let (Some(accuracy), Some(classes)) = (last_accuracy, self.num_classes) {
            let chance = 1.0 / classes.max(1) as f64;
            if accuracy < 1.5 * chance {
                return Some(format!(
                    "train accuracy {accuracy:.3} is near chance ({chance:.3})"
                ));
            }
        }
        if let (Some(first), Some(last), true) = (
            self.losses.first(),
            self.losses.last(),
            self.losses.len() > 1,
        ) {
            if *last > 0.9 * first {
                return Some(format!("loss fell only from {first:.3} to {last:.3}"));
            }
        }
        None
    }
}

pub(super) fn render(page: &mut String, nets: &[NetCurves]) {
    if nets.is_empty() {
        page.push_str("<p class=\"curves-empty\">No trained net in this run.</p>");
        return;
    }
    let mut sorted: Vec<&NetCurves> = nets.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.variant, a.layers_copied, a.seed, &a.name).cmp(&(
            &b.variant,
            b.layers_copied,
            b.seed,
            &b.name,
        ))
    });
    // One loss scale for every panel, from the typical net: 1.5 × the median first-epoch
    // loss. A net that diverges (or starts far above the others) runs along the top edge
    // instead of flattening every other curve.
    let loss_scale = loss_scale(nets);
    let stalled: Vec<&NetCurves> = sorted
        .iter()
        .copied()
        .filter(|net| net.not_converged().is_some())
        .collect();
    let _ = write!(
        page,
        "<p class=\"legend\">{count} trained nets. \
         <span><i style=\"background:#d62728\"></i>loss (0 to {loss_scale:.2}, all panels)</span>\
         <span><i style=\"background:#1f77b4\"></i>train accuracy (0 to 1)</span>\
         <span><i style=\"background:#2ca02c\"></i>validation accuracy (0 to 1, where the split \
         has validation images)</span>\
         <span><i style=\"background:#999\"></i>learning rate (its own maximum)</span></p>",
        count = nets.len(),
    );
    if !stalled.is_empty() {
        let _ = write!(
            page,
            "<details class=\"stalled\"><summary><b>{} may not have converged</b> (framed in \
             red)</summary><p>{}</p></details>",
            stalled.len(),
            stalled
                .iter()
                .map(|net| format!(
                    "<code>{}</code> ({})",
                    escape(&net.name),
                    escape(&net.not_converged().unwrap_or_default())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut group: Option<(Option<&str>, Option<u64>)> = None;
    for net in sorted {
        let this_group = (net.variant.as_deref(), net.layers_copied);
        if group != Some(this_group) {
            if group.is_some() {
                page.push_str("</div>");
            }
            let label = match this_group {
                (Some(variant), Some(n)) if n > 0 => format!("{variant}, n = {n}"),
                (Some(variant), _) => variant.to_string(),
                (None, _) => "other".to_string(),
            };
            let _ = write!(
                page,
                "<div class=\"group\">{}</div><div class=\"nets\">",
                escape(&label)
            );
            group = Some(this_group);
        }
        panel(page, net, loss_scale);
    }
    page.push_str("</div>");
}

fn loss_scale(nets: &[NetCurves]) -> f64 {
    let mut first_losses: Vec<f64> = nets
        .iter()
        .filter_map(|net| net.losses.first().copied())
        .filter(|loss| loss.is_finite())
        .collect();
    if first_losses.is_empty() {
        return 1.0;
    }
    first_losses.sort_by(f64::total_cmp);
    (1.5 * first_losses[first_losses.len() / 2]).max(1e-9)
}

fn panel(page: &mut String, net: &NetCurves, loss_scale: f64) {
    let problem = net.not_converged();
    let epochs = net.losses.len().max(net.accuracies.len()).max(1);
    let x = |epoch: usize| {
        if epochs == 1 {
            WIDTH / 2.0
        } else {
            2.0 + epoch as f64 / (epochs - 1) as f64 * (WIDTH - 4.0)
        }
    };
    let y = |fraction: f64| 2.0 + (1.0 - fraction.clamp(0.0, 1.0)) * (HEIGHT - 4.0);
    let line = |values: &[f64], scale: f64| -> String {
        values
            .iter()
            .enumerate()
            .map(|(epoch, value)| format!("{:.1},{:.1}", x(epoch), y(value / scale)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let lr_scale = net
        .learning_rates
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12);
    let _ = write!(
        page,
        "<figure class=\"net{flag}\" data-node=\"{name}\"><svg xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\"><rect width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         fill=\"#fff\"/>",
        flag = if problem.is_some() { " stalled" } else { "" },
        name = escape(&net.name),
    );
    for (values, scale, colour, dash) in [
        (
            &net.learning_rates,
            lr_scale,
            "#999",
            " stroke-dasharray=\"3,2\"",
        ),
        (&net.losses, loss_scale, "#d62728", ""),
        (&net.accuracies, 1.0, "#1f77b4", ""),
        (&net.validation_accuracies, 1.0, "#2ca02c", ""),
    ] {
        if !values.is_empty() {
            let _ = write!(
                page,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>",
                line(values, scale)
            );
        }
    }
    let accuracy = net
        .train_accuracy
        .or(net.accuracies.last().copied())
        .map(|accuracy| format!(" · acc {accuracy:.2}"))
        .unwrap_or_default()
        + &net
            .validation_accuracies
            .last()
            .map(|accuracy| format!(" · val {accuracy:.2}"))
            .unwrap_or_default();
    let _ = write!(
        page,
        "<title>{name}: {epochs} epochs, loss {first:.3} → {last:.3}{accuracy}{problem}</title></svg>\
         <figcaption>{name}{accuracy}</figcaption></figure>",
        name = escape(&net.name),
        first = net.losses.first().copied().unwrap_or(f64::NAN),
        last = net.losses.last().copied().unwrap_or(f64::NAN),
        problem = problem
            .map(|problem| format!(" ({})", escape(&problem)))
            .unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(losses: &[f64], accuracy: f64) -> NetCurves {
        NetCurves::from_metrics(
            "net",
            &serde_json::json!({
                "variant": "AnB", "layers_copied": 3, "seed": 0,
                "epoch_losses": losses, "epoch_accuracies": [accuracy],
                "epoch_learning_rates": [0.01], "train_accuracy": accuracy, "num_classes": 5,
            }),
        )
        .unwrap()
    }

    #[test]
    fn a_net_near_chance_or_with_a_flat_loss_is_flagged_and_a_learning_one_is_not() {
        assert_eq!(net(&[1.6, 0.4], 0.9).not_converged(), None);
        assert!(net(&[1.6, 0.4], 0.25)
            .not_converged()
            .unwrap()
            .contains("near chance"));
        assert!(net(&[1.6, 1.55], 0.9)
            .not_converged()
            .unwrap()
            .contains("loss fell only"));
    }

    #[test]
    fn a_net_that_scored_validation_images_gets_their_curve_and_last_figure() {
        let mut page = String::new();
        let mut scored = net(&[1.6, 0.4], 0.9);
        panel(&mut page, &scored, 2.4);
        assert!(!page.contains("#2ca02c"), "{page}");
        scored.validation_accuracies = vec![0.5, 0.75];
        page.clear();
        panel(&mut page, &scored, 2.4);
        assert!(
            page.contains("<polyline fill=\"none\" stroke=\"#2ca02c\""),
            "{page}"
        );
        assert!(page.contains("acc 0.90 · val 0.75</figcaption>"), "{page}");
    }

    #[test]
    fn metrics_without_epoch_losses_are_not_a_training() {
        assert_eq!(
            NetCurves::from_metrics("eval", &serde_json::json!({"top1": 0.5})),
            None
        );
    }
}
