"""Shared pieces of the plain-PyTorch version of pipelines/paper.yaml (no tpipe involved).

Imported by benches/paper_grid_pytorch.py (the whole grid) and benches/paper_net_pytorch.py (one
base net). It mirrors pipelines/paper.yaml: Fashion-MNIST read from its IDX files, 1000 training
and 1000 held-out images per class, the net 16-32-48-48-32 conv (3×3, padding 1, 2×2 max-pool
after conv1, conv2, conv5) then fc 128-128 with dropout 0.5 and 5 classes, Kaiming init, SGD lr
0.01 momentum 0.9 weight decay 5e-4 on weights only, biases at 2× lr, 8 epochs of batch 64 with
lr × 0.1 after epoch 6, cross-entropy.

Uses torch and the standard library only (no numpy, no torchvision).
"""

import gzip
import math
import os
import struct
import time
import warnings
import zlib
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
from torch import nn  # noqa: E402

DEFAULT_DATA = os.environ.get("TPIPE_DATA", "/usr/share/datasets/fashion-mnist")

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DISSIMILAR_A = [0, 2, 3, 4, 6]  # tops and dresses
DISSIMILAR_B = [1, 5, 7, 8, 9]  # trousers, footwear and bags

CONV_CHANNELS = [16, 32, 48, 48, 32]
POOL_AFTER = [True, True, False, False, True]
FC_WIDTHS = [128, 128]
NUM_CLASSES = 5
LAYERS = 7  # conv1..conv5, fc6, fc7: the layers a transfer can copy

EPOCHS = 8
LR_STEP_EPOCHS = 6
BATCH_SIZE = 64
LEARNING_RATE = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4

IMAGES_PER_CLASS = 1000
TEST_IMAGES_PER_CLASS = 1000


def all_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def net_seed(name: str) -> int:
    """Each net's own reproducible torch seed, from its name."""
    return zlib.crc32(name.encode())


# --- data -------------------------------------------------------------------------------------

def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (gzip) as a uint8 tensor of its shape."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)


def load_fashion_mnist(directory: str):
    """(train images N×28×28, train labels, test images, test labels), all uint8."""
    d = Path(directory)
    return (read_idx(d / "train-images-idx3-ubyte.gz"), read_idx(d / "train-labels-idx1-ubyte.gz"),
            read_idx(d / "t10k-images-idx3-ubyte.gz"), read_idx(d / "t10k-labels-idx1-ubyte.gz"))


class Task:
    """One side (A or B) of a split: its classes, training and held-out images, labels 0..4."""

    def __init__(self, data, classes, generator: torch.Generator):
        train_x, train_y, test_x, test_y = data
        self.classes = list(classes)
        xs, ys, txs, tys = [], [], [], []
        for label, cls in enumerate(self.classes):
            pool = (train_y == cls).nonzero().flatten()
            pick = pool[torch.randperm(len(pool), generator=generator)[:IMAGES_PER_CLASS]]
            xs.append(train_x[pick])
            ys.append(torch.full((len(pick),), label, dtype=torch.long))
            held = (test_y == cls).nonzero().flatten()[:TEST_IMAGES_PER_CLASS]
            txs.append(test_x[held])
            tys.append(torch.full((len(held),), label, dtype=torch.long))
        self.train_x = torch.cat(xs)
        self.train_y = torch.cat(ys)
        self.test_x = torch.cat(txs)
        self.test_y = torch.cat(tys)
        pixels = self.train_x.float() / 255.0
        self.mean = pixels.mean().item()  # one scalar mean/std over the training images
        self.std = pixels.std().item()


