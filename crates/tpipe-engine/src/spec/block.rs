//! A node block: its kind, parameters as written, inputs, matrix and the checks that need only
//! the block itself.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::matrix::{self, Combination, Exclusion, Values, Variable};
use super::source_map::{Location, PathSegment, YamlPath};
use super::validator::Validator;
use super::yaml::{hint_did_you_mean, with_key, yaml_to_json};
use crate::kind::{AnyKind, KindRegistry};
use crate::resources::Resources;
use crate::schema::{Arity, InputSlot, ParamSpec};

/// The keys a node block may have besides its kind's parameters.
const RESERVED_NODE_KEYS: &[&str] = &[
    "kind",
    "matrix",
    "exclude",
    "inputs",
    "publish",
    "resources",
];

/// A node block after its block-level checks, before expansion.
pub(super) struct Block<'a> {
    pub(super) template: Arc<str>,
    pub(super) path: YamlPath,
    /// Where the block's name is written: its nodes' location.
    pub(super) location: Location,
    pub(super) kind: &'a Arc<dyn AnyKind>,
    /// The kind's parameters, built once per block: a matrix block expands to many nodes.
    pub(super) specs: Vec<ParamSpec>,
    pub(super) variables: Vec<Variable>,
    pub(super) excluded: Vec<Map<String, Value>>,
    /// `excluded` as sets of the variables' values.
    pub(super) exclusions: Vec<Exclusion>,
    pub(super) params: Vec<(String, Value)>,
    pub(super) inputs: Vec<(String, Value)>,
    pub(super) publish: Option<String>,
    pub(super) resources: Resources,
}

/// A block's entries as JSON, and the kind it names.
type KindedBlock<'r> = (Map<String, Value>, &'r Arc<dyn AnyKind>);

