//! Fuzzed configurations: native against flex on every case, both against PyTorch on a sample.
//!
//! Every comparison is teacher-forced: each step starts from the reference's state after the
//! step before, so a deviation belongs to that one step and cannot build up. (Free-running, two
//! f32 implementations part after a few dozen steps however right both are: a pre-activation
//! within rounding of zero takes the other side of a ReLU, and training amplifies the change.)
//! Deviations are in units of the reference's update at that step (see `compare`).

use tpipe_conformance::compare::{compare, StepDeviation};
use tpipe_conformance::torch::{read_outcomes, write_case, Precision};
use tpipe_conformance::{fuzz, learning_rates, outcomes, Case};
use tpipe_ml::{BackendChoice, InitScheme, TransferMode};

use crate::support::{assert_within, fuzz_case_count, torch_or_skip, Tolerance};

/// The fuzzer's seed: the same cases on every run.
const SEED: u64 = 1;

/// One step of native against one of flex (both f32), or of either against PyTorch in float64.
/// What rounding leaves in a step is about 1e-6 of the update between the tpipe paths (largest
/// over 300 cases: 1.2e-3; over 10,000: 2.8e-2, where a pre-activation within rounding of zero
/// fell on the other side of a ReLU); against float64, add one f32 unit in the last place of a
/// parameter that barely moves, 1/16 of `compare`'s rounding floor (largest: 0.061, biases of 1
/// under `init: paper`). A wrong mask, batch size, rate, decay or frozen layer moves a parameter
/// by half its update or more.
pub const TOLERANCE: Tolerance = Tolerance {
    parameters: 0.25,
    momentum: 0.25,
    loss: 1e-5,
};

fn teacher_of(trace: &[tpipe_conformance::StepOutcome]) -> Vec<tpipe_ml::TrainingState> {
    trace.iter().map(|step| step.state.clone()).collect()
}

/// `case` on `backend`, each step started from `reference`'s state, against `reference`.
fn forced_deviations(
    case: &Case,
    backend: BackendChoice,
    reference: &[tpipe_conformance::StepOutcome],
    start: &tpipe_ml::TrainingState,
) -> Vec<StepDeviation> {
    let run = case
        .trace(backend, Some(&teacher_of(reference)))
        .unwrap_or_else(|error| panic!("{}: {error}", case.name));
    compare(
        start,
        reference,
        &outcomes(&run),
        run.frozen_layers,
        &learning_rates(&run),
    )
}

#[test]
fn native_steps_match_flex_on_fuzzed_configurations() {
    let cases = fuzz::cases(SEED, fuzz_case_count());
    for case in &cases {
        let flex = case
            .trace(BackendChoice::Flex, None)
            .unwrap_or_else(|error| panic!("{}: {error}", case.name));
        assert_eq!(flex.steps.len(), case.steps, "{}", case.name);
        let deviations =
            forced_deviations(case, BackendChoice::Native, &outcomes(&flex), &flex.start);
        assert_within(
            &deviations,
            TOLERANCE,
            &format!("native vs flex, {}", case.name),
        );
        // Free-running too, frozen layers never move on either path, not by a bit.
        let native = case.trace(BackendChoice::Native, None).unwrap();
        for trace in [&native, &flex] {
            let frozen = &trace.start.layers[..trace.frozen_layers];
            for (step, traced) in trace.steps.iter().enumerate() {
                assert!(
                    traced.state.layers[..trace.frozen_layers] == *frozen,
                    "{}: a frozen layer changed in step {step} on {}",
                    case.name,
                    trace.backend
                );
            }
        }
    }
}

#[test]
fn native_and_flex_steps_match_pytorch_on_sampled_configurations() {
    let Some(torch) =
        torch_or_skip("native_and_flex_steps_match_pytorch_on_sampled_configurations")
    else {
        return;
    };
    let cases = fuzz::cases(SEED, fuzz_case_count());
    // Every sixth case: about 50 of the default 300, one PyTorch process for all of them.
    let sample: Vec<&Case> = cases.iter().step_by(6).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut traces = Vec::new();
    let mut dirs = Vec::new();
    for (index, case) in sample.iter().enumerate() {
        let trace = case.trace(BackendChoice::Native, None).unwrap();
        let path = dir.path().join(format!("case{index}"));
        write_case(&path, case, &trace).unwrap();
        dirs.push(path);
        traces.push(trace);
    }
    torch.run(&dirs, Precision::Float64, None).unwrap();
    for ((case, path), trace) in sample.iter().zip(&dirs).zip(&traces) {
        let reference = read_outcomes(path, Precision::Float64).unwrap();
        assert_eq!(reference.len(), case.steps, "{}", case.name);
        for backend in [BackendChoice::Native, BackendChoice::Flex] {
            let deviations = forced_deviations(case, backend, &reference, &trace.start);
            assert_within(
                &deviations,
                TOLERANCE,
                &format!("{backend:?} vs PyTorch {}, {}", torch.version, case.name),
            );
        }
    }
}

