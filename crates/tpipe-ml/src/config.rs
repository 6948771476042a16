//! Typed configuration of the net and of its training, and the shapes they imply.

use crate::error::MlError;

/// Number of layers; they are numbered 1..=8 as in the paper.
pub const LAYER_COUNT: usize = 8;

/// Names of the layers in order; the safetensors names are `<name>.weight` and `<name>.bias`.
pub const LAYER_NAMES: [&str; LAYER_COUNT] = [
    "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8",
];

/// One convolutional layer: convolution, ReLU, then an optional max-pool.
///
/// The pool is a 2×2 window with stride 2 (floor), not the paper's overlapping 3×3/2: on
/// 28×28 or 32×32 inputs it halves the size cleanly (28 → 14 → 7 → 3) where 3/2 would leave
/// 2×2 maps after three pools.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvLayerConfig {
    /// Number of filters.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride of the convolution.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Whether a 2×2, stride-2 max-pool follows the ReLU.
    pub max_pool: bool,
}

/// How fresh weights are drawn. Either way the draw comes from the crate's own generator, so it
/// is the same on every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InitScheme {
    /// As in the paper: Gaussian std 0.01 for conv1..conv5 and fc8, 0.005 for fc6 and fc7;
    /// biases 0 for conv1, conv3 and fc8, 1 for the others. Made for CaffeNet on raw pixels
    /// (minus the mean); on a small net with normalised inputs the signal shrinks layer by layer
    /// and training may never leave chance.
    Paper,
    /// Kaiming/He normal (std √(2 / fan_in)) for the ReLU layers conv1..fc7, LeCun normal
    /// (std √(1 / fan_in)) for the linear classifier fc8; all biases 0.
    Modern,
}

/// The architecture of the 8-layer net: five conv layers, fc6 and fc7 (ReLU then dropout), and
/// the classifier fc8.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NetConfig {
    /// conv1..conv5.
    pub conv: [ConvLayerConfig; 5],
    /// Widths of fc6 and fc7.
    pub fc_widths: [usize; 2],
    /// Dropout probability after fc6 and fc7 in training (0 disables it).
    pub dropout: f64,
    /// How fresh layers are initialised.
    pub init: InitScheme,
    /// Input channels (1 for grey, 3 for colour).
    pub channels: usize,
    /// Input height in pixels.
    pub height: usize,
    /// Input width in pixels.
    pub width: usize,
    /// Number of classes, the width of fc8.
    pub num_classes: usize,
}

impl NetConfig {
    /// A small CaffeNet-shaped net that trains quickly on a CPU.
    ///
    /// Filters 24, 64, 96, 96, 64 (CaffeNet's 96:256:384:384:256 divided by four), all 3×3 with
    /// padding 1, max-pools after conv1, conv2 and conv5 (as in CaffeNet), fc6 and fc7 512 wide,
    /// dropout 0.5, `InitScheme::Modern`. On 28×28×1 the maps are 14, 7, 7, 7, 3 pixels wide and
    /// fc6 sees 64·3·3 = 576 inputs; on 32×32×3 they are 16, 8, 8, 8, 4 and fc6 sees 1024.
    pub fn default_for(channels: usize, height: usize, width: usize, num_classes: usize) -> Self {
        let layer = |out_channels, max_pool| ConvLayerConfig {
            out_channels,
            kernel: 3,
            stride: 1,
            padding: 1,
            max_pool,
        };
        NetConfig {
            conv: [
                layer(24, true),
                layer(64, true),
                layer(96, false),
                layer(96, false),
                layer(64, true),
            ],
            fc_widths: [512, 512],
            dropout: 0.5,
            init: InitScheme::Modern,
            channels,
            height,
            width,
            num_classes,
        }
    }

