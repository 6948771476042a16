//! tpipe: transfer-learning experiments as a content-addressed build graph.
//!
//! See ARCHITECTURE.md for the layers and their invariants.

pub mod action;
pub mod cache;
pub mod cli;
pub mod data;
pub mod exec;
pub mod graph;
pub mod hash;
pub mod key;
pub mod kind;
pub mod kinds;
pub mod plan;
pub mod remote;
pub mod schema;
pub mod session;
pub mod spec;
