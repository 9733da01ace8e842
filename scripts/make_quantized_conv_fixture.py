"""Writes tests/fixtures/quantized_conv.safetensors: PyTorch 1.13's quantized convolution
(torch.ao.nn.quantized.Conv2d, and ConvReLU2d from torch.nn.intrinsic.quantized) with the
onednn engine (Debian's build has no fbgemm), on fixed scales and zero points, for
tests/qinfer/test_int_torch.cpp: it pins the arithmetic conventions of qnn's integer engine
(u8 activations with a zero point, s8 per-channel symmetric weights, a float bias, one float
multiplier per output channel, round half to even, the zero point added after rounding).

Run from the repository root:  /usr/bin/python3 scripts/make_quantized_conv_fixture.py
The output is committed. Per case C in stride1, stride2 (all F32, integers stored exactly):
  C.x            u8 codes of the input, NCHW [2, 5, 9, 7]; scale s_in, zero point z_in
  C.weight       s8 codes of the weight [16, 5, 3, 3]; C.weight_scale [16] (zero points 0)
  C.bias         float bias [16]
  C.qparams      [s_in, z_in, s_out, z_out, stride]
  C.y, C.y_relu  u8 codes of Conv2d's and ConvReLU2d's outputs, NCHW
"""
import os
import sys

import torch
import torch.ao.nn.quantized as nnq
import torch.nn.intrinsic.quantized as nniq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors

torch.backends.quantized.engine = 'onednn'
torch.manual_seed(0)
tensors = []
for name, stride in (('stride1', 1), ('stride2', 2)):
    s_in, z_in, s_out, z_out = 0.05, 12, 0.45, 100  # outputs spread over the u8 range
    x = torch.quantize_per_tensor(torch.rand(2, 5, 9, 7) * 12 - 0.6, s_in, z_in, torch.quint8)
    w_scale = torch.rand(16, dtype=torch.double) * 0.02 + 0.005
    w = torch.quantize_per_channel(torch.randn(16, 5, 3, 3) * 0.6, w_scale, torch.zeros(16, dtype=torch.long), 0,
                                   torch.qint8)
    bias = torch.randn(16) * 0.8
    outs = []
    for cls in (nnq.Conv2d, nniq.ConvReLU2d):
        conv = cls(5, 16, 3, stride=stride, padding=1)
        conv.set_weight_bias(w, bias)
        conv.scale, conv.zero_point = s_out, z_out
        outs.append(conv(x).int_repr().float())
    tensors += [(f'{name}.x', x.int_repr().float()), (f'{name}.weight', w.int_repr().float()),
                (f'{name}.weight_scale', w_scale.float()), (f'{name}.bias', bias),
                (f'{name}.qparams', torch.tensor([s_in, z_in, s_out, z_out, stride], dtype=torch.float32)),
                (f'{name}.y', outs[0]), (f'{name}.y_relu', outs[1])]
path = os.path.join('tests', 'fixtures', 'quantized_conv.safetensors')
write_safetensors(path, tensors, {'torch': torch.__version__, 'engine': torch.backends.quantized.engine})
print('wrote', path)
