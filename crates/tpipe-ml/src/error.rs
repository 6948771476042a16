//! The one error type of this crate.

/// Everything that can go wrong while building, training or evaluating a net.
///
/// Epoch and batch numbers in errors are 1-based, as a person counts them.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A `NetConfig`, `TrainConfig` or `Transfer` that cannot work, e.g. a spatial size that
    /// shrinks to zero, a batch size of zero or `layers_copied` outside `1..=7`.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// An `ImageSet` whose fields disagree with each other or with the net.
    #[error("invalid data: {0}")]
    InvalidData(String),

    /// The training loss became NaN or infinite; no weights are returned.
    #[error(
        "training diverged: loss is {loss} at epoch {epoch}, batch {batch} \
         (hint: lower the learning rate or use `init: modern`)"
    )]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The offending value (NaN or ±inf).
        loss: f64,
    },

    /// The caller's cancel flag was set; checked between batches.
    #[error("training was cancelled")]
    Cancelled,

    /// The weights lack a tensor the net needs.
    #[error("weights have no tensor `{name}`")]
    MissingTensor {
        /// Safetensors name, e.g. `conv3.weight`.
        name: String,
    },

    /// A tensor in the weights has another shape than the net expects.
    #[error("tensor `{name}` has shape {found:?}, but the net expects {expected:?}")]
    ShapeMismatch {
        /// Safetensors name, e.g. `fc6.weight`.
        name: String,
        /// Shape the `NetConfig` implies (PyTorch layout).
        expected: Vec<usize>,
        /// Shape stored in the weights.
        found: Vec<usize>,
    },

    /// Weights that cannot be used for another reason: not safetensors, wrong dtype,
    /// made for another architecture, or lacking the input normalisation.
    #[error("unusable weights: {0}")]
    BadWeights(String),

    /// `with_metadata` was asked to set a key the crate writes itself.
    #[error(
        "metadata key `{key}` belongs to tpipe-ml and cannot be set \
         (hint: give your own entries another name)"
    )]
    ReservedMetadataKey {
        /// The refused key, e.g. `tpipe.architecture`.
        key: String,
    },

    /// The requested backend is not compiled in or found no device.
    #[error("backend `{backend}` is unavailable: {reason}")]
    BackendUnavailable {
        /// `torch` or `wgpu`.
        backend: &'static str,
        /// Why, with a hint where one helps.
        reason: String,
    },

    /// The backend failed while running (e.g. a GPU device was lost).
    #[error("backend `{backend}` failed: {reason}")]
    Backend {
        /// Name of the backend as in `TrainOutcome::backend`.
        backend: String,
        /// The backend's own message.
        reason: String,
    },
}
