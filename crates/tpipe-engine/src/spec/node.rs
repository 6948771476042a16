//! What a node holds of its parameters and inputs, in a form that stays small when a block
//! expands to a million nodes: the parameters every node of a block shares are kept once, and
//! each node keeps only its own (the entries that use the matrix); inputs are a short list,
//! not a map.

use std::cmp::Ordering;
use std::iter::Peekable;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::schema::ParamSource;

/// A node's parameters, normalised, with defaults filled in: those its block's nodes share and
/// its own, which take precedence. Read as one map in name order.
#[derive(Clone, Debug)]
pub struct NodeParams {
    shared: Arc<Map<String, Value>>,
    /// Sorted by name.
    own: Arc<[(Arc<str>, Value)]>,
}

impl NodeParams {
    /// `own` must be sorted by name, each name once.
    pub fn new(shared: Arc<Map<String, Value>>, own: Arc<[(Arc<str>, Value)]>) -> NodeParams {
        debug_assert!(own.windows(2).all(|pair| pair[0].0 < pair[1].0));
        NodeParams { shared, own }
    }

    /// Parameters that are all their own (tests, and callers with a plain map).
    pub fn from_map(params: Map<String, Value>) -> NodeParams {
        NodeParams::new(Arc::new(params), Arc::from([]))
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        match self.own.binary_search_by(|(own, _)| (**own).cmp(name)) {
            Ok(index) => Some(&self.own[index].1),
            Err(_) => self.shared.get(name),
        }
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every parameter, in name order.
    pub fn iter(&self) -> ParamsIter<'_> {
        ParamsIter {
            shared: self.shared.iter().peekable(),
            own: self.own.iter().peekable(),
        }
    }

    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }
}

impl PartialEq for NodeParams {
    fn eq(&self, other: &NodeParams) -> bool {
        self.iter().eq(other.iter())
    }
}

impl std::ops::Index<&str> for NodeParams {
    type Output = Value;

    fn index(&self, name: &str) -> &Value {
        self.get(name)
            .unwrap_or_else(|| panic!("no parameter `{name}`"))
    }
}

impl ParamSource for NodeParams {
    fn param(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// The parameters of a [`NodeParams`] in name order, a node's own in place of shared ones.
pub struct ParamsIter<'p> {
    shared: Peekable<serde_json::map::Iter<'p>>,
    own: Peekable<std::slice::Iter<'p, (Arc<str>, Value)>>,
}

impl<'p> Iterator for ParamsIter<'p> {
    type Item = (&'p str, &'p Value);

    fn next(&mut self) -> Option<(&'p str, &'p Value)> {
        let order = match (self.shared.peek(), self.own.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((shared, _)), Some((own, _))) => shared.as_str().cmp(own),
        };
        if order == Ordering::Equal {
            self.shared.next();
        }
        if order == Ordering::Less {
            self.shared
                .next()
                .map(|(name, value)| (name.as_str(), value))
        } else {
            self.own.next().map(|(name, value)| (&**name, value))
        }
    }
}

/// Input slot → the names of the nodes it reads (globs already expanded), in slot order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// Sorted by slot name.
    slots: Vec<(&'static str, Vec<String>)>,
}

impl Inputs {
    /// Sets what `slot` reads.
    pub fn insert(&mut self, slot: &'static str, sources: Vec<String>) {
        match self.slots.binary_search_by(|(name, _)| (*name).cmp(slot)) {
            Ok(index) => self.slots[index].1 = sources,
            Err(index) => self.slots.insert(index, (slot, sources)),
        }
    }

    pub fn get(&self, slot: &str) -> Option<&Vec<String>> {
        self.slots
            .binary_search_by(|(name, _)| (*name).cmp(slot))
            .ok()
            .map(|index| &self.slots[index].1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &'static str> + Clone + '_ {
        self.slots.iter().map(|(slot, _)| *slot)
    }

    pub fn values(&self) -> impl Iterator<Item = &Vec<String>> + Clone {
        self.slots.iter().map(|(_, sources)| sources)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Vec<String>)> + Clone {
        self.slots.iter().map(|(slot, sources)| (*slot, sources))
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl<'a> IntoIterator for &'a Inputs {
    type Item = (&'static str, &'a Vec<String>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (&'static str, Vec<String>)>,
        fn(&'a (&'static str, Vec<String>)) -> (&'static str, &'a Vec<String>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.slots.iter().map(|(slot, sources)| (*slot, sources))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn own_parameters_take_the_place_of_shared_ones_in_name_order() {
        let shared = json!({ "a": 1, "c": 3, "e": 5 });
        let own: Vec<(Arc<str>, Value)> = vec![
            (Arc::from("b"), json!(20)),
            (Arc::from("c"), json!(30)),
            (Arc::from("f"), json!(60)),
        ];
        let params = NodeParams::new(
            Arc::new(shared.as_object().unwrap().clone()),
            Arc::from(own),
        );
        let seen: Vec<(&str, i64)> = params
            .iter()
            .map(|(name, value)| (name, value.as_i64().unwrap()))
            .collect();
        assert_eq!(seen, [("a", 1), ("b", 20), ("c", 30), ("e", 5), ("f", 60)]);
        assert_eq!(params.get("c"), Some(&json!(30)));
        assert_eq!(params["e"], json!(5));
        assert!(params.get("d").is_none());
        let map = params.to_map();
        assert_eq!(NodeParams::from_map(map), params);
    }

    #[test]
    fn inputs_stay_in_slot_order() {
        let mut inputs = Inputs::default();
        inputs.insert("model", vec!["m".into()]);
        inputs.insert("data", vec!["d".into()]);
        assert_eq!(inputs.keys().collect::<Vec<_>>(), ["data", "model"]);
        assert_eq!(inputs.get("model").unwrap(), &["m".to_string()]);
        assert!(inputs.get("base").is_none());
    }
}
