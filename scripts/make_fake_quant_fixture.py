"""Writes tests/fixtures/fake_quant.safetensors: PyTorch 1.13's fake quantization and observers on
inputs chosen to exercise every branch, for qnn's bit-for-bit comparisons (tests/qat/).

Run from the repository root:  /usr/bin/python3 scripts/make_fake_quant_fixture.py
(Debian's python3-torch, PyTorch 1.13 for the CPU). The output is committed.

Contents (all F32; integers such as zero points and quant ranges are stored as floats):
  pt<i>.*   torch.fake_quantize_per_tensor_affine: x, dy, scale [1], zero_point [1], range
            [qmin, qmax]; outputs y and dx (the gradient for the output gradient dy).
  pc<i>.*   torch.fake_quantize_per_channel_affine (axis 0, int32 zero points): the same, with
            scale and zero_point [C].
  lpt<i>.*  torch._fake_quantize_learnable_per_tensor_affine: x, dy, scale, zero_point (not
            always whole: the forward and backward round it differently), range, grad_factor
            [1]; outputs y, dx, dscale, dzero_point.
  lpc<i>.*  torch._fake_quantize_learnable_per_channel_affine (axis 0): the same with [C] qparams.
            lpc0 has one element per channel, so each of its dscale/dzero_point entries is a
            single per-element term (no sum): those compare bit for bit.
  obs.batch<k>            three batches [4, 6] shown to every observer
  obs<i>.config           [kind (0 min-max, 1 moving average), per_channel, symmetric, qmin, qmax]
  obs<i>.{min,max,scale,zero_point}<k>   the observer's state and calculate_qparams() after batch k
Inputs include values that clamp, exact .5 ties (scales that are powers of two make x / scale
exact), values where x * (1/scale) and x / scale round to different integers, and values where
the learnable backward's fused multiply-add rounds differently from a separate multiply and add.
"""
import os
import sys

import numpy as np
import torch
from torch.ao.quantization.observer import (MinMaxObserver, MovingAverageMinMaxObserver,
                                            MovingAveragePerChannelMinMaxObserver,
                                            PerChannelMinMaxObserver)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

f32 = np.float32
rng = np.random.default_rng(20261124)
tensors = []


def put(name, value):
    tensors.append((name, torch.as_tensor(np.asarray(value, dtype=f32)).clone()))


def reciprocal_differs(scale, qmin, qmax, zp, count):
    """x where round(x * (1/scale)) != round(x / scale): PyTorch uses the reciprocal."""
    inv = f32(1) / f32(scale)
    found = []
    for k in range(qmin - zp, qmax - zp):
        base = f32((k + 0.5) * float(scale))
        xs = (np.array([base], dtype=f32).view(np.int32) + np.arange(-64, 65, dtype=np.int32)).view(f32)
        mult = np.rint((xs * inv).astype(f32))
        div = np.rint((xs / f32(scale)).astype(f32))
        found += list(xs[mult != div])
        if len(found) >= count:
            break
    return found[:count]


def fma_differs(scale, zp, count):
    """x where nearbyint(fma(x, 1/scale, zp)) != nearbyint(zp + fl(x * (1/scale)))."""
    inv = f32(1) / f32(scale)
    found = []
    for k in range(-12, 12):
        base = f32((k + 0.5) / float(inv))
        xs = (np.array([base], dtype=f32).view(np.int32) + np.arange(-4096, 4097, dtype=np.int32)).view(f32)
        exact = xs.astype(np.float64) * np.float64(inv)
        separate = np.rint((f32(zp) + exact.astype(f32)).astype(f32))
        fused = np.rint((exact + float(zp)).astype(f32))
        found += list(xs[separate != fused])
        if len(found) >= count:
            break
    return found[:count]


