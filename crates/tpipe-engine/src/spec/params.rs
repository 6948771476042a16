//! A node's parameters: the kind's defaults, then the pipeline's `defaults:`, then what the
//! block writes (with matrix values substituted), each normalised to its type; then, when all
//! are there and valid, the kind's typed struct and the kind's own checks.
//!
//! Most of that is the same for every node of a matrix block, so it is worked out once per
//! block ([`BlockParams`]): the defaults and the entries that use no matrix variable are read
//! once, an entry that is exactly one variable (`layers_copied: "{n}"`) is checked against
//! every value of that variable before any node is made, and nodes that agree on the
//! variables the entries use share one parameter map and one typed struct.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::block::Block;
use super::matrix::{self, Combination, Exclusion, Values, Variable};
use super::source_map::Location;
use super::validator::{Defaults, NodeProblem, ProblemId, Validator};
use super::yaml::with_key;
use super::NodeParams;
use crate::kind::TypedParams;
use crate::schema::{ParamType, ValueProblem};

/// The parameters of a block, worked out once for all its nodes.
pub(super) struct BlockParams {
    /// The kind's defaults, then `defaults:`, then the entries that use no matrix variable,
    /// normalised.
    base: Arc<Map<String, Value>>,
    /// Whether `base` has every parameter the kind needs, each valid, once `varying` are in.
    base_valid: bool,
    /// Problems every node of the block has (a missing parameter, a wrong constant).
    shared_problems: Vec<ProblemId>,
    /// The entries that use matrix variables: substituted and normalised per node.
    varying: Vec<VaryingEntry>,
    /// The matrix variables (by position) that some entry uses. Nodes that agree on them
    /// have the same parameters.
    used: Vec<usize>,
    /// The parameters made so far, by the values of `used` (only when some variable is
    /// unused, so that nodes can share).
    made: HashMap<Vec<u64>, MadeParams>,
}

struct VaryingEntry {
    name: Arc<str>,
    raw: Value,
    spec: usize,
    location: Location,
}

/// One node's parameters, shared with the nodes of its block that have the same ones.
#[derive(Clone)]
pub(super) struct MadeParams {
    pub(super) params: NodeParams,
    pub(super) typed: TypedParams,
    /// The problems these parameters have, with the value each found.
    problems: Vec<(ProblemId, Option<String>)>,
}

/// The values of one variable that a parameter refuses, found before any node is made.
struct RefusedValues {
    problem: ValueProblem,
    /// The variable with only the refused values.
    values: Values,
    /// How the refused values show in messages.
    shown: Vec<String>,
}

