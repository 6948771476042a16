//! Step-by-step traces of a training, for comparing implementations (native, flex, PyTorch).
//!
//! A trace holds everything another implementation needs to repeat the same steps without
//! tpipe's random streams: the starting state, and for every step the normalised (and
//! augmented) images, their labels, the dropout masks and the learning rate; plus what tpipe
//! computed: the loss and the state after the step.
//!
//! With a teacher (another implementation's states), every step starts from the teacher's
//! state after the step before, so each step is compared on its own: rounding cannot build up
//! over many steps, and a difference in one step shows where it arises.

use crate::config::{NetConfig, TrainConfig};
use crate::data::{fill_batch, ImageSet};
use crate::error::MlError;
use crate::options::RunOptions;
use crate::train::{start, train_observed, StepDone, StepObserver, Transfer};
use crate::trainer::{LayerState, Trainer, TrainingState};

/// What to trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceOptions<'a> {
    /// Stop after this many steps (0: the whole training).
    pub max_steps: usize,
    /// Teacher forcing: before step k ≥ 1 the trainer's state becomes `teacher[k − 1]`, the
    /// state another implementation reached after step k − 1 from the same start and batches.
    pub teacher: Option<&'a [TrainingState]>,
}

/// One SGD step as a training ran it.
#[derive(Clone, Debug)]
pub struct TracedStep {
    /// 0-based epoch.
    pub epoch: usize,
    /// Indices of the batch's images in the training set, in batch order.
    pub indices: Vec<usize>,
    /// The batch as the net saw it: normalised, augmented, NCHW (also when the step started
    /// from cached frozen features: these are the images they came from).
    pub inputs: Vec<f32>,
    /// The batch's labels.
    pub labels: Vec<u32>,
    /// The masks after fc6 and fc7 (`[batch, width]`, entries 0 or 1/(1-p)), when dropout is on.
    pub dropout_masks: Option<[Vec<f32>; 2]>,
    /// The weights' learning rate of this step (biases learn at their multiple of it).
    pub learning_rate: f64,
    /// Mean cross-entropy of the batch before the update.
    pub loss: f64,
    /// The layers and momentum buffers after the update.
    pub state: TrainingState,
}

/// The first steps of a training, traced.
#[derive(Clone, Debug)]
pub struct TrainingTrace {
    /// The layers before the first step (copied and fresh ones), without momentum.
    pub start: TrainingState,
    /// Layers 1..=frozen_layers were frozen.
    pub frozen_layers: usize,
    /// The steps, in order.
    pub steps: Vec<TracedStep>,
    /// The backend that ran.
    pub backend: String,
}

/// Runs `train` for at most `trace.max_steps` steps and records each one (see
/// [`TrainingTrace`]).
pub fn trace_training(
    net: &NetConfig,
    config: &TrainConfig,
    data: &ImageSet,
    transfer: Option<Transfer<'_>>,
    options: &RunOptions<'_>,
    trace: TraceOptions<'_>,
) -> Result<TrainingTrace, MlError> {
    let start = start(net, config, data, transfer)?;
    let mut recorder = Recorder {
        data,
        trace,
        steps: Vec::new(),
    };
    let outcome = train_observed(net, config, data, None, transfer, options, &mut recorder)?;
    Ok(TrainingTrace {
        start: TrainingState {
            layers: start
                .weights
                .layers
                .into_iter()
                .map(|layer| LayerState {
                    weight: layer.weight,
                    weight_shape: layer.weight_shape,
                    bias: layer.bias,
                    velocity: None,
                })
                .collect(),
        },
        frozen_layers: start.frozen_layers,
        steps: recorder.steps,
        backend: outcome.backend,
    })
}

struct Recorder<'a> {
    data: &'a ImageSet,
    trace: TraceOptions<'a>,
    steps: Vec<TracedStep>,
}

impl StepObserver for Recorder<'_> {
    fn before_step(&mut self, step: usize, trainer: &mut dyn Trainer) -> Result<(), MlError> {
        if let Some(state) = step
            .checked_sub(1)
            .and_then(|before| self.trace.teacher?.get(before))
        {
            trainer.restore(state)?;
        }
        Ok(())
    }

    fn after_step(&mut self, done: &StepDone<'_>, trainer: &dyn Trainer) -> Result<bool, MlError> {
        let batch = done.batch;
        let inputs = if batch.first_layer == 0 {
            batch.inputs.to_vec()
        } else {
            // A cached step's rows came from the images without augmentation.
            let mut images = Vec::new();
            fill_batch(self.data, done.indices, done.tables, None, &mut images);
            images
        };
        self.steps.push(TracedStep {
            epoch: done.epoch,
            indices: done.indices.to_vec(),
            inputs,
            labels: batch.labels.iter().map(|&label| label as u32).collect(),
            dropout_masks: batch.masks.map(|masks| masks.map(<[f32]>::to_vec)),
            learning_rate: done.learning_rate,
            loss: done.loss,
            state: trainer.state()?,
        });
        Ok(self.trace.max_steps == 0 || self.steps.len() < self.trace.max_steps)
    }
}
