//! Scoring trained weights on a labelled image set.

use crate::backend;
use crate::config::NetConfig;
use crate::data::{images_tensor, ImageSet};
use crate::error::MlError;
use crate::native::{NativeNet, ThreadPlan};
use crate::network::{read_back, Network, Tracking};
use crate::options::RunOptions;
use crate::trainer::{for_each_chunk, rank_of};
use crate::weights::HostWeights;

/// The forward pass of the resolved backend.
enum Scorer {
    Burn(Box<Network>),
    Native(Box<NativeNet>, ThreadPlan),
}

/// Accuracy figures of a net on an image set.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Share of images whose highest logit is their label.
    pub top1: f64,
    /// Share of images whose label is among the five highest logits (all classes when there are
    /// five or fewer, making it 1).
    pub top5: f64,
    /// Top-1 accuracy within each class; NaN (JSON `null`) for a class with no images.
    pub per_class_accuracy: Vec<f64>,
    /// `confusion[label][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Number of images scored.
    pub count: usize,
    /// The backend that ran: `flex` or `wgpu (<adapter>)`.
    pub backend: String,
}

/// Index of the highest value, the lowest index among equals.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (class, &value) in row.iter().enumerate().skip(1) {
        if value > row[best] {
            best = class;
        }
    }
    best
}

/// Evaluates `weights` (as `train` returned them) on `data`, without dropout or augmentation,
/// using the input normalisation stored in the weights.
pub fn evaluate(
    net: &NetConfig,
    weights: &[u8],
    data: &ImageSet,
    options: &RunOptions<'_>,
) -> Result<Evaluation, MlError> {
    let geometry = net.geometry()?;
    data.check_for(&geometry, net.num_classes)?;
    let host = HostWeights::from_safetensors(weights, net, &geometry)?;
    let normalization = host.normalization.ok_or_else(|| {
        MlError::BadWeights(
            "they carry no input normalisation; untrained `initial_weights` cannot be evaluated \
             (hint: evaluate the output of `train`)"
                .to_string(),
        )
    })?;
    let backend = backend::resolve(options.backend)?;
    let mut scorer = if backend.native {
        Scorer::Native(
            Box::new(NativeNet::new(host.layers, net)?),
            ThreadPlan::enter()?,
        )
    } else {
        Scorer::Burn(Box::new(Network::upload(
            &host.layers,
            &geometry,
            &backend.device,
        )))
    };
    let tables = normalization.lookup_tables();

    let classes = net.num_classes;
    let mut confusion = vec![vec![0u64; classes]; classes];
    let (mut top1_hits, mut top5_hits) = (0usize, 0usize);
    for_each_chunk(data, &tables, options.cancel, |pixels, chunk| {
        let burn_logits;
        let logits: &[f32] = match &mut scorer {
            Scorer::Native(net, plan) => plan.run(|| net.logits(pixels, chunk.len())),
            Scorer::Burn(network) => {
                let input = images_tensor(pixels.to_vec(), chunk.len(), &geometry, &backend.device);
                burn_logits =
                    read_back(network.forward(input, Tracking::Off, None), &backend.name)?;
                &burn_logits
            }
        };
        for (row, &index) in logits.chunks_exact(classes).zip(chunk) {
            let label = data.labels[index] as usize;
            let rank = rank_of(row, label);
            top1_hits += usize::from(rank == 0);
            top5_hits += usize::from(rank < 5);
            let predicted = argmax(row);
            confusion[label][predicted] += 1;
        }
        Ok(())
    })?;

    let per_class_accuracy = confusion
        .iter()
        .enumerate()
        .map(|(label, row)| {
            let total: u64 = row.iter().sum();
            if total == 0 {
                f64::NAN
            } else {
                row[label] as f64 / total as f64
            }
        })
        .collect();
    Ok(Evaluation {
        top1: top1_hits as f64 / data.count as f64,
        top5: top5_hits as f64 / data.count as f64,
        per_class_accuracy,
        confusion,
        count: data.count,
        backend: backend.name,
    })
}