def affine_inputs(scale, zp, qmin, qmax, n_random):
    """Random values over the range and a little beyond, ties, the clamp edges, far outside."""
    s = float(scale)
    lo, hi = (qmin - zp) * s, (qmax - zp) * s
    x = list(rng.uniform(lo - 3 * s, hi + 3 * s, n_random))
    x += [(k + 0.5) * s for k in range(qmin - zp - 2, qmax - zp + 2, max(1, (qmax - qmin) // 12))]
    x += [lo, hi, lo - 0.5 * s, hi + 0.5 * s, lo - 0.49 * s, hi + 0.49 * s, 100 * hi + 1, 100 * lo - 1, 0.0, -0.0]
    return [f32(v) for v in x]


# --- torch.fake_quantize_per_tensor_affine ---------------------------------------------------
per_tensor_cases = [  # (scale, zero point, qmin, qmax)
    (0.0625, 128, 0, 255), (0.037, 0, -128, 127), (0.1, 3, 0, 15), (0.25, -3, -8, 7),
    (0.5, 1, 0, 3), (0.3, 0, -2, 1), (0.0071, -17, -128, 127), (1.0, 0, 0, 255),
]
for i, (s, zp, qmin, qmax) in enumerate(per_tensor_cases):
    x = affine_inputs(s, zp, qmin, qmax, 40) + reciprocal_differs(s, qmin, qmax, zp, 6)
    xt = torch.tensor(np.array(x, dtype=f32), requires_grad=True)
    dy = torch.tensor(rng.standard_normal(len(x)).astype(f32))
    y = torch.fake_quantize_per_tensor_affine(xt, float(f32(s)), zp, qmin, qmax)
    y.backward(dy)
    for key, v in [("x", xt.detach()), ("dy", dy), ("scale", [f32(s)]), ("zero_point", [zp]),
                   ("range", [qmin, qmax]), ("y", y.detach()), ("dx", xt.grad)]:
        put(f"pt{i}.{key}", v)

# --- torch.fake_quantize_per_channel_affine (axis 0) -----------------------------------------
per_channel_cases = [  # (scales, zero points, qmin, qmax, inner shape)
    ([0.05, 0.125, 0.0371, 0.5], [0, 10, 255, 128], 0, 255, (3, 5)),
    ([0.25, 0.01, 0.3], [0, -4, 7], -8, 7, (2, 7)),
    ([0.5, 0.0625], [-2, 1], -2, 1, (11,)),
]
for i, (scales, zps, qmin, qmax, inner) in enumerate(per_channel_cases):
    rows = []
    width = int(np.prod(inner))
    for s, zp in zip(scales, zps):
        r = affine_inputs(s, zp, qmin, qmax, width)
        rows.append(np.array(r[:width], dtype=f32))
        rows[-1][: min(width, 6)] = np.array(r[-10:-4][: min(width, 6)], dtype=f32)  # the clamp edges
    x = torch.tensor(np.stack(rows).reshape((len(scales),) + inner), requires_grad=True)
    dy = torch.tensor(rng.standard_normal(x.shape).astype(f32))
    st = torch.tensor(np.array(scales, dtype=f32))
    zt = torch.tensor(zps, dtype=torch.int32)
    y = torch.fake_quantize_per_channel_affine(x, st, zt, 0, qmin, qmax)
    y.backward(dy)
    for key, v in [("x", x.detach()), ("dy", dy), ("scale", st), ("zero_point", np.array(zps)),
                   ("range", [qmin, qmax]), ("y", y.detach()), ("dx", x.grad)]:
        put(f"pc{i}.{key}", v)

# --- torch._fake_quantize_learnable_per_tensor_affine ----------------------------------------
learnable_cases = [  # (scale, zero point (float), qmin, qmax, grad_factor)
    (0.1, 3.0, -128, 127, 1.0), (0.0371, 2.5, 0, 15, 0.37), (0.3, -1.7, -8, 7, 1 / np.sqrt(64 * 7)),
    (0.25, 0.0, 0, 255, 1 / np.sqrt(100 * 255)), (0.5, -2.5, -2, 1, 0.5), (0.037, 5.0, 0, 255, 1.0),
]
for i, (s, zp, qmin, qmax, gf) in enumerate(learnable_cases):
    zf = int(np.rint(zp))
    x = affine_inputs(s, zf, qmin, qmax, 48) + fma_differs(s, zp, 8)
    xt = torch.tensor(np.array(x, dtype=f32), requires_grad=True)
    dy = torch.tensor(rng.standard_normal(len(x)).astype(f32))
    st = torch.tensor([f32(s)], requires_grad=True)
    zt = torch.tensor([f32(zp)], requires_grad=True)
    y = torch._fake_quantize_learnable_per_tensor_affine(xt, st, zt, qmin, qmax, float(f32(gf)))
    y.backward(dy)
    for key, v in [("x", xt.detach()), ("dy", dy), ("scale", st.detach()), ("zero_point", zt.detach()),
                   ("range", [qmin, qmax]), ("grad_factor", [f32(gf)]), ("y", y.detach()),
                   ("dx", xt.grad), ("dscale", st.grad), ("dzero_point", zt.grad)]:
        put(f"lpt{i}.{key}", v)

# --- torch._fake_quantize_learnable_per_channel_affine (axis 0) ------------------------------
learnable_channel_cases = []
# lpc0: one element per channel, every channel the same qparams as lpt0: per-element terms.
s0, z0, qmin0, qmax0, gf0 = learnable_cases[0]
x0 = affine_inputs(s0, 3, qmin0, qmax0, 40) + fma_differs(s0, z0, 8)
learnable_channel_cases.append((np.array(x0, dtype=f32).reshape(-1, 1), [s0] * len(x0), [z0] * len(x0),
                                qmin0, qmax0, gf0))
xs = rng.uniform(-2, 2, (4, 3, 6)).astype(f32)
xs[1, 0, :3] = [0.5625, -0.4375, 20.0]   # ties at scale 0.125, and a clamp
learnable_channel_cases.append((xs, [0.05, 0.125, 0.3, 0.0071], [2.5, -1.7, 0.0, 7.4], -8, 7, 0.21))
xs = rng.uniform(-1, 3, (3, 16)).astype(f32)
learnable_channel_cases.append((xs, [0.01, 0.02, 0.25], [0.0, 128.0, 255.0], 0, 255, 1 / np.sqrt(48 * 255)))
for i, (x, scales, zps, qmin, qmax, gf) in enumerate(learnable_channel_cases):
    xt = torch.tensor(x, requires_grad=True)
    dy = torch.tensor(rng.standard_normal(x.shape).astype(f32))
    st = torch.tensor(np.array(scales, dtype=f32), requires_grad=True)
    zt = torch.tensor(np.array(zps, dtype=f32), requires_grad=True)
    y = torch._fake_quantize_learnable_per_channel_affine(xt, st, zt, 0, qmin, qmax, float(f32(gf)))
    y.backward(dy)
    for key, v in [("x", xt.detach()), ("dy", dy), ("scale", st.detach()), ("zero_point", zt.detach()),
                   ("range", [qmin, qmax]), ("grad_factor", [f32(gf)]), ("y", y.detach()),
                   ("dx", xt.grad), ("dscale", st.grad), ("dzero_point", zt.grad)]:
        put(f"lpc{i}.{key}", v)

# --- observers ---------------------------------------------------------------------------------
batches = [rng.standard_normal((4, 6)).astype(f32) * f32(1.5),
           rng.uniform(0.2, 3.0, (4, 6)).astype(f32),
           rng.standard_normal((4, 6)).astype(f32) * f32(0.7) - f32(0.4)]
batches[0][2, :] = 0.0          # a constant-zero channel: scale eps at first
batches[0][1, :] = np.abs(batches[0][1, :]) + f32(0.1)   # a positive channel: min clamps to 0
batches[0][3, :] = -np.abs(batches[0][3, :]) - f32(0.1)  # a negative channel: max clamps to 0
for k, b in enumerate(batches):
    put(f"obs.batch{k}", b)

configs = []  # (kind, per_channel, symmetric, dtype, qmin, qmax)
for kind in (0, 1):
    for per_channel in (False, True):
        for symmetric in (False, True):
            for dtype, qmin, qmax in [(torch.quint8, 0, 255), (torch.qint8, -128, 127), (torch.quint8, 0, 15),
                                      (torch.qint8, -8, 7), (torch.quint8, 0, 3), (torch.qint8, -2, 1)]:
                configs.append((kind, per_channel, symmetric, dtype, qmin, qmax))
for i, (kind, per_channel, symmetric, dtype, qmin, qmax) in enumerate(configs):
    if per_channel:
        cls = PerChannelMinMaxObserver if kind == 0 else MovingAveragePerChannelMinMaxObserver
        scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        obs = cls(ch_axis=0, dtype=dtype, qscheme=scheme, quant_min=qmin, quant_max=qmax)
    else:
        cls = MinMaxObserver if kind == 0 else MovingAverageMinMaxObserver
        scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        obs = cls(dtype=dtype, qscheme=scheme, quant_min=qmin, quant_max=qmax)
    assert (obs.quant_min, obs.quant_max) == (qmin, qmax), (obs.quant_min, obs.quant_max)
    put(f"obs{i}.config", [kind, int(per_channel), int(symmetric), qmin, qmax])
    for k, b in enumerate(batches):
        obs(torch.tensor(b))
        scale, zero_point = obs.calculate_qparams()
        put(f"obs{i}.min{k}", obs.min_val.reshape(-1))
        put(f"obs{i}.max{k}", obs.max_val.reshape(-1))
        put(f"obs{i}.scale{k}", scale.reshape(-1))
        put(f"obs{i}.zero_point{k}", zero_point.reshape(-1).to(torch.float32))

path = os.path.join("tests", "fixtures", "fake_quant.safetensors")
write_safetensors(path, tensors, {"source": f"PyTorch {torch.__version__}", "script": "scripts/make_fake_quant_fixture.py"})
back, _ = read_safetensors(path)
assert list(back) == [name for name, _ in tensors]
print(f"wrote {path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors, {len(configs)} observers")
