//! Finding nodes by name and by pattern in time that does not grow with the pipeline: a hash
//! table of positions for names, and for patterns (`eval_*`, `*_s3`) the names sorted by their
//! start and by their end, so a pattern looks only at the names that share its fixed start or
//! end instead of at every node.

use std::cmp::Ordering;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::matrix::wildcard_matches;

/// Positions of node names, hashed by the name they point at (the names themselves are not
/// copied).
#[derive(Clone, Default)]
pub struct NameIndex {
    table: HashTable<usize>,
    hasher: DefaultHashBuilder,
}

impl std::fmt::Debug for NameIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "NameIndex({} names)", self.table.len())
    }
}

impl NameIndex {
    /// The position of `name`, where `name_at` gives the name at a position.
    pub fn get<'n>(&self, name: &str, name_at: impl Fn(usize) -> &'n str) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&position| name_at(position) == name)
            .copied()
    }

    /// Adds `position`, whose name is `name`; `name_at` gives the names of the others.
    pub fn insert<'n>(&mut self, name: &str, position: usize, name_at: impl Fn(usize) -> &'n str) {
        let hasher = &self.hasher;
        let hash = hasher.hash_one(name);
        self.table
            .insert_unique(hash, position, |&other| hasher.hash_one(name_at(other)));
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Node names sorted by their start and by their end, made when the first pattern asks.
pub struct PatternIndex<'n> {
    names: &'n [&'n str],
    by_start: Option<Vec<usize>>,
    by_end: Option<Vec<usize>>,
}

fn reversed_cmp(a: &str, b: &str) -> Ordering {
    a.bytes().rev().cmp(b.bytes().rev())
}

/// The positions in `sorted` whose names begin (or, `from_end`, end) with `fixed`.
fn range_of<'s>(sorted: &'s [usize], names: &[&str], fixed: &str, from_end: bool) -> &'s [usize] {
    let has_fixed = |name: &str| {
        if from_end {
            name.ends_with(fixed)
        } else {
            name.starts_with(fixed)
        }
    };
    let before = |name: &str| {
        let order = if from_end {
            reversed_cmp(name, fixed)
        } else {
            name.cmp(fixed)
        };
        order == Ordering::Less && !has_fixed(name)
    };
    let start = sorted.partition_point(|&position| before(names[position]));
    let length = sorted[start..].partition_point(|&position| has_fixed(names[position]));
    &sorted[start..start + length]
}

impl<'n> PatternIndex<'n> {
    pub fn new(names: &'n [&'n str]) -> PatternIndex<'n> {
        PatternIndex {
            names,
            by_start: None,
            by_end: None,
        }
    }

    /// The positions of the names `pattern` matches, in declaration order.
    pub fn matches(&mut self, pattern: &str) -> Vec<usize> {
        let wild = |character: char| character == '*' || character == '?';
        let start = &pattern[..pattern.find(wild).unwrap_or(pattern.len())];
        let end = &pattern[pattern.rfind(wild).map_or(pattern.len(), |index| index + 1)..];
        let names = self.names;
        let mut candidates: Option<&[usize]> = None;
        if !start.is_empty() {
            let sorted = self.by_start.get_or_insert_with(|| {
                let mut sorted: Vec<usize> = (0..names.len()).collect();
                sorted.sort_unstable_by(|a, b| names[*a].cmp(names[*b]));
                sorted
            });
            candidates = Some(range_of(sorted, names, start, false));
        }
        if !end.is_empty() {
            let sorted = self.by_end.get_or_insert_with(|| {
                let mut sorted: Vec<usize> = (0..names.len()).collect();
                sorted.sort_unstable_by(|a, b| reversed_cmp(names[*a], names[*b]));
                sorted
            });
            let by_end = range_of(sorted, names, end, true);
            if candidates.is_none_or(|by_start| by_end.len() < by_start.len()) {
                candidates = Some(by_end);
            }
        }
        let mut matched: Vec<usize> = match candidates {
            Some(candidates) => candidates
                .iter()
                .copied()
                .filter(|&position| wildcard_matches(pattern, names[position]))
                .collect(),
            // No fixed start or end (`*x*`): every name is a candidate.
            None => (0..names.len())
                .filter(|&position| wildcard_matches(pattern, names[position]))
                .collect(),
        };
        matched.sort_unstable();
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_by_position() {
        let names = ["a", "b", "c"];
        let mut index = NameIndex::default();
        for (position, name) in names.iter().enumerate() {
            index.insert(name, position, |other| names[other]);
        }
        assert_eq!(index.get("b", |other| names[other]), Some(1));
        assert_eq!(index.get("d", |other| names[other]), None);
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn patterns_match_what_a_scan_matches_in_declaration_order() {
        let names = [
            "n10_1", "n1_2", "eval_b", "n1_1", "group1", "eval_a", "n2_1", "x_s3", "y_s13", "n1_",
        ];
        let mut index = PatternIndex::new(&names);
        for pattern in [
            "n1_*", "eval_*", "*_s3", "*1", "n?_1", "*", "*_*", "group*", "zzz*", "*q", "n1*1",
        ] {
            let scanned: Vec<usize> = (0..names.len())
                .filter(|&position| wildcard_matches(pattern, names[position]))
                .collect();
            assert_eq!(index.matches(pattern), scanned, "pattern {pattern}");
        }
    }
}
