//! The pipeline as a petgraph DAG. Knows nothing of YAML, hashing or training: only node names,
//! kinds and which node reads which.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::fmt::Write;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::spec::{Diagnostic, Pipeline, SpecErrors};

/// Edges point from an input to the node that reads it; weights are slot names.
pub struct PipelineGraph {
    graph: DiGraph<usize, String>,
    /// Indices into `Pipeline::nodes`, dependencies first.
    order: Vec<usize>,
    index_of: HashMap<String, NodeIndex>,
}

impl PipelineGraph {
    /// Builds the graph; a cycle is an error that names the whole path.
    pub fn build(pipeline: &Pipeline) -> Result<PipelineGraph, SpecErrors> {
        let mut graph = DiGraph::new();
        let mut index_of = HashMap::new();
        for (position, node) in pipeline.nodes.iter().enumerate() {
            index_of.insert(node.name.clone(), graph.add_node(position));
        }
        for node in &pipeline.nodes {
            for (slot, sources) in &node.inputs {
                for source in sources {
                    graph.add_edge(index_of[source], index_of[&node.name], slot.clone());
                }
            }
        }
        if toposort(&graph, None).is_err() {
            return Err(SpecErrors {
                diagnostics: cycle_diagnostics(pipeline, &graph),
            });
        }
        let order = declaration_order(&graph);
        Ok(PipelineGraph {
            order,
            graph,
            index_of,
        })
    }

    /// Node positions (into `Pipeline::nodes`), each after everything it reads.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Positions of the nodes that `position` reads directly.
    pub fn dependencies(&self, pipeline: &Pipeline, position: usize) -> Vec<usize> {
        let index = self.index_of[&pipeline.nodes[position].name];
        let mut found: Vec<usize> = self
            .graph
            .neighbors_directed(index, Direction::Incoming)
            .map(|other| self.graph[other])
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Positions of the nodes that read `position` directly.
    pub fn dependents(&self, pipeline: &Pipeline, position: usize) -> Vec<usize> {
        let index = self.index_of[&pipeline.nodes[position].name];
        let mut found: Vec<usize> = self
            .graph
            .neighbors_directed(index, Direction::Outgoing)
            .map(|other| self.graph[other])
            .collect();
        found.sort_unstable();
        found.dedup();
        found
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
            let readers = self.dependents(pipeline, position).len();
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
                edge.weight
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
                edge.weight,
                self.graph[edge.target()]
            );
        }
        text
    }
}

/// A topological order that keeps the file's order wherever dependencies allow (Kahn's
/// algorithm, always taking the earliest-declared ready node), so output reads like the YAML.
fn declaration_order(graph: &DiGraph<usize, String>) -> Vec<usize> {
    let mut waiting: HashMap<NodeIndex, usize> = graph
        .node_indices()
        .map(|index| {
            (
                index,
                graph.neighbors_directed(index, Direction::Incoming).count(),
            )
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<(usize, NodeIndex)>> = waiting
        .iter()
        .filter(|(_, count)| **count == 0)
        .map(|(index, _)| Reverse((graph[*index], *index)))
        .collect();
    let mut order = Vec::with_capacity(graph.node_count());
    while let Some(Reverse((position, index))) = ready.pop() {
        order.push(position);
        for next in graph.neighbors_directed(index, Direction::Outgoing) {
            let count = waiting.get_mut(&next).expect("every node is counted");
            *count -= 1;
            if *count == 0 {
                ready.push(Reverse((graph[next], next)));
            }
        }
    }
    order
}

fn cycle_diagnostics(pipeline: &Pipeline, graph: &DiGraph<usize, String>) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for component in tarjan_scc(graph) {
        let has_self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !has_self_loop {
            continue;
        }
        // Walk the cycle from its first-declared node, staying inside the component.
        let start = *component.iter().min_by_key(|index| graph[**index]).unwrap();
        let mut path = vec![start];
        let mut current = start;
        loop {
            let next = graph
                .neighbors_directed(current, Direction::Outgoing)
                .filter(|next| component.contains(next))
                .min_by_key(|next| {
                    if *next == start {
                        0
                    } else if path.contains(next) {
                        usize::MAX
                    } else {
                        graph[*next] + 1
                    }
                })
                .expect("every node of a cycle has a successor in it");
            path.push(next);
            if next == start || path.len() > component.len() + 1 {
                break;
            }
            current = next;
        }
        let names: Vec<&str> = path
            .iter()
            .map(|index| pipeline.nodes[graph[*index]].name.as_str())
            .collect();
        let first = &pipeline.nodes[graph[start]];
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
        });
    }
    diagnostics
}
