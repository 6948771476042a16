//! paper.yaml's own base net on its own data (baseB_s0: Fashion-MNIST, the similar split of seed
//! 0, task B, 1000 images per class), its first epoch, step by step against PyTorch.

use tpipe::data::fashion_mnist::{load_verified, FashionMnistOptions};
use tpipe::data::split::{split, SplitMethod, SplitOptions};
use tpipe_conformance::compare::{compare, StepDeviation};
use tpipe_conformance::torch::{read_outcomes, write_case, Precision};
use tpipe_conformance::{learning_rates, outcomes, Case, StepOutcome};
use tpipe_ml::{BackendChoice, ImageSet, TrainConfig};

use crate::fuzzed::TOLERANCE;
use crate::support::{assert_within, torch_or_skip};

/// The training images of paper.yaml's `baseB_s0`, or `None` (with a message) where Debian's
/// Fashion-MNIST is not installed and `TPIPE_REQUIRE_TORCH` is unset.
fn base_b_images() -> Option<ImageSet> {
    let Some(files) = FashionMnistOptions::from_env(None, false).locate() else {
        assert!(
            std::env::var_os("TPIPE_REQUIRE_TORCH").is_none(),
            "Fashion-MNIST is not installed (hint: apt-get install dataset-fashion-mnist)"
        );
        eprintln!(
            "skipped: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
        );
        return None;
    };
    let data = load_verified(&files).expect("Debian's Fashion-MNIST verifies");
    // split_similar_s0 of pipelines/paper.yaml.
    let options = SplitOptions {
        method: SplitMethod::Random {
            size_a: 0,
            size_b: 0,
        },
        seed: 0,
        images_per_class: 1000,
        test_images_per_class: 1000,
        validation_images_per_class: 0,
    };
    let task = split(&data.train, &data.test, &options).unwrap().b.train;
    Some(ImageSet {
        num_classes: task.class_names.len(),
        pixels: task.pixels,
        labels: task.labels,
        count: task.count,
        channels: task.channels,
        height: task.height,
        width: task.width,
    })
}

/// The largest deviation over the steps, where it was, and the median step's.
fn summary(deviations: &[StepDeviation]) -> String {
    let mut sizes: Vec<f64> = deviations
        .iter()
        .map(|deviation| deviation.parameters.max(deviation.momentum))
        .collect();
    let worst = deviations
        .iter()
        .max_by(|a, b| a.parameters.total_cmp(&b.parameters))
        .expect("steps");
    sizes.sort_by(f64::total_cmp);
    format!(
        "largest {:.2e} (step {}, {}), median {:.2e}",
        worst.parameters.max(worst.momentum),
        worst.step,
        worst.worst,
        sizes[sizes.len() / 2]
    )
}

#[test]
fn paper_base_net_steps_match_pytorch_for_a_whole_epoch() {
    let Some(torch) = torch_or_skip("paper_base_net_steps_match_pytorch_for_a_whole_epoch") else {
        return;
    };
    let Some(data) = base_b_images() else {
        return;
    };
    // The net and solver of paper.yaml's trainings; one epoch of 5,000 images in batches of
    // 64 is 79 steps, the last of 8 images.
    let case = Case {
        name: "paper.yaml baseB_s0, epoch 1".to_string(),
        net: tpipe_ml::paper_grid_net(),
        config: TrainConfig {
            epochs: 8,
            lr_step_epochs: 6,
            batch_size: 64,
            learning_rate: 0.01,
            seed: 0,
            ..TrainConfig::default()
        },
        steps: data.count.div_ceil(64),
        data,
        source: None,
    };
    let native = case.trace(BackendChoice::Native, None).unwrap();
    assert_eq!(native.steps.len(), 79);
    assert_eq!(native.steps[78].labels.len(), 8);
    let dir = tempfile::tempdir().unwrap();
    write_case(dir.path(), &case, &native).unwrap();
    let paths = [dir.path().to_path_buf()];
    torch.run(&paths, Precision::Float64, None).unwrap();
    // PyTorch's own f32, from the same float64 states: the scale of rounding at this size.
    torch
        .run(&paths, Precision::Float32, Some(Precision::Float64))
        .unwrap();
    let reference = read_outcomes(dir.path(), Precision::Float64).unwrap();
    let teacher: Vec<_> = reference.iter().map(|step| step.state.clone()).collect();
    let rates = learning_rates(&native);
    let torch_f32: Vec<StepOutcome> = read_outcomes(dir.path(), Precision::Float32).unwrap();
    let anchor = compare(&native.start, &reference, &torch_f32, 0, &rates);
    eprintln!(
        "PyTorch {} float32 against float64: {}",
        torch.version,
        summary(&anchor)
    );
    for backend in [BackendChoice::Native, BackendChoice::Flex] {
        let run = case.trace(backend, Some(&teacher)).unwrap();
        let deviations = compare(&native.start, &reference, &outcomes(&run), 0, &rates);
        eprintln!(
            "{backend:?} against PyTorch float64: {}",
            summary(&deviations)
        );
        assert_within(
            &deviations,
            TOLERANCE,
            &format!("{backend:?}, {}", case.name),
        );
    }
}
