//! Training, transfer and evaluation of the 8-layer net of Yosinski et al. (2014): on a CPU with
//! the crate's own kernels (`native/`, the default), on a GPU or the alternative CPU backends with
//! burn.
//!
//! This crate is tpipe's only contact with burn. It takes typed configurations and images in
//! memory and returns weights as canonical safetensors bytes plus metrics; it knows nothing of
//! specs, caches or the build graph.
//!
//! - [`train`] trains a net from scratch or from another net's lower layers ([`Transfer`]),
//!   frozen or fine-tuned, with the paper's SGD.
//! - [`evaluate`] scores weights on an image set.
//! - [`initial_weights`] gives an untrained net, for random-weight controls.
//! - [`bench_throughput`] measures training-step speed for the bench binary.
//! - [`weights_metadata`], [`with_metadata`] and [`net_config_of_weights`] read a weights file's
//!   metadata, add a caller's entries (such as lineage) in the same canonical layout, and read
//!   back the net its architecture tag describes.
//!
//! Invariants the engine may rely on:
//! - Weights are byte-stable: the same inputs on native or flex give the same bytes (tensors sorted by
//!   name, PyTorch layouts, metadata sorted, no random ids).
//! - All randomness comes from `TrainConfig::seed` through the crate's own generator, never from
//!   burn's, so concurrent runs in one process do not disturb each other.
//! - On Linux with glibc, the first run raises malloc's mmap and trim thresholds once for the
//!   process (see `allocator.rs`), unless `MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_`
//!   is set: flex allocates every op's output afresh, and without this each large buffer is
//!   mapped, faulted in page by page and unmapped again (about 10% of a training step).
//! - A frozen transfer without augmentation runs its frozen layers once over the training set
//!   and trains on their stored outputs (up to fc6 when dropout is on);
//!   `Numerics::recompute_frozen` runs them in every step instead. The two agree up to float
//!   rounding.
//! - No environment variable changes the numerics: alternative paths are chosen through
//!   [`Numerics`] in [`RunOptions`], so on a given backend a cache key that covers the inputs
//!   covers the result. The malloc variables above change speed only; thread counts do not
//!   change native's or flex's bytes (tested), while LibTorch's sums may depend on `OMP_NUM_THREADS`.
//! - Input normalisation (per-channel mean/std of the first training set in a transfer chain) is
//!   stored in the weights and reused by transfers and by `evaluate`.

#![warn(missing_docs)]

mod allocator;
mod backend;
mod bench;
mod burn_trainer;
mod config;
mod data;
mod error;
mod evaluate;
mod native;
mod network;
mod options;
mod rng;
mod solver;
mod trace;
mod train;
mod trainer;
mod weights;

pub use backend::{torch_compiled, wgpu_compiled, BackendChoice};
pub use bench::{bench_throughput, cpu_backends, paper_grid_net, BenchOptions, ThroughputFigure};
pub use config::{ConvLayerConfig, InitScheme, NetConfig, TrainConfig, LAYER_COUNT, LAYER_NAMES};
pub use data::ImageSet;
pub use error::MlError;
pub use evaluate::{evaluate, Evaluation};
pub use options::{Numerics, RunOptions, TrainProgress};
pub use trace::{trace_training, TraceOptions, TracedStep, TrainingTrace};
pub use train::{
    initial_weights, train, train_with_validation, TrainOutcome, Transfer, TransferMode,
};
pub use trainer::{LayerState, PhaseTimes, TrainingState};
pub use weights::{net_config_of_weights, weights_metadata, with_metadata};
