//! From serde_yaml's values to the JSON values parameters are kept as, and small helpers for
//! paths into the YAML and "did you mean" hints.

use serde_json::{Map, Value};

use super::source_map::{PathSegment, YamlPath};
use crate::schema::nearest_name;

/// YAML that has no JSON form for parameters.
#[derive(Debug, thiserror::Error)]
pub(super) enum YamlProblem {
    #[error("numbers must be finite")]
    NotFinite,
    #[error("YAML tags such as `{0}` are not supported")]
    Tag(String),
    #[error("mapping keys must be plain words or numbers")]
    Key,
}

pub(super) fn yaml_to_json(value: &serde_yaml::Value) -> Result<Value, YamlProblem> {
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

pub(super) fn key_text(key: &serde_yaml::Value) -> Result<String, YamlProblem> {
    match key {
        serde_yaml::Value::String(text) => Ok(text.clone()),
        serde_yaml::Value::Bool(flag) => Ok(flag.to_string()),
        serde_yaml::Value::Number(number) => Ok(number.to_string()),
        _ => Err(YamlProblem::Key),
    }
}

pub(super) fn with_key(base: &[PathSegment], key: &str) -> YamlPath {
    let mut extended = base.to_vec();
    extended.push(PathSegment::Key(key.to_string()));
    extended
}

pub(super) fn hint_did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest_name(wanted, candidates).map(|nearest| format!("did you mean `{nearest}`?"))
}