def similar_split(data, seed: int):
    """A random 5/5 partition of the classes, then 1000 training images per class."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(10, generator=g).tolist()
    return {"A": Task(data, sorted(order[:5]), g), "B": Task(data, sorted(order[5:]), g)}


def dissimilar_split(data, seed: int):
    """Tops and dresses (A) against trousers, footwear and bags (B); each seed draws its images."""
    g = torch.Generator().manual_seed(seed)
    return {"A": Task(data, DISSIMILAR_A, g), "B": Task(data, DISSIMILAR_B, g)}


def normalise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return ((images.float() / 255.0 - mean) / std).unsqueeze(1)  # N×1×28×28


# --- the net ----------------------------------------------------------------------------------

class PaperNet(nn.Module):
    """conv1..conv5, fc6, fc7 as `layers[0..7]`, then fc8; layers 1..frozen run without grad."""

    def __init__(self):
        super().__init__()
        blocks = []
        cin = 1
        for cout, pool in zip(CONV_CHANNELS, POOL_AFTER):
            block = [nn.Conv2d(cin, cout, 3, stride=1, padding=1)]
            if pool:
                block.append(nn.MaxPool2d(2, 2))
            block.append(nn.ReLU())
            blocks.append(nn.Sequential(*block))
            cin = cout
        width = CONV_CHANNELS[-1] * 3 * 3  # 28 → 14 → 7 → 3
        first = True
        for out in FC_WIDTHS:
            block = [nn.Flatten()] if first else []
            block += [nn.Linear(width, out), nn.ReLU(), nn.Dropout(0.5)]
            blocks.append(nn.Sequential(*block))
            width, first = out, False
        self.layers = nn.ModuleList(blocks)
        self.fc8 = nn.Linear(width, NUM_CLASSES)
        self.frozen = 0
        self.mean, self.std = 0.0, 1.0  # the normalisation its inputs get
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                gain = 1.0 if m is self.fc8 else 2.0
                nn.init.normal_(m.weight, 0.0, math.sqrt(gain / fan_in))
                nn.init.zeros_(m.bias)

    def freeze(self, n: int) -> None:
        """Layers 1..n keep their weights: no gradient, no update, no momentum, no decay."""
        self.frozen = n
        for layer in self.layers[:n]:
            for p in layer.parameters():
                p.requires_grad_(False)

    def copy_from(self, base: "PaperNet", n: int) -> None:
        """Layers 1..n take the base's weights; the rest keep their fresh init."""
        with torch.no_grad():
            for mine, theirs in zip(self.layers[:n], base.layers[:n]):
                for p, q in zip(mine.parameters(), theirs.parameters()):
                    p.copy_(q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for layer in self.layers[:self.frozen]:
                x = layer(x)  # dropout after fc6/fc7 still applies in train mode
        for layer in self.layers[self.frozen:]:
            x = layer(x)
        return self.fc8(x)


# --- solver, training, evaluation -------------------------------------------------------------

def make_optimizer(net: nn.Module):
    weights, biases = [], []
    for name, p in net.named_parameters():
        if p.requires_grad:
            (biases if name.endswith("bias") else weights).append(p)
    optimizer = torch.optim.SGD(
        [{"params": weights, "weight_decay": WEIGHT_DECAY},
         {"params": biases, "lr": 2 * LEARNING_RATE, "weight_decay": 0.0}],
        lr=LEARNING_RATE, momentum=MOMENTUM, dampening=0.0)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=LR_STEP_EPOCHS, gamma=0.1)
    return optimizer, schedule


def train(net: PaperNet, task: Task, epochs: int = EPOCHS) -> float:
    """Trains on the task's training images; returns the seconds of the training loop."""
    x_all = normalise(task.train_x, net.mean, net.std)
    y_all = task.train_y
    optimizer, schedule = make_optimizer(net)
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(y_all))
        for first in range(0, len(order), BATCH_SIZE):  # the last partial batch is kept
            batch = order[first:first + BATCH_SIZE]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(x_all[batch]), y_all[batch])
            loss.backward()
            optimizer.step()
        schedule.step()
    return time.perf_counter() - started


@torch.no_grad()
def evaluate(net: PaperNet, task: Task, batch: int = 1000) -> float:
    """Top-1 accuracy on the task's held-out images."""
    net.eval()
    x_all = normalise(task.test_x, net.mean, net.std)
    correct = 0
    for first in range(0, len(x_all), batch):
        predicted = net(x_all[first:first + batch]).argmax(1)
        correct += (predicted == task.test_y[first:first + batch]).sum().item()
    return correct / len(x_all)


def new_net(name: str, mean: float, std: float) -> PaperNet:
    """A freshly initialised net, seeded from its name, with the given input normalisation."""
    torch.manual_seed(net_seed(name))
    net = PaperNet()
    net.mean, net.std = mean, std
    return net
