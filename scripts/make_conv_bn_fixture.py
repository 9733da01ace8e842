"""Writes tests/fixtures/conv_bn.safetensors: PyTorch 1.13's ConvBn2d (torch.nn.intrinsic.qat,
batch-norm folding for quantization-aware training) on a small input, for tests/nn/test_qat_conv_bn.cpp.

Run from the repository root:  /usr/bin/python3 scripts/make_conv_bn_fixture.py
(Debian's python3-torch, PyTorch 1.13 for the CPU). The output is committed.

The convolution is 3 -> 4 channels, 3x3, padding 1, no bias; its weight fake quantizer is PyTorch's
per-channel symmetric moving-average min-max FakeQuantize at 4 bits ([-8, 7]), which is qnn's
`linear` weight quantizer. The batch norm starts from non-trivial statistics and has one negative
gamma. Contents (all F32):
  x, dy, weight, gamma, beta, running_mean, running_var      the inputs and starting state
  train.{y, dx, dweight, dgamma, dbeta}                       one training step (batch statistics)
  train.{running_mean, running_var, min_val, max_val}        the state after it
  eval.y                                                      evaluation of x (observer disabled)
  frozen.{y, dx, dweight, dgamma, dbeta}                      training with freeze_bn_stats()
  frozen.{running_mean, running_var}                          unchanged by it
"""
import os
import sys

import numpy as np
import torch
import torch.nn.intrinsic.qat as nniqat
from torch.ao.quantization import FakeQuantize, MovingAveragePerChannelMinMaxObserver, QConfig, disable_observer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

rng = np.random.default_rng(20261205)
tensors = []


def put(name, value):
    tensors.append((name, torch.as_tensor(np.asarray(value.detach() if torch.is_tensor(value) else value,
                                                     dtype=np.float32)).clone()))


def f32(*shape, low=-1.0, high=1.0):
    return torch.tensor(rng.uniform(low, high, size=shape).astype(np.float32))


weight_fq = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-8, quant_max=7,
                                   dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)
qconfig = QConfig(activation=torch.nn.Identity, weight=weight_fq)
m = nniqat.ConvBn2d(3, 4, 3, padding=1, bias=False, qconfig=qconfig)
x, dy = f32(2, 3, 6, 6), f32(2, 4, 6, 6)
with torch.no_grad():
    m.weight.copy_(f32(4, 3, 3, 3, low=-0.5, high=0.5))
    m.bn.weight.copy_(torch.tensor([1.2, -0.7, 0.9, 0.4]))
    m.bn.bias.copy_(f32(4))
    m.bn.running_mean.copy_(f32(4, low=-0.2, high=0.2))
    m.bn.running_var.copy_(f32(4, low=0.5, high=2.0))
for name, value in [("x", x), ("dy", dy), ("weight", m.weight), ("gamma", m.bn.weight), ("beta", m.bn.bias),
                    ("running_mean", m.bn.running_mean), ("running_var", m.bn.running_var)]:
    put(name, value)


def step(prefix):
    xi = x.clone().requires_grad_(True)
    m.zero_grad()
    y = m(xi)
    y.backward(dy)
    put(prefix + ".y", y)
    put(prefix + ".dx", xi.grad)
    put(prefix + ".dweight", m.weight.grad)
    put(prefix + ".dgamma", m.bn.weight.grad)
    put(prefix + ".dbeta", m.bn.bias.grad)
    put(prefix + ".running_mean", m.bn.running_mean)
    put(prefix + ".running_var", m.bn.running_var)


m.train()
step("train")
put("train.min_val", m.weight_fake_quant.activation_post_process.min_val)
put("train.max_val", m.weight_fake_quant.activation_post_process.max_val)
m.apply(disable_observer)
m.eval()
with torch.no_grad():
    put("eval.y", m(x))
m.train()
m.freeze_bn_stats()
step("frozen")

path = os.path.join("tests", "fixtures", "conv_bn.safetensors")
write_safetensors(path, tensors, {"source": f"PyTorch {torch.__version__}", "script": "scripts/make_conv_bn_fixture.py"})
print(f"wrote {path}: {len(tensors)} tensors")
