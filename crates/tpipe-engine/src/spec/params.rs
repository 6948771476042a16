//! A node's parameters: the kind's defaults, then the pipeline's `defaults:`, then what the
//! block writes (with matrix values substituted), each normalised to its type; then, when all
//! are there and valid, the kind's typed struct and the kind's own checks.

use serde_json::{Map, Value};

use super::block::Block;
use super::matrix::{self, Combination};
use super::validator::{Defaults, Validator};
use super::yaml::with_key;
use crate::kind::TypedParams;

impl Validator {
    pub(super) fn node_params(
        &mut self,
        block: &Block,
        name: &str,
        combination: &Combination,
        defaults: &Defaults,
    ) -> (Map<String, Value>, TypedParams) {
        let mut params = Map::new();
        for spec in &block.specs {
            if let Some(default) = &spec.default {
                params.insert(spec.name.to_string(), default.clone());
            }
        }
        if let Some(pipeline_defaults) = defaults.get(block.kind.name()) {
            params.extend(pipeline_defaults.clone());
        }
        // Only parameters all there and of their types are read into the kind's struct and
        // checked by the kind.
        let written_valid = self.written_params(block, name, combination, &mut params);
        let complete = self.no_missing_params(block, name, &params);
        if !(written_valid && complete) {
            return (params, TypedParams::invalid());
        }
        let typed = self.typed_and_checked(block, name, &params);
        (params, typed)
    }

    /// Normalises the parameters the block writes into `params`; whether all were valid.
    fn written_params(
        &mut self,
        block: &Block,
        name: &str,
        combination: &Combination,
        params: &mut Map<String, Value>,
    ) -> bool {
        let mut valid = true;
        for (param, raw) in &block.params {
            let spec = block
                .specs
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
                            Some(name),
                            format!("parameter `{param}`: {problem}"),
                            None,
                        );
                    }
                }
            }
        }
        valid
    }

    /// Reports each required parameter that neither the node nor `defaults:` gives; whether
    /// there was none.
    fn no_missing_params(
        &mut self,
        block: &Block,
        name: &str,
        params: &Map<String, Value>,
    ) -> bool {
        let mut complete = true;
        for spec in &block.specs {
            let written = block.params.iter().any(|(param, _)| param == spec.name);
            if !params.contains_key(spec.name) && !written {
                complete = false;
                let message = format!(
                    "missing parameter `{}` ({}; expected {})",
                    spec.name,
                    spec.doc,
                    spec.ty.describe()
                );
                self.at_key(
                    &block.path,
                    Some(name),
                    message,
                    Some(format!(
                        "add `{}: …` to the node or to `defaults: {{ {}: … }}`",
                        spec.name,
                        block.kind.name()
                    )),
                );
            }
        }
        complete
    }

    /// The kind's struct read from valid parameters, then the kind's checks on it, each
    /// problem reported at the parameter it names when the node writes it.
    fn typed_and_checked(
        &mut self,
        block: &Block,
        name: &str,
        params: &Map<String, Value>,
    ) -> TypedParams {
        let kind = block.kind;
        let typed = match kind.parse_params(params) {
            Ok(typed) => typed,
            Err(error) => {
                // The schema accepted what the struct cannot hold: a bug in the kind, said at
                // the node so it is found.
                self.at_key(
                    &block.path,
                    Some(name),
                    format!("kind `{}`: {error}", kind.name()),
                    Some("this is a bug in the kind; please report it".into()),
                );
                return TypedParams::invalid();
            }
        };
        for problem in kind.check(&typed) {
            let target = match &problem.param {
                Some(param) if block.params.iter().any(|(written, _)| written == param) => {
                    with_key(&block.path, param)
                }
                _ => block.path.clone(),
            };
            self.at_value(&target, Some(name), problem.message, problem.hint);
        }
        typed
    }
}
