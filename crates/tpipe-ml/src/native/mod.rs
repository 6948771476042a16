//! The native CPU path: the 8-layer net's forward pass, backward pass and SGD step written
//! out by hand over host buffers, with every product handed to the `gemm` crate.
//!
//! Why not burn's flex backend: on the grid's small nets a flex step spends most of its time
//! around the arithmetic (per-op allocation, transposed copies, a scatter-based input gradient,
//! autodiff bookkeeping on one thread), and it trains about a third as fast as PyTorch on the
//! same CPU. This path does what the net needs and nothing else:
//! - each conv layer is one unfold (im2col) and one product over the whole batch, in a
//!   channel-major layout where a layer's output is the next layer's input as it stands;
//! - pool, bias and ReLU run as one pass, and their backward as one pass;
//! - the input gradient is one product and a fold (col2im), and it is skipped below the lowest
//!   trainable layer; frozen layers run forward only;
//! - buffers live in a `Workspace` reused from step to step.
//!
//! It computes the same function as the burn path (`network.rs`), which tests check to float
//! rounding, but in another order, so its bytes differ from flex's; it is deterministic for
//! any number of threads (see `kernels.rs`).

pub(crate) mod kernels;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::config::{Geometry, NetConfig, TrainConfig, LAYER_COUNT};
use crate::error::MlError;
use crate::solver::{Parameter, Sgd};
use crate::trainer::{
    score_batch, Batch, LayerState, PhaseTimes, StepResult, Trainer, TrainingState,
};
use crate::weights::HostLayer;
use kernels::{Activate, ConvShape, Matrix};

/// Runs of the native path in progress in this process (trainings and evaluations).
static ACTIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// How one native run shares the cores with the others in the process.
///
/// Alone (or with fewer runs than rayon has threads) a run splits its kernels over rayon's
/// global pool. When the runs are at least as many as the threads, as when `tpipe run` trains
/// two nets at once on two cores, each run's work goes to a one-thread pool of its own: the
/// runs then proceed side by side without waiting on each other's parallel loops (two nets
/// of paper.yaml on two cores, `benches/paper_net_vs_pytorch.sh`: 970–1,380 img/s each through
/// the shared pool, 1,625–1,879 with a thread each). Results do not depend on this: the
/// kernels give the same bits for any thread count.
pub(crate) struct ThreadPlan {
    solo: rayon::ThreadPool,
}

impl ThreadPlan {
    /// Registers a run until the plan is dropped.
    pub(crate) fn enter() -> Result<Self, MlError> {
        let solo = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "tpipe-ml-native".to_string())
            .build()
            .map_err(|error| MlError::Backend {
                backend: "native".to_string(),
                reason: format!("cannot start a thread: {error}"),
            })?;
        ACTIVE_RUNS.fetch_add(1, Ordering::Relaxed);
        Ok(ThreadPlan { solo })
    }

    /// Runs `work` on the threads this run should use now.
    pub(crate) fn run<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        let active = ACTIVE_RUNS.load(Ordering::Relaxed);
        if active > 1 && active >= rayon::current_num_threads() {
            self.solo.install(work)
        } else {
            work()
        }
    }
}

