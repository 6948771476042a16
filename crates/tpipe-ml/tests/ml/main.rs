//! Behaviour of tpipe-ml on tiny generated data (no downloads, no GPU needed; the wgpu module
//! runs on lavapipe when the `wgpu` feature is on, the torch module on PyTorch's CPU kernels
//! when the `torch` feature is).

mod evaluation;
mod metadata;
mod native;
mod support;
#[cfg(feature = "torch")]
mod torch;
mod training;
mod transfer;
mod weights;
#[cfg(feature = "wgpu")]
mod wgpu;
