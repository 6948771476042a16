//! Training on a burn device (flex, LibTorch, wgpu): the [`Trainer`] whose arithmetic is burn's
//! ops and autodiff.

use std::time::Instant;

use burn::tensor::{Device, Gradients, Tensor, TensorData};

use crate::backend::ResolvedBackend;
use crate::config::{Geometry, NetConfig, TrainConfig, LAYER_COUNT};
use crate::data::images_tensor;
use crate::error::MlError;
use crate::network::{
    conv1_columns, cross_entropy, read_back, transpose, Activation, LayerParams, Network, Tracking,
};
use crate::options::Numerics;
use crate::solver::{Parameter, Sgd};
use crate::trainer::{
    score_batch, Batch, LayerState, PhaseTimes, StepResult, Trainer, TrainingState,
};
use crate::weights::HostLayer;

/// The largest unfolded conv1 batch (large images or kernels fall back to the convolution).
const CONV1_COLUMNS_LIMIT: usize = 256 << 20;

/// A layer's momentum buffers (weight, bias), in the layer's burn layout; empty until its first
/// update.
type Velocity<const D: usize> = (Option<Tensor<D>>, Option<Tensor<1>>);

/// A net being trained on a burn device: parameters, optimizer state and the step.
pub(crate) struct BurnTrainer {
    network: Network,
    /// 0-based index of the lowest trainable layer; layers below it are frozen.
    first_trainable: usize,
    conv_velocity: Vec<Velocity<4>>,
    linear_velocity: Vec<Velocity<2>>,
    device: Device,
    backend_name: String,
    num_classes: usize,
    solver: Sgd,
    times: PhaseTimes,
    numerics: Numerics,
}

impl BurnTrainer {
    pub(crate) fn new(
        net: &NetConfig,
        config: &TrainConfig,
        layers: &[HostLayer],
        frozen_layers: usize,
        backend: &ResolvedBackend,
        numerics: Numerics,
    ) -> Result<Self, MlError> {
        let geometry = net.geometry()?;
        Ok(BurnTrainer {
            network: Network::upload(layers, &geometry, &backend.device),
            first_trainable: frozen_layers,
            conv_velocity: vec![(None, None); 5],
            linear_velocity: vec![(None, None); 3],
            device: backend.device.clone(),
            backend_name: backend.name.clone(),
            num_classes: net.num_classes,
            solver: Sgd::new(config),
            times: PhaseTimes::default(),
            numerics,
        })
    }

    fn geometry(&self) -> &Geometry {
        &self.network.geometry
    }

    /// The batch's input as the activation layer `batch.first_layer` takes, on the device.
    fn input_activation(&self, batch: &Batch<'_>) -> Activation {
        let geometry = self.geometry();
        if batch.first_layer > 0 {
            return Activation::from_values(
                batch.inputs.to_vec(),
                batch.size,
                &geometry.input_shape(batch.first_layer),
                &self.device,
            );
        }
        let conv = &geometry.conv[0];
        let positions = conv.conv_height * conv.conv_width;
        let rows = geometry.channels * conv.kernel * conv.kernel;
        let columns_bytes = batch.size * rows * positions * size_of::<f32>();
        if self.first_trainable == 0
            && !self.numerics.conv1_as_conv
            && columns_bytes <= CONV1_COLUMNS_LIMIT
        {
            let (columns, out_height, out_width) =
                conv1_columns(batch.inputs, batch.size, geometry);
            let columns = Tensor::<3>::from_data(
                TensorData::new(columns, [batch.size, rows, positions]),
                &self.device,
            );
            Activation::Conv1Columns {
                columns,
                out_height,
                out_width,
            }
        } else {
            Activation::Maps(images_tensor(
                batch.inputs.to_vec(),
                batch.size,
                geometry,
                &self.device,
            ))
        }
    }

    /// Updates the trainable layers among `layers` (0-based network indices from
    /// `first_index`; those below `first_trainable` come back untouched), taking their gradients
    /// out of `grads` and advancing their momentum buffers.
    fn update_layers<const D: usize>(
        &self,
        layers: Vec<LayerParams<D>>,
        first_index: usize,
        grads: &mut Gradients,
        velocities: &mut [Velocity<D>],
        learning_rate: f64,
    ) -> Result<Vec<LayerParams<D>>, MlError> {
        let missing = |name: &str| MlError::Backend {
            backend: self.backend_name.clone(),
            reason: format!("no gradient for trainable parameter `{name}`"),
        };
        layers
            .into_iter()
            .zip(velocities)
            .enumerate()
            .map(|(offset, (params, velocity))| {
                if first_index + offset < self.first_trainable {
                    return Ok(params);
                }
                let mut weight_grad = params
                    .weight
                    .grad_remove(grads)
                    .ok_or_else(|| missing("weight"))?;
                let mut bias_grad = params
                    .bias
                    .grad_remove(grads)
                    .ok_or_else(|| missing("bias"))?;
                let mut weight = params.weight.without_autodiff();
                let mut bias = params.bias.without_autodiff();
                self.solver.update(
                    Parameter::Weight,
                    learning_rate,
                    &mut weight,
                    &mut weight_grad,
                    &mut velocity.0,
                );
                self.solver.update(
                    Parameter::Bias,
                    learning_rate,
                    &mut bias,
                    &mut bias_grad,
                    &mut velocity.1,
                );
                Ok(LayerParams { weight, bias })
            })
            .collect()
    }

