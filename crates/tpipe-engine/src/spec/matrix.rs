//! Grid expansion: one node block with a `matrix` becomes one node per combination.
//!
//! ```yaml
//! "{source}{n}B{finetune}_s{seed}":
//!   kind: transfer
//!   matrix:
//!     source: [A, B]
//!     n: 1..=7
//!     finetune: {false: "", true: "+"}   # value: label used in names and text
//!     seed: [0, 1, 2]
//! ```
//! In the node name and inside strings, `{var}` becomes the value's label; a string that is
//! exactly `{var}` becomes the value itself, keeping its type.

use serde_json::Value;

/// One matrix variable and its values, each with the label used in names.
#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    pub values: Vec<(Value, String)>,
}

/// One point of the grid: a value and label per variable.
pub type Combination = Vec<(String, Value, String)>;

/// The label of a plain value: strings as written, numbers and booleans as YAML shows them.
pub fn label_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A range of matrix values that cannot be read.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum RangeProblem {
    #[error("`{text}` is ambiguous: write `{start}..={end}` (inclusive) or a list")]
    Ambiguous { text: String, start: i64, end: i64 },
    #[error("range `{0}` is empty")]
    Empty(String),
}

/// Parses `1..=7` (inclusive). `1..7` is rejected because readers disagree on whether it
/// includes 7.
pub fn parse_range(text: &str) -> Result<Option<Vec<i64>>, RangeProblem> {
    let Some((start, end)) = text.split_once("..") else {
        return Ok(None);
    };
    let (inclusive, end) = match end.strip_prefix('=') {
        Some(end) => (true, end),
        None => (false, end),
    };
    let (Ok(start), Ok(end)) = (start.trim().parse::<i64>(), end.trim().parse::<i64>()) else {
        return Ok(None);
    };
    if !inclusive {
        return Err(RangeProblem::Ambiguous {
            text: text.to_string(),
            start,
            end,
        });
    }
    if start > end {
        return Err(RangeProblem::Empty(text.to_string()));
    }
    Ok(Some((start..=end).collect()))
}

/// Every combination, first variable slowest, in the order the values are written.
pub fn combinations(variables: &[Variable]) -> Vec<Combination> {
    let mut result: Vec<Combination> = vec![Vec::new()];
    for variable in variables {
        let mut next = Vec::with_capacity(result.len() * variable.values.len());
        for prefix in &result {
            for (value, label) in &variable.values {
                let mut combination = prefix.clone();
                combination.push((variable.name.clone(), value.clone(), label.clone()));
                next.push(combination);
            }
        }
        result = next;
    }
    result
}

/// The `{name}` placeholders in a text, in order.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.is_empty()
            && name
                .chars()
                .all(|character| character.is_alphanumeric() || character == '_')
        {
            found.push(name.to_string());
        }
        rest = &after[end + 1..];
    }
    found
}

/// Replaces each `{name}` of a matrix variable with its label, in one pass: a label is never
/// scanned again, and text without braces is copied as it is.
pub fn substitute_text(text: &str, combination: &Combination) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        result.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let replaced = after.find('}').and_then(|close| {
            let label = label_for(&after[..close], combination)?;
            Some((label, close))
        });
        match replaced {
            Some((label, close)) => {
                result.push_str(label);
                rest = &after[close + 1..];
            }
            None => {
                result.push('{');
                rest = after;
            }
        }
    }
    result.push_str(rest);
    result
}

fn label_for<'c>(name: &str, combination: &'c Combination) -> Option<&'c str> {
    combination
        .iter()
        .find(|(variable, _, _)| variable == name)
        .map(|(_, _, label)| label.as_str())
}

/// Substitutes matrix values into a parameter or input value. A string that is exactly
/// `{name}` takes the variable's value with its type (a number stays a number).
pub fn substitute(value: &Value, combination: &Combination) -> Value {
    match value {
        Value::String(text) => {
            let whole = text
                .strip_prefix('{')
                .and_then(|inner| inner.strip_suffix('}'))
                .and_then(|name| combination.iter().find(|(variable, _, _)| variable == name));
            match whole {
                Some((_, value, _)) => value.clone(),
                None => Value::String(substitute_text(text, combination)),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| substitute(item, combination))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), substitute(item, combination)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Matches `*` (any run) and `?` (one character) against a whole name.
pub fn wildcard_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut pattern_index, mut name_index) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while name_index < name.len() {
        match pattern.get(pattern_index) {
            Some('*') => {
                backtrack = Some((pattern_index, name_index));
                pattern_index += 1;
            }
            Some(character) if *character == '?' || *character == name[name_index] => {
                pattern_index += 1;
                name_index += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    pattern_index = star + 1;
                    name_index = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[pattern_index..]
        .iter()
        .all(|character| *character == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_and_half_open_ones_are_refused() {
        assert_eq!(parse_range("1..=3").unwrap(), Some(vec![1, 2, 3]));
        assert!(parse_range("1..7").is_err());
        assert_eq!(parse_range("abc").unwrap(), None);
    }

    #[test]
    fn whole_string_placeholders_keep_the_type() {
        let combination = vec![("n".to_string(), Value::from(3), "3".to_string())];
        assert_eq!(
            substitute(&Value::from("{n}"), &combination),
            Value::from(3)
        );
        assert_eq!(
            substitute(&Value::from("A{n}B"), &combination),
            Value::from("A3B")
        );
    }

    #[test]
    fn text_substitution_replaces_known_names_once_and_keeps_other_braces() {
        let combination = vec![
            ("n".to_string(), Value::from(3), "3".to_string()),
            ("s".to_string(), Value::from("{n}"), "{n}".to_string()),
        ];
        assert_eq!(substitute_text("A{n}B{n}_s{s}", &combination), "A3B3_s{n}");
        assert_eq!(substitute_text("{x}{n}{", &combination), "{x}3{");
        assert_eq!(substitute_text("plain", &combination), "plain");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("eval_*", "eval_A3B+"));
        assert!(wildcard_matches("*B?", "A3B+"));
        assert!(!wildcard_matches("eval_*", "train_A"));
        assert!(wildcard_matches("a*b*c", "aXXbYc"));
    }
}
