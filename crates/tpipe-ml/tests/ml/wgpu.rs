//! The wgpu backend agrees with flex. Runs on whatever adapter wgpu picks; on a machine without
//! a GPU that is lavapipe, which this module selects with `CUBECL_WGPU_DEFAULT_DEVICE=Cpu` unless
//! the variable is already set.

use tpipe_ml::{evaluate, train, BackendChoice, RunOptions, TrainConfig};

use crate::support::{cpu, quadrant_images, quick_config, tiny_net};

fn wgpu() -> RunOptions<'static> {
    if std::env::var_os("CUBECL_WGPU_DEFAULT_DEVICE").is_none() {
        // Each test runs in its own process under nextest, before any wgpu device exists.
        std::env::set_var("CUBECL_WGPU_DEFAULT_DEVICE", "Cpu");
    }
    RunOptions {
        backend: BackendChoice::Wgpu,
        ..RunOptions::default()
    }
}

#[test]
fn wgpu_trains_like_flex_and_both_score_its_weights_alike() {
    let net = tiny_net(1);
    let data = quadrant_images(64, 1, 1, 250);
    let config = TrainConfig {
        epochs: 2,
        ..quick_config(5)
    };
    let on_gpu = train(&net, &config, &data, None, &wgpu()).unwrap();
    assert!(on_gpu.backend.starts_with("wgpu ("), "{}", on_gpu.backend);
    let on_cpu = train(&net, &config, &data, None, &cpu()).unwrap();
    // Same initial weights, batches and masks: only rounding differs.
    for (gpu_loss, cpu_loss) in on_gpu.epoch_losses.iter().zip(&on_cpu.epoch_losses) {
        assert!(
            (gpu_loss - cpu_loss).abs() <= 1e-3 * cpu_loss.abs(),
            "wgpu losses {:?}, flex losses {:?}",
            on_gpu.epoch_losses,
            on_cpu.epoch_losses
        );
    }

    let held_out = quadrant_images(100, 1, 9, 250);
    let scored_on_gpu = evaluate(&net, &on_gpu.weights, &held_out, &wgpu()).unwrap();
    let scored_on_cpu = evaluate(&net, &on_gpu.weights, &held_out, &cpu()).unwrap();
    let differing: u64 = scored_on_gpu
        .confusion
        .iter()
        .flatten()
        .zip(scored_on_cpu.confusion.iter().flatten())
        .map(|(a, b)| a.abs_diff(*b))
        .sum();
    // A prediction can flip only where two logits tie to within rounding.
    assert!(
        differing <= 2,
        "confusion on wgpu {:?}, on flex {:?}",
        scored_on_gpu.confusion,
        scored_on_cpu.confusion
    );
    assert!((scored_on_gpu.top1 - scored_on_cpu.top1).abs() <= 0.01);
}