/// The generator must keep covering what a pipeline can say; a change that stops drawing some
/// of it fails here rather than silently testing less.
#[test]
fn fuzzed_cases_cover_what_pipelines_can_say() {
    let cases = fuzz::cases(SEED, fuzz_case_count());
    let count =
        |predicate: &dyn Fn(&Case) -> bool| cases.iter().filter(|case| predicate(case)).count();
    let transfer = |case: &Case| {
        case.source
            .as_ref()
            .map(|source| (source.layers_copied, source.mode))
    };
    let augmented = |case: &Case| case.config.augment_crop_padding > 0 || case.config.augment_flip;
    let coverage: Vec<(&str, usize)> = vec![
        (
            "a last batch of one image",
            count(&|case| case.data.count % case.config.batch_size == 1),
        ),
        (
            "a partial last batch",
            count(&|case| case.data.count % case.config.batch_size != 0),
        ),
        ("batches of one", count(&|case| case.config.batch_size == 1)),
        ("dropout", count(&|case| case.net.dropout > 0.0)),
        ("no dropout", count(&|case| case.net.dropout == 0.0)),
        (
            "init: paper",
            count(&|case| case.net.init == InitScheme::Paper),
        ),
        ("colour input", count(&|case| case.net.channels == 3)),
        (
            "odd map sizes",
            count(&|case| case.net.height % 2 == 1 || case.net.width % 2 == 1),
        ),
        (
            "strided convs",
            count(&|case| case.net.conv.iter().any(|layer| layer.stride > 1)),
        ),
        (
            "unpadded convs",
            count(&|case| {
                case.net
                    .conv
                    .iter()
                    .any(|layer| layer.padding == 0 && layer.kernel > 1)
            }),
        ),
        (
            "even kernels",
            count(&|case| case.net.conv.iter().any(|layer| layer.kernel % 2 == 0)),
        ),
        ("crop and flip", count(&augmented)),
        ("momentum 0", count(&|case| case.config.momentum == 0.0)),
        (
            "weight decay",
            count(&|case| case.config.weight_decay > 0.0),
        ),
        (
            "a step schedule",
            count(&|case| case.config.lr_step_epochs > 0),
        ),
        (
            "fine-tuning",
            count(&|case| transfer(case).is_some_and(|(_, mode)| mode == TransferMode::FineTune)),
        ),
        (
            "a source with another number of classes",
            count(&|case| {
                case.source.as_ref().is_some_and(|source| {
                    tpipe_ml::net_config_of_weights(&source.weights)
                        .unwrap()
                        .num_classes
                        != case.net.num_classes
                })
            }),
        ),
    ];
    for (what, cases) in &coverage {
        assert!(*cases >= 3, "only {cases} fuzzed case(s) with {what}");
    }
    // Every frozen n, and the feature cache at each cut point it can have: after conv1..conv4
    // (maps), fc6's input, and fc6's output (dropout stops the cache there) or fc7's.
    for layers_copied in 1..=7 {
        let frozen = |case: &Case| {
            transfer(case) == Some((layers_copied, TransferMode::Frozen)) && !augmented(case)
        };
        assert!(
            count(&frozen) >= 2,
            "too few cached cases frozen at n = {layers_copied}"
        );
    }
    for end in 1..=7 {
        let cut = |case: &Case| {
            let Some((n, TransferMode::Frozen)) = transfer(case) else {
                return false;
            };
            let cache_end = if case.net.dropout > 0.0 { n.min(6) } else { n };
            !augmented(case) && cache_end == end
        };
        assert!(
            count(&cut) >= 1,
            "no fuzzed case caches features up to layer {end}"
        );
    }
}
