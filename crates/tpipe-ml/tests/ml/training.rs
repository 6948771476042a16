//! Training from scratch: learning, determinism, divergence, cancellation, progress.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use tpipe_ml::{
    evaluate, initial_weights, train, train_with_validation, BackendChoice, MlError, Numerics,
    RunOptions, TrainConfig, TrainProgress, Transfer, TransferMode,
};

use crate::support::{
    cpu_backends, flex, floats, layer_tensor_names, metadata, quadrant_images, quick_config,
    tensors, tiny_net, CLASSES,
};

#[test]
fn a_tiny_net_learns_a_synthetic_task_well_above_chance() {
    let net = tiny_net(1);
    let config = TrainConfig {
        epochs: 8,
        ..quick_config(3)
    };
    let outcome = train(
        &net,
        &config,
        &quadrant_images(256, 1, 1, 250),
        None,
        &flex(),
    )
    .unwrap();
    assert_eq!(outcome.epoch_losses.len(), 8);
    assert!(
        outcome.epoch_losses[7] < outcome.epoch_losses[0] * 0.5,
        "loss should fall: {:?}",
        outcome.epoch_losses
    );
    assert_eq!(outcome.backend, "flex");
    assert!(outcome.images_per_second > 0.0);

    let held_out = quadrant_images(200, 1, 99, 250);
    let evaluation = evaluate(&net, &outcome.weights, &held_out, &flex()).unwrap();
    let chance = 1.0 / CLASSES as f64;
    assert!(
        evaluation.top1 > 0.9,
        "held-out top-1 {} (chance {chance})",
        evaluation.top1
    );
    assert!(
        outcome.train_accuracy > 0.8,
        "train accuracy {}",
        outcome.train_accuracy
    );
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let net = tiny_net(1);
    let data = quadrant_images(64, 1, 2, 250);
    let config = TrainConfig {
        augment_crop_padding: 2,
        augment_flip: true,
        ..quick_config(11)
    };
    for options in cpu_backends() {
        let first = train(&net, &config, &data, None, &options).unwrap();
        let second = train(&net, &config, &data, None, &options).unwrap();
        assert_eq!(first.weights, second.weights, "{}", first.backend);
        assert_eq!(first.epoch_losses, second.epoch_losses, "{}", first.backend);

        let other_seed = train(
            &net,
            &TrainConfig { seed: 12, ..config },
            &data,
            None,
            &options,
        )
        .unwrap();
        assert_ne!(first.weights, other_seed.weights, "{}", first.backend);
    }
}

#[test]
fn trained_weights_carry_the_training_set_normalisation() {
    let net = tiny_net(1);
    let data = quadrant_images(64, 1, 2, 250);
    let outcome = train(&net, &quick_config(0), &data, None, &flex()).unwrap();
    let meta = metadata(&outcome.weights);
    let mean: f64 =
        data.pixels.iter().map(|&p| p as f64 / 255.0).sum::<f64>() / data.pixels.len() as f64;
    let stored: f64 = meta["tpipe.input_mean"]
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .unwrap();
    assert!(
        (stored - mean).abs() < 1e-6,
        "stored {stored}, actual {mean}"
    );
}

#[test]
fn an_absurd_learning_rate_fails_with_a_non_finite_loss() {
    let net = tiny_net(1);
    let config = TrainConfig {
        learning_rate: 1e9,
        ..quick_config(0)
    };
    let error = train(
        &net,
        &config,
        &quadrant_images(64, 1, 2, 250),
        None,
        &flex(),
    )
    .unwrap_err();
    match error {
        MlError::NonFiniteLoss { epoch, batch, loss } => {
            assert!(!loss.is_finite());
            assert!(epoch >= 1 && batch >= 1);
            assert!(
                epoch < 3 || batch <= 4,
                "diverged late: epoch {epoch} batch {batch}"
            );
        }
        other => panic!("expected a non-finite loss, got {other}"),
    }
}

