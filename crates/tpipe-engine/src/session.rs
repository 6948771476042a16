//! What `plan` and `run` share: a loaded pipeline, its graph, its cache, and the way a node's
//! key is derived from its parameters, its inputs' content and its external files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::action::{Action, ActionInput, Origin, ACTION_FORMAT};
use crate::cache::Cache;
use crate::graph::PipelineGraph;
use crate::hash::ContentHash;
use crate::key::pipeline_id;
use crate::kind::{AnyKind, KindRegistry, ParamProblem};
use crate::record::{ExternalInput, RecordHead, RecordInput};
use crate::spec::{NodeSpec, Pipeline};

pub struct Session {
    pub pipeline: Pipeline,
    pub graph: PipelineGraph,
    pub registry: KindRegistry,
    pub cache: Cache,
    /// Relative paths in parameters and `publish` are resolved against this folder.
    pub project_dir: PathBuf,
    /// Identifies the pipeline file in the cache's index of last keys.
    pub pipeline_id: ContentHash,
    /// Per kind, the names of its parameters that are in the key (worked out once: a kind's
    /// schema is built afresh on every `params()` call).
    in_key: BTreeMap<&'static str, Vec<&'static str>>,
}

/// Why a node's key cannot be derived. Each names the node; the message leaves it out, as
/// the summary table and `plan` show it beside the message.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("input `{input}` is not built")]
    InputNotBuilt { node: String, input: String },
    /// The kind cannot say which external files the node reads (a data set without `path`).
    #[error("{problem}")]
    ExternalInputs { node: String, problem: ParamProblem },
    #[error("cannot read `{}`: {source}", path.display())]
    ReadExternal {
        node: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A `--target` (or `--force`) that names no node.
#[derive(Debug, thiserror::Error)]
#[error("no node named `{target}` in `{}`{}", file.display(), .nearest.as_ref().map(|nearest| format!(" (hint: did you mean `{nearest}`?)")).unwrap_or_default())]
pub struct SelectionError {
    pub target: String,
    pub file: PathBuf,
    pub nearest: Option<String>,
}

/// A node's key and the action it is the hash of.
#[derive(Clone, Debug)]
pub struct ResolvedKey {
    pub key: ContentHash,
    pub action: Action,
}

/// What walking a pipeline's keys found for one node (see [`Session::walk_keys`]).
pub enum Walked<T> {
    /// Its key is known, and the lookup said `status`. (Its action is not kept: a walk over a
    /// million nodes would hold them all.)
    Resolved { key: ContentHash, status: T },
    /// Its key waits on `node`: the first node upstream that has no record.
    After { node: String },
    /// Its key cannot be derived (a data file is missing, say).
    Failed { error: KeyError },
}

/// What [`Session::walk_keys`] found, by the position of each node in the pipeline.
pub struct WalkedKeys<T>(Vec<Option<Walked<T>>>);

impl<T> WalkedKeys<T> {
    /// What the walk found for the node at `position`, once; `None` when it was not selected.
    pub fn take(&mut self, position: usize) -> Option<Walked<T>> {
        self.0.get_mut(position).and_then(Option::take)
    }

    /// How many nodes the walk visited.
    pub fn count(&self) -> usize {
        self.0.iter().filter(|walked| walked.is_some()).count()
    }
}

/// The lookup a walk asks for each node whose key is known: the record it has (if any), and
/// what to say about the node. An `Err` stops the walk (an unreachable remote).
pub type KeyLookup<'a, T, E> =
    dyn Fn(&NodeSpec, &ResolvedKey) -> Result<(Option<Arc<RecordHead>>, T), E> + Sync + 'a;

/// The project folder of a pipeline file: the nearest folder above it holding `.git` or
/// `tpipe.toml`, else the file's own folder. `cache/` lives there by default.
pub fn project_dir_of(pipeline_file: &Path) -> PathBuf {
    let absolute =
        std::path::absolute(pipeline_file).unwrap_or_else(|_| pipeline_file.to_path_buf());
    let file_dir = absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut candidate = Some(file_dir.as_path());
    while let Some(dir) = candidate {
        if dir.join(".git").exists() || dir.join("tpipe.toml").exists() {
            return dir.to_path_buf();
        }
        candidate = dir.parent();
    }
    file_dir
}

impl Session {
    pub fn new(
        pipeline: Pipeline,
        graph: PipelineGraph,
        registry: KindRegistry,
        cache: Cache,
        project_dir: PathBuf,
    ) -> Session {
        let canonical =
            std::fs::canonicalize(&pipeline.file).unwrap_or_else(|_| pipeline.file.clone());
        let pipeline_id = pipeline_id(&canonical.to_string_lossy());
        let in_key = registry
            .names()
            .map(|name| {
                let specs = registry.get(name).expect("listed kinds exist").params();
                let names = specs
                    .into_iter()
                    .filter(|spec| spec.in_key)
                    .map(|spec| spec.name)
                    .collect();
                (name, names)
            })
            .collect();
        Session {
            pipeline,
            graph,
            registry,
            cache,
            project_dir,
            pipeline_id,
            in_key,
        }
    }

    pub fn kind_of(&self, node: &NodeSpec) -> &Arc<dyn AnyKind> {
        self.registry
            .get(node.kind)
            .expect("the spec layer only admits registered kinds")
    }

    pub fn position_of(&self, name: &str) -> Option<usize> {
        self.pipeline.position_of(name)
    }

    /// The parameters that go into the key: declared `in_key`, and read with these settings.
    pub fn key_params(&self, node: &NodeSpec) -> Map<String, Value> {
        let kind = self.kind_of(node);
        let unused = kind.unused_params(&node.typed);
        let in_key = &self.in_key[kind.name()];
        node.params
            .iter()
            .filter(|(name, _)| in_key.contains(name) && !unused.contains(name))
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect()
    }

    /// Hashes the files a node reads from outside the cache (stat-cached).
    pub fn external_inputs(&self, node: &NodeSpec) -> Result<Vec<ExternalInput>, KeyError> {
        let kind = self.kind_of(node);
        let paths = kind
            .external_inputs(&node.typed, &self.project_dir)
            .map_err(|problem| KeyError::ExternalInputs {
                node: node.name.clone(),
                problem,
            })?;
        paths
            .iter()
            .map(|path| {
                let content = self.cache.stat_cache().hash_path(path).map_err(|source| {
                    KeyError::ReadExternal {
                        node: node.name.clone(),
                        path: path.clone(),
                        source,
                    }
                })?;
                Ok(ExternalInput {
                    path: path.to_string_lossy().into_owned(),
                    content,
                })
            })
            .collect()
    }

    /// The action that builds `node`, and its key, given the records of the nodes it reads:
    /// `upstream(index)` is the record of its input number `index` (counting the inputs of
    /// `node.inputs` slot by slot, in order), if it has one. `plan`, `run`, `cache push`/`pull`
    /// and `gc` all derive keys here.
    pub fn resolve_key(
        &self,
        node: &NodeSpec,
        upstream: &dyn Fn(usize) -> Option<Arc<RecordHead>>,
    ) -> Result<ResolvedKey, KeyError> {
        let kind = self.kind_of(node);
        let params = self.key_params(node);
        let settings: Map<String, Value> = node
            .params
            .iter()
            .filter(|(name, _)| !params.contains_key(*name))
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        let slots = kind.inputs();
        let mut origin_inputs = Vec::new();
        let mut inputs: BTreeMap<String, Vec<ActionInput>> = BTreeMap::new();
        let mut input_index = 0;
        for (slot, sources) in &node.inputs {
            let declared = slots
                .iter()
                .find(|declared| declared.name == slot)
                .expect("the spec layer only admits declared slots");
            for source in sources {
                let record = upstream(input_index);
                input_index += 1;
                let record = record.ok_or_else(|| KeyError::InputNotBuilt {
                    node: node.name.clone(),
                    input: source.clone(),
                })?;
                origin_inputs.push(RecordInput {
                    slot: slot.to_string(),
                    node: source.clone(),
                    key: record.key,
                    content: record.content,
                });
                let outputs = record
                    .outputs
                    .iter()
                    .filter(|(name, _)| {
                        declared.reads.is_empty() || declared.reads.contains(&name.as_str())
                    })
                    .map(|(name, reference)| (name.clone(), reference.clone()))
                    .collect();
                inputs
                    .entry(slot.to_string())
                    .or_default()
                    .push(ActionInput {
                        name: declared.names_in_key.then(|| source.clone()),
                        outputs,
                    });
            }
        }
        let action = Action {
            format: ACTION_FORMAT,
            kind: kind.name().to_string(),
            kind_version: kind.version(),
            params,
            inputs,
            external: self.external_inputs(node)?,
            settings,
            origin: Origin {
                node: node.name.clone(),
                pipeline: self.pipeline.file.to_string_lossy().into_owned(),
                project_dir: self.project_dir.to_string_lossy().into_owned(),
                inputs: origin_inputs,
            },
        };
        Ok(ResolvedKey {
            key: action.key(),
            action,
        })
    }

    /// Derives the keys of `selection` (positions in build order) wave by wave: each node whose
    /// inputs all have records gets its action and key, and `lookup` says whether a record
    /// exists for it, which makes the next wave's keys known. A node below one without a record
    /// is `After` it. `plan`, `cache gc`, `cache push` and `cache pull` walk with this; `run`
    /// schedules builds in between and walks in its own executor, through the same
    /// [`Session::resolve_key`]. With a `pool`, one wave's lookups run side by side.
    ///
    /// A wave is a depth in the graph (one more than the deepest input's), worked out in one
    /// pass over the selection, so each node is visited once however deep the pipeline is.
    /// What the walk keeps per node is indexed by its position, never by a copy of its name.
    pub fn walk_keys<T: Send, E: Send>(
        &self,
        selection: &[usize],
        lookup: &KeyLookup<'_, T, E>,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<WalkedKeys<T>, E> {
        let nodes = &self.pipeline.nodes;
        // The positions of each selected node's inputs, in the order of its `inputs`, found
        // by name once (one list for all: `input_span[position]` is its part of it). As u32:
        // half the memory, and the node limit keeps a pipeline far below 4 billion of either.
        let small =
            |number: usize| u32::try_from(number).expect("fewer than 2^32 nodes and inputs");
        let mut input_span: Vec<(u32, u32)> = vec![(0, 0); nodes.len()];
        let mut input_list: Vec<u32> = Vec::with_capacity(selection.len());
        for &position in selection {
            let start = small(input_list.len());
            input_list.extend(
                nodes[position]
                    .inputs
                    .values()
                    .flatten()
                    .map(|source| small(self.position_of(source).expect("inputs exist"))),
            );
            input_span[position] = (start, small(input_list.len()));
        }
        let input_positions = |position: usize| {
            let (start, end) = input_span[position];
            input_list[start as usize..end as usize]
                .iter()
                .map(|&source| source as usize)
        };
        // Depth in the selection (inputs first, so each input's depth is known before); nodes
        // outside the selection have none.
        let mut depth: Vec<Option<u32>> = vec![None; nodes.len()];
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for &position in selection {
            let node_depth = input_positions(position)
                .filter_map(|source| depth[source])
                .map(|source_depth| source_depth + 1)
                .max()
                .unwrap_or(0);
            depth[position] = Some(node_depth);
            let wave = node_depth as usize;
            if waves.len() <= wave {
                waves.resize_with(wave + 1, Vec::new);
            }
            waves[wave].push(position);
        }
        drop(depth);
        let mut records: Vec<Option<Arc<RecordHead>>> = vec![None; nodes.len()];
        // For each node that has no record, the first node upstream of it without one.
        let mut waits_on: Vec<Option<usize>> = vec![None; nodes.len()];
        let mut walked: Vec<Option<Walked<T>>> = Vec::with_capacity(nodes.len());
        walked.resize_with(nodes.len(), || None);
        for wave in waves {
            let mut ready = Vec::new();
            for position in wave {
                let mut sources = input_positions(position);
                if let Some(after) = sources.clone().find_map(|source| waits_on[source]) {
                    waits_on[position] = Some(after);
                    walked[position] = Some(Walked::After {
                        node: nodes[after].name.clone(),
                    });
                } else if let Some(missing) = sources.find(|&source| records[source].is_none()) {
                    // An input outside the selection, with no record: wait on it.
                    waits_on[position] = Some(position);
                    walked[position] = Some(Walked::After {
                        node: nodes[missing].name.clone(),
                    });
                } else {
                    ready.push(position);
                }
            }
            let look = |position: usize| {
                let node = &nodes[position];
                let upstream = |index: usize| {
                    let (start, _) = input_span[position];
                    records[input_list[start as usize + index] as usize].clone()
                };
                let result = match self.resolve_key(node, &upstream) {
                    Ok(resolved) => lookup(node, &resolved).map(|(record, status)| {
                        (
                            record,
                            Walked::Resolved {
                                key: resolved.key,
                                status,
                            },
                        )
                    }),
                    Err(error) => Ok((None, Walked::Failed { error })),
                };
                (position, result)
            };
            type Looked<T> = (Option<Arc<RecordHead>>, Walked<T>);
            let results: Vec<(usize, Result<Looked<T>, E>)> = match pool {
                Some(pool) => {
                    pool.install(|| ready.par_iter().map(|&position| look(position)).collect())
                }
                None => ready.iter().map(|&position| look(position)).collect(),
            };
            for (position, result) in results {
                let (record, found) = result?;
                match record {
                    Some(record) => records[position] = Some(record),
                    None => waits_on[position] = Some(position),
                }
                walked[position] = Some(found);
            }
        }
        Ok(WalkedKeys(walked))
    }

    /// Positions to consider: the targets and what they need, or every node.
    pub fn selection(&self, targets: &[String]) -> Result<Vec<usize>, SelectionError> {
        if targets.is_empty() {
            return Ok(self.graph.order().to_vec());
        }
        let mut positions = Vec::new();
        for target in targets {
            let matched: Vec<usize> = self
                .pipeline
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, node)| crate::spec::matrix::wildcard_matches(target, &node.name))
                .map(|(position, _)| position)
                .collect();
            if matched.is_empty() {
                let nearest = crate::schema::nearest_name(
                    target,
                    self.pipeline.nodes.iter().map(|node| node.name.as_str()),
                );
                return Err(SelectionError {
                    target: target.clone(),
                    file: self.pipeline.file.clone(),
                    nearest: nearest.map(str::to_string),
                });
            }
            positions.extend(matched);
        }
        let needed = self.graph.closure(&self.pipeline, &positions);
        Ok(self
            .graph
            .order()
            .iter()
            .copied()
            .filter(|position| needed.contains(position))
            .collect())
    }
}
