//! A seeded generator of small cases over everything a pipeline can say: input size and
//! channels, kernel sizes, strides, padding and pools (odd map sizes included), fc widths,
//! classes, dropout, init scheme, batch sizes that leave a remainder (down to 1), learning rate,
//! momentum, weight decay, the bias multiplier, the step schedule, crop and flip augmentation,
//! and transfers: n = 1..7 frozen or fine-tuned, from a random-weight net or one with another
//! number of classes, with the frozen-feature cache at every cut point it can have.
//!
//! Nets are tiny (maps of at most 16×16, a handful of channels) so hundreds of cases train in
//! seconds; the same seed gives the same cases.

use tpipe_ml::{
    initial_weights, ConvLayerConfig, ImageSet, InitScheme, NetConfig, TrainConfig, TransferMode,
};

use crate::{Case, Source};

/// SplitMix64: small, seedable, and spelled out so the cases never change with a dependency.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A whole number in `range` (inclusive).
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() % (high - low + 1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.between(0, choices.len() - 1)]
    }

    fn chance(&mut self, probability: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < probability
    }
}

/// `count` cases drawn from `seed`.
pub fn cases(seed: u64, count: usize) -> Vec<Case> {
    (0..count)
        .map(|index| {
            let mut draw = Draw(seed ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
            case(&mut draw, index)
        })
        .collect()
}

/// Five conv layers that fit `height × width`, each drawn until it leaves at least one pixel.
fn conv_layers(draw: &mut Draw, mut height: usize, mut width: usize) -> [ConvLayerConfig; 5] {
    std::array::from_fn(|_| loop {
        let kernel = draw.pick(&[1, 2, 3, 3, 3, 5]);
        let padding = if draw.chance(0.2) {
            0
        } else {
            draw.between(0, kernel / 2)
        };
        let stride = if draw.chance(0.25) { 2 } else { 1 };
        let out = |size: usize| {
            (size + 2 * padding)
                .checked_sub(kernel)
                .map(|s| s / stride + 1)
        };
        let (Some(out_height), Some(out_width)) = (out(height), out(width)) else {
            continue;
        };
        let max_pool = out_height >= 2 && out_width >= 2 && draw.chance(0.4);
        let (out_height, out_width) = if max_pool {
            (out_height / 2, out_width / 2)
        } else {
            (out_height, out_width)
        };
        (height, width) = (out_height, out_width);
        break ConvLayerConfig {
            out_channels: draw.between(2, 6),
            kernel,
            stride,
            padding,
            max_pool,
        };
    })
}

/// Images whose class sets the brightness of one of four regions, over noise.
fn images(draw: &mut Draw, count: usize, net: &NetConfig) -> ImageSet {
    let (channels, height, width) = (net.channels, net.height, net.width);
    let mut pixels = Vec::with_capacity(count * channels * height * width);
    let mut labels = Vec::with_capacity(count);
    for index in 0..count {
        let label = (index % net.num_classes) as u32;
        for _ in 0..channels {
            for y in 0..height {
                for x in 0..width {
                    let region = (2 * y / height) * 2 + 2 * x / width;
                    let base = if region == label as usize % 4 {
                        160
                    } else {
                        40
                    };
                    pixels.push((base + draw.between(0, 80)) as u8);
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
        height,
        width,
        num_classes: net.num_classes,
    }
}

fn case(draw: &mut Draw, index: usize) -> Case {
    let channels = draw.pick(&[1, 1, 3]);
    let height = draw.between(5, 16);
    let width = if draw.chance(0.7) {
        height
    } else {
        draw.between(5, 16)
    };
    let net = NetConfig {
        conv: conv_layers(draw, height, width),
        fc_widths: [draw.between(3, 12), draw.between(3, 12)],
        dropout: draw.pick(&[0.0, 0.0, 0.5, 0.3]),
        init: if draw.chance(0.25) {
            InitScheme::Paper
        } else {
            InitScheme::Modern
        },
        channels,
        height,
        width,
        num_classes: draw.between(2, 5),
    };
    let batch_size = draw.pick(&[1, 2, 3, 4, 5, 7, 8]);
    // One or two full batches, then often a partial one (down to a single image).
    let remainder = if batch_size > 1 && draw.chance(0.75) {
        draw.between(1, batch_size - 1)
    } else {
        0
    };
    let count = batch_size * draw.between(1, 2) + remainder;
    let batches = count.div_ceil(batch_size);
    let augment_crop_padding = if draw.chance(0.3) {
        draw.between(1, 2)
    } else {
        0
    };
    let config = TrainConfig {
        epochs: 3,
        batch_size,
        learning_rate: draw.pick(&[0.01, 0.03, 0.1]),
        momentum: draw.pick(&[0.0, 0.9, 0.9]),
        weight_decay: draw.pick(&[0.0, 5e-4, 0.05]),
        lr_step_epochs: draw.pick(&[0, 0, 1]),
        lr_gamma: 0.5,
        seed: draw.next() % 1000,
        augment_crop_padding,
        augment_flip: draw.chance(0.3),
        bias_lr_multiplier: draw.pick(&[1.0, 2.0]),
    };
    let source = draw.chance(0.6).then(|| {
        let source_net = NetConfig {
            num_classes: if draw.chance(0.3) {
                draw.between(2, 6)
            } else {
                net.num_classes
            },
            ..net.clone()
        };
        Source {
            weights: initial_weights(&source_net, draw.next() % 1000).expect("a valid net"),
            layers_copied: draw.between(1, 7),
            mode: if draw.chance(0.6) {
                TransferMode::Frozen
            } else {
                TransferMode::FineTune
            },
        }
    });
    let data = images(draw, count, &net);
    let name = format!(
        "case {index}: {}, dropout {} {:?} init, batch {batch_size} of {count}, lr {} \
         momentum {} decay {} bias×{} schedule {} crop {} flip {}{}",
        net.architecture_tag(),
        net.dropout,
        net.init,
        config.learning_rate,
        config.momentum,
        config.weight_decay,
        config.bias_lr_multiplier,
        config.lr_step_epochs,
        config.augment_crop_padding,
        config.augment_flip,
        match &source {
            Some(source) => format!(", transfer n={} {:?}", source.layers_copied, source.mode),
            None => String::new(),
        },
    );
    Case {
        name,
        net,
        config,
        data,
        source,
        // One epoch and the first step of the next (its schedule and its fresh shuffle).
        steps: batches + 1,
    }
}
