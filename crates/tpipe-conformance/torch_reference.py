"""PyTorch's side of tpipe's conformance suite (crates/tpipe-conformance).

For every case directory given on the command line, reads what tpipe traced there (`case.json`:
the net, the solver, the frozen layers and each step's learning rate; `trace.safetensors`: the
starting layers and, per step, the batch as the net saw it, its labels and the dropout masks),
repeats the same SGD steps with PyTorch's own modules and optimizer, and writes
`torch-<dtype>.safetensors`: per step the loss and every parameter and momentum buffer after the
update. The Rust side compares those with tpipe's.

The net is the textbook PyTorch one: `Conv2d` (with its bias) → `ReLU` → `MaxPool2d(2, 2)` for
each conv layer that pools, `Linear` → `ReLU` → dropout for fc6 and fc7 (the mask tpipe drew,
multiplied in, so both sides drop the same units), `Linear` for fc8, `cross_entropy` averaged over
the batch. Frozen layers have `requires_grad = False`. The solver is `torch.optim.SGD` with two
parameter groups: weights (lr, momentum, weight decay, dampening 0) and biases (lr × multiplier,
momentum, no decay); each step sets the groups' rates from the trace.

`--teacher FILE`: before every step after the first, the parameters and momentum buffers become
that file's state after the step before (another run's output, usually the float64 one), so each
step is computed from the same starting point.

Uses torch and the standard library only.
"""

import argparse
import ctypes
import json
import struct
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
NAMES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
LAYER_NAMES = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]


def read_safetensors(path: Path) -> dict:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    data = raw[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        if end > start:
            values = torch.frombuffer(bytearray(data[start:end]), dtype=dtype)
        else:
            values = torch.zeros(0, dtype=dtype)
        tensors[name] = values.reshape(info["shape"])
    return tensors


def write_safetensors(path: Path, tensors: dict) -> None:
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        # Raw bytes without numpy, which torch's wheel does not bring.
        blob = ctypes.string_at(tensor.data_ptr(), tensor.numel() * tensor.element_size())
        header[name] = {"dtype": NAMES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        chunks.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text.encode() + b"".join(chunks))


class Net(nn.Module):
    def __init__(self, case: dict):
        super().__init__()
        channels, height, width = case["channels"], case["height"], case["width"]
        self.convs = nn.ModuleList()
        self.pools = []
        for layer in case["conv"]:
            self.convs.append(nn.Conv2d(channels, layer["out_channels"], layer["kernel"],
                                        stride=layer["stride"], padding=layer["padding"]))
            self.pools.append(layer["max_pool"])
            height = (height + 2 * layer["padding"] - layer["kernel"]) // layer["stride"] + 1
            width = (width + 2 * layer["padding"] - layer["kernel"]) // layer["stride"] + 1
            if layer["max_pool"]:
                height, width = height // 2, width // 2
            channels = layer["out_channels"]
        widths = [channels * height * width] + case["fc_widths"] + [case["num_classes"]]
        self.fcs = nn.ModuleList(nn.Linear(widths[i], widths[i + 1]) for i in range(3))

    def layers(self):
        return list(self.convs) + list(self.fcs)

    def forward(self, x, masks):
        for conv, pool in zip(self.convs, self.pools):
            x = F.relu(conv(x))
            if pool:
                x = F.max_pool2d(x, 2, 2)
        x = x.flatten(1)
        for index, fc in enumerate(self.fcs):
            x = fc(x)
            if index < 2:
                x = F.relu(x)
                if masks is not None:
                    x = x * masks[index]
        return x


def set_state(net, optimizer, state: dict, prefix: str, dtype) -> None:
    """Parameters and momentum buffers from `state` (names `{prefix}{layer}.weight`, ...)."""
    with torch.no_grad():
        for name, layer in zip(LAYER_NAMES, net.layers()):
            for kind in ("weight", "bias"):
                parameter = getattr(layer, kind)
                parameter.copy_(state[f"{prefix}{name}.{kind}"].to(dtype))
                velocity = state.get(f"{prefix}{name}.{kind}_velocity")
                if parameter.requires_grad:
                    if velocity is None:
                        optimizer.state.pop(parameter, None)
                    else:
                        optimizer.state[parameter] = {
                            "momentum_buffer": velocity.to(dtype).clone()}


def run_case(directory: Path, dtype: torch.dtype, teacher) -> None:
    case = json.loads((directory / "case.json").read_text())
    trace = read_safetensors(directory / "trace.safetensors")
    net = Net(case).to(dtype)
    frozen = case["frozen_layers"]
    for layer in net.layers()[:frozen]:
        for parameter in layer.parameters():
            parameter.requires_grad_(False)
    trainable = net.layers()[frozen:]
    solver = case["solver"]
    optimizer = torch.optim.SGD([
        {"params": [layer.weight for layer in trainable], "weight_decay": solver["weight_decay"]},
        {"params": [layer.bias for layer in trainable], "weight_decay": 0.0},
    ], lr=solver["learning_rate"], momentum=solver["momentum"], dampening=0.0)
    set_state(net, optimizer, trace, "start.", dtype)
    results = {}
    for step in range(case["steps"]):
        if teacher is not None and step > 0:
            set_state(net, optimizer, teacher, f"step{step - 1}.", dtype)
        rate = case["learning_rates"][step]
        optimizer.param_groups[0]["lr"] = rate
        optimizer.param_groups[1]["lr"] = rate * solver["bias_lr_multiplier"]
        inputs = trace[f"step{step}.inputs"].to(dtype)
        labels = trace[f"step{step}.labels"].to(torch.int64)
        masks = None
        if f"step{step}.mask6" in trace:
            masks = [trace[f"step{step}.mask6"].to(dtype), trace[f"step{step}.mask7"].to(dtype)]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(inputs, masks), labels)
        loss.backward()
        optimizer.step()
        results[f"step{step}.loss"] = loss.detach().to(torch.float64).reshape(1).clone()
        for name, layer in zip(LAYER_NAMES, net.layers()):
            for kind in ("weight", "bias"):
                parameter = getattr(layer, kind)
                results[f"step{step}.{name}.{kind}"] = parameter.detach().to(torch.float64).clone()
                buffer = optimizer.state.get(parameter, {}).get("momentum_buffer")
                if buffer is not None:
                    results[f"step{step}.{name}.{kind}_velocity"] = \
                        buffer.detach().to(torch.float64).clone()
    name = "float64" if dtype == torch.float64 else "float32"
    write_safetensors(directory / f"torch-{name}.safetensors", results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", type=Path)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--teacher", help="a torch-*.safetensors name in each case directory")
    arguments = parser.parse_args()
    # One thread and deterministic kernels: the reference is the same on every run.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    dtype = torch.float64 if arguments.dtype == "float64" else torch.float32
    for directory in arguments.cases:
        teacher = None
        if arguments.teacher:
            teacher = read_safetensors(directory / arguments.teacher)
        run_case(directory, dtype, teacher)
    print(f"torch {torch.__version__}: {len(arguments.cases)} case(s) in {arguments.dtype}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
