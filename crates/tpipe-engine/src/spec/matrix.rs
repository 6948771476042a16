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
//!
//! Nothing here grows with the grid until nodes are made: a range is kept as its two ends, the
//! grid is counted by multiplying, and a combination is one index per variable.

use serde_json::{Map, Value};

/// One matrix variable and its values, each with the label used in names.
#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    pub values: Values,
}

/// A variable's values: as written, or an integer range kept as its ends, so that a range of a
/// billion values costs nothing until nodes are made from it.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Each value with its label.
    Listed(Vec<(Value, String)>),
    /// `start..=end`; each value is its own label.
    Range { start: i64, end: i64 },
}

impl Values {
    pub fn len(&self) -> u64 {
        match self {
            Values::Listed(values) => values.len() as u64,
            Values::Range { start, end } => end.abs_diff(*start).saturating_add(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Values::Listed(values) if values.is_empty())
    }

    /// The value at `index` (from 0).
    pub fn value(&self, index: u64) -> Value {
        match self {
            Values::Listed(values) => values[index as usize].0.clone(),
            Values::Range { start, .. } => Value::from(start + index as i64),
        }
    }

    /// Appends the label of the value at `index` to `out`.
    pub fn write_label(&self, index: u64, out: &mut String) {
        match self {
            Values::Listed(values) => out.push_str(&values[index as usize].1),
            Values::Range { start, .. } => {
                out.push_str(itoa::Buffer::new().format(start + index as i64));
            }
        }
    }

    /// The label of the value at `index`.
    pub fn label(&self, index: u64) -> String {
        let mut label = String::new();
        self.write_label(index, &mut label);
        label
    }
}

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

/// Parses `1..=7` (inclusive) into its ends. `1..7` is rejected because readers disagree on
/// whether it includes 7.
pub fn parse_range(text: &str) -> Result<Option<(i64, i64)>, RangeProblem> {
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
    Ok(Some((start, end)))
}

/// One point of the grid: an index into each variable's values.
#[derive(Clone, Debug)]
pub struct Combination<'v> {
    variables: &'v [Variable],
    indices: Vec<u64>,
}

impl<'v> Combination<'v> {
    /// The point `indices` of the grid of `variables` (one index per variable).
    pub fn new(variables: &'v [Variable], indices: Vec<u64>) -> Combination<'v> {
        debug_assert_eq!(variables.len(), indices.len());
        Combination { variables, indices }
    }

    /// The index of each variable's value, in the order the variables are written.
    pub fn indices(&self) -> &[u64] {
        &self.indices
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.variables
            .iter()
            .position(|variable| variable.name == name)
    }

    /// The value variable `name` takes here.
    pub fn value(&self, name: &str) -> Option<Value> {
        let position = self.position(name)?;
        Some(
            self.variables[position]
                .values
                .value(self.indices[position]),
        )
    }

    /// Appends the label variable `name` takes here; whether `name` is a variable.
    fn write_label(&self, name: &str, out: &mut String) -> bool {
        match self.position(name) {
            Some(position) => {
                self.variables[position]
                    .values
                    .write_label(self.indices[position], out);
                true
            }
            None => false,
        }
    }
}

/// Every combination of `variables`, first variable slowest, values in the order written; made
/// one at a time.
pub fn combinations(variables: &[Variable]) -> Combinations<'_> {
    let empty = variables.iter().any(|variable| variable.values.is_empty());
    Combinations {
        variables,
        next: (!empty).then(|| vec![0; variables.len()]),
    }
}

pub struct Combinations<'v> {
    variables: &'v [Variable],
    next: Option<Vec<u64>>,
}

impl<'v> Iterator for Combinations<'v> {
    type Item = Combination<'v>;

    fn next(&mut self) -> Option<Combination<'v>> {
        let current = self.next.take()?;
        let mut following = current.clone();
        // Count up like an odometer, the last variable fastest.
        let mut carried = true;
        for (index, variable) in following.iter_mut().zip(self.variables).rev() {
            *index += 1;
            if *index < variable.values.len() {
                carried = false;
                break;
            }
            *index = 0;
        }
        if !carried {
            self.next = Some(following);
        }
        Some(Combination::new(self.variables, current))
    }
}

