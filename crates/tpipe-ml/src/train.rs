//! Training from scratch or from copied layers, with the paper's SGD.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::backend::{self, ResolvedBackend};
use crate::burn_trainer::BurnTrainer;
use crate::config::{NetConfig, TrainConfig, LAYER_COUNT};
use crate::data::{Augmentation, ImageSet, Normalization};
use crate::error::MlError;
use crate::native::NativeTrainer;
use crate::options::{Numerics, RunOptions, TrainProgress};
use crate::rng::{Purpose, Rng};
use crate::trainer::{
    build_feature_cache, feature_cache_end, for_each_chunk, rank_of, Batch, BatchBuffers,
    BatchSource, Trainer,
};
use crate::weights::{init_weights, HostWeights};

/// What happens to the copied layers of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TransferMode {
    /// The paper's AnB/BnB: copied layers keep their values exactly; they get no gradient, no
    /// momentum and no weight decay, and no backward pass runs through or below them.
    Frozen,
    /// The paper's AnB+/BnB+: copied layers train at the full learning rate from the start.
    FineTune,
}

/// Start a training from another net's lower layers.
///
/// Layers 1..=layers_copied come from `source_weights` (canonical safetensors bytes of a net with
/// the same `NetConfig`, except perhaps its number of classes: fc8 is never copied), layers above are freshly initialised from `TrainConfig::seed` (exactly
/// as `initial_weights` with that seed would draw them). If the source carries an input
/// normalisation (any trained net does), the new net uses it too.
#[derive(Clone, Copy, Debug)]
pub struct Transfer<'a> {
    /// The source net's weights as `train` or `initial_weights` returned them.
    pub source_weights: &'a [u8],
    /// n in the paper, 1..=7; fc8 is always fresh.
    pub layers_copied: usize,
    /// Frozen or fine-tuned copies.
    pub mode: TransferMode,
}

/// The result of a training.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOutcome {
    /// Canonical safetensors bytes of the trained net, with its input normalisation.
    pub weights: Vec<u8>,
    /// Mean training cross-entropy of each epoch (over its images, in training mode).
    pub epoch_losses: Vec<f64>,
    /// Share of training images classified right in each epoch, in training mode, as the
    /// batches went by: with `epoch_losses`, the training curve.
    pub epoch_accuracies: Vec<f64>,
    /// The weights' learning rate in each epoch (the step schedule).
    pub epoch_learning_rates: Vec<f64>,
    /// Top-1 accuracy on the validation images after each epoch (evaluation mode: no dropout,
    /// no augmentation); empty when the training was given none.
    pub epoch_validation_accuracies: Vec<f64>,
    /// Share of training images classified right during the last epoch, in training mode
    /// (dropout and augmentation on), as the batches went by.
    pub train_accuracy: f64,
    /// Training images per second of wall time over the whole loop (data preparation and the
    /// frozen-feature pass included; set-up, validation scoring and the final read-back
    /// excluded).
    pub images_per_second: f64,
    /// The backend that ran: `flex` or `wgpu (<adapter>)`.
    pub backend: String,
}

/// The untrained net for `seed`, as canonical safetensors (for random-weight controls).
///
/// The values are drawn on the host by the crate's own generator, so they are the same whatever
/// backend later uses them. They carry no input normalisation: a net trained on top of them (a
/// transfer) computes its own from its training set. `evaluate` refuses them.
pub fn initial_weights(net: &NetConfig, seed: u64) -> Result<Vec<u8>, MlError> {
    let geometry = net.geometry()?;
    Ok(init_weights(net, &geometry, seed).to_safetensors(net))
}

/// Trains `net` on `data` and returns its weights and metrics.
///
/// Deterministic on the CPU paths for a given seed, data and configuration: the same inputs give
/// the same bytes. Fails with `MlError::NonFiniteLoss` (and no weights) if the loss becomes NaN
/// or infinite.
pub fn train(
    net: &NetConfig,
    config: &TrainConfig,
    data: &ImageSet,
    transfer: Option<Transfer<'_>>,
    options: &RunOptions<'_>,
) -> Result<TrainOutcome, MlError> {
    train_observed(net, config, data, None, transfer, options, &mut NoObserver)
}

/// `train`, scoring the net on `validation` (when given) after every epoch
/// (`TrainOutcome::epoch_validation_accuracies`).
///
/// Scoring is a forward pass only: it draws nothing from the training's random streams and
/// changes no weight or momentum, so the weights are the bytes `train` gives without it.
pub fn train_with_validation(
    net: &NetConfig,
    config: &TrainConfig,
    data: &ImageSet,
    validation: Option<&ImageSet>,
    transfer: Option<Transfer<'_>>,
    options: &RunOptions<'_>,
) -> Result<TrainOutcome, MlError> {
    train_observed(
        net,
        config,
        data,
        validation,
        transfer,
        options,
        &mut NoObserver,
    )
}