#[test]
fn a_set_cancel_flag_stops_training_between_batches() {
    let cancel = AtomicBool::new(false);
    let batches_seen = AtomicUsize::new(0);
    let progress = |_: TrainProgress| {
        if batches_seen.fetch_add(1, Ordering::SeqCst) == 1 {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let options = RunOptions {
        cancel: Some(&cancel),
        progress: Some(&progress),
        ..flex()
    };
    let error = train(
        &tiny_net(1),
        &quick_config(0),
        &quadrant_images(64, 1, 2, 250),
        None,
        &options,
    )
    .unwrap_err();
    assert!(matches!(error, MlError::Cancelled), "{error}");
    assert_eq!(batches_seen.load(Ordering::SeqCst), 2);
}

#[test]
fn progress_is_reported_after_every_batch() {
    let reports = Mutex::new(Vec::new());
    let progress = |report: TrainProgress| reports.lock().unwrap().push(report);
    let options = RunOptions {
        progress: Some(&progress),
        ..flex()
    };
    // 40 images in batches of 16: 16, 16, 8.
    let config = TrainConfig {
        epochs: 2,
        ..quick_config(0)
    };
    train(
        &tiny_net(1),
        &config,
        &quadrant_images(40, 1, 2, 250),
        None,
        &options,
    )
    .unwrap();
    let reports = reports.into_inner().unwrap();
    let positions: Vec<(usize, usize, usize, usize)> = reports
        .iter()
        .map(|r| (r.epoch, r.epochs, r.batch, r.batches))
        .collect();
    assert_eq!(
        positions,
        vec![
            (1, 2, 1, 3),
            (1, 2, 2, 3),
            (1, 2, 3, 3),
            (2, 2, 1, 3),
            (2, 2, 2, 3),
            (2, 2, 3, 3)
        ]
    );
    assert!(reports.iter().all(|r| r.loss.is_finite() && r.loss > 0.0));
}

#[test]
fn invalid_settings_are_reported_before_training() {
    let net = tiny_net(1);
    let data = quadrant_images(16, 1, 2, 250);
    let zero_batch = TrainConfig {
        batch_size: 0,
        ..quick_config(0)
    };
    let error = train(&net, &zero_batch, &data, None, &flex()).unwrap_err();
    assert!(matches!(error, MlError::InvalidConfig(_)), "{error}");

    let mut collapsing = tiny_net(1);
    collapsing.conv[3].max_pool = true;
    collapsing.conv[4].max_pool = true;
    let error = train(&collapsing, &quick_config(0), &data, None, &flex()).unwrap_err();
    assert!(error.to_string().contains("`conv5` shrinks"), "{error}");

    let colour = quadrant_images(16, 3, 2, 250);
    let error = train(&net, &quick_config(0), &colour, None, &flex()).unwrap_err();
    assert!(matches!(error, MlError::InvalidData(_)), "{error}");
}

#[test]
fn a_step_schedule_scales_the_learning_rate_per_epoch() {
    let net = tiny_net(1);
    let data = quadrant_images(48, 1, 2, 250);
    let one_epoch = TrainConfig {
        epochs: 1,
        ..quick_config(4)
    };
    // With γ = 0 every epoch after the first has learning rate 0, which leaves the weights
    // exactly where the first epoch put them.
    let stopped_after_one = TrainConfig {
        epochs: 3,
        lr_step_epochs: 1,
        lr_gamma: 0.0,
        ..one_epoch.clone()
    };
    let first = train(&net, &one_epoch, &data, None, &flex()).unwrap();
    let stopped = train(&net, &stopped_after_one, &data, None, &flex()).unwrap();
    assert_eq!(first.weights, stopped.weights);
    assert_eq!(stopped.epoch_losses.len(), 3);

    let halved = TrainConfig {
        lr_step_epochs: 2,
        lr_gamma: 0.5,
        ..stopped_after_one
    };
    assert_ne!(
        train(&net, &halved, &data, None, &flex()).unwrap().weights,
        first.weights
    );
}

#[test]
fn a_bias_multiplier_of_zero_freezes_the_biases_only() {
    let net = tiny_net(1);
    let config = TrainConfig {
        bias_lr_multiplier: 0.0,
        ..quick_config(4)
    };
    let outcome = train(
        &net,
        &config,
        &quadrant_images(48, 1, 2, 250),
        None,
        &flex(),
    )
    .unwrap();
    let trained = tensors(&outcome.weights);
    for layer in 1..=8 {
        let [weight, bias] = layer_tensor_names(layer);
        // Modern initialisation starts every bias at 0.
        assert!(
            floats(&trained[&bias].1).iter().all(|&value| value == 0.0),
            "{bias} moved"
        );
        let initial = tensors(&tpipe_ml::initial_weights(&net, 4).unwrap());
        assert_ne!(trained[&weight], initial[&weight], "{weight} did not train");
    }
}

#[test]
fn weights_do_not_depend_on_the_number_of_threads() {
    // Big enough for flex, gemm and the native kernels to split their work across threads.
    let net = tpipe_ml::NetConfig::default_for(1, 12, 12, CLASSES);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 128,
        learning_rate: 0.01,
        ..quick_config(0)
    };
    let data = quadrant_images(256, 1, 1, 250);
    // Native and flex (the threaded CPU paths), not LibTorch: its sums follow its own pool.
    for options in [
        flex(),
        RunOptions {
            backend: tpipe_ml::BackendChoice::Native,
            ..flex()
        },
    ] {
        let train_with_threads = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| train(&net, &config, &data, None, &options).unwrap().weights)
        };
        let single = train_with_threads(1);
        assert_eq!(single, train_with_threads(2), "{:?}", options.backend);
        assert_eq!(single, train_with_threads(3), "{:?}", options.backend);
    }
}

