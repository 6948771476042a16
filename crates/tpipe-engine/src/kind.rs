//! Node kinds: what a kind accepts (its schema) and how it builds. The engine knows kinds only
//! through this trait, so tests can define their own and the ML kinds can be compiled out.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cache::{Cache, CacheError};
use crate::hash::ContentHash;
use crate::record::OutputRef;
use crate::schema::{InputSlot, ParamSource, ParamSpec, Params, ParamsError};

/// A problem a kind finds in a node's parameters beyond their types.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamProblem {
    /// The parameter at fault, so the diagnostic can point at it.
    pub param: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// For a check across nodes: the input slot whose node disagrees, so the diagnostic points
    /// at that reference.
    pub input: Option<String>,
}

impl ParamProblem {
    pub fn new(param: &str, message: impl Into<String>) -> ParamProblem {
        ParamProblem {
            param: Some(param.to_string()),
            message: message.into(),
            hint: None,
            input: None,
        }
    }
    pub fn at_input(mut self, slot: &str) -> ParamProblem {
        self.input = Some(slot.to_string());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> ParamProblem {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for ParamProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.message)?;
        match &self.hint {
            Some(hint) => write!(formatter, " (hint: {hint})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ParamProblem {}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The kind's own error, kept whole (a kind's typed error, or its text).
    #[error("{0}")]
    Failed(Box<dyn std::error::Error + Send + Sync>),
    #[error("cancelled")]
    Cancelled,
    /// The action's parameters do not fit the kind's struct: the declaration and the struct
    /// disagree, or the action was written by another version of the kind.
    #[error("kind `{kind}`: {source}")]
    Params {
        kind: &'static str,
        source: ParamsError,
    },
    /// An input's blob is missing or damaged. The engine, not the build, names the node behind
    /// the slot (a build never sees upstream names).
    #[error("input `{slot}`: {source}")]
    Input {
        slot: String,
        index: usize,
        source: CacheError,
    },
    /// An input's artifact does not read as its type; the engine names the node, as above.
    #[error("input `{slot}`, `{output}`: {source}")]
    Artifact {
        slot: String,
        index: usize,
        output: &'static str,
        source: ArtifactProblem,
    },
}

/// An output other nodes read as JSON: one serde type that its writer and every reader share,
/// so a renamed field is a compile error, and an unknown or missing one (with
/// `deny_unknown_fields`) a load error naming the artifact and the node, never a default.
pub trait Artifact: serde::Serialize + serde::de::DeserializeOwned {
    /// The output's name (`split.json`).
    const OUTPUT: &'static str;
    /// The layout this tpipe writes and reads; bump it (and the writing kind's version) when
    /// the layout changes.
    const FORMAT: u32;
    /// The layout the value says it is in.
    fn format(&self) -> u32;

    /// The bytes the writing kind stores (pretty JSON, fields in declaration order).
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("artifacts always serialise")
    }

    /// Reads bytes written by [`Artifact::to_bytes`] in this [`Artifact::FORMAT`].
    fn from_bytes(bytes: &[u8]) -> Result<Self, ArtifactProblem> {
        let artifact: Self = serde_json::from_slice(bytes)?;
        if artifact.format() != Self::FORMAT {
            return Err(ArtifactProblem::Format {
                found: artifact.format(),
                expected: Self::FORMAT,
            });
        }
        Ok(artifact)
    }
}

/// Why an artifact does not read as its type.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactProblem {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("it is in format {found}, and this tpipe reads format {expected}")]
    Format { found: u32, expected: u32 },
    #[error("it is not there")]
    Missing,
}

impl BuildError {
    /// A kind's failure: its typed error, or a message.
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> BuildError {
        BuildError::Failed(error.into())
    }
}

/// What a kind hands back after building.
#[derive(Default)]
pub struct BuildOutput {
    /// Named artifacts; the engine stores each as a blob.
    pub outputs: Vec<(String, Vec<u8>)>,
    /// Small JSON results shown by `show` and the summary (accuracy, losses, …). Metrics are for
    /// people: no build ever reads another node's metrics, so anything a dependent needs must
    /// be in `outputs`.
    pub metrics: Value,
    /// The compute backend used, for provenance (not part of the key).
    pub backend: Option<String>,
}

/// An upstream node as a build sees it: exactly what the key covers and nothing more. There is
/// no upstream name (unless the slot declares `names_in_key`), no parameter and no metric:
/// whatever a build needs to know about its inputs travels inside their outputs.
#[derive(Clone, Debug)]
pub struct InputArtifact {
    pub slot: String,
    /// Position within the slot, in the order the pipeline lists the inputs.
    pub index: usize,
    /// The upstream node's name, only for slots whose names are in the key.
    pub name: Option<String>,
    /// The outputs the slot declares it reads (all, when it declares none).
    pub outputs: BTreeMap<String, OutputRef>,
}

impl InputArtifact {
    /// `input `data`` or `input `results` #3`, for messages.
    pub fn describe(&self) -> String {
        match (&self.name, self.index) {
            (Some(name), _) => format!("input `{name}`"),
            (None, 0) => format!("input `{}`", self.slot),
            (None, index) => format!("input `{}` #{}", self.slot, index + 1),
        }
    }
}

/// Progress of a running node, as a fraction of its work and a short message.
#[derive(Clone, Debug)]
pub struct Progress {
    pub fraction: f64,
    pub message: String,
}

/// Options that reach every build but are not part of any key.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// `--backend`: overrides each node's `backend` parameter.
    pub backend: Option<String>,
}

