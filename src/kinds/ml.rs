//! The node kinds that train and score networks: `train` (a base net), `transfer` (layers 1..n
//! copied from a base net or left random, frozen or fine-tuned) and `evaluate`.
//!
//! Their schemas are always compiled, so pipelines validate and plan without burn; building
//! them needs the `ml` feature, which brings in the `tpipe-ml` crate.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::kind::{
    Artifact, BuildContext, BuildError, BuildOutput, NodeKind, ParamProblem, UpstreamSpec,
};
use crate::kinds::artifacts::{Evaluation, Lineage, SplitDescription};
use crate::schema::{Arity, Choice, InputSlot, ParamType, Params};

/// The code version of the three kinds, in every key: bump it whenever tpipe-ml's results
/// change. 2: conv1 as a matrix multiply and cached frozen outputs change the low bits of
/// trained weights. 3: lineage travels in the weights' metadata and `evaluation.json`, and
/// the net to score comes from the weights, not from upstream parameters. 4: a transfer draws
/// its fresh layers, batch order and dropout from its own stream (`transfer_stream_seed`), not
/// from its base's. 5: the CPU default is tpipe-ml's native path (one gemm product per conv
/// layer, hand-written backward), whose sums run in another order than flex's. 6: the lineage
/// in the weights and `evaluation.json` are typed artifacts with a format
/// (`artifacts::Lineage`, `artifacts::Evaluation`); the tensors are the same bytes. 7: lineage
/// format 2 (`random_init`, named control bases) and evaluation format 2 (`data.images`: test
/// or validation); the tensors are the same bytes.
const ML_KINDS_VERSION: u32 = 7;

