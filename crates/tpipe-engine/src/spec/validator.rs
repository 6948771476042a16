//! The validator: what every step of reading a pipeline shares (the file, its source map, the
//! problems so far and how to add one) and the `defaults:` and `resources:` readers. The
//! steps live beside it: `document` (the top level and the expansion of node blocks), `block`
//! (a node block and its matrix), `params` (a node's parameters) and `connect` (inputs and
//! checks across nodes).
//!
//! A matrix repeats a mistake in every node it makes, so a problem of an expanded node is
//! grouped: one diagnostic per place and cause, with how many nodes share it, the first few of
//! them and the range of their values. What the validator keeps grows with the pipeline file,
//! not with the grid.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::diagnostic::{Diagnostic, NodeGroup, NODES_SHOWN};
use super::source_map::{path, Location, PathSegment, SourceMap};
use super::yaml::{hint_did_you_mean, key_text, with_key, yaml_to_json};
use super::Limits;
use crate::kind::KindRegistry;
use crate::resources::Resources;

/// Parameters under `defaults:`, per kind, already normalised.
pub(super) type Defaults = BTreeMap<String, Map<String, Value>>;

pub(super) struct Validator {
    pub(super) file: PathBuf,
    pub(super) lines: Vec<String>,
    pub(super) source_map: SourceMap,
    pub(super) limits: Limits,
    /// Every problem so far, in the order found.
    problems: Vec<Reported>,
    /// Which part of the file is being read: problems are shown part by part, as if the blocks
    /// were read one after another (they are read, counted, then expanded).
    pub(super) stage: Stage,
    /// Where each problem is in `problems`: by place and message, or for a problem of
    /// expanded nodes, by place and cause.
    seen: HashMap<(Location, ProblemKey), usize>,
    /// `resources:` under `defaults:`, per kind.
    pub(super) resource_defaults: BTreeMap<String, Resources>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ProblemKey {
    Message(String),
    Cause(String),
}

/// Where the validator is: the top level and each block (its text, its parameters, its
/// nodes) come in file order, then the connections between nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    #[default]
    TopLevel,
    Block(usize),
    Connections,
}

/// A problem as found, before nodes that share it are summarised.
struct Reported {
    stage: Stage,
    /// The first node's diagnostic.
    diagnostic: Diagnostic,
    /// For a problem of expanded nodes, what the nodes that share it have in common.
    group: Option<Group>,
}

struct Group {
    block: Arc<str>,
    count: u64,
    first: Vec<String>,
    /// The message without the node's own value.
    cause: String,
    found: Option<FoundValues>,
}

/// The values that a group's nodes got wrong, summarised as they come.
struct FoundValues {
    /// What joins the cause and the values in the message (`, found `).
    joiner: &'static str,
    /// The first few distinct values, as the message shows them.
    first: Vec<String>,
    /// Whether there were other values than those.
    more: bool,
    /// The smallest and largest, while every value is a number.
    numbers: Option<((f64, String), (f64, String))>,
}

impl FoundValues {
    fn new(joiner: &'static str) -> FoundValues {
        FoundValues {
            joiner,
            first: Vec::new(),
            more: false,
            numbers: Some((
                (f64::INFINITY, String::new()),
                (f64::NEG_INFINITY, String::new()),
            )),
        }
    }

    fn add(&mut self, value: &str) {
        if !self.first.iter().any(|seen| seen == value) {
            if self.first.len() < NODES_SHOWN {
                self.first.push(value.to_string());
            } else {
                self.more = true;
            }
        }
        let number = value.trim_matches('`').parse::<f64>().ok();
        self.numbers = match (self.numbers.take(), number) {
            (Some((low, high)), Some(number)) => Some((
                if number < low.0 {
                    (number, value.to_string())
                } else {
                    low
                },
                if number > high.0 {
                    (number, value.to_string())
                } else {
                    high
                },
            )),
            _ => None,
        };
    }

    /// `8 … 99999` for numbers, `` `a`, `b`, `c`, … `` otherwise; `None` when every node had
    /// the same value.
    fn summary(&self) -> Option<String> {
        if self.first.len() < 2 {
            return None;
        }
        if let Some(((_, low), (_, high))) = &self.numbers {
            return Some(format!("{low} … {high}"));
        }
        let more = if self.more { ", …" } else { "" };
        Some(format!("{}{more}", self.first.join(", ")))
    }
}

