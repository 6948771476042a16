//! How a run executes: backend, cancellation, progress reports and the numerical path. Shared
//! by training and evaluation.

use std::sync::atomic::AtomicBool;

use crate::backend::BackendChoice;

/// How to run: backend, cancellation, progress reports and the numerical path.
///
/// Callers name what they need and take the rest from `Default`:
/// `RunOptions { backend, cancel, ..Default::default() }`.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    /// Which backend executes the run.
    pub backend: BackendChoice,
    /// Checked between batches; when set the run stops with `MlError::Cancelled`.
    pub cancel: Option<&'a AtomicBool>,
    /// Called after every training batch, on the training thread.
    pub progress: Option<&'a (dyn Fn(TrainProgress) + Sync)>,
    /// Alternative numerical paths for comparisons; the default is what tpipe runs.
    pub numerics: Numerics,
}

impl Default for RunOptions<'_> {
    /// `BackendChoice::Auto`, no cancel flag, no progress reports, the default numerics.
    fn default() -> Self {
        RunOptions {
            backend: BackendChoice::default(),
            cancel: None,
            progress: None,
            numerics: Numerics::default(),
        }
    }
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RunOptions")
            .field("backend", &self.backend)
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.map(|_| "Fn"))
            .field("numerics", &self.numerics)
            .finish()
    }
}

/// Alternative numerical paths, for comparisons in tests and benches; tpipe's node kinds always
/// use the default.
///
/// Each alternative computes the same function in another order, so results agree with the
/// default up to float rounding, not necessarily bit for bit. That is why these are options a
/// caller passes rather than environment switches: a cached result must depend only on what its
/// key covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Numerics {
    /// Run frozen layers in every step instead of once over the training set. Without it, a
    /// frozen transfer without augmentation trains on the frozen layers' stored outputs.
    pub recompute_frozen: bool,
    /// Run a trainable conv1 as a convolution instead of a matmul on host-unfolded columns
    /// (burn backends; the native path always unfolds).
    pub conv1_as_conv: bool,
}

/// Where a training stands, reported after each batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainProgress {
    /// 1-based epoch.
    pub epoch: usize,
    /// Total epochs.
    pub epochs: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean cross-entropy of this batch.
    pub loss: f64,
}
