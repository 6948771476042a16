//! Weights on the host and their canonical safetensors bytes.
//!
//! The bytes are written here by hand rather than with `safetensors::serialize`, whose
//! `__metadata__` map is a `HashMap` and so comes out in a different order from run to run.
//! The layout is the one the format prescribes (8-byte little-endian header length, JSON header,
//! raw little-endian data) with everything pinned: tensors sorted by name, metadata keys sorted,
//! no whitespace, the header padded with spaces to a multiple of 8. Reading goes through the
//! `safetensors` crate, so every file we write is also checked to be one it accepts.

use std::collections::BTreeMap;

use crate::config::{Geometry, InitScheme, NetConfig, LAYER_COUNT, LAYER_NAMES};
use crate::data::Normalization;
use crate::error::MlError;
use crate::rng::{Purpose, Rng};

const KEY_ARCHITECTURE: &str = "tpipe.architecture";
const KEY_MEAN: &str = "tpipe.input_mean";
const KEY_STD: &str = "tpipe.input_std";
const KEY_FORMAT_VERSION: &str = "tpipe.weights_version";
const FORMAT_VERSION: &str = "1";

/// One layer's parameters in PyTorch layout (conv `[out, in, k, k]`, linear `[out, in]`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HostLayer {
    pub weight: Vec<f32>,
    pub weight_shape: Vec<usize>,
    pub bias: Vec<f32>,
}

/// All eight layers plus the input normalisation they were trained under (absent for untrained
/// initial weights).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HostWeights {
    pub layers: Vec<HostLayer>,
    pub normalization: Option<Normalization>,
}

/// Draws layer `index` (0-based) afresh. Each layer has its own random stream, so layer k's
/// values depend only on the seed and its own shape: a transfer that re-initialises layers
/// n+1..8 gets exactly the values `initial_weights` would give those layers.
pub(crate) fn init_layer(
    net: &NetConfig,
    geometry: &Geometry,
    index: usize,
    seed: u64,
) -> HostLayer {
    let (weight_shape, bias_len) = geometry.weight_shape(index);
    let (weight_std, bias_value) = match net.init {
        InitScheme::Paper => {
            let std = if index == 5 || index == 6 {
                0.005
            } else {
                0.01
            };
            // conv1, conv3 and fc8 start with bias 0, the others with 1.
            let bias = if matches!(index, 0 | 2 | 7) { 0.0 } else { 1.0 };
            (std, bias)
        }
        InitScheme::Modern => {
            let gain = if index == LAYER_COUNT - 1 { 1.0 } else { 2.0 };
            ((gain / geometry.fan_in(index) as f64).sqrt(), 0.0)
        }
    };
    let mut weight = vec![0f32; weight_shape.iter().product()];
    Rng::stream(seed, Purpose::Init, index as u64 + 1).fill_normal(&mut weight, weight_std);
    HostLayer {
        weight,
        weight_shape,
        bias: vec![bias_value; bias_len],
    }
}

pub(crate) fn init_weights(net: &NetConfig, geometry: &Geometry, seed: u64) -> HostWeights {
    HostWeights {
        layers: (0..LAYER_COUNT)
            .map(|index| init_layer(net, geometry, index, seed))
            .collect(),
        normalization: None,
    }
}

fn format_floats(values: &[f32]) -> String {
    // `{}` on f32 prints the shortest text that parses back to the same value.
    let parts: Vec<String> = values.iter().map(|value| format!("{value}")).collect();
    format!("[{}]", parts.join(","))
}

fn parse_floats(text: &str, key: &str) -> Result<Vec<f32>, MlError> {
    let bad = || MlError::BadWeights(format!("metadata `{key}` is not a list of numbers: {text}"));
    let inner = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(bad)?;
    inner
        .split(',')
        .map(|part| part.trim().parse::<f32>().map_err(|_| bad()))
        .collect()
}

