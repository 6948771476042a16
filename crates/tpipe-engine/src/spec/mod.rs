//! YAML text → validated pipeline spec. No I/O beyond reading the one file in [`load`].
//!
//! ```yaml
//! cache: ../cache                 # optional
//! defaults:                       # per kind, overridden per node
//!   train: { epochs: 4 }
//! nodes:
//!   data: { kind: dataset, source: synthetic }
//!   "base{task}":
//!     kind: train
//!     matrix: { task: [A, B] }
//!     inputs: { data: data }
//!     task: "{task}"
//! ```
//! Every problem is reported, each with its file, line and column, the node, and a hint.

mod block;
mod connect;
pub mod diagnostic;
mod document;
pub mod matrix;
pub mod names;
mod node;
mod params;
pub mod source_map;
mod validator;
mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::kind::{KindRegistry, TypedParams};
use crate::resources::Resources;
use crate::schema::show_value;
pub use diagnostic::{Diagnostic, NodeGroup, SpecErrors};
use names::NameIndex;
pub use node::{Inputs, NodeParams, ParamsIter};
use source_map::Location;
use validator::Validator;

/// A validated pipeline: every node expanded, typed, defaulted and connected.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub file: PathBuf,
    /// The cache directory written in the file (already resolved against the file's folder).
    pub cache: Option<PathBuf>,
    pub remote: Option<String>,
    /// In the order they are declared (matrix expansions in grid order).
    pub nodes: Vec<NodeSpec>,
    /// The file's text, for quoting lines in later diagnostics (cycles).
    pub text: String,
    /// `nodes` by name.
    names: NameIndex,
}

#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub kind: &'static str,
    /// Every parameter of the kind, normalised, with defaults filled in.
    pub params: NodeParams,
    /// Input slot → the names of the nodes it reads (globs already expanded).
    pub inputs: Inputs,
    /// A folder (relative to the project) to copy the outputs to after the node is built.
    pub publish: Option<PathBuf>,
    pub location: Location,
    /// The YAML block this node came from (its name template when it has a matrix).
    pub block: Arc<str>,
    /// What the node asks of the machine that builds it (`resources:`, after the kind's
    /// `defaults:`; shared by the nodes of a block). Never part of a key.
    pub resources: Arc<Resources>,
    /// `params` as the kind's typed struct, which its hooks receive (parsed once, here).
    pub typed: TypedParams,
}

impl Pipeline {
    /// Line `line` (from 1) of the pipeline file.
    pub fn source_line(&self, line: usize) -> Option<String> {
        self.text
            .lines()
            .nth(line.wrapping_sub(1))
            .map(str::to_string)
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.position_of(name).map(|position| &self.nodes[position])
    }

    /// The position of node `name` in `nodes`.
    pub fn position_of(&self, name: &str) -> Option<usize> {
        self.names
            .get(name, |position| self.nodes[position].name.as_str())
    }

    /// Adds a node whose name no other node has.
    fn push_new_node(&mut self, node: NodeSpec) {
        debug_assert!(self.position_of(&node.name).is_none(), "names are unique");
        let position = self.nodes.len();
        let nodes = &self.nodes;
        self.names
            .insert(&node.name, position, |other| nodes[other].name.as_str());
        self.nodes.push(node);
    }
}

/// How far a pipeline may grow before it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most nodes a pipeline may expand to, and so any one block.
    pub max_nodes: u64,
}

/// A million nodes: plans in seconds and takes about a gigabyte at most; a typo such as
/// `1..=99999` in a matrix goes far past it.
pub const DEFAULT_MAX_NODES: u64 = 1_000_000;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read pipeline file `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Spec(#[from] SpecErrors),
}

/// Reads and validates a pipeline file.
pub fn load(file: &Path, registry: &KindRegistry) -> Result<Pipeline, LoadError> {
    load_with(file, registry, &Limits::default())
}

/// [`load`] with other limits.
pub fn load_with(
    file: &Path,
    registry: &KindRegistry,
    limits: &Limits,
) -> Result<Pipeline, LoadError> {
    let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(parse_with(file, &text, registry, limits)?)
}

/// Validates pipeline text; `file` is used for messages and to resolve relative paths.
pub fn parse(file: &Path, text: &str, registry: &KindRegistry) -> Result<Pipeline, SpecErrors> {
    parse_with(file, text, registry, &Limits::default())
}

/// [`parse`] with other limits.
pub fn parse_with(
    file: &Path,
    text: &str,
    registry: &KindRegistry,
    limits: &Limits,
) -> Result<Pipeline, SpecErrors> {
    let mut validator = Validator::new(file, text, *limits);
    let pipeline = validator.pipeline(text, registry);
    if validator.has_problems() {
        Err(SpecErrors {
            diagnostics: validator.finish(),
        })
    } else {
        Ok(pipeline)
    }
}

/// Shows a value in diagnostics (re-exported for kinds' `check` messages).
pub fn describe_value(value: &Value) -> String {
    show_value(value)
}