impl Drop for ThreadPlan {
    fn drop(&mut self) {
        ACTIVE_RUNS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A net's parameters on the host (PyTorch layouts) and the buffers its passes reuse.
pub(crate) struct NativeNet {
    geometry: Geometry,
    pub layers: Vec<HostLayer>,
    work: Workspace,
}

/// Every buffer a pass writes, sized for the last batch and kept for the next.
#[derive(Default)]
struct Workspace {
    /// CNHW input of the lowest conv layer that runs.
    conv_input: Vec<f32>,
    /// Each conv layer's unfolded input, kept for its weight gradient.
    columns: [Vec<f32>; 5],
    /// A conv product before pooling (scratch).
    maps: Vec<f32>,
    /// Each conv layer's output after pool, bias and ReLU (CNHW).
    conv_out: [Vec<f32>; 5],
    /// Which input won each pooling window.
    winners: [Vec<u8>; 5],
    /// Inputs of fc6, fc7, fc8 (`[batch, width]`, after dropout).
    fc_in: [Vec<f32>; 3],
    /// Outputs of fc6, fc7 (after ReLU, before dropout) and fc8 (the logits).
    fc_out: [Vec<f32>; 3],
    /// Gradient flowing down, and the next one being formed.
    grad: Vec<f32>,
    grad_below: Vec<f32>,
    grad_maps: Vec<f32>,
    grad_columns: Vec<f32>,
    /// Partial weight gradients (see `kernels::matmul_long`).
    partials: Vec<f32>,
    weight_grads: [Vec<f32>; LAYER_COUNT],
    bias_grads: [Vec<f32>; LAYER_COUNT],
}

/// The dropout masks after fc6 and fc7 of a training step (`[batch, width]`), if any.
type Masks<'a> = Option<[&'a [f32]; 2]>;

/// `buffer` holding exactly `len` values (contents unspecified), without giving back capacity.
fn sized<T: Copy + Default>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    buffer.resize(len, T::default());
    &mut buffer[..len]
}

impl NativeNet {
    pub(crate) fn new(layers: Vec<HostLayer>, net: &NetConfig) -> Result<Self, MlError> {
        Ok(NativeNet {
            geometry: net.geometry()?,
            layers,
            work: Workspace::default(),
        })
    }

    /// The shapes of conv layer `index` for `batch` images.
    fn conv_shapes(&self, index: usize, batch: usize) -> (ConvShape, Activate) {
        let conv = &self.geometry.conv[index];
        let shape = ConvShape {
            batch,
            in_channels: conv.in_channels,
            height: conv.in_height,
            width: conv.in_width,
            kernel: conv.kernel,
            stride: conv.stride,
            padding: conv.padding,
            out_height: conv.conv_height,
            out_width: conv.conv_width,
        };
        let activate = Activate {
            channels: conv.out_channels,
            batch,
            height: conv.conv_height,
            width: conv.conv_width,
            pool: conv.max_pool,
        };
        (shape, activate)
    }

    /// Places `batch` image-major inputs of layer `first` (as a feature cache stores them) where
    /// `run_forward` reads them.
    fn load_input(&mut self, first: usize, batch: usize, items: &[f32]) {
        let item_len = self.geometry.input_len(first);
        let work = &mut self.work;
        match first {
            0..=4 => {
                let channels = if first == 0 {
                    self.geometry.channels
                } else {
                    self.geometry.conv[first - 1].out_channels
                };
                let positions = item_len / channels;
                let input = sized(&mut work.conv_input, batch * item_len);
                kernels::transpose_blocks(items, batch, channels, positions, input);
            }
            5 => sized(&mut work.fc_in[0], batch * item_len).copy_from_slice(items),
            _ => sized(&mut work.fc_out[first - 6], batch * item_len).copy_from_slice(items),
        }
    }

    /// Image-major values of the input of layer `end` after a forward pass over layers below it.
    fn store_output(&mut self, end: usize, batch: usize, out: &mut Vec<f32>) {
        let item_len = self.geometry.input_len(end);
        let start = out.len();
        out.resize(start + batch * item_len, 0.0);
        let out = &mut out[start..];
        match end {
            1..=4 => {
                let channels = self.geometry.conv[end - 1].out_channels;
                kernels::transpose_blocks(
                    &self.work.conv_out[end - 1],
                    channels,
                    batch,
                    item_len / channels,
                    out,
                );
            }
            5 => out.copy_from_slice(&self.work.fc_in[0][..batch * item_len]),
            // 8: the logits, for scoring a validation set during training.
            6..=8 => out.copy_from_slice(&self.work.fc_out[end - 6][..batch * item_len]),
            _ => unreachable!("a net has {LAYER_COUNT} layers"),
        }
    }

