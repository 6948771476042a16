//! The document: the top-level keys, then the node blocks, counted against the node limit
//! before any node is made, then expanded into nodes (one per matrix combination), then their
//! inputs connected. The one walk that builds a [`Pipeline`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::block::Block;
use super::connect::NodeInputs;
use super::diagnostic::with_thousands;
use super::names::NameIndex;
use super::params::BlockParams;
use super::source_map::{path, Location};
use super::validator::{Defaults, NodeProblem, Stage, Validator};
use super::yaml::{hint_did_you_mean, key_text, with_key};
use super::{matrix, NodeSpec, Pipeline};
use crate::kind::KindRegistry;
use crate::resources::Resources;

const TOP_LEVEL_KEYS: &[&str] = &["nodes", "defaults", "cache", "remote"];

/// Why a node name is not safe as a file name everywhere we use it: what the nodes with this
/// mistake share, and this name's message.
fn name_problem(name: &str) -> Option<(&'static str, String)> {
    if name.is_empty() {
        return Some(("empty", "node names cannot be empty".into()));
    }
    if name.contains('/') || name.contains('\\') {
        return Some((
            "path separator",
            format!("node name `{name}` contains a path separator"),
        ));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Some((
            "first character",
            format!("node name `{name}` cannot start with `{}`", &name[..1]),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|character| !(character.is_ascii_alphanumeric() || "_-+.=".contains(*character)))
    {
        return Some((
            "unsafe character",
            format!("node name `{name}` contains `{bad}`, which is not safe in a file name"),
        ));
    }
    None
}

/// How many nodes a block makes: exactly, or (a block too large to count cheaply) more than.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeCount {
    Exactly(u64),
    MoreThan(u64),
}

impl NodeCount {
    fn at_least(self) -> u64 {
        match self {
            NodeCount::Exactly(count) => count,
            NodeCount::MoreThan(count) => count.saturating_add(1),
        }
    }
}

impl std::fmt::Display for NodeCount {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeCount::Exactly(count) => write!(formatter, "{}", with_thousands(*count)),
            NodeCount::MoreThan(count) => write!(formatter, "more than {}", with_thousands(*count)),
        }
    }
}

impl Validator {
    pub(super) fn pipeline(&mut self, text: &str, registry: &KindRegistry) -> Pipeline {
        let mut pipeline = Pipeline {
            file: self.file.clone(),
            cache: None,
            remote: None,
            nodes: Vec::new(),
            text: text.to_string(),
            names: NameIndex::default(),
        };
        let Some(root) = self.root_mapping(text) else {
            return pipeline;
        };
        let (defaults, nodes_value) = self.top_level(&root, &mut pipeline, registry);
        let Some(serde_yaml::Value::Mapping(node_blocks)) = nodes_value else {
            self.report(
                Location { line: 1, column: 1 },
                None,
                "the pipeline declares no nodes",
                Some("add a `nodes:` mapping of node name → node".into()),
            );
            return pipeline;
        };
        // Every block is read, and what its nodes share checked, before any node is made: a
        // block costs its text, its nodes cost memory.
        let mut blocks = Vec::new();
        let mut shared: Vec<Option<BlockParams>> = Vec::new();
        for (name, block_value) in node_blocks {
            let Ok(template) = key_text(name) else {
                continue;
            };
            self.stage = Stage::Block(blocks.len());
            let block_path = path(&["nodes", &template]);
            if let Some(block) = self.block(&template, block_path, block_value, registry) {
                shared.push(self.block_params(&block, &defaults));
                blocks.push(block);
            }
        }
        let Some(total) = self.within_limit(&blocks, &shared) else {
            return pipeline;
        };
        pipeline.nodes.reserve_exact(total as usize);
        let mut node_inputs: Vec<NodeInputs> = Vec::new();
        let mut not_expanded: Vec<&Block> = Vec::new();
        for (index, (block, params)) in blocks.iter().zip(&mut shared).enumerate() {
            self.stage = Stage::Block(index);
            match params {
                Some(params) => {
                    let expansion = Expansion {
                        block,
                        index,
                        params,
                    };
                    self.expand_into(expansion, &mut pipeline, &mut node_inputs);
                }
                None => not_expanded.push(block),
            }
        }
        drop(shared);
        self.stage = Stage::Connections;
        self.connect(&mut pipeline, &blocks, node_inputs, &not_expanded, registry);
        pipeline
    }