    /// Checks the configuration and computes the shape of every layer.
    pub(crate) fn geometry(&self) -> Result<Geometry, MlError> {
        let invalid = |message: String| Err(MlError::InvalidConfig(message));
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return invalid(format!(
                "input size {}×{}×{} has a zero dimension",
                self.channels, self.height, self.width
            ));
        }
        if self.num_classes < 2 {
            return invalid(format!(
                "`num_classes` is {}, a classifier needs at least 2",
                self.num_classes
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return invalid(format!("`dropout` is {}, expected 0 ≤ p < 1", self.dropout));
        }
        if self.fc_widths.contains(&0) {
            return invalid("fc6 and fc7 need a width of at least 1".to_string());
        }
        let mut conv = Vec::with_capacity(5);
        let (mut in_channels, mut height, mut width) = (self.channels, self.height, self.width);
        for (index, layer) in self.conv.iter().enumerate() {
            let name = LAYER_NAMES[index];
            if layer.out_channels == 0 || layer.kernel == 0 || layer.stride == 0 {
                return invalid(format!(
                    "`{name}` needs out_channels, kernel and stride of at least 1"
                ));
            }
            // The convolution's output size, then the size after the optional pool.
            let sizes_after = |size: usize| -> Option<(usize, usize)> {
                let padded = size + 2 * layer.padding;
                let convolved = padded.checked_sub(layer.kernel)? / layer.stride + 1;
                let pooled = if layer.max_pool {
                    convolved / 2
                } else {
                    convolved
                };
                (pooled > 0).then_some((convolved, pooled))
            };
            let (Some((conv_height, out_height)), Some((conv_width, out_width))) =
                (sizes_after(height), sizes_after(width))
            else {
                return invalid(format!(
                    "`{name}` shrinks its {height}×{width} input to nothing \
                     (hint: use less stride or fewer max-pools for this image size)"
                ));
            };
            conv.push(ConvGeometry {
                in_channels,
                out_channels: layer.out_channels,
                kernel: layer.kernel,
                stride: layer.stride,
                padding: layer.padding,
                max_pool: layer.max_pool,
                in_height: height,
                in_width: width,
                conv_height,
                conv_width,
                out_height,
                out_width,
            });
            (in_channels, height, width) = (layer.out_channels, out_height, out_width);
        }
        let flattened = in_channels * height * width;
        let fc = [
            (flattened, self.fc_widths[0]),
            (self.fc_widths[0], self.fc_widths[1]),
            (self.fc_widths[1], self.num_classes),
        ];
        Ok(Geometry {
            conv: conv.try_into().expect("five conv layers"),
            fc,
            channels: self.channels,
            height: self.height,
            width: self.width,
        })
    }

    /// A canonical one-line description of everything that decides the shapes and the meaning
    /// of the weights (not dropout or init), e.g.
    /// `in1x28x28;conv16k3s1p1m,32k3s1p1m,48k3s1p1,48k3s1p1,32k3s1p1m;fc128,128;classes5`.
    /// Stored in the weights (`tpipe.architecture`) and compared on load.
    pub fn architecture_tag(&self) -> String {
        let conv: Vec<String> = self
            .conv
            .iter()
            .map(|layer| {
                format!(
                    "{}k{}s{}p{}{}",
                    layer.out_channels,
                    layer.kernel,
                    layer.stride,
                    layer.padding,
                    if layer.max_pool { "m" } else { "" }
                )
            })
            .collect();
        format!(
            "in{}x{}x{};conv{};fc{},{};classes{}",
            self.channels,
            self.height,
            self.width,
            conv.join(","),
            self.fc_widths[0],
            self.fc_widths[1],
            self.num_classes
        )
    }

    /// The net `tag` describes, or `None` unless `tag` is exactly what `architecture_tag`
    /// writes for some net. The tag leaves out dropout and init, which only matter in training;
    /// the net comes back with dropout 0 and `InitScheme::Modern`.
    pub(crate) fn from_architecture_tag(tag: &str) -> Option<NetConfig> {
        let mut sections = tag.split(';');
        let input = sections.next()?.strip_prefix("in")?;
        let conv = sections.next()?.strip_prefix("conv")?;
        let fc = sections.next()?.strip_prefix("fc")?;
        let classes = sections.next()?.strip_prefix("classes")?;
        if sections.next().is_some() {
            return None;
        }
        let [channels, height, width] = numbers(input, 'x')?;
        let fc_widths = numbers(fc, ',')?;
        let conv: Vec<ConvLayerConfig> = conv
            .split(',')
            .map(ConvLayerConfig::from_tag)
            .collect::<Option<_>>()?;
        let net = NetConfig {
            conv: conv.try_into().ok()?,
            fc_widths,
            dropout: 0.0,
            init: InitScheme::Modern,
            channels,
            height,
            width,
            num_classes: classes.parse().ok()?,
        };
        // `parse` also takes `+3` and `03`; only the canonical spelling names this net.
        (net.architecture_tag() == tag).then_some(net)
    }
}

impl ConvLayerConfig {
    /// One layer of an architecture tag: `{out}k{kernel}s{stride}p{padding}`, then `m` when a
    /// max-pool follows.
    fn from_tag(text: &str) -> Option<ConvLayerConfig> {
        let (text, max_pool) = match text.strip_suffix('m') {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        let (out_channels, rest) = text.split_once('k')?;
        let (kernel, rest) = rest.split_once('s')?;
        let (stride, padding) = rest.split_once('p')?;
        Some(ConvLayerConfig {
            out_channels: out_channels.parse().ok()?,
            kernel: kernel.parse().ok()?,
            stride: stride.parse().ok()?,
            padding: padding.parse().ok()?,
            max_pool,
        })
    }
}

/// Exactly `N` whole numbers separated by `separator`.
fn numbers<const N: usize>(text: &str, separator: char) -> Option<[usize; N]> {
    let values: Vec<usize> = text
        .split(separator)
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    values.try_into().ok()
}

/// Shape facts of one conv layer.
#[derive(Clone, Debug)]
pub(crate) struct ConvGeometry {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub max_pool: bool,
    /// Size of the layer's input maps.
    pub in_height: usize,
    pub in_width: usize,
    /// Size of the convolution's output, before the pool.
    pub conv_height: usize,
    pub conv_width: usize,
    /// Size of the layer's output maps, after the pool.
    pub out_height: usize,
    pub out_width: usize,
}

/// The shapes a valid `NetConfig` implies.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub conv: [ConvGeometry; 5],
    /// `(in_features, out_features)` of fc6, fc7, fc8.
    pub fc: [(usize, usize); 3],
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Geometry {
    /// Weight shape of layer `index` (0-based) in PyTorch layout, and its bias length.
    pub(crate) fn weight_shape(&self, index: usize) -> (Vec<usize>, usize) {
        if index < 5 {
            let conv = &self.conv[index];
            (
                vec![
                    conv.out_channels,
                    conv.in_channels,
                    conv.kernel,
                    conv.kernel,
                ],
                conv.out_channels,
            )
        } else {
            let (in_features, out_features) = self.fc[index - 5];
            (vec![out_features, in_features], out_features)
        }
    }

    /// The shape of one image's input to layer `index` (0-based; 8 means fc8's output, the
    /// logits): `[channels, height, width]` below fc6, `[width]` from fc6 on.
    pub(crate) fn input_shape(&self, index: usize) -> Vec<usize> {
        match index {
            0 => vec![self.channels, self.height, self.width],
            1..=4 => {
                let below = &self.conv[index - 1];
                vec![below.out_channels, below.out_height, below.out_width]
            }
            5..=7 => vec![self.fc[index - 5].0],
            _ => vec![self.fc[2].1],
        }
    }

    /// Values per image of the input of layer `index` (see `input_shape`).
    pub(crate) fn input_len(&self, index: usize) -> usize {
        self.input_shape(index).iter().product()
    }

    /// Fan-in of layer `index` (0-based).
    pub(crate) fn fan_in(&self, index: usize) -> usize {
        let (shape, _) = self.weight_shape(index);
        shape[1..].iter().product()
    }
}

/// How to train: SGD with momentum as in PyTorch (dampening 0), the paper's solver by default
/// apart from the step schedule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per SGD step; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Base learning rate of the weights.
    pub learning_rate: f64,
    /// SGD momentum (PyTorch semantics: `v = m·v + g`, `w -= lr·v`).
    pub momentum: f64,
    /// L2 weight decay, added to the gradient of weights only (never biases).
    pub weight_decay: f64,
    /// Multiply the learning rate by `lr_gamma` every this many epochs; 0 = never.
    pub lr_step_epochs: usize,
    /// Factor of the step schedule.
    pub lr_gamma: f64,
    /// Seeds fresh layers, shuffling, crops, flips and dropout.
    pub seed: u64,
    /// Random crops: pad each side with this many black pixels and crop back to size; 0 = off.
    pub augment_crop_padding: usize,
    /// Random horizontal flips with probability ½.
    pub augment_flip: bool,
    /// Biases learn at this multiple of the learning rate (the paper: 2).
    pub bias_lr_multiplier: f64,
}

impl Default for TrainConfig {
    /// The paper's solver settings (lr 0.01, momentum 0.9, weight decay 5e-4, biases 2× lr) with
    /// 10 epochs of batch 128, no schedule, no augmentation and seed 0.
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 128,
            learning_rate: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            lr_step_epochs: 0,
            lr_gamma: 0.1,
            seed: 0,
            augment_crop_padding: 0,
            augment_flip: false,
            bias_lr_multiplier: 2.0,
        }
    }
}

impl TrainConfig {
    pub(crate) fn validate(&self) -> Result<(), MlError> {
        let invalid = |message: String| Err(MlError::InvalidConfig(message));
        if self.epochs == 0 {
            return invalid("`epochs` is 0".to_string());
        }
        if self.batch_size == 0 {
            return invalid("`batch_size` is 0".to_string());
        }
        for (name, value) in [
            ("learning_rate", self.learning_rate),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
            ("lr_gamma", self.lr_gamma),
            ("bias_lr_multiplier", self.bias_lr_multiplier),
        ] {
            if !value.is_finite() || value < 0.0 {
                return invalid(format!("`{name}` is {value}, expected a finite value ≥ 0"));
            }
        }
        Ok(())
    }

    /// Learning rate of the weights during `epoch` (0-based).
    pub(crate) fn learning_rate_at(&self, epoch: usize) -> f64 {
        match self.lr_step_epochs {
            0 => self.learning_rate,
            step => self.learning_rate * self.lr_gamma.powi((epoch / step) as i32),
        }
    }
}
