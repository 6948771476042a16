//! The node kinds that train and score networks: `train` (a base net), `transfer` (layers 1..n
//! copied from a base net or left random, frozen or fine-tuned) and `evaluate`.
//!
//! Their schemas are always compiled, so pipelines validate and plan without burn; building
//! them needs the `ml` feature, which brings in the `tpipe-ml` crate.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::kind::{BuildContext, BuildError, BuildOutput, NodeKind, ParamProblem, UpstreamSpec};
use crate::kinds::split::SPLIT_DESCRIPTION;
use crate::schema::{Arity, InputSlot, ParamSpec, ParamType};

/// The code version of the three kinds, in every key: bump it whenever tpipe-ml's results
/// change. 2: conv1 as a matrix multiply and cached frozen outputs change the low bits of
/// trained weights. 3: lineage travels in the weights' metadata and `evaluation.json`, and
/// the net to score comes from the weights, not from upstream parameters.
const ML_KINDS_VERSION: u32 = 3;

/// The weights a `train` or `transfer` node writes.
pub const WEIGHTS: &str = "weights.safetensors";
/// The scores an `evaluate` node writes, with the lineage of the net it scored.
pub const EVALUATION: &str = "evaluation.json";
/// The safetensors metadata entry that records how a net was made (JSON).
pub const LINEAGE_METADATA: &str = "tpipe.lineage";

/// The `backend` param's values: `auto` (wgpu on a real GPU, else `cpu`), `cpu` (the fastest
/// CPU backend built in: torch with the `torch` feature, else flex), or one backend by name.
const BACKEND_CHOICES: &[&str] = &["auto", "cpu", "flex", "torch", "wgpu"];

/// Parameters that describe the network; a transfer must match its base in all of them.
const NET_PARAMS: &[&str] = &[
    "conv_channels",
    "conv_kernels",
    "conv_pool",
    "fc_widths",
    "dropout",
    "init",
];

fn net_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::optional(
            "conv_channels",
            ParamType::list_of(ParamType::int_at_least(1)),
            json!([24, 64, 96, 96, 64]),
            "output channels of conv1..conv5",
        ),
        ParamSpec::optional(
            "conv_kernels",
            ParamType::list_of(ParamType::int_at_least(1)),
            json!([3, 3, 3, 3, 3]),
            "kernel sizes of conv1..conv5 (stride 1, 'same' padding)",
        ),
        ParamSpec::optional(
            "conv_pool",
            ParamType::list_of(ParamType::Bool),
            json!([true, true, false, false, true]),
            "2×2 max-pool after conv1..conv5",
        ),
        ParamSpec::optional(
            "fc_widths",
            ParamType::list_of(ParamType::int_at_least(1)),
            json!([512, 512]),
            "widths of fc6 and fc7",
        ),
        ParamSpec::optional(
            "dropout",
            ParamType::Float {
                min: Some(0.0),
                max: Some(0.95),
            },
            0.5,
            "dropout after fc6 and fc7",
        ),
        ParamSpec::optional(
            "init",
            ParamType::Choice(&["modern", "paper"]),
            "modern",
            "initialisation: He normal, or the paper's Gaussians (std 0.01/0.005)",
        ),
    ]
}