#[test]
fn conv1_as_a_matmul_trains_like_the_convolution() {
    // Strided and unpadded as well as the usual 3×3 with padding 1, on colour images.
    let mut strided = tiny_net(3);
    strided.conv[0].kernel = 4;
    strided.conv[0].stride = 2;
    strided.conv[0].padding = 0;
    strided.conv[0].max_pool = false;
    for net in [tiny_net(3), strided] {
        let data = quadrant_images(48, 3, 2, 250);
        let config = TrainConfig {
            augment_flip: true,
            ..quick_config(8)
        };
        let as_matmul = tensors(&train(&net, &config, &data, None, &flex()).unwrap().weights);
        let conv1_as_conv = RunOptions {
            numerics: Numerics {
                conv1_as_conv: true,
                ..Numerics::default()
            },
            ..flex()
        };
        let as_conv = tensors(
            &train(&net, &config, &data, None, &conv1_as_conv)
                .unwrap()
                .weights,
        );
        // Equal bytes would mean the option did nothing and the comparison proves nothing.
        assert_ne!(
            as_matmul, as_conv,
            "the two conv1 paths gave identical weights"
        );
        for (name, (_, bytes)) in &as_matmul {
            let (a, b) = (floats(bytes), floats(&as_conv[name].1));
            let largest = a.iter().fold(0f32, |m, &v| m.max(v.abs()));
            let difference = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                difference <= 1e-4 * largest.max(1.0),
                "{name} differs by {difference} (largest {largest})"
            );
        }
    }
}

/// Scoring validation images after every epoch is a forward pass only: the weights and losses
/// are the bytes of a training without it, there is one accuracy per epoch, and the last one is
/// what `evaluate` gives for the trained net. Checked from scratch and for a frozen transfer
/// whose steps start from cached features (the scoring pass must still run every layer).
#[test]
fn validation_accuracy_per_epoch_leaves_the_training_unchanged() {
    let net = tiny_net(1);
    let data = quadrant_images(64, 1, 3, 250);
    let validation = quadrant_images(40, 1, 11, 250);
    let source = initial_weights(&net, 8).unwrap();
    let frozen = Transfer {
        source_weights: &source,
        layers_copied: 3,
        mode: TransferMode::Frozen,
    };
    let native = RunOptions {
        backend: BackendChoice::Native,
        ..RunOptions::default()
    };
    for options in cpu_backends().iter().chain([&native]) {
        for transfer in [None, Some(frozen)] {
            let config = quick_config(4);
            let plain = train(&net, &config, &data, transfer, options).unwrap();
            let scored =
                train_with_validation(&net, &config, &data, Some(&validation), transfer, options)
                    .unwrap();
            let case = format!("{:?}, transfer {}", options.backend, transfer.is_some());
            assert!(plain.weights == scored.weights, "{case}: weights differ");
            assert_eq!(plain.epoch_losses, scored.epoch_losses, "{case}");
            assert!(plain.epoch_validation_accuracies.is_empty(), "{case}");
            assert_eq!(
                scored.epoch_validation_accuracies.len(),
                config.epochs,
                "{case}"
            );
            let last = evaluate(&net, &scored.weights, &validation, options).unwrap();
            assert_eq!(
                scored.epoch_validation_accuracies.last(),
                Some(&last.top1),
                "{case}: {:?}",
                scored.epoch_validation_accuracies
            );
        }
    }
}

#[test]
fn a_validation_set_of_another_shape_is_refused_before_training() {
    let net = tiny_net(1);
    let data = quadrant_images(32, 1, 3, 250);
    let colour = quadrant_images(8, 3, 3, 250);
    let error = train_with_validation(&net, &quick_config(1), &data, Some(&colour), None, &flex())
        .unwrap_err();
    assert!(
        matches!(&error, MlError::InvalidData(problem) if problem.starts_with("the validation images")),
        "{error:?}"
    );
}
