//! PyTorch as the reference: writing a traced case where `torch_reference.py` reads it, running
//! the script, reading back what PyTorch computed.
//!
//! A case directory holds `case.json` (the net, the solver, the frozen layers, each step's
//! learning rate), `trace.safetensors` (the start, each step's inputs, labels and masks), and
//! after a run `torch-float64.safetensors` / `torch-float32.safetensors`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tpipe_ml::{LayerState, TrainingState, TrainingTrace, LAYER_NAMES};

use crate::{Case, StepOutcome};

/// The script, compiled in: Python reads it from stdin, so a test binary finds it wherever the
/// checkout it was built from has moved (a target dir shared between checkouts keeps a build
/// whose manifest path is another checkout's).
const SCRIPT: &str = include_str!("../torch_reference.py");

/// What can go wrong talking to PyTorch.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    #[error(
        "no Python with PyTorch found (tried {tried}) (hint: set TPIPE_TORCH_PYTHON to a python \
         that has `torch`, e.g. the virtualenv .ci/run makes: \
         /var/cache/tpipe-ci/torch-venv/bin/python)"
    )]
    NotFound { tried: String },
    #[error("`{command}` failed: {output}")]
    Failed { command: String, output: String },
    #[error("{path}: {message}")]
    BadOutput { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The precision PyTorch computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Float32,
    Float64,
}

impl Precision {
    fn word(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Float64 => "float64",
        }
    }

    /// The file a run in this precision writes in a case directory.
    pub fn output_file(self) -> String {
        format!("torch-{}.safetensors", self.word())
    }
}

/// A Python interpreter that imports torch.
#[derive(Clone, Debug)]
pub struct Torch {
    pub python: PathBuf,
    /// `torch.__version__`.
    pub version: String,
}

impl Torch {
    /// `TPIPE_TORCH_PYTHON` if set, else the virtualenv `.ci/run` keeps, else `python3`: the
    /// first that imports torch.
    pub fn find() -> Result<Torch, TorchError> {
        let candidates: Vec<PathBuf> = match std::env::var_os("TPIPE_TORCH_PYTHON") {
            Some(python) => vec![PathBuf::from(python)],
            None => vec![
                PathBuf::from("/var/cache/tpipe-ci/torch-venv/bin/python"),
                PathBuf::from("python3"),
            ],
        };
        for python in &candidates {
            let output = Command::new(python)
                .args(["-c", "import torch; print(torch.__version__)"])
                .output();
            if let Ok(output) = output {
                if output.status.success() {
                    return Ok(Torch {
                        python: python.clone(),
                        version: String::from_utf8_lossy(&output.stdout).trim().to_string(),
                    });
                }
            }
        }
        let tried: Vec<String> = candidates
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        Err(TorchError::NotFound {
            tried: tried.join(", "),
        })
    }