/// A mistake in one expanded node. The nodes of a block that make it at the same place share
/// one diagnostic: with [`Validator::report_node`] the first is said in full, the others are
/// counted.
pub(super) struct NodeProblem {
    pub(super) location: Location,
    /// What the nodes with this mistake have in common (the message without the node's own
    /// value): they are grouped by it.
    pub(super) cause: String,
    /// This node's message.
    pub(super) message: String,
    /// The node's own wrong value, when `message` is `cause`, then the joiner, then the value:
    /// a group then says the range of its values.
    pub(super) found: Option<(&'static str, String)>,
    pub(super) hint: Option<String>,
}

/// A reported node problem, so that another node with the same values adds to it without
/// working it out again.
#[derive(Clone, Copy, Debug)]
pub(super) struct ProblemId(usize);

impl Validator {
    pub(super) fn new(file: &Path, text: &str, limits: Limits) -> Validator {
        Validator {
            file: file.to_path_buf(),
            lines: text.lines().map(str::to_string).collect(),
            source_map: SourceMap::index(text),
            limits,
            problems: Vec::new(),
            stage: Stage::TopLevel,
            seen: HashMap::new(),
            resource_defaults: BTreeMap::new(),
        }
    }

    pub(super) fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The diagnostics, each group of nodes said once.
    pub(super) fn finish(mut self) -> Vec<Diagnostic> {
        // Stable: within a stage, the order found.
        self.problems.sort_by_key(|reported| reported.stage);
        self.problems
            .into_iter()
            .map(
                |Reported {
                     mut diagnostic,
                     group,
                     ..
                 }| {
                    if let Some(group) = group.filter(|group| group.count > 1) {
                        if let Some(summary) = group.found.as_ref().and_then(FoundValues::summary) {
                            let joiner = group.found.as_ref().map_or("", |found| found.joiner);
                            diagnostic.message = format!("{}{joiner}{summary}", group.cause);
                        }
                        diagnostic.nodes = Some(NodeGroup {
                            count: group.count,
                            block: group.block.to_string(),
                            first: group.first,
                        });
                    }
                    diagnostic
                },
            )
            .collect()
    }

    fn diagnostic(
        &self,
        location: Location,
        node: Option<&str>,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            location,
            node: node.map(str::to_string),
            message,
            hint,
            source_line: self.lines.get(location.line.wrapping_sub(1)).cloned(),
            nodes: None,
        }
    }

    pub(super) fn report(
        &mut self,
        location: Location,
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let message = message.into();
        // The same mistake in the same place is said once.
        let key = (location, ProblemKey::Message(message.clone()));
        if self.seen.contains_key(&key) {
            return;
        }
        let diagnostic = self.diagnostic(location, node, message, hint);
        self.seen.insert(key, self.problems.len());
        self.problems.push(Reported {
            stage: self.stage,
            diagnostic,
            group: None,
        });
    }

    /// Reports a mistake of node `node` of block `block`, or counts it in the diagnostic that
    /// other nodes of the block already have for it.
    pub(super) fn report_node(
        &mut self,
        problem: NodeProblem,
        node: &str,
        block: &Arc<str>,
    ) -> ProblemId {
        let NodeProblem {
            location,
            cause,
            message,
            found,
            hint,
        } = problem;
        let key = (location, ProblemKey::Cause(cause.clone()));
        if let Some(&index) = self.seen.get(&key) {
            let found = found.as_ref().map(|(_, value)| value.as_str());
            self.add_node(ProblemId(index), node, found);
            return ProblemId(index);
        }
        let diagnostic = self.diagnostic(location, Some(node), message, hint);
        let found = found.map(|(joiner, value)| {
            let mut values = FoundValues::new(joiner);
            values.add(&value);
            values
        });
        let index = self.problems.len();
        self.seen.insert(key, index);
        self.problems.push(Reported {
            stage: self.stage,
            diagnostic,
            group: Some(Group {
                block: block.clone(),
                count: 1,
                first: vec![node.to_string()],
                cause,
                found,
            }),
        });
        ProblemId(index)
    }

    /// Whether nodes already have the problem `cause` at `location` (then what only its first
    /// node's diagnostic shows, such as a hint, need not be worked out again).
    pub(super) fn knows(&self, location: Location, cause: &str) -> bool {
        self.seen
            .contains_key(&(location, ProblemKey::Cause(cause.to_string())))
    }

    /// Forgets the node a problem was reported for, so that every node adds itself as it is
    /// made (a problem found for a whole block before its nodes are made).
    pub(super) fn discount(&mut self, id: ProblemId) {
        let group = self.problems[id.0]
            .group
            .as_mut()
            .expect("node problems have a group");
        group.count = 0;
        group.first.clear();
    }

    /// Counts node `node` in a problem another node of its block reported.
    pub(super) fn add_node(&mut self, id: ProblemId, node: &str, found: Option<&str>) {
        let group = self.problems[id.0]
            .group
            .as_mut()
            .expect("node problems have a group");
        group.count += 1;
        if group.first.len() < NODES_SHOWN {
            group.first.push(node.to_string());
        }
        if let (Some(values), Some(found)) = (&mut group.found, found) {
            values.add(found);
        }
    }

