//! PyTorch when there is one, how many cases to fuzz, and the one check every comparison ends in.

use tpipe_conformance::compare::StepDeviation;
use tpipe_conformance::torch::Torch;

/// The PyTorch to compare with, or `None` (with a message on stderr) where there is none and
/// `TPIPE_REQUIRE_TORCH` is unset. CI sets it, so there a missing PyTorch fails the test
/// instead of skipping it.
pub fn torch_or_skip(test: &str) -> Option<Torch> {
    match Torch::find() {
        Ok(torch) => Some(torch),
        Err(error) if std::env::var_os("TPIPE_REQUIRE_TORCH").is_none() => {
            eprintln!("{test}: skipped: {error}");
            None
        }
        Err(error) => panic!("{test}: TPIPE_REQUIRE_TORCH is set, but {error}"),
    }
}

/// Fuzzed cases per run: 300, or `TPIPE_FUZZ_CASES` for a longer search.
pub fn fuzz_case_count() -> usize {
    std::env::var("TPIPE_FUZZ_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(300)
}

/// The largest deviations a comparison accepts (see `compare::StepDeviation` for the units).
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub parameters: f64,
    pub momentum: f64,
    pub loss: f64,
}

/// Every step within `tolerance`, and no frozen layer changed.
pub fn assert_within(deviations: &[StepDeviation], tolerance: Tolerance, context: &str) {
    for deviation in deviations {
        assert!(
            deviation.frozen_changed.is_empty()
                && deviation.parameters <= tolerance.parameters
                && deviation.momentum <= tolerance.momentum
                && deviation.loss <= tolerance.loss,
            "{context}: step {} beyond {tolerance:?}: {deviation:?}",
            deviation.step
        );
    }
}
