//! The pipeline as a petgraph DAG. Knows nothing of YAML, hashing or training: only node names,
//! kinds and which node reads which.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fmt::Write;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::spec::{Diagnostic, NodeGroup, Pipeline, SpecErrors};

/// Edges point from an input to the node that reads it; weights are the slot's place among the
/// reading node's inputs. Node `i` of the graph is node `i` of the pipeline.
pub struct PipelineGraph {
    graph: DiGraph<usize, u16>,
    /// Indices into `Pipeline::nodes`, dependencies first.
    order: Vec<usize>,
}

impl PipelineGraph {
    /// Builds the graph; a cycle is an error that names the whole path.
    pub fn build(pipeline: &Pipeline) -> Result<PipelineGraph, SpecErrors> {
        let edges: usize = pipeline
            .nodes
            .iter()
            .map(|node| node.inputs.values().map(Vec::len).sum::<usize>())
            .sum();
        let mut graph = DiGraph::with_capacity(pipeline.nodes.len(), edges);
        for position in 0..pipeline.nodes.len() {
            graph.add_node(position);
        }
        for (position, node) in pipeline.nodes.iter().enumerate() {
            for (slot, sources) in node.inputs.values().enumerate() {
                for source in sources {
                    let source = pipeline
                        .position_of(source)
                        .expect("the spec layer only admits known inputs");
                    graph.add_edge(
                        NodeIndex::new(source),
                        NodeIndex::new(position),
                        slot as u16,
                    );
                }
            }
        }
        let order = declaration_order(&graph);
        if order.len() < pipeline.nodes.len() {
            return Err(SpecErrors {
                diagnostics: cycle_diagnostics(pipeline, &graph),
            });
        }
        Ok(PipelineGraph { order, graph })
    }

    /// Node positions (into `Pipeline::nodes`), each after everything it reads.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Positions of the nodes that `position` reads directly.
    pub fn dependencies(&self, _pipeline: &Pipeline, position: usize) -> Vec<usize> {
        self.neighbours(position, Direction::Incoming)
    }

    /// Positions of the nodes that read `position` directly.
    pub fn dependents(&self, _pipeline: &Pipeline, position: usize) -> Vec<usize> {
        self.neighbours(position, Direction::Outgoing)
    }

    fn neighbours(&self, position: usize, direction: Direction) -> Vec<usize> {
        let mut found: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(position), direction)
            .map(|other| self.graph[other])
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// How many nodes read `position` directly.
    pub fn dependent_count(&self, position: usize) -> usize {
        let mut readers: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(NodeIndex::new(position), Direction::Outgoing)
            .collect();
        // A node reading another through two slots counts once.
        readers.sort_unstable();
        readers.dedup();
        readers.len()
    }

    /// `targets` and everything they need, as positions.
    pub fn closure(&self, pipeline: &Pipeline, targets: &[usize]) -> BTreeSet<usize> {
        let mut needed = BTreeSet::new();
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(position) = stack.pop() {
            if needed.insert(position) {
                stack.extend(self.dependencies(pipeline, position));
            }
        }
        needed
    }

    /// The name of the slot an edge enters its reading node by.
    fn slot_name<'p>(&self, pipeline: &'p Pipeline, edge: &petgraph::graph::Edge<u16>) -> &'p str {
        let reader = &pipeline.nodes[self.graph[edge.target()]];
        reader
            .inputs
            .keys()
            .nth(usize::from(edge.weight))
            .unwrap_or_default()
    }

    pub fn render_text(&self, pipeline: &Pipeline) -> String {
        let mut text = String::new();
        for &position in &self.order {
            let node = &pipeline.nodes[position];
            let _ = write!(text, "{} ({})", node.name, node.kind);
            // Long lists (a report reading every evaluation) are shortened to stay readable.
            let inputs: Vec<String> = node
                .inputs
                .iter()
                .map(|(slot, sources)| match sources.len() {
                    0..=3 => sources
                        .iter()
                        .map(|source| format!("{slot}={source}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    count => format!(
                        "{slot}=[{}, {}, … {} more]",
                        sources[0],
                        sources[1],
                        count - 2
                    ),
                })
                .collect();
            if !inputs.is_empty() {
                let _ = write!(text, " <- {}", inputs.join(", "));
            }
            let readers = self.dependent_count(position);
            if readers > 1 {
                let _ = write!(text, "  [shared by {readers} nodes]");
            }
            text.push('\n');
        }
        text
    }

    pub fn render_dot(&self, pipeline: &Pipeline) -> String {
        let mut text = String::from(
            "digraph pipeline {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
        );
        for &position in &self.order {
            let node = &pipeline.nodes[position];
            let _ = writeln!(
                text,
                "  \"{}\" [label=\"{}\\n({})\"];",
                node.name, node.name, node.kind
            );
        }
        for edge in self.graph.raw_edges() {
            let source = &pipeline.nodes[self.graph[edge.source()]].name;
            let target = &pipeline.nodes[self.graph[edge.target()]].name;
            let _ = writeln!(
                text,
                "  \"{source}\" -> \"{target}\" [label=\"{}\"];",
                self.slot_name(pipeline, edge)
            );
        }
        text.push_str("}\n");
        text
    }

    pub fn render_mermaid(&self, pipeline: &Pipeline) -> String {
        // Mermaid ids cannot hold `+` and similar, so nodes get numbered ids with labels.
        let mut text = String::from("flowchart LR\n");
        for &position in &self.order {
            let node = &pipeline.nodes[position];
            let _ = writeln!(text, "  n{position}[\"{} ({})\"]", node.name, node.kind);
        }
        for edge in self.graph.raw_edges() {
            let _ = writeln!(
                text,
                "  n{} -->|{}| n{}",
                self.graph[edge.source()],
                self.slot_name(pipeline, edge),
                self.graph[edge.target()]
            );
        }
        text
    }
}

