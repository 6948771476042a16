//! The native CPU path against burn's flex backend: the same function computed in another
//! order, so the same trajectory up to float rounding.

use tpipe_ml::{
    evaluate, train, BackendChoice, ConvLayerConfig, Numerics, RunOptions, TrainConfig, Transfer,
    TransferMode,
};

use crate::support::{flex, floats, quadrant_images, quick_config, tensors, tiny_net, CLASSES};

fn native() -> RunOptions<'static> {
    RunOptions {
        backend: BackendChoice::Native,
        ..RunOptions::default()
    }
}

/// Every tensor of `a` within `tolerance × max(1, largest |value|)` of the same tensor of `b`,
/// and at least one value different (equal bytes would mean one path ran twice).
fn assert_close(a: &[u8], b: &[u8], tolerance: f32, context: &str) {
    assert_ne!(
        tensors(a),
        tensors(b),
        "{context}: both paths gave the same bytes"
    );
    assert_within(a, b, tolerance, context);
}

/// Every tensor of `a` within `tolerance × max(1, largest |value|)` of the same tensor of `b`.
fn assert_within(a: &[u8], b: &[u8], tolerance: f32, context: &str) {
    let (a, b) = (tensors(a), tensors(b));
    for (name, (shape, bytes)) in &a {
        assert_eq!(shape, &b[name].0, "{context}: {name}");
        let (x, y) = (floats(bytes), floats(&b[name].1));
        let largest = x.iter().fold(1f32, |m, &v| m.max(v.abs()));
        let difference = x
            .iter()
            .zip(&y)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(
            difference <= tolerance * largest,
            "{context}: {name} differs by {difference} (largest value {largest})"
        );
    }
}

/// Geometries that exercise every branch of the unfold, fold and pool kernels: the tiny net,
/// a strided unpadded 4×4 conv1 without pool, a 5×5 conv2 with padding 2 and stride 2, colour
/// input, pools on odd map sizes and an even kernel without padding.
fn geometries() -> Vec<(&'static str, tpipe_ml::NetConfig)> {
    let mut strided = tiny_net(3);
    strided.conv[0] = ConvLayerConfig {
        out_channels: 5,
        kernel: 4,
        stride: 2,
        padding: 0,
        max_pool: false,
    };
    strided.conv[1] = ConvLayerConfig {
        out_channels: 6,
        kernel: 5,
        stride: 2,
        padding: 2,
        max_pool: false,
    };
    let mut odd = tiny_net(1);
    odd.height = 15;
    odd.width = 14;
    // 15×14 → 7×7 → 3×3 (pools on odd maps) → 2×2 (a 2×2 kernel without padding) → 1×1.
    odd.conv[3].kernel = 2;
    odd.conv[3].padding = 0;
    odd.conv[4].max_pool = true;
    odd.dropout = 0.0;
    vec![("tiny", tiny_net(1)), ("strided", strided), ("odd", odd)]
}

fn data_for(net: &tpipe_ml::NetConfig, count: usize, seed: u64) -> tpipe_ml::ImageSet {
    let mut data = quadrant_images(count, net.channels, seed, 250);
    if (net.height, net.width) != (data.height, data.width) {
        // Pad the 12×12 images with a noise-free border to the net's size.
        let (height, width) = (net.height, net.width);
        let mut pixels = Vec::with_capacity(count * net.channels * height * width);
        for plane in data.pixels.chunks_exact(data.height * data.width) {
            for y in 0..height {
                for x in 0..width {
                    let inside = y < data.height && x < data.width;
                    pixels.push(if inside { plane[y * data.width + x] } else { 0 });
                }
            }
        }
        data.pixels = pixels;
        (data.height, data.width) = (height, width);
    }
    data
}

#[test]
fn the_native_path_trains_like_flex() {
    for (name, net) in geometries() {
        let data = data_for(&net, 64, 1);
        let config = TrainConfig {
            epochs: 2,
            ..quick_config(5)
        };
        let on_native = train(&net, &config, &data, None, &native()).unwrap();
        assert_eq!(on_native.backend, "native");
        let on_flex = train(&net, &config, &data, None, &flex()).unwrap();
        assert_close(&on_native.weights, &on_flex.weights, 1e-5, name);
        for (native_loss, flex_loss) in on_native.epoch_losses.iter().zip(&on_flex.epoch_losses) {
            assert!(
                (native_loss - flex_loss).abs() <= 1e-4 * flex_loss,
                "{name}"
            );
        }
    }
}