/// The seed a transfer's training draws from for a `seed:` of `seed`.
///
/// A base and its transfers usually share a `seed:` (one per split), and with the same stream
/// a transfer's fresh upper layers would start exactly where its base's started, see the same
/// batches in the same order and drop the same units: its result would be tied to its base's
/// beyond the copied layers. A SplitMix64 step of the seed mixed with a fixed tag gives every
/// transfer a stream of its own that is still a pure function of its parameters. Transfers of
/// one seed share it across n and variants (common random numbers, so their differences carry
/// less noise), and the random-weight control draws its frozen layers from it too.
#[cfg_attr(not(feature = "ml"), allow(dead_code))]
pub fn transfer_stream_seed(seed: u64) -> u64 {
    const TRANSFER_TAG: u64 = 0x7472_616e_7366_6572; // "transfer"
    let mut z = (seed ^ TRANSFER_TAG).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The weights a `train` or `transfer` node writes (with their [`Lineage`] in the metadata).
pub const WEIGHTS: &str = "weights.safetensors";

/// `auto` (wgpu on a real GPU, else `cpu`), `cpu` (the fastest CPU path: `native`), or one by
/// name: `native` (tpipe-ml's own CPU kernels), `flex` (burn's CPU backend), `torch` (burn on
/// LibTorch), `wgpu`. The same enum is tpipe-ml's `BackendChoice` and the CLI's `--backend`.
pub use tpipe_backend::Backend;

tpipe_engine::choice_enum! {
    /// Which half of a split's classes.
    pub enum Task { A = "A", B = "B" }
}

tpipe_engine::choice_enum! {
    /// He normal, or the paper's Gaussians (std 0.01/0.005).
    pub enum Init { Modern = "modern", Paper = "paper" }
}

tpipe_engine::choice_enum! {
    /// How a random-weights control draws its frozen layers.
    pub enum RandomInit { Same = "same", Modern = "modern", Paper = "paper" }
}

tpipe_engine::choice_enum! {
    /// What a `train` node is in the paper's design.
    pub enum BaseRole { Base = "base", LongBase = "long_base" }
}

tpipe_engine::choice_enum! {
    /// Which of a task's images an evaluation scores.
    pub enum ImagesPart { Test = "test", Validation = "validation" }
}

tpipe_engine::kind_params! {
    /// The network: what a transfer must share with its base.
    #[derive(PartialEq)]
    pub struct NetParams {
        conv_channels: Vec<usize> {
            ty: ParamType::list_of(ParamType::int_at_least(1)),
            default: [24, 64, 96, 96, 64],
            doc: "output channels of conv1..conv5",
        },
        conv_kernels: Vec<usize> {
            ty: ParamType::list_of(ParamType::int_at_least(1)),
            default: [3, 3, 3, 3, 3],
            doc: "kernel sizes of conv1..conv5 (stride 1, 'same' padding)",
        },
        conv_pool: Vec<bool> {
            ty: ParamType::list_of(ParamType::Bool),
            default: [true, true, false, false, true],
            doc: "2×2 max-pool after conv1..conv5",
        },
        fc_widths: Vec<usize> {
            ty: ParamType::list_of(ParamType::int_at_least(1)),
            default: [512, 512],
            doc: "widths of fc6 and fc7",
        },
        dropout: f64 {
            ty: ParamType::Float { min: Some(0.0), max: Some(0.95) },
            default: 0.5,
            doc: "dropout after fc6 and fc7",
        },
        init: Init {
            ty: ParamType::Choice(Init::WORDS),
            default: "modern",
            doc: "initialisation: He normal, or the paper's Gaussians (std 0.01/0.005)",
        },
    }
}

tpipe_engine::kind_params! {
    /// How a net is trained (SGD as in the paper) and where.
    pub struct TrainingParams {
        epochs: usize {
            ty: ParamType::int_at_least(1),
            default: 10,
            doc: "passes over the training images",
        },
        batch_size: usize { ty: ParamType::int_at_least(1), default: 128, doc: "images per SGD step" },
        learning_rate: f64 {
            ty: ParamType::float_at_least(0.0),
            default: 0.01,
            doc: "SGD learning rate of the weights",
        },
        momentum: f64 {
            ty: ParamType::float_at_least(0.0),
            default: 0.9,
            doc: "SGD momentum (no dampening, as in PyTorch and Caffe)",
        },
        weight_decay: f64 {
            ty: ParamType::float_at_least(0.0),
            default: 5e-4,
            doc: "L2 decay of weights (never biases)",
        },
        bias_lr_multiplier: f64 {
            ty: ParamType::float_at_least(0.0),
            default: 2.0,
            doc: "biases learn this many times faster (the paper: 2)",
        },
        lr_step_epochs: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "multiply the learning rate by `lr_gamma` every this many epochs; 0 = never",
        },
        lr_gamma: f64 { ty: ParamType::float_at_least(0.0), default: 0.1, doc: "factor of the step schedule" },
        seed: u64 {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "seeds initialisation, shuffling, augmentation and dropout",
        },
        augment_crop_padding: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "random crops after padding each side by this many pixels; 0 = off",
        },
        augment_flip: bool { ty: ParamType::Bool, default: false, doc: "random horizontal flips" },
        backend: Backend {
            ty: ParamType::Choice(Backend::WORDS),
            default: "auto",
            doc: "compute backend: wgpu on a GPU, else the fastest CPU backend built in",
            in_key: false,
        },
    }
}

tpipe_engine::kind_params! {
    /// The `train` kind's parameters.
    pub struct TrainParams {
        ..net: NetParams,
        ..training: TrainingParams,
        task: Task {
            ty: ParamType::Choice(Task::WORDS),
            default: "A",
            doc: "which half of the split's classes",
        },
        role: BaseRole {
            ty: ParamType::Choice(BaseRole::WORDS),
            default: "base",
            doc: "`base` (baseA, baseB), or `long_base`: a control for the lingering boost, trained as long as a \
                  base plus its fine-tuning (give it those epochs); reports call it longbaseA/longbaseB",
        },
    }
}

