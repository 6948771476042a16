//! Inputs: each written reference (a name or a pattern) resolved to nodes, checked against
//! the slot's accepted kinds and arity; then the kinds' checks that span a node and its inputs.
//!
//! Names are looked up in the pipeline's index and patterns through [`PatternIndex`], so
//! connecting a million nodes never compares each reference with every node.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::block::Block;
use super::matrix;
use super::names::PatternIndex;
use super::source_map::Location;
use super::validator::{NodeProblem, Validator};
use super::yaml::{hint_did_you_mean, with_key};
use super::{Inputs, Pipeline};
use crate::kind::{KindRegistry, UpstreamSpec};
use crate::schema::{Arity, InputSlot};

/// One node's written inputs, matrix values substituted, in the order of its block's
/// `inputs:`.
pub(super) struct NodeInputs {
    /// The node's position in the pipeline.
    pub(super) position: usize,
    /// Its block's position among the blocks.
    pub(super) block: usize,
    pub(super) references: Vec<Value>,
}

/// What a block's written inputs are, worked out once for all its nodes.
struct BlockSlots {
    /// Per written input: its declared slot and where it is written.
    written: Vec<(InputSlot, Location)>,
    /// The block's name template.
    template: Arc<str>,
}

/// One written input of one node, to resolve.
struct WrittenInput<'a> {
    node: &'a str,
    block: &'a Arc<str>,
    declared: &'a InputSlot,
    location: Location,
    value: &'a Value,
}

/// Every node's name by position, and what the resolution needs of the pipeline.
struct Names<'p> {
    pipeline: &'p Pipeline,
    in_order: &'p [&'p str],
    patterns: PatternIndex<'p>,
    /// Name templates of blocks that were not expanded, as patterns: a reference that one of
    /// them matches is not reported (the block's own problem was).
    not_expanded: Vec<String>,
}

impl Validator {
    pub(super) fn connect(
        &mut self,
        pipeline: &mut Pipeline,
        blocks: &[Block],
        node_inputs: Vec<NodeInputs>,
        not_expanded: &[&Block],
        registry: &KindRegistry,
    ) {
        let slots: Vec<BlockSlots> = blocks
            .iter()
            .map(|block| {
                let declared = block.kind.inputs();
                let written = block
                    .inputs
                    .iter()
                    .map(|(slot, _)| {
                        let slot_path = with_key(&with_key(&block.path, "inputs"), slot);
                        let declared = declared
                            .iter()
                            .find(|declared| declared.name == slot)
                            .expect("slots were checked")
                            .clone();
                        (declared, self.source_map.value(&slot_path))
                    })
                    .collect();
                BlockSlots {
                    written,
                    template: block.template.clone(),
                }
            })
            .collect();
        let mut resolved_all = Vec::with_capacity(node_inputs.len());
        {
            let in_order: Vec<&str> = pipeline
                .nodes
                .iter()
                .map(|node| node.name.as_str())
                .collect();
            let mut names = Names {
                pipeline,
                in_order: &in_order,
                patterns: PatternIndex::new(&in_order),
                not_expanded: not_expanded
                    .iter()
                    .map(|block| template_pattern(&block.template))
                    .collect(),
            };
            for inputs in &node_inputs {
                let node = &pipeline.nodes[inputs.position].name;
                let block = &slots[inputs.block];
                let mut resolved = Inputs::default();
                for ((declared, location), value) in block.written.iter().zip(&inputs.references) {
                    let written = WrittenInput {
                        node,
                        block: &block.template,
                        declared,
                        location: *location,
                        value,
                    };
                    let targets = self.resolve_input(written, &mut names);
                    resolved.insert(declared.name, targets);
                }
                resolved_all.push((inputs.position, resolved));
            }
        }
        for (position, resolved) in resolved_all {
            pipeline.nodes[position].inputs = resolved;
        }
        self.check_across_nodes(pipeline, &slots, &node_inputs, registry);
    }