/// How many combinations `variables` make, or `None` past `u64::MAX`.
pub fn count(variables: &[Variable]) -> Option<u64> {
    variables.iter().try_fold(1u64, |product, variable| {
        product.checked_mul(variable.values.len())
    })
}

/// The combinations one `exclude:` entry removes: for each variable it names, which values.
#[derive(Clone, Debug)]
pub struct Exclusion {
    /// Per variable (by position), the values it matches; `None` for a variable the entry does
    /// not name. An entry that names a variable the matrix lacks matches nothing.
    matches: Vec<Option<ValueSet>>,
    matches_nothing: bool,
}

/// A set of a variable's values, by index.
#[derive(Clone, Debug)]
enum ValueSet {
    Listed(Vec<bool>),
    /// The one value of a range that matches, if any.
    RangeIndex(Option<u64>),
}

impl ValueSet {
    fn contains(&self, index: u64) -> bool {
        match self {
            ValueSet::Listed(flags) => flags[index as usize],
            ValueSet::RangeIndex(matched) => *matched == Some(index),
        }
    }

    fn count(&self) -> u64 {
        match self {
            ValueSet::Listed(flags) => flags.iter().filter(|flag| **flag).count() as u64,
            ValueSet::RangeIndex(matched) => u64::from(matched.is_some()),
        }
    }

    fn intersect(&self, other: &ValueSet) -> ValueSet {
        match (self, other) {
            (ValueSet::Listed(a), ValueSet::Listed(b)) => {
                ValueSet::Listed(a.iter().zip(b).map(|(a, b)| *a && *b).collect())
            }
            (ValueSet::RangeIndex(a), ValueSet::RangeIndex(b)) => {
                ValueSet::RangeIndex(a.filter(|a| Some(*a) == *b))
            }
            _ => unreachable!("both sets are of one variable"),
        }
    }
}

/// Whether an `exclude:` value names a matrix value: equal, or written as its label.
fn excludes(excluded: &Value, value: &Value, label: &str) -> bool {
    value == excluded || excluded.as_str() == Some(label) || label_of(excluded) == label
}

impl Exclusion {
    /// The combinations of `variables` that the entry `excluded` (variable → value) removes.
    pub fn new(variables: &[Variable], excluded: &Map<String, Value>) -> Exclusion {
        let mut matches: Vec<Option<ValueSet>> = vec![None; variables.len()];
        let mut matches_nothing = false;
        for (name, excluded_value) in excluded {
            let Some(position) = variables.iter().position(|variable| variable.name == *name)
            else {
                matches_nothing = true;
                continue;
            };
            let set = match &variables[position].values {
                Values::Listed(values) => ValueSet::Listed(
                    values
                        .iter()
                        .map(|(value, label)| excludes(excluded_value, value, label))
                        .collect(),
                ),
                Values::Range { start, end } => {
                    let number = excluded_value.as_i64().or_else(|| {
                        excluded_value
                            .as_str()
                            .and_then(|text| text.trim().parse().ok())
                    });
                    ValueSet::RangeIndex(
                        number
                            .filter(|number| (*start..=*end).contains(number))
                            .map(|number| number.abs_diff(*start)),
                    )
                }
            };
            matches[position] = Some(match &matches[position] {
                Some(earlier) => earlier.intersect(&set),
                None => set,
            });
        }
        Exclusion {
            matches,
            matches_nothing,
        }
    }

    /// Whether this entry removes `combination`.
    pub fn removes(&self, combination: &Combination) -> bool {
        !self.matches_nothing
            && self
                .matches
                .iter()
                .zip(combination.indices())
                .all(|(set, index)| set.as_ref().is_none_or(|set| set.contains(*index)))
    }
}

/// Beyond this many `exclude:` entries the grid is counted by walking it, not by
/// inclusion–exclusion (2^entries terms).
const MOST_ENTRIES_TO_COUNT_BY_FORMULA: usize = 12;

