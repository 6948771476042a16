//! Inputs: each written reference (a name or a pattern) resolved to nodes, checked against
//! the slot's accepted kinds and arity; then the kinds' checks that span a node and its inputs.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::matrix;
use super::source_map::YamlPath;
use super::validator::Validator;
use super::yaml::hint_did_you_mean;
use super::Pipeline;
use crate::kind::{KindRegistry, UpstreamSpec};
use crate::schema::{Arity, InputSlot};

/// Per node (by position), its written inputs: slot, the reference as written, where it is.
pub(super) type RawInputs = Vec<(usize, Vec<(String, Value, YamlPath)>)>;

/// Every node's name, and its position and kind by name, for resolving references.
struct Names<'p> {
    in_order: Vec<&'p str>,
    by_name: HashMap<&'p str, (usize, &'p str)>,
}

/// One written input of one node, to resolve.
struct WrittenInput<'a> {
    node: &'a str,
    declared: &'a InputSlot,
    slot: &'a str,
    value: Value,
    path: &'a YamlPath,
}

impl Validator {
    pub(super) fn connect(
        &mut self,
        pipeline: &mut Pipeline,
        raw_inputs: RawInputs,
        registry: &KindRegistry,
    ) {
        let mut resolved_all = Vec::new();
        let mut slot_paths: Vec<(usize, BTreeMap<String, YamlPath>)> = Vec::new();
        {
            let names = Names {
                in_order: pipeline
                    .nodes
                    .iter()
                    .map(|node| node.name.as_str())
                    .collect(),
                by_name: pipeline
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(position, node)| (node.name.as_str(), (position, node.kind.as_str())))
                    .collect(),
            };
            for (index, inputs) in raw_inputs {
                let node = &pipeline.nodes[index];
                let kind = registry.get(&node.kind).expect("kinds were checked");
                let slots = kind.inputs();
                let mut resolved: BTreeMap<String, Vec<String>> = BTreeMap::new();
                let mut paths = BTreeMap::new();
                for (slot, value, slot_path) in inputs {
                    let declared = slots
                        .iter()
                        .find(|declared| declared.name == slot)
                        .expect("slots were checked");
                    let written = WrittenInput {
                        node: &node.name,
                        declared,
                        slot: &slot,
                        value,
                        path: &slot_path,
                    };
                    let targets = self.resolve_input(written, &names);
                    paths.insert(slot.clone(), slot_path.clone());
                    resolved.insert(slot, targets);
                }
                slot_paths.push((index, paths));
                resolved_all.push((index, resolved));
            }
        }
        for (index, resolved) in resolved_all {
            pipeline.nodes[index].inputs = resolved;
        }
        self.check_across_nodes(pipeline, &slot_paths, registry);
    }

    /// The nodes one written input names (patterns expanded), each problem reported at it.
    fn resolve_input(&mut self, written: WrittenInput<'_>, names: &Names<'_>) -> Vec<String> {
        let WrittenInput {
            node,
            declared,
            slot,
            value,
            path,
        } = written;
        let references: Vec<String> = match value {
            Value::String(text) => vec![text],
            Value::Array(items) => items
                .into_iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let mut targets = Vec::new();
        for reference in references {
            if reference.contains('*') || reference.contains('?') {
                let matched: Vec<&str> = names
                    .in_order
                    .iter()
                    .copied()
                    .filter(|name| matrix::wildcard_matches(&reference, name) && *name != node)
                    .collect();
                if matched.is_empty() {
                    self.at_value(
                        path,
                        Some(node),
                        format!("pattern `{reference}` in input `{slot}` matches no node"),
                        None,
                    );
                }
                targets.extend(matched.into_iter().map(str::to_string));
            } else if names.by_name.contains_key(reference.as_str()) {
                targets.push(reference);
            } else {
                let hint = hint_did_you_mean(&reference, names.in_order.iter().copied());
                self.at_value(
                    path,
                    Some(node),
                    format!("input `{slot}` refers to unknown node `{reference}`"),
                    hint,
                );
            }
        }
        if !declared.accepts.is_empty() {
            for target in &targets {
                let target_kind = names.by_name[target.as_str()].1;
                if !declared.accepts.contains(&target_kind) {
                    let message = format!(
                        "input `{slot}` must be a {} node, but `{target}` is a `{target_kind}` node",
                        declared
                            .accepts
                            .iter()
                            .map(|kind| format!("`{kind}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    );
                    self.at_value(path, Some(node), message, None);
                }
            }
        }
        if declared.arity != Arity::Many && targets.len() > 1 {
            self.at_value(
                path,
                Some(node),
                format!("input `{slot}` takes one node, but {} match", targets.len()),
                None,
            );
        }
        targets
    }

    /// Runs each kind's checks that span a node and the nodes it reads, pointing at the input
    /// reference (or the node) at fault.
    fn check_across_nodes(
        &mut self,
        pipeline: &Pipeline,
        slot_paths: &[(usize, BTreeMap<String, YamlPath>)],
        registry: &KindRegistry,
    ) {
        let positions: HashMap<&str, usize> = pipeline
            .nodes
            .iter()
            .enumerate()
            .map(|(position, node)| (node.name.as_str(), position))
            .collect();
        for (index, paths) in slot_paths {
            let node = &pipeline.nodes[*index];
            // A node whose parameters did not validate was reported already.
            if !node.typed.is_valid() {
                continue;
            }
            let kind = registry.get(&node.kind).expect("kinds were checked");
            let inputs: BTreeMap<String, Vec<UpstreamSpec<'_>>> = node
                .inputs
                .iter()
                .map(|(slot, sources)| {
                    let upstream = sources
                        .iter()
                        .filter_map(|source| positions.get(source.as_str()))
                        .map(|&position| &pipeline.nodes[position])
                        .map(|upstream| UpstreamSpec {
                            name: &upstream.name,
                            kind: &upstream.kind,
                            params: &upstream.params,
                        })
                        .collect();
                    (slot.clone(), upstream)
                })
                .collect();
            for problem in kind.check_inputs(&node.typed, &inputs) {
                let location = match problem.input.as_ref().and_then(|slot| paths.get(slot)) {
                    Some(path) => self.source_map.value(path),
                    None => node.location,
                };
                self.report(location, Some(&node.name), problem.message, problem.hint);
            }
        }
    }
}
