//! tpipe: transfer-learning experiments as a content-addressed build graph.
//!
//! See ARCHITECTURE.md for the layers and their invariants.

pub mod cache;
pub mod data;
pub mod hash;
pub mod key;
pub mod kind;
pub mod schema;
pub mod spec;
pub mod exec;
pub mod graph;
pub mod plan;
pub mod remote;
pub mod session;
pub mod cli;
pub mod kinds;