/// How many combinations of `variables` no entry of `exclusions` removes, without making them;
/// `None` past `u64::MAX`, or when many entries would make the count itself costly: then
/// [`count`] is an upper bound.
pub fn count_kept(variables: &[Variable], exclusions: &[Exclusion]) -> Option<u64> {
    let total = count(variables)?;
    let exclusions: Vec<&Exclusion> = exclusions
        .iter()
        .filter(|exclusion| !exclusion.matches_nothing)
        .collect();
    if exclusions.len() > MOST_ENTRIES_TO_COUNT_BY_FORMULA {
        return None;
    }
    // Inclusion–exclusion: add the combinations each set of entries removes together, with
    // alternating signs.
    let mut removed: i128 = 0;
    for subset in 1u32..(1 << exclusions.len()) {
        let mut together: Vec<Option<ValueSet>> = vec![None; variables.len()];
        for (entry, exclusion) in exclusions.iter().enumerate() {
            if subset & (1 << entry) == 0 {
                continue;
            }
            for (slot, set) in together.iter_mut().zip(&exclusion.matches) {
                if let Some(set) = set {
                    *slot = Some(match slot {
                        Some(earlier) => earlier.intersect(set),
                        None => set.clone(),
                    });
                }
            }
        }
        let size: i128 = together
            .iter()
            .zip(variables)
            .map(|(set, variable)| match set {
                Some(set) => set.count() as i128,
                None => variable.values.len() as i128,
            })
            .product();
        if subset.count_ones() % 2 == 1 {
            removed += size;
        } else {
            removed -= size;
        }
    }
    u64::try_from(total as i128 - removed).ok()
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

/// Whether a value (or any string inside it) names one of `variables` as a placeholder: only
/// then does it differ from node to node.
pub fn mentions(value: &Value, variables: &[Variable]) -> Vec<usize> {
    let mut found = Vec::new();
    collect_mentions(value, variables, &mut found);
    found.sort_unstable();
    found.dedup();
    found
}

fn collect_mentions(value: &Value, variables: &[Variable], found: &mut Vec<usize>) {
    match value {
        Value::String(text) => found.extend(
            placeholders(text)
                .iter()
                .filter_map(|name| variables.iter().position(|variable| variable.name == *name)),
        ),
        Value::Array(items) => {
            for item in items {
                collect_mentions(item, variables, found);
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                collect_mentions(item, variables, found);
            }
        }
        _ => {}
    }
}

/// Replaces each `{name}` of a matrix variable with its label, in one pass: a label is never
/// scanned again, and text without braces is copied as it is.
pub fn substitute_text(text: &str, combination: &Combination) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        result.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let replaced = after
            .find('}')
            .filter(|close| combination.write_label(&after[..*close], &mut result));
        match replaced {
            Some(close) => rest = &after[close + 1..],
            None => {
                result.push('{');
                rest = after;
            }
        }
    }
    result.push_str(rest);
    result
}