tpipe_engine::kind_params! {
    /// The `transfer` kind's parameters.
    pub struct TransferParams {
        ..net: NetParams,
        ..training: TrainingParams,
        task: Task {
            ty: ParamType::Choice(Task::WORDS),
            default: "B",
            doc: "which half of the split's classes",
        },
        layers_copied: usize {
            ty: ParamType::int_range(1, 7),
            doc: "n: how many lower layers come from the base net",
        },
        finetune: bool {
            ty: ParamType::Bool,
            default: false,
            doc: "train the copied layers too (AnB+) instead of freezing them (AnB)",
        },
        random_init: RandomInit {
            ty: ParamType::Choice(RandomInit::WORDS),
            default: "same",
            doc: "random-weights control (no `base`): how its frozen random layers are drawn: `same` as `init`, \
                  `paper` (the paper's Gaussians) or `modern` (He); the layers it trains follow `init`",
        },
    }
}

tpipe_engine::kind_params! {
    /// The `evaluate` kind's parameters.
    pub struct EvaluateParams {
        task: Task {
            ty: ParamType::Choice(Task::WORDS),
            default: "B",
            doc: "which half of the split's classes",
        },
        images: ImagesPart {
            ty: ParamType::Choice(ImagesPart::WORDS),
            default: "test",
            doc: "`test`: the held-out images; `validation`: the split's validation images (choose a protocol on \
                  these, and use the test images once)",
        },
        backend: Backend {
            ty: ParamType::Choice(Backend::WORDS),
            default: "auto",
            doc: "compute backend",
            in_key: false,
        },
    }
}

fn check_net(net: &NetParams) -> Vec<ParamProblem> {
    let mut problems = Vec::new();
    for (name, length, found) in [
        ("conv_channels", 5, net.conv_channels.len()),
        ("conv_kernels", 5, net.conv_kernels.len()),
        ("conv_pool", 5, net.conv_pool.len()),
        ("fc_widths", 2, net.fc_widths.len()),
    ] {
        if found != length {
            problems.push(ParamProblem::new(
                name,
                format!("`{name}` needs {length} values (one per layer), found {found}"),
            ));
        }
    }
    problems
}

/// A training reads only images from the split: its training images and, where the split has
/// them, the validation images it scores after every epoch (a split without them keys its
/// trainings as before). Relabelling a split retrains nothing.
fn training_split_input() -> InputSlot {
    InputSlot {
        name: "data",
        arity: Arity::One,
        accepts: &["split"],
        doc: "the split whose task to train on (and whose validation images, if any, to score \
              after every epoch)",
        reads: &["a_train", "b_train", "a_validation", "b_validation"],
        names_in_key: false,
    }
}

#[cfg_attr(not(feature = "ml"), allow(dead_code))]
fn task_blob(task: Task, part: &str) -> String {
    format!("{}_{part}", task.word().to_lowercase())
}

/// `train`: a base network trained from scratch on task A or B.
pub struct Train;

impl NodeKind for Train {
    type Params = TrainParams;

    fn name(&self) -> &'static str {
        "train"
    }
    fn version(&self) -> u32 {
        ML_KINDS_VERSION
    }
    fn about(&self) -> &'static str {
        "train the 8-layer net from scratch on one task of a split (baseA, baseB)"
    }
    fn inputs(&self) -> Vec<InputSlot> {
        vec![training_split_input()]
    }
    fn uses_device(&self) -> bool {
        true
    }
    fn check(&self, params: &TrainParams) -> Vec<ParamProblem> {
        check_net(&params.net)
    }
    fn build(
        &self,
        params: &TrainParams,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        backend::train(
            context,
            &params.net,
            &params.training,
            params.task,
            Kind::Base(params.role),
        )
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        training_headline(metrics)
    }
}

/// `transfer`: layers 1..n from a base net (or random), frozen or fine-tuned, trained on a task.
pub struct Transfer;

