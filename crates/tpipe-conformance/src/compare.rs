//! How far a run of a case is from a reference run, step by step.
//!
//! Parameters are compared in units of the reference's update at that step: a deviation of 1
//! means the run moved a parameter as far from the reference as the step moved it at all. That
//! is the scale on which a wrong gradient, mask, rate or decay shows (it changes the update),
//! and it is independent of how large the weights are. Float rounding of one step is around
//! 1e-6 in these units; see the tests for the tolerances and why.

use tpipe_ml::{TrainingState, LAYER_NAMES};

use crate::StepOutcome;

/// How far a run is from the reference at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepDeviation {
    /// 0-based step.
    pub step: usize,
    /// `|loss − reference loss| / max(1, |reference loss|)`.
    pub loss: f64,
    /// The largest `max|w − w_ref|` over the trainable layers' weights and biases, each in units
    /// of its layer's step: the largest `|w_ref − w_ref before the step|` of the layer's weight
    /// and bias, plus 16 units in the last place of its largest parameter.
    pub parameters: f64,
    /// Where `parameters` was largest, e.g. `conv3.weight`.
    pub worst: String,
    /// The largest `max|v − v_ref| × learning rate` over the layers' momentum buffers (weight and
    /// bias together), in the units of `parameters`: how far the difference would move the
    /// parameters in the next step. Infinite when one run has a buffer and the other none.
    pub momentum: f64,
    /// Frozen layers whose values differ from the start at all (there must be none).
    pub frozen_changed: Vec<String>,
}

/// How many units in the last place of a layer's largest value its comparison allows on top of
/// the update: the update of an f32 parameter is rounded a few times (decay, momentum, step).
const ROUNDING_ULPS: f64 = 16.0;

/// The largest `|a − b|` and `|b|` of two slices.
fn largest_difference(a: &[f32], b: &[f32]) -> (f64, f64) {
    a.iter()
        .zip(b)
        .fold((0.0f64, 0.0f64), |(difference, size), (&x, &y)| {
            (
                difference.max((x as f64 - y as f64).abs()),
                size.max((y as f64).abs()),
            )
        })
}

/// `run` against `reference`, both from `start` (the reference's state before step 0), with the
/// layers below `frozen_layers` frozen and each step's (weights') learning rate.
///
/// When `run` was teacher-forced by `reference` (each step started from the reference's state
/// after the step before), each step's deviation is that step's alone; otherwise it is what has
/// built up so far.
pub fn compare(
    start: &TrainingState,
    reference: &[StepOutcome],
    run: &[StepOutcome],
    frozen_layers: usize,
    learning_rates: &[f64],
) -> Vec<StepDeviation> {
    let mut deviations = Vec::with_capacity(run.len());
    let mut before = start;
    for (step, (expected, actual)) in reference.iter().zip(run).enumerate() {
        let mut deviation = StepDeviation {
            step,
            loss: (actual.loss - expected.loss).abs() / expected.loss.abs().max(1.0),
            parameters: 0.0,
            worst: String::new(),
            momentum: 0.0,
            frozen_changed: Vec::new(),
        };
        let layers = expected
            .state
            .layers
            .iter()
            .zip(&actual.state.layers)
            .zip(&before.layers)
            .zip(&start.layers);
        for (index, (((expected, actual), before), initial)) in layers.enumerate() {
            let name = LAYER_NAMES[index];
            if index < frozen_layers {
                if actual.weight != initial.weight || actual.bias != initial.bias {
                    deviation.frozen_changed.push(name.to_string());
                }
                continue;
            }
            // One scale per layer: a bias's gradient is a sum that may cancel to almost nothing
            // (fc8's over a batch holding every class once), and then its own update is
            // rounding; the layer's largest update is the step's size.
            let (weight_difference, weight_size) =
                largest_difference(&actual.weight, &expected.weight);
            let (bias_difference, bias_size) = largest_difference(&actual.bias, &expected.bias);
            let (weight_update, _) = largest_difference(&expected.weight, &before.weight);
            let (bias_update, _) = largest_difference(&expected.bias, &before.bias);
            // A few units in the last place of the largest parameter are rounding, however
            // small the update.
            let scale = weight_update.max(bias_update)
                + ROUNDING_ULPS * f32::EPSILON as f64 * weight_size.max(bias_size).max(1e-3);
            for (part, difference) in [("weight", weight_difference), ("bias", bias_difference)] {
                let relative = difference / scale;
                if relative > deviation.parameters {
                    deviation.parameters = relative;
                    deviation.worst = format!("{name}.{part}");
                }
            }
            // A momentum buffer moves the parameters by `learning rate × buffer` in the steps
            // to come: its difference in the same units as the parameters'.
            let momentum = match (&expected.velocity, &actual.velocity) {
                (Some((expected_weight, expected_bias)), Some((actual_weight, actual_bias))) => {
                    let (weight_difference, _) = largest_difference(actual_weight, expected_weight);
                    let (bias_difference, _) = largest_difference(actual_bias, expected_bias);
                    weight_difference.max(bias_difference) * learning_rates[step] / scale
                }
                (None, None) => 0.0,
                _ => f64::INFINITY,
            };
            deviation.momentum = deviation.momentum.max(momentum);
        }
        deviations.push(deviation);
        before = &expected.state;
    }
    deviations
}

/// The largest parameter deviation over `deviations` (0 for none).
pub fn worst_parameters(deviations: &[StepDeviation]) -> f64 {
    deviations
        .iter()
        .map(|deviation| deviation.parameters)
        .fold(0.0, f64::max)
}
