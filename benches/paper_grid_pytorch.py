"""The grid of benches/paper-180.yaml as a plain PyTorch script, to time against `tpipe run`.

What a researcher would write without tpipe: one process, the nets trained one after another,
the base nets kept in memory, no cache (a transfer's frozen layers run under torch.no_grad() in
every step). The same grid as benches/paper-180.yaml (pipelines/paper.yaml until 2026-12-05;
Yosinski et al. 2014 on Fashion-MNIST):

- 3 "similar" splits (seed 0, 1, 2, random 5/5 classes): baseA, baseB; for n = 1..7 and source
  A, B the transfer into B with layers 1..n copied and frozen ({source}{n}B) or copied and
  fine-tuned ({source}{n}B+); random{n}B, layers 1..n frozen at their random init.
- 3 "dissimilar" splits (seed 0, 1, 2; tops and dresses vs trousers, footwear and bags):
  baseA, baseB; for n = 1..7 A→B and B→A frozen, and the random-weight control into B.

180 trainings, each followed by its evaluation (top-1 on the 5000 held-out images of its task).
Net, solver and data: see benches/paper_torch_common.py.

    /var/cache/tpipe-ci/torch-venv/bin/python benches/paper_grid_pytorch.py \
        [--threads N] [--limit K] [--data DIR]

Prints one line per trained net: name, seconds (training and evaluation of that net), held-out
top-1; then `total_seconds S trainings K`, S the wall time of the whole run, data loading and
splits included.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paper_torch_common import (  # noqa: E402  (first: it quiets torch's missing-numpy warning)
    DEFAULT_DATA, LAYERS, all_cores, dissimilar_split, evaluate, load_fashion_mnist, new_net,
    similar_split, train)
import torch  # noqa: E402


def jobs(data):
    """(name, split, task, base, n, finetune) for every training, in order: base names the net
    whose layers 1..n are copied (None for a base, n = 0, or a random-weight control); bases come
    before the transfers that copy them."""
    for seed in range(3):
        split = similar_split(data, seed)
        for task in "AB":
            yield (f"base{task}_s{seed}", split, task, None, 0, False)
        for n in range(1, LAYERS + 1):
            for source in "AB":
                for plus in (False, True):
                    name = f"{source}{n}B{'+' if plus else ''}_s{seed}"
                    yield (name, split, "B", f"base{source}_s{seed}", n, plus)
        for n in range(1, LAYERS + 1):
            yield (f"random{n}B_s{seed}", split, "B", None, n, False)
    for seed in range(3):
        split = dissimilar_split(data, seed)
        for task in "AB":
            yield (f"dissimilar_base{task}_s{seed}", split, task, None, 0, False)
        for source, target in (("A", "B"), ("B", "A")):
            for n in range(1, LAYERS + 1):
                name = f"dissimilar_{source}{n}{target}_s{seed}"
                yield (name, split, target, f"dissimilar_base{source}_s{seed}", n, False)
        for n in range(1, LAYERS + 1):
            yield (f"dissimilar_random{n}B_s{seed}", split, "B", None, n, False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=all_cores())
    parser.add_argument("--limit", type=int, default=None, help="stop after K trainings")
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of the four IDX .gz files")
    args = parser.parse_args()

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    data = load_fashion_mnist(args.data)
    bases = {}
    trainings = 0
    for name, split, task_name, base_name, n, finetune in jobs(data):
        if args.limit is not None and trainings >= args.limit:
            break
        net_started = time.perf_counter()
        task = split[task_name]
        if base_name is not None:  # copied layers; the normalisation is the base's
            base = bases[base_name]
            net = new_net(name, base.mean, base.std)
            net.copy_from(base, n)
            if not finetune:
                net.freeze(n)
        else:  # a base, or the random-weight control with layers 1..n frozen at their init
            net = new_net(name, task.mean, task.std)
            net.freeze(n)
        train(net, task)
        accuracy = evaluate(net, task)
        if base_name is None and n == 0:
            bases[name] = net
        trainings += 1
        print(f"{name} {time.perf_counter() - net_started:.1f} {accuracy:.4f}", flush=True)
    print(f"total_seconds {time.perf_counter() - started:.1f} trainings {trainings}", flush=True)


if __name__ == "__main__":
    main()