/// The tiny net trained (seed 1) on `options`' path: a source for transfers.
fn source_weights(options: &RunOptions<'_>) -> Vec<u8> {
    let images = quadrant_images(64, 1, 5, 250);
    train(&tiny_net(1), &quick_config(1), &images, None, options)
        .unwrap()
        .weights
}

#[test]
fn frozen_and_fine_tuned_transfers_train_like_flex() {
    let net = tiny_net(1);
    let source = source_weights(&flex());
    let data = quadrant_images(64, 1, 6, 180);
    // n = 2 and 5 start from cached conv maps and fc6 inputs, n = 7 from fc6's cached outputs
    // (dropout on: the cache stops at fc6), n = 3 fine-tuned runs every layer.
    for (layers_copied, mode) in [
        (2, TransferMode::Frozen),
        (5, TransferMode::Frozen),
        (7, TransferMode::Frozen),
        (3, TransferMode::FineTune),
    ] {
        let transfer = Transfer {
            source_weights: &source,
            layers_copied,
            mode,
        };
        let run = |options: &RunOptions<'_>| {
            train(&net, &quick_config(2), &data, Some(transfer), options)
                .unwrap()
                .weights
        };
        let (on_native, on_flex) = (run(&native()), run(&flex()));
        assert_close(
            &on_native,
            &on_flex,
            1e-5,
            &format!("n={layers_copied} {mode:?}"),
        );
        if mode == TransferMode::Frozen {
            let (native_tensors, source_tensors) = (tensors(&on_native), tensors(&source));
            for name in ["conv1.weight", "conv2.bias"] {
                assert_eq!(native_tensors[name], source_tensors[name], "{name}");
            }
        }
    }
}

#[test]
fn native_cached_frozen_features_train_like_recomputed_ones() {
    let net = tiny_net(1);
    let source = source_weights(&native());
    let data = quadrant_images(64, 1, 6, 180);
    let recompute_frozen = RunOptions {
        numerics: Numerics {
            recompute_frozen: true,
            ..Numerics::default()
        },
        ..native()
    };
    for layers_copied in [2, 5, 7] {
        let transfer = Transfer {
            source_weights: &source,
            layers_copied,
            mode: TransferMode::Frozen,
        };
        let run = |options: &RunOptions<'_>| {
            train(&net, &quick_config(2), &data, Some(transfer), options)
                .unwrap()
                .weights
        };
        // The two may give the same bytes (an image's activations need not depend on its
        // batch); they must agree to rounding.
        assert_within(
            &run(&native()),
            &run(&recompute_frozen),
            1e-5,
            &format!("n={layers_copied}"),
        );
    }
}

#[test]
fn native_evaluation_scores_like_flex() {
    let net = tiny_net(1);
    let weights = train(
        &net,
        &quick_config(3),
        &quadrant_images(64, 1, 1, 250),
        None,
        &native(),
    )
    .unwrap()
    .weights;
    // More images than one forward chunk, so a partial last chunk runs too.
    let held_out = quadrant_images(300, 1, 9, 250);
    let on_native = evaluate(&net, &weights, &held_out, &native()).unwrap();
    let on_flex = evaluate(&net, &weights, &held_out, &flex()).unwrap();
    assert_eq!(on_native.backend, "native");
    assert_eq!(on_native.count, 300);
    assert!(on_native.top1 > 1.5 / CLASSES as f64, "{}", on_native.top1);
    let differing: u64 = on_native
        .confusion
        .iter()
        .flatten()
        .zip(on_flex.confusion.iter().flatten())
        .map(|(a, b)| a.abs_diff(*b))
        .sum();
    assert!(
        differing <= 2,
        "{:?} vs {:?}",
        on_native.confusion,
        on_flex.confusion
    );
}

#[test]
fn trainings_side_by_side_give_the_bytes_of_one_alone() {
    // Two runs at once, each on a one-thread pool: the thread plan then gives each a thread of
    // its own (`ThreadPlan`); alone, the same training uses the calling pool.
    let net = tiny_net(1);
    let data = quadrant_images(64, 1, 1, 250);
    let config = quick_config(4);
    let alone = train(&net, &config, &data, None, &native())
        .unwrap()
        .weights;
    let side_by_side: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .build()
                        .unwrap();
                    pool.install(|| {
                        train(&net, &config, &data, None, &native())
                            .unwrap()
                            .weights
                    })
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    assert_eq!(side_by_side[0], alone);
    assert_eq!(side_by_side[1], alone);
}
