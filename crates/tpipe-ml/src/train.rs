//! Training from scratch or from copied layers, with the paper's SGD.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Gradients, Tensor, TensorData};

use crate::backend::{self, BackendChoice, ResolvedBackend};
use crate::config::{NetConfig, TrainConfig, LAYER_COUNT};
use crate::data::{fill_batch, images_tensor, Augmentation, ImageSet, Normalization};
use crate::error::MlError;
use crate::native::{NativeTrainer, ThreadPlan};
use crate::network::{
    conv1_columns, cross_entropy, read_back, Activation, LayerParams, Network, Tracking,
};
use crate::rng::{Purpose, Rng};
use crate::weights::{init_weights, HostLayer, HostWeights};

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

/// How to run: backend, cancellation, progress reports and the numerical path.
///
/// Callers name what they need and take the rest from `Default`:
/// `RunOptions { backend, cancel, ..Default::default() }`.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    /// Which backend executes the run.
    pub backend: BackendChoice,
    /// Checked between batches; when set the run stops with `MlError::Cancelled`.
    pub cancel: Option<&'a AtomicBool>,
    /// Called after every training batch, on the training thread.
    pub progress: Option<&'a (dyn Fn(TrainProgress) + Sync)>,
    /// Alternative numerical paths for comparisons; the default is what tpipe runs.
    pub numerics: Numerics,
}

impl Default for RunOptions<'_> {
    /// `BackendChoice::Auto`, no cancel flag, no progress reports, the default numerics.
    fn default() -> Self {
        RunOptions {
            backend: BackendChoice::default(),
            cancel: None,
            progress: None,
            numerics: Numerics::default(),
        }
    }
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RunOptions")
            .field("backend", &self.backend)
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.map(|_| "Fn"))
            .field("numerics", &self.numerics)
            .finish()
    }
}

/// Alternative numerical paths, for comparisons in tests and benches; tpipe's node kinds always
/// use the default.
///
/// Each alternative computes the same function in another order, so results agree with the
/// default up to float rounding, not necessarily bit for bit. That is why these are options a
/// caller passes rather than environment switches: a cached result must depend only on what its
/// key covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Numerics {
    /// Run frozen layers in every step instead of once over the training set. Without it, a
    /// frozen transfer without augmentation trains on the frozen layers' stored outputs.
    pub recompute_frozen: bool,
    /// Run a trainable conv1 as a convolution instead of a matmul on host-unfolded columns
    /// (burn backends; the native path always unfolds).
    pub conv1_as_conv: bool,
}

