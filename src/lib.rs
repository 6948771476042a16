//! tpipe: transfer-learning experiments as a content-addressed build graph.
//!
//! The engine (specs, the DAG, keys, actions, the cache, the executor, plans, remotes) is the
//! `tpipe-engine` crate, re-exported here under the same module names; this crate adds the node
//! kinds, their data decoders and the command line. See ARCHITECTURE.md.

pub use tpipe_engine::{
    action, build, cache, cluster, exec, executors, graph, hash, key, kind, limits, plan,
    private_file, record, remote, resources, schema, session, signature, slurm, spec,
};

pub mod cli;
#[cfg(feature = "kinds")]
pub mod data;
pub mod kinds;
pub mod run_page;
pub mod trace;