    /// Runs layers `first..end` on the input `load_input` placed (or conv1's input in
    /// `conv_input`). With `masks`, they apply after fc6 and fc7 (a
    /// range starting above fc6 or fc7 applies that layer's mask first, as the burn path does).
    fn run_forward(&mut self, layers: std::ops::Range<usize>, batch: usize, masks: Masks<'_>) {
        for index in layers.clone() {
            if index < 5 {
                self.conv_forward(index, index == layers.start, batch);
                if index == 4 {
                    let (_, activate) = self.conv_shapes(4, batch);
                    let positions = activate.out_len() / batch;
                    let work = &mut self.work;
                    let flat = sized(&mut work.fc_in[0], batch * activate.channels * positions);
                    kernels::transpose_blocks(
                        &work.conv_out[4],
                        activate.channels,
                        batch,
                        positions,
                        flat,
                    );
                }
                continue;
            }
            let fc = index - 5;
            if fc > 0 && index == layers.start {
                self.pass_dropout(fc - 1, batch, masks);
            }
            let (in_features, out_features) = self.geometry.fc[fc];
            let layer = &self.layers[index];
            let work = &mut self.work;
            let out = sized(&mut work.fc_out[fc], batch * out_features);
            kernels::matmul(
                out,
                Matrix::new(&work.fc_in[fc], batch, in_features),
                Matrix::new(&layer.weight, out_features, in_features).t(),
                false,
            );
            kernels::add_bias_rows(out, &layer.bias, fc < 2);
            if fc < 2 && index + 1 < layers.end {
                self.pass_dropout(fc, batch, masks);
            }
        }
    }

    /// `fc_in[fc + 1] = fc_out[fc] · mask` (or a copy without dropout).
    fn pass_dropout(&mut self, fc: usize, batch: usize, masks: Masks<'_>) {
        let width = self.geometry.fc[fc].1;
        let work = &mut self.work;
        let next = sized(&mut work.fc_in[fc + 1], batch * width);
        let out = &work.fc_out[fc][..batch * width];
        if let Some(masks) = masks {
            for ((n, &o), &m) in next.iter_mut().zip(out).zip(masks[fc]) {
                *n = o * m;
            }
        } else {
            next.copy_from_slice(out);
        }
    }

    fn conv_forward(&mut self, index: usize, from_input: bool, batch: usize) {
        let (shape, activate) = self.conv_shapes(index, batch);
        let layer = &self.layers[index];
        let work = &mut self.work;
        let (below, above) = work.conv_out.split_at_mut(index);
        let input: &[f32] = if from_input {
            &work.conv_input
        } else {
            &below[index - 1]
        };
        let (rows, count) = (shape.column_rows(), shape.column_count());
        let columns = sized(&mut work.columns[index], rows * count);
        kernels::unfold(input, &shape, columns);
        let maps = sized(&mut work.maps, activate.channels * count);
        kernels::matmul(
            maps,
            Matrix::new(&layer.weight, activate.channels, rows),
            Matrix::new(columns, rows, count),
            false,
        );
        let out_len = activate.channels * activate.out_len();
        let output = sized(&mut above[0], out_len);
        let winners = sized(&mut work.winners[index], out_len);
        activate.forward(maps, &layer.bias, output, winners);
    }

    /// Logits of a batch of normalised NCHW images, without dropout.
    pub(crate) fn logits(&mut self, pixels: &[f32], batch: usize) -> &[f32] {
        self.load_input(0, batch, pixels);
        self.run_forward(0..LAYER_COUNT, batch, None);
        &self.work.fc_out[2][..batch * self.geometry.fc[2].1]
    }

    /// Gradients of every layer from `first_trainable` up, from the gradient of the mean loss
    /// with respect to the logits (in `work.grad`), after a forward pass with the same inputs.
    fn backward(&mut self, first_trainable: usize, batch: usize, masks: Masks<'_>) {
        for index in (first_trainable..LAYER_COUNT).rev() {
            let needs_input_grad = index > first_trainable;
            if index >= 5 {
                self.fc_backward(index - 5, batch, masks, needs_input_grad);
            } else {
                self.conv_backward(index, batch, needs_input_grad);
            }
            std::mem::swap(&mut self.work.grad, &mut self.work.grad_below);
        }
    }