/// Where a training stands, reported after each batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainProgress {
    /// 1-based epoch.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean cross-entropy of this batch.
    pub loss: f64,
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
    /// Share of training images classified right during the last epoch, in training mode
    /// (dropout and augmentation on), as the batches went by.
    pub train_accuracy: f64,
    /// Training images per second of wall time over the whole loop (data preparation and the
    /// frozen-feature pass included, set-up and the final read-back excluded).
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
/// Deterministic on flex for a given seed, data and configuration: the same inputs give the same
/// bytes. Fails with `MlError::NonFiniteLoss` (and no weights) if the loss becomes NaN or
/// infinite.
pub fn train(
    net: &NetConfig,
    config: &TrainConfig,
    data: &ImageSet,
    transfer: Option<Transfer<'_>>,
    options: &RunOptions<'_>,
) -> Result<TrainOutcome, MlError> {
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

    let backend = backend::resolve(options.backend)?;
    let mut trainer = AnyTrainer::new(
        net,
        config,
        &weights,
        frozen_layers,
        &backend,
        options.numerics,
    )?;
    let tables = normalization.lookup_tables();
    let augmentation = Augmentation {
        crop_padding: config.augment_crop_padding,
        flip: config.augment_flip,
    };

    // The clock includes the one pass that fills the feature cache.
    let started = Instant::now();
    let feature_cache = trainer.build_feature_cache(data, &tables, augmentation, options.cancel)?;

    let batches = data.count.div_ceil(config.batch_size);
    let mut order: Vec<usize> = (0..data.count).collect();
    let mut epoch_losses = Vec::with_capacity(config.epochs);
    let mut epoch_accuracies = Vec::with_capacity(config.epochs);
    let mut epoch_learning_rates = Vec::with_capacity(config.epochs);
    for epoch in 0..config.epochs {
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
            let step = (epoch * batches + batch) as u64;
            let mut augment_rng = Rng::stream(config.seed, Purpose::Augment, step);
            let input = match &feature_cache {
                Some(cache) => StepInput::Cached(cache),
                None => StepInput::Images {
                    tables: &tables,
                    augmentation: Some((augmentation, &mut augment_rng)),
                },
            };
            let result = trainer.step(
                data,
                indices,
                input,
                Rng::stream(config.seed, Purpose::Dropout, step),
                learning_rate,
            )?;
            if !result.loss.is_finite() {
                return Err(MlError::NonFiniteLoss {
                    epoch: epoch + 1,
                    batch: batch + 1,
                    loss: result.loss,
                });
            }
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
        }
        epoch_losses.push(loss_sum / data.count as f64);
        epoch_accuracies.push(correct as f64 / data.count as f64);
        epoch_learning_rates.push(learning_rate);
    }
    let elapsed = started.elapsed().as_secs_f64();

    let trained = HostWeights {
        layers: trainer.layers(&backend.name)?,
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
        images_per_second: (config.epochs * data.count) as f64 / elapsed.max(1e-9),
        backend: backend.name,
    })
}

/// Where a step's input comes from.
pub(crate) enum StepInput<'a, 'r> {
    /// Normalise (and maybe augment) the images and run every layer.
    Images {
        tables: &'a [[f32; 256]],
        augmentation: Option<(Augmentation, &'r mut Rng)>,
    },
    /// Start from the stored output of the frozen layers below `cache.end`.
    Cached(&'a FeatureCache),
}

/// Outputs of the lowest frozen layers for every training image, computed once.
///
/// Without augmentation the frozen layers map each image to the same activation in every
/// epoch, so a frozen transfer computes them once up front and each step starts above them.
/// Only layers up to fc6 are cached when dropout is on: the mask after a frozen fc6 changes
/// from step to step and feeds fc7.
pub(crate) struct FeatureCache {
    /// 0-based index of the first layer not in the cache (the steps start there).
    pub end: usize,
    /// Shape of one image's activation.
    pub item_shape: Vec<usize>,
    /// `count × item_len` values, image after image.
    pub values: Vec<f32>,
}

/// The largest unfolded conv1 batch (large images or kernels fall back to the convolution).
const CONV1_COLUMNS_LIMIT: usize = 256 << 20;

/// Rows of conv1's unfolded input: input channels × kernel².
fn columns_rows(geometry: &crate::config::Geometry) -> usize {
    geometry.channels * geometry.conv[0].kernel * geometry.conv[0].kernel
}

/// The largest feature cache built, in bytes; bigger ones fall back to recomputing.
const FEATURE_CACHE_LIMIT: usize = 1 << 30;

impl FeatureCache {
    pub(crate) fn item_len(&self) -> usize {
        self.item_shape.iter().product()
    }

    fn gather(&self, indices: &[usize], device: &Device) -> Activation {
        let item_len = self.item_len();
        let mut values = Vec::with_capacity(indices.len() * item_len);
        for &index in indices {
            values.extend_from_slice(&self.values[index * item_len..(index + 1) * item_len]);
        }
        Activation::from_values(values, indices.len(), &self.item_shape, device)
    }
}

/// What one step reports back.
pub(crate) struct StepResult {
    /// Mean cross-entropy of the batch, from the logits in f64; NaN or inf if they were.
    pub loss: f64,
    /// Images of the batch whose top logit is their label.
    pub correct: usize,
}

/// Wall time spent in each phase of the steps so far. Exact on flex, which runs each op as it
/// is called; on wgpu the work queues up and lands mostly in `read_back`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseTimes {
    /// Normalising, augmenting and uploading the batch, drawing dropout masks.
    pub prepare: Duration,
    /// Forward pass and loss.
    pub forward: Duration,
    /// `backward()`.
    pub backward: Duration,
    /// The SGD update.
    pub update: Duration,
    /// Reading the logits back to the host.
    pub read_back: Duration,
}

/// The trainer of the backend a run resolved to: burn's, or the native CPU path.
pub(crate) enum AnyTrainer {
    Burn(Box<Trainer>),
    Native {
        trainer: Box<NativeTrainer>,
        plan: ThreadPlan,
    },
}

impl AnyTrainer {
    pub(crate) fn new(
        net: &NetConfig,
        config: &TrainConfig,
        weights: &HostWeights,
        frozen_layers: usize,
        backend: &ResolvedBackend,
        numerics: Numerics,
    ) -> Result<Self, MlError> {
        Ok(if backend.native {
            AnyTrainer::Native {
                trainer: Box::new(NativeTrainer::new(
                    net,
                    config,
                    weights.layers.clone(),
                    frozen_layers,
                    numerics.recompute_frozen,
                )?),
                plan: ThreadPlan::enter()?,
            }
        } else {
            AnyTrainer::Burn(Box::new(Trainer::new(
                net,
                config,
                weights,
                frozen_layers,
                backend,
                numerics,
            )?))
        })
    }

