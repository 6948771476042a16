//! The wgpu backend agrees with flex. Runs on whatever adapter wgpu picks; on a machine without
//! a GPU that is lavapipe, which this module selects with `CUBECL_WGPU_DEFAULT_DEVICE=Cpu` unless
//! the variable is already set.

use tpipe_ml::{BackendChoice, RunOptions};

use crate::support::assert_trains_and_scores_like_flex;

fn wgpu() -> RunOptions<'static> {
    if std::env::var_os("CUBECL_WGPU_DEFAULT_DEVICE").is_none() {
        // Each test runs in its own process under nextest, before any wgpu device exists.
        std::env::set_var("CUBECL_WGPU_DEFAULT_DEVICE", "Cpu");
    }
    RunOptions {
        backend: BackendChoice::Wgpu,
        ..RunOptions::default()
    }
}

#[test]
fn wgpu_trains_like_flex_and_both_score_its_weights_alike() {
    assert_trains_and_scores_like_flex(&wgpu(), "wgpu (");
}