fn training_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::optional(
            "epochs",
            ParamType::int_at_least(1),
            10,
            "passes over the training images",
        ),
        ParamSpec::optional(
            "batch_size",
            ParamType::int_at_least(1),
            128,
            "images per SGD step",
        ),
        ParamSpec::optional(
            "learning_rate",
            ParamType::float_at_least(0.0),
            0.01,
            "SGD learning rate of the weights",
        ),
        ParamSpec::optional(
            "momentum",
            ParamType::float_at_least(0.0),
            0.9,
            "SGD momentum (no dampening, as in PyTorch and Caffe)",
        ),
        ParamSpec::optional(
            "weight_decay",
            ParamType::float_at_least(0.0),
            5e-4,
            "L2 decay of weights (never biases)",
        ),
        ParamSpec::optional(
            "bias_lr_multiplier",
            ParamType::float_at_least(0.0),
            2.0,
            "biases learn this many times faster (the paper: 2)",
        ),
        ParamSpec::optional(
            "lr_step_epochs",
            ParamType::int_at_least(0),
            0,
            "multiply the learning rate by `lr_gamma` every this many epochs; 0 = never",
        ),
        ParamSpec::optional(
            "lr_gamma",
            ParamType::float_at_least(0.0),
            0.1,
            "factor of the step schedule",
        ),
        ParamSpec::optional(
            "seed",
            ParamType::int_at_least(0),
            0,
            "seeds initialisation, shuffling, augmentation and dropout",
        ),
        ParamSpec::optional(
            "augment_crop_padding",
            ParamType::int_at_least(0),
            0,
            "random crops after padding each side by this many pixels; 0 = off",
        ),
        ParamSpec::optional(
            "augment_flip",
            ParamType::Bool,
            false,
            "random horizontal flips",
        ),
        ParamSpec::optional(
            "backend",
            ParamType::Choice(BACKEND_CHOICES),
            "auto",
            "compute backend: wgpu on a GPU, else the fastest CPU backend built in",
        )
        .not_in_key(),
    ]
}

fn task_param(default: &'static str) -> ParamSpec {
    ParamSpec::optional(
        "task",
        ParamType::Choice(&["A", "B"]),
        default,
        "which half of the split's classes",
    )
}

fn check_net(params: &Map<String, Value>) -> Vec<ParamProblem> {
    let mut problems = Vec::new();
    for (name, length) in [
        ("conv_channels", 5),
        ("conv_kernels", 5),
        ("conv_pool", 5),
        ("fc_widths", 2),
    ] {
        let found = params
            .get(name)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if found != length {
            problems.push(ParamProblem::new(
                name,
                format!("`{name}` needs {length} values (one per layer), found {found}"),
            ));
        }
    }
    problems
}

/// A training reads only its images from the split, so relabelling a split retrains nothing.
fn training_split_input() -> InputSlot {
    InputSlot {
        name: "data",
        arity: Arity::One,
        accepts: &["split"],
        doc: "the split whose task to train on",
        reads: &["a_train", "b_train"],
        names_in_key: false,
    }
}

#[cfg_attr(not(feature = "ml"), allow(dead_code))]
fn task_blob(task: &str, part: &str) -> String {
    format!("{}_{part}", task.to_lowercase())
}

/// `train`: a base network trained from scratch on task A or B.
pub struct Train;

impl NodeKind for Train {
    fn name(&self) -> &'static str {
        "train"
    }
    fn version(&self) -> u32 {
        ML_KINDS_VERSION
    }
    fn about(&self) -> &'static str {
        "train the 8-layer net from scratch on one task of a split (baseA, baseB)"
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut params = vec![task_param("A")];
        params.extend(net_params());
        params.extend(training_params());
        params
    }
    fn inputs(&self) -> Vec<InputSlot> {
        vec![training_split_input()]
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        check_net(params)
    }
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        backend::train(context, None)
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        training_headline(metrics)
    }
}

/// `transfer`: layers 1..n from a base net (or random), frozen or fine-tuned, trained on a task.
pub struct Transfer;

