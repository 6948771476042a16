//! The engine's integration tests: one binary, data-driven cases. Node kinds come from
//! `tpipe_engine::testing` (a test build turns on the engine's `testing` feature), so nothing
//! here trains a network.
//!
//! Snapshots (`expect![[...]]`) update with `UPDATE_EXPECT=1 cargo nextest run`.

mod support;

mod cache_integrity;
mod cluster;
#[cfg(feature = "ml")]
mod controls;
mod diagnostics;
#[cfg(feature = "ml")]
mod end_to_end;
#[cfg(feature = "ml")]
mod hermetic;
mod keys;
mod processes;
mod readme;
mod remotes;
mod reruns;
mod run_page;
#[cfg(feature = "ml")]
mod seeds;
mod slurm;
mod sweeps;
