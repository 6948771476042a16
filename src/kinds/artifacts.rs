//! What travels between nodes: each JSON artifact a kind writes and another reads is one serde
//! type here, written and read through that type by every kind and by the report. Each has a
//! `format` (its [`Artifact::FORMAT`]), refuses unknown fields, and needs every field: a field
//! that may be empty is written as `null`, never left out. So a renamed field is a compile
//! error, and an old or foreign file a load error naming the artifact and the node.
//!
//! - `dataset.json` ([`DatasetDescription`]): written by `dataset`, read by `split`.
//! - `split.json` ([`SplitDescription`]): written by `split`, read by `evaluate`.
//! - the weights' `tpipe.lineage` metadata ([`Lineage`]): written by `train` and `transfer`,
//!   read by `transfer` (its base's) and `evaluate`.
//! - `evaluation.json` ([`Evaluation`]): written by `evaluate`, read by `report`.
//! - `results.csv` rows ([`ResultRow`]): written by `report` for people and scripts.
//!
//! The similar/dissimilar word of a split is its *relation* everywhere: the `split` kind's
//! parameter, `split.json`, `evaluation.json`, the report's tables and text.
//!
//! Changing a layout: change the type, bump its `FORMAT` and the version of the kind that
//! writes it (older cache entries then are misses, never errors), and say why at the version.

use serde::{Deserialize, Serialize};
use tpipe_engine::kind::{Artifact, ArtifactProblem};

/// Reads an `Option` field that must be there (as `null` when empty): serde would otherwise
/// take a missing `Option` for `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// `dataset.json`: what a data set is, for the nodes that read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetDescription {
    pub format: u32,
    /// The source's word (`fashion-mnist`, `synthetic`, …).
    pub source: String,
    pub classes: usize,
    pub class_names: Vec<String>,
    /// Channels, height, width.
    pub image_shape: [usize; 3],
    pub train: SetSummary,
    pub test: SetSummary,
    /// The coarse groups (CIFAR-100 super-classes, synthetic families) when the source has
    /// them.
    #[serde(deserialize_with = "present")]
    pub groups: Option<Vec<String>>,
}

/// How many images one set holds, in total and per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSummary {
    pub images: usize,
    pub per_class: Vec<usize>,
}

impl Artifact for DatasetDescription {
    const OUTPUT: &'static str = "dataset.json";
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.format
    }
}

/// `split.json`: which split a task's images come from, for the nodes that score on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitDescription {
    pub format: u32,
    /// Unique per split the report pairs runs within: the relation, and the seed where it
    /// draws something (`similar s0`).
    pub id: String,
    /// What tasks A and B are to each other (`similar`, `dissimilar`, or the user's word).
    pub relation: String,
    /// How the classes were divided (`random`, `classes`, `groups`).
    pub method: String,
    /// The seed, when it draws anything (`null` otherwise: it is then not in the key).
    #[serde(deserialize_with = "present")]
    pub seed: Option<u64>,
    /// The data set's source (its `dataset.json`).
    pub dataset: String,
    pub a: TaskDescription,
    pub b: TaskDescription,
}

/// One task of a split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDescription {
    /// Class names, in the task's label order.
    pub classes: Vec<String>,
    /// Each class's label in the data set.
    pub original_labels: Vec<u32>,
    pub train_images: usize,
    pub test_images: usize,
    /// Carved out of the training pool (0: no validation set).
    pub validation_images: usize,
}

impl SplitDescription {
    /// Task `A` or `B`.
    pub fn task(&self, task: &str) -> &TaskDescription {
        if task == "A" {
            &self.a
        } else {
            &self.b
        }
    }
}

impl Artifact for SplitDescription {
    const OUTPUT: &'static str = "split.json";
    /// 2: each task counts its validation images.
    const FORMAT: u32 = 2;
    fn format(&self) -> u32 {
        self.format
    }
}