/// A topological order that keeps the file's order wherever dependencies allow (Kahn's
/// algorithm, always taking the earliest-declared ready node), so output reads like the YAML.
/// Shorter than the graph when it has a cycle.
fn declaration_order(graph: &DiGraph<usize, u16>) -> Vec<usize> {
    let mut waiting: Vec<usize> = graph
        .node_indices()
        .map(|index| graph.neighbors_directed(index, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, count)| **count == 0)
        .map(|(position, _)| Reverse(position))
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some(Reverse(position)) = ready.pop() {
        order.push(position);
        for next in graph.neighbors_directed(NodeIndex::new(position), Direction::Outgoing) {
            let count = &mut waiting[next.index()];
            *count -= 1;
            if *count == 0 {
                ready.push(Reverse(next.index()));
            }
        }
    }
    order
}

/// How many names of a long cycle its diagnostic shows before the last.
const CYCLE_NAMES_SHOWN: usize = 10;

/// One diagnostic per cycle, and one per place for the cycles of a matrix block's nodes (each
/// reading itself, say), with how many there are.
fn cycle_diagnostics(pipeline: &Pipeline, graph: &DiGraph<usize, u16>) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut at_location: HashMap<crate::spec::source_map::Location, usize> = HashMap::new();
    for component in tarjan_scc(graph) {
        let has_self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !has_self_loop {
            continue;
        }
        // Walk the cycle from its first-declared node, staying inside the component.
        let start = *component.iter().min_by_key(|index| graph[**index]).unwrap();
        let first = &pipeline.nodes[graph[start]];
        if let Some(&index) = at_location.get(&first.location) {
            let diagnostic = &mut diagnostics[index];
            let first_name = diagnostic.node.clone().unwrap_or_default();
            let group = diagnostic.nodes.get_or_insert_with(|| NodeGroup {
                count: 1,
                block: first.block.to_string(),
                first: vec![first_name],
            });
            group.count += 1;
            if group.first.len() < crate::spec::diagnostic::NODES_SHOWN {
                group.first.push(first.name.clone());
            }
            continue;
        }
        let in_component: HashSet<NodeIndex> = component.iter().copied().collect();
        let mut on_path: HashSet<NodeIndex> = HashSet::from([start]);
        let mut path = vec![start];
        let mut current = start;
        loop {
            let next = graph
                .neighbors_directed(current, Direction::Outgoing)
                .filter(|next| in_component.contains(next))
                .min_by_key(|next| {
                    if *next == start {
                        0
                    } else if on_path.contains(next) {
                        usize::MAX
                    } else {
                        graph[*next] + 1
                    }
                })
                .expect("every node of a cycle has a successor in it");
            path.push(next);
            on_path.insert(next);
            if next == start || path.len() > component.len() + 1 {
                break;
            }
            current = next;
        }
        let mut names: Vec<String> = path
            .iter()
            .map(|index| pipeline.nodes[graph[*index]].name.clone())
            .collect();
        // A cycle through thousands of nodes is shown by its start and its end.
        if names.len() > CYCLE_NAMES_SHOWN + 2 {
            let left_out = names.len() - CYCLE_NAMES_SHOWN - 1;
            let last = names.pop().expect("a cycle has nodes");
            names.truncate(CYCLE_NAMES_SHOWN);
            names.push(format!(
                "… ({} more)",
                crate::spec::diagnostic::with_thousands(left_out as u64)
            ));
            names.push(last);
        }
        at_location.insert(first.location, diagnostics.len());
        diagnostics.push(Diagnostic {
            file: pipeline.file.clone(),
            location: first.location,
            node: Some(first.name.clone()),
            message: format!(
                "node `{}` has a circular dependency `{}`",
                first.name,
                names.join(" -> ")
            ),
            hint: Some("a node cannot read its own output, directly or through others".into()),
            source_line: pipeline.source_line(first.location.line),
            nodes: None,
        });
    }
    diagnostics
}
