//! `dataset`: decodes a data set once and stores its train and test sets as blobs
//! ([`Dataset::to_bytes`]), so every later node reads ready pixels.
//!
//! ```yaml
//! fashion: { kind: dataset, source: fashion-mnist }
//! toy:     { kind: dataset, source: synthetic, classes: 10, families: 2 }
//! photos:  { kind: dataset, source: image-folder, path: data/photos, size: 32 }
//! ```

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::data::cifar::Cifar100Classes;
use crate::data::fashion_mnist::{DownloadProgress, FashionMnistOptions};
use crate::data::image_folder::ImageFolderOptions;
use crate::data::source::Source;
use crate::data::synthetic::{SyntheticOptions, MIN_SIZE};
use crate::data::{Dataset, TrainTest};
use crate::kind::{Artifact, BuildContext, BuildError, BuildOutput, NodeKind, ParamProblem};
use crate::kinds::artifacts::{DatasetDescription, SetSummary};
use crate::schema::{Choice, InputSlot, ParamType};

tpipe_engine::choice_enum! {
    /// Where a data set's images come from.
    pub enum SourceName {
        FashionMnist = "fashion-mnist",
        MnistIdx = "mnist-idx",
        Cifar10 = "cifar10",
        Cifar100 = "cifar100",
        ImageFolder = "image-folder",
        Synthetic = "synthetic",
    }
}

tpipe_engine::choice_enum! {
    /// CIFAR-100's 100 fine classes or its 20 super-classes.
    pub enum Cifar100Labels { Fine = "fine", Coarse = "coarse" }
}

impl SourceName {
    /// Sources that read a folder named by `path`.
    fn needs_path(self) -> bool {
        matches!(
            self,
            SourceName::MnistIdx
                | SourceName::Cifar10
                | SourceName::Cifar100
                | SourceName::ImageFolder
        )
    }

    /// Which parameters the source reads (besides `source`, `path` and `download`, which are
    /// not in the key anyway). The rest are left out of the key.
    fn params_read(self) -> &'static [&'static str] {
        match self {
            SourceName::Synthetic => &[
                "seed",
                "classes",
                "families",
                "images_per_class",
                "test_images_per_class",
                "size",
                "channels",
            ],
            SourceName::ImageFolder => {
                &["seed", "size", "channels", "max_per_class", "test_fraction"]
            }
            SourceName::Cifar100 => &["labels"],
            SourceName::FashionMnist | SourceName::MnistIdx | SourceName::Cifar10 => &[],
        }
    }
}

/// Every source-specific parameter: those some source reads, each once. A source's unused
/// params are these minus its own, so a parameter added to `params_read` is left out of the
/// other sources' keys without a second list to keep in step.
fn source_specific_params() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = Vec::new();
    for source in SourceName::ALL {
        for param in source.params_read() {
            if !all.contains(param) {
                all.push(param);
            }
        }
    }
    all
}

tpipe_engine::kind_params! {
    /// The `dataset` kind's parameters.
    pub struct DatasetParams {
        source: SourceName {
            ty: ParamType::Choice(SourceName::WORDS),
            doc: "where the images come from",
        },
        path: String {
            ty: ParamType::Text,
            default: "",
            doc: "the data folder, relative to the project folder; needed by mnist-idx, cifar10, cifar100 and \
                  image-folder; for fashion-mnist a first place to look (its content, not its name, is in the key)",
            in_key: false,
        },
        download: bool {
            ty: ParamType::Bool,
            default: true,
            doc: "fashion-mnist: download it from its canonical address when no local copy is found",
            in_key: false,
        },
        seed: u64 {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "synthetic: the generated images; image-folder: which images are held out or kept",
        },
        classes: usize { ty: ParamType::int_at_least(2), default: 10, doc: "synthetic: number of classes" },
        families: usize {
            ty: ParamType::int_at_least(1),
            default: 2,
            doc: "synthetic: groups of classes sharing a stripe orientation (a `groups` split by family is dissimilar)",
        },
        images_per_class: usize {
            ty: ParamType::int_at_least(1),
            default: 500,
            doc: "synthetic: training images per class",
        },
        test_images_per_class: usize {
            ty: ParamType::int_at_least(1),
            default: 100,
            doc: "synthetic: held-out images per class",
        },
        size: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "synthetic, image-folder: side of the square images in pixels (0: 16 for synthetic, 32 for image-folder)",
        },
        channels: usize {
            ty: ParamType::int_range(0, 3),
            default: 0,
            doc: "synthetic, image-folder: 1 (grey) or 3 (colour) (0: 1 for synthetic, 3 for image-folder)",
        },
        class_list: String {
            ty: ParamType::Text,
            default: "",
            doc: "image-folder: a file naming the classes to use, one per line, in label order (empty: every folder)",
            in_key: false,
        },
        max_per_class: usize {
            ty: ParamType::int_at_least(0),
            default: 0,
            doc: "image-folder: at most this many images per class and set (0: all)",
        },
        test_fraction: f64 {
            ty: ParamType::Float { min: Some(0.0), max: Some(0.9) },
            default: 0.2,
            doc: "image-folder: share of each class held out, unless the folder has `train/` and `test/`",
        },
        labels: Cifar100Labels {
            ty: ParamType::Choice(Cifar100Labels::WORDS),
            default: "fine",
            doc: "cifar100: the 100 fine classes (super-classes kept for `groups` splits) or the 20 super-classes",
        },
    }
}

