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

pub mod diagnostic;
pub mod matrix;
pub mod source_map;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::kind::{AnyKind, KindRegistry, TypedParams, UpstreamSpec};
use crate::resources::Resources;
use crate::schema::{nearest_name, show_value, Arity};
pub use diagnostic::{Diagnostic, SpecErrors};
use matrix::{Combination, Variable};
use source_map::{path, Location, PathSegment, SourceMap, YamlPath};

/// The keys a node block may have besides its kind's parameters.
const RESERVED_NODE_KEYS: &[&str] = &[
    "kind",
    "matrix",
    "exclude",
    "inputs",
    "publish",
    "resources",
];
const TOP_LEVEL_KEYS: &[&str] = &["nodes", "defaults", "cache", "remote"];

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
    let mut validator = Validator {
        file: file.to_path_buf(),
        lines: text.lines().map(str::to_string).collect(),
        source_map: SourceMap::index(text),
        diagnostics: Vec::new(),
        resource_defaults: BTreeMap::new(),
    };
    let pipeline = validator.pipeline(text, registry);
    if validator.diagnostics.is_empty() {
        Ok(pipeline)
    } else {
        Err(SpecErrors {
            diagnostics: validator.diagnostics,
        })
    }
}

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

/// YAML that has no JSON form for parameters.
#[derive(Debug, thiserror::Error)]
enum YamlProblem {
    #[error("numbers must be finite")]
    NotFinite,
    #[error("YAML tags such as `{0}` are not supported")]
    Tag(String),
    #[error("mapping keys must be plain words or numbers")]
    Key,
}

fn yaml_to_json(value: &serde_yaml::Value) -> Result<Value, YamlProblem> {
    Ok(match value {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(flag) => Value::Bool(*flag),
        serde_yaml::Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Value::from(integer)
            } else {
                let float = number.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(float)
                    .map(Value::Number)
                    .ok_or(YamlProblem::NotFinite)?
            }
        }
        serde_yaml::Value::String(text) => Value::String(text.clone()),
        serde_yaml::Value::Sequence(items) => {
            Value::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        serde_yaml::Value::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, item) in mapping {
                map.insert(key_text(key)?, yaml_to_json(item)?);
            }
            Value::Object(map)
        }
        serde_yaml::Value::Tagged(tagged) => return Err(YamlProblem::Tag(tagged.tag.to_string())),
    })
}

fn key_text(key: &serde_yaml::Value) -> Result<String, YamlProblem> {
    match key {
        serde_yaml::Value::String(text) => Ok(text.clone()),
        serde_yaml::Value::Bool(flag) => Ok(flag.to_string()),
        serde_yaml::Value::Number(number) => Ok(number.to_string()),
        _ => Err(YamlProblem::Key),
    }
}

fn with_key(base: &[PathSegment], key: &str) -> YamlPath {
    let mut extended = base.to_vec();
    extended.push(PathSegment::Key(key.to_string()));
    extended
}

fn hint_did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest_name(wanted, candidates).map(|nearest| format!("did you mean `{nearest}`?"))
}

/// A node block after its block-level checks, before expansion.
struct Block<'a> {
    template: String,
    path: YamlPath,
    kind: &'a std::sync::Arc<dyn AnyKind>,
    /// The kind's parameters, built once per block: a matrix block expands to many nodes.
    specs: Vec<crate::schema::ParamSpec>,
    variables: Vec<Variable>,
    excluded: Vec<Map<String, Value>>,
    params: Vec<(String, Value)>,
    inputs: Vec<(String, Value)>,
    publish: Option<String>,
    resources: Resources,
}

/// Per node (by position), its written inputs: slot, the reference as written, where it is.
type RawInputs = Vec<(usize, Vec<(String, Value, YamlPath)>)>;

struct Validator {
    file: PathBuf,
    lines: Vec<String>,
    source_map: SourceMap,
    diagnostics: Vec<Diagnostic>,
    /// `resources:` under `defaults:`, per kind.
    resource_defaults: BTreeMap<String, Resources>,
}