/// How a net was made, in its weights' metadata ([`Lineage::METADATA`]), so every later node
/// learns it from content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    pub format: u32,
    /// In the paper's notation: `baseA`, `AnB`, `BnB+`, `random`, ….
    pub variant: String,
    /// The task it was trained on (`A` or `B`).
    pub task: String,
    /// The task its copied layers came from; `random` for the random-weights control, its
    /// own task for a base.
    pub source_task: String,
    /// n: how many lower layers were copied (0 for a base).
    pub layers_copied: usize,
    /// Whether the copied layers trained too.
    pub fine_tuned: bool,
    pub seed: u64,
    /// For the random-weights control, how its frozen random layers were drawn (`paper`:
    /// the paper's Gaussians; `modern`: He normal); `null` for every other net.
    #[serde(deserialize_with = "present")]
    pub random_init: Option<String>,
    /// The base net's own lineage (`null` for a base or a random-weights control).
    #[serde(deserialize_with = "present")]
    pub base: Option<Box<Lineage>>,
}

impl Lineage {
    /// The safetensors metadata entry that holds it (JSON).
    pub const METADATA: &'static str = "tpipe.lineage";
    /// 2: `random_init`; a base trained as a control can be named (`longbaseB`).
    pub const FORMAT: u32 = 2;

    /// Its text in the weights' metadata.
    pub fn to_metadata(&self) -> String {
        serde_json::to_string(self).expect("lineages always serialise")
    }

    /// Reads the text [`Lineage::to_metadata`] wrote, in this format.
    pub fn from_metadata(text: &str) -> Result<Lineage, ArtifactProblem> {
        let lineage: Lineage = serde_json::from_str(text)?;
        if lineage.format != Self::FORMAT {
            return Err(ArtifactProblem::Format {
                found: lineage.format,
                expected: Self::FORMAT,
            });
        }
        Ok(lineage)
    }
}

/// `evaluation.json`: one net scored on one task, with what the report needs to place it.
/// Three parts, each the place for fields of its kind: `net` (how the net was made: its
/// lineage), `data` (what it was scored on: the split and task) and `scores` (what it
/// achieved). A new field goes into its part, with `FORMAT` and the `evaluate` kind's version
/// bumped, and its reader in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    pub format: u32,
    pub net: Lineage,
    pub data: EvaluatedData,
    pub scores: Scores,
}

/// The data a net was scored on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatedData {
    /// The split's id (see [`SplitDescription::id`]).
    pub split: String,
    /// The split's relation (see [`SplitDescription::relation`]).
    pub relation: String,
    /// The data set's source.
    pub dataset: String,
    /// The task scored on (`A` or `B`): the target task.
    pub task: String,
    /// That task's classes, in label order.
    pub classes: Vec<String>,
    pub num_classes: usize,
    /// Which of the task's images: `test` (held out) or `validation` (carved out of the
    /// training pool, for choosing a protocol).
    pub images: String,
}

/// What a net achieved on the held-out images of its task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scores {
    /// Share of images whose highest logit is their label.
    pub top1: f64,
    /// Share of images whose label is among the five highest logits (1 with five classes or
    /// fewer).
    pub top5: f64,
    /// Images scored.
    pub count: usize,
    /// Top-1 within each class; `null` for a class with no images.
    pub per_class_accuracy: Vec<Option<f64>>,
    /// `confusion[label][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

impl Artifact for Evaluation {
    const OUTPUT: &'static str = "evaluation.json";
    /// 2: `data.images` (test or validation); the lineage's `random_init`.
    const FORMAT: u32 = 2;
    fn format(&self) -> u32 {
        self.format
    }
}