    /// fc layer `fc`: `work.grad` is the gradient at its output before the ReLU; leaves that of
    /// the layer below (before its ReLU, or of conv5's output maps) in `work.grad_below`.
    fn fc_backward(&mut self, fc: usize, batch: usize, masks: Masks<'_>, needs_input_grad: bool) {
        let (in_features, out_features) = self.geometry.fc[fc];
        let index = 5 + fc;
        let layer = &self.layers[index];
        let work = &mut self.work;
        let grad = &work.grad[..batch * out_features];
        kernels::matmul(
            sized(&mut work.weight_grads[index], out_features * in_features),
            Matrix::new(grad, batch, out_features).t(),
            Matrix::new(&work.fc_in[fc], batch, in_features),
            false,
        );
        kernels::column_sums(grad, sized(&mut work.bias_grads[index], out_features));
        if !needs_input_grad {
            return;
        }
        let below = sized(&mut work.grad_below, batch * in_features);
        kernels::matmul(
            below,
            Matrix::new(grad, batch, out_features),
            Matrix::new(&layer.weight, out_features, in_features),
            false,
        );
        if fc > 0 {
            // Through the dropout and the ReLU of the layer below.
            let output = &work.fc_out[fc - 1];
            for (position, g) in below.iter_mut().enumerate() {
                let mask = masks.map_or(1.0, |masks| masks[fc - 1][position]);
                *g = if output[position] > 0.0 {
                    *g * mask
                } else {
                    0.0
                };
            }
        } else {
            // Back to conv5's channel-major maps; `conv_backward` applies its ReLU.
            let (_, activate) = self.conv_shapes(4, batch);
            let positions = activate.out_len() / batch;
            let work = &mut self.work;
            let maps = sized(&mut work.grad, batch * in_features);
            kernels::transpose_blocks(&work.grad_below, batch, activate.channels, positions, maps);
            std::mem::swap(&mut work.grad, &mut work.grad_below);
        }
    }

    /// conv layer `index`: `work.grad` is the gradient at its output (after the ReLU); leaves
    /// that of its input in `work.grad_below`.
    fn conv_backward(&mut self, index: usize, batch: usize, needs_input_grad: bool) {
        let (shape, activate) = self.conv_shapes(index, batch);
        let layer = &self.layers[index];
        let work = &mut self.work;
        let (rows, count) = (shape.column_rows(), shape.column_count());
        let channels = activate.channels;
        let grad_maps = sized(&mut work.grad_maps, channels * count);
        activate.backward(
            &work.conv_out[index],
            &work.winners[index],
            &work.grad,
            grad_maps,
            sized(&mut work.bias_grads[index], channels),
        );
        kernels::matmul_long(
            sized(&mut work.weight_grads[index], channels * rows),
            Matrix::new(grad_maps, channels, count),
            Matrix::new(&work.columns[index], rows, count).t(),
            &mut work.partials,
        );
        if !needs_input_grad {
            return;
        }
        let grad_columns = sized(&mut work.grad_columns, rows * count);
        kernels::matmul(
            grad_columns,
            Matrix::new(&layer.weight, channels, rows).t(),
            Matrix::new(grad_maps, channels, count),
            false,
        );
        let plane = shape.height * shape.width;
        let below = sized(&mut work.grad_below, shape.in_channels * batch * plane);
        kernels::fold(grad_columns, &shape, below);
    }
}

/// One layer's momentum buffers (weight, bias); `None` until its first update.
type Velocity = (Option<Vec<f32>>, Option<Vec<f32>>);

/// A net being trained on the native path: its steps, run on the threads its plan gives.
pub(crate) struct NativeTrainer {
    steps: NativeSteps,
    plan: ThreadPlan,
}

/// Parameters, optimizer state and the step.
struct NativeSteps {
    net: NativeNet,
    /// 0-based index of the lowest trainable layer; layers below it are frozen.
    first_trainable: usize,
    velocities: Vec<Velocity>,
    num_classes: usize,
    solver: Sgd,
    times: PhaseTimes,
}

impl NativeTrainer {
    pub(crate) fn new(
        net: &NetConfig,
        config: &TrainConfig,
        layers: Vec<HostLayer>,
        frozen_layers: usize,
    ) -> Result<Self, MlError> {
        Ok(NativeTrainer {
            steps: NativeSteps {
                net: NativeNet::new(layers, net)?,
                first_trainable: frozen_layers,
                velocities: vec![(None, None); LAYER_COUNT],
                num_classes: net.num_classes,
                solver: Sgd::new(config),
                times: PhaseTimes::default(),
            },
            plan: ThreadPlan::enter()?,
        })
    }
}