/// Everything a build may read. It is made from an action (`action::Action`) alone, so
/// the same build can run in `tpipe run`, in `tpipe exec-node` or on another machine.
pub struct BuildContext<'a> {
    /// The node's own name, for log lines and messages only: it is not in the key, so no
    /// output may depend on it.
    pub node: &'a str,
    /// The parameters in the key, plus the settings that are not (paths whose content is in
    /// the key through `external`, the backend).
    pub params: &'a Map<String, Value>,
    pub inputs: BTreeMap<String, Vec<InputArtifact>>,
    /// Resolved external files and their content hashes.
    pub external: Vec<(PathBuf, ContentHash)>,
    pub project_dir: &'a Path,
    pub options: &'a BuildOptions,
    pub cancel: &'a AtomicBool,
    pub progress: &'a (dyn Fn(Progress) + Sync),
    pub cache: &'a Cache,
}

impl BuildContext<'_> {
    /// Reads one output of an input node, verified against its hash. Only outputs the slot
    /// declares in `reads` are there to read.
    pub fn read(&self, input: &InputArtifact, output: &str) -> Result<Vec<u8>, BuildError> {
        let reference = input.outputs.get(output).ok_or_else(|| {
            BuildError::failed(format!(
                "{} has no output `{output}` that this kind may read (it has {})",
                input.describe(),
                input
                    .outputs
                    .keys()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        self.cache
            .read_blob(&reference.blob)
            .map_err(|source| BuildError::Input {
                slot: input.slot.clone(),
                index: input.index,
                source,
            })
    }

    /// Reads one input's artifact `A` (its output [`Artifact::OUTPUT`]) as its type.
    pub fn read_artifact<A: Artifact>(&self, input: &InputArtifact) -> Result<A, BuildError> {
        let bytes = self.read(input, A::OUTPUT)?;
        A::from_bytes(&bytes).map_err(|source| BuildError::Artifact {
            slot: input.slot.clone(),
            index: input.index,
            output: A::OUTPUT,
            source,
        })
    }

    /// The single node in a slot declared with arity `One`.
    pub fn input(&self, slot: &str) -> Result<&InputArtifact, BuildError> {
        self.inputs
            .get(slot)
            .and_then(|artifacts| artifacts.first())
            .ok_or_else(|| BuildError::failed(format!("input `{slot}` is not connected")))
    }

    pub fn optional_input(&self, slot: &str) -> Option<&InputArtifact> {
        self.inputs
            .get(slot)
            .and_then(|artifacts| artifacts.first())
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub fn cancel_flag(&self) -> &AtomicBool {
        self.cancel
    }

    pub fn report_progress(&self, fraction: f64, message: impl Into<String>) {
        (self.progress)(Progress {
            fraction,
            message: message.into(),
        });
    }
}

/// An upstream node as a cross-node check at plan time sees it: its name and parameters.
/// Checks run on the pipeline, before anything builds; builds never see this.
pub struct UpstreamSpec<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub params: &'a crate::spec::NodeParams,
}

/// A kind of node. Implementations must be deterministic in what they put in `outputs` for the
/// same parameters and inputs where they can (the CPU training backend is), and must bump
/// `version` whenever a code change alters what they produce.
///
/// Every hook receives the kind's own typed parameters ([`NodeKind::Params`], declared once with
/// [`kind_params!`](crate::kind_params)), parsed once when the pipeline is validated (or, for a
/// build, from the action): no hook re-parses a map or has to decide what a parse failure means.
/// The engine holds kinds as [`AnyKind`], which every `NodeKind` is.
pub trait NodeKind: Send + Sync + 'static {
    /// The parameters: their schema (what the spec layer validates) and the struct every hook
    /// reads, from one declaration.
    type Params: Params + Send + Sync + 'static;

    fn name(&self) -> &'static str;
    /// Part of every key of this kind: bump it to rebuild all such nodes.
    fn version(&self) -> u32;
    /// One line for `--help` and diagnostics.
    fn about(&self) -> &'static str;
    fn inputs(&self) -> Vec<InputSlot>;
    /// Whether building uses the shared compute device (limited by `--device-jobs`).
    fn uses_device(&self) -> bool {
        false
    }
    /// Whether a cluster executor sends this kind to the cluster unless a node says otherwise.
    /// Trainings go; light kinds (data sets, splits, evaluations, reports) build on the
    /// submitting machine, where a job's start-up would cost more than the work.
    fn runs_on_cluster(&self) -> bool {
        self.uses_device()
    }
    /// Checks that go beyond parameter types; every problem is reported.
    fn check(&self, _params: &Self::Params) -> Vec<ParamProblem> {
        Vec::new()
    }
    /// Checks that span this node and the nodes it reads (a transfer's network must match its
    /// base's), run when the pipeline is validated so they fail before anything trains.
    /// `inputs` maps each slot to its upstream nodes.
    fn check_inputs(
        &self,
        _params: &Self::Params,
        _inputs: &BTreeMap<String, Vec<UpstreamSpec<'_>>>,
    ) -> Vec<ParamProblem> {
        Vec::new()
    }
    /// Parameters present but not read with these settings, left out of the key so that editing
    /// them reruns nothing.
    fn unused_params(&self, _params: &Self::Params) -> Vec<&'static str> {
        Vec::new()
    }
    /// Files or directories whose content the node reads (resolved against `project_dir`); a
    /// problem names the parameter that should have said where.
    fn external_inputs(
        &self,
        _params: &Self::Params,
        _project_dir: &Path,
    ) -> Result<Vec<PathBuf>, ParamProblem> {
        Ok(Vec::new())
    }
    fn build(
        &self,
        params: &Self::Params,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError>;
    /// The one figure the summary table shows for this node.
    fn headline(&self, _metrics: &Value) -> Option<String> {
        None
    }
}

/// A node's parameters as its kind's typed struct, parsed once when the pipeline is validated
/// and handed to every hook of that kind. Only [`AnyKind::parse_params`] makes one, so the
/// struct inside is always its kind's `Params`.
#[derive(Clone)]
pub struct TypedParams(Arc<dyn Any + Send + Sync>);

impl TypedParams {
    /// A stand-in for a node whose parameters did not validate. The spec layer reports those
    /// and returns no pipeline, so no hook ever sees it.
    pub fn invalid() -> TypedParams {
        TypedParams(Arc::new(InvalidParams))
    }

    pub fn is_valid(&self) -> bool {
        !self.0.is::<InvalidParams>()
    }

    fn of<P: 'static>(&self, kind: &str) -> &P {
        self.0
            .downcast_ref()
            .unwrap_or_else(|| panic!("the engine handed kind `{kind}` another kind's parameters"))
    }
}

impl std::fmt::Debug for TypedParams {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(if self.is_valid() {
            "TypedParams"
        } else {
            "TypedParams(invalid)"
        })
    }
}

