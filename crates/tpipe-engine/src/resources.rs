//! What a node asks of the machine that builds it: GPUs, CPUs, memory, wall time, retries, and
//! whether it stays on the submitting machine. Written under `resources:` in a node or in
//! `defaults: {kind: {resources: …}}`. Resources never reach a key: the same node built with
//! more memory is the same node.
//!
//! The values are typed (a size in bytes, a duration), in no scheduler's syntax: each cluster
//! backend writes them its own way (Slurm's `--mem=16G --time=2:00:00` in `slurm/script.rs`).

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// A node's resources; `None` leaves a field to the executor's defaults.
/// Hashable, so jobs that ask for the same can share one array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    pub gpus: Option<Gpus>,
    pub cpus: Option<u32>,
    /// Memory for the whole job.
    pub mem: Option<Memory>,
    /// Wall-clock limit.
    pub time: Option<Duration>,
    /// How many times a failed cluster job is submitted again.
    pub retries: Option<u32>,
    /// Build on the submitting machine even under a cluster executor.
    pub local: Option<bool>,
}

/// GPUs: a count and, optionally, a type the cluster names (`a100`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Gpus {
    pub count: u32,
    pub gpu_type: Option<String>,
}

/// An amount of memory, in kibibytes (the smallest unit `mem:` can name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory {
    pub kibibytes: u64,
}

/// The units `mem:` takes, largest first: (suffix, kibibytes).
const MEMORY_UNITS: [(char, u64); 4] = [('T', 1 << 30), ('G', 1 << 20), ('M', 1 << 10), ('K', 1)];

impl Memory {
    /// The amount in the largest unit that holds it whole: `16G`, `500M`, `512K`.
    fn whole_units(self) -> (u64, char) {
        MEMORY_UNITS
            .iter()
            .find(|(_, size)| self.kibibytes.is_multiple_of(*size))
            .map(|&(unit, size)| (self.kibibytes / size, unit))
            .unwrap_or((self.kibibytes, 'K'))
    }
}

/// As `mem:` would write it: `16G`, `500M`.
impl fmt::Display for Memory {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (amount, unit) = self.whole_units();
        write!(formatter, "{amount}{unit}")
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
            mem: self.mem.or(defaults.mem),
            time: self.time.or(defaults.time),
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

/// A size: a whole number with K, M, G or T (megabytes without a suffix).
fn parse_mem(value: &Value) -> Result<Memory, ResourceProblem> {
    let text = match value {
        Value::Number(number) if number.is_u64() => number.to_string(),
        Value::String(text) => text.trim().to_uppercase(),
        _ => String::new(),
    };
    let digits = text.trim_end_matches(|character: char| "KMGT".contains(character));
    let unit = match &text[digits.len()..] {
        "" => Some('M'),
        suffix if suffix.len() == 1 => suffix.chars().next(),
        _ => None,
    };
    let kibibytes = unit
        .and_then(|unit| MEMORY_UNITS.iter().find(|(name, _)| *name == unit))
        .filter(|_| !digits.is_empty() && digits.chars().all(|digit| digit.is_ascii_digit()))
        .and_then(|(_, size)| digits.parse::<u64>().ok()?.checked_mul(*size));
    if let Some(kibibytes) = kibibytes {
        Ok(Memory { kibibytes })
    } else {
        Err(ResourceProblem::at(
            "mem",
            format!("`mem` must be a size such as `4G` or `500M`, found {value}"),
            "a whole number with K, M, G or T (megabytes without a suffix)",
        ))
    }
}

/// A duration: `M`, `M:S` or `H:M:S`, optionally after `D-` (`D-H`, `D-H:M`, `D-H:M:S`).
/// The forms are Slurm's, which cluster users know; the value is a plain duration.
fn parse_time(value: &Value) -> Result<Duration, ResourceProblem> {
    let text = match value {
        Value::Number(number) if number.is_u64() => number.to_string(),
        Value::String(text) => text.trim().to_string(),
        _ => String::new(),
    };
    let seconds = duration_seconds(&text).ok_or_else(|| {
        ResourceProblem::at(
            "time",
            format!("`time` must be a Slurm time limit such as `90`, `2:00:00` or `1-12:00:00`, found {value}"),
            "minutes, or hours:minutes:seconds, optionally after `days-`",
        )
    })?;
    Ok(Duration::from_secs(seconds))
}

/// Seconds in a time limit written as [`parse_time`] reads it.
pub fn duration_seconds(text: &str) -> Option<u64> {
    let numbers = |part: &str, most: usize| -> Option<Vec<u64>> {
        let fields: Vec<&str> = part.split(':').collect();
        if fields.len() > most {
            return None;
        }
        fields
            .iter()
            .map(|field| {
                let digits = !field.is_empty() && field.chars().all(|digit| digit.is_ascii_digit());
                digits.then(|| field.parse::<u64>().ok()).flatten()
            })
            .collect()
    };
    let (days, fields) = match text.split_once('-') {
        Some((days, rest)) => {
            let days = numbers(days, 1)?[0];
            // After days the first field is hours: `D-H`, `D-H:M`, `D-H:M:S`.
            let mut fields = numbers(rest, 3)?;
            fields.resize(3, 0);
            (days, fields)
        }
        None => {
            let fields = numbers(text, 3)?;
            // Without days: `M`, `M:S` or `H:M:S`.
            let fields = match fields[..] {
                [minutes] => vec![0, minutes, 0],
                [minutes, seconds] => vec![0, minutes, seconds],
                _ => fields,
            };
            (0, fields)
        }
    };
    let [hours, minutes, seconds] = fields[..] else {
        return None;
    };
    Some(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
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
        let a100 = Gpus {
            count: 2,
            gpu_type: Some("a100".into()),
        };
        assert_eq!(resources.gpus, Some(a100));
        assert_eq!(resources.mem.unwrap().to_string(), "16G");
        assert_eq!(resources.mem.unwrap().kibibytes, 16 << 20);
        assert_eq!(resources.time, Some(Duration::from_secs(36 * 3600)));
        assert_eq!(
            (resources.cpus, resources.retries, resources.local),
            (Some(4), Some(2), Some(false))
        );
        let mapping =
            Resources::parse(&json!({"gpus": {"count": 1, "type": "v100"}, "mem": 500})).unwrap();
        assert_eq!(mapping.gpus.unwrap().gpu_type.as_deref(), Some("v100"));
        assert_eq!(
            mapping.mem.unwrap().to_string(),
            "500M",
            "megabytes without a suffix"
        );
        assert_eq!(
            Resources::parse(&json!({"gpus": 1})).unwrap().gpus,
            Some(Gpus {
                count: 1,
                gpu_type: None
            })
        );
        for (written, seconds) in [
            ("90", 5400),
            ("1:30", 90),
            ("2:00:00", 7200),
            ("1-12", 36 * 3600),
            ("1-0:30", 86400 + 1800),
        ] {
            assert_eq!(duration_seconds(written), Some(seconds), "{written}");
        }
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
        assert_eq!(node.mem.unwrap().to_string(), "16G");
        assert_eq!(node.time, Some(Duration::from_secs(3600)));
        assert_eq!(node.gpus.unwrap().count, 1);
    }
}
