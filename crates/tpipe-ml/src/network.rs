//! The net on a burn device: its parameters as plain tensors and its forward pass.
//!
//! The net is written with burn's functional ops (`conv2d`, `max_pool2d`, `linear`) instead of
//! `burn::nn` modules because training needs control that the module/optimizer stack does not
//! give cheaply: frozen layers must run outside autodiff entirely (no graph, no backward), and
//! the optimizer must treat weights and biases differently (decay, learning-rate multiplier).
//! Parameters are kept without autodiff; each training step wraps the trainable ones as fresh
//! autodiff leaves (see `train.rs`).

use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::module::{conv2d, linear, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::config::{Geometry, LAYER_COUNT};
use crate::error::MlError;
use crate::weights::HostLayer;

/// One layer's parameters: a rank-`D` weight and a bias.
#[derive(Clone, Debug)]
pub(crate) struct LayerParams<const D: usize> {
    pub weight: Tensor<D>,
    pub bias: Tensor<1>,
}

/// A conv layer's parameters; the weight is `[out, in, k, k]` as in PyTorch.
pub(crate) type ConvParams = LayerParams<4>;

/// A linear layer's parameters; the weight is `[in, out]`, burn's layout (PyTorch's transposed).
pub(crate) type LinearParams = LayerParams<2>;

impl<const D: usize> LayerParams<D> {
    /// The parameters as fresh autodiff leaves that collect gradients (for one training step).
    pub(crate) fn tracked(self) -> Self {
        LayerParams {
            weight: self.weight.autodiff().require_grad(),
            bias: self.bias.autodiff().require_grad(),
        }
    }
}

/// All eight layers on one device.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    pub conv: Vec<ConvParams>,
    pub linear: Vec<LinearParams>,
    pub geometry: Geometry,
}

/// Where the forward pass switches from plain tensors to autodiff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tracking {
    /// Inference: nothing is tracked.
    Off,
    /// Training: the activation entering layer `first_trainable` (0-based) becomes an autodiff
    /// tensor, so the frozen layers below it record no graph and get no backward pass.
    From { first_trainable: usize },
}

pub(crate) fn transpose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for row in 0..rows {
        for column in 0..columns {
            out[column * rows + row] = values[row * columns + column];
        }
    }
    out
}

/// Reads a tensor back to the host as f32.
pub(crate) fn read_back<const D: usize>(
    tensor: Tensor<D>,
    backend: &str,
) -> Result<Vec<f32>, MlError> {
    let failed = |reason: String| MlError::Backend {
        backend: backend.to_string(),
        reason,
    };
    tensor
        .without_autodiff()
        .try_into_data()
        .map_err(|error| failed(format!("{error:?}")))?
        .try_into_vec::<f32>()
        .map_err(|error| failed(format!("{error:?}")))
}

impl Network {
    /// Uploads host weights (PyTorch layout) to `device`.
    pub(crate) fn upload(layers: &[HostLayer], geometry: &Geometry, device: &Device) -> Self {
        let bias = |layer: &HostLayer| {
            Tensor::<1>::from_data(
                TensorData::new(layer.bias.clone(), [layer.bias.len()]),
                device,
            )
        };
        let conv = layers[..5]
            .iter()
            .map(|layer| {
                let shape: [usize; 4] = layer.weight_shape.clone().try_into().expect("rank 4");
                ConvParams {
                    weight: Tensor::from_data(TensorData::new(layer.weight.clone(), shape), device),
                    bias: bias(layer),
                }
            })
            .collect();
        let linear = layers[5..]
            .iter()
            .map(|layer| {
                let (out_features, in_features) = (layer.weight_shape[0], layer.weight_shape[1]);
                let weight = transpose(&layer.weight, out_features, in_features);
                LinearParams {
                    weight: Tensor::from_data(
                        TensorData::new(weight, [in_features, out_features]),
                        device,
                    ),
                    bias: bias(layer),
                }
            })
            .collect();
        Network {
            conv,
            linear,
            geometry: geometry.clone(),
        }
    }

    /// Reads every layer back in PyTorch layout.
    pub(crate) fn download(&self, backend: &str) -> Result<Vec<HostLayer>, MlError> {
        let mut layers = Vec::with_capacity(LAYER_COUNT);
        for (index, params) in self.conv.iter().enumerate() {
            layers.push(HostLayer {
                weight: read_back(params.weight.clone(), backend)?,
                weight_shape: self.geometry.weight_shape(index).0,
                bias: read_back(params.bias.clone(), backend)?,
            });
        }
        for (offset, params) in self.linear.iter().enumerate() {
            let (weight_shape, _) = self.geometry.weight_shape(5 + offset);
            let weight = read_back(params.weight.clone(), backend)?;
            layers.push(HostLayer {
                weight: transpose(&weight, weight_shape[1], weight_shape[0]),
                weight_shape,
                bias: read_back(params.bias.clone(), backend)?,
            });
        }
        Ok(layers)
    }

