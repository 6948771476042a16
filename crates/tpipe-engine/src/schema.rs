//! What a node kind accepts: its parameters (with types and defaults) and its input slots.
//! The spec layer validates YAML against these; the key layer hashes the normalised values.

use serde_json::Value;

/// The type of one parameter. Values are normalised to a canonical JSON form, so `lr: 1` and
/// `lr: 1.0` give the same key for a float parameter.
#[derive(Clone, Debug)]
pub enum ParamType {
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    Bool,
    Text,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    List(Box<ParamType>),
    /// Any YAML value, checked by the kind itself (see `NodeKind::check`).
    Any,
}

impl ParamType {
    pub fn int() -> ParamType {
        ParamType::Int {
            min: None,
            max: None,
        }
    }
    pub fn int_range(min: i64, max: i64) -> ParamType {
        ParamType::Int {
            min: Some(min),
            max: Some(max),
        }
    }
    pub fn int_at_least(min: i64) -> ParamType {
        ParamType::Int {
            min: Some(min),
            max: None,
        }
    }
    pub fn float() -> ParamType {
        ParamType::Float {
            min: None,
            max: None,
        }
    }
    pub fn float_at_least(min: f64) -> ParamType {
        ParamType::Float {
            min: Some(min),
            max: None,
        }
    }
    pub fn list_of(item: ParamType) -> ParamType {
        ParamType::List(Box::new(item))
    }

    /// A short description for diagnostics: "an integer from 1 to 7".
    pub fn describe(&self) -> String {
        match self {
            ParamType::Int {
                min: Some(min),
                max: Some(max),
            } => {
                format!("an integer from {min} to {max}")
            }
            ParamType::Int {
                min: Some(min),
                max: None,
            } => format!("an integer ≥ {min}"),
            ParamType::Int {
                min: None,
                max: Some(max),
            } => format!("an integer ≤ {max}"),
            ParamType::Int { .. } => "an integer".to_string(),
            ParamType::Float { min: Some(min), .. } => format!("a number ≥ {min}"),
            ParamType::Float { .. } => "a number".to_string(),
            ParamType::Bool => "true or false".to_string(),
            ParamType::Text => "a string".to_string(),
            ParamType::Choice(words) => format!(
                "one of {}",
                words
                    .iter()
                    .map(|word| format!("`{word}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ParamType::List(item) => format!("a list of {}", item.describe_plural()),
            ParamType::Any => "any value".to_string(),
        }
    }

    fn describe_plural(&self) -> String {
        match self {
            ParamType::Int { .. } => "integers".to_string(),
            ParamType::Float { .. } => "numbers".to_string(),
            ParamType::Text => "strings".to_string(),
            other => format!("({})", other.describe()),
        }
    }

    /// Checks a value and returns its canonical form, or what was expected instead.
    pub fn normalise(&self, value: &Value) -> Result<Value, ValueProblem> {
        let wrong = || {
            Err(ValueProblem::Expected {
                expected: self.describe(),
                found: show_value(value),
            })
        };
        match self {
            ParamType::Int { min, max } => {
                let Some(number) = value.as_i64().or_else(|| {
                    value
                        .as_f64()
                        .filter(|float| float.fract() == 0.0)
                        .map(|float| float as i64)
                }) else {
                    return wrong();
                };
                if min.is_some_and(|min| number < min) || max.is_some_and(|max| number > max) {
                    return wrong();
                }
                Ok(Value::from(number))
            }
            ParamType::Float { min, max } => {
                let Some(number) = value.as_f64() else {
                    return wrong();
                };
                if !number.is_finite()
                    || min.is_some_and(|min| number < min)
                    || max.is_some_and(|max| number > max)
                {
                    return wrong();
                }
                Ok(Value::from(number))
            }
            ParamType::Bool => match value {
                Value::Bool(_) => Ok(value.clone()),
                _ => wrong(),
            },
            ParamType::Text => match value {
                Value::String(_) => Ok(value.clone()),
                // Numbers are accepted as text: `classes: [0, 1]` and `name: 7` read naturally.
                Value::Number(number) => Ok(Value::String(number.to_string())),
                _ => wrong(),
            },
            ParamType::Choice(words) => match value {
                Value::String(text) if words.contains(&text.as_str()) => Ok(value.clone()),
                Value::String(text) => Err(ValueProblem::NotAChoice {
                    expected: self.describe(),
                    found: text.clone(),
                    nearest: nearest_name(text, words.iter().copied()),
                }),
                _ => wrong(),
            },
            ParamType::List(item) => match value {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(index, element)| {
                        item.normalise(element)
                            .map_err(|problem| ValueProblem::Item {
                                index,
                                problem: Box::new(problem),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
                _ => wrong(),
            },
            ParamType::Any => Ok(value.clone()),
        }
    }
}

/// Why a value does not fit a parameter's type, as the diagnostic says it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ValueProblem {
    #[error("expected {expected}, found {found}")]
    Expected { expected: String, found: String },
    /// A word outside a [`ParamType::Choice`], with the nearest valid one if it is a likely typo.
    #[error(
        "expected {expected}, found `{found}`{}",
        .nearest.map(|nearest| format!(" (hint: did you mean `{nearest}`?)")).unwrap_or_default()
    )]
    NotAChoice {
        expected: String,
        found: String,
        nearest: Option<&'static str>,
    },
    #[error("item {index}: {problem}")]
    Item {
        index: usize,
        problem: Box<ValueProblem>,
    },
}

impl ValueProblem {
    /// What was expected, without the value found: the same for every node of a matrix that
    /// gets this parameter wrong.
    pub fn expectation(&self) -> String {
        match self {
            ValueProblem::Expected { expected, .. } | ValueProblem::NotAChoice { expected, .. } => {
                format!("expected {expected}")
            }
            ValueProblem::Item { index, problem } => {
                format!("item {index}: {}", problem.expectation())
            }
        }
    }

    /// The value found instead, as the message shows it.
    pub fn found(&self) -> String {
        match self {
            ValueProblem::Expected { found, .. } => found.clone(),
            ValueProblem::NotAChoice { found, .. } => format!("`{found}`"),
            ValueProblem::Item { problem, .. } => problem.found(),
        }
    }
}

/// A value as a user would recognise it in their YAML.
pub fn show_value(value: &Value) -> String {
    match value {
        Value::String(text) => format!("`{text}`"),
        Value::Null => "nothing".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
        other => format!("`{other}`"),
    }
}

/// The closest candidate by edit distance, if it is close enough to be a plausible typo.
pub fn nearest_name<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(wanted, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(wanted.len().min(candidate.len()) / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// One parameter of a kind.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    /// `None` means the parameter is required.
    pub default: Option<Value>,
    pub doc: &'static str,
    /// Whether the value is part of the node's key. Paths to data are not (their *content* is,
    /// through external inputs), nor is the backend (a GPU-trained net serves CPU users).
    pub in_key: bool,
}

impl ParamSpec {
    pub fn required(name: &'static str, ty: ParamType, doc: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            default: None,
            doc,
            in_key: true,
        }
    }
    pub fn optional(
        name: &'static str,
        ty: ParamType,
        default: impl Into<Value>,
        doc: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            name,
            ty,
            default: Some(default.into()),
            doc,
            in_key: true,
        }
    }
    /// Marks the parameter as not part of the key.
    pub fn not_in_key(mut self) -> ParamSpec {
        self.in_key = false;
        self
    }
}

/// How many nodes an input slot takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    One,
    Optional,
    /// A list of references; each may be a glob such as `eval_*`.
    Many,
}

/// One named input of a kind (`data`, `base`, `model`, …).
#[derive(Clone, Debug)]
pub struct InputSlot {
    pub name: &'static str,
    pub arity: Arity,
    /// Kinds accepted here; empty means any.
    pub accepts: &'static [&'static str],
    pub doc: &'static str,
    /// The outputs of each input node that the build reads; empty means all of them. Only
    /// these outputs' digests go into the key, and only these can be read: a dependent does not
    /// rerun when an output it never reads changes (a split's label, say).
    pub reads: &'static [&'static str],
    /// Whether the build sees the input nodes' names (a report labels its rows with them).
    /// Then the names are part of the key, so renaming a node reruns what shows its name.
    pub names_in_key: bool,
}

