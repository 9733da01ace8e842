"""Writes tests/fixtures/imagenet_resnet.safetensors: torchvision ResNet-18 and ResNet-50 logits
on weights that qnn's test rebuilds from a formula (tests/nn/test_resnet_imagenet.cpp).

The weights themselves (45 MB and 100 MB) are not stored: every parameter and buffer is set by
a formula that C++ reproduces bit for bit. The k-th tensor, counted over the model's parameters
in order and then its buffers in order (named_parameters() then named_buffers(), which is also
the order of qnn's state_dict), gets at element i (flat, row-major)
    h = (i * 2654435761 + k * 40503) mod 2^32        integer arithmetic
    u = h / 2^32                                     exact in float64, in [0, 1)
    value = float32(offset + (u - 0.5) * scale)      float64 arithmetic, one rounding to float32
with (offset, scale) by tensor:
    conv weight [O, C, KH, KW]        (0, sqrt(24 / fan_in)),  fan_in = C * KH * KW
                                      (uniform with Kaiming's variance 2 / fan_in)
    fc.weight [out, in], fc.bias      (0, 2 / sqrt(in))
    BN weight                         (1, 0.5)      in [0.75, 1.25)
    the last BN weight of each block  (0.1, 0.1)    in [0.05, 0.15)
      (bn2 of a basic block, bn3 of a bottleneck)
    BN bias, running_mean             (0, 0.2)      in [-0.1, 0.1)
    BN running_var                    (1, 1)        in [0.5, 1.5)
    BN num_batches_tracked            k (an integer; it has no effect on the output, since the
                                      momentum is 0.1, and the train-mode forward adds 1)
The small last BN weights keep each block close to the identity, as zero_init_residual does
(Goyal et al. 2017); with them near 1, the train-mode forward (batch statistics) of ResNet-50
amplifies rounding by about 1.6x per block, and PyTorch's own float32 logits then differ from
its float64 logits by 3e-4 of the largest, too much for a 1e-4 comparison. With them small the
two agree within 1e-5 in both modes.
The input [2, 3, 64, 64] uses the same formula with k = 100000, offset 0, scale 2.
Each of those float64 operations (an integer below 2^53 converted, a division by a power of
two, a subtraction, sqrt, a division, a multiplication, an addition) is correctly rounded in
IEEE 754, so Python and C++ get the same float32 numbers.

Contents (F32 unless marked I64):
    input.head [16]                              the input's first 16 elements (flat)
for arch in resnet18, resnet50:
    <arch>.head.<name> [16]                      the first 16 elements (flat) of the tensors
                                                 listed in HEADS, as the formula sets them
    <arch>.eval_logits [2, 1000]                 eval mode: BN uses the running statistics
    <arch>.train_logits [2, 1000]                train mode: BN uses the batch statistics
                                                 (run after the eval forward, which changes
                                                 nothing)
    <arch>.layer1.0.bn1.running_mean [64]        that BN's running statistics after the
    <arch>.layer1.0.bn1.running_var [64]         train-mode forward (momentum 0.1, unbiased
    <arch>.layer1.0.bn1.num_batches_tracked (I64)  batch variance)
Regenerate from the repository root with PyTorch 1.13 / torchvision 0.14 (same bytes each run):
    /usr/bin/python3 scripts/make_imagenet_resnet_fixture.py
"""
import math
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

OUT = os.path.join("tests", "fixtures", "imagenet_resnet.safetensors")
INPUT_SHAPE = (2, 3, 64, 64)
INPUT_INDEX = 100000
WATCHED_BN = "layer1.0.bn1"
# Tensors whose first elements are stored, so that a mismatch in the formula shows by itself.
HEADS = {"resnet18": ["conv1.weight", "layer1.0.bn2.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_var",
                      "fc.weight", "fc.bias"],
         "resnet50": ["layer4.2.conv3.weight", "layer1.0.bn3.weight", "layer1.0.bn2.weight",
                      "layer1.0.downsample.1.running_mean", "fc.bias"]}


def formula(shape, k, offset, scale):
    """The float32 tensor of `shape` the module docstring defines for tensor index k."""
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(k * 40503)) & np.uint64(0xFFFFFFFF)
    u = h.astype(np.float64) / 4294967296.0
    return torch.from_numpy((offset + (u - 0.5) * scale).astype(np.float32).reshape(shape))


def offset_and_scale(name, shape, fc_in, last_bn_weight):
    if name.startswith("fc."):
        return 0.0, 2.0 / math.sqrt(fc_in)
    if len(shape) == 4:
        return 0.0, math.sqrt(24.0 / (shape[1] * shape[2] * shape[3]))
    if name.startswith("layer") and name.endswith(last_bn_weight):
        return 0.1, 0.1
    if name.endswith(".weight"):
        return 1.0, 0.5
    if name.endswith(".bias") or name.endswith(".running_mean"):
        return 0.0, 0.2
    if name.endswith(".running_var"):
        return 1.0, 1.0
    raise ValueError(f"no formula for {name} {shape}")


def set_formula_weights(model):
    fc_in = model.fc.in_features
    bottleneck = isinstance(model.layer1[0], torchvision.models.resnet.Bottleneck)
    last_bn_weight = ".bn3.weight" if bottleneck else ".bn2.weight"
    named = list(model.named_parameters()) + list(model.named_buffers())
    assert len(named) == len(model.state_dict()), "state_dict holds tensors beyond parameters and buffers"
    with torch.no_grad():
        for k, (name, t) in enumerate(named):
            if name.endswith("num_batches_tracked"):
                t.fill_(k)
                continue
            offset, scale = offset_and_scale(name, tuple(t.shape), fc_in, last_bn_weight)
            t.copy_(formula(tuple(t.shape), k, offset, scale))


def main():
    torch.set_num_threads(1)
    x = formula(INPUT_SHAPE, INPUT_INDEX, 0.0, 2.0)
    out = [("input.head", x.flatten()[:16])]
    for arch in ("resnet18", "resnet50"):
        model = getattr(torchvision.models, arch)(weights=None)
        set_formula_weights(model)
        state = model.state_dict()
        out += [(f"{arch}.head.{name}", state[name].flatten()[:16].clone()) for name in HEADS[arch]]
        model.eval()
        with torch.no_grad():
            eval_logits = model(x)
        model.train()
        with torch.no_grad():
            train_logits = model(x)
        bn = model.get_submodule(WATCHED_BN)
        out += [(f"{arch}.eval_logits", eval_logits), (f"{arch}.train_logits", train_logits),
                (f"{arch}.{WATCHED_BN}.running_mean", bn.running_mean),
                (f"{arch}.{WATCHED_BN}.running_var", bn.running_var),
                (f"{arch}.{WATCHED_BN}.num_batches_tracked", bn.num_batches_tracked)]
        print(f"{arch}: eval logits in [{eval_logits.min():.4g}, {eval_logits.max():.4g}], "
              f"std {eval_logits.std():.4g}; train logits in [{train_logits.min():.4g}, "
              f"{train_logits.max():.4g}], std {train_logits.std():.4g}")
    write_safetensors(OUT, out, {"source": "scripts/make_imagenet_resnet_fixture.py",
                                 "torch": torch.__version__, "torchvision": torchvision.__version__})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
