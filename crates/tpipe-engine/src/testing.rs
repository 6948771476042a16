//! Small, fast kinds for exercising the engine in tests (no data, no training). Compiled only
//! with the `testing` feature, which only test builds turn on; a test build of the `tpipe`
//! binary offers them when `TPIPE_TEST_KINDS=1` ([`crate::offer_test_kinds`]), so
//! process-level tests (two processes on one cache, a run killed and resumed) can drive the
//! real CLI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::kind::{BuildContext, BuildError, BuildOutput, KindRegistry, NodeKind, ParamProblem};
use crate::schema::{Arity, InputSlot, ParamType};

/// The test kinds: `number`, `sum` and `file_digest`.
pub fn registry() -> KindRegistry {
    let mut registry = KindRegistry::new();
    registry.register(Number).register(Sum).register(FileDigest);
    registry
}

crate::kind_params! {
    /// What every test kind accepts besides its own parameters.
    pub struct CommonParams {
        sleep_ms: u64 {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "pause while building, to test interruption",
            in_key: false,
        },
        fail: bool { ty: ParamType::Bool, default: false, doc: "make the build fail" },
        hog_mb: u64 {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "megabytes to fill and hold while sleeping, to exceed a memory limit",
            in_key: false,
        },
        log: String {
            ty: ParamType::Text,
            default: "",
            doc: "file to append the node name to on every build",
            in_key: false,
        },
    }
}

/// Sleeps in small steps so cancellation is noticed; appends to the build log; fails on request.
fn common_build(context: &BuildContext, common: &CommonParams) -> Result<(), BuildError> {
    let log = &common.log;
    if !log.is_empty() {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|error| BuildError::failed(format!("cannot open log `{log}`: {error}")))?;
        // One write per line: with O_APPEND a single small write is atomic, so two processes
        // logging at once cannot interleave inside a line (`writeln!` may write twice).
        file.write_all(format!("{}\n", context.node).as_bytes())
            .map_err(BuildError::failed)?;
    }
    // Filled page by page so the memory is really resident, and held until the build ends.
    let _hog: Vec<u8> = vec![1; (common.hog_mb as usize) << 20];
    let mut remaining = common.sleep_ms;
    while remaining > 0 {
        if context.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let step = remaining.min(20);
        std::thread::sleep(Duration::from_millis(step));
        remaining -= step;
        context.report_progress(0.5, "sleeping");
    }
    if common.fail {
        return Err(BuildError::failed("failed on purpose (`fail: true`)"));
    }
    Ok(())
}

fn number_output(value: i64) -> BuildOutput {
    BuildOutput {
        outputs: vec![("value".into(), value.to_string().into_bytes())],
        metrics: json!({ "value": value }),
        backend: None,
    }
}

/// A constant. `modulo` lets tests change a parameter without changing the output.
pub struct Number;

crate::kind_params! {
    pub struct NumberParams {
        ..common: CommonParams,
        value: i64 { ty: ParamType::int(), doc: "the number" },
        modulo: i64 {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "output value % modulo when not 0",
        },
        note: String { ty: ParamType::Text, default: "", doc: "read only when `modulo` is 0" },
    }
}

impl NodeKind for Number {
    type Params = NumberParams;

    fn name(&self) -> &'static str {
        "number"
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "a constant (test kind)"
    }
    fn inputs(&self) -> Vec<InputSlot> {
        Vec::new()
    }
    fn unused_params(&self, params: &NumberParams) -> Vec<&'static str> {
        if params.modulo != 0 {
            vec!["note"]
        } else {
            Vec::new()
        }
    }
    fn check(&self, params: &NumberParams) -> Vec<ParamProblem> {
        if params.value == 13 {
            vec![ParamProblem::new("value", "13 is not allowed in tests").with_hint("pick 12 or 14")]
        } else {
            Vec::new()
        }
    }
    fn build(
        &self,
        params: &NumberParams,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        common_build(context, &params.common)?;
        Ok(number_output(if params.modulo == 0 {
            params.value
        } else {
            params.value % params.modulo
        }))
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        metrics.get("value").map(|value| format!("= {value}"))
    }
}

/// Adds its inputs and an offset.
pub struct Sum;

crate::kind_params! {
    pub struct SumParams {
        ..common: CommonParams,
        offset: i64 { ty: ParamType::int(), default: 0, doc: "added to the sum" },
    }
}

impl NodeKind for Sum {
    type Params = SumParams;

    fn name(&self) -> &'static str {
        "sum"
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "the sum of its inputs (test kind)"
    }
    fn inputs(&self) -> Vec<InputSlot> {
        vec![InputSlot {
            name: "items",
            arity: Arity::Many,
            accepts: &["number", "sum", "file_digest"],
            doc: "numbers to add",
            reads: &["value"],
            names_in_key: false,
        }]
    }
    fn build(&self, params: &SumParams, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        common_build(context, &params.common)?;
        let mut total = params.offset;
        for input in context.inputs.get("items").into_iter().flatten() {
            let bytes = context.read(input, "value")?;
            let text = String::from_utf8_lossy(&bytes);
            total += text
                .trim()
                .parse::<i64>()
                .map_err(|_| BuildError::failed(format!("{} is not a number", input.describe())))?;
        }
        Ok(number_output(total))
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        metrics.get("value").map(|value| format!("= {value}"))
    }
}

/// The length of a file, to test external inputs.
pub struct FileDigest;

crate::kind_params! {
    pub struct FileDigestParams {
        ..common: CommonParams,
        path: String {
            ty: ParamType::Text,
            doc: "file or folder to read",
            in_key: false,
        },
    }
}

impl NodeKind for FileDigest {
    type Params = FileDigestParams;

    fn name(&self) -> &'static str {
        "file_digest"
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "the byte length of a file or folder (test kind)"
    }
    fn inputs(&self) -> Vec<InputSlot> {
        Vec::new()
    }
    fn external_inputs(
        &self,
        params: &FileDigestParams,
        project_dir: &Path,
    ) -> Result<Vec<PathBuf>, ParamProblem> {
        Ok(vec![project_dir.join(&params.path)])
    }
    fn build(
        &self,
        params: &FileDigestParams,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        common_build(context, &params.common)?;
        let (path, _) = context
            .external
            .first()
            .ok_or_else(|| BuildError::failed("no path"))?;
        let length = walkdir::WalkDir::new(path)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_file())
            .filter_map(|entry| entry.metadata().ok())
            .map(|metadata| metadata.len() as i64)
            .sum();
        Ok(number_output(length))
    }
}