struct InvalidParams;

/// A kind as the engine holds it: [`NodeKind`] with its parameters type erased, so kinds of
/// every parameter type sit in one [`KindRegistry`]. Every `NodeKind` is one; nothing else
/// implements it.
pub trait AnyKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn version(&self) -> u32;
    fn about(&self) -> &'static str;
    /// The schema of [`NodeKind::Params`].
    fn params(&self) -> Vec<ParamSpec>;
    fn inputs(&self) -> Vec<InputSlot>;
    fn uses_device(&self) -> bool;
    fn runs_on_cluster(&self) -> bool;
    /// Reads a parameter map the spec layer validated against [`AnyKind::params`]; an error
    /// means the kind's declaration and its struct disagree.
    fn parse_params(&self, params: &dyn ParamSource) -> Result<TypedParams, ParamsError>;
    fn check(&self, params: &TypedParams) -> Vec<ParamProblem>;
    fn check_inputs(
        &self,
        params: &TypedParams,
        inputs: &BTreeMap<String, Vec<UpstreamSpec<'_>>>,
    ) -> Vec<ParamProblem>;
    fn unused_params(&self, params: &TypedParams) -> Vec<&'static str>;
    fn external_inputs(
        &self,
        params: &TypedParams,
        project_dir: &Path,
    ) -> Result<Vec<PathBuf>, ParamProblem>;
    /// Builds from the action's parameters (`context.params`), read into the typed struct.
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError>;
    fn headline(&self, metrics: &Value) -> Option<String>;
}

