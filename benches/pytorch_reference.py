"""PyTorch's training throughput on tpipe's reference net, for comparing with tpipe-ml.

The net, batch and solver match `tpipe_ml::bench_throughput` (the `throughput` bench): 28×28×1
input, conv 24-64-96-96-64 (3×3, padding 1, 2×2 max-pool after conv1, conv2, conv5), fc 512-512
with dropout 0.5, 10 classes, batch 128, SGD lr 0.01, momentum 0.9, weight decay 5e-4 on weights
only, biases at 2× lr. Random images, the step timed in-process after warm-up steps.

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    /tmp/torchenv/bin/python benches/pytorch_reference.py [--steps 20] [--rounds 3] [--frozen N]
"""

import argparse
import time

import torch
from torch import nn


def reference_net() -> nn.Sequential:
    def conv(cin, cout, pool):
        layers = [nn.Conv2d(cin, cout, 3, padding=1)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers.append(nn.ReLU())
        return layers

    return nn.Sequential(
        *conv(1, 24, True),
        *conv(24, 64, True),
        *conv(64, 96, False),
        *conv(96, 96, False),
        *conv(96, 64, True),
        nn.Flatten(),
        nn.Linear(64 * 3 * 3, 512),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(512, 10),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--frozen", type=int, default=0,
        help="layers 1..N frozen (as AnB): run under no_grad, no update; 0 = full step")
    args = parser.parse_args()

    torch.manual_seed(0)
    net = reference_net()
    # Layer n ends after its ReLU (conv, fc6, fc7); the frozen prefix runs under no_grad, the
    # way a researcher freezes layers in PyTorch (dropout after a frozen fc6/fc7 still acts).
    layer_ends = [i + 1 for i, m in enumerate(net) if isinstance(m, nn.ReLU)]
    split = layer_ends[args.frozen - 1] if args.frozen > 0 else 0
    frozen, trained = net[:split], net[split:]
    for p in frozen.parameters():
        p.requires_grad_(False)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = frozen(x)
        return trained(x)

    weights = [p for name, p in trained.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in trained.named_parameters() if name.endswith("bias")]
    optimizer = torch.optim.SGD(
        [
            {"params": weights, "weight_decay": 5e-4},
            {"params": biases, "lr": 0.02, "weight_decay": 0.0},
        ],
        lr=0.01,
        momentum=0.9,
    )
    loss_fn = nn.CrossEntropyLoss()
    images = torch.randn(args.batch * 4, 1, 28, 28)
    labels = torch.arange(args.batch * 4) % 10

    def step(index: int) -> None:
        first = (index * args.batch) % images.shape[0]
        x = images[first : first + args.batch]
        y = labels[first : first + args.batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(x), y)
        loss.backward()
        optimizer.step()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    net.train()
    for round_index in range(args.rounds):
        for index in range(args.warmup):
            step(index)
        started = time.perf_counter()
        for index in range(args.steps):
            step(index)
        seconds = time.perf_counter() - started
        what = f"n = {args.frozen} frozen" if args.frozen else "full step"
        print(f"round {round_index + 1}: {args.steps * args.batch / seconds:8.1f} img/s ({what})")


if __name__ == "__main__":
    main()
