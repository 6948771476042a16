"""One base net of pipelines/paper.yaml in plain PyTorch: training throughput, images/s.

Trains baseA of the similar split (seed 0 by default, as `baseA_s0` in pipelines/paper.yaml and
benches/paper_grid_pytorch.py): 5 classes × 1000 training images of Fashion-MNIST, the paper
net (conv 16-32-48-48-32, fc 128-128, dropout 0.5), SGD lr 0.01 momentum 0.9 weight decay 5e-4,
biases at 2× lr, batch 64, lr × 0.1 after epoch 6. Net, solver and data: see
benches/paper_torch_common.py.

    /var/cache/tpipe-ci/torch-venv/bin/python benches/paper_net_pytorch.py \
        [--threads N] [--epochs 8] [--seed 0] [--data DIR]

Prints `seconds S images_per_second X threads N`, S the training loop only (data loading and
normalisation excluded), X = epochs × 5000 / S; the held-out top-1 goes to stderr.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paper_torch_common import (  # noqa: E402  (first: it quiets torch's missing-numpy warning)
    DEFAULT_DATA, EPOCHS, all_cores, evaluate, load_fashion_mnist, new_net, similar_split, train)
import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=all_cores())
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the similar split")
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of the four IDX .gz files")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    task = similar_split(load_fashion_mnist(args.data), args.seed)["A"]
    net = new_net(f"baseA_s{args.seed}", task.mean, task.std)
    seconds = train(net, task, epochs=args.epochs)
    images = args.epochs * len(task.train_y)
    print(f"seconds {seconds:.2f} images_per_second {images / seconds:.1f} "
          f"threads {torch.get_num_threads()}", flush=True)
    print(f"held_out_top1 {evaluate(net, task):.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