    /// See `Trainer::build_feature_cache`.
    pub(crate) fn build_feature_cache(
        &mut self,
        data: &ImageSet,
        tables: &[[f32; 256]],
        augmentation: Augmentation,
        cancel: Option<&AtomicBool>,
    ) -> Result<Option<FeatureCache>, MlError> {
        match self {
            AnyTrainer::Burn(trainer) => {
                trainer.build_feature_cache(data, tables, augmentation, cancel)
            }
            AnyTrainer::Native { trainer, plan } => {
                plan.run(|| trainer.build_feature_cache(data, tables, augmentation, cancel))
            }
        }
    }

    /// One SGD step (see `Trainer::step`).
    pub(crate) fn step(
        &mut self,
        data: &ImageSet,
        indices: &[usize],
        input: StepInput<'_, '_>,
        dropout_rng: Rng,
        learning_rate: f64,
    ) -> Result<StepResult, MlError> {
        match self {
            AnyTrainer::Burn(trainer) => {
                trainer.step(data, indices, input, dropout_rng, learning_rate)
            }
            AnyTrainer::Native { trainer, plan } => {
                plan.run(|| trainer.step(data, indices, input, dropout_rng, learning_rate))
            }
        }
    }

    /// The layers as they stand, in PyTorch layout.
    pub(crate) fn layers(&self, backend_name: &str) -> Result<Vec<HostLayer>, MlError> {
        match self {
            AnyTrainer::Burn(trainer) => trainer.network.download(backend_name),
            AnyTrainer::Native { trainer, .. } => Ok(trainer.net.layers.clone()),
        }
    }

    /// Where the steps so far spent their time.
    pub(crate) fn times_mut(&mut self) -> &mut PhaseTimes {
        match self {
            AnyTrainer::Burn(trainer) => &mut trainer.times,
            AnyTrainer::Native { trainer, .. } => &mut trainer.times,
        }
    }
}

/// A net being trained on a burn device: parameters, optimizer state and the step.
pub(crate) struct Trainer {
    pub network: Network,
    /// 0-based index of the lowest trainable layer; layers below it are frozen.
    first_trainable: usize,
    conv_velocity: Vec<Velocity<4>>,
    linear_velocity: Vec<Velocity<2>>,
    device: Device,
    backend_name: String,
    dropout: f64,
    num_classes: usize,
    momentum: f64,
    weight_decay: f64,
    bias_lr_multiplier: f64,
    pub times: PhaseTimes,
    numerics: Numerics,
}

impl Trainer {
    pub(crate) fn new(
        net: &NetConfig,
        config: &TrainConfig,
        weights: &HostWeights,
        frozen_layers: usize,
        backend: &ResolvedBackend,
        numerics: Numerics,
    ) -> Result<Self, MlError> {
        let geometry = net.geometry()?;
        let network = Network::upload(&weights.layers, &geometry, &backend.device);
        Ok(Trainer {
            network,
            first_trainable: frozen_layers,
            conv_velocity: vec![(None, None); 5],
            linear_velocity: vec![(None, None); 3],
            device: backend.device.clone(),
            backend_name: backend.name.clone(),
            dropout: net.dropout,
            num_classes: net.num_classes,
            momentum: config.momentum,
            weight_decay: config.weight_decay,
            bias_lr_multiplier: config.bias_lr_multiplier,
            times: PhaseTimes::default(),
            numerics,
        })
    }

