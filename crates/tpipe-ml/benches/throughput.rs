//! Training-step throughput per CPU/GPU path, full and with n = 1, 3, 5, 7 frozen layers: the
//! reference net (28×28×1, batch 128) by default, the net of `pipelines/paper.yaml` (batch 64)
//! with `--paper-net`.
//!
//! ```text
//! cargo bench -p tpipe-ml --bench throughput -- \
//!     [--cpu-only | --native-only | --flex-only | --torch-only | --wgpu-only] \
//!     [--paper-net] [--batch N] [--steps N] [--warmup N] [--frozen N] [--conv1-as-conv]
//! ```
//! `--cpu-only` measures the native path, flex and, built with `--features torch`, LibTorch.
//! `--conv1-as-conv` runs flex's trainable conv1 as a convolution instead of a matmul
//! (`Numerics::conv1_as_conv`). With the `wgpu` feature and no GPU, set
//! `CUBECL_WGPU_DEFAULT_DEVICE=Cpu` to bench lavapipe.

use tpipe_ml::{bench_throughput, cpu_backends, paper_grid_net, BackendChoice, BenchOptions};

fn main() {
    let mut options = BenchOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("`{name}` needs a number"))
        };
        match arg.as_str() {
            "--cpu-only" => options.backends = cpu_backends(),
            "--flex-only" => options.backends = vec![BackendChoice::Flex],
            "--native-only" => options.backends = vec![BackendChoice::Native],
            "--torch-only" => options.backends = vec![BackendChoice::Torch],
            "--wgpu-only" => options.backends = vec![BackendChoice::Wgpu],
            "--steps" => options.timed_steps = number("--steps"),
            "--warmup" => options.warmup_steps = number("--warmup"),
            "--frozen" => options.frozen_layers = vec![number("--frozen")],
            "--conv1-as-conv" => options.numerics.conv1_as_conv = true,
            "--batch" => options.batch_size = number("--batch"),
            // The net of every training in pipelines/paper.yaml, at its batch size.
            "--paper-net" => {
                options.net = paper_grid_net();
                options.batch_size = 64;
            }
            // `cargo bench` passes `--bench`; other harness flags do not apply here.
            _ => {}
        }
    }
    let figures = match bench_throughput(&options) {
        Ok(figures) => figures,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    println!(
        "{:<40} {:>6} {:>7} {:>10} {:>8}   phases per step in ms: prepare forward backward update read-back",
        "backend", "frozen", "input", "img/s", "speedup"
    );
    let per_step =
        |duration: std::time::Duration| duration.as_secs_f64() * 1e3 / options.timed_steps as f64;
    for figure in &figures {
        let full = figures
            .iter()
            .find(|other| other.backend == figure.backend && other.frozen_layers == 0)
            .map(|other| other.images_per_second);
        let speedup = full.map_or(String::from("-"), |full| {
            format!("{:.2}x", figure.images_per_second / full)
        });
        let phases = figure.phases;
        println!(
            "{:<40} {:>6} {:>7} {:>10.1} {:>8}   {:.1} {:.1} {:.1} {:.1} {:.1}",
            figure.backend,
            figure.frozen_layers,
            if figure.cached_features {
                "cached"
            } else {
                "images"
            },
            figure.images_per_second,
            speedup,
            per_step(phases.prepare),
            per_step(phases.forward),
            per_step(phases.backward),
            per_step(phases.update),
            per_step(phases.read_back),
        );
    }
}
