//! The seam between the training loop and the paths that run it.
//!
//! The loop (`train.rs`) owns everything a step's input depends on: the batch order, the
//! normalised and augmented images (or rows of the frozen-feature cache), the labels and the
//! dropout masks, all drawn on the host from the crate's own streams. A [`Trainer`] is handed
//! that [`Batch`] and does the arithmetic: forward, backward and the solver's update. The native
//! path (`native/`) and burn (`burn_trainer.rs`) implement it; whatever is not arithmetic is
//! written here once, so the paths see the same inputs by construction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{Geometry, LAYER_COUNT};
use crate::data::{fill_batch, Augmentation, ImageSet};
use crate::error::MlError;
use crate::rng::Rng;
use crate::weights::HostLayer;

/// Images per forward pass when filling the feature cache or evaluating (no gradients, so larger
/// than a training batch).
pub(crate) const FORWARD_CHUNK: usize = 256;

/// The largest feature cache built, in bytes; bigger ones fall back to running the frozen layers
/// in every step.
const FEATURE_CACHE_LIMIT: usize = 1 << 30;

/// What a path must do to train a net.
pub(crate) trait Trainer {
    /// Runs layers `0..end` over `batch` normalised NCHW images, without dropout or gradients,
    /// and appends each image's input of layer `end` (image after image, in the layout
    /// `Geometry::input_shape(end)` gives; `end` = `LAYER_COUNT` gives the logits) to `out`.
    /// The layers' values, momenta and random streams stay as they were.
    fn forward_to(
        &mut self,
        pixels: &[f32],
        batch: usize,
        end: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), MlError>;

    /// One SGD step on `batch` at `learning_rate`: forward pass with the batch's masks, loss,
    /// backward pass through the trainable layers, the solver's update.
    fn step(&mut self, batch: &Batch<'_>, learning_rate: f64) -> Result<StepResult, MlError>;

    /// The layers as they stand, in PyTorch layouts.
    fn layers(&self) -> Result<Vec<HostLayer>, MlError>;

    /// The layers and their momentum buffers.
    fn state(&self) -> Result<TrainingState, MlError>;

    /// Replaces the layers and their momentum buffers (the frozen layers must keep their
    /// values: a feature cache may have been computed from them).
    fn restore(&mut self, state: &TrainingState) -> Result<(), MlError>;

    /// Where the steps so far spent their time.
    fn times(&mut self) -> &mut PhaseTimes;
}

/// One step's input, prepared on the host by the training loop.
pub(crate) struct Batch<'a> {
    /// 0-based index of the first layer to run: 0 for images, the cache's end for rows of the
    /// frozen-feature cache.
    pub first_layer: usize,
    /// `size` inputs of layer `first_layer`, image after image: normalised NCHW pixels, or
    /// cached activations in `Geometry::input_shape(first_layer)`.
    pub inputs: &'a [f32],
    /// Number of images.
    pub size: usize,
    /// Their labels.
    pub labels: &'a [usize],
    /// The masks after fc6 and fc7 (`[size, width]`, entries 0 or 1/(1-p)) when dropout is on.
    pub masks: Option<[&'a [f32]; 2]>,
}

/// Buffers a batch is prepared in, reused from step to step.
#[derive(Default)]
pub(crate) struct BatchBuffers {
    inputs: Vec<f32>,
    labels: Vec<usize>,
    masks: [Vec<f32>; 2],
}

/// Where a step's inputs come from.
pub(crate) enum BatchSource<'a, 'r> {
    /// Normalise (and maybe augment) the images and run every layer.
    Images {
        tables: &'a [[f32; 256]],
        augmentation: Augmentation,
        rng: &'r mut Rng,
    },
    /// Rows of the frozen-feature cache.
    Cached(&'a FeatureCache),
}

impl BatchBuffers {
    /// The batch of images `indices` of `data`, with dropout masks of probability `dropout`
    /// drawn from `dropout_rng` (none when it is 0).
    pub(crate) fn prepare(
        &mut self,
        data: &ImageSet,
        indices: &[usize],
        source: BatchSource<'_, '_>,
        geometry: &Geometry,
        dropout: f64,
        mut dropout_rng: Rng,
    ) -> Batch<'_> {
        let first_layer = match source {
            BatchSource::Images {
                tables,
                augmentation,
                rng,
            } => {
                fill_batch(
                    data,
                    indices,
                    tables,
                    Some((augmentation, rng)),
                    &mut self.inputs,
                );
                0
            }
            BatchSource::Cached(cache) => {
                let item_len = cache.values.len() / data.count;
                self.inputs.clear();
                for &index in indices {
                    self.inputs
                        .extend_from_slice(&cache.values[index * item_len..][..item_len]);
                }
                cache.end
            }
        };
        self.labels.clear();
        self.labels
            .extend(indices.iter().map(|&index| data.labels[index] as usize));
        let size = indices.len();
        if dropout > 0.0 {
            for (mask, &(_, width)) in self.masks.iter_mut().zip(&geometry.fc) {
                mask.resize(size * width, 0.0);
                fill_dropout_mask(&mut dropout_rng, dropout, mask);
            }
        }
        Batch {
            first_layer,
            inputs: &self.inputs,
            size,
            labels: &self.labels,
            masks: (dropout > 0.0).then(|| [&self.masks[0][..], &self.masks[1][..]]),
        }
    }
}

/// Draws a dropout mask into `mask`, one value per entry in order: 0 with probability p,
/// 1/(1-p) otherwise.
pub(crate) fn fill_dropout_mask(rng: &mut Rng, p: f64, mask: &mut [f32]) {
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    for slot in mask {
        *slot = if rng.next_f64() < keep { scale } else { 0.0 };
    }
}

/// What one step reports back.
pub(crate) struct StepResult {
    /// Mean cross-entropy of the batch, from the logits in f64; NaN or inf if they were.
    pub loss: f64,
    /// Images of the batch whose top logit is their label.
    pub correct: usize,
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
        if rank_of(row, label) == 0 {
            correct += 1;
        }
    }
    StepResult {
        loss: loss / labels.len() as f64,
        correct,
    }
}