/// Image side and channels when `size`/`channels` are 0.
const SYNTHETIC_DEFAULT_SIZE: usize = 16;
const SYNTHETIC_DEFAULT_CHANNELS: usize = 1;
const IMAGE_FOLDER_DEFAULT_SIZE: usize = 32;
const IMAGE_FOLDER_DEFAULT_CHANNELS: usize = 3;

pub struct DatasetKind;

/// `path` resolved against the project folder (`~/` against the home folder); `None` if empty.
fn resolve(project_dir: &Path, path: &str) -> Option<PathBuf> {
    if path.is_empty() {
        return None;
    }
    if let (Some(rest), Some(home)) = (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        return Some(PathBuf::from(home).join(rest));
    }
    Some(project_dir.join(path))
}

fn or_default(value: usize, default: usize) -> usize {
    if value == 0 {
        default
    } else {
        value
    }
}

/// The source the parameters describe, with paths resolved. Parameters are already validated
/// by the spec layer and [`DatasetKind::check`], so an error here is a missing path only.
fn source_of(params: &DatasetParams, project_dir: &Path) -> Result<Source, ParamProblem> {
    let source = params.source;
    let path = resolve(project_dir, &params.path);
    let needs_path = || {
        path.clone().ok_or_else(|| {
            ParamProblem::new("path", format!("source `{}` needs `path`", source.word()))
        })
    };
    Ok(match source {
        SourceName::FashionMnist => {
            Source::FashionMnist(FashionMnistOptions::from_env(path.clone(), params.download))
        }
        SourceName::MnistIdx => Source::MnistIdx { dir: needs_path()? },
        SourceName::Cifar10 => Source::Cifar10 { dir: needs_path()? },
        SourceName::Cifar100 => Source::Cifar100 {
            dir: needs_path()?,
            classes: match params.labels {
                Cifar100Labels::Coarse => Cifar100Classes::Coarse,
                Cifar100Labels::Fine => Cifar100Classes::Fine,
            },
        },
        SourceName::ImageFolder => Source::ImageFolder {
            root: needs_path()?,
            options: ImageFolderOptions {
                size: or_default(params.size, IMAGE_FOLDER_DEFAULT_SIZE),
                channels: or_default(params.channels, IMAGE_FOLDER_DEFAULT_CHANNELS),
                class_list: resolve(project_dir, &params.class_list),
                max_per_class: Some(params.max_per_class).filter(|&limit| limit > 0),
                test_fraction: params.test_fraction,
                seed: params.seed,
            },
        },
        SourceName::Synthetic => Source::Synthetic(SyntheticOptions {
            seed: params.seed,
            classes: params.classes,
            families: params.families,
            images_per_class: params.images_per_class,
            test_images_per_class: params.test_images_per_class,
            size: or_default(params.size, SYNTHETIC_DEFAULT_SIZE),
            channels: or_default(params.channels, SYNTHETIC_DEFAULT_CHANNELS),
        }),
    })
}

/// How many images one set holds, in total and per class.
fn set_summary(set: &Dataset) -> SetSummary {
    SetSummary {
        images: set.count,
        per_class: set.class_counts(),
    }
}

fn download_message(progress: &DownloadProgress) -> (f64, String) {
    let megabytes = |bytes: u64| bytes as f64 / 1e6;
    let within_file = progress
        .total
        .filter(|&total| total > 0)
        .map_or(0.0, |total| progress.received as f64 / total as f64);
    let fraction =
        (progress.file_index as f64 + within_file.min(1.0)) / progress.file_count.max(1) as f64;
    let message = match progress.total {
        Some(total) => format!(
            "downloading {} ({:.1} of {:.1} MB)",
            progress.file,
            megabytes(progress.received),
            megabytes(total)
        ),
        None => format!(
            "downloading {} ({:.1} MB)",
            progress.file,
            megabytes(progress.received)
        ),
    };
    (fraction, message)
}

