//! Conformance of tpipe-ml's training paths against each other and against PyTorch.
//!
//! A [`Case`] is a net, a solver, a few images and perhaps a source net to copy layers from. It
//! is traced on tpipe's paths (`tpipe_ml::trace_training`: the batches, masks and the state
//! after every step) and, through [`torch`], repeated step by step by PyTorch's own modules and
//! optimizer from the same start with the same batches and masks. [`compare`] measures how far
//! two runs of a case part, step by step, in units that make a tolerance meaningful; [`fuzz`]
//! generates cases over everything a pipeline can say.
//!
//! This crate is test infrastructure: no product crate depends on it.

pub mod compare;
pub mod fuzz;
pub mod torch;

use tpipe_ml::{
    trace_training, BackendChoice, ImageSet, MlError, NetConfig, RunOptions, TraceOptions,
    TrainConfig, TrainingState, TrainingTrace, Transfer, TransferMode,
};

/// One configuration to train the same way on every implementation.
#[derive(Clone, Debug)]
pub struct Case {
    /// A name that says what the case exercises, for messages.
    pub name: String,
    pub net: NetConfig,
    pub config: TrainConfig,
    pub data: ImageSet,
    /// Layers to copy from another net, if the case is a transfer.
    pub source: Option<Source>,
    /// How many steps to run.
    pub steps: usize,
}

/// The source of a transfer case.
#[derive(Clone, Debug)]
pub struct Source {
    /// Canonical safetensors bytes of the source net.
    pub weights: Vec<u8>,
    pub layers_copied: usize,
    pub mode: TransferMode,
}

impl Case {
    pub fn transfer(&self) -> Option<Transfer<'_>> {
        self.source.as_ref().map(|source| Transfer {
            source_weights: &source.weights,
            layers_copied: source.layers_copied,
            mode: source.mode,
        })
    }

    /// The case's first `steps` steps on `backend`; with `teacher`, each step after the first
    /// starts from the teacher's state after the step before.
    pub fn trace(
        &self,
        backend: BackendChoice,
        teacher: Option<&[TrainingState]>,
    ) -> Result<TrainingTrace, MlError> {
        let options = RunOptions {
            backend,
            ..RunOptions::default()
        };
        trace_training(
            &self.net,
            &self.config,
            &self.data,
            self.transfer(),
            &options,
            TraceOptions {
                max_steps: self.steps,
                teacher,
            },
        )
    }
}

/// What a run of a case computed at one step: what [`compare`] reads from tpipe's traces and
/// from PyTorch's output alike.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy of the batch before the update.
    pub loss: f64,
    /// Layers and momentum buffers after the update.
    pub state: TrainingState,
}

/// The outcomes of a tpipe trace, step by step.
pub fn outcomes(trace: &TrainingTrace) -> Vec<StepOutcome> {
    trace
        .steps
        .iter()
        .map(|step| StepOutcome {
            loss: step.loss,
            state: step.state.clone(),
        })
        .collect()
}

/// Each step's (weights') learning rate in a tpipe trace.
pub fn learning_rates(trace: &TrainingTrace) -> Vec<f64> {
    trace.steps.iter().map(|step| step.learning_rate).collect()
}
