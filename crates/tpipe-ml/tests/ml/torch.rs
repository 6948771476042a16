//! The LibTorch backend (feature `torch`): agrees with flex, and `cpu` and `auto` still pick the
//! native path when it is built in (as fast, and byte-stable for any thread count). Determinism for a seed and bit-identical frozen layers are checked
//! on it by the tests that loop over `support::cpu_backends()`.

use tpipe_ml::{train, BackendChoice, RunOptions, TrainConfig};

use crate::support::{assert_trains_and_scores_like_flex, quadrant_images, quick_config, tiny_net};

fn torch() -> RunOptions<'static> {
    RunOptions {
        backend: BackendChoice::Torch,
        ..RunOptions::default()
    }
}

#[test]
fn torch_trains_like_flex_and_both_score_its_weights_alike() {
    assert_trains_and_scores_like_flex(&torch(), "torch");
}

#[test]
fn cpu_and_auto_choose_native_even_when_torch_is_built_in() {
    let net = tiny_net(1);
    let data = quadrant_images(16, 1, 3, 250);
    let config = TrainConfig {
        epochs: 1,
        ..quick_config(0)
    };
    for backend in [BackendChoice::Cpu, BackendChoice::Auto] {
        let options = RunOptions {
            backend,
            ..RunOptions::default()
        };
        let outcome = train(&net, &config, &data, None, &options).unwrap();
        // `auto` prefers a real GPU when there is one.
        let on_gpu = backend == BackendChoice::Auto && outcome.backend.starts_with("wgpu (");
        assert!(
            outcome.backend == "native" || on_gpu,
            "{backend:?} ran on {}",
            outcome.backend
        );
    }
}
