//! tpipe's engine: everything that turns a YAML pipeline into built, cached nodes, without
//! knowing what any node does. Node kinds (data sets, splits, training, reports) live in the
//! `tpipe` crate on top of this one and reach the engine only through [`kind::NodeKind`].
//!
//! This crate builds without burn, plotters, image or flate2, so the engine's tests compile in
//! seconds. See ARCHITECTURE.md for the layers and their invariants.

pub mod action;
pub mod build;
pub mod cache;
pub mod exec;
pub mod graph;
pub mod hash;
pub mod key;
pub mod kind;
pub mod plan;
pub mod record;
pub mod remote;
pub mod resources;
pub mod schema;
pub mod session;
pub mod slurm;
pub mod spec;
pub mod testing;
