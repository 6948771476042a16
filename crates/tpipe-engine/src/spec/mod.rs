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
mod params;
pub mod source_map;
mod validator;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::kind::{KindRegistry, TypedParams};
use crate::resources::Resources;
use crate::schema::show_value;
pub use diagnostic::{Diagnostic, SpecErrors};
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
}

#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub kind: String,
    /// Every parameter of the kind, normalised, with defaults filled in.
    pub params: Map<String, Value>,
    /// Input slot → the names of the nodes it reads (globs already expanded).
    pub inputs: BTreeMap<String, Vec<String>>,
    /// A folder (relative to the project) to copy the outputs to after the node is built.
    pub publish: Option<PathBuf>,
    pub location: Location,
    /// The YAML block this node came from (its name template when it has a matrix).
    pub block: String,
    /// What the node asks of the machine that builds it (`resources:`, after the kind's
    /// `defaults:`). Never part of a key.
    pub resources: Resources,
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
        self.nodes.iter().find(|node| node.name == name)
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
    let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(parse(file, &text, registry)?)
}

/// Validates pipeline text; `file` is used for messages and to resolve relative paths.
pub fn parse(file: &Path, text: &str, registry: &KindRegistry) -> Result<Pipeline, SpecErrors> {
    let mut validator = Validator::new(file, text);
    let pipeline = validator.pipeline(text, registry);
    if validator.diagnostics.is_empty() {
        Ok(pipeline)
    } else {
        Err(SpecErrors {
            diagnostics: validator.diagnostics,
        })
    }
}

/// Shows a value in diagnostics (re-exported for kinds' `check` messages).
pub fn describe_value(value: &Value) -> String {
    show_value(value)
}