    /// Runs the reference over `cases` (directories `write_case` filled) in `precision`;
    /// with `teacher`, each step starts from that run's state after the step before.
    pub fn run(
        &self,
        cases: &[PathBuf],
        precision: Precision,
        teacher: Option<Precision>,
    ) -> Result<(), TorchError> {
        let mut command = Command::new(&self.python);
        command
            .arg("-")
            .args(["--dtype", precision.word()])
            .env("OMP_NUM_THREADS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(teacher) = teacher {
            command.args(["--teacher", &teacher.output_file()]);
        }
        command.args(cases);
        let io_error = |source| TorchError::Io {
            path: self.python.clone(),
            source,
        };
        let mut child = command.spawn().map_err(io_error)?;
        // The script (9 kB) fits in a pipe's buffer (64 kB): writing it whole before
        // reading the output cannot deadlock.
        let written = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(SCRIPT.as_bytes());
        let output = child.wait_with_output().map_err(io_error)?;
        written.map_err(io_error)?;
        if !output.status.success() {
            return Err(TorchError::Failed {
                command: format!("{} torch_reference.py (on stdin)", self.python.display()),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }
}

/// Little-endian bytes of f32 values.
fn bytes_of(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// Writes what PyTorch needs to repeat `trace` of `case` into `dir`.
pub fn write_case(dir: &Path, case: &Case, trace: &TrainingTrace) -> Result<(), TorchError> {
    let io = |source| TorchError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let net = &case.net;
    let description = serde_json::json!({
        "name": case.name,
        "conv": net.conv,
        "fc_widths": net.fc_widths,
        "num_classes": net.num_classes,
        "channels": net.channels,
        "height": net.height,
        "width": net.width,
        "frozen_layers": trace.frozen_layers,
        "steps": trace.steps.len(),
        "learning_rates": trace.steps.iter().map(|step| step.learning_rate).collect::<Vec<_>>(),
        "solver": {
            "learning_rate": case.config.learning_rate,
            "momentum": case.config.momentum,
            "weight_decay": case.config.weight_decay,
            "bias_lr_multiplier": case.config.bias_lr_multiplier,
        },
    });
    let text = serde_json::to_string_pretty(&description).expect("JSON values serialise");
    std::fs::write(dir.join("case.json"), text).map_err(io)?;

    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, layer) in LAYER_NAMES.iter().zip(&trace.start.layers) {
        tensors.push((
            format!("start.{name}.weight"),
            Dtype::F32,
            layer.weight_shape.clone(),
            bytes_of(&layer.weight),
        ));
        tensors.push((
            format!("start.{name}.bias"),
            Dtype::F32,
            vec![layer.bias.len()],
            bytes_of(&layer.bias),
        ));
    }
    for (index, step) in trace.steps.iter().enumerate() {
        let size = step.labels.len();
        tensors.push((
            format!("step{index}.inputs"),
            Dtype::F32,
            vec![size, net.channels, net.height, net.width],
            bytes_of(&step.inputs),
        ));
        let labels = step
            .labels
            .iter()
            .flat_map(|&label| i64::from(label).to_le_bytes())
            .collect();
        tensors.push((
            format!("step{index}.labels"),
            Dtype::I64,
            vec![size],
            labels,
        ));
        if let Some(masks) = &step.dropout_masks {
            for (layer, mask) in ["mask6", "mask7"].iter().zip(masks) {
                tensors.push((
                    format!("step{index}.{layer}"),
                    Dtype::F32,
                    vec![size, mask.len() / size],
                    bytes_of(mask),
                ));
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).expect("shape fits the data");
            (name.clone(), view)
        })
        .collect();
    let bytes = safetensors::serialize(views, None).expect("tensors serialise");
    std::fs::write(dir.join("trace.safetensors"), bytes).map_err(io)
}

/// What PyTorch computed for the case in `dir` in `precision`, step by step (values rounded to
/// f32, the precision tpipe compares in).
pub fn read_outcomes(dir: &Path, precision: Precision) -> Result<Vec<StepOutcome>, TorchError> {
    let path = dir.join(precision.output_file());
    let bad = |message: String| TorchError::BadOutput {
        path: path.clone(),
        message,
    };
    let bytes = std::fs::read(&path).map_err(|source| TorchError::Io {
        path: path.clone(),
        source,
    })?;
    let file =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|error| bad(format!("{error:?}")))?;
    let values = |name: &str| -> Option<Vec<f64>> {
        let view = file.tensor(name).ok()?;
        (view.dtype() == Dtype::F64).then(|| {
            view.data()
                .chunks_exact(8)
                .map(|chunk| f64::from_le_bytes(chunk.try_into().expect("8 bytes")))
                .collect()
        })
    };
    let single = |values: Vec<f64>| values.into_iter().map(|value| value as f32).collect();
    let mut outcomes = Vec::new();
    for step in 0.. {
        let Some(loss) = values(&format!("step{step}.loss")) else {
            break;
        };
        let mut layers = Vec::new();
        for name in LAYER_NAMES {
            let prefix = format!("step{step}.{name}");
            let weight = values(&format!("{prefix}.weight"))
                .ok_or_else(|| bad(format!("no `{prefix}.weight`")))?;
            let weight_shape = file
                .tensor(&format!("{prefix}.weight"))
                .map(|view| view.shape().to_vec())
                .map_err(|error| bad(format!("{error:?}")))?;
            let bias = values(&format!("{prefix}.bias"))
                .ok_or_else(|| bad(format!("no `{prefix}.bias`")))?;
            let velocity = match (
                values(&format!("{prefix}.weight_velocity")),
                values(&format!("{prefix}.bias_velocity")),
            ) {
                (Some(weight), Some(bias)) => Some((single(weight), single(bias))),
                _ => None,
            };
            layers.push(LayerState {
                weight: single(weight),
                weight_shape,
                bias: single(bias),
                velocity,
            });
        }
        outcomes.push(StepOutcome {
            loss: loss[0],
            state: TrainingState { layers },
        });
    }
    Ok(outcomes)
}
