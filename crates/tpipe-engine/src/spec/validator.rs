//! The validator: what every step of reading a pipeline shares (the file, its source map, the
//! diagnostics so far and how to add one) and the `defaults:` and `resources:` readers. The
//! steps live beside it: `document` (the top level and the expansion of node blocks), `block`
//! (a node block and its matrix), `params` (a node's parameters) and `connect` (inputs and
//! checks across nodes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::diagnostic::Diagnostic;
use super::source_map::{path, Location, PathSegment, SourceMap};
use super::yaml::{hint_did_you_mean, key_text, with_key, yaml_to_json};
use crate::kind::KindRegistry;
use crate::resources::Resources;

/// Parameters under `defaults:`, per kind, already normalised.
pub(super) type Defaults = BTreeMap<String, Map<String, Value>>;

pub(super) struct Validator {
    pub(super) file: PathBuf,
    pub(super) lines: Vec<String>,
    pub(super) source_map: SourceMap,
    pub(super) diagnostics: Vec<Diagnostic>,
    /// `resources:` under `defaults:`, per kind.
    pub(super) resource_defaults: BTreeMap<String, Resources>,
}

impl Validator {
    pub(super) fn new(file: &Path, text: &str) -> Validator {
        Validator {
            file: file.to_path_buf(),
            lines: text.lines().map(str::to_string).collect(),
            source_map: SourceMap::index(text),
            diagnostics: Vec::new(),
            resource_defaults: BTreeMap::new(),
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
