//! Small, fast kinds for exercising the engine in tests (no data, no training). The `tpipe`
//! binary offers them only when `TPIPE_TEST_KINDS=1`, so process-level tests (two processes on
//! one cache, a run killed and resumed) can drive the real CLI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::kind::{BuildContext, BuildError, BuildOutput, KindRegistry, NodeKind, ParamProblem};
use crate::schema::{Arity, InputSlot, ParamSpec, ParamType};

/// The test kinds: `number`, `sum` and `file_digest`.
pub fn registry() -> KindRegistry {
    let mut registry = KindRegistry::new();
    registry.register(Number).register(Sum).register(FileDigest);
    registry
}

fn common_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::optional(
            "sleep_ms",
            ParamType::int_at_least(0),
            0,
            "pause while building, to test interruption",
        )
        .not_in_key(),
        ParamSpec::optional("fail", ParamType::Bool, false, "make the build fail"),
        ParamSpec::optional(
            "log",
            ParamType::Text,
            "",
            "file to append the node name to on every build",
        )
        .not_in_key(),
    ]
}

/// Sleeps in small steps so cancellation is noticed; appends to the build log; fails on request.
fn common_build(context: &BuildContext) -> Result<(), BuildError> {
    let log = context.param_str("log")?;
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
    let mut remaining = context.param_u64("sleep_ms")?;
    while remaining > 0 {
        if context.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        let step = remaining.min(20);
        std::thread::sleep(Duration::from_millis(step));
        remaining -= step;
        context.report_progress(0.5, "sleeping");
    }
    if context.param_bool("fail")? {
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

impl NodeKind for Number {
    fn name(&self) -> &'static str {
        "number"
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "a constant (test kind)"
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut params = vec![
            ParamSpec::required("value", ParamType::int(), "the number"),
            ParamSpec::optional(
                "modulo",
                ParamType::int_at_least(0),
                0,
                "output value % modulo when not 0",
            ),
            ParamSpec::optional("note", ParamType::Text, "", "read only when `modulo` is 0"),
        ];
        params.extend(common_params());
        params
    }
    fn inputs(&self) -> Vec<InputSlot> {
        Vec::new()
    }
    fn unused_params(&self, params: &Map<String, Value>) -> Vec<&'static str> {
        if params.get("modulo").and_then(Value::as_i64).unwrap_or(0) != 0 {
            vec!["note"]
        } else {
            Vec::new()
        }
    }
    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        match params.get("value").and_then(Value::as_i64) {
            Some(value) if value == 13 => {
                vec![ParamProblem::new("value", "13 is not allowed in tests")
                    .with_hint("pick 12 or 14")]
            }
            _ => Vec::new(),
        }
    }
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        common_build(context)?;
        let value = context.param("value")?.as_i64().unwrap_or_default();
        let modulo = context.param("modulo")?.as_i64().unwrap_or_default();
        Ok(number_output(if modulo == 0 {
            value
        } else {
            value % modulo
        }))
    }
    fn headline(&self, metrics: &Value) -> Option<String> {
        metrics.get("value").map(|value| format!("= {value}"))
    }
}

/// Adds its inputs and an offset.
pub struct Sum;

impl NodeKind for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "the sum of its inputs (test kind)"
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut params = vec![ParamSpec::optional(
            "offset",
            ParamType::int(),
            0,
            "added to the sum",
        )];
        params.extend(common_params());
        params
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
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        common_build(context)?;
        let mut total = context.param("offset")?.as_i64().unwrap_or_default();
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

impl NodeKind for FileDigest {
    fn name(&self) -> &'static str {
        "file_digest"
    }
    fn version(&self) -> u32 {
        1
    }
    fn about(&self) -> &'static str {
        "the byte length of a file or folder (test kind)"
    }
    fn params(&self) -> Vec<ParamSpec> {
        let mut params =
            vec![
                ParamSpec::required("path", ParamType::Text, "file or folder to read").not_in_key(),
            ];
        params.extend(common_params());
        params
    }
    fn inputs(&self) -> Vec<InputSlot> {
        Vec::new()
    }
    fn external_inputs(
        &self,
        params: &Map<String, Value>,
        project_dir: &Path,
    ) -> Result<Vec<PathBuf>, String> {
        let path = params
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(vec![project_dir.join(path)])
    }
    fn build(&self, context: &BuildContext) -> Result<BuildOutput, BuildError> {
        common_build(context)?;
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