impl Validator {
    /// Works out what the nodes of `block` share. `None` when an entry that is exactly one
    /// matrix variable refuses some of its values: that is reported for all the nodes it
    /// concerns at once, and the block is not expanded (a typo such as `n: 1..=99999` would
    /// otherwise make millions of nodes only to refuse them).
    pub(super) fn block_params(
        &mut self,
        block: &Block,
        defaults: &Defaults,
    ) -> Option<BlockParams> {
        let mut base = Map::new();
        for spec in &block.specs {
            if let Some(default) = &spec.default {
                base.insert(spec.name.to_string(), default.clone());
            }
        }
        if let Some(pipeline_defaults) = defaults.get(block.kind.name()) {
            base.extend(pipeline_defaults.clone());
        }
        let mut params = BlockParams {
            base: Arc::new(base),
            base_valid: true,
            shared_problems: Vec::new(),
            varying: Vec::new(),
            used: Vec::new(),
            made: HashMap::new(),
        };
        let mut refused_any = false;
        for (name, raw) in &block.params {
            let spec = block
                .specs
                .iter()
                .position(|spec| spec.name == name)
                .expect("unknown parameters were filtered");
            let location = self.source_map.value(&with_key(&block.path, name));
            let used = matrix::mentions(raw, &block.variables);
            if !used.is_empty() {
                if self.refuses_matrix_values(block, name, raw, &block.specs[spec].ty, location) {
                    refused_any = true;
                }
                params.used.extend(used);
                params.varying.push(VaryingEntry {
                    name: Arc::from(name.as_str()),
                    raw: raw.clone(),
                    spec,
                    location,
                });
                continue;
            }
            match block.specs[spec].ty.normalise(raw) {
                Ok(value) => {
                    Arc::make_mut(&mut params.base).insert(name.clone(), value);
                }
                Err(problem) => {
                    params.base_valid = false;
                    let problem = value_problem(name, &problem, location);
                    if let Some(id) = self.report_for_block(block, problem) {
                        params.shared_problems.push(id);
                    }
                }
            }
        }
        for spec in &block.specs {
            let written = block.params.iter().any(|(param, _)| param == spec.name);
            if !params.base.contains_key(spec.name) && !written {
                params.base_valid = false;
                let message = format!(
                    "missing parameter `{}` ({}; expected {})",
                    spec.name,
                    spec.doc,
                    spec.ty.describe()
                );
                let problem = NodeProblem {
                    location: block.location,
                    cause: message.clone(),
                    message,
                    found: None,
                    hint: Some(format!(
                        "add `{}: …` to the node or to `defaults: {{ {}: … }}`",
                        spec.name,
                        block.kind.name()
                    )),
                };
                if let Some(id) = self.report_for_block(block, problem) {
                    params.shared_problems.push(id);
                }
            }
        }
        params.used.sort_unstable();
        params.used.dedup();
        // A node's own parameters are kept in name order.
        params.varying.sort_by(|a, b| a.name.cmp(&b.name));
        (!refused_any).then_some(params)
    }

    /// Reports a problem every node of `block` has, naming the first few; its id, so that each
    /// node is counted as it is made (`None` when the block makes no node).
    fn report_for_block(&mut self, block: &Block, problem: NodeProblem) -> Option<ProblemId> {
        let first = block.combinations().next()?;
        let name = matrix::substitute_text(&block.template, &first);
        let id = self.report_node(problem, &name, &block.template);
        self.discount(id);
        Some(id)
    }

    /// Whether the entry `raw`, if it is exactly one matrix variable (`"{n}"`), refuses some of
    /// that variable's values; each refusal is reported once for every node it concerns, with
    /// their count and the refused values, before any node is made.
    fn refuses_matrix_values(
        &mut self,
        block: &Block,
        name: &str,
        raw: &Value,
        ty: &ParamType,
        location: Location,
    ) -> bool {
        let Some(variable) = raw
            .as_str()
            .and_then(|text| text.strip_prefix('{'))
            .and_then(|text| text.strip_suffix('}'))
            .and_then(|inner| {
                block
                    .variables
                    .iter()
                    .position(|variable| variable.name == inner)
            })
        else {
            return false;
        };
        let mut refused_any = false;
        for refused in refused_values(&block.variables[variable].values, ty) {
            // The grid with this variable narrowed to the refused values: the nodes concerned.
            let mut narrowed: Vec<Variable> = block.variables.clone();
            narrowed[variable].values = refused.values;
            let exclusions: Vec<Exclusion> = block
                .excluded
                .iter()
                .map(|excluded| Exclusion::new(&narrowed, excluded))
                .collect();
            let kept = |combination: &Combination| {
                !exclusions
                    .iter()
                    .any(|exclusion| exclusion.removes(combination))
            };
            let first: Vec<String> = matrix::combinations(&narrowed)
                .filter(kept)
                .take(super::diagnostic::NODES_SHOWN)
                .map(|combination| matrix::substitute_text(&block.template, &combination))
                .collect();
            if first.is_empty() {
                continue;
            }
            let count = matrix::count_kept(&narrowed, &exclusions)
                .or_else(|| matrix::count(&narrowed))
                .unwrap_or(u64::MAX);
            refused_any = true;
            let problem = value_problem(name, &refused.problem, location);
            self.report_nodes(problem, &block.template, count, first, &refused.shown);
        }
        refused_any
    }