impl NodeKind for DatasetKind {
    type Params = DatasetParams;

    fn name(&self) -> &'static str {
        "dataset"
    }

    /// 2: writes `dataset.json`, so dependents learn the source from content. 3: `dataset.json`
    /// is a typed artifact with a format (`artifacts::DatasetDescription`).
    fn version(&self) -> u32 {
        3
    }

    fn about(&self) -> &'static str {
        "load a data set (Fashion-MNIST, IDX files, CIFAR, an image folder, or a generated one) into train and test sets"
    }

    fn inputs(&self) -> Vec<InputSlot> {
        Vec::new()
    }

    fn check(&self, params: &DatasetParams) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        let source = params.source;
        if source.needs_path() && params.path.is_empty() {
            let example = match source {
                SourceName::Cifar10 => "data/cifar-10-batches-bin",
                SourceName::Cifar100 => "data/cifar-100-binary",
                SourceName::ImageFolder => "data/photos",
                _ => "data/mnist",
            };
            problems.push(
                ParamProblem::new(
                    "path",
                    format!(
                        "source `{}` needs `path`, the folder that holds it",
                        source.word()
                    ),
                )
                .with_hint(format!(
                    "add `path: {example}` (relative to the project folder)"
                )),
            );
        }
        if source.params_read().contains(&"channels") && params.channels == 2 {
            problems.push(ParamProblem::new(
                "channels",
                "images have 1 (grey) or 3 (colour) channels, not 2",
            ));
        }
        if source == SourceName::Synthetic {
            let (classes, families) = (params.classes, params.families);
            if families > classes {
                problems.push(
                    ParamProblem::new(
                        "families",
                        format!("{families} families cannot be made from {classes} classes"),
                    )
                    .with_hint("use at most as many families as classes"),
                );
            }
            let size = params.size;
            if size != 0 && size < MIN_SIZE {
                problems.push(ParamProblem::new(
                    "size",
                    format!("synthetic images need at least {MIN_SIZE} pixels a side, not {size}"),
                ));
            }
        }
        if !params.class_list.is_empty() && source != SourceName::ImageFolder {
            problems.push(ParamProblem::new(
                "class_list",
                format!(
                    "`class_list` is only read by `source: image-folder`, not `{}`",
                    source.word()
                ),
            ));
        }
        problems
    }

    fn unused_params(&self, params: &DatasetParams) -> Vec<&'static str> {
        let reads = params.source.params_read();
        source_specific_params()
            .into_iter()
            .filter(|param| !reads.contains(param))
            .collect()
    }

    fn external_inputs(
        &self,
        params: &DatasetParams,
        project_dir: &Path,
    ) -> Result<Vec<PathBuf>, ParamProblem> {
        source_of(params, project_dir)?
            .files_read()
            .map_err(|error| ParamProblem::new("path", error.to_string()))
    }

    fn build(
        &self,
        params: &DatasetParams,
        context: &BuildContext,
    ) -> Result<BuildOutput, BuildError> {
        let source = source_of(params, context.project_dir).map_err(BuildError::failed)?;
        context.report_progress(0.0, "loading");
        let sets = source
            .load(&mut |progress| {
                let (fraction, message) = download_message(progress);
                context.report_progress(fraction * 0.9, message);
            })
            .map_err(BuildError::failed)?;
        if context.is_cancelled() {
            return Err(BuildError::Cancelled);
        }
        context.report_progress(0.9, "encoding");
        Ok(output_of(params.source.word(), &sets))
    }

    fn headline(&self, metrics: &Value) -> Option<String> {
        let images = |set: &str| metrics.get(set)?.get("images")?.as_u64();
        let classes = metrics.get("classes")?.as_u64()?;
        let shape = metrics.get("image_shape")?.as_array()?;
        let shape: Vec<String> = shape.iter().map(|side| side.to_string()).collect();
        Some(format!(
            "{}+{} images, {classes} classes, {}",
            images("train")?,
            images("test")?,
            shape.join("×")
        ))
    }
}