    /// Runs the frozen layers that can be cached over all of `data`, or returns `None` when
    /// nothing is frozen, augmentation is on, `Numerics::recompute_frozen` is set, or the cache
    /// would exceed its limit.
    pub(crate) fn build_feature_cache(
        &self,
        data: &ImageSet,
        tables: &[[f32; 256]],
        augmentation: Augmentation,
        cancel: Option<&AtomicBool>,
    ) -> Result<Option<FeatureCache>, MlError> {
        // With dropout on, fc7 (index 6) consumes fc6's fresh mask, so the cache stops at fc6.
        let end = if self.dropout > 0.0 {
            self.first_trainable.min(6)
        } else {
            self.first_trainable
        };
        if end == 0 || !augmentation.is_off() || self.numerics.recompute_frozen {
            return Ok(None);
        }
        let indices: Vec<usize> = (0..data.count).collect();
        let mut cache: Option<FeatureCache> = None;
        let mut pixels = Vec::new();
        for chunk in indices.chunks(256) {
            if cancel.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
                return Err(MlError::Cancelled);
            }
            fill_batch(data, chunk, tables, None, &mut pixels);
            let geometry = &self.network.geometry;
            let images = images_tensor(
                std::mem::take(&mut pixels),
                chunk.len(),
                geometry,
                &self.device,
            );
            let output =
                self.network
                    .run_layers(0..end, Activation::Maps(images), Tracking::Off, None);
            let item_shape = output.item_shape();
            let cache = cache.get_or_insert_with(|| FeatureCache {
                end,
                item_shape,
                values: Vec::new(),
            });
            if data.count * cache.item_len() * 4 > FEATURE_CACHE_LIMIT {
                return Ok(None);
            }
            cache.values.extend(output.read_back(&self.backend_name)?);
        }
        Ok(cache)
    }