impl Validator {
    pub(super) fn block<'r>(
        &mut self,
        template: &str,
        block_path: YamlPath,
        value: &serde_yaml::Value,
        registry: &'r KindRegistry,
    ) -> Option<Block<'r>> {
        let (json, kind) = self.block_kind(template, &block_path, value, registry)?;
        let slots = kind.inputs();
        let location = self.source_map.key(&block_path);
        let mut block = Block {
            template: Arc::from(template),
            path: block_path,
            location,
            kind,
            specs: kind.params(),
            variables: Vec::new(),
            excluded: Vec::new(),
            exclusions: Vec::new(),
            params: Vec::new(),
            inputs: Vec::new(),
            publish: None,
            resources: Resources::default(),
        };
        for (key, value) in json {
            self.block_entry(&mut block, &slots, key, value);
        }
        block.exclusions = block
            .excluded
            .iter()
            .map(|excluded| Exclusion::new(&block.variables, excluded))
            .collect();
        self.missing_slots(&block, &slots);
        // Expanding a block whose name template is wrong would only repeat the same mistake.
        self.name_template_is_valid(&block).then_some(block)
    }

    /// The block as a JSON mapping, and its kind; `None` after reporting why not.
    fn block_kind<'r>(
        &mut self,
        template: &str,
        block_path: &[PathSegment],
        value: &serde_yaml::Value,
        registry: &'r KindRegistry,
    ) -> Option<KindedBlock<'r>> {
        let node = Some(template);
        let json = match yaml_to_json(value) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                self.at_key(
                    block_path,
                    node,
                    format!("node `{template}` must be a mapping with a `kind`"),
                    None,
                );
                return None;
            }
            Err(problem) => {
                self.at_value(block_path, node, problem.to_string(), None);
                return None;
            }
        };
        let kind_names = || registry.names().collect::<Vec<_>>().join(", ");
        let kind = match json.get("kind") {
            Some(Value::String(kind_name)) => match registry.get(kind_name) {
                Some(kind) => kind,
                None => {
                    let hint = hint_did_you_mean(kind_name, registry.names())
                        .unwrap_or_else(|| format!("kinds are {}", kind_names()));
                    self.at_value(
                        &with_key(block_path, "kind"),
                        node,
                        format!("unknown kind `{kind_name}`"),
                        Some(hint),
                    );
                    return None;
                }
            },
            _ => {
                self.at_key(
                    block_path,
                    node,
                    format!("node `{template}` has no `kind`"),
                    Some(format!("add `kind:` with one of {}", kind_names())),
                );
                return None;
            }
        };
        Some((json, kind))
    }

    /// One key of a node block: a reserved key, or one of the kind's parameters.
    fn block_entry(&mut self, block: &mut Block, slots: &[InputSlot], key: String, value: Value) {
        let key_path = with_key(&block.path, &key);
        let template = block.template.clone();
        let node = Some(&*template);
        match key.as_str() {
            "kind" => {}
            "matrix" => block.variables = self.matrix(&key_path, node, &value),
            "exclude" => match value {
                Value::Array(items) if items.iter().all(Value::is_object) => {
                    block.excluded = items
                        .into_iter()
                        .filter_map(|item| item.as_object().cloned())
                        .collect();
                }
                _ => self.at_value(
                    &key_path,
                    node,
                    "`exclude` must be a list of mappings (matrix variable → value)",
                    None,
                ),
            },
            "resources" => block.resources = self.resources(&key_path, node, &value),
            "publish" => match value {
                Value::String(text) => block.publish = Some(text),
                _ => self.at_value(&key_path, node, "`publish` must be a folder path", None),
            },
            "inputs" => match value {
                Value::Object(map) => {
                    for (slot, reference) in map {
                        self.block_input(block, slots, slot, reference);
                    }
                }
                _ => self.at_value(
                    &key_path,
                    node,
                    "`inputs` must map input names to node names",
                    None,
                ),
            },
            _ if block.specs.iter().any(|spec| spec.name == key) => {
                block.params.push((key, value));
            }
            _ => self.unknown_param(block, &key, &key_path),
        }
    }

    /// One entry of a block's `inputs:`: a declared slot, given one name (or, for a slot that
    /// takes many, a list of names and patterns).
    fn block_input(
        &mut self,
        block: &mut Block,
        slots: &[InputSlot],
        slot: String,
        reference: Value,
    ) {
        let slot_path = with_key(&with_key(&block.path, "inputs"), &slot);
        let node = Some(&*block.template);
        let kind_name = block.kind.name();
        let Some(declared) = slots.iter().find(|declared| declared.name == slot) else {
            let hint = hint_did_you_mean(&slot, slots.iter().map(|declared| declared.name))
                .or_else(|| {
                    Some(format!(
                        "`{kind_name}` takes inputs {}",
                        slots
                            .iter()
                            .map(|slot| format!("`{}`", slot.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                });
            self.at_key(
                &slot_path,
                node,
                format!("kind `{kind_name}` has no input `{slot}`"),
                hint,
            );
            return;
        };
        let shape_ok = match (&reference, declared.arity) {
            (Value::String(_), _) => true,
            (Value::Array(items), Arity::Many) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !shape_ok {
            let expected = if declared.arity == Arity::Many {
                "a node name, a pattern like `eval_*`, or a list of them"
            } else {
                "one node name"
            };
            self.at_value(
                &slot_path,
                node,
                format!("input `{slot}` must be {expected}"),
                None,
            );
            return;
        }
        block.inputs.push((slot, reference));
    }

    fn unknown_param(&mut self, block: &Block, key: &str, key_path: &[PathSegment]) {
        let kind_name = block.kind.name();
        let candidates = block
            .specs
            .iter()
            .map(|spec| spec.name)
            .chain(RESERVED_NODE_KEYS.iter().copied());
        let hint = hint_did_you_mean(key, candidates).or_else(|| {
            Some(format!(
                "`{kind_name}` takes {}",
                block
                    .specs
                    .iter()
                    .map(|spec| format!("`{}`", spec.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        });
        self.at_key(
            key_path,
            Some(&block.template),
            format!("unknown parameter `{key}` for kind `{kind_name}`"),
            hint,
        );
    }

    /// Reports every input slot the block must fill and does not.
    fn missing_slots(&mut self, block: &Block, slots: &[InputSlot]) {
        for slot in slots {
            if slot.arity != Arity::Optional
                && !block.inputs.iter().any(|(name, _)| name == slot.name)
            {
                let message = format!(
                    "node `{}` needs input `{}` ({})",
                    block.template, slot.name, slot.doc
                );
                self.at_key(
                    &block.path,
                    Some(&block.template),
                    message,
                    Some(format!("add `inputs: {{ {}: <node> }}`", slot.name)),
                );
            }
        }
    }

    /// Whether the name template and the matrix agree: every `{placeholder}` is a variable,
    /// and every variable appears in the name (else its nodes would share one name).
    fn name_template_is_valid(&mut self, block: &Block) -> bool {
        let template = &*block.template;
        let node = Some(template);
        let variables: Vec<&str> = block
            .variables
            .iter()
            .map(|variable| variable.name.as_str())
            .collect();
        let in_name = matrix::placeholders(template);
        let mut valid = true;
        for placeholder in &in_name {
            if !variables.contains(&placeholder.as_str()) {
                valid = false;
                let hint = if variables.is_empty() {
                    "add a `matrix:` that defines it".to_string()
                } else {
                    format!("matrix variables are {}", variables.join(", "))
                };
                self.at_key(
                    &block.path,
                    node,
                    format!("`{{{placeholder}}}` in the node name is not a matrix variable"),
                    Some(hint),
                );
            }
        }
        for variable in &variables {
            if !in_name.iter().any(|placeholder| placeholder == variable) {
                valid = false;
                let message = format!("matrix variable `{variable}` does not appear in the node name `{template}`, so its nodes would share one name");
                self.at_key(
                    &block.path,
                    node,
                    message,
                    Some(format!("add `{{{variable}}}` to the name")),
                );
            }
        }
        valid
    }

    fn matrix(
        &mut self,
        matrix_path: &[PathSegment],
        node: Option<&str>,
        value: &Value,
    ) -> Vec<Variable> {
        let Value::Object(map) = value else {
            self.at_value(
                matrix_path,
                node,
                "`matrix` must map variable names to lists of values",
                None,
            );
            return Vec::new();
        };
        let mut variables = Vec::new();
        for (name, values) in map {
            let variable_path = with_key(matrix_path, name);
            let values = match values {
                Value::Array(items) => Values::Listed(
                    items
                        .iter()
                        .map(|item| (item.clone(), matrix::label_of(item)))
                        .collect(),
                ),
                Value::String(text) => match matrix::parse_range(text) {
                    Ok(Some((start, end))) => Values::Range { start, end },
                    Ok(None) => Values::Listed(vec![(values.clone(), text.clone())]),
                    Err(problem) => {
                        self.at_value(&variable_path, node, problem.to_string(), None);
                        continue;
                    }
                },
                Value::Object(labelled) => Values::Listed(
                    labelled
                        .iter()
                        .map(|(written, label)| {
                            // Keys of a YAML mapping arrive as text: give `true`/`3` their type
                            // back.
                            let value = serde_json::from_str::<Value>(written)
                                .ok()
                                .filter(|parsed| !parsed.is_object() && !parsed.is_array())
                                .unwrap_or_else(|| Value::String(written.clone()));
                            (value, matrix::label_of(label))
                        })
                        .collect(),
                ),
                other => Values::Listed(vec![(other.clone(), matrix::label_of(other))]),
            };
            if values.is_empty() {
                self.at_value(
                    &variable_path,
                    node,
                    format!("matrix variable `{name}` has no values"),
                    None,
                );
                continue;
            }
            variables.push(Variable {
                name: name.clone(),
                values,
            });
        }
        variables
    }
}

impl<'r> Block<'r> {
    /// The block's combinations that no `exclude:` entry removes, made one at a time.
    pub(super) fn combinations(&self) -> impl Iterator<Item = Combination<'_>> + '_ {
        matrix::combinations(&self.variables).filter(|combination| {
            !self
                .exclusions
                .iter()
                .any(|exclusion| exclusion.removes(combination))
        })
    }
}