impl Validator {
    fn report(
        &mut self,
        location: Location,
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let message = message.into();
        // Matrix expansions repeat the same mistake; report each place once.
        if self
            .diagnostics
            .iter()
            .any(|existing| existing.location == location && existing.message == message)
        {
            return;
        }
        let source_line = self.lines.get(location.line.wrapping_sub(1)).cloned();
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            location,
            node: node.map(str::to_string),
            message,
            hint,
            source_line,
        });
    }

    fn at_key(
        &mut self,
        path: &[PathSegment],
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = self.source_map.key(path);
        self.report(location, node, message, hint);
    }

    fn at_value(
        &mut self,
        path: &[PathSegment],
        node: Option<&str>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let location = self.source_map.value(path);
        self.report(location, node, message, hint);
    }

    fn pipeline(&mut self, text: &str, registry: &KindRegistry) -> Pipeline {
        let mut pipeline = Pipeline {
            file: self.file.clone(),
            cache: None,
            remote: None,
            nodes: Vec::new(),
            text: text.to_string(),
        };
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
                return pipeline;
            }
        };
        let root = match root {
            serde_yaml::Value::Mapping(mapping) => mapping,
            serde_yaml::Value::Null => {
                self.report(
                    Location { line: 1, column: 1 },
                    None,
                    "the pipeline file is empty",
                    Some("declare nodes under `nodes:`".into()),
                );
                return pipeline;
            }
            _ => {
                self.at_value(
                    &[],
                    None,
                    "a pipeline file must be a mapping with `nodes:`",
                    None,
                );
                return pipeline;
            }
        };
        let mut defaults: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        let mut nodes_value = None;
        for (key, value) in &root {
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
            let Some(block) = self.block(&template, block_path.clone(), block_value, registry)
            else {
                continue;
            };
            for combination in self.expand(&block) {
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
                let (params, typed) = self.node_params(&block, &name, &combination, &defaults);
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
                    resources: block.resources.clone().or(self
                        .resource_defaults
                        .get(block.kind.name())
                        .unwrap_or(&Resources::default())),
                    typed,
                });
            }
        }
        self.connect(&mut pipeline, raw_inputs, registry);
        pipeline
    }

    fn defaults(
        &mut self,
        value: &serde_yaml::Value,
        registry: &KindRegistry,
    ) -> BTreeMap<String, Map<String, Value>> {
        let mut defaults = BTreeMap::new();
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
    fn resources(&mut self, path: &[PathSegment], node: Option<&str>, value: &Value) -> Resources {
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

    fn block<'r>(
        &mut self,
        template: &str,
        block_path: YamlPath,
        value: &serde_yaml::Value,
        registry: &'r KindRegistry,
    ) -> Option<Block<'r>> {
        let node = Some(template);
        let json = match yaml_to_json(value) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                self.at_key(
                    &block_path,
                    node,
                    format!("node `{template}` must be a mapping with a `kind`"),
                    None,
                );
                return None;
            }
            Err(problem) => {
                self.at_value(&block_path, node, problem.to_string(), None);
                return None;
            }
        };
        let kind = match json.get("kind") {
            Some(Value::String(kind_name)) => match registry.get(kind_name) {
                Some(kind) => kind,
                None => {
                    let hint =
                        hint_did_you_mean(kind_name, registry.names()).unwrap_or_else(|| {
                            format!(
                                "kinds are {}",
                                registry.names().collect::<Vec<_>>().join(", ")
                            )
                        });
                    self.at_value(
                        &with_key(&block_path, "kind"),
                        node,
                        format!("unknown kind `{kind_name}`"),
                        Some(hint),
                    );
                    return None;
                }
            },
            _ => {
                let hint = format!(
                    "add `kind:` with one of {}",
                    registry.names().collect::<Vec<_>>().join(", ")
                );
                self.at_key(
                    &block_path,
                    node,
                    format!("node `{template}` has no `kind`"),
                    Some(hint),
                );
                return None;
            }
        };
        let slots = kind.inputs();
        let mut block = Block {
            template: template.to_string(),
            path: block_path.clone(),
            kind,
            specs: kind.params(),
            variables: Vec::new(),
            excluded: Vec::new(),
            params: Vec::new(),
            inputs: Vec::new(),
            publish: None,
            resources: Resources::default(),
        };
        for (key, value) in json {
            let key_path = with_key(&block_path, &key);
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
                            let slot_path = with_key(&key_path, &slot);
                            let Some(declared) =
                                slots.iter().find(|declared| declared.name == slot)
                            else {
                                let hint = hint_did_you_mean(
                                    &slot,
                                    slots.iter().map(|declared| declared.name),
                                )
                                .or_else(|| {
                                    Some(format!(
                                        "`{}` takes inputs {}",
                                        kind.name(),
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
                                    format!("kind `{}` has no input `{slot}`", kind.name()),
                                    hint,
                                );
                                continue;
                            };
                            let shape_ok = match (&reference, declared.arity) {
                                (Value::String(_), _) => true,
                                (Value::Array(items), Arity::Many) => {
                                    items.iter().all(Value::is_string)
                                }
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
                                continue;
                            }
                            block.inputs.push((slot, reference));
                        }
                    }
                    _ => self.at_value(
                        &key_path,
                        node,
                        "`inputs` must map input names to node names",
                        None,
                    ),
                },
                _ => {
                    if block.specs.iter().any(|spec| spec.name == key) {
                        block.params.push((key, value));
                    } else {
                        let candidates = block
                            .specs
                            .iter()
                            .map(|spec| spec.name)
                            .chain(RESERVED_NODE_KEYS.iter().copied());
                        let hint = hint_did_you_mean(&key, candidates).or_else(|| {
                            Some(format!(
                                "`{}` takes {}",
                                kind.name(),
                                block
                                    .specs
                                    .iter()
                                    .map(|spec| format!("`{}`", spec.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        });
                        self.at_key(
                            &key_path,
                            node,
                            format!("unknown parameter `{key}` for kind `{}`", kind.name()),
                            hint,
                        );
                    }
                }
            }
        }
        for slot in &slots {
            if slot.arity != Arity::Optional
                && !block.inputs.iter().any(|(name, _)| name == slot.name)
            {
                let message = format!(
                    "node `{template}` needs input `{}` ({})",
                    slot.name, slot.doc
                );
                self.at_key(
                    &block_path,
                    node,
                    message,
                    Some(format!("add `inputs: {{ {}: <node> }}`", slot.name)),
                );
            }
        }
        let variables: Vec<&str> = block
            .variables
            .iter()
            .map(|variable| variable.name.as_str())
            .collect();
        let in_name = matrix::placeholders(template);
        let mut name_is_valid = true;
        for placeholder in &in_name {
            if !variables.contains(&placeholder.as_str()) {
                name_is_valid = false;
                let hint = if variables.is_empty() {
                    "add a `matrix:` that defines it".to_string()
                } else {
                    format!("matrix variables are {}", variables.join(", "))
                };
                self.at_key(
                    &block_path,
                    node,
                    format!("`{{{placeholder}}}` in the node name is not a matrix variable"),
                    Some(hint),
                );
            }
        }
        for variable in &variables {
            if !in_name.iter().any(|placeholder| placeholder == variable) {
                name_is_valid = false;
                let message = format!("matrix variable `{variable}` does not appear in the node name `{template}`, so its nodes would share one name");
                self.at_key(
                    &block_path,
                    node,
                    message,
                    Some(format!("add `{{{variable}}}` to the name")),
                );
            }
        }
        // Expanding a block whose name template is wrong would only repeat the same mistake.
        if !name_is_valid {
            return None;
        }
        Some(block)
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
            let values: Vec<(Value, String)> = match values {
                Value::Array(items) => items
                    .iter()
                    .map(|item| (item.clone(), matrix::label_of(item)))
                    .collect(),
                Value::String(text) => match matrix::parse_range(text) {
                    Ok(Some(range)) => range
                        .into_iter()
                        .map(|number| (Value::from(number), number.to_string()))
                        .collect(),
                    Ok(None) => vec![(values.clone(), text.clone())],
                    Err(problem) => {
                        self.at_value(&variable_path, node, problem.to_string(), None);
                        continue;
                    }
                },
                Value::Object(labelled) => labelled
                    .iter()
                    .map(|(written, label)| {
                        // Keys of a YAML mapping arrive as text: give `true`/`3` their type back.
                        let value = serde_json::from_str::<Value>(written)
                            .ok()
                            .filter(|parsed| !parsed.is_object() && !parsed.is_array())
                            .unwrap_or_else(|| Value::String(written.clone()));
                        (value, matrix::label_of(label))
                    })
                    .collect(),
                other => vec![(other.clone(), matrix::label_of(other))],
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

    fn expand(&mut self, block: &Block) -> Vec<Combination> {
        matrix::combinations(&block.variables)
            .into_iter()
            .filter(|combination| {
                !block.excluded.iter().any(|exclusion| {
                    exclusion.iter().all(|(variable, excluded)| {
                        combination.iter().any(|(name, value, label)| {
                            name == variable
                                && (value == excluded
                                    || excluded.as_str() == Some(label.as_str())
                                    || matrix::label_of(excluded) == *label)
                        })
                    })
                })
            })
            .collect()
    }

    fn node_params(
        &mut self,
        block: &Block,
        name: &str,
        combination: &Combination,
        defaults: &BTreeMap<String, Map<String, Value>>,
    ) -> (Map<String, Value>, TypedParams) {
        let kind = block.kind;
        let node = Some(name);
        // Whether every parameter is there and of its type: only then are they read into the
        // kind's struct and checked by the kind.
        let mut valid = true;
        let mut params = Map::new();
        let specs = &block.specs;
        for spec in specs {
            if let Some(default) = &spec.default {
                params.insert(spec.name.to_string(), default.clone());
            }
        }
        if let Some(pipeline_defaults) = defaults.get(kind.name()) {
            params.extend(pipeline_defaults.clone());
        }
        for (param, raw) in &block.params {
            let spec = specs
                .iter()
                .find(|spec| spec.name == param)
                .expect("unknown parameters were filtered");
            let value_path = with_key(&block.path, param);
            match spec.ty.normalise(&matrix::substitute(raw, combination)) {
                Ok(value) => {
                    params.insert(param.clone(), value);
                }
                Err(problem) => {
                    valid = false;
                    // One report per written value, not one per matrix combination.
                    let location = self.source_map.value(&value_path);
                    if !self
                        .diagnostics
                        .iter()
                        .any(|existing| existing.location == location)
                    {
                        self.at_value(
                            &value_path,
                            node,
                            format!("parameter `{param}`: {problem}"),
                            None,
                        );
                    }
                }
            }
        }
        for spec in specs {
            let written = block.params.iter().any(|(param, _)| param == spec.name);
            if !params.contains_key(spec.name) && !written {
                valid = false;
                let message = format!(
                    "missing parameter `{}` ({}; expected {})",
                    spec.name,
                    spec.doc,
                    spec.ty.describe()
                );
                self.at_key(
                    &block.path,
                    node,
                    message,
                    Some(format!(
                        "add `{}: …` to the node or to `defaults: {{ {}: … }}`",
                        spec.name,
                        kind.name()
                    )),
                );
            }
        }
        if !valid {
            return (params, TypedParams::invalid());
        }
        let typed = match kind.parse_params(&params) {
            Ok(typed) => typed,
            Err(error) => {
                // The schema accepted what the struct cannot hold: a bug in the kind, said at
                // the node so it is found.
                self.at_key(
                    &block.path,
                    node,
                    format!("kind `{}`: {error}", kind.name()),
                    Some("this is a bug in the kind; please report it".into()),
                );
                return (params, TypedParams::invalid());
            }
        };
        for problem in kind.check(&typed) {
            let target = match &problem.param {
                Some(param) if block.params.iter().any(|(written, _)| written == param) => {
                    with_key(&block.path, param)
                }
                _ => block.path.clone(),
            };
            self.at_value(&target, node, problem.message, problem.hint);
        }
        (params, typed)
    }

    fn connect(&mut self, pipeline: &mut Pipeline, raw_inputs: RawInputs, registry: &KindRegistry) {
        let names: Vec<String> = pipeline
            .nodes
            .iter()
            .map(|node| node.name.clone())
            .collect();
        let kinds: HashMap<&str, &str> = pipeline
            .nodes
            .iter()
            .map(|node| (node.name.as_str(), node.kind.as_str()))
            .collect();
        let mut resolved_all = Vec::new();
        let mut slot_paths: Vec<(usize, BTreeMap<String, YamlPath>)> = Vec::new();
        for (index, inputs) in raw_inputs {
            slot_paths.push((
                index,
                inputs
                    .iter()
                    .map(|(slot, _, path)| (slot.clone(), path.clone()))
                    .collect(),
            ));
            let node = &pipeline.nodes[index];
            let kind = registry.get(&node.kind).expect("kinds were checked");
            let slots = kind.inputs();
            let mut resolved: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (slot, value, slot_path) in inputs {
                let declared = slots
                    .iter()
                    .find(|declared| declared.name == slot)
                    .expect("slots were checked");
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
                        let matched: Vec<&String> = names
                            .iter()
                            .filter(|name| {
                                matrix::wildcard_matches(&reference, name) && **name != node.name
                            })
                            .collect();
                        if matched.is_empty() {
                            self.at_value(
                                &slot_path,
                                Some(&node.name),
                                format!("pattern `{reference}` in input `{slot}` matches no node"),
                                None,
                            );
                        }
                        targets.extend(matched.into_iter().cloned());
                    } else if kinds.contains_key(reference.as_str()) {
                        targets.push(reference);
                    } else {
                        let hint = hint_did_you_mean(&reference, names.iter().map(String::as_str));
                        self.at_value(
                            &slot_path,
                            Some(&node.name),
                            format!("input `{slot}` refers to unknown node `{reference}`"),
                            hint,
                        );
                    }
                }
                if !declared.accepts.is_empty() {
                    for target in &targets {
                        let target_kind = kinds[target.as_str()];
                        if !declared.accepts.contains(&target_kind) {
                            let message = format!(
                                "input `{slot}` must be a {} node, but `{target}` is a `{target_kind}` node",
                                declared.accepts.iter().map(|kind| format!("`{kind}`")).collect::<Vec<_>>().join(" or ")
                            );
                            self.at_value(&slot_path, Some(&node.name), message, None);
                        }
                    }
                }
                if declared.arity != Arity::Many && targets.len() > 1 {
                    self.at_value(
                        &slot_path,
                        Some(&node.name),
                        format!("input `{slot}` takes one node, but {} match", targets.len()),
                        None,
                    );
                }
                resolved.insert(slot, targets);
            }
            resolved_all.push((index, resolved));
        }
        for (index, resolved) in resolved_all {
            pipeline.nodes[index].inputs = resolved;
        }
        self.check_across_nodes(pipeline, &slot_paths, registry);
    }

    /// Runs each kind's checks that span a node and the nodes it reads, pointing at the input
    /// reference (or the node) at fault.
    fn check_across_nodes(
        &mut self,
        pipeline: &Pipeline,
        slot_paths: &[(usize, BTreeMap<String, YamlPath>)],
        registry: &KindRegistry,
    ) {
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
                        .filter_map(|source| pipeline.node(source))
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

/// Shows a value in diagnostics (re-exported for kinds' `check` messages).
pub fn describe_value(value: &Value) -> String {
    show_value(value)
}