impl NodeKind for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }
    fn version(&self) -> u32 {
        ML_KINDS_VERSION
    }
    fn about(&self) -> &'static str {
        "copy layers 1..n of a base net (or keep them random), freeze or fine-tune them, train the rest"
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut params = vec![
            task_param("B"),
            ParamSpec::required(
                "layers_copied",
                ParamType::int_range(1, 7),
                "n: how many lower layers come from the base net",
            ),
            ParamSpec::optional(
                "finetune",
                ParamType::Bool,
                false,
                "train the copied layers too (AnB+) instead of freezing them (AnB)",
            ),
        ];
        params.extend(net_params());
        params.extend(training_params());
        params
    }
    fn inputs(&self) -> Vec<InputSlot> {
        vec![
            InputSlot {
                name: "base",
                arity: Arity::Optional,
                accepts: &["train"],
                doc: "the net to copy from; leave out for the random-weights control",
                reads: &[WEIGHTS],
                names_in_key: false,
            },
            training_split_input(),
        ]
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        check_net(params)
    }
    fn check_inputs(
        &self,
        params: &Map<String, Value>,
        inputs: &BTreeMap<String, Vec<UpstreamSpec<'_>>>,
    ) -> Vec<ParamProblem> {
        let Some(base) = inputs.get("base").and_then(|bases| bases.first()) else {
            return Vec::new();
        };
        NET_PARAMS
            .iter()
            .filter(|name| base.params.get(**name) != params.get(**name))
            .map(|name| {
                let show = |value: Option<&Value>| value.map(Value::to_string).unwrap_or_default();
                ParamProblem::new(
                    name,
                    format!(
                        "parameter `{name}` is {} here but {} in base `{}`; copied layers need the same network",
                        show(params.get(*name)),
                        show(base.params.get(*name)),
                        base.name
                    ),
                )
                .with_hint(format!(
                    "set `{name}` in `defaults:` for both `train` and `transfer`"
                ))
                .at_input("base")
            })
            .collect()
    }
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        let layers_copied = context.param_u64("layers_copied")? as usize;
        let finetune = context.param_bool("finetune")?;
        backend::train(
            context,
            Some(TransferSettings {
                layers_copied,
                finetune,
            }),
        )
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        training_headline(metrics)
    }
}

/// `evaluate`: top-1/top-5 accuracy of a net on the held-out images of a task.
pub struct Evaluate;

impl NodeKind for Evaluate {
    fn name(&self) -> &'static str {
        "evaluate"
    }
    fn version(&self) -> u32 {
        ML_KINDS_VERSION
    }
    fn about(&self) -> &'static str {
        "score a net on a task's held-out images: top-1, top-5, per class, confusion matrix"
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![
            task_param("B"),
            ParamSpec::optional(
                "backend",
                ParamType::Choice(BACKEND_CHOICES),
                "auto",
                "compute backend",
            )
            .not_in_key(),
        ]
    }
    fn inputs(&self) -> Vec<InputSlot> {
        vec![
            InputSlot {
                name: "model",
                arity: Arity::One,
                accepts: &["train", "transfer"],
                doc: "the net to score (its weights say what net it is and how it was made)",
                reads: &[WEIGHTS],
                names_in_key: false,
            },
            InputSlot {
                name: "data",
                arity: Arity::One,
                accepts: &["split"],
                doc: "the split whose held-out images to score on",
                reads: &["a_test", "b_test", SPLIT_DESCRIPTION],
                names_in_key: false,
            },
        ]
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        backend::evaluate(context)
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        let top1 = metrics.get("top1")?.as_f64()?;
        let variant = metrics.get("variant").and_then(Value::as_str).unwrap_or("");
        Some(format!("top-1 {top1:.4} {variant}").trim_end().to_string())
    }
}

fn training_headline(metrics: &Value) -> Option<String> {
    let accuracy = metrics.get("train_accuracy")?.as_f64()?;
    let loss = metrics.get("epoch_losses")?.as_array()?.last()?.as_f64()?;
    let speed = metrics
        .get("images_per_second")
        .and_then(Value::as_f64)
        .unwrap_or_default();
    Some(format!(
        "train acc {accuracy:.3}, loss {loss:.3}, {speed:.0} img/s"
    ))
}

#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "ml"), allow(dead_code))]
struct TransferSettings {
    layers_copied: usize,
    finetune: bool,
}

