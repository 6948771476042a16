//! What a node asks of the machine that builds it: GPUs, CPUs, memory, wall time, retries, and
//! whether it stays on the submitting machine. Written under `resources:` in a node or in
//! `defaults: {kind: {resources: …}}`. Resources never reach a key: the same node built with
//! more memory is the same node.

use serde::Serialize;
use serde_json::Value;

/// A node's resources; `None` leaves a field to the executor's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Gpus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Slurm's memory syntax: a whole number with an optional K, M, G or T (megabytes without).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// Slurm's time syntax: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M` or `D-H:M:S`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// How many times a failed cluster job is submitted again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Build on the submitting machine even under a cluster executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<bool>,
}

/// GPUs: a count and, optionally, a type the cluster names (`a100`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Gpus {
    pub count: u32,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
}

impl Gpus {
    /// The value of sbatch's `--gpus`: `2` or `a100:2`.
    pub fn sbatch_value(&self) -> String {
        match &self.gpu_type {
            Some(gpu_type) => format!("{gpu_type}:{}", self.count),
            None => self.count.to_string(),
        }
    }
}

/// The fields `resources:` takes, for messages and hints.
pub const RESOURCE_FIELDS: &[&str] = &["gpus", "cpus", "mem", "time", "retries", "local"];

/// A problem with one field of a `resources:` mapping (`None`: the mapping itself).
#[derive(Debug, PartialEq)]
pub struct ResourceProblem {
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

impl ResourceProblem {
    fn at(field: &str, message: impl Into<String>, hint: impl Into<String>) -> ResourceProblem {
        ResourceProblem {
            field: Some(field.to_string()),
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl Resources {
    /// Reads a `resources:` mapping, collecting every problem rather than stopping at the first.
    pub fn parse(value: &Value) -> Result<Resources, Vec<ResourceProblem>> {
        let Value::Object(map) = value else {
            return Err(vec![ResourceProblem {
                field: None,
                message: "`resources` must be a mapping".into(),
                hint: Some(format!("it takes {}", RESOURCE_FIELDS.join(", "))),
            }]);
        };
        let mut resources = Resources::default();
        let mut problems = Vec::new();
        for (field, value) in map {
            let result = match field.as_str() {
                "gpus" => parse_gpus(value).map(|gpus| resources.gpus = Some(gpus)),
                "cpus" => whole(field, value, 1).map(|cpus| resources.cpus = Some(cpus)),
                "retries" => {
                    whole(field, value, 0).map(|retries| resources.retries = Some(retries))
                }
                "mem" => parse_mem(value).map(|mem| resources.mem = Some(mem)),
                "time" => parse_time(value).map(|time| resources.time = Some(time)),
                "local" => match value {
                    Value::Bool(local) => {
                        resources.local = Some(*local);
                        Ok(())
                    }
                    _ => Err(ResourceProblem::at(
                        field,
                        "`local` must be true or false",
                        "`local: true` builds the node on the submitting machine",
                    )),
                },
                _ => Err(ResourceProblem {
                    field: Some(field.clone()),
                    message: format!("unknown resource `{field}`"),
                    hint: crate::schema::nearest_name(field, RESOURCE_FIELDS.iter().copied())
                        .map(|nearest| format!("did you mean `{nearest}`?"))
                        .or_else(|| {
                            Some(format!("`resources` takes {}", RESOURCE_FIELDS.join(", ")))
                        }),
                }),
            };
            if let Err(problem) = result {
                problems.push(problem);
            }
        }
        if problems.is_empty() {
            Ok(resources)
        } else {
            Err(problems)
        }
    }

    /// These resources with every field that `self` leaves open taken from `defaults`.
    pub fn or(self, defaults: &Resources) -> Resources {
        Resources {
            gpus: self.gpus.or_else(|| defaults.gpus.clone()),
            cpus: self.cpus.or(defaults.cpus),
            mem: self.mem.or_else(|| defaults.mem.clone()),
            time: self.time.or_else(|| defaults.time.clone()),
            retries: self.retries.or(defaults.retries),
            local: self.local.or(defaults.local),
        }
    }
}

fn whole(field: &str, value: &Value, least: u64) -> Result<u32, ResourceProblem> {
    value
        .as_u64()
        .filter(|number| *number >= least)
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| {
            ResourceProblem::at(
                field,
                format!("`{field}` must be a whole number of at least {least}, found {value}"),
                format!("for example `{field}: {}`", least.max(1)),
            )
        })
}

fn parse_gpus(value: &Value) -> Result<Gpus, ResourceProblem> {
    let problem = || {
        ResourceProblem::at(
            "gpus",
            format!("`gpus` must be a count or `type:count`, found {value}"),
            "for example `gpus: 1`, `gpus: a100:2` or `gpus: {count: 2, type: a100}`",
        )
    };
    let valid_type = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || "_-.".contains(character))
    };
    match value {
        Value::Number(_) => whole("gpus", value, 0).map(|count| Gpus {
            count,
            gpu_type: None,
        }),
        Value::String(text) => {
            let (gpu_type, count) = text.rsplit_once(':').ok_or_else(problem)?;
            let count: u32 = count.trim().parse().map_err(|_| problem())?;
            let gpu_type = gpu_type.trim();
            if !valid_type(gpu_type) {
                return Err(problem());
            }
            Ok(Gpus {
                count,
                gpu_type: Some(gpu_type.to_string()),
            })
        }
        Value::Object(map) => {
            let count = map
                .get("count")
                .ok_or_else(problem)
                .and_then(|count| whole("gpus", count, 0))?;
            let gpu_type = match map.get("type") {
                None => None,
                Some(Value::String(text)) if valid_type(text) => Some(text.clone()),
                Some(_) => return Err(problem()),
            };
            if map.keys().any(|key| key != "count" && key != "type") {
                return Err(problem());
            }
            Ok(Gpus { count, gpu_type })
        }
        _ => Err(problem()),
    }
}

fn parse_mem(value: &Value) -> Result<String, ResourceProblem> {
    let text = match value {
        Value::Number(number) if number.is_u64() => number.to_string(),
        Value::String(text) => text.trim().to_string(),
        _ => String::new(),
    };
    let digits = text.trim_end_matches(|character: char| "KMGTkmgt".contains(character));
    let suffix_length = text.len() - digits.len();
    let valid = !digits.is_empty()
        && digits.chars().all(|character| character.is_ascii_digit())
        && suffix_length <= 1;
    if valid {
        Ok(text.to_uppercase())
    } else {
        Err(ResourceProblem::at(
            "mem",
            format!("`mem` must be a size such as `4G` or `500M`, found {value}"),
            "a whole number with K, M, G or T (megabytes without a suffix)",
        ))
    }
}

fn parse_time(value: &Value) -> Result<String, ResourceProblem> {
    let text = match value {
        Value::Number(number) if number.is_u64() => number.to_string(),
        Value::String(text) => text.trim().to_string(),
        _ => String::new(),
    };
    let numbers = |part: &str, most: usize| {
        let fields: Vec<&str> = part.split(':').collect();
        fields.len() <= most
            && fields.iter().all(|field| {
                !field.is_empty() && field.chars().all(|character| character.is_ascii_digit())
            })
    };
    let valid = match text.split_once('-') {
        Some((days, rest)) => numbers(days, 1) && numbers(rest, 3),
        None => numbers(&text, 3),
    };
    if valid {
        Ok(text)
    } else {
        Err(ResourceProblem::at(
            "time",
            format!("`time` must be a Slurm time limit such as `90`, `2:00:00` or `1-12:00:00`, found {value}"),
            "minutes, or hours:minutes:seconds, optionally after `days-`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_written_form_is_read() {
        let resources = Resources::parse(&json!({
            "gpus": "a100:2", "cpus": 4, "mem": "16g", "time": "1-12:00:00", "retries": 2, "local": false
        }))
        .unwrap();
        assert_eq!(resources.gpus.as_ref().unwrap().sbatch_value(), "a100:2");
        assert_eq!(resources.mem.as_deref(), Some("16G"));
        assert_eq!(resources.time.as_deref(), Some("1-12:00:00"));
        assert_eq!(
            (resources.cpus, resources.retries, resources.local),
            (Some(4), Some(2), Some(false))
        );
        let mapping =
            Resources::parse(&json!({"gpus": {"count": 1, "type": "v100"}, "mem": 500})).unwrap();
        assert_eq!(mapping.gpus.unwrap().sbatch_value(), "v100:1");
        assert_eq!(mapping.mem.as_deref(), Some("500"));
        assert_eq!(
            Resources::parse(&json!({"gpus": 1}))
                .unwrap()
                .gpus
                .unwrap()
                .sbatch_value(),
            "1"
        );
    }

    #[test]
    fn bad_values_name_their_field_and_unknown_fields_get_a_hint() {
        let problems = Resources::parse(&json!({
            "gpus": "two", "mem": "4 GB", "time": "1h", "cpus": 0, "gpu": 1
        }))
        .unwrap_err();
        let fields: Vec<&str> = problems
            .iter()
            .filter_map(|problem| problem.field.as_deref())
            .collect();
        assert_eq!(fields, ["cpus", "gpu", "gpus", "mem", "time"]);
        let unknown = problems
            .iter()
            .find(|problem| problem.field.as_deref() == Some("gpu"))
            .unwrap();
        assert_eq!(unknown.hint.as_deref(), Some("did you mean `gpus`?"));
    }

    #[test]
    fn a_node_overrides_its_defaults_field_by_field() {
        let defaults = Resources::parse(&json!({"gpus": 1, "mem": "8G", "time": 60})).unwrap();
        let node = Resources::parse(&json!({"mem": "16G"}))
            .unwrap()
            .or(&defaults);
        assert_eq!(node.mem.as_deref(), Some("16G"));
        assert_eq!(node.time.as_deref(), Some("60"));
        assert_eq!(node.gpus.unwrap().count, 1);
    }
}