    /// One SGD step on the images `indices` of `data`.
    pub(crate) fn step(
        &mut self,
        data: &ImageSet,
        indices: &[usize],
        input: StepInput<'_, '_>,
        mut dropout_rng: Rng,
        learning_rate: f64,
    ) -> Result<StepResult, MlError> {
        let clock = Instant::now();
        let batch = indices.len();
        let geometry = &self.network.geometry;
        let (first_layer, input) = match input {
            StepInput::Images {
                tables,
                augmentation,
            } => {
                let mut pixels = Vec::new();
                fill_batch(data, indices, tables, augmentation, &mut pixels);
                let conv = &geometry.conv[0];
                let positions = ((geometry.height + 2 * conv.padding - conv.kernel) / conv.stride
                    + 1)
                    * ((geometry.width + 2 * conv.padding - conv.kernel) / conv.stride + 1);
                let columns_bytes = batch * columns_rows(geometry) * positions * 4;
                if self.first_trainable == 0
                    && !self.numerics.conv1_as_conv
                    && columns_bytes <= CONV1_COLUMNS_LIMIT
                {
                    let (columns, out_height, out_width) = conv1_columns(&pixels, batch, geometry);
                    let positions = out_height * out_width;
                    let columns = Tensor::<3>::from_data(
                        TensorData::new(columns, [batch, columns_rows(geometry), positions]),
                        &self.device,
                    );
                    (
                        0,
                        Activation::Conv1Columns {
                            columns,
                            out_height,
                            out_width,
                        },
                    )
                } else {
                    let images = images_tensor(pixels, batch, geometry, &self.device);
                    (0, Activation::Maps(images))
                }
            }
            StepInput::Cached(cache) => (cache.end, cache.gather(indices, &self.device)),
        };
        let labels: Vec<usize> = indices.iter().map(|&i| data.labels[i] as usize).collect();
        let mut one_hot = vec![0f32; batch * self.num_classes];
        for (row, &label) in labels.iter().enumerate() {
            one_hot[row * self.num_classes + label] = 1.0;
        }
        let targets = Tensor::<2>::from_data(
            TensorData::new(one_hot, [batch, self.num_classes]),
            &self.device,
        );
        let masks = (self.dropout > 0.0).then(|| {
            let widths = [geometry.fc[0].1, geometry.fc[1].1];
            widths.map(|width| {
                dropout_mask(&mut dropout_rng, batch, width, self.dropout, &self.device)
            })
        });
        let after_prepare = Instant::now();

        // Trainable parameters become fresh autodiff leaves for this step; frozen ones stay
        // plain tensors, and the forward pass enters autodiff only at the first trainable layer.
        let first_trainable = self.first_trainable;
        let tracked = Network {
            conv: track_trainable(std::mem::take(&mut self.network.conv), 0, first_trainable),
            linear: track_trainable(std::mem::take(&mut self.network.linear), 5, first_trainable),
            geometry: self.network.geometry.clone(),
        };
        let logits = match tracked.run_layers(
            first_layer..LAYER_COUNT,
            input,
            Tracking::From { first_trainable },
            masks.as_ref(),
        ) {
            Activation::Features(logits) => logits,
            _ => unreachable!("fc8 outputs features"),
        };
        let loss = cross_entropy(logits.clone(), targets);
        let logits = logits.without_autodiff();
        let after_forward = Instant::now();

        let mut grads = loss.backward();
        let after_backward = Instant::now();

        let solver = Solver {
            weight_rate: learning_rate,
            bias_rate: learning_rate * self.bias_lr_multiplier,
            momentum: self.momentum,
            decay: self.weight_decay,
            backend_name: &self.backend_name,
        };
        self.network.conv = solver.update_layers(
            tracked.conv,
            0,
            first_trainable,
            &mut grads,
            &mut self.conv_velocity,
        )?;
        self.network.linear = solver.update_layers(
            tracked.linear,
            5,
            first_trainable,
            &mut grads,
            &mut self.linear_velocity,
        )?;
        drop(grads);
        let after_update = Instant::now();

        let logits = read_back(logits, &self.backend_name)?;
        let result = score_batch(&logits, &labels, self.num_classes);
        let after_read_back = Instant::now();

        self.times.prepare += after_prepare - clock;
        self.times.forward += after_forward - after_prepare;
        self.times.backward += after_backward - after_forward;
        self.times.update += after_update - after_backward;
        self.times.read_back += after_read_back - after_update;
        Ok(result)
    }
}

/// The paper's solver for one step: decay on weights only, biases at their own rate.
struct Solver<'a> {
    weight_rate: f64,
    bias_rate: f64,
    momentum: f64,
    decay: f64,
    backend_name: &'a str,
}