/// How many logits of `row` rank above the one of `label`; ties go to the lower class index, as
/// `argmax` breaks them. 0 means a top-1 hit.
pub(crate) fn rank_of(row: &[f32], label: usize) -> usize {
    let target = row[label];
    row.iter()
        .enumerate()
        .filter(|&(class, &value)| value > target || (value == target && class < label))
        .count()
}

/// Wall time spent in each phase of the steps so far. Exact on the native path and flex, which
/// run each op as it is called; on wgpu the work queues up and lands mostly in `read_back`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseTimes {
    /// Normalising, augmenting and uploading the batch, drawing dropout masks.
    pub prepare: Duration,
    /// Forward pass and loss.
    pub forward: Duration,
    /// The backward pass.
    pub backward: Duration,
    /// The SGD update.
    pub update: Duration,
    /// Reading the logits back to the host.
    pub read_back: Duration,
}

/// A net's layers and the solver's momentum buffers, in PyTorch layouts: what a training step
/// starts from. Traces record it after every step; conformance tests set it before one.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingState {
    /// conv1..fc8.
    pub layers: Vec<LayerState>,
}

/// One layer of a [`TrainingState`].
#[derive(Clone, Debug, PartialEq)]
pub struct LayerState {
    /// The weight, `[out, in, k, k]` for conv layers, `[out, in]` for fc layers.
    pub weight: Vec<f32>,
    /// The shape of `weight`.
    pub weight_shape: Vec<usize>,
    /// The bias, one value per output.
    pub bias: Vec<f32>,
    /// The momentum buffers of weight and bias, in the same layouts; `None` before the layer's
    /// first update and for frozen layers.
    pub velocity: Option<(Vec<f32>, Vec<f32>)>,
}

