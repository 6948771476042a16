//! `tpipe plan`: what a run would do and why, without building anything.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

use crate::cache::Lookup;
use crate::hash::ContentHash;
use crate::record::Record;
use crate::session::{ResolvedKey, Session, Walked};
use crate::spec::NodeSpec;

/// Why a node will (or may) run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Nothing in the cache was ever built for this node name.
    NewNode,
    /// Asked for with `--force`.
    Forced,
    ParamChanged {
        param: String,
        from: Option<Value>,
        to: Option<Value>,
    },
    InputChanged {
        slot: String,
        node: String,
    },
    /// The inputs in a slot are different nodes than before.
    InputsRewired {
        slot: String,
    },
    DataChanged {
        path: String,
    },
    CodeVersionChanged {
        kind: String,
        from: u32,
        to: u32,
    },
    /// The last result for this node is gone from the cache (removed, or a run was interrupted).
    NotInCache,
    /// The last result was made by an older tpipe whose keys were derived differently.
    OlderCacheEntry,
    CacheEntryDamaged {
        detail: String,
    },
    /// An upstream node will run first; this one reruns only if that changes its output.
    AfterUpstream {
        node: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |value: &Option<Value>| {
            value
                .as_ref()
                .map(|value| value.to_string())
                .unwrap_or_else(|| "(unset)".into())
        };
        match self {
            Reason::NewNode => write!(formatter, "new node"),
            Reason::Forced => write!(formatter, "forced with --force"),
            Reason::ParamChanged { param, from, to } => write!(
                formatter,
                "parameter `{param}` changed from {} to {}",
                show(from),
                show(to)
            ),
            Reason::InputChanged { slot, node } => {
                write!(formatter, "input `{slot}` ({node}) changed")
            }
            Reason::InputsRewired { slot } => {
                write!(formatter, "input `{slot}` now reads different nodes")
            }
            Reason::DataChanged { path } => write!(formatter, "data `{path}` changed"),
            Reason::CodeVersionChanged { kind, from, to } => write!(
                formatter,
                "code of kind `{kind}` changed (version {from} → {to})"
            ),
            Reason::NotInCache => write!(formatter, "result no longer in the cache"),
            Reason::OlderCacheEntry => write!(
                formatter,
                "the cached result was made by an older tpipe (its keys changed); building anew"
            ),
            Reason::CacheEntryDamaged { detail } => {
                write!(formatter, "cache entry damaged: {detail}")
            }
            Reason::AfterUpstream { node } => write!(formatter, "after `{node}`"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanStatus {
    Cached,
    WillRun,
    MayRun,
    /// The key cannot be computed (for example a data file is missing).
    Error,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlannedNode {
    pub name: String,
    pub kind: &'static str,
    /// Known unless an upstream node must run first. Kept as its 32 bytes, written as hex.
    pub key: Option<ContentHash>,
    pub status: PlanStatus,
    pub reasons: Vec<Reason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub nodes: Vec<PlannedNode>,
}

impl Plan {
    pub fn count(&self, status: PlanStatus) -> usize {
        self.nodes
            .iter()
            .filter(|node| node.status == status)
            .count()
    }
}

/// Compares a node's new key material with the record of its previous key.
pub fn explain_change(
    session: &Session,
    kind_version: u32,
    kind: &str,
    resolved: &ResolvedKey,
    previous: &Record,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if previous.kind_version != kind_version {
        reasons.push(Reason::CodeVersionChanged {
            kind: kind.to_string(),
            from: previous.kind_version,
            to: kind_version,
        });
    }
    let mut names: Vec<&String> = resolved
        .action
        .params
        .keys()
        .chain(previous.params.keys())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (from, to) = (previous.params.get(name), resolved.action.params.get(name));
        if from != to {
            reasons.push(Reason::ParamChanged {
                param: name.clone(),
                from: from.cloned(),
                to: to.cloned(),
            });
        }
    }
    let slots: std::collections::BTreeSet<&String> = resolved
        .action
        .origin
        .inputs
        .iter()
        .chain(&previous.inputs)
        .map(|input| &input.slot)
        .collect();
    for slot in slots {
        let now: Vec<_> = resolved
            .action
            .origin
            .inputs
            .iter()
            .filter(|input| &input.slot == slot)
            .collect();
        let before: Vec<_> = previous
            .inputs
            .iter()
            .filter(|input| &input.slot == slot)
            .collect();
        let same_nodes =
            now.len() == before.len() && now.iter().zip(&before).all(|(a, b)| a.node == b.node);
        if !same_nodes {
            reasons.push(Reason::InputsRewired { slot: slot.clone() });
            continue;
        }
        for (a, b) in now.iter().zip(&before) {
            if a.content != b.content {
                reasons.push(Reason::InputChanged {
                    slot: slot.clone(),
                    node: a.node.clone(),
                });
            }
        }
    }
    let same_external = resolved.action.external.len() == previous.external.len()
        && resolved
            .action
            .external
            .iter()
            .zip(&previous.external)
            .all(|(a, b)| a.content == b.content);
    if !same_external {
        for external in &resolved.action.external {
            if !previous
                .external
                .iter()
                .any(|before| before.content == external.content)
            {
                reasons.push(Reason::DataChanged {
                    path: external.path.clone(),
                });
            }
        }
        if reasons.is_empty() {
            reasons.push(Reason::DataChanged {
                path: "(data set)".into(),
            });
        }
    }
    let _ = session;
    if reasons.is_empty() {
        reasons.push(Reason::NotInCache);
    }
    reasons
}

/// Why a node whose key is not in the cache must run.
pub fn reasons_for_miss(
    session: &Session,
    name: &str,
    resolved: &ResolvedKey,
    index: &BTreeMap<String, ContentHash>,
) -> Vec<Reason> {
    let node = session.pipeline.node(name).expect("planned nodes exist");
    let kind = session.kind_of(node);
    match index.get(name) {
        None => vec![Reason::NewNode],
        Some(previous_key) if *previous_key == resolved.key => vec![Reason::NotInCache],
        Some(previous_key) => match session.cache.read_record(previous_key) {
            Ok(Some(previous)) => {
                explain_change(session, kind.version(), kind.name(), resolved, &previous)
            }
            _ if written_by_older_tpipe(session, previous_key) => vec![Reason::OlderCacheEntry],
            _ => vec![Reason::NotInCache],
        },
    }
}

/// Whether the record at `key` is in an older record format: its keys were made by an older
/// scheme, so it is a miss, never an error.
fn written_by_older_tpipe(session: &Session, key: &ContentHash) -> bool {
    std::fs::read(session.cache.record_path(key))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|record| record.get("format").and_then(serde_json::Value::as_u64))
        .is_some_and(|format| format < u64::from(crate::record::RECORD_FORMAT))
}

/// Plans the selected nodes. `forced` nodes are planned to run even when cached. One wave's
/// nodes are looked up side by side, on as many threads as the machine has cores.
pub fn plan(session: &Session, selection: &[usize], forced: &[usize]) -> Plan {
    // The last keys explain misses only: a plan that finds everything cached never reads them.
    let index: OnceLock<BTreeMap<String, ContentHash>> = OnceLock::new();
    let index = || index.get_or_init(|| session.cache.read_index(&session.pipeline_id));
    let forced: std::collections::HashSet<&str> = forced
        .iter()
        .map(|position| session.pipeline.nodes[*position].name.as_str())
        .collect();
    let lookup = |node: &NodeSpec, resolved: &ResolvedKey| {
        let found = match session.cache.lookup_head(&resolved.key) {
            Lookup::Hit(record) if !forced.contains(node.name.as_str()) => {
                (Some(Arc::from(record)), (PlanStatus::Cached, Vec::new()))
            }
            Lookup::Hit(_) => (None, (PlanStatus::WillRun, vec![Reason::Forced])),
            Lookup::Damaged(damage) => (
                None,
                (
                    PlanStatus::WillRun,
                    vec![Reason::CacheEntryDamaged {
                        detail: damage.to_string(),
                    }],
                ),
            ),
            Lookup::Miss => (
                None,
                (
                    PlanStatus::WillRun,
                    reasons_for_miss(session, &node.name, resolved, index()),
                ),
            ),
        };
        Ok::<_, std::convert::Infallible>(found)
    };
    // Without threads (the system refuses them), the same walk runs on this one.
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|index| format!("tpipe-plan-{index}"))
        .build()
        .ok();
    let Ok(mut walked) = session.walk_keys(selection, &lookup, pool.as_ref());
    let nodes = selection
        .iter()
        .map(|position| {
            let node = &session.pipeline.nodes[*position];
            let mut planned = PlannedNode {
                name: node.name.clone(),
                kind: node.kind,
                key: None,
                status: PlanStatus::MayRun,
                reasons: Vec::new(),
                error: None,
            };
            match walked
                .take(*position)
                .expect("every selected node is walked")
            {
                Walked::Resolved {
                    key,
                    status: (status, reasons),
                } => {
                    planned.key = Some(key);
                    planned.status = status;
                    planned.reasons = reasons;
                }
                Walked::After { node } => planned.reasons.push(Reason::AfterUpstream { node }),
                Walked::Failed { error } => {
                    planned.status = PlanStatus::Error;
                    planned.error = Some(error.to_string());
                }
            }
            planned
        })
        .collect();
    Plan { nodes }
}