impl Solver<'_> {
    /// Updates the trainable layers among `layers` (0-based network indices from
    /// `first_index`; those below `first_trainable` are frozen and come back untouched), taking
    /// their gradients out of `grads` and advancing their momentum buffers.
    fn update_layers<const D: usize>(
        &self,
        layers: Vec<LayerParams<D>>,
        first_index: usize,
        first_trainable: usize,
        grads: &mut Gradients,
        velocities: &mut [Velocity<D>],
    ) -> Result<Vec<LayerParams<D>>, MlError> {
        layers
            .into_iter()
            .zip(velocities)
            .enumerate()
            .map(|(offset, (params, velocity))| {
                if first_index + offset < first_trainable {
                    Ok(params)
                } else {
                    self.update(params, grads, velocity)
                }
            })
            .collect()
    }

    /// One trainable layer: its gradients out of `grads`, its updated weight and bias back as
    /// plain tensors.
    fn update<const D: usize>(
        &self,
        params: LayerParams<D>,
        grads: &mut Gradients,
        velocity: &mut Velocity<D>,
    ) -> Result<LayerParams<D>, MlError> {
        let missing = |name: &str| MlError::Backend {
            backend: self.backend_name.to_string(),
            reason: format!("no gradient for trainable parameter `{name}`"),
        };
        let weight_grad = params
            .weight
            .grad_remove(grads)
            .ok_or_else(|| missing("weight"))?;
        let bias_grad = params
            .bias
            .grad_remove(grads)
            .ok_or_else(|| missing("bias"))?;
        let weight = sgd(
            params.weight.without_autodiff(),
            weight_grad,
            &mut velocity.0,
            self.weight_rate,
            self.momentum,
            self.decay,
        );
        let bias = sgd(
            params.bias.without_autodiff(),
            bias_grad,
            &mut velocity.1,
            self.bias_rate,
            self.momentum,
            0.0,
        );
        Ok(LayerParams { weight, bias })
    }
}

/// `layers` (0-based network indices from `first_index`) with those at or above
/// `first_trainable` as fresh autodiff leaves; the frozen ones stay plain tensors.
fn track_trainable<const D: usize>(
    layers: Vec<LayerParams<D>>,
    first_index: usize,
    first_trainable: usize,
) -> Vec<LayerParams<D>> {
    layers
        .into_iter()
        .enumerate()
        .map(|(offset, params)| {
            if first_index + offset < first_trainable {
                params
            } else {
                params.tracked()
            }
        })
        .collect()
}

/// A layer's momentum buffers (weight, bias); empty until its first update.
type Velocity<const D: usize> = (Option<Tensor<D>>, Option<Tensor<1>>);

/// One PyTorch-style SGD update: `g += decay·w; v = m·v + g; w -= lr·v`.
fn sgd<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    velocity: &mut Option<Tensor<D>>,
    learning_rate: f64,
    momentum: f64,
    decay: f64,
) -> Tensor<D> {
    let grad = if decay > 0.0 {
        grad.add(param.clone().mul_scalar(decay))
    } else {
        grad
    };
    let step = if momentum > 0.0 {
        let updated = match velocity.take() {
            // PyTorch starts the buffer at the first gradient, which is `m·0 + g`.
            None => grad,
            Some(previous) => previous.mul_scalar(momentum).add(grad),
        };
        *velocity = Some(updated.clone());
        updated
    } else {
        grad
    };
    param.sub(step.mul_scalar(learning_rate))
}

/// A `[batch, width]` dropout mask with entries 0 (probability p) or 1/(1-p).
fn dropout_mask(rng: &mut Rng, batch: usize, width: usize, p: f64, device: &Device) -> Tensor<2> {
    let mut values = vec![0f32; batch * width];
    fill_dropout_mask(rng, p, &mut values);
    Tensor::from_data(TensorData::new(values, [batch, width]), device)
}

/// Draws a dropout mask into `mask`, one value per entry in order: 0 with probability p,
/// 1/(1-p) otherwise. Every path draws its masks through this, so they are the same.
pub(crate) fn fill_dropout_mask(rng: &mut Rng, p: f64, mask: &mut [f32]) {
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    for slot in mask {
        *slot = if rng.next_f64() < keep { scale } else { 0.0 };
    }
}

/// Loss (in f64) and hits of a batch from its logits.
pub(crate) fn score_batch(logits: &[f32], labels: &[usize], num_classes: usize) -> StepResult {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (row, &label) in logits.chunks_exact(num_classes).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let log_sum = row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln()
            + max;
        loss += log_sum - row[label] as f64;
        if row.iter().any(|v| !v.is_finite()) {
            loss = f64::NAN;
        }
        if crate::evaluate::rank_of(row, label) == 0 {
            correct += 1;
        }
    }
    StepResult {
        loss: loss / labels.len() as f64,
        correct,
    }
}
