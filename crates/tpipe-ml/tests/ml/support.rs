//! Tiny nets and synthetic image sets shared by the tests.

use std::collections::BTreeMap;

use tpipe_ml::{ConvLayerConfig, ImageSet, InitScheme, NetConfig, RunOptions, TrainConfig};

pub const SIDE: usize = 12;
pub const CLASSES: usize = 4;

/// A net small enough to train in well under a second: 12×12 inputs, 3×3 convs of 4–8 filters,
/// pools after conv1 and conv2 (12 → 6 → 3), fc6/fc7 of width 16.
pub fn tiny_net(channels: usize) -> NetConfig {
    let layer = |out_channels, max_pool| ConvLayerConfig {
        out_channels,
        kernel: 3,
        stride: 1,
        padding: 1,
        max_pool,
    };
    NetConfig {
        conv: [
            layer(4, true),
            layer(8, true),
            layer(8, false),
            layer(8, false),
            layer(8, false),
        ],
        fc_widths: [16, 16],
        dropout: 0.1,
        init: InitScheme::Modern,
        channels,
        height: SIDE,
        width: SIDE,
        num_classes: CLASSES,
    }
}

pub fn quick_config(seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 16,
        learning_rate: 0.05,
        seed,
        ..TrainConfig::default()
    }
}

pub fn flex() -> RunOptions<'static> {
    RunOptions {
        backend: tpipe_ml::BackendChoice::Flex,
        ..RunOptions::default()
    }
}

/// Every CPU backend in this build: flex, and LibTorch with the `torch` feature. Tests of
/// properties every CPU backend must have (determinism, frozen layers) loop over these.
pub fn cpu_backends() -> Vec<RunOptions<'static>> {
    tpipe_ml::cpu_backends()
        .into_iter()
        .map(|backend| RunOptions {
            backend,
            ..RunOptions::default()
        })
        .collect()
}

/// Trains the tiny net on `options`' backend and on flex from the same seed, then scores the
/// first net's weights on both: losses must agree to rounding and at most two predictions may
/// differ (only near-ties can flip). `backend_name` is checked against the run's report.
#[cfg(any(feature = "wgpu", feature = "torch"))]
pub fn assert_trains_and_scores_like_flex(options: &RunOptions<'_>, backend_name: &str) {
    use tpipe_ml::{evaluate, train};

    let net = tiny_net(1);
    let data = quadrant_images(64, 1, 1, 250);
    let config = TrainConfig {
        epochs: 2,
        ..quick_config(5)
    };
    let other = train(&net, &config, &data, None, options).unwrap();
    assert!(other.backend.starts_with(backend_name), "{}", other.backend);
    let on_flex = train(&net, &config, &data, None, &flex()).unwrap();
    // Same initial weights, batches and masks: only rounding differs.
    for (other_loss, flex_loss) in other.epoch_losses.iter().zip(&on_flex.epoch_losses) {
        assert!(
            (other_loss - flex_loss).abs() <= 1e-3 * flex_loss.abs(),
            "{backend_name} losses {:?}, flex losses {:?}",
            other.epoch_losses,
            on_flex.epoch_losses
        );
    }

    let held_out = quadrant_images(100, 1, 9, 250);
    let scored_there = evaluate(&net, &other.weights, &held_out, options).unwrap();
    let scored_on_flex = evaluate(&net, &other.weights, &held_out, &flex()).unwrap();
    let differing: u64 = scored_there
        .confusion
        .iter()
        .flatten()
        .zip(scored_on_flex.confusion.iter().flatten())
        .map(|(a, b)| a.abs_diff(*b))
        .sum();
    assert!(
        differing <= 2,
        "confusion on {backend_name} {:?}, on flex {:?}",
        scored_there.confusion,
        scored_on_flex.confusion
    );
    assert!((scored_there.top1 - scored_on_flex.top1).abs() <= 0.01);
}

/// Images whose class decides which quadrant holds a bright 4×4 square, over dim noise.
/// `brightness` scales the square so that two sets can differ in their statistics.
pub fn quadrant_images(count: usize, channels: usize, seed: u64, brightness: u8) -> ImageSet {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    let plane = SIDE * SIDE;
    let mut pixels = Vec::with_capacity(count * channels * plane);
    let mut labels = Vec::with_capacity(count);
    for index in 0..count {
        let label = (index % CLASSES) as u32;
        let (top, left) = (
            (label as usize / 2) * 6 + 1 + next() as usize % 2,
            (label as usize % 2) * 6 + 1 + next() as usize % 2,
        );
        for _ in 0..channels {
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let inside = (top..top + 4).contains(&y) && (left..left + 4).contains(&x);
                    let noise = (next() % 60) as u8;
                    pixels.push(if inside {
                        brightness.saturating_sub(noise / 2)
                    } else {
                        noise
                    });
                }
            }
        }
        labels.push(label);
    }
    ImageSet {
        pixels,
        labels,
        count,
        channels,
        height: SIDE,
        width: SIDE,
        num_classes: CLASSES,
    }
}

/// Every tensor of a safetensors file as raw bytes, by name.
pub fn tensors(bytes: &[u8]) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let file = safetensors::SafeTensors::deserialize(bytes).expect("valid safetensors");
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

/// F32 tensors (as from [`tensors`]) written by the safetensors crate itself, with `metadata`
/// (which it lets through unchecked): for files our own writer would never produce.
pub fn serialize_tensors(
    all: &BTreeMap<String, (Vec<usize>, Vec<u8>)>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = all
        .iter()
        .map(|(name, (shape, data))| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .expect("F32 data of its shape");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, metadata).expect("serialisable tensors")
}

/// The `__metadata__` of a safetensors file.
pub fn metadata(bytes: &[u8]) -> BTreeMap<String, String> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).expect("valid safetensors");
    header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Little-endian f32 values of raw tensor bytes.
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect()
}

/// The safetensors names of layer `number` (1-based).
pub fn layer_tensor_names(number: usize) -> [String; 2] {
    let name = tpipe_ml::LAYER_NAMES[number - 1];
    [format!("{name}.weight"), format!("{name}.bias")]
}