/// How a net was made, written into its weights' metadata so every later node learns it from
/// content: the variant in the paper's notation, its task, the task its copied layers came
/// from (`random` for the control), how many were copied, whether they were fine-tuned, the
/// seed, and the base net's own lineage.
#[cfg_attr(not(feature = "ml"), allow(dead_code))]
fn lineage(
    context: &BuildContext,
    settings: Option<TransferSettings>,
    base_lineage: Option<Value>,
) -> Result<Map<String, Value>, BuildError> {
    let task = context.param_str("task")?;
    let seed = context.param_u64("seed")?;
    let (variant, layers_copied, source_task, fine_tuned) = match settings {
        None => (format!("base{task}"), 0, task.to_string(), false),
        Some(settings) => {
            let source = match &base_lineage {
                Some(base) => base
                    .get("task")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        BuildError::failed(
                            "the base net's weights do not say which task they were trained on \
                             (hint: rebuild the base with this tpipe)",
                        )
                    })?
                    .to_string(),
                None => "random".to_string(),
            };
            let plus = if settings.finetune { "+" } else { "" };
            let variant = if source == "random" {
                format!("random{plus}")
            } else {
                format!("{source}n{task}{plus}")
            };
            (variant, settings.layers_copied, source, settings.finetune)
        }
    };
    let mut map = Map::new();
    map.insert("variant".into(), json!(variant));
    map.insert("task".into(), json!(task));
    map.insert("source_task".into(), json!(source_task));
    map.insert("layers_copied".into(), json!(layers_copied));
    map.insert("fine_tuned".into(), json!(fine_tuned));
    map.insert("seed".into(), json!(seed));
    map.insert("base".into(), base_lineage.unwrap_or(Value::Null));
    Ok(map)
}

#[cfg(feature = "ml")]
mod backend {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use serde_json::{json, Map, Value};
    use tpipe_ml::{
        BackendChoice, ConvLayerConfig, ImageSet, InitScheme, NetConfig, RunOptions, TrainConfig,
        TrainProgress, TransferMode,
    };

    use super::{lineage, task_blob, TransferSettings, EVALUATION, LINEAGE_METADATA, WEIGHTS};
    use crate::data::Dataset;
    use crate::kind::{BuildContext, BuildError, BuildOutput};
    use crate::kinds::split::SPLIT_DESCRIPTION;

    fn image_set(context: &BuildContext, task: &str, part: &str) -> Result<ImageSet, BuildError> {
        let split = context.input("data")?;
        let bytes = context.read(split, &task_blob(task, part))?;
        let dataset = Dataset::from_bytes(&bytes)
            .map_err(|error| BuildError::failed(format!("{}: {error}", split.describe())))?;
        Ok(ImageSet {
            num_classes: dataset.class_names.len(),
            pixels: dataset.pixels,
            labels: dataset.labels,
            count: dataset.count,
            channels: dataset.channels,
            height: dataset.height,
            width: dataset.width,
        })
    }

