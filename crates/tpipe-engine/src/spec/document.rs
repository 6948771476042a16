//! The document: the top-level keys, then each node block expanded into nodes (one per matrix
//! combination), then their inputs connected. The one walk that builds a [`Pipeline`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::block::Block;
use super::connect::RawInputs;
use super::source_map::{path, Location};
use super::validator::{Defaults, Validator};
use super::yaml::{hint_did_you_mean, key_text, with_key};
use super::{matrix, NodeSpec, Pipeline};
use crate::kind::KindRegistry;
use crate::resources::Resources;

const TOP_LEVEL_KEYS: &[&str] = &["nodes", "defaults", "cache", "remote"];

/// Whether a node name is safe as a file name everywhere we use it.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("node names cannot be empty".into());
    }
    if name.contains('/') || name.contains('\\') {
        return Some(format!("node name `{name}` contains a path separator"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Some(format!(
            "node name `{name}` cannot start with `{}`",
            &name[..1]
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|character| !(character.is_ascii_alphanumeric() || "_-+.=".contains(*character)))
    {
        return Some(format!(
            "node name `{name}` contains `{bad}`, which is not safe in a file name"
        ));
    }
    None
}

impl Validator {
    pub(super) fn pipeline(&mut self, text: &str, registry: &KindRegistry) -> Pipeline {
        let mut pipeline = Pipeline {
            file: self.file.clone(),
            cache: None,
            remote: None,
            nodes: Vec::new(),
            text: text.to_string(),
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
        let mut raw_inputs: RawInputs = Vec::new();
        let mut first_seen: HashMap<String, Location> = HashMap::new();
        for (name, block_value) in node_blocks {
            let Ok(template) = key_text(name) else {
                continue;
            };
            let block_path = path(&["nodes", &template]);
            let Some(block) = self.block(&template, block_path, block_value, registry) else {
                continue;
            };
            let expansion = Expansion {
                block: &block,
                defaults: &defaults,
                first_seen: &mut first_seen,
            };
            self.expand_into(expansion, &mut pipeline, &mut raw_inputs);
        }
        self.connect(&mut pipeline, raw_inputs, registry);
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

    /// Adds the nodes of one block (one per matrix combination) to `pipeline`, and their
    /// written inputs to `raw_inputs`.
    fn expand_into(
        &mut self,
        expansion: Expansion<'_, '_>,
        pipeline: &mut Pipeline,
        raw_inputs: &mut RawInputs,
    ) {
        let Expansion {
            block,
            defaults,
            first_seen,
        } = expansion;
        for combination in self.expand(block) {
            let name = matrix::substitute_text(&block.template, &combination);
            let location = self.source_map.key(&block.path);
            if let Some(problem) = name_problem(&name) {
                self.report(
                    location,
                    Some(&name),
                    problem,
                    Some("use letters, digits and `_ - + . =`".into()),
                );
                continue;
            }
            if let Some(first) = first_seen.get(&name) {
                let message = format!(
                    "node `{name}` is declared twice (first at line {})",
                    first.line
                );
                self.report(
                    location,
                    Some(&name),
                    message,
                    Some("give each node a unique name".into()),
                );
                continue;
            }
            first_seen.insert(name.clone(), location);
            let (params, typed) = self.node_params(block, &name, &combination, defaults);
            let inputs = block
                .inputs
                .iter()
                .map(|(slot, value)| {
                    (
                        slot.clone(),
                        matrix::substitute(value, &combination),
                        with_key(&with_key(&block.path, "inputs"), slot),
                    )
                })
                .collect();
            raw_inputs.push((pipeline.nodes.len(), inputs));
            let resource_defaults = self.resource_defaults.get(block.kind.name());
            pipeline.nodes.push(NodeSpec {
                name,
                kind: block.kind.name().to_string(),
                params,
                inputs: BTreeMap::new(),
                publish: block
                    .publish
                    .as_ref()
                    .map(|text| PathBuf::from(matrix::substitute_text(text, &combination))),
                location,
                block: block.template.clone(),
                resources: block
                    .resources
                    .clone()
                    .or(resource_defaults.unwrap_or(&Resources::default())),
                typed,
            });
        }
    }
}

/// One block's expansion: the block, the pipeline's defaults, and the names seen so far.
struct Expansion<'b, 'r> {
    block: &'b Block<'r>,
    defaults: &'b Defaults,
    first_seen: &'b mut HashMap<String, Location>,
}