/// What an observer of a training sees after each step.
pub(crate) struct StepDone<'a> {
    pub epoch: usize,
    /// The images of the batch, in batch order.
    pub indices: &'a [usize],
    /// The batch as the trainer got it.
    pub batch: &'a Batch<'a>,
    pub learning_rate: f64,
    pub loss: f64,
    /// The input normalisation of the run.
    pub tables: &'a [[f32; 256]],
}

/// Watches (and may steer) a training step by step: traces and conformance tests.
pub(crate) trait StepObserver {
    /// Called before step `step` (global, 0-based); may replace the trainer's state.
    fn before_step(&mut self, _step: usize, _trainer: &mut dyn Trainer) -> Result<(), MlError> {
        Ok(())
    }

    /// Called after each step; returns whether to go on.
    fn after_step(&mut self, done: &StepDone<'_>, trainer: &dyn Trainer) -> Result<bool, MlError>;
}

/// `train`'s observer: watches nothing.
struct NoObserver;

impl StepObserver for NoObserver {
    fn after_step(&mut self, _: &StepDone<'_>, _: &dyn Trainer) -> Result<bool, MlError> {
        Ok(true)
    }
}

/// The trainer of the path `backend` resolved to, starting from `layers`.
pub(crate) fn new_trainer(
    backend: &ResolvedBackend,
    net: &NetConfig,
    config: &TrainConfig,
    layers: Vec<crate::weights::HostLayer>,
    frozen_layers: usize,
    numerics: Numerics,
) -> Result<Box<dyn Trainer>, MlError> {
    Ok(if backend.native {
        Box::new(NativeTrainer::new(net, config, layers, frozen_layers)?)
    } else {
        Box::new(BurnTrainer::new(
            net,
            config,
            &layers,
            frozen_layers,
            backend,
            numerics,
        )?)
    })
}

/// `train`, scoring `validation` after every epoch when given, calling `observer` around every
/// step (and stopping early when it says so).
pub(crate) fn train_observed(
    net: &NetConfig,
    config: &TrainConfig,
    data: &ImageSet,
    validation: Option<&ImageSet>,
    transfer: Option<Transfer<'_>>,
    options: &RunOptions<'_>,
    observer: &mut dyn StepObserver,
) -> Result<TrainOutcome, MlError> {
    let geometry = net.geometry()?;
    if let Some(validation) = validation {
        validation
            .check_for(&geometry, net.num_classes)
            .map_err(|error| match error {
                MlError::InvalidData(problem) => {
                    MlError::InvalidData(format!("the validation images: {problem}"))
                }
                other => other,
            })?;
    }
    let Start {
        weights,
        normalization,
        frozen_layers,
    } = start(net, config, data, transfer)?;
    let backend = backend::resolve(options.backend)?;
    let mut trainer = new_trainer(
        &backend,
        net,
        config,
        weights.layers,
        frozen_layers,
        options.numerics,
    )?;
    let tables = normalization.lookup_tables();
    let augmentation = Augmentation {
        crop_padding: config.augment_crop_padding,
        flip: config.augment_flip,
    };

    // The clock includes the one pass that fills the feature cache.
    let started = Instant::now();
    let cache_end = feature_cache_end(
        frozen_layers,
        net.dropout,
        augmentation,
        options.numerics.recompute_frozen,
    );
    let feature_cache = match cache_end {
        Some(end) => build_feature_cache(
            trainer.as_mut(),
            &geometry,
            data,
            &tables,
            end,
            options.cancel,
        )?,
        None => None,
    };

    let batches = data.count.div_ceil(config.batch_size);
    let mut buffers = BatchBuffers::default();
    let mut order: Vec<usize> = (0..data.count).collect();
    let mut epoch_losses = Vec::with_capacity(config.epochs);
    let mut epoch_accuracies = Vec::with_capacity(config.epochs);
    let mut epoch_learning_rates = Vec::with_capacity(config.epochs);
    let mut epoch_validation_accuracies = Vec::new();
    let mut scoring_time = std::time::Duration::ZERO;
    'epochs: for epoch in 0..config.epochs {
        // Each epoch's order is a shuffle of the identity, so it does not depend on earlier ones.
        order.iter_mut().enumerate().for_each(|(i, slot)| *slot = i);
        Rng::stream(config.seed, Purpose::Shuffle, epoch as u64).shuffle(&mut order);
        let learning_rate = config.learning_rate_at(epoch);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for (batch, indices) in order.chunks(config.batch_size).enumerate() {
            if options
                .cancel
                .is_some_and(|flag| flag.load(Ordering::Relaxed))
            {
                return Err(MlError::Cancelled);
            }
            let step = epoch * batches + batch;
            observer.before_step(step, trainer.as_mut())?;
            let clock = Instant::now();
            let mut augment_rng = Rng::stream(config.seed, Purpose::Augment, step as u64);
            let source = match &feature_cache {
                Some(cache) => BatchSource::Cached(cache),
                None => BatchSource::Images {
                    tables: &tables,
                    augmentation,
                    rng: &mut augment_rng,
                },
            };
            let prepared = buffers.prepare(
                data,
                indices,
                source,
                &geometry,
                net.dropout,
                Rng::stream(config.seed, Purpose::Dropout, step as u64),
            );
            trainer.times().prepare += clock.elapsed();
            let result = trainer.step(&prepared, learning_rate)?;
            if !result.loss.is_finite() {
                return Err(MlError::NonFiniteLoss {
                    epoch: epoch + 1,
                    batch: batch + 1,
                    loss: result.loss,
                });
            }
            let done = StepDone {
                epoch,
                indices,
                batch: &prepared,
                learning_rate,
                loss: result.loss,
                tables: &tables,
            };
            let go_on = observer.after_step(&done, trainer.as_ref())?;
            loss_sum += result.loss * indices.len() as f64;
            correct += result.correct;
            if let Some(progress) = options.progress {
                progress(TrainProgress {
                    epoch: epoch + 1,
                    epochs: config.epochs,
                    batch: batch + 1,
                    batches,
                    loss: result.loss,
                });
            }
            if !go_on {
                break 'epochs;
            }
        }
        epoch_losses.push(loss_sum / data.count as f64);
        epoch_accuracies.push(correct as f64 / data.count as f64);
        epoch_learning_rates.push(learning_rate);
        if let Some(validation) = validation {
            let clock = Instant::now();
            epoch_validation_accuracies.push(top1_of(
                trainer.as_mut(),
                validation,
                &tables,
                net.num_classes,
                options,
            )?);
            scoring_time += clock.elapsed();
        }
    }
    let elapsed = (started.elapsed() - scoring_time).as_secs_f64();