impl<K: NodeKind> AnyKind for K {
    fn name(&self) -> &'static str {
        NodeKind::name(self)
    }
    fn version(&self) -> u32 {
        NodeKind::version(self)
    }
    fn about(&self) -> &'static str {
        NodeKind::about(self)
    }
    fn params(&self) -> Vec<ParamSpec> {
        K::Params::specs()
    }
    fn inputs(&self) -> Vec<InputSlot> {
        NodeKind::inputs(self)
    }
    fn uses_device(&self) -> bool {
        NodeKind::uses_device(self)
    }
    fn runs_on_cluster(&self) -> bool {
        NodeKind::runs_on_cluster(self)
    }
    fn parse_params(&self, params: &dyn ParamSource) -> Result<TypedParams, ParamsError> {
        Ok(TypedParams(Arc::new(K::Params::from_source(params)?)))
    }
    fn check(&self, params: &TypedParams) -> Vec<ParamProblem> {
        NodeKind::check(self, params.of(NodeKind::name(self)))
    }
    fn check_inputs(
        &self,
        params: &TypedParams,
        inputs: &BTreeMap<String, Vec<UpstreamSpec<'_>>>,
    ) -> Vec<ParamProblem> {
        NodeKind::check_inputs(self, params.of(NodeKind::name(self)), inputs)
    }
    fn unused_params(&self, params: &TypedParams) -> Vec<&'static str> {
        NodeKind::unused_params(self, params.of(NodeKind::name(self)))
    }
    fn external_inputs(
        &self,
        params: &TypedParams,
        project_dir: &Path,
    ) -> Result<Vec<PathBuf>, ParamProblem> {
        NodeKind::external_inputs(self, params.of(NodeKind::name(self)), project_dir)
    }
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        let params = K::Params::from_map(context.params).map_err(|source| BuildError::Params {
            kind: NodeKind::name(self),
            source,
        })?;
        NodeKind::build(self, &params, context)
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        NodeKind::headline(self, metrics)
    }
}

/// The kinds a pipeline may use, by name.
#[derive(Clone, Default)]
pub struct KindRegistry {
    kinds: BTreeMap<&'static str, Arc<dyn AnyKind>>,
}

impl KindRegistry {
    pub fn new() -> KindRegistry {
        KindRegistry::default()
    }
    pub fn register(&mut self, kind: impl NodeKind) -> &mut Self {
        self.kinds.insert(NodeKind::name(&kind), Arc::new(kind));
        self
    }
    pub fn get(&self, name: &str) -> Option<&Arc<dyn AnyKind>> {
        self.kinds.get(name)
    }
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }
}
