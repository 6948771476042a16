//! Copying layers 1..n from a source net, frozen or fine-tuned.

use tpipe_ml::{
    initial_weights, train, MlError, Numerics, RunOptions, TrainConfig, Transfer, TransferMode,
};

use crate::support::{
    cpu_backends, flex, floats, layer_tensor_names, metadata, quadrant_images, quick_config,
    tensors, tiny_net,
};

/// A trained source net (seed 1) on bright squares.
fn source_weights() -> Vec<u8> {
    source_weights_on(&flex())
}

fn source_weights_on(options: &RunOptions<'_>) -> Vec<u8> {
    train(
        &tiny_net(1),
        &quick_config(1),
        &quadrant_images(64, 1, 5, 250),
        None,
        options,
    )
    .unwrap()
    .weights
}

fn transfer(
    source: &[u8],
    layers_copied: usize,
    mode: TransferMode,
    config: &TrainConfig,
) -> Vec<u8> {
    transfer_on(&flex(), source, layers_copied, mode, config)
}

fn transfer_on(
    options: &RunOptions<'_>,
    source: &[u8],
    layers_copied: usize,
    mode: TransferMode,
    config: &TrainConfig,
) -> Vec<u8> {
    let data = quadrant_images(64, 1, 6, 180);
    let transfer = Transfer {
        source_weights: source,
        layers_copied,
        mode,
    };
    train(&tiny_net(1), config, &data, Some(transfer), options)
        .unwrap()
        .weights
}

#[test]
fn copied_layers_are_exact_and_the_rest_is_freshly_initialised() {
    let source = source_weights();
    // A learning rate of 0 leaves every parameter at its starting value, exposing the net as
    // the transfer assembled it.
    let still = TrainConfig {
        learning_rate: 0.0,
        ..quick_config(7)
    };
    let assembled = tensors(&transfer(&source, 3, TransferMode::FineTune, &still));
    let source = tensors(&source);
    let fresh = tensors(&initial_weights(&tiny_net(1), 7).unwrap());
    for layer in 1..=8 {
        for name in layer_tensor_names(layer) {
            if layer <= 3 {
                assert_eq!(assembled[&name], source[&name], "{name} should be copied");
            } else {
                assert_eq!(
                    assembled[&name], fresh[&name],
                    "{name} should be fresh from seed 7"
                );
                assert_ne!(
                    assembled[&name], source[&name],
                    "{name} should not be the source's"
                );
            }
        }
    }
}

#[test]
fn frozen_layers_stay_bit_identical_through_training() {
    for options in cpu_backends() {
        let source = source_weights_on(&options);
        for layers_copied in [1, 5, 7] {
            let trained = tensors(&transfer_on(
                &options,
                &source,
                layers_copied,
                TransferMode::Frozen,
                &quick_config(2),
            ));
            let source = tensors(&source);
            for layer in 1..=8 {
                for name in layer_tensor_names(layer) {
                    assert_eq!(
                        trained[&name] == source[&name],
                        layer <= layers_copied,
                        "{:?}, n={layers_copied}: {name}",
                        options.backend
                    );
                }
            }
        }
    }
}

#[test]
fn fine_tuned_layers_change() {
    let source = source_weights();
    let trained = tensors(&transfer(
        &source,
        4,
        TransferMode::FineTune,
        &quick_config(2),
    ));
    let source = tensors(&source);
    for layer in 1..=4 {
        for name in layer_tensor_names(layer) {
            assert_ne!(trained[&name], source[&name], "{name} should have trained");
        }
    }
}

#[test]
fn frozen_layers_still_train_the_layers_above() {
    // Same seed and data, frozen vs not: the layers above must differ from their fresh values.
    let source = source_weights();
    let trained = tensors(&transfer(
        &source,
        5,
        TransferMode::Frozen,
        &quick_config(3),
    ));
    let fresh = tensors(&initial_weights(&tiny_net(1), 3).unwrap());
    for layer in 6..=8 {
        for name in layer_tensor_names(layer) {
            assert_ne!(trained[&name], fresh[&name], "{name} did not train");
        }
    }
}

#[test]
fn a_transfer_keeps_the_source_normalisation() {
    let source = source_weights();
    // The target images are dimmer (180 vs 250), so their own statistics differ.
    let trained = transfer(&source, 2, TransferMode::Frozen, &quick_config(2));
    assert_eq!(
        metadata(&trained)["tpipe.input_mean"],
        metadata(&source)["tpipe.input_mean"]
    );
    assert_eq!(
        metadata(&trained)["tpipe.input_std"],
        metadata(&source)["tpipe.input_std"]
    );
}

#[test]
fn a_transfer_from_random_weights_computes_its_own_normalisation() {
    let random = initial_weights(&tiny_net(1), 9).unwrap();
    let trained = transfer(&random, 2, TransferMode::Frozen, &quick_config(2));
    assert!(metadata(&trained).contains_key("tpipe.input_mean"));
    let random = tensors(&random);
    let trained = tensors(&trained);
    for name in layer_tensor_names(1)
        .into_iter()
        .chain(layer_tensor_names(2))
    {
        assert_eq!(trained[&name], random[&name], "{name} should stay random");
    }
}