    /// The file's top-level mapping, or `None` after reporting why there is none.
    fn root_mapping(&mut self, text: &str) -> Option<serde_yaml::Mapping> {
        let root: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(root) => root,
            Err(error) => {
                let location = error
                    .location()
                    .map(|location| Location {
                        line: location.line(),
                        column: location.column(),
                    })
                    .unwrap_or_default();
                let message = error.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_string();
                self.report(location, None, format!("invalid YAML: {message}"), None);
                return None;
            }
        };
        match root {
            serde_yaml::Value::Mapping(mapping) => Some(mapping),
            serde_yaml::Value::Null => {
                self.report(
                    Location { line: 1, column: 1 },
                    None,
                    "the pipeline file is empty",
                    Some("declare nodes under `nodes:`".into()),
                );
                None
            }
            _ => {
                self.at_value(
                    &[],
                    None,
                    "a pipeline file must be a mapping with `nodes:`",
                    None,
                );
                None
            }
        }
    }

    /// Reads the top-level keys other than `nodes` into `pipeline`; returns the defaults and
    /// the `nodes` value.
    fn top_level<'y>(
        &mut self,
        root: &'y serde_yaml::Mapping,
        pipeline: &mut Pipeline,
        registry: &KindRegistry,
    ) -> (Defaults, Option<&'y serde_yaml::Value>) {
        let mut defaults = Defaults::new();
        let mut nodes_value = None;
        for (key, value) in root {
            let Ok(key) = key_text(key) else { continue };
            let key_path = path(&[&key]);
            match key.as_str() {
                "nodes" => nodes_value = Some(value),
                "defaults" => defaults = self.defaults(value, registry),
                "cache" | "remote" => match value.as_str() {
                    Some(text) if key == "cache" => {
                        let base = self.file.parent().unwrap_or(Path::new("."));
                        pipeline.cache = Some(base.join(text));
                    }
                    Some(text) => pipeline.remote = Some(text.to_string()),
                    None => {
                        self.at_value(&key_path, None, format!("`{key}` must be a string"), None)
                    }
                },
                _ => self.at_key(
                    &key_path,
                    None,
                    format!("unknown top-level key `{key}`"),
                    hint_did_you_mean(&key, TOP_LEVEL_KEYS.iter().copied()).or_else(|| {
                        Some(format!("the top level takes {}", TOP_LEVEL_KEYS.join(", ")))
                    }),
                ),
            }
        }
        (defaults, nodes_value)
    }

    /// How many nodes `block` makes, counted without making them (walking the grid only when
    /// many `exclude:` entries make the count costly, and then no further than past `limit`).
    fn node_count(block: &Block, limit: u64) -> NodeCount {
        if let Some(count) = matrix::count_kept(&block.variables, &block.exclusions) {
            return NodeCount::Exactly(count);
        }
        let Some(at_most) = matrix::count(&block.variables) else {
            return NodeCount::MoreThan(u64::MAX);
        };
        let walk_up_to = at_most.min(limit.saturating_add(1));
        let walked = block.combinations().take(walk_up_to as usize).count() as u64;
        if walked > limit {
            NodeCount::MoreThan(limit)
        } else {
            NodeCount::Exactly(walked)
        }
    }

    /// How many nodes the blocks that will be expanded make, if they stay within the node
    /// limit, each and all together; each excess is reported at the matrix that makes it, with
    /// how many nodes it would make.
    fn within_limit(&mut self, blocks: &[Block], shared: &[Option<BlockParams>]) -> Option<u64> {
        let limit = self.limits.max_nodes;
        // The variable with the most values is where a typo (`1..=99999` for `1..=9`) would be.
        let hint = |block: &Block| {
            let widest = block
                .variables
                .iter()
                .max_by_key(|variable| variable.values.len())
                .map(|variable| {
                    format!(
                        "`{}` has {} values: a typo? ",
                        variable.name,
                        with_thousands(variable.values.len())
                    )
                })
                .unwrap_or_default();
            Some(format!(
                "{widest}if so many nodes are meant, raise the limit with `--max-nodes N` or \
                 `max_nodes = N` in tpipe.toml (now {})",
                with_thousands(limit)
            ))
        };
        let mut within = true;
        let mut total: u64 = 0;
        let mut largest: Option<(usize, &Block, NodeCount)> = None;
        for (index, (block, params)) in blocks.iter().zip(shared).enumerate() {
            // A block whose matrix values were refused is not expanded.
            if params.is_none() {
                continue;
            }
            self.stage = Stage::Block(index);
            let count = Self::node_count(block, limit);
            total = total.saturating_add(count.at_least());
            if largest.is_none_or(|(_, _, most)| count.at_least() > most.at_least()) {
                largest = Some((index, block, count));
            }
            if count.at_least() > limit {
                within = false;
                let message = format!(
                    "block `{}` would make {count} nodes, more than the limit of {}",
                    block.template,
                    with_thousands(limit)
                );
                let location = self.matrix_location(block);
                self.report(location, None, message, hint(block));
            }
        }
        if within && total > limit {
            within = false;
            let (index, block, count) = largest.expect("a pipeline over the limit has a block");
            self.stage = Stage::Block(index);
            let message = format!(
                "the pipeline would make {} nodes, more than the limit of {} (block `{}` makes {count} of them)",
                with_thousands(total),
                with_thousands(limit),
                block.template,
            );
            let location = self.matrix_location(block);
            self.report(location, None, message, hint(block));
        }
        within.then_some(total)
    }

    /// Where a block's `matrix:` is written (its name, when it has none).
    fn matrix_location(&self, block: &Block) -> Location {
        if block.variables.is_empty() {
            block.location
        } else {
            self.source_map.key(&with_key(&block.path, "matrix"))
        }
    }

    /// Adds the nodes of one block (one per matrix combination) to `pipeline`, and their
    /// written inputs to `node_inputs`.
    fn expand_into(
        &mut self,
        expansion: Expansion<'_, '_>,
        pipeline: &mut Pipeline,
        node_inputs: &mut Vec<NodeInputs>,
    ) {
        let Expansion {
            block,
            index,
            params,
        } = expansion;
        let resources = Arc::new(
            block.resources.clone().or(self
                .resource_defaults
                .get(block.kind.name())
                .unwrap_or(&Resources::default())),
        );
        let kind_name = block.kind.name();
        for combination in block.combinations() {
            let name = matrix::substitute_text(&block.template, &combination);
            if let Some((cause, message)) = name_problem(&name) {
                let problem = NodeProblem {
                    location: block.location,
                    cause: format!("node name: {cause}"),
                    message,
                    found: None,
                    hint: Some("use letters, digits and `_ - + . =`".into()),
                };
                self.report_node(problem, &name, &block.template);
                continue;
            }
            if let Some(first) = pipeline.node(&name) {
                let message = format!(
                    "node `{name}` is declared twice (first at line {})",
                    first.location.line
                );
                let problem = NodeProblem {
                    location: block.location,
                    cause: "declared twice".into(),
                    message,
                    found: None,
                    hint: Some("give each node a unique name".into()),
                };
                self.report_node(problem, &name, &block.template);
                continue;
            }
            let (node_params, typed) = self.node_params(block, params, &name, &combination);
            let references: Vec<Value> = block
                .inputs
                .iter()
                .map(|(_, written)| matrix::substitute(written, &combination))
                .collect();
            node_inputs.push(NodeInputs {
                position: pipeline.nodes.len(),
                block: index,
                references,
            });
            pipeline.push_new_node(NodeSpec {
                name,
                kind: kind_name,
                params: node_params,
                inputs: Default::default(),
                publish: block
                    .publish
                    .as_ref()
                    .map(|text| PathBuf::from(matrix::substitute_text(text, &combination))),
                location: block.location,
                block: block.template.clone(),
                resources: resources.clone(),
                typed,
            });
        }
    }
}

/// One block's expansion: the block, its position among the blocks, and what its nodes share.
struct Expansion<'b, 'r> {
    block: &'b Block<'r>,
    index: usize,
    params: &'b mut BlockParams,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_share_a_cause_per_kind_of_mistake() {
        assert_eq!(name_problem("a/b").unwrap().0, "path separator");
        assert_eq!(name_problem("x\\y").unwrap().0, "path separator");
        assert_eq!(name_problem(".a").unwrap().0, "first character");
        assert_eq!(name_problem("a b").unwrap().0, "unsafe character");
        assert!(name_problem("A3B+_s0").is_none());
    }
}