    /// The parameters of one node: shared with an earlier node of the block that agrees on the
    /// matrix variables the entries use, else made (and checked) here.
    pub(super) fn node_params(
        &mut self,
        block: &Block,
        params: &mut BlockParams,
        name: &str,
        combination: &Combination,
    ) -> (NodeParams, TypedParams) {
        for &id in &params.shared_problems {
            self.add_node(id, name, None);
        }
        let shares = params.used.len() < block.variables.len();
        let key: Vec<u64> = if shares {
            params
                .used
                .iter()
                .map(|&variable| combination.indices()[variable])
                .collect()
        } else {
            Vec::new()
        };
        if let Some(made) = shares.then(|| params.made.get(&key)).flatten() {
            for (id, found) in &made.problems {
                self.add_node(*id, name, found.as_deref());
            }
            return (made.params.clone(), made.typed.clone());
        }
        let made = self.make_params(block, params, name, combination);
        let result = (made.params.clone(), made.typed.clone());
        if shares {
            params.made.insert(key, made);
        }
        result
    }

    fn make_params(
        &mut self,
        block: &Block,
        params: &BlockParams,
        name: &str,
        combination: &Combination,
    ) -> MadeParams {
        let mut own: Vec<(Arc<str>, Value)> = Vec::with_capacity(params.varying.len());
        let mut valid = params.base_valid;
        let mut problems = Vec::new();
        for entry in &params.varying {
            let substituted = matrix::substitute(&entry.raw, combination);
            match block.specs[entry.spec].ty.normalise(&substituted) {
                Ok(value) => own.push((entry.name.clone(), value)),
                Err(problem) => {
                    valid = false;
                    let found = problem.found();
                    let problem = value_problem(&entry.name, &problem, entry.location);
                    let id = self.report_node(problem, name, &block.template);
                    problems.push((id, Some(found)));
                }
            }
        }
        let values = NodeParams::new(params.base.clone(), Arc::from(own));
        // Only parameters all there and of their types are read into the kind's struct and
        // checked by the kind.
        let typed = if valid {
            self.typed_and_checked(block, name, &values, &mut problems)
        } else {
            TypedParams::invalid()
        };
        MadeParams {
            params: values,
            typed,
            problems,
        }
    }

    /// The kind's struct read from valid parameters, then the kind's checks on it, each
    /// problem reported at the parameter it names when the node writes it.
    fn typed_and_checked(
        &mut self,
        block: &Block,
        name: &str,
        params: &NodeParams,
        problems: &mut Vec<(ProblemId, Option<String>)>,
    ) -> TypedParams {
        let kind = block.kind;
        let typed = match kind.parse_params(params) {
            Ok(typed) => typed,
            Err(error) => {
                // The schema accepted what the struct cannot hold: a bug in the kind, said at
                // the node so it is found.
                let message = format!("kind `{}`: {error}", kind.name());
                let problem = NodeProblem {
                    location: block.location,
                    cause: message.clone(),
                    message,
                    found: None,
                    hint: Some("this is a bug in the kind; please report it".into()),
                };
                problems.push((self.report_node(problem, name, &block.template), None));
                return TypedParams::invalid();
            }
        };
        for (index, problem) in kind.check(&typed).into_iter().enumerate() {
            let location = match &problem.param {
                Some(param) if block.params.iter().any(|(written, _)| written == param) => {
                    self.source_map.value(&with_key(&block.path, param))
                }
                _ => self.source_map.value(&block.path),
            };
            // The nodes of a block that fail the same check at the same place are one
            // diagnostic, whatever values each message names.
            let cause = format!(
                "check {index} of `{}` by kind `{}`",
                problem.param.as_deref().unwrap_or_default(),
                kind.name()
            );
            let node_problem = NodeProblem {
                location,
                cause,
                message: problem.message,
                found: None,
                hint: problem.hint,
            };
            problems.push((self.report_node(node_problem, name, &block.template), None));
        }
        typed
    }
}

