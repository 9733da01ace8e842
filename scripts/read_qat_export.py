#!/usr/bin/env python3
"""Read a qnn QAT export (docs/qat-export.md) with numpy alone: unpack the low-bit weights,
dequantize them, w = (q - z) * s per output channel, and print one line per tensor.

    python3 scripts/read_qat_export.py model.safetensors

Lines: "weight NAME SHAPE bits B sum S" for each quantized weight (S: the sum of its dequantized
values), "act NAME bits B scale S zero_point Z" for each activation quantizer, then
"float NAME SHAPE" for the other tensors. load() returns the same as dictionaries.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return tensors, meta


def unpack(packed, count, bits):
    """Codes of `bits` bits, packed little-end first into 2-, 4- or 8-bit containers."""
    c = 2 if bits <= 2 else 4 if bits <= 4 else 8
    per = 8 // c
    shifts = np.arange(per, dtype=np.uint8) * c
    codes = (packed[:, None] >> shifts[None, :]) & ((1 << c) - 1)
    return codes.reshape(-1)[:count].astype(np.int64)


def load(path):
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "qnn-qat-export-1":
        raise SystemExit(f"{path}: not a qnn QAT export (format {meta.get('format')!r})")
    weights, acts, floats = {}, {}, {}
    for name, t in tensors.items():
        if name.startswith("qweight.") and name.endswith(".packed"):
            p = name[: -len(".packed")]
            shape = tuple(int(d) for d in tensors[p + ".shape"])
            bits, qmin = int(meta[p + ".bits"]), int(meta[p + ".qmin"])
            q = unpack(t, int(np.prod(shape)), bits) + qmin
            q = q.reshape(shape[0], -1).astype(np.float32)
            s = tensors[p + ".scale"].reshape(-1, 1)
            z = tensors[p + ".zero_point"].reshape(-1, 1)
            weights[p[len("qweight."):]] = (((q - z) * s).reshape(shape), bits)
        elif name.startswith("qact.") and name.endswith(".scale"):
            p = name[: -len(".scale")]
            acts[p[len("qact."):]] = (float(t[0]), float(tensors[p + ".zero_point"][0]), int(meta[p + ".bits"]))
        elif not name.startswith(("qweight.", "qact.")):
            floats[name] = t
    return weights, acts, floats, meta


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: read_qat_export.py EXPORT.safetensors")
    weights, acts, floats, meta = load(sys.argv[1])
    print(f"qat {meta.get('qat')}")
    for name, (w, bits) in weights.items():
        print(f"weight {name} {list(w.shape)} bits {bits} sum {float(w.astype(np.float64).sum()):.9g}")
    for name, (s, z, bits) in acts.items():
        print(f"act {name} bits {bits} scale {s:.9g} zero_point {z:.9g}")
    for name, t in floats.items():
        print(f"float {name} {list(t.shape)}")


if __name__ == "__main__":
    main()
