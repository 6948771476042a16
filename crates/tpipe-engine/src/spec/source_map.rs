//! Line and column of every key and value in a YAML text.
//!
//! serde_yaml gives values without positions, so the text is parsed a second time with
//! yaml-rust2's event parser, which marks each event. Positions are indexed by the path from
//! the document root (`nodes` → `baseA` → `lr`), which is how the spec layer refers to them.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A position in the pipeline file; both numbers start at 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

pub type YamlPath = Vec<PathSegment>;

/// Builds a path from string keys: `path(&["nodes", "baseA"])`.
pub fn path(keys: &[&str]) -> YamlPath {
    keys.iter()
        .map(|key| PathSegment::Key(key.to_string()))
        .collect()
}

#[derive(Default, Debug)]
pub struct SourceMap {
    keys: HashMap<YamlPath, Location>,
    values: HashMap<YamlPath, Location>,
}

impl SourceMap {
    /// Indexes `text`. A text that does not parse yields an empty map: serde_yaml reports the
    /// syntax error with its own position.
    pub fn index(text: &str) -> SourceMap {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return SourceMap::default();
        }
        builder.map
    }

    /// Where the key that ends `path` is written (falls back to its value, then to the parent).
    pub fn key(&self, path: &[PathSegment]) -> Location {
        self.keys
            .get(path)
            .copied()
            .unwrap_or_else(|| self.value(path))
    }

    /// Where the value at `path` starts (falls back to the nearest ancestor that is known).
    pub fn value(&self, path: &[PathSegment]) -> Location {
        if let Some(location) = self.values.get(path) {
            return *location;
        }
        // For an ancestor, its key is the better anchor: block collections are marked where
        // the parser noticed them, which can be past their first key.
        let mut prefix = path;
        loop {
            if let Some(location) = self.keys.get(prefix).or_else(|| self.values.get(prefix)) {
                return *location;
            }
            match prefix.split_last() {
                Some((_, rest)) => prefix = rest,
                None => return Location { line: 1, column: 1 },
            }
        }
    }
}

enum Frame {
    Mapping {
        pending_key: Option<String>,
        expecting_key: bool,
    },
    Sequence {
        next_index: usize,
    },
}

#[derive(Default)]
struct Builder {
    map: SourceMap,
    stack: Vec<Frame>,
    path: YamlPath,
}

impl Builder {
    fn location(mark: Marker) -> Location {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Location {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }

    /// Called when a value (scalar, alias or the start of a collection) begins; returns the path
    /// of that value.
    fn begin_value(&mut self) -> Option<YamlPath> {
        match self.stack.last_mut() {
            None => Some(Vec::new()),
            Some(Frame::Sequence { next_index }) => {
                let mut value_path = self.path.clone();
                value_path.push(PathSegment::Index(*next_index));
                *next_index += 1;
                Some(value_path)
            }
            Some(Frame::Mapping {
                pending_key,
                expecting_key,
            }) => {
                let key = pending_key.take()?;
                *expecting_key = true;
                let mut value_path = self.path.clone();
                value_path.push(PathSegment::Key(key));
                Some(value_path)
            }
        }
    }

    fn is_key_position(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Mapping {
                expecting_key: true,
                ..
            })
        )
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let location = Builder::location(mark);
        match event {
            Event::Scalar(text, ..) if self.is_key_position() => {
                let mut key_path = self.path.clone();
                key_path.push(PathSegment::Key(text.clone()));
                self.map.keys.entry(key_path).or_insert(location);
                if let Some(Frame::Mapping {
                    pending_key,
                    expecting_key,
                }) = self.stack.last_mut()
                {
                    *pending_key = Some(text);
                    *expecting_key = false;
                }
            }
            Event::Scalar(..) | Event::Alias(_) => {
                if let Some(value_path) = self.begin_value() {
                    self.map.values.entry(value_path).or_insert(location);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_complex_key = self.is_key_position();
                let value_path = if is_complex_key {
                    None
                } else {
                    self.begin_value()
                };
                let value_path = value_path.unwrap_or_else(|| {
                    // A collection used as a key: give it a path nobody asks for.
                    let mut odd = self.path.clone();
                    odd.push(PathSegment::Key(String::from("\u{0}complex-key")));
                    odd
                });
                self.map
                    .values
                    .entry(value_path.clone())
                    .or_insert(location);
                self.path = value_path;
                self.stack
                    .push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Mapping {
                            pending_key: None,
                            expecting_key: true,
                        }
                    } else {
                        Frame::Sequence { next_index: 0 }
                    });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.path.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values_in_nested_mappings_and_lists() {
        let text = "nodes:\n  baseA:\n    kind: train\n    lr: 0.1\n  list:\n    - a\n    - b\n";
        let map = SourceMap::index(text);
        assert_eq!(
            map.key(&path(&["nodes", "baseA"])),
            Location { line: 2, column: 3 }
        );
        assert_eq!(
            map.key(&path(&["nodes", "baseA", "lr"])),
            Location { line: 4, column: 5 }
        );
        assert_eq!(
            map.value(&path(&["nodes", "baseA", "lr"])),
            Location { line: 4, column: 9 }
        );
        let mut second = path(&["nodes", "list"]);
        second.push(PathSegment::Index(1));
        assert_eq!(map.value(&second), Location { line: 7, column: 7 });
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_ancestor() {
        let map = SourceMap::index("nodes:\n  a:\n    kind: x\n");
        assert_eq!(
            map.value(&path(&["nodes", "a", "missing"])),
            Location { line: 2, column: 3 }
        );
    }
}
