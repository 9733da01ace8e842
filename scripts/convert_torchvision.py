"""Converts a torchvision ResNet-18/34/50 state dict into safetensors that qnn loads by name.

qnn's ImageNet ResNets (nn/resnet_imagenet.h, make_imagenet_resnet) use torchvision's module
and parameter names (torchvision/models/resnet.py), so the conversion keeps every name and
shape and only changes the container: a pickled .pth becomes a safetensors file (no code runs
when it is loaded), with float tensors as F32 and BatchNorm's num_batches_tracked as I64, the
dtypes qnn reads (tensor/safetensors.h). qnn's load_state_dict (nn/state_dict.h) needs every
parameter and buffer; checkpoints older than PyTorch 0.4.1 have no num_batches_tracked, which
this script adds as 0, as PyTorch's BatchNorm does when it loads them. qnn keeps the counter
as a float and refuses counts above 2^24; --reset-batch-counts writes 0 instead (the counter
has no effect on a BatchNorm with a momentum, which every torchvision ResNet has).

The architecture is read from the names (how many blocks each layer has, and whether the
blocks have a conv3) and checked, name for name and shape for shape, against
torchvision.models.<arch>(weights=None); only resnet18, resnet34 and resnet50 are supported.

Usage (Debian's /usr/bin/python3 with python3-torch and python3-torchvision):
    /usr/bin/python3 scripts/convert_torchvision.py resnet50-0676ba61.pth resnet50.safetensors
    /usr/bin/python3 scripts/convert_torchvision.py --random resnet18 --seed 0 resnet18.safetensors
    /usr/bin/python3 scripts/convert_torchvision.py --random resnet50 --num-classes 10 r50_10.safetensors
The first converts a downloaded .pth (a plain state dict, or one under a "state_dict" or
"model" key; a "module." prefix from DataParallel is removed). The others write a freshly
initialised torchvision model (torch.manual_seed(seed), then torchvision's initialisation).
In C++:
    auto net = qnn::make_imagenet_resnet("resnet50", 1000);
    qnn::load_state_dict(*net, qnn::load_safetensors("resnet50.safetensors"));
"""
import argparse
import os
import re
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

SUPPORTED = {  # blocks per layer, bottleneck blocks
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
}
MAX_EXACT_COUNT = 2 ** 24  # qnn keeps num_batches_tracked as a float


def fail(message):
    sys.exit(f"convert_torchvision: {message}")


def load_pth(path):
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # a PyTorch without weights_only
        loaded = torch.load(path, map_location="cpu")
    if isinstance(loaded, dict):
        for key in ("state_dict", "model"):
            if key in loaded and isinstance(loaded[key], dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        fail(f"{path}: expected a state dict (names -> tensors), found {type(loaded).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in loaded.items()}


def infer_arch(state, source):
    blocks = []
    for layer in range(1, 5):
        indices = {int(m.group(1)) for k in state for m in [re.match(rf"layer{layer}\.(\d+)\.", k)] if m}
        blocks.append(max(indices) + 1 if indices else 0)
    bottleneck = any(re.match(r"layer\d+\.\d+\.conv3\.", k) for k in state)
    for arch, spec in SUPPORTED.items():
        if spec == (tuple(blocks), bottleneck):
            return arch
    kind = "bottleneck" if bottleneck else "basic"
    fail(f"{source}: {kind} blocks per layer {blocks} match no supported architecture; "
         f"supported: " + ", ".join(f"{a} ({'bottleneck' if b else 'basic'} {list(n)})"
                                    for a, (n, b) in SUPPORTED.items()))


def checked_state(state, arch, source, reset_batch_counts):
    """The tensors in torchvision's state-dict order, checked against torchvision's model."""
    fc = state.get("fc.weight")
    if fc is None or fc.dim() != 2:
        fail(f"{source}: no 2-D fc.weight")
    reference = getattr(torchvision.models, arch)(weights=None, num_classes=fc.shape[0]).state_dict()
    unexpected = sorted(set(state) - set(reference))
    if unexpected:
        fail(f"{source}: names that {arch} does not have: {', '.join(unexpected[:5])}"
             + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""))
    out = []
    for name, ref in reference.items():
        if name not in state:
            if name.endswith("num_batches_tracked"):
                out.append((name, torch.zeros((), dtype=torch.int64)))
                continue
            fail(f"{source}: {arch} needs '{name}', which is missing")
        t = state[name]
        if tuple(t.shape) != tuple(ref.shape):
            fail(f"{source}: '{name}' has shape {list(t.shape)}, {arch} expects {list(ref.shape)}")
        if name.endswith("num_batches_tracked"):
            count = int(t.item())
            if reset_batch_counts:
                count = 0
            elif not 0 <= count <= MAX_EXACT_COUNT:
                fail(f"{source}: '{name}' is {count}, beyond qnn's limit of 2^24 = {MAX_EXACT_COUNT}; "
                     f"--reset-batch-counts writes 0 (the counter does not change the outputs)")
            out.append((name, torch.tensor(count, dtype=torch.int64)))
        else:
            if not t.is_floating_point():
                fail(f"{source}: '{name}' has dtype {t.dtype}, expected a float tensor")
            out.append((name, t.to(torch.float32)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="[input.pth] output.safetensors")
    parser.add_argument("--random", choices=sorted(SUPPORTED), help="convert a freshly initialised model")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed for --random (default 0)")
    parser.add_argument("--num-classes", type=int, default=1000, help="classes for --random (default 1000)")
    parser.add_argument("--reset-batch-counts", action="store_true",
                        help="write every num_batches_tracked as 0")
    args = parser.parse_args()

    if args.random:
        if len(args.paths) != 1:
            parser.error("--random takes only the output path")
        torch.manual_seed(args.seed)
        source = f"torchvision.models.{args.random}(weights=None) with seed {args.seed}"
        state = getattr(torchvision.models, args.random)(weights=None, num_classes=args.num_classes).state_dict()
    else:
        if len(args.paths) != 2:
            parser.error("expected an input .pth and an output path")
        source = args.paths[0]
        state = load_pth(source)
    output = args.paths[-1]

    arch = infer_arch(state, source)
    tensors = checked_state(state, arch, source, args.reset_batch_counts)
    num_classes = state["fc.weight"].shape[0]
    write_safetensors(output, tensors, {"arch": arch, "num_classes": str(num_classes),
                                        "source": source if args.random else os.path.basename(source)})
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    parameters = sum(t.numel() for name, t in tensors if not name.endswith(buffers))
    print(f"{output}: {arch}, {len(tensors)} tensors, {parameters:,} parameters")


if __name__ == "__main__":
    main()
