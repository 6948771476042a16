//! Behaviour of tpipe-ml on tiny generated data (no downloads, no GPU needed; the wgpu module
//! runs on lavapipe when the `wgpu` feature is on).

mod evaluation;
mod support;
mod training;
mod transfer;
mod weights;
#[cfg(feature = "wgpu")]
mod wgpu;
