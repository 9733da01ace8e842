"""Writes tests/fixtures/ptq.safetensors: reference values for post-training quantization (tests/ptq/).

Run from the repository root:  /usr/bin/python3 scripts/make_ptq_fixture.py
(Debian's python3-torch, PyTorch 1.13 for the CPU, and NumPy). The output is committed.

Contents:
  kl<i>.hist [B] F32, kl<i>.levels [1] I64, kl<i>.best [1] I64, kl<i>.probe [K] I64,
  kl<i>.divergence [K] F32
      TensorRT entropy calibration (Migacz, GTC 2017) by the NumPy port below, written from the
      algorithm's description independently of qnn's C++ (ptq/kl_threshold.cpp): the histogram,
      the number of quantized levels, the best candidate length i (threshold (i + 0.5) bins) and
      KL(P || Q) at a few candidate lengths.
  qpt<i>.x, .scale [1], .zero_point [1] I64, .range [2] I64 (qmin, qmax), .q I64, .dq
      torch.quantize_per_tensor (quint8 or qint8): integers (int_repr) and dequantized values.
  qpc<i>.x [C, K], .scale [C], .zero_point [C] I64, .range, .q, .dq
      torch.quantize_per_channel, axis 0, qint8.
Inputs include exact .5 ties (power-of-two scales make x / scale exact: PyTorch rounds half to
even) and values beyond the range (clamped after rounding).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402


def smooth(p, eps=1e-4):
    """Every zero bin gets eps; the non-zero bins give that mass up evenly. None if all are zero."""
    zero = p == 0
    nonzero = ~zero
    if nonzero.sum() == 0:
        return None
    out = p.astype(np.float64).copy()
    out[zero] = eps
    out[nonzero] -= eps * zero.sum() / nonzero.sum()
    return out


def kl_divergence(hist, i, levels):
    """KL(P || Q) for the candidate that keeps the first i bins, quantized to `levels` levels."""
    hist = hist.astype(np.float64)
    p = hist[:i].copy()
    p[i - 1] += hist[i:].sum()           # outliers saturate into the last kept bin
    sliced = hist[:i]
    q = np.zeros(i)
    width = i // levels
    for g in range(levels):
        lo = g * width
        hi = i if g == levels - 1 else lo + width
        mask = p[lo:hi] != 0
        if mask.sum() == 0:
            continue
        q[lo:hi][mask] = sliced[lo:hi].sum() / mask.sum()
    p, q = smooth(p), smooth(q)
    if p is None or q is None:
        return np.inf
    p, q = p / p.sum(), q / q.sum()
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def kl_best(hist, levels):
    divs = [kl_divergence(hist, i, levels) for i in range(levels, len(hist))]
    return levels + int(np.argmin(divs))


def kl_cases(rng):
    bins = 2048
    cases = []
    laplace = np.abs(rng.laplace(0.0, 1.0, 200000))
    cases.append((np.histogram(laplace, bins=bins, range=(0, laplace.max()))[0], 128))
    relu = np.maximum(rng.normal(0.3, 1.0, 100000), 0)
    relu = relu[relu > 0]
    cases.append((np.histogram(relu, bins=bins, range=(0, relu.max()))[0], 16))
    spiky = np.abs(np.concatenate([rng.normal(0, 0.1, 50000), rng.normal(3, 0.05, 500)]))
    cases.append((np.histogram(spiky, bins=bins, range=(0, spiky.max()))[0], 256))
    sparse = np.zeros(bins)
    sparse[rng.integers(0, 300, 40)] = rng.integers(1, 1000, 40)
    sparse[1900] = 3
    cases.append((sparse, 8))
    return cases


def main():
    rng = np.random.default_rng(15)
    tensors = []
    for k, (hist, levels) in enumerate(kl_cases(rng)):
        hist = hist.astype(np.float32)
        best = kl_best(hist, levels)
        probe = sorted({levels, levels + 1, best, min(best + 7, len(hist) - 1), len(hist) - 1, (levels + len(hist)) // 2})
        div = [kl_divergence(hist, i, levels) for i in probe]
        tensors += [(f"kl{k}.hist", torch.from_numpy(hist)),
                    (f"kl{k}.levels", torch.tensor([levels], dtype=torch.int64)),
                    (f"kl{k}.best", torch.tensor([best], dtype=torch.int64)),
                    (f"kl{k}.probe", torch.tensor(probe, dtype=torch.int64)),
                    (f"kl{k}.divergence", torch.tensor(div, dtype=torch.float32))]

    torch.manual_seed(15)
    ties = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 100.0, -100.0, 0.0, 126.5, 127.5, -128.5])
    per_tensor = [
        (ties * 0.25, 0.25, 0, torch.qint8),
        (ties * 0.125, 0.125, 3, torch.qint8),
        (ties.abs() * 0.5, 0.5, 0, torch.quint8),
        (ties * 0.0625 + 1.0, 0.0625, 128, torch.quint8),
        (torch.randn(64) * 3, 0.0371, 0, torch.qint8),
        (torch.rand(64) * 9 - 1, 0.0329, 17, torch.quint8),
    ]
    for k, (x, scale, zp, dtype) in enumerate(per_tensor):
        x = x.float()
        q = torch.quantize_per_tensor(x, scale, zp, dtype)
        rng_ = (-128, 127) if dtype == torch.qint8 else (0, 255)
        tensors += [(f"qpt{k}.x", x), (f"qpt{k}.scale", torch.tensor([scale], dtype=torch.float32)),
                    (f"qpt{k}.zero_point", torch.tensor([zp], dtype=torch.int64)),
                    (f"qpt{k}.range", torch.tensor(rng_, dtype=torch.int64)),
                    (f"qpt{k}.q", q.int_repr().to(torch.int64)), (f"qpt{k}.dq", q.dequantize())]
    per_channel = [
        (torch.cat([ties[:12].reshape(1, 12) * s for s in (0.25, 0.5, 0.125)]), [0.25, 0.5, 0.125], [0, 0, 0]),
        (torch.randn(4, 18) * torch.tensor([[0.1], [1.0], [3.0], [0.01]]), [0.0021, 0.011, 0.02, 0.0001], [0, 0, 0, 0]),
    ]
    for k, (x, scales, zps) in enumerate(per_channel):
        x = x.float()
        q = torch.quantize_per_channel(x, torch.tensor(scales, dtype=torch.float64), torch.tensor(zps), 0, torch.qint8)
        tensors += [(f"qpc{k}.x", x), (f"qpc{k}.scale", torch.tensor(scales, dtype=torch.float32)),
                    (f"qpc{k}.zero_point", torch.tensor(zps, dtype=torch.int64)),
                    (f"qpc{k}.range", torch.tensor([-128, 127], dtype=torch.int64)),
                    (f"qpc{k}.q", q.int_repr().to(torch.int64)), (f"qpc{k}.dq", q.dequantize())]
    out = os.path.join("tests", "fixtures", "ptq.safetensors")
    write_safetensors(out, tensors, {"source": "scripts/make_ptq_fixture.py", "torch": torch.__version__})
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