    let trained = HostWeights {
        layers: trainer.layers()?,
        normalization: Some(normalization),
    };
    if !trained.all_finite() {
        // The last update can overflow even when the last loss was finite.
        return Err(MlError::NonFiniteLoss {
            epoch: config.epochs,
            batch: batches,
            loss: f64::NAN,
        });
    }
    Ok(TrainOutcome {
        weights: trained.to_safetensors(net),
        epoch_losses,
        train_accuracy: epoch_accuracies.last().copied().unwrap_or_default(),
        epoch_accuracies,
        epoch_learning_rates,
        epoch_validation_accuracies,
        images_per_second: (config.epochs * data.count) as f64 / elapsed.max(1e-9),
        backend: backend.name,
    })
}

/// Top-1 accuracy of the trainer's net as it stands on `data`, in evaluation mode (no dropout,
/// no augmentation), with the training's input normalisation.
fn top1_of(
    trainer: &mut dyn Trainer,
    data: &ImageSet,
    tables: &[[f32; 256]],
    num_classes: usize,
    options: &RunOptions<'_>,
) -> Result<f64, MlError> {
    let (mut logits, mut hits) = (Vec::new(), 0usize);
    for_each_chunk(data, tables, options.cancel, |pixels, chunk| {
        logits.clear();
        trainer.forward_to(pixels, chunk.len(), LAYER_COUNT, &mut logits)?;
        hits += logits
            .chunks_exact(num_classes)
            .zip(chunk)
            .filter(|(row, &index)| rank_of(row, data.labels[index] as usize) == 0)
            .count();
        Ok(())
    })?;
    Ok(hits as f64 / data.count as f64)
}

/// Where a training starts: every layer's values (copied or fresh), the input normalisation
/// its steps use and how many layers are frozen.
pub(crate) struct Start {
    pub weights: HostWeights,
    pub normalization: Normalization,
    pub frozen_layers: usize,
}

/// Checks the inputs of a training and computes its [`Start`].
pub(crate) fn start(
    net: &NetConfig,
    config: &TrainConfig,
    data: &ImageSet,
    transfer: Option<Transfer<'_>>,
) -> Result<Start, MlError> {
    let geometry = net.geometry()?;
    config.validate()?;
    data.check_for(&geometry, net.num_classes)?;

    let mut weights = init_weights(net, &geometry, config.seed);
    let mut frozen_layers = 0;
    if let Some(transfer) = transfer {
        if !(1..LAYER_COUNT).contains(&transfer.layers_copied) {
            return Err(MlError::InvalidConfig(format!(
                "`layers_copied` is {}, expected 1..=7 (fc8 is always fresh)",
                transfer.layers_copied
            )));
        }
        // fc8 is never copied, so the source may have been trained on another number of
        // classes (the paper's natural/man-made split is 449 vs 551): everything else must match.
        let source_net = NetConfig {
            num_classes: HostWeights::stored_classes(transfer.source_weights)?,
            ..net.clone()
        };
        let source_geometry = source_net.geometry()?;
        let source =
            HostWeights::from_safetensors(transfer.source_weights, &source_net, &source_geometry)?;
        weights.layers[..transfer.layers_copied]
            .clone_from_slice(&source.layers[..transfer.layers_copied]);
        weights.normalization = source.normalization;
        if transfer.mode == TransferMode::Frozen {
            frozen_layers = transfer.layers_copied;
        }
    }
    let normalization = weights
        .normalization
        .take()
        .unwrap_or_else(|| Normalization::from_images(data));

    Ok(Start {
        weights,
        normalization,
        frozen_layers,
    })
}