    /// The nodes one written input names (patterns expanded), each problem reported at it.
    fn resolve_input(&mut self, written: WrittenInput<'_>, names: &mut Names<'_>) -> Vec<String> {
        let WrittenInput {
            node,
            block,
            declared,
            location,
            value,
        } = written;
        let slot = declared.name;
        let references: Vec<&str> = match value {
            Value::String(text) => vec![text.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut targets: Vec<usize> = Vec::new();
        for reference in references {
            if matrix::is_pattern(reference) {
                let matched: Vec<usize> = names
                    .patterns
                    .matches(reference)
                    .into_iter()
                    .filter(|&position| names.in_order[position] != node)
                    .collect();
                // A pattern may have meant nodes of a block that was not expanded.
                if matched.is_empty() && names.not_expanded.is_empty() {
                    let problem = NodeProblem {
                        location,
                        cause: format!("pattern in input `{slot}` matches no node"),
                        message: format!("pattern `{reference}` in input `{slot}` matches no node"),
                        found: None,
                        hint: None,
                    };
                    self.report_node(problem, node, block);
                }
                targets.extend(matched);
            } else if let Some(position) = names.pipeline.position_of(reference) {
                targets.push(position);
            } else if !names
                .not_expanded
                .iter()
                .any(|template| matrix::wildcard_matches(template, reference))
            {
                let cause = format!("input `{slot}` refers to unknown node");
                // The nearest name is looked for once per place: it compares with every node.
                let hint = if self.knows(location, &cause) {
                    None
                } else {
                    hint_did_you_mean(reference, names.in_order.iter().copied())
                };
                let problem = NodeProblem {
                    location,
                    message: format!("{cause} `{reference}`"),
                    cause,
                    found: Some((" ", format!("`{reference}`"))),
                    hint,
                };
                self.report_node(problem, node, block);
            }
        }
        if !declared.accepts.is_empty() {
            for &target in &targets {
                let target_kind = names.pipeline.nodes[target].kind;
                if !declared.accepts.contains(&target_kind) {
                    let target_name = names.in_order[target];
                    let accepted = declared
                        .accepts
                        .iter()
                        .map(|kind| format!("`{kind}`"))
                        .collect::<Vec<_>>()
                        .join(" or ");
                    let problem = NodeProblem {
                        location,
                        cause: format!("input `{slot}` must be a {accepted} node, not `{target_kind}`"),
                        message: format!(
                            "input `{slot}` must be a {accepted} node, but `{target_name}` is a `{target_kind}` node"
                        ),
                        found: None,
                        hint: None,
                    };
                    self.report_node(problem, node, block);
                }
            }
        }
        if declared.arity != Arity::Many && targets.len() > 1 {
            let problem = NodeProblem {
                location,
                cause: format!("input `{slot}` takes one node"),
                message: format!("input `{slot}` takes one node, but {} match", targets.len()),
                found: None,
                hint: None,
            };
            self.report_node(problem, node, block);
        }
        targets
            .into_iter()
            .map(|position| names.in_order[position].to_string())
            .collect()
    }

    /// Runs each kind's checks that span a node and the nodes it reads, pointing at the input
    /// reference (or the node) at fault.
    fn check_across_nodes(
        &mut self,
        pipeline: &Pipeline,
        slots: &[BlockSlots],
        node_inputs: &[NodeInputs],
        registry: &KindRegistry,
    ) {
        for inputs in node_inputs {
            let node = &pipeline.nodes[inputs.position];
            // A node whose parameters did not validate was reported already.
            if !node.typed.is_valid() {
                continue;
            }
            let kind = registry.get(node.kind).expect("kinds were checked");
            let upstream: BTreeMap<String, Vec<UpstreamSpec<'_>>> = node
                .inputs
                .iter()
                .map(|(slot, sources)| {
                    let upstream = sources
                        .iter()
                        .filter_map(|source| pipeline.node(source))
                        .map(|upstream| UpstreamSpec {
                            name: &upstream.name,
                            kind: upstream.kind,
                            params: &upstream.params,
                        })
                        .collect();
                    (slot.to_string(), upstream)
                })
                .collect();
            let block = &slots[inputs.block];
            for (index, problem) in kind
                .check_inputs(&node.typed, &upstream)
                .into_iter()
                .enumerate()
            {
                let location = problem
                    .input
                    .as_ref()
                    .and_then(|slot| {
                        block
                            .written
                            .iter()
                            .find(|(declared, _)| declared.name == slot)
                    })
                    .map_or(node.location, |(_, location)| *location);
                let node_problem = NodeProblem {
                    location,
                    cause: format!(
                        "check {index} across nodes of `{}` by kind `{}`",
                        problem.input.as_deref().unwrap_or_default(),
                        kind.name()
                    ),
                    message: problem.message,
                    found: None,
                    hint: problem.hint,
                };
                self.report_node(node_problem, &node.name, &block.template);
            }
        }
    }
}

/// A block's name template as a pattern that its nodes' names match (`A{n}B` → `A*B`).
fn template_pattern(template: &str) -> String {
    let mut pattern = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pattern.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                pattern.push('*');
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    pattern.push_str(rest);
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_becomes_a_pattern_of_its_names() {
        assert_eq!(template_pattern("{source}{n}B{plus}_s{seed}"), "**B*_s*");
        assert!(matrix::wildcard_matches(
            &template_pattern("A{n}B_s{seed}"),
            "A9B_s0"
        ));
        assert_eq!(template_pattern("plain"), "plain");
    }
}
