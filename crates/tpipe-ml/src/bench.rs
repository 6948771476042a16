//! Training-step throughput of the reference net, for `benches/throughput.rs`.

use std::time::Instant;

use crate::backend::{self, BackendChoice};
use crate::config::{NetConfig, TrainConfig};
use crate::data::{Augmentation, ImageSet, Normalization};
use crate::error::MlError;
use crate::options::Numerics;
use crate::rng::{Purpose, Rng};
use crate::train::new_trainer;
use crate::trainer::{
    build_feature_cache, feature_cache_end, BatchBuffers, BatchSource, PhaseTimes,
};
use crate::weights::init_weights;

/// What `bench_throughput` measures.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Backends to measure, in order.
    pub backends: Vec<BackendChoice>,
    /// Numbers of frozen layers to measure; 0 is a full training step.
    pub frozen_layers: Vec<usize>,
    /// Images per step.
    pub batch_size: usize,
    /// Untimed steps first (allocation, shader compilation, autotuning).
    pub warmup_steps: usize,
    /// Timed steps.
    pub timed_steps: usize,
    /// The numerical path of the steps. With `recompute_frozen` there are no cached rows.
    pub numerics: Numerics,
    /// The net: the reference net (`NetConfig::default_for(1, 28, 28, 10)`) by default.
    pub net: NetConfig,
}

/// The net every training of `pipelines/paper.yaml` builds: conv 16-32-48-48-32, fc 128-128,
/// 28×28×1 inputs, 5 classes (it trains with batch 64).
pub fn paper_grid_net() -> NetConfig {
    let mut net = NetConfig::default_for(1, 28, 28, 5);
    for (layer, channels) in net.conv.iter_mut().zip([16, 32, 48, 48, 32]) {
        layer.out_channels = channels;
    }
    net.fc_widths = [128, 128];
    net
}

impl Default for BenchOptions {
    /// flex (and torch and wgpu when compiled in); full and n = 1, 3, 5, 7 frozen; batch 128;
    /// 3 warm-up and 20 timed steps; the numerics `train` uses by default.
    fn default() -> Self {
        let mut backends = cpu_backends();
        if backend::wgpu_compiled() {
            backends.push(BackendChoice::Wgpu);
        }
        BenchOptions {
            backends,
            frozen_layers: vec![0, 1, 3, 5, 7],
            batch_size: 128,
            warmup_steps: 3,
            timed_steps: 20,
            numerics: Numerics::default(),
            net: NetConfig::default_for(1, 28, 28, 10),
        }
    }
}

/// The CPU paths in this build: native, flex, and torch with the `torch` feature.
pub fn cpu_backends() -> Vec<BackendChoice> {
    let mut backends = vec![BackendChoice::Native, BackendChoice::Flex];
    if backend::torch_compiled() {
        backends.push(BackendChoice::Torch);
    }
    backends
}

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct ThroughputFigure {
    /// `flex`, `torch` or `wgpu (<adapter>)`.
    pub backend: String,
    /// Frozen layers (0 = full training step).
    pub frozen_layers: usize,
    /// Whether the steps started from cached outputs of the frozen layers (as `train` does for
    /// frozen transfers without augmentation) instead of running them every step.
    pub cached_features: bool,
    /// Training images per second over the timed steps.
    pub images_per_second: f64,
    /// Where the timed steps spent their time (see `PhaseTimes` for wgpu's caveat).
    pub phases: PhaseTimes,
}

/// Measures training steps of `options.net` (SGD with momentum and weight decay, dropout as the
/// net says, no augmentation) on random images, through the
/// same step as `train`: for each frozen count, once running the frozen layers every step and
/// (for n > 0) once starting from their cached outputs. The cache pass itself is not timed.
pub fn bench_throughput(options: &BenchOptions) -> Result<Vec<ThroughputFigure>, MlError> {
    let net = &options.net;
    let classes = net.num_classes;
    let config = TrainConfig::default();
    let geometry = net.geometry()?;
    let images = options.batch_size * 4;
    let mut rng = Rng::stream(1, Purpose::Augment, 0);
    let data = ImageSet {
        pixels: (0..images * 28 * 28)
            .map(|_| rng.below(256) as u8)
            .collect(),
        labels: (0..images).map(|i| (i % classes) as u32).collect(),
        count: images,
        channels: 1,
        height: 28,
        width: 28,
        num_classes: classes,
    };
    let tables = Normalization::from_images(&data).lookup_tables();
    let weights = init_weights(net, &geometry, 0);
    let no_augmentation = Augmentation {
        crop_padding: 0,
        flip: false,
    };

    let mut figures = Vec::new();
    for &choice in &options.backends {
        let backend = backend::resolve(choice)?;
        for &frozen_layers in &options.frozen_layers {
            for cached_features in [false, true] {
                if cached_features && (frozen_layers == 0 || options.numerics.recompute_frozen) {
                    continue;
                }
                let mut trainer = new_trainer(
                    &backend,
                    net,
                    &config,
                    weights.layers.clone(),
                    frozen_layers,
                    options.numerics,
                )?;
                let cache_end =
                    feature_cache_end(frozen_layers, net.dropout, no_augmentation, false)
                        .filter(|_| cached_features);
                let cache = match cache_end {
                    Some(end) => {
                        build_feature_cache(trainer.as_mut(), &geometry, &data, &tables, end, None)?
                    }
                    None => None,
                };
                let mut buffers = BatchBuffers::default();
                let mut started = Instant::now();
                for step in 0..options.warmup_steps + options.timed_steps {
                    if step == options.warmup_steps {
                        *trainer.times() = PhaseTimes::default();
                        started = Instant::now();
                    }
                    let first = (step * options.batch_size) % images;
                    let indices: Vec<usize> = (first..first + options.batch_size)
                        .map(|i| i % images)
                        .collect();
                    let clock = Instant::now();
                    let source = match &cache {
                        Some(cache) => BatchSource::Cached(cache),
                        None => BatchSource::Images {
                            tables: &tables,
                            augmentation: no_augmentation,
                            rng: &mut rng,
                        },
                    };
                    let batch = buffers.prepare(
                        &data,
                        &indices,
                        source,
                        &geometry,
                        net.dropout,
                        Rng::stream(0, Purpose::Dropout, step as u64),
                    );
                    trainer.times().prepare += clock.elapsed();
                    trainer.step(&batch, config.learning_rate)?;
                }
                let seconds = started.elapsed().as_secs_f64();
                figures.push(ThroughputFigure {
                    backend: backend.name.clone(),
                    frozen_layers,
                    cached_features,
                    images_per_second: (options.timed_steps * options.batch_size) as f64 / seconds,
                    phases: *trainer.times(),
                });
            }
        }
    }
    Ok(figures)
}