impl NativeSteps {
    fn step(&mut self, batch: &Batch<'_>, learning_rate: f64) -> StepResult {
        let clock = Instant::now();
        let size = batch.size;
        self.net.load_input(batch.first_layer, size, batch.inputs);
        self.net
            .run_forward(batch.first_layer..LAYER_COUNT, size, batch.masks);
        let classes = self.num_classes;
        let logits = &self.net.work.fc_out[2][..size * classes];
        let result = score_batch(logits, batch.labels, classes);
        let grad = sized(&mut self.net.work.grad, size * classes);
        for ((grad, row), &label) in grad
            .chunks_exact_mut(classes)
            .zip(logits.chunks_exact(classes))
            .zip(batch.labels)
        {
            // d(mean cross-entropy)/d(logit) = (softmax − one-hot) / batch, in f64.
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let total: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            for (class, (g, &v)) in grad.iter_mut().zip(row).enumerate() {
                let probability = (v as f64 - max).exp() / total;
                let target = if class == label { 1.0 } else { 0.0 };
                *g = ((probability - target) / size as f64) as f32;
            }
        }
        let after_forward = Instant::now();

        self.net.backward(self.first_trainable, size, batch.masks);
        let after_backward = Instant::now();

        let work = &mut self.net.work;
        for index in self.first_trainable..LAYER_COUNT {
            let layer = &mut self.net.layers[index];
            let velocity = &mut self.velocities[index];
            self.solver.update(
                Parameter::Weight,
                learning_rate,
                &mut layer.weight,
                &mut work.weight_grads[index],
                &mut velocity.0,
            );
            self.solver.update(
                Parameter::Bias,
                learning_rate,
                &mut layer.bias,
                &mut work.bias_grads[index],
                &mut velocity.1,
            );
        }
        let after_update = Instant::now();

        self.times.forward += after_forward - clock;
        self.times.backward += after_backward - after_forward;
        self.times.update += after_update - after_backward;
        result
    }
}

impl Trainer for NativeTrainer {
    fn forward_to(
        &mut self,
        pixels: &[f32],
        batch: usize,
        end: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), MlError> {
        let (plan, net) = (&self.plan, &mut self.steps.net);
        plan.run(|| {
            net.load_input(0, batch, pixels);
            net.run_forward(0..end, batch, None);
            net.store_output(end, batch, out);
        });
        Ok(())
    }

    fn step(&mut self, batch: &Batch<'_>, learning_rate: f64) -> Result<StepResult, MlError> {
        let (plan, steps) = (&self.plan, &mut self.steps);
        Ok(plan.run(|| steps.step(batch, learning_rate)))
    }

    fn layers(&self) -> Result<Vec<HostLayer>, MlError> {
        Ok(self.steps.net.layers.clone())
    }

    fn state(&self) -> Result<TrainingState, MlError> {
        let steps = &self.steps;
        let layers = steps
            .net
            .layers
            .iter()
            .zip(&steps.velocities)
            .map(|(layer, velocity)| LayerState {
                weight: layer.weight.clone(),
                weight_shape: layer.weight_shape.clone(),
                bias: layer.bias.clone(),
                velocity: match velocity {
                    (Some(weight), Some(bias)) => Some((weight.clone(), bias.clone())),
                    _ => None,
                },
            })
            .collect();
        Ok(TrainingState { layers })
    }

    fn restore(&mut self, state: &TrainingState) -> Result<(), MlError> {
        let steps = &mut self.steps;
        state.check(&steps.net.geometry)?;
        for (index, layer) in state.layers.iter().enumerate() {
            steps.net.layers[index] = layer.host_layer();
            steps.velocities[index] = match &layer.velocity {
                Some((weight, bias)) => (Some(weight.clone()), Some(bias.clone())),
                None => (None, None),
            };
        }
        Ok(())
    }

    fn times(&mut self) -> &mut PhaseTimes {
        &mut self.steps.times
    }
}