impl HostWeights {
    /// The canonical safetensors bytes.
    pub(crate) fn to_safetensors(&self, net: &NetConfig) -> Vec<u8> {
        let mut metadata = BTreeMap::new();
        metadata.insert("format", "pt".to_string());
        metadata.insert(KEY_ARCHITECTURE, net.architecture_tag());
        metadata.insert(KEY_FORMAT_VERSION, FORMAT_VERSION.to_string());
        if let Some(normalization) = &self.normalization {
            metadata.insert(KEY_MEAN, format_floats(&normalization.mean));
            metadata.insert(KEY_STD, format_floats(&normalization.std));
        }

        let mut tensors: BTreeMap<String, (&[usize], &[f32])> = BTreeMap::new();
        let bias_shapes: Vec<[usize; 1]> =
            self.layers.iter().map(|layer| [layer.bias.len()]).collect();
        for ((name, layer), bias_shape) in LAYER_NAMES.iter().zip(&self.layers).zip(&bias_shapes) {
            tensors.insert(
                format!("{name}.weight"),
                (layer.weight_shape.as_slice(), layer.weight.as_slice()),
            );
            tensors.insert(
                format!("{name}.bias"),
                (bias_shape.as_slice(), layer.bias.as_slice()),
            );
        }

        let json = |text: &str| serde_json::to_string(text).expect("strings always serialise");
        let mut header = String::from("{\"__metadata__\":{");
        let entries: Vec<String> = metadata
            .iter()
            .map(|(key, value)| format!("{}:{}", json(key), json(value)))
            .collect();
        header.push_str(&entries.join(","));
        header.push('}');
        let mut offset = 0usize;
        for (name, (shape, values)) in &tensors {
            let end = offset + values.len() * 4;
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            header.push_str(&format!(
                ",{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
                json(name),
                dims.join(",")
            ));
            offset = end;
        }
        header.push('}');
        while header.len() % 8 != 0 {
            header.push(' ');
        }

        let mut bytes = Vec::with_capacity(8 + header.len() + offset);
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for (_, values) in tensors.values() {
            for value in values.iter() {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        }
        bytes
    }

    /// Reads weights for `net`, checking names, dtypes, shapes and the architecture tag.
    pub(crate) fn from_safetensors(
        bytes: &[u8],
        net: &NetConfig,
        geometry: &Geometry,
    ) -> Result<HostWeights, MlError> {
        let not_safetensors =
            |error: safetensors::SafeTensorError| MlError::BadWeights(format!("{error:?}"));
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
        let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let metadata = header.metadata().clone().unwrap_or_default();

        if let Some(tag) = metadata.get(KEY_ARCHITECTURE) {
            let expected = net.architecture_tag();
            if *tag != expected {
                return Err(MlError::BadWeights(format!(
                    "they were made for the net `{tag}`, not `{expected}`"
                )));
            }
        }

        let normalization = match (metadata.get(KEY_MEAN), metadata.get(KEY_STD)) {
            (Some(mean), Some(std)) => {
                let normalization = Normalization {
                    mean: parse_floats(mean, KEY_MEAN)?,
                    std: parse_floats(std, KEY_STD)?,
                };
                if normalization.mean.len() != geometry.channels
                    || normalization.std.len() != geometry.channels
                {
                    return Err(MlError::BadWeights(format!(
                        "the stored input normalisation has {} channels, the net {}",
                        normalization.mean.len(),
                        geometry.channels
                    )));
                }
                Some(normalization)
            }
            _ => None,
        };

        let read = |name: String, expected: &[usize]| -> Result<Vec<f32>, MlError> {
            let view = tensors
                .tensor(&name)
                .map_err(|_| MlError::MissingTensor { name: name.clone() })?;
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(MlError::BadWeights(format!(
                    "tensor `{name}` is {:?}, expected F32",
                    view.dtype()
                )));
            }
            if view.shape() != expected {
                return Err(MlError::ShapeMismatch {
                    name,
                    expected: expected.to_vec(),
                    found: view.shape().to_vec(),
                });
            }
            Ok(view
                .data()
                .chunks_exact(4)
                .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4 bytes")))
                .collect())
        };

        let mut layers = Vec::with_capacity(LAYER_COUNT);
        for (index, name) in LAYER_NAMES.iter().enumerate() {
            let (weight_shape, bias_len) = geometry.weight_shape(index);
            let weight = read(format!("{name}.weight"), &weight_shape)?;
            let bias = read(format!("{name}.bias"), &[bias_len])?;
            layers.push(HostLayer {
                weight,
                weight_shape,
                bias,
            });
        }
        Ok(HostWeights {
            layers,
            normalization,
        })
    }

    /// Whether every value is finite.
    pub(crate) fn all_finite(&self) -> bool {
        self.layers.iter().all(|layer| {
            layer.weight.iter().all(|value| value.is_finite())
                && layer.bias.iter().all(|value| value.is_finite())
        })
    }
}