/// One row of the report's `results.csv`: one run. The header is these fields' names, in
/// this order ([`ResultRow::HEADER`]); [`ResultRow::cells`] gives the values in the same order.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    pub node: String,
    pub relation: String,
    pub split: String,
    pub target_task: String,
    pub variant: String,
    pub paper_variant: String,
    pub layers_copied: u32,
    pub seed: u64,
    pub top1: f64,
    /// Left blank for five classes or fewer, where top-5 is 1 by construction.
    pub top5: Option<f64>,
    pub images: u64,
    pub num_classes: u64,
    pub chance_level: bool,
    /// Against the base of its unit and target task, in points; blank without one.
    pub delta_vs_base_points: Option<f64>,
    /// The target task's classes, in label order, `;`-separated.
    pub classes: String,
    /// Which images scored it: `test` or `validation`.
    pub scored_on: String,
}

impl ResultRow {
    pub const HEADER: &'static str = "node,relation,split,target_task,variant,paper_variant,layers_copied,seed,top1,top5,images,num_classes,chance_level,delta_vs_base_points,classes,scored_on";

    /// The values of [`ResultRow::HEADER`]'s columns, formatted (text not yet quoted).
    pub fn cells(&self) -> [String; 16] {
        [
            self.node.clone(),
            self.relation.clone(),
            self.split.clone(),
            self.target_task.clone(),
            self.variant.clone(),
            self.paper_variant.clone(),
            self.layers_copied.to_string(),
            self.seed.to_string(),
            format!("{:.6}", self.top1),
            self.top5
                .map(|top5| format!("{top5:.6}"))
                .unwrap_or_default(),
            self.images.to_string(),
            self.num_classes.to_string(),
            self.chance_level.to_string(),
            self.delta_vs_base_points
                .map(|points| format!("{points:.4}"))
                .unwrap_or_default(),
            self.classes.clone(),
            self.scored_on.clone(),
        ]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A lineage as `train` or `transfer` writes it.
    pub(crate) fn lineage(variant: &str, layers_copied: usize, seed: u64) -> Lineage {
        Lineage {
            format: Lineage::FORMAT,
            variant: variant.to_string(),
            task: "B".to_string(),
            source_task: "A".to_string(),
            layers_copied,
            fine_tuned: variant.ends_with('+'),
            seed,
            random_init: None,
            base: None,
        }
    }

    #[test]
    fn a_missing_or_unknown_field_or_another_format_is_an_error_never_a_default() {
        let written = lineage("AnB", 3, 7);
        let text = written.to_metadata();
        assert_eq!(Lineage::from_metadata(&text).unwrap(), written);
        let without_base = text.replace(",\"base\":null", "");
        let error = Lineage::from_metadata(&without_base)
            .unwrap_err()
            .to_string();
        assert!(error.contains("missing field `base`"), "{error}");
        let with_extra = text.replace("\"seed\":7", "\"seed\":7,\"label\":\"similar\"");
        let error = Lineage::from_metadata(&with_extra).unwrap_err().to_string();
        assert!(error.contains("unknown field `label`"), "{error}");
        let older = text.replace("\"format\":2", "\"format\":1");
        let error = Lineage::from_metadata(&older).unwrap_err().to_string();
        assert_eq!(error, "it is in format 1, and this tpipe reads format 2");
    }

    #[test]
    fn the_csv_header_and_a_rows_cells_line_up() {
        let columns = ResultRow::HEADER.split(',').count();
        let row = ResultRow {
            node: "n".into(),
            relation: "similar".into(),
            split: "similar s0".into(),
            target_task: "B".into(),
            variant: "AnB".into(),
            paper_variant: "AnB".into(),
            layers_copied: 3,
            seed: 0,
            top1: 0.5,
            top5: None,
            images: 10,
            num_classes: 5,
            chance_level: false,
            delta_vs_base_points: Some(-1.0),
            classes: "Pullover;Dress".into(),
            scored_on: "test".into(),
        };
        assert_eq!(row.cells().len(), columns);
        assert_eq!(
            row.cells().join(","),
            "n,similar,similar s0,B,AnB,AnB,3,0,0.500000,,10,5,false,-1.0000,Pullover;Dress,test"
        );
    }
}