impl NodeKind for Transfer {
    type Params = TransferParams;

    fn name(&self) -> &'static str {
        "transfer"
    }
    fn version(&self) -> u32 {
        ML_KINDS_VERSION
    }
    fn about(&self) -> &'static str {
        "copy layers 1..n of a base net (or keep them random), freeze or fine-tune them, train the rest"
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
    fn check(&self, params: &TransferParams) -> Vec<ParamProblem> {
        check_net(&params.net)
    }
    fn check_inputs(
        &self,
        params: &TransferParams,
        inputs: &BTreeMap<String, Vec<UpstreamSpec<'_>>>,
    ) -> Vec<ParamProblem> {
        let Some(base) = inputs.get("base").and_then(|bases| bases.first()) else {
            return Vec::new();
        };
        if params.random_init != RandomInit::Same {
            return vec![ParamProblem::new(
                "random_init",
                format!(
                    "`random_init` draws the frozen layers of a random-weights control, but this \
                     transfer copies its layers from `{}`",
                    base.name
                ),
            )
            .with_hint(
                "remove `random_init`, or remove the `base` input for a random-weights control",
            )];
        }
        // Nearly every transfer of a sweep matches its base: compare the typed networks, and
        // name the parameters that differ only when they do.
        if NetParams::from_source(base.params).is_ok_and(|base_net| base_net == params.net) {
            return Vec::new();
        }
        // Every parameter that describes the network must match the base's, compared by name
        // in the form both were validated to.
        let Ok(Value::Object(params)) = serde_json::to_value(&params.net) else {
            unreachable!("a declared parameter struct serialises to a map")
        };
        NetParams::specs()
            .iter()
            .map(|spec| spec.name)
            .filter(|name| base.params.get(name) != params.get(*name))
            .map(|name| {
                let show = |value: Option<&Value>| value.map(Value::to_string).unwrap_or_default();
                ParamProblem::new(
                    name,
                    format!(
                        "parameter `{name}` is {} here but {} in base `{}`; copied layers need the same network",
                        show(params.get(name)),
                        show(base.params.get(name)),
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
    fn build(
        &self,
        params: &TransferParams,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        backend::train(
            context,
            &params.net,
            &params.training,
            params.task,
            Kind::Transfer(TransferSettings {
                layers_copied: params.layers_copied,
                finetune: params.finetune,
                random_init: params.random_init,
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
    type Params = EvaluateParams;

    fn name(&self) -> &'static str {
        "evaluate"
    }
    fn version(&self) -> u32 {
        ML_KINDS_VERSION
    }
    fn about(&self) -> &'static str {
        "score a net on a task's held-out images: top-1, top-5, per class, confusion matrix"
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
                doc: "the split whose held-out (or validation) images to score on",
                reads: &[
                    "a_test",
                    "b_test",
                    "a_validation",
                    "b_validation",
                    SplitDescription::OUTPUT,
                ],
                names_in_key: false,
            },
        ]
    }
    fn uses_device(&self) -> bool {
        true
    }
    /// One pass over the held-out images: less work than a job's start-up on a cluster.
    fn runs_on_cluster(&self) -> bool {
        false
    }
    fn build(
        &self,
        params: &EvaluateParams,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        backend::evaluate(context, params)
    }
    /// The metrics are the evaluation itself.
    fn headline(&self, metrics: &Value) -> Option<String> {
        let evaluation = Evaluation::deserialize(metrics).ok()?;
        let (top1, variant) = (evaluation.scores.top1, evaluation.net.variant);
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
    random_init: RandomInit,
}

/// What a training node makes: a base (or a named control base), or a transfer.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "ml"), allow(dead_code))]
enum Kind {
    Base(BaseRole),
    Transfer(TransferSettings),
}

impl Kind {
    // Only the backend (feature `ml`) asks; without it the kinds still validate and key.
    #[cfg_attr(not(feature = "ml"), allow(dead_code))]
    fn transfer(self) -> Option<TransferSettings> {
        match self {
            Kind::Transfer(settings) => Some(settings),
            Kind::Base(_) => None,
        }
    }
}

/// How a net was made, written into its weights' metadata so every later node learns it from
/// content: the variant in the paper's notation, its task, the task its copied layers came
/// from (`random` for the control), how many were copied, whether they were fine-tuned, the
/// seed, and the base net's own lineage.
#[cfg_attr(not(feature = "ml"), allow(dead_code))]
fn lineage(task: Task, seed: u64, kind: Kind, net_init: Init, base: Option<Lineage>) -> Lineage {
    let task = task.word();
    let random_init = match kind {
        Kind::Transfer(settings) if base.is_none() => Some(
            match (settings.random_init, net_init) {
                (RandomInit::Paper, _) | (RandomInit::Same, Init::Paper) => "paper",
                (RandomInit::Modern, _) | (RandomInit::Same, Init::Modern) => "modern",
            }
            .to_string(),
        ),
        _ => None,
    };
    let (variant, layers_copied, source_task, fine_tuned) = match kind {
        Kind::Base(BaseRole::Base) => (format!("base{task}"), 0, task.to_string(), false),
        Kind::Base(BaseRole::LongBase) => (format!("longbase{task}"), 0, task.to_string(), false),
        Kind::Transfer(settings) => {
            let source = base
                .as_ref()
                .map_or_else(|| "random".to_string(), |base| base.task.clone());
            let plus = if settings.finetune { "+" } else { "" };
            let variant = if base.is_none() {
                format!("random{plus}")
            } else {
                format!("{source}n{task}{plus}")
            };
            (variant, settings.layers_copied, source, settings.finetune)
        }
    };
    Lineage {
        format: Lineage::FORMAT,
        variant,
        task: task.to_string(),
        source_task,
        layers_copied,
        fine_tuned,
        seed,
        random_init,
        base: base.map(Box::new),
    }
}

#[cfg(feature = "ml")]
mod backend {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use serde_json::{json, Value};
    use tpipe_ml::{
        ConvLayerConfig, ImageSet, InitScheme, NetConfig, RunOptions, TrainConfig, TrainProgress,
        TransferMode,
    };

    use super::{
        lineage, task_blob, Backend, EvaluateParams, ImagesPart, Init, Kind, NetParams, RandomInit,
        Task, TrainingParams, WEIGHTS,
    };
    use crate::data::Dataset;
    use crate::kind::{
        Artifact, ArtifactProblem, BuildContext, BuildError, BuildOutput, InputArtifact,
    };
    use crate::kinds::artifacts::{EvaluatedData, Evaluation, Lineage, Scores, SplitDescription};

    fn image_set(context: &BuildContext, task: Task, part: &str) -> Result<ImageSet, BuildError> {
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

    /// The network the parameters describe, sized for `data`. `check` made sure of the list
    /// lengths before anything was built.
    fn net_config(net: &NetParams, data: &ImageSet) -> Result<NetConfig, BuildError> {
        let (channels, kernels, pools, widths) = (
            &net.conv_channels,
            &net.conv_kernels,
            &net.conv_pool,
            &net.fc_widths,
        );
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
            dropout: net.dropout,
            init: match net.init {
                Init::Modern => InitScheme::Modern,
                Init::Paper => InitScheme::Paper,
            },
            channels: data.channels,
            height: data.height,
            width: data.width,
            num_classes: data.num_classes,
        })
    }

    fn train_config(training: &TrainingParams) -> TrainConfig {
        TrainConfig {
            epochs: training.epochs,
            batch_size: training.batch_size,
            learning_rate: training.learning_rate,
            momentum: training.momentum,
            weight_decay: training.weight_decay,
            lr_step_epochs: training.lr_step_epochs,
            lr_gamma: training.lr_gamma,
            seed: training.seed,
            augment_crop_padding: training.augment_crop_padding,
            augment_flip: training.augment_flip,
            bias_lr_multiplier: training.bias_lr_multiplier,
        }
    }

    /// `--backend` wins over the node's `backend`. The engine hands `--backend` on as its word
    /// (it knows no backends), so a word that names none is an error listing the valid ones.
    fn backend_choice(context: &BuildContext, backend: Backend) -> Result<Backend, BuildError> {
        match context.options.backend.as_deref() {
            Some(word) => word
                .parse()
                .map_err(|error| BuildError::failed(format!("--backend: {error}"))),
            None => Ok(backend),
        }
    }

    fn ml_error(error: tpipe_ml::MlError) -> BuildError {
        match error {
            tpipe_ml::MlError::Cancelled => BuildError::Cancelled,
            other => BuildError::failed(other),
        }
    }

    /// The lineage the weights of `input` record, as an error naming that input otherwise.
    fn lineage_of(input: &InputArtifact, weights: &[u8]) -> Result<Lineage, BuildError> {
        let metadata = tpipe_ml::weights_metadata(weights).map_err(ml_error)?;
        let problem = |source| BuildError::Artifact {
            slot: input.slot.clone(),
            index: input.index,
            output: Lineage::METADATA,
            source,
        };
        let text = metadata
            .get(Lineage::METADATA)
            .ok_or_else(|| problem(ArtifactProblem::Missing))?;
        Lineage::from_metadata(text).map_err(problem)
    }

    pub(super) fn train(
        context: &BuildContext,
        net_params: &NetParams,
        training: &TrainingParams,
        task: Task,
        kind: Kind,
    ) -> Result<BuildOutput, BuildError> {
        let settings = kind.transfer();
        let data = image_set(context, task, "train")?;
        let net = net_config(net_params, &data)?;
        let mut config = train_config(training);
        if settings.is_some() {
            config.seed = super::transfer_stream_seed(training.seed);
        }
        let (base_weights, base_lineage) = match (settings, context.optional_input("base")) {
            (Some(_), Some(base)) => {
                let weights = context.read(base, WEIGHTS)?;
                let lineage = lineage_of(base, &weights)?;
                (Some(weights), Some(lineage))
            }
            _ => (None, None),
        };
        let source_weights = match (settings, base_weights) {
            (None, _) => None,
            (Some(_), Some(weights)) => Some(weights),
            (Some(settings), None) => {
                // The frozen random layers may be drawn otherwise than the layers it trains.
                let init = match settings.random_init {
                    RandomInit::Same => net.init,
                    RandomInit::Modern => InitScheme::Modern,
                    RandomInit::Paper => InitScheme::Paper,
                };
                let random = NetConfig {
                    init,
                    ..net.clone()
                };
                Some(tpipe_ml::initial_weights(&random, config.seed).map_err(ml_error)?)
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
            backend: backend_choice(context, training.backend)?,
            cancel: Some(cancel),
            progress: Some(&report),
            ..Default::default()
        };
        let validation_blob = task_blob(task, "validation");
        let validation = context
            .input("data")?
            .outputs
            .contains_key(&validation_blob)
            .then(|| image_set(context, task, "validation"))
            .transpose()?;
        let outcome = tpipe_ml::train_with_validation(
            &net,
            &config,
            &data,
            validation.as_ref(),
            transfer,
            &options,
        )
        .map_err(ml_error)?;
        let lineage = lineage(task, training.seed, kind, net_params.init, base_lineage);
        let metadata = BTreeMap::from([(Lineage::METADATA.to_string(), lineage.to_metadata())]);
        let weights = tpipe_ml::with_metadata(&outcome.weights, &metadata).map_err(ml_error)?;
        // For people (`tpipe show`): the lineage, then how the training went.
        let Ok(Value::Object(mut metrics)) = serde_json::to_value(&lineage) else {
            unreachable!("a lineage serialises to a map")
        };
        metrics.insert("epoch_losses".into(), json!(outcome.epoch_losses));
        metrics.insert("epoch_accuracies".into(), json!(outcome.epoch_accuracies));
        metrics.insert(
            "epoch_learning_rates".into(),
            json!(outcome.epoch_learning_rates),
        );
        if let Some(validation) = &validation {
            metrics.insert(
                "epoch_validation_accuracies".into(),
                json!(outcome.epoch_validation_accuracies),
            );
            metrics.insert("validation_images".into(), json!(validation.count));
        }
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

    pub(super) fn evaluate(
        context: &BuildContext,
        params: &EvaluateParams,
    ) -> Result<BuildOutput, BuildError> {
        let task = params.task;
        let part = match params.images {
            ImagesPart::Test => "test",
            ImagesPart::Validation => "validation",
        };
        let split: SplitDescription = context.read_artifact(context.input("data")?)?;
        if params.images == ImagesPart::Validation && split.task(task.word()).validation_images == 0
        {
            return Err(BuildError::failed(format!(
                "split `{}` has no validation images to score on (hint: set \
                 `validation_images_per_class` on the split)",
                split.id
            )));
        }
        let data = image_set(context, task, part)?;
        let model = context.input("model")?;
        let weights = context.read(model, WEIGHTS)?;
        // The net's shape and history come from its weights, never from upstream parameters.
        let net = tpipe_ml::net_config_of_weights(&weights).map_err(ml_error)?;
        let lineage = lineage_of(model, &weights)?;
        let cancel: &AtomicBool = context.cancel_flag();
        let options = RunOptions {
            backend: backend_choice(context, params.backend)?,
            cancel: Some(cancel),
            progress: None,
            ..Default::default()
        };
        let scored = tpipe_ml::evaluate(&net, &weights, &data, &options).map_err(ml_error)?;
        // The backend is provenance (in the record), not a result: the file must be the same
        // whichever machine scored the net.
        let evaluation = Evaluation {
            format: Evaluation::FORMAT,
            net: lineage,
            data: EvaluatedData {
                classes: split.task(task.word()).classes.clone(),
                split: split.id,
                relation: split.relation,
                dataset: split.dataset,
                task: task.word().to_string(),
                num_classes: data.num_classes,
                images: part.to_string(),
            },
            scores: Scores {
                top1: scored.top1,
                top5: scored.top5,
                count: scored.count,
                // A class without images has no accuracy (NaN), written as `null`.
                per_class_accuracy: scored
                    .per_class_accuracy
                    .iter()
                    .map(|accuracy| Some(*accuracy).filter(|accuracy| !accuracy.is_nan()))
                    .collect(),
                confusion: scored.confusion,
            },
        };
        Ok(BuildOutput {
            outputs: vec![(Evaluation::OUTPUT.into(), evaluation.to_bytes())],
            backend: Some(scored.backend),
            metrics: serde_json::to_value(&evaluation).expect("artifacts always serialise"),
        })
    }
}

#[cfg(not(feature = "ml"))]
mod backend {
    use super::{EvaluateParams, Kind, NetParams, Task, TrainingParams};
    use crate::kind::{BuildContext, BuildError, BuildOutput};

    const WITHOUT_ML: &str = "this tpipe was built without the `ml` feature, so it cannot train (hint: build with default features: `cargo build --release`)";

    pub(super) fn train(
        _context: &BuildContext,
        _net: &NetParams,
        _training: &TrainingParams,
        _task: Task,
        _kind: Kind,
    ) -> Result<BuildOutput, BuildError> {
        Err(BuildError::failed(WITHOUT_ML))
    }
    pub(super) fn evaluate(
        _context: &BuildContext,
        _params: &EvaluateParams,
    ) -> Result<BuildOutput, BuildError> {
        Err(BuildError::failed(WITHOUT_ML))
    }
}
