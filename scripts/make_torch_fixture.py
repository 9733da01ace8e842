"""Writes tests/fixtures/torch_written.safetensors: a tiny file made by PyTorch, for qnn's reader.

Run from the repository root:  /usr/bin/python3 scripts/make_torch_fixture.py
The output is committed; tests/tensor/test_safetensors.cpp checks qnn reads it exactly:
  - the state_dict of a BatchNorm2d(3) with PyTorch's names and dtypes: weight = [1, 1, 1],
    bias = [0, 0, 0], running_mean = [0.5, -1, 2], running_var = [1, 2, 3] (F32, shape [3]),
    num_batches_tracked = 7 (I64, shape [] -- a scalar, as PyTorch stores it)
  - "ramp": torch.arange(6).reshape(2, 3) * 0.25 - 0.5 (F32, shape [2, 3])
  - metadata {"format": "pt", "note": "scale in µm"}: json.dumps escapes the µ as \\u00b5
Python's json module writes the header with ", " and ": " separators, unlike qnn's writer.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

bn = torch.nn.BatchNorm2d(3)
with torch.no_grad():
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.0, 2.0, 3.0]))
    bn.num_batches_tracked.fill_(7)
tensors = list(bn.state_dict().items())
tensors.append(("ramp", torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 0.5))

path = os.path.join("tests", "fixtures", "torch_written.safetensors")
write_safetensors(path, tensors, {"format": "pt", "note": "scale in \u00b5m"})
back, meta = read_safetensors(path)
assert list(back) == [name for name, _ in tensors] and meta["note"] == "scale in \u00b5m"
for name, t in tensors:
    assert torch.equal(back[name], t), name
print(f"wrote {path}: {os.path.getsize(path)} bytes, tensors {list(back)}")