/// Where a kind's parameters are read from: a map (an action's), or a node's parameters as the
/// spec layer keeps them (those its block shares and its own).
pub trait ParamSource {
    fn param(&self, name: &str) -> Option<&Value>;
}

impl ParamSource for serde_json::Map<String, Value> {
    fn param(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A kind's parameters as one typed struct: what its build reads (deserialised from the
/// validated, defaulted parameter map) and, from the same declaration, its schema. Declare it
/// with [`kind_params!`](crate::kind_params).
pub trait Params: serde::de::DeserializeOwned {
    /// The schema: each parameter's type, default, documentation and whether it is in the key.
    fn specs() -> Vec<ParamSpec>;

    /// Reads parameters that the spec layer validated against [`Params::specs`], each field
    /// from its value in place (validation reads every node's parameters: no copy, no
    /// intermediate map). A failure here means the declaration and the struct disagree, a bug
    /// in the kind.
    fn from_source(params: &dyn ParamSource) -> Result<Self, ParamsError>;

    /// [`Params::from_source`] of a map.
    fn from_map(params: &serde_json::Map<String, Value>) -> Result<Self, ParamsError> {
        Self::from_source(params)
    }
}

/// Reads parameter `name` into its Rust type (a missing one as `null`, which only an `Option`
/// takes).
pub fn read_param<T: serde::de::DeserializeOwned>(
    params: &dyn ParamSource,
    name: &str,
) -> Result<T, ParamsError> {
    let value = params.param(name).unwrap_or(&Value::Null);
    T::deserialize(value).map_err(|source| ParamsError {
        source: serde::de::Error::custom(format_args!("parameter `{name}`: {source}")),
    })
}

/// Validated parameters that do not deserialise into the kind's struct.
#[derive(Debug, thiserror::Error)]
#[error("the parameters do not fit the kind's declaration: {source}")]
pub struct ParamsError {
    #[from]
    source: serde_json::Error,
}

/// A closed set of words as a Rust enum: the parameter type lists [`Choice::WORDS`], and the
/// build matches on the variants, so no word can fall through to a silent default.
pub trait Choice {
    const WORDS: &'static [&'static str];
}

/// Declares an enum of words for a [`ParamType::Choice`] parameter.
///
/// ```ignore
/// choice_enum! { pub enum Task { A = "A", B = "B" } }
/// ```
#[macro_export]
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($variant:ident = $word:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
        $vis enum $name {
            $(#[serde(rename = $word)] $variant,)+
        }
        impl $crate::schema::Choice for $name {
            const WORDS: &'static [&'static str] = &[$($word),+];
        }
        impl $name {
            /// Every value, in the order declared.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word the YAML uses for this value.
            pub fn word(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }
    };
}

/// Declares a kind's parameters once: a struct the hooks read and, from the same lines, its
/// [`ParamSpec`]s. The struct serialises back to the parameter map it was read from, so a
/// check can compare it with another node's parameters by name. Each field gives its Rust type, then `ty` (the YAML type and its bounds),
/// an optional `default` (absent: required), `doc`, and `in_key: false` for parameters that
/// choose how or where but not what (paths, backend). A first line `..name: Group,` flattens
/// the fields of another declared group in (shared by several kinds).
///
/// ```ignore
/// kind_params! {
///     pub struct NumberParams {
///         value: i64 { ty: ParamType::int(), doc: "the number" },
///         log: String { ty: ParamType::Text, default: "", doc: "build log", in_key: false },
///     }
/// }
/// ```
#[macro_export]
macro_rules! kind_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(.. $group_field:ident : $group_ty:ty,)*
            $(
                $field:ident : $field_ty:ty {
                    ty: $param_ty:expr,
                    $(default: $default:expr,)?
                    doc: $doc:expr
                    $(, in_key: $in_key:expr)?
                    $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
        $vis struct $name {
            $(#[serde(flatten)] pub $group_field: $group_ty,)*
            $(pub $field: $field_ty,)*
        }
        impl $crate::schema::Params for $name {
            #[allow(clippy::vec_init_then_push)]
            fn specs() -> Vec<$crate::schema::ParamSpec> {
                #[allow(unused_mut)]
                let mut specs: Vec<$crate::schema::ParamSpec> = Vec::new();
                $(specs.extend(<$group_ty as $crate::schema::Params>::specs());)*
                $(
                    specs.push($crate::schema::ParamSpec {
                        name: stringify!($field),
                        ty: $param_ty,
                        default: $crate::kind_params!(@default $($default)?),
                        doc: $doc,
                        in_key: $crate::kind_params!(@in_key $($in_key)?),
                    });
                )*
                specs
            }

            fn from_source(
                params: &dyn $crate::schema::ParamSource,
            ) -> Result<Self, $crate::schema::ParamsError> {
                Ok($name {
                    $($group_field: <$group_ty as $crate::schema::Params>::from_source(params)?,)*
                    $($field: $crate::schema::read_param(params, stringify!($field))?,)*
                })
            }
        }
    };
    (@default) => { None };
    (@default $default:expr) => { Some($crate::schema::__json!($default)) };
    (@in_key) => { true };
    (@in_key $in_key:expr) => { $in_key };
}

#[doc(hidden)]
pub use serde_json::json as __json;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    crate::choice_enum! {
        enum Colour { Red = "red", Blue = "blue" }
    }

    crate::kind_params! {
        struct Shared {
            seed: u64 { ty: ParamType::int_at_least(0), default: 7, doc: "a seed" },
        }
    }

    crate::kind_params! {
        struct Example {
            ..shared: Shared,
            count: usize { ty: ParamType::int_at_least(1), doc: "required" },
            colour: Colour { ty: ParamType::Choice(Colour::WORDS), default: "blue", doc: "a word" },
            path: String { ty: ParamType::Text, default: "", doc: "where", in_key: false },
        }
    }

    #[test]
    fn one_declaration_gives_the_schema_and_the_struct() {
        let specs = Example::specs();
        let described: Vec<(&str, Option<Value>, bool)> = specs
            .iter()
            .map(|spec| (spec.name, spec.default.clone(), spec.in_key))
            .collect();
        assert_eq!(
            described,
            vec![
                ("seed", Some(json!(7)), true),
                ("count", None, true),
                ("colour", Some(json!("blue")), true),
                ("path", Some(json!("")), false),
            ]
        );
        let params = json!({ "seed": 3, "count": 2, "colour": "red", "path": "x" });
        let typed = Example::from_map(params.as_object().unwrap()).unwrap();
        assert_eq!(
            (
                typed.shared.seed,
                typed.count,
                typed.colour,
                typed.path.as_str()
            ),
            (3, 2, Colour::Red, "x")
        );
        assert_eq!(Colour::Red.word(), "red");
        let wrong = json!({ "seed": 3, "count": 2, "colour": "green", "path": "x" });
        assert!(Example::from_map(wrong.as_object().unwrap()).is_err());
    }
}