impl LayerState {
    pub(crate) fn host_layer(&self) -> HostLayer {
        HostLayer {
            weight: self.weight.clone(),
            weight_shape: self.weight_shape.clone(),
            bias: self.bias.clone(),
        }
    }
}

impl TrainingState {
    /// Checks that the state has every layer in `geometry`'s shapes.
    pub(crate) fn check(&self, geometry: &Geometry) -> Result<(), MlError> {
        let bad = |message: String| Err(MlError::InvalidConfig(message));
        if self.layers.len() != LAYER_COUNT {
            return bad(format!(
                "a training state has {} layers, the net {LAYER_COUNT}",
                self.layers.len()
            ));
        }
        for (index, layer) in self.layers.iter().enumerate() {
            let (shape, bias_len) = geometry.weight_shape(index);
            let weight_len: usize = shape.iter().product();
            let velocity_fits = layer
                .velocity
                .as_ref()
                .is_none_or(|(weight, bias)| weight.len() == weight_len && bias.len() == bias_len);
            if layer.weight_shape != shape
                || layer.weight.len() != weight_len
                || layer.bias.len() != bias_len
                || !velocity_fits
            {
                return bad(format!(
                    "layer {} of a training state does not fit the net's shape {shape:?}",
                    index + 1
                ));
            }
        }
        Ok(())
    }
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
    /// `count × Geometry::input_len(end)` values, image after image.
    pub values: Vec<f32>,
}

/// The layer a feature cache would end at, or `None` when no cache is built: nothing is frozen,
/// augmentation changes the inputs from epoch to epoch, or the caller asked to recompute.
pub(crate) fn feature_cache_end(
    frozen_layers: usize,
    dropout: f64,
    augmentation: Augmentation,
    recompute_frozen: bool,
) -> Option<usize> {
    // With dropout on, fc7 (index 6) consumes fc6's fresh mask, so the cache stops at fc6.
    let end = if dropout > 0.0 {
        frozen_layers.min(6)
    } else {
        frozen_layers
    };
    (end > 0 && augmentation.is_off() && !recompute_frozen).then_some(end)
}

/// Runs layers `0..end` of `trainer` over every image of `data`, or returns `None` when the
/// cache would exceed `FEATURE_CACHE_LIMIT`.
pub(crate) fn build_feature_cache(
    trainer: &mut dyn Trainer,
    geometry: &Geometry,
    data: &ImageSet,
    tables: &[[f32; 256]],
    end: usize,
    cancel: Option<&AtomicBool>,
) -> Result<Option<FeatureCache>, MlError> {
    let item_len = geometry.input_len(end);
    if data.count * item_len * size_of::<f32>() > FEATURE_CACHE_LIMIT {
        return Ok(None);
    }
    let mut values = Vec::with_capacity(data.count * item_len);
    for_each_chunk(data, tables, cancel, |pixels, chunk| {
        trainer.forward_to(pixels, chunk.len(), end, &mut values)
    })?;
    Ok(Some(FeatureCache { end, values }))
}

/// Hands every image of `data`, in order, to `forward` in chunks of `FORWARD_CHUNK`: the
/// chunk's normalised pixels (no augmentation) and the indices of its images. Stops with
/// `MlError::Cancelled` between chunks once `cancel` is set. The one loop of every forward-only
/// pass: the feature cache, validation scoring, evaluation.
pub(crate) fn for_each_chunk(
    data: &ImageSet,
    tables: &[[f32; 256]],
    cancel: Option<&AtomicBool>,
    mut forward: impl FnMut(&[f32], &[usize]) -> Result<(), MlError>,
) -> Result<(), MlError> {
    let indices: Vec<usize> = (0..data.count).collect();
    let mut pixels = Vec::new();
    for chunk in indices.chunks(FORWARD_CHUNK) {
        if cancel.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(MlError::Cancelled);
        }
        fill_batch(data, chunk, tables, None, &mut pixels);
        forward(&pixels, chunk)?;
    }
    Ok(())
}