#[test]
fn layers_copied_must_be_between_1_and_7() {
    let source = initial_weights(&tiny_net(1), 0).unwrap();
    let data = quadrant_images(16, 1, 6, 180);
    for layers_copied in [0, 8] {
        let transfer = Transfer {
            source_weights: &source,
            layers_copied,
            mode: TransferMode::Frozen,
        };
        let error = train(
            &tiny_net(1),
            &quick_config(0),
            &data,
            Some(transfer),
            &flex(),
        )
        .unwrap_err();
        assert!(matches!(error, MlError::InvalidConfig(_)), "{error}");
        assert!(error.to_string().contains("`layers_copied`"), "{error}");
    }
}

#[test]
fn frozen_layers_stay_bit_identical_with_augmentation() {
    // Augmentation changes every epoch's inputs, so the frozen layers run in every step.
    let source = source_weights();
    let augmented = TrainConfig {
        augment_crop_padding: 1,
        augment_flip: true,
        ..quick_config(2)
    };
    let trained = tensors(&transfer(&source, 4, TransferMode::Frozen, &augmented));
    let source = tensors(&source);
    for layer in 1..=8 {
        for name in layer_tensor_names(layer) {
            assert_eq!(trained[&name] == source[&name], layer <= 4, "{name}");
        }
    }
}

#[test]
fn cached_frozen_features_train_like_recomputed_ones() {
    // On flex the two paths happen to give the same bytes (an image's activations do not depend
    // on the batch it is in); the tolerance is for backends where they need not.
    let source = source_weights();
    for layers_copied in [2, 5, 7] {
        let cached = tensors(&transfer(
            &source,
            layers_copied,
            TransferMode::Frozen,
            &quick_config(2),
        ));
        let recompute_frozen = RunOptions {
            numerics: Numerics {
                recompute_frozen: true,
                ..Numerics::default()
            },
            ..flex()
        };
        let recomputed = tensors(&transfer_on(
            &recompute_frozen,
            &source,
            layers_copied,
            TransferMode::Frozen,
            &quick_config(2),
        ));
        for (name, (_, cached_bytes)) in &cached {
            let (cached_values, recomputed_values) =
                (floats(cached_bytes), floats(&recomputed[name].1));
            let largest = cached_values.iter().fold(0f32, |a, &b| a.max(b.abs()));
            let difference = cached_values
                .iter()
                .zip(&recomputed_values)
                .fold(0f32, |a, (x, y)| a.max((x - y).abs()));
            assert!(
                difference <= 1e-4 * largest.max(1.0),
                "n={layers_copied}: {name} differs by {difference}"
            );
        }
    }
}

#[test]
fn a_frozen_transfer_gives_the_same_bytes_twice() {
    let source = source_weights();
    let config = quick_config(6);
    assert_eq!(
        transfer(&source, 5, TransferMode::Frozen, &config),
        transfer(&source, 5, TransferMode::Frozen, &config)
    );
}

#[test]
fn the_source_may_have_another_number_of_classes_but_nothing_else() {
    // The paper's dissimilar split is 449 vs 551 classes: fc8 is never copied, so a source
    // trained on more (or fewer) classes than the target task is a valid base.
    let wider = tpipe_ml::NetConfig {
        num_classes: 7,
        ..tiny_net(1)
    };
    let source = initial_weights(&wider, 3).unwrap();
    let still = TrainConfig {
        learning_rate: 0.0,
        ..quick_config(7)
    };
    let assembled = tensors(&transfer(&source, 3, TransferMode::Frozen, &still));
    let source_tensors = tensors(&source);
    for layer in 1..=3 {
        for name in layer_tensor_names(layer) {
            assert_eq!(
                assembled[&name], source_tensors[&name],
                "{name} should be copied"
            );
        }
    }
    let fresh = tensors(&initial_weights(&tiny_net(1), 7).unwrap());
    assert_eq!(
        assembled["fc8.bias"], fresh["fc8.bias"],
        "fc8 is the target's own"
    );

    // Any other difference is still refused, before training.
    let other_width = tpipe_ml::NetConfig {
        fc_widths: [12, 16],
        ..wider
    };
    let source = initial_weights(&other_width, 3).unwrap();
    let data = quadrant_images(64, 1, 6, 180);
    let refused = train(
        &tiny_net(1),
        &still,
        &data,
        Some(Transfer {
            source_weights: &source,
            layers_copied: 3,
            mode: TransferMode::Frozen,
        }),
        &flex(),
    );
    assert!(
        matches!(
            refused,
            Err(MlError::BadWeights(_)) | Err(MlError::ShapeMismatch { .. })
        ),
        "{:?}",
        refused.err()
    );
}