    fn list(params: &Map<String, Value>, name: &str) -> Vec<Value> {
        params
            .get(name)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn list_usize(params: &Map<String, Value>, name: &str) -> Vec<usize> {
        list(params, name)
            .iter()
            .filter_map(Value::as_u64)
            .map(|value| value as usize)
            .collect()
    }

    /// The network a node's parameters describe, sized for `data`. The spec layer checked the
    /// list lengths.
    fn net_config(params: &Map<String, Value>, data: &ImageSet) -> Result<NetConfig, BuildError> {
        let channels = list_usize(params, "conv_channels");
        let kernels = list_usize(params, "conv_kernels");
        let pools: Vec<bool> = list(params, "conv_pool")
            .iter()
            .filter_map(Value::as_bool)
            .collect();
        let widths = list_usize(params, "fc_widths");
        if channels.len() != 5 || kernels.len() != 5 || pools.len() != 5 || widths.len() != 2 {
            return Err(BuildError::failed(
                "the network parameters need 5 conv layers and 2 fc widths",
            ));
        }
        let layer = |index: usize| ConvLayerConfig {
            out_channels: channels[index],
            kernel: kernels[index],
            stride: 1,
            padding: kernels[index] / 2,
            max_pool: pools[index],
        };
        Ok(NetConfig {
            conv: [layer(0), layer(1), layer(2), layer(3), layer(4)],
            fc_widths: [widths[0], widths[1]],
            dropout: params.get("dropout").and_then(Value::as_f64).unwrap_or(0.5),
            init: if params.get("init").and_then(Value::as_str) == Some("paper") {
                InitScheme::Paper
            } else {
                InitScheme::Modern
            },
            channels: data.channels,
            height: data.height,
            width: data.width,
            num_classes: data.num_classes,
        })
    }

    fn train_config(context: &BuildContext) -> Result<TrainConfig, BuildError> {
        Ok(TrainConfig {
            epochs: context.param_u64("epochs")? as usize,
            batch_size: context.param_u64("batch_size")? as usize,
            learning_rate: context.param_f64("learning_rate")?,
            momentum: context.param_f64("momentum")?,
            weight_decay: context.param_f64("weight_decay")?,
            lr_step_epochs: context.param_u64("lr_step_epochs")? as usize,
            lr_gamma: context.param_f64("lr_gamma")?,
            seed: context.param_u64("seed")?,
            augment_crop_padding: context.param_u64("augment_crop_padding")? as usize,
            augment_flip: context.param_bool("augment_flip")?,
            bias_lr_multiplier: context.param_f64("bias_lr_multiplier")?,
        })
    }

    fn backend_choice(context: &BuildContext) -> Result<BackendChoice, BuildError> {
        let chosen = match &context.options.backend {
            Some(backend) => backend.as_str(),
            None => context.param_str("backend")?,
        };
        Ok(match chosen {
            "cpu" => BackendChoice::Cpu,
            "flex" => BackendChoice::Flex,
            "torch" => BackendChoice::Torch,
            "wgpu" => BackendChoice::Wgpu,
            _ => BackendChoice::Auto,
        })
    }

    fn ml_error(error: tpipe_ml::MlError) -> BuildError {
        match error {
            tpipe_ml::MlError::Cancelled => BuildError::Cancelled,
            other => BuildError::failed(other),
        }
    }

    /// The lineage a weights file records, if it records one.
    fn lineage_of(weights: &[u8]) -> Result<Option<Value>, BuildError> {
        let metadata = tpipe_ml::weights_metadata(weights).map_err(ml_error)?;
        metadata
            .get(LINEAGE_METADATA)
            .map(|text| {
                serde_json::from_str(text).map_err(|error| {
                    BuildError::failed(format!(
                        "the weights' `{LINEAGE_METADATA}` is not JSON: {error}"
                    ))
                })
            })
            .transpose()
    }

    pub(super) fn train(
        context: &BuildContext,
        settings: Option<TransferSettings>,
    ) -> Result<BuildOutput, BuildError> {
        let task = context.param_str("task")?.to_string();
        let data = image_set(context, &task, "train")?;
        let net = net_config(context.params, &data)?;
        let config = train_config(context)?;
        let base_weights = match (settings, context.optional_input("base")) {
            (Some(_), Some(base)) => Some(context.read(base, WEIGHTS)?),
            _ => None,
        };
        let base_lineage = match &base_weights {
            Some(weights) => Some(lineage_of(weights)?.ok_or_else(|| {
                BuildError::failed(
                    "the base net's weights record no lineage (hint: rebuild the base with this tpipe)",
                )
            })?),
            None => None,
        };
        let source_weights = match (settings, base_weights) {
            (None, _) => None,
            (Some(_), Some(weights)) => Some(weights),
            (Some(_), None) => {
                Some(tpipe_ml::initial_weights(&net, config.seed).map_err(ml_error)?)
            }
        };
        let transfer = settings
            .zip(source_weights.as_deref())
            .map(|(settings, source_weights)| tpipe_ml::Transfer {
                source_weights,
                layers_copied: settings.layers_copied,
                mode: if settings.finetune {
                    TransferMode::FineTune
                } else {
                    TransferMode::Frozen
                },
            });
        let report = |progress: TrainProgress| {
            let done = (progress.epoch - 1) * progress.batches + progress.batch;
            let fraction = done as f64 / (progress.epochs * progress.batches).max(1) as f64;
            context.report_progress(
                fraction,
                format!(
                    "epoch {}/{} loss {:.3}",
                    progress.epoch, progress.epochs, progress.loss
                ),
            );
        };
        let cancel: &AtomicBool = context.cancel_flag();
        let options = RunOptions {
            backend: backend_choice(context)?,
            cancel: Some(cancel),
            progress: Some(&report),
            ..Default::default()
        };
        let outcome =
            tpipe_ml::train(&net, &config, &data, transfer, &options).map_err(ml_error)?;
        let lineage = lineage(context, settings, base_lineage)?;
        let mut metadata = BTreeMap::new();
        metadata.insert(
            LINEAGE_METADATA.to_string(),
            serde_json::to_string(&lineage).map_err(BuildError::failed)?,
        );
        let weights = tpipe_ml::with_metadata(&outcome.weights, &metadata).map_err(ml_error)?;
        let mut metrics = lineage;
        metrics.insert("epoch_losses".into(), json!(outcome.epoch_losses));
        metrics.insert("train_accuracy".into(), json!(outcome.train_accuracy));
        metrics.insert("images_per_second".into(), json!(outcome.images_per_second));
        metrics.insert("train_images".into(), json!(data.count));
        metrics.insert("num_classes".into(), json!(data.num_classes));
        Ok(BuildOutput {
            outputs: vec![(WEIGHTS.into(), weights)],
            metrics: Value::Object(metrics),
            backend: Some(outcome.backend),
        })
    }

    pub(super) fn evaluate(context: &BuildContext) -> Result<BuildOutput, BuildError> {
        let task = context.param_str("task")?.to_string();
        let data = image_set(context, &task, "test")?;
        let split = context.read_json(context.input("data")?, SPLIT_DESCRIPTION)?;
        let model = context.input("model")?;
        let weights = context.read(model, WEIGHTS)?;
        // The net's shape and history come from its weights, never from upstream parameters.
        let net = tpipe_ml::net_config_of_weights(&weights).map_err(ml_error)?;
        let lineage = lineage_of(&weights)?.ok_or_else(|| {
            BuildError::failed(
                "the model's weights record no lineage (hint: rebuild it with this tpipe)",
            )
        })?;
        let cancel: &AtomicBool = context.cancel_flag();
        let options = RunOptions {
            backend: backend_choice(context)?,
            cancel: Some(cancel),
            progress: None,
            ..Default::default()
        };
        let evaluation = tpipe_ml::evaluate(&net, &weights, &data, &options).map_err(ml_error)?;
        let mut metrics = serde_json::to_value(&evaluation).map_err(BuildError::failed)?;
        let object = metrics.as_object_mut().expect("an evaluation is an object");
        // The backend is provenance (in the record), not a result: the file must be the same
        // whichever machine scored the net.
        object.remove("backend");
        for field in [
            "variant",
            "layers_copied",
            "source_task",
            "fine_tuned",
            "seed",
        ] {
            if let Some(value) = lineage.get(field) {
                object.insert(field.into(), value.clone());
            }
        }
        object.insert(
            "trained_task".into(),
            lineage.get("task").cloned().unwrap_or(Value::Null),
        );
        object.insert("target_task".into(), json!(task));
        object.insert("num_classes".into(), json!(data.num_classes));
        object.insert(
            "split".into(),
            split.get("id").cloned().unwrap_or(Value::Null),
        );
        object.insert(
            "split_kind".into(),
            split.get("label").cloned().unwrap_or(Value::Null),
        );
        object.insert(
            "dataset".into(),
            split.get("dataset").cloned().unwrap_or(Value::Null),
        );
        object.insert(
            "classes".into(),
            split
                .get(task.to_lowercase())
                .and_then(|task| task.get("classes"))
                .cloned()
                .unwrap_or(Value::Null),
        );
        object.insert("lineage".into(), lineage);
        Ok(BuildOutput {
            outputs: vec![(
                EVALUATION.into(),
                serde_json::to_vec_pretty(&metrics).map_err(BuildError::failed)?,
            )],
            backend: Some(evaluation.backend),
            metrics,
        })
    }
}

#[cfg(not(feature = "ml"))]
mod backend {
    use super::TransferSettings;
    use crate::kind::{BuildContext, BuildError, BuildOutput};

    const WITHOUT_ML: &str = "this tpipe was built without the `ml` feature, so it cannot train (hint: build with default features: `cargo build --release`)";

    pub(super) fn train(
        _context: &BuildContext,
        _settings: Option<TransferSettings>,
    ) -> Result<BuildOutput, BuildError> {
        Err(BuildError::failed(WITHOUT_ML))
    }
    pub(super) fn evaluate(_context: &BuildContext) -> Result<BuildOutput, BuildError> {
        Err(BuildError::failed(WITHOUT_ML))
    }
}