fn output_of(source: &str, sets: &TrainTest) -> BuildOutput {
    let train = &sets.train;
    let description = DatasetDescription {
        format: DatasetDescription::FORMAT,
        source: source.to_string(),
        classes: train.num_classes(),
        class_names: train.class_names.clone(),
        image_shape: [train.channels, train.height, train.width],
        train: set_summary(train),
        test: set_summary(&sets.test),
        groups: train
            .coarse_labels
            .is_some()
            .then(|| train.coarse_names.clone()),
    };
    BuildOutput {
        outputs: vec![
            ("train".into(), train.to_bytes()),
            ("test".into(), sets.test.to_bytes()),
            // What the data set is, for dependents: builds never read another node's metrics.
            (DatasetDescription::OUTPUT.into(), description.to_bytes()),
        ],
        metrics: serde_json::to_value(&description).expect("artifacts always serialise"),
        backend: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use serde_json::{json, Map};

    use super::*;
    use crate::cache::Cache;
    // Not `AnyKind` by name: its methods would clash with `NodeKind`'s on the kinds themselves.
    use crate::kind::{BuildOptions, InputArtifact, Progress};
    use crate::schema::Params;

    /// Runs `kind` the way the engine would, with `inputs` already in `cache`.
    pub(crate) fn build_with(
        kind: &dyn crate::kind::AnyKind,
        params: &Map<String, Value>,
        inputs: BTreeMap<String, Vec<InputArtifact>>,
        cache: &Cache,
        project_dir: &Path,
    ) -> Result<BuildOutput, BuildError> {
        let cancel = AtomicBool::new(false);
        let progress = |_: Progress| {};
        let options = BuildOptions::default();
        let context = BuildContext {
            node: "node",
            params,
            inputs,
            external: Vec::new(),
            project_dir,
            options: &options,
            cancel: &cancel,
            progress: &progress,
            cache,
        };
        kind.build(&context)
    }

    /// The kind's parameters with their defaults, then `overrides`.
    pub(crate) fn params_with(
        kind: &dyn crate::kind::AnyKind,
        overrides: Value,
    ) -> Map<String, Value> {
        let mut params: Map<String, Value> = kind
            .params()
            .into_iter()
            .filter_map(|spec| spec.default.map(|default| (spec.name.to_string(), default)))
            .collect();
        params.extend(overrides.as_object().cloned().unwrap_or_default());
        params
    }

    /// [`params_with`] read into the kind's typed parameters, as its hooks receive them.
    pub(crate) fn typed_with<K: NodeKind>(kind: &K, overrides: Value) -> K::Params {
        K::Params::from_map(&params_with(kind, overrides)).expect("the parameters fit the kind")
    }

    #[test]
    fn a_synthetic_dataset_builds_into_train_and_test_blobs() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(cache_dir.path()).unwrap();
        let params = params_with(
            &DatasetKind,
            json!({ "source": "synthetic", "classes": 4, "images_per_class": 6, "test_images_per_class": 2 }),
        );
        let output = build_with(
            &DatasetKind,
            &params,
            BTreeMap::new(),
            &cache,
            cache_dir.path(),
        )
        .unwrap();
        let names: Vec<&str> = output
            .outputs
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, vec!["train", "test", DatasetDescription::OUTPUT]);
        // Dependents learn what the data set is from this output, never from metrics.
        let description: Value = serde_json::from_slice(&output.outputs[2].1).unwrap();
        assert_eq!(description, output.metrics);
        assert_eq!(description["source"], "synthetic");
        let train = Dataset::from_bytes(&output.outputs[0].1).unwrap();
        assert_eq!(
            (train.count, train.channels, train.height, train.width),
            (24, 1, 16, 16)
        );
        assert_eq!(Dataset::from_bytes(&output.outputs[1].1).unwrap().count, 8);
        assert_eq!(output.metrics["train"]["per_class"], json!([6, 6, 6, 6]));
        assert_eq!(output.metrics["groups"], json!(["family0", "family1"]));
        assert_eq!(
            DatasetKind.headline(&output.metrics).unwrap(),
            "24+8 images, 4 classes, 1×16×16"
        );
        let again = build_with(
            &DatasetKind,
            &params,
            BTreeMap::new(),
            &cache,
            cache_dir.path(),
        )
        .unwrap();
        assert_eq!(
            again.outputs, output.outputs,
            "building twice gives the same bytes"
        );
    }

    #[test]
    fn an_idx_folder_is_found_relative_to_the_project_and_hashed_file_by_file() {
        let project = tempfile::tempdir().unwrap();
        let dir = project.path().join("data").join("digits");
        std::fs::create_dir_all(&dir).unwrap();
        crate::data::idx::tests::write_idx_dir(&dir, true);
        let params = params_with(
            &DatasetKind,
            json!({ "source": "mnist-idx", "path": "data/digits" }),
        );
        let files = DatasetKind
            .external_inputs(&DatasetParams::from_map(&params).unwrap(), project.path())
            .unwrap();
        assert_eq!(files.len(), 4);
        assert!(
            files
                .iter()
                .all(|file| file.starts_with(&dir) && file.is_file()),
            "{files:?}"
        );

        let cache = Cache::open(&project.path().join("cache")).unwrap();
        let output = build_with(
            &DatasetKind,
            &params,
            BTreeMap::new(),
            &cache,
            project.path(),
        )
        .unwrap();
        assert_eq!(
            DatasetKind.headline(&output.metrics).unwrap(),
            "3+2 images, 4 classes, 1×2×2"
        );

        let missing = typed_with(
            &DatasetKind,
            json!({ "source": "cifar10", "path": "data/nothing" }),
        );
        let error = DatasetKind
            .external_inputs(&missing, project.path())
            .unwrap_err();
        assert!(
            error.message.contains("nothing` has no `data_batch_1.bin`"),
            "{error}"
        );
    }

    #[test]
    fn fashion_mnist_reads_no_external_files_because_its_content_is_pinned() {
        let params = typed_with(
            &DatasetKind,
            json!({ "source": "fashion-mnist", "path": "anywhere" }),
        );
        assert_eq!(
            DatasetKind
                .external_inputs(&params, Path::new("/project"))
                .unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn image_folder_hashes_the_folder_and_the_class_list() {
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(project.path().join("photos").join("cat")).unwrap();
        let params = typed_with(
            &DatasetKind,
            json!({ "source": "image-folder", "path": "photos", "class_list": "classes.txt" }),
        );
        let files = DatasetKind
            .external_inputs(&params, project.path())
            .unwrap();
        assert_eq!(
            files,
            vec![
                project.path().join("photos"),
                project.path().join("classes.txt")
            ]
        );
    }

    #[test]
    fn only_the_chosen_source_s_parameters_are_in_the_key() {
        let unused = |source: &str| {
            DatasetKind.unused_params(&typed_with(&DatasetKind, json!({ "source": source })))
        };
        let synthetic = unused("synthetic");
        assert!(
            synthetic.contains(&"labels")
                && synthetic.contains(&"test_fraction")
                && !synthetic.contains(&"seed")
        );
        let all = source_specific_params();
        assert_eq!(all.len(), 10, "{all:?}");
        assert_eq!(unused("fashion-mnist"), all);
        assert_eq!(unused("cifar100").len(), all.len() - 1);
        assert!(!unused("image-folder").contains(&"max_per_class"));
    }

    #[test]
    fn check_reports_missing_paths_and_impossible_settings_with_hints() {
        let problems = DatasetKind.check(&typed_with(&DatasetKind, json!({ "source": "cifar10" })));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].param.as_deref(), Some("path"));
        assert_eq!(
            problems[0].message,
            "source `cifar10` needs `path`, the folder that holds it"
        );
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("add `path: data/cifar-10-batches-bin` (relative to the project folder)")
        );

        let problems = DatasetKind.check(&typed_with(
            &DatasetKind,
            json!({ "source": "synthetic", "classes": 3, "families": 4, "channels": 2, "size": 5 }),
        ));
        let at: Vec<&str> = problems
            .iter()
            .filter_map(|problem| problem.param.as_deref())
            .collect();
        assert_eq!(at, vec!["channels", "families", "size"]);

        assert!(DatasetKind
            .check(&typed_with(
                &DatasetKind,
                json!({ "source": "fashion-mnist" })
            ))
            .is_empty());
        let problems = DatasetKind.check(&typed_with(
            &DatasetKind,
            json!({ "source": "synthetic", "class_list": "c.txt" }),
        ));
        assert_eq!(
            problems[0].message,
            "`class_list` is only read by `source: image-folder`, not `synthetic`"
        );
    }

    #[test]
    fn download_progress_becomes_a_fraction_of_all_files() {
        let progress = DownloadProgress {
            file: "t10k-images-idx3-ubyte.gz".into(),
            file_index: 2,
            file_count: 4,
            received: 2_000_000,
            total: Some(4_000_000),
        };
        let (fraction, message) = download_message(&progress);
        assert!((fraction - 0.625).abs() < 1e-9);
        assert_eq!(
            message,
            "downloading t10k-images-idx3-ubyte.gz (2.0 of 4.0 MB)"
        );
    }
}
