//! The LibTorch backend (feature `torch`): agrees with flex, is deterministic for a seed, keeps
//! frozen layers bit-identical, and is what `cpu` and `auto` pick on a machine without a GPU.

use tpipe_ml::{train, BackendChoice, RunOptions, TrainConfig, Transfer, TransferMode};

use crate::support::{
    assert_trains_and_scores_like_flex, layer_tensor_names, quadrant_images, quick_config, tensors,
    tiny_net,
};

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
fn torch_gives_the_same_bytes_for_the_same_seed() {
    let net = tiny_net(1);
    let data = quadrant_images(64, 1, 2, 250);
    let config = TrainConfig {
        augment_crop_padding: 2,
        augment_flip: true,
        ..quick_config(11)
    };
    let first = train(&net, &config, &data, None, &torch()).unwrap();
    let second = train(&net, &config, &data, None, &torch()).unwrap();
    assert_eq!(first.backend, "torch");
    assert_eq!(first.weights, second.weights);
    assert_eq!(first.epoch_losses, second.epoch_losses);
}

#[test]
fn torch_keeps_frozen_layers_bit_identical() {
    let net = tiny_net(1);
    let source = train(
        &net,
        &quick_config(1),
        &quadrant_images(64, 1, 5, 250),
        None,
        &torch(),
    )
    .unwrap()
    .weights;
    let data = quadrant_images(64, 1, 6, 180);
    for layers_copied in [1, 5] {
        let transfer = Transfer {
            source_weights: &source,
            layers_copied,
            mode: TransferMode::Frozen,
        };
        let trained = train(&net, &quick_config(2), &data, Some(transfer), &torch()).unwrap();
        let (trained, source) = (tensors(&trained.weights), tensors(&source));
        for layer in 1..=8 {
            for name in layer_tensor_names(layer) {
                assert_eq!(
                    trained[&name] == source[&name],
                    layer <= layers_copied,
                    "n={layers_copied}: {name}"
                );
            }
        }
    }
}

#[test]
fn cpu_and_auto_choose_torch_when_it_is_built_in() {
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
            outcome.backend == "torch" || on_gpu,
            "{backend:?} ran on {}",
            outcome.backend
        );
    }
}