    /// Reports a problem many nodes of a block share, found before they are made: `count`
    /// nodes, the first of them `first`.
    pub(super) fn report_nodes(
        &mut self,
        problem: NodeProblem,
        block: &Arc<str>,
        count: u64,
        first: Vec<String>,
        found: &[String],
    ) {
        let Some((node, rest)) = first.split_first() else {
            return;
        };
        let id = self.report_node(problem, node, block);
        let group = self.problems[id.0]
            .group
            .as_mut()
            .expect("node problems have a group");
        if let Some(values) = &mut group.found {
            for value in found {
                values.add(value);
            }
        }
        for name in rest {
            if group.first.len() < NODES_SHOWN {
                group.first.push(name.clone());
            }
        }
        group.count += count.saturating_sub(1);
    }

    pub(super) fn at_key(
        &mut self,
        path: &[PathSegment],
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = self.source_map.key(path);
        self.report(location, node, message, hint);
    }

    pub(super) fn at_value(
        &mut self,
        path: &[PathSegment],
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = self.source_map.value(path);
        self.report(location, node, message, hint);
    }

    pub(super) fn defaults(
        &mut self,
        value: &serde_yaml::Value,
        registry: &KindRegistry,
    ) -> Defaults {
        let mut defaults = Defaults::new();
        let serde_yaml::Value::Mapping(per_kind) = value else {
            self.at_value(
                &path(&["defaults"]),
                None,
                "`defaults` must map kind names to parameters",
                None,
            );
            return defaults;
        };
        for (kind_name, params) in per_kind {
            let Ok(kind_name) = key_text(kind_name) else {
                continue;
            };
            let kind_path = path(&["defaults", &kind_name]);
            let Some(kind) = registry.get(&kind_name) else {
                let hint = hint_did_you_mean(&kind_name, registry.names());
                self.at_key(
                    &kind_path,
                    None,
                    format!("unknown kind `{kind_name}` in defaults"),
                    hint,
                );
                continue;
            };
            let specs = kind.params();
            let Ok(Value::Object(params)) = yaml_to_json(params) else {
                self.at_value(
                    &kind_path,
                    None,
                    format!("defaults for `{kind_name}` must be a mapping of parameters"),
                    None,
                );
                continue;
            };
            let mut normalised = Map::new();
            for (param, value) in params {
                let param_path = with_key(&kind_path, &param);
                if param == "resources" {
                    let resources = self.resources(&param_path, None, &value);
                    self.resource_defaults.insert(kind_name.clone(), resources);
                    continue;
                }
                match specs.iter().find(|spec| spec.name == param) {
                    None => {
                        let hint = hint_did_you_mean(&param, specs.iter().map(|spec| spec.name));
                        self.at_key(
                            &param_path,
                            None,
                            format!("kind `{kind_name}` has no parameter `{param}`"),
                            hint,
                        );
                    }
                    Some(spec) => match spec.ty.normalise(&value) {
                        Ok(value) => {
                            normalised.insert(param, value);
                        }
                        Err(problem) => self.at_value(
                            &param_path,
                            None,
                            format!("parameter `{param}`: {problem}"),
                            None,
                        ),
                    },
                }
            }
            defaults.insert(kind_name, normalised);
        }
        defaults
    }

    /// Reads a `resources:` mapping; each problem is reported at the field it concerns.
    pub(super) fn resources(
        &mut self,
        path: &[PathSegment],
        node: Option<&str>,
        value: &Value,
    ) -> Resources {
        match Resources::parse(value) {
            Ok(resources) => resources,
            Err(problems) => {
                for problem in problems {
                    match &problem.field {
                        Some(field) if problem.message.starts_with("unknown") => {
                            self.at_key(&with_key(path, field), node, problem.message, problem.hint)
                        }
                        Some(field) => self.at_value(
                            &with_key(path, field),
                            node,
                            problem.message,
                            problem.hint,
                        ),
                        None => self.at_value(path, node, problem.message, problem.hint),
                    }
                }
                Resources::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_values_summarise_numbers_as_a_range_and_words_as_a_few() {
        let mut numbers = FoundValues::new(", found ");
        for value in ["`9`", "`8`", "`99999`", "`8`"] {
            numbers.add(value);
        }
        assert_eq!(numbers.summary().as_deref(), Some("`8` … `99999`"));
        let mut words = FoundValues::new(", found ");
        for value in ["`x1`", "`x2`", "`x1`", "`x3`", "`x4`"] {
            words.add(value);
        }
        assert_eq!(words.summary().as_deref(), Some("`x1`, `x2`, `x3`, …"));
        let mut one = FoundValues::new(", found ");
        one.add("`maybe`");
        one.add("`maybe`");
        assert_eq!(one.summary(), None);
    }
}
