//! Weights on the host and their canonical safetensors bytes.
//!
//! The bytes are written here by hand rather than with `safetensors::serialize`, whose
//! `__metadata__` map is a `HashMap` and so comes out in a different order from run to run.
//! The layout is the one the format prescribes (8-byte little-endian header length, JSON header,
//! raw little-endian data) with everything pinned: tensors sorted by name, metadata keys sorted,
//! no whitespace, the header padded with spaces to a multiple of 8. Reading goes through the
//! `safetensors` crate, so every file we write is also checked to be one it accepts.
//! `with_metadata` rewrites a file through the same writer, so adding lineage to weights gives
//! the bytes `train` would have written with it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::config::{Geometry, InitScheme, NetConfig, LAYER_COUNT, LAYER_NAMES};
use crate::data::Normalization;
use crate::error::MlError;
use crate::rng::{Purpose, Rng};

const KEY_FORMAT: &str = "format";
const KEY_ARCHITECTURE: &str = "tpipe.architecture";
const KEY_MEAN: &str = "tpipe.input_mean";
const KEY_STD: &str = "tpipe.input_std";
const KEY_FORMAT_VERSION: &str = "tpipe.weights_version";
const FORMAT_VERSION: &str = "1";

/// Metadata keys this crate writes and reads; `with_metadata` refuses to set them, so a
/// caller's entries can never change what the weights mean.
const RESERVED_KEYS: [&str; 5] = [
    KEY_FORMAT,
    KEY_ARCHITECTURE,
    KEY_MEAN,
    KEY_STD,
    KEY_FORMAT_VERSION,
];

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
        metadata.insert(KEY_FORMAT.to_string(), "pt".to_string());
        metadata.insert(KEY_ARCHITECTURE.to_string(), net.architecture_tag());
        metadata.insert(KEY_FORMAT_VERSION.to_string(), FORMAT_VERSION.to_string());
        if let Some(normalization) = &self.normalization {
            metadata.insert(KEY_MEAN.to_string(), format_floats(&normalization.mean));
            metadata.insert(KEY_STD.to_string(), format_floats(&normalization.std));
        }

        let little_endian = |values: &[f32]| -> Vec<u8> {
            values
                .iter()
                .flat_map(|value| value.to_le_bytes())
                .collect()
        };
        let mut tensors = BTreeMap::new();
        for (name, layer) in LAYER_NAMES.iter().zip(&self.layers) {
            tensors.insert(
                format!("{name}.weight"),
                RawTensor {
                    dtype: safetensors::Dtype::F32,
                    shape: layer.weight_shape.clone(),
                    data: little_endian(&layer.weight).into(),
                },
            );
            tensors.insert(
                format!("{name}.bias"),
                RawTensor {
                    dtype: safetensors::Dtype::F32,
                    shape: vec![layer.bias.len()],
                    data: little_endian(&layer.bias).into(),
                },
            );
        }
        write_canonical(&metadata, &tensors)
    }

    /// Reads weights for `net`, checking names, dtypes, shapes and the architecture tag.
    pub(crate) fn from_safetensors(
        bytes: &[u8],
        net: &NetConfig,
        geometry: &Geometry,
    ) -> Result<HostWeights, MlError> {
        let metadata = weights_metadata(bytes)?;
        let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(not_safetensors)?;

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

    /// The number of classes stored weights were trained on: the length of `fc8.bias`.
    pub(crate) fn stored_classes(bytes: &[u8]) -> Result<usize, MlError> {
        let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
        let name = format!("{}.bias", LAYER_NAMES[LAYER_COUNT - 1]);
        let view = tensors
            .tensor(&name)
            .map_err(|_| MlError::MissingTensor { name: name.clone() })?;
        match view.shape() {
            [classes] => Ok(*classes),
            shape => Err(MlError::BadWeights(format!(
                "tensor `{name}` has shape {shape:?}, expected one dimension"
            ))),
        }
    }

    /// Whether every value is finite.
    pub(crate) fn all_finite(&self) -> bool {
        self.layers.iter().all(|layer| {
            layer.weight.iter().all(|value| value.is_finite())
                && layer.bias.iter().all(|value| value.is_finite())
        })
    }
}

/// A tensor as it is stored: dtype, shape and little-endian bytes.
struct RawTensor<'a> {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

