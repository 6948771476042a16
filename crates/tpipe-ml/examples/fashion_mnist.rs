//! Trains the default net on Fashion-MNIST and evaluates it: a manual check that the net learns
//! a real task, and a throughput figure on real data.
//!
//! ```text
//! mkdir -p /tmp/fashion && cd /tmp/fashion &&
//!     for f in /usr/share/datasets/fashion-mnist/*.gz; do gunzip -c "$f" > "$(basename "$f" .gz)"; done
//! CARGO_TARGET_DIR=/var/cache/tpipe-ci/target cargo run --release -p tpipe-ml \
//!     --example fashion_mnist -- /tmp/fashion [epochs] [train-images]
//! ```

use std::path::Path;

use tpipe_ml::{evaluate, train, BackendChoice, ImageSet, NetConfig, RunOptions, TrainConfig};

/// Reads an uncompressed IDX image file and its label file, keeping the first `limit` images.
fn read_idx(images: &Path, labels: &Path, limit: usize) -> ImageSet {
    let images = std::fs::read(images).expect("readable image file");
    let labels = std::fs::read(labels).expect("readable label file");
    let word = |bytes: &[u8], index: usize| {
        u32::from_be_bytes(bytes[4 * index..4 * index + 4].try_into().unwrap()) as usize
    };
    assert_eq!(word(&images, 0), 0x803, "not an IDX image file");
    assert_eq!(word(&labels, 0), 0x801, "not an IDX label file");
    let count = word(&images, 1).min(limit);
    let (height, width) = (word(&images, 2), word(&images, 3));
    ImageSet {
        pixels: images[16..16 + count * height * width].to_vec(),
        labels: labels[8..8 + count]
            .iter()
            .map(|&label| label as u32)
            .collect(),
        count,
        channels: 1,
        height,
        width,
        num_classes: 10,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let directory = args
        .next()
        .expect("usage: fashion_mnist DIR [epochs] [train-images]");
    let epochs = args
        .next()
        .map_or(2, |value| value.parse().expect("epochs"));
    let limit = args
        .next()
        .map_or(usize::MAX, |value| value.parse().expect("train-images"));
    let directory = Path::new(&directory);
    let train_set = read_idx(
        &directory.join("train-images-idx3-ubyte"),
        &directory.join("train-labels-idx1-ubyte"),
        limit,
    );
    let test_set = read_idx(
        &directory.join("t10k-images-idx3-ubyte"),
        &directory.join("t10k-labels-idx1-ubyte"),
        usize::MAX,
    );
    let net = NetConfig::default_for(1, 28, 28, 10);
    let config = TrainConfig {
        epochs,
        ..TrainConfig::default()
    };
    let progress = |report: tpipe_ml::TrainProgress| {
        if report.batch.is_multiple_of(100) || report.batch == report.batches {
            eprintln!(
                "epoch {}/{} batch {}/{} loss {:.4}",
                report.epoch, report.epochs, report.batch, report.batches, report.loss
            );
        }
    };
    let options = RunOptions {
        backend: BackendChoice::Cpu,
        progress: Some(&progress),
        ..RunOptions::default()
    };
    let outcome = train(&net, &config, &train_set, None, &options).expect("training");
    let evaluation = evaluate(&net, &outcome.weights, &test_set, &options).expect("evaluation");
    println!(
        "{} train images, {epochs} epochs on {}: {:.0} img/s, epoch losses {:?}, \
         train accuracy {:.4}, test top-1 {:.4}, top-5 {:.4}",
        train_set.count,
        outcome.backend,
        outcome.images_per_second,
        outcome.epoch_losses,
        outcome.train_accuracy,
        evaluation.top1,
        evaluation.top5
    );
}