    fn conv_tensor(&self, values: &[f32], shape: &[usize]) -> Result<Tensor<4>, MlError> {
        let shape: [usize; 4] = shape
            .try_into()
            .map_err(|_| MlError::InvalidConfig(format!("a conv weight of shape {shape:?}")))?;
        Ok(Tensor::from_data(
            TensorData::new(values.to_vec(), shape),
            &self.device,
        ))
    }
}

impl Trainer for BurnTrainer {
    fn forward_to(
        &mut self,
        pixels: &[f32],
        batch: usize,
        end: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), MlError> {
        let images = images_tensor(pixels.to_vec(), batch, self.geometry(), &self.device);
        let output = self
            .network
            .run_layers(0..end, Activation::Maps(images), Tracking::Off, None);
        out.extend(output.read_back(&self.backend_name)?);
        Ok(())
    }

    fn step(&mut self, batch: &Batch<'_>, learning_rate: f64) -> Result<StepResult, MlError> {
        let clock = Instant::now();
        let input = self.input_activation(batch);
        let mut one_hot = vec![0f32; batch.size * self.num_classes];
        for (row, &label) in batch.labels.iter().enumerate() {
            one_hot[row * self.num_classes + label] = 1.0;
        }
        let targets = Tensor::<2>::from_data(
            TensorData::new(one_hot, [batch.size, self.num_classes]),
            &self.device,
        );
        let masks = batch.masks.map(|masks| {
            masks.map(|mask| {
                let width = mask.len() / batch.size;
                Tensor::<2>::from_data(
                    TensorData::new(mask.to_vec(), [batch.size, width]),
                    &self.device,
                )
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
            batch.first_layer..LAYER_COUNT,
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

        let mut conv_velocity = std::mem::take(&mut self.conv_velocity);
        let mut linear_velocity = std::mem::take(&mut self.linear_velocity);
        self.network.conv = self.update_layers(
            tracked.conv,
            0,
            &mut grads,
            &mut conv_velocity,
            learning_rate,
        )?;
        self.network.linear = self.update_layers(
            tracked.linear,
            5,
            &mut grads,
            &mut linear_velocity,
            learning_rate,
        )?;
        (self.conv_velocity, self.linear_velocity) = (conv_velocity, linear_velocity);
        drop(grads);
        let after_update = Instant::now();

        let logits = read_back(logits, &self.backend_name)?;
        let result = score_batch(&logits, batch.labels, self.num_classes);
        let after_read_back = Instant::now();

        self.times.prepare += after_prepare - clock;
        self.times.forward += after_forward - after_prepare;
        self.times.backward += after_backward - after_forward;
        self.times.update += after_update - after_backward;
        self.times.read_back += after_read_back - after_update;
        Ok(result)
    }

    fn layers(&self) -> Result<Vec<HostLayer>, MlError> {
        self.network.download(&self.backend_name)
    }

    fn state(&self) -> Result<TrainingState, MlError> {
        let layers = self.layers()?;
        let mut velocities = Vec::with_capacity(LAYER_COUNT);
        for (weight, bias) in &self.conv_velocity {
            velocities.push(match (weight, bias) {
                (Some(weight), Some(bias)) => Some((
                    read_back(weight.clone(), &self.backend_name)?,
                    read_back(bias.clone(), &self.backend_name)?,
                )),
                _ => None,
            });
        }
        for (offset, (weight, bias)) in self.linear_velocity.iter().enumerate() {
            let (in_features, out_features) = self.geometry().fc[offset];
            velocities.push(match (weight, bias) {
                // burn keeps linear weights as `[in, out]`; the state is in PyTorch's `[out, in]`.
                (Some(weight), Some(bias)) => Some((
                    transpose(
                        &read_back(weight.clone(), &self.backend_name)?,
                        in_features,
                        out_features,
                    ),
                    read_back(bias.clone(), &self.backend_name)?,
                )),
                _ => None,
            });
        }
        Ok(TrainingState {
            layers: layers
                .into_iter()
                .zip(velocities)
                .map(|(layer, velocity)| LayerState {
                    weight: layer.weight,
                    weight_shape: layer.weight_shape,
                    bias: layer.bias,
                    velocity,
                })
                .collect(),
        })
    }

    fn restore(&mut self, state: &TrainingState) -> Result<(), MlError> {
        state.check(self.geometry())?;
        let layers: Vec<HostLayer> = state.layers.iter().map(LayerState::host_layer).collect();
        self.network = Network::upload(&layers, self.geometry(), &self.device);
        let bias = |values: &[f32]| {
            Tensor::<1>::from_data(
                TensorData::new(values.to_vec(), [values.len()]),
                &self.device,
            )
        };
        for (index, layer) in state.layers.iter().enumerate() {
            let Some((weight, bias_velocity)) = &layer.velocity else {
                if index < 5 {
                    self.conv_velocity[index] = (None, None);
                } else {
                    self.linear_velocity[index - 5] = (None, None);
                }
                continue;
            };
            if index < 5 {
                self.conv_velocity[index] = (
                    Some(self.conv_tensor(weight, &layer.weight_shape)?),
                    Some(bias(bias_velocity)),
                );
            } else {
                let (out_features, in_features) = (layer.weight_shape[0], layer.weight_shape[1]);
                let burn_layout = transpose(weight, out_features, in_features);
                self.linear_velocity[index - 5] = (
                    Some(Tensor::from_data(
                        TensorData::new(burn_layout, [in_features, out_features]),
                        &self.device,
                    )),
                    Some(bias(bias_velocity)),
                );
            }
        }
        Ok(())
    }

    fn times(&mut self) -> &mut PhaseTimes {
        &mut self.times
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