    /// Logits `[batch, classes]` for a normalised NCHW batch (a tensor without autodiff).
    ///
    /// `dropout_masks`, in training only, holds one mask per fc6/fc7 output with entries 0 or
    /// 1/(1-p); they apply whether or not the layer is frozen.
    pub(crate) fn forward(
        &self,
        input: Tensor<4>,
        tracking: Tracking,
        dropout_masks: Option<&[Tensor<2>; 2]>,
    ) -> Tensor<2> {
        match self.run_layers(
            0..LAYER_COUNT,
            Activation::Maps(input),
            tracking,
            dropout_masks,
        ) {
            Activation::Features(logits) => logits,
            _ => unreachable!("fc8 outputs features"),
        }
    }

    /// Pool, bias and ReLU after the convolution of layer `index`.
    ///
    /// Pooling before the bias and the ReLU gives the same values (both commute with a
    /// per-channel max) on a quarter of the elements, and a bias added by broadcasting gets its
    /// gradient from one reduction instead of flex's transposed copy of the whole output
    /// gradient.
    fn finish_conv(&self, index: usize, mut maps: Tensor<4>) -> Activation {
        if self.geometry.conv[index].max_pool {
            maps = max_pool2d(maps, MaxPoolOptions::new([2, 2]));
        }
        let bias = &self.conv[index].bias;
        let channels = bias.dims()[0];
        Activation::Maps(relu(maps + bias.clone().reshape([1, channels, 1, 1])))
    }

    /// Runs layers `layers` (0-based) on `input`, the output of the layer before the range
    /// after its ReLU and before its dropout (or the normalised images when the range starts at
    /// 0). A range starting after fc6 or fc7 first applies that layer's dropout mask, so a
    /// cached fc6 output behaves exactly like one computed in the step.
    pub(crate) fn run_layers(
        &self,
        layers: std::ops::Range<usize>,
        input: Activation,
        tracking: Tracking,
        dropout_masks: Option<&[Tensor<2>; 2]>,
    ) -> Activation {
        let enters_autodiff = |layer: usize| matches!(tracking, Tracking::From { first_trainable } if first_trainable == layer);
        let mut x = input;
        for index in layers.clone() {
            if enters_autodiff(index) {
                x = x.autodiff();
            }
            x = match x {
                Activation::Conv1Columns {
                    columns,
                    out_height,
                    out_width,
                } => {
                    assert_eq!(index, 0, "columns feed conv1 only");
                    let params = &self.conv[0];
                    let [out_channels, in_channels, kernel, _] = params.weight.dims();
                    let weight = params.weight.clone().reshape([
                        1,
                        out_channels,
                        in_channels * kernel * kernel,
                    ]);
                    let batch = columns.dims()[0];
                    let maps = weight.matmul(columns).reshape([
                        batch,
                        out_channels,
                        out_height,
                        out_width,
                    ]);
                    self.finish_conv(0, maps)
                }
                Activation::Maps(maps) if index < 5 => {
                    let shape = &self.geometry.conv[index];
                    let options = ConvOptions::new(
                        [shape.stride, shape.stride],
                        [shape.padding, shape.padding],
                        [1, 1],
                        1,
                    );
                    let maps = conv2d(maps, self.conv[index].weight.clone(), None, options);
                    self.finish_conv(index, maps)
                }
                Activation::Maps(_) => panic!("layer {} needs features, got maps", index + 1),
                Activation::Features(_) if index < 5 => {
                    panic!("layer {} needs maps, got features", index + 1)
                }
                Activation::Features(mut h) => {
                    let offset = index - 5;
                    if index == layers.start && offset > 0 {
                        if let Some(masks) = dropout_masks {
                            h = h.mul(masks[offset - 1].clone());
                        }
                    }
                    h = linear(
                        h,
                        self.linear[offset].weight.clone(),
                        Some(self.linear[offset].bias.clone()),
                    );
                    if offset < 2 {
                        h = relu(h);
                        // Dropout after the last layer of the range is left to the next range.
                        if let (Some(masks), true) = (dropout_masks, index + 1 < layers.end) {
                            h = h.mul(masks[offset].clone());
                        }
                    }
                    Activation::Features(h)
                }
            };
            if index == 4 {
                x = x.flatten();
            }
        }
        x
    }
}