/// A parameter's value refused by its type, as a node problem at `location`.
fn value_problem(name: &str, problem: &ValueProblem, location: Location) -> NodeProblem {
    NodeProblem {
        location,
        cause: format!("parameter `{name}`: {}", problem.expectation()),
        message: format!("parameter `{name}`: {problem}"),
        found: Some((", found ", problem.found())),
        hint: None,
    }
}

/// The values of a variable that `ty` refuses, in at most a few groups that share a problem:
/// written values one by one, a range by arithmetic on its ends (it may hold billions).
fn refused_values(values: &Values, ty: &ParamType) -> Vec<RefusedValues> {
    match values {
        Values::Listed(listed) => {
            let mut refused: Vec<RefusedValues> = Vec::new();
            for (value, label) in listed {
                let Err(problem) = ty.normalise(value) else {
                    continue;
                };
                let shown = problem.found();
                match refused
                    .iter_mut()
                    .find(|group| group.problem.expectation() == problem.expectation())
                {
                    Some(group) => {
                        if let Values::Listed(values) = &mut group.values {
                            values.push((value.clone(), label.clone()));
                        }
                        group.shown.push(shown);
                    }
                    None => refused.push(RefusedValues {
                        problem,
                        values: Values::Listed(vec![(value.clone(), label.clone())]),
                        shown: vec![shown],
                    }),
                }
            }
            refused
        }
        &Values::Range { start, end } => {
            let pieces: Vec<(i64, i64)> = match *ty {
                ParamType::Int { min, max } => {
                    let mut pieces = Vec::new();
                    if let Some(min) = min.filter(|min| start < *min) {
                        pieces.push((start, end.min(min - 1)));
                    }
                    if let Some(max) = max.filter(|max| end > *max) {
                        pieces.push((start.max(max + 1), end));
                    }
                    pieces
                }
                ParamType::Float { min, max } => {
                    let mut pieces = Vec::new();
                    if let Some(min) = min.filter(|min| (start as f64) < *min) {
                        let last_below = (min.ceil() as i64 - 1).min(end);
                        pieces.push((start, last_below));
                    }
                    if let Some(max) = max.filter(|max| (end as f64) > *max) {
                        let first_above = (max.floor() as i64 + 1).max(start);
                        pieces.push((first_above, end));
                    }
                    pieces
                }
                // Every integer fares alike under the other types.
                _ if ty.normalise(&Value::from(start)).is_err() => vec![(start, end)],
                _ => Vec::new(),
            };
            pieces
                .into_iter()
                .filter(|(first, last)| first <= last)
                .filter_map(|(first, last)| {
                    let problem = ty.normalise(&Value::from(first)).err()?;
                    let mut shown = vec![problem.found()];
                    if last != first {
                        shown.push(format!("`{last}`"));
                    }
                    Some(RefusedValues {
                        problem,
                        values: Values::Range {
                            start: first,
                            end: last,
                        },
                        shown,
                    })
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_refused_by_arithmetic_on_its_ends() {
        let refused = refused_values(
            &Values::Range {
                start: 0,
                end: 999_999_999,
            },
            &ParamType::int_range(1, 7),
        );
        let pieces: Vec<(Values, Vec<String>)> = refused
            .into_iter()
            .map(|refused| (refused.values, refused.shown))
            .collect();
        assert_eq!(
            pieces,
            vec![
                (Values::Range { start: 0, end: 0 }, vec!["`0`".to_string()]),
                (
                    Values::Range {
                        start: 8,
                        end: 999_999_999
                    },
                    vec!["`8`".to_string(), "`999999999`".to_string()]
                ),
            ]
        );
        let text_takes_numbers =
            refused_values(&Values::Range { start: 1, end: 9 }, &ParamType::Text);
        assert!(text_takes_numbers.is_empty());
        let not_words = refused_values(&Values::Range { start: 1, end: 9 }, &ParamType::Bool);
        assert_eq!(not_words.len(), 1);
    }
}