/// The one writer of weight files, so that `to_safetensors` and `with_metadata` cannot drift
/// apart: metadata keys and tensors in sorted order (the maps are `BTreeMap`s), no whitespace,
/// data in the tensors' order, the header padded with spaces to a multiple of 8.
fn write_canonical(
    metadata: &BTreeMap<String, String>,
    tensors: &BTreeMap<String, RawTensor<'_>>,
) -> Vec<u8> {
    let json = |text: &str| serde_json::to_string(text).expect("strings always serialise");
    let mut header = String::from("{\"__metadata__\":{");
    let entries: Vec<String> = metadata
        .iter()
        .map(|(key, value)| format!("{}:{}", json(key), json(value)))
        .collect();
    header.push_str(&entries.join(","));
    header.push('}');
    let mut offset = 0usize;
    for (name, tensor) in tensors {
        let end = offset + tensor.data.len();
        let dims: Vec<String> = tensor.shape.iter().map(usize::to_string).collect();
        let dtype = serde_json::to_string(&tensor.dtype).expect("dtypes always serialise");
        header.push_str(&format!(
            ",{}:{{\"dtype\":{dtype},\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
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
    for tensor in tensors.values() {
        bytes.extend_from_slice(&tensor.data);
    }
    bytes
}

fn not_safetensors(error: safetensors::SafeTensorError) -> MlError {
    MlError::BadWeights(format!("{error:?}"))
}

/// The `__metadata__` map of a weights file (empty if it has none).
///
/// The whole header is checked, so bytes that are not a complete safetensors file fail with
/// `MlError::BadWeights`.
pub fn weights_metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>, MlError> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    Ok(header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

/// The same weights with `extra`'s entries added to their metadata, for records such as lineage
/// that should travel inside the file.
///
/// The result is exactly what `train` would have written had the entries been in its metadata:
/// the same canonical layout, so equal inputs give equal bytes, and the tensors' data is copied
/// unchanged. An entry replaces an earlier one with the same key (adding the same entries twice
/// changes nothing). The crate's own keys (`format`, `tpipe.architecture`, `tpipe.input_mean`,
/// `tpipe.input_std`, `tpipe.weights_version`) are refused with `MlError::ReservedMetadataKey`:
/// they decide how the weights are read. `evaluate` and transfers ignore the other keys.
pub fn with_metadata(bytes: &[u8], extra: &BTreeMap<String, String>) -> Result<Vec<u8>, MlError> {
    if let Some(key) = extra
        .keys()
        .find(|key| RESERVED_KEYS.contains(&key.as_str()))
    {
        return Err(MlError::ReservedMetadataKey { key: key.clone() });
    }
    let mut metadata = weights_metadata(bytes)?;
    metadata.extend(extra.clone());
    let stored = safetensors::SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let tensors = stored
        .iter()
        .map(|(name, view)| {
            let tensor = RawTensor {
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                data: Cow::Borrowed(view.data()),
            };
            (name.to_string(), tensor)
        })
        .collect();
    Ok(write_canonical(&metadata, &tensors))
}

/// The net a weights file was made for, read from its architecture tag (`tpipe.architecture`).
///
/// The tag records everything that decides the shapes and what the weights compute, but not
/// dropout or the init scheme, which only act in training: the net comes back with dropout 0
/// and `InitScheme::Modern`, ready for `evaluate` (set both before training from it). Weights
/// written for the returned net carry the same tag. The weights' tensors are checked against
/// the net, so a file that names one net and holds another is refused.
pub fn net_config_of_weights(bytes: &[u8]) -> Result<NetConfig, MlError> {
    let metadata = weights_metadata(bytes)?;
    let tag = metadata.get(KEY_ARCHITECTURE).ok_or_else(|| {
        MlError::BadWeights(format!(
            "they carry no `{KEY_ARCHITECTURE}` metadata, so their net is unknown \
             (hint: weights written by tpipe-ml always carry it)"
        ))
    })?;
    let net = NetConfig::from_architecture_tag(tag).ok_or_else(|| {
        MlError::BadWeights(format!(
            "their architecture tag `{tag}` is malformed (expected \
             `in{{c}}x{{h}}x{{w}};conv{{out}}k{{k}}s{{s}}p{{p}}[m],…;fc{{a}},{{b}};classes{{n}}` \
             with five conv layers)"
        ))
    })?;
    let geometry = net.geometry().map_err(|error| {
        MlError::BadWeights(format!(
            "their architecture tag `{tag}` names a net that cannot work: {error}"
        ))
    })?;
    HostWeights::from_safetensors(bytes, &net, &geometry)?;
    Ok(net)
}