/// What flows between layers: conv maps `[batch, channels, height, width]` up to conv5, flat
/// features `[batch, width]` from conv5's flattened output on.
#[derive(Clone, Debug)]
pub(crate) enum Activation {
    Maps(Tensor<4>),
    Features(Tensor<2>),
    /// conv1's input unfolded on the host, `[batch, in_channels·k·k, out_height·out_width]`
    /// (see `conv1_columns`), so conv1 is a matmul.
    Conv1Columns {
        columns: Tensor<3>,
        out_height: usize,
        out_width: usize,
    },
}

impl Activation {
    fn autodiff(self) -> Self {
        match self {
            Activation::Maps(maps) => Activation::Maps(maps.autodiff()),
            Activation::Features(features) => Activation::Features(features.autodiff()),
            Activation::Conv1Columns {
                columns,
                out_height,
                out_width,
            } => Activation::Conv1Columns {
                columns: columns.autodiff(),
                out_height,
                out_width,
            },
        }
    }

    fn flatten(self) -> Self {
        match self {
            Activation::Maps(maps) => {
                let [batch, channels, height, width] = maps.dims();
                Activation::Features(maps.reshape([batch, channels * height * width]))
            }
            features => features,
        }
    }

    /// Builds an activation of `batch` items of `item_shape` from host values.
    pub(crate) fn from_values(
        values: Vec<f32>,
        batch: usize,
        item_shape: &[usize],
        device: &Device,
    ) -> Self {
        match *item_shape {
            [channels, height, width] => Activation::Maps(Tensor::from_data(
                TensorData::new(values, [batch, channels, height, width]),
                device,
            )),
            [width] => Activation::Features(Tensor::from_data(
                TensorData::new(values, [batch, width]),
                device,
            )),
            _ => unreachable!("activations are maps or features"),
        }
    }

    /// Reads the values back to the host.
    pub(crate) fn read_back(self, backend: &str) -> Result<Vec<f32>, MlError> {
        match self {
            Activation::Maps(maps) => read_back(maps, backend),
            Activation::Features(features) => read_back(features, backend),
            Activation::Conv1Columns { columns, .. } => read_back(columns, backend),
        }
    }
}

/// Mean cross-entropy of `logits` against one-hot `targets` (a constant tensor).
pub(crate) fn cross_entropy(logits: Tensor<2>, one_hot_targets: Tensor<2>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    log_softmax(logits, 1)
        .mul(one_hot_targets)
        .sum()
        .mul_scalar(-1.0 / batch as f64)
}

/// Unfolds a normalised NCHW batch for conv1 (zero padding, as `conv2d` pads), giving
/// `[batch, channels·k·k, out_height·out_width]` values with row `(c·k + dy)·k + dx`, which
/// matches conv1's weight `[out, c, k, k]` flattened to `[out, c·k·k]`.
///
/// Training with a trainable conv1 feeds it as a matmul: flex's conv weight gradient for a
/// one-channel input runs on a single thread through transposed copies (16 of 90 ms of a full
/// step's backward on the reference net); a matmul's gradient is one batched product.
pub(crate) fn conv1_columns(
    pixels: &[f32],
    batch: usize,
    geometry: &Geometry,
) -> (Vec<f32>, usize, usize) {
    let (channels, height, width) = (geometry.channels, geometry.height, geometry.width);
    let conv = &geometry.conv[0];
    let (kernel, stride, padding) = (conv.kernel, conv.stride, conv.padding);
    let out_height = (height + 2 * padding - kernel) / stride + 1;
    let out_width = (width + 2 * padding - kernel) / stride + 1;
    let positions = out_height * out_width;
    let rows = channels * kernel * kernel;
    let mut columns = vec![0f32; batch * rows * positions];
    for (image, out) in pixels
        .chunks_exact(channels * height * width)
        .zip(columns.chunks_exact_mut(rows * positions))
    {
        for channel in 0..channels {
            let plane = &image[channel * height * width..(channel + 1) * height * width];
            for dy in 0..kernel {
                for dx in 0..kernel {
                    let row = (channel * kernel + dy) * kernel + dx;
                    let out_row = &mut out[row * positions..(row + 1) * positions];
                    for oy in 0..out_height {
                        let y = (oy * stride + dy) as isize - padding as isize;
                        if y < 0 || y >= height as isize {
                            continue;
                        }
                        let source_row = &plane[y as usize * width..(y as usize + 1) * width];
                        for ox in 0..out_width {
                            let x = (ox * stride + dx) as isize - padding as isize;
                            if x >= 0 && x < width as isize {
                                out_row[oy * out_width + ox] = source_row[x as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    (columns, out_height, out_width)
}