/// Substitutes matrix values into a parameter or input value. A string that is exactly
/// `{name}` takes the variable's value with its type (a number stays a number).
pub fn substitute(value: &Value, combination: &Combination) -> Value {
    match value {
        Value::String(text) => {
            let whole = text
                .strip_prefix('{')
                .and_then(|inner| inner.strip_suffix('}'))
                .and_then(|name| combination.value(name));
            match whole {
                Some(value) => value,
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
    if pattern.is_ascii() && name.is_ascii() {
        return wildcard_matches_in(pattern.as_bytes(), name.as_bytes());
    }
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    wildcard_matches_in(&pattern, &name)
}

/// The matcher, over bytes (ASCII, the usual case: no allocation) or characters.
fn wildcard_matches_in<T: Copy + PartialEq + From<u8>>(pattern: &[T], name: &[T]) -> bool {
    let (star, question) = (T::from(b'*'), T::from(b'?'));
    let (mut pattern_index, mut name_index) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while name_index < name.len() {
        match pattern.get(pattern_index) {
            Some(character) if *character == star => {
                backtrack = Some((pattern_index, name_index));
                pattern_index += 1;
            }
            Some(character) if *character == question || *character == name[name_index] => {
                pattern_index += 1;
                name_index += 1;
            }
            _ => match backtrack {
                Some((star_index, matched)) => {
                    pattern_index = star_index + 1;
                    name_index = matched + 1;
                    backtrack = Some((star_index, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[pattern_index..]
        .iter()
        .all(|character| *character == star)
}

/// Whether a reference is a pattern (`eval_*`) rather than a node name.
pub fn is_pattern(reference: &str) -> bool {
    reference.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, values: &[&str]) -> Variable {
        Variable {
            name: name.to_string(),
            values: Values::Listed(
                values
                    .iter()
                    .map(|value| (Value::from(*value), value.to_string()))
                    .collect(),
            ),
        }
    }

    fn range(name: &str, start: i64, end: i64) -> Variable {
        Variable {
            name: name.to_string(),
            values: Values::Range { start, end },
        }
    }

    #[test]
    fn ranges_are_inclusive_and_half_open_ones_are_refused() {
        assert_eq!(parse_range("1..=3").unwrap(), Some((1, 3)));
        assert!(parse_range("1..7").is_err());
        assert!(parse_range("3..=1").is_err());
        assert_eq!(parse_range("abc").unwrap(), None);
    }

    #[test]
    fn a_huge_range_is_counted_without_being_made() {
        let variables = [range("n", 1, 999_999_999_999), listed("s", &["A", "B"])];
        assert_eq!(count(&variables), Some(1_999_999_999_998));
        let first: Vec<String> = combinations(&variables)
            .take(3)
            .map(|combination| substitute_text("{n}{s}", &combination))
            .collect();
        assert_eq!(first, ["1A", "1B", "2A"]);
        let beyond = [range("a", 0, i64::MAX - 1), range("b", 0, 3)];
        assert_eq!(count(&beyond), None);
    }

    #[test]
    fn combinations_run_first_variable_slowest() {
        let variables = [listed("s", &["A", "B"]), range("n", 1, 3)];
        let names: Vec<String> = combinations(&variables)
            .map(|combination| substitute_text("{s}{n}", &combination))
            .collect();
        assert_eq!(names, ["A1", "A2", "A3", "B1", "B2", "B3"]);
        assert_eq!(combinations(&[]).count(), 1);
    }

    #[test]
    fn exclusions_are_counted_exactly_without_walking_the_grid() {
        let variables = [
            listed("source", &["A", "B"]),
            listed("target", &["A", "B"]),
            range("n", 1, 7),
        ];
        let entry = |pairs: &[(&str, Value)]| {
            let map: Map<String, Value> = pairs
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect();
            Exclusion::new(&variables, &map)
        };
        let exclusions = [
            entry(&[("source", "A".into()), ("target", "A".into())]),
            entry(&[("source", "B".into()), ("target", "B".into())]),
            entry(&[("n", 3.into())]),
            entry(&[("n", "3".into()), ("source", "A".into())]),
            entry(&[("colour", "red".into())]),
        ];
        let walked = combinations(&variables)
            .filter(|combination| !exclusions.iter().any(|entry| entry.removes(combination)))
            .count() as u64;
        assert_eq!(walked, 12);
        assert_eq!(count_kept(&variables, &exclusions), Some(walked));
    }

    #[test]
    fn mentions_find_the_variables_a_value_uses() {
        let variables = [listed("s", &["A"]), range("n", 1, 2)];
        assert_eq!(mentions(&Value::from("x{n}"), &variables), vec![1]);
        assert_eq!(
            mentions(&serde_json::json!(["{s}", {"k": "{n}{n}"}]), &variables),
            vec![0, 1]
        );
        assert!(mentions(&Value::from("{other}"), &variables).is_empty());
    }

    #[test]
    fn whole_string_placeholders_keep_the_type() {
        let variables = [range("n", 3, 3)];
        let combination = combinations(&variables).next().unwrap();
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
        let variables = [range("n", 3, 3), listed("s", &["{n}"])];
        let combination = combinations(&variables).next().unwrap();
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
        assert!(wildcard_matches("é*", "éa"));
        assert!(!wildcard_matches("?", "éa"));
    }
}
